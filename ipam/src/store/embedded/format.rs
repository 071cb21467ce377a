//! The `tortie-embedded/1` file (its format is described in the parent module): decoding,
//! with every field checked and a [`StoreError::Corrupt`] naming the file or key otherwise, and
//! encoding.

use super::FORMAT;
use crate::store::StoreError;
use crate::store::etcd::check_key;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

/// The store's content, as read from the file.
#[derive(Debug, Clone, Default)]
pub(super) struct Db {
    pub(super) revision: u64,
    pub(super) keys: BTreeMap<String, Entry>,
    pub(super) deleted: VecDeque<(String, u64)>,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) rev: u64,
    pub(super) value: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    format: String,
    revision: u64,
    keys: BTreeMap<String, EntryRepr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deleted: Vec<TombRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRepr {
    rev: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TombRepr {
    key: String,
    rev: u64,
}

pub(super) fn corrupt(key: impl Into<String>, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.into(),
        what: what.into(),
    }
}

pub(super) fn decode(path: &Path, bytes: &[u8]) -> Result<Db, StoreError> {
    let file = path.display().to_string();
    if bytes.is_empty() {
        return Err(corrupt(
            file,
            "the file is empty (expected a tortie-embedded/1 document)",
        ));
    }
    let repr: FileRepr = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => {
            // Say "not ours" rather than "missing field" when it is another kind of file.
            let what = match serde_json::from_slice::<serde_json::Value>(bytes) {
                Err(_) => format!("not JSON: {e}"),
                Ok(v) => match v.get("format").and_then(|f| f.as_str()) {
                    Some(FORMAT) => format!("not a valid {FORMAT} document: {e}"),
                    Some(f) => format!("format is {f:?}, expected {FORMAT:?}"),
                    None => format!("no \"format\": {FORMAT:?} field (not a tortie store?): {e}"),
                },
            };
            return Err(corrupt(file, what));
        }
    };
    if repr.format != FORMAT {
        return Err(corrupt(
            file,
            format!("format is {:?}, expected {FORMAT:?}", repr.format),
        ));
    }
    let mut db = Db {
        revision: repr.revision,
        ..Db::default()
    };
    for (k, e) in repr.keys {
        if check_key(&k).is_err() {
            return Err(corrupt(
                k,
                format!("key is not under /tortie/v1/ (in {file})"),
            ));
        }
        if e.rev == 0 || e.rev > repr.revision {
            return Err(corrupt(
                k,
                format!(
                    "rev {} is not in 1..={} (the file's revision) (in {file})",
                    e.rev, repr.revision
                ),
            ));
        }
        let value = match (e.text, e.base64) {
            (Some(t), None) => t.into_bytes(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|err| {
                    corrupt(
                        k.clone(),
                        format!("base64 value does not decode: {err} (in {file})"),
                    )
                })?,
            (Some(_), Some(_)) => {
                return Err(corrupt(
                    k,
                    format!("has both \"text\" and \"base64\" (in {file})"),
                ));
            }
            (None, None) => {
                return Err(corrupt(
                    k,
                    format!("has no value (\"text\" or \"base64\") (in {file})"),
                ));
            }
        };
        db.keys.insert(k, Entry { rev: e.rev, value });
    }
    for t in repr.deleted {
        if t.rev == 0 || t.rev > repr.revision {
            return Err(corrupt(
                t.key,
                format!(
                    "deletion rev {} is not in 1..={} (in {file})",
                    t.rev, repr.revision
                ),
            ));
        }
        db.deleted.push_back((t.key, t.rev));
    }
    Ok(db)
}

pub(super) fn encode(db: &Db) -> Vec<u8> {
    let repr = FileRepr {
        format: FORMAT.to_string(),
        revision: db.revision,
        keys: db
            .keys
            .iter()
            .map(|(k, e)| {
                let (text, b64) = match std::str::from_utf8(&e.value) {
                    Ok(s) => (Some(s.to_string()), None),
                    Err(_) => (
                        None,
                        Some(base64::engine::general_purpose::STANDARD.encode(&e.value)),
                    ),
                };
                (
                    k.clone(),
                    EntryRepr {
                        rev: e.rev,
                        text,
                        base64: b64,
                    },
                )
            })
            .collect(),
        deleted: db
            .deleted
            .iter()
            .map(|(k, r)| TombRepr {
                key: k.clone(),
                rev: *r,
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&repr).expect("serialising plain data");
    out.push(b'\n');
    out
}

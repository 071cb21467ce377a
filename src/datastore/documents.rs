//! Resource documents as tortie stores them: the JSON of one resource, `apiVersion`, `kind`,
//! `metadata` (`name`, and `labels` / `annotations` when given) and `spec`, as the user wrote
//! them.
//!
//! The fields a datastore fills in (`resourceVersion`, `uid`, `creationTimestamp`...) are
//! dropped on the way in, so that what `tortie get -o yaml` prints (with `resourceVersion`)
//! applies back as unchanged, and so is a Node's `status` (calico-node's report, not
//! configuration). The spec is kept as written rather than re-serialised from the typed
//! resource: the stored document then validates exactly as the file did, and shows the
//! user's spelling (`asNumber: "64512"` stays a string).
//!
//! Input files are walked the way the configuration loader walks them (documents separated
//! by `---`, `kind: List` and `kind: <Kind>List` unpacked, empty documents skipped), so each
//! resource the loader validated has its document here.

use serde::Deserialize;
use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value as Yaml;

use super::DatastoreError;
use super::kinds::key_of;
use crate::config::{API_VERSION, Kind};

/// One resource read from an input file.
#[derive(Debug)]
pub struct InputDocument {
    pub kind: Kind,
    pub name: String,
    /// The label of the text it came from (the file name, or `<stdin>`).
    pub label: String,
    /// The document to store, or why it cannot be stored as JSON (reported only if the
    /// configuration is otherwise valid; validation explains most such documents better).
    pub document: Result<Json, String>,
}

impl InputDocument {
    pub fn key(&self) -> String {
        key_of(self.kind, &self.name)
    }
}

/// The resources of some texts, and the documents that are not recognisably one.
#[derive(Debug, Default)]
pub struct Inputs {
    pub documents: Vec<InputDocument>,
    /// `<label>, document <n>[, item <m>]: <why>` for each document left out. Validation of
    /// the same texts reports these too, in more detail; `delete -f` has only this.
    pub unreadable: Vec<String>,
}

/// Every resource in `texts` whose kind and name can be read.
pub fn input_documents(texts: &[(&str, &str)]) -> Inputs {
    let mut out = Inputs::default();
    for (label, text) in texts {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let at = format!("{label}, document {}", i + 1);
            match Yaml::deserialize(doc) {
                Ok(value) => document(label, &at, &value, true, &mut out),
                Err(e) => {
                    // The loader stops a file at its first syntax error; so does this.
                    out.unreadable.push(format!("{at}: not valid YAML: {e}"));
                    break;
                }
            }
        }
    }
    out
}

fn document(label: &str, at: &str, value: &Yaml, top: bool, out: &mut Inputs) {
    if value.is_null() {
        return;
    }
    let Some(kind_str) = value.get("kind").and_then(Yaml::as_str) else {
        out.unreadable.push(format!("{at}: no `kind`"));
        return;
    };
    if top && (kind_str == "List" || kind_str.strip_suffix("List").is_some_and(is_kind)) {
        if let Some(Yaml::Sequence(items)) = value.get("items") {
            for (j, item) in items.iter().enumerate() {
                document(label, &format!("{at}, item {}", j + 1), item, false, out);
            }
        }
        return;
    }
    let Some(kind) = Kind::from_kind(kind_str) else {
        out.unreadable.push(format!(
            "{at}: kind {kind_str:?} is not one tortie stores (Node, BGPConfiguration, BGPPeer, BGPFilter, IPPool)"
        ));
        return;
    };
    let Some(name) = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Yaml::as_str)
    else {
        out.unreadable.push(format!("{at}: no `metadata.name`"));
        return;
    };
    out.documents.push(InputDocument {
        kind,
        name: name.to_string(),
        label: label.to_string(),
        document: normalize(kind, name, value),
    });
}

fn is_kind(s: &str) -> bool {
    Kind::from_kind(s).is_some()
}

/// The stored form of a resource document (see the module documentation).
fn normalize(kind: Kind, name: &str, value: &Yaml) -> Result<Json, String> {
    let mut metadata = Map::new();
    metadata.insert("name".into(), Json::String(name.to_string()));
    let given = value.get("metadata");
    for field in ["labels", "annotations"] {
        if let Some(v) = given.and_then(|m| m.get(field)) {
            metadata.insert(field.into(), to_json(v, &format!("metadata.{field}"))?);
        }
    }
    let spec = match value.get("spec") {
        Some(s) => to_json(s, "spec")?,
        None => Json::Object(Map::new()),
    };
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), Json::String(API_VERSION.into()));
    doc.insert("kind".into(), Json::String(kind.as_str().into()));
    doc.insert("metadata".into(), Json::Object(metadata));
    doc.insert("spec".into(), spec);
    Ok(Json::Object(doc))
}

/// YAML to JSON, refusing what JSON cannot hold (tags, non-text keys, NaN).
fn to_json(value: &Yaml, path: &str) -> Result<Json, String> {
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(|| format!("{path}: {f} cannot be stored as JSON"))?
            }
        }
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(m) => {
            let mut map = Map::new();
            for (k, v) in m {
                let Some(k) = k.as_str() else {
                    return Err(format!("{path}: a key that is not text ({k:?})"));
                };
                map.insert(k.to_string(), to_json(v, &format!("{path}.{k}"))?);
            }
            Json::Object(map)
        }
        Yaml::Tagged(t) => return Err(format!("{path}: YAML tag {}", t.tag)),
    })
}

/// A stored value as a JSON document.
pub fn parse_stored(key: &str, value: &[u8]) -> Result<Json, DatastoreError> {
    let json: Json = serde_json::from_slice(value).map_err(|e| DatastoreError::Corrupt {
        key: key.to_string(),
        what: format!("not a JSON document: {e}"),
    })?;
    if !json.is_object() {
        return Err(DatastoreError::Corrupt {
            key: key.to_string(),
            what: "not a JSON object".into(),
        });
    }
    Ok(json)
}

/// A stored document with `metadata.resourceVersion` set to the key's revision, as calicoctl
/// shows it (the loader accepts and ignores the field, so the output applies back).
pub fn with_resource_version(mut doc: Json, revision: u64) -> Json {
    if let Some(meta) = doc.get_mut("metadata").and_then(Json::as_object_mut) {
        meta.insert("resourceVersion".into(), Json::String(revision.to_string()));
    }
    doc
}

/// `kind: <Kind>List` holding `items`, as `calicoctl get -o yaml` prints a kind.
pub fn list_document(kind: Kind, items: Vec<Json>) -> Json {
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), Json::String(API_VERSION.into()));
    doc.insert(
        "kind".into(),
        Json::String(format!("{}List", kind.as_str())),
    );
    doc.insert("metadata".into(), Json::Object(Map::new()));
    doc.insert("items".into(), Json::Array(items));
    Json::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
  resourceVersion: \"12\"
  uid: 0f8a
  labels:
    zone: a
spec:
  cidr: 198.19.0.0/17
  blockSize: 26
";

    #[test]
    fn datastore_fields_are_dropped_and_the_spec_kept_as_written() {
        let docs = input_documents(&[("pool.yaml", POOL)]).documents;
        assert_eq!(docs.len(), 1);
        let doc = docs[0].document.as_ref().unwrap();
        assert_eq!(
            doc,
            &serde_json::json!({
                "apiVersion": "projectcalico.org/v3",
                "kind": "IPPool",
                "metadata": {"name": "pool-a", "labels": {"zone": "a"}},
                "spec": {"cidr": "198.19.0.0/17", "blockSize": 26}
            })
        );
        assert_eq!(docs[0].key(), "/tortie/v1/resources/ippools/pool-a");
    }

    #[test]
    fn list_items_and_several_documents_each_become_a_resource() {
        let text = "\
apiVersion: v1
kind: List
items:
  - {apiVersion: projectcalico.org/v3, kind: BGPFilter, metadata: {name: f}, spec: {}}
  - {apiVersion: projectcalico.org/v3, kind: BGPPeer, metadata: {name: p}, spec: {}}
---
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n}
";
        let docs = input_documents(&[("x.yaml", text)]).documents;
        let names: Vec<(Kind, &str)> = docs.iter().map(|d| (d.kind, d.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (Kind::BgpFilter, "f"),
                (Kind::BgpPeer, "p"),
                (Kind::Node, "n")
            ]
        );
        assert_eq!(
            docs[2].document.as_ref().unwrap()["spec"],
            serde_json::json!({})
        );
    }

    #[test]
    fn a_tag_cannot_be_stored() {
        let text = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec:\n  nodeSelector: !has(x)\n";
        let docs = input_documents(&[("x.yaml", text)]).documents;
        let err = docs[0].document.as_ref().unwrap_err();
        assert!(err.contains("spec.nodeSelector"), "{err}");
    }

    #[test]
    fn documents_without_a_kind_or_name_are_listed_as_unreadable() {
        let text = "kind: IPPool\nmetadata: {}\n---\nmetadata: {name: x}\n---\nkind: Widget\n---\na: [1,\n";
        let inputs = input_documents(&[("x.yaml", text)]);
        assert!(inputs.documents.is_empty());
        let u = &inputs.unreadable;
        assert_eq!(u.len(), 4, "{u:?}");
        assert!(
            u[0].starts_with("x.yaml, document 1: no `metadata.name`"),
            "{u:?}"
        );
        assert!(u[1].starts_with("x.yaml, document 2: no `kind`"), "{u:?}");
        assert!(u[2].contains("\"Widget\""), "{u:?}");
        assert!(
            u[3].starts_with("x.yaml, document 4: not valid YAML"),
            "{u:?}"
        );
    }

    #[test]
    fn a_stored_value_that_is_not_a_json_object_is_corrupt() {
        let err = parse_stored("/tortie/v1/resources/ippools/p", b"[1]").unwrap_err();
        assert!(
            err.to_string().contains("/tortie/v1/resources/ippools/p"),
            "{err}"
        );
        assert!(parse_stored("k", b"{\"kind\": \"IPPool\"}").is_ok());
        assert!(parse_stored("k", b"kind: IPPool").is_err());
    }
}

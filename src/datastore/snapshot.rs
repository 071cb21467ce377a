//! Reading the stored resources: as a validated [`Config`] (for the agent), as documents (for
//! `tortie get`), and as the snapshot a write validates against.
//!
//! Each stored document is validated as a text labelled with its key, so an error in the
//! store reads `/tortie/v1/resources/bgppeers/tor, document 1 (BGPPeer "tor"): spec.asNumber:
//! ...`, naming the key and the field.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use tortie_ipam::store::{Store, Versioned};

use super::documents::{parse_stored, with_resource_version};
use super::kinds::{key_of, kind_prefix, parse_key};
use super::{DatastoreError, GUARD_KEY, RESOURCES_PREFIX};
use crate::config::{Config, Kind};

/// The stored configuration and the revision it was read at.
#[derive(Debug)]
#[allow(dead_code)] // `revision` is for the agent, which watches from it
pub struct LoadedConfig {
    pub config: Config,
    /// The highest revision among the resource keys read (`None` when nothing is stored): a
    /// later change of any of them has a higher revision.
    pub revision: Option<u64>,
}

/// What a write decides on: the guard key and every resource, read in that order (see
/// `writes` for why the order matters).
#[derive(Debug)]
pub struct Snapshot {
    pub guard: Option<Versioned>,
    pub resources: BTreeMap<String, Versioned>,
}

impl Snapshot {
    pub async fn read(store: &dyn Store) -> Result<Snapshot, DatastoreError> {
        let guard = store.get(GUARD_KEY).await?;
        let resources = store.list(RESOURCES_PREFIX).await?.into_iter().collect();
        Ok(Snapshot { guard, resources })
    }

    /// The stored documents as labelled texts, leaving out the keys in `skip`.
    pub fn texts(&self, skip: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
        self.resources
            .iter()
            .filter(|(key, _)| !skip(key))
            .map(|(key, v)| (key.clone(), String::from_utf8_lossy(&v.value).into_owned()))
            .collect()
    }
}

/// Validates stored documents: each must be a JSON object holding exactly the resource its
/// key names.
fn validate_stored(resources: &[(String, Versioned)]) -> Result<Config, DatastoreError> {
    let mut texts = Vec::with_capacity(resources.len());
    for (key, v) in resources {
        if parse_key(key).is_none() {
            return Err(DatastoreError::Corrupt {
                key: key.clone(),
                what: format!(
                    "not a resource key tortie writes ({RESOURCES_PREFIX}<kind>/<name>, kinds: {})",
                    Kind::ALL.map(super::kinds::plural).join(", ")
                ),
            });
        }
        parse_stored(key, &v.value)?;
        texts.push((key.as_str(), String::from_utf8_lossy(&v.value).into_owned()));
    }
    let borrowed: Vec<(&str, &str)> = texts.iter().map(|(k, t)| (*k, t.as_str())).collect();
    let config = Config::from_texts(&borrowed)?;
    for (key, _) in resources {
        let found = resources_from(&config, key);
        let (kind, name) = parse_key(key).unwrap_or((Kind::Node, ""));
        if found != [(kind, name.to_string())] {
            return Err(DatastoreError::Corrupt {
                key: key.clone(),
                what: format!(
                    "holds {} instead of the {kind} {name:?} its key names",
                    describe_found(&found)
                ),
            });
        }
    }
    Ok(config)
}

/// The (kind, name) of every resource the configuration read from the text labelled `label`.
pub fn resources_from(config: &Config, label: &str) -> Vec<(Kind, String)> {
    let mut found = Vec::new();
    let mut take = |kind: Kind, name: &String, file: &str| {
        if file == label {
            found.push((kind, name.clone()));
        }
    };
    for (n, r) in &config.nodes {
        take(Kind::Node, n, &r.source.file);
    }
    for (n, r) in &config.bgp_configurations {
        take(Kind::BgpConfiguration, n, &r.source.file);
    }
    for (n, r) in &config.bgp_peers {
        take(Kind::BgpPeer, n, &r.source.file);
    }
    for (n, r) in &config.bgp_filters {
        take(Kind::BgpFilter, n, &r.source.file);
    }
    for (n, r) in &config.ip_pools {
        take(Kind::IpPool, n, &r.source.file);
    }
    found
}

fn describe_found(found: &[(Kind, String)]) -> String {
    if found.is_empty() {
        return "no resource".into();
    }
    found
        .iter()
        .map(|(k, n)| format!("{k} {n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads every stored resource into a validated [`Config`], with the revision it saw.
pub async fn load_snapshot(store: &dyn Store) -> Result<LoadedConfig, DatastoreError> {
    let resources = store.list(RESOURCES_PREFIX).await?;
    let revision = resources.iter().map(|(_, v)| v.revision).max();
    let config = validate_stored(&resources)?;
    Ok(LoadedConfig { config, revision })
}

/// One stored resource as `tortie get` shows it.
#[derive(Debug, Clone)]
#[allow(dead_code)] // `revision` is for callers other than the commands
pub struct StoredResource {
    pub kind: Kind,
    pub name: String,
    pub revision: u64,
    /// The stored document with `metadata.resourceVersion` set to `revision`.
    pub document: Json,
}

/// The stored resources of `kind` (one, when `name` is given), in name order.
pub async fn get_resources(
    store: &dyn Store,
    kind: Kind,
    name: Option<&str>,
) -> Result<Vec<StoredResource>, DatastoreError> {
    let entries: Vec<(String, Versioned)> = match name {
        Some(name) => {
            let key = key_of(kind, name);
            match store.get(&key).await? {
                Some(v) => vec![(key, v)],
                None => {
                    return Err(DatastoreError::NotFound {
                        kind,
                        name: name.to_string(),
                    });
                }
            }
        }
        None => store.list(&kind_prefix(kind)).await?,
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, v) in entries {
        let Some((_, name)) = parse_key(&key) else {
            return Err(DatastoreError::Corrupt {
                key,
                what: "not a resource key tortie writes".into(),
            });
        };
        let name = name.to_string();
        let document = with_resource_version(parse_stored(&key, &v.value)?, v.revision);
        out.push(StoredResource {
            kind,
            name,
            revision: v.revision,
            document,
        });
    }
    Ok(out)
}

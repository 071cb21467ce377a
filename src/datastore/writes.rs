//! Writing resources: validate against what is stored, then compare-and-swap each resource.
//!
//! A write is planned from a [`Snapshot`] (the new documents validated together with every
//! stored one, so a BGPPeer may name a stored BGPFilter) and then carried out as one
//! transaction per resource. Validation looks at every resource, so each transaction must
//! fail if *anything* under the resources prefix changed since the snapshot, not only the key
//! it writes: otherwise `apply` of a peer naming filter F and `delete` of F could both pass
//! validation and both succeed, leaving a stored configuration no agent can load. Hence the
//! guard key [`GUARD_KEY`]: every resource write also rewrites it with a value unique to the
//! write, and is conditioned on its revision and on the resource's own. The snapshot reads the
//! guard before the resources, so a write landing between the two reads only makes the
//! transaction fail and the whole plan is made again from a fresh snapshot.
//!
//! After each transaction the guard is read back: if it still holds this write's value, its
//! revision is the one the next transaction of the same command compares against; if not,
//! someone else wrote in between and the plan is made again. Resources already written are
//! then unchanged and keep the outcome they had (`created`, `configured`). Conflicts are
//! retried with a growing, jittered pause, [`MAX_ATTEMPTS`] times.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use tortie_ipam::store::{Compare, Store, Write};

use super::documents::{InputDocument, input_documents, parse_stored};
use super::kinds::key_of;
use super::snapshot::{Snapshot, resources_from};
use super::{DatastoreError, GUARD_KEY};
use crate::config::{Config, ConfigError, ConfigErrors, Kind, Warning};

/// Plans made before giving up on writers that keep changing the resources.
pub const MAX_ATTEMPTS: u32 = 50;

/// What `apply` did to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// Written over a different stored document ("configured", as calicoctl says).
    Updated,
    Unchanged,
}

impl Outcome {
    /// The word `tortie apply` prints.
    pub fn verb(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// One applied resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub kind: Kind,
    pub name: String,
    pub outcome: Outcome,
}

/// What an apply did, and the warnings about the applied documents.
#[derive(Debug)]
pub struct ApplyReport {
    pub applied: Vec<Applied>,
    pub warnings: Vec<Warning>,
}

/// A resource's wanted state: a document, or gone.
struct Desired {
    key: String,
    value: Option<Json>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Created,
    Updated,
    Unchanged,
    Deleted,
    Absent,
}

/// A value for the guard key that no other write uses.
fn guard_token() -> Vec<u8> {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    serde_json::json!({
        "writer": format!("{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
    })
    .to_string()
    .into_bytes()
}

/// Pause before attempt `attempt` (1-based), jittered so two racing writers drift apart.
fn backoff(attempt: u32) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let ceiling = (5 + 10 * u64::from(attempt)).min(200);
    Duration::from_millis(1 + u64::from(nanos) % ceiling)
}

/// Makes the stored resources what `plan` wants, retrying from a fresh snapshot on conflict.
/// Returns the change made to each planned key, in plan order.
async fn write_planned(
    store: &dyn Store,
    mut plan: impl FnMut(&Snapshot) -> Result<Vec<Desired>, DatastoreError>,
) -> Result<Vec<(String, Change)>, DatastoreError> {
    // Changes made by earlier attempts of this call, which a later plan sees as unchanged.
    let mut done: HashMap<String, Change> = HashMap::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let snapshot = Snapshot::read(store).await?;
        let desired = plan(&snapshot)?;
        let mut guard = snapshot.guard.as_ref().map(|g| g.revision);
        let mut results = Vec::with_capacity(desired.len());
        let mut conflict = false;
        for d in &desired {
            let current = snapshot.resources.get(&d.key);
            let change = match (&d.value, current) {
                (Some(new), Some(cur)) => {
                    let same = parse_stored(&d.key, &cur.value).is_ok_and(|old| &old == new);
                    if same {
                        Change::Unchanged
                    } else {
                        Change::Updated
                    }
                }
                (Some(_), None) => Change::Created,
                (None, Some(_)) => Change::Deleted,
                (None, None) => Change::Absent,
            };
            if matches!(change, Change::Unchanged | Change::Absent) {
                results.push((d.key.clone(), done.get(&d.key).copied().unwrap_or(change)));
                continue;
            }
            let token = guard_token();
            let compares = [
                guard.map_or_else(
                    || Compare::Absent(GUARD_KEY.into()),
                    |r| Compare::Revision(GUARD_KEY.into(), r),
                ),
                current.map_or_else(
                    || Compare::Absent(d.key.clone()),
                    |c| Compare::Revision(d.key.clone(), c.revision),
                ),
            ];
            let write = match &d.value {
                Some(doc) => Write::Put(d.key.clone(), doc.to_string().into_bytes()),
                None => Write::Delete(d.key.clone()),
            };
            let writes = [Write::Put(GUARD_KEY.into(), token.clone()), write];
            if !store.txn(&compares, &writes).await? {
                tracing::debug!(key = %d.key, attempt, "resource write lost a race; planning again");
                conflict = true;
                break;
            }
            done.insert(d.key.clone(), change);
            results.push((d.key.clone(), change));
            match store.get(GUARD_KEY).await? {
                Some(g) if g.value == token => guard = Some(g.revision),
                _ => {
                    tracing::debug!(
                        attempt,
                        "another writer changed the resources; planning again"
                    );
                    conflict = true;
                    break;
                }
            }
        }
        if !conflict {
            return Ok(results);
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
    Err(DatastoreError::Contention {
        attempts: MAX_ATTEMPTS,
    })
}

/// Validates `texts` together with what is stored and writes each resource; see
/// [`super::apply_texts`].
pub async fn apply(
    store: &dyn Store,
    texts: &[(&str, &str)],
) -> Result<ApplyReport, DatastoreError> {
    let inputs = input_documents(texts).documents;
    let labels: HashSet<&str> = texts.iter().map(|(l, _)| *l).collect();
    let keys: HashSet<String> = inputs.iter().map(InputDocument::key).collect();
    let mut warnings = Vec::new();
    let changes = write_planned(store, |snapshot| {
        let stored = snapshot.texts(&|key| keys.contains(key));
        let mut all: Vec<(&str, &str)> = stored
            .iter()
            .map(|(k, t)| (k.as_str(), t.as_str()))
            .collect();
        all.extend_from_slice(texts);
        let config = Config::from_texts(&all)?;
        check_every_resource_found(&config, texts, &inputs)?;
        warnings = config
            .warnings
            .iter()
            .filter(|w| labels.contains(&*w.source.file))
            .cloned()
            .collect();
        let mut desired = Vec::with_capacity(inputs.len());
        let mut unstorable = Vec::new();
        for input in &inputs {
            match &input.document {
                Ok(doc) => desired.push(Desired {
                    key: input.key(),
                    value: Some(doc.clone()),
                }),
                Err(what) => unstorable.push(ConfigError {
                    file: input.label.as_str().into(),
                    document: None,
                    item: None,
                    kind: Some(input.kind.as_str().into()),
                    name: Some(input.name.clone()),
                    field: None,
                    message: format!("cannot be stored as JSON: {what}"),
                    line: None,
                }),
            }
        }
        if !unstorable.is_empty() {
            return Err(ConfigErrors(unstorable).into());
        }
        Ok(desired)
    })
    .await?;
    let applied = inputs
        .iter()
        .zip(changes)
        .map(|(input, (_, change))| Applied {
            kind: input.kind,
            name: input.name.clone(),
            outcome: match change {
                Change::Created => Outcome::Created,
                Change::Updated => Outcome::Updated,
                _ => Outcome::Unchanged,
            },
        })
        .collect();
    Ok(ApplyReport { applied, warnings })
}

/// The loader validated every resource of the input texts; each must be one this module will
/// write, or some resource would be silently skipped.
fn check_every_resource_found(
    config: &Config,
    texts: &[(&str, &str)],
    inputs: &[InputDocument],
) -> Result<(), DatastoreError> {
    let validated: usize = texts
        .iter()
        .map(|(label, _)| resources_from(config, label).len())
        .sum();
    if validated != inputs.len() {
        return Err(DatastoreError::Usage(format!(
            "internal error: {validated} resources validated but {} found to store; nothing written",
            inputs.len()
        )));
    }
    Ok(())
}

/// What a delete did to one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    pub kind: Kind,
    pub name: String,
    /// False when there was no such resource.
    pub existed: bool,
}

/// Deletes resources, refusing when what remains would not validate (a BGPFilter a stored
/// BGPPeer still names, say) unless the stored configuration is already invalid.
pub async fn delete(
    store: &dyn Store,
    targets: &[(Kind, String)],
) -> Result<Vec<Deleted>, DatastoreError> {
    let keys: HashSet<String> = targets.iter().map(|(k, n)| key_of(*k, n)).collect();
    let changes = write_planned(store, |snapshot| {
        let remaining = snapshot.texts(&|key| keys.contains(key));
        let borrowed: Vec<(&str, &str)> = remaining
            .iter()
            .map(|(k, t)| (k.as_str(), t.as_str()))
            .collect();
        if let Err(errors) = Config::from_texts(&borrowed) {
            let all = snapshot.texts(&|_| false);
            let all: Vec<(&str, &str)> =
                all.iter().map(|(k, t)| (k.as_str(), t.as_str())).collect();
            if Config::from_texts(&all).is_ok() {
                return Err(DatastoreError::WouldBreak {
                    what: targets
                        .iter()
                        .map(|(k, n)| format!("{}/{n}", super::kinds::singular(*k)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    errors,
                });
            }
            tracing::warn!("the stored configuration is already invalid; deleting anyway");
        }
        Ok(targets
            .iter()
            .map(|(k, n)| Desired {
                key: key_of(*k, n),
                value: None,
            })
            .collect())
    })
    .await?;
    Ok(targets
        .iter()
        .zip(changes)
        .map(|((kind, name), (_, change))| Deleted {
            kind: *kind,
            name: name.clone(),
            existed: change == Change::Deleted,
        })
        .collect())
}

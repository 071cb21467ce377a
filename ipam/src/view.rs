//! "Which node owns which block", watched: for the agent (the blocks it originates) and felix
//! (blackholes for local blocks, routes to remote ones).
//!
//! Only a *confirmed* affinity makes an owner: pending claims and blocks pending deletion are
//! treated as absent, as Calico does for routing. [`OwnerMap`] is the pure part (a list, then
//! watch events); [`BlockOwners`] keeps one current from the store, with a snapshot and a
//! stream of changes, and lists again whenever its watch fails ([`crate::store::follow`]).

use crate::IpamError;
use crate::block::{Affinity, AffinityState, BLOCKS_PREFIX, block_cidr_from_key};
use crate::store::follow::{Follower, follow, watch_then_list};
use crate::store::{Event, Store, Versioned};
use futures::StreamExt;
use futures::stream::BoxStream;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// A change of a block's owner. A block moving from one node to another is a `Disowned`
/// followed by an `Owned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerChange {
    Owned { block: IpNet, node: String },
    Disowned { block: IpNet, node: String },
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewUpdate {
    Change(OwnerChange),
    /// The subscriber fell behind: this is the whole map now; changes continue after it.
    Resync(BTreeMap<IpNet, String>),
}

/// Block → owning node, with the revision of each block document seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerMap {
    owners: BTreeMap<IpNet, String>,
    revisions: HashMap<String, u64>,
}

/// The part of a block document the view needs.
#[derive(Deserialize)]
struct Head {
    cidr: String,
    #[serde(default)]
    affinity: Option<Affinity>,
}

fn owner_of(key: &str, v: &Versioned) -> Option<(IpNet, Option<String>)> {
    let cidr = block_cidr_from_key(key)?;
    let owner = match serde_json::from_slice::<Head>(&v.value) {
        Ok(h) if h.cidr.parse::<IpNet>().ok() == Some(cidr) => h
            .affinity
            .filter(|a| a.state == AffinityState::Confirmed)
            .map(|a| a.node),
        _ => {
            tracing::warn!(
                key,
                "block document does not decode; treating it as unowned"
            );
            None
        }
    };
    Some((cidr, owner))
}

impl OwnerMap {
    /// The map of a listing of the blocks prefix.
    pub fn from_list(items: &[(String, Versioned)]) -> OwnerMap {
        let mut m = OwnerMap::default();
        for (key, v) in items {
            if let Some((cidr, owner)) = owner_of(key, v) {
                m.revisions.insert(key.clone(), v.revision);
                if let Some(node) = owner {
                    m.owners.insert(cidr, node);
                }
            }
        }
        m
    }

    /// Applies a watch event; a put older than what is known is ignored (the watch starts
    /// before the list, so it can replay what the list already holds).
    pub fn apply(&mut self, ev: &Event) -> Vec<OwnerChange> {
        match ev {
            Event::Put { key, value } => {
                if self
                    .revisions
                    .get(key)
                    .is_some_and(|r| *r >= value.revision)
                {
                    return Vec::new();
                }
                let Some((cidr, owner)) = owner_of(key, value) else {
                    return Vec::new();
                };
                self.revisions.insert(key.clone(), value.revision);
                self.set(cidr, owner)
            }
            Event::Delete { key } => {
                let Some(cidr) = block_cidr_from_key(key) else {
                    return Vec::new();
                };
                self.revisions.remove(key);
                self.set(cidr, None)
            }
        }
    }

    fn set(&mut self, block: IpNet, owner: Option<String>) -> Vec<OwnerChange> {
        let old = match &owner {
            Some(n) => self.owners.insert(block, n.clone()),
            None => self.owners.remove(&block),
        };
        if old == owner {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(node) = old {
            out.push(OwnerChange::Disowned { block, node });
        }
        if let Some(node) = owner {
            out.push(OwnerChange::Owned { block, node });
        }
        out
    }

    /// The changes that turn `self` into `new`.
    pub fn diff(&self, new: &OwnerMap) -> Vec<OwnerChange> {
        let mut out = Vec::new();
        for (block, node) in &self.owners {
            if new.owners.get(block) != Some(node) {
                out.push(OwnerChange::Disowned {
                    block: *block,
                    node: node.clone(),
                });
            }
        }
        for (block, node) in &new.owners {
            if self.owners.get(block) != Some(node) {
                out.push(OwnerChange::Owned {
                    block: *block,
                    node: node.clone(),
                });
            }
        }
        out
    }

    pub fn owners(&self) -> &BTreeMap<IpNet, String> {
        &self.owners
    }

    pub fn owner(&self, block: &IpNet) -> Option<&str> {
        self.owners.get(block).map(String::as_str)
    }

    /// The blocks `node` owns.
    pub fn blocks_of(&self, node: &str) -> Vec<IpNet> {
        self.owners
            .iter()
            .filter(|(_, n)| *n == node)
            .map(|(b, _)| *b)
            .collect()
    }
}

struct Shared {
    map: Mutex<OwnerMap>,
    tx: broadcast::Sender<OwnerChange>,
}

impl Shared {
    fn subscribe(&self) -> (BTreeMap<IpNet, String>, broadcast::Receiver<OwnerChange>) {
        let m = self.map.lock().expect("view lock");
        (m.owners.clone(), self.tx.subscribe())
    }

    /// Replaces or updates the map and publishes the changes, under the lock (so that a
    /// snapshot and the changes after it never overlap or leave a gap).
    fn update(&self, f: impl FnOnce(&mut OwnerMap) -> Vec<OwnerChange>) {
        let mut m = self.map.lock().expect("view lock");
        for c in f(&mut m) {
            let _ = self.tx.send(c);
        }
    }
}

/// The live view, kept by a task of its own (stopped on drop).
pub struct BlockOwners {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl BlockOwners {
    /// Watches then lists the blocks; returns once the first listing is in.
    pub async fn start(store: Arc<dyn Store>) -> Result<BlockOwners, IpamError> {
        let (watch, list) = watch_then_list(&*store, BLOCKS_PREFIX).await?;
        let shared = Arc::new(Shared {
            map: Mutex::new(OwnerMap::from_list(&list)),
            tx: broadcast::channel(1024).0,
        });
        let task = tokio::spawn(follow(
            store,
            BLOCKS_PREFIX,
            "block owners",
            watch,
            shared.clone(),
        ));
        Ok(BlockOwners { shared, task })
    }

    pub fn snapshot(&self) -> BTreeMap<IpNet, String> {
        self.shared.map.lock().expect("view lock").owners.clone()
    }

    pub fn blocks_of(&self, node: &str) -> Vec<IpNet> {
        self.shared.map.lock().expect("view lock").blocks_of(node)
    }

    /// The map now, and every change after it.
    pub fn subscribe(&self) -> (BTreeMap<IpNet, String>, BoxStream<'static, ViewUpdate>) {
        let (snap, rx) = self.shared.subscribe();
        let shared = self.shared.clone();
        let stream = futures::stream::unfold((rx, shared), |(mut rx, shared)| async move {
            match rx.recv().await {
                Ok(c) => Some((ViewUpdate::Change(c), (rx, shared))),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (snap, rx) = shared.subscribe();
                    Some((ViewUpdate::Resync(snap), (rx, shared)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        (snap, stream.boxed())
    }
}

impl Drop for BlockOwners {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower for Arc<Shared> {
    fn event(&mut self, ev: &Event) {
        self.update(|m| m.apply(ev));
    }

    fn relisted(&mut self, list: &[(String, Versioned)]) {
        let fresh = OwnerMap::from_list(list);
        self.update(|m| {
            let changes = m.diff(&fresh);
            *m = fresh;
            changes
        });
    }
}

//! Where the cluster's state lives: a key-value store with compare-and-swap transactions and
//! watches, implemented by etcd (clusters) and by an embedded single-file store (one machine,
//! the default and the lab).
//!
//! Everything above it (IPAM allocation, the agent's resource documents, node liveness) is
//! written as read → decide → conditional write, retried on conflict, so the two backends need
//! only the few operations of [`Store`]. Values are opaque bytes (JSON documents in practice);
//! revisions are per key and grow with every write, like etcd's `mod_revision`.
//!
//! Key layout (all under [`ROOT`]):
//! - `/tortie/v1/ipam/blocks/<cidr>`: one IPAM block (its affinity, allocations, attributes);
//!   `<cidr>` with `/` written as `-`, e.g. `198.19.0.64-26`.
//! - `/tortie/v1/ipam/handles/<handle id>`: which blocks hold addresses of a handle.
//! - `/tortie/v1/resources/<kind>/<name>`: a `projectcalico.org/v3` resource as JSON.
//! - `/tortie/v1/liveness/<node>`: a node's liveness (an etcd lease; a heartbeat time in the
//!   embedded store).

pub mod embedded;
pub mod etcd;
pub mod follow;
pub mod memory;

use async_trait::async_trait;
use std::time::Duration;

/// The prefix of every key tortie writes.
pub const ROOT: &str = "/tortie/v1/";

/// A value with the revision it was last written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    /// Changes with every write of the key; never 0 for an existing key.
    pub revision: u64,
}

/// A condition of a transaction on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent(String),
    /// The key exists at exactly this revision.
    Revision(String, u64),
}

/// A write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put(String, Vec<u8>),
    Delete(String),
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put { key: String, value: Versioned },
    Delete { key: String },
}

/// Why a store operation failed. A failed compare is not an error: see [`Store::txn`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the request (etcd down, file unreadable...).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored data is not what tortie writes (hand-edited, another program, corruption).
    #[error("corrupt store data at {key}: {what}")]
    Corrupt { key: String, what: String },
    /// The operation is refused as asked (empty key, outside ROOT, too large...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A stream of changes under a prefix, starting after the state a list returned.
pub type Watch = futures::stream::BoxStream<'static, Result<Event, StoreError>>;

#[async_trait]
pub trait Store: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Every key under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError>;

    /// Applies `writes` atomically if every compare holds; returns whether it did. Nothing is
    /// written when one fails, so a lost race never leaves half an update behind.
    async fn txn(&self, compares: &[Compare], writes: &[Write]) -> Result<bool, StoreError>;

    /// Changes under `prefix` from now on.
    async fn watch(&self, prefix: &str) -> Result<Watch, StoreError>;

    /// Marks `node` alive for `ttl` (etcd: a lease on its liveness key, kept alive; embedded:
    /// a heartbeat time). Call again before `ttl` runs out.
    async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<(), StoreError>;

    /// The nodes whose liveness has not run out.
    async fn live_nodes(&self) -> Result<Vec<String>, StoreError>;
}

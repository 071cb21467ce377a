//! tortie's IP address management, as Calico's IPAM (libcalico-go `lib/ipam`) does it:
//!
//! - [`pool`]: IP pools (Calico's IPPool) and their validation;
//! - [`block`]: node-affine blocks cut from pools, one JSON document each, with a FIFO of
//!   released addresses and per-allocation sequence numbers;
//! - [`handle`]: per-handle documents (which blocks hold a pod's or tunnel's addresses);
//! - [`allocator`]: allocation over a [`store::Store`], every write a compare-and-swap
//!   transaction of the block and the handles it touches; [`affinity`]: claiming and giving
//!   up blocks; [`release`]: releases by address and by handle;
//! - [`gc`]: release of leaked addresses and of empty blocks' affinities, time passed in;
//! - [`view`]: a watched map of which node owns which block, for the agent and felix;
//! - [`check`]: the consistency of blocks and handles (Calico's `ipam check`);
//! - [`node_allocations`]: the addresses allocated for one node (the CNI plugin's GC).

pub mod affinity;
pub mod allocator;
pub mod block;
pub mod check;
pub mod gc;
pub mod handle;
pub mod node_allocations;
pub mod pool;
pub mod release;
mod retry;
pub mod store;
pub mod view;

pub use affinity::AffinityRelease;
pub use allocator::{AllocRequest, Allocation, Allocator, IpamConfig};
pub use block::{Affinity, AffinityState, AllocAttrs, Block, Kind, TunnelType};
pub use handle::Handle;
pub use node_allocations::{NodeAllocation, NodeAllocations};
pub use pool::{AllowedUse, EncapMode, Family, Pool, PoolError, PoolSpec};
pub use release::{ReleaseOptions, ReleaseReport};

use store::StoreError;

/// Why an IPAM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document in the store is not what tortie writes; nothing was changed.
    #[error("corrupt IPAM document at {key}: {what}")]
    Corrupt { key: String, what: String },
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The request itself is refused (bad handle id, wrong family...).
    #[error("invalid IPAM request: {0}")]
    Invalid(String),
    /// No pool is enabled, of the family, allowed for the use and selecting the node.
    #[error("no usable {family} pool for {what} addresses on node {node}")]
    NoPools {
        family: Family,
        what: &'static str,
        node: String,
    },
    /// The node needs a new block but already has `maxBlocksPerHost` of them.
    #[error("node {node} needs a new block but already has {limit} (maxBlocksPerHost)")]
    BlockLimit { node: String, limit: u32 },
    /// Not enough free addresses (nothing was kept of a partial allocation).
    #[error(
        "no free address for {requested} {family} address(es) on node {node} (found {found}{})",
        if *.strict { "; strictAffinity forbids borrowing from other nodes' blocks" } else { "" }
    )]
    Exhausted {
        node: String,
        family: Family,
        requested: u32,
        found: u32,
        strict: bool,
    },
    /// Concurrent writers kept winning the compare-and-swap.
    #[error("gave up {what} after {attempts} conflicting attempts")]
    Contention { what: String, attempts: u32 },
}

//! Handle documents: which blocks hold how many addresses of one handle (Calico's
//! `IPAMHandle`), so that releasing a pod reads its blocks directly instead of scanning.
//!
//! Stored at `/tortie/v1/ipam/handles/<handle id>` and always written in the same transaction
//! as the blocks it counts, so the two never disagree:
//!
//! ```json
//! {"handle":"k8s-pod-network.4f1c","blocks":{"198.19.0.64/26":2}}
//! ```
//!
//! A handle id is opaque (Calico's conventions: `k8s-pod-network.<container id>` for a pod,
//! `ipip-tunnel-addr-<node>` for a node's IPIP address); it must not contain `/`.

use crate::IpamError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where handles live: `/tortie/v1/ipam/handles/`.
pub const HANDLES_PREFIX: &str = "/tortie/v1/ipam/handles/";

/// The key of a handle's document.
pub fn handle_key(handle: &str) -> String {
    format!("{HANDLES_PREFIX}{handle}")
}

/// Refuses handle ids that cannot be a key segment.
pub fn check_handle(handle: &str) -> Result<(), IpamError> {
    if handle.is_empty()
        || handle.len() > 512
        || handle.contains('/')
        || handle.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(IpamError::Invalid(format!(
            "handle {handle:?} must be 1 to 512 characters without '/', spaces or control characters"
        )));
    }
    Ok(())
}

/// A handle's document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handle {
    pub id: String,
    /// Addresses held, per block.
    pub blocks: BTreeMap<IpNet, u32>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    handle: String,
    #[serde(default)]
    blocks: BTreeMap<String, u32>,
}

impl Handle {
    pub fn new(id: &str) -> Handle {
        Handle {
            id: id.to_string(),
            blocks: BTreeMap::new(),
        }
    }

    pub fn total(&self) -> u64 {
        self.blocks.values().map(|n| u64::from(*n)).sum()
    }

    pub fn add(&mut self, block: IpNet, n: u32) {
        if n > 0 {
            *self.blocks.entry(block).or_insert(0) += n;
        }
    }

    /// Takes `n` from `block`'s count (saturating; a block at 0 is dropped).
    pub fn remove(&mut self, block: &IpNet, n: u32) {
        if let Some(c) = self.blocks.get_mut(block) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.blocks.remove(block);
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            handle: self.id.clone(),
            blocks: self
                .blocks
                .iter()
                .map(|(b, n)| (b.to_string(), *n))
                .collect(),
        };
        serde_json::to_vec(&wire).expect("a handle always serializes")
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Handle, IpamError> {
        let corrupt = |what: String| IpamError::Corrupt {
            key: key.to_string(),
            what,
        };
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a handle: {e}")))?;
        if key
            .strip_prefix(HANDLES_PREFIX)
            .is_some_and(|id| id != wire.handle)
        {
            return Err(corrupt(format!("holds handle {:?}", wire.handle)));
        }
        let mut h = Handle::new(&wire.handle);
        for (b, n) in wire.blocks {
            let net: IpNet = b
                .parse()
                .map_err(|_| corrupt(format!("block {b:?} is not a CIDR")))?;
            if net.trunc() != net {
                return Err(corrupt(format!("block {net} has host bits set")));
            }
            h.add(net, n);
        }
        Ok(h)
    }
}

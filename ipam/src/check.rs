//! Consistency of the IPAM documents (Calico's `calicoctl ipam check`): every handle's
//! counts match the blocks' allocations and the reverse, no two blocks overlap, every
//! document decodes.

use crate::IpamError;
use crate::block::{BLOCKS_PREFIX, Block};
use crate::handle::{HANDLES_PREFIX, Handle};
use crate::store::Store;
use ipnet::IpNet;
use std::collections::BTreeMap;

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub blocks: usize,
    pub handles: usize,
    /// Addresses in use across all blocks.
    pub in_use: usize,
    /// Empty when consistent.
    pub problems: Vec<String>,
}

/// Reads every block and handle and checks them against each other.
pub async fn check(store: &dyn Store) -> Result<CheckReport, IpamError> {
    let mut problems = Vec::new();
    let mut blocks = Vec::new();
    for (key, v) in store.list(BLOCKS_PREFIX).await? {
        match Block::decode(&key, &v.value) {
            Ok(b) => blocks.push(b),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut handles = Vec::new();
    for (key, v) in store.list(HANDLES_PREFIX).await? {
        match Handle::decode(&key, &v.value) {
            Ok(h) => handles.push(h),
            Err(e) => problems.push(e.to_string()),
        }
    }
    problems.extend(check_docs(&blocks, &handles));
    Ok(CheckReport {
        blocks: blocks.len(),
        handles: handles.len(),
        in_use: blocks.iter().map(Block::in_use).sum(),
        problems,
    })
}

/// The pure part of [`check`].
pub fn check_docs(blocks: &[Block], handles: &[Handle]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut sorted: Vec<&Block> = blocks.iter().collect();
    sorted.sort_by_key(|b| b.cidr);
    for w in sorted.windows(2) {
        if w[0].cidr.contains(&w[1].cidr) || w[1].cidr.contains(&w[0].cidr) {
            problems.push(format!("blocks {} and {} overlap", w[0].cidr, w[1].cidr));
        }
    }
    // handle -> block -> count, as the blocks say
    let mut from_blocks: BTreeMap<String, BTreeMap<IpNet, u32>> = BTreeMap::new();
    for b in blocks {
        for (h, n) in b.handle_counts() {
            from_blocks.entry(h).or_default().insert(b.cidr, n);
        }
    }
    let mut from_handles: BTreeMap<String, BTreeMap<IpNet, u32>> = BTreeMap::new();
    for h in handles {
        if h.blocks.is_empty() {
            problems.push(format!("handle {} holds no address but still exists", h.id));
        }
        from_handles.insert(h.id.clone(), h.blocks.clone());
    }
    for (h, per_block) in &from_blocks {
        match from_handles.get(h) {
            None => problems.push(format!(
                "handle {h} has addresses in {per_block:?} but no document"
            )),
            Some(doc) if doc != per_block => problems.push(format!(
                "handle {h}: its document counts {doc:?}, the blocks hold {per_block:?}"
            )),
            Some(_) => {}
        }
    }
    for (h, doc) in &from_handles {
        if !doc.is_empty() && !from_blocks.contains_key(h) {
            problems.push(format!(
                "handle {h} counts {doc:?} but no block holds its addresses"
            ));
        }
    }
    problems
}

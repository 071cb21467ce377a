//! An IPAM block: a block-sized slice of a pool, affine to one node, the unit of every
//! compare-and-swap (Calico's `AllocationBlock`).
//!
//! Stored as one JSON document at `/tortie/v1/ipam/blocks/<net>-<len>`, versioned by the
//! store's revision of that key:
//!
//! ```json
//! {"cidr":"198.19.0.64/26",
//!  "affinity":{"node":"node-1","state":"confirmed","claimed":1767225600},
//!  "seq":1767225600000000012,"next":3,
//!  "attrs":[{"handle":"k8s-pod-network.4f1c","pod":"web-0","namespace":"default","node":"node-1","kind":"workload"}],
//!  "allocs":[[0,0,1767225600000000004],[2,0,1767225600000000011]],
//!  "free":[[1,1767225600000000012]]}
//! ```
//!
//! - `seq` grows with every write of the block (Calico's `sequenceNumber`; it starts from the
//!   claim time in nanoseconds, so a block deleted and claimed again never reuses a number).
//! - `allocs`: `[ordinal, attribute index, seq at allocation]` for each address in use (Calico's
//!   `allocations` + `sequenceNumberForAllocation`); a release carrying a stale seq is refused.
//! - `next`: ordinals `next..size` were never handed out; `free`: released ordinals with the seq
//!   of their release, oldest first. Allocation takes never-used ordinals first, then the oldest
//!   release: Calico's FIFO `unallocated` queue, so a released address is reused as late as
//!   possible. Every ordinal below `next` is in exactly one of `allocs` and `free`.
//! - `attrs` is shared by the allocations of one handle (Calico's `attributes`), so a
//!   64-address block holding 64 pods stays a few kilobytes, and an empty one ~100 bytes.

use crate::IpamError;
use crate::pool::Family;
use crate::store::ROOT;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

/// Where blocks live: `/tortie/v1/ipam/blocks/`.
pub const BLOCKS_PREFIX: &str = "/tortie/v1/ipam/blocks/";

/// The key of a block: its CIDR with `/` written as `-`, e.g. `.../blocks/198.19.0.64-26`.
pub fn block_key(cidr: &IpNet) -> String {
    debug_assert!(BLOCKS_PREFIX.starts_with(ROOT));
    format!("{BLOCKS_PREFIX}{}-{}", cidr.network(), cidr.prefix_len())
}

/// The CIDR a block key names, if it is one.
pub fn block_cidr_from_key(key: &str) -> Option<IpNet> {
    let rest = key.strip_prefix(BLOCKS_PREFIX)?;
    let (addr, len) = rest.rsplit_once('-')?;
    let net = IpNet::new(addr.parse().ok()?, len.parse().ok()?).ok()?;
    (net.trunc() == net).then_some(net)
}

/// The state of a node's claim on a block (Calico's BlockAffinity states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    /// Claimed, not yet confirmed: treated as absent for ownership and routing.
    Pending,
    /// Owned: the node allocates from it and originates it.
    Confirmed,
    /// Being given up: nobody allocates from it or claims it until it is gone.
    PendingDeletion,
}

impl AffinityState {
    /// The transitions of `∅ → pending → confirmed → pendingDeletion → ∅` (a pending claim
    /// may also be abandoned through pendingDeletion).
    pub fn can_become(self, next: AffinityState) -> bool {
        use AffinityState::*;
        matches!(
            (self, next),
            (Pending, Confirmed) | (Confirmed, PendingDeletion) | (Pending, PendingDeletion)
        )
    }
}

/// Which node a block is affine to, and how far the claim has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affinity {
    pub node: String,
    pub state: AffinityState,
    /// When the node claimed the block, in seconds since the Unix epoch (Calico's
    /// `affinityClaimTime`; an empty block claimed within the last minute is not reclaimed).
    pub claimed: u64,
}

/// Which tunnel a node's tunnel address is for (Calico's `type` attribute values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TunnelType {
    #[serde(rename = "ipipTunnelAddress")]
    Ipip,
    #[serde(rename = "vxlanTunnelAddress")]
    Vxlan,
    #[serde(rename = "vxlanV6TunnelAddress")]
    VxlanV6,
}

impl TunnelType {
    pub fn family(self) -> Family {
        match self {
            TunnelType::Ipip | TunnelType::Vxlan => Family::V4,
            TunnelType::VxlanV6 => Family::V6,
        }
    }

    /// Calico's handle for a node's tunnel address: `ipip-tunnel-addr-<node>`,
    /// `vxlan-tunnel-addr-<node>`, `vxlan-v6-tunnel-addr-<node>`.
    pub fn handle(self, node: &str) -> String {
        let prefix = match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Vxlan => "vxlan",
            TunnelType::VxlanV6 => "vxlan-v6",
        };
        format!("{prefix}-tunnel-addr-{node}")
    }
}

/// What an address is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "workload")]
    Workload,
    #[serde(untagged)]
    Tunnel(TunnelType),
}

impl Kind {
    pub fn allowed_use(self) -> crate::pool::AllowedUse {
        match self {
            Kind::Workload => crate::pool::AllowedUse::Workload,
            Kind::Tunnel(_) => crate::pool::AllowedUse::Tunnel,
        }
    }
}

/// The attributes of an allocation: its handle and owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AllocAttrs {
    pub handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The node the allocation was made for (it differs from the block's when borrowed).
    pub node: String,
    pub kind: Kind,
}

/// One address in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index into the block's attributes.
    pub attr: u32,
    /// The block's seq when the address was handed out.
    pub seq: u64,
}

/// A block in memory (decoded from, and encoded to, its JSON document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub cidr: IpNet,
    pub affinity: Option<Affinity>,
    pub seq: u64,
    next: u32,
    attrs: Vec<AllocAttrs>,
    slots: BTreeMap<u32, Slot>,
    free: VecDeque<(u32, u64)>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    affinity: Option<Affinity>,
    seq: u64,
    next: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attrs: Vec<AllocAttrs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allocs: Vec<(u32, u32, u64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    free: Vec<(u32, u64)>,
}

impl Block {
    /// A new, empty block. `seq` should start from the claim time (nanoseconds) so that a
    /// recreated block never repeats the numbers of an earlier one.
    pub fn new(cidr: IpNet, affinity: Option<Affinity>, seq: u64) -> Block {
        let fam = Family::of(&cidr);
        assert!(
            cidr.trunc() == cidr && fam.block_sizes().contains(&cidr.prefix_len()),
            "{cidr} is not a block"
        );
        Block {
            cidr,
            affinity,
            seq,
            next: 0,
            attrs: Vec::new(),
            slots: BTreeMap::new(),
            free: VecDeque::new(),
        }
    }

    /// How many addresses the block holds (at most 4096: block sizes are /20../32, /116../128).
    pub fn size(&self) -> u32 {
        let fam = Family::of(&self.cidr);
        1u32 << (fam.max_prefix_len() - self.cidr.prefix_len())
    }

    /// The address at `ordinal` (`ordinal < size()`).
    pub fn addr(&self, ordinal: u32) -> IpAddr {
        assert!(
            ordinal < self.size(),
            "ordinal {ordinal} outside {}",
            self.cidr
        );
        match self.cidr {
            IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + ordinal).into()),
            IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + u128::from(ordinal)).into()),
        }
    }

    /// The ordinal of `addr`, if the block holds it.
    pub fn ordinal(&self, addr: &IpAddr) -> Option<u32> {
        if !self.cidr.contains(addr) {
            return None;
        }
        Some(match (self.cidr, addr) {
            (IpNet::V4(n), IpAddr::V4(a)) => u32::from(*a) - u32::from(n.network()),
            (IpNet::V6(n), IpAddr::V6(a)) => (u128::from(*a) - u128::from(n.network())) as u32,
            _ => return None,
        })
    }

    pub fn free_count(&self) -> u32 {
        self.size() - self.next + self.free.len() as u32
    }

    pub fn in_use(&self) -> usize {
        self.slots.len()
    }

    /// No address in use.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Affine to `node` with a confirmed claim.
    pub fn is_confirmed_for(&self, node: &str) -> bool {
        matches!(&self.affinity, Some(a) if a.node == node && a.state == AffinityState::Confirmed)
    }

    /// The node that owns the block for routing: the confirmed affinity's, if any.
    pub fn owner(&self) -> Option<&str> {
        match &self.affinity {
            Some(a) if a.state == AffinityState::Confirmed => Some(&a.node),
            _ => None,
        }
    }

    /// Moves the affinity to `next`, refusing any other transition than Calico's.
    pub fn set_affinity_state(&mut self, next: AffinityState) -> Result<(), IpamError> {
        let a = self.affinity.as_mut().ok_or_else(|| {
            IpamError::Invalid(format!(
                "block {} has no affinity to move to {next:?}",
                self.cidr
            ))
        })?;
        if !a.state.can_become(next) {
            return Err(IpamError::Invalid(format!(
                "block {}: affinity of {} cannot go from {:?} to {next:?}",
                self.cidr, a.node, a.state
            )));
        }
        a.state = next;
        self.seq += 1;
        Ok(())
    }

    /// Hands out up to `n` free addresses to `attrs`: never-used ordinals first, then the
    /// oldest release. Returns `(ordinal, seq)` of each; bumps the block's seq once.
    pub fn take(&mut self, n: u32, attrs: &AllocAttrs) -> Vec<(u32, u64)> {
        let n = n.min(self.free_count());
        if n == 0 {
            return Vec::new();
        }
        self.seq += 1;
        let seq = self.seq;
        let attr = self.attr_index(attrs);
        let mut out = Vec::with_capacity(n as usize);
        while (out.len() as u32) < n {
            let ordinal = if self.next < self.size() {
                self.next += 1;
                self.next - 1
            } else {
                self.free.pop_front().expect("free_count counted it").0
            };
            self.slots.insert(ordinal, Slot { attr, seq });
            out.push((ordinal, seq));
        }
        out
    }

    fn attr_index(&mut self, attrs: &AllocAttrs) -> u32 {
        if let Some(i) = self.attrs.iter().position(|a| a == attrs) {
            return i as u32;
        }
        self.attrs.push(attrs.clone());
        (self.attrs.len() - 1) as u32
    }

    /// The allocation at `ordinal`, if in use.
    pub fn slot(&self, ordinal: u32) -> Option<(Slot, &AllocAttrs)> {
        let s = *self.slots.get(&ordinal)?;
        Some((s, &self.attrs[s.attr as usize]))
    }

    /// Releases the addresses at `ordinals` (each must be in use); they go to the back of the
    /// free queue with one new seq. Returns how many each handle lost.
    pub fn release(&mut self, ordinals: &[u32]) -> HashMap<String, u32> {
        let mut by_handle = HashMap::new();
        if ordinals.is_empty() {
            return by_handle;
        }
        self.seq += 1;
        for &o in ordinals {
            if let Some(s) = self.slots.remove(&o) {
                *by_handle
                    .entry(self.attrs[s.attr as usize].handle.clone())
                    .or_insert(0) += 1;
                self.free.push_back((o, self.seq));
            }
        }
        self.drop_unused_attrs();
        by_handle
    }

    /// Removes attributes no allocation refers to, renumbering the rest.
    fn drop_unused_attrs(&mut self) {
        let mut used = vec![false; self.attrs.len()];
        for s in self.slots.values() {
            used[s.attr as usize] = true;
        }
        if used.iter().all(|u| *u) {
            return;
        }
        let mut remap = vec![0u32; self.attrs.len()];
        let mut kept = Vec::new();
        for (i, a) in std::mem::take(&mut self.attrs).into_iter().enumerate() {
            if used[i] {
                remap[i] = kept.len() as u32;
                kept.push(a);
            }
        }
        self.attrs = kept;
        for s in self.slots.values_mut() {
            s.attr = remap[s.attr as usize];
        }
    }

    /// The ordinals in use by `handle`.
    pub fn ordinals_of(&self, handle: &str) -> Vec<u32> {
        self.slots
            .iter()
            .filter(|(_, s)| self.attrs[s.attr as usize].handle == handle)
            .map(|(o, _)| *o)
            .collect()
    }

    /// Every allocation: `(ordinal, slot, attributes)`, by ordinal.
    pub fn allocations(&self) -> impl Iterator<Item = (u32, Slot, &AllocAttrs)> {
        self.slots
            .iter()
            .map(|(o, s)| (*o, *s, &self.attrs[s.attr as usize]))
    }

    /// How many addresses each handle holds here.
    pub fn handle_counts(&self) -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        for (_, _, a) in self.allocations() {
            *m.entry(a.handle.clone()).or_insert(0) += 1;
        }
        m
    }

    /// The order in which free ordinals will be handed out.
    pub fn free_order(&self) -> Vec<u32> {
        (self.next..self.size())
            .chain(self.free.iter().map(|(o, _)| *o))
            .collect()
    }

    /// The JSON document (attributes no allocation refers to are never kept: see `release`).
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            cidr: self.cidr.to_string(),
            affinity: self.affinity.clone(),
            seq: self.seq,
            next: self.next,
            attrs: self.attrs.clone(),
            allocs: self
                .slots
                .iter()
                .map(|(o, s)| (*o, s.attr, s.seq))
                .collect(),
            free: self.free.iter().copied().collect(),
        };
        serde_json::to_vec(&wire).expect("a block always serializes")
    }

    /// Decodes the document stored at `key`, checking everything an allocation relies on;
    /// anything else is [`IpamError::Corrupt`] naming the key.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Block, IpamError> {
        let corrupt = |what: String| IpamError::Corrupt {
            key: key.to_string(),
            what,
        };
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a block: {e}")))?;
        let cidr: IpNet = wire
            .cidr
            .parse()
            .map_err(|_| corrupt(format!("cidr {:?} is not a CIDR", wire.cidr)))?;
        let fam = Family::of(&cidr);
        if cidr.trunc() != cidr || !fam.block_sizes().contains(&cidr.prefix_len()) {
            return Err(corrupt(format!("cidr {cidr} is not a block")));
        }
        if let Some(k) = block_cidr_from_key(key) {
            if k != cidr {
                return Err(corrupt(format!("holds block {cidr}, not {k}")));
            }
        }
        let mut block = Block::new(cidr, wire.affinity, wire.seq);
        let size = block.size();
        if wire.next > size {
            return Err(corrupt(format!(
                "next {} beyond the block's {size}",
                wire.next
            )));
        }
        block.next = wire.next;
        block.attrs = wire.attrs;
        for (o, a, seq) in wire.allocs {
            if o >= wire.next {
                return Err(corrupt(format!(
                    "allocation of ordinal {o} not below next {}",
                    wire.next
                )));
            }
            if a as usize >= block.attrs.len() {
                return Err(corrupt(format!(
                    "ordinal {o} refers to missing attributes {a}"
                )));
            }
            if block.slots.insert(o, Slot { attr: a, seq }).is_some() {
                return Err(corrupt(format!("ordinal {o} allocated twice")));
            }
        }
        let mut free = wire.free;
        // Oldest release first; ties keep the stored order.
        free.sort_by_key(|(_, seq)| *seq);
        let mut seen = vec![false; size as usize];
        for &(o, _) in &free {
            if o >= wire.next || block.slots.contains_key(&o) || seen[o as usize] {
                return Err(corrupt(format!(
                    "free ordinal {o} is also in use, repeated, or never handed out"
                )));
            }
            seen[o as usize] = true;
        }
        if block.slots.len() + free.len() != wire.next as usize {
            return Err(corrupt(format!(
                "{} ordinals below next {} are neither allocated nor free",
                wire.next as usize - block.slots.len() - free.len(),
                wire.next
            )));
        }
        block.free = free.into();
        block.drop_unused_attrs();
        Ok(block)
    }
}

/// What allocation needs of a block to choose one (owner, room, seq), decoded without the
/// allocations and attributes: a listing of every block stays cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSummary {
    pub cidr: IpNet,
    pub affinity: Option<Affinity>,
    pub seq: u64,
    pub in_use: u32,
    pub free: u32,
}

#[derive(Deserialize)]
struct SummaryWire {
    cidr: String,
    #[serde(default)]
    affinity: Option<Affinity>,
    seq: u64,
    next: u32,
    #[serde(default)]
    allocs: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    free: Vec<serde::de::IgnoredAny>,
}

impl BlockSummary {
    /// Decodes the parts of a block document a choice needs, checking them like
    /// [`Block::decode`] does (the full decode checks the rest when the block is used).
    pub fn decode(key: &str, bytes: &[u8]) -> Result<BlockSummary, IpamError> {
        let corrupt = |what: String| IpamError::Corrupt {
            key: key.to_string(),
            what,
        };
        let w: SummaryWire =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a block: {e}")))?;
        let cidr: IpNet = w
            .cidr
            .parse()
            .map_err(|_| corrupt(format!("cidr {:?} is not a CIDR", w.cidr)))?;
        let fam = Family::of(&cidr);
        if cidr.trunc() != cidr
            || !fam.block_sizes().contains(&cidr.prefix_len())
            || block_cidr_from_key(key).is_some_and(|k| k != cidr)
        {
            return Err(corrupt(format!("cidr {cidr} is not the block of this key")));
        }
        let size = 1u32 << (fam.max_prefix_len() - cidr.prefix_len());
        if w.next > size || w.allocs.len() + w.free.len() != w.next as usize {
            return Err(corrupt("allocation counts do not add up".to_string()));
        }
        Ok(BlockSummary {
            cidr,
            affinity: w.affinity,
            seq: w.seq,
            in_use: w.allocs.len() as u32,
            free: size - w.next + w.free.len() as u32,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.in_use == 0
    }

    pub fn is_confirmed_for(&self, node: &str) -> bool {
        matches!(&self.affinity, Some(a) if a.node == node && a.state == AffinityState::Confirmed)
    }
}

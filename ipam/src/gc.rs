//! Garbage collection of IPAM state, as Calico's kube-controllers IPAM GC does it:
//!
//! - an allocation whose owner is gone (a pod no longer in the caller's set of pods; for a
//!   tunnel address, a node no longer live) is a *candidate* leak when first seen, and is
//!   released only when a later pass, at least the grace period after the first sighting,
//!   still finds it leaked (Calico's `leakGracePeriod`, default 15 minutes; 0 disables);
//!   allocations without pod attributes are assumed valid; the addresses of one handle are
//!   released all together or not at all; each release carries the allocation's handle and
//!   seq, so an address reused in the meantime is left alone;
//! - a block found empty on two passes at least the grace apart (with no write in between)
//!   loses its affinity: pending-deletion, then deleted, except that a live node keeps its last
//!   confirmed block (Calico's `releaseUnusedBlocks`); a gone node's non-empty block (its
//!   remaining addresses are other nodes' borrowed ones, or not yet collected) becomes
//!   affine to nobody after the same delay.
//!
//! The collector keeps what it saw between passes in memory (like Calico's controller), and
//! takes the time as a parameter: [`Gc::plan`] is pure, [`Gc::run`] reads and writes the store.

use crate::IpamError;
use crate::affinity::AffinityRelease;
use crate::allocator::Allocator;
use crate::block::{AffinityState, AllocAttrs, Block, Kind};
use crate::release::ReleaseOptions;
use crate::store::Store;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct GcConfig {
    /// How long an allocation must stay leaked before release; zero disables leak GC.
    pub leak_grace: Duration,
    /// How long a block must stay empty before it loses its affinity; zero disables it.
    pub empty_block_grace: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            leak_grace: Duration::from_secs(15 * 60),
            empty_block_grace: Duration::from_secs(15 * 60),
        }
    }
}

/// Who may own addresses now: the pods that exist (namespace, name) and the live nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOwners {
    pub pods: HashSet<(String, String)>,
    pub nodes: HashSet<String>,
    /// No list of pods is known (a collector without the Kubernetes API): a workload
    /// allocation is owned while its node is, and `pods` is not consulted.
    pub pods_unknown: bool,
}

impl LiveOwners {
    /// The given pods, and the nodes the store reports live.
    pub async fn with_live_nodes(
        store: &dyn Store,
        pods: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LiveOwners, IpamError> {
        Ok(LiveOwners {
            pods: pods.into_iter().collect(),
            nodes: store.live_nodes().await?.into_iter().collect(),
            pods_unknown: false,
        })
    }

    /// Owners known by node only: what is allocated to a node that is not in `nodes` (a
    /// deleted node) is leaked, workloads included; nothing else is.
    pub fn nodes_only(nodes: impl IntoIterator<Item = String>) -> LiveOwners {
        LiveOwners {
            pods: HashSet::new(),
            nodes: nodes.into_iter().collect(),
            pods_unknown: true,
        }
    }

    pub fn pod(mut self, namespace: &str, name: &str) -> Self {
        self.pods.insert((namespace.to_string(), name.to_string()));
        self
    }

    pub fn node(mut self, name: &str) -> Self {
        self.nodes.insert(name.to_string());
        self
    }

    /// Whether the allocation's owner exists (tunnel addresses: their node; workloads: their
    /// pod; a workload without pod attributes is assumed valid, as Calico does).
    pub fn owns(&self, a: &AllocAttrs) -> bool {
        match a.kind {
            Kind::Tunnel(_) => self.nodes.contains(&a.node),
            Kind::Workload if self.pods_unknown => self.nodes.contains(&a.node),
            Kind::Workload => match (&a.namespace, &a.pod) {
                (Some(ns), Some(pod)) => self.pods.contains(&(ns.clone(), pod.clone())),
                _ => true,
            },
        }
    }
}

/// What one pass decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Confirmed leaks, with handle and seq.
    pub release: Vec<ReleaseOptions>,
    /// Empty blocks whose affinity goes: (block, node, seq as seen).
    pub release_blocks: Vec<(IpNet, String, u64)>,
    /// Non-empty blocks of gone nodes that become affine to nobody.
    pub unaffine: Vec<(IpNet, String)>,
    /// Leaks seen but not (yet) released.
    pub candidates: usize,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub released: Vec<IpAddr>,
    pub candidates: usize,
    /// Confirmed leaks left alone because the address was reused in between.
    pub skipped: usize,
    pub blocks_released: Vec<IpNet>,
    pub blocks_unaffined: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LeakId {
    block: IpNet,
    ordinal: u32,
    seq: u64,
}

/// The collector and what it remembers between passes.
#[derive(Debug, Default)]
pub struct Gc {
    pub config: GcConfig,
    /// Candidate leak → when first seen.
    leaks: HashMap<LeakId, SystemTime>,
    /// Empty block → (first seen empty, its seq then).
    empty: HashMap<IpNet, (SystemTime, u64)>,
    /// Non-empty block of a gone node → first seen so.
    stranded: HashMap<IpNet, SystemTime>,
}

impl Gc {
    pub fn new(config: GcConfig) -> Gc {
        Gc {
            config,
            ..Gc::default()
        }
    }

    /// Decides one pass over `blocks` at `now` (pure apart from remembering sightings).
    pub fn plan(&mut self, blocks: &[Block], owners: &LiveOwners, now: SystemTime) -> GcPlan {
        let mut plan = GcPlan::default();
        let past = |first: SystemTime, grace: Duration| {
            !grace.is_zero() && now.duration_since(first).is_ok_and(|d| d >= grace)
        };

        // Leaks, all-or-none per handle.
        let mut seen = HashSet::new();
        let mut by_handle: HashMap<&str, (usize, Vec<ReleaseOptions>)> = HashMap::new();
        for b in blocks {
            for (ordinal, slot, a) in b.allocations() {
                let entry = by_handle.entry(a.handle.as_str()).or_default();
                entry.0 += 1;
                if owners.owns(a) || self.config.leak_grace.is_zero() {
                    continue;
                }
                let id = LeakId {
                    block: b.cidr,
                    ordinal,
                    seq: slot.seq,
                };
                seen.insert(id);
                let first = *self.leaks.entry(id).or_insert(now);
                if past(first, self.config.leak_grace) {
                    entry.1.push(ReleaseOptions {
                        addr: b.addr(ordinal),
                        handle: Some(a.handle.clone()),
                        seq: Some(slot.seq),
                    });
                } else {
                    plan.candidates += 1;
                }
            }
        }
        self.leaks.retain(|id, _| seen.contains(id));
        for (_, (all, confirmed)) in by_handle {
            if confirmed.len() == all {
                plan.release.extend(confirmed);
            } else {
                plan.candidates += confirmed.len();
            }
        }
        plan.release.sort_by_key(|o| o.addr);

        // Empty blocks and gone nodes' blocks.
        let mut sorted: Vec<&Block> = blocks.iter().collect();
        sorted.sort_by_key(|b| b.cidr);
        let mut confirmed: HashMap<&str, usize> = HashMap::new();
        for b in &sorted {
            if let Some(node) = b.owner() {
                *confirmed.entry(node).or_insert(0) += 1;
            }
        }
        let mut releasing: HashMap<&str, usize> = HashMap::new();
        let (mut empty_seen, mut stranded_seen) = (HashSet::new(), HashSet::new());
        for b in sorted {
            let Some(a) = &b.affinity else { continue };
            let live = owners.nodes.contains(&a.node);
            if b.is_empty() {
                empty_seen.insert(b.cidr);
                let e = self.empty.entry(b.cidr).or_insert((now, b.seq));
                if e.1 != b.seq {
                    *e = (now, b.seq);
                }
                if !past(e.0, self.config.empty_block_grace) {
                    continue;
                }
                if live && a.state == AffinityState::Confirmed {
                    let kept = confirmed[a.node.as_str()]
                        - releasing.get(a.node.as_str()).copied().unwrap_or(0);
                    if kept <= 1 {
                        continue; // a node keeps its last block
                    }
                    *releasing.entry(a.node.as_str()).or_insert(0) += 1;
                }
                plan.release_blocks.push((b.cidr, a.node.clone(), b.seq));
            } else if !live {
                stranded_seen.insert(b.cidr);
                let first = *self.stranded.entry(b.cidr).or_insert(now);
                if past(first, self.config.empty_block_grace) {
                    plan.unaffine.push((b.cidr, a.node.clone()));
                }
            }
        }
        self.empty.retain(|c, _| empty_seen.contains(c));
        self.stranded.retain(|c, _| stranded_seen.contains(c));
        plan
    }

    /// One pass: list the blocks, plan, release.
    pub async fn run(
        &mut self,
        alloc: &Allocator,
        owners: &LiveOwners,
        now: SystemTime,
    ) -> Result<GcReport, IpamError> {
        let (listed, _) = alloc.list_blocks().await?;
        let blocks: Vec<Block> = listed.into_iter().map(|l| l.block).collect();
        let plan = self.plan(&blocks, owners, now);
        let mut report = GcReport {
            candidates: plan.candidates,
            ..GcReport::default()
        };
        if !plan.release.is_empty() {
            let r = alloc.release_with(&plan.release).await?;
            tracing::info!(
                released = r.released.len(),
                "IPAM GC released leaked addresses"
            );
            report.skipped = r.mismatched.len();
            report.released = r.released;
        }
        for (cidr, node, seq) in plan.release_blocks {
            if alloc.release_affinity(cidr, &node, Some(seq), true).await?
                == AffinityRelease::Deleted
            {
                tracing::info!(%cidr, node, "IPAM GC released an empty block");
                self.empty.remove(&cidr);
                report.blocks_released.push(cidr);
            }
        }
        for (cidr, node) in plan.unaffine {
            match alloc.release_affinity(cidr, &node, None, false).await? {
                AffinityRelease::Unaffined => report.blocks_unaffined.push(cidr),
                AffinityRelease::Deleted => report.blocks_released.push(cidr),
                _ => {}
            }
            self.stranded.remove(&cidr);
        }
        Ok(report)
    }
}

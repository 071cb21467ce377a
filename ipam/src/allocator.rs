//! Allocation over a [`Store`], as Calico's `AutoAssign` does it (releases: [`crate::release`];
//! claiming and giving up blocks: [`crate::affinity`]).
//!
//! Every change is read → decide → one transaction conditioned on the revisions read (the
//! block and the handle documents it touches, written together), retried on conflict with
//! exponential backoff and jitter, a bounded number of times. A lost race therefore never
//! leaves a block without its handle count or the reverse.
//!
//! Allocation for a node ([`Allocator::allocate`]):
//! 1. from the node's confirmed blocks (remembered from earlier calls, then found by a listing);
//! 2. when they are full, claim a new block of an eligible pool: written as `pending` with a
//!    create-only transaction, then confirmed (Calico's two-phase claim); a node that crashed
//!    in between confirms its pending block the next time. The pool's blocks are walked from
//!    an offset hashed from the node name, so nodes claiming at once diverge. A node at
//!    `maxBlocksPerHost` (0 means Calico's default of 20) gets [`IpamError::BlockLimit`];
//! 3. when the pools have no unclaimed block, reclaim another node's empty block claimed more
//!    than a minute ago (Calico's `EmptyBlockMinReclaimAge`);
//! 4. with `strictAffinity` off, borrow from another node's block; the allocation says so
//!    ([`Allocation::borrowed`]), for the agent to advertise the single address.

use crate::IpamError;
use crate::block::{AffinityState, AllocAttrs, Block, Kind, TunnelType, block_key};
use crate::block::{BLOCKS_PREFIX, BlockSummary, block_cidr_from_key};
use crate::handle::{Handle, check_handle, handle_key};
use crate::pool::{AllowedUse, EncapMode, Family, Pool};
use crate::release::ReleaseOptions;
use crate::retry::Retry;
use crate::store::{Compare, Store, Versioned, Write};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Where the allocator gets the time (claim times, reclaim ages).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Calico's IPAMConfig, plus the retry policy.
#[derive(Debug, Clone)]
pub struct IpamConfig {
    /// Never allocate from another node's block (Calico's default: false).
    pub strict_affinity: bool,
    /// Blocks a node may claim; 0 means Calico's built-in default of 20.
    pub max_blocks_per_host: u32,
    /// Attempts of one conditional write before [`IpamError::Contention`] (Calico: 100).
    pub max_attempts: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// An empty block claimed less than this long ago is not reclaimed by another node.
    pub empty_block_min_reclaim_age: Duration,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            strict_affinity: false,
            max_blocks_per_host: 0,
            max_attempts: 100,
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(100),
            empty_block_min_reclaim_age: Duration::from_secs(60),
        }
    }
}

impl IpamConfig {
    /// The effective per-node block limit.
    pub fn block_limit(&self) -> u32 {
        if self.max_blocks_per_host == 0 {
            20
        } else {
            self.max_blocks_per_host
        }
    }
}

/// What to allocate.
#[derive(Debug, Clone)]
pub struct AllocRequest<'a> {
    pub handle: &'a str,
    pub node: &'a str,
    pub pod: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub kind: Kind,
    pub family: Family,
    pub count: u32,
    /// The pools the node may use (see [`crate::pool::eligible`]); disabled pools, pools of
    /// the other family and pools not allowing the use are skipped here too.
    pub pools: &'a [Pool],
}

impl<'a> AllocRequest<'a> {
    /// One IPv4 address for a pod.
    pub fn pod(
        handle: &'a str,
        node: &'a str,
        namespace: &'a str,
        pod: &'a str,
        pools: &'a [Pool],
    ) -> Self {
        AllocRequest {
            handle,
            node,
            pod: Some(pod),
            namespace: Some(namespace),
            kind: Kind::Workload,
            family: Family::V4,
            count: 1,
            pools,
        }
    }
}

/// An address handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub addr: IpAddr,
    pub block: IpNet,
    /// The block's seq at allocation, for a release that must not hit a later reuse.
    pub seq: u64,
    pub handle: String,
    /// From a block not affine to the requesting node: the agent advertises the /32 (/128).
    pub borrowed: bool,
}

impl Allocation {
    /// The address as a host route.
    pub fn host_prefix(&self) -> IpNet {
        IpNet::from(self.addr)
    }
}

/// A block as listed.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub block: Block,
    pub revision: u64,
}

enum Mode {
    Affine,
    Borrow,
}

enum Outcome {
    Took(Vec<Allocation>),
    Full,
    Unusable,
}

/// Allocates and releases addresses; cheap to share (`Arc`), safe to run in many tasks and
/// processes against one store.
pub struct Allocator {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: IpamConfig,
    pub(crate) clock: Clock,
    /// Node → its confirmed blocks as last seen, tried before listing every block.
    pub(crate) hints: Mutex<HashMap<String, Vec<IpNet>>>,
    /// One allocation at a time per node through this allocator, as Calico's CNI plugin holds
    /// a host-wide IPAM lock: concurrent requests of one node would only fight over its block.
    node_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Allocator {
    pub fn new(store: Arc<dyn Store>, config: IpamConfig) -> Allocator {
        Allocator::with_clock(store, config, Arc::new(SystemTime::now))
    }

    pub fn with_clock(store: Arc<dyn Store>, config: IpamConfig, clock: Clock) -> Allocator {
        Allocator {
            store,
            config,
            clock,
            hints: Mutex::new(HashMap::new()),
            node_locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &IpamConfig {
        &self.config
    }

    /// Allocates `count` addresses for the request's handle; all of them or none.
    pub async fn allocate(&self, req: &AllocRequest<'_>) -> Result<Vec<Allocation>, IpamError> {
        check_handle(req.handle)?;
        if req.node.is_empty() {
            return Err(IpamError::Invalid(
                "allocation for an empty node name".into(),
            ));
        }
        if req.count == 0 {
            return Ok(Vec::new());
        }
        let use_ = req.kind.allowed_use();
        let pools: Vec<&Pool> = req
            .pools
            .iter()
            .filter(|p| !p.disabled && p.family() == req.family && p.allows(use_))
            .collect();
        if pools.is_empty() {
            return Err(IpamError::NoPools {
                family: req.family,
                what: match use_ {
                    AllowedUse::Workload => "workload",
                    AllowedUse::Tunnel => "tunnel",
                },
                node: req.node.to_string(),
            });
        }
        let attrs = AllocAttrs {
            handle: req.handle.to_string(),
            pod: req.pod.map(str::to_string),
            namespace: req.namespace.map(str::to_string),
            node: req.node.to_string(),
            kind: req.kind,
        };
        let lock = {
            let mut locks = self.node_locks.lock().expect("node locks");
            locks.entry(req.node.to_string()).or_default().clone()
        };
        let _serial = lock.lock().await;
        let mut got = Vec::new();
        match self.allocate_inner(req, &pools, &attrs, &mut got).await {
            Ok(()) => Ok(got),
            Err(e) => {
                if !got.is_empty() {
                    let undo: Vec<ReleaseOptions> = got
                        .iter()
                        .map(|a| ReleaseOptions {
                            addr: a.addr,
                            handle: Some(a.handle.clone()),
                            seq: Some(a.seq),
                        })
                        .collect();
                    if let Err(u) = self.release_with(&undo).await {
                        tracing::warn!(handle = req.handle, error = %u, "could not undo a partial allocation; GC will release it");
                    }
                }
                Err(e)
            }
        }
    }

    async fn allocate_inner(
        &self,
        req: &AllocRequest<'_>,
        pools: &[&Pool],
        attrs: &AllocAttrs,
        got: &mut Vec<Allocation>,
    ) -> Result<(), IpamError> {
        let node = req.node;
        let want = |got: &Vec<Allocation>| req.count - got.len() as u32;
        let in_pools = |c: &IpNet| pools.iter().any(|p| p.holds_block(c));

        // 1. The blocks this node was last seen to own.
        for cidr in self.hints_for(node) {
            if want(got) == 0 {
                return Ok(());
            }
            if !in_pools(&cidr) {
                continue;
            }
            match self
                .assign_from(cidr, attrs, want(got), Mode::Affine)
                .await?
            {
                Outcome::Took(v) => got.extend(v),
                Outcome::Full => self.demote_hint(node, &cidr),
                Outcome::Unusable => self.forget_hint(node, &cidr),
            }
        }

        // 2./3. List every block: own blocks, a new claim, a reclaim.
        let mut retry = Retry::new(&self.config, "claiming a block");
        let scan = loop {
            if want(got) == 0 {
                return Ok(());
            }
            let (scan, corrupt) = self.summaries().await?;
            let mine: Vec<&BlockSummary> = scan
                .iter()
                .filter(|l| in_pools(&l.cidr))
                .filter(|l| l.affinity.as_ref().is_some_and(|a| a.node == node))
                .collect();
            // Blocks with room first: they are tried first next time.
            let mut hints: Vec<&&BlockSummary> =
                mine.iter().filter(|l| l.is_confirmed_for(node)).collect();
            hints.sort_by_key(|l| l.free == 0);
            self.set_hints(node, hints.iter().map(|l| l.cidr).collect());
            let mut progress = false;
            for l in mine
                .iter()
                .filter(|l| l.is_confirmed_for(node) && l.free > 0)
            {
                if want(got) == 0 {
                    return Ok(());
                }
                if let Outcome::Took(v) = self
                    .assign_from(l.cidr, attrs, want(got), Mode::Affine)
                    .await?
                {
                    got.extend(v);
                    progress = true;
                }
            }
            if want(got) == 0 {
                return Ok(());
            }
            // A claim of this node left pending (crash, or another process of the node).
            for l in mine.iter().filter(|l| {
                l.affinity
                    .as_ref()
                    .is_some_and(|a| a.state == AffinityState::Pending)
            }) {
                progress |= self.confirm(l.cidr, node).await?;
            }
            if progress {
                continue;
            }
            let owned = mine
                .iter()
                .filter(|l| {
                    l.affinity
                        .as_ref()
                        .is_some_and(|a| a.state != AffinityState::PendingDeletion)
                })
                .count() as u32;
            let limit = self.config.block_limit();
            if owned >= limit {
                return Err(IpamError::BlockLimit {
                    node: node.to_string(),
                    limit,
                });
            }
            let existing: HashSet<IpNet> = scan.iter().map(|l| l.cidr).chain(corrupt).collect();
            if let Some(cidr) = find_unclaimed(pools, &existing, node) {
                if !self.claim(cidr, node).await? {
                    retry.conflict().await?;
                }
                continue;
            }
            if self.reclaim_one(&scan, node, &in_pools).await? {
                continue;
            }
            break scan;
        };

        // 4. Borrow from other nodes' blocks.
        if self.config.strict_affinity {
            return Err(self.exhausted(req, got, true));
        }
        let mut lenders: Vec<&BlockSummary> = scan
            .iter()
            .filter(|l| in_pools(&l.cidr) && l.free > 0)
            .filter(|l| match &l.affinity {
                None => true,
                Some(a) => a.state == AffinityState::Confirmed && a.node != node,
            })
            .collect();
        if !lenders.is_empty() {
            let start = (fnv1a(node) % lenders.len() as u64) as usize;
            lenders.rotate_left(start);
        }
        for l in lenders {
            if want(got) == 0 {
                break;
            }
            if let Outcome::Took(v) = self
                .assign_from(l.cidr, attrs, want(got), Mode::Borrow)
                .await?
            {
                got.extend(v);
            }
        }
        if want(got) > 0 {
            return Err(self.exhausted(req, got, false));
        }
        Ok(())
    }

    fn exhausted(&self, req: &AllocRequest<'_>, got: &[Allocation], strict: bool) -> IpamError {
        IpamError::Exhausted {
            node: req.node.to_string(),
            family: req.family,
            requested: req.count,
            found: got.len() as u32,
            strict,
        }
    }

    /// Takes up to `want` addresses from one block, with the handle, in one transaction.
    async fn assign_from(
        &self,
        cidr: IpNet,
        attrs: &AllocAttrs,
        want: u32,
        mode: Mode,
    ) -> Result<Outcome, IpamError> {
        let key = block_key(&cidr);
        let hkey = handle_key(&attrs.handle);
        let node = attrs.node.as_str();
        let mut retry = Retry::new(&self.config, "allocating from a block");
        loop {
            let (b, h) = futures::join!(self.store.get(&key), self.store.get(&hkey));
            let Some(bv) = b? else {
                return Ok(Outcome::Unusable);
            };
            let mut block = Block::decode(&key, &bv.value)?;
            let usable = match mode {
                Mode::Affine => block.is_confirmed_for(node),
                Mode::Borrow => block
                    .affinity
                    .as_ref()
                    .is_none_or(|a| a.state == AffinityState::Confirmed),
            };
            if !usable {
                return Ok(Outcome::Unusable);
            }
            let taken = block.take(want, attrs);
            if taken.is_empty() {
                return Ok(Outcome::Full);
            }
            let hv = h?;
            let mut handle = match &hv {
                Some(v) => Handle::decode(&hkey, &v.value)?,
                None => Handle::new(&attrs.handle),
            };
            handle.add(cidr, taken.len() as u32);
            let compares = [
                Compare::Revision(key.clone(), bv.revision),
                expect(&hkey, &hv),
            ];
            let writes = [
                Write::Put(key.clone(), block.encode()),
                Write::Put(hkey.clone(), handle.encode()),
            ];
            if self.store.txn(&compares, &writes).await? {
                let borrowed = block.affinity.as_ref().is_none_or(|a| a.node != node);
                return Ok(Outcome::Took(
                    taken
                        .into_iter()
                        .map(|(o, seq)| Allocation {
                            addr: block.addr(o),
                            block: cidr,
                            seq,
                            handle: attrs.handle.clone(),
                            borrowed,
                        })
                        .collect(),
                ));
            }
            retry.conflict().await?;
        }
    }

    /// The addresses `handle` holds.
    pub async fn addresses(&self, handle: &str) -> Result<Vec<Allocation>, IpamError> {
        check_handle(handle)?;
        let hkey = handle_key(handle);
        let Some(hv) = self.store.get(&hkey).await? else {
            return Ok(Vec::new());
        };
        let h = Handle::decode(&hkey, &hv.value)?;
        let mut out = Vec::new();
        for cidr in h.blocks.keys() {
            let key = block_key(cidr);
            let Some(bv) = self.store.get(&key).await? else {
                continue;
            };
            let block = Block::decode(&key, &bv.value)?;
            for (o, s, a) in block.allocations().filter(|(_, _, a)| a.handle == handle) {
                out.push(Allocation {
                    addr: block.addr(o),
                    block: *cidr,
                    seq: s.seq,
                    handle: handle.to_string(),
                    borrowed: block.affinity.as_ref().is_none_or(|b| b.node != a.node),
                });
            }
        }
        Ok(out)
    }

    /// The node's tunnel address, allocated once under Calico's handle for it
    /// (`ipip-tunnel-addr-<node>`...), from the pools with that encapsulation enabled. An
    /// address kept from before is returned again while its pool is still eligible.
    pub async fn allocate_tunnel(
        &self,
        node: &str,
        tunnel: TunnelType,
        pools: &[Pool],
    ) -> Result<Allocation, IpamError> {
        let handle = tunnel.handle(node);
        let usable: Vec<Pool> = pools
            .iter()
            .filter(|p| match tunnel {
                TunnelType::Ipip => p.ipip_mode != EncapMode::Never,
                TunnelType::Vxlan | TunnelType::VxlanV6 => p.vxlan_mode != EncapMode::Never,
            })
            .cloned()
            .collect();
        let existing = self.addresses(&handle).await?;
        if let [one] = existing.as_slice() {
            if usable
                .iter()
                .any(|p| !p.disabled && p.allows(AllowedUse::Tunnel) && p.contains(&one.addr))
            {
                return Ok(one.clone());
            }
        }
        if !existing.is_empty() {
            self.release_by_handle(&handle).await?;
        }
        let req = AllocRequest {
            handle: &handle,
            node,
            pod: None,
            namespace: None,
            kind: Kind::Tunnel(tunnel),
            family: tunnel.family(),
            count: 1,
            pools: &usable,
        };
        Ok(self.allocate(&req).await?.remove(0))
    }

    /// Every block, decoded, and the CIDRs of those that did not decode (logged, skipped).
    pub async fn list_blocks(&self) -> Result<(Vec<Listed>, Vec<IpNet>), IpamError> {
        let mut out = Vec::new();
        let mut corrupt = Vec::new();
        for (key, v) in self.store.list(BLOCKS_PREFIX).await? {
            match Block::decode(&key, &v.value) {
                Ok(block) => out.push(Listed {
                    key,
                    block,
                    revision: v.revision,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a block that does not decode");
                    corrupt.extend(block_cidr_from_key(&key));
                }
            }
        }
        Ok((out, corrupt))
    }

    /// Every block's summary, and the CIDRs of those that did not decode (logged, skipped).
    pub async fn summaries(&self) -> Result<(Vec<BlockSummary>, Vec<IpNet>), IpamError> {
        let mut out = Vec::new();
        let mut corrupt = Vec::new();
        for (key, v) in self.store.list(BLOCKS_PREFIX).await? {
            match BlockSummary::decode(&key, &v.value) {
                Ok(s) => out.push(s),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a block that does not decode");
                    corrupt.extend(block_cidr_from_key(&key));
                }
            }
        }
        Ok((out, corrupt))
    }

    /// A full hinted block goes to the back of the node's hints.
    fn demote_hint(&self, node: &str, cidr: &IpNet) {
        if let Some(h) = self.hints.lock().expect("hints lock").get_mut(node) {
            if let Some(i) = h.iter().position(|c| c == cidr) {
                let c = h.remove(i);
                h.push(c);
            }
        }
    }

    fn hints_for(&self, node: &str) -> Vec<IpNet> {
        self.hints
            .lock()
            .expect("hints lock")
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    fn set_hints(&self, node: &str, blocks: Vec<IpNet>) {
        self.hints
            .lock()
            .expect("hints lock")
            .insert(node.to_string(), blocks);
    }

    pub(crate) fn forget_hint(&self, node: &str, cidr: &IpNet) {
        if let Some(h) = self.hints.lock().expect("hints lock").get_mut(node) {
            h.retain(|c| c != cidr);
        }
    }
}

/// The condition that a document is still as read.
pub(crate) fn expect(key: &str, read: &Option<Versioned>) -> Compare {
    match read {
        Some(v) => Compare::Revision(key.to_string(), v.revision),
        None => Compare::Absent(key.to_string()),
    }
}

/// The first block of the pools no block document exists for, each pool walked from an
/// offset hashed from the node name (Calico seeds its block generator with the host name).
fn find_unclaimed(pools: &[&Pool], existing: &HashSet<IpNet>, node: &str) -> Option<IpNet> {
    for pool in pools {
        let n = pool.block_count();
        let taken = existing.iter().filter(|c| pool.holds_block(c)).count() as u128;
        let start = u128::from(fnv1a(node)) % n;
        // Among taken + 1 consecutive blocks one is free, unless the pool is full.
        for k in 0..n.min(taken + 1) {
            let cidr = pool.nth_block((start + k) % n);
            if !existing.contains(&cidr) {
                return Some(cidr);
            }
        }
    }
    None
}

pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

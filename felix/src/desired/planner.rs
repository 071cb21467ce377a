//! The incremental desired state: [`Planner`] holds the inputs and the [`DesiredState`] they
//! give, and updates both for one changed best route, block set, pool set or node in time
//! proportional to what the change touches, reporting the keys that changed ([`Changes`]) so
//! that the reconciler diffs only those (`Felix::apply_changes`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::compute::{Rules, normalize_pools, vtep_owner};
use super::mac::{Mac, vtep_mac};
use super::types::*;

/// The keys of the desired state that changed since the last [`Planner::take_changes`]: what
/// the reconciler has to look at. A key may be listed although it changed back (the diff of
/// that key is then empty); a key that changed is always listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Route prefixes (added, removed or changed).
    pub routes: BTreeSet<IpNet>,
    /// `(device, address)` of neighbour entries.
    pub neighbours: BTreeSet<(Device, IpAddr)>,
    /// `(device, MAC)` of FDB entries.
    pub fdb: BTreeSet<(Device, Mac)>,
    /// [`DesiredState::tunnels`] changed.
    pub tunnels: bool,
    /// [`DesiredState::nat`] changed.
    pub nat: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.neighbours.is_empty()
            && self.fdb.is_empty()
            && !self.tunnels
            && !self.nat
    }

    /// Adds `other`'s keys (changes of a later update).
    pub fn merge(&mut self, other: Changes) {
        self.routes.extend(other.routes);
        self.neighbours.extend(other.neighbours);
        self.fdb.extend(other.fdb);
        self.tunnels |= other.tunnels;
        self.nat |= other.nat;
    }

    /// Every key in which `a` and `b` differ (a full comparison, O(n)).
    pub fn between(a: &DesiredState, b: &DesiredState) -> Changes {
        let mut c = Changes::default();
        let (mut x, mut y) = (
            a.fib.routes.iter().peekable(),
            b.fib.routes.iter().peekable(),
        );
        loop {
            match (x.peek(), y.peek()) {
                (None, None) => break,
                (Some((p, _)), None) => {
                    c.routes.insert(**p);
                    x.next();
                }
                (None, Some((q, _))) => {
                    c.routes.insert(**q);
                    y.next();
                }
                (Some((p, r)), Some((q, s))) => match p.cmp(q) {
                    std::cmp::Ordering::Less => {
                        c.routes.insert(**p);
                        x.next();
                    }
                    std::cmp::Ordering::Greater => {
                        c.routes.insert(**q);
                        y.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if r != s {
                            c.routes.insert(**p);
                        }
                        x.next();
                        y.next();
                    }
                },
            }
        }
        c.neighbours = a
            .fib
            .neighbours
            .symmetric_difference(&b.fib.neighbours)
            .map(|n| (n.device, n.addr))
            .collect();
        c.fdb = a
            .fib
            .fdb
            .symmetric_difference(&b.fib.fdb)
            .map(|e| (e.device, e.mac))
            .collect();
        c.tunnels = a.tunnels != b.tunnels;
        c.nat = a.nat != b.nat;
        c
    }
}

/// The VTEP MAC collision of one `(device, MAC)`: who lost it, and the problems reported.
#[derive(Clone, Debug, Default)]
struct Collision {
    losers: Vec<IpAddr>,
    problems: Vec<Problem>,
}

/// One best route as the planner keeps it: next hops sorted and without duplicates, the
/// metric canonical ([`canonical_metric`]).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Best {
    next_hops: Vec<IpAddr>,
    metric: u32,
}

impl Best {
    fn new(prefix: &IpNet, mut next_hops: Vec<IpAddr>, priority: Option<u32>) -> Best {
        next_hops.sort_unstable();
        next_hops.dedup();
        Best {
            next_hops,
            metric: canonical_metric(prefix, priority.unwrap_or(0)),
        }
    }
}

/// Inputs and desired state, kept in step.
///
/// * [`Planner::new`] computes everything once (this is what [`super::compute`] does).
/// * [`Planner::set_route`] / [`Planner::remove_route`]: the route's old decision is retracted
///   (its problems, its references to VXLAN remotes) and the new one asserted; a VXLAN remote
///   whose reference count goes from 0 to 1 or back gets or loses its neighbour and FDB entry,
///   and its MAC's collision status is settled again; then the route is finished. Cost: one
///   route decision and a few map operations, O(log n).
/// * A VTEP that starts or stops losing its MAC to another (a collision appears or goes,
///   practically never: IPv6 MACs are a 32-bit hash) changes every route through it; those are
///   found by a scan of the best routes, O(n).
/// * [`Planner::set_blocks`]: the same per prefix of the symmetric difference.
/// * [`Planner::set_pools`], [`Planner::set_node`], [`Planner::set_vxlan`]: every route may
///   change; a full recompute, and the changed keys from a full comparison, O(n).
///
/// Every problem is owned by one source (a pool, a route's prefix, a MAC), so it is removed
/// exactly when its source changes.
#[derive(Clone, Debug)]
pub struct Planner {
    rules: Rules,
    /// Our own blocks, canonical.
    blocks: BTreeSet<IpNet>,
    /// The best routes, by canonical prefix.
    best: BTreeMap<IpNet, Best>,
    /// VXLAN remotes referenced by the decided next hops of some route, with their count.
    refs: HashMap<(Device, IpAddr), u32>,
    /// The referenced VXLAN remotes per `(device, VTEP MAC)`.
    by_mac: HashMap<(Device, Mac), BTreeSet<IpAddr>>,
    /// `(device, MAC)`s with a collision.
    collisions: HashMap<(Device, Mac), Collision>,
    /// The remotes that lost their MAC: their VXLAN next hops are not programmed.
    dropped: HashSet<(Device, IpAddr)>,
    state: DesiredState,
    changes: Changes,
}

impl Planner {
    /// The full computation, once.
    pub fn new(inputs: &Inputs) -> Planner {
        let rules = Rules::new(
            inputs.node.clone(),
            normalize_pools(&inputs.pools),
            inputs.vxlan,
        );
        let mut problems: BTreeSet<Problem> = rules.pool_problems().collect();
        let blocks: BTreeSet<IpNet> = inputs.blocks.iter().map(|b| b.trunc()).collect();
        let mut routes: BTreeMap<IpNet, Route> = blocks
            .iter()
            .filter_map(|b| Rules::own_block_route(b).map(|r| (*b, r)))
            .collect();

        // Best routes, merged per canonical prefix: every next hop, the lowest priority.
        let mut merged: BTreeMap<IpNet, (Vec<IpAddr>, Option<u32>)> = BTreeMap::new();
        for r in &inputs.routes {
            let (nhs, priority) = merged.entry(r.prefix.trunc()).or_default();
            nhs.extend(r.next_hops.iter().copied());
            *priority = match (*priority, r.priority) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let best: BTreeMap<IpNet, Best> = merged
            .into_iter()
            .map(|(prefix, (nhs, priority))| (prefix, Best::new(&prefix, nhs, priority)))
            .collect();

        let mut p = Planner {
            state: DesiredState {
                tunnels: rules.tunnels(),
                nat: rules.nat(),
                ..DesiredState::default()
            },
            rules,
            blocks,
            best: BTreeMap::new(),
            refs: HashMap::new(),
            by_mac: HashMap::new(),
            collisions: HashMap::new(),
            dropped: HashSet::new(),
            changes: Changes::default(),
        };

        // First pass: a decision for every remote route, counting the VXLAN remotes.
        let mut decided: Vec<(IpNet, Vec<NextHop>, u32)> = Vec::with_capacity(best.len());
        let mut dirty = Vec::new();
        for (prefix, b) in &best {
            if p.blocks.contains(prefix) {
                continue; // our block: the blackhole (or nothing, for a /32 or /128) stands
            }
            let d = p.rules.decide(*prefix, &b.next_hops, |pr| {
                problems.insert(pr);
            });
            p.count(&d, 1, &mut dirty);
            decided.push((*prefix, d, b.metric));
        }
        p.best = best;
        p.state.problems = problems;
        // VTEP MAC collisions, and the neighbour and FDB entries of the remotes that keep theirs.
        p.settle(dirty);
        // Second pass: the routes.
        for (prefix, d, metric) in decided {
            match p.rules.finish(prefix, d, metric, &p.dropped) {
                Some(r) => {
                    routes.insert(prefix, r);
                }
                None => {
                    p.state.problems.insert(Problem::NoUsableNextHop { prefix });
                }
            }
        }
        p.state.fib.routes = routes;
        p.changes = Changes::default();
        p
    }

    /// The desired state of the current inputs (always equal to [`super::compute`] of
    /// [`Planner::inputs`]).
    pub fn state(&self) -> &DesiredState {
        &self.state
    }

    pub fn into_state(self) -> DesiredState {
        self.state
    }

    /// The current inputs, canonical (one route per prefix, sorted next hops, a priority only
    /// where the metric is not the kernel's default, canonical blocks and pools).
    pub fn inputs(&self) -> Inputs {
        Inputs {
            node: self.rules.node.clone(),
            pools: self.rules.pools.clone(),
            blocks: self.blocks.iter().copied().collect(),
            routes: self
                .best
                .iter()
                .map(|(p, b)| BestRoute {
                    prefix: *p,
                    next_hops: b.next_hops.clone(),
                    priority: (b.metric != 0).then_some(b.metric),
                })
                .collect(),
            vxlan: self.rules.vxlan,
        }
    }

    /// The next hops of the best route for `prefix`, if there is one.
    pub fn route(&self, prefix: &IpNet) -> Option<&[IpAddr]> {
        self.best
            .get(&prefix.trunc())
            .map(|b| b.next_hops.as_slice())
    }

    /// The canonical metric ([`canonical_metric`]) of the best route for `prefix`, if there
    /// is one.
    pub fn metric(&self, prefix: &IpNet) -> Option<u32> {
        self.best.get(&prefix.trunc()).map(|b| b.metric)
    }

    /// The keys changed since the last call (or since [`Planner::new`]).
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// The keys changed so far, not taken yet.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Sets the best route for `prefix` (replacing any; host bits are ignored), with its
    /// [`BestRoute::priority`] (`None`: the kernel's default metric). No next hop at all is a
    /// route with no usable next hop ([`Problem::NoUsableNextHop`]), as in
    /// [`Inputs::routes`]; [`Planner::remove_route`] withdraws it.
    pub fn set_route(
        &mut self,
        prefix: IpNet,
        next_hops: impl IntoIterator<Item = IpAddr>,
        priority: Option<u32>,
    ) {
        let prefix = prefix.trunc();
        let best = Best::new(&prefix, next_hops.into_iter().collect(), priority);
        if self.best.get(&prefix) == Some(&best) {
            return;
        }
        let mut dirty = Vec::new();
        self.retract(prefix, &mut dirty);
        self.best.insert(prefix, best);
        self.assert(prefix, &mut dirty);
        self.settle_and_finish(dirty, [prefix]);
    }

    /// Withdraws the best route for `prefix`.
    pub fn remove_route(&mut self, prefix: IpNet) {
        let prefix = prefix.trunc();
        if !self.best.contains_key(&prefix) {
            return;
        }
        let mut dirty = Vec::new();
        self.retract(prefix, &mut dirty);
        self.best.remove(&prefix);
        self.settle_and_finish(dirty, [prefix]);
    }

    /// Replaces this node's affine blocks.
    pub fn set_blocks(&mut self, blocks: impl IntoIterator<Item = IpNet>) {
        let new: BTreeSet<IpNet> = blocks.into_iter().map(|b| b.trunc()).collect();
        let touched: Vec<IpNet> = self.blocks.symmetric_difference(&new).copied().collect();
        if touched.is_empty() {
            return;
        }
        let mut dirty = Vec::new();
        for p in &touched {
            self.retract(*p, &mut dirty);
        }
        self.blocks = new;
        for p in &touched {
            self.assert(*p, &mut dirty);
        }
        self.settle_and_finish(dirty, touched);
    }

    /// Replaces the pools: a full recompute.
    pub fn set_pools(&mut self, pools: Vec<Pool>) {
        let pools = normalize_pools(&pools);
        if pools != self.rules.pools {
            let inputs = Inputs {
                pools,
                ..self.inputs()
            };
            self.rebuild(&inputs);
        }
    }

    /// Replaces this node's description (address, prefix, underlay): a full recompute.
    pub fn set_node(&mut self, node: LocalNode) {
        if node != self.rules.node {
            let inputs = Inputs {
                node,
                ..self.inputs()
            };
            self.rebuild(&inputs);
        }
    }

    /// Replaces the VXLAN settings: a full recompute.
    pub fn set_vxlan(&mut self, vxlan: VxlanSettings) {
        if vxlan != self.rules.vxlan {
            let inputs = Inputs {
                vxlan,
                ..self.inputs()
            };
            self.rebuild(&inputs);
        }
    }

    fn rebuild(&mut self, inputs: &Inputs) {
        let mut next = Planner::new(inputs);
        let mut changes = std::mem::take(&mut self.changes);
        changes.merge(Changes::between(&self.state, &next.state));
        next.changes = changes;
        *self = next;
    }

    /// The decided next hops of `prefix` (`None` for one of our blocks or no best route).
    fn decision(&self, prefix: IpNet, problems: impl FnMut(Problem)) -> Option<Vec<NextHop>> {
        decision(&self.rules, &self.blocks, &self.best, prefix, problems)
    }

    /// Removes what the current decision for `prefix` contributes: its problems and its
    /// references to VXLAN remotes.
    fn retract(&mut self, prefix: IpNet, dirty: &mut Vec<(Device, IpAddr)>) {
        let problems = &mut self.state.problems;
        let d = decision(&self.rules, &self.blocks, &self.best, prefix, |p| {
            problems.remove(&p);
        });
        if let Some(d) = d {
            self.count(&d, -1, dirty);
        }
    }

    /// Adds what the current decision for `prefix` contributes.
    fn assert(&mut self, prefix: IpNet, dirty: &mut Vec<(Device, IpAddr)>) {
        let problems = &mut self.state.problems;
        let d = decision(&self.rules, &self.blocks, &self.best, prefix, |p| {
            problems.insert(p);
        });
        if let Some(d) = d {
            self.count(&d, 1, dirty);
        }
    }

    /// Adjusts the reference counts of the VXLAN remotes of `nhs`; a remote that appears or
    /// goes is `dirty` (its MAC group and its entries are settled again).
    fn count(&mut self, nhs: &[NextHop], delta: i32, dirty: &mut Vec<(Device, IpAddr)>) {
        for nh in nhs {
            if !matches!(nh.device, Device::Vxlan | Device::VxlanV6) {
                continue;
            }
            let key = (nh.device, nh.gateway);
            let group = (nh.device, vtep_mac(nh.gateway));
            if delta > 0 {
                let n = self.refs.entry(key).or_insert(0);
                *n += 1;
                if *n == 1 {
                    self.by_mac.entry(group).or_default().insert(nh.gateway);
                    dirty.push(key);
                }
            } else {
                let n = self
                    .refs
                    .get_mut(&key)
                    .expect("retracting a counted remote");
                *n -= 1;
                if *n == 0 {
                    self.refs.remove(&key);
                    if let Some(g) = self.by_mac.get_mut(&group) {
                        g.remove(&nh.gateway);
                        if g.is_empty() {
                            self.by_mac.remove(&group);
                        }
                    }
                    dirty.push(key);
                }
            }
        }
    }

    /// Settles the MAC groups of the `dirty` remotes (collisions, their problems, who is
    /// dropped) and their neighbour and FDB entries. Returns the remotes whose dropped status
    /// flipped: every route through them changes.
    fn settle(&mut self, dirty: Vec<(Device, IpAddr)>) -> Vec<(Device, IpAddr)> {
        let mut flipped = Vec::new();
        let mut groups: BTreeMap<(Device, Mac), Vec<IpAddr>> = BTreeMap::new();
        for (dev, a) in dirty {
            groups.entry((dev, vtep_mac(a))).or_default().push(a);
        }
        for ((dev, mac), touched) in groups {
            let key = (dev, mac);
            let own = self.rules.own_addr(match dev {
                Device::VxlanV6 => Family::V6,
                _ => Family::V4,
            });
            let new = match self.by_mac.get(&key) {
                Some(g) => {
                    let (kept, losers) = vtep_owner(own, mac, g);
                    let problems = losers
                        .iter()
                        .map(|&l| Problem::VtepMacCollision {
                            mac,
                            kept,
                            dropped: l,
                        })
                        .collect();
                    Collision { losers, problems }
                }
                None => Collision::default(),
            };
            let old = self.collisions.remove(&key).unwrap_or_default();
            if old.problems != new.problems {
                for p in &old.problems {
                    self.state.problems.remove(p);
                }
                self.state.problems.extend(new.problems.iter().cloned());
            }
            for a in &old.losers {
                if !new.losers.contains(a) {
                    self.dropped.remove(&(dev, *a));
                    flipped.push((dev, *a));
                }
            }
            for a in &new.losers {
                if !old.losers.contains(a) {
                    self.dropped.insert((dev, *a));
                    flipped.push((dev, *a));
                }
            }
            // Entries: of every touched remote, and of every remote of a group in collision.
            let mut sync: BTreeSet<IpAddr> = touched.into_iter().collect();
            if !new.losers.is_empty() || !old.losers.is_empty() {
                sync.extend(old.losers.iter().copied());
                if let Some(g) = self.by_mac.get(&key) {
                    sync.extend(g.iter().copied());
                }
            }
            if !new.losers.is_empty() {
                self.collisions.insert(key, new);
            }
            for a in sync {
                self.sync_entries(dev, a);
            }
        }
        flipped
    }

    /// The neighbour and FDB entry of one VXLAN remote: present when some route references it
    /// and it did not lose its MAC.
    fn sync_entries(&mut self, device: Device, addr: IpAddr) {
        let want =
            self.refs.contains_key(&(device, addr)) && !self.dropped.contains(&(device, addr));
        let mac = vtep_mac(addr);
        let n = Neighbour { device, addr, mac };
        let f = FdbEntry {
            device,
            mac,
            dst: addr,
        };
        let fib = &mut self.state.fib;
        let (n_changed, f_changed) = if want {
            (fib.neighbours.insert(n), fib.fdb.insert(f))
        } else {
            (fib.neighbours.remove(&n), fib.fdb.remove(&f))
        };
        if n_changed {
            self.changes.neighbours.insert((device, addr));
        }
        if f_changed {
            self.changes.fdb.insert((device, mac));
        }
    }

    fn settle_and_finish(
        &mut self,
        dirty: Vec<(Device, IpAddr)>,
        prefixes: impl IntoIterator<Item = IpNet>,
    ) {
        let flipped = self.settle(dirty);
        let mut todo: BTreeSet<IpNet> = prefixes.into_iter().collect();
        if !flipped.is_empty() {
            // Rare (module docs): every route with a next hop towards a flipped remote.
            let addrs: HashSet<IpAddr> = flipped.iter().map(|(_, a)| *a).collect();
            todo.extend(
                self.best
                    .iter()
                    .filter(|(_, b)| b.next_hops.iter().any(|a| addrs.contains(a)))
                    .map(|(p, _)| *p),
            );
        }
        for p in todo {
            self.finish(p);
        }
    }

    /// Makes the route of `prefix` what the rules say, recording a change.
    fn finish(&mut self, prefix: IpNet) {
        let no_usable = Problem::NoUsableNextHop { prefix };
        let want = if self.blocks.contains(&prefix) {
            self.state.problems.remove(&no_usable);
            Rules::own_block_route(&prefix)
        } else {
            match self.decision(prefix, |_| {}) {
                Some(d) => {
                    let metric = self.best.get(&prefix).map_or(0, |b| b.metric);
                    let r = self.rules.finish(prefix, d, metric, &self.dropped);
                    if r.is_none() {
                        self.state.problems.insert(no_usable);
                    } else {
                        self.state.problems.remove(&no_usable);
                    }
                    r
                }
                None => {
                    self.state.problems.remove(&no_usable);
                    None
                }
            }
        };
        let routes = &mut self.state.fib.routes;
        let changed = match want {
            Some(r) => match routes.get_mut(&prefix) {
                Some(have) if *have == r => false,
                Some(have) => {
                    *have = r;
                    true
                }
                None => {
                    routes.insert(prefix, r);
                    true
                }
            },
            None => routes.remove(&prefix).is_some(),
        };
        if changed {
            self.changes.routes.insert(prefix);
        }
    }
}

/// The decided next hops of `prefix` (`None` for one of our blocks or no best route).
fn decision(
    rules: &Rules,
    blocks: &BTreeSet<IpNet>,
    best: &BTreeMap<IpNet, Best>,
    prefix: IpNet,
    problems: impl FnMut(Problem),
) -> Option<Vec<NextHop>> {
    if blocks.contains(&prefix) {
        return None;
    }
    let b = best.get(&prefix)?;
    Some(rules.decide(prefix, &b.next_hops, problems))
}

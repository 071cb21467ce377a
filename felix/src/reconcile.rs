//! The reconciler: makes the kernel hold the desired state, writing only the difference.
//!
//! ```text
//!  DesiredState ──▶ tunnel devices + sysctls (ensure, idempotent)
//!       │
//!       ▼                         kernel dump of tortie's objects (first sync, repairs)
//!  desired::diff(current, desired) ◀────────────┘
//!       │ ops, in dependency order
//!       ▼
//!  netlink batches (routes / neighbours / FDB) ──▶ current := what was confirmed
//! ```
//!
//! Start-up: [`Felix::new`] writes nothing. The first [`Felix::apply`] dumps what tortie owns
//! (routes of its protocol, neighbour and FDB entries on its VXLAN devices), adopts what is
//! already right and writes only what differs: a restarted agent with the same desired state
//! sends no route message (mark-and-sweep), and rewrites no NAT table ([`crate::nat::sync`]).
//! Afterwards `apply` diffs against what it wrote (no dump), so one changed route is one
//! message; [`Felix::repair`] dumps again to put back what someone else removed and to remove
//! strays of ours. Routes stay when the agent stops (that is how a restart loses no packet);
//! only [`Felix::flush`] removes them. Routes of other protocols are never read into `current`
//! and never written.
//!
//! `apply` compares the whole desired FIB with `current`: O(n) for n routes (tens of ms at
//! 100k), fine for the first sync and a repair. The steady state goes through
//! [`Felix::apply_changes`] with the [`Changes`] of a [`desired::Planner`]: only the changed
//! keys are looked at (routes, neighbour and FDB entries), diffed by the same
//! [`desired::diff`] restricted to them, so one changed best route costs one route decision,
//! a few map lookups and its one netlink message, whatever the table size.
//!
//! Metrics ([`desired::Route::metric`]): the kernel keys a route by (table, prefix, metric),
//! so a route with another metric is another route. A changed metric
//! ([`desired::Op::MoveRoute`]) is a create of the new route and, once the kernel has
//! accepted it, a delete of the old one by its exact metric: the prefix is never without a
//! route, and the old one never stays behind (a refused delete makes the next apply dump
//! again). Adoption compares metrics too, and a dump that finds several routes of ours for one
//! prefix (a crash between the two halves of a move) keeps the one with the desired metric,
//! or else the lowest, and deletes the others.

use crate::desired::{self, Changes, DesiredState, Device, Fib, Mac, Op};
use crate::nat;
use crate::netlink::{
    FdbEntry, FdbOp, Kernel, KernelRoute, NeighOp, NeighbourEntry, NextHop, NlError, RouteKind,
    RouteOp, Tunl0Spec, VxlanSpec,
};
use ipnet::IpNet;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use tracing::{debug, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum FelixError {
    #[error("netlink: {0}")]
    Netlink(#[from] NlError),
    #[error("the underlay device {0} does not exist")]
    NoUnderlay(String),
    #[error(transparent)]
    Nat(#[from] nat::NatError),
}

/// What one [`Felix::apply`] or [`Felix::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Operations of the diff.
    pub ops: usize,
    /// Those the kernel refused, with the reason.
    pub failures: Vec<String>,
    /// Tunnel devices that could not be set up (e.g. no ipip module); routes through them
    /// are skipped, the others installed.
    pub device_problems: Vec<String>,
}

/// `rp_filter` on the tunnel devices: off. Paths are often asymmetric (a pod in an `Always`
/// pool answers a pod of a `CrossSubnet` pool over the underlay; replies to tunnelled traffic
/// come back over it), and the tunnels carry no address of their own: for a device without an
/// IPv4 address the kernel refuses, in strict and in loose mode alike, every packet whose
/// source is not routed back through that same device (`__fib_validate_source`, "no_addr").
/// The kernel applies the larger of this and `net.ipv4.conf.all.rp_filter`, so a host with
/// `all.rp_filter=1` keeps such paths broken (README, dataplane).
const TUNNEL_RP_FILTER: u8 = 0;

/// Drives one network namespace's kernel state.
pub struct Felix {
    kernel: Kernel,
    /// What tortie believes the kernel holds of its own; `None` until the first dump.
    current: Option<Fib>,
    /// Device name → ifindex, refreshed on every apply.
    ifindex: HashMap<Device, u32>,
    underlay: String,
    /// The network namespace (name under /run/netns) for `nft`; `None` = the current one.
    netns: Option<String>,
    /// What the NAT table is known to hold (the table for it, or no table when it masquerades
    /// nothing); `None` until read.
    nat_applied: Option<desired::NatOutgoing>,
    /// `nft` transactions written so far.
    nat_writes: u64,
    /// The tunnel devices that could not be set up at the last [`Felix::apply`].
    device_problems: Vec<String>,
    /// IPv6 forwarding was turned on.
    forward_v6: bool,
    /// Keys of operations the kernel refused since the last full apply: the next
    /// [`Felix::apply_changes`] tries them again with its own changes.
    retry: Changes,
}

impl Felix {
    /// Takes over a kernel handle. Writes nothing.
    pub fn new(kernel: Kernel, underlay: impl Into<String>, netns: Option<String>) -> Felix {
        Felix {
            kernel,
            current: None,
            ifindex: HashMap::new(),
            underlay: underlay.into(),
            netns,
            nat_applied: None,
            nat_writes: 0,
            device_problems: Vec::new(),
            forward_v6: false,
            retry: Changes::default(),
        }
    }

    pub fn kernel(&mut self) -> &mut Kernel {
        &mut self.kernel
    }

    /// Netlink messages that changed kernel state so far.
    pub fn writes(&self) -> u64 {
        self.kernel.stats().writes
    }

    /// `nft` transactions (NAT table writes or removals) so far.
    pub fn nat_writes(&self) -> u64 {
        self.nat_writes
    }

    /// What tortie believes the kernel holds of its own (`None` before the first apply, or
    /// when replies were lost).
    pub fn current(&self) -> Option<&Fib> {
        self.current.as_ref()
    }

    /// Makes the kernel hold `desired`: the tunnel devices, then the diff of the whole FIB
    /// against `current` (dumped from the kernel first if unknown), then the NAT table.
    pub fn apply(&mut self, desired: &DesiredState) -> Result<ApplyReport, FelixError> {
        let mut report = ApplyReport::default();
        self.ensure_devices(desired, &mut report)?;
        self.device_problems = report.device_problems.clone();
        let want = self.usable(desired);
        if self.current.is_none() {
            let (fib, shadowed) = self.dump(&want)?;
            self.current = Some(fib);
            self.delete_shadowed(&shadowed, &mut report)?;
        }
        // The full diff covers every key, the ones to retry included.
        self.retry = Changes::default();
        let ops = desired::diff(self.current.as_ref().expect("dumped above"), &want);
        drop(want);
        self.write_ops(&ops, &mut report)?;
        self.sync_nat(&desired.nat)?;
        Ok(report)
    }

    /// Makes the kernel hold `desired` when only the keys in `changes` differ from the state
    /// last applied (the [`Changes`] a [`desired::Planner`] reports): diffs and writes those
    /// keys only, so its cost does not grow with the table. Tunnel changes, and a felix that
    /// has not synced yet (or lost track of the kernel), go through the full [`Felix::apply`].
    pub fn apply_changes(
        &mut self,
        desired: &DesiredState,
        changes: &Changes,
    ) -> Result<ApplyReport, FelixError> {
        if self.current.is_none() || changes.tunnels {
            return self.apply(desired);
        }
        let mut report = ApplyReport {
            device_problems: self.device_problems.clone(),
            ..ApplyReport::default()
        };
        if !self.forward_v6 && changes.routes.iter().any(|p| matches!(p, IpNet::V6(_))) {
            self.kernel.set_ip_forward(true, true)?;
            self.forward_v6 = true;
        }
        let merged;
        let changes = if self.retry.is_empty() {
            changes
        } else {
            let mut c = std::mem::take(&mut self.retry);
            c.merge(changes.clone());
            merged = c;
            &merged
        };
        let mut want = desired.fib.restricted(changes);
        if !self.device_problems.is_empty() {
            self.retain_usable(&mut want);
        }
        let have = self
            .current
            .as_ref()
            .expect("checked above")
            .restricted(changes);
        let ops = desired::diff(&have, &want);
        self.write_ops(&ops, &mut report)?;
        if changes.nat || self.nat_applied.as_ref() != Some(&desired.nat) {
            self.sync_nat(&desired.nat)?;
        }
        Ok(report)
    }

    /// The NAT table for `nat`: read and compared when its state is not known (start-up, so a
    /// restart rewrites nothing), written when it differs from what was applied.
    fn sync_nat(&mut self, nat: &desired::NatOutgoing) -> Result<(), FelixError> {
        let netns = self.netns.as_deref();
        let wrote = match &self.nat_applied {
            Some(applied) if applied == nat => false,
            // Known state: no table before and none wanted now means nothing to do.
            Some(applied) if !nat::needed(applied) && !nat::needed(nat) => false,
            Some(_) => {
                nat::apply(nat, netns)?;
                true
            }
            None => nat::sync(nat, netns)?,
        };
        if wrote {
            self.nat_writes += 1;
        }
        self.nat_applied = Some(nat.clone());
        Ok(())
    }

    /// Dumps the kernel again and writes whatever differs: routes deleted by someone else come
    /// back, stray objects of ours go.
    pub fn repair(&mut self, desired: &DesiredState) -> Result<ApplyReport, FelixError> {
        self.current = None;
        self.apply(desired)
    }

    /// Removes everything tortie wrote: routes and nexthop objects of its protocol, its NAT
    /// table and its VXLAN devices (their neighbour and FDB entries go with them).
    pub fn flush(&mut self) -> Result<(), FelixError> {
        self.kernel.flush()?;
        for name in [desired::VXLAN_V4, desired::VXLAN_V6] {
            if let Some(link) = self.kernel.link_by_name(name)? {
                self.kernel.delete_link(link.index)?;
            }
        }
        nat::remove(self.netns.as_deref())?;
        self.nat_writes += 1;
        self.current = Some(Fib::default());
        self.retry = Changes::default();
        self.nat_applied = Some(desired::NatOutgoing::default());
        Ok(())
    }

    fn ensure_devices(
        &mut self,
        desired: &DesiredState,
        report: &mut ApplyReport,
    ) -> Result<(), FelixError> {
        let underlay = self
            .kernel
            .link_by_name(&self.underlay)?
            .ok_or_else(|| FelixError::NoUnderlay(self.underlay.clone()))?;
        self.ifindex.clear();
        self.ifindex.insert(Device::Underlay, underlay.index);
        // IPv6 prefixes sort after IPv4 ones: the last key tells whether there is one.
        let forward_v6 = desired.tunnels.vxlan_v6.is_some()
            || matches!(desired.fib.routes.keys().next_back(), Some(IpNet::V6(_)));
        self.kernel.set_ip_forward(true, forward_v6)?;
        self.forward_v6 |= forward_v6;
        if let Some(t) = &desired.tunnels.tunl0 {
            match self.kernel.ensure_tunl0(&Tunl0Spec {
                mtu: Some(t.mtu),
                address: None,
            }) {
                Ok((link, change)) => {
                    debug!(?change, "tunl0");
                    self.ifindex.insert(Device::Tunl0, link.index);
                    self.kernel
                        .set_rp_filter(desired::TUNL0, TUNNEL_RP_FILTER)?;
                }
                Err(e) => {
                    warn!(error = %e, "IPIP routes cannot be installed; VXLAN and direct routes still are");
                    report.device_problems.push(e.to_string());
                }
            }
        }
        for (t, dev) in [
            (&desired.tunnels.vxlan, Device::Vxlan),
            (&desired.tunnels.vxlan_v6, Device::VxlanV6),
        ] {
            let Some(t) = t else { continue };
            let spec = VxlanSpec {
                name: t.name.clone(),
                vni: t.vni,
                port: t.port,
                local: t.local,
                underlay: Some(underlay.index),
                mac: t.mac.0,
                mtu: Some(t.mtu),
            };
            match self.kernel.ensure_vxlan(&spec) {
                Ok((link, change)) => {
                    debug!(name = %t.name, ?change, "VXLAN device");
                    self.ifindex.insert(dev, link.index);
                    self.kernel.set_rp_filter(&t.name, TUNNEL_RP_FILTER)?;
                }
                Err(e) => {
                    warn!(name = %t.name, error = %e, "VXLAN device cannot be set up");
                    report.device_problems.push(e.to_string());
                }
            }
        }
        // A VXLAN device no pool needs any more (e.g. vxlanMode changed to Never) goes, as in
        // `flush` and as Calico's felix removes vxlan.calico: otherwise its neighbour and FDB
        // entries would stay behind, and the diff would retry deleting them on every apply
        // without the device's index to do it with. The kernel removes the entries and the
        // routes through the device with it, so the kernel is read again.
        for (t, name) in [
            (&desired.tunnels.vxlan, desired::VXLAN_V4),
            (&desired.tunnels.vxlan_v6, desired::VXLAN_V6),
        ] {
            if t.is_some() {
                continue;
            }
            if let Some(link) = self.kernel.link_by_name(name)? {
                info!(
                    device = name,
                    "no pool uses this VXLAN device any more; removing it"
                );
                self.kernel.delete_link(link.index)?;
                self.current = None;
            }
        }
        Ok(())
    }

    /// The desired FIB without what needs a device that could not be set up (borrowed, not
    /// copied, when every device is there).
    fn usable<'a>(&self, desired: &'a DesiredState) -> Cow<'a, Fib> {
        if self.device_problems.is_empty() {
            return Cow::Borrowed(&desired.fib);
        }
        let mut fib = desired.fib.clone();
        self.retain_usable(&mut fib);
        Cow::Owned(fib)
    }

    fn retain_usable(&self, fib: &mut Fib) {
        let has = |d: &Device| self.ifindex.contains_key(d);
        fib.routes
            .retain(|_, r| r.nexthops().iter().all(|nh| has(&nh.device)));
        fib.neighbours.retain(|n| has(&n.device));
        fib.fdb.retain(|f| has(&f.device));
    }

    fn device_of(&self, index: u32) -> Option<Device> {
        self.ifindex
            .iter()
            .find(|(_, i)| **i == index)
            .map(|(d, _)| *d)
    }

    /// Tortie's objects in the kernel, as [`Fib`], and the routes of ours that a [`Fib`]
    /// cannot hold. A route of ours that tortie would not have written (unknown device,
    /// another kind) is kept with no next hops, so that the diff replaces or deletes it.
    ///
    /// A [`Fib`] holds one route per prefix, the kernel one per (prefix, metric): after a
    /// crash between the two halves of a metric change, or an `ip route add ... metric N` by
    /// hand, a prefix has several. The one with `want`'s metric is kept (it is right, or is
    /// replaced in place), else the lowest metric (the one forwarding now; the diff moves
    /// it); the others are returned, to be deleted.
    fn dump(&mut self, want: &Fib) -> Result<(Fib, Vec<KernelRoute>), FelixError> {
        let mut fib = Fib::default();
        let mut by_prefix: BTreeMap<IpNet, Vec<(KernelRoute, desired::Route)>> = BTreeMap::new();
        for r in self.kernel.dump_routes()? {
            let metric = desired::canonical_metric(&r.prefix, r.metric);
            let route = match &r.kind {
                RouteKind::Blackhole if metric == 0 => desired::Route::Blackhole,
                RouteKind::Unicast(nhs) => {
                    let mapped: Option<Vec<desired::NextHop>> = nhs
                        .iter()
                        .map(|nh| {
                            Some(desired::NextHop {
                                gateway: nh.gateway?,
                                device: self.device_of(nh.oif)?,
                                onlink: nh.onlink,
                            })
                        })
                        .collect();
                    desired::Route::unicast(mapped.unwrap_or_default(), r.prefsrc, metric)
                }
                // A blackhole with a metric is not one tortie writes: it has to move.
                RouteKind::Blackhole => desired::Route::unicast(Vec::new(), None, metric),
                RouteKind::Nexthop(_) | RouteKind::Other(_) => {
                    desired::Route::unicast(Vec::new(), None, metric)
                }
            };
            by_prefix.entry(r.prefix).or_default().push((r, route));
        }
        let mut shadowed = Vec::new();
        for (prefix, mut routes) in by_prefix {
            let wanted = want.routes.get(&prefix).map(desired::Route::metric);
            let keep = routes
                .iter()
                .enumerate()
                .min_by_key(|(_, (k, d))| (Some(d.metric()) != wanted, k.metric))
                .map_or(0, |(i, _)| i);
            let (_, route) = routes.swap_remove(keep);
            fib.routes.insert(prefix, route);
            shadowed.extend(routes.into_iter().map(|(k, _)| k));
        }
        for dev in [Device::Vxlan, Device::VxlanV6] {
            let Some(&index) = self.ifindex.get(&dev) else {
                continue;
            };
            for n in self.kernel.dump_neighbours(index)? {
                fib.neighbours.insert(desired::Neighbour {
                    device: dev,
                    addr: n.ip,
                    mac: Mac(n.mac),
                });
            }
            for f in self.kernel.dump_fdb(index)? {
                fib.fdb.insert(desired::FdbEntry {
                    device: dev,
                    mac: Mac(f.mac),
                    dst: f.dst,
                });
            }
        }
        info!(
            routes = fib.routes.len(),
            shadowed = shadowed.len(),
            neighbours = fib.neighbours.len(),
            fdb = fib.fdb.len(),
            "adopted tortie's kernel state"
        );
        Ok((fib, shadowed))
    }

    /// Deletes routes of ours that [`Felix::dump`] found beside the one it kept for their
    /// prefix (each named by its exact metric). One already gone is not a failure; one the
    /// kernel refuses is reported, and found again by the next dump.
    fn delete_shadowed(
        &mut self,
        shadowed: &[KernelRoute],
        report: &mut ApplyReport,
    ) -> Result<(), FelixError> {
        if shadowed.is_empty() {
            return Ok(());
        }
        info!(
            routes = shadowed.len(),
            "deleting routes of ours shadowed by another metric of the same prefix"
        );
        let ops: Vec<RouteOp> = shadowed.iter().cloned().map(RouteOp::Delete).collect();
        report.ops += ops.len();
        let batch = self.kernel.apply_routes(&ops)?;
        for f in batch.failures {
            if f.error.errno() == Some(libc::ESRCH) {
                continue;
            }
            if let Some(op) = ops.get(f.index) {
                report
                    .failures
                    .push(format!("delete {}: {}", op.route(), f.error));
            }
        }
        Ok(())
    }

    fn kernel_route(&self, prefix: IpNet, route: &desired::Route) -> Option<KernelRoute> {
        let kind = match route {
            desired::Route::Blackhole => RouteKind::Blackhole,
            desired::Route::Unicast { nexthops, .. } => RouteKind::Unicast(
                nexthops
                    .iter()
                    .map(|nh| {
                        let oif = *self.ifindex.get(&nh.device)?;
                        Some(if nh.onlink {
                            NextHop::via_onlink(nh.gateway, oif)
                        } else {
                            NextHop::via(nh.gateway, oif)
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
        };
        // Canonical metric 0 is written as no RTA_PRIORITY: the kernel's default, as before
        // routes had metrics (IPv6 makes it 1024).
        let mut r = self.kernel.route(prefix, kind).with_metric(route.metric());
        if let desired::Route::Unicast { prefsrc, .. } = route {
            r.prefsrc = *prefsrc;
        }
        Some(r)
    }

    /// The delete of the kernel route `route` of `prefix`: our protocol and its exact metric
    /// (IPv6's default spelt out, as 0 would match any metric). An IPv4 metric 0 cannot be
    /// spelt out; the kernel then deletes our lowest-metric route of the prefix, which is
    /// the metric 0 one whenever it exists. Only if someone removed it behind our back can
    /// such a delete take another route of ours for the prefix (the new one of a move): the
    /// prefix then stays as unrouted as the removal left it until the next repair, which puts
    /// the desired route back.
    fn delete_op(&self, prefix: IpNet, route: &desired::Route) -> RouteOp {
        let metric = desired::kernel_metric(&prefix, route.metric());
        RouteOp::Delete(
            self.kernel
                .route(prefix, RouteKind::Blackhole)
                .with_metric(metric),
        )
    }

    /// Writes `ops` (a diff against `current`), batched per kind in their order, and records
    /// in `current`, in place, what the kernel confirmed.
    fn write_ops(&mut self, ops: &[Op], report: &mut ApplyReport) -> Result<(), FelixError> {
        report.ops += ops.len();
        if ops.is_empty() {
            return Ok(());
        }
        let mut done = self.current.take().unwrap_or_default();
        let mut lost = false;
        let mut i = 0;
        while i < ops.len() {
            let kind = op_kind(&ops[i]);
            let mut j = i;
            while j < ops.len() && op_kind(&ops[j]) == kind {
                j += 1;
            }
            let chunk = &ops[i..j];
            let (failed, unconfirmed) = match self.write_chunk(kind, chunk, report) {
                Ok(r) => r,
                Err(e) => {
                    // The kernel's state is unknown after a socket error: read it again next time.
                    self.current = None;
                    return Err(e);
                }
            };
            lost |= unconfirmed;
            let mut ok = vec![true; chunk.len()];
            for k in failed {
                ok[k] = false;
            }
            for (op, ok) in chunk.iter().zip(ok) {
                if ok {
                    // The op succeeded in the kernel, so it applies to the model too.
                    let _ = done.apply(op);
                } else {
                    // Refused or unconfirmed: the next apply_changes looks at its key again.
                    retry_key(&mut self.retry, op);
                }
            }
            i = j;
        }
        // Replies lost to a receive-queue overrun leave the kernel's state unknown: the next
        // apply reads it again.
        self.current = if lost { None } else { Some(done) };
        Ok(())
    }

    /// Writes a run of operations of one kind; returns the indices (within `chunk`) that failed
    /// and whether some outcomes are unknown.
    fn write_chunk(
        &mut self,
        kind: Kind,
        chunk: &[Op],
        report: &mut ApplyReport,
    ) -> Result<(Vec<usize>, bool), FelixError> {
        let mut failed = Vec::new();
        let mut index_map = Vec::new();
        // The second halves of moves: (index in chunk, delete of the old route).
        let mut moves: Vec<(usize, RouteOp)> = Vec::new();
        let batch = match kind {
            Kind::Route => {
                let mut ops = Vec::new();
                for (k, op) in chunk.iter().enumerate() {
                    let r = match op {
                        Op::DelRoute { prefix, route } => Some(self.delete_op(*prefix, route)),
                        Op::AddRoute { prefix, route } => {
                            self.kernel_route(*prefix, route).map(RouteOp::Create)
                        }
                        Op::ReplaceRoute { prefix, route } => {
                            self.kernel_route(*prefix, route).map(RouteOp::Replace)
                        }
                        Op::MoveRoute {
                            prefix,
                            from,
                            route,
                        } => self.kernel_route(*prefix, route).map(|r| {
                            moves.push((k, self.delete_op(*prefix, from)));
                            RouteOp::Create(r)
                        }),
                        _ => None,
                    };
                    match r {
                        Some(r) => {
                            ops.push(r);
                            index_map.push(k);
                        }
                        None => failed.push(k),
                    }
                }
                self.kernel.apply_routes(&ops)?
            }
            Kind::Neighbour => {
                let mut ops = Vec::new();
                for (k, op) in chunk.iter().enumerate() {
                    let (n, replace) = match op {
                        Op::AddNeighbour(n) | Op::ReplaceNeighbour(n) => (n, true),
                        Op::DelNeighbour(n) => (n, false),
                        _ => continue,
                    };
                    let Some(&ifindex) = self.ifindex.get(&n.device) else {
                        failed.push(k);
                        continue;
                    };
                    let e = NeighbourEntry {
                        ifindex,
                        ip: n.addr,
                        mac: n.mac.0,
                    };
                    ops.push(if replace {
                        NeighOp::Replace(e)
                    } else {
                        NeighOp::Delete(e)
                    });
                    index_map.push(k);
                }
                self.kernel.apply_neighbours(&ops)?
            }
            Kind::Fdb => {
                let mut ops = Vec::new();
                for (k, op) in chunk.iter().enumerate() {
                    let (f, replace) = match op {
                        Op::AddFdb(f) | Op::ReplaceFdb(f) => (f, true),
                        Op::DelFdb(f) => (f, false),
                        _ => continue,
                    };
                    let Some(&ifindex) = self.ifindex.get(&f.device) else {
                        failed.push(k);
                        continue;
                    };
                    let e = FdbEntry {
                        ifindex,
                        mac: f.mac.0,
                        dst: f.dst,
                    };
                    ops.push(if replace {
                        FdbOp::Replace(e)
                    } else {
                        FdbOp::Delete(e)
                    });
                    index_map.push(k);
                }
                self.kernel.apply_fdb(&ops)?
            }
        };
        for f in &batch.failures {
            if let Some(&k) = index_map.get(f.index) {
                failed.push(k);
                report.failures.push(format!("{:?}: {}", chunk[k], f.error));
            }
        }
        for &u in &batch.unconfirmed {
            if let Some(&k) = index_map.get(u) {
                failed.push(k);
            }
        }
        let mut unknown = !batch.unconfirmed.is_empty();
        if !moves.is_empty() {
            unknown |= self.finish_moves(chunk, moves, &mut failed, report)?;
        }
        Ok((failed, unknown))
    }

    /// The second half of the moves of a route chunk: deletes the old route of each move whose
    /// new route the kernel accepted (a refused one leaves the old in place, still routing).
    /// Returns whether the kernel's state is unknown: a delete refused after its add went in
    /// leaves both routes, which a [`Fib`] cannot describe, so the next apply dumps again.
    fn finish_moves(
        &mut self,
        chunk: &[Op],
        moves: Vec<(usize, RouteOp)>,
        failed: &mut Vec<usize>,
        report: &mut ApplyReport,
    ) -> Result<bool, FelixError> {
        let mut added = vec![true; chunk.len()];
        for &k in failed.iter() {
            added[k] = false;
        }
        let (index, deletes): (Vec<usize>, Vec<RouteOp>) =
            moves.into_iter().filter(|(k, _)| added[*k]).unzip();
        if deletes.is_empty() {
            return Ok(false);
        }
        let batch = self.kernel.apply_routes(&deletes)?;
        let mut unknown = !batch.unconfirmed.is_empty();
        for f in &batch.failures {
            // Already gone (deleted by hand): the move is complete all the same.
            if f.error.errno() == Some(libc::ESRCH) {
                continue;
            }
            if let Some(&k) = index.get(f.index) {
                failed.push(k);
                unknown = true;
                report.failures.push(format!("{:?}: {}", chunk[k], f.error));
            }
        }
        for &u in &batch.unconfirmed {
            if let Some(&k) = index.get(u) {
                failed.push(k);
            }
        }
        Ok(unknown)
    }
}

/// Records the key `op` writes in `c`.
fn retry_key(c: &mut Changes, op: &Op) {
    match op {
        Op::DelRoute { prefix, .. }
        | Op::AddRoute { prefix, .. }
        | Op::ReplaceRoute { prefix, .. }
        | Op::MoveRoute { prefix, .. } => {
            c.routes.insert(*prefix);
        }
        Op::AddNeighbour(n) | Op::ReplaceNeighbour(n) | Op::DelNeighbour(n) => {
            c.neighbours.insert((n.device, n.addr));
        }
        Op::AddFdb(f) | Op::ReplaceFdb(f) | Op::DelFdb(f) => {
            c.fdb.insert((f.device, f.mac));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Route,
    Neighbour,
    Fdb,
}

fn op_kind(op: &Op) -> Kind {
    match op {
        Op::DelRoute { .. }
        | Op::AddRoute { .. }
        | Op::ReplaceRoute { .. }
        | Op::MoveRoute { .. } => Kind::Route,
        Op::AddNeighbour(_) | Op::ReplaceNeighbour(_) | Op::DelNeighbour(_) => Kind::Neighbour,
        Op::AddFdb(_) | Op::ReplaceFdb(_) | Op::DelFdb(_) => Kind::Fdb,
    }
}

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
//! sends no route message (mark-and-sweep). Afterwards `apply` diffs against what it wrote
//! (no dump), so one changed route is one message; [`Felix::repair`] dumps again to put back
//! what someone else removed and to remove strays of ours. Routes stay when the agent stops
//! (that is how a restart loses no packet); only [`Felix::flush`] removes them. Routes of other
//! protocols are never read into `current` and never written.

use crate::desired::{self, DesiredState, Device, Fib, Mac, Op};
use crate::nat;
use crate::netlink::{
    FdbEntry, FdbOp, Kernel, KernelRoute, NeighOp, NeighbourEntry, NextHop, NlError, RouteKind,
    RouteOp, Tunl0Spec, VxlanSpec,
};
use ipnet::IpNet;
use std::collections::HashMap;
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
    nat_applied: Option<desired::NatOutgoing>,
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
        }
    }

    pub fn kernel(&mut self) -> &mut Kernel {
        &mut self.kernel
    }

    /// Netlink messages that changed kernel state so far.
    pub fn writes(&self) -> u64 {
        self.kernel.stats().writes
    }

    /// Makes the kernel hold `desired`.
    pub fn apply(&mut self, desired: &DesiredState) -> Result<ApplyReport, FelixError> {
        let mut report = ApplyReport::default();
        self.ensure_devices(desired, &mut report)?;
        if self.current.is_none() {
            self.current = Some(self.dump()?);
        }
        let want = self.usable(desired, &report);
        self.write_diff(&want, &mut report)?;
        if self.nat_applied.as_ref() != Some(&desired.nat) {
            nat::apply(&desired.nat, self.netns.as_deref())?;
            self.nat_applied = Some(desired.nat.clone());
        }
        Ok(report)
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
        self.current = Some(Fib::default());
        self.nat_applied = None;
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
        let forward_v6 = desired.tunnels.vxlan_v6.is_some()
            || desired.fib.routes.keys().any(|p| matches!(p, IpNet::V6(_)));
        self.kernel.set_ip_forward(true, forward_v6)?;
        if let Some(t) = &desired.tunnels.tunl0 {
            match self.kernel.ensure_tunl0(&Tunl0Spec {
                mtu: Some(t.mtu),
                address: None,
            }) {
                Ok((link, change)) => {
                    debug!(?change, "tunl0");
                    self.ifindex.insert(Device::Tunl0, link.index);
                    self.kernel.set_rp_filter(desired::TUNL0, 2)?;
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
                    // Replies to tunnelled traffic may come back over the underlay (prefsrc is
                    // the node's address): loose reverse-path filtering on the tunnel.
                    self.kernel.set_rp_filter(&t.name, 2)?;
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

    /// The desired FIB without what needs a device that could not be set up.
    fn usable(&self, desired: &DesiredState, report: &ApplyReport) -> Fib {
        if report.device_problems.is_empty() {
            return desired.fib.clone();
        }
        let has = |d: &Device| self.ifindex.contains_key(d);
        let mut fib = desired.fib.clone();
        fib.routes
            .retain(|_, r| r.nexthops().iter().all(|nh| has(&nh.device)));
        fib.neighbours.retain(|n| has(&n.device));
        fib.fdb.retain(|f| has(&f.device));
        fib
    }

    fn device_of(&self, index: u32) -> Option<Device> {
        self.ifindex
            .iter()
            .find(|(_, i)| **i == index)
            .map(|(d, _)| *d)
    }

    /// Tortie's objects in the kernel, as [`Fib`]. A route of ours that tortie would not have
    /// written (unknown device, another kind) is kept with no next hops, so that the diff
    /// replaces or deletes it.
    fn dump(&mut self) -> Result<Fib, FelixError> {
        let mut fib = Fib::default();
        for r in self.kernel.dump_routes()? {
            let route = match &r.kind {
                RouteKind::Blackhole => desired::Route::Blackhole,
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
                    desired::Route::unicast(mapped.unwrap_or_default(), r.prefsrc)
                }
                RouteKind::Nexthop(_) | RouteKind::Other(_) => {
                    desired::Route::unicast(Vec::new(), None)
                }
            };
            fib.routes.insert(r.prefix, route);
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
            neighbours = fib.neighbours.len(),
            fdb = fib.fdb.len(),
            "adopted tortie's kernel state"
        );
        Ok(fib)
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
        let mut r = self.kernel.route(prefix, kind);
        if let desired::Route::Unicast { prefsrc, .. } = route {
            r.prefsrc = *prefsrc;
        }
        Some(r)
    }

    /// Writes the diff from `current` to `want`, batched per kind in the diff's order, and
    /// records in `current` what the kernel confirmed.
    fn write_diff(&mut self, want: &Fib, report: &mut ApplyReport) -> Result<(), FelixError> {
        let current = self.current.clone().unwrap_or_default();
        let ops = desired::diff(&current, want);
        report.ops += ops.len();
        if ops.is_empty() {
            return Ok(());
        }
        let mut done = current;
        let mut lost = false;
        let mut i = 0;
        while i < ops.len() {
            let kind = op_kind(&ops[i]);
            let mut j = i;
            while j < ops.len() && op_kind(&ops[j]) == kind {
                j += 1;
            }
            let chunk = &ops[i..j];
            let (failed, unconfirmed) = self.write_chunk(kind, chunk, report)?;
            lost |= unconfirmed;
            for (k, op) in chunk.iter().enumerate() {
                if !failed.contains(&k) {
                    // The op succeeded in the kernel, so it applies to the model too.
                    let _ = done.apply(op);
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
        let batch = match kind {
            Kind::Route => {
                let mut ops = Vec::new();
                for (k, op) in chunk.iter().enumerate() {
                    let r = match op {
                        Op::DelRoute { prefix, .. } => Some(RouteOp::Delete(
                            self.kernel.route(*prefix, RouteKind::Blackhole),
                        )),
                        Op::AddRoute { prefix, route } => {
                            self.kernel_route(*prefix, route).map(RouteOp::Create)
                        }
                        Op::ReplaceRoute { prefix, route } => {
                            self.kernel_route(*prefix, route).map(RouteOp::Replace)
                        }
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
        Ok((failed, !batch.unconfirmed.is_empty()))
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
        Op::DelRoute { .. } | Op::AddRoute { .. } | Op::ReplaceRoute { .. } => Kind::Route,
        Op::AddNeighbour(_) | Op::ReplaceNeighbour(_) | Op::DelNeighbour(_) => Kind::Neighbour,
        Op::AddFdb(_) | Op::ReplaceFdb(_) | Op::DelFdb(_) => Kind::Fdb,
    }
}

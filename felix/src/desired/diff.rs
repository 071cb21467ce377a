//! The pure diff between two [`Fib`]s, and [`Fib::apply`], a model of what the kernel does with
//! each operation (used by tests, and usable by a fake reconciler).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::mac::Mac;
use super::types::*;

/// One kernel write. The reconciler maps each to one netlink message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "op")]
pub enum Op {
    /// `RTM_DELROUTE` of a route `current` holds (the route as it is: its metric names the
    /// kernel route to delete).
    DelRoute { prefix: IpNet, route: Route },
    /// `RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_EXCL`.
    AddRoute { prefix: IpNet, route: Route },
    /// `RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_REPLACE` of an existing route with the same
    /// metric.
    ReplaceRoute { prefix: IpNet, route: Route },
    /// A route whose metric changes. The kernel keys routes by (table, prefix, metric), so a
    /// replace would leave the old one in place: `route` is added (`NLM_F_CREATE |
    /// NLM_F_EXCL`) next to `from`, then `from` deleted, so the prefix is never without a
    /// route. One operation, two messages.
    MoveRoute {
        prefix: IpNet,
        from: Route,
        route: Route,
    },
    /// `RTM_NEWNEIGH` (`NUD_PERMANENT`, `NLM_F_CREATE | NLM_F_EXCL`).
    AddNeighbour(Neighbour),
    /// `RTM_NEWNEIGH` with `NLM_F_REPLACE`: the MAC of an existing `(device, addr)` changes.
    ReplaceNeighbour(Neighbour),
    /// `RTM_DELNEIGH` of `(device, addr)`.
    DelNeighbour(Neighbour),
    /// `RTM_NEWNEIGH` (`AF_BRIDGE`, `NTF_SELF`, `NUD_PERMANENT`) with `NLM_F_CREATE |
    /// NLM_F_APPEND`: adds a remote `dst` for `mac` (the first one, usually).
    AddFdb(FdbEntry),
    /// The same with `NLM_F_REPLACE`: the only remote of `(device, mac)` becomes `dst`.
    ReplaceFdb(FdbEntry),
    /// `RTM_DELNEIGH` (`AF_BRIDGE`) of the remote `dst` of `(device, mac)`.
    DelFdb(FdbEntry),
}

/// The operations that turn `current` into `desired`, touching nothing `current` does not hold
/// (it holds only tortie-owned objects) and nothing that is already right:
///
/// 1. deletes of stale routes (before anything they point at goes);
/// 2. FDB entries for `(device, mac)`s that stay or appear (adds before deletes per MAC, so a
///    MAC never loses its remote);
/// 3. neighbour adds and replaces (a route's on-link gateway resolves before the route exists);
/// 4. route adds, replaces and moves (a changed metric: [`Op::MoveRoute`]);
/// 5. deletes of stale neighbours (no route uses them any more);
/// 6. deletes of FDB entries of MACs that go away.
///
/// Within a phase, in key order. Next-hop order is not a difference.
pub fn diff(current: &Fib, desired: &Fib) -> Vec<Op> {
    let mut ops = Vec::new();

    // Routes: one merge walk of the two sorted maps (no lookups), compared without copies;
    // only a route that is written is copied.
    let mut route_writes = Vec::new();
    let (mut cur, mut des) = (
        current.routes.iter().peekable(),
        desired.routes.iter().peekable(),
    );
    loop {
        let order = match (cur.peek(), des.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((p, _)), Some((q, _))) => p.cmp(q),
        };
        match order {
            // 1. Stale routes.
            Ordering::Less => {
                let (prefix, route) = cur.next().expect("peeked");
                ops.push(Op::DelRoute {
                    prefix: *prefix,
                    route: route.clone(),
                });
            }
            Ordering::Greater => {
                let (prefix, route) = des.next().expect("peeked");
                route_writes.push(Op::AddRoute {
                    prefix: *prefix,
                    route: route.normalized(),
                });
            }
            Ordering::Equal => {
                let ((prefix, have), (_, want)) =
                    (cur.next().expect("peeked"), des.next().expect("peeked"));
                if have.metric() != want.metric() {
                    route_writes.push(Op::MoveRoute {
                        prefix: *prefix,
                        from: have.clone(),
                        route: want.normalized(),
                    });
                } else if !have.equivalent(want) {
                    route_writes.push(Op::ReplaceRoute {
                        prefix: *prefix,
                        route: want.normalized(),
                    });
                }
            }
        }
    }

    // 2. FDB for MACs that are desired.
    let cur_fdb = fdb_by_key(&current.fdb);
    let des_fdb = fdb_by_key(&desired.fdb);
    for (&(device, mac), want) in &des_fdb {
        let entry = |dst| FdbEntry { device, mac, dst };
        match cur_fdb.get(&(device, mac)) {
            None => ops.extend(want.iter().map(|&d| Op::AddFdb(entry(d)))),
            Some(have) if have == want => {}
            Some(have) if have.len() == 1 && want.len() == 1 => {
                ops.push(Op::ReplaceFdb(entry(*want.first().unwrap())))
            }
            Some(have) => {
                ops.extend(want.difference(have).map(|&d| Op::AddFdb(entry(d))));
                ops.extend(have.difference(want).map(|&d| Op::DelFdb(entry(d))));
            }
        }
    }

    // 3. Neighbours that are desired.
    let cur_neigh = neigh_by_key(&current.neighbours);
    let des_neigh = neigh_by_key(&desired.neighbours);
    for (&(device, addr), macs) in &des_neigh {
        let n = Neighbour {
            device,
            addr,
            mac: macs[0],
        };
        match cur_neigh.get(&(device, addr)) {
            None => ops.push(Op::AddNeighbour(n)),
            Some(have) if have[..] == [n.mac] => {}
            Some(_) => ops.push(Op::ReplaceNeighbour(n)),
        }
    }

    // 4. Routes that are desired (found in the walk above).
    ops.extend(route_writes);

    // 5. Stale neighbours.
    for (&(device, addr), macs) in &cur_neigh {
        if !des_neigh.contains_key(&(device, addr)) {
            ops.push(Op::DelNeighbour(Neighbour {
                device,
                addr,
                mac: macs[0],
            }));
        }
    }

    // 6. FDB entries of MACs that go away.
    for (&(device, mac), have) in &cur_fdb {
        if !des_fdb.contains_key(&(device, mac)) {
            ops.extend(
                have.iter()
                    .map(|&dst| Op::DelFdb(FdbEntry { device, mac, dst })),
            );
        }
    }

    ops
}

fn fdb_by_key(s: &BTreeSet<FdbEntry>) -> BTreeMap<(Device, Mac), BTreeSet<IpAddr>> {
    let mut m: BTreeMap<_, BTreeSet<IpAddr>> = BTreeMap::new();
    for e in s {
        m.entry((e.device, e.mac)).or_default().insert(e.dst);
    }
    m
}

/// `(device, addr)` → MACs (one, in any state the kernel can hold).
fn neigh_by_key(s: &BTreeSet<Neighbour>) -> BTreeMap<(Device, IpAddr), Vec<Mac>> {
    let mut m: BTreeMap<_, Vec<Mac>> = BTreeMap::new();
    for n in s {
        m.entry((n.device, n.addr)).or_default().push(n.mac);
    }
    m
}

/// An operation the kernel would refuse (what [`Fib::apply`] checks).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("route {0} already exists")]
    RouteExists(IpNet),
    #[error("no route {0}")]
    NoSuchRoute(IpNet),
    #[error("no route {0} with metric {1}")]
    NoSuchMetric(IpNet, u32),
    #[error("a replace of {0} changes its metric (the kernel would add a second route)")]
    ReplaceChangesMetric(IpNet),
    #[error("neighbour {1} on {0:?} already exists")]
    NeighbourExists(Device, IpAddr),
    #[error("no neighbour {1} on {0:?}")]
    NoSuchNeighbour(Device, IpAddr),
    #[error("fdb entry {1} dst {2} on {0:?} already exists")]
    FdbExists(Device, Mac, IpAddr),
    #[error("fdb replace of {1} on {0:?} needs exactly one existing remote, found {2}")]
    FdbNotSingle(Device, Mac, usize),
    #[error("no fdb entry {1} dst {2} on {0:?}")]
    NoSuchFdb(Device, Mac, IpAddr),
}

impl Fib {
    /// Apply one operation as the kernel would, refusing what the kernel would refuse
    /// (adding what exists, replacing or deleting what does not, a delete or move naming
    /// another metric than the route has, a move to the metric it has) and what this model
    /// of one route per prefix cannot hold (a replace that changes the metric).
    pub fn apply(&mut self, op: &Op) -> Result<(), ApplyError> {
        match op {
            Op::DelRoute { prefix, route } => {
                let have = self
                    .routes
                    .get(prefix)
                    .ok_or(ApplyError::NoSuchRoute(*prefix))?;
                if have.metric() != route.metric() {
                    return Err(ApplyError::NoSuchMetric(*prefix, route.metric()));
                }
                self.routes.remove(prefix);
            }
            Op::AddRoute { prefix, route } => {
                if self.routes.contains_key(prefix) {
                    return Err(ApplyError::RouteExists(*prefix));
                }
                self.routes.insert(*prefix, route.clone());
            }
            Op::ReplaceRoute { prefix, route } => {
                let r = self
                    .routes
                    .get_mut(prefix)
                    .ok_or(ApplyError::NoSuchRoute(*prefix))?;
                if r.metric() != route.metric() {
                    return Err(ApplyError::ReplaceChangesMetric(*prefix));
                }
                *r = route.clone();
            }
            Op::MoveRoute {
                prefix,
                from,
                route,
            } => {
                let r = self
                    .routes
                    .get_mut(prefix)
                    .ok_or(ApplyError::NoSuchRoute(*prefix))?;
                if r.metric() != from.metric() {
                    return Err(ApplyError::NoSuchMetric(*prefix, from.metric()));
                }
                if r.metric() == route.metric() {
                    return Err(ApplyError::RouteExists(*prefix));
                }
                *r = route.clone();
            }
            Op::AddNeighbour(n) => {
                if self.neighbour_of(n.device, n.addr).is_some() {
                    return Err(ApplyError::NeighbourExists(n.device, n.addr));
                }
                self.neighbours.insert(*n);
            }
            Op::ReplaceNeighbour(n) | Op::DelNeighbour(n) => {
                let Some(have) = self.neighbour_of(n.device, n.addr) else {
                    return Err(ApplyError::NoSuchNeighbour(n.device, n.addr));
                };
                self.neighbours.remove(&have);
                if matches!(op, Op::ReplaceNeighbour(_)) {
                    self.neighbours.insert(*n);
                }
            }
            Op::AddFdb(e) => {
                if !self.fdb.insert(*e) {
                    return Err(ApplyError::FdbExists(e.device, e.mac, e.dst));
                }
            }
            Op::ReplaceFdb(e) => {
                let same: Vec<FdbEntry> = self.fdb_of(e.device, e.mac).copied().collect();
                if same.len() != 1 {
                    return Err(ApplyError::FdbNotSingle(e.device, e.mac, same.len()));
                }
                self.fdb.remove(&same[0]);
                self.fdb.insert(*e);
            }
            Op::DelFdb(e) => {
                if !self.fdb.remove(e) {
                    return Err(ApplyError::NoSuchFdb(e.device, e.mac, e.dst));
                }
            }
        }
        Ok(())
    }

    /// The neighbour entry of `(device, addr)`, if any (the kernel holds at most one).
    pub fn neighbour_of(&self, device: Device, addr: IpAddr) -> Option<Neighbour> {
        let lo = Neighbour {
            device,
            addr,
            mac: Mac([0; 6]),
        };
        let hi = Neighbour {
            mac: Mac([0xff; 6]),
            ..lo
        };
        self.neighbours.range(lo..=hi).next().copied()
    }

    /// The FDB entries of `(device, mac)`: one per remote destination.
    pub fn fdb_of(&self, device: Device, mac: Mac) -> impl Iterator<Item = &FdbEntry> + '_ {
        let lo = FdbEntry {
            device,
            mac,
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let hi = FdbEntry {
            dst: IpAddr::V6(Ipv6Addr::from(u128::MAX)),
            ..lo
        };
        self.fdb.range(lo..=hi)
    }

    /// The part of this FIB that `changes` names: the routes of its prefixes, the neighbour
    /// entries of its `(device, address)`es and the FDB entries of its `(device, MAC)`s. The
    /// diff of two FIBs restricted to the same keys is the diff of the FIBs restricted to
    /// those keys (every decision of [`diff`] is per key).
    pub fn restricted(&self, changes: &super::Changes) -> Fib {
        let mut f = Fib::default();
        for p in &changes.routes {
            if let Some(r) = self.routes.get(p) {
                f.routes.insert(*p, r.clone());
            }
        }
        for &(device, addr) in &changes.neighbours {
            f.neighbours.extend(self.neighbour_of(device, addr));
        }
        for &(device, mac) in &changes.fdb {
            f.fdb.extend(self.fdb_of(device, mac).copied());
        }
        f
    }

    /// Apply operations in order, stopping at the first the kernel would refuse.
    pub fn apply_all<'a>(
        &mut self,
        ops: impl IntoIterator<Item = &'a Op>,
    ) -> Result<(), ApplyError> {
        ops.into_iter().try_for_each(|op| self.apply(op))
    }

    /// The same FIB with every route's next hops in canonical order.
    pub fn normalized(&self) -> Fib {
        Fib {
            routes: self
                .routes
                .iter()
                .map(|(p, r)| (*p, r.normalized()))
                .collect(),
            neighbours: self.neighbours.clone(),
            fdb: self.fdb.clone(),
        }
    }
}

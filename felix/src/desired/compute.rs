//! The pure function: [`Inputs`] → [`DesiredState`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use super::mac::{Mac, vtep_mac};
use super::types::*;

/// The encapsulation chosen for one next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tunnel {
    Ipip,
    Vxlan,
}

/// A pool's effective encapsulation: VXLAN if `vxlanMode` is not `Never` (it wins over IPIP,
/// as in Felix's `poolTypeForPool`), else IPIP if `ipipMode` is not `Never` and the pool is
/// IPv4, else none.
fn pool_tunnel(p: &Pool) -> Option<(Tunnel, EncapMode)> {
    if p.vxlan_mode != EncapMode::Never {
        Some((Tunnel::Vxlan, p.vxlan_mode))
    } else if p.ipip_mode != EncapMode::Never && Family::of_net(&p.cidr) == Family::V4 {
        Some((Tunnel::Ipip, p.ipip_mode))
    } else {
        None
    }
}

fn is_v6_link_local(a: &Ipv6Addr) -> bool {
    a.is_unicast_link_local()
}

struct Ctx<'a> {
    node: &'a LocalNode,
    pools: Vec<Pool>,
}

impl Ctx<'_> {
    fn own_addr(&self, f: Family) -> Option<IpAddr> {
        match f {
            Family::V4 => self.node.ipv4.map(|n| IpAddr::V4(n.addr())),
            Family::V6 => self.node.ipv6.map(|n| IpAddr::V6(n.addr())),
        }
    }

    /// Calico's "same subnet": our configured prefix contains the address. IPv6 link-local
    /// addresses are on-link on the underlay by definition and count as same subnet. Without
    /// our own address of that family nothing is same subnet (Felix's `nodeInOurSubnet`).
    fn same_subnet(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self.node.ipv4.is_some_and(|n| n.contains(&a)),
            IpAddr::V6(a) => is_v6_link_local(&a) || self.node.ipv6.is_some_and(|n| n.contains(&a)),
        }
    }

    /// The pool governing `prefix`: the (most specific) pool containing it.
    fn pool_for(&self, prefix: &IpNet) -> Option<&Pool> {
        self.pools
            .iter()
            .filter(|p| p.cidr.contains(prefix))
            .max_by_key(|p| p.cidr.prefix_len())
    }

    /// The underlay next hops that reach `a` when it is not on-link: the default gateway(s),
    /// onlink when they are not inside our configured prefix (module docs).
    fn via_gateways(&self, f: Family) -> Vec<NextHop> {
        let gws: Vec<IpAddr> = match f {
            Family::V4 => self
                .node
                .underlay
                .gateways_v4
                .iter()
                .map(|g| IpAddr::V4(*g))
                .collect(),
            Family::V6 => self
                .node
                .underlay
                .gateways_v6
                .iter()
                .map(|g| IpAddr::V6(*g))
                .collect(),
        };
        let own = self.own_addr(f);
        gws.into_iter()
            .filter(|g| Some(*g) != own && !g.is_unspecified() && !g.is_multicast())
            .map(|g| NextHop {
                gateway: g,
                device: Device::Underlay,
                onlink: !self.same_subnet(g),
            })
            .collect()
    }
}

/// Compute the desired state. Pure: no I/O, and the result depends only on the *sets* in
/// `inputs` (the order of pools, blocks, routes and next hops does not matter).
pub fn compute(inputs: &Inputs) -> DesiredState {
    let node = &inputs.node;
    let mut problems: BTreeSet<Problem> = BTreeSet::new();

    // Pools: canonical CIDRs, sorted, one per CIDR.
    let mut pools: Vec<Pool> = inputs
        .pools
        .iter()
        .map(|p| Pool {
            cidr: p.cidr.trunc(),
            ..p.clone()
        })
        .collect();
    pools.sort();
    pools.dedup_by(|b, a| a.cidr == b.cidr);
    for p in &pools {
        if p.ipip_mode != EncapMode::Never && Family::of_net(&p.cidr) == Family::V6 {
            problems.insert(Problem::IpipOnIpv6Pool { pool: p.cidr });
        }
        if p.ipip_mode != EncapMode::Never && p.vxlan_mode != EncapMode::Never {
            problems.insert(Problem::BothEncapsulations { pool: p.cidr });
        }
    }
    let cx = Ctx { node, pools };

    // NAT description: every pool (disabled too), and the masquerading ones.
    let nat = NatOutgoing {
        all_pools: cx.pools.iter().map(|p| p.cidr).collect(),
        masquerade: cx
            .pools
            .iter()
            .filter(|p| p.nat_outgoing)
            .map(|p| p.cidr)
            .collect(),
    };

    // Our own blocks: blackholes (never for a single address).
    let own_blocks: BTreeSet<IpNet> = inputs.blocks.iter().map(|b| b.trunc()).collect();
    let mut routes: BTreeMap<IpNet, Route> = BTreeMap::new();
    for b in &own_blocks {
        if b.prefix_len() < b.max_prefix_len() {
            routes.insert(*b, Route::Blackhole);
        }
    }

    // Best routes, merged per canonical prefix.
    let mut best: BTreeMap<IpNet, BTreeSet<IpAddr>> = BTreeMap::new();
    for r in &inputs.routes {
        best.entry(r.prefix.trunc())
            .or_default()
            .extend(r.next_hops.iter().copied());
    }

    // First pass: a next-hop decision for every (prefix, next hop).
    let mut candidates: Vec<(IpNet, Vec<NextHop>)> = Vec::new();
    for (prefix, next_hops) in &best {
        if own_blocks.contains(prefix) {
            continue; // our block: the blackhole (or nothing, for a /32 or /128) stands
        }
        let family = Family::of_net(prefix);
        let tunnel = cx.pool_for(prefix).and_then(pool_tunnel);
        let mut nhs = Vec::new();
        for &nh in next_hops {
            if Family::of_addr(&nh) != family {
                problems.insert(Problem::NextHopFamilyMismatch {
                    prefix: *prefix,
                    next_hop: nh,
                });
                continue;
            }
            if nh.is_unspecified() || nh.is_multicast() {
                problems.insert(Problem::InvalidNextHop {
                    prefix: *prefix,
                    next_hop: nh,
                });
                continue;
            }
            if Some(nh) == cx.own_addr(family) {
                problems.insert(Problem::NextHopIsSelf {
                    prefix: *prefix,
                    next_hop: nh,
                });
                continue;
            }
            let same = cx.same_subnet(nh);
            let tunnel = tunnel.and_then(|(t, mode)| match mode {
                EncapMode::Always => Some(t),
                EncapMode::CrossSubnet if !same => Some(t),
                _ => None,
            });
            match tunnel {
                Some(Tunnel::Ipip) => nhs.push(NextHop {
                    gateway: nh,
                    device: Device::Tunl0,
                    onlink: true,
                }),
                Some(Tunnel::Vxlan) => {
                    if cx.own_addr(family).is_none() {
                        problems.insert(Problem::NoLocalAddress {
                            prefix: *prefix,
                            next_hop: nh,
                        });
                    } else {
                        nhs.push(NextHop {
                            gateway: nh,
                            device: Device::vxlan_for(family),
                            onlink: true,
                        });
                    }
                }
                None if same => nhs.push(NextHop {
                    gateway: nh,
                    device: Device::Underlay,
                    onlink: false,
                }),
                None => {
                    let via = cx.via_gateways(family);
                    if via.is_empty() {
                        problems.insert(Problem::Unresolvable {
                            prefix: *prefix,
                            next_hop: nh,
                        });
                    }
                    nhs.extend(via);
                }
            }
        }
        candidates.push((*prefix, nhs));
    }

    // VTEP MAC collisions, per VXLAN device: the lowest address keeps a MAC, or nobody does
    // when it is our own MAC.
    let mut dropped: BTreeSet<(Device, IpAddr)> = BTreeSet::new();
    for family in [Family::V4, Family::V6] {
        let dev = Device::vxlan_for(family);
        let mut by_mac: BTreeMap<Mac, Vec<IpAddr>> = BTreeMap::new();
        let remotes: BTreeSet<IpAddr> = candidates
            .iter()
            .flat_map(|(_, nhs)| nhs.iter())
            .filter(|nh| nh.device == dev)
            .map(|nh| nh.gateway)
            .collect();
        for r in remotes {
            by_mac.entry(vtep_mac(r)).or_default().push(r);
        }
        let own = cx.own_addr(family);
        let own_mac = own.map(vtep_mac);
        for (mac, addrs) in by_mac {
            let (kept, losers) = match own {
                Some(o) if own_mac == Some(mac) => (o, &addrs[..]),
                _ => (addrs[0], &addrs[1..]),
            };
            for &l in losers {
                problems.insert(Problem::VtepMacCollision {
                    mac,
                    kept,
                    dropped: l,
                });
                dropped.insert((dev, l));
            }
        }
    }

    // Second pass: the routes, and the neighbour and FDB entries their VXLAN next hops use.
    let mut neighbours = BTreeSet::new();
    let mut fdb = BTreeSet::new();
    for (prefix, mut nhs) in candidates {
        nhs.retain(|nh| !dropped.contains(&(nh.device, nh.gateway)));
        if nhs.is_empty() {
            problems.insert(Problem::NoUsableNextHop { prefix });
            continue;
        }
        for nh in &nhs {
            if matches!(nh.device, Device::Vxlan | Device::VxlanV6) {
                let mac = vtep_mac(nh.gateway);
                neighbours.insert(Neighbour {
                    device: nh.device,
                    addr: nh.gateway,
                    mac,
                });
                fdb.insert(FdbEntry {
                    device: nh.device,
                    mac,
                    dst: nh.gateway,
                });
            }
        }
        let prefsrc = if nhs.iter().any(|nh| nh.device.is_tunnel()) {
            cx.own_addr(Family::of_net(&prefix))
        } else {
            None
        };
        routes.insert(prefix, Route::unicast(nhs, prefsrc));
    }

    // Tunnel devices: needed when any pool (disabled ones too) uses the encapsulation, even if
    // no route does right now: a peer may still send to us encapsulated (module docs).
    let uses = |t: Tunnel, f: Family| {
        cx.pools
            .iter()
            .any(|p| Family::of_net(&p.cidr) == f && pool_tunnel(p).is_some_and(|(pt, _)| pt == t))
    };
    let mtu = node.underlay.mtu;
    let tunl0 = uses(Tunnel::Ipip, Family::V4).then(|| IpipTunnel {
        name: TUNL0.into(),
        mtu: mtu.saturating_sub(IPIP_OVERHEAD),
    });
    let vxlan_dev = |f: Family, name: &str, overhead: u32| {
        let local = cx.own_addr(f)?;
        uses(Tunnel::Vxlan, f).then(|| VxlanTunnel {
            name: name.into(),
            vni: inputs.vxlan.vni,
            port: inputs.vxlan.port,
            mac: vtep_mac(local),
            local,
            mtu: mtu.saturating_sub(overhead),
        })
    };
    let tunnels = Tunnels {
        tunl0,
        vxlan: vxlan_dev(Family::V4, VXLAN_V4, VXLAN_V4_OVERHEAD),
        vxlan_v6: vxlan_dev(Family::V6, VXLAN_V6, VXLAN_V6_OVERHEAD),
    };

    DesiredState {
        fib: Fib {
            routes,
            neighbours,
            fdb,
        },
        tunnels,
        nat,
        problems: problems.into_iter().collect(),
    }
}

//! The routing rules, once: how one best route becomes kernel next hops ([`Rules::decide`] and
//! [`Rules::finish`]), who keeps a VTEP MAC two remotes share ([`vtep_owner`]), and the
//! tunnel devices and NAT description of a pool set. [`compute`] and the incremental
//! [`super::Planner`] both drive these functions and nothing else decides a route.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::mac::{Mac, vtep_mac};
use super::planner::Planner;
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

/// Pools as the rules see them: canonical CIDRs, sorted, one per CIDR.
pub(crate) fn normalize_pools(pools: &[Pool]) -> Vec<Pool> {
    let mut pools: Vec<Pool> = pools
        .iter()
        .map(|p| Pool {
            cidr: p.cidr.trunc(),
            ..p.clone()
        })
        .collect();
    pools.sort();
    pools.dedup_by(|b, a| a.cidr == b.cidr);
    pools
}

/// Index of a family in per-family arrays.
pub(crate) fn fam(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// Everything the per-route rules depend on besides the route itself: this node and the
/// (normalized) pools. Built once per node/pool configuration.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    pub(crate) node: LocalNode,
    pub(crate) pools: Vec<Pool>,
    pub(crate) vxlan: VxlanSettings,
    /// Our own address per family.
    own: [Option<IpAddr>; 2],
    /// The underlay next hops that reach an off-link address, per family (module docs).
    via: [Vec<NextHop>; 2],
}

impl Rules {
    /// `pools` must be normalized ([`normalize_pools`]).
    pub(crate) fn new(node: LocalNode, pools: Vec<Pool>, vxlan: VxlanSettings) -> Rules {
        let own = [
            node.ipv4.map(|n| IpAddr::V4(n.addr())),
            node.ipv6.map(|n| IpAddr::V6(n.addr())),
        ];
        let mut r = Rules {
            node,
            pools,
            vxlan,
            own,
            via: [Vec::new(), Vec::new()],
        };
        r.via = [r.via_gateways(Family::V4), r.via_gateways(Family::V6)];
        r
    }

    pub(crate) fn own_addr(&self, f: Family) -> Option<IpAddr> {
        self.own[fam(f)]
    }

    /// Calico's "same subnet": our configured prefix contains the address. IPv6 link-local
    /// addresses are on-link on the underlay by definition and count as same subnet. Without
    /// our own address of that family nothing is same subnet (Felix's `nodeInOurSubnet`).
    fn same_subnet(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self.node.ipv4.is_some_and(|n| n.contains(&a)),
            IpAddr::V6(a) => {
                a.is_unicast_link_local() || self.node.ipv6.is_some_and(|n| n.contains(&a))
            }
        }
    }

    /// The pool governing `prefix`: the (most specific) pool containing it.
    fn pool_for(&self, prefix: &IpNet) -> Option<&Pool> {
        self.pools
            .iter()
            .filter(|p| p.cidr.contains(prefix))
            .max_by_key(|p| p.cidr.prefix_len())
    }

    /// The underlay next hops that reach an address that is not on-link: the default
    /// gateway(s), onlink when they are not inside our configured prefix (module docs).
    fn via_gateways(&self, f: Family) -> Vec<NextHop> {
        let u = &self.node.underlay;
        let gws: Vec<IpAddr> = match f {
            Family::V4 => u.gateways_v4.iter().map(|g| IpAddr::V4(*g)).collect(),
            Family::V6 => u.gateways_v6.iter().map(|g| IpAddr::V6(*g)).collect(),
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

    /// Problems of the pools themselves.
    pub(crate) fn pool_problems(&self) -> impl Iterator<Item = Problem> + '_ {
        self.pools.iter().flat_map(|p| {
            let v6_ipip = p.ipip_mode != EncapMode::Never && Family::of_net(&p.cidr) == Family::V6;
            let both = p.ipip_mode != EncapMode::Never && p.vxlan_mode != EncapMode::Never;
            [
                v6_ipip.then_some(Problem::IpipOnIpv6Pool { pool: p.cidr }),
                both.then_some(Problem::BothEncapsulations { pool: p.cidr }),
            ]
            .into_iter()
            .flatten()
        })
    }

    /// The first step for one remote best route (not one of our blocks): the kernel next hop
    /// each of its next hops becomes, before VTEP MAC collisions are taken into account.
    /// `next_hops` must be free of duplicates. Every problem found goes to `problem`; each
    /// names `prefix`, so a route owns its problems.
    pub(crate) fn decide(
        &self,
        prefix: IpNet,
        next_hops: &[IpAddr],
        mut problem: impl FnMut(Problem),
    ) -> Vec<NextHop> {
        let family = Family::of_net(&prefix);
        let tunnel = self.pool_for(&prefix).and_then(pool_tunnel);
        let own = self.own_addr(family);
        let mut nhs = Vec::with_capacity(next_hops.len());
        for &nh in next_hops {
            if Family::of_addr(&nh) != family {
                problem(Problem::NextHopFamilyMismatch {
                    prefix,
                    next_hop: nh,
                });
                continue;
            }
            if nh.is_unspecified() || nh.is_multicast() {
                problem(Problem::InvalidNextHop {
                    prefix,
                    next_hop: nh,
                });
                continue;
            }
            if Some(nh) == own {
                problem(Problem::NextHopIsSelf {
                    prefix,
                    next_hop: nh,
                });
                continue;
            }
            let same = self.same_subnet(nh);
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
                    if own.is_none() {
                        problem(Problem::NoLocalAddress {
                            prefix,
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
                    let via = &self.via[fam(family)];
                    if via.is_empty() {
                        problem(Problem::Unresolvable {
                            prefix,
                            next_hop: nh,
                        });
                    }
                    nhs.extend_from_slice(via);
                }
            }
        }
        nhs
    }

    /// The second step: the route from the decided next hops, without those towards a VTEP
    /// that lost its MAC to another, with the best route's `metric` (canonical). `None` = no
    /// usable next hop, nothing is installed ([`Problem::NoUsableNextHop`], which the caller
    /// records).
    pub(crate) fn finish(
        &self,
        prefix: IpNet,
        mut nhs: Vec<NextHop>,
        metric: u32,
        dropped: &HashSet<(Device, IpAddr)>,
    ) -> Option<Route> {
        if !dropped.is_empty() {
            nhs.retain(|nh| !dropped.contains(&(nh.device, nh.gateway)));
        }
        if nhs.is_empty() {
            return None;
        }
        let prefsrc = if nhs.iter().any(|nh| nh.device.is_tunnel()) {
            self.own_addr(Family::of_net(&prefix))
        } else {
            None
        };
        Some(Route::unicast(nhs, prefsrc, metric))
    }

    /// What one of our own blocks becomes: a blackhole, never for a single address.
    pub(crate) fn own_block_route(block: &IpNet) -> Option<Route> {
        (block.prefix_len() < block.max_prefix_len()).then_some(Route::Blackhole)
    }

    /// The tunnel devices: needed when any pool (disabled ones too) uses the encapsulation,
    /// even if no route does right now: a peer may still send to us encapsulated (module docs).
    pub(crate) fn tunnels(&self) -> Tunnels {
        let uses = |t: Tunnel, f: Family| {
            self.pools.iter().any(|p| {
                Family::of_net(&p.cidr) == f && pool_tunnel(p).is_some_and(|(pt, _)| pt == t)
            })
        };
        let mtu = self.node.underlay.mtu;
        let tunl0 = uses(Tunnel::Ipip, Family::V4).then(|| IpipTunnel {
            name: TUNL0.into(),
            mtu: mtu.saturating_sub(IPIP_OVERHEAD),
        });
        let vxlan_dev = |f: Family, name: &str, overhead: u32| {
            let local = self.own_addr(f)?;
            uses(Tunnel::Vxlan, f).then(|| VxlanTunnel {
                name: name.into(),
                vni: self.vxlan.vni,
                port: self.vxlan.port,
                mac: vtep_mac(local),
                local,
                mtu: mtu.saturating_sub(overhead),
            })
        };
        Tunnels {
            tunl0,
            vxlan: vxlan_dev(Family::V4, VXLAN_V4, VXLAN_V4_OVERHEAD),
            vxlan_v6: vxlan_dev(Family::V6, VXLAN_V6, VXLAN_V6_OVERHEAD),
        }
    }

    /// NAT description: every pool (disabled too), and the masquerading ones.
    pub(crate) fn nat(&self) -> NatOutgoing {
        NatOutgoing {
            all_pools: self.pools.iter().map(|p| p.cidr).collect(),
            masquerade: self
                .pools
                .iter()
                .filter(|p| p.nat_outgoing)
                .map(|p| p.cidr)
                .collect(),
        }
    }
}

/// Who keeps a VTEP MAC that the remotes `addrs` (referenced through `device`, at least one)
/// all derive: our own address when it is ours (every remote loses), else the lowest
/// address. Returns the keeper and the losers, in address order.
pub(crate) fn vtep_owner(
    own: Option<IpAddr>,
    mac: Mac,
    addrs: &BTreeSet<IpAddr>,
) -> (IpAddr, Vec<IpAddr>) {
    match own {
        Some(o) if vtep_mac(o) == mac => (o, addrs.iter().copied().collect()),
        _ => {
            let mut it = addrs.iter().copied();
            let kept = it.next().expect("a MAC group is never empty");
            (kept, it.collect())
        }
    }
}

/// Compute the desired state. Pure: no I/O, and the result depends only on the *sets* in
/// `inputs` (the order of pools, blocks, routes and next hops does not matter).
///
/// The same as building a [`Planner`] and taking its state: the planner's bulk start applies
/// the same rules in two passes (decide every route, settle VTEP MAC collisions, finish every
/// route), and its incremental updates re-apply them to what a change touches.
pub fn compute(inputs: &Inputs) -> DesiredState {
    Planner::new(inputs).into_state()
}

//! Property tests (proptest) of the diff and of `compute`: applying the diff gives the desired
//! state, transitions keep routes resolvable, input order never matters, and every computed
//! state is consistent and installable from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::diff::check_transition_keeps_routes_resolvable;
use super::*;

// ---------------------------------------------------------------------------------------------
// property tests

fn arb_v4() -> impl Strategy<Value = IpAddr> {
    // A small space, so that states overlap.
    (1u8..4, 0u8..6).prop_map(|(c, d)| IpAddr::V4(Ipv4Addr::new(198, 18, c, d)))
}

fn arb_v6() -> impl Strategy<Value = IpAddr> {
    (1u16..4, 0u16..6).prop_map(|(s, h)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, s, 0, 0, 0, 0, h)))
}

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (0u8..8, prop_oneof![Just(26u8), Just(32u8)]).prop_map(|(i, l)| IpNet::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::new(198, 19, i, 0), l).unwrap()
        )),
        (0u16..8).prop_map(|i| IpNet::V6(
            ipnet::Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0xff, i, 0, 0, 0, 0), 122).unwrap()
        )),
    ]
}

fn arb_device() -> impl Strategy<Value = Device> {
    prop_oneof![
        Just(Device::Underlay),
        Just(Device::Tunl0),
        Just(Device::Vxlan),
        Just(Device::VxlanV6)
    ]
}

fn arb_route() -> impl Strategy<Value = Route> {
    prop_oneof![
        1 => Just(Route::Blackhole),
        4 => (
            prop::collection::vec(
                (prop_oneof![arb_v4(), arb_v6()], arb_device(), any::<bool>())
                    .prop_map(|(gateway, device, onlink)| NextHop { gateway, device, onlink }),
                1..4,
            ),
            prop::option::of(arb_v4()),
            prop_oneof![2 => Just(0u32), 1 => Just(512), 1 => Just(2048)],
        )
            .prop_map(|(nexthops, prefsrc, metric)| Route::Unicast { nexthops, prefsrc, metric }),
    ]
}

fn arb_mac() -> impl Strategy<Value = Mac> {
    (0u8..4).prop_map(|b| Mac([0x02, 0x74, 0, 0, 0, b]))
}

fn arb_fib() -> impl Strategy<Value = Fib> {
    (
        prop::collection::btree_map(arb_prefix(), arb_route(), 0..8),
        // One neighbour per (device, addr), as the kernel holds them.
        prop::collection::btree_map(
            (
                prop_oneof![Just(Device::Vxlan), Just(Device::VxlanV6)],
                prop_oneof![arb_v4(), arb_v6()],
            ),
            arb_mac(),
            0..6,
        ),
        prop::collection::btree_set(
            (
                prop_oneof![Just(Device::Vxlan), Just(Device::VxlanV6)],
                arb_mac(),
                prop_oneof![arb_v4(), arb_v6()],
            )
                .prop_map(|(device, mac, dst)| FdbEntry { device, mac, dst }),
            0..6,
        ),
    )
        .prop_map(|(routes, neigh, fdb)| Fib {
            routes,
            neighbours: neigh
                .into_iter()
                .map(|((device, addr), mac)| Neighbour { device, addr, mac })
                .collect(),
            fdb,
        })
}

fn arb_mode() -> impl Strategy<Value = EncapMode> {
    prop_oneof![Just(Always), Just(CrossSubnet), Just(Never)]
}

fn arb_inputs() -> impl Strategy<Value = Inputs> {
    let pools = (
        arb_mode(),
        arb_mode(),
        arb_mode(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(a, b, c, nat, dis)| {
            let mut p1 = pool("198.19.0.0/18", a, Never);
            p1.nat_outgoing = nat;
            let p2 = pool("198.19.64.0/18", Never, b);
            let mut p3 = pool("2001:db8:ff::/48", Never, c);
            p3.disabled = dis;
            vec![p1, p2, p3]
        });
    let routes = prop::collection::vec(
        (
            prop_oneof![
                arb_prefix(),
                (64u8..72).prop_map(|i| IpNet::V4(
                    ipnet::Ipv4Net::new(Ipv4Addr::new(198, 19, i, 0), 26).unwrap()
                )),
                Just(net("0.0.0.0/0")),
                Just(net("203.0.113.0/24")),
            ],
            prop::collection::vec(
                prop_oneof![4 => arb_v4(), 4 => arb_v6(), 1 => Just(ip("198.18.1.10"))],
                0..4,
            ),
            prop_oneof![3 => Just(None), 1 => Just(Some(0u32)), 1 => Just(Some(512)), 1 => Just(Some(1024))],
        )
            .prop_map(|(prefix, next_hops, priority)| BestRoute { prefix, next_hops, priority }),
        0..10,
    );
    let blocks = prop::collection::vec(arb_prefix(), 0..3);
    let gws = (any::<bool>(), any::<bool>());
    (pools, routes, blocks, gws).prop_map(|(pools, routes, blocks, (g4, g6))| {
        let mut i = Inputs {
            node: node(),
            pools,
            blocks,
            routes,
            vxlan: VxlanSettings::default(),
        };
        if !g4 {
            i.node.underlay.gateways_v4.clear();
        }
        if !g6 {
            i.node.underlay.gateways_v6.clear();
        }
        i
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn prop_diff_applied_to_current_gives_desired(cur in arb_fib(), des in arb_fib()) {
        let ops = diff(&cur, &des);
        let mut k = cur.clone();
        k.apply_all(&ops).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(k.normalized(), des.normalized());
        prop_assert_eq!(diff(&k, &des), vec![]);
    }

    #[test]
    fn prop_diff_of_a_state_with_itself_is_empty(f in arb_fib()) {
        prop_assert_eq!(diff(&f, &f), vec![]);
    }

    #[test]
    fn prop_route_and_neighbour_ops_are_one_per_changed_key(cur in arb_fib(), des in arb_fib()) {
        let ops = diff(&cur, &des);
        let route_ops = ops.iter().filter(|o| matches!(o, Op::AddRoute{..} | Op::ReplaceRoute{..} | Op::MoveRoute{..} | Op::DelRoute{..})).count();
        let changed_routes = cur.routes.keys().chain(des.routes.keys()).collect::<BTreeSet<_>>().into_iter()
            .filter(|p| cur.routes.get(p).map(Route::normalized) != des.routes.get(p).map(Route::normalized))
            .count();
        prop_assert_eq!(route_ops, changed_routes);
        let neigh_ops = ops.iter().filter(|o| matches!(o, Op::AddNeighbour(_) | Op::ReplaceNeighbour(_) | Op::DelNeighbour(_))).count();
        let cn: BTreeMap<_, _> = cur.neighbours.iter().map(|n| ((n.device, n.addr), n.mac)).collect();
        let dn: BTreeMap<_, _> = des.neighbours.iter().map(|n| ((n.device, n.addr), n.mac)).collect();
        let changed_neigh = cn.keys().chain(dn.keys()).collect::<BTreeSet<_>>().into_iter().filter(|k| cn.get(k) != dn.get(k)).count();
        prop_assert_eq!(neigh_ops, changed_neigh);
    }

    #[test]
    fn prop_transition_of_computed_states_keeps_routes_resolvable(a in arb_inputs(), b in arb_inputs()) {
        let (cur, des) = (compute(&a).fib, compute(&b).fib);
        check_transition_keeps_routes_resolvable(&cur, &des, &diff(&cur, &des));
    }

    #[test]
    fn prop_compute_is_independent_of_input_order(i in arb_inputs(), seed in any::<u64>()) {
        let mut j = i.clone();
        // A deterministic shuffle: rotate and reverse by the seed.
        let r = (seed % 7) as usize;
        if !j.routes.is_empty() { let n = j.routes.len(); j.routes.rotate_left(r % n); }
        j.routes.reverse();
        for rt in &mut j.routes { rt.next_hops.reverse(); }
        j.pools.reverse();
        j.blocks.reverse();
        prop_assert_eq!(compute(&i), compute(&j));
    }

    #[test]
    fn prop_computed_state_is_consistent(i in arb_inputs()) {
        let s = compute(&i);
        let n = &i.node;
        let own: BTreeSet<IpNet> = i.blocks.iter().map(|b| b.trunc()).collect();
        for (p, r) in &s.fib.routes {
            prop_assert_eq!(*p, p.trunc());
            match r {
                Route::Blackhole => {
                    prop_assert!(own.contains(p));
                    prop_assert!(p.prefix_len() < p.max_prefix_len());
                }
                Route::Unicast { nexthops, prefsrc, metric } => {
                    prop_assert!(!own.contains(p));
                    // The lowest priority of the prefix's entries, canonical.
                    let lowest = i.routes.iter().filter(|b| b.prefix.trunc() == *p).filter_map(|b| b.priority).min();
                    prop_assert_eq!(*metric, canonical_metric(p, lowest.unwrap_or(0)));
                    prop_assert!(!nexthops.is_empty());
                    prop_assert_eq!(r, &r.normalized());
                    for nh in nexthops {
                        prop_assert_eq!(Family::of_addr(&nh.gateway), Family::of_net(p));
                        prop_assert_ne!(Some(nh.gateway), n.ipv4.map(|a| IpAddr::V4(a.addr())));
                        prop_assert_ne!(Some(nh.gateway), n.ipv6.map(|a| IpAddr::V6(a.addr())));
                        match nh.device {
                            // Never a gateway the kernel cannot use.
                            Device::Underlay => {
                                let connected = match nh.gateway {
                                    IpAddr::V4(g) => n.ipv4.is_some_and(|a| a.contains(&g)),
                                    IpAddr::V6(g) => g.is_unicast_link_local() || n.ipv6.is_some_and(|a| a.contains(&g)),
                                };
                                prop_assert!(nh.onlink || connected);
                            }
                            Device::Tunl0 => {
                                prop_assert!(nh.onlink && p.network().is_ipv4());
                                prop_assert!(s.tunnels.tunl0.is_some());
                            }
                            Device::Vxlan | Device::VxlanV6 => {
                                prop_assert!(nh.onlink);
                                let mac = vtep_mac(nh.gateway);
                                let neigh = Neighbour { device: nh.device, addr: nh.gateway, mac };
                                let fdb = FdbEntry { device: nh.device, mac, dst: nh.gateway };
                                let dev = if nh.device == Device::Vxlan { &s.tunnels.vxlan } else { &s.tunnels.vxlan_v6 };
                                prop_assert!(s.fib.neighbours.contains(&neigh));
                                prop_assert!(s.fib.fdb.contains(&fdb));
                                prop_assert!(dev.is_some());
                            }
                        }
                    }
                    prop_assert_eq!(prefsrc.is_some(), nexthops.iter().any(|h| h.device.is_tunnel()));
                }
            }
        }
        for b in &own {
            if b.prefix_len() < b.max_prefix_len() {
                prop_assert_eq!(s.fib.routes.get(b), Some(&Route::Blackhole));
            }
        }
        // No orphan neighbour or FDB entry.
        let used: BTreeSet<(Device, IpAddr)> = s.fib.routes.values().flat_map(|r| r.nexthops().iter().map(|h| (h.device, h.gateway))).collect();
        for nb in &s.fib.neighbours { prop_assert!(used.contains(&(nb.device, nb.addr))); }
        prop_assert_eq!(s.fib.neighbours.len(), s.fib.fdb.len());
    }

    #[test]
    fn prop_installing_a_computed_state_from_scratch_gives_it(i in arb_inputs()) {
        let des = compute(&i).fib;
        let mut k = Fib::default();
        k.apply_all(&diff(&k.clone(), &des)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&k, &des);
    }
}

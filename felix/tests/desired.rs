//! The pure desired-state computation and diff (`tortie_felix::desired`): one behaviour per
//! test, IPv4 and IPv6, plus property tests of the diff and of `compute`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;
use tortie_felix::desired::*;

// ---------------------------------------------------------------------------------------------
// helpers

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Node "a": 198.18.1.10/24 and 2001:db8:1::10/64 on eth0, default gateways 198.18.1.1 and
/// fe80::1, MTU 1500.
fn node() -> LocalNode {
    LocalNode {
        name: "a".into(),
        ipv4: Some("198.18.1.10/24".parse().unwrap()),
        ipv6: Some("2001:db8:1::10/64".parse().unwrap()),
        underlay: Underlay {
            name: "eth0".into(),
            index: Some(2),
            gateways_v4: vec!["198.18.1.1".parse().unwrap()],
            gateways_v6: vec!["fe80::1".parse().unwrap()],
            mtu: 1500,
        },
    }
}

fn pool(cidr: &str, ipip: EncapMode, vxlan: EncapMode) -> Pool {
    Pool {
        cidr: net(cidr),
        ipip_mode: ipip,
        vxlan_mode: vxlan,
        nat_outgoing: false,
        disabled: false,
    }
}

use EncapMode::{Always, CrossSubnet, Never};

fn best(prefix: &str, nhs: &[&str]) -> BestRoute {
    BestRoute {
        prefix: net(prefix),
        next_hops: nhs.iter().map(|s| ip(s)).collect(),
    }
}

fn inputs(pools: Vec<Pool>, blocks: &[&str], routes: Vec<BestRoute>) -> Inputs {
    Inputs {
        node: node(),
        pools,
        blocks: blocks.iter().map(|b| net(b)).collect(),
        routes,
        vxlan: VxlanSettings::default(),
    }
}

fn hop(gw: &str, device: Device, onlink: bool) -> NextHop {
    NextHop {
        gateway: ip(gw),
        device,
        onlink,
    }
}

fn route_of(s: &DesiredState, prefix: &str) -> Option<Route> {
    s.fib.routes.get(&net(prefix)).cloned()
}

fn hops_of(s: &DesiredState, prefix: &str) -> Vec<NextHop> {
    route_of(s, prefix)
        .unwrap_or_else(|| panic!("no route {prefix}"))
        .nexthops()
        .to_vec()
}

/// One remote block 198.19.5.0/26 in pool 198.19.0.0/16 with the given modes, via `nh`.
fn one_v4(ipip: EncapMode, vxlan: EncapMode, nh: &str) -> DesiredState {
    compute(&inputs(
        vec![pool("198.19.0.0/16", ipip, vxlan)],
        &[],
        vec![best("198.19.5.0/26", &[nh])],
    ))
}

/// One remote block 2001:db8:ff:5::/122 in pool 2001:db8:ff::/48 with the given VXLAN mode.
fn one_v6(vxlan: EncapMode, nh: &str) -> DesiredState {
    compute(&inputs(
        vec![pool("2001:db8:ff::/48", Never, vxlan)],
        &[],
        vec![best("2001:db8:ff:5::/122", &[nh])],
    ))
}

const SAME4: &str = "198.18.1.20";
const OTHER4: &str = "198.18.2.20";
const SAME6: &str = "2001:db8:1::20";
const OTHER6: &str = "2001:db8:2::20";

// ---------------------------------------------------------------------------------------------
// direct routing (host-gw)

#[test]
fn same_subnet_never_routes_via_underlay_v4() {
    let s = one_v4(Never, Never, SAME4);
    assert_eq!(
        route_of(&s, "198.19.5.0/26"),
        Some(Route::Unicast {
            nexthops: vec![hop(SAME4, Device::Underlay, false)],
            prefsrc: None
        })
    );
    assert!(s.fib.neighbours.is_empty() && s.fib.fdb.is_empty() && s.problems.is_empty());
}

#[test]
fn same_subnet_never_routes_via_underlay_v6() {
    let s = one_v6(Never, SAME6);
    assert_eq!(
        hops_of(&s, "2001:db8:ff:5::/122"),
        vec![hop(SAME6, Device::Underlay, false)]
    );
    assert!(s.problems.is_empty());
}

#[test]
fn ipip_cross_subnet_same_subnet_next_hop_routes_via_underlay() {
    let s = one_v4(CrossSubnet, Never, SAME4);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(SAME4, Device::Underlay, false)]
    );
}

#[test]
fn vxlan_cross_subnet_same_subnet_next_hop_is_direct_without_neighbour_v4() {
    let s = one_v4(Never, CrossSubnet, SAME4);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(SAME4, Device::Underlay, false)]
    );
    assert!(s.fib.neighbours.is_empty() && s.fib.fdb.is_empty());
}

#[test]
fn vxlan_cross_subnet_same_subnet_next_hop_is_direct_v6() {
    let s = one_v6(CrossSubnet, SAME6);
    assert_eq!(
        hops_of(&s, "2001:db8:ff:5::/122"),
        vec![hop(SAME6, Device::Underlay, false)]
    );
    assert!(s.fib.neighbours.is_empty());
}

#[test]
fn link_local_v6_next_hop_is_on_link() {
    let s = one_v6(CrossSubnet, "fe80::20");
    assert_eq!(
        hops_of(&s, "2001:db8:ff:5::/122"),
        vec![hop("fe80::20", Device::Underlay, false)]
    );
}

// ---------------------------------------------------------------------------------------------
// IPIP

#[test]
fn ipip_always_routes_via_tunl0_onlink_even_in_same_subnet() {
    let s = one_v4(Always, Never, SAME4);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(SAME4, Device::Tunl0, true)]
    );
}

#[test]
fn ipip_cross_subnet_other_subnet_routes_via_tunl0_onlink() {
    let s = one_v4(CrossSubnet, Never, OTHER4);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(OTHER4, Device::Tunl0, true)]
    );
    assert!(
        s.fib.neighbours.is_empty(),
        "IPIP needs no neighbour entries"
    );
}

#[test]
fn ipip_mode_on_ipv6_pool_is_treated_as_never() {
    let s = compute(&inputs(
        vec![pool("2001:db8:ff::/48", Always, Never)],
        &[],
        vec![best("2001:db8:ff:5::/122", &[SAME6])],
    ));
    assert_eq!(
        hops_of(&s, "2001:db8:ff:5::/122"),
        vec![hop(SAME6, Device::Underlay, false)]
    );
    assert!(s.problems.contains(&Problem::IpipOnIpv6Pool {
        pool: net("2001:db8:ff::/48")
    }));
    assert_eq!(s.tunnels.tunl0, None);
}

// ---------------------------------------------------------------------------------------------
// VXLAN

#[test]
fn vxlan_always_routes_via_vxlan_with_neighbour_and_fdb_v4() {
    let s = one_v4(Never, Always, SAME4);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(SAME4, Device::Vxlan, true)]
    );
    let mac = vtep_mac(ip(SAME4));
    assert_eq!(
        s.fib.neighbours,
        BTreeSet::from([Neighbour {
            device: Device::Vxlan,
            addr: ip(SAME4),
            mac
        }])
    );
    assert_eq!(
        s.fib.fdb,
        BTreeSet::from([FdbEntry {
            device: Device::Vxlan,
            mac,
            dst: ip(SAME4)
        }])
    );
}

#[test]
fn vxlan_cross_subnet_other_subnet_routes_via_vxlan_v4() {
    let s = one_v4(Never, CrossSubnet, OTHER4);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(OTHER4, Device::Vxlan, true)]
    );
    assert_eq!(s.fib.neighbours.len(), 1);
    assert_eq!(s.fib.fdb.len(), 1);
}

#[test]
fn vxlan_always_routes_via_vxlan_v6_with_neighbour_and_fdb() {
    let s = one_v6(Always, SAME6);
    assert_eq!(
        hops_of(&s, "2001:db8:ff:5::/122"),
        vec![hop(SAME6, Device::VxlanV6, true)]
    );
    let mac = vtep_mac(ip(SAME6));
    assert_eq!(
        s.fib.neighbours,
        BTreeSet::from([Neighbour {
            device: Device::VxlanV6,
            addr: ip(SAME6),
            mac
        }])
    );
    assert_eq!(
        s.fib.fdb,
        BTreeSet::from([FdbEntry {
            device: Device::VxlanV6,
            mac,
            dst: ip(SAME6)
        }])
    );
}

#[test]
fn vxlan_cross_subnet_other_subnet_routes_via_vxlan_v6() {
    let s = one_v6(CrossSubnet, OTHER6);
    assert_eq!(
        hops_of(&s, "2001:db8:ff:5::/122"),
        vec![hop(OTHER6, Device::VxlanV6, true)]
    );
}

#[test]
fn one_neighbour_and_fdb_entry_per_remote_node_not_per_route() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", Never, Always)],
        &[],
        vec![
            best("198.19.5.0/26", &[OTHER4]),
            best("198.19.5.64/26", &[OTHER4]),
            best("198.19.6.0/26", &["198.18.2.30"]),
        ],
    ));
    assert_eq!(s.fib.routes.len(), 3);
    assert_eq!(s.fib.neighbours.len(), 2);
    assert_eq!(s.fib.fdb.len(), 2);
}

#[test]
fn vxlan_takes_precedence_when_a_pool_sets_both_encapsulations() {
    let s = one_v4(Always, Always, OTHER4);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(OTHER4, Device::Vxlan, true)]
    );
    assert!(s.problems.contains(&Problem::BothEncapsulations {
        pool: net("198.19.0.0/16")
    }));
}

#[test]
fn vxlan_without_own_address_of_the_family_drops_the_next_hop() {
    let mut i = inputs(
        vec![pool("2001:db8:ff::/48", Never, Always)],
        &[],
        vec![best("2001:db8:ff:5::/122", &[OTHER6])],
    );
    i.node.ipv6 = None;
    let s = compute(&i);
    assert_eq!(route_of(&s, "2001:db8:ff:5::/122"), None);
    assert!(s.problems.contains(&Problem::NoLocalAddress {
        prefix: net("2001:db8:ff:5::/122"),
        next_hop: ip(OTHER6)
    }));
    assert_eq!(s.tunnels.vxlan_v6, None);
}

// ---------------------------------------------------------------------------------------------
// encap Never across subnets: recursive through the underlay gateway

#[test]
fn never_other_subnet_resolves_through_default_gateway_v4() {
    let s = one_v4(Never, Never, OTHER4);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop("198.18.1.1", Device::Underlay, false)]
    );
}

#[test]
fn never_other_subnet_resolves_through_link_local_gateway_v6() {
    let s = one_v6(Never, OTHER6);
    assert_eq!(
        hops_of(&s, "2001:db8:ff:5::/122"),
        vec![hop("fe80::1", Device::Underlay, false)]
    );
}

#[test]
fn ipip_cross_subnet_pool_on_same_subnet_rule_never_uses_gateway() {
    // CrossSubnet with the next hop in our subnet is direct to the node, not via the gateway.
    let s = one_v4(CrossSubnet, Never, SAME4);
    assert!(
        hops_of(&s, "198.19.5.0/26")
            .iter()
            .all(|h| h.gateway == ip(SAME4))
    );
}

#[test]
fn never_other_subnet_without_gateway_emits_no_route() {
    let mut i = inputs(
        vec![pool("198.19.0.0/16", Never, Never)],
        &[],
        vec![best("198.19.5.0/26", &[OTHER4])],
    );
    i.node.underlay.gateways_v4.clear();
    let s = compute(&i);
    assert_eq!(route_of(&s, "198.19.5.0/26"), None);
    assert!(s.problems.contains(&Problem::Unresolvable {
        prefix: net("198.19.5.0/26"),
        next_hop: ip(OTHER4)
    }));
    assert!(s.problems.contains(&Problem::NoUsableNextHop {
        prefix: net("198.19.5.0/26")
    }));
}

#[test]
fn gateway_outside_our_prefix_is_onlink() {
    // A /32 node address with an onlink default route (as some clouds do).
    let mut i = inputs(vec![], &[], vec![best("198.19.5.0/26", &[OTHER4])]);
    i.node.ipv4 = Some("198.18.1.10/32".parse().unwrap());
    i.node.underlay.gateways_v4 = vec!["172.31.1.1".parse().unwrap()];
    let s = compute(&i);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop("172.31.1.1", Device::Underlay, true)]
    );
}

#[test]
fn two_default_gateways_give_a_multipath_route() {
    let mut i = inputs(vec![], &[], vec![best("198.19.5.0/26", &[OTHER4])]);
    i.node.underlay.gateways_v4 =
        vec!["198.18.1.2".parse().unwrap(), "198.18.1.1".parse().unwrap()];
    let s = compute(&i);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![
            hop("198.18.1.1", Device::Underlay, false),
            hop("198.18.1.2", Device::Underlay, false)
        ]
    );
}

#[test]
fn ecmp_next_hops_behind_the_same_gateway_merge_into_one() {
    let s = compute(&inputs(
        vec![],
        &[],
        vec![best("198.19.5.0/26", &[OTHER4, "198.18.3.9"])],
    ));
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop("198.18.1.1", Device::Underlay, false)]
    );
}

// ---------------------------------------------------------------------------------------------
// CrossSubnet boundaries

#[test]
fn cross_subnet_boundary_v4_edges_of_our_prefix() {
    // Our prefix 198.18.1.0/24: its first and last addresses are same subnet, the addresses
    // just outside are not.
    for (nh, same) in [
        ("198.18.1.0", true),
        ("198.18.1.255", true),
        ("198.18.0.255", false),
        ("198.18.2.0", false),
    ] {
        let s = one_v4(CrossSubnet, Never, nh);
        let want = if same {
            hop(nh, Device::Underlay, false)
        } else {
            hop(nh, Device::Tunl0, true)
        };
        assert_eq!(hops_of(&s, "198.19.5.0/26"), vec![want], "next hop {nh}");
    }
}

#[test]
fn cross_subnet_boundary_v6_edges_of_our_prefix() {
    for (nh, same) in [
        ("2001:db8:1::", true),
        ("2001:db8:1:0:ffff:ffff:ffff:ffff", true),
        ("2001:db8:0:ffff:ffff:ffff:ffff:ffff", false),
        ("2001:db8:1:1::", false),
    ] {
        let s = one_v6(CrossSubnet, nh);
        let want = if same {
            hop(nh, Device::Underlay, false)
        } else {
            hop(nh, Device::VxlanV6, true)
        };
        assert_eq!(
            hops_of(&s, "2001:db8:ff:5::/122"),
            vec![want],
            "next hop {nh}"
        );
    }
}

#[test]
fn cross_subnet_uses_the_configured_prefix_length_not_a_default() {
    let mut i = inputs(
        vec![pool("198.19.0.0/16", CrossSubnet, Never)],
        &[],
        vec![best("198.19.5.0/26", &[OTHER4])],
    );
    i.node.ipv4 = Some("198.18.1.10/16".parse().unwrap());
    let s = compute(&i);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(OTHER4, Device::Underlay, false)]
    );
}

#[test]
fn without_own_address_nothing_is_same_subnet() {
    let mut i = inputs(
        vec![pool("198.19.0.0/16", CrossSubnet, Never)],
        &[],
        vec![best("198.19.5.0/26", &[SAME4])],
    );
    i.node.ipv4 = None;
    let s = compute(&i);
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(SAME4, Device::Tunl0, true)]
    );
}

// ---------------------------------------------------------------------------------------------
// ECMP

#[test]
fn ecmp_mixed_same_and_cross_subnet_ipip_decides_per_next_hop() {
    let s = one_ecmp(
        vec![pool("198.19.0.0/16", CrossSubnet, Never)],
        "198.19.5.0/26",
        &[SAME4, OTHER4],
    );
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![
            hop(SAME4, Device::Underlay, false),
            hop(OTHER4, Device::Tunl0, true)
        ]
    );
    assert_eq!(
        route_of(&s, "198.19.5.0/26").unwrap(),
        Route::unicast(
            vec![
                hop(SAME4, Device::Underlay, false),
                hop(OTHER4, Device::Tunl0, true)
            ],
            Some(ip("198.18.1.10")),
        )
    );
}

#[test]
fn ecmp_mixed_same_and_cross_subnet_vxlan_v4() {
    let s = one_ecmp(
        vec![pool("198.19.0.0/16", Never, CrossSubnet)],
        "198.19.5.0/26",
        &[OTHER4, SAME4],
    );
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![
            hop(SAME4, Device::Underlay, false),
            hop(OTHER4, Device::Vxlan, true)
        ]
    );
    // Only the encapsulated next hop needs neighbour and FDB entries.
    assert_eq!(s.fib.neighbours.len(), 1);
    assert_eq!(s.fib.neighbours.iter().next().unwrap().addr, ip(OTHER4));
}

#[test]
fn ecmp_mixed_same_and_cross_subnet_vxlan_v6() {
    let s = one_ecmp(
        vec![pool("2001:db8:ff::/48", Never, CrossSubnet)],
        "2001:db8:ff:5::/122",
        &[SAME6, OTHER6],
    );
    assert_eq!(
        hops_of(&s, "2001:db8:ff:5::/122"),
        vec![
            hop(SAME6, Device::Underlay, false),
            hop(OTHER6, Device::VxlanV6, true)
        ]
    );
}

#[test]
fn ecmp_never_mixed_direct_and_recursive() {
    let s = one_ecmp(
        vec![pool("198.19.0.0/16", Never, Never)],
        "198.19.5.0/26",
        &[SAME4, OTHER4],
    );
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![
            hop("198.18.1.1", Device::Underlay, false),
            hop(SAME4, Device::Underlay, false)
        ]
    );
}

#[test]
fn ecmp_duplicate_next_hops_collapse() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", Always, Never)],
        &[],
        vec![
            best("198.19.5.0/26", &[OTHER4, OTHER4]),
            best("198.19.5.0/26", &[OTHER4]),
        ],
    ));
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(OTHER4, Device::Tunl0, true)]
    );
}

#[test]
fn ecmp_keeps_usable_next_hops_when_one_is_unusable() {
    let s = one_ecmp(
        vec![pool("198.19.0.0/16", Never, Never)],
        "198.19.5.0/26",
        &[SAME4, "198.18.1.10"],
    );
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(SAME4, Device::Underlay, false)]
    );
    assert!(s.problems.contains(&Problem::NextHopIsSelf {
        prefix: net("198.19.5.0/26"),
        next_hop: ip("198.18.1.10")
    }));
}

fn one_ecmp(pools: Vec<Pool>, prefix: &str, nhs: &[&str]) -> DesiredState {
    compute(&inputs(pools, &[], vec![best(prefix, nhs)]))
}

// ---------------------------------------------------------------------------------------------
// odd next hops

#[test]
fn next_hop_equal_to_own_address_is_skipped() {
    let s = one_v4(Never, Never, "198.18.1.10");
    assert_eq!(route_of(&s, "198.19.5.0/26"), None);
    assert!(s.problems.contains(&Problem::NoUsableNextHop {
        prefix: net("198.19.5.0/26")
    }));
}

#[test]
fn next_hop_of_the_other_family_is_skipped() {
    let s = one_v4(Never, Never, SAME6);
    assert_eq!(route_of(&s, "198.19.5.0/26"), None);
    assert!(s.problems.contains(&Problem::NextHopFamilyMismatch {
        prefix: net("198.19.5.0/26"),
        next_hop: ip(SAME6)
    }));
}

#[test]
fn unspecified_next_hop_is_skipped() {
    let s = one_v4(Never, Never, "0.0.0.0");
    assert_eq!(route_of(&s, "198.19.5.0/26"), None);
}

// ---------------------------------------------------------------------------------------------
// blackholes and own blocks

#[test]
fn own_blocks_get_blackholes_v4_and_v6() {
    let s = compute(&inputs(
        vec![],
        &["198.19.1.0/26", "2001:db8:ff:1::/122"],
        vec![],
    ));
    assert_eq!(route_of(&s, "198.19.1.0/26"), Some(Route::Blackhole));
    assert_eq!(route_of(&s, "2001:db8:ff:1::/122"), Some(Route::Blackhole));
    assert_eq!(s.fib.routes.len(), 2);
}

#[test]
fn own_slash32_and_slash128_blocks_get_no_blackhole() {
    let s = compute(&inputs(
        vec![],
        &["198.19.1.7/32", "2001:db8:ff:1::7/128"],
        vec![],
    ));
    assert!(s.fib.routes.is_empty());
}

#[test]
fn own_block_with_host_bits_is_canonicalised() {
    let s = compute(&inputs(vec![], &["198.19.1.5/26"], vec![]));
    assert_eq!(route_of(&s, "198.19.1.0/26"), Some(Route::Blackhole));
}

#[test]
fn best_route_for_own_block_is_not_installed_as_remote() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", Always, Never)],
        &["198.19.1.0/26", "198.19.1.77/32"],
        vec![
            best("198.19.1.0/26", &[OTHER4]),
            best("198.19.1.77/32", &[OTHER4]),
        ],
    ));
    assert_eq!(route_of(&s, "198.19.1.0/26"), Some(Route::Blackhole));
    assert_eq!(route_of(&s, "198.19.1.77/32"), None);
}

#[test]
fn remote_host_route_inside_own_block_is_installed() {
    // An address of our block borrowed by another node: the /32 beats our blackhole.
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", CrossSubnet, Never)],
        &["198.19.1.0/26"],
        vec![best("198.19.1.9/32", &[OTHER4])],
    ));
    assert_eq!(route_of(&s, "198.19.1.0/26"), Some(Route::Blackhole));
    assert_eq!(
        hops_of(&s, "198.19.1.9/32"),
        vec![hop(OTHER4, Device::Tunl0, true)]
    );
}

// ---------------------------------------------------------------------------------------------
// pools: which governs, prefixes outside all pools, disabled pools

#[test]
fn the_pool_containing_the_block_governs_the_route() {
    let s = compute(&inputs(
        vec![
            pool("198.19.0.0/17", Always, Never),
            pool("198.19.128.0/17", Never, Always),
        ],
        &[],
        vec![
            best("198.19.5.0/26", &[SAME4]),
            best("198.19.200.0/26", &[SAME4]),
        ],
    ));
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(SAME4, Device::Tunl0, true)]
    );
    assert_eq!(
        hops_of(&s, "198.19.200.0/26"),
        vec![hop(SAME4, Device::Vxlan, true)]
    );
}

#[test]
fn route_equal_to_a_pool_cidr_is_governed_by_it() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", Always, Never)],
        &[],
        vec![best("198.19.0.0/16", &[SAME4])],
    ));
    assert_eq!(
        hops_of(&s, "198.19.0.0/16"),
        vec![hop(SAME4, Device::Tunl0, true)]
    );
}

#[test]
fn prefix_outside_all_pools_is_a_plain_route_via_the_next_hop_v4() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", Always, Never)],
        &[],
        vec![
            best("0.0.0.0/0", &["198.18.1.254"]),
            best("203.0.113.0/24", &["198.18.1.254"]),
        ],
    ));
    for p in ["0.0.0.0/0", "203.0.113.0/24"] {
        assert_eq!(
            route_of(&s, p),
            Some(Route::Unicast {
                nexthops: vec![hop("198.18.1.254", Device::Underlay, false)],
                prefsrc: None
            })
        );
    }
}

#[test]
fn prefix_outside_all_pools_is_a_plain_route_via_the_next_hop_v6() {
    let s = compute(&inputs(
        vec![pool("2001:db8:ff::/48", Never, Always)],
        &[],
        vec![best("2001:db8:aaaa::/48", &["2001:db8:1::fe"])],
    ));
    assert_eq!(
        hops_of(&s, "2001:db8:aaaa::/48"),
        vec![hop("2001:db8:1::fe", Device::Underlay, false)]
    );
}

#[test]
fn prefix_outside_all_pools_with_off_link_next_hop_goes_via_the_gateway() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", Always, Never)],
        &[],
        vec![best("203.0.113.0/24", &[OTHER4])],
    ));
    assert_eq!(
        hops_of(&s, "203.0.113.0/24"),
        vec![hop("198.18.1.1", Device::Underlay, false)]
    );
}

#[test]
fn prefix_larger_than_a_pool_is_outside_it() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", Always, Never)],
        &[],
        vec![best("198.16.0.0/12", &[SAME4])],
    ));
    assert_eq!(
        hops_of(&s, "198.16.0.0/12"),
        vec![hop(SAME4, Device::Underlay, false)]
    );
}

#[test]
fn disabled_pool_blocks_are_still_routed_with_the_pool_encapsulation() {
    let mut p = pool("198.19.0.0/16", Never, CrossSubnet);
    p.disabled = true;
    let s = compute(&inputs(
        vec![p],
        &[],
        vec![best("198.19.5.0/26", &[OTHER4])],
    ));
    assert_eq!(
        hops_of(&s, "198.19.5.0/26"),
        vec![hop(OTHER4, Device::Vxlan, true)]
    );
    assert!(s.tunnels.vxlan.is_some());
}

// ---------------------------------------------------------------------------------------------
// natOutgoing

#[test]
fn nat_outgoing_lists_all_pools_and_the_masquerading_ones() {
    let mut a = pool("198.19.0.0/17", Never, Never);
    a.nat_outgoing = true;
    let b = pool("198.19.128.0/17", Never, Never);
    let mut c = pool("2001:db8:ff::/48", Never, Never);
    c.nat_outgoing = true;
    let s = compute(&inputs(vec![a, b, c], &[], vec![]));
    assert_eq!(
        s.nat.all_pools,
        BTreeSet::from([
            net("198.19.0.0/17"),
            net("198.19.128.0/17"),
            net("2001:db8:ff::/48")
        ])
    );
    assert_eq!(
        s.nat.masquerade,
        BTreeSet::from([net("198.19.0.0/17"), net("2001:db8:ff::/48")])
    );
    // Pod to outside: masqueraded; pod to pod (any pool): not; non-NAT pool: not.
    assert!(s.nat.masquerades(ip("198.19.0.5"), ip("198.18.9.9")));
    assert!(!s.nat.masquerades(ip("198.19.0.5"), ip("198.19.200.1")));
    assert!(!s.nat.masquerades(ip("198.19.200.1"), ip("198.18.9.9")));
    assert!(s.nat.masquerades(ip("2001:db8:ff::5"), ip("2001:db8:1::1")));
}

#[test]
fn disabled_pools_are_in_nat_sets() {
    let mut d = pool("198.19.128.0/17", Never, Never);
    d.disabled = true;
    d.nat_outgoing = true;
    let s = compute(&inputs(vec![d], &[], vec![]));
    assert!(s.nat.all_pools.contains(&net("198.19.128.0/17")));
    assert!(s.nat.masquerade.contains(&net("198.19.128.0/17")));
}

#[test]
fn no_masquerading_pool_means_nothing_is_masqueraded() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", Never, Never)],
        &[],
        vec![],
    ));
    assert!(s.nat.masquerade.is_empty());
    assert!(!s.nat.masquerades(ip("198.19.0.5"), ip("8.8.8.8")));
}

// ---------------------------------------------------------------------------------------------
// tunnel devices and MTU

#[test]
fn no_tunnel_devices_when_no_pool_encapsulates() {
    let s = one_v4(Never, Never, SAME4);
    assert_eq!(s.tunnels, Tunnels::default());
}

#[test]
fn tunl0_is_needed_when_a_pool_uses_ipip_even_without_routes() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", CrossSubnet, Never)],
        &[],
        vec![],
    ));
    assert_eq!(
        s.tunnels.tunl0,
        Some(IpipTunnel {
            name: "tunl0".into(),
            mtu: 1480
        })
    );
    assert_eq!(s.tunnels.vxlan, None);
}

#[test]
fn vxlan_devices_carry_vni_4096_port_4789_own_mac_and_local_address() {
    let s = compute(&inputs(
        vec![
            pool("198.19.0.0/16", Never, Always),
            pool("2001:db8:ff::/48", Never, Always),
        ],
        &[],
        vec![],
    ));
    assert_eq!(
        s.tunnels.vxlan,
        Some(VxlanTunnel {
            name: "vxlan.tortie".into(),
            vni: 4096,
            port: 4789,
            mac: vtep_mac(ip("198.18.1.10")),
            local: ip("198.18.1.10"),
            mtu: 1450,
        })
    );
    let v6 = s.tunnels.vxlan_v6.unwrap();
    assert_eq!(
        (v6.name.as_str(), v6.vni, v6.port, v6.mtu),
        ("vxlan-v6.tortie", 4096, 4789, 1430)
    );
    assert_eq!(v6.mac, vtep_mac(ip("2001:db8:1::10")));
    assert_eq!(s.tunnels.tunl0, None);
}

#[test]
fn mtu_is_underlay_minus_20_50_70() {
    for (underlay, ipip, vx4, vx6) in [
        (1500, 1480, 1450, 1430),
        (9000, 8980, 8950, 8930),
        (1400, 1380, 1350, 1330),
    ] {
        let mut i = inputs(
            vec![
                pool("198.19.0.0/17", Always, Never),
                pool("198.19.128.0/17", Never, Always),
                pool("2001:db8:ff::/48", Never, Always),
            ],
            &[],
            vec![],
        );
        i.node.underlay.mtu = underlay;
        let t = compute(&i).tunnels;
        assert_eq!(t.tunl0.unwrap().mtu, ipip);
        assert_eq!(t.vxlan.unwrap().mtu, vx4);
        assert_eq!(t.vxlan_v6.unwrap().mtu, vx6);
    }
}

#[test]
fn vni_and_port_are_configurable() {
    let mut i = inputs(vec![pool("198.19.0.0/16", Never, Always)], &[], vec![]);
    i.vxlan = VxlanSettings { vni: 7, port: 8472 };
    let t = compute(&i).tunnels.vxlan.unwrap();
    assert_eq!((t.vni, t.port), (7, 8472));
}

// ---------------------------------------------------------------------------------------------
// prefsrc

#[test]
fn tunnel_routes_carry_the_node_address_as_prefsrc() {
    let s4 = one_v4(Always, Never, OTHER4);
    assert!(
        matches!(route_of(&s4, "198.19.5.0/26"), Some(Route::Unicast { prefsrc: Some(a), .. }) if a == ip("198.18.1.10"))
    );
    let s6 = one_v6(Always, OTHER6);
    assert!(
        matches!(route_of(&s6, "2001:db8:ff:5::/122"), Some(Route::Unicast { prefsrc: Some(a), .. }) if a == ip("2001:db8:1::10"))
    );
}

#[test]
fn underlay_routes_carry_no_prefsrc() {
    let s = one_v4(Never, Never, OTHER4);
    assert!(matches!(
        route_of(&s, "198.19.5.0/26"),
        Some(Route::Unicast { prefsrc: None, .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// VTEP MACs

#[test]
fn vtep_mac_v4_embeds_the_address_locally_administered_unicast() {
    let m = vtep_mac(ip("198.18.1.10"));
    assert_eq!(m.to_string(), "02:74:c6:12:01:0a");
    assert!(m.is_locally_administered() && m.is_unicast());
}

#[test]
fn vtep_mac_v6_is_locally_administered_unicast_with_its_own_tag() {
    let m = vtep_mac(ip("2001:db8:1::10"));
    assert_eq!(m.0[..2], [0x02, 0x76]);
    assert!(m.is_locally_administered() && m.is_unicast());
}

#[test]
fn vtep_macs_are_stable() {
    // Fixed vectors: every node and every tortie version must compute the same MACs.
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    let a: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
    let h = fnv1a32(&a.octets()[..12]).to_be_bytes();
    let want = [0x02, 0x76, h[0], h[1], h[2], h[3] ^ 0x10];
    assert_eq!(vtep_mac(IpAddr::V6(a)).0, want);
    assert_eq!(vtep_mac(IpAddr::V6(a)), vtep_mac(IpAddr::V6(a)));
}

#[test]
fn vtep_macs_are_distinct_for_neighbouring_v4_addresses() {
    let macs: BTreeSet<Mac> = (0u32..4096)
        .map(|i| {
            vtep_mac(IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i,
            )))
        })
        .collect();
    assert_eq!(macs.len(), 4096);
}

#[test]
fn vtep_macs_are_distinct_for_neighbouring_v6_addresses() {
    let base = u128::from("2001:db8:1::".parse::<Ipv6Addr>().unwrap());
    let macs: BTreeSet<Mac> = (0u128..4096)
        .map(|i| vtep_mac(IpAddr::V6(Ipv6Addr::from(base + i))))
        .collect();
    assert_eq!(macs.len(), 4096);
}

#[test]
fn vtep_macs_differ_for_the_same_host_part_in_different_v6_subnets() {
    let macs: BTreeSet<Mac> = (1u16..=256)
        .map(|s| vtep_mac(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, s, 0, 0, 0, 0, 5))))
        .collect();
    assert_eq!(macs.len(), 256);
}

#[test]
fn vtep_macs_of_v4_and_v6_never_coincide() {
    assert_ne!(
        vtep_mac(ip("198.18.1.10")).0[1],
        vtep_mac(ip("::c612:10a")).0[1]
    );
}

#[test]
fn mac_parses_and_prints() {
    let m: Mac = "02:74:C6:12:1:0a".parse().unwrap();
    assert_eq!(m.to_string(), "02:74:c6:12:01:0a");
    for bad in [
        "",
        "02:74:c6:12:01",
        "02:74:c6:12:01:0a:00",
        "02:74:c6:12:01:zz",
        "02:74:c6:12:01:100",
    ] {
        assert!(bad.parse::<Mac>().is_err(), "{bad:?}");
    }
}

/// Two IPv6 addresses in different /96s with the same VTEP MAC.
fn colliding_v6_pair() -> (Ipv6Addr, Ipv6Addr) {
    let a: Ipv6Addr = "2001:db8:2::20".parse().unwrap();
    let hi_b: Ipv6Addr = "2001:db8:3::".parse().unwrap();
    let ha = fnv1a32(&a.octets()[..12]);
    let hb = fnv1a32(&hi_b.octets()[..12]);
    let low_a = u32::from_be_bytes(a.octets()[12..].try_into().unwrap());
    let b = Ipv6Addr::from(u128::from(hi_b) | u128::from(low_a ^ ha ^ hb));
    assert_eq!(vtep_mac(IpAddr::V6(a)), vtep_mac(IpAddr::V6(b)));
    (a, b)
}

#[test]
fn vtep_mac_collision_keeps_the_lower_address_and_reports() {
    let (a, b) = colliding_v6_pair();
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let s = compute(&inputs(
        vec![pool("2001:db8:ff::/48", Never, Always)],
        &[],
        vec![
            best("2001:db8:ff:5::/122", &[&lo.to_string()]),
            best("2001:db8:ff:6::/122", &[&hi.to_string()]),
        ],
    ));
    assert!(route_of(&s, "2001:db8:ff:5::/122").is_some());
    assert_eq!(route_of(&s, "2001:db8:ff:6::/122"), None);
    assert!(s.problems.contains(&Problem::VtepMacCollision {
        mac: vtep_mac(IpAddr::V6(lo)),
        kept: IpAddr::V6(lo),
        dropped: IpAddr::V6(hi)
    }));
    assert_eq!(s.fib.fdb.len(), 1);
    assert_eq!(s.fib.neighbours.len(), 1);
}

#[test]
fn vtep_mac_collision_with_our_own_mac_drops_the_remote() {
    let (a, b) = colliding_v6_pair();
    let mut i = inputs(
        vec![pool("2001:db8:ff::/48", Never, Always)],
        &[],
        vec![best("2001:db8:ff:6::/122", &[&b.to_string()])],
    );
    i.node.ipv6 = Some(ipnet::Ipv6Net::new(a, 64).unwrap());
    let s = compute(&i);
    assert_eq!(route_of(&s, "2001:db8:ff:6::/122"), None);
    assert!(s.fib.fdb.is_empty());
}

// ---------------------------------------------------------------------------------------------
// determinism and serde

#[test]
fn compute_is_independent_of_input_order() {
    let pools = vec![
        pool("198.19.0.0/17", CrossSubnet, Never),
        pool("198.19.128.0/17", Never, Always),
    ];
    let routes = vec![
        best("198.19.5.0/26", &[SAME4, OTHER4]),
        best("198.19.200.0/26", &[OTHER4, "198.18.3.3"]),
        best("203.0.113.0/24", &["198.18.1.254"]),
    ];
    let a = compute(&inputs(
        pools.clone(),
        &["198.19.1.0/26", "198.19.130.0/26"],
        routes.clone(),
    ));
    let mut rp = pools;
    rp.reverse();
    let mut rr: Vec<BestRoute> = routes.into_iter().rev().collect();
    for r in &mut rr {
        r.next_hops.reverse();
    }
    let b = compute(&inputs(rp, &["198.19.130.0/26", "198.19.1.0/26"], rr));
    assert_eq!(a, b);
}

#[test]
fn inputs_and_desired_state_round_trip_through_json() {
    let i = inputs(
        vec![
            pool("198.19.0.0/16", Never, CrossSubnet),
            pool("2001:db8:ff::/48", Never, Always),
        ],
        &["198.19.1.0/26"],
        vec![
            best("198.19.5.0/26", &[OTHER4, SAME4]),
            best("2001:db8:ff:5::/122", &[OTHER6]),
        ],
    );
    let j = serde_json::to_string(&i).unwrap();
    assert!(j.contains("\"vxlanMode\":\"CrossSubnet\""), "{j}");
    assert_eq!(serde_json::from_str::<Inputs>(&j).unwrap(), i);
    let s = compute(&i);
    let j = serde_json::to_string(&s).unwrap();
    assert!(
        j.contains("\"198.19.1.0/26\":{\"type\":\"blackhole\"}"),
        "{j}"
    );
    assert_eq!(serde_json::from_str::<DesiredState>(&j).unwrap(), s);
}

#[test]
fn pool_defaults_in_json_are_never_and_false() {
    let p: Pool = serde_json::from_str(r#"{"cidr":"198.19.0.0/16"}"#).unwrap();
    assert_eq!(p, pool("198.19.0.0/16", Never, Never));
}

// ---------------------------------------------------------------------------------------------
// diff

fn sample_fib() -> Fib {
    compute(&inputs(
        vec![
            pool("198.19.0.0/16", Never, CrossSubnet),
            pool("2001:db8:ff::/48", Never, Always),
        ],
        &["198.19.1.0/26"],
        vec![
            best("198.19.5.0/26", &[OTHER4, SAME4]),
            best("198.19.6.0/26", &["198.18.3.3"]),
            best("2001:db8:ff:5::/122", &[OTHER6]),
        ],
    ))
    .fib
}

#[test]
fn diff_of_equal_states_is_empty() {
    let f = sample_fib();
    assert_eq!(diff(&f, &f), vec![]);
}

#[test]
fn diff_ignores_next_hop_order() {
    let des = sample_fib();
    let mut cur = des.clone();
    if let Some(Route::Unicast { nexthops, .. }) = cur.routes.get_mut(&net("198.19.5.0/26")) {
        nexthops.reverse();
        assert!(nexthops.len() > 1);
    }
    assert_eq!(diff(&cur, &des), vec![]);
}

#[test]
fn restarting_with_the_same_inputs_writes_nothing() {
    let cur = sample_fib();
    assert_eq!(diff(&cur, &sample_fib()), vec![]);
}

#[test]
fn one_changed_route_is_one_replace() {
    let cur = sample_fib();
    let mut des = cur.clone();
    let r = Route::unicast(vec![hop("198.18.1.30", Device::Underlay, false)], None);
    des.routes.insert(net("198.19.5.0/26"), r.clone());
    assert_eq!(
        diff(&cur, &des),
        vec![Op::ReplaceRoute {
            prefix: net("198.19.5.0/26"),
            route: r
        }]
    );
}

#[test]
fn new_route_is_one_add() {
    let cur = sample_fib();
    let mut des = cur.clone();
    des.routes.insert(
        net("203.0.113.0/24"),
        Route::unicast(vec![hop(SAME4, Device::Underlay, false)], None),
    );
    let ops = diff(&cur, &des);
    assert_eq!(ops.len(), 1);
    assert!(matches!(&ops[0], Op::AddRoute { prefix, .. } if *prefix == net("203.0.113.0/24")));
}

#[test]
fn stale_route_is_one_delete() {
    let cur = sample_fib();
    let mut des = cur.clone();
    des.routes.remove(&net("198.19.1.0/26"));
    assert_eq!(
        diff(&cur, &des),
        vec![Op::DelRoute {
            prefix: net("198.19.1.0/26"),
            route: Route::Blackhole
        }]
    );
}

#[test]
fn changed_fdb_destination_is_one_replace() {
    let cur = sample_fib();
    let mut des = cur.clone();
    let e = *des.fdb.iter().next().unwrap();
    des.fdb.remove(&e);
    let moved = FdbEntry {
        dst: ip("198.18.7.7"),
        ..e
    };
    des.fdb.insert(moved);
    assert_eq!(diff(&cur, &des), vec![Op::ReplaceFdb(moved)]);
}

#[test]
fn changed_neighbour_mac_is_one_replace() {
    let cur = sample_fib();
    let mut des = cur.clone();
    let n = *des.neighbours.iter().next().unwrap();
    des.neighbours.remove(&n);
    let m = Neighbour {
        mac: Mac([0x02, 0, 0, 0, 0, 1]),
        ..n
    };
    des.neighbours.insert(m);
    assert_eq!(diff(&cur, &des), vec![Op::ReplaceNeighbour(m)]);
}

#[test]
fn extra_fdb_destination_in_current_is_deleted() {
    let des = sample_fib();
    let mut cur = des.clone();
    let e = *cur.fdb.iter().next().unwrap();
    let extra = FdbEntry {
        dst: ip("198.18.9.9"),
        ..e
    };
    cur.fdb.insert(extra);
    assert_eq!(diff(&cur, &des), vec![Op::DelFdb(extra)]);
}

#[test]
fn stale_node_removal_deletes_route_first_then_neighbour_then_fdb() {
    let cur = sample_fib();
    let des = compute(&inputs(
        vec![
            pool("198.19.0.0/16", Never, CrossSubnet),
            pool("2001:db8:ff::/48", Never, Always),
        ],
        &["198.19.1.0/26"],
        vec![
            best("198.19.5.0/26", &[OTHER4, SAME4]),
            best("198.19.6.0/26", &["198.18.3.3"]),
        ],
    ))
    .fib;
    let ops = diff(&cur, &des);
    let mac = vtep_mac(ip(OTHER6));
    assert_eq!(
        ops,
        vec![
            Op::DelRoute {
                prefix: net("2001:db8:ff:5::/122"),
                route: cur.routes[&net("2001:db8:ff:5::/122")].clone()
            },
            Op::DelNeighbour(Neighbour {
                device: Device::VxlanV6,
                addr: ip(OTHER6),
                mac
            }),
            Op::DelFdb(FdbEntry {
                device: Device::VxlanV6,
                mac,
                dst: ip(OTHER6)
            }),
        ]
    );
}

#[test]
fn new_vxlan_node_adds_fdb_then_neighbour_then_route() {
    let cur = Fib::default();
    let des = compute(&inputs(
        vec![pool("198.19.0.0/16", Never, Always)],
        &[],
        vec![best("198.19.5.0/26", &[OTHER4])],
    ))
    .fib;
    let ops = diff(&cur, &des);
    assert!(
        matches!(
            ops[..],
            [Op::AddFdb(_), Op::AddNeighbour(_), Op::AddRoute { .. }]
        ),
        "{ops:?}"
    );
}

#[test]
fn moving_a_block_to_another_vxlan_node_keeps_the_route_resolvable_throughout() {
    let pools = vec![pool("198.19.0.0/16", Never, Always)];
    let cur = compute(&inputs(
        pools.clone(),
        &[],
        vec![best("198.19.5.0/26", &[OTHER4])],
    ))
    .fib;
    let des = compute(&inputs(
        pools,
        &[],
        vec![best("198.19.5.0/26", &["198.18.3.3"])],
    ))
    .fib;
    let ops = diff(&cur, &des);
    assert!(
        matches!(
            ops[..],
            [
                Op::AddFdb(_),
                Op::AddNeighbour(_),
                Op::ReplaceRoute { .. },
                Op::DelNeighbour(_),
                Op::DelFdb(_)
            ]
        ),
        "{ops:?}"
    );
    check_transition_keeps_routes_resolvable(&cur, &des, &ops);
}

#[test]
fn diff_from_empty_then_applied_gives_desired_and_is_then_idempotent() {
    let des = sample_fib();
    let mut k = Fib::default();
    k.apply_all(&diff(&Fib::default(), &des)).unwrap();
    assert_eq!(k.normalized(), des.normalized());
    assert_eq!(diff(&k, &des), vec![]);
}

#[test]
fn apply_refuses_what_the_kernel_refuses() {
    let mut f = sample_fib();
    let p = net("198.19.1.0/26");
    assert_eq!(
        f.apply(&Op::AddRoute {
            prefix: p,
            route: Route::Blackhole
        }),
        Err(ApplyError::RouteExists(p))
    );
    let q = net("10.0.0.0/8");
    assert_eq!(
        f.apply(&Op::ReplaceRoute {
            prefix: q,
            route: Route::Blackhole
        }),
        Err(ApplyError::NoSuchRoute(q))
    );
    assert_eq!(
        f.apply(&Op::DelRoute {
            prefix: q,
            route: Route::Blackhole
        }),
        Err(ApplyError::NoSuchRoute(q))
    );
}

/// Applying `ops` one by one to `cur` never leaves a route whose VXLAN gateway had a neighbour
/// entry (in `cur` or `des`) without one, nor a neighbour whose MAC had an FDB entry without one.
fn check_transition_keeps_routes_resolvable(cur: &Fib, des: &Fib, ops: &[Op]) {
    let known_neigh: BTreeSet<(Device, IpAddr)> = cur
        .neighbours
        .iter()
        .chain(&des.neighbours)
        .map(|n| (n.device, n.addr))
        .collect();
    let known_fdb: BTreeSet<(Device, Mac)> = cur
        .fdb
        .iter()
        .chain(&des.fdb)
        .map(|e| (e.device, e.mac))
        .collect();
    let mut k = cur.clone();
    for (i, op) in ops.iter().enumerate() {
        k.apply(op).unwrap_or_else(|e| panic!("op {i} {op:?}: {e}"));
        let neigh: BTreeMap<(Device, IpAddr), Mac> = k
            .neighbours
            .iter()
            .map(|n| ((n.device, n.addr), n.mac))
            .collect();
        let fdb: BTreeSet<(Device, Mac)> = k.fdb.iter().map(|e| (e.device, e.mac)).collect();
        for (p, r) in &k.routes {
            for nh in r.nexthops() {
                let key = (nh.device, nh.gateway);
                if matches!(nh.device, Device::Vxlan | Device::VxlanV6)
                    && known_neigh.contains(&key)
                {
                    assert!(
                        neigh.contains_key(&key),
                        "after op {i} {op:?}: route {p} lost neighbour {key:?}"
                    );
                }
            }
        }
        for (key, mac) in &neigh {
            if known_fdb.contains(&(key.0, *mac)) {
                assert!(
                    fdb.contains(&(key.0, *mac)),
                    "after op {i} {op:?}: neighbour {key:?} lost its FDB entry"
                );
            }
        }
    }
}

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
        )
            .prop_map(|(nexthops, prefsrc)| Route::Unicast { nexthops, prefsrc }),
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
        )
            .prop_map(|(prefix, next_hops)| BestRoute { prefix, next_hops }),
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
        let route_ops = ops.iter().filter(|o| matches!(o, Op::AddRoute{..} | Op::ReplaceRoute{..} | Op::DelRoute{..})).count();
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
                Route::Unicast { nexthops, prefsrc } => {
                    prop_assert!(!own.contains(p));
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

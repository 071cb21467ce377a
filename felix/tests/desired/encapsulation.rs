//! How a remote block is routed in each encapsulation mode: directly over the underlay
//! (host-gw), through `tunl0` (IPIP), through the VXLAN devices with their neighbour and FDB
//! entries, and with encapsulation Never across subnets, recursively through the underlay
//! gateway.

use std::collections::BTreeSet;

use super::*;

// ---------------------------------------------------------------------------------------------
// direct routing (host-gw)

#[test]
fn same_subnet_never_routes_via_underlay_v4() {
    let s = one_v4(Never, Never, SAME4);
    assert_eq!(
        route_of(&s, "198.19.5.0/26"),
        Some(Route::Unicast {
            nexthops: vec![hop(SAME4, Device::Underlay, false)],
            prefsrc: None,
            metric: 0,
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

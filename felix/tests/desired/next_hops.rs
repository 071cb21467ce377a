//! Which next hops a route gets: where CrossSubnet draws the subnet boundary, ECMP routes whose
//! next hops are decided one by one, and odd next hops (our own address, the other family,
//! unspecified) that are skipped.

use super::*;

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
            0,
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

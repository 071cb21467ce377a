//! Own blocks and pools: blackholes for the blocks affine to this node, which pool governs a
//! route (and what happens to prefixes outside every pool or in disabled pools), and the
//! natOutgoing sets.

use std::collections::BTreeSet;

use super::*;

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
                prefsrc: None,
                metric: 0,
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

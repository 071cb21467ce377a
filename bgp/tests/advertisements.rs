//! `prefixAdvertisements` (BGPConfiguration): the communities attached to the routes inside
//! each listed CIDR, one behaviour per test.

use std::borrow::Cow;

use ipnet::IpNet;
use tortie_bgp::rib::policy::{Advertisements, CommunityValue};
use tortie_bgp::wire::{Attributes, Community, LargeCommunity};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn std_c(a: u16, n: u16) -> CommunityValue {
    CommunityValue::Standard(Community::new(a, n))
}

fn large(global: u32, local1: u32, local2: u32) -> LargeCommunity {
    LargeCommunity {
        global,
        local1,
        local2,
    }
}

#[test]
fn advertisements_apply_to_the_cidr_itself() {
    let mut adv = Advertisements::new();
    adv.push(net("172.218.4.0/26"), [std_c(63400, 120)]);
    let (std, large) = adv.communities_for(net("172.218.4.0/26"));
    assert_eq!(std, vec![Community::new(63400, 120)]);
    assert!(large.is_empty());
}

#[test]
fn advertisements_apply_to_prefixes_inside_the_cidr() {
    let mut adv = Advertisements::new();
    adv.push(net("198.19.0.0/16"), [std_c(65000, 1)]);
    assert_eq!(
        adv.communities_for(net("198.19.4.64/26")).0,
        vec![Community::new(65000, 1)]
    );
    assert_eq!(
        adv.communities_for(net("198.19.4.64/32")).0,
        vec![Community::new(65000, 1)]
    );
}

#[test]
fn advertisements_do_not_apply_outside_or_to_a_shorter_prefix() {
    let mut adv = Advertisements::new();
    adv.push(net("198.19.0.0/16"), [std_c(65000, 1)]);
    assert_eq!(adv.communities_for(net("198.20.0.0/26")), (vec![], vec![]));
    assert_eq!(adv.communities_for(net("198.16.0.0/14")), (vec![], vec![]));
    assert_eq!(adv.communities_for(net("fd00::/64")), (vec![], vec![]));
}

#[test]
fn advertisements_of_every_matching_entry_apply_once_each() {
    let mut adv = Advertisements::new();
    adv.push(
        net("198.19.0.0/16"),
        [std_c(65000, 1), CommunityValue::Large(large(1, 2, 3))],
    );
    adv.push(net("198.19.4.0/24"), [std_c(65000, 2), std_c(65000, 1)]);
    adv.push(net("198.19.5.0/24"), [std_c(65000, 3)]);
    let (std, lg) = adv.communities_for(net("198.19.4.0/26"));
    assert_eq!(
        std,
        vec![Community::new(65000, 1), Community::new(65000, 2)]
    );
    assert_eq!(lg, vec![large(1, 2, 3)]);
}

#[test]
fn advertisements_apply_adds_what_the_route_lacks() {
    let mut adv = Advertisements::new();
    adv.push(
        net("198.19.0.0/16"),
        [std_c(65000, 1), CommunityValue::Large(large(1, 2, 3))],
    );
    let stored = Attributes {
        communities: vec![Community::new(65000, 1)],
        ..Attributes::default()
    };
    let mut out = Cow::Borrowed(&stored);
    assert!(adv.apply(net("198.19.4.0/26"), &mut out));
    assert_eq!(out.communities, vec![Community::new(65000, 1)]);
    assert_eq!(out.large_communities, vec![large(1, 2, 3)]);
    assert!(stored.large_communities.is_empty());
}

#[test]
fn advertisements_apply_copies_nothing_when_nothing_is_missing() {
    let mut adv = Advertisements::new();
    adv.push(net("198.19.0.0/16"), [std_c(65000, 1)]);
    let stored = Attributes {
        communities: vec![Community::new(65000, 1)],
        ..Attributes::default()
    };
    let mut out = Cow::Borrowed(&stored);
    assert!(!adv.apply(net("198.19.4.0/26"), &mut out));
    assert!(!adv.apply(net("10.0.0.0/8"), &mut out));
    assert!(matches!(out, Cow::Borrowed(_)));
}

#[test]
fn advertisements_match_ipv6_prefixes() {
    let mut adv = Advertisements::new();
    adv.push(
        net("fd00:19::/48"),
        [CommunityValue::Large(large(65000, 0, 6))],
    );
    assert_eq!(
        adv.communities_for(net("fd00:19:0:1::/122")).1,
        vec![large(65000, 0, 6)]
    );
    assert_eq!(adv.communities_for(net("198.19.0.0/26")).1, vec![]);
}

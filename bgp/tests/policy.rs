//! Calico BGPFilter semantics of `rib::policy`, one behaviour per test (the
//! `prefixAdvertisements` communities are in `advertisements.rs`).

use std::borrow::Cow;

use ipnet::IpNet;
use tortie_bgp::rib::policy::{
    Action, CommunityValue, Direction, Filter, MatchOperator, Operation, PeerType,
    PrefixLengthRange, PrefixMatch, RouteContext, RouteSource, Rule, Verdict, evaluate,
    local_pref_for_priority, priority_from_local_pref,
};
use tortie_bgp::wire::{AsPath, AsSegment, Attributes, Community, LargeCommunity, SegmentKind};

use Direction::{Export, Import};

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

/// An iBGP-learned route with an AS path `65001 65002`.
fn attrs() -> Attributes {
    Attributes {
        as_path: Some(AsPath::sequence(vec![65001, 65002])),
        ..Attributes::default()
    }
}

fn ctx<'a>(prefix: &str, attrs: &'a Attributes) -> RouteContext<'a> {
    RouteContext {
        prefix: net(prefix),
        attrs,
        from_peer: true,
        peer_type: PeerType::Ibgp,
        priority: None,
    }
}

fn cidr_rule(action: Action, op: MatchOperator, cidr: &str) -> Rule {
    Rule {
        prefix: Some(PrefixMatch::new(
            net(cidr),
            op,
            PrefixLengthRange::default(),
        )),
        ..Rule::new(action)
    }
}

fn ranged_rule(op: MatchOperator, cidr: &str, min: Option<u8>, max: Option<u8>) -> Rule {
    Rule {
        prefix: Some(PrefixMatch::new(
            net(cidr),
            op,
            PrefixLengthRange { min, max },
        )),
        ..Rule::new(Action::Reject)
    }
}

/// A filter with the same rules in all four lists.
fn filter(name: &str, rules: Vec<Rule>) -> Filter {
    Filter {
        name: name.into(),
        import_v4: rules.clone(),
        export_v4: rules.clone(),
        import_v6: rules.clone(),
        export_v6: rules,
    }
}

/// One filter holding one rule, in all four lists.
fn one(rule: Rule) -> Vec<Filter> {
    vec![filter("f", vec![rule])]
}

fn reject() -> Rule {
    Rule::new(Action::Reject)
}

/// One filter whose only rule accepts every route with `operations`.
fn accept_with(operations: Vec<Operation>) -> Vec<Filter> {
    one(Rule {
        operations,
        ..Rule::new(Action::Accept)
    })
}

fn verdict(filters: &[Filter], dir: Direction, ctx: &RouteContext<'_>) -> Verdict {
    evaluate(filters, dir, ctx).0
}

/// Whether one Reject rule matches `prefix`.
fn rejects(rule: Rule, prefix: &str) -> bool {
    let a = attrs();
    verdict(&[filter("f", vec![rule])], Import, &ctx(prefix, &a)) == Verdict::Reject
}

#[test]
fn in_matches_the_cidr_and_prefixes_inside_it() {
    let r = || cidr_rule(Action::Reject, MatchOperator::In, "10.0.0.0/8");
    assert!(rejects(r(), "10.0.0.0/8"));
    assert!(rejects(r(), "10.1.2.0/24"));
    assert!(rejects(r(), "10.255.255.255/32"));
    assert!(!rejects(r(), "11.0.0.0/24"));
    assert!(!rejects(r(), "0.0.0.0/0"), "a shorter prefix is not inside");
}

#[test]
fn not_in_matches_prefixes_outside_the_cidr() {
    let r = || cidr_rule(Action::Reject, MatchOperator::NotIn, "10.0.0.0/8");
    assert!(rejects(r(), "11.0.0.0/24"));
    assert!(rejects(r(), "0.0.0.0/0"));
    assert!(!rejects(r(), "10.0.0.0/8"));
    assert!(!rejects(r(), "10.9.0.0/16"));
}

#[test]
fn equal_matches_only_the_same_prefix() {
    let r = || cidr_rule(Action::Reject, MatchOperator::Equal, "10.0.0.0/8");
    assert!(rejects(r(), "10.0.0.0/8"));
    assert!(!rejects(r(), "10.0.0.0/9"));
    assert!(!rejects(r(), "10.0.0.0/7"));
    assert!(!rejects(r(), "11.0.0.0/8"));
}

#[test]
fn not_equal_matches_every_other_prefix() {
    let r = || cidr_rule(Action::Reject, MatchOperator::NotEqual, "10.0.0.0/8");
    assert!(!rejects(r(), "10.0.0.0/8"));
    assert!(rejects(r(), "10.0.0.0/9"));
    assert!(rejects(r(), "11.0.0.0/8"));
}

#[test]
fn ipv6_cidrs_match_by_mask_too() {
    let r = || cidr_rule(Action::Reject, MatchOperator::In, "fd00:10::/32");
    assert!(rejects(r(), "fd00:10:0:1::/64"));
    assert!(rejects(r(), "fd00:10::1/128"));
    assert!(!rejects(r(), "fd00:11::/64"));
}

#[test]
fn a_route_prefix_with_host_bits_matches_as_its_network() {
    let r = || cidr_rule(Action::Reject, MatchOperator::Equal, "10.1.0.0/16");
    assert!(rejects(r(), "10.1.2.3/16"));
}

#[test]
fn prefix_length_min_alone_leaves_max_at_the_family_maximum() {
    let m = PrefixMatch::new(
        net("10.0.0.0/8"),
        MatchOperator::In,
        PrefixLengthRange {
            min: Some(24),
            max: None,
        },
    );
    assert_eq!(m.lengths(), (24, 32));
    let r = || ranged_rule(MatchOperator::In, "10.0.0.0/8", Some(24), None);
    assert!(rejects(r(), "10.1.2.0/24"));
    assert!(rejects(r(), "10.1.2.3/32"));
    assert!(!rejects(r(), "10.1.0.0/23"));
    let m6 = PrefixMatch::new(
        net("fd00::/8"),
        MatchOperator::In,
        PrefixLengthRange {
            min: Some(64),
            max: None,
        },
    );
    assert_eq!(m6.lengths(), (64, 128));
}

#[test]
fn prefix_length_max_alone_leaves_min_at_the_cidr_length() {
    let m = PrefixMatch::new(
        net("10.0.0.0/8"),
        MatchOperator::In,
        PrefixLengthRange {
            min: None,
            max: Some(16),
        },
    );
    assert_eq!(m.lengths(), (8, 16));
    let r = || ranged_rule(MatchOperator::In, "10.0.0.0/8", None, Some(16));
    assert!(rejects(r(), "10.0.0.0/8"));
    assert!(rejects(r(), "10.1.0.0/16"));
    assert!(!rejects(r(), "10.1.2.0/24"));
}

#[test]
fn prefix_length_min_and_max_bound_both_ends() {
    let r = || ranged_rule(MatchOperator::In, "10.0.0.0/8", Some(16), Some(24));
    assert!(!rejects(r(), "10.0.0.0/15"));
    assert!(rejects(r(), "10.1.0.0/16"));
    assert!(rejects(r(), "10.1.2.0/24"));
    assert!(!rejects(r(), "10.1.2.0/25"));
}

#[test]
fn prefix_length_min_shorter_than_the_cidr_is_raised_to_it() {
    let m = PrefixMatch::new(
        net("10.0.0.0/16"),
        MatchOperator::In,
        PrefixLengthRange {
            min: Some(8),
            max: Some(20),
        },
    );
    assert_eq!(m.lengths(), (16, 20));
    assert!(!m.matches(&net("10.0.0.0/8")));
}

#[test]
fn prefix_length_max_beyond_the_family_is_clamped() {
    let m = PrefixMatch::new(
        net("10.0.0.0/8"),
        MatchOperator::In,
        PrefixLengthRange {
            min: None,
            max: Some(128),
        },
    );
    assert_eq!(m.lengths(), (8, 32));
}

#[test]
fn not_in_with_prefix_length_negates_the_whole_set() {
    // Outside 10/8, or inside it with a length outside 16..=24.
    let r = || ranged_rule(MatchOperator::NotIn, "10.0.0.0/8", Some(16), Some(24));
    assert!(rejects(r(), "11.0.0.0/16"));
    assert!(rejects(r(), "10.1.2.0/28"));
    assert!(!rejects(r(), "10.1.2.0/24"));
}

#[test]
fn equal_with_prefix_length_matches_only_if_the_range_admits_the_cidr() {
    assert!(rejects(
        ranged_rule(MatchOperator::Equal, "10.0.0.0/8", None, Some(16)),
        "10.0.0.0/8"
    ));
    assert!(!rejects(
        ranged_rule(MatchOperator::Equal, "10.0.0.0/8", Some(9), None),
        "10.0.0.0/8"
    ));
}

#[test]
fn the_first_matching_rule_decides() {
    let f = [filter(
        "f",
        vec![
            cidr_rule(Action::Accept, MatchOperator::In, "10.1.0.0/16"),
            cidr_rule(Action::Reject, MatchOperator::In, "10.0.0.0/8"),
        ],
    )];
    let a = attrs();
    let accepted = verdict(&f, Import, &ctx("10.1.2.0/24", &a));
    assert_eq!(accepted, Verdict::Accept { priority: None });
    assert_eq!(
        verdict(&f, Import, &ctx("10.2.0.0/24", &a)),
        Verdict::Reject
    );
}

#[test]
fn no_matching_rule_gives_no_match() {
    let f = [filter(
        "f",
        vec![cidr_rule(Action::Reject, MatchOperator::In, "10.0.0.0/8")],
    )];
    let a = attrs();
    let (v, out) = evaluate(&f, Export, &ctx("192.168.0.0/24", &a));
    assert_eq!(v, Verdict::NoMatch);
    assert!(
        !v.matched() && !v.is_reject(),
        "no match is not a rejection"
    );
    assert!(matches!(out, Cow::Borrowed(_)));
}

#[test]
fn no_filters_give_no_match() {
    let a = attrs();
    assert_eq!(
        verdict(&[], Import, &ctx("10.0.0.0/8", &a)),
        Verdict::NoMatch
    );
}

#[test]
fn a_rule_without_conditions_matches_every_route() {
    let f = one(reject());
    let a = attrs();
    assert_eq!(
        verdict(&f, Import, &ctx("203.0.113.0/24", &a)),
        Verdict::Reject
    );
}

#[test]
fn filters_run_in_order_and_the_first_decision_ends_all() {
    let first = filter(
        "first",
        vec![cidr_rule(Action::Accept, MatchOperator::In, "10.0.0.0/8")],
    );
    let second = filter("second", vec![Rule::new(Action::Reject)]);
    let a = attrs();
    let c = ctx("10.1.0.0/16", &a);
    assert_eq!(
        verdict(&[first.clone(), second.clone()], Import, &c),
        Verdict::Accept { priority: None }
    );
    assert_eq!(verdict(&[second, first], Import, &c), Verdict::Reject);
}

#[test]
fn a_later_filter_decides_when_earlier_ones_do_not_match() {
    let first = filter(
        "first",
        vec![cidr_rule(Action::Accept, MatchOperator::In, "10.0.0.0/8")],
    );
    let second = filter("second", vec![Rule::new(Action::Reject)]);
    let a = attrs();
    assert_eq!(
        verdict(&[first, second], Import, &ctx("172.16.0.0/16", &a)),
        Verdict::Reject
    );
}

#[test]
fn a_filter_without_rules_for_the_direction_is_skipped() {
    let import_only = Filter {
        import_v4: vec![Rule::new(Action::Reject)],
        ..Filter::new("import-only")
    };
    let a = attrs();
    let c = ctx("10.0.0.0/24", &a);
    assert_eq!(
        verdict(std::slice::from_ref(&import_only), Import, &c),
        Verdict::Reject
    );
    assert_eq!(verdict(&[import_only], Export, &c), Verdict::NoMatch);
}

#[test]
fn peer_type_ibgp_matches_only_ibgp_peers() {
    let f = one(Rule {
        peer_type: Some(PeerType::Ibgp),
        ..reject()
    });
    let a = attrs();
    let mut c = ctx("10.0.0.0/24", &a);
    assert_eq!(verdict(&f, Export, &c), Verdict::Reject);
    c.peer_type = PeerType::Ebgp;
    assert_eq!(verdict(&f, Export, &c), Verdict::NoMatch);
}

#[test]
fn peer_type_ebgp_matches_only_ebgp_peers() {
    let f = one(Rule {
        peer_type: Some(PeerType::Ebgp),
        ..reject()
    });
    let a = attrs();
    let mut c = ctx("10.0.0.0/24", &a);
    assert_eq!(verdict(&f, Import, &c), Verdict::NoMatch);
    c.peer_type = PeerType::Ebgp;
    assert_eq!(verdict(&f, Import, &c), Verdict::Reject);
}

#[test]
fn source_remote_peers_matches_learned_routes_not_local_ones() {
    let f = one(Rule {
        source: Some(RouteSource::RemotePeers),
        ..reject()
    });
    let a = attrs();
    let mut c = ctx("10.0.0.0/26", &a);
    assert_eq!(verdict(&f, Export, &c), Verdict::Reject);
    c.from_peer = false;
    assert_eq!(verdict(&f, Export, &c), Verdict::NoMatch);
}

#[test]
fn communities_match_a_standard_community_the_route_carries() {
    let wanted = std_c(65000, 100);
    let f = one(Rule {
        communities: vec![wanted],
        ..reject()
    });
    let mut a = attrs();
    assert_eq!(
        verdict(&f, Import, &ctx("10.0.0.0/24", &a)),
        Verdict::NoMatch
    );
    a.communities = vec![Community::new(65000, 1), Community::new(65000, 100)];
    assert_eq!(
        verdict(&f, Import, &ctx("10.0.0.0/24", &a)),
        Verdict::Reject
    );
}

#[test]
fn communities_match_a_large_community_the_route_carries() {
    let wanted = CommunityValue::Large(large(65000, 100, 200));
    let f = one(Rule {
        communities: vec![wanted],
        ..reject()
    });
    let mut a = attrs();
    a.large_communities = vec![large(65000, 100, 201)];
    assert_eq!(
        verdict(&f, Import, &ctx("10.0.0.0/24", &a)),
        Verdict::NoMatch
    );
    a.large_communities.push(large(65000, 100, 200));
    assert_eq!(
        verdict(&f, Import, &ctx("10.0.0.0/24", &a)),
        Verdict::Reject
    );
}

#[test]
fn a_standard_value_does_not_match_a_large_community() {
    let wanted = std_c(65000, 100);
    let f = one(Rule {
        communities: vec![wanted],
        ..reject()
    });
    let mut a = attrs();
    a.large_communities = vec![large(65000, 100, 0)];
    assert_eq!(
        verdict(&f, Import, &ctx("10.0.0.0/24", &a)),
        Verdict::NoMatch
    );
}

#[test]
fn communities_with_several_values_match_any_of_them() {
    let values = vec![std_c(65000, 1), CommunityValue::Large(large(1, 2, 3))];
    let f = one(Rule {
        communities: values,
        ..reject()
    });
    let mut a = attrs();
    a.large_communities = vec![large(1, 2, 3)];
    assert_eq!(
        verdict(&f, Import, &ctx("10.0.0.0/24", &a)),
        Verdict::Reject
    );
}

#[test]
fn priority_matches_the_routes_current_priority() {
    let f = one(Rule {
        priority: Some(512),
        ..reject()
    });
    let a = attrs();
    let mut c = ctx("10.0.0.0/24", &a);
    assert_eq!(verdict(&f, Export, &c), Verdict::NoMatch);
    c.priority = Some(1024);
    assert_eq!(verdict(&f, Export, &c), Verdict::NoMatch);
    c.priority = Some(512);
    assert_eq!(verdict(&f, Export, &c), Verdict::Reject);
}

#[test]
fn as_path_prefix_matches_the_start_of_the_path() {
    let rule = |p: Vec<u32>| {
        filter(
            "f",
            vec![Rule {
                as_path_prefix: p,
                ..Rule::new(Action::Reject)
            }],
        )
    };
    let a = attrs(); // 65001 65002
    let c = ctx("10.0.0.0/24", &a);
    assert_eq!(verdict(&[rule(vec![65001])], Import, &c), Verdict::Reject);
    assert_eq!(
        verdict(&[rule(vec![65001, 65002])], Import, &c),
        Verdict::Reject
    );
    assert_eq!(verdict(&[rule(vec![65002])], Import, &c), Verdict::NoMatch);
    assert_eq!(
        verdict(&[rule(vec![65001, 65002, 65003])], Import, &c),
        Verdict::NoMatch
    );
    let set_first = Attributes {
        as_path: Some(AsPath {
            segments: vec![AsSegment {
                kind: SegmentKind::Set,
                asns: vec![65001],
            }],
        }),
        ..Attributes::default()
    };
    let c = ctx("10.0.0.0/24", &set_first);
    assert_eq!(verdict(&[rule(vec![65001])], Import, &c), Verdict::NoMatch);
}

#[test]
fn a_rule_with_interface_never_matches() {
    let f = [filter(
        "f",
        vec![
            Rule {
                interface: Some("*".into()),
                ..Rule::new(Action::Reject)
            },
            Rule {
                interface: Some("eth0".into()),
                ..Rule::new(Action::Reject)
            },
        ],
    )];
    let a = attrs();
    assert_eq!(
        verdict(&f, Export, &ctx("10.0.0.0/24", &a)),
        Verdict::NoMatch
    );
}

#[test]
fn add_community_adds_a_standard_community() {
    let add = Operation::AddCommunity(std_c(65000, 200));
    let f = accept_with(vec![add]);
    let a = attrs();
    let (v, out) = evaluate(&f, Export, &ctx("10.0.0.0/24", &a));
    assert_eq!(v, Verdict::Accept { priority: None });
    assert_eq!(out.communities, vec![Community::new(65000, 200)]);
    assert!(a.communities.is_empty(), "the stored route is untouched");
}

#[test]
fn add_community_adds_a_large_community() {
    let add = Operation::AddCommunity(CommunityValue::Large(large(65000, 300, 400)));
    let f = accept_with(vec![add]);
    let a = attrs();
    let (_, out) = evaluate(&f, Export, &ctx("10.0.0.0/24", &a));
    assert_eq!(out.large_communities, vec![large(65000, 300, 400)]);
    assert!(out.communities.is_empty());
}

#[test]
fn add_community_already_carried_copies_nothing() {
    let add = Operation::AddCommunity(std_c(65000, 200));
    let f = accept_with(vec![add]);
    let mut a = attrs();
    a.communities = vec![Community::new(65000, 200)];
    let (_, out) = evaluate(&f, Import, &ctx("10.0.0.0/24", &a));
    assert!(matches!(out, Cow::Borrowed(_)));
    assert_eq!(out.communities, vec![Community::new(65000, 200)]);
}

#[test]
fn prepend_as_path_puts_the_asns_first_in_list_order() {
    let op = Operation::PrependAsPath(vec![64999, 64998]);
    let f = accept_with(vec![op]);
    let a = attrs();
    let (_, out) = evaluate(&f, Export, &ctx("10.0.0.0/24", &a));
    assert_eq!(
        out.as_path,
        Some(AsPath::sequence(vec![64999, 64998, 65001, 65002]))
    );
    assert_eq!(a.as_path, Some(AsPath::sequence(vec![65001, 65002])));
}

#[test]
fn prepend_as_path_to_a_route_without_a_path_creates_one() {
    let op = Operation::PrependAsPath(vec![64999]);
    let f = accept_with(vec![op]);
    let local = Attributes::default();
    let (_, out) = evaluate(&f, Export, &ctx("10.0.0.0/26", &local));
    assert_eq!(out.as_path, Some(AsPath::sequence(vec![64999])));
}

#[test]
fn prepend_as_path_merges_an_as4_path_first() {
    let op = Operation::PrependAsPath(vec![64999]);
    let f = accept_with(vec![op]);
    let from_2_octet = Attributes {
        as_path: Some(AsPath::sequence(vec![65001, 23456])),
        as4_path: Some(AsPath::sequence(vec![4_200_000_000])),
        ..Attributes::default()
    };
    let (_, out) = evaluate(&f, Import, &ctx("10.0.0.0/24", &from_2_octet));
    assert_eq!(
        out.as_path,
        Some(AsPath::sequence(vec![64999, 65001, 4_200_000_000]))
    );
    assert_eq!(out.as4_path, None);
}

#[test]
fn set_priority_is_returned_in_the_verdict_and_the_last_one_wins() {
    let ops = vec![Operation::SetPriority(256), Operation::SetPriority(512)];
    let f = accept_with(ops);
    let a = attrs();
    let (v, out) = evaluate(&f, Import, &ctx("10.0.0.0/24", &a));
    assert_eq!(
        v,
        Verdict::Accept {
            priority: Some(512)
        }
    );
    assert!(
        matches!(out, Cow::Borrowed(_)),
        "priority is not an attribute change"
    );
}

#[test]
fn operations_apply_in_order_on_one_copy() {
    let ops = vec![
        Operation::SetPriority(256),
        Operation::AddCommunity(std_c(65000, 200)),
        Operation::PrependAsPath(vec![65100]),
    ];
    let f = accept_with(ops);
    let a = attrs();
    let (v, out) = evaluate(&f, Import, &ctx("10.0.0.0/24", &a));
    assert_eq!(
        v,
        Verdict::Accept {
            priority: Some(256)
        }
    );
    assert_eq!(out.communities, vec![Community::new(65000, 200)]);
    assert_eq!(
        out.as_path,
        Some(AsPath::sequence(vec![65100, 65001, 65002]))
    );
}

#[test]
fn accept_without_operations_does_not_copy_the_attributes() {
    let f = one(Rule::new(Action::Accept));
    let a = attrs();
    let (v, out) = evaluate(&f, Export, &ctx("10.0.0.0/24", &a));
    assert_eq!(v, Verdict::Accept { priority: None });
    assert!(matches!(out, Cow::Borrowed(b) if std::ptr::eq(b, &a)));
}

#[test]
fn a_rejected_route_keeps_its_attributes_even_with_operations_on_the_rule() {
    let add = Operation::AddCommunity(std_c(65000, 200));
    let f = one(Rule {
        operations: vec![add],
        ..reject()
    });
    let a = attrs();
    let (v, out) = evaluate(&f, Export, &ctx("10.0.0.0/24", &a));
    assert_eq!(v, Verdict::Reject);
    assert!(matches!(out, Cow::Borrowed(b) if std::ptr::eq(b, &a)));
    assert!(out.communities.is_empty());
}

#[test]
fn v4_rules_never_apply_to_v6_routes() {
    let v4_only = Filter {
        import_v4: vec![Rule::new(Action::Reject)],
        export_v4: vec![Rule::new(Action::Reject)],
        ..Filter::new("v4")
    };
    let a = attrs();
    assert_eq!(
        verdict(
            std::slice::from_ref(&v4_only),
            Import,
            &ctx("fd00::/64", &a)
        ),
        Verdict::NoMatch
    );
    assert_eq!(
        verdict(&[v4_only], Export, &ctx("fd00::/64", &a)),
        Verdict::NoMatch
    );
}

#[test]
fn v6_rules_never_apply_to_v4_routes() {
    let v6_only = Filter {
        import_v6: vec![Rule::new(Action::Reject)],
        export_v6: vec![Rule::new(Action::Reject)],
        ..Filter::new("v6")
    };
    let a = attrs();
    let c4 = ctx("10.0.0.0/24", &a);
    assert_eq!(
        verdict(std::slice::from_ref(&v6_only), Import, &c4),
        Verdict::NoMatch
    );
    assert_eq!(
        verdict(&[v6_only], Import, &ctx("fd00::/64", &a)),
        Verdict::Reject
    );
}

#[test]
fn priority_and_local_pref_convert_as_calico_does() {
    assert_eq!(priority_from_local_pref(None), 1024);
    assert_eq!(local_pref_for_priority(1024), 2_147_482_623);
    assert_eq!(priority_from_local_pref(Some(2_147_482_623)), 1024);
    assert_eq!(local_pref_for_priority(256), 2_147_483_391);
}

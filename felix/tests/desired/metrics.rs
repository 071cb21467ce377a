//! Route metrics from BGP priorities (BGPFilter `setPriority` on import): a priority becomes
//! the route's metric in canonical form (0 = the kernel's default, IPv6's 1024 included), the
//! lowest of a prefix's entries wins, own blocks have none, and a changed metric is one
//! `MoveRoute`, which the kernel model applies only as the kernel would.

use super::*;

fn best_with(prefix: &str, nhs: &[&str], priority: Option<u32>) -> BestRoute {
    BestRoute {
        priority,
        ..best(prefix, nhs)
    }
}

fn metric_of(s: &DesiredState, prefix: &str) -> u32 {
    route_of(s, prefix)
        .unwrap_or_else(|| panic!("no route {prefix}"))
        .metric()
}

fn host_gw(routes: Vec<BestRoute>) -> DesiredState {
    compute(&inputs(
        vec![
            pool("198.19.0.0/16", Never, Never),
            pool("2001:db8:ff::/48", Never, Never),
        ],
        &["198.19.1.0/26"],
        routes,
    ))
}

// ---------------------------------------------------------------------------------------------
// compute

#[test]
fn a_route_without_priority_has_the_kernel_default_metric() {
    let s = host_gw(vec![best("198.19.5.0/26", &[SAME4])]);
    assert_eq!(metric_of(&s, "198.19.5.0/26"), 0);
}

#[test]
fn a_priority_is_the_route_metric_v4() {
    let s = host_gw(vec![best_with("198.19.5.0/26", &[SAME4], Some(512))]);
    assert_eq!(
        route_of(&s, "198.19.5.0/26"),
        Some(Route::Unicast {
            nexthops: vec![hop(SAME4, Device::Underlay, false)],
            prefsrc: None,
            metric: 512,
        })
    );
}

#[test]
fn a_priority_is_the_route_metric_v6() {
    let s = host_gw(vec![best_with("2001:db8:ff:5::/122", &[SAME6], Some(512))]);
    assert_eq!(metric_of(&s, "2001:db8:ff:5::/122"), 512);
}

#[test]
fn ipv6_priority_1024_is_the_kernel_default_and_canonically_0() {
    let s = host_gw(vec![best_with("2001:db8:ff:5::/122", &[SAME6], Some(1024))]);
    assert_eq!(metric_of(&s, "2001:db8:ff:5::/122"), 0);
    assert_eq!(
        s,
        host_gw(vec![best("2001:db8:ff:5::/122", &[SAME6])]),
        "the same kernel route as no priority at all"
    );
}

#[test]
fn ipv4_priority_1024_is_a_metric_of_its_own() {
    let s = host_gw(vec![best_with("198.19.5.0/26", &[SAME4], Some(1024))]);
    assert_eq!(metric_of(&s, "198.19.5.0/26"), 1024);
}

#[test]
fn entries_for_one_prefix_keep_the_lowest_priority() {
    let s = host_gw(vec![
        best_with("198.19.5.0/26", &[SAME4], Some(2048)),
        best_with("198.19.5.0/26", &["198.18.1.21"], Some(512)),
        best("198.19.5.0/26", &["198.18.1.22"]),
    ]);
    assert_eq!(metric_of(&s, "198.19.5.0/26"), 512);
    assert_eq!(hops_of(&s, "198.19.5.0/26").len(), 3);
}

#[test]
fn own_block_blackhole_ignores_a_priority_for_the_block() {
    let s = host_gw(vec![best_with("198.19.1.0/26", &[SAME4], Some(512))]);
    assert_eq!(route_of(&s, "198.19.1.0/26"), Some(Route::Blackhole));
    assert_eq!(metric_of(&s, "198.19.1.0/26"), 0);
}

#[test]
fn canonical_and_kernel_metrics_are_inverse() {
    let (v4, v6) = (net("198.19.5.0/26"), net("2001:db8:ff:5::/122"));
    for m in [0, 1, 512, 1024, u32::MAX] {
        assert_eq!(canonical_metric(&v4, m), m);
        assert_eq!(kernel_metric(&v4, canonical_metric(&v4, m)), m);
    }
    assert_eq!(canonical_metric(&v6, 0), 0);
    assert_eq!(canonical_metric(&v6, IPV6_DEFAULT_METRIC), 0);
    assert_eq!(kernel_metric(&v6, 0), IPV6_DEFAULT_METRIC);
    assert_eq!(kernel_metric(&v6, 512), 512);
}

// ---------------------------------------------------------------------------------------------
// planner

#[test]
fn planner_reports_a_priority_change_as_a_changed_route() {
    let i = inputs(
        vec![pool("198.19.0.0/16", Never, Never)],
        &[],
        vec![best("198.19.5.0/26", &[SAME4])],
    );
    let mut p = Planner::new(&i);
    p.set_route(net("198.19.5.0/26"), [ip(SAME4)], Some(512));
    let c = p.take_changes();
    assert_eq!(
        c.routes.into_iter().collect::<Vec<_>>(),
        [net("198.19.5.0/26")]
    );
    assert_eq!(metric_of(p.state(), "198.19.5.0/26"), 512);
    assert_eq!(p.metric(&net("198.19.5.0/26")), Some(512));
    assert_eq!(p.state(), &compute(&p.inputs()));
    // The same priority again: nothing changes.
    p.set_route(net("198.19.5.0/26"), [ip(SAME4)], Some(512));
    assert!(p.take_changes().is_empty());
    // Back to none: the default metric.
    p.set_route(net("198.19.5.0/26"), [ip(SAME4)], None);
    assert_eq!(p.take_changes().routes.len(), 1);
    assert_eq!(metric_of(p.state(), "198.19.5.0/26"), 0);
}

#[test]
fn planner_inputs_carry_a_priority_only_where_the_metric_is_not_the_default() {
    let mut p = Planner::new(&inputs(vec![], &[], vec![]));
    p.set_route(net("198.19.5.0/26"), [ip(SAME4)], Some(512));
    p.set_route(net("2001:db8:ff:5::/122"), [ip(SAME6)], Some(1024));
    let priorities: Vec<Option<u32>> = p.inputs().routes.iter().map(|r| r.priority).collect();
    assert_eq!(priorities, [Some(512), None]);
}

// ---------------------------------------------------------------------------------------------
// diff and the kernel model

fn fib_with(prefix: &str, route: Route) -> Fib {
    let mut f = Fib::default();
    f.routes.insert(net(prefix), route);
    f
}

fn underlay_route(gw: &str, metric: u32) -> Route {
    Route::unicast(vec![hop(gw, Device::Underlay, false)], None, metric)
}

#[test]
fn a_metric_change_is_one_move_from_the_old_route() {
    let old = underlay_route(SAME4, 0);
    let new = underlay_route(SAME4, 512);
    let (cur, des) = (
        fib_with("198.19.5.0/26", old.clone()),
        fib_with("198.19.5.0/26", new.clone()),
    );
    let ops = diff(&cur, &des);
    assert_eq!(
        ops,
        vec![Op::MoveRoute {
            prefix: net("198.19.5.0/26"),
            from: old,
            route: new,
        }]
    );
    let mut k = cur.clone();
    k.apply_all(&ops).unwrap();
    assert_eq!(k, des);
}

#[test]
fn a_metric_and_next_hop_change_is_still_one_move() {
    let (cur, des) = (
        fib_with("198.19.5.0/26", underlay_route(SAME4, 512)),
        fib_with("198.19.5.0/26", underlay_route("198.18.1.21", 0)),
    );
    let ops = diff(&cur, &des);
    assert!(
        matches!(ops.as_slice(), [Op::MoveRoute { from, .. }] if from.metric() == 512),
        "{ops:?}"
    );
}

#[test]
fn a_blackhole_read_back_with_a_metric_moves_to_the_default() {
    // How the reconciler reads a blackhole of ours with a metric (tortie never writes one).
    let odd = Route::unicast(vec![], None, 7);
    let ops = diff(
        &fib_with("198.19.1.0/26", odd.clone()),
        &fib_with("198.19.1.0/26", Route::Blackhole),
    );
    assert_eq!(
        ops,
        vec![Op::MoveRoute {
            prefix: net("198.19.1.0/26"),
            from: odd,
            route: Route::Blackhole,
        }]
    );
}

#[test]
fn kernel_model_refuses_a_replace_that_changes_the_metric() {
    let mut k = fib_with("198.19.5.0/26", underlay_route(SAME4, 0));
    let e = k.apply(&Op::ReplaceRoute {
        prefix: net("198.19.5.0/26"),
        route: underlay_route(SAME4, 512),
    });
    assert_eq!(
        e,
        Err(ApplyError::ReplaceChangesMetric(net("198.19.5.0/26")))
    );
}

#[test]
fn kernel_model_refuses_a_delete_or_move_naming_another_metric() {
    let mut k = fib_with("198.19.5.0/26", underlay_route(SAME4, 512));
    let p = net("198.19.5.0/26");
    assert_eq!(
        k.apply(&Op::DelRoute {
            prefix: p,
            route: underlay_route(SAME4, 0),
        }),
        Err(ApplyError::NoSuchMetric(p, 0))
    );
    assert_eq!(
        k.apply(&Op::MoveRoute {
            prefix: p,
            from: underlay_route(SAME4, 0),
            route: underlay_route(SAME4, 2048),
        }),
        Err(ApplyError::NoSuchMetric(p, 0))
    );
    // A move to the metric the route already has is an add of an existing key.
    assert_eq!(
        k.apply(&Op::MoveRoute {
            prefix: p,
            from: underlay_route(SAME4, 512),
            route: underlay_route("198.18.1.21", 512),
        }),
        Err(ApplyError::RouteExists(p))
    );
}

// ---------------------------------------------------------------------------------------------
// JSON

#[test]
fn default_metric_and_no_priority_are_left_out_of_json() {
    let s = host_gw(vec![best("198.19.5.0/26", &[SAME4])]);
    let j = serde_json::to_string(&s).unwrap();
    assert!(!j.contains("metric"), "{j}");
    let j = serde_json::to_string(&best("198.19.5.0/26", &[SAME4])).unwrap();
    assert!(!j.contains("priority"), "{j}");
}

#[test]
fn metric_and_priority_round_trip_through_json() {
    let b = best_with("198.19.5.0/26", &[SAME4], Some(512));
    let j = serde_json::to_string(&b).unwrap();
    assert!(j.contains("\"priority\":512"), "{j}");
    assert_eq!(serde_json::from_str::<BestRoute>(&j).unwrap(), b);
    let s = host_gw(vec![b]);
    let j = serde_json::to_string(&s).unwrap();
    assert!(j.contains("\"metric\":512"), "{j}");
    assert_eq!(serde_json::from_str::<DesiredState>(&j).unwrap(), s);
}

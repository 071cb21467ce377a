//! The diff between two FIBs: nothing for equal states, one operation per changed key, and an
//! order of operations that keeps every route resolvable while it is applied (FDB, then
//! neighbour, then route when adding; the reverse when removing).

use std::collections::{BTreeMap, BTreeSet};

use super::*;

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
    let r = Route::unicast(vec![hop("198.18.1.30", Device::Underlay, false)], None, 0);
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
        Route::unicast(vec![hop(SAME4, Device::Underlay, false)], None, 0),
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
pub(crate) fn check_transition_keeps_routes_resolvable(cur: &Fib, des: &Fib, ops: &[Op]) {
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

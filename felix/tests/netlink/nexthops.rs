//! Nexthop objects and routes that point at them by id (`nhid`).

use super::*;

#[test]
fn nexthop_objects_and_routes_via_nhid() {
    let ns = TestNs::with_veth("nhid");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let nh = NexthopObject::gateway(1_000_001, IpAddr::V4(PEER_V4), v0, true);
    let nh6 = NexthopObject::gateway(1_000_002, IpAddr::V6(PEER_V6), v0, false);
    let report = k
        .apply_nexthops(&[
            NexthopOp::Create(nh.clone()),
            NexthopOp::Create(nh6.clone()),
        ])
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    let shown = ns.ip_json(&["nexthop", "show"]);
    let j = shown
        .iter()
        .find(|n| n["id"] == 1_000_001)
        .unwrap_or_else(|| panic!("{shown:#?}"));
    assert_eq!(j["gateway"], "198.18.0.2");
    assert_eq!(j["dev"], "v0");
    assert!(
        j["flags"].as_array().unwrap().iter().any(|f| f == "onlink"),
        "{j}"
    );
    assert_eq!(j["protocol"], P.to_string());
    // A foreign object is not ours.
    ns.ip(&[
        "nexthop",
        "add",
        "id",
        "77",
        "via",
        "198.18.0.2",
        "dev",
        "v0",
    ]);
    let mut ours = k.dump_nexthops().unwrap();
    ours.sort_by_key(|o| o.id);
    assert_eq!(ours, vec![nh.clone(), nh6.clone()]);

    // 200 block routes point at the node's object.
    let routes: Vec<KernelRoute> = (0..200)
        .map(|i| KernelRoute::nexthop(slash30(i), nh.id))
        .chain([KernelRoute::nexthop(net("2001:2:0:19::/122"), nh6.id)])
        .collect();
    let ops: Vec<RouteOp> = routes.iter().cloned().map(RouteOp::Create).collect();
    assert!(k.apply_routes(&ops).unwrap().is_ok());
    let shown = ns.routes(P);
    assert_eq!(shown.len(), 201);
    assert_eq!(
        route_json(&shown, &slash30(7).to_string())["nhid"],
        1_000_001
    );
    let mut dumped = k.dump_routes().unwrap();
    dumped.iter_mut().for_each(|r| *r = r.clone().normalized());
    assert_eq!(
        dumped,
        routes
            .iter()
            .cloned()
            .map(KernelRoute::normalized)
            .collect::<Vec<_>>()
    );

    // Re-pointing the node is one message; every route follows.
    let before = k.stats();
    let moved = NexthopObject::gateway(nh.id, ip("198.18.0.3"), v0, true);
    k.replace_nexthop(&moved).unwrap();
    assert_eq!(k.stats().writes - before.writes, 1);
    let get = ns.ip_json(&["route", "get", "198.19.0.29"]);
    assert_eq!(get[0]["gateway"], "198.18.0.3", "{get:#?}");

    // ECMP through a group object.
    let b = NexthopObject::gateway(1_000_003, ip("198.18.0.4"), v0, false);
    let g = NexthopObject {
        id: 1_000_004,
        protocol: P,
        kind: NexthopKind::Group(vec![
            GroupMember {
                id: nh.id,
                weight: 1,
            },
            GroupMember {
                id: b.id,
                weight: 2,
            },
        ]),
    };
    let report = k
        .apply_nexthops(&[NexthopOp::Create(b.clone()), NexthopOp::Create(g.clone())])
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    k.replace_route(&KernelRoute::nexthop(net("198.19.200.0/26"), g.id))
        .unwrap();
    let shown = ns.ip_json(&["nexthop", "show", "id", "1000004"]);
    assert_eq!(
        shown[0]["group"].as_array().map(|a| a.len()),
        Some(2),
        "{shown:#?}"
    );
    assert!(k.dump_nexthops().unwrap().contains(&g));

    // Deleting an object deletes the routes through it (the kernel's rule).
    assert!(
        k.apply_nexthops(&[NexthopOp::Delete(nh6.id)])
            .unwrap()
            .is_ok()
    );
    assert!(!ns.routes(P).iter().any(|r| r["dst"] == "2001:2:0:19::/122"));

    // Flush: our routes and objects go, the foreign object stays.
    assert!(k.flush().unwrap().is_ok());
    assert!(ns.routes(P).is_empty());
    assert!(k.dump_nexthops().unwrap().is_empty());
    assert_eq!(ns.ip_json(&["nexthop", "show"]).len(), 1);
}

//! The reconciler against the kernel: repair of routes deleted or added by hand, foreign routes
//! left alone, a restart that writes nothing, one change as one message, the NAT table, flush,
//! a pool leaving VXLAN, a missing ipip module, and ECMP routes adopted after a restart.

use std::collections::BTreeSet;

use tortie_felix::desired::EncapMode;

use super::*;

// ---- the reconciler against the kernel ------------------------------------------------------------

/// A route of ours deleted by hand (`ip route del`) is put back by `repair`, with one message.
#[test]
fn route_deleted_by_hand_comes_back_after_repair() {
    let t = topology();
    let mut felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    let n1 = &t.nodes[0].ns;
    let before = our_routes(n1, false);
    ok(n1.ip(&["route", "del", "198.19.3.0/26"]));
    assert!(route_line(&our_routes(n1, false), "198.19.3.0/26").is_none());
    ok(ping_fails(&t.pods[0].ns, pod(&t, 2)));

    let f = &mut felix[0];
    let writes = f.felix.writes();
    let report = ok(apply(&mut f.felix, &f.desired));
    assert_eq!(
        report.ops, 0,
        "apply trusts what it wrote; repair reads the kernel"
    );
    let report = f.felix.repair(&f.desired).unwrap();
    assert_eq!(report.ops, 1, "{report:?}");
    assert_eq!(f.felix.writes() - writes, 1);
    assert_eq!(our_routes(n1, false), before);
    ok(ping(&t.pods[0].ns, pod(&t, 2), 2));
}

/// A route of tortie's protocol that the desired state does not hold is removed by `repair`.
#[test]
fn stray_route_of_our_protocol_is_removed_by_repair() {
    let t = topology();
    let mut felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    let n1 = &t.nodes[0].ns;
    let before = our_routes(n1, false);
    let proto = TORTIE_PROTOCOL.to_string();
    ok(n1.ip(&[
        "route",
        "add",
        "198.19.9.0/26",
        "via",
        "198.18.1.12",
        "proto",
        &proto,
    ]));
    let f = &mut felix[0];
    let writes = f.felix.writes();
    let report = f.felix.repair(&f.desired).unwrap();
    assert_eq!(report.ops, 1, "{report:?}");
    assert_eq!(f.felix.writes() - writes, 1);
    assert_eq!(our_routes(n1, false), before);
}

/// A route of another protocol (here `proto static`, inside the pod pool even) survives apply, repair
/// and flush unchanged.
#[test]
fn foreign_route_is_untouched_by_apply_repair_and_flush() {
    let t = topology();
    let n1 = &t.nodes[0].ns;
    ok(n1.ip(&[
        "route",
        "add",
        "198.19.200.0/24",
        "via",
        "198.18.1.1",
        "proto",
        "static",
    ]));
    let foreign = || ok(n1.ip(&["route", "show", "198.19.200.0/24"]));
    let original = foreign();
    assert!(original.contains("proto static"), "{original}");
    let mut felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    assert_eq!(foreign(), original);
    let f = &mut felix[0];
    let report = f.felix.repair(&f.desired).unwrap();
    assert_eq!(report.ops, 0, "{report:?}");
    assert_eq!(foreign(), original);
    f.felix.flush().unwrap();
    assert_eq!(foreign(), original);
}

/// A new felix (new netlink socket, nothing remembered) given the same desired state adopts what the
/// previous one wrote and sends no message at all, and leaves the NAT table as it is (no `nft`
/// transaction: the table and its objects keep their handles).
#[test]
fn restarted_felix_with_the_same_desired_state_writes_nothing() {
    let t = ok(Topology::four_nodes_dual_stack());
    let pools = [
        pool(POOL_V4, EncapMode::Never, EncapMode::CrossSubnet, true),
        pool(POOL_V6, EncapMode::Never, EncapMode::CrossSubnet, false),
    ];
    let first = ok(apply_all(&t, &pools));
    // Routes of both families, and the VXLAN devices with their neighbour and FDB entries.
    let state = |ns: &Netns| {
        let mut s = our_routes(ns, false) + &our_routes(ns, true);
        for dev in [desired::VXLAN_V4, desired::VXLAN_V6] {
            s += &ok(ns.ip(&["neigh", "show", "dev", dev]));
            s += &ok(ns.exec(&["bridge", "fdb", "show", "dev", dev]));
            s += &ok(ns.ip(&["-d", "link", "show", "dev", dev]));
        }
        s
    };
    let nft = |ns: &Netns| ok(ns.exec(&["nft", "-a", "list", "ruleset"]));
    let before: Vec<String> = t.nodes.iter().map(|n| state(&n.ns)).collect();
    let nft_before: Vec<String> = t.nodes.iter().map(|n| nft(&n.ns)).collect();
    assert!(before[0].contains("2001:2:0:2::13 lladdr"), "{}", before[0]);
    assert!(
        nft_before[0].contains("masquerade # handle"),
        "{}",
        nft_before[0]
    );
    assert!(first.iter().all(|f| f.felix.writes() > 0));
    assert!(first.iter().all(|f| f.felix.nat_writes() == 1));
    drop(first); // the agent stops; its routes stay
    let second = ok(apply_all(&t, &pools));
    for (i, f) in second.iter().enumerate() {
        assert_eq!(f.felix.writes(), 0, "node{} after a restart", i + 1);
        assert_eq!(f.felix.nat_writes(), 0, "node{} after a restart", i + 1);
        assert_eq!(state(&t.nodes[i].ns), before[i]);
        assert_eq!(
            nft(&t.nodes[i].ns),
            nft_before[i],
            "node{}'s nftables",
            i + 1
        );
    }
    ok(ping(&t.pods[0].ns, pod(&t, 3), 2));
}

/// natOutgoing's table exists only while a pool masquerades: none is written without one, and one
/// left from an earlier configuration is removed. A restart rewrites it only when it differs from
/// what felix would write (here: a rule added by hand).
#[test]
fn nat_table_only_with_a_masquerading_pool_and_rewritten_only_when_it_differs() {
    let t = topology();
    let n1 = &t.nodes[0].ns;
    let has_table = || ok(n1.exec(&["nft", "list", "tables"])).contains("inet tortie");
    let masq = [pool(
        POOL_V4,
        EncapMode::Never,
        EncapMode::CrossSubnet,
        true,
    )];
    let plain = [pool(
        POOL_V4,
        EncapMode::Never,
        EncapMode::CrossSubnet,
        false,
    )];
    let desired_for = |pools: &[desired::Pool], f: &mut tortie_felix::reconcile::Felix| {
        let mtu = ok(underlay_mtu(f, "eth0"));
        desired::compute(&inputs(&t, 0, pools, mtu))
    };
    let start = |pools: &[desired::Pool]| {
        let mut f = ok(felix_for(&t.nodes[0]));
        let d = desired_for(pools, &mut f);
        ok(apply(&mut f, &d));
        f
    };

    let f = start(&plain);
    assert_eq!(f.nat_writes(), 0);
    assert!(!has_table(), "a table without a natOutgoing pool");

    let f = start(&masq);
    assert_eq!(f.nat_writes(), 1);
    let table = || ok(n1.exec(&["nft", "-a", "list", "table", "inet", "tortie"]));
    let written = table();
    let nat = desired_for(&masq, &mut ok(felix_for(&t.nodes[0]))).nat;
    let listing = tortie_felix::nat::read(Some(n1.name())).unwrap().unwrap();
    assert!(tortie_felix::nat::holds(listing, &nat), "{written}");
    drop(f);

    // A restart: nothing written, the handles are the same.
    let f = start(&masq);
    assert_eq!(f.nat_writes(), 0);
    assert_eq!(table(), written);
    drop(f);

    // Someone adds a rule to tortie's table: the next start replaces the table.
    ok(n1.exec(&[
        "nft",
        "add",
        "rule",
        "inet",
        "tortie",
        "postrouting",
        "ip",
        "daddr",
        "192.0.2.1",
        "accept",
    ]));
    let f = start(&masq);
    assert_eq!(f.nat_writes(), 1);
    let rewritten = table();
    assert!(!rewritten.contains("192.0.2.1"), "{rewritten}");
    assert_ne!(rewritten, written, "new handles");
    drop(f);

    // The pool stops masquerading: the table goes, once.
    let f = start(&plain);
    assert_eq!(f.nat_writes(), 1);
    assert!(!has_table());
    drop(f);
    let f = start(&plain);
    assert_eq!(f.nat_writes(), 0);
    assert!(!has_table());
}

/// One changed best route (node2's block now reached via node3, across the subnets) is one netlink
/// message: the route is replaced; node3's neighbour and FDB entries are already there.
#[test]
fn one_changed_route_writes_one_message() {
    let t = topology();
    let mut felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    let f = &mut felix[0];
    let mut inputs = f.inputs.clone();
    let r = inputs
        .routes
        .iter_mut()
        .find(|r| r.prefix.to_string() == "198.19.2.0/26")
        .unwrap();
    r.next_hops = vec![IpAddr::V4(t.nodes[2].addr)];
    let writes = f.felix.writes();
    let report = ok(f.apply_inputs(inputs));
    assert_eq!(report.ops, 1, "{report:?}");
    assert_eq!(f.felix.writes() - writes, 1);
    let routes = our_routes(&t.nodes[0].ns, false);
    assert_route(
        &routes,
        "198.19.2.0/26",
        &["via 198.18.2.13 dev vxlan.tortie", "onlink"],
    );
}

/// The same through the incremental planner and `Felix::apply_changes`: one message per changed
/// route, and moving the block back restores pod-to-pod traffic.
#[test]
fn one_changed_route_through_the_planner_writes_one_message() {
    let t = topology();
    let mut felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    let f = &mut felix[0];
    let mut planner = desired::Planner::new(&f.inputs);
    let block: ipnet::IpNet = "198.19.2.0/26".parse().unwrap();
    for (via, line) in [
        (node(&t, 2), "via 198.18.2.13 dev vxlan.tortie"),
        (node(&t, 1), "via 198.18.1.12 dev eth0"),
    ] {
        planner.set_route(block, [via], None);
        let changes = planner.take_changes();
        assert_eq!(changes.routes.len(), 1, "{changes:?}");
        let writes = f.felix.writes();
        let report = ok(apply_changes(&mut f.felix, planner.state(), &changes));
        assert_eq!(
            (report.ops, f.felix.writes() - writes),
            (1, 1),
            "{report:?}"
        );
        assert_route(&our_routes(&t.nodes[0].ns, false), "198.19.2.0/26", &[line]);
    }
    ok(ping(&t.pods[0].ns, pod(&t, 1), 2));
}

/// `flush` removes tortie's routes, its VXLAN devices (with their neighbour and FDB entries) and its
/// NAT table, and nothing else: the pod routes, the default route, another protocol's route and
/// another nftables table stay.
#[test]
fn flush_removes_tortie_routes_vxlan_devices_and_nat_table_only() {
    let t = topology();
    let n1 = &t.nodes[0].ns;
    ok(n1.ip(&[
        "route",
        "add",
        "198.19.200.0/24",
        "via",
        "198.18.1.1",
        "proto",
        "static",
    ]));
    ok(n1.exec(&["nft", "add", "table", "inet", "mine"]));
    let pools = [pool(
        POOL_V4,
        EncapMode::Never,
        EncapMode::CrossSubnet,
        true,
    )];
    let mut felix = ok(apply_all(&t, &pools));
    let all_routes = |ns: &Netns| ok(ns.ip(&["route", "show"]));
    let before = all_routes(n1);
    assert!(n1.has_link(desired::VXLAN_V4));
    assert!(!our_routes(n1, false).is_empty());

    felix[0].felix.flush().unwrap();
    assert_eq!(our_routes(n1, false), "");
    assert!(!n1.has_link(desired::VXLAN_V4));
    let tables = ok(n1.exec(&["nft", "list", "tables"]));
    assert!(!tables.contains("tortie"), "{tables}");
    assert!(tables.contains("table inet mine"), "{tables}");
    // Everything else is as it was: the routes that are not ours, line for line.
    let ours = |l: &&str| {
        [
            "198.19.2.0/26",
            "198.19.3.0/26",
            "198.19.4.0/26",
            "blackhole 198.19.1.0/26",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    };
    let kept: Vec<&str> = before.lines().filter(|l| !ours(l)).collect();
    let after = all_routes(n1);
    assert_eq!(after.lines().collect::<Vec<_>>(), kept);
    for needle in [
        "default via 198.18.1.1",
        "198.19.1.2 dev cali-pod1",
        "198.19.200.0/24 via 198.18.1.1",
    ] {
        assert!(after.contains(needle), "{needle} gone:\n{after}");
    }
    // The other nodes were not touched.
    assert!(t.nodes[1].ns.has_link(desired::VXLAN_V4));
}

/// A pool switched from VXLAN to Never: felix removes vxlan.tortie (with its neighbour and FDB
/// entries, as `flush` does), routes the blocks on the underlay, and the next apply has nothing to do.
#[test]
fn vxlan_device_goes_when_no_pool_uses_vxlan_any_more() {
    let t = topology();
    let mut felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    let (f, n1) = (&mut felix[0], &t.nodes[0].ns);
    assert!(n1.has_link(desired::VXLAN_V4));
    let mut inputs = f.inputs.clone();
    inputs.pools = vec![vxlan_pool(EncapMode::Never)];
    ok(f.apply_inputs(inputs.clone()));
    assert!(
        !n1.has_link(desired::VXLAN_V4),
        "vxlan.tortie is still there"
    );
    let routes = our_routes(n1, false);
    assert_route(&routes, "198.19.2.0/26", &["via 198.18.1.12 dev eth0"]);
    assert_route(&routes, "198.19.3.0/26", &["via 198.18.1.1 dev eth0"]);
    assert_route(&routes, "198.19.4.0/26", &["via 198.18.1.1 dev eth0"]);
    let writes = f.felix.writes();
    let report = ok(f.apply_inputs(inputs));
    assert_eq!(
        (report.ops, f.felix.writes() - writes),
        (0, 0),
        "{report:?}"
    );
    ok(ping(&t.pods[0].ns, pod(&t, 1), 2));
}

/// This kernel has no ipip module: an IPIP pool's routes cannot be installed, felix says so naming
/// the module, and everything else (a VXLAN pool's routes, host-gw routes) is installed and works.
#[test]
fn missing_ipip_module_is_reported_and_vxlan_keeps_working() {
    if std::path::Path::new("/sys/module/ipip").exists() {
        eprintln!("this kernel has ipip; the VM tests cover IPIP");
        return;
    }
    let t = topology();
    // Nodes 2 and 3's blocks in an IPIP pool, the rest of 198.19.0.0/16 in a VXLAN one.
    let pools = [
        pool("198.19.2.0/23", EncapMode::Always, EncapMode::Never, false),
        vxlan_pool(EncapMode::CrossSubnet),
    ];
    let mut f = ok(felix_for(&t.nodes[0]));
    let mtu = ok(underlay_mtu(&mut f, "eth0"));
    let desired = desired::compute(&inputs(&t, 0, &pools, mtu));
    assert!(desired.tunnels.tunl0.is_some() && desired.tunnels.vxlan.is_some());
    let report = f.apply(&desired).unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.device_problems.len(), 1, "{report:?}");
    let problem = &report.device_problems[0];
    assert!(
        problem.contains("ipip") && problem.contains("tunl0"),
        "{problem}"
    );
    let routes = our_routes(&t.nodes[0].ns, false);
    assert!(route_line(&routes, "198.19.2.0/26").is_none(), "{routes}");
    assert!(route_line(&routes, "198.19.3.0/26").is_none(), "{routes}");
    assert_route(
        &routes,
        "198.19.4.0/26",
        &["via 198.18.2.14 dev vxlan.tortie"],
    );
    assert_route(&routes, "198.19.1.0/26", &["blackhole"]);

    // node4 routes back to pod1 over VXLAN as well.
    let mut f4 = ok(felix_for(&t.nodes[3]));
    let d4 = desired::compute(&inputs(&t, 3, &[vxlan_pool(EncapMode::CrossSubnet)], mtu));
    ok(apply(&mut f4, &d4));
    ok(ping(&t.pods[0].ns, pod(&t, 3), 2));
}

/// An ECMP best route (three next hops: node2 in this subnet, nodes 3 and 4 in the other) is one
/// multipath route mixing the underlay and vxlan.tortie, and a restarted felix adopts it as it is.
#[test]
fn ecmp_best_route_is_one_multipath_route_and_a_restart_adopts_it() {
    let t = topology();
    let mut felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    let f = &mut felix[0];
    let mut inputs = f.inputs.clone();
    inputs.routes.push(desired::BestRoute {
        prefix: "198.19.5.0/26".parse().unwrap(),
        next_hops: vec![node(&t, 3), node(&t, 1), node(&t, 2)],
        priority: None,
    });
    let writes = f.felix.writes();
    let report = ok(f.apply_inputs(inputs.clone()));
    assert_eq!(
        (report.ops, f.felix.writes() - writes),
        (1, 1),
        "{report:?}"
    );
    let json = ok(t.nodes[0]
        .ns
        .ip(&["-j", "-4", "route", "show", "198.19.5.0/26"]));
    let routes: serde_json::Value = serde_json::from_str(&json).unwrap();
    let hops: BTreeSet<(String, String, bool)> = routes[0]["nexthops"]
        .as_array()
        .unwrap_or_else(|| panic!("not multipath: {json}"))
        .iter()
        .map(|h| {
            let onlink = h["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "onlink"));
            (
                h["gateway"].as_str().unwrap().into(),
                h["dev"].as_str().unwrap().into(),
                onlink,
            )
        })
        .collect();
    let want: BTreeSet<(String, String, bool)> = [
        ("198.18.1.12", "eth0", false),
        ("198.18.2.13", "vxlan.tortie", true),
        ("198.18.2.14", "vxlan.tortie", true),
    ]
    .into_iter()
    .map(|(g, d, o)| (g.into(), d.into(), o))
    .collect();
    assert_eq!(hops, want, "{json}");

    let mut restarted = ok(felix_for(&t.nodes[0]));
    let report = ok(apply(&mut restarted, &desired::compute(&inputs)));
    assert_eq!((report.ops, restarted.writes()), (0, 0), "{report:?}");
}

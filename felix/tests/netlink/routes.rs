//! Route objects: add, replace and delete; a batch of 10k with one bad route; requests refused
//! before they reach the kernel; ECMP, blackhole and IPv6 routes; and routes of other protocols,
//! which are never listed nor touched.

use super::*;

#[test]
fn route_add_replace_delete_ipv4() {
    let ns = TestNs::with_veth("rt4");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let r = KernelRoute::via(net("198.19.0.0/26"), IpAddr::V4(PEER_V4), v0);

    k.create_route(&r).unwrap();
    let routes = ns.routes(P);
    assert_eq!(routes.len(), 1, "{routes:#?}");
    let j = route_json(&routes, "198.19.0.0/26");
    assert_eq!(j["gateway"], "198.18.0.2");
    assert_eq!(j["dev"], "v0");
    assert_eq!(k.dump_routes().unwrap(), vec![r.clone()]);

    // Create again: EEXIST, the kernel's refusal, not a crash and not a replace.
    let e = k.create_route(&r).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert_eq!(e.fault(), Fault::Kernel);

    // Replace: same key, new gateway, onlink.
    let r2 = KernelRoute::new(
        r.prefix,
        RouteKind::Unicast(vec![NextHop::via_onlink(ip("198.18.0.3"), v0)]),
    );
    k.replace_route(&r2).unwrap();
    let routes = ns.routes(P);
    assert_eq!(routes.len(), 1);
    let j = route_json(&routes, "198.19.0.0/26");
    assert_eq!(j["gateway"], "198.18.0.3");
    assert!(
        j["flags"].as_array().unwrap().iter().any(|f| f == "onlink"),
        "{j}"
    );
    assert_eq!(k.dump_routes().unwrap(), vec![r2.clone()]);

    // A metric is part of the key: a second route for the same prefix.
    let r3 = r.clone().with_metric(50);
    k.replace_route(&r3).unwrap();
    assert_eq!(ns.routes(P).len(), 2);

    k.delete_route(&r2).unwrap();
    k.delete_route(&r3).unwrap();
    assert!(ns.routes(P).is_empty());
    let e = k.delete_route(&r2).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ESRCH), "{e}");
}

#[test]
fn batch_of_10k_with_one_bad_route() {
    let ns = TestNs::with_veth("batch");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let mut ops: Vec<RouteOp> = (0..10_000)
        .map(|i| RouteOp::Replace(KernelRoute::via(slash30(i), IpAddr::V4(PEER_V4), v0)))
        .collect();
    // 203.0.113.1 is not reachable from v0 (and not onlink): the kernel refuses this one.
    ops[5000] = RouteOp::Replace(KernelRoute::via(slash30(5000), ip("203.0.113.1"), v0));
    let before = k.stats();
    let report = k.apply_routes(&ops).unwrap();
    assert_eq!(report.ops, 10_000);
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let f = &report.failures[0];
    assert_eq!(f.index, 5000);
    assert_eq!(f.error.errno(), Some(libc::ENETUNREACH), "{}", f.error);
    assert!(
        matches!(&f.error, OpError::Rejected(KernelError { message: Some(m), .. }) if !m.is_empty()),
        "{}",
        f.error
    );
    assert!(report.unconfirmed.is_empty());
    assert_eq!(report.succeeded(), 9_999);
    // Few sendmsg calls for 10k messages.
    assert!(report.sendmsg_calls <= 4, "{report:?}");
    assert_eq!(k.stats().writes - before.writes, 10_000);

    let shown = ns.routes(P);
    assert_eq!(shown.len(), 9_999);
    assert!(!shown.iter().any(|r| r["dst"] == slash30(5000).to_string()));
    assert!(shown.iter().any(|r| r["dst"] == slash30(4999).to_string()));
    assert!(shown.iter().any(|r| r["dst"] == slash30(5001).to_string()));
    assert_eq!(k.dump_routes().unwrap().len(), 9_999);

    // Every failure is reported, not only the first: an all-bad batch of 3000.
    let bad: Vec<RouteOp> = (0..3000)
        .map(|i| RouteOp::Replace(KernelRoute::via(slash30(10_000 + i), ip("203.0.113.1"), v0)))
        .collect();
    let report = k.apply_routes(&bad).unwrap();
    assert_eq!(report.failures.len(), 3000);
    assert!(
        report
            .failures
            .iter()
            .enumerate()
            .all(|(i, f)| f.index == i)
    );

    // One message per acknowledgement mode gives the same outcome.
    let cfg = KernelConfig {
        socket: SocketConfig {
            ack_every_message: true,
            ..SocketConfig::default()
        },
        ..KernelConfig::default()
    };
    let mut k2 = Kernel::open(ns.netns(), cfg).unwrap();
    let report = k2.apply_routes(&ops[4990..5010]).unwrap();
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].index, 10);

    // Flush removes them all.
    let report = k.flush().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(ns.routes(P).is_empty());

    // Small socket buffers: many sendmsg calls, the failure still matched to its message
    // across buffer boundaries, and an all-failing run never overruns the receive queue.
    let cfg = KernelConfig {
        socket: SocketConfig {
            buffer_bytes: 64 << 10,
            ..SocketConfig::default()
        },
        ..KernelConfig::default()
    };
    let mut small = Kernel::open(ns.netns(), cfg).unwrap();
    let report = small.apply_routes(&ops).unwrap();
    assert!(report.sendmsg_calls > 20, "{}", report.sendmsg_calls);
    assert_eq!(
        report.failures.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![5000]
    );
    let report = small.apply_routes(&bad).unwrap();
    assert_eq!(report.failures.len(), 3000);
    assert!(report.unconfirmed.is_empty());
    assert_eq!(ns.routes(P).len(), 9_999);
    assert!(small.flush().unwrap().is_ok());

    // Budget too little receive buffer per error reply and the queue overruns: what was lost
    // is reported as unconfirmed (never guessed, never a hang), and the socket stays usable.
    let cfg = KernelConfig {
        socket: SocketConfig {
            buffer_bytes: 64 << 10,
            error_reply_budget: 16,
            ..SocketConfig::default()
        },
        ..KernelConfig::default()
    };
    let mut overrun = Kernel::open(ns.netns(), cfg).unwrap();
    let report = overrun.apply_routes(&bad).unwrap();
    assert!(!report.unconfirmed.is_empty(), "expected an overrun");
    assert_eq!(report.failures.len() + report.unconfirmed.len(), 3000);
    assert!(overrun.dump_routes().unwrap().is_empty());
}

#[test]
fn invalid_requests_are_refused_before_the_kernel() {
    let ns = TestNs::with_veth("inval");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let ops = vec![
        RouteOp::Replace(KernelRoute::via(
            net("198.19.0.0/26"),
            IpAddr::V4(PEER_V4),
            v0,
        )),
        // IPv4 prefix via an IPv6 gateway: the caller's mistake.
        RouteOp::Replace(KernelRoute::via(
            net("198.19.0.64/26"),
            IpAddr::V6(PEER_V6),
            v0,
        )),
        // Someone else's protocol: never written.
        RouteOp::Replace(
            KernelRoute::via(net("198.19.0.128/26"), IpAddr::V4(PEER_V4), v0).with_protocol(4),
        ),
        RouteOp::Replace(KernelRoute::via(
            net("198.19.0.192/26"),
            IpAddr::V4(PEER_V4),
            v0,
        )),
    ];
    let report = k.apply_routes(&ops).unwrap();
    let idx: Vec<usize> = report.failures.iter().map(|f| f.index).collect();
    assert_eq!(idx, vec![1, 2]);
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.error.fault() == Fault::Caller)
    );
    assert_eq!(ns.routes(P).len(), 2);
    assert!(ns.routes(4).is_empty());
    // A protocol shared with everyone is refused at open.
    let e = Kernel::open(
        ns.netns(),
        KernelConfig {
            protocol: 3,
            ..KernelConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.fault(), Fault::Caller);
}

#[test]
fn ecmp_multipath_route() {
    let ns = TestNs::with_veth("ecmp");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let r = KernelRoute::new(
        net("198.19.1.0/26"),
        RouteKind::Unicast(vec![
            NextHop::via(IpAddr::V4(PEER_V4), v0),
            NextHop::via(ip("198.18.0.3"), v0).weight(3),
        ]),
    );
    k.replace_route(&r).unwrap();
    let routes = ns.routes(P);
    let j = route_json(&routes, "198.19.1.0/26");
    let hops = j["nexthops"].as_array().unwrap_or_else(|| panic!("{j}"));
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["gateway"], "198.18.0.2");
    assert_eq!(hops[0]["weight"], 1);
    assert_eq!(hops[1]["gateway"], "198.18.0.3");
    assert_eq!(hops[1]["weight"], 3);
    assert_eq!(hops[1]["dev"], "v0");
    assert_eq!(k.dump_routes().unwrap(), vec![r.clone().normalized()]);

    // IPv6 ECMP.
    let r6 = KernelRoute::new(
        net("2001:2:0:19::/122"),
        RouteKind::Unicast(vec![
            NextHop::via(IpAddr::V6(PEER_V6), v0),
            NextHop::via(ip("2001:2::3"), v0).weight(2),
        ]),
    );
    k.replace_route(&r6).unwrap();
    let routes = ns.routes(P);
    let j = route_json(&routes, "2001:2:0:19::/122");
    assert_eq!(j["nexthops"].as_array().map(|a| a.len()), Some(2), "{j}");
    let dumped = k.dump_routes().unwrap();
    assert!(dumped.contains(&r6.clone().normalized()), "{dumped:#?}");
    k.delete_route(&r6).unwrap();
    k.delete_route(&r).unwrap();
    assert!(ns.routes(P).is_empty());
}

#[test]
fn blackhole_routes() {
    let ns = TestNs::bare("bh");
    let mut k = ns.kernel();
    let b4 = KernelRoute::blackhole(net("198.19.2.0/26"));
    let b6 = KernelRoute::blackhole(net("2001:2:0:19::40/122"));
    let report = k
        .apply_routes(&[RouteOp::Create(b4.clone()), RouteOp::Create(b6.clone())])
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    let routes = ns.routes(P);
    assert_eq!(routes.len(), 2, "{routes:#?}");
    assert!(
        routes.iter().all(|r| r["type"] == "blackhole"),
        "{routes:#?}"
    );
    let dumped = k.dump_routes().unwrap();
    assert_eq!(dumped, vec![b4.clone(), b6.clone().normalized()]);
    let report = k
        .apply_routes(&[RouteOp::Delete(b4), RouteOp::Delete(b6)])
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(ns.routes(P).is_empty());
}

#[test]
fn ipv6_routes() {
    let ns = TestNs::with_veth("rt6");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let routes: Vec<KernelRoute> = (0..64u16)
        .map(|i| {
            let p = IpNet::new(
                IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 2, 0, 0x19, 0, 0, 0, i * 64)),
                122,
            )
            .unwrap();
            KernelRoute::via(p, IpAddr::V6(PEER_V6), v0).with_metric(100)
        })
        .collect();
    let ops: Vec<RouteOp> = routes.iter().cloned().map(RouteOp::Create).collect();
    assert!(k.apply_routes(&ops).unwrap().is_ok());
    let shown = ns.ip_json(&["-6", "route", "show", "proto", &P.to_string()]);
    assert_eq!(shown.len(), 64);
    let j = route_json(&shown, "2001:2:0:19::40/122");
    assert_eq!(j["gateway"], "2001:2::2");
    assert_eq!(j["metric"], 100);
    assert_eq!(k.dump_routes().unwrap(), routes);
    // metric 0 is reported back as 1024, which normalized() anticipates.
    let r0 = KernelRoute::via(net("2001:2:0:1a::/64"), IpAddr::V6(PEER_V6), v0);
    k.replace_route(&r0).unwrap();
    assert!(k.dump_routes().unwrap().contains(&r0.clone().normalized()));
    let del: Vec<RouteOp> = routes
        .into_iter()
        .chain([r0])
        .map(RouteOp::Delete)
        .collect();
    assert!(k.apply_routes(&del).unwrap().is_ok());
    assert!(ns.routes(P).is_empty());
}

#[test]
fn foreign_routes_are_never_listed_nor_touched() {
    let ns = TestNs::with_veth("foreign");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    ns.ip(&[
        "route",
        "add",
        "198.19.5.0/26",
        "via",
        "198.18.0.2",
        "proto",
        "static",
    ]);
    ns.ip(&[
        "route",
        "add",
        "198.19.6.0/26",
        "via",
        "198.18.0.2",
        "proto",
        "bird",
    ]);
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "198.19.7.0/26",
        "proto",
        "static",
        "metric",
        "10",
    ]);
    ns.ip(&[
        "-6",
        "route",
        "add",
        "2001:2:0:19::/122",
        "via",
        "2001:2::2",
        "proto",
        "static",
    ]);
    let ours = KernelRoute::via(net("198.19.8.0/26"), IpAddr::V4(PEER_V4), v0);
    k.replace_route(&ours).unwrap();
    // Same prefix as a foreign route, other metric: coexists.
    let twin = KernelRoute::blackhole(net("198.19.7.0/26")).with_metric(20);
    k.replace_route(&twin).unwrap();

    let mut dumped = k.dump_routes().unwrap();
    dumped.sort_by_key(|r| r.prefix);
    assert_eq!(dumped, vec![twin.clone(), ours.clone()]);
    let all = k.dump_routes_in(RT_TABLE_MAIN, None).unwrap();
    assert!(
        all.iter()
            .any(|r| r.protocol == 4 && r.prefix == net("198.19.5.0/26"))
    );
    assert!(all.iter().any(|r| r.protocol == 12));

    // Create at the key of a foreign route: refused, the foreign route is unchanged.
    let clash = KernelRoute::via(net("198.19.5.0/26"), ip("198.18.0.9"), v0);
    assert_eq!(
        k.create_route(&clash).unwrap_err().errno(),
        Some(libc::EEXIST)
    );
    // Delete of ours at a foreign route's key (metric 0 = any): the kernel matches our
    // protocol, finds nothing of ours, and leaves the static route alone.
    assert_eq!(
        k.delete_route(&KernelRoute::via(
            net("198.19.5.0/26"),
            IpAddr::V4(PEER_V4),
            v0
        ))
        .unwrap_err()
        .errno(),
        Some(libc::ESRCH)
    );
    let e = k
        .delete_route(&KernelRoute::blackhole(net("198.19.7.0/26")).with_metric(10))
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ESRCH));
    // An explicit request to delete a foreign route is refused before the kernel.
    let e = k
        .delete_route(
            &KernelRoute::blackhole(net("198.19.7.0/26"))
                .with_protocol(4)
                .with_metric(10),
        )
        .unwrap_err();
    assert_eq!(e.fault(), Fault::Caller);

    assert!(k.flush().unwrap().is_ok());
    let statics = ns.routes(4);
    assert_eq!(statics.len(), 3, "{statics:#?}");
    assert_eq!(
        route_json(&statics, "198.19.5.0/26")["gateway"],
        "198.18.0.2"
    );
    assert_eq!(ns.ip_json(&["route", "show", "proto", "bird"]).len(), 1);
    assert!(ns.routes(P).is_empty());
}

//! felix's kernel interface against the real kernel, each test in namespaces of its own (run
//! as root). What felix writes is checked with iproute2 (`ip -j`, `bridge -j`), not with
//! felix's own dumps alone.

mod nl_support;

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use netlink_packet_core::Parseable;
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use nl_support::*;
use serde_json::Value;
use tortie_felix::netlink::link::{self, VXLAN_V4_NAME, VXLAN_V6_NAME};
use tortie_felix::netlink::nexthop::nexthop_request_bytes;
use tortie_felix::netlink::route::route_request_bytes;
use tortie_felix::netlink::*;

const P: u8 = TORTIE_PROTOCOL;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn route_json<'a>(routes: &'a [Value], dst: &str) -> &'a Value {
    routes
        .iter()
        .find(|r| r["dst"] == dst)
        .unwrap_or_else(|| panic!("no route {dst} in {routes:#?}"))
}

/// The /30s of 198.19.0.0/16, in order.
fn slash30(i: u32) -> IpNet {
    let base = u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i * 4;
    IpNet::new(IpAddr::V4(Ipv4Addr::from(base)), 30).unwrap()
}

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

fn link_json(ns: &TestNs, dev: &str) -> Value {
    ns.ip_json(&["-d", "link", "show", "dev", dev])
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {dev}"))
}

#[test]
fn vxlan_device_create_adopt_recreate() {
    let ns = TestNs::with_veth("vxlan");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let mac = [0x66, 0x74, 0xc6, 0x12, 0x00, 0x01];
    let mut spec = VxlanSpec::v4(NODE_V4, Some(v0), mac);
    spec.mtu = Some(1450);

    let (l, change) = k.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Created);
    assert_eq!(l.name, VXLAN_V4_NAME);
    let j = link_json(&ns, VXLAN_V4_NAME);
    assert_eq!(j["address"], "66:74:c6:12:00:01");
    assert_eq!(j["mtu"], 1450);
    assert!(
        j["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{j}"
    );
    let d = &j["linkinfo"]["info_data"];
    assert_eq!(j["linkinfo"]["info_kind"], "vxlan");
    assert_eq!(d["id"], 4096);
    assert_eq!(d["port"], 4789);
    assert_eq!(d["local"], "198.18.0.1");
    assert_eq!(d["link"], "v0");
    assert_eq!(d["learning"], false, "{d}");

    // Adopt: nothing written, not even by a fresh handle (an agent restart).
    let mut k2 = ns.kernel();
    let (l2, change) = k2.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Unchanged);
    assert_eq!(l2.index, l.index);
    assert_eq!(k2.stats().writes, 0);

    // MTU and MAC change in place.
    spec.mtu = Some(1400);
    spec.mac[5] = 2;
    let (l3, change) = k.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Updated);
    assert_eq!(l3.index, l.index);
    let j = link_json(&ns, VXLAN_V4_NAME);
    assert_eq!(
        (j["mtu"].as_u64(), j["address"].as_str()),
        (Some(1400), Some("66:74:c6:12:00:02"))
    );

    // Someone turns it down: brought up again.
    ns.ip(&["link", "set", VXLAN_V4_NAME, "down"]);
    assert_eq!(k.ensure_vxlan(&spec).unwrap().1, LinkChange::Updated);
    assert!(k.require_link(VXLAN_V4_NAME).unwrap().up);

    // Another VNI cannot be changed in place: recreated.
    spec.vni = 4097;
    let (l4, change) = k.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Recreated);
    assert_ne!(l4.index, l.index);
    assert_eq!(
        link_json(&ns, VXLAN_V4_NAME)["linkinfo"]["info_data"]["id"],
        4097
    );
}

#[test]
fn vxlan_v6_device() {
    let ns = TestNs::with_veth("vxlan6");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    // A bridge squatting the name is replaced by the VXLAN device.
    ns.ip(&["link", "add", VXLAN_V6_NAME, "type", "bridge"]);
    let spec = VxlanSpec::v6(NODE_V6, Some(v0), [0x66, 0x74, 0x20, 0x01, 0, 1]);
    let (l, change) = k.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Recreated);
    let j = link_json(&ns, VXLAN_V6_NAME);
    let d = &j["linkinfo"]["info_data"];
    assert_eq!(d["id"], 6096);
    assert_eq!(d["local6"], "2001:2::1");
    assert_eq!(d["port"], 4789);
    // The kernel derives the MTU from the underlay: 1500 - 70.
    assert_eq!(l.mtu, 1430);
    assert_eq!(k.ensure_vxlan(&spec).unwrap().1, LinkChange::Unchanged);
}

#[test]
fn links_addresses_and_lookup() {
    let ns = TestNs::with_veth("links");
    let mut k = ns.kernel();
    let links = k.links().unwrap();
    assert!(links.iter().any(|l| l.name == "lo"));
    let v0 = k.require_link("v0").unwrap();
    assert_eq!(v0.kind.as_deref(), Some("veth"));
    assert_eq!(v0.mtu, 1500);
    assert!(v0.up);
    assert_eq!(
        k.link_by_index(v0.index).unwrap().map(|l| l.name),
        Some("v0".to_string())
    );
    assert_eq!(k.link_by_name("nope0").unwrap(), None);
    assert!(matches!(
        k.require_link("nope0"),
        Err(NlError::NoSuchLink(_))
    ));

    let addrs = k.addresses(v0.index).unwrap();
    assert!(addrs.contains(&net("198.18.0.1/24")), "{addrs:?}");
    assert!(addrs.contains(&net("2001:2::1/64")), "{addrs:?}");

    // Exactly these IPv4 addresses: one added, the other removed; IPv6 untouched.
    assert!(
        k.set_addresses(
            v0.index,
            false,
            &[net("198.18.0.1/24"), net("198.18.1.1/32")]
        )
        .unwrap()
    );
    assert!(
        !k.set_addresses(
            v0.index,
            false,
            &[net("198.18.0.1/24"), net("198.18.1.1/32")]
        )
        .unwrap()
    );
    let shown: Vec<String> = ns.ip_json(&["-4", "addr", "show", "dev", "v0"])[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert_eq!(shown, vec!["198.18.0.1/24", "198.18.1.1/32"]);
    assert!(
        k.set_addresses(v0.index, false, &[net("198.18.0.1/24")])
            .unwrap()
    );
    assert_eq!(
        ns.ip_json(&["-4", "addr", "show", "dev", "v0"])[0]["addr_info"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        k.addresses(v0.index)
            .unwrap()
            .contains(&net("2001:2::1/64"))
    );

    // MTU and state in place.
    k.set_link(
        v0.index,
        &LinkSettings {
            mtu: Some(1400),
            up: Some(false),
            mac: None,
        },
    )
    .unwrap();
    let j = ns.ip_json(&["link", "show", "dev", "v0"]);
    assert_eq!(j[0]["mtu"], 1400);
    assert!(!j[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
}

#[test]
fn neighbour_and_fdb_entries_for_vxlan_peers() {
    let ns = TestNs::with_veth("neigh");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let (vx, _) = k
        .ensure_vxlan(&VxlanSpec::v4(NODE_V4, Some(v0), [0x66, 0x74, 0, 0, 0, 1]))
        .unwrap();
    let peer_mac = [0x66, 0x74, 0xc6, 0x13, 0x02, 0x00];
    let n = NeighbourEntry {
        ifindex: vx.index,
        ip: ip("198.19.2.0"),
        mac: peer_mac,
    };
    let f = FdbEntry {
        ifindex: vx.index,
        mac: peer_mac,
        dst: ip("198.18.0.2"),
    };
    assert!(
        k.apply_neighbours(&[NeighOp::Replace(n.clone())])
            .unwrap()
            .is_ok()
    );
    assert!(k.apply_fdb(&[FdbOp::Replace(f.clone())]).unwrap().is_ok());

    let neigh = ns.ip_json(&["neigh", "show", "dev", VXLAN_V4_NAME]);
    let j = neigh
        .iter()
        .find(|e| e["dst"] == "198.19.2.0")
        .unwrap_or_else(|| panic!("{neigh:#?}"));
    assert_eq!(j["lladdr"], "66:74:c6:13:02:00");
    assert!(
        j["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "PERMANENT"),
        "{j}"
    );
    let fdb = ns.bridge_json(&["fdb", "show", "dev", VXLAN_V4_NAME]);
    let j = fdb
        .iter()
        .find(|e| e["mac"] == "66:74:c6:13:02:00")
        .unwrap_or_else(|| panic!("{fdb:#?}"));
    assert_eq!(j["dst"], "198.18.0.2");
    assert!(
        j["flags"].as_array().unwrap().iter().any(|s| s == "self"),
        "{j}"
    );

    // A foreign permanent entry of another protocol on the same device is not ours.
    ns.ip(&[
        "neigh",
        "add",
        "198.19.9.9",
        "lladdr",
        "02:00:00:00:00:09",
        "dev",
        VXLAN_V4_NAME,
        "nud",
        "permanent",
        "protocol",
        "static",
    ]);
    assert_eq!(k.dump_neighbours(vx.index).unwrap(), vec![n.clone()]);
    assert_eq!(k.dump_fdb(vx.index).unwrap(), vec![f.clone()]);

    // Replace: new MAC / new remote, same key.
    let n2 = NeighbourEntry {
        mac: [0x66, 0x74, 0, 0, 0, 9],
        ..n.clone()
    };
    let f2 = FdbEntry {
        dst: ip("198.18.0.3"),
        ..f.clone()
    };
    assert!(
        k.apply_neighbours(&[NeighOp::Replace(n2.clone())])
            .unwrap()
            .is_ok()
    );
    assert!(k.apply_fdb(&[FdbOp::Replace(f2.clone())]).unwrap().is_ok());
    assert_eq!(k.dump_neighbours(vx.index).unwrap(), vec![n2.clone()]);
    assert_eq!(k.dump_fdb(vx.index).unwrap(), vec![f2.clone()]);

    // IPv6 neighbour on the same device.
    let n6 = NeighbourEntry {
        ifindex: vx.index,
        ip: ip("2001:2:0:19::"),
        mac: peer_mac,
    };
    assert!(
        k.apply_neighbours(&[NeighOp::Replace(n6.clone())])
            .unwrap()
            .is_ok()
    );
    assert_eq!(k.dump_neighbours(vx.index).unwrap().len(), 2);

    let report = k
        .apply_neighbours(&[NeighOp::Delete(n2), NeighOp::Delete(n6)])
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(k.apply_fdb(&[FdbOp::Delete(f2)]).unwrap().is_ok());
    assert!(k.dump_neighbours(vx.index).unwrap().is_empty());
    assert!(k.dump_fdb(vx.index).unwrap().is_empty());
    let neigh = ns.ip_json(&["neigh", "show", "dev", VXLAN_V4_NAME]);
    assert_eq!(neigh.len(), 1, "only the foreign entry is left: {neigh:#?}");
}

/// tunl0 cannot exist on this host (no ipip module), so its messages are checked attribute by
/// attribute, parsed back with netlink-packet-route.
#[test]
fn tunl0_messages_attribute_by_attribute() {
    let spec = Tunl0Spec {
        mtu: Some(1480),
        address: Some(Ipv4Addr::new(198, 19, 3, 0)),
    };
    let bytes = link::link_request_bytes(&LinkRequest::CreateTunl0(&spec), 5).unwrap();
    assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 16, "RTM_NEWLINK");
    let flags = u16::from_ne_bytes([bytes[6], bytes[7]]);
    assert_eq!(flags, 0x1 | 0x400 | 0x200, "REQUEST|CREATE|EXCL");
    let m = LinkMessage::parse(&bytes[16..]).unwrap();
    assert!(m.header.flags.contains(LinkFlags::Up) && m.header.change_mask.contains(LinkFlags::Up));
    assert!(
        m.attributes
            .contains(&LinkAttribute::IfName("tunl0".into()))
    );
    assert!(m.attributes.contains(&LinkAttribute::Mtu(1480)));
    let info = m
        .attributes
        .iter()
        .find_map(|a| {
            if let LinkAttribute::LinkInfo(i) = a {
                Some(i)
            } else {
                None
            }
        })
        .unwrap();
    assert!(info.contains(&LinkInfo::Kind(InfoKind::IpIp)));
    assert!(info.contains(&LinkInfo::Data(InfoData::IpTunnel(vec![
        InfoIpTunnel::PMtuDisc(false)
    ]))));

    // nopmtudisc on an existing (non-fallback) ipip device.
    let bytes = link::link_request_bytes(&LinkRequest::IpipNoPmtuDisc(9), 6).unwrap();
    let m = LinkMessage::parse(&bytes[16..]).unwrap();
    assert_eq!(m.header.index, 9);
    assert_eq!(m.attributes.len(), 1);
    assert!(format!("{:?}", m.attributes[0]).contains("PMtuDisc(false)"));

    // MTU and up on the adopted device.
    let s = LinkSettings {
        mtu: Some(1480),
        up: Some(true),
        mac: None,
    };
    let bytes = link::link_request_bytes(&LinkRequest::Set(9, &s), 7).unwrap();
    let m = LinkMessage::parse(&bytes[16..]).unwrap();
    assert_eq!(m.header.index, 9);
    assert_eq!(m.attributes, vec![LinkAttribute::Mtu(1480)]);
    assert!(m.header.flags.contains(LinkFlags::Up));

    // The IPIP route: <block> via <node> dev tunl0 onlink proto tortie.
    let r = KernelRoute::new(
        net("198.19.3.0/26"),
        RouteKind::Unicast(vec![NextHop::via_onlink(ip("198.18.2.2"), 9)]),
    );
    let bytes = route_request_bytes(RouteOpKind::Replace, &r, 8).unwrap();
    assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 24, "RTM_NEWROUTE");
    assert_eq!(
        u16::from_ne_bytes([bytes[6], bytes[7]]),
        0x1 | 0x400 | 0x100,
        "REQUEST|CREATE|REPLACE"
    );
    let m = RouteMessage::parse(&bytes[16..]).unwrap();
    assert!(m.header.flags.contains(RouteFlags::Onlink));
    assert_eq!(m.header.protocol, RouteProtocol::Other(P));
    assert_eq!(m.header.scope, RouteScope::Universe);
    assert_eq!(m.header.kind, RouteType::Unicast);
    assert_eq!(m.header.table, 254);
    assert_eq!(m.header.destination_prefix_length, 26);
    assert!(m.attributes.contains(&RouteAttribute::Destination(
        netlink_packet_route::route::RouteAddress::Inet(Ipv4Addr::new(198, 19, 3, 0))
    )));
    assert!(m.attributes.contains(&RouteAttribute::Gateway(
        netlink_packet_route::route::RouteAddress::Inet(Ipv4Addr::new(198, 18, 2, 2))
    )));
    assert!(m.attributes.contains(&RouteAttribute::Oif(9)));
    assert_eq!(m.attributes.len(), 3, "{:?}", m.attributes);

    // The per-node nexthop object for tunl0: nhmsg flags carry RTNH_F_ONLINK.
    let bytes = nexthop_request_bytes(
        &NexthopOp::Replace(NexthopObject::gateway(42, ip("198.18.2.2"), 9, true)),
        9,
    )
    .unwrap();
    assert_eq!(
        u16::from_ne_bytes([bytes[4], bytes[5]]),
        104,
        "RTM_NEWNEXTHOP"
    );
    let p = &bytes[16..];
    assert_eq!((p[0], p[1], p[2], p[3]), (libc::AF_INET as u8, 0, P, 0));
    assert_eq!(
        u32::from_ne_bytes([p[4], p[5], p[6], p[7]]),
        4,
        "RTNH_F_ONLINK"
    );
    let o = tortie_felix::netlink::nexthop::decode_nexthop(p).unwrap();
    assert_eq!(
        o.kind,
        NexthopKind::Gateway {
            gateway: ip("198.18.2.2"),
            oif: 9,
            onlink: true
        }
    );
}

#[test]
fn tunl0_without_the_ipip_module_is_a_clear_error() {
    let ns = TestNs::bare("tunl0");
    let mut k = ns.kernel();
    let r = k.ensure_tunl0(&Tunl0Spec {
        mtu: Some(1480),
        address: Some(Ipv4Addr::new(198, 19, 3, 0)),
    });
    if link::ipip_module_loaded() {
        // A kernel with ipip (the VM): the fallback device is adopted and configured.
        let (l, change) = r.unwrap();
        assert_eq!(change, LinkChange::Updated);
        assert_eq!((l.mtu, l.up), (1480, true));
        assert_eq!(l.iptun.as_ref().map(|t| t.pmtudisc), Some(false));
        assert_eq!(k.addresses(l.index).unwrap(), vec![net("198.19.3.0/32")]);
        let j = link_json(&ns, "tunl0");
        assert_eq!(j["linkinfo"]["info_data"]["pmtudisc"], false, "{j}");
        let again = Tunl0Spec {
            mtu: Some(1480),
            address: Some(Ipv4Addr::new(198, 19, 3, 0)),
        };
        assert_eq!(k.ensure_tunl0(&again).unwrap().1, LinkChange::Unchanged);
        // The IPIP route shape installs: <block> via <node> dev tunl0 onlink.
        let r = KernelRoute::new(
            net("198.19.4.0/26"),
            RouteKind::Unicast(vec![NextHop::via_onlink(ip("198.18.2.2"), l.index)]),
        );
        k.replace_route(&r).unwrap();
        let routes = ns.routes(P);
        let j = route_json(&routes, "198.19.4.0/26");
        assert_eq!(
            (j["dev"].as_str(), j["gateway"].as_str()),
            (Some("tunl0"), Some("198.18.2.2"))
        );
        assert!(
            j["flags"].as_array().unwrap().iter().any(|f| f == "onlink"),
            "{j}"
        );
        assert_eq!(k.dump_routes().unwrap(), vec![r]);
        return;
    }
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            NlError::MissingModule {
                module: "ipip",
                device: "tunl0"
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.fault(), Fault::Environment);
    let text = e.to_string();
    assert!(
        text.contains("ipip") && text.contains("tunl0") && text.contains("VXLAN"),
        "{text}"
    );
    // VXLAN keeps working in the same namespace.
    let (_, c) = k
        .ensure_vxlan(&VxlanSpec::v4(NODE_V4, None, [0x66, 0x74, 0, 0, 0, 1]))
        .unwrap();
    assert_eq!(c, LinkChange::Created);
}

#[test]
fn sysctls_in_the_namespace_only() {
    let ns = TestNs::with_veth("sysctl");
    let k = ns.kernel();
    let root_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    k.set_ip_forward(true, true).unwrap();
    assert_eq!(
        ns.exec("sysctl", &["-n", "net.ipv4.ip_forward"]).trim(),
        "1"
    );
    assert_eq!(
        ns.exec("sysctl", &["-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "1"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        root_before
    );
    // A device name with a dot.
    let mut k = k;
    k.ensure_vxlan(&VxlanSpec::v4(NODE_V4, None, [0x66, 0x74, 0, 0, 0, 1]))
        .unwrap();
    k.set_rp_filter(VXLAN_V4_NAME, 2).unwrap();
    assert!(
        !k.set_rp_filter(VXLAN_V4_NAME, 2).unwrap(),
        "unchanged value is not rewritten"
    );
    assert_eq!(
        k.read_sysctl(&["net", "ipv4", "conf", VXLAN_V4_NAME, "rp_filter"])
            .unwrap(),
        "2"
    );
    assert_eq!(
        ns.exec("cat", &["/proc/sys/net/ipv4/conf/vxlan.tortie/rp_filter"])
            .trim(),
        "2"
    );
    assert!(matches!(
        k.write_sysctl(&["net", "..", "x"], "1"),
        Err(NlError::Invalid(_))
    ));
}

#[test]
fn opening_a_namespace_leaves_the_calling_thread_alone() {
    let ns = TestNs::bare("thread");
    let before = thread_netns();
    let mut k = ns.kernel();
    assert_eq!(thread_netns(), before);
    // The socket is in the test namespace: it sees that namespace's links (lo, and the
    // fallback tunnel devices of loaded modules), not the root's.
    let names: Vec<String> = k.links().unwrap().into_iter().map(|l| l.name).collect();
    let shown: Vec<String> = ns
        .ip_json(&["link", "show"])
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, shown);
    assert!(names.contains(&"lo".to_string()));
    let e = Kernel::open(
        Netns::named("tortie-no-such-namespace").unwrap(),
        KernelConfig::default(),
    )
    .unwrap_err();
    assert_eq!(e.fault(), Fault::Environment, "{e}");
    assert!(Netns::named("../etc").is_err());
}

//! felix with real packets on this machine's kernel (veth, bridge, VXLAN, nftables; no ipip: the IPIP
//! tests run in a VM, `tests/vm_inner/felix_ipip.rs`). Each test builds the four-node topology of
//! `vm_inner/topo.rs` (two nodes in 198.18.1.0/24, two in 198.18.2.0/24, a router between, a pod
//! behind each node), drives felix on every node directly with desired state (no BGP:
//! `vm_inner/felix_topo.rs`), and checks with ping, a TCP transfer and packet captures on the
//! underlay (`dataplane_support/capture.rs`, an `AF_PACKET` socket: what `tcpdump -i eth0` shows) that
//! the kernel does what the mode promises. The last group checks the reconciler against the kernel:
//! repair, foreign routes, restart without writes, one change = one message, flush, ECMP, a pool
//! leaving VXLAN, and a missing ipip module.
//!
//! Root only (network namespaces). Every namespace is deleted when its test ends, passed or failed;
//! names are unique per process and test (`tt-<pid>-<n>-...`), so the tests run in parallel.

#[path = "vm_inner/felix_topo.rs"]
mod felix_topo;
#[path = "vm_inner/topo.rs"]
mod topo;
mod dataplane_support {
    pub mod capture;
}

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use dataplane_support::capture::{Capture, ICMP, ICMPV6, Ip, show};
use felix_topo::*;
use topo::{Netns, Topology};
use tortie_felix::desired::{self, EncapMode};
use tortie_felix::netlink::TORTIE_PROTOCOL;

fn ok<T>(r: topo::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `Felix::apply_changes`, failing on any refused operation or device problem.
fn apply_changes(
    felix: &mut tortie_felix::reconcile::Felix,
    desired: &desired::DesiredState,
    changes: &desired::Changes,
) -> topo::Result<tortie_felix::reconcile::ApplyReport> {
    let report = felix
        .apply_changes(desired, changes)
        .map_err(|e| format!("apply_changes: {e}"))?;
    if !report.failures.is_empty() || !report.device_problems.is_empty() {
        return Err(format!("apply_changes: {report:?}"));
    }
    Ok(report)
}

fn topology() -> Topology {
    ok(Topology::four_nodes())
}

fn pod(t: &Topology, i: usize) -> IpAddr {
    IpAddr::V4(t.pods[i].addr)
}

fn node(t: &Topology, i: usize) -> IpAddr {
    IpAddr::V4(t.nodes[i].addr)
}

fn same_subnet(t: &Topology, a: usize, b: usize) -> bool {
    t.nodes[a].same_subnet(&t.nodes[b])
}

/// `ip [-6] route show proto <tortie>` in a namespace.
fn our_routes(ns: &Netns, v6: bool) -> String {
    let proto = TORTIE_PROTOCOL.to_string();
    let fam = if v6 { "-6" } else { "-4" };
    ok(ns.ip(&[fam, "route", "show", "proto", &proto]))
}

/// The line of `routes` for `prefix` (`blackhole` lines included).
fn route_line<'a>(routes: &'a str, prefix: &str) -> Option<&'a str> {
    routes.lines().find(|l| {
        let l = l.strip_prefix("blackhole ").unwrap_or(l);
        l.split_whitespace().next() == Some(prefix)
    })
}

/// Asserts `routes` has a line for `prefix` containing every one of `parts`.
fn assert_route(routes: &str, prefix: &str, parts: &[&str]) {
    let line = route_line(routes, prefix).unwrap_or_else(|| panic!("no route {prefix}:\n{routes}"));
    for p in parts {
        assert!(line.contains(p), "route {prefix} lacks {p:?}: {line}");
    }
}

/// Plain (unencapsulated) packets of `proto` between `a` and `b`.
fn plain(pkts: &[Ip], proto: u8, a: IpAddr, b: IpAddr) -> usize {
    pkts.iter()
        .filter(|p| p.inner.is_none() && p.proto == proto && p.between(a, b))
        .count()
}

/// VXLAN packets carrying `proto` between `a` and `b`; their outer (src, dst) pairs.
fn encapsulated(pkts: &[Ip], proto: u8, a: IpAddr, b: IpAddr) -> Vec<(IpAddr, IpAddr)> {
    pkts.iter()
        .filter(|p| p.is_vxlan())
        .filter(|p| {
            p.inner
                .as_ref()
                .is_some_and(|i| i.proto == proto && i.between(a, b))
        })
        .map(|p| (p.src, p.dst))
        .collect()
}

fn captures(t: &Topology) -> Vec<Capture> {
    t.nodes
        .iter()
        .map(|n| ok(Capture::start(&n.ns, n.dev)))
        .collect()
}

// ---- modes --------------------------------------------------------------------------------------

/// host-gw: felix routes the other node's block `via <node> dev eth0`; pod to pod is plain IP on the
/// underlay, nothing is encapsulated, and no tunnel device exists.
#[test]
fn same_subnet_pods_reach_each_other_with_plain_routes_and_no_encapsulation() {
    let t = topology();
    let _felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::Never)]));
    let routes = our_routes(&t.nodes[0].ns, false);
    assert_route(&routes, "198.19.2.0/26", &["via 198.18.1.12 dev eth0"]);
    assert_route(&routes, "198.19.1.0/26", &["blackhole"]);
    assert!(!t.nodes[0].ns.has_link(desired::VXLAN_V4));

    let caps = captures(&t);
    ok(ping(&t.pods[0].ns, pod(&t, 1), 3));
    ok(ping(&t.pods[3].ns, pod(&t, 2), 3));
    for (k, (a, b)) in [(0, (0, 1)), (1, (0, 1)), (2, (3, 2)), (3, (3, 2))] {
        let pkts = caps[k].take();
        assert!(
            pkts.iter().all(|p| !p.is_vxlan()),
            "VXLAN on {}:\n{}",
            caps[k].what,
            show(&pkts)
        );
        // 3 requests and 3 replies between the two pods, as they are.
        let n = plain(&pkts, ICMP, pod(&t, a), pod(&t, b));
        assert_eq!(n, 6, "{}:\n{}", caps[k].what, show(&pkts));
    }
}

/// CrossSubnet: every pod pings every other pod; on every node's underlay the cross-subnet pairs travel
/// only inside UDP 4789 between the two nodes, the same-subnet pairs only as plain IP, and no VXLAN
/// packet goes between nodes of one subnet.
#[test]
fn cross_subnet_pods_reach_each_other_over_vxlan_only_between_subnets() {
    let t = topology();
    let _felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    let routes = our_routes(&t.nodes[0].ns, false);
    assert_route(&routes, "198.19.2.0/26", &["via 198.18.1.12 dev eth0"]);
    for (prefix, via) in [
        ("198.19.3.0/26", "198.18.2.13"),
        ("198.19.4.0/26", "198.18.2.14"),
    ] {
        assert_route(
            &routes,
            prefix,
            &[
                &format!("via {via} dev vxlan.tortie"),
                "onlink",
                "src 198.18.1.11",
            ],
        );
    }

    let caps = captures(&t);
    let pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];
    for &(a, b) in &pairs {
        ok(ping(&t.pods[a].ns, pod(&t, b), 2));
    }
    for (k, cap) in caps.iter().enumerate() {
        let pkts = cap.take();
        for p in pkts.iter().filter(|p| p.is_vxlan()) {
            let (s, d) = (
                t.nodes.iter().position(|n| IpAddr::V4(n.addr) == p.src),
                t.nodes.iter().position(|n| IpAddr::V4(n.addr) == p.dst),
            );
            let (Some(s), Some(d)) = (s, d) else {
                panic!("VXLAN between non-nodes on {}: {p}", cap.what)
            };
            assert!(
                !same_subnet(&t, s, d),
                "VXLAN inside a subnet on {}: {p}",
                cap.what
            );
            let inner = p.inner.as_deref().expect("inner packet");
            assert!(inner.between(pod(&t, s), pod(&t, d)), "{}: {p}", cap.what);
        }
        for &(a, b) in pairs.iter().filter(|(a, b)| *a == k || *b == k) {
            let (pa, pb) = (pod(&t, a), pod(&t, b));
            let enc = encapsulated(&pkts, ICMP, pa, pb);
            let pl = plain(&pkts, ICMP, pa, pb);
            if same_subnet(&t, a, b) {
                assert_eq!(
                    (pl, enc.len()),
                    (4, 0),
                    "pods {a}<->{b} on {}:\n{}",
                    cap.what,
                    show(&pkts)
                );
            } else {
                assert_eq!(
                    (pl, enc.len()),
                    (0, 4),
                    "pods {a}<->{b} on {}:\n{}",
                    cap.what,
                    show(&pkts)
                );
                for (s, d) in enc {
                    assert!(
                        (s, d) == (node(&t, a), node(&t, b))
                            || (s, d) == (node(&t, b), node(&t, a)),
                        "pods {a}<->{b} encapsulated between {s} and {d}"
                    );
                }
            }
        }
    }
}

/// VXLAN Always: same-subnet pod traffic is encapsulated too (outer 198.18.1.11 <-> 198.18.1.12).
#[test]
fn vxlan_always_encapsulates_everything_also_within_a_subnet() {
    let t = topology();
    let _felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::Always)]));
    let routes = our_routes(&t.nodes[0].ns, false);
    assert_route(
        &routes,
        "198.19.2.0/26",
        &["via 198.18.1.12 dev vxlan.tortie", "onlink"],
    );
    assert_route(
        &routes,
        "198.19.3.0/26",
        &["via 198.18.2.13 dev vxlan.tortie", "onlink"],
    );

    let caps = captures(&t);
    ok(ping(&t.pods[0].ns, pod(&t, 1), 3));
    ok(ping(&t.pods[0].ns, pod(&t, 2), 3));
    let pkts = caps[0].take();
    for b in [1, 2] {
        assert_eq!(
            plain(&pkts, ICMP, pod(&t, 0), pod(&t, b)),
            0,
            "plain pod traffic:\n{}",
            show(&pkts)
        );
        let enc = encapsulated(&pkts, ICMP, pod(&t, 0), pod(&t, b));
        assert_eq!(enc.len(), 6, "pod1<->pod{}:\n{}", b + 1, show(&pkts));
        assert!(enc.iter().all(|&(s, d)| {
            (s, d) == (node(&t, 0), node(&t, b)) || (s, d) == (node(&t, b), node(&t, 0))
        }));
    }
    // And the same-subnet peer sees it arrive encapsulated.
    let pkts = caps[1].take();
    assert_eq!(
        encapsulated(&pkts, ICMP, pod(&t, 0), pod(&t, 1)).len(),
        6,
        "{}",
        show(&pkts)
    );
}

/// Never: the other subnet's blocks go `via <router> dev eth0` (recursive through the underlay's
/// default gateway); once the router knows the pod blocks (as a ToR peering with the nodes would),
/// pods reach across the subnets as plain IP.
#[test]
fn never_mode_works_with_a_router_that_knows_the_pod_routes() {
    let t = topology();
    let _felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::Never)]));
    let routes = our_routes(&t.nodes[0].ns, false);
    assert_route(&routes, "198.19.2.0/26", &["via 198.18.1.12 dev eth0"]);
    assert_route(&routes, "198.19.3.0/26", &["via 198.18.1.1 dev eth0"]);
    assert!(!routes.contains("onlink"), "{routes}");

    // Without pod routes the router cannot deliver.
    ok(ping_fails(&t.pods[0].ns, pod(&t, 2)));
    let lines: Vec<String> = t
        .nodes
        .iter()
        .map(|n| format!("route add {} via {}", n.block_str(), n.addr))
        .collect();
    ok(t.router.ip_batch(&lines));

    let caps = captures(&t);
    ok(ping(&t.pods[0].ns, pod(&t, 2), 3));
    ok(ping(&t.pods[3].ns, pod(&t, 1), 3));
    let pkts = caps[0].take();
    assert!(pkts.iter().all(|p| !p.is_vxlan()), "{}", show(&pkts));
    assert_eq!(
        plain(&pkts, ICMP, pod(&t, 0), pod(&t, 2)),
        6,
        "{}",
        show(&pkts)
    );
    let pkts = caps[3].take();
    assert_eq!(
        plain(&pkts, ICMP, pod(&t, 3), pod(&t, 1)),
        6,
        "{}",
        show(&pkts)
    );
}

/// IPv6: a pod in subnet A reaches a pod in subnet B over vxlan-v6.tortie (IPv6 outer header, UDP
/// 4789 between the nodes' IPv6 addresses), with the device's MTU the underlay's minus 70.
#[test]
fn ipv6_pod_pair_reaches_across_subnets_over_vxlan_v6() {
    let t = ok(Topology::four_nodes_dual_stack());
    let pools = [pool(
        POOL_V6,
        EncapMode::Never,
        EncapMode::CrossSubnet,
        false,
    )];
    let mut felix = ok(apply_all(&t, &pools));
    let link = felix[0]
        .felix
        .kernel()
        .require_link(desired::VXLAN_V6)
        .unwrap();
    assert_eq!(link.mtu, 1500 - 70);
    assert!(!t.nodes[0].ns.has_link(desired::VXLAN_V4));
    let routes = our_routes(&t.nodes[0].ns, true);
    assert_route(&routes, "2001:2:0:19::100/122", &["blackhole"]);
    assert_route(
        &routes,
        "2001:2:0:19::200/122",
        &["via 2001:2:0:1::12 dev eth0"],
    );
    assert_route(
        &routes,
        "2001:2:0:19::300/122",
        &["via 2001:2:0:2::13 dev vxlan-v6.tortie", "onlink"],
    );

    let (p1, p3) = (
        IpAddr::V6(t.pods[0].addr6.unwrap()),
        IpAddr::V6(t.pods[2].addr6.unwrap()),
    );
    let (n1, n3) = (
        IpAddr::V6(t.nodes[0].addr6.unwrap()),
        IpAddr::V6(t.nodes[2].addr6.unwrap()),
    );
    let caps = captures(&t);
    ok(ping_until(&t.pods[0].ns, p3, Duration::from_secs(10)));
    caps[0].take();
    ok(ping(&t.pods[0].ns, p3, 3));
    ok(ping(&t.pods[2].ns, p1, 3));
    let pkts = caps[0].take();
    assert_eq!(plain(&pkts, ICMPV6, p1, p3), 0, "{}", show(&pkts));
    let enc = encapsulated(&pkts, ICMPV6, p1, p3);
    assert_eq!(enc.len(), 12, "{}", show(&pkts));
    assert!(
        enc.iter()
            .all(|&(s, d)| (s, d) == (n1, n3) || (s, d) == (n3, n1)),
        "{enc:?}"
    );
}

/// A few MB over TCP from a pod in subnet A to one in subnet B, through vxlan.tortie, with the pods'
/// MTU set to the tunnel's (1450) as a CNI plugin would.
#[test]
fn tcp_transfer_crosses_subnets_over_vxlan() {
    const BYTES: usize = 8 << 20;
    let t = topology();
    let mut felix = ok(apply_all(&t, &[vxlan_pool(EncapMode::CrossSubnet)]));
    let mtu = felix[0]
        .felix
        .kernel()
        .require_link(desired::VXLAN_V4)
        .unwrap()
        .mtu;
    assert_eq!(mtu, 1450);
    for i in [0, 2] {
        let (p, n) = (&t.pods[i], &t.nodes[i]);
        ok(p.ns.ip(&["link", "set", "eth0", "mtu", &mtu.to_string()]));
        ok(n.ns.ip(&["link", "set", &p.host_if, "mtu", &mtu.to_string()]));
    }
    let before = ok(t.nodes[0].ns.link_stats(desired::VXLAN_V4));

    let dst = SocketAddr::new(pod(&t, 2), 5001);
    let listener = ok(t.pods[2].ns.enter(|| TcpListener::bind(dst))).expect("listen");
    let data: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
    let (received, sent) = std::thread::scope(|s| {
        let server = s.spawn(|| -> std::io::Result<Vec<u8>> {
            let (mut c, from) = listener.accept()?;
            assert_eq!(from.ip(), pod(&t, 0), "the server sees the pod's address");
            c.set_read_timeout(Some(Duration::from_secs(20)))?;
            let mut got = Vec::with_capacity(BYTES);
            c.read_to_end(&mut got)?;
            Ok(got)
        });
        let sent = ok(t.pods[0].ns.enter(|| -> std::io::Result<usize> {
            let mut c = TcpStream::connect_timeout(&dst, Duration::from_secs(5))?;
            c.set_write_timeout(Some(Duration::from_secs(20)))?;
            c.write_all(&data)?;
            c.shutdown(std::net::Shutdown::Write)?;
            Ok(data.len())
        }))
        .expect("send");
        (server.join().unwrap().expect("receive"), sent)
    });
    assert_eq!(sent, BYTES);
    assert_eq!(received.len(), BYTES);
    assert!(received == data, "the data arrived altered");
    let d = ok(t.nodes[0].ns.link_stats(desired::VXLAN_V4)) - before;
    assert!(
        d.tx_packets >= 100,
        "the transfer did not go through vxlan.tortie: {d:?}"
    );
}

/// natOutgoing: a pod reaching a host outside every pool (198.18.99.1, behind the router, which knows
/// no pod route) appears there with its node's address; pod to pod keeps the pod addresses.
#[test]
fn nat_outgoing_masquerades_to_outside_hosts_but_not_between_pods() {
    let t = topology();
    let outside = ok(Netns::new(&format!("{}-outside", t.prefix)));
    ok(topo::veth(&t.router, "r-out", &outside, "eth0"));
    ok(t.router
        .ip(&["addr", "add", "198.18.99.254/24", "dev", "r-out"]));
    ok(outside.ip_batch(&[
        "addr add 198.18.99.1/24 dev eth0".into(),
        "route add default via 198.18.99.254".into(),
    ]));
    let far = IpAddr::V4(Ipv4Addr::new(198, 18, 99, 1));
    let pools = [pool(
        POOL_V4,
        EncapMode::Never,
        EncapMode::CrossSubnet,
        true,
    )];
    let _felix = ok(apply_all(&t, &pools));
    let table = ok(t.nodes[0]
        .ns
        .exec(&["nft", "list", "table", "inet", "tortie"]));
    assert!(table.contains("masquerade"), "{table}");

    let at_outside = ok(Capture::start(&outside, "eth0"));
    ok(ping(&t.pods[0].ns, far, 2));
    ok(ping(&t.pods[2].ns, far, 2));
    let pkts = at_outside.take();
    let sources: BTreeSet<IpAddr> = pkts
        .iter()
        .filter(|p| p.proto == ICMP && p.dst == far)
        .map(|p| p.src)
        .collect();
    assert_eq!(
        sources,
        [node(&t, 0), node(&t, 2)].into_iter().collect(),
        "sources seen outside:\n{}",
        show(&pkts)
    );

    // Pod to pod, across the subnets (VXLAN) and within one: the receiver sees the pod's address.
    let at_pod3 = ok(Capture::start(&t.pods[2].ns, "eth0"));
    let at_pod2 = ok(Capture::start(&t.pods[1].ns, "eth0"));
    ok(ping(&t.pods[0].ns, pod(&t, 2), 2));
    ok(ping(&t.pods[0].ns, pod(&t, 1), 2));
    for (cap, to) in [(&at_pod3, 2), (&at_pod2, 1)] {
        let pkts = cap.take();
        let sources: BTreeSet<IpAddr> = pkts
            .iter()
            .filter(|p| p.proto == ICMP && p.dst == pod(&t, to))
            .map(|p| p.src)
            .collect();
        assert_eq!(
            sources,
            [pod(&t, 0)].into_iter().collect(),
            "{}:\n{}",
            cap.what,
            show(&pkts)
        );
    }
}

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
        planner.set_route(block, [via]);
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

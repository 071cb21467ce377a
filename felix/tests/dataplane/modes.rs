//! What each mode does to packets between pods on the four-node topology: host-gw within a
//! subnet, VXLAN CrossSubnet and Always (IPv4 and IPv6), Never with a router that knows the pod
//! routes, a TCP transfer across subnets, and natOutgoing; checked with ping, TCP and captures
//! on the underlay.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use dataplane_support::capture::{ICMP, ICMPV6, show};
use tortie_felix::desired::EncapMode;

use super::*;

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

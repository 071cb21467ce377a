//! IPIP with felix installing the routes (no hand-written routes): the four-node topology, felix on
//! every node driven with desired state (`felix_topo.rs`), pods pinging each other over `tunl0` in
//! IPIP `Always` and `CrossSubnet` modes, the tunl0 packet counters proving which traffic was
//! encapsulated, and felix's tunl0 setup (up, MTU = underlay − 20, no PMTU discovery, no rp_filter).
//!
//! Kept cheap for TCG: kernel state is read in-process (netlink, /proc), only the pings are processes.

use std::net::IpAddr;

use tortie_felix::desired::{EncapMode, TUNL0};
use tortie_felix::netlink::RouteKind;

use crate::felix_topo::{NodeFelix, apply_all, ipip_pool};
use crate::topo::{LinkStats, Topology};
use crate::{in_vm, ok};

/// Per node: the routes felix installed for the other nodes' blocks, as (block, gateway, via tunl0,
/// onlink), read back over netlink.
fn remote_routes(f: &mut NodeFelix) -> Vec<(String, IpAddr, bool, bool)> {
    let k = f.felix.kernel();
    let tunl0 = k.require_link(TUNL0).unwrap().index;
    let mut out: Vec<_> = k
        .dump_routes()
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.kind {
            RouteKind::Unicast(nhs) if nhs.len() == 1 => {
                let nh = &nhs[0];
                Some((
                    r.prefix.to_string(),
                    nh.gateway?,
                    nh.oif == tunl0,
                    nh.onlink,
                ))
            }
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// felix's tunl0: up, MTU = the underlay's − 20, PMTU discovery off (so the outer header never has
/// DF set from the inner packet), rp_filter off (the tunnel has no address of its own; see felix::reconcile).
fn check_tunl0(t: &Topology, felix: &mut [NodeFelix], underlay_mtu: u32) {
    for (i, f) in felix.iter_mut().enumerate() {
        let l = f.felix.kernel().require_link(TUNL0).unwrap();
        assert_eq!(l.kind.as_deref(), Some("ipip"), "node{}", i + 1);
        assert!(l.up, "node{}: tunl0 down", i + 1);
        assert_eq!(l.mtu, underlay_mtu - 20, "node{}: tunl0 MTU", i + 1);
        let iptun = l.iptun.expect("ipip parameters");
        assert!(!iptun.pmtudisc, "node{}: tunl0 does PMTU discovery", i + 1);
        assert_eq!(
            (iptun.local, iptun.remote),
            (None, None),
            "not the fallback device"
        );
        let rp = ok(t.nodes[i].ns.read_sysctl("net/ipv4/conf/tunl0/rp_filter"));
        assert_eq!(rp, "0", "node{}: tunl0 rp_filter", i + 1);
    }
}

fn tunl0_stats(t: &Topology) -> Vec<LinkStats> {
    t.nodes.iter().map(|n| ok(n.ns.link_stats(TUNL0))).collect()
}

/// Counter deltas since `before`, one per node.
fn deltas(t: &Topology, before: &[LinkStats]) -> Vec<(u64, u64)> {
    tunl0_stats(t)
        .iter()
        .zip(before)
        .map(|(&a, &b)| {
            let d = a - b;
            (d.tx_packets, d.rx_packets)
        })
        .collect()
}

/// Always: every remote block `via <node> dev tunl0 onlink`, same subnet included; a same-subnet and
/// a cross-subnet ping both cross tunl0, packet for packet. The underlay MTU is lowered to 1400 first,
/// so tunl0's 1380 shows felix derives it from the device rather than assuming 1500.
#[test]
fn felix_ipip_always_pods_ping_over_tunl0() {
    if !in_vm("felix_ipip_always_pods_ping_over_tunl0") {
        return;
    }
    let t = ok(Topology::four_nodes());
    for n in &t.nodes {
        ok(n.ns.ip(&["link", "set", "eth0", "mtu", "1400"]));
    }
    let mut felix = ok(apply_all(&t, &[ipip_pool(EncapMode::Always)]));
    check_tunl0(&t, &mut felix, 1400);
    let routes = remote_routes(&mut felix[0]);
    let want: Vec<(String, IpAddr, bool, bool)> = (1..4)
        .map(|j| {
            (
                t.nodes[j].block_str(),
                IpAddr::V4(t.nodes[j].addr),
                true,
                true,
            )
        })
        .collect();
    assert_eq!(routes, want, "node1's routes");

    const N: u64 = 3;
    let before = tunl0_stats(&t);
    ok(t.pods[0].ns.ping(t.pods[1].addr, N as u32)); // same subnet
    ok(t.pods[0].ns.ping(t.pods[2].addr, N as u32)); // across
    let d = deltas(&t, &before);
    eprintln!("tunl0 (tx, rx) per node: {d:?}");
    assert_eq!(d, vec![(2 * N, 2 * N), (N, N), (N, N), (0, 0)]);
}

/// CrossSubnet: same-subnet blocks via the node on eth0, the other subnet's via tunl0 onlink. The
/// same-subnet pings leave every tunl0 counter alone; the cross-subnet ones are counted exactly.
#[test]
fn felix_ipip_cross_subnet_pods_ping_over_tunl0_only_between_subnets() {
    if !in_vm("felix_ipip_cross_subnet_pods_ping_over_tunl0_only_between_subnets") {
        return;
    }
    let t = ok(Topology::four_nodes());
    let mut felix = ok(apply_all(&t, &[ipip_pool(EncapMode::CrossSubnet)]));
    check_tunl0(&t, &mut felix, 1500);
    for (i, f) in felix.iter_mut().enumerate() {
        let routes = remote_routes(f);
        let want: Vec<(String, IpAddr, bool, bool)> = (0..4)
            .filter(|&j| j != i)
            .map(|j| {
                let n = &t.nodes[j];
                let tunnel = !t.nodes[i].same_subnet(n);
                (n.block_str(), IpAddr::V4(n.addr), tunnel, tunnel)
            })
            .collect();
        assert_eq!(routes, want, "node{}'s routes", i + 1);
    }

    const N: u64 = 3;
    let before = tunl0_stats(&t);
    ok(t.pods[0].ns.ping(t.pods[1].addr, N as u32));
    ok(t.pods[3].ns.ping(t.pods[2].addr, N as u32));
    assert_eq!(
        deltas(&t, &before),
        vec![(0, 0); 4],
        "same-subnet traffic on tunl0"
    );

    let before = tunl0_stats(&t);
    for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
        ok(t.pods[a].ns.ping(t.pods[b].addr, N as u32));
    }
    // Each node is in two cross-subnet pairs: 2N packets out and 2N in on its tunl0.
    let d = deltas(&t, &before);
    eprintln!("tunl0 (tx, rx) per node: {d:?}");
    assert_eq!(d, vec![(2 * N, 2 * N); 4]);
    let err = t
        .router
        .ip(&["route", "get", "198.19.3.2"])
        .expect_err("the router has a route to a pod");
    assert!(err.contains("unreachable"), "{err}");
}

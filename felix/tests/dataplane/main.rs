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
//!
//! The cases, by concept: what each mode does to packets (`modes`) and the reconciler against the
//! kernel (`reconciler`). This file holds the topology and the helpers they share.

#[path = "../vm_inner/felix_topo.rs"]
mod felix_topo;
#[path = "../vm_inner/topo.rs"]
mod topo;
#[path = "../dataplane_support"]
mod dataplane_support {
    pub mod capture;
}

mod modes;
mod reconciler;

use std::net::IpAddr;

use dataplane_support::capture::{Capture, Ip};
use felix_topo::*;
use topo::{Netns, Topology};
use tortie_felix::desired;
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

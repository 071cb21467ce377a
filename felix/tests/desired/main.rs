//! The pure desired-state computation and diff (`tortie_felix::desired`): one behaviour per
//! test, IPv4 and IPv6, plus property tests of the diff and of `compute`.
//!
//! The cases, by concept: how a remote block is routed in each encapsulation mode
//! (`encapsulation`), which next hops a route gets (`next_hops`), own blocks, pools and NAT
//! (`blocks_and_pools`), tunnel devices, MTU, prefsrc and VTEP MACs (`tunnels`), order and JSON
//! (`determinism_and_serde`), the diff (`diff`), route metrics from BGP priorities (`metrics`)
//! and the properties (`properties`). This file
//! holds the fixtures they share.

mod blocks_and_pools;
mod determinism_and_serde;
mod diff;
mod encapsulation;
mod metrics;
mod next_hops;
mod properties;
mod tunnels;

use std::net::IpAddr;

use ipnet::IpNet;
use tortie_felix::desired::*;

// ---------------------------------------------------------------------------------------------
// helpers

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Node "a": 198.18.1.10/24 and 2001:db8:1::10/64 on eth0, default gateways 198.18.1.1 and
/// fe80::1, MTU 1500.
fn node() -> LocalNode {
    LocalNode {
        name: "a".into(),
        ipv4: Some("198.18.1.10/24".parse().unwrap()),
        ipv6: Some("2001:db8:1::10/64".parse().unwrap()),
        underlay: Underlay {
            name: "eth0".into(),
            index: Some(2),
            gateways_v4: vec!["198.18.1.1".parse().unwrap()],
            gateways_v6: vec!["fe80::1".parse().unwrap()],
            mtu: 1500,
        },
    }
}

fn pool(cidr: &str, ipip: EncapMode, vxlan: EncapMode) -> Pool {
    Pool {
        cidr: net(cidr),
        ipip_mode: ipip,
        vxlan_mode: vxlan,
        nat_outgoing: false,
        disabled: false,
    }
}

use EncapMode::{Always, CrossSubnet, Never};

fn best(prefix: &str, nhs: &[&str]) -> BestRoute {
    BestRoute {
        prefix: net(prefix),
        next_hops: nhs.iter().map(|s| ip(s)).collect(),
        priority: None,
    }
}

fn inputs(pools: Vec<Pool>, blocks: &[&str], routes: Vec<BestRoute>) -> Inputs {
    Inputs {
        node: node(),
        pools,
        blocks: blocks.iter().map(|b| net(b)).collect(),
        routes,
        vxlan: VxlanSettings::default(),
    }
}

fn hop(gw: &str, device: Device, onlink: bool) -> NextHop {
    NextHop {
        gateway: ip(gw),
        device,
        onlink,
    }
}

fn route_of(s: &DesiredState, prefix: &str) -> Option<Route> {
    s.fib.routes.get(&net(prefix)).cloned()
}

fn hops_of(s: &DesiredState, prefix: &str) -> Vec<NextHop> {
    route_of(s, prefix)
        .unwrap_or_else(|| panic!("no route {prefix}"))
        .nexthops()
        .to_vec()
}

/// One remote block 198.19.5.0/26 in pool 198.19.0.0/16 with the given modes, via `nh`.
fn one_v4(ipip: EncapMode, vxlan: EncapMode, nh: &str) -> DesiredState {
    compute(&inputs(
        vec![pool("198.19.0.0/16", ipip, vxlan)],
        &[],
        vec![best("198.19.5.0/26", &[nh])],
    ))
}

/// One remote block 2001:db8:ff:5::/122 in pool 2001:db8:ff::/48 with the given VXLAN mode.
fn one_v6(vxlan: EncapMode, nh: &str) -> DesiredState {
    compute(&inputs(
        vec![pool("2001:db8:ff::/48", Never, vxlan)],
        &[],
        vec![best("2001:db8:ff:5::/122", &[nh])],
    ))
}

const SAME4: &str = "198.18.1.20";
const OTHER4: &str = "198.18.2.20";
const SAME6: &str = "2001:db8:1::20";
const OTHER6: &str = "2001:db8:2::20";

//! felix's kernel interface against the real kernel, each test in namespaces of its own (run
//! as root). What felix writes is checked with iproute2 (`ip -j`, `bridge -j`), not with
//! felix's own dumps alone.
//!
//! The cases, by concept: route objects (`routes`), nexthop objects (`nexthops`), devices,
//! links and addresses (`devices`), neighbour and FDB entries (`neighbours`), and sysctls and
//! namespaces (`namespaces`). This file holds the helpers they share.

#[path = "../nl_support/mod.rs"]
mod nl_support;

mod devices;
mod namespaces;
mod neighbours;
mod nexthops;
mod routes;

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use nl_support::*;
use serde_json::Value;
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

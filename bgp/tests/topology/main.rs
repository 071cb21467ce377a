//! Pure topologies in-process: several speakers (a RIB and one session per neighbour each)
//! wired by in-memory byte pipes on a simulated clock (see [`sim`]). Full mesh, route
//! reflection and its loop prevention, every step of the decision process, the graceful
//! restart helper timeline, max-prefix and change-stream coalescing.
//!
//! Addresses are values only: speakers sit in 198.18.0.0/15, announced blocks in
//! 198.19.0.0/16; nothing touches a network.

mod coalesce;
mod decision;
mod gr;
mod max_prefix;
mod mesh;
mod rr;
mod sim;

use std::net::{IpAddr, Ipv4Addr};
use tortie_bgp::wire::{AsPath, Attributes, Origin};

/// Calico's default AS.
pub const AS: u32 = 64512;

/// The speaker address 198.18.0.`n`.
pub fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n)
}

pub fn addr(n: u8) -> IpAddr {
    IpAddr::V4(ip(n))
}

/// A router id apart from the addresses (198.18.255.`n`), to tell the two tie-breaks apart.
pub fn rid(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 255, n)
}

/// The /26 block number `i` of the pod pool.
pub fn block(i: usize) -> String {
    format!("198.19.{}.{}/26", i / 4, (i % 4) * 64)
}

/// Attributes for `Rib::originate`: ORIGIN IGP, empty AS_PATH, then `f`.
pub fn attrs(f: impl FnOnce(&mut Attributes)) -> Option<Attributes> {
    let mut a = Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        ..Attributes::default()
    };
    f(&mut a);
    Some(a)
}

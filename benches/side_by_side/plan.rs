//! Where a run puts things. Every session address is in 127.0.0.0/8: one /16 per run,
//! 127.248.0.0 to 127.254.0.0 chosen from the process id (the test helpers' `alloc_loopback`
//! never hands these out), laid out so that the target's address text sorts before every
//! client's (`127.X.0.1` < `127.X.1.1`): a tortie node is then the passive side towards all of
//! them, as the other targets are told to be, and the load tool always connects.
//!
//! The prefixes are attribute values only: no target programs a FIB (BIRD has no kernel
//! protocol, bgpd runs without zebra, GoBGP has none, tortie runs `--dataplane none`) and no
//! packet is ever sent to them. They come from 198.18.0.0/15 while the run's count fits (the
//! quick sizes do), else from 100.64.0.0/10: a million unique prefixes do not fit in the
//! benchmarking range. The first /24 of 198.18.0.0/15 is kept out of the prefixes: the next
//! hops live there, so no next hop falls inside an announced prefix (GoBGP drops 127/8 next
//! hops, so they cannot be the sessions' own addresses).

use crate::error::BenchError;
use ipnet::Ipv4Net;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

/// The AS of every session (iBGP, Calico's default).
pub const BENCH_AS: u32 = 64512;

/// Most feeders, monitors or mesh peers a plan lays out.
pub const MAX_CLIENTS: u32 = 250;
pub const MAX_MESH_PEERS: u32 = 240 * 250;

/// The run's /16 of 127.0.0.0/8.
#[derive(Clone, Copy, Debug)]
pub struct Loopback {
    o2: u8,
}

impl Loopback {
    pub fn for_this_process() -> Loopback {
        Loopback {
            o2: 248 + (std::process::id() % 7) as u8,
        }
    }

    /// The target's listen address (also its router id and cluster id).
    pub fn target(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.o2, 0, 1)
    }

    /// The read-only sink of the self-check.
    pub fn sink(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.o2, 0, 2)
    }

    pub fn feeder(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::new(127, self.o2, 1, host(i))
    }

    pub fn monitor(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::new(127, self.o2, 2, host(i))
    }

    /// Simulated mesh node `i` (< [`MAX_MESH_PEERS`]): 127.X.10.1 onwards, 250 a /24.
    pub fn mesh_peer(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::new(127, self.o2, (10 + i / 250).min(255) as u8, host(i % 250))
    }
}

fn host(i: u32) -> u8 {
    (1 + i.min(MAX_CLIENTS - 1)) as u8
}

/// A TCP port free on `addr` right now (the kernel's choice for a bind to port 0).
pub fn free_port(addr: Ipv4Addr) -> Result<u16, BenchError> {
    let l = TcpListener::bind(SocketAddrV4::new(addr, 0))
        .map_err(|e| BenchError::io(format!("probing a free port on {addr}"), e))?;
    let port = l
        .local_addr()
        .map_err(|e| BenchError::io(format!("probing a free port on {addr}"), e))?
        .port();
    Ok(port)
}

/// The next hop feeder or peer `i` announces with: 198.18.0.1 to 198.18.0.250.
pub fn next_hop(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 1 + (i % 250) as u8)
}

/// `count` prefixes of one length, numbered 0.., in the first range they fit in.
#[derive(Clone, Copy, Debug)]
pub struct PrefixSpace {
    base: u32,
    len: u8,
    count: u32,
    range: &'static str,
}

/// Candidate ranges: (description, first usable address, last address + 1).
const RANGES: [(&str, u32, u64); 2] = [
    // 198.18.1.0 .. 198.19.255.255: 198.18.0.0/24 holds the next hops.
    ("198.18.0.0/15", 0xC612_0100, 0xC614_0000),
    ("100.64.0.0/10", 0x6440_0000, 0x6480_0000),
];

impl PrefixSpace {
    pub fn new(count: u32, len: u8) -> Result<PrefixSpace, BenchError> {
        if !(8..=32).contains(&len) {
            return Err(BenchError::Plan(format!(
                "prefix length /{len} is outside /8../32"
            )));
        }
        let size = 1u64 << (32 - u32::from(len));
        for (range, start, end) in RANGES {
            // Align the first prefix to its length.
            let base = u64::from(start).div_ceil(size) * size;
            if base + u64::from(count) * size <= end {
                return Ok(PrefixSpace {
                    base: base as u32,
                    len,
                    count,
                    range,
                });
            }
        }
        Err(BenchError::Plan(format!(
            "{count} prefixes of /{len} do not fit in 198.18.0.0/15 or 100.64.0.0/10"
        )))
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn range(&self) -> &'static str {
        self.range
    }

    fn step(&self) -> u32 {
        // 1 << 32 is not a u32: a /0 is refused in `new`.
        1u32 << (32 - u32::from(self.len))
    }

    /// Prefix `i` (< `count`).
    pub fn prefix(&self, i: u32) -> Ipv4Net {
        let addr = self.base.wrapping_add(i.wrapping_mul(self.step()));
        Ipv4Net::new(Ipv4Addr::from(addr), self.len).unwrap_or_default()
    }

    /// The number of a prefix of this space, `None` for anything else.
    pub fn index(&self, net: &Ipv4Net) -> Option<u32> {
        if net.prefix_len() != self.len {
            return None;
        }
        let off = u32::from(net.addr()).checked_sub(self.base)?;
        let step = self.step();
        (off % step == 0 && off / step < self.count).then_some(off / step)
    }
}

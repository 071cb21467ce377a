//! The small, daemon-neutral description every launcher turns into its own config file.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;

use super::netns::Netns;
use super::{V6_LOOPBACK, alloc_loopback, alloc_port};

/// One BGP speaker: identity, where it listens, its neighbors and what it originates.
#[derive(Clone, Debug)]
pub struct SpeakerConfig {
    pub router_id: Ipv4Addr,
    pub local_as: u32,
    /// Addresses to listen on (and to source sessions from: a neighbor without
    /// `local_addr` uses the first one of its family). 127/8, ::1, or namespace addresses.
    pub listen: Vec<IpAddr>,
    /// Listen port (unprivileged on loopback, 179 inside a namespace).
    pub port: u16,
    /// Run inside this network namespace (name of a [`Netns`] that outlives the daemon).
    pub netns: Option<String>,
    pub neighbors: Vec<Neighbor>,
    pub originate: Vec<Originate>,
    /// Program the namespace's FIB (BIRD: `protocol kernel`, FRR: start zebra). Only
    /// allowed inside a namespace; GoBGP and ExaBGP ignore it.
    pub program_fib: bool,
}

impl SpeakerConfig {
    /// A speaker on a fresh 127.x.y.z address and a fresh port in the root namespace;
    /// router id = that address.
    pub fn loopback(local_as: u32) -> SpeakerConfig {
        let a = alloc_loopback();
        SpeakerConfig {
            router_id: a,
            local_as,
            listen: vec![IpAddr::V4(a)],
            port: alloc_port(),
            netns: None,
            neighbors: vec![],
            originate: vec![],
            program_fib: false,
        }
    }

    /// A speaker inside `ns` on `addr` (an address the test put on an interface of `ns`),
    /// port 179; router id = `addr`.
    pub fn in_netns(ns: &Netns, addr: Ipv4Addr, local_as: u32) -> SpeakerConfig {
        SpeakerConfig {
            router_id: addr,
            local_as,
            listen: vec![IpAddr::V4(addr)],
            port: 179,
            netns: Some(ns.name().to_string()),
            neighbors: vec![],
            originate: vec![],
            program_fib: false,
        }
    }

    /// Also listen on `::1` (same port), for IPv6 sessions on loopback.
    pub fn with_v6_loopback(mut self) -> Self {
        if !self.listen.contains(&V6_LOOPBACK) {
            self.listen.push(V6_LOOPBACK);
        }
        self
    }

    /// Also listen on `addr`.
    pub fn with_listen(mut self, addr: IpAddr) -> Self {
        if !self.listen.contains(&addr) {
            self.listen.push(addr);
        }
        self
    }

    pub fn with_neighbor(mut self, n: Neighbor) -> Self {
        self.neighbors.push(n);
        self
    }

    /// Originate `prefix`, advertised with next hop `next_hop` ("" = the daemon's own
    /// choice, normally its local address; note GoBGP drops 127/8 next hops, so on
    /// loopback use 192.0.2.x / 2001:db8::x, which are attribute values only).
    pub fn with_originate(mut self, prefix: &str, next_hop: &str) -> Self {
        self.originate.push(Originate::new(prefix, next_hop));
        self
    }

    pub fn with_fib(mut self) -> Self {
        self.program_fib = true;
        self
    }

    /// First listen address.
    pub fn addr(&self) -> IpAddr {
        self.listen[0]
    }

    /// First IPv4 listen address.
    pub fn addr_v4(&self) -> Option<IpAddr> {
        self.listen.iter().copied().find(IpAddr::is_ipv4)
    }

    /// First IPv6 listen address.
    pub fn addr_v6(&self) -> Option<IpAddr> {
        self.listen.iter().copied().find(IpAddr::is_ipv6)
    }

    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.addr(), self.port)
    }

    /// The source address used towards `n`.
    pub fn local_addr_for(&self, n: &Neighbor) -> IpAddr {
        n.local_addr.unwrap_or_else(|| {
            let v6 = n.addr.is_ipv6();
            self.listen
                .iter()
                .copied()
                .find(|a| a.is_ipv6() == v6)
                .unwrap_or_else(|| {
                    panic!(
                        "no {} listen address for neighbor {}",
                        if v6 { "IPv6" } else { "IPv4" },
                        n.addr
                    )
                })
        })
    }

    pub fn find_neighbor(&self, key: &PeerKey) -> Option<&Neighbor> {
        self.neighbors.iter().find(|n| key.matches(n))
    }

    pub(crate) fn neighbor_or_panic(&self, key: &PeerKey) -> &Neighbor {
        self.find_neighbor(key).unwrap_or_else(|| {
            let known: Vec<String> = self
                .neighbors
                .iter()
                .map(|n| format!("{} ({})", n.name, n.addr))
                .collect();
            panic!("no neighbor {key} configured; have: {}", known.join(", "))
        })
    }

    pub(crate) fn check_addresses(&self) {
        let check = |a: &IpAddr, what: &str| {
            if self.netns.is_none() {
                assert!(
                    a.is_loopback(),
                    "{what} {a}: in the root namespace only 127.0.0.0/8 and ::1 may be used"
                );
            }
        };
        for a in &self.listen {
            check(a, "listen address");
        }
        for n in &self.neighbors {
            check(&n.addr, "neighbor address");
            if let Some(l) = &n.local_addr {
                check(l, "local address");
            }
        }
        assert!(!self.listen.is_empty(), "a speaker needs a listen address");
        assert!(
            !self.program_fib || self.netns.is_some(),
            "program_fib is only allowed inside a namespace the test created"
        );
    }
}

/// A BGP neighbor as one speaker sees it.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// Identifier (BIRD protocol name); derived from address and port by [`Neighbor::new`].
    pub name: String,
    pub addr: IpAddr,
    /// The neighbor's port (where this speaker connects to).
    pub port: u16,
    pub asn: u32,
    /// Source address; default: the speaker's first listen address of the same family.
    pub local_addr: Option<IpAddr>,
    /// TCP MD5 (RFC 2385) password.
    pub password: Option<String>,
    /// Only accept connections, never connect.
    pub passive: bool,
    /// Not directly connected (BIRD `multihop`, FRR `disable-connected-check` /
    /// `ebgp-multihop`, GoBGP `ebgp-multihop`). Default: true for loopback addresses.
    pub multihop: bool,
    pub hold_time: u16,
    /// Default hold_time / 3 (at least 1).
    pub keepalive: Option<u16>,
    /// Seconds between connection attempts.
    pub connect_retry: u16,
    pub ipv4: bool,
    pub ipv6: bool,
    pub add_path: bool,
    pub graceful_restart: bool,
    pub gr_time: u16,
    /// This speaker reflects routes to the neighbor (RFC 4456); BIRD: `rr client`.
    pub rr_client: bool,
}

impl Neighbor {
    /// A neighbor at `addr:port` in AS `asn`; families default to the address family,
    /// hold time 9 s, connect retry 1 s.
    pub fn new(addr: IpAddr, port: u16, asn: u32) -> Neighbor {
        Neighbor {
            name: Self::derive_name(addr, port),
            addr,
            port,
            asn,
            local_addr: None,
            password: None,
            passive: false,
            multihop: addr.is_loopback(),
            hold_time: 9,
            keepalive: None,
            connect_retry: 1,
            ipv4: addr.is_ipv4(),
            ipv6: addr.is_ipv6(),
            add_path: false,
            graceful_restart: false,
            gr_time: 120,
            rr_client: false,
        }
    }

    /// The other speaker's first IPv4 listen address (or first address), port and AS.
    pub fn to(other: &SpeakerConfig) -> Neighbor {
        let a = other.addr_v4().unwrap_or(other.addr());
        Neighbor::new(a, other.port, other.local_as)
    }

    /// The other speaker over IPv6 (its first IPv6 listen address, e.g. ::1).
    pub fn to_v6(other: &SpeakerConfig) -> Neighbor {
        let a = other
            .addr_v6()
            .expect("the other speaker has no IPv6 listen address");
        Neighbor::new(a, other.port, other.local_as)
    }

    /// Tortie (or any other endpoint) at `addr:port`.
    pub fn at(addr: SocketAddr, asn: u32) -> Neighbor {
        Neighbor::new(addr.ip(), addr.port(), asn)
    }

    fn derive_name(addr: IpAddr, port: u16) -> String {
        let a: String = addr
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("p_{a}_{port}")
    }

    pub fn named(mut self, name: &str) -> Self {
        assert!(
            name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "neighbor name {name:?}: letters, digits, underscores, starting with a letter"
        );
        self.name = name.into();
        self
    }
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }
    pub fn password(mut self, pw: &str) -> Self {
        self.password = Some(pw.into());
        self
    }
    pub fn multihop(mut self, on: bool) -> Self {
        self.multihop = on;
        self
    }
    /// Hold time; keepalive becomes hold/3 unless set with [`Neighbor::keepalive`].
    pub fn hold(mut self, secs: u16) -> Self {
        self.hold_time = secs;
        self
    }
    pub fn keepalive(mut self, secs: u16) -> Self {
        self.keepalive = Some(secs);
        self
    }
    pub fn connect_retry(mut self, secs: u16) -> Self {
        self.connect_retry = secs;
        self
    }
    pub fn families(mut self, ipv4: bool, ipv6: bool) -> Self {
        self.ipv4 = ipv4;
        self.ipv6 = ipv6;
        self
    }
    pub fn add_path(mut self, on: bool) -> Self {
        self.add_path = on;
        self
    }
    pub fn rr_client(mut self) -> Self {
        self.rr_client = true;
        self
    }
    pub fn graceful_restart(mut self, on: bool) -> Self {
        self.graceful_restart = on;
        self
    }
    pub fn local(mut self, addr: IpAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    pub fn keepalive_time(&self) -> u16 {
        self.keepalive.unwrap_or((self.hold_time / 3).max(1))
    }

    pub fn is_ebgp(&self, local_as: u32) -> bool {
        self.asn != local_as
    }
}

/// A prefix a speaker originates, with the NEXT_HOP it should carry.
#[derive(Clone, Debug)]
pub struct Originate {
    pub prefix: IpNet,
    pub next_hop: Option<IpAddr>,
}

impl Originate {
    /// `next_hop` "" = the daemon decides (normally its local address).
    pub fn new(prefix: &str, next_hop: &str) -> Originate {
        let prefix: IpNet = prefix
            .parse()
            .unwrap_or_else(|e| panic!("bad prefix {prefix}: {e}"));
        let next_hop = (!next_hop.is_empty()).then(|| {
            next_hop
                .parse::<IpAddr>()
                .unwrap_or_else(|e| panic!("bad next hop {next_hop}: {e}"))
        });
        Originate {
            prefix: prefix.trunc(),
            next_hop,
        }
    }

    pub fn is_v6(&self) -> bool {
        matches!(self.prefix, IpNet::V6(_))
    }
}

/// Which neighbor a query is about: its name, its address, or address and port (needed
/// only when several neighbors share an address, e.g. `::1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerKey {
    Name(String),
    Addr(IpAddr),
    Sock(SocketAddr),
}

impl PeerKey {
    pub fn matches(&self, n: &Neighbor) -> bool {
        match self {
            PeerKey::Name(s) => &n.name == s,
            PeerKey::Addr(a) => &n.addr == a,
            PeerKey::Sock(s) => n.addr == s.ip() && n.port == s.port(),
        }
    }
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerKey::Name(s) => write!(f, "{s}"),
            PeerKey::Addr(a) => write!(f, "{a}"),
            PeerKey::Sock(s) => write!(f, "{s}"),
        }
    }
}

impl From<&str> for PeerKey {
    /// An address if it parses as one, else a name.
    fn from(s: &str) -> Self {
        if let Ok(a) = s.parse::<IpAddr>() {
            PeerKey::Addr(a)
        } else if let Ok(s) = s.parse::<SocketAddr>() {
            PeerKey::Sock(s)
        } else {
            PeerKey::Name(s.into())
        }
    }
}
impl From<IpAddr> for PeerKey {
    fn from(a: IpAddr) -> Self {
        PeerKey::Addr(a)
    }
}
impl From<Ipv4Addr> for PeerKey {
    fn from(a: Ipv4Addr) -> Self {
        PeerKey::Addr(IpAddr::V4(a))
    }
}
impl From<SocketAddr> for PeerKey {
    fn from(s: SocketAddr) -> Self {
        PeerKey::Sock(s)
    }
}
impl From<&Neighbor> for PeerKey {
    fn from(n: &Neighbor) -> Self {
        PeerKey::Sock(SocketAddr::new(n.addr, n.port))
    }
}
impl From<&SpeakerConfig> for PeerKey {
    /// The neighbor that is this speaker (by its first IPv4 address, else first address).
    fn from(c: &SpeakerConfig) -> Self {
        PeerKey::Addr(c.addr_v4().unwrap_or(c.addr()))
    }
}
impl From<&PeerKey> for PeerKey {
    fn from(k: &PeerKey) -> Self {
        k.clone()
    }
}

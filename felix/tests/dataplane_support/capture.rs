//! In-process packet capture for the dataplane tests: an `AF_PACKET` socket bound to one device of a
//! namespace (like `tcpdump -i DEV` there, both directions), read without blocking after the traffic.
//! Frames are decoded just enough to tell plain pod traffic from VXLAN (UDP 4789, with the inner
//! Ethernet frame decoded too).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::topo::{Netns, Result};

pub const VXLAN_PORT: u16 = 4789;
pub const ICMP: u8 = 1;
pub const UDP: u8 = 17;
pub const ICMPV6: u8 = 58;

/// One IP packet (the outer one of a frame), with the inner one when it is VXLAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// UDP destination port.
    pub dport: Option<u16>,
    /// The packet inside a VXLAN frame (UDP to port 4789).
    pub inner: Option<Box<Ip>>,
}

impl Ip {
    /// Whether the packet is VXLAN (UDP to 4789).
    pub fn is_vxlan(&self) -> bool {
        self.proto == UDP && self.dport == Some(VXLAN_PORT)
    }

    /// Whether the (unencapsulated) packet goes between `a` and `b`, either way.
    pub fn between(&self, a: IpAddr, b: IpAddr) -> bool {
        (self.src == a && self.dst == b) || (self.src == b && self.dst == a)
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} > {} proto {}", self.src, self.dst, self.proto)?;
        if let Some(p) = self.dport {
            write!(f, " dport {p}")?;
        }
        if let Some(i) = &self.inner {
            write!(f, " [{i}]")?;
        }
        Ok(())
    }
}

/// The IP packet in an Ethernet frame, if any.
pub fn parse_ethernet(frame: &[u8]) -> Option<Ip> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let l3 = frame.get(14..)?;
    let (src, dst, proto, payload) = match ethertype {
        0x0800 => {
            let ihl = usize::from(l3.first()? & 0x0f) * 4;
            let src: [u8; 4] = l3.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = l3.get(16..20)?.try_into().ok()?;
            (
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
                *l3.get(9)?,
                l3.get(ihl..)?,
            )
        }
        0x86dd => {
            let src: [u8; 16] = l3.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = l3.get(24..40)?.try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                *l3.get(6)?,
                l3.get(40..)?,
            )
        }
        _ => return None,
    };
    let mut ip = Ip {
        src,
        dst,
        proto,
        dport: None,
        inner: None,
    };
    if proto == UDP {
        let dport = u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]);
        ip.dport = Some(dport);
        if dport == VXLAN_PORT {
            // UDP header (8), VXLAN header (8), then the inner Ethernet frame.
            ip.inner = payload.get(16..).and_then(parse_ethernet).map(Box::new);
        }
    }
    Some(ip)
}

/// A packet socket on one device of one namespace.
pub struct Capture {
    fd: OwnedFd,
    pub what: String,
}

fn open_here(dev: &str) -> std::io::Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let name = std::ffi::CString::new(dev).map_err(std::io::Error::other)?;
    // SAFETY: plain syscalls on a socket we own, with properly sized, initialised arguments.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let size: libc::c_int = 16 << 20;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        if libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

impl Capture {
    /// Start capturing on `dev` in `ns` (frames of other devices queued before the bind are dropped).
    pub fn start(ns: &Netns, dev: &str) -> Result<Capture> {
        let fd = ns
            .enter(|| open_here(dev))?
            .map_err(|e| format!("{}: packet socket on {dev}: {e}", ns.name()))?;
        let c = Capture {
            fd,
            what: format!("{}:{dev}", ns.name()),
        };
        c.take();
        Ok(c)
    }

    /// Every IP packet captured since the last call.
    pub fn take(&self) -> Vec<Ip> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: recv into a buffer we own, of the length we pass.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break; // EAGAIN: drained
            }
            if let Some(ip) = parse_ethernet(&buf[..n as usize]) {
                out.push(ip);
            }
        }
        out
    }
}

/// The packets, one a line, for assertion messages.
pub fn show(pkts: &[Ip]) -> String {
    pkts.iter().map(|p| format!("  {p}\n")).collect()
}

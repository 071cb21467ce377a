//! Pod-to-pod reachability with ICMP echo sent by tortie itself: a fresh Debian may have no
//! `ping`, and a ping binary's exit status says less than checking each reply ourselves.
//!
//! A thread enters the source pod's namespace and opens a raw ICMP socket there, sends an
//! echo request to every target at once, and matches replies by source address, identifier,
//! sequence number and payload (a raw socket sees every ICMP packet of the namespace, including
//! replies meant for a concurrent `lab status`). Targets that stay silent get another request
//! each attempt. Packet building and parsing are pure functions, tested on their own.

use super::netns::{self, NetnsError};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const ICMP_HEADER: usize = 8;
/// The payload's fixed start, so our replies are told from anyone else's at a glance.
const MAGIC: &[u8; 8] = b"tortlab1";

/// A received packet that is not a valid echo reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0} bytes is too short for an IPv4 header and an ICMP header")]
    Short(usize),
    #[error("IP version {0}, expected 4")]
    NotIpv4(u8),
    #[error("IPv4 header length {0} is invalid for a {1}-byte packet")]
    HeaderLength(usize, usize),
    #[error("IP protocol {0}, expected 1 (ICMP)")]
    NotIcmp(u8),
    #[error("ICMP checksum mismatch")]
    Checksum,
    #[error("ICMP type {0} code {1}, expected an echo reply (0/0)")]
    NotEchoReply(u8, u8),
}

/// An echo reply, as parsed from a raw socket's packet (IPv4 header included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    pub from: Ipv4Addr,
    pub ident: u16,
    pub seq: u16,
    pub payload: Vec<u8>,
}

/// Why probing could not run at all (a silent target is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum IcmpError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("namespace {ns}: opening a raw ICMP socket: {err} (root is needed)")]
    Socket { ns: String, err: std::io::Error },
    #[error("namespace {ns}: receiving ICMP: {err}")]
    Receive { ns: String, err: std::io::Error },
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request (no IP header: the kernel adds it).
pub fn echo_request(ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(ICMP_HEADER + payload.len());
    p.extend_from_slice(&[ECHO_REQUEST, 0, 0, 0]);
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// Parses what a raw IPv4 ICMP socket delivers: the IPv4 header, then the ICMP message.
pub fn parse_echo_reply(packet: &[u8]) -> Result<EchoReply, ParseError> {
    let Some(&first) = packet.first() else {
        return Err(ParseError::Short(0));
    };
    if packet.len() < 20 + ICMP_HEADER {
        return Err(ParseError::Short(packet.len()));
    }
    let version = first >> 4;
    if version != 4 {
        return Err(ParseError::NotIpv4(version));
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || packet.len() < ihl + ICMP_HEADER {
        return Err(ParseError::HeaderLength(ihl, packet.len()));
    }
    if packet[9] != 1 {
        return Err(ParseError::NotIcmp(packet[9]));
    }
    let from = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let icmp = &packet[ihl..];
    if checksum(icmp) != 0 {
        return Err(ParseError::Checksum);
    }
    if icmp[0] != ECHO_REPLY || icmp[1] != 0 {
        return Err(ParseError::NotEchoReply(icmp[0], icmp[1]));
    }
    Ok(EchoReply {
        from,
        ident: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        payload: icmp[ICMP_HEADER..].to_vec(),
    })
}

/// The payload of one probe run: the magic and a nonce.
fn payload(nonce: u64) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(&nonce.to_be_bytes());
    p
}

static NEXT_IDENT: AtomicU16 = AtomicU16::new(0);

/// An identifier unlikely to be shared with another run (process id and a counter).
fn fresh_ident() -> u16 {
    let pid = std::process::id() as u16;
    pid.wrapping_mul(31)
        .wrapping_add(NEXT_IDENT.fetch_add(1, Ordering::Relaxed))
}

fn fresh_nonce() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32) ^ u64::from(fresh_ident())
}

/// How long to wait for answers.
#[derive(Debug, Clone, Copy)]
pub struct ProbePlan {
    /// Requests per silent target.
    pub attempts: u32,
    /// How long each attempt waits for replies.
    pub wait: Duration,
}

/// Sends echo requests from inside namespace `ns` to every target; `true` where a matching
/// reply came back.
pub fn probe(ns: &str, targets: &[Ipv4Addr], plan: ProbePlan) -> Result<Vec<bool>, IcmpError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let ns_name = ns.to_string();
    netns::in_netns(ns, move || probe_here(&ns_name, targets, plan))?
}

struct RawSocket(OwnedFd);

impl RawSocket {
    fn open() -> std::io::Result<RawSocket> {
        // SAFETY: plain socket(2); the descriptor is owned by the returned value.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(RawSocket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn send_to(&self, packet: &[u8], to: Ipv4Addr) -> std::io::Result<()> {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(to).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the buffer and address are valid for the lengths given.
        let rc = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// One packet, or None when nothing arrived within `wait`.
    fn recv(&self, buf: &mut [u8], wait: Duration) -> std::io::Result<Option<usize>> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if rc == 0 {
            return Ok(None);
        }
        // SAFETY: the buffer is valid for its length.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(n as usize))
    }
}

fn probe_here(ns: &str, targets: &[Ipv4Addr], plan: ProbePlan) -> Result<Vec<bool>, IcmpError> {
    let sock = RawSocket::open().map_err(|err| IcmpError::Socket {
        ns: ns.to_string(),
        err,
    })?;
    let ident = fresh_ident();
    let body = payload(fresh_nonce());
    let mut answered = vec![false; targets.len()];
    // Sequence number → target, across attempts, so a late reply still counts.
    let mut sent: HashMap<u16, usize> = HashMap::new();
    let mut seq: u16 = 0;
    let mut buf = [0u8; 2048];
    for _ in 0..plan.attempts.max(1) {
        for (i, &to) in targets.iter().enumerate() {
            if answered[i] {
                continue;
            }
            seq = seq.wrapping_add(1);
            sent.insert(seq, i);
            // No route yet (an agent still converging) is a silent target, not an error.
            let _ = sock.send_to(&echo_request(ident, seq, &body), to);
        }
        let deadline = Instant::now() + plan.wait;
        while !answered.iter().all(|&a| a) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(n) = sock
                .recv(&mut buf, left)
                .map_err(|err| IcmpError::Receive {
                    ns: ns.to_string(),
                    err,
                })?
            else {
                continue;
            };
            let Ok(reply) = parse_echo_reply(&buf[..n]) else {
                continue;
            };
            if reply.ident != ident || reply.payload != body {
                continue;
            }
            if let Some(&i) = sent.get(&reply.seq) {
                if targets.get(i) == Some(&reply.from) {
                    answered[i] = true;
                }
            }
        }
        if answered.iter().all(|&a| a) {
            break;
        }
    }
    Ok(answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header (no options) around `icmp`, from `from`.
    fn ip_packet(from: Ipv4Addr, protocol: u8, icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0];
        p.extend_from_slice(&from.octets());
        p.extend_from_slice(&[198, 19, 0, 1]);
        p.extend_from_slice(icmp);
        p
    }

    /// What a kernel answers to `request`: type 0, checksum fixed.
    fn reply_to(request: &[u8]) -> Vec<u8> {
        let mut r = request.to_vec();
        r[0] = ECHO_REPLY;
        r[2] = 0;
        r[3] = 0;
        let sum = checksum(&r);
        r[2..4].copy_from_slice(&sum.to_be_bytes());
        r
    }

    #[test]
    fn checksum_matches_the_rfc_1071_example() {
        // RFC 1071 section 3: the one's complement sum of these bytes is ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn checksum_of_an_odd_length_pads_with_a_zero_byte() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn an_echo_request_carries_type_8_ident_seq_and_a_valid_checksum() {
        let p = echo_request(0x1234, 7, b"abc");
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&p[8..], b"abc");
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn a_reply_to_our_request_parses_back_to_its_fields() {
        let from = Ipv4Addr::new(198, 19, 0, 66);
        let req = echo_request(99, 3, &payload(5));
        let r = parse_echo_reply(&ip_packet(from, 1, &reply_to(&req))).unwrap();
        assert_eq!(
            r,
            EchoReply {
                from,
                ident: 99,
                seq: 3,
                payload: payload(5)
            }
        );
    }

    #[test]
    fn a_request_seen_on_the_socket_is_not_a_reply() {
        let req = echo_request(1, 1, b"x");
        let e = parse_echo_reply(&ip_packet(Ipv4Addr::LOCALHOST, 1, &req)).unwrap_err();
        assert_eq!(e, ParseError::NotEchoReply(8, 0));
    }

    #[test]
    fn a_corrupted_reply_fails_its_checksum() {
        let mut icmp = reply_to(&echo_request(1, 1, b"hello"));
        icmp[9] ^= 0xff;
        let e = parse_echo_reply(&ip_packet(Ipv4Addr::LOCALHOST, 1, &icmp)).unwrap_err();
        assert_eq!(e, ParseError::Checksum);
    }

    #[test]
    fn truncated_or_foreign_packets_are_refused_without_panicking() {
        let icmp = reply_to(&echo_request(1, 1, b""));
        assert_eq!(parse_echo_reply(&[]), Err(ParseError::Short(0)));
        assert_eq!(parse_echo_reply(&[0x45; 10]), Err(ParseError::Short(10)));
        let mut v6 = ip_packet(Ipv4Addr::LOCALHOST, 1, &icmp);
        v6[0] = 0x65;
        assert_eq!(parse_echo_reply(&v6), Err(ParseError::NotIpv4(6)));
        let mut long_header = ip_packet(Ipv4Addr::LOCALHOST, 1, &icmp);
        long_header[0] = 0x4f;
        assert_eq!(
            parse_echo_reply(&long_header),
            Err(ParseError::HeaderLength(60, 28))
        );
        assert_eq!(
            parse_echo_reply(&ip_packet(Ipv4Addr::LOCALHOST, 6, &icmp)),
            Err(ParseError::NotIcmp(6))
        );
    }

    #[test]
    fn a_probe_of_the_namespaces_own_loopback_is_answered_by_the_kernel() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = format!("tlabunit-icmp-{}", std::process::id());
        let _ = netns::delete(&ns);
        netns::add(&ns).unwrap();
        struct Del(String);
        impl Drop for Del {
            fn drop(&mut self) {
                let _ = netns::delete(&self.0);
            }
        }
        let _guard = Del(ns.clone());
        netns::ip(&ns, &["addr", "add", "198.19.255.1/32", "dev", "lo"]).unwrap();
        let plan = ProbePlan {
            attempts: 2,
            wait: Duration::from_millis(300),
        };
        let got = probe(
            &ns,
            &[
                Ipv4Addr::new(198, 19, 255, 1),
                Ipv4Addr::new(198, 19, 255, 2),
            ],
            plan,
        )
        .unwrap();
        assert_eq!(got, [true, false]);
    }
}

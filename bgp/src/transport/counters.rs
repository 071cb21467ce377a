//! The kernel's counters for segments it drops for TCP MD5 or GTSM reasons.
//!
//! Those drops are silent: the sender sees only retransmissions and a connect timeout. The
//! counters are the one place the cause shows, so the session driver logs them next to a
//! timeout and tests assert on them.

use std::fs;
use std::io;

use super::TransportError;

/// Calling thread's network namespace first: after `setns` on one thread, `/proc/net` (which
/// follows the process's main thread) would show another namespace.
const NETSTAT_PATHS: [&str; 2] = ["/proc/thread-self/net/netstat", "/proc/net/netstat"];

/// Snapshot of the `TcpExt` counters in `/proc/net/netstat` for one network namespace. They
/// only grow; compare two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpSecurityCounters {
    /// `TCPMD5NotFound`: a segment without an MD5 option from a peer we hold a key for.
    pub md5_not_found: u64,
    /// `TCPMD5Unexpected`: a signed segment from a peer we hold no key for.
    pub md5_unexpected: u64,
    /// `TCPMD5Failure`: a signed segment whose signature does not match our key.
    pub md5_failure: u64,
    /// `TCPMinTTLDrop`: a segment below a socket's `IP_MINTTL`/`IPV6_MINHOPCOUNT` (GTSM).
    pub min_ttl_drop: u64,
}

/// Reads the counters for the calling thread's network namespace.
pub fn tcp_security_counters() -> Result<TcpSecurityCounters, TransportError> {
    let mut last_err = None;
    for path in NETSTAT_PATHS {
        match fs::read_to_string(path) {
            Ok(text) => {
                return parse(&text).ok_or_else(|| TransportError::System {
                    op: "parse /proc/net/netstat (TcpExt MD5/MinTTL counters missing)",
                    addr: None,
                    source: io::Error::from(io::ErrorKind::InvalidData),
                });
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(TransportError::System {
        op: "read /proc/net/netstat",
        addr: None,
        source: last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound)),
    })
}

/// The file is pairs of lines, `TcpExt: Name1 Name2 ...` then `TcpExt: 1 2 ...`; names move
/// between kernel versions, so look them up rather than trust positions.
fn parse(text: &str) -> Option<TcpSecurityCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?.split_whitespace().skip(1);
    let values = lines.next()?.split_whitespace().skip(1);
    let mut c = TcpSecurityCounters::default();
    let mut found = 0;
    for (name, value) in names.zip(values) {
        let slot = match name {
            "TCPMD5NotFound" => &mut c.md5_not_found,
            "TCPMD5Unexpected" => &mut c.md5_unexpected,
            "TCPMD5Failure" => &mut c.md5_failure,
            "TCPMinTTLDrop" => &mut c.min_ttl_drop,
            _ => continue,
        };
        *slot = value.parse().ok()?;
        found += 1;
    }
    (found == 4).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcpext_by_name() {
        let text = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPMinTTLDrop\n\
                    TcpExt: 9 1 2 3 4\n\
                    IpExt: InNoRoutes\n\
                    IpExt: 0\n";
        let c = parse(text);
        assert_eq!(
            c,
            Some(TcpSecurityCounters {
                md5_not_found: 1,
                md5_unexpected: 2,
                md5_failure: 3,
                min_ttl_drop: 4
            })
        );
    }

    #[test]
    fn missing_counter_is_none() {
        assert_eq!(parse("TcpExt: TCPMD5NotFound\nTcpExt: 1\n"), None);
    }

    #[test]
    fn reads_this_namespace() {
        assert!(tcp_security_counters().is_ok());
    }
}

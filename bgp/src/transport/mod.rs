//! TCP for BGP sessions: outbound connects, the inbound listener, and the per-peer socket
//! security that BGP needs from the kernel.
//!
//! The session driver owns the protocol; this module only hands it a connected
//! [`tokio::net::TcpStream`] that already carries the right protection, because that protection
//! has to be in place before the first segment is exchanged and only the kernel can apply it:
//!
//! * **TCP MD5 signatures** (RFC 2385, `TCP_MD5SIG`). Outbound, the key is set on the socket
//!   before `connect`. Inbound, keys live on the *listening* socket, one per peer address
//!   ([`Listener::set_md5`]); the kernel copies the key into every connection it accepts from
//!   that address and drops unsigned or badly signed segments. It drops them silently: a key
//!   mismatch looks like a peer that never answers, so [`connect`] reports it as
//!   [`TransportError::Timeout`] with `md5: true`, and [`tcp_security_counters`] reads the
//!   kernel's `TCPMD5*` counters that show what actually happened.
//! * **GTSM** (RFC 5082, Calico's `ttlSecurity: N`), see [`TtlPolicy::Gtsm`]. We send with TTL
//!   255 and require at least `256 - N`: a peer N hops away sends 255 and the N - 1 routers in
//!   between each take one off, so its packets arrive with `255 - (N - 1)`. Anything lower was
//!   sent from further away and is forged. With `ttlSecurity: 1` (directly connected) that is
//!   `IP_MINTTL` 255, the value BIRD (which Calico configures as `ttl security on; multihop N`)
//!   and FRR (`ttl-security hops N`) both use; 254 is what `ttlSecurity: 2` gives. Outbound the
//!   minimum is set before `connect`, so even a forged SYN-ACK is dropped. Inbound, `IP_MINTTL`
//!   is per socket, not per peer, so the listener cannot carry it; instead the listener saves
//!   each SYN (`TCP_SAVE_SYN`), [`Listener::accept`] checks the SYN's TTL against the peer's
//!   policy and resets the connection if it is too low, and only then sets `IP_MINTTL` on the
//!   accepted socket, after which the kernel drops every later segment below the minimum. The
//!   listener itself sends with TTL 255: the kernel answers a SYN with the listener's TTL, and a
//!   GTSM peer enforces its minimum on our SYN-ACK.
//! * **eBGP multihop TTL** ([`TtlPolicy::Outgoing`]): a plain outgoing TTL, nothing enforced on
//!   receive.
//!
//! IPv4 and IPv6 are handled alike (`IP_TTL`/`IP_MINTTL` and
//! `IPV6_UNICAST_HOPS`/`IPV6_MINHOPCOUNT`). A [`Listener`] serves one address family: an IPv6
//! listener is `IPV6_V6ONLY`, so `0.0.0.0:179` and `[::]:179` are bound side by side and an IPv4
//! peer is always seen as an IPv4 address (a dual-stack socket would show it as `::ffff:a.b.c.d`
//! and would need its MD5 keys in that mapped form).
//!
//! Errors say whose fault they are ([`TransportError::fault`]): our configuration, this host's
//! kernel, or the peer/network. Only the last is worth retrying on the ConnectRetry timer as is.

mod connect;
mod counters;
mod listener;
mod sockopt;

pub use connect::{ConnectOptions, connect};
pub use counters::{TcpSecurityCounters, tcp_security_counters};
pub use listener::Listener;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU8;
use std::time::Duration;

/// The BGP port (RFC 4271 section 8.2.1).
pub const BGP_PORT: u16 = 179;

/// The longest key `TCP_MD5SIG` takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// The TTL a GTSM speaker sends with (RFC 5082 section 3).
pub const GTSM_TTL: u8 = 255;

/// A TCP MD5 password (RFC 2385), checked to fit the kernel's key buffer.
///
/// Validated on construction, so a key that reaches a socket always fits. `Debug` never shows
/// the key, so it can sit in structures that get logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Md5Key(Vec<u8>);

impl Md5Key {
    /// A key from a configured password. Empty is refused because a zero-length key is the
    /// kernel's way of saying "delete the key", not "sign with nothing".
    pub fn new(password: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let password = password.as_ref();
        if password.is_empty() {
            return Err(ConfigError::Md5KeyEmpty);
        }
        if password.len() > MD5_MAX_KEY_LEN {
            return Err(ConfigError::Md5KeyTooLong {
                len: password.len(),
            });
        }
        Ok(Md5Key(password.to_vec()))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5Key(<{} bytes redacted>)", self.0.len())
    }
}

/// What a session does with the IP TTL (IPv6: hop limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlPolicy {
    /// The kernel's default TTL (`net.ipv4.ip_default_ttl`, usually 64); nothing checked on
    /// receive. What iBGP and Calico's mesh use.
    #[default]
    Default,
    /// Send with this TTL; nothing checked on receive. eBGP multihop.
    Outgoing(NonZeroU8),
    /// RFC 5082 GTSM for a peer at most `hops` hops away (Calico's `ttlSecurity`): send with
    /// TTL 255, accept only TTL >= `256 - hops`.
    Gtsm { hops: NonZeroU8 },
}

impl TtlPolicy {
    /// GTSM from Calico's `ttlSecurity` value; 0 means nothing in Calico and is refused here.
    pub fn gtsm(hops: u8) -> Result<Self, ConfigError> {
        NonZeroU8::new(hops)
            .map(|hops| TtlPolicy::Gtsm { hops })
            .ok_or(ConfigError::GtsmHopsZero)
    }

    /// A plain outgoing TTL; 0 would never leave the host and is refused.
    pub fn outgoing(ttl: u8) -> Result<Self, ConfigError> {
        NonZeroU8::new(ttl)
            .map(TtlPolicy::Outgoing)
            .ok_or(ConfigError::TtlZero)
    }

    /// The TTL to send with, if not the kernel default.
    pub fn outgoing_ttl(&self) -> Option<u8> {
        match self {
            TtlPolicy::Default => None,
            TtlPolicy::Outgoing(ttl) => Some(ttl.get()),
            TtlPolicy::Gtsm { .. } => Some(GTSM_TTL),
        }
    }

    /// The lowest TTL accepted on receive (`IP_MINTTL`), if any: `256 - hops` for GTSM.
    pub fn min_ttl(&self) -> Option<u8> {
        match self {
            // The peer sends 255; each of the hops - 1 routers between us takes one off.
            TtlPolicy::Gtsm { hops } => Some(GTSM_TTL - (hops.get() - 1)),
            _ => None,
        }
    }
}

/// Whose fault an error is, which decides what the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Our configuration is invalid: retrying with the same configuration cannot help.
    Config,
    /// This host refused (socket limits, address not assigned, kernel without a feature): back
    /// off, log loudly.
    System,
    /// The peer or the network: refused, reset, unreachable, timed out. Normal BGP life; retry on
    /// the ConnectRetry timer.
    Peer,
}

/// A configuration the transport cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("TCP MD5 password is {len} bytes; the kernel takes at most {MD5_MAX_KEY_LEN}")]
    Md5KeyTooLong { len: usize },
    #[error("TCP MD5 password is empty")]
    Md5KeyEmpty,
    #[error("ttlSecurity (GTSM hops) must be 1..=255, not 0")]
    GtsmHopsZero,
    #[error("outgoing TTL must be 1..=255, not 0")]
    TtlZero,
    #[error("{what} {addr} is not in the same address family as {peer}")]
    FamilyMismatch {
        what: &'static str,
        addr: IpAddr,
        peer: IpAddr,
    },
    #[error("peer address {0} is not connectable (unspecified address, multicast or port 0)")]
    InvalidPeer(SocketAddr),
}

/// Everything the transport can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A socket call on this host failed; `addr` is the address it concerned, when there is one.
    #[error("{op}{} failed: {source}", fmt_addr(.addr))]
    System {
        op: &'static str,
        addr: Option<SocketAddr>,
        #[source]
        source: io::Error,
    },
    /// The peer or network refused or broke the connection attempt.
    #[error("connect to {peer} failed: {source}")]
    Connect {
        peer: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// No answer within the connect timeout.
    #[error("connect to {peer} timed out after {after:?}{}", md5_hint(*.md5))]
    Timeout {
        peer: SocketAddr,
        after: Duration,
        md5: bool,
    },
}

impl TransportError {
    pub fn fault(&self) -> Fault {
        match self {
            TransportError::Config(_) => Fault::Config,
            TransportError::System { .. } => Fault::System,
            TransportError::Connect { .. } | TransportError::Timeout { .. } => Fault::Peer,
        }
    }

    pub(crate) fn system(
        op: &'static str,
        addr: impl Into<Option<SocketAddr>>,
    ) -> impl FnOnce(io::Error) -> Self {
        let addr = addr.into();
        move |source| TransportError::System { op, addr, source }
    }
}

fn fmt_addr(addr: &Option<SocketAddr>) -> String {
    addr.map(|a| format!(" ({a})")).unwrap_or_default()
}

fn md5_hint(md5: bool) -> &'static str {
    if md5 {
        "; TCP MD5 is configured for this peer, and the kernel drops segments with a missing or \
         wrong signature silently, so a password mismatch looks exactly like this"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtsm_min_ttl_is_256_minus_hops() {
        let min = |hops| TtlPolicy::gtsm(hops).map(|p| p.min_ttl());
        assert_eq!(min(1), Ok(Some(255)));
        assert_eq!(min(2), Ok(Some(254)));
        assert_eq!(min(255), Ok(Some(1)));
        assert_eq!(min(0), Err(ConfigError::GtsmHopsZero));
        assert_eq!(TtlPolicy::gtsm(3).map(|p| p.outgoing_ttl()), Ok(Some(255)));
    }

    #[test]
    fn outgoing_ttl_has_no_minimum() {
        let p = TtlPolicy::outgoing(3);
        assert_eq!(
            p.map(|p| (p.outgoing_ttl(), p.min_ttl())),
            Ok((Some(3), None))
        );
        assert_eq!(TtlPolicy::outgoing(0), Err(ConfigError::TtlZero));
        assert_eq!(TtlPolicy::Default.outgoing_ttl(), None);
    }

    #[test]
    fn md5_key_length_limits() {
        assert!(Md5Key::new([b'k'; 80]).is_ok());
        assert_eq!(
            Md5Key::new([b'k'; 81]),
            Err(ConfigError::Md5KeyTooLong { len: 81 })
        );
        assert_eq!(Md5Key::new(""), Err(ConfigError::Md5KeyEmpty));
    }

    #[test]
    fn md5_key_debug_hides_the_password() {
        let shown = format!("{:?}", Md5Key::new("s3cret"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

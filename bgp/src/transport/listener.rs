//! The inbound side: one listening socket per address family, holding the per-peer MD5 keys,
//! and GTSM applied to each connection as it is accepted.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Mutex, PoisonError};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use super::{ConfigError, GTSM_TTL, Md5Key, TransportError, TtlPolicy, sockopt};

/// Pending connections the kernel holds for us. BGP peers are few and reconnect on their own
/// timers, so this only has to absorb a burst of them arriving together (a mesh restart).
const BACKLOG: i32 = 128;

/// A BGP listening socket. Share it behind an `Arc`: one task loops on [`Listener::accept`]
/// while configuration changes call [`Listener::set_md5`] and [`Listener::set_ttl_policy`].
///
/// It accepts connections from any address; deciding whether the peer is configured (and
/// closing it if not) is the session driver's job.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    local: SocketAddr,
    /// Per-peer TTL policy to apply after accept. A std mutex: it is held for a map lookup,
    /// never across an await.
    ttl: Mutex<HashMap<IpAddr, TtlPolicy>>,
}

/// Why an accepted connection was closed before the caller saw it.
#[derive(Debug, thiserror::Error)]
enum Reject {
    #[error("SYN arrived with TTL {ttl}, below the GTSM minimum {min}")]
    SynTtl { ttl: u8, min: u8 },
    #[error("{op} failed: {source}")]
    Sockopt { op: &'static str, source: io::Error },
}

impl Listener {
    /// Listens on `addr` (port 0 picks one; see [`Listener::local_addr`]). An IPv6 address gets
    /// `IPV6_V6ONLY`, so an IPv4 listener on the same port can coexist. `SO_REUSEADDR` lets a
    /// restarted agent bind while old connections sit in TIME_WAIT. SYN-ACKs go out with TTL
    /// 255 whatever the peer's policy, as BIRD's listener does.
    ///
    /// Must be called from within a tokio runtime (the socket registers with its reactor).
    pub fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        // tokio panics when registering a socket outside a runtime; make that an error instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TransportError::System {
                op: "listen (outside a tokio runtime)",
                addr: Some(addr),
                source: io::Error::other("Listener::bind needs a tokio runtime"),
            });
        }
        let sys = |op| TransportError::system(op, addr);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(sys("socket"))?;
        socket
            .set_reuse_address(true)
            .map_err(sys("setsockopt SO_REUSEADDR"))?;
        if addr.is_ipv6() {
            socket
                .set_only_v6(true)
                .map_err(sys("setsockopt IPV6_V6ONLY"))?;
        }
        sockopt::enable_save_syn(&socket).map_err(sys("setsockopt TCP_SAVE_SYN"))?;
        // The SYN-ACK leaves with the listener's TTL, before any per-peer policy can apply, and
        // a GTSM peer drops a SYN-ACK below its minimum: without 255 here, no GTSM peer could
        // ever connect to us. Accepted sockets inherit it; `admit` sets each one's own TTL.
        sockopt::set_ttl(&socket, addr.is_ipv6(), Some(GTSM_TTL)).map_err(sys("setsockopt TTL"))?;
        socket.bind(&addr.into()).map_err(sys("bind"))?;
        socket.listen(BACKLOG).map_err(sys("listen"))?;
        socket
            .set_nonblocking(true)
            .map_err(sys("set O_NONBLOCK"))?;
        let inner = TcpListener::from_std(socket.into()).map_err(sys("register with tokio"))?;
        let local = inner.local_addr().map_err(sys("getsockname"))?;
        info!(%local, "BGP listener bound");
        Ok(Listener {
            inner,
            local,
            ttl: Mutex::new(HashMap::new()),
        })
    }

    /// The bound address, with the port the kernel chose if `bind` was given port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Installs (`Some`) or removes (`None`) the MD5 key for connections from `peer`. Takes
    /// effect for the next SYN; connections already accepted keep the key they were accepted
    /// with, as the kernel copies it into each connection.
    pub fn set_md5(&self, peer: IpAddr, key: Option<&Md5Key>) -> Result<(), TransportError> {
        self.check_family(peer)?;
        sockopt::set_md5(&self.inner, peer, key).map_err(TransportError::system(
            "setsockopt TCP_MD5SIG",
            SocketAddr::new(peer, 0),
        ))?;
        info!(listener = %self.local, %peer, md5 = key.is_some(), "listener MD5 key updated");
        Ok(())
    }

    /// Sets the TTL policy for connections accepted from `peer` from now on.
    /// [`TtlPolicy::Default`] forgets the peer.
    pub fn set_ttl_policy(&self, peer: IpAddr, policy: TtlPolicy) -> Result<(), TransportError> {
        self.check_family(peer)?;
        let mut map = self.ttl.lock().unwrap_or_else(PoisonError::into_inner);
        match policy {
            TtlPolicy::Default => map.remove(&peer),
            policy => map.insert(peer, policy),
        };
        debug!(listener = %self.local, %peer, ?policy, "listener TTL policy updated");
        Ok(())
    }

    /// The next connection with its peer and local addresses, its TTL policy applied and
    /// `TCP_NODELAY` on.
    ///
    /// A GTSM peer's connection whose SYN arrived below the minimum TTL is reset here and never
    /// returned: the kernel completes the handshake before we can look, but no BGP byte is read
    /// or sent on it. (When the SYN was not saved, as under a SYN flood with SYN cookies, only the
    /// `IP_MINTTL` set on the accepted socket protects it, from its next segment on.)
    ///
    /// An error concerns this attempt only (for example EMFILE); the listener stays usable, and
    /// the caller should pause before accepting again. Cancel-safe (fine in `select!`): its only
    /// await point is the kernel accept, and nothing is lost if it is dropped there.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr, SocketAddr), TransportError> {
        loop {
            let (stream, peer) = self
                .inner
                .accept()
                .await
                .map_err(TransportError::system("accept", self.local))?;
            match self.admit(&stream, peer) {
                Ok(local) => return Ok((stream, peer, local)),
                Err(reason) => {
                    warn!(%peer, listener = %self.local, %reason, "incoming connection reset");
                    // A reset tells a legitimate but misconfigured peer at once, where a FIN would
                    // look like a BGP-level close. If it fails, the drop still closes it.
                    if let Err(e) = stream.set_zero_linger() {
                        debug!(%peer, error = %e, "SO_LINGER 0 failed; closing with FIN");
                    }
                }
            }
        }
    }

    /// Applies the peer's TTL policy to an accepted connection; returns its local address.
    fn admit(&self, stream: &TcpStream, peer: SocketAddr) -> Result<SocketAddr, Reject> {
        let local = stream.local_addr().map_err(|source| Reject::Sockopt {
            op: "getsockname",
            source,
        })?;
        // Read for every connection, not only GTSM ones: reading frees the saved headers.
        let syn_ttl = sockopt::saved_syn_ttl(stream);
        let policy = self
            .ttl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer.ip())
            .copied()
            .unwrap_or_default();
        debug!(%peer, %local, syn_ttl = ?syn_ttl.as_ref().ok(), ?policy, "accepted");
        if let Some(min) = policy.min_ttl() {
            match syn_ttl {
                Ok(Some(ttl)) if ttl < min => return Err(Reject::SynTtl { ttl, min }),
                Ok(Some(_)) => {}
                Ok(None) => {
                    debug!(%peer, "no saved SYN (SYN cookie?); GTSM applies from the next segment")
                }
                Err(e) => {
                    debug!(%peer, error = %e, "saved SYN unreadable; GTSM applies from the next segment")
                }
            }
        }
        sockopt::apply_ttl(stream, peer.is_ipv6(), policy).map_err(|source| Reject::Sockopt {
            op: "setsockopt TTL",
            source,
        })?;
        stream.set_nodelay(true).map_err(|source| Reject::Sockopt {
            op: "setsockopt TCP_NODELAY",
            source,
        })?;
        Ok(local)
    }

    fn check_family(&self, peer: IpAddr) -> Result<(), ConfigError> {
        if peer.is_ipv4() != self.local.is_ipv4() {
            return Err(ConfigError::FamilyMismatch {
                what: "listener",
                addr: self.local.ip(),
                peer,
            });
        }
        Ok(())
    }
}

/// For inspecting the listening socket's options (tests, diagnostics).
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

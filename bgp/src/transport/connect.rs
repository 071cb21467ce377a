//! Outbound connections: a socket with the peer's protection applied before the SYN leaves.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tracing::debug;

use super::{BGP_PORT, ConfigError, Md5Key, TransportError, TtlPolicy, sockopt};

/// How to reach one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The peer's address and port (Calico's `peerIP`, port 179 unless it names one).
    pub peer: SocketAddr,
    /// The source address to bind (Calico's `sourceAddress`); the port is always ephemeral.
    pub local: Option<IpAddr>,
    /// The TCP MD5 password shared with the peer.
    pub md5: Option<Md5Key>,
    pub ttl: TtlPolicy,
    /// How long to wait for the handshake. An MD5 mismatch or a GTSM-dropped SYN-ACK only ever
    /// ends this way.
    pub timeout: Duration,
}

impl ConnectOptions {
    /// Port 179, no source address, no MD5, kernel default TTL, 5 s timeout. The timeout is
    /// short next to RFC 4271's 120 s ConnectRetry because a peer that has not answered in 5 s
    /// on a data-centre fabric is not going to; the driver retries on its own timer.
    pub fn new(peer: IpAddr) -> Self {
        ConnectOptions {
            peer: SocketAddr::new(peer, BGP_PORT),
            local: None,
            md5: None,
            ttl: TtlPolicy::Default,
            timeout: Duration::from_secs(5),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let ip = self.peer.ip();
        if ip.is_unspecified() || ip.is_multicast() || self.peer.port() == 0 {
            return Err(ConfigError::InvalidPeer(self.peer));
        }
        if let Some(local) = self.local {
            if local.is_ipv4() != ip.is_ipv4() {
                return Err(ConfigError::FamilyMismatch {
                    what: "source address",
                    addr: local,
                    peer: ip,
                });
            }
        }
        Ok(())
    }
}

/// Connects to `opts.peer` with MD5, TTL policy and source address applied before the SYN, and
/// `TCP_NODELAY` on (BGP writes whole messages; KEEPALIVEs must not wait for Nagle).
pub async fn connect(opts: &ConnectOptions) -> Result<TcpStream, TransportError> {
    opts.validate()?;
    let peer = opts.peer;
    let ipv6 = peer.is_ipv6();
    let socket = if ipv6 {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(TransportError::system("socket", peer))?;
    if let Some(key) = &opts.md5 {
        sockopt::set_md5(&socket, peer.ip(), Some(key))
            .map_err(TransportError::system("setsockopt TCP_MD5SIG", peer))?;
    }
    sockopt::apply_ttl(&socket, ipv6, opts.ttl)
        .map_err(TransportError::system("setsockopt TTL", peer))?;
    socket
        .set_nodelay(true)
        .map_err(TransportError::system("setsockopt TCP_NODELAY", peer))?;
    if let Some(local) = opts.local {
        let local = SocketAddr::new(local, 0);
        sockopt::bind_address_no_port(&socket).map_err(TransportError::system(
            "setsockopt IP_BIND_ADDRESS_NO_PORT",
            local,
        ))?;
        socket
            .bind(local)
            .map_err(TransportError::system("bind", local))?;
    }

    debug!(%peer, local = ?opts.local, md5 = opts.md5.is_some(), ttl = ?opts.ttl, "connecting");
    let stream = match tokio::time::timeout(opts.timeout, socket.connect(peer)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(TransportError::Connect { peer, source }),
        Err(_elapsed) => {
            // The error's message carries the MD5 hint; the driver decides how loudly to log it.
            let md5 = opts.md5.is_some();
            debug!(%peer, after = ?opts.timeout, md5, "connect timed out");
            return Err(TransportError::Timeout {
                peer,
                after: opts.timeout,
                md5,
            });
        }
    };
    debug!(%peer, local = ?stream.local_addr().ok(), "connected");
    Ok(stream)
}

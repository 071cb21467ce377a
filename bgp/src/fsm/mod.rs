//! The BGP session state machine of RFC 4271 section 8, sans-IO.
//!
//! A [`Session`] is one configured peer. The driver feeds it [`Event`]s (TCP connected, bytes
//! arrived, a timer fired, an operator stopped it) together with the current time, and carries
//! out the [`Action`]s it returns (connect, send, close, arm a timer, hand received routes on).
//! It never touches a socket or a clock, so every transition of the RFC's tables is a
//! microsecond unit test with simulated time.
//!
//! A peer may have two TCP connections at once, one we opened and one it opened; RFC 4271
//! section 6.8 (connection collision detection) decides which survives. Each connection keeps
//! its own OpenSent / OpenConfirm / Established progress, and the session's [`State`] is the
//! most advanced of them.

mod backoff;
mod config;
mod conn;
mod negotiate;
mod session;

pub use config::{GrConfig, LocalCapabilities, PeerConfig};
pub use negotiate::Negotiated;
pub use session::Session;

use crate::wire::{Notification, RouteRefresh, Update};
use bytes::Bytes;
use std::fmt;
use std::time::{Duration, Instant};

/// The session states of RFC 4271 section 8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Names one TCP connection of a session. Outbound ids come from the session (in
/// [`Action::Connect`]); inbound ids are chosen by the driver when it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub inbound: bool,
    pub n: u32,
}

impl ConnId {
    pub fn inbound(n: u32) -> Self {
        ConnId { inbound: true, n }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", if self.inbound { "in" } else { "out" }, self.n)
    }
}

/// The timers of RFC 4271 section 8 (plus the IdleHoldTimer of section 8.1.1's
/// DampPeerOscillations). Hold, Keepalive and DelayOpen belong to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    IdleHold,
    Hold(ConnId),
    Keepalive(ConnId),
    DelayOpen(ConnId),
}

/// Why a session is being stopped by this side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// ManualStop: Cease / Administrative Shutdown with an optional message (RFC 8203, RFC
    /// 9003). The session stays down until the next [`Event::Start`].
    Shutdown(Option<String>),
    /// Cease / Administrative Reset, then an automatic restart.
    Reset(Option<String>),
    /// Cease / Peer De-configured; stays down.
    Deconfigured,
    /// AutomaticStop: Cease / Maximum Number of Prefixes Reached (RFC 4486), restarting after
    /// the delay if one is given.
    MaxPrefixes { restart_after: Option<Duration> },
}

/// What happens to a session. Timestamps come in with [`Session::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// ManualStart (or ManualStart_with_PassiveTcpEstablishment when the peer is passive).
    Start,
    Stop(Stop),
    /// Our connection attempt succeeded (Tcp_CR_Acked).
    Connected(ConnId),
    /// Our connection attempt failed or timed out.
    ConnectFailed(ConnId),
    /// The peer connected to us (TcpConnectionConfirmed); the id is the driver's.
    Accepted(ConnId),
    /// The connection closed or failed (TcpConnectionFails).
    Closed(ConnId),
    /// Bytes arrived on a connection.
    Data(ConnId, &'a [u8]),
    Timer(Timer),
}

/// Why a session left Established or failed to get there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// We sent this NOTIFICATION (hold timer, malformed message, OPEN refused, stop, ...).
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The TCP connection closed without a NOTIFICATION.
    ConnectionClosed,
    /// Our connection attempt failed.
    ConnectFailed,
}

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |n: &Notification| match n.shutdown_communication() {
            Some(msg) => format!("{}: \"{msg}\"", n.describe()),
            None => n.describe(),
        };
        match self {
            Down::NotificationSent(n) => write!(f, "sent NOTIFICATION {}", text(n)),
            Down::NotificationReceived(n) => write!(f, "received NOTIFICATION {}", text(n)),
            Down::ConnectionClosed => f.write_str("connection closed"),
            Down::ConnectFailed => f.write_str("connect failed"),
        }
    }
}

/// What the driver must do, in order.
// `Update` dominates the size, as in `wire::Message`: an UPDATE is moved once from the codec to
// the driver, so boxing it would cost an allocation per message for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer (source address, MD5 and TTL come from the driver's
    /// copy of the peer configuration) and report [`Event::Connected`] or
    /// [`Event::ConnectFailed`] with this id.
    Connect(ConnId),
    /// Write these bytes to the connection.
    Send(ConnId, Bytes),
    /// Close the connection once everything sent before has been written.
    Close(ConnId),
    /// Arm a timer to fire at the deadline, replacing any earlier deadline of the same timer.
    SetTimer(Timer, Instant),
    /// Disarm a timer.
    ClearTimer(Timer),
    /// The session changed state.
    StateChanged { from: State, to: State },
    /// The session reached Established with these capabilities.
    Established(Box<Negotiated>),
    /// The session left Established (or gave up before it): the peer's routes are gone unless
    /// graceful restart says otherwise.
    Down(Down),
    /// An UPDATE arrived (RFC 7606 findings are in [`Update::errors`]; a treat-as-withdraw
    /// UPDATE must be applied as a withdrawal of everything it carries).
    Update(Update),
    /// The peer asked for our routes again (RFC 2918), or marks a refresh (RFC 7313).
    RouteRefresh(RouteRefresh),
}

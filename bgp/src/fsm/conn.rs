//! One TCP connection of a session and how far its OPEN exchange got.

use super::ConnId;
use super::negotiate::Negotiated;
use crate::wire::{Ctx, Open};
use bytes::BytesMut;
use std::time::{Duration, Instant};

/// The progress of one connection. The session's [`super::State`] is derived from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ConnState {
    /// Outbound, TCP not up yet (the session is in Connect).
    Connecting,
    /// TCP up, DelayOpenTimer running: waiting for the peer's OPEN before sending ours.
    DelayOpen,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub id: ConnId,
    pub state: ConnState,
    /// Bytes received and not yet framed: at most one partial message plus the last read.
    pub rx: BytesMut,
    pub our_open: Option<Open>,
    pub negotiated: Option<Negotiated>,
    pub last_rx: Instant,
    pub last_tx: Instant,
    /// The current hold time: 4 minutes until the OPEN exchange (RFC 4271 section 8.2.2,
    /// OpenSent), then the negotiated one; zero disables it.
    pub hold: Duration,
    pub keepalive: Duration,
}

/// RFC 4271 section 8.2.2: "a large value ... (4 minutes is suggested)" while in OpenSent.
pub(crate) const OPEN_HOLD: Duration = Duration::from_secs(240);

impl Conn {
    pub fn new(id: ConnId, state: ConnState, now: Instant) -> Self {
        Conn {
            id,
            state,
            rx: BytesMut::new(),
            our_open: None,
            negotiated: None,
            last_rx: now,
            last_tx: now,
            hold: OPEN_HOLD,
            keepalive: Duration::ZERO,
        }
    }

    /// How to read what arrives: nothing negotiated until the peer's OPEN is accepted.
    pub fn rx_ctx(&self) -> Ctx {
        self.negotiated.as_ref().map(|n| n.rx).unwrap_or_default()
    }

    pub fn tx_ctx(&self) -> Ctx {
        self.negotiated.as_ref().map(|n| n.tx).unwrap_or_default()
    }

    /// TCP is up on this connection, so a NOTIFICATION can be sent on it.
    pub fn tcp_up(&self) -> bool {
        self.state != ConnState::Connecting
    }
}

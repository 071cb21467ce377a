//! The per-peer state machine: RFC 4271 section 8.2.2's tables, with the collision detection
//! of section 6.8 across a session's (at most two) connections.
//!
//! Where it knowingly differs from the letter of the tables:
//! - A failed outbound connect goes to Active (not Idle), as in BIRD and FRR: the session
//!   keeps accepting the peer's connection and retries on the ConnectRetryTimer. The idle-hold
//!   backoff is for sessions that fail after TCP came up. Passive peers never connect out.
//! - SendNOTIFICATIONwithoutOPEN is on: a header or OPEN error, or a stop, while the
//!   DelayOpenTimer runs is reported to the peer.
//! - A received NOTIFICATION is never answered (section 6.4), also in OpenSent, where the
//!   table would send an FSM error.
//! - Timer events the tables call FSM errors (ConnectRetry in OpenSent, DelayOpen after the
//!   OPEN, ...) can only be stale here, since the session disarms timers it leaves behind; they
//!   are ignored rather than tearing down a healthy session over a race in the driver.
//! - Every error that leads to Idle schedules the automatic restart after the idle hold
//!   (DampPeerOscillations), also a NOTIFICATION with a version error, where the tables
//!   skip the damping.
//! - The Hold and Keepalive timers are restarted lazily: each message only records its time,
//!   and a timer that fires re-arms itself if a message arrived (or was sent) since.

use super::backoff::{Backoff, Jitter};
use super::config::PeerConfig;
use super::conn::{Conn, ConnState, OPEN_HOLD};
use super::negotiate::{self, Negotiated};
use super::{Action, ConnId, Down, Event, State, Stop, Timer};
use crate::wire::error::{code, subcode};
use crate::wire::notification::cease;
use crate::wire::{
    self, EncodeError, Message, Notification, RouteRefresh, RouteRefreshSubtype, Update,
};
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

/// FSM Error subcodes (RFC 6608 section 3).
mod fsm_error {
    pub const UNSPECIFIED: u8 = 0;
    pub const OPEN_SENT: u8 = 1;
    pub const OPEN_CONFIRM: u8 = 2;
    pub const ESTABLISHED: u8 = 3;
}

/// Why [`Session::send_updates`] sent nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the session is not Established")]
    NotEstablished,
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// One configured peer; see the module documentation of [`super`].
#[derive(Debug)]
pub struct Session {
    cfg: PeerConfig,
    /// ManualStart happened and no stop since: the session tries to come up, and restarts
    /// itself after errors.
    started: bool,
    /// In Idle after an error, waiting for the IdleHoldTimer (AutomaticStart).
    idle_hold: bool,
    conns: Vec<Conn>,
    next_conn: u32,
    backoff: Backoff,
    jitter: Jitter,
    /// Capability codes the peer refused with "Unsupported Capability" (RFC 5492 section 5).
    refused: Vec<u8>,
    /// The peer refused optional parameters altogether: send an OPEN without capabilities.
    no_capabilities: bool,
    established_at: Option<Instant>,
}

/// Actions collected while handling one event.
type Out = Vec<Action>;

impl Session {
    pub fn new(cfg: PeerConfig) -> Self {
        Session {
            backoff: Backoff::new(cfg.idle_hold, cfg.idle_hold_max),
            jitter: Jitter::new(cfg.jitter_seed),
            cfg,
            started: false,
            idle_hold: false,
            conns: Vec::new(),
            next_conn: 0,
            refused: Vec::new(),
            no_capabilities: false,
            established_at: None,
        }
    }

    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    /// The session state: that of the most advanced connection.
    pub fn state(&self) -> State {
        match self.conns.iter().map(|c| (c.state, c.id.inbound)).max() {
            Some((ConnState::Established, _)) => State::Established,
            Some((ConnState::OpenConfirm, _)) => State::OpenConfirm,
            Some((ConnState::OpenSent, _)) => State::OpenSent,
            Some((ConnState::Connecting, _)) | Some((ConnState::DelayOpen, false)) => {
                State::Connect
            }
            Some((ConnState::DelayOpen, true)) => State::Active,
            None if self.started && !self.idle_hold => State::Active,
            None => State::Idle,
        }
    }

    /// What the Established session negotiated.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.established().and_then(|c| c.negotiated.as_ref())
    }

    /// How many received octets of connection `id` wait for the rest of their message: never
    /// more than one partial message plus the last chunk handed to [`Event::Data`], because
    /// complete messages are processed as soon as they are framed. `None` for an unknown
    /// connection.
    pub fn buffered(&self, id: ConnId) -> Option<usize> {
        self.index(id).map(|i| self.conns[i].rx.len())
    }

    fn established(&self) -> Option<&Conn> {
        self.conns
            .iter()
            .find(|c| c.state == ConnState::Established)
    }

    fn index(&self, id: ConnId) -> Option<usize> {
        self.conns.iter().position(|c| c.id == id)
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle(&mut self, event: Event<'_>, now: Instant) -> Vec<Action> {
        let before = self.state();
        let mut out = Vec::new();
        match event {
            Event::Start => self.manual_start(now, &mut out),
            Event::Stop(stop) => self.stop(stop, now, &mut out),
            Event::Connected(id) => self.tcp_up(id, now, &mut out),
            Event::ConnectFailed(id) => self.connect_failed(id, now, &mut out),
            Event::Accepted(id) => self.accepted(id, now, &mut out),
            Event::Closed(id) => self.closed(id, now, &mut out),
            Event::Data(id, bytes) => self.data(id, bytes, now, &mut out),
            Event::Timer(t) => self.timer(t, now, &mut out),
        }
        let after = self.state();
        if before != after {
            out.push(Action::StateChanged {
                from: before,
                to: after,
            });
        }
        out
    }

    /// Encodes UPDATEs for the Established connection (one write for all of them) and notes
    /// the send for the keepalive timer (RFC 4271 section 8.2.2: sending an UPDATE restarts it).
    pub fn send_updates(
        &mut self,
        updates: &[Update],
        now: Instant,
    ) -> Result<Vec<Action>, SendError> {
        self.send_messages(updates.iter().map(|u| Message::Update(u.clone())), now)
    }

    /// Asks the peer to send its routes of a family again (RFC 2918).
    pub fn request_route_refresh(
        &mut self,
        family: wire::Family,
        now: Instant,
    ) -> Result<Vec<Action>, SendError> {
        let negotiated = self.negotiated().ok_or(SendError::NotEstablished)?;
        if !negotiated.route_refresh || !negotiated.families.contains(&family) {
            // RFC 2918 sections 3 and 4: only to a peer that advertised the capability, and
            // only for a family negotiated with it.
            return Ok(Vec::new());
        }
        let rr = RouteRefresh {
            afi: family.afi(),
            safi: family.safi(),
            subtype: RouteRefreshSubtype::Request,
        };
        self.send_messages(std::iter::once(Message::RouteRefresh(rr)), now)
    }

    fn send_messages(
        &mut self,
        msgs: impl Iterator<Item = Message>,
        now: Instant,
    ) -> Result<Vec<Action>, SendError> {
        let conn = self
            .conns
            .iter_mut()
            .find(|c| c.state == ConnState::Established)
            .ok_or(SendError::NotEstablished)?;
        let ctx = conn.tx_ctx();
        let mut buf = BytesMut::new();
        for m in msgs {
            wire::encode(&m, &ctx, &mut buf)?;
        }
        if buf.is_empty() {
            return Ok(Vec::new());
        }
        conn.last_tx = now;
        Ok(vec![Action::Send(conn.id, buf.freeze())])
    }

    // --- Starting and stopping ---------------------------------------------------------------

    fn manual_start(&mut self, now: Instant, out: &mut Out) {
        // RFC 4271 section 8.2.2: start events are ignored in every state but Idle. Idle
        // includes the idle hold after an error: an operator's start does not wait for it
        // (and, like any ManualStart, sets the ConnectRetryCounter, here the backoff, to zero).
        if self.started && !self.idle_hold {
            return;
        }
        self.started = true;
        self.backoff.reset();
        self.begin(now, out);
    }

    /// Leaves Idle (ManualStart or AutomaticStart): Connect, or Active for a passive peer.
    fn begin(&mut self, now: Instant, out: &mut Out) {
        self.idle_hold = false;
        out.push(Action::ClearTimer(Timer::IdleHold));
        if !self.cfg.passive {
            self.connect(now, out);
        }
    }

    fn connect(&mut self, now: Instant, out: &mut Out) {
        let id = ConnId {
            inbound: false,
            n: self.next_conn,
        };
        self.next_conn = self.next_conn.wrapping_add(1);
        self.conns.push(Conn::new(id, ConnState::Connecting, now));
        out.push(Action::Connect(id));
        let retry = self.jitter.apply(self.cfg.connect_retry);
        out.push(Action::SetTimer(Timer::ConnectRetry, now + retry));
    }

    fn stop(&mut self, stop: Stop, now: Instant, out: &mut Out) {
        if matches!(stop, Stop::MaxPrefixes { .. }) && self.state() == State::Idle {
            // RFC 4271 section 8.2.2, Idle state: AutomaticStop is ignored (in particular it
            // neither cancels nor reschedules an automatic restart under way).
            return;
        }
        let (sub, text, restart) = match stop {
            Stop::Shutdown(text) => (cease::ADMINISTRATIVE_SHUTDOWN, text, None),
            Stop::Reset(text) => (cease::ADMINISTRATIVE_RESET, text, Some(self.cfg.idle_hold)),
            Stop::Deconfigured => (cease::PEER_DECONFIGURED, None, None),
            Stop::MaxPrefixes { restart_after } => (cease::MAX_PREFIXES, None, restart_after),
        };
        let n = match text {
            Some(t) => Notification::cease_with_message(sub, &t),
            None => Notification::new(code::CEASE, sub, Vec::new()),
        };
        let told = self.conns.iter().any(|c| c.tcp_up());
        for id in self.conn_ids() {
            self.drop_conn(id, Some(&n), out);
        }
        out.push(Action::ClearTimer(Timer::ConnectRetry));
        self.note_down(now);
        if told {
            out.push(Action::Down(Down::NotificationSent(n)));
        }
        match restart {
            Some(delay) if self.started => {
                self.idle_hold = true;
                out.push(Action::SetTimer(Timer::IdleHold, now + delay));
            }
            _ => {
                self.started = false;
                self.idle_hold = false;
                out.push(Action::ClearTimer(Timer::IdleHold));
            }
        }
    }

    fn conn_ids(&self) -> Vec<ConnId> {
        self.conns.iter().map(|c| c.id).collect()
    }

    /// Sends `notification` if TCP is up, closes and forgets the connection and its timers.
    fn drop_conn(&mut self, id: ConnId, notification: Option<&Notification>, out: &mut Out) {
        let Some(i) = self.index(id) else { return };
        let conn = self.conns.remove(i);
        if let Some(n) = notification.filter(|_| conn.tcp_up()) {
            let mut buf = BytesMut::new();
            // A NOTIFICATION always fits: data beyond the message limit is cut by its maker.
            if wire::encode(&Message::Notification(n.clone()), &conn.tx_ctx(), &mut buf).is_ok() {
                out.push(Action::Send(id, buf.freeze()));
            }
        }
        out.push(Action::Close(id));
        out.push(Action::ClearTimer(Timer::Hold(id)));
        out.push(Action::ClearTimer(Timer::Keepalive(id)));
        out.push(Action::ClearTimer(Timer::DelayOpen(id)));
    }

    /// Bookkeeping when the session leaves Established: a session that stayed up long enough
    /// restarts the backoff (DampPeerOscillations).
    fn note_down(&mut self, now: Instant) {
        if let Some(at) = self.established_at.take() {
            if now.saturating_duration_since(at) >= self.cfg.stable_after {
                self.backoff.reset();
            }
        }
    }

    /// An error ended the session: drop every connection, go Idle, and schedule the automatic
    /// restart after the (growing, jittered) idle hold time.
    fn fail(&mut self, down: Down, now: Instant, out: &mut Out) {
        for id in self.conn_ids() {
            self.drop_conn(id, None, out);
        }
        out.push(Action::ClearTimer(Timer::ConnectRetry));
        self.note_down(now);
        out.push(Action::Down(down));
        if self.started {
            self.idle_hold = true;
            let delay = self.jitter.apply(self.backoff.next_delay());
            out.push(Action::SetTimer(Timer::IdleHold, now + delay));
        }
    }

    /// A connection failed. With another connection still making progress (a collision in
    /// flight) only this one goes; otherwise the session fails.
    fn conn_failed(
        &mut self,
        id: ConnId,
        notification: Option<Notification>,
        down: Down,
        now: Instant,
        out: &mut Out,
    ) {
        let others_alive = self
            .conns
            .iter()
            .any(|c| c.id != id && c.state >= ConnState::DelayOpen);
        self.drop_conn(id, notification.as_ref(), out);
        if !others_alive {
            self.fail(down, now, out);
        }
    }

    /// Sends a NOTIFICATION on the connection and fails it.
    fn refuse(&mut self, id: ConnId, n: Notification, now: Instant, out: &mut Out) {
        self.conn_failed(id, Some(n.clone()), Down::NotificationSent(n), now, out);
    }

    // --- TCP events --------------------------------------------------------------------------

    fn connect_failed(&mut self, id: ConnId, now: Instant, out: &mut Out) {
        let Some(i) = self.index(id) else { return };
        if self.conns[i].state != ConnState::Connecting {
            return;
        }
        self.conns.remove(i);
        if self.conns.is_empty() {
            // RFC 4271 section 8.2.2 sends Connect to Idle here; tortie goes to Active instead,
            // as BIRD and FRR do: it keeps accepting the peer's own connection (a peer that only
            // connects out, like ExaBGP, or the other side of a mesh that came up first) and
            // tries again on the ConnectRetryTimer. A refused connection is not a session error,
            // so the idle-hold backoff is kept for sessions that fail after TCP came up.
            out.push(Action::Down(Down::ConnectFailed));
            let retry = self.jitter.apply(self.cfg.connect_retry);
            out.push(Action::SetTimer(Timer::ConnectRetry, now + retry));
        }
    }

    /// TCP came up on our outbound connection (Tcp_CR_Acked).
    fn tcp_up(&mut self, id: ConnId, now: Instant, out: &mut Out) {
        match self.index(id) {
            Some(i) if self.conns[i].state == ConnState::Connecting => {
                out.push(Action::ClearTimer(Timer::ConnectRetry));
                self.open_connection(i, now, out);
            }
            // A connection we no longer want (superseded or stopped).
            _ => out.push(Action::Close(id)),
        }
    }

    /// The peer connected to us.
    fn accepted(&mut self, id: ConnId, now: Instant, out: &mut Out) {
        if !self.started || self.idle_hold {
            // Idle refuses connections (RFC 4271 section 8.2.2, Idle state).
            out.push(Action::Close(id));
            return;
        }
        if let Some(est) = self.established() {
            let peer_restarted = est
                .negotiated
                .as_ref()
                .is_some_and(|n| n.peer_graceful_restart.is_some());
            if !peer_restarted {
                // Section 6.8: a collision with an Established connection closes the new one.
                out.push(Action::Close(id));
                return;
            }
            // RFC 4724 section 4.2: a new connection from a peer that can restart gracefully
            // means it restarted; the old session is gone.
            let old = est.id;
            self.drop_conn(old, None, out);
            self.note_down(now);
            out.push(Action::Down(Down::ConnectionClosed));
        }
        // A newer inbound connection supersedes an older one that has not finished its OPEN
        // exchange (the peer gave up on it), and any outbound attempt still connecting.
        let stale: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.id.inbound || c.state == ConnState::Connecting)
            .map(|c| c.id)
            .collect();
        for old in stale {
            self.drop_conn(old, None, out);
        }
        out.push(Action::ClearTimer(Timer::ConnectRetry));
        self.conns.push(Conn::new(id, ConnState::Connecting, now));
        let i = self.conns.len() - 1;
        self.open_connection(i, now, out);
    }

    /// TCP is up on connection `i`: send our OPEN, or wait for theirs with DelayOpen.
    fn open_connection(&mut self, i: usize, now: Instant, out: &mut Out) {
        let id = self.conns[i].id;
        if let Some(delay) = self.cfg.delay_open {
            self.conns[i].state = ConnState::DelayOpen;
            out.push(Action::SetTimer(Timer::DelayOpen(id), now + delay));
        } else {
            self.send_open(i, now, out);
            self.conns[i].state = ConnState::OpenSent;
            self.conns[i].hold = OPEN_HOLD;
            out.push(Action::SetTimer(Timer::Hold(id), now + OPEN_HOLD));
        }
    }

    fn send_open(&mut self, i: usize, now: Instant, out: &mut Out) {
        let open = self.cfg.open(&self.refused, self.no_capabilities);
        let conn = &mut self.conns[i];
        let mut buf = BytesMut::new();
        // Our own OPEN is bounded by our configuration (capabilities are short), so encoding
        // cannot exceed 4096 octets; should it ever, the peer's hold timer reports it.
        let _ = wire::encode(&Message::Open(open.clone()), &OPEN_CTX, &mut buf);
        conn.our_open = Some(open);
        conn.last_tx = now;
        out.push(Action::Send(conn.id, buf.freeze()));
    }

    fn closed(&mut self, id: ConnId, now: Instant, out: &mut Out) {
        let Some(i) = self.index(id) else { return };
        let state = self.conns[i].state;
        if state == ConnState::Connecting {
            return self.connect_failed(id, now, out);
        }
        let others_alive = self
            .conns
            .iter()
            .any(|c| c.id != id && c.state >= ConnState::DelayOpen);
        self.drop_conn(id, None, out);
        if others_alive {
            return;
        }
        if state == ConnState::DelayOpen && id.inbound {
            // RFC 4271 section 8.2.2, Active state with the DelayOpenTimer running,
            // TcpConnectionFails: to Idle, with peer oscillation damping.
            return self.fail(Down::ConnectionClosed, now, out);
        }
        if state <= ConnState::OpenSent && self.started {
            // RFC 4271 section 8.2.2, OpenSent (and Connect with the DelayOpenTimer running),
            // TcpConnectionFails: back to Active, retrying after the ConnectRetryTimer.
            out.push(Action::Down(Down::ConnectionClosed));
            if !self.cfg.passive {
                let retry = self.jitter.apply(self.cfg.connect_retry);
                out.push(Action::SetTimer(Timer::ConnectRetry, now + retry));
            }
            return;
        }
        self.fail(Down::ConnectionClosed, now, out);
    }

    // --- Timers ------------------------------------------------------------------------------

    fn timer(&mut self, timer: Timer, now: Instant, out: &mut Out) {
        match timer {
            Timer::IdleHold => {
                if self.started && self.idle_hold {
                    self.begin(now, out); // AutomaticStart
                }
            }
            Timer::ConnectRetry => {
                if !self.started || self.idle_hold || self.cfg.passive {
                    return;
                }
                if self.conns.iter().any(|c| c.state >= ConnState::DelayOpen) {
                    return;
                }
                // Abandon the attempt still connecting and try again.
                for id in self.conn_ids() {
                    self.drop_conn(id, None, out);
                }
                self.connect(now, out);
            }
            Timer::DelayOpen(id) => {
                if let Some(i) = self
                    .index(id)
                    .filter(|&i| self.conns[i].state == ConnState::DelayOpen)
                {
                    self.send_open(i, now, out);
                    self.conns[i].state = ConnState::OpenSent;
                    self.conns[i].hold = OPEN_HOLD;
                    out.push(Action::SetTimer(Timer::Hold(id), now + OPEN_HOLD));
                }
            }
            Timer::Hold(id) => {
                let Some(i) = self.index(id) else { return };
                let c = &self.conns[i];
                if c.hold.is_zero() || c.state < ConnState::OpenSent {
                    return;
                }
                // Messages restart the hold timer lazily: re-arm if one arrived since.
                let due = c.last_rx + c.hold;
                if c.state >= ConnState::OpenConfirm && due > now {
                    out.push(Action::SetTimer(Timer::Hold(id), due));
                    return;
                }
                let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new());
                self.refuse(id, n, now, out);
            }
            Timer::Keepalive(id) => {
                let Some(i) = self.index(id) else { return };
                let c = &mut self.conns[i];
                if c.keepalive.is_zero() || c.state < ConnState::OpenConfirm {
                    return;
                }
                // Armed at a jittered 0.75..1.0 of the keepalive time after the last send (RFC
                // 4271 section 10). A message sent since (an UPDATE) restarted it (section
                // 8.2.2, Established): re-arm from that send instead of sending.
                let keepalive = c.keepalive;
                let last_tx = c.last_tx;
                if last_tx + keepalive.mul_f64(0.75).max(MIN_KEEPALIVE_INTERVAL) > now {
                    let next = self.keepalive_interval(keepalive);
                    out.push(Action::SetTimer(Timer::Keepalive(id), last_tx + next));
                    return;
                }
                self.conns[i].last_tx = now;
                out.push(Action::Send(id, keepalive_bytes()));
                let next = self.keepalive_interval(keepalive);
                out.push(Action::SetTimer(Timer::Keepalive(id), now + next));
            }
        }
    }

    /// The time to the next KEEPALIVE: jittered (RFC 4271 section 10), but never below one
    /// second (section 4.4: not more often than one per second).
    fn keepalive_interval(&mut self, keepalive: Duration) -> Duration {
        self.jitter.apply(keepalive).max(MIN_KEEPALIVE_INTERVAL)
    }

    // --- Messages ----------------------------------------------------------------------------

    fn data(&mut self, id: ConnId, bytes: &[u8], now: Instant, out: &mut Out) {
        let Some(i) = self.index(id) else { return };
        self.conns[i].rx.extend_from_slice(bytes);
        loop {
            // Re-find the connection each round: handling a message may drop it.
            let Some(i) = self.index(id) else { return };
            let conn = &mut self.conns[i];
            let ctx = conn.rx_ctx();
            let len = match wire::frame_len(&conn.rx, &ctx) {
                Ok(Some(len)) => len,
                Ok(None) => return,
                Err(e) => {
                    return self.refuse(id, Notification::new(e.code, e.subcode, e.data), now, out);
                }
            };
            let frame = conn.rx.split_to(len);
            conn.last_rx = now;
            match wire::decode(&frame, &ctx) {
                Ok(msg) => self.message(id, msg, now, out),
                Err(e) => {
                    return self.refuse(id, Notification::new(e.code, e.subcode, e.data), now, out);
                }
            }
        }
    }

    fn fsm_error(&mut self, id: ConnId, state: ConnState, now: Instant, out: &mut Out) {
        let sub = match state {
            ConnState::OpenSent => fsm_error::OPEN_SENT,
            ConnState::OpenConfirm => fsm_error::OPEN_CONFIRM,
            ConnState::Established => fsm_error::ESTABLISHED,
            _ => fsm_error::UNSPECIFIED,
        };
        self.refuse(id, Notification::new(code::FSM, sub, Vec::new()), now, out);
    }

    fn message(&mut self, id: ConnId, msg: Message, now: Instant, out: &mut Out) {
        let Some(i) = self.index(id) else { return };
        let state = self.conns[i].state;
        match (state, msg) {
            (_, Message::Notification(n)) => self.notification_received(id, n, now, out),
            (ConnState::DelayOpen | ConnState::OpenSent, Message::Open(open)) => {
                self.open_received(i, open, now, out)
            }
            (ConnState::OpenConfirm, Message::Keepalive) => self.establish(i, now, out),
            (ConnState::Established, Message::Keepalive) => {}
            (ConnState::Established, Message::Update(u)) => out.push(Action::Update(u)),
            (ConnState::Established, Message::RouteRefresh(rr)) => {
                // RFC 7313 section 5: unknown subtypes are ignored; so is a refresh the peer
                // had no right to send, or for a family not negotiated (RFC 2918 section 4).
                let allowed = self.conns[i].negotiated.as_ref().is_some_and(|n| {
                    n.route_refresh
                        && wire::Family::from_afi_safi(rr.afi, rr.safi)
                            .is_some_and(|f| n.families.contains(&f))
                });
                if allowed && !matches!(rr.subtype, RouteRefreshSubtype::Other(_)) {
                    out.push(Action::RouteRefresh(rr));
                }
            }
            (state, _) => self.fsm_error(id, state, now, out),
        }
    }

    fn notification_received(&mut self, id: ConnId, n: Notification, now: Instant, out: &mut Out) {
        let Some(i) = self.index(id) else { return };
        if self.conns[i].state <= ConnState::OpenConfirm && n.code == code::OPEN_MESSAGE {
            match n.subcode {
                // RFC 5492 section 5: the data lists the capabilities that made the peer send
                // it. Those that are ours the peer cannot take: retry without them. One we did
                // not send is a capability the peer requires; leaving ours alone is all we can
                // do about it.
                subcode::UNSUPPORTED_CAPABILITY => {
                    let ours = self.conns[i]
                        .our_open
                        .as_ref()
                        .map(|o| o.capabilities.as_slice())
                        .unwrap_or(&[]);
                    for c in negotiate::refused_capabilities(&n.data, ours) {
                        if !self.refused.contains(&c) {
                            self.refused.push(c);
                        }
                    }
                }
                // RFC 5492 section 3: the peer does not support capabilities at all.
                subcode::UNSUPPORTED_OPTIONAL_PARAMETER => self.no_capabilities = true,
                _ => {}
            }
        }
        self.conn_failed(id, None, Down::NotificationReceived(n), now, out);
    }

    /// The peer's OPEN, in OpenSent or with DelayOpen running.
    fn open_received(&mut self, i: usize, open: wire::Open, now: Instant, out: &mut Out) {
        let id = self.conns[i].id;
        if let Err(n) = negotiate::check_open(&self.cfg, &open) {
            return self.refuse(id, n, now, out);
        }
        if !self.resolve_collision(id, open.bgp_id, out) {
            return;
        }
        let Some(i) = self.index(id) else { return };
        if self.conns[i].state == ConnState::DelayOpen {
            // RFC 4271 section 8.2.2, Connect/Active with DelayOpenTimer running: answer with
            // OPEN and KEEPALIVE at once.
            out.push(Action::ClearTimer(Timer::DelayOpen(id)));
            self.send_open(i, now, out);
        }
        let ours = self.conns[i]
            .our_open
            .clone()
            .unwrap_or_else(|| self.cfg.open(&self.refused, self.no_capabilities));
        let negotiated = match negotiate::negotiate(&ours, &open) {
            Ok(n) => n,
            Err(notification) => return self.refuse(id, notification, now, out),
        };
        let hold = Duration::from_secs(u64::from(negotiated.hold_time));
        let keepalive = Duration::from_secs(u64::from(negotiated.keepalive));
        let conn = &mut self.conns[i];
        conn.negotiated = Some(negotiated);
        conn.state = ConnState::OpenConfirm;
        conn.hold = hold;
        conn.keepalive = keepalive;
        conn.last_tx = now;
        out.push(Action::Send(id, keepalive_bytes()));
        if hold.is_zero() {
            out.push(Action::ClearTimer(Timer::Hold(id)));
        } else {
            out.push(Action::SetTimer(Timer::Hold(id), now + hold));
            let ka = self.keepalive_interval(keepalive);
            out.push(Action::SetTimer(Timer::Keepalive(id), now + ka));
        }
    }

    /// RFC 4271 section 6.8 on an OPEN received on `id` from a peer with identifier
    /// `peer_id`: of two connections, the one opened by the side with the higher BGP
    /// Identifier survives. Returns whether `id` survives.
    fn resolve_collision(
        &mut self,
        id: ConnId,
        peer_id: std::net::Ipv4Addr,
        out: &mut Out,
    ) -> bool {
        let Some(other) = self
            .conns
            .iter()
            .find(|c| c.id != id)
            .map(|c| (c.id, c.state))
        else {
            return true;
        };
        if other.1 == ConnState::Connecting {
            self.drop_conn(other.0, None, out);
            return true;
        }
        let (local, remote) = (u32::from(self.cfg.local_id), u32::from(peer_id));
        // RFC 6286 section 2.3: with equal identifiers (possible between ASes), the connection
        // opened by the speaker with the larger AS number survives. Without this both sides
        // would keep the connection they opened and close the other.
        let keep_inbound = if local == remote {
            self.cfg.local_as < self.cfg.peer_as
        } else {
            local < remote
        };
        let loser = if id.inbound == keep_inbound {
            other.0
        } else {
            id
        };
        let n = Notification::new(
            code::CEASE,
            cease::CONNECTION_COLLISION_RESOLUTION,
            Vec::new(),
        );
        self.drop_conn(loser, Some(&n), out);
        loser != id
    }

    fn establish(&mut self, i: usize, now: Instant, out: &mut Out) {
        let id = self.conns[i].id;
        self.conns[i].state = ConnState::Established;
        self.established_at = Some(now);
        // Any other connection still negotiating loses to the Established one.
        let others: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.id != id)
            .map(|c| c.id)
            .collect();
        let n = Notification::new(
            code::CEASE,
            cease::CONNECTION_COLLISION_RESOLUTION,
            Vec::new(),
        );
        for other in others {
            self.drop_conn(other, Some(&n), out);
        }
        if let Some(negotiated) = self
            .index(id)
            .and_then(|i| self.conns[i].negotiated.clone())
        {
            out.push(Action::Established(Box::new(negotiated)));
        }
    }
}

/// RFC 4271 section 4.4: KEEPALIVE messages MUST NOT be sent more often than one per second.
const MIN_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// The context for OPEN messages: nothing is negotiated yet.
const OPEN_CTX: wire::Ctx = wire::Ctx {
    as4: false,
    add_path: wire::AddPath {
        ipv4_unicast: false,
        ipv6_unicast: false,
    },
    extended_message: false,
};

fn keepalive_bytes() -> Bytes {
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&[0, 19, 4]);
    Bytes::from(b)
}

//! The task that drives one peer's [`Session`]: it turns socket activity and timer deadlines
//! into [`Event`]s and carries out the [`Action`]s.

use super::conn_io::{ConnEvent, ConnIo};
use super::counters::{CounterCells, FrameCounter};
use super::{PeerEvent, PeerEventKind, PeerSpec};
use crate::fsm::{Action, ConnId, Event, Session, Stop, Timer};
use crate::transport::{self, ConnectOptions, TransportError};
use crate::wire::{Family, Update};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

/// Commands to a peer task.
#[derive(Debug)]
pub(crate) enum PeerCmd {
    Start,
    Stop(Stop),
    Accepted(TcpStream),
    RequestRefresh(Family),
}

/// Stop taking routes for a peer with this much unwritten: it is not reading.
const WRITE_HIGH_WATER: usize = 4 << 20;

pub(crate) struct PeerTask {
    spec: PeerSpec,
    session: Session,
    conns: HashMap<ConnId, ConnIo>,
    connecting: HashMap<ConnId, JoinHandle<()>>,
    timers: HashMap<Timer, Instant>,
    next_inbound: u32,
    conn_tx: mpsc::Sender<ConnEvent>,
    conn_rx: mpsc::Receiver<ConnEvent>,
    to_router: mpsc::Sender<PeerEvent>,
    /// Connect attempts that timed out in a row, for the MD5 hint.
    timeouts: u32,
    /// Shared with the router, which reports them.
    counters: Arc<CounterCells>,
}

impl PeerTask {
    pub fn new(
        spec: PeerSpec,
        to_router: mpsc::Sender<PeerEvent>,
        counters: Arc<CounterCells>,
    ) -> Self {
        let (conn_tx, conn_rx) = mpsc::channel(16);
        PeerTask {
            session: Session::new(spec.session.clone()),
            spec,
            conns: HashMap::new(),
            connecting: HashMap::new(),
            timers: HashMap::new(),
            next_inbound: 0,
            conn_tx,
            conn_rx,
            to_router,
            timeouts: 0,
            counters,
        }
    }

    fn established_queue_ok(&self) -> bool {
        self.session.negotiated().is_some()
            && self.conns.values().all(|c| c.queued() < WRITE_HIGH_WATER)
    }

    /// Drives the session until the speaker drops the peer, inside a `peer` span (`peer`, the
    /// address, and `peer_name`: `name` would clash with the span's own name in JSON logs), so
    /// that every line logged for it says which peer it is about.
    pub async fn run(self, ctl: mpsc::Receiver<PeerCmd>, routes: mpsc::Receiver<Vec<Update>>) {
        let span =
            tracing::info_span!("peer", peer = %self.spec.address, peer_name = %self.spec.name);
        self.drive(ctl, routes).instrument(span).await
    }

    async fn drive(
        mut self,
        mut ctl: mpsc::Receiver<PeerCmd>,
        mut routes: mpsc::Receiver<Vec<Update>>,
    ) {
        loop {
            let deadline = self.timers.values().min().copied();
            let sleep = tokio::time::sleep_until(
                deadline
                    .map(tokio::time::Instant::from_std)
                    .unwrap_or_else(|| {
                        tokio::time::Instant::now() + std::time::Duration::from_secs(3600)
                    }),
            );
            let take_routes = self.established_queue_ok();
            tokio::select! {
                biased;
                Some(ev) = self.conn_rx.recv() => self.conn_event(ev).await,
                cmd = ctl.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => {
                        // The speaker dropped us: leave politely.
                        self.step(Event::Stop(Stop::Deconfigured)).await;
                        return;
                    }
                },
                Some(updates) = routes.recv(), if take_routes => self.send_updates(&updates).await,
                _ = sleep, if deadline.is_some() => self.fire_timers().await,
            }
        }
    }

    async fn command(&mut self, cmd: PeerCmd) {
        match cmd {
            PeerCmd::Start => self.step(Event::Start).await,
            PeerCmd::Stop(stop) => self.step(Event::Stop(stop)).await,
            PeerCmd::Accepted(stream) => {
                let id = ConnId::inbound(self.next_inbound);
                self.next_inbound = self.next_inbound.wrapping_add(1);
                self.conns
                    .insert(id, ConnIo::start(id, stream, self.conn_tx.clone()));
                self.step(Event::Accepted(id)).await;
            }
            PeerCmd::RequestRefresh(family) => {
                match self.session.request_route_refresh(family, Instant::now()) {
                    Ok(actions) => self.execute(actions).await,
                    Err(e) => {
                        debug!(peer = %self.spec.address, error = %e, "route refresh not sent")
                    }
                }
            }
        }
    }

    async fn send_updates(&mut self, updates: &[Update]) {
        match self.session.send_updates(updates, Instant::now()) {
            Ok(actions) => {
                self.counters.updates_sent(updates);
                self.execute(actions).await
            }
            Err(e) => warn!(peer = %self.spec.address, error = %e, "UPDATEs not sent"),
        }
    }

    async fn conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Connected(id, stream) => {
                self.connecting.remove(&id);
                self.timeouts = 0;
                self.conns
                    .insert(id, ConnIo::start(id, stream, self.conn_tx.clone()));
                self.step(Event::Connected(id)).await;
            }
            ConnEvent::ConnectFailed(id, why, timed_out) => {
                self.connecting.remove(&id);
                self.timeouts = if timed_out { self.timeouts + 1 } else { 0 };
                if timed_out && self.spec.md5.is_some() && self.timeouts >= 2 {
                    self.md5_hint();
                } else {
                    debug!(peer = %self.spec.address, %why, "connect failed");
                }
                self.step(Event::ConnectFailed(id)).await;
            }
            ConnEvent::Data(id, bytes) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    self.counters.received(c.rx_frames.feed(&bytes));
                }
                self.step(Event::Data(id, &bytes)).await
            }
            ConnEvent::Closed(id, why) => {
                debug!(peer = %self.spec.address, conn = %id, why = why.as_deref().unwrap_or("closed by peer"), "connection closed");
                self.step(Event::Closed(id)).await;
            }
        }
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            self.timers.remove(&t);
            self.step(Event::Timer(t)).await;
        }
    }

    async fn step(&mut self, event: Event<'_>) {
        let actions = self.session.handle(event, Instant::now());
        self.execute(actions).await;
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect(id) => self.connect(id),
                Action::Send(id, bytes) => {
                    if let Some(c) = self.conns.get(&id) {
                        self.counters.sent(FrameCounter::whole(&bytes));
                        c.send(bytes);
                    }
                }
                Action::Close(id) => {
                    if let Some(c) = self.conns.remove(&id) {
                        c.close();
                    }
                    if let Some(task) = self.connecting.remove(&id) {
                        task.abort();
                    }
                }
                Action::SetTimer(t, at) => {
                    self.timers.insert(t, at);
                }
                Action::ClearTimer(t) => {
                    self.timers.remove(&t);
                }
                Action::StateChanged { from, to } => {
                    info!(peer = %self.spec.address, name = %self.spec.name, %from, %to, "BGP state");
                    self.report(PeerEventKind::State { from, to }).await;
                }
                Action::Established(negotiated) => {
                    // The session closed every other connection before reporting this.
                    let local = self.conns.values().find_map(|c| c.local);
                    info!(peer = %self.spec.address, hold = negotiated.hold_time, families = ?negotiated.families, "session established");
                    self.counters.established();
                    self.report(PeerEventKind::Established { negotiated, local })
                        .await;
                }
                Action::Down(down) => {
                    info!(peer = %self.spec.address, reason = %down, "session down");
                    self.report(PeerEventKind::Down(down)).await;
                }
                Action::Update(u) => {
                    self.counters.update_received(&u);
                    self.report(PeerEventKind::Update(u)).await
                }
                Action::RouteRefresh(rr) => self.report(PeerEventKind::RouteRefresh(rr)).await,
            }
        }
    }

    async fn report(&mut self, kind: PeerEventKind) {
        // The router outlives its peers; if it is gone we are shutting down anyway.
        let _ = self
            .to_router
            .send(PeerEvent {
                peer: self.spec.address,
                kind,
            })
            .await;
    }

    fn connect(&mut self, id: ConnId) {
        let opts = ConnectOptions {
            peer: SocketAddr::new(self.spec.address, self.spec.port),
            local: self.spec.local_address,
            md5: self.spec.md5.clone(),
            ttl: self.spec.ttl,
            // An attempt must end before the ConnectRetryTimer (at least 0.75 of its base, with
            // jitter) abandons it, or a silent peer (an MD5 mismatch) would never be reported
            // as one.
            timeout: self
                .spec
                .connect_timeout
                .min(self.spec.session.connect_retry.mul_f64(0.7)),
        };
        let tx = self.conn_tx.clone();
        let task = tokio::spawn(async move {
            let ev = match transport::connect(&opts).await {
                Ok(stream) => ConnEvent::Connected(id, stream),
                Err(e) => ConnEvent::ConnectFailed(
                    id,
                    e.to_string(),
                    matches!(e, TransportError::Timeout { .. }),
                ),
            };
            let _ = tx.send(ev).await;
        });
        self.connecting.insert(id, task);
    }

    /// A peer with MD5 whose connects keep timing out most likely has a different password:
    /// the kernel drops badly signed segments without a word, so say so, with its counters.
    fn md5_hint(&self) {
        let counters = transport::tcp_security_counters()
            .map(|c| format!("{c:?}"))
            .unwrap_or_default();
        warn!(
            peer = %self.spec.address,
            attempts = self.timeouts,
            kernel_counters = %counters,
            "TCP MD5 is configured for this peer and the connection keeps timing out: check that both sides use the same password"
        );
    }
}

//! The router task: owns the RIB and the peers, feeds the RIB what the sessions receive and
//! pulls each peer's UPDATEs when its channel has room.

use super::counters::CounterCells;
use super::peer::{PeerCmd, PeerTask};
use super::{
    Command, PeerEvent, PeerEventKind, PeerSpec, PeerStatus, ReceivedRoute, RibSizes, SpeakerEvent,
};
use crate::fsm::{Down, State, Stop};
use crate::rib::{AdvertisedWalk, ImportError, PeerId, Rib, RibPeer, RouteChange, SessionInfo};
use crate::transport::Listener;
use crate::wire::{RouteRefreshSubtype, Update};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Prefixes per batch handed to one peer: large enough to fill UPDATEs, small enough that the
/// router stays responsive while a big table goes out.
const BATCH_PREFIXES: usize = 4096;
/// Changes per batch handed to the dataplane.
const FIB_BATCH: usize = 8192;
/// Export evaluations (prefixes times peers) one slice of the advertised-prefix count may
/// take on the router task, and the most a status query computes on the spot.
const ADVERTISED_BUDGET: usize = 50_000;
/// The shutdown communication (RFC 9003) a peer disabled through the API is sent.
const DISABLED_MESSAGE: &str = "disabled by an operator";

pub(super) struct PeerEntry {
    pub spec: PeerSpec,
    pub id: PeerId,
    pub ctl: mpsc::Sender<PeerCmd>,
    pub routes: mpsc::Sender<Vec<Update>>,
    pub task: JoinHandle<()>,
    pub state: State,
    pub since: SystemTime,
    pub last_error: Option<String>,
    pub negotiated: Option<Box<crate::fsm::Negotiated>>,
    /// Whether the current session negotiated graceful restart (both sides advertised it).
    pub graceful: bool,
    /// Counts graceful restarts, so that an old restart timer is recognised.
    pub gr_epoch: u64,
    /// Turned off by an operator ([`super::Speaker::set_enabled`]).
    pub enabled: bool,
    pub counters: Arc<CounterCells>,
}

pub(super) enum Internal {
    RestartTimer(IpAddr, u64),
}

pub(super) struct Router {
    pub listeners: Vec<Arc<Listener>>,
    pub peers: HashMap<IpAddr, PeerEntry>,
    pub rib: Rib,
    pub events: broadcast::Sender<SpeakerEvent>,
    pub peer_tx: mpsc::Sender<PeerEvent>,
    pub internal_tx: mpsc::Sender<Internal>,
    pub fib: Option<mpsc::Sender<Vec<RouteChange>>>,
    /// End-of-RIB events held until the dataplane has taken every change before them: a
    /// listener that starts writing the kernel on End-of-RIB must find those changes queued.
    pub pending_eor: Vec<SpeakerEvent>,
    /// This node's own prefixes, one Loc-RIB path each (for [`RibSizes::paths`]).
    pub originated: HashSet<IpNet>,
    /// Best-route changes for watchers ([`super::Speaker::subscribe_best_routes`]).
    pub best_routes: broadcast::Sender<Arc<[RouteChange]>>,
    pub advertised: Advertised,
}

/// Prefixes advertised per peer for status queries: the last finished count, the walk
/// refreshing it a slice at a time ([`AdvertisedWalk`]), and whether routing changed since
/// the last walk began.
#[derive(Default)]
pub(super) struct Advertised {
    counts: HashMap<PeerId, usize>,
    walk: Option<AdvertisedWalk>,
    changed: bool,
}

/// Copies a batch of the change stream to the watchers, if there are any: with none, the
/// stream costs nothing more; a watcher that does not read loses batches (the channel is
/// bounded and lossy), never holds up the router.
fn publish_best_routes(tx: &broadcast::Sender<Arc<[RouteChange]>>, batch: &[RouteChange]) {
    if tx.receiver_count() > 0 && !batch.is_empty() {
        let _ = tx.send(Arc::from(batch));
    }
}

impl Router {
    pub async fn run(
        mut self,
        mut cmd: mpsc::Receiver<Command>,
        mut from_peers: mpsc::Receiver<PeerEvent>,
        mut internal: mpsc::Receiver<Internal>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                c = cmd.recv() => match c {
                    Some(Command::Shutdown(message, done)) => {
                        self.shutdown(message).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Abandon(done)) => {
                        self.abandon().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c).await,
                    None => {
                        self.shutdown(None).await;
                        return;
                    }
                },
                Some(ev) = from_peers.recv() => {
                    self.peer_event(ev).await;
                    // Take what else is queued before the export work, so a burst of UPDATEs
                    // is decided once.
                    while let Ok(ev) = from_peers.try_recv() {
                        self.peer_event(ev).await;
                    }
                    self.advertised.changed = true;
                }
                Some(i) = internal.recv() => {
                    self.internal(i);
                    self.advertised.changed = true;
                }
                // The advertised-prefix walk moves on the clock only, so that a burst of
                // UPDATEs is never slowed by more than one slice per tick.
                _ = tick.tick() => self.step_advertised(),
            }
            self.pump();
        }
    }

    /// Brings the advertised counts up to date for a status query: at once when a whole
    /// count fits in [`ADVERTISED_BUDGET`] (a node's table), else by starting a walk that
    /// [`Router::pump`] advances a slice at a time while the query reads the last count.
    fn refresh_advertised(&mut self) {
        if !self.advertised.changed || self.advertised.walk.is_some() {
            return;
        }
        self.advertised.changed = false;
        let up: Vec<PeerId> = self
            .peers
            .values()
            .filter(|e| e.state == State::Established)
            .map(|e| e.id)
            .collect();
        let mut walk = AdvertisedWalk::new(up);
        if walk.cost(&self.rib) <= ADVERTISED_BUDGET {
            self.rib.advertised_step(&mut walk, usize::MAX);
            self.advertised.counts = walk.counts().collect();
        } else {
            self.advertised.walk = Some(walk);
        }
    }

    /// One slice of a running advertised-prefix walk.
    fn step_advertised(&mut self) {
        let Some(walk) = &mut self.advertised.walk else {
            return;
        };
        if self.rib.advertised_step(walk, ADVERTISED_BUDGET) {
            self.advertised.counts = walk.counts().collect();
            self.advertised.walk = None;
        }
    }

    /// Moves routing work forward: the export pass, UPDATEs to every peer with room, changes
    /// to the dataplane if it has room. Never waits.
    fn pump(&mut self) {
        self.rib.run_export_pass();
        for e in self.peers.values() {
            while self.rib.has_updates(e.id) {
                let Ok(permit) = e.routes.try_reserve() else {
                    break;
                };
                match self.rib.take_updates(e.id, BATCH_PREFIXES) {
                    Ok(updates) if !updates.is_empty() => permit.send(updates),
                    Ok(_) => {}
                    Err(err) => {
                        warn!(peer = %e.spec.address, error = %err, "cannot build UPDATEs");
                        break;
                    }
                }
            }
        }
        if let Some(fib) = &self.fib {
            while self.rib.fib_changes_pending() > 0 {
                let Ok(permit) = fib.try_reserve() else { break };
                let batch = self.rib.take_fib_changes(FIB_BATCH);
                publish_best_routes(&self.best_routes, &batch);
                permit.send(batch);
            }
        } else {
            // Nobody installs routes (--dataplane none): the stream only goes to watchers.
            while self.rib.fib_changes_pending() > 0 {
                let batch = self.rib.take_fib_changes(FIB_BATCH);
                publish_best_routes(&self.best_routes, &batch);
            }
        }
        if self.rib.fib_changes_pending() == 0 {
            for ev in self.pending_eor.drain(..) {
                let _ = self.events.send(ev);
            }
        }
    }

    async fn shutdown(&mut self, message: Option<String>) {
        for entry in self.peers.values() {
            let _ = entry
                .ctl
                .send(PeerCmd::Stop(Stop::Shutdown(message.clone())))
                .await;
        }
        for (_, entry) in self.peers.drain() {
            drop(entry.ctl);
            // Give the peer task a moment to write its NOTIFICATION.
            let _ = tokio::time::timeout(Duration::from_secs(2), entry.task).await;
        }
    }

    /// Closes every connection without a NOTIFICATION: to the peers this looks like a restart,
    /// so those that negotiated graceful restart keep our routes (RFC 4724 section 4.2).
    async fn abandon(&mut self) {
        for (_, entry) in self.peers.drain() {
            entry.task.abort();
            let _ = entry.task.await;
        }
    }

    fn status(&self, e: &PeerEntry) -> PeerStatus {
        PeerStatus {
            name: e.spec.name.clone(),
            kind: e.spec.kind.clone(),
            address: e.spec.address,
            port: e.spec.port,
            peer_as: e.spec.session.peer_as,
            state: e.state,
            since: e.since,
            last_error: e.last_error.clone(),
            negotiated: e.negotiated.as_deref().cloned(),
            received: (self.rib.peer_path_count(e.id) + self.rib.peer_filtered_count(e.id))
                as usize,
            accepted: self.rib.peer_path_count(e.id) as usize,
            rr_client: e.spec.routing.rr_client,
            advertised: if e.state == State::Established {
                self.advertised.counts.get(&e.id).copied().unwrap_or(0)
            } else {
                0
            },
            enabled: e.enabled,
            counters: e.counters.snapshot(),
        }
    }

    fn rib_sizes(&self) -> RibSizes {
        let (v4, v6) = self.rib.family_prefix_counts();
        let peer_paths: u64 = self
            .peers
            .values()
            .map(|e| u64::from(self.rib.peer_path_count(e.id)))
            .sum();
        RibSizes {
            v4_prefixes: v4 as u64,
            v6_prefixes: v6 as u64,
            paths: peer_paths + self.originated.len() as u64,
        }
    }

    /// Stops or starts a peer's session on an operator's word; a no-op when it is already so.
    async fn set_enabled(&mut self, addr: IpAddr, enabled: bool) -> bool {
        let Some(e) = self.peers.get_mut(&addr) else {
            return false;
        };
        if e.enabled != enabled {
            e.enabled = enabled;
            let cmd = if enabled {
                info!(peer = %addr, "peer enabled by an operator");
                PeerCmd::Start
            } else {
                info!(peer = %addr, "peer disabled by an operator");
                PeerCmd::Stop(Stop::Shutdown(Some(DISABLED_MESSAGE.into())))
            };
            let _ = e.ctl.send(cmd).await;
        }
        true
    }

    async fn command(&mut self, c: Command) {
        if !matches!(
            c,
            Command::Peers(_)
                | Command::AdjRibIn(..)
                | Command::RoutesPage(..)
                | Command::LongestMatch(..)
                | Command::RibSizes(_)
        ) {
            self.advertised.changed = true;
        }
        match c {
            Command::AddPeer(spec, reply) => {
                let _ = reply.send(self.add_peer(spec).await);
            }
            Command::RemovePeer(addr, reply) => {
                let found = match self.peers.remove(&addr) {
                    Some(entry) => {
                        for l in &self.listeners {
                            let _ = l.set_md5(addr, None);
                        }
                        self.rib.remove_peer(entry.id);
                        // Dropping the control channel makes the task send Cease / Peer
                        // De-configured and end.
                        drop(entry.ctl);
                        true
                    }
                    None => false,
                };
                let _ = reply.send(found);
            }
            Command::Originate(prefixes) => {
                for p in prefixes {
                    self.rib.originate(p, None);
                    self.originated.insert(p);
                }
            }
            Command::Withdraw(prefixes) => {
                for p in prefixes {
                    self.rib.withdraw_local(p);
                    self.originated.remove(&p);
                }
            }
            Command::SetEnabled(addr, enabled, reply) => {
                let found = self.set_enabled(addr, enabled).await;
                let _ = reply.send(found);
            }
            Command::RibSizes(reply) => {
                let _ = reply.send(self.rib_sizes());
            }
            Command::Peers(reply) => {
                self.refresh_advertised();
                let list = self.peers.values().map(|e| self.status(e)).collect();
                let _ = reply.send(list);
            }
            Command::AdjRibIn(addr, reply) => {
                let routes = self.peers.get(&addr).map(|e| {
                    self.rib
                        .routes_from(e.id)
                        .into_iter()
                        .map(|(prefix, p)| ReceivedRoute {
                            prefix,
                            path_id: (p.rx_path_id != 0).then_some(p.rx_path_id),
                            next_hop: p.attrs.next_hop,
                            attrs: Arc::new(p.attrs.attrs.clone()),
                            stale: p.stale,
                        })
                        .collect()
                });
                let _ = reply.send(routes);
            }
            Command::RoutesPage(q, reply) => {
                let _ = reply.send(self.rib.routes_page(q.within, q.after, q.limit));
            }
            Command::LongestMatch(addr, reply) => {
                let _ = reply.send(self.rib.longest_match(addr));
            }
            Command::Refresh(addr, family) => {
                if let Some(e) = self.peers.get(&addr) {
                    let _ = e.ctl.send(PeerCmd::RequestRefresh(family)).await;
                }
            }
            Command::SetRouting(addr, routing, reply) => {
                let found = match self.peers.get_mut(&addr) {
                    Some(e) => {
                        e.spec.routing = routing;
                        let rp = rib_peer(&e.spec);
                        self.rib.update_peer(e.id, rp);
                        if let Some(n) = &e.negotiated {
                            for &family in &n.families {
                                let _ = e.ctl.send(PeerCmd::RequestRefresh(family)).await;
                            }
                        }
                        true
                    }
                    None => false,
                };
                let _ = reply.send(found);
            }
            Command::Accepted(stream, remote) => match self.peers.get(&remote.ip()) {
                Some(e) if !e.enabled => refuse_disabled(stream, remote),
                Some(e) => {
                    let _ = e.ctl.send(PeerCmd::Accepted(stream)).await;
                }
                None => {
                    info!(%remote, "connection from an address that is not a configured peer; closed")
                }
            },
            Command::Shutdown(..) | Command::Abandon(..) => {}
        }
    }

    async fn add_peer(&mut self, spec: PeerSpec) -> Result<(), super::SpeakerError> {
        if self.peers.contains_key(&spec.address) {
            return Err(super::SpeakerError::DuplicatePeer(spec.address));
        }
        for l in self
            .listeners
            .iter()
            .filter(|l| l.local_addr().is_ipv4() == spec.address.is_ipv4())
        {
            l.set_md5(spec.address, spec.md5.as_ref())?;
            l.set_ttl_policy(spec.address, spec.ttl)?;
        }
        let id = self.rib.add_peer(rib_peer(&spec));
        let (ctl_tx, ctl_rx) = mpsc::channel(64);
        let (routes_tx, routes_rx) = mpsc::channel(4);
        let counters = Arc::new(CounterCells::default());
        let task = tokio::spawn(
            PeerTask::new(spec.clone(), self.peer_tx.clone(), counters.clone())
                .run(ctl_rx, routes_rx),
        );
        let _ = ctl_tx.send(PeerCmd::Start).await;
        info!(peer = %spec.address, name = %spec.name, kind = %spec.kind, peer_as = spec.session.peer_as, passive = spec.session.passive, "peer added");
        self.peers.insert(
            spec.address,
            PeerEntry {
                spec,
                id,
                ctl: ctl_tx,
                routes: routes_tx,
                task,
                state: State::Idle,
                since: SystemTime::now(),
                last_error: None,
                negotiated: None,
                graceful: false,
                gr_epoch: 0,
                enabled: true,
                counters,
            },
        );
        Ok(())
    }

    fn internal(&mut self, i: Internal) {
        match i {
            Internal::RestartTimer(addr, epoch) => {
                if let Some(e) = self.peers.get(&addr).filter(|e| e.gr_epoch == epoch) {
                    info!(peer = %addr, "graceful restart time over: stale routes removed");
                    self.rib.restart_timer_expired(e.id);
                }
            }
        }
    }

    async fn peer_event(&mut self, ev: PeerEvent) {
        let addr = ev.peer;
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        match ev.kind {
            PeerEventKind::State { from, to } => {
                e.state = to;
                e.since = SystemTime::now();
                let _ = self.events.send(SpeakerEvent::State {
                    peer: addr,
                    from,
                    to,
                });
            }
            PeerEventKind::Established { negotiated, local } => {
                e.graceful = negotiated.peer_graceful_restart.is_some()
                    && e.spec.session.capabilities.graceful_restart.is_some();
                let session = SessionInfo {
                    bgp_id: negotiated.peer_id,
                    families: negotiated.families.clone(),
                    tx: negotiated.tx,
                    local_address: local.map(|a| a.ip()),
                    peer_graceful_restart: if e.graceful {
                        negotiated.peer_graceful_restart.clone()
                    } else {
                        None
                    },
                    extended_next_hop: negotiated.extended_next_hop,
                };
                e.negotiated = Some(negotiated);
                e.last_error = None;
                e.gr_epoch += 1;
                self.rib.peer_up(e.id, session);
            }
            PeerEventKind::Down(down) => {
                let reason = down.to_string();
                e.last_error = Some(reason.clone());
                // RFC 4724 section 4.2: the routes of a peer that can restart gracefully stay
                // when its session ends without a NOTIFICATION.
                let graceful = e.graceful
                    && !matches!(
                        down,
                        Down::NotificationSent(_) | Down::NotificationReceived(_)
                    );
                let was_up = e.negotiated.take().is_some();
                if was_up {
                    if let Some(restart) = self.rib.peer_down(e.id, graceful) {
                        info!(peer = %addr, restart = ?restart, "peer may be restarting: its routes are kept, marked stale");
                        let tx = self.internal_tx.clone();
                        let epoch = e.gr_epoch;
                        tokio::spawn(async move {
                            tokio::time::sleep(restart).await;
                            let _ = tx.send(Internal::RestartTimer(addr, epoch)).await;
                        });
                    }
                }
                let _ = self.events.send(SpeakerEvent::Down { peer: addr, reason });
            }
            PeerEventKind::Update(u) => {
                if u.worst_action().is_some() {
                    warn!(peer = %addr, errors = ?u.errors, "malformed UPDATE handled per RFC 7606");
                }
                match self.rib.apply_update(e.id, &u) {
                    Ok(imported) => {
                        if let Some(family) = imported.end_of_rib {
                            self.pending_eor
                                .push(SpeakerEvent::EndOfRib { peer: addr, family });
                        }
                    }
                    Err(ImportError::MaxPrefixes { limit, count }) => {
                        warn!(peer = %addr, limit, count, "maximum number of prefixes exceeded: stopping the session");
                        let restart_after = e.spec.routing.max_prefixes_restart;
                        let _ = e
                            .ctl
                            .send(PeerCmd::Stop(Stop::MaxPrefixes { restart_after }))
                            .await;
                    }
                }
                let _ = self.events.send(SpeakerEvent::Routes {
                    peer: addr,
                    update_count: 1,
                });
            }
            PeerEventKind::RouteRefresh(rr) => {
                // A family we do not route is ignored (RFC 2918 section 4 leaves it to us).
                let family = crate::wire::Family::from_afi_safi(rr.afi, rr.safi);
                if let (RouteRefreshSubtype::Request, Some(family)) = (rr.subtype, family) {
                    self.rib.resend(e.id, family);
                }
            }
        }
    }
}

/// Answers a connection from a peer an operator disabled with Cease / Administrative Shutdown
/// (RFC 4486, RFC 9003) and closes it, instead of the bare close of an Idle session: the peer
/// then reports why (not a mere "connection closed") and backs off before trying again, as
/// after any NOTIFICATION. Written by a task of its own so the router never waits on a socket.
fn refuse_disabled(mut stream: tokio::net::TcpStream, remote: std::net::SocketAddr) {
    use crate::wire::notification::cease;
    use tokio::io::AsyncWriteExt;
    let n = crate::wire::Notification::cease_with_message(
        cease::ADMINISTRATIVE_SHUTDOWN,
        DISABLED_MESSAGE,
    );
    let mut buf = bytes::BytesMut::new();
    if crate::wire::encode(
        &crate::wire::Message::Notification(n),
        &Default::default(),
        &mut buf,
    )
    .is_err()
    {
        return;
    }
    info!(%remote, "connection from a disabled peer refused with Administrative Shutdown");
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = stream.write_all(&buf).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}

/// What the RIB needs to know of a peer.
fn rib_peer(spec: &PeerSpec) -> RibPeer {
    let mut rp = RibPeer::new(spec.address, spec.session.peer_as);
    rp.rr_client = spec.routing.rr_client;
    rp.next_hop_mode = spec.routing.next_hop_mode;
    rp.next_hop_v4 = spec.next_hop_self.v4;
    rp.next_hop_v6 = spec.next_hop_self.v6;
    rp.allow_own_as = spec.routing.allow_own_as;
    rp.max_prefixes = spec.routing.max_prefixes;
    rp.filters = spec.routing.filters.clone();
    rp
}

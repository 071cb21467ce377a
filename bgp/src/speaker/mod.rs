//! The tokio side of BGP: one task per peer drives its [`crate::fsm::Session`]; a router task
//! owns the peers, the listeners' dispatch, and the routes.
//!
//! ```text
//!  listener tasks ──accepted socket──▶ router task ──PeerCmd / UPDATEs──▶ peer task ──▶ socket
//!                                        ▲   │                              │
//!                                        │   └──snapshots──▶ API, tests     │
//!                                        └──────────── PeerEvent ◀──────────┘
//! ```
//!
//! Until the RIB exists the router keeps each peer's Adj-RIB-In and sends the prefixes this
//! node originates to every Established peer ([`routes`]). Channels are bounded: a peer that
//! does not read stops receiving routes (its write queue is watched), and a router that falls
//! behind stops the peer tasks from reading their sockets.

mod conn_io;
mod peer;
mod routes;

pub use routes::{NextHopSelf, ReceivedRoute};

use crate::fsm::{Down, Negotiated, PeerConfig, State, Stop};
use crate::transport::{Listener, Md5Key, TransportError, TtlPolicy};
use crate::wire::{Family, RouteRefreshSubtype, Update};
use ipnet::IpNet;
use peer::{PeerCmd, PeerTask};
use routes::AdjRibIn;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// One peer: the session's configuration plus how to reach it.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// For logs and status, e.g. the node name or the BGPPeer name.
    pub name: String,
    /// Calico's peer type for status: "node-to-node mesh", "global", "node specific".
    pub kind: String,
    pub address: IpAddr,
    pub port: u16,
    pub session: PeerConfig,
    /// Source address for our connections (Calico's `sourceAddress: UseNodeIP`).
    pub local_address: Option<IpAddr>,
    pub md5: Option<Md5Key>,
    pub ttl: TtlPolicy,
    pub connect_timeout: Duration,
    pub next_hop_self: NextHopSelf,
}

impl PeerSpec {
    /// A peer at `address` on port 179. The session's jitter seed is mixed with the address,
    /// so that the peers of one speaker do not retry and send keepalives in lockstep.
    pub fn new(address: IpAddr, mut session: PeerConfig) -> Self {
        let octets = match address {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        session.jitter_seed ^=
            u128::from_be_bytes(octets) as u64 ^ (u128::from_be_bytes(octets) >> 64) as u64;
        PeerSpec {
            name: address.to_string(),
            kind: "global".into(),
            address,
            port: crate::transport::BGP_PORT,
            session,
            local_address: None,
            md5: None,
            ttl: TtlPolicy::Default,
            connect_timeout: Duration::from_secs(5),
            next_hop_self: NextHopSelf::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Addresses to listen on; port 0 picks a free port (see [`Speaker::listen_addrs`]).
    pub listen: Vec<SocketAddr>,
}

/// A peer as status output shows it.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub name: String,
    pub kind: String,
    pub address: IpAddr,
    pub port: u16,
    pub peer_as: u32,
    pub state: State,
    /// When the state last changed.
    pub since: SystemTime,
    /// Why the session last went down, or the last connect error.
    pub last_error: Option<String>,
    pub negotiated: Option<Negotiated>,
    pub received: usize,
    pub advertised: usize,
}

/// What subscribers hear about ([`Speaker::subscribe`]); lossy for slow subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeakerEvent {
    State {
        peer: IpAddr,
        from: State,
        to: State,
    },
    Down {
        peer: IpAddr,
        reason: String,
    },
    Routes {
        peer: IpAddr,
        update_count: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("the speaker has stopped")]
    Stopped,
    #[error("peer {0} is already configured")]
    DuplicatePeer(IpAddr),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

enum Command {
    AddPeer(PeerSpec, oneshot::Sender<Result<(), SpeakerError>>),
    RemovePeer(IpAddr, oneshot::Sender<bool>),
    Originate(Vec<IpNet>),
    Withdraw(Vec<IpNet>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    AdjRibIn(IpAddr, oneshot::Sender<Option<Vec<ReceivedRoute>>>),
    Refresh(IpAddr, Family),
    Accepted(TcpStream, SocketAddr),
    Shutdown(Option<String>, oneshot::Sender<()>),
}

/// A handle on a running speaker; cheap to clone.
#[derive(Clone)]
pub struct Speaker {
    cmd: mpsc::Sender<Command>,
    events: broadcast::Sender<SpeakerEvent>,
    listen: Vec<SocketAddr>,
}

impl Speaker {
    /// Binds the listeners and starts the router task.
    pub async fn start(cfg: SpeakerConfig) -> Result<(Speaker, JoinHandle<()>), SpeakerError> {
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let mut listeners = Vec::new();
        for addr in &cfg.listen {
            let l = Arc::new(Listener::bind(*addr)?);
            info!(listen = %l.local_addr(), "BGP listening");
            listeners.push(l);
        }
        let listen: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr()).collect();
        for l in &listeners {
            tokio::spawn(accept_loop(l.clone(), cmd_tx.clone()));
        }
        let (peer_tx, peer_rx) = mpsc::channel(1024);
        let router = Router {
            cfg,
            listeners,
            peers: HashMap::new(),
            originated: BTreeSet::new(),
            events: events.clone(),
            peer_tx,
        };
        let task = tokio::spawn(router.run(cmd_rx, peer_rx));
        Ok((
            Speaker {
                cmd: cmd_tx,
                events,
                listen,
            },
            task,
        ))
    }

    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SpeakerEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(make(tx))
            .await
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Adds a peer and starts its session.
    pub async fn add_peer(&self, spec: PeerSpec) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::AddPeer(spec, tx)).await?
    }

    /// Stops the session (Cease / Peer De-configured) and forgets the peer and its routes.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<bool, SpeakerError> {
        self.ask(|tx| Command::RemovePeer(address, tx)).await
    }

    /// Announces prefixes of this node to every peer.
    pub async fn originate(&self, prefixes: Vec<IpNet>) -> Result<(), SpeakerError> {
        self.cmd
            .send(Command::Originate(prefixes))
            .await
            .map_err(|_| SpeakerError::Stopped)
    }

    pub async fn withdraw(&self, prefixes: Vec<IpNet>) -> Result<(), SpeakerError> {
        self.cmd
            .send(Command::Withdraw(prefixes))
            .await
            .map_err(|_| SpeakerError::Stopped)
    }

    pub async fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.ask(Command::Peers).await
    }

    /// What a peer announced; `None` for an unknown peer.
    pub async fn adj_rib_in(
        &self,
        peer: IpAddr,
    ) -> Result<Option<Vec<ReceivedRoute>>, SpeakerError> {
        self.ask(|tx| Command::AdjRibIn(peer, tx)).await
    }

    pub async fn request_refresh(&self, peer: IpAddr, family: Family) -> Result<(), SpeakerError> {
        self.cmd
            .send(Command::Refresh(peer, family))
            .await
            .map_err(|_| SpeakerError::Stopped)
    }

    /// Stops every session with Cease / Administrative Shutdown and `message`, then the router.
    pub async fn shutdown(&self, message: Option<String>) -> Result<(), SpeakerError> {
        self.ask(|tx| Command::Shutdown(message, tx)).await
    }
}

async fn accept_loop(listener: Arc<Listener>, cmd: mpsc::Sender<Command>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote, _local)) => {
                if cmd.send(Command::Accepted(stream, remote)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // EMFILE and friends: pause rather than spin.
                warn!(listen = %listener.local_addr(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A message from a peer task to the router.
pub(crate) struct PeerEvent {
    pub peer: IpAddr,
    pub kind: PeerEventKind,
}

pub(crate) enum PeerEventKind {
    State {
        from: State,
        to: State,
    },
    Established {
        negotiated: Box<Negotiated>,
        local: Option<SocketAddr>,
    },
    Down(Down),
    Update(Update),
    RouteRefresh(crate::wire::RouteRefresh),
}

struct PeerEntry {
    spec: PeerSpec,
    ctl: mpsc::Sender<PeerCmd>,
    routes: mpsc::Sender<Vec<Update>>,
    task: JoinHandle<()>,
    state: State,
    since: SystemTime,
    last_error: Option<String>,
    negotiated: Option<Box<Negotiated>>,
    local: Option<SocketAddr>,
    adj_in: AdjRibIn,
    advertised: usize,
}

struct Router {
    cfg: SpeakerConfig,
    listeners: Vec<Arc<Listener>>,
    peers: HashMap<IpAddr, PeerEntry>,
    originated: BTreeSet<IpNet>,
    events: broadcast::Sender<SpeakerEvent>,
    peer_tx: mpsc::Sender<PeerEvent>,
}

impl Router {
    async fn run(
        mut self,
        mut cmd: mpsc::Receiver<Command>,
        mut from_peers: mpsc::Receiver<PeerEvent>,
    ) {
        loop {
            tokio::select! {
                c = cmd.recv() => match c {
                    Some(Command::Shutdown(message, done)) => {
                        self.shutdown(message).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c).await,
                    None => {
                        self.shutdown(None).await;
                        return;
                    }
                },
                Some(ev) = from_peers.recv() => self.peer_event(ev).await,
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

    async fn command(&mut self, c: Command) {
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
                let new: Vec<IpNet> = prefixes
                    .into_iter()
                    .filter(|p| self.originated.insert(*p))
                    .collect();
                self.advertise_all(&new, false).await;
            }
            Command::Withdraw(prefixes) => {
                let gone: Vec<IpNet> = prefixes
                    .into_iter()
                    .filter(|p| self.originated.remove(p))
                    .collect();
                self.advertise_all(&gone, true).await;
            }
            Command::Peers(reply) => {
                let list = self
                    .peers
                    .values()
                    .map(|e| PeerStatus {
                        name: e.spec.name.clone(),
                        kind: e.spec.kind.clone(),
                        address: e.spec.address,
                        port: e.spec.port,
                        peer_as: e.spec.session.peer_as,
                        state: e.state,
                        since: e.since,
                        last_error: e.last_error.clone(),
                        negotiated: e.negotiated.as_deref().cloned(),
                        received: e.adj_in.len(),
                        advertised: e.advertised,
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::AdjRibIn(addr, reply) => {
                let _ = reply.send(self.peers.get(&addr).map(|e| e.adj_in.routes()));
            }
            Command::Refresh(addr, family) => {
                if let Some(e) = self.peers.get(&addr) {
                    let _ = e.ctl.send(PeerCmd::RequestRefresh(family)).await;
                }
            }
            Command::Accepted(stream, remote) => match self.peers.get(&remote.ip()) {
                Some(e) => {
                    let _ = e.ctl.send(PeerCmd::Accepted(stream)).await;
                }
                None => {
                    info!(%remote, "connection from an address that is not a configured peer; closed")
                }
            },
            Command::Shutdown(..) => {}
        }
    }

    async fn add_peer(&mut self, spec: PeerSpec) -> Result<(), SpeakerError> {
        if self.peers.contains_key(&spec.address) {
            return Err(SpeakerError::DuplicatePeer(spec.address));
        }
        for l in self
            .listeners
            .iter()
            .filter(|l| l.local_addr().is_ipv4() == spec.address.is_ipv4())
        {
            l.set_md5(spec.address, spec.md5.as_ref())?;
            l.set_ttl_policy(spec.address, spec.ttl)?;
        }
        let (ctl_tx, ctl_rx) = mpsc::channel(64);
        let (routes_tx, routes_rx) = mpsc::channel(64);
        let task =
            tokio::spawn(PeerTask::new(spec.clone(), self.peer_tx.clone()).run(ctl_rx, routes_rx));
        let _ = ctl_tx.send(PeerCmd::Start).await;
        info!(peer = %spec.address, name = %spec.name, kind = %spec.kind, peer_as = spec.session.peer_as, passive = spec.session.passive, "peer added");
        self.peers.insert(
            spec.address,
            PeerEntry {
                spec,
                ctl: ctl_tx,
                routes: routes_tx,
                task,
                state: State::Idle,
                since: SystemTime::now(),
                last_error: None,
                negotiated: None,
                local: None,
                adj_in: AdjRibIn::default(),
                advertised: 0,
            },
        );
        Ok(())
    }

    /// Sends announcements (or withdrawals) of `prefixes` to every Established peer.
    async fn advertise_all(&mut self, prefixes: &[IpNet], withdraw: bool) {
        if prefixes.is_empty() {
            return;
        }
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            self.advertise(addr, prefixes, withdraw, false).await;
        }
    }

    async fn advertise(
        &mut self,
        addr: IpAddr,
        prefixes: &[IpNet],
        withdraw: bool,
        end_of_rib: bool,
    ) {
        let local_as = self.cfg.local_as;
        let Some(e) = self.peers.get_mut(&addr) else {
            return;
        };
        let Some(negotiated) = e.negotiated.as_deref() else {
            return;
        };
        let (mut updates, unsendable) = match routes::updates_for_peer(
            prefixes,
            withdraw,
            local_as,
            negotiated,
            e.local,
            e.spec.next_hop_self,
        ) {
            Ok(x) => x,
            Err(err) => {
                warn!(peer = %addr, error = %err, "cannot build UPDATEs");
                return;
            }
        };
        if !unsendable.is_empty() {
            warn!(peer = %addr, prefixes = ?unsendable, "no next hop of the right family or family not negotiated; not sent");
        }
        if end_of_rib {
            updates.extend(negotiated.families.iter().map(|&f| Update::end_of_rib(f)));
        }
        let count: usize = prefixes.len() - unsendable.len();
        if withdraw {
            e.advertised = e.advertised.saturating_sub(count);
        } else {
            e.advertised += count;
        }
        if !updates.is_empty() {
            let _ = e.routes.send(updates).await;
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
                e.negotiated = Some(negotiated);
                e.local = local;
                e.last_error = None;
                e.advertised = 0;
                let all: Vec<IpNet> = self.originated.iter().copied().collect();
                // The initial table, then End-of-RIB (RFC 4724 section 2).
                self.advertise(addr, &all, false, true).await;
            }
            PeerEventKind::Down(down) => {
                let reason = down.to_string();
                e.last_error = Some(reason.clone());
                e.negotiated = None;
                e.adj_in = AdjRibIn::default();
                e.advertised = 0;
                let _ = self.events.send(SpeakerEvent::Down { peer: addr, reason });
            }
            PeerEventKind::Update(u) => {
                e.adj_in.apply(&u);
                if u.treat_as_withdraw() || u.worst_action().is_some() {
                    warn!(peer = %addr, errors = ?u.errors, "malformed UPDATE handled per RFC 7606");
                }
                let _ = self.events.send(SpeakerEvent::Routes {
                    peer: addr,
                    update_count: 1,
                });
            }
            PeerEventKind::RouteRefresh(rr) => {
                if rr.subtype == RouteRefreshSubtype::Request {
                    let all: Vec<IpNet> = self.originated.iter().copied().collect();
                    self.advertise(addr, &all, false, false).await;
                }
            }
        }
    }
}

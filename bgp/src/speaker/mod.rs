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
//! The router owns the [`crate::rib::Rib`]: it hands it what the sessions receive and pulls
//! each peer's UPDATEs when that peer's channel has room. Channels are bounded: a peer that
//! does not read stops taking UPDATEs (its write queue is watched) and only its pending set in
//! the RIB grows, bounded by the table; a router that falls behind stops the peer tasks from
//! reading their sockets.

mod conn_io;
mod counters;
mod peer;
mod router;

pub use counters::PeerCounters;

use crate::fsm::{Down, Negotiated, PeerConfig, State};
use crate::rib::{NextHopMode, Rib, RibConfig, RouteChange, RouteView};
use crate::transport::{Listener, Md5Key, TransportError, TtlPolicy};
use crate::wire::{Attributes, Family, Update};
use ipnet::IpNet;
use router::Router;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Next hops this node puts on routes it sends: configured ones, else the session's own
/// address (next hop self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextHopSelf {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// How routes to and from one peer are treated (see [`crate::rib::RibPeer`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerRouting {
    pub rr_client: bool,
    pub next_hop_mode: NextHopMode,
    pub allow_own_as: u8,
    pub max_prefixes: Option<u32>,
    /// Restart a session stopped for too many prefixes after this long.
    pub max_prefixes_restart: Option<Duration>,
    /// The session's BGPFilters, in order.
    pub filters: Vec<crate::rib::policy::Filter>,
}

/// One path a peer announced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceivedRoute {
    pub prefix: IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_id: Option<u32>,
    pub next_hop: IpAddr,
    pub attrs: Arc<Attributes>,
    /// Kept by graceful restart while the peer is away.
    pub stale: bool,
}

/// One peer: the session's configuration plus how to reach it.
#[derive(Debug, Clone, PartialEq)]
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
    pub routing: PeerRouting,
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
            routing: PeerRouting::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Addresses to listen on; port 0 picks a free port (see [`Speaker::listen_addrs`]).
    pub listen: Vec<SocketAddr>,
    /// Set to be a route reflector with this cluster id.
    pub cluster_id: Option<Ipv4Addr>,
    /// The largest ECMP group handed to the dataplane.
    pub max_ecmp: usize,
    /// Where the change stream of best routes goes (the dataplane); `None` drops it.
    pub fib: Option<mpsc::Sender<Vec<RouteChange>>>,
    /// Communities for this node's own routes (BGPConfiguration `prefixAdvertisements`).
    pub advertisements: crate::rib::policy::Advertisements,
    /// This node's own addresses: a learned path whose next hop is one of them points back
    /// at this node and is not used ([`Rib::set_local_addresses`]).
    pub local_addresses: Vec<IpAddr>,
}

impl SpeakerConfig {
    pub fn new(local_as: u32, router_id: Ipv4Addr, listen: Vec<SocketAddr>) -> Self {
        SpeakerConfig {
            local_as,
            router_id,
            listen,
            cluster_id: None,
            max_ecmp: 16,
            fib: None,
            advertisements: Default::default(),
            local_addresses: Vec::new(),
        }
    }
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
    /// Paths the peer sent, before import policy: `accepted` plus what import turned away
    /// in this session (stale paths of a graceful restart count until they go).
    pub received: usize,
    /// The peer's paths in the Loc-RIB: its Adj-RIB-In after import policy.
    pub accepted: usize,
    /// The peer is a route reflector client of ours (RFC 4456).
    pub rr_client: bool,
    pub advertised: usize,
    /// `false` after [`Speaker::set_enabled`] turned the session off: it stays Idle.
    pub enabled: bool,
    /// Kept across session resets, for as long as the peer is configured.
    pub counters: PeerCounters,
}

/// How big the Loc-RIB is; counted without walking the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RibSizes {
    /// Prefixes with at least one path.
    pub v4_prefixes: u64,
    pub v6_prefixes: u64,
    /// Paths of every peer (after import policy) and of this node's own prefixes.
    pub paths: u64,
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
    /// The peer sent its End-of-RIB for `family` (RFC 4724 section 2): its initial table is in.
    EndOfRib {
        peer: IpAddr,
        family: Family,
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

/// Routes read from the router at a time by [`Speaker::routes`].
pub const ROUTES_PAGE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct RoutesQuery {
    within: Option<IpNet>,
    after: Option<IpNet>,
    limit: usize,
}

enum Command {
    AddPeer(PeerSpec, oneshot::Sender<Result<(), SpeakerError>>),
    RemovePeer(IpAddr, oneshot::Sender<bool>),
    Originate(Vec<IpNet>),
    Withdraw(Vec<IpNet>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    AdjRibIn(IpAddr, oneshot::Sender<Option<Vec<ReceivedRoute>>>),
    RoutesPage(RoutesQuery, oneshot::Sender<(Vec<RouteView>, usize)>),
    LongestMatch(IpNet, oneshot::Sender<Option<RouteView>>),
    Refresh(IpAddr, Family),
    SetRouting(IpAddr, PeerRouting, oneshot::Sender<bool>),
    SetEnabled(IpAddr, bool, oneshot::Sender<bool>),
    RibSizes(oneshot::Sender<RibSizes>),
    Accepted(TcpStream, SocketAddr),
    Shutdown(Option<String>, oneshot::Sender<()>),
    Abandon(oneshot::Sender<()>),
}

/// A handle on a running speaker; cheap to clone.
#[derive(Clone)]
pub struct Speaker {
    cmd: mpsc::Sender<Command>,
    events: broadcast::Sender<SpeakerEvent>,
    best_routes: broadcast::Sender<Arc<[RouteChange]>>,
    listen: Vec<SocketAddr>,
}

/// Batches of best-route changes a watcher may fall behind by before it loses some.
const BEST_ROUTE_BATCHES: usize = 16;

impl Speaker {
    /// Binds the listeners and starts the router task.
    pub async fn start(cfg: SpeakerConfig) -> Result<(Speaker, JoinHandle<()>), SpeakerError> {
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let (best_routes, _) = broadcast::channel(BEST_ROUTE_BATCHES);
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
        let (internal_tx, internal_rx) = mpsc::channel(64);
        let mut rib_cfg = RibConfig::new(cfg.local_as, cfg.router_id);
        rib_cfg.cluster_id = cfg.cluster_id;
        rib_cfg.max_ecmp = cfg.max_ecmp;
        rib_cfg.advertisements = cfg.advertisements.clone();
        let mut rib = Rib::new(rib_cfg);
        rib.set_local_addresses(cfg.local_addresses.iter().copied());
        let router = Router {
            fib: cfg.fib.clone(),
            rib,
            listeners,
            peers: HashMap::new(),
            events: events.clone(),
            peer_tx,
            internal_tx,
            pending_eor: Vec::new(),
            originated: Default::default(),
            best_routes: best_routes.clone(),
            advertised: Default::default(),
        };
        let task = tokio::spawn(router.run(cmd_rx, peer_rx, internal_rx));
        Ok((
            Speaker {
                cmd: cmd_tx,
                events,
                best_routes,
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

    /// The best-route change stream (what the dataplane is given), in batches, for watchers;
    /// lossy for slow receivers ([`broadcast::error::RecvError::Lagged`] counts batches).
    pub fn subscribe_best_routes(&self) -> broadcast::Receiver<Arc<[RouteChange]>> {
        self.best_routes.subscribe()
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

    /// Routes in the Loc-RIB within `within` (all for `None`), with every path. Read a page
    /// of [`ROUTES_PAGE`] at a time, so that the router routes between pages however large
    /// the table.
    pub async fn routes(&self, within: Option<IpNet>) -> Result<Vec<RouteView>, SpeakerError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|r: &RouteView| r.prefix);
            let (page, rest) = self.routes_page(within, after, ROUTES_PAGE).await?;
            let done = page.len() >= rest || page.is_empty();
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// One page of [`Speaker::routes`]: at most `limit` routes after `after`, and how many
    /// there are after `after` in all.
    pub async fn routes_page(
        &self,
        within: Option<IpNet>,
        after: Option<IpNet>,
        limit: usize,
    ) -> Result<(Vec<RouteView>, usize), SpeakerError> {
        let q = RoutesQuery {
            within,
            after,
            limit,
        };
        self.ask(|tx| Command::RoutesPage(q, tx)).await
    }

    /// The most specific route containing `addr` (a host prefix), if any.
    pub async fn longest_match(&self, addr: IpNet) -> Result<Option<RouteView>, SpeakerError> {
        self.ask(|tx| Command::LongestMatch(addr, tx)).await
    }

    /// Changes how a peer's routes are treated (filters, next hop mode, ...) without touching
    /// the session: its table is sent again under the new export rules, and the peer is asked
    /// for its routes again (ROUTE-REFRESH, RFC 2918) so the new import rules apply to them.
    /// Returns whether the peer exists.
    pub async fn set_routing(
        &self,
        peer: IpAddr,
        routing: PeerRouting,
    ) -> Result<bool, SpeakerError> {
        self.ask(|tx| Command::SetRouting(peer, routing, tx)).await
    }

    /// Administratively stops (Cease / Administrative Shutdown) or starts a peer's session.
    /// A disabled peer stays Idle (its connections are refused) until it is enabled again;
    /// its counters carry on. Returns whether the peer exists.
    pub async fn set_enabled(&self, peer: IpAddr, enabled: bool) -> Result<bool, SpeakerError> {
        self.ask(|tx| Command::SetEnabled(peer, enabled, tx)).await
    }

    /// Loc-RIB sizes per family and the number of paths; cheap (no table walk).
    pub async fn rib_sizes(&self) -> Result<RibSizes, SpeakerError> {
        self.ask(Command::RibSizes).await
    }

    pub async fn request_refresh(&self, peer: IpAddr, family: Family) -> Result<(), SpeakerError> {
        self.cmd
            .send(Command::Refresh(peer, family))
            .await
            .map_err(|_| SpeakerError::Stopped)
    }

    /// Stops the router and drops every connection without a NOTIFICATION, as a crash would
    /// but at once: peers that negotiated graceful restart keep this node's routes until it is
    /// back (or their restart timer runs out). What an agent does on SIGTERM.
    pub async fn stop_for_restart(&self) -> Result<(), SpeakerError> {
        self.ask(Command::Abandon).await
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

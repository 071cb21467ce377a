//! A deterministic network of speakers for topology tests.
//!
//! Each speaker is what `speaker::router` and `speaker::peer` build for real, minus tokio: one
//! [`Rib`] and one [`Session`] per configured neighbour. Sessions talk through in-memory byte
//! pipes: the bytes of [`Action::Send`] on one end arrive as [`Event::Data`] on the other after
//! [`LATENCY`], [`Action::Connect`] reaches the other speaker's "listener" and becomes
//! [`Event::Accepted`] there and [`Event::Connected`] here, [`Action::Close`] (or a crash)
//! becomes [`Event::Closed`] on the far end. Timers are kept from [`Action::SetTimer`] /
//! [`Action::ClearTimer`] and fire in deadline order on a simulated clock. Everything runs on
//! one thread from one event queue ordered by (time, sequence number), so a run is exactly
//! reproducible.
//!
//! The glue between a session and the RIB is the router's: `Established` → `peer_up`, `Down`
//! after Established → `peer_down(graceful)` (graceful: both sides advertised graceful restart
//! and no NOTIFICATION ended the session) with the restart timer that follows, `Update` →
//! `apply_update` (a max-prefix overrun stops the session, as the router's channel does, as
//! the next event), `RouteRefresh` → `resend`; after every event the speaker is "pumped":
//! export pass, UPDATEs to every Established peer, change stream into the speaker's FIB.
#![allow(dead_code)]

mod look;

pub use look::Msg;

use bytes::Bytes;
use ipnet::IpNet;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tortie_bgp::fsm::{Action, ConnId, Down, Event, GrConfig, PeerConfig, Session, Stop, Timer};
use tortie_bgp::rib::{
    FibRoute, ImportError, NextHopMode, PeerId, Rib, RibConfig, RibPeer, RouteChange, SessionInfo,
};
use tortie_bgp::wire::{AddPathMode, Attributes, Family, Update};

/// One-way delay of every pipe.
pub const LATENCY: Duration = Duration::from_millis(1);
/// How long a connection attempt across a broken link takes to fail.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Prefixes per `take_updates` batch (the router's value).
const BATCH_PREFIXES: usize = 4096;
/// A run that needs more events than this is oscillating.
const MAX_EVENTS: u64 = 200_000;
/// ... or one that keeps the network busy for this long.
const MAX_BUSY: Duration = Duration::from_secs(600);

pub type Sid = usize;

/// A speaker: its AS, its address (also what its peers configure for it) and router id.
#[derive(Debug, Clone)]
pub struct SpeakerCfg {
    pub name: String,
    pub asn: u32,
    pub address: Ipv4Addr,
    pub router_id: Ipv4Addr,
    pub cluster_id: Option<Ipv4Addr>,
    pub max_ecmp: usize,
    /// Graceful restart advertised with this restart time (seconds).
    pub graceful_restart: Option<u16>,
    /// The F bit of the graceful restart capability (true unless a test says otherwise).
    pub forwarding_preserved: bool,
}

impl SpeakerCfg {
    pub fn new(name: &str, asn: u32, address: Ipv4Addr) -> Self {
        SpeakerCfg {
            name: name.to_string(),
            asn,
            address,
            router_id: address,
            cluster_id: None,
            max_ecmp: 16,
            graceful_restart: None,
            forwarding_preserved: true,
        }
    }
}

/// One side of a configured session: how `a` treats its neighbour `b`.
#[derive(Debug, Clone, Default)]
pub struct NbrCfg {
    /// The neighbour is our route reflector client.
    pub rr_client: bool,
    /// `None`: Calico's rule, the side with the higher address waits.
    pub passive: Option<bool>,
    pub max_prefixes: Option<u32>,
    pub max_prefixes_restart: Option<Duration>,
    /// ADD-PATH send and receive for IPv4 unicast.
    pub add_path: bool,
    /// `None`: 90 s.
    pub hold_time: Option<u16>,
    pub next_hop_mode: NextHopMode,
}

struct Nbr {
    peer: Sid,
    cfg: NbrCfg,
    session: Session,
    rib_id: PeerId,
    timers: HashMap<Timer, Instant>,
    next_inbound: u32,
    /// The RIB was told the session is Established.
    up: bool,
    graceful: bool,
    gr_epoch: u64,
}

struct Speaker {
    cfg: SpeakerCfg,
    alive: bool,
    /// Bumped by kill: events of an earlier life are dropped.
    incarnation: u32,
    /// Restarted at least once (sets the graceful restart R bit).
    restarted: bool,
    rib: Rib,
    nbrs: Vec<Nbr>,
    igp: Option<IgpFn>,
    fib: BTreeMap<IpNet, FibRoute>,
    /// Every non-empty `take_fib_changes` read, with its time.
    fib_reads: Vec<(Instant, Vec<RouteChange>)>,
    max_prefix_stops: u32,
}

type IgpFn = Arc<dyn Fn(IpAddr) -> Option<u32> + Send + Sync>;

/// One end of a connection: speaker, neighbour index, connection id.
type End = (Sid, usize, ConnId);

enum Ev {
    Syn(End, u32),
    Connected(End, u64),
    ConnectFailed(End),
    Data(End, u64, Bytes),
    Fin(End, u64),
    Timer(Sid, usize, Timer, Instant, u32),
    Admin(Sid, usize, Admin, u32),
    GrExpire(Sid, usize, u64, u32),
}

enum Admin {
    Start,
    Stop(Stop),
}

impl Ev {
    /// Timers are not network activity: a quiet network may still have timers armed.
    fn is_network(&self) -> bool {
        !matches!(self, Ev::Timer(..) | Ev::GrExpire(..))
    }
}

struct Queued {
    at: Instant,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    // Reversed: BinaryHeap is a max-heap and the earliest event must come out first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

pub struct Net {
    pub t0: Instant,
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Queued>,
    network_pending: usize,
    speakers: Vec<Speaker>,
    pipes: HashMap<End, (End, u64)>,
    next_pipe: u64,
    connecting: HashSet<End>,
    links_down: HashSet<(Sid, Sid)>,
    wire: Vec<Msg>,
    pub events_processed: u64,
}

impl Default for Net {
    fn default() -> Self {
        Self::new()
    }
}

impl Net {
    pub fn new() -> Net {
        let t0 = Instant::now();
        Net {
            t0,
            now: t0,
            seq: 0,
            queue: BinaryHeap::new(),
            network_pending: 0,
            speakers: Vec::new(),
            pipes: HashMap::new(),
            next_pipe: 0,
            connecting: HashSet::new(),
            links_down: HashSet::new(),
            wire: Vec::new(),
            events_processed: 0,
        }
    }

    // --- Building ----------------------------------------------------------------------------

    pub fn add(&mut self, cfg: SpeakerCfg) -> Sid {
        let rib = new_rib(&cfg);
        self.speakers.push(Speaker {
            cfg,
            alive: true,
            incarnation: 0,
            restarted: false,
            rib,
            nbrs: Vec::new(),
            igp: None,
            fib: BTreeMap::new(),
            fib_reads: Vec::new(),
            max_prefix_stops: 0,
        });
        self.speakers.len() - 1
    }

    /// A session between `a` and `b` with default settings on both sides.
    pub fn peer(&mut self, a: Sid, b: Sid) {
        self.peer_with(a, b, NbrCfg::default(), NbrCfg::default());
    }

    /// A session between `a` and `b`: `on_a` is how `a` treats `b`, `on_b` the reverse. Both
    /// sessions are started (at the current time; run the network to bring them up).
    pub fn peer_with(&mut self, a: Sid, b: Sid, on_a: NbrCfg, on_b: NbrCfg) {
        assert!(self.nbr_of(a, b).is_none(), "already peers");
        for (x, y, cfg) in [(a, b, on_a), (b, a, on_b)] {
            let n = self.add_nbr(x, y, cfg);
            self.schedule(
                self.now,
                Ev::Admin(x, n, Admin::Start, self.speakers[x].incarnation),
            );
        }
    }

    fn add_nbr(&mut self, x: Sid, y: Sid, cfg: NbrCfg) -> usize {
        let peer_cfg = self.speakers[y].cfg.clone();
        let me = &mut self.speakers[x];
        let session = Session::new(peer_config(&me.cfg, me.restarted, &peer_cfg, &cfg));
        let mut rp = RibPeer::new(IpAddr::V4(peer_cfg.address), peer_cfg.asn);
        rp.rr_client = cfg.rr_client;
        rp.next_hop_mode = cfg.next_hop_mode;
        rp.max_prefixes = cfg.max_prefixes;
        let rib_id = me.rib.add_peer(rp);
        me.nbrs.push(Nbr {
            peer: y,
            cfg,
            session,
            rib_id,
            timers: HashMap::new(),
            next_inbound: 0,
            up: false,
            graceful: false,
            gr_epoch: 0,
        });
        me.nbrs.len() - 1
    }

    // --- Operating ---------------------------------------------------------------------------

    pub fn originate(&mut self, s: Sid, prefix: &str) {
        self.originate_with(s, prefix, None);
    }

    /// Originates with crafted attributes (ORIGIN, AS_PATH, MED, LOCAL_PREF, ...).
    pub fn originate_with(&mut self, s: Sid, prefix: &str, attrs: Option<Attributes>) {
        self.speakers[s].rib.originate(net(prefix), attrs);
        self.pump(s);
    }

    pub fn withdraw(&mut self, s: Sid, prefix: &str) {
        self.speakers[s].rib.withdraw_local(net(prefix));
        self.pump(s);
    }

    /// Works on the RIB of `s` directly (many changes between two pumps), then pumps once.
    pub fn with_rib(&mut self, s: Sid, f: impl FnOnce(&mut Rib)) {
        f(&mut self.speakers[s].rib);
        self.pump(s);
    }

    /// Installs a next-hop resolver on `s` (`None`: unreachable) and re-decides every prefix.
    pub fn set_igp_cost(
        &mut self,
        s: Sid,
        f: impl Fn(IpAddr) -> Option<u32> + Send + Sync + 'static,
    ) {
        let f: IgpFn = Arc::new(f);
        let sp = &mut self.speakers[s];
        sp.igp = Some(f.clone());
        sp.rib.set_igp_cost(move |a| f(a));
        sp.rib.redecide_all();
        self.pump(s);
    }

    /// The operator stops `a`'s session with `b` (a NOTIFICATION is sent).
    pub fn stop(&mut self, a: Sid, b: Sid, stop: Stop) {
        let n = self.nbr(a, b);
        self.schedule(
            self.now,
            Ev::Admin(a, n, Admin::Stop(stop), self.speakers[a].incarnation),
        );
    }

    pub fn start(&mut self, a: Sid, b: Sid) {
        let n = self.nbr(a, b);
        self.schedule(
            self.now,
            Ev::Admin(a, n, Admin::Start, self.speakers[a].incarnation),
        );
    }

    /// Sends UPDATEs on `from`'s session with `to` as they are, bypassing `from`'s RIB (a
    /// scripted peer). All of them go in one write, so they arrive in one read.
    pub fn send_raw(&mut self, from: Sid, to: Sid, updates: &[Update]) {
        let n = self.nbr(from, to);
        let now = self.now;
        let actions = self.speakers[from].nbrs[n]
            .session
            .send_updates(updates, now)
            .expect("session Established");
        self.execute(from, n, actions);
    }

    /// The process crashes: its connections close without a NOTIFICATION (the kernel closes
    /// the sockets), its timers and state are gone.
    pub fn kill(&mut self, s: Sid) {
        let ends: Vec<End> = self.pipes.keys().filter(|e| e.0 == s).copied().collect();
        for e in ends {
            self.close_end(e);
        }
        self.connecting.retain(|e| e.0 != s);
        let sp = &mut self.speakers[s];
        sp.alive = false;
        sp.incarnation += 1;
        for n in &mut sp.nbrs {
            n.timers.clear();
        }
    }

    /// Changes the configuration of a killed speaker before [`Net::restart`].
    pub fn reconfigure(&mut self, s: Sid, f: impl FnOnce(&mut SpeakerCfg)) {
        assert!(!self.speakers[s].alive, "kill it first");
        f(&mut self.speakers[s].cfg);
    }

    /// A killed speaker starts again with its configuration: empty RIB (originate again what
    /// it should announce), new sessions, all started.
    pub fn restart(&mut self, s: Sid) {
        assert!(!self.speakers[s].alive, "kill it first");
        let sp = &mut self.speakers[s];
        sp.alive = true;
        sp.restarted = true;
        sp.rib = new_rib(&sp.cfg);
        if let Some(f) = sp.igp.clone() {
            sp.rib.set_igp_cost(move |a| f(a));
        }
        sp.fib.clear();
        sp.fib_reads.clear();
        let old: Vec<(Sid, NbrCfg)> = sp.nbrs.drain(..).map(|n| (n.peer, n.cfg)).collect();
        for (peer, cfg) in old {
            let n = self.add_nbr(s, peer, cfg);
            self.schedule(
                self.now,
                Ev::Admin(s, n, Admin::Start, self.speakers[s].incarnation),
            );
        }
    }

    /// The link between `a` and `b` breaks silently: the connections across it are dead (no
    /// FIN reaches either side, so sessions notice by their hold timers) and new ones fail.
    pub fn link_down(&mut self, a: Sid, b: Sid) {
        self.links_down.insert(link(a, b));
        let ends: Vec<End> = self
            .pipes
            .iter()
            .filter(|(e, (o, _))| link(e.0, o.0) == link(a, b))
            .map(|(e, _)| *e)
            .collect();
        for e in ends {
            self.pipes.remove(&e);
        }
    }

    pub fn link_up(&mut self, a: Sid, b: Sid) {
        self.links_down.remove(&link(a, b));
    }

    // --- Running -----------------------------------------------------------------------------

    /// Processes events (timers due on the way included) until no bytes, connections or
    /// operator commands are in flight. Panics if the network never settles.
    pub fn run_until_quiet(&mut self) {
        let start = self.now;
        let mut n = 0u64;
        while self.network_pending > 0 || self.queue.peek().is_some_and(|q| q.at <= self.now) {
            self.step();
            n += 1;
            assert!(
                n < MAX_EVENTS && self.now - start < MAX_BUSY,
                "the network does not settle ({n} events, {:?})",
                self.now - start
            );
        }
    }

    /// Lets `d` of simulated time pass (every event due in it happens), then settles.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while self.queue.peek().is_some_and(|q| q.at <= target) {
            self.step();
        }
        self.now = target;
        self.run_until_quiet();
    }

    /// Processes at most `n` events (to look at a network that does not settle).
    pub fn run_events(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        if ev.is_network() {
            self.network_pending += 1;
        }
        self.seq += 1;
        self.queue.push(Queued {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
    }

    fn step(&mut self) {
        let Some(q) = self.queue.pop() else { return };
        if q.ev.is_network() {
            self.network_pending -= 1;
        }
        self.now = self.now.max(q.at);
        self.events_processed += 1;
        match q.ev {
            Ev::Syn(from, inc) => self.syn(from, inc),
            Ev::Connected(end, pipe) => {
                if self.pipes.get(&end).is_some_and(|p| p.1 == pipe) {
                    self.feed(end.0, end.1, Event::Connected(end.2));
                }
            }
            Ev::ConnectFailed(end) => {
                if self.speakers[end.0].alive {
                    self.feed(end.0, end.1, Event::ConnectFailed(end.2));
                }
            }
            Ev::Data(end, pipe, bytes) => {
                if self.pipes.get(&end).is_some_and(|p| p.1 == pipe) {
                    self.feed(end.0, end.1, Event::Data(end.2, &bytes));
                }
            }
            Ev::Fin(end, pipe) => {
                if self.pipes.get(&end).is_some_and(|p| p.1 == pipe) {
                    self.pipes.remove(&end);
                    self.feed(end.0, end.1, Event::Closed(end.2));
                }
            }
            Ev::Timer(s, n, t, at, inc) => {
                let sp = &mut self.speakers[s];
                if sp.alive && sp.incarnation == inc && sp.nbrs[n].timers.get(&t) == Some(&at) {
                    sp.nbrs[n].timers.remove(&t);
                    self.feed(s, n, Event::Timer(t));
                }
            }
            Ev::Admin(s, n, admin, inc) => {
                let sp = &self.speakers[s];
                if sp.alive && sp.incarnation == inc {
                    match admin {
                        Admin::Start => self.feed(s, n, Event::Start),
                        Admin::Stop(stop) => self.feed(s, n, Event::Stop(stop)),
                    }
                }
            }
            Ev::GrExpire(s, n, epoch, inc) => {
                let sp = &mut self.speakers[s];
                if sp.alive && sp.incarnation == inc && sp.nbrs[n].gr_epoch == epoch {
                    let id = sp.nbrs[n].rib_id;
                    sp.rib.restart_timer_expired(id);
                    self.pump(s);
                }
            }
        }
    }

    /// A connection attempt reaches the other speaker.
    fn syn(&mut self, from: End, inc: u32) {
        if !self.connecting.remove(&from) || self.speakers[from.0].incarnation != inc {
            return; // abandoned meanwhile
        }
        let b = self.speakers[from.0].nbrs[from.1].peer;
        if self.links_down.contains(&link(from.0, b)) {
            self.schedule(self.now + CONNECT_TIMEOUT, Ev::ConnectFailed(from));
            return;
        }
        let listener = self.speakers[b]
            .alive
            .then(|| self.nbr_of(b, from.0))
            .flatten();
        let Some(j) = listener else {
            // Nobody listens (crashed process, or not a configured peer): refused at once.
            self.schedule(self.now + LATENCY, Ev::ConnectFailed(from));
            return;
        };
        let nbr = &mut self.speakers[b].nbrs[j];
        let there = (b, j, ConnId::inbound(nbr.next_inbound));
        nbr.next_inbound += 1;
        self.next_pipe += 1;
        let pipe = self.next_pipe;
        self.pipes.insert(from, (there, pipe));
        self.pipes.insert(there, (from, pipe));
        self.schedule(self.now + LATENCY, Ev::Connected(from, pipe));
        self.feed(b, j, Event::Accepted(there.2));
    }

    /// Closes one end; the other end learns it after the bytes already sent.
    fn close_end(&mut self, end: End) {
        if let Some((other, pipe)) = self.pipes.remove(&end) {
            self.schedule(self.now + LATENCY, Ev::Fin(other, pipe));
        }
    }

    fn feed(&mut self, s: Sid, n: usize, ev: Event<'_>) {
        let now = self.now;
        let actions = self.speakers[s].nbrs[n].session.handle(ev, now);
        self.execute(s, n, actions);
        self.pump(s);
    }

    /// Carries out a session's actions, as `speaker::peer` and `speaker::router` do.
    fn execute(&mut self, s: Sid, n: usize, actions: Vec<Action>) {
        let now = self.now;
        for action in actions {
            match action {
                Action::Connect(id) => {
                    self.connecting.insert((s, n, id));
                    let inc = self.speakers[s].incarnation;
                    self.schedule(now + LATENCY, Ev::Syn((s, n, id), inc));
                }
                Action::Send(id, bytes) => self.send(s, n, id, bytes),
                Action::Close(id) => {
                    self.connecting.remove(&(s, n, id));
                    self.close_end((s, n, id));
                }
                Action::SetTimer(t, at) => {
                    self.speakers[s].nbrs[n].timers.insert(t, at);
                    let inc = self.speakers[s].incarnation;
                    self.schedule(at, Ev::Timer(s, n, t, at, inc));
                }
                Action::ClearTimer(t) => {
                    self.speakers[s].nbrs[n].timers.remove(&t);
                }
                Action::StateChanged { .. } => {}
                Action::Established(neg) => {
                    let sp = &mut self.speakers[s];
                    let nbr = &mut sp.nbrs[n];
                    nbr.graceful =
                        neg.peer_graceful_restart.is_some() && sp.cfg.graceful_restart.is_some();
                    let info = SessionInfo {
                        bgp_id: neg.peer_id,
                        families: neg.families.clone(),
                        tx: neg.tx,
                        local_address: Some(IpAddr::V4(sp.cfg.address)),
                        peer_graceful_restart: if nbr.graceful {
                            neg.peer_graceful_restart.clone()
                        } else {
                            None
                        },
                        extended_next_hop: neg.extended_next_hop,
                    };
                    nbr.up = true;
                    nbr.gr_epoch += 1;
                    sp.rib.peer_up(nbr.rib_id, info);
                }
                Action::Down(down) => {
                    let inc = self.speakers[s].incarnation;
                    let nbr = &mut self.speakers[s].nbrs[n];
                    if !std::mem::take(&mut nbr.up) {
                        continue;
                    }
                    // RFC 4724 section 4.2, as the router decides it.
                    let graceful = nbr.graceful
                        && !matches!(
                            down,
                            Down::NotificationSent(_) | Down::NotificationReceived(_)
                        );
                    let (id, epoch) = (nbr.rib_id, nbr.gr_epoch);
                    if let Some(t) = self.speakers[s].rib.peer_down(id, graceful) {
                        self.schedule(now + t, Ev::GrExpire(s, n, epoch, inc));
                    }
                }
                Action::Update(u) => {
                    let sp = &mut self.speakers[s];
                    let id = sp.nbrs[n].rib_id;
                    if let Err(ImportError::MaxPrefixes { .. }) = sp.rib.apply_update(id, &u) {
                        sp.max_prefix_stops += 1;
                        let restart_after = sp.nbrs[n].cfg.max_prefixes_restart;
                        let inc = sp.incarnation;
                        let stop = Stop::MaxPrefixes { restart_after };
                        self.schedule(now, Ev::Admin(s, n, Admin::Stop(stop), inc));
                    }
                }
                Action::RouteRefresh(rr) => {
                    let id = self.speakers[s].nbrs[n].rib_id;
                    if let Some(family) = tortie_bgp::wire::Family::from_afi_safi(rr.afi, rr.safi) {
                        self.speakers[s].rib.resend(id, family);
                    }
                }
            }
        }
    }

    fn send(&mut self, s: Sid, n: usize, id: ConnId, bytes: Bytes) {
        let Some(&(other, pipe)) = self.pipes.get(&(s, n, id)) else {
            return; // a dead connection: the bytes go nowhere
        };
        let ctx = self.speakers[s].nbrs[n]
            .session
            .negotiated()
            .map(|x| x.tx)
            .unwrap_or_default();
        let mut rest = bytes.clone();
        while rest.len() >= 19 {
            let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            let frame = rest.split_to(len.min(rest.len()));
            self.wire.push(Msg {
                at: self.now,
                from: s,
                to: other.0,
                kind: frame[18],
                frame,
                ctx,
            });
        }
        self.schedule(self.now + LATENCY, Ev::Data(other, pipe, bytes));
    }

    /// Moves routing work forward on `s`, as the router's pump does after each event.
    fn pump(&mut self, s: Sid) {
        let now = self.now;
        let sp = &mut self.speakers[s];
        if !sp.alive {
            return;
        }
        sp.rib.run_export_pass();
        let mut sends = Vec::new();
        for (i, nbr) in sp.nbrs.iter_mut().enumerate() {
            let mut rounds = 0;
            while sp.rib.has_updates(nbr.rib_id) {
                rounds += 1;
                assert!(rounds < 100_000, "take_updates makes no progress");
                let updates = sp
                    .rib
                    .take_updates(nbr.rib_id, BATCH_PREFIXES)
                    .expect("UPDATEs encode");
                if updates.is_empty() {
                    continue;
                }
                let actions = nbr
                    .session
                    .send_updates(&updates, now)
                    .unwrap_or_else(|e| panic!("{}: UPDATEs not sent: {e}", sp.cfg.name));
                sends.push((i, actions));
            }
        }
        let changes = sp.rib.take_fib_changes(usize::MAX);
        if !changes.is_empty() {
            for c in &changes {
                match &c.route {
                    Some(r) => sp.fib.insert(c.prefix, r.clone()),
                    None => sp.fib.remove(&c.prefix),
                };
            }
            sp.fib_reads.push((now, changes));
        }
        for (i, actions) in sends {
            self.execute(s, i, actions);
        }
    }
}

fn link(a: Sid, b: Sid) -> (Sid, Sid) {
    (a.min(b), a.max(b))
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|_| panic!("bad prefix {s}"))
}

fn new_rib(cfg: &SpeakerCfg) -> Rib {
    let mut rc = RibConfig::new(cfg.asn, cfg.router_id);
    rc.cluster_id = cfg.cluster_id;
    rc.max_ecmp = cfg.max_ecmp;
    let mut rib = Rib::new(rc);
    rib.set_local_addresses([IpAddr::V4(cfg.address)]);
    rib
}

fn peer_config(me: &SpeakerCfg, restarted: bool, peer: &SpeakerCfg, nbr: &NbrCfg) -> PeerConfig {
    let mut pc = PeerConfig::new(me.asn, peer.asn, me.router_id);
    pc.hold_time = nbr.hold_time.unwrap_or(90);
    pc.passive = nbr.passive.unwrap_or(me.address > peer.address);
    pc.capabilities.graceful_restart = me.graceful_restart.map(|t| GrConfig {
        restart_time: t,
        restarting: restarted,
        forwarding_preserved: me.forwarding_preserved,
    });
    if nbr.add_path {
        pc.capabilities.add_path = vec![(Family::Ipv4Unicast, AddPathMode::SendReceive)];
    }
    pc
}

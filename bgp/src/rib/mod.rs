//! Routing: what the speaker learned, what it chose, and what it tells each peer.
//!
//! ```text
//!  UPDATE from peer ─▶ import (loop checks, import policy) ─▶ Loc-RIB: per prefix, every
//!  peer's paths (the Adj-RIBs-In) ─▶ decision process ─▶ best path + multipath group
//!        │ changed prefixes, coalesced                │ changed prefixes, coalesced
//!        ▼                                             ▼
//!  change stream for the dataplane          export log, one cursor per peer ─▶ export rules
//!  (take_fib_changes)                       and policy (mesh, route reflection, eBGP)
//!                                           ─▶ packed UPDATEs
//! ```
//!
//! The RIB is sans-IO like the codec and the state machine: the router task feeds it UPDATEs
//! and session events and pulls UPDATEs for each peer when that peer can take them. Changed
//! prefixes are logged once for all peers; a peer that falls far behind gets its share as a
//! pending set of its own, which holds each changed prefix once, so memory stays bounded by
//! the table size whatever the churn (see `adj_rib_out`).
//!
//! The Adj-RIB-Out is not stored: what a peer is sent is a pure function of the Loc-RIB and
//! the peer (export rules and policy), evaluated when the peer is ready. A route reflector
//! serving ten clients with a million routes thus holds the million routes once, not eleven
//! times. The price: a withdrawal may be sent for a prefix the peer never had (which RFC 4271
//! receivers ignore).

mod adj_rib_out;
mod advertised;
mod best_path;
mod changes;
#[cfg(test)]
mod changes_tests;
mod export;
mod import;
mod path;
pub mod policy;
mod policy_glue;
mod tables;
mod views;

pub use advertised::AdvertisedWalk;
pub use best_path::PeerFacts;
pub use changes::{FibRoute, RouteChange};
pub use import::{ImportError, MAX_FILTERED_KEYS};
pub use path::{DEFAULT_LOCAL_PREF, Dest, LOCAL, Path, PeerId, RouteAttrs, V4Key, V6Key};
pub use views::{PathView, RouteView};

use crate::wire::{Attributes, Ctx, Family, GracefulRestart};
use adj_rib_out::{AdjRibOut, ExportLog};
use changes::Changes;
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tables::{TableKey, Tables};

/// How the next hop of routes sent to a peer is chosen (Calico's BGPPeer `nextHopMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NextHopMode {
    /// Next hop self toward eBGP peers; toward iBGP peers the next hop is kept, except on
    /// routes this node originates.
    #[default]
    Auto,
    /// Always this node's address.
    SelfAddr,
    /// Always the next hop as received.
    Keep,
}

/// This speaker.
#[derive(Debug, Clone)]
pub struct RibConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Set when this node is a route reflector (Calico's `routeReflectorClusterID`).
    pub cluster_id: Option<Ipv4Addr>,
    /// The largest multipath group the dataplane gets.
    pub max_ecmp: usize,
    /// Communities for this node's own routes (BGPConfiguration `prefixAdvertisements`).
    pub advertisements: policy::Advertisements,
}

impl RibConfig {
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> Self {
        RibConfig {
            local_as,
            router_id,
            cluster_id: None,
            max_ecmp: 16,
            advertisements: policy::Advertisements::default(),
        }
    }
}

/// One peer as routing sees it.
#[derive(Debug, Clone)]
pub struct RibPeer {
    pub address: IpAddr,
    pub peer_as: u32,
    /// A route reflector client of ours (RFC 4456).
    pub rr_client: bool,
    pub next_hop_mode: NextHopMode,
    /// Our addresses for next hop self; the session's local address fills in what is unset.
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Accept paths with our own AS this many times (Calico's `numAllowedLocalASNumbers`).
    pub allow_own_as: u8,
    /// Above this many paths the session is stopped (Cease / Maximum Number of Prefixes).
    pub max_prefixes: Option<u32>,
    /// The BGPFilters of the session, in order (import and export rules both).
    pub filters: Vec<policy::Filter>,
}

impl RibPeer {
    pub fn new(address: IpAddr, peer_as: u32) -> Self {
        RibPeer {
            address,
            peer_as,
            rr_client: false,
            next_hop_mode: NextHopMode::Auto,
            next_hop_v4: None,
            next_hop_v6: None,
            allow_own_as: 0,
            max_prefixes: None,
            filters: Vec::new(),
        }
    }
}

/// What an Established session negotiated, as routing needs it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub bgp_id: Ipv4Addr,
    pub families: Vec<Family>,
    /// How we encode for the peer (ADD-PATH send per family, 4-octet AS, message size).
    pub tx: Ctx,
    pub local_address: Option<IpAddr>,
    /// The peer's graceful restart capability (RFC 4724): we keep its routes when it goes away.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// IPv4 prefixes may be sent with an IPv6 next hop (RFC 8950).
    pub extended_next_hop: bool,
}

struct Peer {
    cfg: RibPeer,
    session: Option<SessionInfo>,
    /// Kept after the session goes, for the tie-break of its stale paths.
    bgp_id: Ipv4Addr,
    /// Paths this peer has in the Loc-RIB (its Adj-RIB-In after import policy).
    paths: u32,
    /// What the peer announced and import turned away (policy, a loop, a martian next hop),
    /// by prefix and path id, so that a later withdrawal or an accepted replacement takes it
    /// out again: with `paths`, what the peer sent. Only these keys are kept, not their
    /// attributes, so the cost is proportional to what the filters reject (BIRD's
    /// "filtered" count).
    filtered: HashSet<(IpNet, u32)>,
    /// The restart time from its last graceful restart capability.
    restart_time: Option<Duration>,
    out: AdjRibOut,
}

/// What the decision process needs of the RIB besides the prefix's paths.
struct Decider<'a> {
    local_as: u32,
    max_ecmp: usize,
    peers: &'a [Option<Peer>],
    igp_cost: &'a (dyn Fn(IpAddr) -> Option<u32> + Send),
    local_addresses: &'a HashSet<IpAddr>,
}

/// A [`Decider`] borrowing the fields of a RIB other than its tables.
macro_rules! decider {
    ($rib:expr) => {
        Decider {
            local_as: $rib.cfg.local_as,
            max_ecmp: $rib.cfg.max_ecmp,
            peers: &$rib.peers,
            igp_cost: &*$rib.igp_cost,
            local_addresses: &$rib.local_addresses,
        }
    };
}

impl Decider<'_> {
    fn decide(&self, dest: &mut Dest) {
        let local_as = self.local_as;
        let facts = |id: PeerId| match self.peers.get(id as usize).and_then(Option::as_ref) {
            Some(p) => PeerFacts {
                ebgp: p.cfg.peer_as != local_as,
                bgp_id: p.bgp_id,
                address: p.cfg.address,
            },
            None => PeerFacts {
                ebgp: false,
                bgp_id: Ipv4Addr::UNSPECIFIED,
                address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
        };
        let cost = |p: &Path| {
            if p.peer == LOCAL {
                return Some(0);
            }
            let nh = p.attrs.next_hop;
            if nh.is_unspecified() || self.local_addresses.contains(&nh) {
                return None;
            }
            (self.igp_cost)(nh)
        };
        best_path::decide(dest, local_as, self.max_ecmp, facts, cost);
    }
}

/// The whole routing state of one speaker.
pub struct Rib {
    cfg: RibConfig,
    /// Indexed by [`PeerId`]; slot 0 ([`LOCAL`]) is never a peer.
    peers: Vec<Option<Peer>>,
    tables: Tables,
    /// Prefixes whose outcome changed, for the dataplane and the export pass.
    changes: Changes,
    /// What the export passes found changed, until every Established peer has read it.
    export_log: ExportLog,
    /// IGP cost to a next hop, `None` when it cannot be reached (RFC 4271 section 9.1.2).
    igp_cost: Box<dyn Fn(IpAddr) -> Option<u32> + Send>,
    local_addresses: HashSet<IpAddr>,
}

impl Rib {
    pub fn new(cfg: RibConfig) -> Self {
        Rib {
            cfg,
            peers: vec![None],
            tables: Tables::default(),
            changes: Changes::default(),
            export_log: ExportLog::default(),
            igp_cost: Box::new(|_| Some(0)),
            local_addresses: HashSet::new(),
        }
    }

    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    /// Replaces the next-hop resolver (default: every next hop reachable at cost 0). Routes
    /// are re-decided lazily as they change; call [`Rib::redecide_all`] after the resolver's
    /// answers change.
    pub fn set_igp_cost(&mut self, f: impl Fn(IpAddr) -> Option<u32> + Send + 'static) {
        self.igp_cost = Box::new(f);
    }

    /// Addresses of this node: a path whose next hop is one of them points back at us and is
    /// not used.
    pub fn set_local_addresses(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.local_addresses = addrs.into_iter().collect();
    }

    pub fn add_peer(&mut self, cfg: RibPeer) -> PeerId {
        let peer = Peer {
            cfg,
            session: None,
            bgp_id: Ipv4Addr::UNSPECIFIED,
            paths: 0,
            filtered: HashSet::new(),
            restart_time: None,
            out: AdjRibOut::default(),
        };
        if let Some(i) = self.peers.iter().skip(1).position(Option::is_none) {
            self.peers[i + 1] = Some(peer);
            (i + 1) as PeerId
        } else {
            self.peers.push(Some(peer));
            (self.peers.len() - 1) as PeerId
        }
    }

    /// Forgets a peer and every path it had.
    pub fn remove_peer(&mut self, id: PeerId) {
        self.drop_paths(id, |_| true);
        if let Some(slot) = self.peers.get_mut(id as usize) {
            *slot = None;
        }
    }

    pub fn peer_config(&self, id: PeerId) -> Option<&RibPeer> {
        self.peer(id).map(|p| &p.cfg)
    }

    /// Replaces a peer's routing configuration (filters, next hop mode, ...) and re-evaluates
    /// what it is sent under the new rules (announcing and withdrawing what changed), without
    /// a session reset. Paths it sent before stay as imported; ask it for a route refresh to
    /// apply new import rules to them.
    pub fn update_peer(&mut self, id: PeerId, cfg: RibPeer) {
        if let Some(p) = self.peer_mut(id) {
            p.cfg = cfg;
            if p.session.is_some() {
                p.out.start_reevaluation();
            }
        }
    }

    fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id as usize).and_then(Option::as_ref)
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Number of paths a peer has in the RIB.
    pub fn peer_path_count(&self, id: PeerId) -> u32 {
        self.peer(id).map_or(0, |p| p.paths)
    }

    /// Number of paths the peer announced in this session that import turned away.
    pub fn peer_filtered_count(&self, id: PeerId) -> u32 {
        self.peer(id).map_or(0, |p| p.filtered.len() as u32)
    }

    /// Sends the peer its table of `family` again, as a ROUTE-REFRESH request asks (RFC 2918
    /// section 4: the Adj-RIB-Out of that AFI/SAFI; no End-of-RIB, which belongs to the start
    /// of a session).
    pub fn resend(&mut self, id: PeerId, family: Family) {
        if let Some(p) = self.peer_mut(id) {
            if p.session.is_some() {
                p.out.start_refresh(family);
            }
        }
    }

    /// The session came up: its table is sent from the start (then End-of-RIB), and any stale
    /// paths it left stay until its End-of-RIB or the restart time.
    pub fn peer_up(&mut self, id: PeerId, session: SessionInfo) {
        let restart = session
            .peer_graceful_restart
            .as_ref()
            .map(|g| Duration::from_secs(u64::from(g.restart_time)));
        // RFC 4724 section 4.2: the stale paths of a family go at once unless the new
        // capability lists the family with its Forwarding State bit set.
        let kept: Vec<Family> = session
            .peer_graceful_restart
            .iter()
            .flat_map(|g| &g.families)
            .filter(|f| f.forwarding_preserved)
            .filter_map(|f| f.afi_safi.family())
            .collect();
        // Its table walk sends what the log holds so far.
        let log_end = self.export_log.end();
        if let Some(p) = self.peer_mut(id) {
            p.bgp_id = session.bgp_id;
            p.restart_time = restart;
            p.session = Some(session);
            p.out = AdjRibOut::reading_from(log_end);
            p.out.start_dump();
        }
        if !kept.contains(&Family::Ipv4Unicast) {
            self.drop_paths_in::<V4Key>(id, |p| p.stale);
        }
        if !kept.contains(&Family::Ipv6Unicast) {
            self.drop_paths_in::<V6Key>(id, |p| p.stale);
        }
    }

    /// The session went down. With graceful restart negotiated (`graceful`), the peer's paths
    /// stay, marked stale, and the returned restart time says when to call
    /// [`Rib::restart_timer_expired`]; otherwise they are removed.
    pub fn peer_down(&mut self, id: PeerId, graceful: bool) -> Option<Duration> {
        let restart = self.peer(id).and_then(|p| p.restart_time);
        if let Some(p) = self.peer_mut(id) {
            p.session = None;
            p.out = AdjRibOut::default();
            // The next session sends its table again: what it filters is counted afresh.
            p.filtered = HashSet::new();
        }
        match restart.filter(|_| graceful) {
            Some(t) => {
                self.mark_stale(id);
                Some(t)
            }
            None => {
                self.drop_paths(id, |_| true);
                None
            }
        }
    }

    /// The peer did not come back in time: its stale paths go.
    pub fn restart_timer_expired(&mut self, id: PeerId) {
        self.drop_paths(id, |p| p.stale);
    }

    fn mark_stale(&mut self, id: PeerId) {
        fn mark<K: TableKey>(t: &mut Tables, id: PeerId) {
            for dest in K::table_mut(t).values_mut() {
                for p in dest.paths.iter_mut().filter(|p| p.peer == id) {
                    p.stale = true;
                }
            }
        }
        mark::<V4Key>(&mut self.tables, id);
        mark::<V6Key>(&mut self.tables, id);
    }

    /// Removes a peer's paths that `which` selects (in every family).
    fn drop_paths(&mut self, id: PeerId, which: impl Fn(&Path) -> bool + Copy) {
        self.drop_paths_in::<V4Key>(id, which);
        self.drop_paths_in::<V6Key>(id, which);
    }

    /// Removes the paths of `id` that `which` selects from one family, in one pass over it.
    fn drop_paths_in<K: TableKey>(&mut self, id: PeerId, which: impl Fn(&Path) -> bool) {
        let decider = decider!(self);
        let queues = K::queues(&mut self.changes);
        let mut removed = 0;
        K::table_mut(&mut self.tables).retain(|&key, dest| {
            if !dest.paths.iter().any(|p| p.peer == id && which(p)) {
                return true;
            }
            let before = dest.outcome();
            let n = dest.paths.len();
            dest.paths.retain(|p| !(p.peer == id && which(p)));
            removed += n - dest.paths.len();
            decider.decide(dest);
            !queues.settle(key, dest, &before, false)
        });
        if let Some(p) = self.peer_mut(id) {
            p.paths = p.paths.saturating_sub(removed as u32);
        }
    }

    /// Announces a prefix of this node. `attrs` default to ORIGIN IGP and nothing else; the
    /// next hop is filled per peer on export.
    pub fn originate(&mut self, prefix: IpNet, attrs: Option<Attributes>) {
        let mut a = attrs.unwrap_or_default();
        a.origin.get_or_insert(crate::wire::Origin::Igp);
        a.as_path.get_or_insert_with(Default::default);
        let nh = match prefix {
            IpNet::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpNet::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let attrs = Arc::new(RouteAttrs::new(a, nh));
        match prefix {
            IpNet::V4(n) => self.set_path(V4Key::new(n), LOCAL, 0, Some(attrs)),
            IpNet::V6(n) => self.set_path(V6Key::new(n), LOCAL, 0, Some(attrs)),
        }
    }

    pub fn withdraw_local(&mut self, prefix: IpNet) {
        match prefix {
            IpNet::V4(n) => self.set_path(V4Key::new(n), LOCAL, 0, None),
            IpNet::V6(n) => self.set_path(V6Key::new(n), LOCAL, 0, None),
        }
    }

    /// Inserts, replaces (`Some`) or removes (`None`) the path of `peer` with `rx_path_id`, and
    /// re-decides the prefix. One walk down the table, whatever happens.
    fn set_path<K: TableKey>(
        &mut self,
        key: K,
        peer: PeerId,
        rx_path_id: u32,
        attrs: Option<Arc<RouteAttrs>>,
    ) {
        use std::collections::btree_map::Entry;
        let decider = decider!(self);
        let queues = K::queues(&mut self.changes);
        let delta: i64 = match K::table_mut(&mut self.tables).entry(key) {
            Entry::Vacant(v) => {
                let Some(attrs) = attrs else { return };
                let dest = v.insert(Dest::default());
                dest.paths.push(Path {
                    peer,
                    rx_path_id,
                    tx_path_id: 1,
                    stale: false,
                    attrs,
                });
                decider.decide(dest);
                // It has a path: it stays.
                queues.settle(key, dest, &path::Outcome::new(), false);
                1
            }
            Entry::Occupied(mut o) => {
                let dest = o.get_mut();
                let before = dest.outcome();
                // An empty entry is one the change queues keep (see `changes`).
                let was_empty = dest.paths.is_empty();
                let delta = match attrs {
                    Some(attrs) => match dest
                        .paths
                        .iter_mut()
                        .find(|p| p.peer == peer && p.rx_path_id == rx_path_id)
                    {
                        Some(p) => {
                            // RFC 4271 section 9: a re-announcement with the same attributes
                            // replaces the route with itself and changes nothing downstream.
                            // (Two reflectors would otherwise echo a route to each other
                            // forever.)
                            if !p.stale && (Arc::ptr_eq(&p.attrs, &attrs) || *p.attrs == *attrs) {
                                return;
                            }
                            p.attrs = attrs;
                            p.stale = false;
                            0
                        }
                        None => {
                            let tx_path_id = dest.free_tx_path_id();
                            dest.paths.push(Path {
                                peer,
                                rx_path_id,
                                tx_path_id,
                                stale: false,
                                attrs,
                            });
                            1
                        }
                    },
                    None => {
                        let n = dest.paths.len();
                        dest.paths
                            .retain(|p| !(p.peer == peer && p.rx_path_id == rx_path_id));
                        if dest.paths.len() == n {
                            return;
                        }
                        -1
                    }
                };
                decider.decide(dest);
                if queues.settle(key, dest, &before, was_empty) {
                    o.remove();
                }
                delta
            }
        };
        if peer != LOCAL {
            if let Some(p) = self.peer_mut(peer) {
                p.paths = (i64::from(p.paths) + delta).max(0) as u32;
            }
        }
    }

    /// Re-runs the decision process for every prefix (after the next-hop resolver changed).
    pub fn redecide_all(&mut self) {
        self.redecide::<V4Key>();
        self.redecide::<V6Key>();
    }

    fn redecide<K: TableKey>(&mut self) {
        let decider = decider!(self);
        let queues = K::queues(&mut self.changes);
        for (&key, dest) in K::table_mut(&mut self.tables).iter_mut() {
            let before = dest.outcome();
            let was_empty = dest.paths.is_empty();
            decider.decide(dest);
            // The paths are the same: no entry becomes empty.
            queues.settle(key, dest, &before, was_empty);
        }
    }
}

//! What each peer is still owed: changed prefixes and, after the session came up, a walk over
//! the whole table followed by End-of-RIB. UPDATEs are built when the peer can take them,
//! packing every prefix that shares attributes into one message.
//!
//! The changed prefixes of each export pass go into one log shared by every peer
//! ([`ExportLog`]), which each Established peer reads with its own cursor: a reflector with
//! twenty clients keeps each change once, not twenty times, and hands it on without a map
//! insert and removal per peer. (Per-peer ordered sets took 1.5 GB and a fifth of the CPU to
//! reflect a million prefixes to twenty clients: see docs/BENCHMARKS.md.) The log is trimmed
//! to what the slowest peer still has to read. A peer that falls so far behind that the log
//! would outgrow twice the table (plus 65,536 entries) has its share folded into a pending set
//! of its own, which holds each prefix once: a peer that does not read costs no more than the
//! table, whatever the churn.

use super::Rib;
use super::changes::ExportBatch;
use super::export::ExportMemo;
use super::export::OutRoute;
use super::path::{Dest, PeerId, PrefixKey, V4Key, V6Key};
use super::tables::{Finder, TableKey};
use crate::wire::{Attributes, EncodeError, Family, MpNlri, NextHop, Nlri, Update, pack};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

/// The log never holds more than twice the table plus this many entries before its laggards
/// are folded into pending sets of their own.
const LOG_SLACK: usize = 65_536;

/// One export pass's changed prefixes, IPv4 then IPv6.
#[derive(Debug)]
struct LogBatch {
    v4: ExportBatch<V4Key>,
    v6: ExportBatch<V6Key>,
}

impl LogBatch {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn get(&self, pos: usize) -> Option<(IpNet, &[u32])> {
        match pos.checked_sub(self.v4.len()) {
            None => self.v4.get(pos).map(|(k, ids)| (k.to_net(), ids)),
            Some(i) => self.v6.get(i).map(|(k, ids)| (k.to_net(), ids)),
        }
    }
}

/// A place in the log: entry `pos` of batch number `batch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    batch: u64,
    pos: usize,
}

/// The export passes' batches still owed to some Established peer, oldest first; batches are
/// numbered from 0 for the life of the RIB and never empty.
#[derive(Debug, Default)]
pub(crate) struct ExportLog {
    batches: VecDeque<LogBatch>,
    /// The number of `batches[0]`.
    first: u64,
    /// Entries in all batches.
    entries: usize,
}

impl ExportLog {
    /// Where a peer that starts reading now begins.
    pub fn end(&self) -> Cursor {
        Cursor {
            batch: self.first + self.batches.len() as u64,
            pos: 0,
        }
    }

    fn push(&mut self, b: LogBatch) {
        if b.len() > 0 {
            self.entries += b.len();
            self.batches.push_back(b);
        }
    }

    /// The entry at `c`, moving `c` over batch ends; `None` at the end of the log.
    fn entry(&self, c: &mut Cursor) -> Option<(IpNet, &[u32])> {
        if c.batch < self.first {
            // Trimming keeps what every Established peer still reads: never reached.
            *c = Cursor {
                batch: self.first,
                pos: 0,
            };
        }
        loop {
            let b = self.batches.get((c.batch - self.first) as usize)?;
            if let Some(e) = b.get(c.pos) {
                return Some(e);
            }
            c.batch += 1;
            c.pos = 0;
        }
    }

    /// Entries from `c` to the end.
    fn remaining(&self, c: Cursor) -> usize {
        let skip = c.batch.saturating_sub(self.first) as usize;
        let mut n: usize = self.batches.iter().skip(skip).map(LogBatch::len).sum();
        if c.batch >= self.first {
            n = n.saturating_sub(c.pos);
        }
        n
    }

    /// Drops the batches before number `keep`.
    fn trim(&mut self, keep: u64) {
        while self.first < keep {
            let Some(b) = self.batches.pop_front() else {
                break;
            };
            self.entries -= b.len();
            self.first += 1;
        }
    }

    fn clear(&mut self) {
        let end = self.end().batch;
        self.trim(end);
    }
}

/// Where an initial table walk is in one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Walk<K> {
    /// Done (or never started).
    #[default]
    Idle,
    /// Next to visit: keys after this one (`None`: from the start).
    After(Option<K>),
}

impl<K: Ord + Copy> Walk<K> {
    /// Whether the walk will still visit `k` (so a change to `k` needs no separate entry).
    fn will_visit(&self, k: K) -> bool {
        match self {
            Walk::Idle => false,
            Walk::After(None) => true,
            Walk::After(Some(last)) => k > *last,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct AdjRibOut {
    /// The next entry of the shared log this peer reads.
    cursor: Cursor,
    /// Changed prefixes not yet sent that were folded out of the log, with the transmit path
    /// ids that may have been announced for them before (to withdraw those no longer current,
    /// RFC 7911).
    pending: BTreeMap<IpNet, SmallVec<[u32; 2]>>,
    walk_v4: Walk<V4Key>,
    walk_v6: Walk<V6Key>,
    /// End-of-RIB still to send after the walk of that family (RFC 4724 section 2).
    eor_v4: bool,
    eor_v6: bool,
    /// The walk re-evaluates what was sent under other rules: a prefix that is not sent any
    /// more is withdrawn.
    walk_withdraws: bool,
}

impl AdjRibOut {
    /// Nothing owed; the log is read from `cursor` on.
    pub fn reading_from(cursor: Cursor) -> AdjRibOut {
        AdjRibOut {
            cursor,
            ..AdjRibOut::default()
        }
    }

    /// The initial table: every prefix, then End-of-RIB.
    pub fn start_dump(&mut self) {
        self.walk_v4 = Walk::After(None);
        self.walk_v6 = Walk::After(None);
        self.eor_v4 = true;
        self.eor_v6 = true;
        self.walk_withdraws = false;
    }

    /// One family's table again (a ROUTE-REFRESH): a walk over it, leaving whatever else is
    /// owed (an End-of-RIB still due after the initial walk stays due).
    pub fn start_refresh(&mut self, family: Family) {
        match family {
            Family::Ipv4Unicast => self.walk_v4 = Walk::After(None),
            Family::Ipv6Unicast => self.walk_v6 = Walk::After(None),
        }
    }

    /// The table again after the export rules changed: every prefix is re-evaluated, and
    /// those no longer exported are withdrawn.
    pub fn start_reevaluation(&mut self) {
        self.walk_v4 = Walk::After(None);
        self.walk_v6 = Walk::After(None);
        self.walk_withdraws = true;
    }

    fn covered(&self, net: IpNet) -> bool {
        match net {
            IpNet::V4(n) => self.walk_v4.will_visit(V4Key::new(n)),
            IpNet::V6(n) => self.walk_v6.will_visit(V6Key::new(n)),
        }
    }

    pub fn has_work(&self, log: &ExportLog) -> bool {
        !self.pending.is_empty()
            || log.remaining(self.cursor) > 0
            || self.walk_v4 != Walk::Idle
            || self.walk_v6 != Walk::Idle
            || self.eor_v4
            || self.eor_v6
    }

    pub fn pending_len(&self, log: &ExportLog) -> usize {
        self.pending.len() + log.remaining(self.cursor)
    }

    /// Moves what is left to read of the log into the pending set (each prefix once).
    fn fold(&mut self, log: &ExportLog) {
        let mut c = self.cursor;
        while let Some((net, ids)) = log.entry(&mut c) {
            c.pos += 1;
            if self.covered(net) {
                continue;
            }
            let entry = self.pending.entry(net).or_default();
            for id in ids {
                if !entry.contains(id) {
                    entry.push(*id);
                }
            }
        }
        self.cursor = log.end();
    }
}

/// Advances a walk over table `K` by up to `budget` keys. With `withdraws`, each prefix goes
/// with the path ids that may have been sent, so that what is no longer exported is withdrawn.
fn walk_step<K: TableKey>(
    rib: &Rib,
    walk: Walk<K>,
    budget: usize,
    withdraws: bool,
    out: &mut Vec<(IpNet, SmallVec<[u32; 2]>)>,
) -> Walk<K> {
    let Walk::After(last) = walk else {
        return Walk::Idle;
    };
    let table = K::table(&rib.tables);
    let range = match last {
        None => table.range(..),
        Some(k) => table.range((Bound::Excluded(k), Bound::Unbounded)),
    };
    let mut next = last;
    // Empty entries are kept for the change queues only: not prefixes of the table.
    let live = |(_, d): &(&K, &Dest)| !d.paths.is_empty();
    for (k, dest) in range.filter(live).take(budget) {
        let sent = if withdraws {
            dest.outcome().iter().map(|o| o.2).collect()
        } else {
            SmallVec::new()
        };
        out.push((k.to_net(), sent));
        next = Some(*k);
    }
    let more = next.is_some_and(|n| {
        table
            .range((Bound::Excluded(n), Bound::Unbounded))
            .any(|e| live(&e))
    });
    if more { Walk::After(next) } else { Walk::Idle }
}

impl Rib {
    /// Logs the prefixes whose outcome changed since the last pass for every Established
    /// peer. Call after a batch of imports, before [`Rib::take_updates`].
    pub fn run_export_pass(&mut self) {
        self.trim_export_log();
        if !self.changes.export_pending() {
            return;
        }
        let v4 = self.changes.v4.take_export(&mut self.tables.v4);
        let v6 = self.changes.v6.take_export(&mut self.tables.v6);
        if self.peers.iter().flatten().any(|p| p.session.is_some()) {
            self.export_log.push(LogBatch { v4, v6 });
            self.bound_export_log();
        }
    }

    /// Drops what every Established peer has read.
    fn trim_export_log(&mut self) {
        let slowest = self
            .peers
            .iter()
            .flatten()
            .filter(|p| p.session.is_some())
            .map(|p| p.out.cursor.batch)
            .min();
        match slowest {
            Some(b) => self.export_log.trim(b),
            None => self.export_log.clear(),
        }
    }

    /// Folds the peers holding the oldest batch out of the log when it grew past its bound.
    fn bound_export_log(&mut self) {
        if self.export_log.entries <= 2 * self.tables.len() + LOG_SLACK {
            return;
        }
        let log = &self.export_log;
        let oldest = log.first;
        for peer in self.peers.iter_mut().flatten() {
            if peer.session.is_some() && peer.out.cursor.batch <= oldest {
                peer.out.fold(log);
            }
        }
        self.trim_export_log();
    }

    /// Whether a peer has anything left to be sent.
    pub fn has_updates(&self, id: PeerId) -> bool {
        self.peer(id)
            .is_some_and(|p| p.session.is_some() && p.out.has_work(&self.export_log))
    }

    /// Prefixes waiting for a peer that has not taken them yet (a slow peer's backlog).
    pub fn backlog(&self, id: PeerId) -> usize {
        self.peer(id)
            .map_or(0, |p| p.out.pending_len(&self.export_log))
    }

    /// Up to `max_prefixes` prefixes' worth of UPDATEs for a peer: changes first, then the
    /// initial table walk, then End-of-RIB per family once the walk is done.
    pub fn take_updates(
        &mut self,
        id: PeerId,
        max_prefixes: usize,
    ) -> Result<Vec<Update>, EncodeError> {
        let log = &self.export_log;
        let Some(peer) = self.peers.get_mut(id as usize).and_then(Option::as_mut) else {
            return Ok(Vec::new());
        };
        if peer.session.is_none() {
            return Ok(Vec::new());
        }
        let mut work: Vec<(IpNet, SmallVec<[u32; 2]>)> = Vec::new();
        while work.len() < max_prefixes {
            match peer.out.pending.pop_first() {
                Some(e) => work.push(e),
                None => break,
            }
        }
        let mut c = peer.out.cursor;
        while work.len() < max_prefixes {
            let Some((net, ids)) = log.entry(&mut c) else {
                break;
            };
            c.pos += 1;
            // The table walk sends it as it is then.
            if !peer.out.covered(net) {
                work.push((net, SmallVec::from_slice(ids)));
            }
        }
        peer.out.cursor = c;
        let (walk_v4, walk_v6, wd) = (peer.out.walk_v4, peer.out.walk_v6, peer.out.walk_withdraws);
        let budget = max_prefixes.saturating_sub(work.len());
        let walk_v4 = walk_step(self, walk_v4, budget, wd, &mut work);
        let budget = max_prefixes.saturating_sub(work.len());
        let walk_v6 = if budget > 0 {
            walk_step(self, walk_v6, budget, wd, &mut work)
        } else {
            walk_v6
        };

        let updates = self.build_updates(id, &work)?;
        let Some(peer) = self.peer_mut(id) else {
            return Ok(updates);
        };
        peer.out.walk_v4 = walk_v4;
        peer.out.walk_v6 = walk_v6;
        let families = peer
            .session
            .as_ref()
            .map(|s| s.families.clone())
            .unwrap_or_default();
        let mut updates = updates;
        if walk_v4 == Walk::Idle && peer.out.eor_v4 {
            peer.out.eor_v4 = false;
            if families.contains(&Family::Ipv4Unicast) {
                updates.push(Update::end_of_rib(Family::Ipv4Unicast));
            }
        }
        if walk_v6 == Walk::Idle && peer.out.eor_v6 {
            peer.out.eor_v6 = false;
            if families.contains(&Family::Ipv6Unicast) {
                updates.push(Update::end_of_rib(Family::Ipv6Unicast));
            }
        }
        Ok(updates)
    }

    /// Computes what the peer is sent for each prefix and packs it.
    fn build_updates(
        &self,
        id: PeerId,
        work: &[(IpNet, SmallVec<[u32; 2]>)],
    ) -> Result<Vec<Update>, EncodeError> {
        let Some(session) = self.peer(id).and_then(|p| p.session.as_ref()) else {
            return Ok(Vec::new());
        };
        let ctx = session.tx;
        let ap4 = ctx.add_path.get(Family::Ipv4Unicast);
        let ap6 = ctx.add_path.get(Family::Ipv6Unicast);
        let mut memo = ExportMemo::default();
        let mut interner = Interner::default();
        let (mut find4, mut find6) = (Finder::new(&self.tables.v4), Finder::new(&self.tables.v6));
        // Announcements grouped by attributes (the interned set's address) and next hop, so
        // they share messages; `last` short-cuts a run of prefixes exported with the very same
        // set (the interner keeps every set it met alive, so an address seen again is the same
        // set).
        type Group = (
            Arc<Attributes>,
            IpAddr,
            Vec<Nlri<Ipv4Net>>,
            Vec<Nlri<Ipv6Net>>,
        );
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: FxHashMap<(usize, IpAddr), usize> = FxHashMap::default();
        let mut last: Option<((usize, IpAddr), usize)> = None;
        let mut wd4: Vec<Nlri<Ipv4Net>> = Vec::new();
        let mut wd6: Vec<Nlri<Ipv6Net>> = Vec::new();
        for (net, old_ids) in work {
            let dest = match net {
                IpNet::V4(n) => find4.find(V4Key::new(*n)),
                IpNet::V6(n) => find6.find(V6Key::new(*n)),
            };
            let routes = self.export_dest(*net, dest, id, &mut memo);
            let add_path = match net {
                IpNet::V4(_) => ap4,
                IpNet::V6(_) => ap6,
            };
            let pid = |x: u32| add_path.then_some(x);
            if add_path {
                for old in old_ids
                    .iter()
                    .filter(|o| !routes.iter().any(|r| r.tx_path_id == **o))
                {
                    push_withdraw(*net, pid(*old), &mut wd4, &mut wd6);
                }
            } else if routes.is_empty() && !old_ids.is_empty() {
                push_withdraw(*net, None, &mut wd4, &mut wd6);
            }
            for OutRoute {
                tx_path_id,
                attrs,
                next_hop,
            } in routes
            {
                let raw = (Arc::as_ptr(&attrs) as usize, next_hop);
                let at = match last {
                    Some((r, at)) if r == raw => at,
                    _ => {
                        let attrs = interner.intern(attrs);
                        let key = (Arc::as_ptr(&attrs) as usize, next_hop);
                        let at = *group_of.entry(key).or_insert_with(|| {
                            groups.push((attrs, next_hop, Vec::new(), Vec::new()));
                            groups.len() - 1
                        });
                        last = Some((raw, at));
                        at
                    }
                };
                let Some(g) = groups.get_mut(at) else {
                    continue;
                };
                match net {
                    IpNet::V4(n) => g.2.push(Nlri {
                        prefix: *n,
                        path_id: pid(tx_path_id),
                    }),
                    IpNet::V6(n) => g.3.push(Nlri {
                        prefix: *n,
                        path_id: pid(tx_path_id),
                    }),
                }
            }
        }
        let mut out = Vec::new();
        if !wd4.is_empty() {
            out.extend(pack::withdraw_v4(&wd4, &ctx)?);
        }
        if !wd6.is_empty() {
            out.extend(pack::withdraw_v6(&wd6, &ctx)?);
        }
        // In the order the groups were met, so the same work gives the same messages.
        for (attrs, next_hop, v4, v6) in groups {
            if !v4.is_empty() {
                match next_hop {
                    IpAddr::V4(_) => out.extend(pack::announce_v4(&attrs, &v4, &ctx)?),
                    IpAddr::V6(global) => {
                        let nh = NextHop::V6 {
                            global,
                            link_local: None,
                        };
                        out.extend(pack::announce_mp(&attrs, nh, &MpNlri::Ipv4(v4), &ctx)?);
                    }
                }
            }
            if !v6.is_empty() {
                let nh = match next_hop {
                    IpAddr::V6(global) => NextHop::V6 {
                        global,
                        link_local: None,
                    },
                    IpAddr::V4(a) => NextHop::V4(a),
                };
                out.extend(pack::announce_mp(&attrs, nh, &MpNlri::Ipv6(v6), &ctx)?);
            }
        }
        Ok(out)
    }
}

/// One attribute set per distinct content, so that paths exported with equal attributes group
/// into the same UPDATEs. Most arrive already shared (the export memo hands every prefix of a
/// source set the same `Arc`): those are recognised by address without hashing their content.
#[derive(Default)]
struct Interner {
    /// By the address of an `Arc` met before, which is kept alive so the address stays its
    /// own: the canonical set for it.
    seen: FxHashMap<usize, (Arc<Attributes>, Arc<Attributes>)>,
    by_content: HashSet<Arc<Attributes>>,
}

impl Interner {
    fn intern(&mut self, a: Arc<Attributes>) -> Arc<Attributes> {
        let at = Arc::as_ptr(&a) as usize;
        if let Some((_, canon)) = self.seen.get(&at) {
            return canon.clone();
        }
        let canon = match self.by_content.get(&a) {
            Some(c) => c.clone(),
            None => {
                self.by_content.insert(a.clone());
                a.clone()
            }
        };
        self.seen.insert(at, (a, canon.clone()));
        canon
    }
}

fn push_withdraw(
    net: IpNet,
    path_id: Option<u32>,
    wd4: &mut Vec<Nlri<Ipv4Net>>,
    wd6: &mut Vec<Nlri<Ipv6Net>>,
) {
    match net {
        IpNet::V4(n) => wd4.push(Nlri { prefix: n, path_id }),
        IpNet::V6(n) => wd6.push(Nlri { prefix: n, path_id }),
    }
}

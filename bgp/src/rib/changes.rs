//! The change queues: prefixes whose outcome (best path, multipath group) changed, once for the
//! dataplane ([`Rib::take_fib_changes`]) and once for the export pass
//! ([`Rib::run_export_pass`]), each prefix at most once in each queue whatever the churn.
//!
//! Membership lives in the Loc-RIB entry itself, so queuing a change costs no hashing: a flag
//! bit and a push for the dataplane; for the export pass the entry's position in the queue,
//! where the transmit path ids that may have been announced accumulate (RFC 7911 withdrawals).
//! A position is only believed when the queue holds the same key there, so ending every
//! membership at the export pass is just emptying the queue.
//!
//! A prefix whose last path goes while it is queued keeps its (empty) entry in the table until
//! both queues are done with it: it cannot come back as a fresh entry and be queued twice, and
//! the queues hold only keys of entries that exist. Empty entries are invisible to every query
//! (counts, status, table walks). Whichever queue is the last to let go of one removes it:
//! the dataplane queue when it takes it after the export pass, the export pass otherwise,
//! through its `graveyard`, the list of the empty entries only it still holds.

use super::Rib;
use super::path::{Dest, LOCAL, Outcome, PrefixKey, V4Key, V6Key};
use super::tables::TableKey;
use ipnet::IpNet;
use smallvec::SmallVec;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

/// What the dataplane installs for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibRoute {
    /// Next hops of the multipath group, best first; empty for a locally originated prefix.
    pub next_hops: Vec<IpAddr>,
    pub local: bool,
    pub priority: Option<u32>,
}

/// One entry of the change stream: the current state of a prefix whose best path or
/// multipath group changed (`None`: no usable route any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    pub prefix: IpNet,
    pub route: Option<FibRoute>,
}

/// The transmit path ids that may have been announced for a prefix before its change, in the
/// order they were met: up to two in place (transmit ids start at 1, so 0 is none); more in
/// the queue's spill list, whose index the second slot then holds, after [`OldIds::SPILLED`].
/// Eight bytes, so an IPv4 entry of the export queue is sixteen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OldIds([u32; 2]);

impl OldIds {
    /// Not a transmit id: a prefix has far fewer paths.
    const SPILLED: u32 = u32::MAX;

    fn add(&mut self, id: u32, spill: &mut Vec<SmallVec<[u32; 4]>>) {
        match self.0 {
            [Self::SPILLED, at] => {
                let ids = &mut spill[at as usize];
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            [a, b] if a == id || b == id => {}
            [0, _] => self.0[0] = id,
            [_, 0] => self.0[1] = id,
            [a, b] => {
                self.0 = [Self::SPILLED, spill.len() as u32];
                spill.push(SmallVec::from_slice(&[a, b, id]));
            }
        }
    }

    fn ids<'a>(&'a self, spill: &'a [SmallVec<[u32; 4]>]) -> &'a [u32] {
        match &self.0 {
            [Self::SPILLED, at] => &spill[*at as usize],
            [0, _] => &[],
            [_, 0] => &self.0[..1],
            all => all,
        }
    }
}

/// What the export pass takes from the queue of one family: each changed prefix once, with
/// the transmit ids that may have been announced for it.
#[derive(Debug)]
pub(crate) struct ExportBatch<K> {
    entries: Vec<(K, OldIds)>,
    spill: Vec<SmallVec<[u32; 4]>>,
}

impl<K: Copy> ExportBatch<K> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entry `i`: a changed prefix and the transmit ids that may have been announced for it.
    pub fn get(&self, i: usize) -> Option<(K, &[u32])> {
        self.entries
            .get(i)
            .map(|(k, ids)| (*k, ids.ids(&self.spill)))
    }
}

/// The change queues of one family.
#[derive(Debug)]
pub(crate) struct Queues<K> {
    /// For the dataplane, oldest change first.
    fib: VecDeque<K>,
    /// For the export pass, with the transmit path ids that may have been announced since the
    /// last pass.
    export: Vec<(K, OldIds)>,
    /// Where the ids of export entries with more than two of them are.
    spill: Vec<SmallVec<[u32; 4]>>,
    /// Empty entries that only the export queue holds, for the pass to remove.
    graveyard: Vec<K>,
    /// Empty entries in the table (each queued somewhere).
    empty: usize,
}

impl<K> Queues<K> {
    /// Empty entries of this family's table.
    pub fn empty_entries(&self) -> usize {
        self.empty
    }
}

impl<K> Default for Queues<K> {
    fn default() -> Self {
        Queues {
            fib: VecDeque::new(),
            export: Vec::new(),
            spill: Vec::new(),
            graveyard: Vec::new(),
            empty: 0,
        }
    }
}

/// The change queues of both families.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub v4: Queues<V4Key>,
    pub v6: Queues<V6Key>,
}

impl Changes {
    /// Empty entries the tables keep for the queues (not prefixes of the Loc-RIB).
    pub fn empty_entries(&self) -> usize {
        self.v4.empty + self.v6.empty
    }

    pub fn fib_pending(&self) -> usize {
        self.v4.fib.len() + self.v6.fib.len()
    }

    pub fn export_pending(&self) -> bool {
        !self.v4.export.is_empty() || !self.v6.export.is_empty()
    }
}

impl<K: PrefixKey> Queues<K> {
    fn in_export(&self, key: K, dest: &Dest) -> bool {
        self.export
            .get(dest.export_at as usize)
            .is_some_and(|e| e.0 == key)
    }

    /// Queues a prefix whose outcome changed (`before`: the outcome before the change).
    fn push(&mut self, key: K, dest: &mut Dest, before: &Outcome) {
        if dest.queued & Dest::IN_FIB == 0 {
            dest.queued |= Dest::IN_FIB;
            self.fib.push_back(key);
        }
        if self.in_export(key, dest) {
            // Remember every path id that may have been announced since the last pass (a
            // peer in its table walk is sent the table as it is).
            let ids = &mut self.export[dest.export_at as usize].1;
            for o in before {
                ids.add(o.2, &mut self.spill);
            }
        } else {
            // Keys are unique in the queue, which the table bounds: the position fits.
            dest.export_at = self.export.len() as u32;
            let mut ids = OldIds::default();
            for o in before {
                ids.add(o.2, &mut self.spill);
            }
            self.export.push((key, ids));
        }
    }

    /// The bookkeeping after the paths of the entry `dest` at `key` changed and the decision
    /// process ran on them: queues the prefix if its outcome is no longer `before`, and says
    /// whether the entry is to go from the table now (it is empty and in no queue).
    /// `was_empty`: the entry had no path before the change (a new entry had not either, but
    /// is not counted as one the queues kept: pass `false` for it).
    pub fn settle(&mut self, key: K, dest: &mut Dest, before: &Outcome, was_empty: bool) -> bool {
        if !dest.same_outcome(before) {
            self.push(key, dest, before);
        }
        match (was_empty, dest.paths.is_empty()) {
            (false, true) => {
                if dest.queued & Dest::IN_FIB == 0 {
                    if !self.in_export(key, dest) {
                        return true;
                    }
                    self.bury(key, dest);
                }
                self.empty += 1;
            }
            (true, false) => self.empty -= 1,
            _ => {}
        }
        false
    }

    /// Leaves an empty entry that only the export queue holds to the export pass.
    fn bury(&mut self, key: K, dest: &mut Dest) {
        if dest.queued & Dest::IN_GRAVEYARD == 0 {
            dest.queued |= Dest::IN_GRAVEYARD;
            self.graveyard.push(key);
        }
    }

    /// Moves up to `max` changes (counting what `out` holds) from the dataplane queue to `out`,
    /// in their current state.
    fn take_fib(&mut self, table: &mut BTreeMap<K, Dest>, max: usize, out: &mut Vec<RouteChange>) {
        while out.len() < max {
            let Some(key) = self.fib.pop_front() else {
                break;
            };
            let route = match table.entry(key) {
                Entry::Occupied(mut o) => {
                    let dest = o.get_mut();
                    dest.queued &= !Dest::IN_FIB;
                    let route = fib_route(dest);
                    if dest.paths.is_empty() {
                        if self.in_export(key, dest) {
                            self.bury(key, dest);
                        } else {
                            o.remove();
                            self.empty -= 1;
                        }
                    }
                    route
                }
                // Queued keys always have an entry; nothing to install either way.
                Entry::Vacant(_) => None,
            };
            out.push(RouteChange {
                prefix: key.to_net(),
                route,
            });
        }
        if self.fib.is_empty() {
            // The burst is over: give back what it took.
            self.fib.shrink_to(1024);
        }
    }

    /// Empties the export queue, which ends every membership of it, and removes the empty
    /// entries no queue holds any more.
    pub fn take_export(&mut self, table: &mut BTreeMap<K, Dest>) -> ExportBatch<K> {
        let dirty = ExportBatch {
            entries: std::mem::take(&mut self.export),
            spill: std::mem::take(&mut self.spill),
        };
        for key in std::mem::take(&mut self.graveyard) {
            if let Entry::Occupied(mut o) = table.entry(key) {
                let dest = o.get_mut();
                dest.queued &= !Dest::IN_GRAVEYARD;
                if dest.paths.is_empty() && dest.queued & Dest::IN_FIB == 0 {
                    o.remove();
                    self.empty -= 1;
                }
            }
        }
        dirty
    }
}

/// What the dataplane installs for a prefix now, if anything.
pub(crate) fn fib_route(d: &Dest) -> Option<FibRoute> {
    let best = d.best()?;
    Some(FibRoute {
        next_hops: if best.peer == LOCAL {
            Vec::new()
        } else {
            unique_next_hops(d)
        },
        local: best.peer == LOCAL,
        priority: best.attrs.priority,
    })
}

/// The next hops of a multipath group, each once, best first: two paths (say via two route
/// reflectors) to the same next hop are one next hop to the dataplane.
fn unique_next_hops(d: &Dest) -> Vec<IpAddr> {
    let mut hops: Vec<IpAddr> = Vec::with_capacity(d.multipath().len());
    for p in d.multipath() {
        if !hops.contains(&p.attrs.next_hop) {
            hops.push(p.attrs.next_hop);
        }
    }
    hops
}

impl Rib {
    /// The next batch of the change stream: each changed prefix once, in its current state.
    pub fn take_fib_changes(&mut self, max: usize) -> Vec<RouteChange> {
        let mut out = Vec::with_capacity(max.min(self.changes.fib_pending()));
        self.take_fib::<V4Key>(max, &mut out);
        self.take_fib::<V6Key>(max, &mut out);
        out
    }

    fn take_fib<K: TableKey>(&mut self, max: usize, out: &mut Vec<RouteChange>) {
        K::queues(&mut self.changes).take_fib(K::table_mut(&mut self.tables), max, out);
    }

    pub fn fib_changes_pending(&self) -> usize {
        self.changes.fib_pending()
    }

    /// Every usable best route now (for a dataplane that starts, or resynchronises).
    pub fn fib_snapshot(&self) -> Vec<RouteChange> {
        let mut out = Vec::new();
        let mut push = |net: IpNet, d: &Dest| {
            if let Some(route) = fib_route(d) {
                out.push(RouteChange {
                    prefix: net,
                    route: Some(route),
                });
            }
        };
        for (k, d) in &self.tables.v4 {
            push(k.to_net(), d);
        }
        for (k, d) in &self.tables.v6 {
            push(k.to_net(), d);
        }
        out
    }
}

#[cfg(test)]
impl<K: PrefixKey + std::hash::Hash> Queues<K> {
    /// Panics unless the queues and the flags and positions in `table` agree.
    pub(crate) fn check(&self, table: &BTreeMap<K, Dest>) {
        use std::collections::HashSet;
        let fib: HashSet<K> = self.fib.iter().copied().collect();
        assert_eq!(
            fib.len(),
            self.fib.len(),
            "a prefix twice in the dataplane queue"
        );
        let export: HashSet<K> = self.export.iter().map(|e| e.0).collect();
        assert_eq!(
            export.len(),
            self.export.len(),
            "a prefix twice in the export queue"
        );
        let graveyard: HashSet<K> = self.graveyard.iter().copied().collect();
        assert_eq!(
            graveyard.len(),
            self.graveyard.len(),
            "a prefix twice in the graveyard"
        );
        for (i, (k, _)) in self.export.iter().enumerate() {
            let d = table.get(k).expect("an exported key without its entry");
            assert_eq!(d.export_at as usize, i, "{k:?}: wrong position");
        }
        for k in &self.graveyard {
            let d = table.get(k).expect("a graveyard key without its entry");
            assert!(d.queued & Dest::IN_GRAVEYARD != 0);
        }
        let mut empty = 0;
        for (k, d) in table {
            assert_eq!(
                d.queued & Dest::IN_FIB != 0,
                fib.contains(k),
                "{k:?}: dataplane flag"
            );
            assert_eq!(
                self.in_export(*k, d),
                export.contains(k),
                "{k:?}: export position"
            );
            if d.queued & Dest::IN_GRAVEYARD != 0 {
                assert!(graveyard.contains(k), "{k:?}: graveyard flag");
            }
            if d.paths.is_empty() {
                empty += 1;
                assert!(
                    fib.contains(k) || export.contains(k),
                    "{k:?}: empty, in no queue"
                );
                if export.contains(k) && !fib.contains(k) {
                    assert!(
                        graveyard.contains(k),
                        "{k:?}: only exported, not in graveyard"
                    );
                }
            }
        }
        assert_eq!(empty, self.empty, "empty entries");
    }
}

#[cfg(test)]
impl Rib {
    pub(crate) fn check_queues(&self) {
        self.changes.v4.check(&self.tables.v4);
        self.changes.v6.check(&self.tables.v6);
    }

    pub(crate) fn empty_entries(&self) -> usize {
        self.changes.empty_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_ids_keep_each_id_once_in_order() {
        let mut spill = Vec::new();
        let mut a = OldIds::default();
        assert_eq!(a.ids(&spill), &[] as &[u32]);
        for id in [3, 3, 1] {
            a.add(id, &mut spill);
        }
        assert_eq!(a.ids(&spill), &[3, 1]);
        assert!(spill.is_empty());
        let mut b = OldIds::default();
        for id in [2, 5, 2, 7, 5, 9] {
            b.add(id, &mut spill);
        }
        assert_eq!(b.ids(&spill), &[2, 5, 7, 9]);
        a.add(4, &mut spill);
        assert_eq!(a.ids(&spill), &[3, 1, 4]);
        assert_eq!(b.ids(&spill), &[2, 5, 7, 9]);
        let mut c = OldIds::default();
        c.add(6, &mut spill);
        assert_eq!(c.ids(&spill), &[6]);
    }
}

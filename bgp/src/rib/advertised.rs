//! How many prefixes each peer is being sent, counted a slice at a time.
//!
//! The Adj-RIB-Out keeps no per-peer copy of what was sent (see `adj_rib_out`), so the count
//! comes from running the export rules over the Loc-RIB: prefixes times peers evaluations. On
//! a route reflector with a large table and thousands of clients that is tens of millions, far
//! too long to do in one go on the task that routes. An [`AdvertisedWalk`] does it in slices
//! of a bounded number of evaluations, resuming after the last prefix it counted, so the
//! router answers and routes between slices; a status query reads the last finished walk.
//! A table that changes during a walk is counted as the walk meets it.

use super::Rib;
use super::export::ExportMemo;
use super::path::{Dest, PeerId, PrefixKey, V4Key, V6Key};
use super::tables::TableKey;
use std::ops::Bound;

/// A walk counting, for some peers, the prefixes each is sent.
#[derive(Debug, Clone)]
pub struct AdvertisedWalk {
    peers: Vec<PeerId>,
    counts: Vec<usize>,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Next: IPv4 prefixes after this one (`None`: from the first).
    V4(Option<V4Key>),
    V6(Option<V6Key>),
    Done,
}

impl AdvertisedWalk {
    /// A walk for `peers`, from the start of the table.
    pub fn new(peers: Vec<PeerId>) -> AdvertisedWalk {
        AdvertisedWalk {
            counts: vec![0; peers.len()],
            peers,
            stage: Stage::V4(None),
        }
    }

    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Each peer with its count (complete once [`AdvertisedWalk::is_done`]).
    pub fn counts(&self) -> impl Iterator<Item = (PeerId, usize)> + '_ {
        self.peers.iter().copied().zip(self.counts.iter().copied())
    }

    /// Evaluations (prefixes times peers) a whole walk of `rib` costs.
    pub fn cost(&self, rib: &Rib) -> usize {
        rib.tables.len().saturating_mul(self.peers.len().max(1))
    }
}

impl Rib {
    /// Advances `walk` by about `budget` export evaluations (at least one prefix); returns
    /// whether it is done.
    pub fn advertised_step(&self, walk: &mut AdvertisedWalk, budget: usize) -> bool {
        let mut prefixes = (budget / walk.peers.len().max(1)).max(1);
        while prefixes > 0 && !walk.is_done() {
            walk.stage = match walk.stage {
                Stage::V4(after) => match self.count_some::<V4Key>(walk, after, &mut prefixes) {
                    Some(last) => Stage::V4(Some(last)),
                    None => Stage::V6(None),
                },
                Stage::V6(after) => match self.count_some::<V6Key>(walk, after, &mut prefixes) {
                    Some(last) => Stage::V6(Some(last)),
                    None => Stage::Done,
                },
                Stage::Done => Stage::Done,
            };
        }
        walk.is_done()
    }

    /// Counts up to `*left` prefixes of table `K` after `after`; returns the last one counted,
    /// or `None` once the table is done.
    fn count_some<K: TableKey + PrefixKey>(
        &self,
        walk: &mut AdvertisedWalk,
        after: Option<K>,
        left: &mut usize,
    ) -> Option<K> {
        let table = K::table(&self.tables);
        let range = match after {
            None => table.range(..),
            Some(k) => table.range((Bound::Excluded(k), Bound::Unbounded)),
        };
        let mut memos: Vec<ExportMemo> = walk.peers.iter().map(|_| ExportMemo::default()).collect();
        let mut last = None;
        // Empty entries are kept for the change queues only: not prefixes of the table.
        for (k, dest) in range.filter(|(_, d): &(&K, &Dest)| !d.paths.is_empty()) {
            if *left == 0 {
                return last;
            }
            let net = k.to_net();
            for ((id, n), memo) in walk
                .peers
                .iter()
                .zip(walk.counts.iter_mut())
                .zip(memos.iter_mut())
            {
                *n += usize::from(!self.export_dest(net, Some(dest), *id, memo).is_empty());
            }
            *left -= 1;
            last = Some(*k);
        }
        // The table ran out before the budget did.
        None
    }
}

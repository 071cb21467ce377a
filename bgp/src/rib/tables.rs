//! The Loc-RIB tables, one ordered map per family, and generic access to them and to their
//! change queues.

use super::changes::{Changes, Queues};
use super::path::{Dest, PrefixKey, V4Key, V6Key};
use std::collections::BTreeMap;
use std::collections::btree_map::Range;

#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub v4: BTreeMap<V4Key, Dest>,
    pub v6: BTreeMap<V6Key, Dest>,
}

/// A key type together with its table and its change queues.
pub(crate) trait TableKey: PrefixKey {
    fn table(t: &Tables) -> &BTreeMap<Self, Dest>;
    fn table_mut(t: &mut Tables) -> &mut BTreeMap<Self, Dest>;
    fn queues(c: &mut Changes) -> &mut Queues<Self>;
}

impl TableKey for V4Key {
    fn table(t: &Tables) -> &BTreeMap<Self, Dest> {
        &t.v4
    }
    fn table_mut(t: &mut Tables) -> &mut BTreeMap<Self, Dest> {
        &mut t.v4
    }
    fn queues(c: &mut Changes) -> &mut Queues<Self> {
        &mut c.v4
    }
}

impl TableKey for V6Key {
    fn table(t: &Tables) -> &BTreeMap<Self, Dest> {
        &t.v6
    }
    fn table_mut(t: &mut Tables) -> &mut BTreeMap<Self, Dest> {
        &mut t.v6
    }
    fn queues(c: &mut Changes) -> &mut Queues<Self> {
        &mut c.v6
    }
}

/// Steps a [`Finder`] walks forward before it searches the tree afresh.
const FINDER_STEPS: usize = 8;

/// Looks up many keys of one table, walking forward from the last key found when the next one
/// is a few entries after it. Changed prefixes mostly come in runs of neighbours (the prefixes
/// of one UPDATE), so a batch's lookups mostly cost a step instead of a descent of the tree.
pub(crate) struct Finder<'a, K> {
    table: &'a BTreeMap<K, Dest>,
    /// The rest of the table after the last lookup (none before the first).
    rest: Option<Range<'a, K, Dest>>,
    /// Its first entry.
    next: Option<Entry<'a, K>>,
}

type Entry<'a, K> = (&'a K, &'a Dest);

impl<'a, K: Ord + Copy> Finder<'a, K> {
    pub fn new(table: &'a BTreeMap<K, Dest>) -> Self {
        Finder {
            table,
            rest: None,
            next: None,
        }
    }

    pub fn find(&mut self, key: K) -> Option<&'a Dest> {
        if let Some(rest) = &mut self.rest {
            let mut steps = 0;
            while let Some((k, d)) = self.next {
                if *k == key {
                    self.next = rest.next();
                    return Some(d);
                }
                if *k > key || steps == FINDER_STEPS {
                    break;
                }
                self.next = rest.next();
                steps += 1;
            }
        }
        // Behind the last key, too far ahead, or absent: a search answers all three.
        let mut rest = self.table.range(key..);
        let first = rest.next();
        let found = match first {
            Some((k, d)) if *k == key => {
                self.next = rest.next();
                Some(d)
            }
            _ => {
                self.next = first;
                None
            }
        };
        self.rest = Some(rest);
        found
    }
}

impl Tables {
    /// Entries, empty ones kept for the change queues included.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

//! The Loc-RIB tables, one ordered map per family, and generic access to them and to their
//! change queues.

use super::changes::{Changes, Queues};
use super::path::{Dest, PrefixKey, V4Key, V6Key};
use std::collections::BTreeMap;

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

impl Tables {
    /// Entries, empty ones kept for the change queues included.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

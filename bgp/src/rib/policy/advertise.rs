//! Communities attached on export by prefix: BGPConfiguration `prefixAdvertisements`.
//!
//! calico-node renders them as BIRD's `apply_communities()`: for each entry, in order,
//! `if (net ~ cidr) then { bgp_community.add(..); bgp_large_community.add(..); }`. So an entry
//! applies to its cidr **and every prefix inside it** (a /26 block under a /16 entry gets the
//! /16's communities), and every matching entry applies, not only the first or the most
//! specific. Adding a community a route already carries changes nothing.
//!
//! `apply_communities()` is called from `calico_export_to_bgp_peers()`, the default export
//! policy, which runs only when no BGPFilter rule accepted or rejected the route
//! ([`super::Verdict::NoMatch`]); a route accepted by a BGPFilter rule is exported without
//! these communities. Calico applies them to every route that reaches the default export
//! policy, whether this node originated it or learned it from a peer.

use std::borrow::Cow;

use ipnet::IpNet;

use super::CommunityValue;
use super::prefix::Bits;
use crate::wire::{Attributes, Community, LargeCommunity};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    cidr: IpNet,
    bits: Bits,
    communities: Vec<Community>,
    large: Vec<LargeCommunity>,
}

/// The `prefixAdvertisements` of one node, with community names already resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advertisements {
    entries: Vec<Entry>,
}

impl Advertisements {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry: routes inside `cidr` get `values` on export. Entries apply in the order
    /// they are pushed.
    pub fn push(&mut self, cidr: IpNet, values: impl IntoIterator<Item = CommunityValue>) {
        let mut entry = Entry {
            cidr: cidr.trunc(),
            bits: Bits::of(&cidr),
            communities: Vec::new(),
            large: Vec::new(),
        };
        for v in values {
            match v {
                CommunityValue::Standard(c) => push_new(&mut entry.communities, c),
                CommunityValue::Large(c) => push_new(&mut entry.large, c),
            }
        }
        self.entries.push(entry);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries' cidrs, in order.
    pub fn cidrs(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.entries.iter().map(|e| e.cidr)
    }

    /// The standard and large communities for a route to `prefix`: those of every entry whose
    /// cidr contains it (or equals it), each once, in entry order.
    pub fn communities_for(&self, prefix: IpNet) -> (Vec<Community>, Vec<LargeCommunity>) {
        let p = Bits::of(&prefix);
        let (mut std, mut large) = (Vec::new(), Vec::new());
        for e in self.entries.iter().filter(|e| p.within(e.bits)) {
            e.communities.iter().for_each(|&c| push_new(&mut std, c));
            e.large.iter().for_each(|&c| push_new(&mut large, c));
        }
        (std, large)
    }

    /// Adds to `attrs` the communities [`Self::communities_for`] gives and it lacks. Returns
    /// whether anything was added; when nothing is, `attrs` is not copied.
    pub fn apply(&self, prefix: IpNet, attrs: &mut Cow<'_, Attributes>) -> bool {
        let p = Bits::of(&prefix);
        let mut changed = false;
        for e in self.entries.iter().filter(|e| p.within(e.bits)) {
            for c in &e.communities {
                if !attrs.communities.contains(c) {
                    attrs.to_mut().communities.push(*c);
                    changed = true;
                }
            }
            for c in &e.large {
                if !attrs.large_communities.contains(c) {
                    attrs.to_mut().large_communities.push(*c);
                    changed = true;
                }
            }
        }
        changed
    }
}

fn push_new<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

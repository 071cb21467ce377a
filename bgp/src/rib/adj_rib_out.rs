//! What each peer is still owed: changed prefixes (coalesced) and, after the session came up,
//! a walk over the whole table followed by End-of-RIB. UPDATEs are built when the peer can
//! take them, packing every prefix that shares attributes into one message.

use super::Rib;
use super::changes::ExportBatch;
use super::export::OutRoute;
use super::path::{Dest, PeerId, PrefixKey, V4Key, V6Key};
use super::tables::TableKey;
use crate::wire::{EncodeError, Family, MpNlri, NextHop, Nlri, Update, pack};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

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
    /// Changed prefixes not yet sent, with the transmit path ids that may have been announced
    /// for them before (to withdraw those no longer current, RFC 7911).
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
    /// The initial table: every prefix, then End-of-RIB.
    pub fn start_dump(&mut self) {
        self.walk_v4 = Walk::After(None);
        self.walk_v6 = Walk::After(None);
        self.eor_v4 = true;
        self.eor_v6 = true;
        self.walk_withdraws = false;
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

    pub fn has_work(&self) -> bool {
        !self.pending.is_empty()
            || self.walk_v4 != Walk::Idle
            || self.walk_v6 != Walk::Idle
            || self.eor_v4
            || self.eor_v6
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
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

/// Adds changed prefixes to a peer's pending set, except those its table walk will visit.
fn hand_over<K: PrefixKey>(out: &mut AdjRibOut, dirty: &ExportBatch<K>) {
    for (key, old_ids) in dirty.iter() {
        let net = key.to_net();
        if out.covered(net) {
            continue;
        }
        let entry = out.pending.entry(net).or_default();
        for id in old_ids {
            if !entry.contains(id) {
                entry.push(*id);
            }
        }
    }
}

impl Rib {
    /// Hands the prefixes whose outcome changed since the last pass to every Established
    /// peer. Call after a batch of imports, before [`Rib::take_updates`].
    pub fn run_export_pass(&mut self) {
        if !self.changes.export_pending() {
            return;
        }
        let dirty_v4 = self.changes.v4.take_export(&mut self.tables.v4);
        let dirty_v6 = self.changes.v6.take_export(&mut self.tables.v6);
        for peer in self
            .peers
            .iter_mut()
            .flatten()
            .filter(|p| p.session.is_some())
        {
            hand_over(&mut peer.out, &dirty_v4);
            hand_over(&mut peer.out, &dirty_v6);
        }
    }

    /// Whether a peer has anything left to be sent.
    pub fn has_updates(&self, id: PeerId) -> bool {
        self.peer(id)
            .is_some_and(|p| p.session.is_some() && p.out.has_work())
    }

    /// Prefixes waiting for a peer that has not taken them yet (a slow peer's backlog).
    pub fn backlog(&self, id: PeerId) -> usize {
        self.peer(id).map_or(0, |p| p.out.pending_len())
    }

    /// Up to `max_prefixes` prefixes' worth of UPDATEs for a peer: changes first, then the
    /// initial table walk, then End-of-RIB per family once the walk is done.
    pub fn take_updates(
        &mut self,
        id: PeerId,
        max_prefixes: usize,
    ) -> Result<Vec<Update>, EncodeError> {
        let Some(peer) = self.peer_mut(id) else {
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
        // Announcements grouped by attributes and next hop, so they share messages.
        let mut groups: HashMap<
            (Arc<crate::wire::Attributes>, IpAddr),
            (Vec<Nlri<Ipv4Net>>, Vec<Nlri<Ipv6Net>>),
        > = HashMap::new();
        let mut wd4: Vec<Nlri<Ipv4Net>> = Vec::new();
        let mut wd6: Vec<Nlri<Ipv6Net>> = Vec::new();
        for (net, old_ids) in work {
            let routes = self.export_prefix(*net, id);
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
                let g = groups.entry((attrs, next_hop)).or_default();
                match net {
                    IpNet::V4(n) => g.0.push(Nlri {
                        prefix: *n,
                        path_id: pid(tx_path_id),
                    }),
                    IpNet::V6(n) => g.1.push(Nlri {
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
        for ((attrs, next_hop), (v4, v6)) in groups {
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

//! Import: an UPDATE from a peer becomes paths in the Loc-RIB, after the checks RFC 4271,
//! RFC 4456 and RFC 7606 require and the peer's import policy.

use super::path::{PeerId, RouteAttrs, V4Key, V6Key};
use super::tables::TableKey;
use super::{Peer, Rib};
use crate::wire::{Attributes, Family, MpNlri, NextHop, Update};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

/// The most turned-away paths counted per peer and session (about 40 MiB of keys).
pub const MAX_FILTERED_KEYS: usize = 1 << 20;

/// Why an UPDATE stopped the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Over the configured limit: the session must stop with Cease / Maximum Number of
    /// Prefixes Reached (RFC 4486).
    #[error("{count} prefixes exceed the limit of {limit}")]
    MaxPrefixes { limit: u32, count: u32 },
}

/// What an UPDATE did besides changing routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// The UPDATE was this family's End-of-RIB: the stale paths of that family are gone.
    pub end_of_rib: Option<Family>,
    pub announced: usize,
    pub withdrawn: usize,
}

impl Rib {
    /// Why the attributes of an UPDATE make its routes unusable, if they do.
    fn loop_or_martian(
        &self,
        peer: &Peer,
        a: &Attributes,
        next_hop: IpAddr,
    ) -> Option<&'static str> {
        let ebgp = peer.cfg.peer_as != self.cfg.local_as;
        if let Some(path) = &a.as_path {
            // RFC 4271 section 9.1.2: a route with our own AS in its path is a loop, unless the
            // operator allows it (Calico's numAllowedLocalASNumbers).
            if ebgp && path.count(self.cfg.local_as) > usize::from(peer.cfg.allow_own_as) {
                return Some("own AS in AS_PATH");
            }
            // RFC 4271 section 6.3 (and RFC 7606 treat-as-withdraw): an eBGP peer's path must
            // start with its AS.
            if ebgp && path.first_as().is_some_and(|f| f != peer.cfg.peer_as) {
                return Some("AS_PATH does not start with the peer's AS");
            }
        }
        if !ebgp {
            // RFC 4456 section 8.
            if a.originator_id == Some(self.cfg.router_id) {
                return Some("ORIGINATOR_ID is our router id");
            }
            if self
                .cfg
                .cluster_id
                .is_some_and(|c| a.cluster_list.contains(&c))
            {
                return Some("CLUSTER_LIST holds our cluster id");
            }
        }
        if next_hop.is_unspecified() || self.local_addresses.contains(&next_hop) {
            return Some("next hop is this node");
        }
        None
    }

    /// The attributes as stored: what an eBGP peer may not set is dropped (RFC 4271 section
    /// 5.1.5 LOCAL_PREF; RFC 4456 ORIGINATOR_ID and CLUSTER_LIST are iBGP-only).
    fn stored_attrs(&self, peer: &Peer, mut a: Attributes) -> Attributes {
        if peer.cfg.peer_as != self.cfg.local_as {
            a.local_pref = None;
            a.originator_id = None;
            a.cluster_list.clear();
        }
        // The 2-octet view is useless once merged (RFC 6793 section 4.2.3).
        if let Some(p) = a.effective_as_path() {
            a.as_path = Some(p);
        }
        a.as4_path = None;
        a.aggregator = a.effective_aggregator();
        a.as4_aggregator = None;
        a
    }

    /// Applies an UPDATE from a peer. A treat-as-withdraw UPDATE (RFC 7606) withdraws what it
    /// carries; a looped or martian route is withdrawn the same way.
    pub fn apply_update(&mut self, id: PeerId, u: &Update) -> Result<Imported, ImportError> {
        let Some(peer) = self.peer(id) else {
            return Ok(Imported::default());
        };
        let mut outcome = Imported::default();
        if let Some(family) = u.as_end_of_rib() {
            // RFC 4724 section 4.2: End-of-RIB ends the wait for this family's refresh.
            self.drop_stale_family(id, family);
            outcome.end_of_rib = Some(family);
            return Ok(outcome);
        }
        let withdraw_all = u.treat_as_withdraw();
        let stored = self.stored_attrs(peer, u.attrs.clone());

        // IPv4 in the NLRI field, with NEXT_HOP.
        let v4_attrs = match u.attrs.next_hop {
            Some(nh) if !u.nlri.is_empty() && !withdraw_all => {
                let nh = IpAddr::V4(nh);
                match self.loop_or_martian(peer, &stored, nh) {
                    None => Some(Arc::new(RouteAttrs::new(stored.clone(), nh))),
                    Some(why) => {
                        tracing::debug!(peer = %peer.cfg.address, why, "UPDATE ignored");
                        None
                    }
                }
            }
            _ => None,
        };
        // MP_REACH_NLRI, with its own next hop.
        let mp_attrs = match &u.mp_reach {
            Some(reach) if !withdraw_all => {
                let (nh, ll) = match reach.next_hop {
                    NextHop::V4(a) => (IpAddr::V4(a), None),
                    NextHop::V6 { global, link_local } => (IpAddr::V6(global), link_local),
                };
                match self.loop_or_martian(peer, &stored, nh) {
                    None => {
                        let mut ra = RouteAttrs::new(stored, nh);
                        ra.link_local = ll;
                        Some(Arc::new(ra))
                    }
                    Some(why) => {
                        tracing::debug!(peer = %peer.cfg.address, why, "UPDATE ignored");
                        None
                    }
                }
            }
            _ => None,
        };

        for n in &u.withdrawn {
            let path_id = n.path_id.unwrap_or(0);
            self.note_filtered(id, IpNet::V4(n.prefix), path_id, false);
            self.set_path(V4Key::new(n.prefix), id, path_id, None);
            outcome.withdrawn += 1;
        }
        if let Some(unreach) = &u.mp_unreach {
            outcome.withdrawn += self.apply_mp(id, &unreach.nlri, None, false);
        }
        // RFC 4486 Maximum Number of Prefixes: an UPDATE that would take the peer over its limit
        // is not applied at all (the session is stopped), so none of its routes reaches the
        // dataplane or other peers in the meantime.
        if let Some(limit) = self.peer(id).and_then(|p| p.cfg.max_prefixes) {
            let new = self.new_paths(id, u, v4_attrs.is_some(), mp_attrs.is_some());
            let count = self.peer_path_count(id) + new as u32;
            if count > limit {
                return Err(ImportError::MaxPrefixes { limit, count });
            }
        }
        for n in &u.nlri {
            let (prefix, path_id) = (IpNet::V4(n.prefix), n.path_id.unwrap_or(0));
            let attrs = v4_attrs
                .as_ref()
                .and_then(|a| self.import_policy(id, prefix, a));
            if attrs.is_some() {
                outcome.announced += 1;
            } else {
                outcome.withdrawn += 1;
            }
            self.note_filtered(id, prefix, path_id, attrs.is_none() && !withdraw_all);
            self.set_path(V4Key::new(n.prefix), id, path_id, attrs);
        }
        if let Some(reach) = &u.mp_reach {
            let n = self.apply_mp(id, &reach.nlri, mp_attrs.as_ref(), !withdraw_all);
            if mp_attrs.is_some() {
                outcome.announced += n;
            } else {
                outcome.withdrawn += n;
            }
        }
        Ok(outcome)
    }

    /// Applies the prefixes of an MP attribute; returns how many. `announced`: they were
    /// sent as routes (MP_REACH_NLRI, not treated as withdrawn), so what import turns away
    /// counts as filtered.
    fn apply_mp(
        &mut self,
        id: PeerId,
        nlri: &MpNlri,
        attrs: Option<&Arc<RouteAttrs>>,
        announced: bool,
    ) -> usize {
        match nlri {
            MpNlri::Ipv4(v) => {
                for n in v {
                    let (prefix, path_id) = (IpNet::V4(n.prefix), n.path_id.unwrap_or(0));
                    let a = attrs.and_then(|a| self.import_policy(id, prefix, a));
                    self.note_filtered(id, prefix, path_id, announced && a.is_none());
                    self.set_path(V4Key::new(n.prefix), id, path_id, a);
                }
                v.len()
            }
            MpNlri::Ipv6(v) => {
                for n in v {
                    let (prefix, path_id) = (IpNet::V6(n.prefix), n.path_id.unwrap_or(0));
                    let a = attrs.and_then(|a| self.import_policy(id, prefix, a));
                    self.note_filtered(id, prefix, path_id, announced && a.is_none());
                    self.set_path(V6Key::new(n.prefix), id, path_id, a);
                }
                v.len()
            }
        }
    }

    /// Records whether the peer's latest word on a path is an announcement import turned
    /// away. Nothing is hashed while the peer has nothing filtered and this is not a rejection,
    /// the common case on a busy session.
    /// A peer cannot make the set grow past [`MAX_FILTERED_KEYS`] by announcing what is
    /// rejected: beyond it, further rejections are not counted (`received` is then a lower
    /// bound).
    fn note_filtered(&mut self, id: PeerId, prefix: IpNet, path_id: u32, filtered: bool) {
        let Some(p) = self.peer_mut(id) else { return };
        if filtered {
            if p.filtered.len() < MAX_FILTERED_KEYS {
                p.filtered.insert((prefix, path_id));
            }
        } else if !p.filtered.is_empty() {
            p.filtered.remove(&(prefix, path_id));
        }
    }

    /// How many paths the announcements of `u` would add for the peer (paths it already has
    /// are replaced, not added).
    fn new_paths(&self, id: PeerId, u: &Update, v4: bool, mp: bool) -> usize {
        fn unknown<K: TableKey>(rib: &Rib, key: K, id: PeerId, rx: u32) -> bool {
            !K::table(&rib.tables)
                .get(&key)
                .is_some_and(|d| d.paths.iter().any(|p| p.peer == id && p.rx_path_id == rx))
        }
        let mut n = 0;
        if v4 {
            n += u
                .nlri
                .iter()
                .filter(|x| unknown(self, V4Key::new(x.prefix), id, x.path_id.unwrap_or(0)))
                .count();
        }
        if let (true, Some(reach)) = (mp, &u.mp_reach) {
            n += match &reach.nlri {
                MpNlri::Ipv4(v) => v
                    .iter()
                    .filter(|x| unknown(self, V4Key::new(x.prefix), id, x.path_id.unwrap_or(0)))
                    .count(),
                MpNlri::Ipv6(v) => v
                    .iter()
                    .filter(|x| unknown(self, V6Key::new(x.prefix), id, x.path_id.unwrap_or(0)))
                    .count(),
            };
        }
        n
    }

    /// The peer's import filters (Calico BGPFilter importV4/importV6): `None` rejects.
    fn import_policy(
        &self,
        id: PeerId,
        prefix: IpNet,
        attrs: &Arc<RouteAttrs>,
    ) -> Option<Arc<RouteAttrs>> {
        let peer = self.peer(id)?;
        super::policy_glue::import(&peer.cfg, self.cfg.local_as, prefix, attrs)
    }

    fn drop_stale_family(&mut self, id: PeerId, family: Family) {
        match family {
            Family::Ipv4Unicast => self.drop_paths_in::<V4Key>(id, |p| p.stale),
            Family::Ipv6Unicast => self.drop_paths_in::<V6Key>(id, |p| p.stale),
        }
    }
}

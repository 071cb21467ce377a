//! Export: which paths a peer is sent and with which attributes.
//!
//! Rules, in order: never back to the peer a path came from; iBGP-learned paths go to iBGP
//! peers only by route reflection (RFC 4456 section 6: a client's routes to everyone, a
//! non-client's to clients only), never otherwise (the full mesh); the well-known communities
//! NO_ADVERTISE and NO_EXPORT (RFC 1997); no path to an eBGP peer whose AS is in it, nor to
//! the iBGP peer that originated it (RFC 4456 section 8, applied by the sender too). Then the
//! attributes are rewritten for the peer (RFC 4271 section 5.1: AS_PATH prepend and next hop
//! toward eBGP, LOCAL_PREF toward iBGP; RFC 4456 ORIGINATOR_ID and CLUSTER_LIST when
//! reflecting). The peer's export policy runs between the two (see `policy_glue`).

use super::path::{Dest, LOCAL, Path, PeerId};
use super::{NextHopMode, Peer, Rib};
use crate::wire::{Attributes, Community, Family};
use ipnet::IpNet;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What one destination is sent for paths that share a source attribute set, computed once
/// for all of their prefixes: without an export filter, and for a learned path (this node's
/// own get prefix-dependent `prefixAdvertisements` communities), the outcome of
/// [`Rib::export_path`] depends on the source set, the source peer and the family only. A
/// reflector passing a feeder's 100,000 prefixes on then builds one attribute set, not
/// 100,000. Keys are `Arc` addresses, valid while the RIB is borrowed (no path can go).
#[derive(Default)]
pub(crate) struct ExportMemo {
    done: FxHashMap<MemoKey, Option<(Arc<Attributes>, IpAddr)>>,
}

/// The source set's address, the source peer, the family.
type MemoKey = (usize, PeerId, Family);

/// A path as one peer is sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutRoute {
    pub tx_path_id: u32,
    pub attrs: Arc<Attributes>,
    pub next_hop: IpAddr,
}

impl Rib {
    /// Whether `p` may go to `dst` at all (before attributes are considered).
    fn may_send(&self, p: &Path, dst_id: u32, dst: &Peer) -> bool {
        if p.peer == dst_id {
            return false;
        }
        let local_as = self.cfg.local_as;
        let dst_ibgp = dst.cfg.peer_as == local_as;
        let a = &p.attrs.attrs;
        if a.communities.contains(&Community::NO_ADVERTISE) {
            return false;
        }
        if !dst_ibgp && a.communities.contains(&Community::NO_EXPORT) {
            return false;
        }
        if p.peer == LOCAL {
            return true;
        }
        let Some(src) = self.peer(p.peer) else {
            return false;
        };
        let src_ibgp = src.cfg.peer_as == local_as;
        if dst_ibgp {
            if src_ibgp {
                match self.cfg.cluster_id {
                    // RFC 4456 section 6.
                    Some(_) => {
                        if !(src.cfg.rr_client || dst.cfg.rr_client) {
                            return false;
                        }
                    }
                    // A full mesh: every iBGP peer heard it from the source already.
                    None => return false,
                }
            }
            let originator = a.originator_id.unwrap_or(src.bgp_id);
            if dst.session.as_ref().is_some_and(|s| s.bgp_id == originator) {
                return false;
            }
        } else if a
            .as_path
            .as_ref()
            .is_some_and(|path| path.contains(dst.cfg.peer_as))
        {
            return false;
        }
        true
    }

    /// Our next hop toward `dst` for a prefix of `family`.
    fn next_hop_self(dst: &Peer, family: Family) -> Option<IpAddr> {
        let local = dst.session.as_ref().and_then(|s| s.local_address);
        match family {
            Family::Ipv4Unicast => dst
                .cfg
                .next_hop_v4
                .map(IpAddr::V4)
                .or(local.filter(IpAddr::is_ipv4))
                .or_else(|| {
                    // RFC 8950: an IPv4 prefix through an IPv6 next hop, when negotiated.
                    let enh = dst.session.as_ref().is_some_and(|s| s.extended_next_hop);
                    enh.then(|| {
                        dst.cfg
                            .next_hop_v6
                            .map(IpAddr::V6)
                            .or(local.filter(IpAddr::is_ipv6))
                    })
                    .flatten()
                }),
            Family::Ipv6Unicast => dst
                .cfg
                .next_hop_v6
                .map(IpAddr::V6)
                .or(local.filter(IpAddr::is_ipv6)),
        }
    }

    /// The attributes `dst` is sent for path `p` of `prefix`, or `None` when it is not sent.
    pub(crate) fn export_path(&self, prefix: IpNet, p: &Path, dst_id: u32) -> Option<OutRoute> {
        let dst = self.peer(dst_id)?;
        if !self.may_send(p, dst_id, dst) {
            return None;
        }
        let local_as = self.cfg.local_as;
        let dst_ibgp = dst.cfg.peer_as == local_as;
        let family = match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        };
        let src = (p.peer != LOCAL).then(|| self.peer(p.peer)).flatten();
        let src_ibgp = src.is_some_and(|s| s.cfg.peer_as == local_as);
        let exported = super::policy_glue::export(self, dst, prefix, p)?;
        let mut a = exported.attrs.into_owned();
        let keep = p.attrs.next_hop;
        let self_nh = Self::next_hop_self(dst, family);
        let next_hop = if p.peer == LOCAL {
            self_nh?
        } else {
            match (dst.cfg.next_hop_mode, dst_ibgp) {
                (NextHopMode::Keep, _) | (NextHopMode::Auto, true) => keep,
                (NextHopMode::SelfAddr, _) | (NextHopMode::Auto, false) => self_nh?,
            }
        };
        if family == Family::Ipv4Unicast
            && next_hop.is_ipv6()
            && !dst.session.as_ref().is_some_and(|s| s.extended_next_hop)
        {
            return None;
        }
        if dst_ibgp {
            // An export `setPriority` travels as LOCAL_PREF, as calico-node carries it.
            a.local_pref = Some(match exported.priority {
                Some(priority) => super::policy::local_pref_for_priority(priority),
                None => p.attrs.local_pref(),
            });
            if src_ibgp {
                // RFC 4456 section 8: the reflector records where the route entered the AS and
                // that it passed this cluster.
                if a.originator_id.is_none() {
                    a.originator_id = src.map(|s| s.bgp_id);
                }
                if let Some(c) = self.cfg.cluster_id {
                    a.cluster_list.insert(0, c);
                }
            }
        } else {
            a.as_path
                .get_or_insert_with(Default::default)
                .prepend(local_as);
            a.local_pref = None;
            a.originator_id = None;
            a.cluster_list.clear();
            // RFC 4271 section 5.1.4: a MED learned from another AS is not passed on.
            if p.peer != LOCAL {
                a.med = None;
            }
        }
        a.next_hop = match next_hop {
            IpAddr::V4(v4) if family == Family::Ipv4Unicast => Some(v4),
            _ => None,
        };
        Some(OutRoute {
            tx_path_id: p.tx_path_id,
            attrs: Arc::new(a),
            next_hop,
        })
    }

    /// [`Rib::export_dest`] looking the prefix up (tests compare UPDATEs heard with it).
    #[cfg(test)]
    pub(crate) fn export_prefix(
        &self,
        prefix: IpNet,
        dst_id: u32,
    ) -> smallvec::SmallVec<[OutRoute; 1]> {
        let dest = match prefix {
            IpNet::V4(n) => self.tables.v4.get(&super::path::V4Key::new(n)),
            IpNet::V6(n) => self.tables.v6.get(&super::path::V6Key::new(n)),
        };
        self.export_dest(prefix, dest, dst_id, &mut ExportMemo::default())
    }

    /// What `dst` is sent for a prefix now: the best path, or with ADD-PATH every path of the
    /// multipath group (RFC 7911), so that the peer can build the same ECMP group. `dest` is
    /// the prefix's table entry, found by the caller; `memo` holds what was worked out for
    /// `dst_id` before (one memo per destination).
    pub(crate) fn export_dest(
        &self,
        prefix: IpNet,
        dest: Option<&Dest>,
        dst_id: u32,
        memo: &mut ExportMemo,
    ) -> smallvec::SmallVec<[OutRoute; 1]> {
        let mut out = smallvec::SmallVec::new();
        let Some(dst) = self.peer(dst_id) else {
            return out;
        };
        let Some(session) = &dst.session else {
            return out;
        };
        let family = match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        };
        if !session.families.contains(&family) {
            return out;
        }
        let Some(dest) = dest else {
            return out;
        };
        let paths = if session.tx.add_path.get(family) {
            dest.multipath()
        } else {
            dest.multipath().get(..1).unwrap_or_default()
        };
        let memo_ok = dst.cfg.filters.is_empty();
        for p in paths {
            if !memo_ok || p.peer == LOCAL {
                out.extend(self.export_path(prefix, p, dst_id));
                continue;
            }
            let key = (Arc::as_ptr(&p.attrs) as usize, p.peer, family);
            let done = memo.done.entry(key).or_insert_with(|| {
                self.export_path(prefix, p, dst_id)
                    .map(|r| (r.attrs, r.next_hop))
            });
            if let Some((attrs, next_hop)) = done {
                out.push(OutRoute {
                    tx_path_id: p.tx_path_id,
                    attrs: attrs.clone(),
                    next_hop: *next_hop,
                });
            }
        }
        out
    }
}

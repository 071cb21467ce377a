//! Where the RIB consults the BGPFilter engine ([`super::policy`]), in the order calico-node's
//! BIRD configuration does: on import the peer's filters decide (no match accepts); on export
//! the protocol's own rules run first (in `export.rs`), then the peer's filters, and only a
//! route no filter rule matched goes through the default export policy, which is where
//! `prefixAdvertisements` add their communities to this node's own routes. The session's own
//! rewriting (next hop, AS prepend, LOCAL_PREF) comes after.

use super::path::{LOCAL, Path, RouteAttrs};
use super::policy::{
    self, Direction, NORMAL_ROUTE_PRIORITY, PeerType, RouteContext, Verdict,
    priority_from_local_pref,
};
use super::{Peer, Rib, RibPeer};
use crate::wire::Attributes;
use ipnet::IpNet;
use std::borrow::Cow;
use std::sync::Arc;

fn peer_type(peer: &RibPeer, local_as: u32) -> PeerType {
    if peer.peer_as == local_as {
        PeerType::Ibgp
    } else {
        PeerType::Ebgp
    }
}

/// The attributes a received path is stored with, or `None` when a filter rejects it.
pub(crate) fn import(
    peer: &RibPeer,
    local_as: u32,
    prefix: IpNet,
    attrs: &Arc<RouteAttrs>,
) -> Option<Arc<RouteAttrs>> {
    if peer.filters.is_empty() {
        return Some(attrs.clone());
    }
    let ctx = RouteContext {
        prefix,
        attrs: &attrs.attrs,
        from_peer: true,
        peer_type: peer_type(peer, local_as),
        // As calico-node's import filter: a route's priority is what its LOCAL_PREF says
        // (eBGP routes carry none: the normal priority).
        priority: Some(
            attrs
                .priority
                .unwrap_or_else(|| priority_from_local_pref(attrs.attrs.local_pref)),
        ),
    };
    match policy::evaluate(&peer.filters, Direction::Import, &ctx) {
        (Verdict::Reject, _) => None,
        (Verdict::NoMatch, _) => Some(attrs.clone()),
        (Verdict::Accept { priority }, Cow::Borrowed(_)) if priority.is_none() => {
            Some(attrs.clone())
        }
        (Verdict::Accept { priority }, a) => {
            let mut ra = RouteAttrs::clone(attrs);
            ra.attrs = a.into_owned();
            ra.priority = priority.or(attrs.priority);
            Some(Arc::new(ra))
        }
    }
}

/// What export policy made of a path.
pub(crate) struct Exported<'a> {
    pub attrs: Cow<'a, Attributes>,
    /// A `setPriority` of the export filter: iBGP peers are told it as LOCAL_PREF.
    pub priority: Option<u32>,
}

/// The attributes path `p` of `prefix` leaves with toward `dst`, before the session's own
/// rewriting, or `None` when a filter rejects it.
pub(crate) fn export<'a>(
    rib: &Rib,
    dst: &Peer,
    prefix: IpNet,
    p: &'a Path,
) -> Option<Exported<'a>> {
    let local_as = rib.cfg.local_as;
    let mut attrs = Cow::Borrowed(&p.attrs.attrs);
    let mut default_policy = true;
    let mut set_priority = None;
    if !dst.cfg.filters.is_empty() {
        let ctx = RouteContext {
            prefix,
            attrs: &p.attrs.attrs,
            from_peer: p.peer != LOCAL,
            peer_type: peer_type(&dst.cfg, local_as),
            // The priority the route was installed with; the normal one when none was set.
            priority: Some(p.attrs.priority.unwrap_or(NORMAL_ROUTE_PRIORITY)),
        };
        match policy::evaluate(&dst.cfg.filters, Direction::Export, &ctx) {
            (Verdict::Reject, _) => return None,
            (Verdict::Accept { priority }, a) => {
                attrs = a;
                set_priority = priority;
                default_policy = false;
            }
            (Verdict::NoMatch, _) => {}
        }
    }
    if default_policy && p.peer == LOCAL {
        rib.cfg.advertisements.apply(prefix, &mut attrs);
    }
    Some(Exported {
        attrs,
        priority: set_priority,
    })
}

//! The decision process: RFC 4271 section 9.1.2.2 with the route reflection tie-breaks of
//! RFC 4456 section 9, and the multipath group the dataplane installs.
//!
//! Steps, each keeping only the paths that survive it:
//! 0. a usable next hop (section 9.1.2: unresolvable next hops are excluded);
//! 1. locally originated routes first (this node's own blocks; the equivalent of BIRD's
//!    preference of static routes and FRR's weight of local routes);
//! 2. highest LOCAL_PREF; 3. shortest AS_PATH (an AS_SET counts 1, confederation segments 0);
//! 4. lowest ORIGIN; 5. lowest MED among paths from the same neighbouring AS (a missing MED
//!    is 0); 6. eBGP-learned over iBGP-learned; 7. lowest IGP cost to the next hop.
//!
//! What is left is the multipath (ECMP) group, bounded by `max_ecmp`. Within it, and to pick
//! the single best path: 8. lowest BGP identifier (the ORIGINATOR_ID of a reflected route);
//! 9. shortest CLUSTER_LIST; 10. lowest peer address; 11. lowest received path identifier.

use super::path::{Dest, LOCAL, Path, PeerId};
use crate::wire::Origin;
use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

/// What the decision process needs to know of the peer a path came from.
#[derive(Debug, Clone, Copy)]
pub struct PeerFacts {
    pub ebgp: bool,
    pub bgp_id: Ipv4Addr,
    pub address: IpAddr,
}

/// The neighbouring AS of a path for the MED comparison (RFC 4271 section 9.1.2.2 c): the first
/// AS of its path, or our own AS for a path learned inside it.
fn neighbour_as(p: &Path, local_as: u32) -> u32 {
    p.attrs
        .attrs
        .as_path
        .as_ref()
        .and_then(|a| a.first_as())
        .unwrap_or(local_as)
}

fn route_len(p: &Path) -> usize {
    p.attrs.attrs.as_path.as_ref().map_or(0, |a| a.route_len())
}

fn origin(p: &Path) -> Origin {
    p.attrs.attrs.origin.unwrap_or(Origin::Incomplete)
}

fn med(p: &Path) -> u32 {
    p.attrs.attrs.med.unwrap_or(0)
}

/// The tie-break order within the multipath group (steps 8-11).
fn tie_break(a: &Path, b: &Path, facts: &impl Fn(PeerId) -> PeerFacts) -> Ordering {
    let id = |p: &Path| {
        u32::from(
            p.attrs
                .attrs
                .originator_id
                .unwrap_or_else(|| facts(p.peer).bgp_id),
        )
    };
    let cl = |p: &Path| p.attrs.attrs.cluster_list.len();
    id(a)
        .cmp(&id(b))
        .then_with(|| cl(a).cmp(&cl(b)))
        .then_with(|| facts(a.peer).address.cmp(&facts(b.peer).address))
        .then_with(|| a.rx_path_id.cmp(&b.rx_path_id))
        .then_with(|| a.peer.cmp(&b.peer))
}

/// Keeps the candidates (indices) for which `key` is minimal.
fn keep_min<K: Ord>(cands: &mut Vec<usize>, key: impl Fn(usize) -> K) {
    if let Some(min) = cands.iter().map(|&i| key(i)).min() {
        cands.retain(|&i| key(i) == min);
    }
}

/// Runs the decision process on `dest` and reorders its paths (multipath group first, best at
/// index 0).
pub fn decide(
    dest: &mut Dest,
    local_as: u32,
    max_ecmp: usize,
    facts: impl Fn(PeerId) -> PeerFacts,
    igp_cost: impl Fn(&Path) -> Option<u32>,
) {
    // The common case: one path.
    if dest.paths.len() == 1 {
        dest.ecmp = u8::from(igp_cost(&dest.paths[0]).is_some());
    } else {
        let costs: Vec<Option<u32>> = dest.paths.iter().map(&igp_cost).collect();
        let paths = &dest.paths;
        let mut c: Vec<usize> = (0..paths.len()).filter(|&i| costs[i].is_some()).collect();
        keep_min(&mut c, |i| paths[i].peer != LOCAL);
        keep_min(&mut c, |i| std::cmp::Reverse(paths[i].attrs.local_pref()));
        keep_min(&mut c, |i| route_len(&paths[i]));
        keep_min(&mut c, |i| origin(&paths[i]));
        // Step 5 compares MED only within a neighbouring AS: drop every path beaten by one
        // from the same AS.
        let snapshot = c.clone();
        c.retain(|&i| {
            let (asn, m) = (neighbour_as(&paths[i], local_as), med(&paths[i]));
            !snapshot
                .iter()
                .any(|&j| neighbour_as(&paths[j], local_as) == asn && med(&paths[j]) < m)
        });
        keep_min(&mut c, |i| {
            !facts(paths[i].peer).ebgp && paths[i].peer != LOCAL
        });
        keep_min(&mut c, |i| costs[i]);
        c.sort_by(|&a, &b| tie_break(&paths[a], &paths[b], &facts));
        c.truncate(max_ecmp.max(1));
        let group = c.len();
        // Group first, then the other usable paths, then the unusable ones.
        let mut order = c;
        let mut rest: Vec<usize> = (0..paths.len()).filter(|i| !order.contains(i)).collect();
        rest.sort_by_key(|&i| costs[i].is_none());
        order.extend(rest);
        let mut reordered: smallvec::SmallVec<[Path; 1]> =
            order.iter().map(|&i| paths[i].clone()).collect();
        std::mem::swap(&mut dest.paths, &mut reordered);
        dest.ecmp = group.min(usize::from(u8::MAX)) as u8;
    }
}

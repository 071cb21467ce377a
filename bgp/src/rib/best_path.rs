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
use smallvec::SmallVec;
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

/// What the decision process compares of one path, computed once per run.
struct Key {
    /// The IGP cost to the next hop; `None`: unusable (step 0).
    cost: Option<u32>,
    /// Not locally originated (step 1: `false` first).
    not_local: bool,
    local_pref: u32,
    route_len: usize,
    origin: Origin,
    neighbour_as: u32,
    med: u32,
    /// iBGP-learned (step 6: `false` first).
    ibgp: bool,
    facts: PeerFacts,
}

/// The tie-break order within the multipath group (steps 8-11).
fn tie_break(a: (&Path, &Key), b: (&Path, &Key)) -> Ordering {
    let id =
        |(p, k): (&Path, &Key)| u32::from(p.attrs.attrs.originator_id.unwrap_or(k.facts.bgp_id));
    let cl = |p: &Path| p.attrs.attrs.cluster_list.len();
    id(a)
        .cmp(&id(b))
        .then_with(|| cl(a.0).cmp(&cl(b.0)))
        .then_with(|| a.1.facts.address.cmp(&b.1.facts.address))
        .then_with(|| a.0.rx_path_id.cmp(&b.0.rx_path_id))
        .then_with(|| a.0.peer.cmp(&b.0.peer))
}

/// Candidate indices; a prefix rarely has more paths than this.
type Cands = SmallVec<[usize; 16]>;

/// Keeps the candidates (indices) for which `key` is minimal.
fn keep_min<K: Ord>(cands: &mut Cands, key: impl Fn(usize) -> K) {
    if let Some(min) = cands.iter().map(|&i| key(i)).min() {
        cands.retain(|i| key(*i) == min);
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
        return;
    }
    let paths = &dest.paths;
    let keys: SmallVec<[Key; 16]> = paths
        .iter()
        .map(|p| {
            let f = facts(p.peer);
            Key {
                cost: igp_cost(p),
                not_local: p.peer != LOCAL,
                local_pref: p.attrs.local_pref(),
                route_len: route_len(p),
                origin: origin(p),
                neighbour_as: neighbour_as(p, local_as),
                med: med(p),
                ibgp: !f.ebgp && p.peer != LOCAL,
                facts: f,
            }
        })
        .collect();
    let mut c: Cands = (0..paths.len())
        .filter(|&i| keys[i].cost.is_some())
        .collect();
    keep_min(&mut c, |i| keys[i].not_local);
    keep_min(&mut c, |i| std::cmp::Reverse(keys[i].local_pref));
    keep_min(&mut c, |i| keys[i].route_len);
    keep_min(&mut c, |i| keys[i].origin);
    // Step 5 compares MED only within a neighbouring AS: drop every path beaten by one from
    // the same AS.
    let snapshot = c.clone();
    c.retain(|i| {
        let (asn, m) = (keys[*i].neighbour_as, keys[*i].med);
        !snapshot
            .iter()
            .any(|&j| keys[j].neighbour_as == asn && keys[j].med < m)
    });
    keep_min(&mut c, |i| keys[i].ibgp);
    keep_min(&mut c, |i| keys[i].cost);
    c.sort_by(|&a, &b| tie_break((&paths[a], &keys[a]), (&paths[b], &keys[b])));
    c.truncate(max_ecmp.max(1));
    let group = c.len();
    // Group first, then the other usable paths, then the unusable ones (each in their
    // present order).
    let mut order = c;
    let mut in_group: SmallVec<[bool; 16]> = SmallVec::from_elem(false, paths.len());
    for &i in &order {
        in_group[i] = true;
    }
    for usable in [true, false] {
        order
            .extend((0..paths.len()).filter(|&i| !in_group[i] && keys[i].cost.is_some() == usable));
    }
    permute(&mut dest.paths, &order);
    dest.ecmp = group.min(usize::from(u8::MAX)) as u8;
}

/// Reorders `v` in place so that `v[k]` is what was at `v[order[k]]` (`order` a permutation).
fn permute<T>(v: &mut [T], order: &[usize]) {
    let mut done: SmallVec<[bool; 16]> = SmallVec::from_elem(false, v.len());
    for start in 0..v.len() {
        if done[start] {
            continue;
        }
        // Follow the cycle through `start`, carrying its element along by swaps.
        let mut k = start;
        loop {
            done[k] = true;
            let src = order[k];
            if src == start {
                break;
            }
            v.swap(k, src);
            k = src;
        }
    }
}

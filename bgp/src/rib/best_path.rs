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
    local_pref: u32,
    route_len: u32,
    neighbour_as: u32,
    med: u32,
    origin: Origin,
    /// Not locally originated (step 1: `false` first).
    not_local: bool,
    /// iBGP-learned (step 6: `false` first).
    ibgp: bool,
}

/// The tie-break order within the multipath group (steps 8-11).
fn tie_break(a: &Path, b: &Path, facts: &impl Fn(PeerId) -> PeerFacts) -> Ordering {
    let (fa, fb) = (facts(a.peer), facts(b.peer));
    let id = |p: &Path, f: &PeerFacts| u32::from(p.attrs.attrs.originator_id.unwrap_or(f.bgp_id));
    let cl = |p: &Path| p.attrs.attrs.cluster_list.len();
    id(a, &fa)
        .cmp(&id(b, &fb))
        .then_with(|| cl(a).cmp(&cl(b)))
        .then_with(|| fa.address.cmp(&fb.address))
        .then_with(|| a.rx_path_id.cmp(&b.rx_path_id))
        .then_with(|| a.peer.cmp(&b.peer))
}

/// Candidate indices; a prefix rarely has more paths than this.
type Cands = SmallVec<[usize; 16]>;

/// Keeps the candidates (indices) for which `key` is minimal, in their order, in one pass
/// (each key computed once).
fn keep_min<K: Ord>(cands: &mut Cands, key: impl Fn(usize) -> K) {
    let s = cands.as_mut_slice();
    let Some(&first) = s.first() else {
        return;
    };
    if s.len() < 2 {
        return;
    }
    let mut min = key(first);
    let mut kept = 1;
    for x in 1..s.len() {
        let i = s[x];
        let k = key(i);
        match k.cmp(&min) {
            Ordering::Less => {
                min = k;
                s[0] = i;
                kept = 1;
            }
            Ordering::Equal => {
                s[kept] = i;
                kept += 1;
            }
            Ordering::Greater => {}
        }
    }
    cands.truncate(kept);
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
    let paths: &[Path] = &dest.paths;
    let n = paths.len();
    let mut key_buf: SmallVec<[Key; 16]> = SmallVec::with_capacity(n);
    for p in paths {
        key_buf.push(Key {
            cost: igp_cost(p),
            local_pref: p.attrs.local_pref(),
            route_len: u32::try_from(route_len(p)).unwrap_or(u32::MAX),
            neighbour_as: neighbour_as(p, local_as),
            med: med(p),
            origin: origin(p),
            not_local: p.peer != LOCAL,
            ibgp: p.peer != LOCAL && !facts(p.peer).ebgp,
        });
    }
    let keys: &[Key] = &key_buf;
    let mut c: Cands = (0..n).filter(|&i| keys[i].cost.is_some()).collect();
    // Steps 1 to 4 in one pass: keeping the minimum of each key in turn keeps the paths whose
    // keys, in that order, are the least.
    keep_min(&mut c, |i| {
        let k = &keys[i];
        (
            k.not_local,
            std::cmp::Reverse(k.local_pref),
            k.route_len,
            k.origin,
        )
    });
    // Step 5 compares MED only within a neighbouring AS: drop every path beaten by one from
    // the same AS.
    if c.len() > 1 {
        let s = c.as_mut_slice();
        let mut beaten = Bits::new(s.len());
        for (x, &i) in s.iter().enumerate() {
            let (asn, m) = (keys[i].neighbour_as, keys[i].med);
            if s.iter()
                .any(|&j| keys[j].neighbour_as == asn && keys[j].med < m)
            {
                beaten.set(x);
            }
        }
        let mut kept = 0;
        for x in 0..s.len() {
            if !beaten.get(x) {
                s[kept] = s[x];
                kept += 1;
            }
        }
        c.truncate(kept);
    }
    // Steps 6 and 7 likewise.
    keep_min(&mut c, |i| (keys[i].ibgp, keys[i].cost));
    c.sort_by(|&a, &b| tie_break(&paths[a], &paths[b], &facts));
    c.truncate(max_ecmp.max(1));
    let group = c.len();
    // Group first, then the other usable paths, then the unusable ones (each in their
    // present order).
    let mut order = c;
    let mut placed = Bits::new(n);
    for &i in &order {
        placed.set(i);
    }
    for usable in [true, false] {
        order.extend((0..n).filter(|&i| !placed.get(i) && keys[i].cost.is_some() == usable));
    }
    permute(&mut dest.paths, &order);
    dest.ecmp = group.min(usize::from(u8::MAX)) as u8;
}

/// A set of small integers.
struct Bits(SmallVec<[u64; 1]>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(SmallVec::from_elem(0, n.div_ceil(64)))
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// Reorders `v` in place so that `v[k]` is what was at `v[order[k]]` (`order` a permutation).
fn permute<T>(v: &mut [T], order: &[usize]) {
    let mut done = Bits::new(v.len());
    for start in 0..v.len() {
        if done.get(start) || order[start] == start {
            continue;
        }
        // Follow the cycle through `start`, carrying its element along by swaps.
        let mut k = start;
        loop {
            done.set(k);
            let src = order[k];
            if src == start {
                break;
            }
            v.swap(k, src);
            k = src;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The decision process against a plain transcription of the steps (the implementation
    //! before it was tuned for speed): same order, same multipath group, on random paths.
    use super::*;
    use crate::rib::path::RouteAttrs;
    use crate::wire::{AsPath, AsSegment, Attributes, SegmentKind};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn reference(
        dest: &mut Dest,
        local_as: u32,
        max_ecmp: usize,
        facts: impl Fn(PeerId) -> PeerFacts,
        igp_cost: impl Fn(&Path) -> Option<u32>,
    ) {
        fn keep_min<K: Ord>(cands: &mut Vec<usize>, key: impl Fn(usize) -> K) {
            if let Some(min) = cands.iter().map(|&i| key(i)).min() {
                cands.retain(|&i| key(i) == min);
            }
        }
        let tie_break = |a: &Path, b: &Path| {
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
        };
        if dest.paths.len() == 1 {
            dest.ecmp = u8::from(igp_cost(&dest.paths[0]).is_some());
            return;
        }
        let costs: Vec<Option<u32>> = dest.paths.iter().map(&igp_cost).collect();
        let paths = &dest.paths;
        let mut c: Vec<usize> = (0..paths.len()).filter(|&i| costs[i].is_some()).collect();
        keep_min(&mut c, |i| paths[i].peer != LOCAL);
        keep_min(&mut c, |i| std::cmp::Reverse(paths[i].attrs.local_pref()));
        keep_min(&mut c, |i| route_len(&paths[i]));
        keep_min(&mut c, |i| origin(&paths[i]));
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
        c.sort_by(|&a, &b| tie_break(&paths[a], &paths[b]));
        c.truncate(max_ecmp.max(1));
        let group = c.len();
        let mut order = c;
        let mut rest: Vec<usize> = (0..paths.len()).filter(|i| !order.contains(i)).collect();
        rest.sort_by_key(|&i| costs[i].is_none());
        order.extend(rest);
        let reordered: SmallVec<[Path; 1]> = order.iter().map(|&i| paths[i].clone()).collect();
        dest.paths = reordered;
        dest.ecmp = group.min(usize::from(u8::MAX)) as u8;
    }

    const LOCAL_AS: u32 = 64512;

    /// Small domains, so that most steps see ties.
    fn path() -> impl Strategy<Value = Path> {
        (
            0u32..5,
            0u32..3,
            (
                prop::option::of(99u32..102),
                prop::collection::vec((0u8..4, prop::collection::vec(64511u32..64514, 0..3)), 0..3),
                prop::option::of(0u8..3),
                prop::option::of(0u32..3),
                prop::option::of(1u8..4),
                0usize..3,
                0u8..5,
            ),
        )
            .prop_map(|(peer, rx, (lp, segs, origin, med, orig_id, cl, nh))| {
                let segments = segs
                    .into_iter()
                    .map(|(k, asns)| AsSegment {
                        kind: SegmentKind::from_u8(k + 1).unwrap(),
                        asns,
                    })
                    .collect();
                let attrs = Attributes {
                    local_pref: lp,
                    as_path: Some(AsPath { segments }),
                    origin: origin.map(|o| match o {
                        0 => Origin::Igp,
                        1 => Origin::Egp,
                        _ => Origin::Incomplete,
                    }),
                    med,
                    originator_id: orig_id.map(|x| Ipv4Addr::new(10, 0, 0, x)),
                    cluster_list: vec![Ipv4Addr::new(1, 1, 1, 1); cl],
                    ..Attributes::default()
                };
                let next_hop = IpAddr::V4(Ipv4Addr::new(192, 0, 2, nh));
                Path {
                    peer,
                    rx_path_id: rx,
                    tx_path_id: 0,
                    stale: false,
                    attrs: Arc::new(RouteAttrs::new(attrs, next_hop)),
                }
            })
    }

    fn facts(id: PeerId) -> PeerFacts {
        PeerFacts {
            ebgp: id % 2 == 1,
            bgp_id: Ipv4Addr::new(10, 0, 0, (7 - id % 4) as u8),
            address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, (id * 3 % 5) as u8)),
        }
    }

    /// Next hop .0 unusable; otherwise cost by next hop, with ties.
    fn cost(p: &Path) -> Option<u32> {
        match p.attrs.next_hop {
            IpAddr::V4(a) if a.octets()[3] == 0 => None,
            IpAddr::V4(a) => Some(u32::from(a.octets()[3] / 2)),
            IpAddr::V6(_) => Some(0),
        }
    }

    proptest! {
        #[test]
        fn same_as_reference(
            mut paths in prop::collection::vec(path(), 0..14),
            max_ecmp in prop::sample::select(vec![0usize, 1, 2, 3, 16]),
        ) {
            for (i, p) in paths.iter_mut().enumerate() {
                p.tx_path_id = i as u32 + 1;
            }
            let mut a = Dest { paths: paths.into_iter().collect(), ..Dest::default() };
            let mut b = a.clone();
            decide(&mut a, LOCAL_AS, max_ecmp, facts, cost);
            reference(&mut b, LOCAL_AS, max_ecmp, facts, cost);
            let ids = |d: &Dest| d.paths.iter().map(|p| p.tx_path_id).collect::<Vec<_>>();
            prop_assert_eq!(ids(&a), ids(&b));
            prop_assert_eq!(a.ecmp, b.ecmp);
        }
    }
}

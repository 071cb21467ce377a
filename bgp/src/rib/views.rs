//! Status queries: what the Loc-RIB holds, read without changing it.

use super::path::{Dest, Path, PeerId, PrefixKey, RouteAttrs, V4Key, V6Key};
use super::{LOCAL, Rib};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

/// A path as status output shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    /// The peer's address, or `None` for a locally originated route.
    pub from: Option<IpAddr>,
    pub path_id: u32,
    pub attrs: Arc<RouteAttrs>,
    pub best: bool,
    pub multipath: bool,
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub prefix: IpNet,
    pub paths: Vec<PathView>,
}

impl Rib {
    /// Prefixes in the Loc-RIB.
    pub fn prefix_count(&self) -> usize {
        // Less the empty entries kept for the change queues.
        self.tables.len() - self.changes.empty_entries()
    }

    /// Prefixes in the Loc-RIB per family (IPv4, IPv6), without walking the tables.
    pub fn family_prefix_counts(&self) -> (usize, usize) {
        (
            self.tables.v4.len() - self.changes.v4.empty_entries(),
            self.tables.v6.len() - self.changes.v6.empty_entries(),
        )
    }

    /// The paths a peer announced (its Adj-RIB-In after import policy).
    pub fn routes_from(&self, id: PeerId) -> Vec<(IpNet, Path)> {
        let mut out = Vec::new();
        for (k, d) in &self.tables.v4 {
            out.extend(
                d.paths
                    .iter()
                    .filter(|p| p.peer == id)
                    .map(|p| (k.to_net(), p.clone())),
            );
        }
        for (k, d) in &self.tables.v6 {
            out.extend(
                d.paths
                    .iter()
                    .filter(|p| p.peer == id)
                    .map(|p| (k.to_net(), p.clone())),
            );
        }
        out
    }

    /// The route of one table entry as status output shows it; `None` for an entry kept for
    /// the change queues only.
    fn view(&self, net: IpNet, d: &Dest) -> Option<RouteView> {
        if d.paths.is_empty() {
            return None;
        }
        let paths = d
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| PathView {
                from: (p.peer != LOCAL)
                    .then(|| self.peer(p.peer).map(|x| x.cfg.address))
                    .flatten(),
                path_id: p.rx_path_id,
                attrs: p.attrs.clone(),
                best: i == 0 && d.ecmp > 0,
                multipath: i < usize::from(d.ecmp),
                stale: p.stale,
            })
            .collect();
        Some(RouteView { prefix: net, paths })
    }

    /// One page of the routes within `within` (all for `None`), in prefix order (IPv4 first):
    /// at most `limit` after `after`, and how many there are after `after` in all. Only the
    /// page is copied; the rest is counted by walking the keys, so a status query for a page
    /// costs the router a page, not the table.
    pub fn routes_page(
        &self,
        within: Option<IpNet>,
        after: Option<IpNet>,
        limit: usize,
    ) -> (Vec<RouteView>, usize) {
        let mut page = Vec::new();
        let mut rest = 0;
        let mut take = |net: IpNet, d: &Dest| {
            if d.paths.is_empty() || within.is_some_and(|w| !w.contains(&net)) {
                return;
            }
            rest += 1;
            if page.len() < limit {
                page.extend(self.view(net, d));
            }
        };
        // Within a prefix, the keys run from its own to its last address's host route.
        let v4_range = |after: Option<V4Key>| -> (Bound<V4Key>, Bound<V4Key>) {
            let start = match (after, within) {
                (Some(a), _) => Bound::Excluded(a),
                (None, Some(IpNet::V4(w))) => Bound::Included(V4Key::new(w)),
                (None, _) => Bound::Unbounded,
            };
            let end = match within {
                Some(IpNet::V4(w)) => {
                    Bound::Included(V4Key::new(Ipv4Net::new(w.broadcast(), 32).unwrap_or(w)))
                }
                _ => Bound::Unbounded,
            };
            (start, end)
        };
        let v6_range = |after: Option<V6Key>| -> (Bound<V6Key>, Bound<V6Key>) {
            let start = match (after, within) {
                (Some(a), _) => Bound::Excluded(a),
                (None, Some(IpNet::V6(w))) => Bound::Included(V6Key::new(w)),
                (None, _) => Bound::Unbounded,
            };
            let end = match within {
                Some(IpNet::V6(w)) => {
                    Bound::Included(V6Key::new(Ipv6Net::new(w.broadcast(), 128).unwrap_or(w)))
                }
                _ => Bound::Unbounded,
            };
            (start, end)
        };
        let (v4_after, v6_after, v4_all) = match after {
            None => (None, None, true),
            Some(IpNet::V4(a)) => (Some(V4Key::new(a)), None, true),
            // Past every IPv4 prefix.
            Some(IpNet::V6(a)) => (None, Some(V6Key::new(a)), false),
        };
        if v4_all && !matches!(within, Some(IpNet::V6(_))) {
            let (start, end) = v4_range(v4_after);
            if range_ok(&start, &end) {
                for (k, d) in self.tables.v4.range((start, end)) {
                    take(k.to_net(), d);
                }
            }
        }
        if !matches!(within, Some(IpNet::V4(_))) {
            let (start, end) = v6_range(v6_after);
            if range_ok(&start, &end) {
                for (k, d) in self.tables.v6.range((start, end)) {
                    take(k.to_net(), d);
                }
            }
        }
        (page, rest)
    }

    /// The most specific route containing `addr` (a host prefix), if any: one lookup per
    /// prefix length, longest first.
    pub fn longest_match(&self, addr: IpNet) -> Option<RouteView> {
        match addr {
            IpNet::V4(a) => (0..=a.prefix_len()).rev().find_map(|len| {
                let net = Ipv4Net::new(a.addr(), len).ok()?.trunc();
                let d = self.tables.v4.get(&V4Key::new(net))?;
                self.view(IpNet::V4(net), d)
            }),
            IpNet::V6(a) => (0..=a.prefix_len()).rev().find_map(|len| {
                let net = Ipv6Net::new(a.addr(), len).ok()?.trunc();
                let d = self.tables.v6.get(&V6Key::new(net))?;
                self.view(IpNet::V6(net), d)
            }),
        }
    }

    /// Routes whose prefix lies within `within` (all routes for `None`), for status output.
    pub fn routes(&self, within: Option<IpNet>) -> Vec<RouteView> {
        let mut out = Vec::new();
        let mut push = |net: IpNet, d: &Dest| {
            // An empty entry is kept for the change queues only.
            if d.paths.is_empty() || within.is_some_and(|w| !w.contains(&net)) {
                return;
            }
            let paths = d
                .paths
                .iter()
                .enumerate()
                .map(|(i, p)| PathView {
                    from: (p.peer != LOCAL)
                        .then(|| self.peer(p.peer).map(|x| x.cfg.address))
                        .flatten(),
                    path_id: p.rx_path_id,
                    attrs: p.attrs.clone(),
                    best: i == 0 && d.ecmp > 0,
                    multipath: i < usize::from(d.ecmp),
                    stale: p.stale,
                })
                .collect();
            out.push(RouteView { prefix: net, paths });
        };
        for (k, d) in &self.tables.v4 {
            push(k.to_net(), d);
        }
        for (k, d) in &self.tables.v6 {
            push(k.to_net(), d);
        }
        out
    }
}

/// Whether `BTreeMap::range` accepts these bounds (it panics on a start past the end, which a
/// cursor beyond the selected prefix gives).
fn range_ok<K: Ord>(start: &Bound<K>, end: &Bound<K>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Excluded(s), Bound::Included(e)) | (Bound::Included(s), Bound::Excluded(e)) => {
            s < e
        }
        (Bound::Excluded(s), Bound::Excluded(e)) => s < e,
        _ => true,
    }
}

//! Status queries: what the Loc-RIB holds, read without changing it.

use super::path::{Dest, Path, PeerId, PrefixKey, RouteAttrs};
use super::{LOCAL, Rib};
use ipnet::IpNet;
use std::net::IpAddr;
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

//! Reading the agent's state for one scrape or probe: the speaker's peers and Loc-RIB sizes,
//! the FIB as felix last wrote it, IPAM from the datastore and the datastore's sync state.
//!
//! Each source is asked with [`SOURCE_TIMEOUT`] and the sources are asked together, so a
//! scrape takes that long at worst. A source that fails or does not answer in time is
//! reported as such (the scrape's `tortie_metrics_source_up`, a line of `/readyz`) instead of
//! making the whole request wait or fail. Watch snapshots (FIB, datastore sync) are borrowed
//! only long enough to count them.

use super::MetricsState;
use super::ipam_usage::{self, IpamUsage};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};
use tortie_bgp::speaker::{PeerStatus, RibSizes, SpeakerError};

/// How long one source may take to answer.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(2);

/// Routes felix holds, counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FibCounts {
    /// The first sync is written.
    pub synced: bool,
    /// By (family, type): `ipv4`/`ipv6`, `unicast`/`blackhole`.
    pub routes: BTreeMap<(&'static str, &'static str), u64>,
    pub updated: Option<SystemTime>,
}

/// What one scrape reports. A source's `Err` says why it is missing.
pub struct Snapshot {
    pub peers: Result<Vec<PeerStatus>, String>,
    /// `None` when not asked (probes do not need it).
    pub rib: Option<Result<RibSizes, String>>,
    /// `None` when the agent runs no dataplane.
    pub fib: Option<FibCounts>,
    /// `None` without a datastore (`--config` files) or when not asked.
    pub ipam: Option<Result<IpamUsage, String>>,
    pub datastore_synced: bool,
}

/// What to read besides what the probes need (peers, FIB sync, datastore sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Probe,
    Scrape,
}

/// Runs `f` with [`SOURCE_TIMEOUT`], naming `what` in the error.
async fn bounded<T>(
    what: &str,
    f: impl Future<Output = Result<T, SpeakerError>>,
) -> Result<T, String> {
    match tokio::time::timeout(SOURCE_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            SOURCE_TIMEOUT.as_secs()
        )),
    }
}

fn family_of(p: &IpNet) -> &'static str {
    match p {
        IpNet::V4(_) => "ipv4",
        IpNet::V6(_) => "ipv6",
    }
}

/// Counts the FIB snapshot while holding its borrow (no copy of the routes).
pub fn fib_counts(view: &crate::agent::observe::FibView) -> FibCounts {
    let mut routes = BTreeMap::new();
    for fam in ["ipv4", "ipv6"] {
        for kind in ["unicast", "blackhole"] {
            routes.insert((fam, kind), 0);
        }
    }
    for r in &view.routes {
        let kind = if r.next_hops.is_some() {
            "unicast"
        } else {
            "blackhole"
        };
        *routes.entry((family_of(&r.prefix), kind)).or_insert(0) += 1;
    }
    FibCounts {
        synced: view.synced,
        routes,
        updated: view.updated,
    }
}

/// Reads the sources `depth` needs, concurrently.
pub async fn take(state: &MetricsState, depth: Depth) -> Snapshot {
    let peers = bounded("BGP peers", state.speaker.peers());
    let rib = async {
        match depth {
            Depth::Scrape => Some(bounded("Loc-RIB sizes", state.speaker.rib_sizes()).await),
            Depth::Probe => None,
        }
    };
    let ipam = async {
        let store = state.observed.store.as_ref()?;
        if depth == Depth::Probe {
            return None;
        }
        let pools = ipam_usage::configured_pools(&state.observed.config.borrow());
        let read = ipam_usage::read(&**store, &state.observed.node, &pools);
        Some(match tokio::time::timeout(SOURCE_TIMEOUT, read).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "IPAM blocks: no answer from the datastore within {} s",
                SOURCE_TIMEOUT.as_secs()
            )),
        })
    };
    let (peers, rib, ipam) = tokio::join!(peers, rib, ipam);
    let fib = state
        .observed
        .fib
        .as_ref()
        .map(|rx| fib_counts(&rx.borrow()));
    Snapshot {
        peers,
        rib,
        fib,
        ipam,
        datastore_synced: *state.observed.datastore_synced.borrow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::observe::{FibEntry, FibNextHop, FibView};

    fn entry(prefix: &str, blackhole: bool) -> FibEntry {
        FibEntry {
            prefix: prefix.parse().unwrap(),
            next_hops: (!blackhole).then(|| {
                vec![FibNextHop {
                    gateway: "198.18.1.12".parse().unwrap(),
                    device: "eth0".into(),
                    encap: "none",
                    onlink: false,
                }]
            }),
        }
    }

    #[test]
    fn fib_routes_are_counted_by_family_and_type_with_zeros_for_the_rest() {
        let view = FibView {
            routes: vec![
                entry("198.19.0.0/26", true),
                entry("198.19.0.64/26", false),
                entry("198.19.0.128/26", false),
                entry("2001:db8:19::/122", false),
            ],
            synced: true,
            protocol: 116,
            underlay_mtu: None,
            updated: None,
        };
        let c = fib_counts(&view);
        assert!(c.synced);
        assert_eq!(c.routes[&("ipv4", "unicast")], 2);
        assert_eq!(c.routes[&("ipv4", "blackhole")], 1);
        assert_eq!(c.routes[&("ipv6", "unicast")], 1);
        assert_eq!(c.routes[&("ipv6", "blackhole")], 0);
    }

    #[test]
    fn an_unsynced_empty_fib_counts_nothing_and_says_so() {
        let c = fib_counts(&FibView::default());
        assert!(!c.synced);
        assert!(c.routes.values().all(|n| *n == 0));
    }
}

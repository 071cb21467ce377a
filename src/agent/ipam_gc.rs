//! IPAM garbage collection for deleted nodes (`--ipam-gc`), the part of Calico's
//! kube-controllers IPAM GC that needs no Kubernetes API: the addresses allocated to a node
//! whose Node resource is gone (its pods and its tunnel address) are released once two passes
//! at least the grace period apart found them so, and its blocks then lose their affinity
//! ([`tortie_ipam::gc`]). Leaked addresses of pods on nodes that still exist need the list of
//! pods, which tortie does not read; the CNI 1.1 GC of each node's runtime covers those.
//!
//! Passes are compare-and-swap writes like every IPAM write, so several agents may collect at
//! once; one or two (the route reflectors, say) are enough.

use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tortie_ipam::gc::{Gc, GcConfig, LiveOwners};
use tortie_ipam::store::Store;
use tortie_ipam::{Allocator, IpamConfig};
use tracing::{info, warn};

/// How often a pass runs for a grace period: three passes per grace period, at most every
/// five minutes, at least every second.
pub fn interval(grace: Duration) -> Duration {
    (grace / 3).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// The names of the Node resources in the store.
async fn nodes(store: &dyn Store) -> Result<Vec<String>, String> {
    let prefix = crate::datastore::kind_prefix(crate::config::Kind::Node);
    let listed = store.list(&prefix).await.map_err(|e| e.to_string())?;
    Ok(listed
        .into_iter()
        .filter_map(|(key, _)| key.strip_prefix(&prefix).map(str::to_string))
        .collect())
}

/// Runs passes for as long as the task lives.
pub async fn run(store: Arc<dyn Store>, grace: Duration) {
    let alloc = Allocator::new(store.clone(), IpamConfig::default());
    let mut gc = Gc::new(GcConfig {
        leak_grace: grace,
        empty_block_grace: grace,
    });
    let mut every = tokio::time::interval(interval(grace));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let names = match nodes(&*store).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "IPAM GC: cannot list the Node resources; pass skipped");
                continue;
            }
        };
        // A store without any Node is more likely a datastore being set up than a cluster
        // whose every node was deleted: collect nothing.
        if names.is_empty() {
            continue;
        }
        match gc
            .run(&alloc, &LiveOwners::nodes_only(names), SystemTime::now())
            .await
        {
            Ok(r) => {
                if !r.released.is_empty()
                    || !r.blocks_released.is_empty()
                    || !r.blocks_unaffined.is_empty()
                {
                    info!(
                        released = ?r.released,
                        blocks_released = ?r.blocks_released,
                        blocks_unaffined = ?r.blocks_unaffined,
                        "IPAM GC: reclaimed what deleted nodes held"
                    );
                }
            }
            Err(e) => warn!(error = %e, "IPAM GC: pass failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_run_three_times_per_grace_period_within_bounds() {
        assert_eq!(interval(Duration::from_secs(900)), Duration::from_secs(300));
        assert_eq!(
            interval(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(interval(Duration::from_secs(30)), Duration::from_secs(10));
        assert_eq!(interval(Duration::from_millis(10)), Duration::from_secs(1));
    }
}

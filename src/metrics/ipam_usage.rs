//! IPAM usage per pool for the metrics: blocks allocated and addresses in use, in the whole
//! cluster and in this node's own (confirmed) blocks, read from the block documents under
//! `/tortie/v1/ipam/blocks/`.
//!
//! A block names no pool: it belongs to the configured pool whose CIDR contains it (pools do
//! not overlap; validation refuses that), or to [`NO_POOL`] when its pool was deleted while
//! blocks remained. Only the summary of each block is decoded (no allocation lists), and a
//! document that does not decode is counted as unreadable rather than failing the scrape.

use crate::config::Config;
use ipnet::IpNet;
use std::collections::BTreeMap;
use tortie_ipam::block::{BLOCKS_PREFIX, BlockSummary};
use tortie_ipam::store::Store;
use tracing::debug;

/// The `pool` label of blocks outside every configured pool (not a valid resource name, so
/// it cannot collide with one).
pub const NO_POOL: &str = "(none)";

/// One pool's usage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolUsage {
    /// Addresses the pool spans.
    pub size: f64,
    pub blocks: u64,
    /// Blocks whose confirmed affinity is this node.
    pub node_blocks: u64,
    pub in_use: u64,
    pub node_in_use: u64,
}

/// Usage by pool name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IpamUsage {
    pub pools: BTreeMap<String, PoolUsage>,
    /// Block documents that did not decode.
    pub unreadable: u64,
}

/// The configured pools: (name, CIDR).
pub fn configured_pools(cfg: &Config) -> Vec<(String, IpNet)> {
    cfg.ip_pools
        .iter()
        .filter_map(|(name, p)| Some((name.clone(), p.resource.spec.cidr.as_ref()?.0)))
        .collect()
}

fn addresses(net: &IpNet) -> f64 {
    2f64.powi(i32::from(net.max_prefix_len() - net.prefix_len()))
}

/// Adds up `blocks` (already decoded, or why not) under `pools`.
pub fn usage(
    node: &str,
    pools: &[(String, IpNet)],
    blocks: impl IntoIterator<Item = Result<BlockSummary, String>>,
) -> IpamUsage {
    let mut out = IpamUsage::default();
    for (name, cidr) in pools {
        out.pools.insert(
            name.clone(),
            PoolUsage {
                size: addresses(cidr),
                ..PoolUsage::default()
            },
        );
    }
    for b in blocks {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                debug!(error = %e, "metrics: an IPAM block does not decode");
                out.unreadable += 1;
                continue;
            }
        };
        let pool = pools
            .iter()
            .find(|(_, cidr)| cidr.contains(&b.cidr))
            .map_or(NO_POOL, |(name, _)| name.as_str());
        let u = out.pools.entry(pool.to_string()).or_default();
        let mine = b.is_confirmed_for(node);
        u.blocks += 1;
        u.in_use += u64::from(b.in_use);
        if mine {
            u.node_blocks += 1;
            u.node_in_use += u64::from(b.in_use);
        }
    }
    out
}

/// Lists and sums the block documents.
pub async fn read(
    store: &dyn Store,
    node: &str,
    pools: &[(String, IpNet)],
) -> Result<IpamUsage, String> {
    let listed = store
        .list(BLOCKS_PREFIX)
        .await
        .map_err(|e| format!("IPAM blocks: {e}"))?;
    Ok(usage(
        node,
        pools,
        listed
            .iter()
            .map(|(key, v)| BlockSummary::decode(key, &v.value).map_err(|e| e.to_string())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_ipam::block::{Affinity, AffinityState};

    fn block(cidr: &str, node: Option<(&str, AffinityState)>, in_use: u32) -> BlockSummary {
        BlockSummary {
            cidr: cidr.parse().unwrap(),
            affinity: node.map(|(n, state)| Affinity {
                node: n.into(),
                state,
                claimed: 0,
            }),
            seq: 1,
            in_use,
            free: 64 - in_use,
        }
    }

    fn pools() -> Vec<(String, IpNet)> {
        vec![
            ("pool-a".into(), "198.19.0.0/17".parse().unwrap()),
            ("pool-b".into(), "198.19.128.0/17".parse().unwrap()),
        ]
    }

    #[test]
    fn blocks_count_under_the_pool_that_contains_them_and_mine_separately() {
        let u = usage(
            "node-1",
            &pools(),
            [
                Ok(block(
                    "198.19.0.0/26",
                    Some(("node-1", AffinityState::Confirmed)),
                    3,
                )),
                Ok(block(
                    "198.19.0.64/26",
                    Some(("node-2", AffinityState::Confirmed)),
                    5,
                )),
                Ok(block(
                    "198.19.128.0/26",
                    Some(("node-1", AffinityState::Confirmed)),
                    1,
                )),
            ],
        );
        let a = &u.pools["pool-a"];
        assert_eq!(
            (a.blocks, a.node_blocks, a.in_use, a.node_in_use),
            (2, 1, 8, 3)
        );
        let b = &u.pools["pool-b"];
        assert_eq!(
            (b.blocks, b.node_blocks, b.in_use, b.node_in_use),
            (1, 1, 1, 1)
        );
        assert_eq!(a.size, 32768.0);
    }

    #[test]
    fn a_pending_affinity_is_not_this_nodes_block_yet() {
        let u = usage(
            "node-1",
            &pools(),
            [Ok(block(
                "198.19.0.0/26",
                Some(("node-1", AffinityState::Pending)),
                0,
            ))],
        );
        assert_eq!(u.pools["pool-a"].blocks, 1);
        assert_eq!(u.pools["pool-a"].node_blocks, 0);
    }

    #[test]
    fn a_pool_without_blocks_reports_zeros_and_its_size() {
        let u = usage("node-1", &pools(), []);
        assert_eq!(
            u.pools["pool-b"],
            PoolUsage {
                size: 32768.0,
                ..PoolUsage::default()
            }
        );
    }

    #[test]
    fn a_block_outside_every_pool_is_reported_under_no_pool() {
        let u = usage("node-1", &pools(), [Ok(block("198.18.200.0/26", None, 2))]);
        assert_eq!(u.pools[NO_POOL].blocks, 1);
        assert_eq!(u.pools[NO_POOL].in_use, 2);
    }

    #[test]
    fn an_undecodable_block_is_counted_not_fatal() {
        let u = usage(
            "node-1",
            &pools(),
            [
                Err("not a block".to_string()),
                Ok(block("198.19.0.0/26", None, 1)),
            ],
        );
        assert_eq!(u.unreadable, 1);
        assert_eq!(u.pools["pool-a"].blocks, 1);
    }
}

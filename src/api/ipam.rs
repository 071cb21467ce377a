//! GetIpamUsage: how full each pool and each block is, from the datastore's block documents
//! and the pools of the running configuration.
//!
//! Blocks are read as summaries (owner, in use, free: no allocation lists), so a listing of a
//! large cluster stays cheap. A block document that cannot be read is reported in the answer's
//! problems, not hidden and not fatal: the rest of the picture is still what the operator came
//! for.

use super::ApiState;
use ipnet::IpNet;
use std::time::Duration;
use tonic::Status;
use tortie_ipam::block::{BLOCKS_PREFIX, BlockSummary};
use tortie_ipam::{AffinityState, Family};
use tortie_proto::v1;
use tracing::warn;

/// How long the datastore may take to list the blocks (etcd may be remote).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool as usage is computed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: u8,
    pub disabled: bool,
}

/// Addresses in a prefix, in decimal: an IPv6 pool holds more than 64 bits' worth.
pub fn size_text(net: &IpNet) -> String {
    let bits = u32::from(Family::of(net).max_prefix_len() - net.prefix_len());
    match 1u128.checked_shl(bits) {
        Some(n) if bits < 128 => n.to_string(),
        _ => "340282366920938463463374607431768211456".to_string(),
    }
}

fn block_state(b: &BlockSummary) -> v1::BlockState {
    match b.affinity.as_ref().map(|a| a.state) {
        None => v1::BlockState::Unaffine,
        Some(AffinityState::Pending) => v1::BlockState::Pending,
        Some(AffinityState::Confirmed) => v1::BlockState::Confirmed,
        Some(AffinityState::PendingDeletion) => v1::BlockState::PendingDeletion,
    }
}

fn block(b: &BlockSummary) -> v1::IpamBlock {
    v1::IpamBlock {
        cidr: b.cidr.to_string(),
        node: b.affinity.as_ref().map(|a| a.node.clone()),
        state: block_state(b) as i32,
        size: u64::from(b.in_use) + u64::from(b.free),
        in_use: u64::from(b.in_use),
        free: u64::from(b.free),
    }
}

/// Usage per pool (in the order given) and the blocks inside no pool. A block belongs to the
/// most specific pool containing it.
pub fn usage(
    pools: &[PoolInfo],
    blocks: &[BlockSummary],
) -> (Vec<v1::IpamPool>, Vec<v1::IpamBlock>) {
    let mut out: Vec<v1::IpamPool> = pools
        .iter()
        .map(|p| v1::IpamPool {
            name: p.name.clone(),
            cidr: p.cidr.to_string(),
            block_size: u32::from(p.block_size),
            disabled: p.disabled,
            size: size_text(&p.cidr),
            ..Default::default()
        })
        .collect();
    let mut orphans = Vec::new();
    let mut sorted: Vec<&BlockSummary> = blocks.iter().collect();
    sorted.sort_by_key(|b| b.cidr);
    for b in sorted {
        let home = pools
            .iter()
            .enumerate()
            .filter(|(_, p)| p.cidr.contains(&b.cidr))
            .max_by_key(|(_, p)| p.cidr.prefix_len())
            .map(|(i, _)| i);
        match home.and_then(|i| out.get_mut(i)) {
            Some(pool) => {
                pool.blocks += 1;
                pool.in_use += u64::from(b.in_use);
                pool.free += u64::from(b.free);
                pool.block_list.push(block(b));
            }
            None => orphans.push(block(b)),
        }
    }
    (out, orphans)
}

fn pools(state: &ApiState) -> Vec<PoolInfo> {
    let cfg = state.observed.config.borrow();
    cfg.ip_pools
        .iter()
        .filter_map(|(name, p)| {
            let spec = &p.resource.spec;
            Some(PoolInfo {
                name: name.clone(),
                cidr: spec.cidr.as_ref()?.0,
                block_size: spec.block_size_or_default()?,
                disabled: spec.disabled.unwrap_or(false),
            })
        })
        .collect()
}

pub async fn usage_of(state: &ApiState) -> Result<v1::GetIpamUsageResponse, Status> {
    let Some(store) = &state.observed.store else {
        return Err(Status::unavailable(
            "this agent runs without a datastore (--config files): it has no IPAM",
        ));
    };
    let listed = match tokio::time::timeout(STORE_TIMEOUT, store.list(BLOCKS_PREFIX)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return Err(Status::unavailable(format!("datastore: {e}"))),
        Err(_) => {
            return Err(Status::unavailable(format!(
                "the datastore did not list the IPAM blocks within {} s",
                STORE_TIMEOUT.as_secs()
            )));
        }
    };
    let mut blocks = Vec::new();
    let mut problems = Vec::new();
    for (key, v) in listed {
        match BlockSummary::decode(&key, &v.value) {
            Ok(b) => blocks.push(b),
            Err(e) => {
                warn!(%key, error = %e, "GetIpamUsage: unreadable block");
                problems.push(e.to_string());
            }
        }
    }
    let (pools, orphan_blocks) = usage(&pools(state), &blocks);
    Ok(v1::GetIpamUsageResponse {
        node: state.node.clone(),
        pools,
        orphan_blocks,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_ipam::Affinity;

    fn pool(name: &str, cidr: &str) -> PoolInfo {
        PoolInfo {
            name: name.into(),
            cidr: cidr.parse().unwrap(),
            block_size: 26,
            disabled: false,
        }
    }

    fn summary(cidr: &str, node: Option<&str>, in_use: u32) -> BlockSummary {
        BlockSummary {
            cidr: cidr.parse().unwrap(),
            affinity: node.map(|n| Affinity {
                node: n.into(),
                state: AffinityState::Confirmed,
                claimed: 0,
            }),
            seq: 1,
            in_use,
            free: 64 - in_use,
        }
    }

    #[test]
    fn blocks_add_up_per_pool() {
        let (pools, orphans) = usage(
            &[pool("default", "198.19.0.0/16")],
            &[
                summary("198.19.0.64/26", Some("node2"), 2),
                summary("198.19.0.0/26", Some("node1"), 3),
            ],
        );
        assert!(orphans.is_empty());
        let p = &pools[0];
        assert_eq!((p.blocks, p.in_use, p.free), (2, 5, 123));
        assert_eq!(p.size, "65536");
        let cidrs: Vec<&str> = p.block_list.iter().map(|b| b.cidr.as_str()).collect();
        assert_eq!(cidrs, ["198.19.0.0/26", "198.19.0.64/26"], "sorted");
        assert_eq!(p.block_list[0].node.as_deref(), Some("node1"));
        assert_eq!(p.block_list[0].state, v1::BlockState::Confirmed as i32);
        assert_eq!(p.block_list[0].size, 64);
    }

    #[test]
    fn a_block_in_no_pool_is_an_orphan() {
        let (pools, orphans) = usage(
            &[pool("a", "198.19.0.0/24")],
            &[summary("198.19.1.0/26", None, 1)],
        );
        assert_eq!(pools[0].blocks, 0);
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].state, v1::BlockState::Unaffine as i32);
        assert_eq!(orphans[0].node, None);
    }

    #[test]
    fn a_block_goes_to_the_most_specific_pool() {
        let (pools, _) = usage(
            &[
                pool("wide", "198.19.0.0/16"),
                pool("narrow", "198.19.4.0/24"),
            ],
            &[summary("198.19.4.0/26", Some("n"), 1)],
        );
        assert_eq!((pools[0].blocks, pools[1].blocks), (0, 1));
    }

    #[test]
    fn pool_sizes_are_exact_beyond_64_bits() {
        assert_eq!(
            size_text(&"2001:db8::/48".parse().unwrap()),
            (1u128 << 80).to_string()
        );
        assert_eq!(
            size_text(&"::/0".parse().unwrap()),
            "340282366920938463463374607431768211456"
        );
        assert_eq!(size_text(&"198.19.0.0/16".parse().unwrap()), "65536");
    }
}

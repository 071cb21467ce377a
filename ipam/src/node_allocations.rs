//! The addresses allocated for one node, found by reading every block: the node is recorded
//! in each allocation's attributes (not in the handle documents, which only count addresses
//! per block), so a node-local cleanup such as the CNI plugin's GC finds its pods' handles
//! here without knowing their ids in advance.
//!
//! The node that counts is the one the allocation was made for, not the block's: an address
//! a node borrowed from another node's block is the borrower's, and another node's pod in
//! this node's block is not this node's.

use crate::IpamError;
use crate::allocator::{Allocation, Allocator};
use crate::block::AllocAttrs;
use ipnet::IpNet;

/// One address allocated for the node, with the attributes it was allocated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAllocation {
    pub allocation: Allocation,
    pub attrs: AllocAttrs,
}

/// What [`Allocator::allocations_of_node`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAllocations {
    /// By block, then by address.
    pub allocations: Vec<NodeAllocation>,
    /// Blocks that did not decode (logged and skipped): their allocations are unknown.
    pub unreadable: Vec<IpNet>,
}

impl Allocator {
    /// Every address allocated for `node`, whatever its handle or kind (pods and tunnel
    /// addresses alike: the caller picks).
    pub async fn allocations_of_node(&self, node: &str) -> Result<NodeAllocations, IpamError> {
        let (blocks, unreadable) = self.list_blocks().await?;
        let mut allocations = Vec::new();
        for listed in &blocks {
            let block = &listed.block;
            let block_owner = block.affinity.as_ref().map(|a| a.node.as_str());
            for (ordinal, slot, attrs) in block.allocations() {
                if attrs.node != node {
                    continue;
                }
                allocations.push(NodeAllocation {
                    allocation: Allocation {
                        addr: block.addr(ordinal),
                        block: block.cidr,
                        seq: slot.seq,
                        handle: attrs.handle.clone(),
                        borrowed: block_owner != Some(node),
                    },
                    attrs: attrs.clone(),
                });
            }
        }
        Ok(NodeAllocations {
            allocations,
            unreadable,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::block::block_key;
    use crate::store::Store;
    use crate::store::memory::MemoryStore;
    use crate::{AllocRequest, Allocator, IpamConfig, Kind, Pool, TunnelType};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn pools(cidr: &str, block: u8) -> Vec<Pool> {
        vec![Pool::new("p", cidr.parse().unwrap()).with_block_size(block)]
    }

    async fn pod(a: &Allocator, node: &str, id: &str, pools: &[Pool]) {
        let handle = format!("k8s-pod-network.{id}");
        let req = AllocRequest::pod(&handle, node, "default", id, pools);
        a.allocate(&req).await.unwrap();
    }

    async fn handles_of(a: &Allocator, node: &str) -> BTreeSet<String> {
        let found = a.allocations_of_node(node).await.unwrap();
        assert!(found.unreadable.is_empty(), "{:?}", found.unreadable);
        found
            .allocations
            .into_iter()
            .map(|n| n.allocation.handle)
            .collect()
    }

    #[tokio::test]
    async fn a_node_lists_its_pods_and_tunnel_address_and_not_another_nodes_pods() {
        let store = Arc::new(MemoryStore::new());
        let a = Allocator::new(store, IpamConfig::default());
        let p = pools("198.19.0.0/24", 26);
        pod(&a, "node1", "a", &p).await;
        pod(&a, "node1", "b", &p).await;
        pod(&a, "node2", "c", &p).await;
        let mut tunnel_pools = p.clone();
        tunnel_pools[0].vxlan_mode = crate::EncapMode::Always;
        a.allocate_tunnel("node1", TunnelType::Vxlan, &tunnel_pools)
            .await
            .unwrap();
        let node1 = a.allocations_of_node("node1").await.unwrap();
        let handles: BTreeSet<String> = node1
            .allocations
            .iter()
            .map(|n| n.allocation.handle.clone())
            .collect();
        assert_eq!(
            handles,
            BTreeSet::from([
                "k8s-pod-network.a".to_string(),
                "k8s-pod-network.b".to_string(),
                "vxlan-tunnel-addr-node1".to_string(),
            ])
        );
        let tunnel = node1
            .allocations
            .iter()
            .find(|n| n.allocation.handle == "vxlan-tunnel-addr-node1")
            .unwrap();
        assert_eq!(tunnel.attrs.kind, Kind::Tunnel(TunnelType::Vxlan));
        assert!(node1.allocations.iter().all(|n| !n.allocation.borrowed));
        assert_eq!(
            handles_of(&a, "node2").await,
            BTreeSet::from(["k8s-pod-network.c".to_string()])
        );
        assert!(handles_of(&a, "node3").await.is_empty());
    }

    #[tokio::test]
    async fn a_borrowed_address_is_the_borrowers_and_not_the_block_owners() {
        let store = Arc::new(MemoryStore::new());
        let a = Allocator::new(store, IpamConfig::default());
        // One block of four addresses: node2 finds no block to claim and borrows.
        let p = pools("198.19.1.0/30", 30);
        pod(&a, "node1", "a", &p).await;
        pod(&a, "node2", "b", &p).await;
        let node2 = a.allocations_of_node("node2").await.unwrap();
        assert_eq!(node2.allocations.len(), 1);
        assert_eq!(node2.allocations[0].allocation.handle, "k8s-pod-network.b");
        assert!(node2.allocations[0].allocation.borrowed);
        assert_eq!(
            handles_of(&a, "node1").await,
            BTreeSet::from(["k8s-pod-network.a".to_string()])
        );
    }

    #[tokio::test]
    async fn a_block_that_does_not_decode_is_reported_and_the_others_still_listed() {
        let store = Arc::new(MemoryStore::new());
        let a = Allocator::new(store.clone(), IpamConfig::default());
        let p = pools("198.19.2.0/24", 26);
        pod(&a, "node1", "a", &p).await;
        let broken: ipnet::IpNet = "198.19.2.192/26".parse().unwrap();
        store.put_raw(&block_key(&broken), b"not a block");
        let found = a.allocations_of_node("node1").await.unwrap();
        assert_eq!(found.unreadable, [broken]);
        assert_eq!(found.allocations.len(), 1);
        assert!(store.get(&block_key(&broken)).await.unwrap().is_some());
    }
}

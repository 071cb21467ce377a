//! Garbage collection: leaked addresses released after the grace period on a second
//! sighting, empty blocks losing their affinity after the delay, each live node keeping its
//! last block; time passed in.

use futures::StreamExt;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tortie_ipam::block::{BLOCKS_PREFIX, block_key};
use tortie_ipam::check::check;
use tortie_ipam::gc::{Gc, GcConfig, LiveOwners};
use tortie_ipam::store::memory::MemoryStore;
use tortie_ipam::store::{Event, Store};
use tortie_ipam::{
    AffinityState, AllocRequest, Allocation, Allocator, Block, EncapMode, IpamConfig, Pool,
    TunnelType,
};

const GRACE: Duration = Duration::from_secs(15 * 60);

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
}

fn setup() -> (Arc<MemoryStore>, Allocator, Vec<Pool>, Gc) {
    let store = Arc::new(MemoryStore::new());
    let alloc = Allocator::new(store.clone(), IpamConfig::default());
    let mut p = Pool::new("p", "198.19.0.0/24".parse().unwrap()).with_block_size(30);
    p.ipip_mode = EncapMode::Always;
    (store, alloc, vec![p], Gc::new(GcConfig::default()))
}

async fn pod(a: &Allocator, node: &str, ns: &str, name: &str, pools: &[Pool]) -> Allocation {
    let h = format!("k8s-pod-network.{name}");
    a.allocate(&AllocRequest::pod(&h, node, ns, name, pools))
        .await
        .unwrap()
        .remove(0)
}

async fn in_use(store: &MemoryStore) -> usize {
    let r = check(store).await.unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    r.in_use
}

async fn block(store: &MemoryStore, cidr: IpNet) -> Option<Block> {
    let key = block_key(&cidr);
    store
        .get(&key)
        .await
        .unwrap()
        .map(|v| Block::decode(&key, &v.value).unwrap())
}

#[tokio::test]
async fn a_leaked_address_is_released_only_when_seen_again_after_the_grace_period() {
    let (store, a, pools, mut gc) = setup();
    let gone = pod(&a, "node-1", "default", "gone", &pools).await;
    pod(&a, "node-1", "default", "alive", &pools).await;
    let owners = LiveOwners::default().node("node-1").pod("default", "alive");

    let r = gc.run(&a, &owners, t(0)).await.unwrap();
    assert_eq!(
        (r.released.len(), r.candidates),
        (0, 1),
        "first sighting: a candidate"
    );
    let r = gc
        .run(&a, &owners, t(0) + GRACE - Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        (r.released.len(), r.candidates),
        (0, 1),
        "within the grace period"
    );
    let r = gc.run(&a, &owners, t(0) + GRACE).await.unwrap();
    assert_eq!(r.released, [gone.addr]);
    assert_eq!(in_use(&store).await, 1);
    assert!(
        a.addresses("k8s-pod-network.gone")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn one_pass_never_releases_however_late() {
    let (store, a, pools, mut gc) = setup();
    pod(&a, "node-1", "default", "gone", &pools).await;
    let owners = LiveOwners::default().node("node-1");
    let r = gc.run(&a, &owners, t(1_000_000)).await.unwrap();
    assert!(r.released.is_empty());
    assert_eq!(in_use(&store).await, 1);
}

#[tokio::test]
async fn an_owner_seen_again_restarts_the_grace_period() {
    let (store, a, pools, mut gc) = setup();
    pod(&a, "node-1", "default", "flaky", &pools).await;
    let without = LiveOwners::default().node("node-1");
    let with = without.clone().pod("default", "flaky");
    gc.run(&a, &without, t(0)).await.unwrap();
    gc.run(&a, &with, t(60)).await.unwrap();
    let r = gc.run(&a, &without, t(0) + GRACE).await.unwrap();
    assert!(
        r.released.is_empty(),
        "the clock restarted when the pod came back"
    );
    let r = gc.run(&a, &without, t(0) + GRACE * 2).await.unwrap();
    assert_eq!(r.released.len(), 1);
    assert_eq!(in_use(&store).await, 0);
}

#[tokio::test]
async fn zero_grace_disables_leak_collection() {
    let (store, a, pools, _) = setup();
    let mut gc = Gc::new(GcConfig {
        leak_grace: Duration::ZERO,
        ..GcConfig::default()
    });
    pod(&a, "node-1", "default", "gone", &pools).await;
    let owners = LiveOwners::default().node("node-1");
    for s in [0, 10_000, 20_000] {
        assert!(gc.run(&a, &owners, t(s)).await.unwrap().released.is_empty());
    }
    assert_eq!(in_use(&store).await, 1);
}

#[tokio::test]
async fn a_tunnel_address_is_leaked_when_its_node_is_no_longer_live() {
    let (store, a, pools, mut gc) = setup();
    let tun1 = a
        .allocate_tunnel("node-1", TunnelType::Ipip, &pools)
        .await
        .unwrap();
    let tun2 = a
        .allocate_tunnel("node-2", TunnelType::Ipip, &pools)
        .await
        .unwrap();
    store
        .heartbeat("node-2", Duration::from_secs(60))
        .await
        .unwrap();
    let owners = LiveOwners::with_live_nodes(&*store, []).await.unwrap();
    assert_eq!(owners.nodes.len(), 1);
    gc.run(&a, &owners, t(0)).await.unwrap();
    let r = gc.run(&a, &owners, t(0) + GRACE).await.unwrap();
    assert_eq!(r.released, [tun1.addr]);
    assert_eq!(a.addresses(&tun2.handle).await.unwrap().len(), 1);
}

#[tokio::test]
async fn workloads_without_pod_attributes_are_assumed_valid() {
    let (store, a, pools, mut gc) = setup();
    let req = AllocRequest {
        pod: None,
        namespace: None,
        ..AllocRequest::pod("manual", "node-1", "x", "x", &pools)
    };
    a.allocate(&req).await.unwrap();
    let owners = LiveOwners::default();
    gc.run(&a, &owners, t(0)).await.unwrap();
    assert!(
        gc.run(&a, &owners, t(0) + GRACE)
            .await
            .unwrap()
            .released
            .is_empty()
    );
    assert_eq!(in_use(&store).await, 1);
}

#[tokio::test]
async fn a_handle_is_released_all_together_or_not_at_all() {
    let (store, a, pools, mut gc) = setup();
    // One handle, two owners (two allocations with different pod attributes).
    let one = AllocRequest::pod("shared", "node-1", "default", "p1", &pools);
    let two = AllocRequest::pod("shared", "node-1", "default", "p2", &pools);
    a.allocate(&one).await.unwrap();
    a.allocate(&two).await.unwrap();
    let owners = LiveOwners::default().node("node-1").pod("default", "p2");
    gc.run(&a, &owners, t(0)).await.unwrap();
    let r = gc.run(&a, &owners, t(0) + GRACE).await.unwrap();
    assert!(
        r.released.is_empty(),
        "one owner is alive: the handle stays"
    );
    assert_eq!(r.candidates, 1);
    let nobody = LiveOwners::default().node("node-1");
    let r = gc.run(&a, &nobody, t(0) + GRACE * 2).await.unwrap();
    assert!(
        r.released.is_empty(),
        "p2's address is only a candidate yet"
    );
    let r = gc.run(&a, &nobody, t(0) + GRACE * 3).await.unwrap();
    assert_eq!(r.released.len(), 2);
    assert_eq!(in_use(&store).await, 0);
}

#[tokio::test]
async fn a_decision_gone_stale_leaves_the_reused_address_alone() {
    let store = Arc::new(MemoryStore::new());
    let a = Allocator::new(store.clone(), IpamConfig::default());
    let pools = vec![Pool::new("one", "198.19.0.7/32".parse().unwrap()).with_block_size(32)];
    let mut gc = Gc::new(GcConfig::default());
    let old = pod(&a, "node-1", "default", "old", &pools).await;
    let owners = LiveOwners::default().node("node-1").pod("default", "new");
    let blocks =
        |l: Vec<tortie_ipam::allocator::Listed>| l.into_iter().map(|l| l.block).collect::<Vec<_>>();
    gc.plan(&blocks(a.list_blocks().await.unwrap().0), &owners, t(0));
    let plan = gc.plan(
        &blocks(a.list_blocks().await.unwrap().0),
        &owners,
        t(0) + GRACE,
    );
    assert_eq!(plan.release.len(), 1);
    // Before the plan is carried out, the pod goes and a new one gets the same address.
    a.release_by_handle("k8s-pod-network.old").await.unwrap();
    let new = pod(&a, "node-1", "default", "new", &pools).await;
    assert_eq!(new.addr, old.addr);
    let r = a.release_with(&plan.release).await.unwrap();
    assert_eq!(r.mismatched, [old.addr]);
    assert_eq!(a.addresses("k8s-pod-network.new").await.unwrap().len(), 1);
}

/// Fills `n` blocks of node-1 (4 addresses each) and empties them again.
async fn emptied_blocks(a: &Allocator, pools: &[Pool], n: usize) -> Vec<IpNet> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut blocks = Vec::new();
    for i in 0..4 * n {
        let x = pod(a, "node-1", "default", &format!("p{i}"), pools).await;
        addrs.push(x.addr);
        if !blocks.contains(&x.block) {
            blocks.push(x.block);
        }
    }
    a.release(&addrs).await.unwrap();
    blocks.sort();
    blocks
}

#[tokio::test]
async fn an_empty_block_goes_pending_deletion_then_away_after_the_delay() {
    let (store, a, pools, mut gc) = setup();
    let blocks = emptied_blocks(&a, &pools, 2).await;
    let owners = LiveOwners::default().node("node-1");
    let mut watch = store.watch(BLOCKS_PREFIX).await.unwrap();
    assert!(
        gc.run(&a, &owners, t(0))
            .await
            .unwrap()
            .blocks_released
            .is_empty()
    );
    assert!(
        gc.run(&a, &owners, t(0) + GRACE / 2)
            .await
            .unwrap()
            .blocks_released
            .is_empty()
    );
    let r = gc.run(&a, &owners, t(0) + GRACE).await.unwrap();
    assert_eq!(
        r.blocks_released,
        [blocks[0]],
        "one goes, the node keeps its last"
    );
    let Some(Ok(Event::Put { key, value })) = watch.next().await else {
        panic!()
    };
    let b = Block::decode(&key, &value.value).unwrap();
    assert_eq!(
        (b.cidr, b.affinity.unwrap().state),
        (blocks[0], AffinityState::PendingDeletion)
    );
    assert!(
        matches!(watch.next().await, Some(Ok(Event::Delete { key })) if key == block_key(&blocks[0]))
    );
    assert!(
        block(&store, blocks[1])
            .await
            .unwrap()
            .is_confirmed_for("node-1")
    );
    // Much later, the last block is still kept.
    let r = gc.run(&a, &owners, t(0) + GRACE * 10).await.unwrap();
    assert!(r.blocks_released.is_empty());
    assert!(block(&store, blocks[1]).await.is_some());
}

#[tokio::test]
async fn activity_in_an_empty_block_restarts_its_delay() {
    let (store, a, pools, mut gc) = setup();
    emptied_blocks(&a, &pools, 2).await;
    let owners = LiveOwners::default().node("node-1");
    gc.run(&a, &owners, t(0)).await.unwrap();
    // Pods come and go in both blocks (their seqs move) between two passes.
    emptied_blocks(&a, &pools, 2).await;
    let r = gc.run(&a, &owners, t(0) + GRACE).await.unwrap();
    assert!(r.blocks_released.is_empty(), "seen empty anew at this pass");
    let r = gc.run(&a, &owners, t(0) + GRACE * 2).await.unwrap();
    assert_eq!(r.blocks_released.len(), 1);
    assert_eq!(in_use(&store).await, 0);
}

#[tokio::test]
async fn a_gone_nodes_blocks_all_go_and_a_block_lending_addresses_loses_its_affinity() {
    let (store, a, _, mut gc) = setup();
    let pools = vec![Pool::new("small", "198.19.0.0/28".parse().unwrap()).with_block_size(30)];
    let blocks = emptied_blocks(&a, &pools, 2).await; // node-1's, empty
    let mut names = Vec::new();
    let borrowed = loop {
        let name = format!("q{}", names.len());
        let x = pod(&a, "node-2", "default", &name, &pools).await;
        names.push(name);
        if x.borrowed {
            break x;
        }
    };
    assert_eq!(
        names.len(),
        9,
        "node-2 fills the two other blocks, then borrows"
    );
    assert!(blocks.contains(&borrowed.block));
    let mut owners = LiveOwners::default().node("node-2");
    for n in &names {
        owners = owners.pod("default", n);
    }
    gc.run(&a, &owners, t(0)).await.unwrap();
    let r = gc.run(&a, &owners, t(0) + GRACE).await.unwrap();
    assert_eq!(
        r.blocks_unaffined,
        [borrowed.block],
        "node-1 is gone; node-2's address stays in it"
    );
    let other = blocks.iter().find(|c| **c != borrowed.block).unwrap();
    assert_eq!(
        r.blocks_released,
        [*other],
        "a gone node keeps no last block"
    );
    let b = block(&store, borrowed.block).await.unwrap();
    assert!(b.affinity.is_none() && b.in_use() == 1);
    // The borrowed address goes: the block, empty and affine to nobody, goes with it.
    a.release(&[borrowed.addr]).await.unwrap();
    assert!(block(&store, borrowed.block).await.is_none());
    assert_eq!(in_use(&store).await, 8);
}

#[tokio::test]
async fn known_by_node_only_a_deleted_nodes_pods_are_leaked_and_a_live_nodes_are_kept() {
    let (store, a, pools, mut gc) = setup();
    let gone = pod(&a, "node-2", "default", "on-deleted-node", &pools).await;
    pod(&a, "node-1", "default", "on-live-node", &pools).await;
    // No pod list: "on-live-node" is not in one, and is kept all the same.
    let owners = LiveOwners::nodes_only(["node-1".to_string()]);
    gc.run(&a, &owners, t(0)).await.unwrap();
    let r = gc.run(&a, &owners, t(0) + GRACE).await.unwrap();
    assert_eq!(r.released, [gone.addr]);
    assert_eq!(in_use(&store).await, 1);
}

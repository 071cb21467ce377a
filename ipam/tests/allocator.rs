//! The allocator against the in-memory store: claims, limits, borrowing, FIFO reuse,
//! releases, tunnel addresses, failures, concurrency, and a property test of random
//! allocate/release sequences.

use futures::StreamExt;
use ipnet::IpNet;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tortie_ipam::allocator::Clock;
use tortie_ipam::block::{BLOCKS_PREFIX, block_key};
use tortie_ipam::check::check;
use tortie_ipam::handle::handle_key;
use tortie_ipam::store::memory::MemoryStore;
use tortie_ipam::store::{Event, Store, StoreError};
use tortie_ipam::{
    AffinityState, AllocRequest, Allocator, Block, EncapMode, Family, IpamConfig, IpamError, Kind,
    Pool, ReleaseOptions, TunnelType,
};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn pool(cidr: &str, block: u8) -> Vec<Pool> {
    vec![Pool::new("p", net(cidr)).with_block_size(block)]
}

/// A clock the test moves, in seconds from 2026-01-01.
fn manual_clock() -> (Clock, Arc<AtomicU64>) {
    let secs = Arc::new(AtomicU64::new(0));
    let s = secs.clone();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    (
        Arc::new(move || base + Duration::from_secs(s.load(Ordering::SeqCst))),
        secs,
    )
}

fn setup(config: IpamConfig) -> (Arc<MemoryStore>, Allocator, Arc<AtomicU64>) {
    let store = Arc::new(MemoryStore::new());
    let (clock, secs) = manual_clock();
    let alloc = Allocator::with_clock(store.clone(), config, clock);
    (store, alloc, secs)
}

async fn pod(
    a: &Allocator,
    node: &str,
    name: &str,
    pools: &[Pool],
) -> Result<tortie_ipam::Allocation, IpamError> {
    let handle = format!("k8s-pod-network.{name}");
    let req = AllocRequest::pod(&handle, node, "default", name, pools);
    Ok(a.allocate(&req).await?.remove(0))
}

async fn block_at(store: &MemoryStore, cidr: IpNet) -> Option<Block> {
    let key = block_key(&cidr);
    store
        .get(&key)
        .await
        .unwrap()
        .map(|v| Block::decode(&key, &v.value).unwrap())
}

async fn consistent(store: &MemoryStore) -> usize {
    let r = check(store).await.unwrap();
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    r.in_use
}

#[tokio::test]
async fn first_allocation_claims_a_block_pending_then_confirmed() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/16", 26);
    let mut watch = store.watch(BLOCKS_PREFIX).await.unwrap();
    let got = pod(&a, "node-1", "web-0", &pools).await.unwrap();
    assert!(!got.borrowed);
    assert_eq!(got.block.prefix_len(), 26);
    let mut states = Vec::new();
    for _ in 0..3 {
        let Some(Ok(Event::Put { key, value })) = watch.next().await else {
            panic!("no put")
        };
        let b = Block::decode(&key, &value.value).unwrap();
        states.push((b.affinity.as_ref().unwrap().state, b.in_use()));
    }
    assert_eq!(
        states,
        [
            (AffinityState::Pending, 0),
            (AffinityState::Confirmed, 0),
            (AffinityState::Confirmed, 1)
        ]
    );
    assert_eq!(consistent(&store).await, 1);
}

#[tokio::test]
async fn a_full_block_makes_the_node_claim_another() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/24", 30);
    let mut blocks = BTreeMap::new();
    for i in 0..6 {
        let got = pod(&a, "node-1", &format!("p{i}"), &pools).await.unwrap();
        *blocks.entry(got.block).or_insert(0) += 1;
    }
    assert_eq!(
        blocks
            .values()
            .copied()
            .collect::<Vec<_>>()
            .iter()
            .sum::<i32>(),
        6
    );
    assert_eq!(
        blocks.len(),
        2,
        "4 addresses in the first /30, 2 in a second: {blocks:?}"
    );
    assert!(blocks.values().any(|n| *n == 4));
    for cidr in blocks.keys() {
        assert!(
            block_at(&store, *cidr)
                .await
                .unwrap()
                .is_confirmed_for("node-1")
        );
    }
    consistent(&store).await;
}

#[tokio::test]
async fn max_blocks_per_host_stops_new_claims() {
    let (store, a, _) = setup(IpamConfig {
        max_blocks_per_host: 2,
        strict_affinity: true,
        ..IpamConfig::default()
    });
    let pools = pool("198.19.0.0/24", 30);
    for i in 0..8 {
        pod(&a, "node-1", &format!("p{i}"), &pools).await.unwrap();
    }
    let e = pod(&a, "node-1", "p8", &pools).await.unwrap_err();
    assert!(
        matches!(&e, IpamError::BlockLimit { node, limit: 2 } if node == "node-1"),
        "{e}"
    );
    assert!(e.to_string().contains("maxBlocksPerHost"), "{e}");
    // Other nodes are not limited by node-1's blocks.
    pod(&a, "node-2", "q0", &pools).await.unwrap();
    assert_eq!(consistent(&store).await, 9);
    assert_eq!(
        IpamConfig::default().block_limit(),
        20,
        "0 means Calico's default of 20"
    );
}

#[tokio::test]
async fn addresses_are_borrowed_from_other_nodes_blocks_when_no_block_is_free() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/29", 30); // two blocks
    let first = pod(&a, "node-a", "a0", &pools).await.unwrap();
    let theirs = pod(&a, "node-b", "b0", &pools).await.unwrap();
    assert_ne!(first.block, theirs.block);
    for i in 1..4 {
        assert_eq!(
            pod(&a, "node-a", &format!("a{i}"), &pools)
                .await
                .unwrap()
                .block,
            first.block
        );
    }
    let borrowed = pod(&a, "node-a", "a4", &pools).await.unwrap();
    assert!(borrowed.borrowed);
    assert_eq!(borrowed.block, theirs.block);
    assert_eq!(
        borrowed.host_prefix(),
        net(&format!("{}/32", borrowed.addr))
    );
    let b = block_at(&store, theirs.block).await.unwrap();
    assert!(
        b.is_confirmed_for("node-b"),
        "borrowing leaves the affinity alone"
    );
    let (_, _, attrs) = b
        .allocations()
        .find(|(o, _, _)| b.addr(*o) == borrowed.addr)
        .unwrap();
    assert_eq!(attrs.node, "node-a");
    assert!(a.addresses("k8s-pod-network.a4").await.unwrap()[0].borrowed);
    consistent(&store).await;
}

#[tokio::test]
async fn strict_affinity_refuses_to_borrow() {
    let (store, a, _) = setup(IpamConfig {
        strict_affinity: true,
        ..IpamConfig::default()
    });
    let pools = pool("198.19.0.0/29", 30);
    for i in 0..4 {
        pod(&a, "node-a", &format!("a{i}"), &pools).await.unwrap();
    }
    pod(&a, "node-b", "b0", &pools).await.unwrap();
    let e = pod(&a, "node-a", "a4", &pools).await.unwrap_err();
    assert!(
        matches!(e, IpamError::Exhausted { strict: true, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("strictAffinity"), "{e}");
    assert_eq!(consistent(&store).await, 5);
    assert!(
        store
            .get(&handle_key("k8s-pod-network.a4"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_allocation_that_cannot_be_met_keeps_nothing() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/30", 30);
    pod(&a, "node-a", "a0", &pools).await.unwrap();
    let req = AllocRequest {
        count: 5,
        ..AllocRequest::pod("h-many", "node-a", "default", "many", &pools)
    };
    let e = a.allocate(&req).await.unwrap_err();
    assert!(
        matches!(
            e,
            IpamError::Exhausted {
                requested: 5,
                found: 3,
                strict: false,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        consistent(&store).await,
        1,
        "the three found were given back"
    );
    assert!(a.addresses("h-many").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_block_of_another_node_is_reclaimed_after_a_minute() {
    let (store, a, secs) = setup(IpamConfig {
        strict_affinity: true,
        ..IpamConfig::default()
    });
    let pools = pool("198.19.0.0/30", 30); // one block
    let x = pod(&a, "node-a", "a0", &pools).await.unwrap();
    a.release(&[x.addr]).await.unwrap();
    secs.store(30, Ordering::SeqCst);
    assert!(matches!(
        pod(&a, "node-b", "b0", &pools).await,
        Err(IpamError::Exhausted { .. })
    ));
    secs.store(61, Ordering::SeqCst);
    let y = pod(&a, "node-b", "b0", &pools).await.unwrap();
    assert!(!y.borrowed);
    assert!(
        block_at(&store, y.block)
            .await
            .unwrap()
            .is_confirmed_for("node-b")
    );
    consistent(&store).await;
}

#[tokio::test]
async fn released_addresses_are_reused_oldest_first() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/29", 29); // one block of 8
    let mut addrs = Vec::new();
    for i in 0..8 {
        addrs.push(
            pod(&a, "node-1", &format!("p{i}"), &pools)
                .await
                .unwrap()
                .addr,
        );
    }
    a.release(&[addrs[5]]).await.unwrap();
    a.release(&[addrs[2]]).await.unwrap();
    a.release_by_handle("k8s-pod-network.p7").await.unwrap();
    let mut reused = Vec::new();
    for i in 0..3 {
        reused.push(
            pod(&a, "node-1", &format!("q{i}"), &pools)
                .await
                .unwrap()
                .addr,
        );
    }
    assert_eq!(reused, [addrs[5], addrs[2], addrs[7]]);
    consistent(&store).await;
}

#[tokio::test]
async fn never_used_addresses_come_before_released_ones() {
    let (_, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/30", 30);
    let first = pod(&a, "node-1", "p0", &pools).await.unwrap().addr;
    a.release(&[first]).await.unwrap();
    let mut next = Vec::new();
    for i in 1..5 {
        next.push(
            pod(&a, "node-1", &format!("p{i}"), &pools)
                .await
                .unwrap()
                .addr,
        );
    }
    assert_eq!(
        next.last(),
        Some(&first),
        "the released address comes back last: {next:?}"
    );
}

#[tokio::test]
async fn release_by_handle_frees_every_address_of_the_handle_and_its_document() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/24", 30);
    let req = AllocRequest {
        count: 6,
        ..AllocRequest::pod("multi", "node-1", "default", "m", &pools)
    };
    let got = a.allocate(&req).await.unwrap();
    let other = pod(&a, "node-1", "other", &pools).await.unwrap();
    assert_eq!(got.len(), 6);
    assert_eq!(
        got.iter().map(|g| g.block).collect::<HashSet<_>>().len(),
        2,
        "spans two blocks"
    );
    let mut released = a.release_by_handle("multi").await.unwrap();
    released.sort();
    let mut expected: Vec<IpAddr> = got.iter().map(|g| g.addr).collect();
    expected.sort();
    assert_eq!(released, expected);
    assert!(store.get(&handle_key("multi")).await.unwrap().is_none());
    assert_eq!(
        a.addresses("k8s-pod-network.other").await.unwrap()[0].addr,
        other.addr
    );
    assert!(
        a.release_by_handle("multi").await.unwrap().is_empty(),
        "idempotent"
    );
    assert_eq!(consistent(&store).await, 1);
}

#[tokio::test]
async fn release_by_address_frees_those_and_reports_the_rest() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/24", 26);
    let req = AllocRequest {
        count: 2,
        ..AllocRequest::pod("h", "node-1", "default", "p", &pools)
    };
    let got = a.allocate(&req).await.unwrap();
    let nowhere: IpAddr = "10.9.9.9".parse().unwrap();
    let free_in_block = Block::new(got[0].block, None, 0).addr(60);
    let r = a
        .release(&[got[0].addr, nowhere, free_in_block])
        .await
        .unwrap();
    assert_eq!(r.released, [got[0].addr]);
    assert_eq!(r.not_allocated.len(), 2);
    assert_eq!(
        a.addresses("h").await.unwrap().len(),
        1,
        "handle count went down by one"
    );
    a.release(&[got[1].addr]).await.unwrap();
    assert!(
        store.get(&handle_key("h")).await.unwrap().is_none(),
        "the last address takes the handle"
    );
    assert_eq!(consistent(&store).await, 0);
}

#[tokio::test]
async fn a_stale_release_leaves_a_reused_address_alone() {
    let (_, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.7/32", 32); // one address
    let first = pod(&a, "node-1", "old", &pools).await.unwrap();
    a.release(&[first.addr]).await.unwrap();
    let second = pod(&a, "node-1", "new", &pools).await.unwrap();
    assert_eq!(second.addr, first.addr);
    assert_ne!(second.seq, first.seq);
    let stale = ReleaseOptions {
        addr: first.addr,
        handle: Some(first.handle.clone()),
        seq: Some(first.seq),
    };
    let r = a.release_with(&[stale]).await.unwrap();
    assert_eq!(r.mismatched, [first.addr]);
    let wrong_seq = ReleaseOptions {
        addr: first.addr,
        handle: Some(second.handle.clone()),
        seq: Some(first.seq),
    };
    assert_eq!(
        a.release_with(&[wrong_seq]).await.unwrap().mismatched.len(),
        1
    );
    assert_eq!(a.addresses("k8s-pod-network.new").await.unwrap().len(), 1);
}

#[tokio::test]
async fn tunnel_addresses_have_calicos_handles_and_are_stable() {
    let (store, a, _) = setup(IpamConfig::default());
    let mut v4 = Pool::new("v4", net("198.19.0.0/16"));
    v4.ipip_mode = EncapMode::Always;
    let mut v6 = Pool::new("v6", net("fd00:19::/48"));
    v6.vxlan_mode = EncapMode::Always;
    let pools = vec![v4.clone(), v6];
    let ipip = a
        .allocate_tunnel("node-1", TunnelType::Ipip, &pools)
        .await
        .unwrap();
    assert_eq!(ipip.handle, "ipip-tunnel-addr-node-1");
    assert!(ipip.addr.is_ipv4());
    assert_eq!(
        a.allocate_tunnel("node-1", TunnelType::Ipip, &pools)
            .await
            .unwrap(),
        ipip,
        "stable"
    );
    let b = block_at(&store, ipip.block).await.unwrap();
    assert_eq!(
        b.allocations().next().unwrap().2.kind,
        Kind::Tunnel(TunnelType::Ipip)
    );
    let v6addr = a
        .allocate_tunnel("node-1", TunnelType::VxlanV6, &pools)
        .await
        .unwrap();
    assert_eq!(v6addr.handle, "vxlan-v6-tunnel-addr-node-1");
    assert!(v6addr.addr.is_ipv6());
    // No v4 pool has VXLAN on.
    let e = a
        .allocate_tunnel("node-1", TunnelType::Vxlan, &pools)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            IpamError::NoPools {
                family: Family::V4,
                what: "tunnel",
                ..
            }
        ),
        "{e}"
    );
    // Switching the pool to VXLAN: the IPIP address's pool no longer qualifies for IPIP.
    let mut vx = v4;
    vx.ipip_mode = EncapMode::Never;
    vx.vxlan_mode = EncapMode::CrossSubnet;
    let vxlan = a
        .allocate_tunnel("node-1", TunnelType::Vxlan, &[vx])
        .await
        .unwrap();
    assert_eq!(vxlan.handle, "vxlan-tunnel-addr-node-1");
    assert_eq!(consistent(&store).await, 3);
}

#[tokio::test]
async fn pools_that_cannot_serve_the_request_are_not_used() {
    let (_, a, _) = setup(IpamConfig::default());
    let mut off = Pool::new("off", net("198.19.0.0/16"));
    off.disabled = true;
    let mut tun = Pool::new("tun", net("198.20.0.0/16"));
    tun.allowed_uses = vec![tortie_ipam::AllowedUse::Tunnel];
    let v6 = Pool::new("v6", net("fd00::/48"));
    let e = pod(&a, "node-1", "p", &[off, tun, v6]).await.unwrap_err();
    assert!(
        matches!(
            e,
            IpamError::NoPools {
                family: Family::V4,
                what: "workload",
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        pod(&a, "node-1", "p", &[]).await,
        Err(IpamError::NoPools { .. })
    ));
    let bad = AllocRequest::pod("a/b", "node-1", "default", "p", &[]);
    assert!(matches!(a.allocate(&bad).await, Err(IpamError::Invalid(_))));
}

#[tokio::test]
async fn a_stopped_store_is_a_clear_error_and_allocation_resumes_after() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/24", 26);
    pod(&a, "node-1", "p0", &pools).await.unwrap();
    store.set_down(true);
    let e = pod(&a, "node-1", "p1", &pools).await.unwrap_err();
    assert!(
        matches!(e, IpamError::Store(StoreError::Unavailable(_))),
        "{e}"
    );
    store.set_down(false);
    pod(&a, "node-1", "p1", &pools).await.unwrap();
    assert_eq!(consistent(&store).await, 2);
}

#[tokio::test]
async fn a_corrupt_block_is_skipped_by_allocation_and_named_by_release() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/30", 30);
    let key = block_key(&net("198.19.0.0/30"));
    store.put_raw(&key, b"{\"cidr\": 42}");
    let e = pod(&a, "node-1", "p", &pools).await.unwrap_err();
    assert!(
        matches!(e, IpamError::Exhausted { .. }),
        "the corrupt block is not claimed over: {e}"
    );
    let e = a
        .release(&["198.19.0.1".parse().unwrap()])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, IpamError::Corrupt { key: k, .. } if *k == key),
        "{e}"
    );
    assert_eq!(check(&*store).await.unwrap().problems.len(), 1);
}

#[tokio::test]
async fn a_pending_claim_left_by_a_crash_is_confirmed_by_the_node() {
    let (store, a, _) = setup(IpamConfig::default());
    let pools = pool("198.19.0.0/30", 30);
    let cidr = net("198.19.0.0/30");
    let pending = Block::new(
        cidr,
        Some(tortie_ipam::Affinity {
            node: "node-1".into(),
            state: AffinityState::Pending,
            claimed: 0,
        }),
        1,
    );
    store.put_raw(&block_key(&cidr), &pending.encode());
    let got = pod(&a, "node-1", "p", &pools).await.unwrap();
    assert!(!got.borrowed);
    assert!(
        block_at(&store, cidr)
            .await
            .unwrap()
            .is_confirmed_for("node-1")
    );
}

/// `tasks` tasks each allocating `each` addresses, on one node or a node each, through one
/// shared allocator (an agent serving concurrent requests) or one allocator per task
/// (separate processes sharing only the store); then half released and allocated again.
async fn concurrent(tasks: usize, each: usize, same_node: bool, shared: bool) {
    let store = Arc::new(MemoryStore::new());
    let config = IpamConfig {
        max_blocks_per_host: 400,
        ..IpamConfig::default()
    };
    let pools = Arc::new(pool("198.19.0.0/17", 26)); // 32768 addresses, 512 blocks
    let one = Arc::new(Allocator::new(store.clone(), config.clone()));
    let allocators: Vec<Arc<Allocator>> = (0..tasks)
        .map(|_| {
            if shared {
                one.clone()
            } else {
                Arc::new(Allocator::new(store.clone(), config.clone()))
            }
        })
        .collect();
    let node = |i: usize| {
        if same_node {
            "node-0".to_string()
        } else {
            format!("node-{i}")
        }
    };
    let run = |round: &'static str, n: usize| {
        let handles: Vec<_> = allocators
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let (a, pools, node) = (a.clone(), pools.clone(), node(i));
                tokio::spawn(async move {
                    let mut v = Vec::with_capacity(n);
                    for j in 0..n {
                        let name = format!("{round}-{i}-{j}");
                        let got = pod(&a, &node, &name, &pools)
                            .await
                            .unwrap_or_else(|e| panic!("{name}: {e}"));
                        v.push((format!("k8s-pod-network.{name}"), got.addr));
                    }
                    v
                })
            })
            .collect();
        async move {
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.await.unwrap());
            }
            all
        }
    };
    let all = run("first", each).await;
    let unique: HashSet<IpAddr> = all.iter().map(|(_, ip)| *ip).collect();
    assert_eq!(unique.len(), tasks * each, "no address given twice");
    assert_eq!(consistent(&store).await, tasks * each, "none lost");
    for (i, (h, _)) in all.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        allocators[i % tasks].release_by_handle(h).await.unwrap();
    }
    assert_eq!(
        consistent(&store).await,
        tasks * each - tasks * each.div_ceil(2)
    );
    let again = run("again", each / 2).await;
    let mut now: HashSet<IpAddr> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, (_, ip))| *ip)
        .collect();
    for (_, ip) in &again {
        assert!(now.insert(*ip), "{ip} given twice");
    }
    assert_eq!(consistent(&store).await, now.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_allocators_on_ten_nodes_allocate_a_thousand_each_without_duplicates_or_losses() {
    concurrent(10, 1000, false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_tasks_of_one_node_allocate_a_thousand_each_without_duplicates_or_losses() {
    concurrent(10, 1000, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_allocators_contending_for_one_nodes_blocks_stay_consistent() {
    concurrent(10, 150, true, false).await;
}

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        node: usize,
        handle: usize,
        count: u32,
    },
    ReleaseHandle {
        handle: usize,
    },
    ReleaseAddr {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..8usize, 1..4u32).prop_map(|(node, handle, count)| Op::Alloc { node, handle, count }),
        1 => (0..8usize).prop_map(|handle| Op::ReleaseHandle { handle }),
        2 => any::<usize>().prop_map(|pick| Op::ReleaseAddr { pick }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_allocations_and_releases_never_give_an_address_twice(ops in proptest::collection::vec(op(), 1..40), strict in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (store, a, _) = setup(IpamConfig { strict_affinity: strict, max_blocks_per_host: 3, ..IpamConfig::default() });
            let pools = pool("198.19.0.0/28", 30); // four blocks of four
            let mut model: BTreeMap<IpAddr, String> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Alloc { node, handle, count } => {
                        let h = format!("h{handle}");
                        let n = format!("n{node}");
                        let req = AllocRequest { count, ..AllocRequest::pod(&h, &n, "ns", &h, &pools) };
                        match a.allocate(&req).await {
                            Ok(got) => {
                                prop_assert_eq!(got.len() as u32, count);
                                for g in got {
                                    prop_assert!(model.insert(g.addr, h.clone()).is_none(), "{} given twice", g.addr);
                                }
                            }
                            Err(IpamError::Exhausted { .. } | IpamError::BlockLimit { .. }) => {}
                            Err(e) => prop_assert!(false, "unexpected {}", e),
                        }
                    }
                    Op::ReleaseHandle { handle } => {
                        let h = format!("h{handle}");
                        let mut got = a.release_by_handle(&h).await.unwrap();
                        got.sort();
                        let want: Vec<IpAddr> = model.iter().filter(|(_, v)| **v == h).map(|(k, _)| *k).collect();
                        prop_assert_eq!(got, want);
                        model.retain(|_, v| *v != h);
                    }
                    Op::ReleaseAddr { pick } => {
                        if model.is_empty() { continue; }
                        let addr = *model.keys().nth(pick % model.len()).unwrap();
                        let r = a.release(&[addr]).await.unwrap();
                        prop_assert_eq!(r.released, vec![addr]);
                        model.remove(&addr);
                    }
                }
                let report = check(&*store).await.unwrap();
                prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
                prop_assert_eq!(report.in_use, model.len());
                for h in 0..8 {
                    let h = format!("h{h}");
                    let mut held: Vec<IpAddr> = a.addresses(&h).await.unwrap().into_iter().map(|x| x.addr).collect();
                    held.sort();
                    let want: Vec<IpAddr> = model.iter().filter(|(_, v)| **v == h).map(|(k, _)| *k).collect();
                    prop_assert_eq!(held, want);
                }
            }
            Ok(())
        })?;
    }
}

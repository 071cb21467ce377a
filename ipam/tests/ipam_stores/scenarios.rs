//! The allocator's behaviours, on any store (each run on both backends by `both!`).

use super::*;

/// The first allocation claims a block (pending, then confirmed, then the address; a
/// polling watch may merge steps) and the second comes from the same block.
pub async fn first_allocation_claims_a_block(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let pools = pool("198.19.0.0/16", 26);
    let mut watch = b.store.watch(BLOCKS_PREFIX).await.unwrap();
    let got = pod(&a, "node-1", "web-0", &pools).await.unwrap();
    assert!(!got.borrowed);
    assert_eq!(got.block.prefix_len(), 26);
    let steps = [
        (AffinityState::Pending, 0),
        (AffinityState::Confirmed, 0),
        (AffinityState::Confirmed, 1),
    ];
    let mut seen = Vec::new();
    while seen.last() != Some(&steps[2]) {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("watch event")
            .unwrap()
            .unwrap();
        let Event::Put { key, value } = ev else {
            panic!("unexpected {ev:?}")
        };
        let blk = Block::decode(&key, &value.value).unwrap();
        seen.push((blk.affinity.as_ref().unwrap().state, blk.in_use()));
    }
    // In order, none repeated (a polling watch may skip some).
    let mut rest = steps.iter();
    for s in &seen {
        assert!(rest.any(|x| x == s), "states out of order: {seen:?}");
    }
    let second = pod(&a, "node-1", "web-1", &pools).await.unwrap();
    assert_eq!(second.block, got.block);
    assert_ne!(second.addr, got.addr);
    let blk = block_at(&*b.store, got.block).await.unwrap();
    assert!(blk.is_confirmed_for("node-1"));
    assert_eq!(in_use(b).await, 2);
}

pub async fn a_full_block_makes_the_node_claim_another(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let pools = pool("198.19.0.0/24", 30);
    let mut blocks: BTreeMap<_, u32> = BTreeMap::new();
    for i in 0..6 {
        let got = pod(&a, "node-1", &format!("p{i}"), &pools).await.unwrap();
        *blocks.entry(got.block).or_insert(0) += 1;
    }
    assert_eq!(
        blocks.values().copied().collect::<Vec<_>>().len(),
        2,
        "{blocks:?}"
    );
    assert!(blocks.values().any(|n| *n == 4), "{blocks:?}");
    for cidr in blocks.keys() {
        let blk = block_at(&*b.store, *cidr).await.unwrap();
        assert!(blk.is_confirmed_for("node-1"));
    }
    assert_eq!(in_use(b).await, 6);
}

pub async fn max_blocks_per_host_stops_new_claims(b: &Backend) {
    let (a, _) = allocator(
        b,
        IpamConfig {
            max_blocks_per_host: 2,
            strict_affinity: true,
            ..IpamConfig::default()
        },
    );
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
    pod(&a, "node-2", "q0", &pools).await.unwrap();
    assert_eq!(in_use(b).await, 9);
}

pub async fn addresses_are_borrowed_when_no_block_is_free(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let pools = pool("198.19.0.0/29", 30); // two blocks
    let first = pod(&a, "node-a", "a0", &pools).await.unwrap();
    let theirs = pod(&a, "node-b", "b0", &pools).await.unwrap();
    assert_ne!(first.block, theirs.block);
    for i in 1..4 {
        let x = pod(&a, "node-a", &format!("a{i}"), &pools).await.unwrap();
        assert_eq!(x.block, first.block);
    }
    let borrowed = pod(&a, "node-a", "a4", &pools).await.unwrap();
    assert!(borrowed.borrowed);
    assert_eq!(borrowed.block, theirs.block);
    assert_eq!(
        borrowed.host_prefix(),
        net(&format!("{}/32", borrowed.addr))
    );
    let blk = block_at(&*b.store, theirs.block).await.unwrap();
    assert!(
        blk.is_confirmed_for("node-b"),
        "borrowing leaves the affinity alone"
    );
    let (_, _, attrs) = blk
        .allocations()
        .find(|(o, _, _)| blk.addr(*o) == borrowed.addr)
        .unwrap();
    assert_eq!(attrs.node, "node-a");
    assert!(a.addresses(&pod_handle("a4")).await.unwrap()[0].borrowed);
    assert_eq!(in_use(b).await, 6);
}

pub async fn strict_affinity_refuses_to_borrow(b: &Backend) {
    let (a, _) = allocator(
        b,
        IpamConfig {
            strict_affinity: true,
            ..IpamConfig::default()
        },
    );
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
    assert_eq!(in_use(b).await, 5);
    let h = b.store.get(&handle_key(&pod_handle("a4"))).await.unwrap();
    assert!(h.is_none());
}

pub async fn an_allocation_that_cannot_be_met_keeps_nothing(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
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
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(in_use(b).await, 1, "the three found were given back");
    assert!(a.addresses("h-many").await.unwrap().is_empty());
    assert!(b.store.get(&handle_key("h-many")).await.unwrap().is_none());
}

pub async fn an_empty_block_of_another_node_is_reclaimed_after_a_minute(b: &Backend) {
    let (a, secs) = allocator(
        b,
        IpamConfig {
            strict_affinity: true,
            ..IpamConfig::default()
        },
    );
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
        block_at(&*b.store, y.block)
            .await
            .unwrap()
            .is_confirmed_for("node-b")
    );
    assert_eq!(in_use(b).await, 1);
}

/// Calico's FIFO: never-used ordinals first, then the oldest release.
pub async fn released_addresses_are_reused_oldest_first(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let pools = pool("198.19.0.0/29", 29); // one block of 8
    let mut addrs = Vec::new();
    for i in 0..7 {
        addrs.push(
            pod(&a, "node-1", &format!("p{i}"), &pools)
                .await
                .unwrap()
                .addr,
        );
    }
    a.release(&[addrs[5]]).await.unwrap();
    // A never-used address comes before the released one.
    addrs.push(pod(&a, "node-1", "p7", &pools).await.unwrap().addr);
    assert!(!addrs[..7].contains(&addrs[7]));
    a.release(&[addrs[2]]).await.unwrap();
    a.release_by_handle(&pod_handle("p7")).await.unwrap();
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
    assert_eq!(in_use(b).await, 8);
}

pub async fn release_by_handle_frees_the_handle_everywhere(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let pools = pool("198.19.0.0/24", 30);
    let req = AllocRequest {
        count: 6,
        ..AllocRequest::pod("multi", "node-1", "default", "m", &pools)
    };
    let got = a.allocate(&req).await.unwrap();
    let other = pod(&a, "node-1", "other", &pools).await.unwrap();
    assert_eq!(got.len(), 6);
    let blocks: HashSet<_> = got.iter().map(|g| g.block).collect();
    assert_eq!(blocks.len(), 2, "spans two blocks");
    let mut released = a.release_by_handle("multi").await.unwrap();
    released.sort();
    let mut expected: Vec<IpAddr> = got.iter().map(|g| g.addr).collect();
    expected.sort();
    assert_eq!(released, expected);
    assert!(b.store.get(&handle_key("multi")).await.unwrap().is_none());
    let kept = a.addresses(&pod_handle("other")).await.unwrap();
    assert_eq!(kept[0].addr, other.addr);
    assert!(
        a.release_by_handle("multi").await.unwrap().is_empty(),
        "idempotent"
    );
    assert_eq!(in_use(b).await, 1);
}

pub async fn release_by_address_frees_those_and_reports_the_rest(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
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
    assert_eq!(a.addresses("h").await.unwrap().len(), 1);
    assert_eq!(in_use(b).await, 1);
    a.release(&[got[1].addr]).await.unwrap();
    assert!(
        b.store.get(&handle_key("h")).await.unwrap().is_none(),
        "the last address takes the handle"
    );
    assert_eq!(in_use(b).await, 0);
}

pub async fn a_stale_release_leaves_a_reused_address_alone(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
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
    assert_eq!(
        a.release_with(&[stale]).await.unwrap().mismatched,
        [first.addr]
    );
    let wrong_seq = ReleaseOptions {
        addr: first.addr,
        handle: Some(second.handle.clone()),
        seq: Some(first.seq),
    };
    assert_eq!(
        a.release_with(&[wrong_seq]).await.unwrap().mismatched.len(),
        1
    );
    assert_eq!(a.addresses(&pod_handle("new")).await.unwrap().len(), 1);
    assert_eq!(in_use(b).await, 1);
}

pub async fn tunnel_addresses_have_their_own_handles(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let mut v4 = Pool::new("v4", net("198.19.0.0/16"));
    v4.ipip_mode = EncapMode::Always;
    let mut v6 = Pool::new("v6", net("fd00:19::/48"));
    v6.vxlan_mode = EncapMode::Always;
    let pools = vec![v4.clone(), v6];
    let workload = pod(&a, "node-1", "w", &pools).await.unwrap();
    let ipip = a
        .allocate_tunnel("node-1", TunnelType::Ipip, &pools)
        .await
        .unwrap();
    assert_eq!(ipip.handle, "ipip-tunnel-addr-node-1");
    assert_ne!(ipip.addr, workload.addr);
    let again = a
        .allocate_tunnel("node-1", TunnelType::Ipip, &pools)
        .await
        .unwrap();
    assert_eq!(again, ipip, "stable");
    let blk = block_at(&*b.store, ipip.block).await.unwrap();
    let kinds: Vec<Kind> = blk.allocations().map(|(_, _, x)| x.kind).collect();
    assert!(kinds.contains(&Kind::Tunnel(TunnelType::Ipip)), "{kinds:?}");
    let v6addr = a
        .allocate_tunnel("node-1", TunnelType::VxlanV6, &pools)
        .await
        .unwrap();
    assert_eq!(v6addr.handle, "vxlan-v6-tunnel-addr-node-1");
    assert!(v6addr.addr.is_ipv6());
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
    // The pool switched to VXLAN: a VXLAN address, the IPIP one stays until released.
    let mut vx = v4;
    vx.ipip_mode = EncapMode::Never;
    vx.vxlan_mode = EncapMode::CrossSubnet;
    let vxlan = a
        .allocate_tunnel("node-1", TunnelType::Vxlan, &[vx])
        .await
        .unwrap();
    assert_eq!(vxlan.handle, "vxlan-tunnel-addr-node-1");
    assert_eq!(in_use(b).await, 4);
    assert_eq!(
        a.release_by_handle("ipip-tunnel-addr-node-1")
            .await
            .unwrap(),
        [ipip.addr]
    );
    assert_eq!(in_use(b).await, 3);
}

pub async fn a_pending_claim_left_by_a_crash_is_confirmed_by_the_node(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
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
    put_raw(&*b.store, &block_key(&cidr), &pending.encode()).await;
    let got = pod(&a, "node-1", "p", &pools).await.unwrap();
    assert!(!got.borrowed);
    assert_eq!(got.block, cidr);
    assert!(
        block_at(&*b.store, cidr)
            .await
            .unwrap()
            .is_confirmed_for("node-1")
    );
    assert_eq!(in_use(b).await, 1);
}

pub async fn a_corrupt_block_is_skipped_and_named(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let pools = pool("198.19.0.0/29", 30);
    let key = block_key(&net("198.19.0.0/30"));
    put_raw(&*b.store, &key, b"{\"cidr\": 42}").await;
    // The other block is claimed; the corrupt one is never claimed over.
    for i in 0..4 {
        let x = pod(&a, "node-1", &format!("p{i}"), &pools).await.unwrap();
        assert_eq!(x.block, net("198.19.0.4/30"));
    }
    let e = pod(&a, "node-1", "p4", &pools).await.unwrap_err();
    assert!(matches!(e, IpamError::Exhausted { .. }), "{e}");
    let e = a
        .release(&["198.19.0.1".parse().unwrap()])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, IpamError::Corrupt { key: k, .. } if *k == key),
        "{e}"
    );
    let r = tortie_ipam::check::check(&*b.store).await.unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(r.problems[0].contains(&key), "{:?}", r.problems);
}

/// One GC pass after another: a leaked pod address and a gone node's tunnel address go
/// on the second sighting past the grace period, an emptied block loses its affinity,
/// the live node keeps its last block; liveness from the store's heartbeats.
pub async fn gc_passes_release_leaks_and_empty_blocks(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let mut p = Pool::new("p", net("198.19.0.0/24")).with_block_size(30);
    p.ipip_mode = EncapMode::Always;
    let pools = vec![p];
    let grace = Duration::from_secs(15 * 60);
    let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + s);
    let mut gone = Vec::new();
    let mut alive = Vec::new();
    for i in 0..6 {
        let x = pod(&a, "node-1", &format!("p{i}"), &pools).await.unwrap();
        if i % 2 == 0 {
            gone.push(x)
        } else {
            alive.push(x)
        }
    }
    // Six more: two fill p4/p5's block, four a block of their own; all released, so that
    // block is empty.
    let mut tmp = Vec::new();
    for i in 0..6 {
        tmp.push(pod(&a, "node-1", &format!("t{i}"), &pools).await.unwrap());
    }
    let emptied = tmp[5].block;
    assert!(tmp[2..].iter().all(|x| x.block == emptied));
    let tun1 = a
        .allocate_tunnel("node-1", TunnelType::Ipip, &pools)
        .await
        .unwrap();
    let tun2 = a
        .allocate_tunnel("node-2", TunnelType::Ipip, &pools)
        .await
        .unwrap();
    assert_ne!(tun2.block, tun1.block, "node-2 claims a block of its own");
    let tmp: Vec<IpAddr> = tmp.iter().map(|x| x.addr).collect();
    assert_eq!(a.release(&tmp).await.unwrap().released.len(), 6);
    b.store
        .heartbeat("node-1", Duration::from_secs(60))
        .await
        .unwrap();
    let mut owners = LiveOwners::with_live_nodes(&*b.store, []).await.unwrap();
    assert_eq!(owners.nodes, HashSet::from(["node-1".to_string()]));
    for i in (1..6).step_by(2) {
        owners = owners.pod("default", &format!("p{i}"));
    }
    let mut gc = Gc::new(GcConfig::default());
    let before = in_use(b).await;
    let r = gc.run(&a, &owners, t(0)).await.unwrap();
    assert!(
        r.released.is_empty() && r.blocks_released.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.candidates, 4, "3 pods and node-2's tunnel");
    let r = gc
        .run(&a, &owners, t(0) + grace - Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        r.released.is_empty() && r.blocks_released.is_empty(),
        "{r:?}"
    );
    // Seen again past the grace period: released. node-1's empty block goes (it keeps
    // three others); node-2 is gone and its block, stranded since the first pass, is
    // given up after the tunnel address left it empty.
    let r = gc.run(&a, &owners, t(0) + grace).await.unwrap();
    let mut want: Vec<IpAddr> = gone.iter().map(|x| x.addr).chain([tun2.addr]).collect();
    want.sort();
    assert_eq!(r.released, want);
    assert_eq!(r.blocks_released, [emptied, tun2.block]);
    for cidr in &r.blocks_released {
        assert!(block_at(&*b.store, *cidr).await.is_none());
    }
    assert_eq!(in_use(b).await, before - 4);
    // Much later: node-1's remaining blocks all hold addresses and stay.
    let r = gc.run(&a, &owners, t(0) + grace * 10).await.unwrap();
    assert!(
        r.released.is_empty() && r.blocks_released.is_empty(),
        "{r:?}"
    );
    assert_eq!(a.addresses(&tun1.handle).await.unwrap().len(), 1);
    for x in &alive {
        assert_eq!(a.addresses(&x.handle).await.unwrap()[0].addr, x.addr);
    }
    assert_eq!(in_use(b).await, alive.len() + 1);
}

/// The block-owner view follows claims and releases made through the store.
pub async fn the_owner_view_follows_the_store(b: &Backend) {
    let (a, _) = allocator(b, IpamConfig::default());
    let pools = pool("198.19.0.0/24", 30);
    let view = BlockOwners::start(b.store.clone()).await.unwrap();
    assert!(view.snapshot().is_empty());
    let x = pod(&a, "node-1", "p", &pools).await.unwrap();
    let y = pod(&a, "node-2", "q", &pools).await.unwrap();
    let wait = |want: BTreeMap<ipnet::IpNet, String>| {
        let view = &view;
        async move {
            let t = Instant::now();
            while view.snapshot() != want {
                assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "view {:?}",
                    view.snapshot()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait([(x.block, "node-1".into()), (y.block, "node-2".into())].into()).await;
    a.release(&[y.addr]).await.unwrap();
    assert_eq!(
        a.release_affinity(y.block, "node-2", None, true)
            .await
            .unwrap(),
        tortie_ipam::AffinityRelease::Deleted
    );
    wait([(x.block, "node-1".into())].into()).await;
    assert_eq!(view.blocks_of("node-1"), [x.block]);
}

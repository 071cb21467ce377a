//! Faults: etcd killed under load; an allocating process killed over the embedded store.

use super::*;
// Faults

/// What one allocator loop saw.
#[derive(Default)]
struct Seen {
    acked: Vec<(String, IpAddr)>,
    /// Failed allocations: handle, error, how long the call took.
    failed: Vec<(String, IpamError, Duration)>,
    /// Successes after the last failure.
    ok_after_failure: usize,
}

mod etcd_faults {
    use super::*;
    use etcd_support::Etcd;
    use std::sync::atomic::AtomicBool;

    /// etcd is SIGKILLed while 4 allocators (4 nodes) allocate: each allocation that cannot
    /// finish fails within the request timeout with `IpamError::Store(StoreError::Unavailable)`
    /// naming etcd's endpoint; nothing is half written (`check` is clean after the restart, and
    /// every acknowledged address is there under its handle); once etcd is back on the same data
    /// directory the same allocators allocate again. An allocation whose transaction reached
    /// etcd just before the kill may have been applied though its caller saw the error: it is
    /// whole (block and handle), and released by handle as the CNI plugin's DEL would.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_killed_mid_allocations_then_restarted() {
        let mut etcd = Etcd::start();
        let timeout = Duration::from_secs(1);
        let store = open_store_with(&format!("etcd={}", etcd.endpoint()), timeout).await;
        // /28 blocks: a claim (pending, then confirmed) every 16 allocations.
        let pools = Arc::new(pool(CONC_POOL, 28));
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Vec<Arc<std::sync::Mutex<Seen>>> = (0..4).map(|_| Default::default()).collect();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let a = Allocator::new(store.clone(), IpamConfig::default());
                let (pools, stop, seen) = (pools.clone(), stop.clone(), seen[i].clone());
                tokio::spawn(async move {
                    let node = format!("node-{i}");
                    for j in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let name = format!("{node}-{j}");
                        let t = Instant::now();
                        let r = pod(&a, &node, &name, &pools).await;
                        let failed = {
                            let mut s = seen.lock().unwrap();
                            match r {
                                Ok(x) => {
                                    s.acked.push((x.handle, x.addr));
                                    s.ok_after_failure += 1;
                                    false
                                }
                                Err(e) => {
                                    s.failed.push((pod_handle(&name), e, t.elapsed()));
                                    s.ok_after_failure = 0;
                                    true
                                }
                            }
                        };
                        if failed {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
            })
            .collect();
        wait_all(
            &seen,
            "allocating",
            &|s| s.acked.len() >= 50,
            Duration::from_secs(10),
        )
        .await;
        let pid = etcd.pid().unwrap();
        etcd.kill(); // SIGKILL by PID
        let killed = Instant::now();
        let acked_before: usize = seen.iter().map(|s| s.lock().unwrap().acked.len()).sum();
        wait_all(
            &seen,
            "failing",
            &|s| !s.failed.is_empty(),
            Duration::from_secs(5),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let outage = killed.elapsed();
        etcd.start_again();
        let restarted = Instant::now();
        wait_all(
            &seen,
            "allocating again",
            &|s| !s.failed.is_empty() && s.ok_after_failure >= 20,
            Duration::from_secs(15),
        )
        .await;
        let back = restarted.elapsed();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let seen: Vec<Seen> = seen
            .into_iter()
            .map(|s| std::mem::take(&mut *s.lock().unwrap()))
            .collect();

        // The errors: the store's, Unavailable, naming etcd, within the timeout.
        let endpoint = etcd.endpoint();
        let mut slowest = Duration::ZERO;
        for (h, e, took) in seen.iter().flat_map(|s| &s.failed) {
            match e {
                IpamError::Store(StoreError::Unavailable(m)) => {
                    assert!(m.contains(&endpoint), "{h}: {m}")
                }
                e => panic!("{h}: expected Store(Unavailable), got {e:?}"),
            }
            assert!(
                e.to_string().starts_with("store unavailable: etcd at "),
                "{e}"
            );
            slowest = slowest.max(*took);
        }
        assert!(
            slowest < timeout * 2 + Duration::from_millis(500),
            "a failing allocation took {slowest:?}"
        );
        let failed: Vec<&(String, IpamError, Duration)> =
            seen.iter().flat_map(|s| &s.failed).collect();

        // Nothing half written, nothing acknowledged lost.
        let report = consistent(&*store).await;
        let stored = in_store(&*store).await;
        let acked: Vec<(String, IpAddr)> = seen.iter().flat_map(|s| s.acked.clone()).collect();
        for (h, ip) in &acked {
            assert_eq!(
                stored.get(ip).map(|x| &x.0),
                Some(h),
                "acknowledged {h} {ip} lost"
            );
        }
        let acked_handles: HashSet<&String> = acked.iter().map(|(h, _)| h).collect();
        let failed_handles: HashSet<&String> = failed.iter().map(|f| &f.0).collect();
        let unacked: Vec<_> = stored
            .iter()
            .filter(|(_, (h, _))| !acked_handles.contains(h))
            .collect();
        for (ip, (h, _)) in &unacked {
            assert!(
                failed_handles.contains(h),
                "{ip} of {h}: neither acknowledged nor failed"
            );
        }
        assert!(
            unacked.len() <= 4,
            "at most one in flight per allocator: {unacked:?}"
        );
        // The callers that saw an error release their handles (CNI DEL): back to what was acked.
        for h in &failed_handles {
            let a = Allocator::new(store.clone(), IpamConfig::default());
            a.release_by_handle(h).await.unwrap();
        }
        verify(
            &*store,
            &acked,
            "etcd after the outage, failed handles released",
        )
        .await;
        let pending = in_blocks_pending(&*store).await;
        // And a new node can still claim and allocate.
        let a = Allocator::new(store.clone(), IpamConfig::default());
        let x = pod(&a, "node-new", "after", &pools).await.unwrap();
        assert!(!x.borrowed);
        eprintln!(
            "etcd (pid {pid}) killed after {acked_before} allocations, down {outage:?}: {} failed allocations \
             (slowest {slowest:?}; first: {}), {} applied though failed, {} pending claims left; usable again \
             {back:?} after the restart; {} acknowledged in all, {} blocks",
            failed.len(),
            failed[0].1,
            unacked.len(),
            pending,
            acked.len(),
            report.blocks
        );
    }
}

/// Waits until `f` holds for every allocator's [`Seen`].
async fn wait_all(
    seen: &[Arc<std::sync::Mutex<Seen>>],
    what: &str,
    f: &dyn Fn(&Seen) -> bool,
    limit: Duration,
) {
    let t = Instant::now();
    while !seen.iter().all(|s| f(&s.lock().unwrap())) {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Blocks whose affinity is still pending.
async fn in_blocks_pending(store: &dyn Store) -> usize {
    let mut n = 0;
    for (key, v) in store.list(BLOCKS_PREFIX).await.unwrap() {
        let b = Block::decode(&key, &v.value).unwrap();
        if b.affinity
            .is_some_and(|a| a.state == AffinityState::Pending)
        {
            n += 1;
        }
    }
    n
}

mod embedded_faults {
    use super::*;

    /// An allocating process (allocate, every third op a release by handle; /30 blocks, so a
    /// claim every few allocations) SIGKILLed at different points, 8 times, over one embedded
    /// store padded to 1 MB so that a kill often lands mid-write: every time, a fresh open
    /// loads the file, `check` is clean, every acknowledged operation is there (the one in
    /// flight either whole or absent), what earlier rounds left is untouched, and the killed
    /// node allocates again (confirming a claim the kill left pending).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigkill_mid_allocations_leaves_a_valid_file_and_consistent_ipam() {
        let b = Backend::embedded().await;
        put_raw(&*b.store, "/tortie/v1/test/pad", &vec![b'p'; 1 << 20]).await;
        let pools = pool(FOREVER_POOL, 30);
        let mut known: BTreeMap<IpAddr, String> = BTreeMap::new();
        let (mut mid_write, mut pending_left, mut in_flight_applied) = (0, 0, 0);
        let data = b.dir.join("data");
        for round in 0..8u64 {
            let node = format!("node-{}", round % 3);
            let out = b.dir.join(format!("forever-{round}.out"));
            let mut child = spawn_child(&ChildSpec {
                mode: "forever",
                store: b.spec(),
                node: &node,
                round: &format!("r{round}"),
                count: 0,
                out: &out,
                release: None,
            });
            let t = Instant::now();
            while read_out(&out).len() < 10 + 3 * round as usize {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "the child does not allocate"
                );
                if let Some(s) = child.try_wait().unwrap() {
                    panic!("child exited: {s}");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if round % 2 == 1 {
                // As soon as its temporary file appears: in the middle of a write.
                let tmp = data.join(format!(".tortie.db.tmp.{}", child.id()));
                let t = Instant::now();
                while !tmp.exists() && t.elapsed() < Duration::from_secs(2) {
                    std::hint::spin_loop();
                }
            } else {
                tokio::time::sleep(Duration::from_millis(1 + 3 * round)).await;
            }
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            child.wait().unwrap();
            let tmp_left = std::fs::read_dir(&data).unwrap().flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".tortie.db.tmp")
            });
            mid_write += tmp_left as usize;

            // A fresh open: the file loads (and the dead writer's temporary file goes).
            let store = open_store(&b.spec()).await;
            consistent(&*store).await;
            pending_left += in_blocks_pending(&*store).await;
            let stored = in_store(&*store).await;
            // What the child acknowledged, against what the store holds of this round.
            let mut expect: BTreeMap<String, IpAddr> = BTreeMap::new();
            for (alloc, h, ip) in read_out(&out) {
                if alloc {
                    expect.insert(h, ip.unwrap());
                } else {
                    assert!(expect.remove(&h).is_some(), "{h} released before allocated");
                }
            }
            let prefix = format!("k8s-pod-network.r{round}-");
            let have: BTreeMap<String, IpAddr> = stored
                .iter()
                .filter(|(_, (h, _))| h.starts_with(&prefix))
                .map(|(ip, (h, _))| (h.clone(), *ip))
                .collect();
            let diff: Vec<_> = expect
                .iter()
                .filter(|(h, ip)| have.get(*h) != Some(ip))
                .chain(have.iter().filter(|(h, ip)| expect.get(*h) != Some(ip)))
                .collect();
            assert!(
                diff.len() <= 1,
                "round {round}: more than the op in flight differs: {diff:?}"
            );
            in_flight_applied += diff.len();
            // Earlier rounds untouched.
            for (ip, h) in &known {
                assert_eq!(
                    stored.get(ip).map(|x| &x.0),
                    Some(h),
                    "round {round}: {ip} of {h} changed"
                );
            }
            known.extend(have.into_iter().map(|(h, ip)| (ip, h)));
            // The killed node allocates on.
            let a = Allocator::new(
                store.clone(),
                IpamConfig {
                    max_blocks_per_host: 100_000,
                    ..IpamConfig::default()
                },
            );
            let x = pod(&a, &node, &format!("after-{round}"), &pools)
                .await
                .unwrap();
            assert!(!x.borrowed);
            known.insert(x.addr, x.handle);
            assert_eq!(
                in_blocks_pending(&*store).await,
                0,
                "the node confirmed its pending claims"
            );
            let r = consistent(&*store).await;
            assert_eq!(r.in_use, known.len());
        }
        eprintln!(
            "embedded: 8 SIGKILLs, {mid_write} mid-write (temporary file left), {pending_left} claims left pending \
             (confirmed by the next allocation), {in_flight_applied} differed by the op in flight; {} addresses in use",
            known.len()
        );
        assert!(
            mid_write > 0,
            "no kill landed in the middle of a file write"
        );
    }
}

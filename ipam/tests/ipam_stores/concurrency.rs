//! Concurrency: 10 allocators as tasks and as processes, and the child-process entry point.

use super::*;

/// Addresses per allocator: 1,000 on etcd. The embedded store rewrites its whole file on every
/// write (~9 ms at 10,000 handles, and another process re-reads it, ~11 ms), so 10 x 1,000
/// takes minutes there (measured: ~130 s for the tasks, ~200 allocations/s): it runs 10 x 100
/// unless `TORTIE_IPAM_FULL=1`.
fn each(b: &Backend) -> usize {
    if b.etcd.is_some() || std::env::var_os("TORTIE_IPAM_FULL").is_some() {
        1000
    } else {
        100
    }
}

/// Checks the addresses the allocators were given against the store: none twice, exactly
/// those in use (none lost, none extra), each under its handle, and `check` clean.
pub async fn verify(store: &dyn Store, given: &[(String, IpAddr)], what: &str) {
    let t = Instant::now();
    let mut seen: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for (h, ip) in given {
        if let Some(other) = seen.insert(*ip, h) {
            panic!("{what}: {ip} given to {other} and to {h}");
        }
    }
    let stored = in_store(store).await;
    assert_eq!(stored.len(), given.len(), "{what}: in use vs given");
    for (h, ip) in given {
        match stored.get(ip) {
            Some((sh, _)) if sh == h => {}
            other => panic!("{what}: {ip} given to {h}, the store has {other:?}"),
        }
    }
    let r = consistent(store).await;
    assert_eq!(r.in_use, given.len());
    eprintln!(
        "{what}: {} addresses in {} blocks, {} handles, consistent (checked in {:?})",
        r.in_use,
        r.blocks,
        r.handles,
        t.elapsed()
    );
}

/// Releases the even-numbered half of `given` (alternately by handle and by address).
async fn release_half(a: &Allocator, given: &[(String, IpAddr)]) -> Vec<(String, IpAddr)> {
    let mut kept = Vec::new();
    for (j, (h, ip)) in given.iter().enumerate() {
        if j % 2 == 1 {
            kept.push((h.clone(), *ip));
        } else if j % 4 == 0 {
            assert_eq!(a.release_by_handle(h).await.unwrap(), [*ip]);
        } else {
            assert_eq!(a.release(&[*ip]).await.unwrap().released, [*ip]);
        }
    }
    kept
}

async fn allocate_many(
    a: &Allocator,
    node: &str,
    round: &str,
    n: usize,
    pools: &[Pool],
) -> Vec<(String, IpAddr)> {
    let mut v = Vec::with_capacity(n);
    for j in 0..n {
        let name = format!("{round}-{node}-{j}");
        let got = pod(a, node, &name, pools)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!got.borrowed, "{name} borrowed {}", got.addr);
        v.push((pod_handle(&name), got.addr));
    }
    v
}

/// 10 allocators (one per node, each its own `Allocator`, one shared store client) as tokio
/// tasks, 1,000 addresses each; half released and 500 each allocated again.
pub async fn ten_tasks(b: &Backend) {
    let each = each(b);
    let pools = Arc::new(pool(CONC_POOL, 26));
    let allocators: Vec<Arc<Allocator>> = (0..NODES)
        .map(|_| Arc::new(Allocator::new(b.store.clone(), IpamConfig::default())))
        .collect();
    let t = Instant::now();
    let tasks: Vec<_> = allocators
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (a, pools) = (a.clone(), pools.clone());
            tokio::spawn(async move {
                allocate_many(&a, &format!("node-{i}"), "first", each, &pools).await
            })
        })
        .collect();
    let mut per_node = Vec::new();
    for h in tasks {
        per_node.push(h.await.unwrap());
    }
    let first = t.elapsed();
    let all: Vec<_> = per_node.iter().flatten().cloned().collect();
    verify(&*b.store, &all, &format!("{}: 10 tasks x {each}", b.name)).await;

    let t = Instant::now();
    let tasks: Vec<_> = allocators
        .iter()
        .zip(per_node)
        .enumerate()
        .map(|(i, (a, mine))| {
            let (a, pools) = (a.clone(), pools.clone());
            tokio::spawn(async move {
                let mut kept = release_half(&a, &mine).await;
                kept.extend(
                    allocate_many(&a, &format!("node-{i}"), "again", each / 2, &pools).await,
                );
                kept
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in tasks {
        all.extend(h.await.unwrap());
    }
    let second = t.elapsed();
    verify(
        &*b.store,
        &all,
        &format!("{}: half released, 10 x {} again", b.name, each / 2),
    )
    .await;
    eprintln!(
        "{}: 10 tasks: {} allocations in {first:?} ({:.0}/s); release {} + allocate {} in {second:?}",
        b.name,
        NODES * each,
        (NODES * each) as f64 / first.as_secs_f64(),
        NODES * each / 2,
        NODES * each / 2
    );
}

/// Runs one child per node in `mode`, all starting together (a barrier through the store);
/// returns what each acknowledged.
async fn run_children(
    b: &Backend,
    mode: &str,
    round: &str,
    count: usize,
    release: Option<&[Vec<String>]>,
) -> Vec<Vec<(bool, String, Option<IpAddr>)>> {
    let outs: Vec<_> = (0..NODES)
        .map(|i| b.dir.join(format!("{round}-node-{i}.out")))
        .collect();
    let rels: Vec<_> = (0..NODES)
        .map(|i| b.dir.join(format!("{round}-node-{i}.release")))
        .collect();
    if let Some(release) = release {
        for (p, hs) in rels.iter().zip(release) {
            std::fs::write(p, hs.join("\n")).unwrap();
        }
    }
    let mut children: Vec<_> = (0..NODES)
        .map(|i| {
            spawn_child(&ChildSpec {
                mode,
                store: b.spec(),
                node: &format!("node-{i}"),
                round,
                count,
                out: &outs[i],
                release: release.map(|_| rels[i].as_path()),
            })
        })
        .collect();
    let ready = format!("/tortie/v1/test/{round}/ready/");
    let t = Instant::now();
    while b.store.list(&ready).await.unwrap().len() < NODES {
        for c in &mut children {
            if let Some(s) = c.try_wait().unwrap() {
                panic!("a child exited before it was ready: {s}");
            }
        }
        assert!(t.elapsed() < Duration::from_secs(20), "children not ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    put_raw(&*b.store, &format!("/tortie/v1/test/{round}/go"), b"1").await;
    let t = Instant::now();
    let statuses = tokio::task::spawn_blocking(move || {
        children
            .iter_mut()
            .map(|c| c.wait().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (i, s) in statuses.iter().enumerate() {
        assert!(s.success(), "child node-{i} ({mode}): {s}");
    }
    eprintln!(
        "{}: 10 processes ({mode}, {round}) done in {:?}",
        b.name,
        t.elapsed()
    );
    outs.iter().map(|p| read_out(p)).collect()
}

/// 10 processes (one per node), 1,000 addresses each; then each releases half of its own and
/// allocates 500 again.
pub async fn ten_processes(b: &Backend) {
    let each = each(b);
    let outs = run_children(b, "alloc", "first", each, None).await;
    let mut all = Vec::new();
    for o in &outs {
        assert_eq!(o.len(), each);
        all.extend(o.iter().map(|(_, h, a)| (h.clone(), a.unwrap())));
    }
    verify(
        &*b.store,
        &all,
        &format!("{}: 10 processes x {each}", b.name),
    )
    .await;
    let release: Vec<Vec<String>> = outs
        .iter()
        .map(|o| o.iter().step_by(2).map(|(_, h, _)| h.clone()).collect())
        .collect();
    let released: HashSet<&String> = release.iter().flatten().collect();
    let outs2 = run_children(b, "release-alloc", "again", each / 2, Some(&release)).await;
    let mut all: Vec<_> = all
        .into_iter()
        .filter(|(h, _)| !released.contains(h))
        .collect();
    for o in &outs2 {
        assert_eq!(o.iter().filter(|x| !x.0).count(), each / 2, "releases");
        all.extend(
            o.iter()
                .filter(|x| x.0)
                .map(|(_, h, a)| (h.clone(), a.unwrap())),
        );
    }
    assert_eq!(all.len(), NODES * each);
    verify(
        &*b.store,
        &all,
        &format!(
            "{}: 10 processes, half released, {} each again",
            b.name,
            each / 2
        ),
    )
    .await;
}

/// Child-process entry: does nothing in a normal run. With `TORTIE_IPAM_CHILD` set:
/// - `alloc`: allocates `COUNT` pod addresses for `NODE` (after the round's barrier);
/// - `release-alloc`: releases the handles listed in `RELEASE`, then allocates `COUNT`;
/// - `forever`: allocates (releasing every third) until killed, no barrier, small blocks.
///
/// Each acknowledged operation is appended to `OUT` as one line ending in `;`.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("TORTIE_IPAM_CHILD") else {
        return;
    };
    let var = |k: &str| std::env::var(format!("TORTIE_IPAM_{k}")).unwrap();
    let (spec, node, round) = (var("STORE"), var("NODE"), var("ROUND"));
    let count: usize = var("COUNT").parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use std::io::Write as _;
        let store = open_store(&spec).await;
        let a = Allocator::new(
            store.clone(),
            IpamConfig {
                max_blocks_per_host: 100_000,
                ..IpamConfig::default()
            },
        );
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(var("OUT"))
            .unwrap();
        let mut line = |s: String| out.write_all(s.as_bytes()).unwrap();
        if mode != "forever" {
            put_raw(
                &*store,
                &format!("/tortie/v1/test/{round}/ready/{node}"),
                b"1",
            )
            .await;
            while store
                .get(&format!("/tortie/v1/test/{round}/go"))
                .await
                .unwrap()
                .is_none()
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        match mode.as_str() {
            "alloc" | "release-alloc" => {
                if mode == "release-alloc" {
                    let list = std::fs::read_to_string(var("RELEASE")).unwrap();
                    for h in list.lines() {
                        assert_eq!(a.release_by_handle(h).await.unwrap().len(), 1, "{h}");
                        line(format!("- {h};\n"));
                    }
                }
                let pools = pool(CONC_POOL, 26);
                let mut buf = String::new();
                for (h, ip) in allocate_many(&a, &node, &round, count, &pools).await {
                    buf.push_str(&format!("+ {h} {ip};\n"));
                }
                line(buf);
            }
            "forever" => {
                let pools = pool(FOREVER_POOL, 30);
                let mut held: Vec<String> = Vec::new();
                for j in 0.. {
                    let name = format!("{round}-{node}-{j}");
                    let got = pod(&a, &node, &name, &pools).await.unwrap();
                    line(format!("+ {} {};\n", got.handle, got.addr));
                    held.push(got.handle);
                    if j % 3 == 2 {
                        let h = held.remove(held.len() / 2);
                        a.release_by_handle(&h).await.unwrap();
                        line(format!("- {h};\n"));
                    }
                }
            }
            m => panic!("unknown child mode {m}"),
        }
    });
}

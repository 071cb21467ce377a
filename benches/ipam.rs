//! IPAM allocation throughput (issue 6): pod addresses allocated per second against a real etcd
//! (a throwaway `etcd-server` on 127.0.0.1 with its data under /dev/shm, as the tests start it)
//! and against the embedded store (a scratch directory, fsync on), with 1 allocator and with 10
//! concurrent allocators (10 nodes, tokio tasks): sharing one store client (an agent serving
//! many requests), and each with its own client (10 nodes' agents: own etcd connection, own
//! embedded file handle, re-reading the file another wrote). Every run starts from an empty
//! store, allocates one address per pod handle from a /16 pool of /26 blocks (claims
//! included), and ends with `check` (consistent, the count right). Prints a table: allocations
//! per second and per-allocation latency (p50, p99).
//!
//! The anchor, per store and in the same run: one writer doing `n` compare-and-swap writes of a
//! block-sized value (`Compare::Revision` on the key it last wrote), the least store work an
//! allocation can do. The ratio allocs/s : CAS/s says how much of the store round trip the
//! allocator's own logic and its extra writes (claims, handles) cost.
//!
//! `cargo bench --bench ipam` (root; about a minute). Under `cargo test` (no `--bench`
//! argument) it runs a smoke version of 20 allocations per row. `IPAM_BENCH_N=N` overrides the
//! allocations per row (split over the allocators).
//!
//! The embedded store rewrites its whole file on every write, so its rate falls as the store
//! grows (a few hundred handles: ~1 ms a write; 10,000: ~9 ms): the figures are for N
//! allocations from empty.

#[path = "../ipam/tests/etcd_support/mod.rs"]
mod etcd_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_support::{Etcd, scratch_dir};
use ipnet::IpNet;
use tortie_ipam::check::check;
use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::store::etcd::{EtcdConfig, EtcdStore};
use tortie_ipam::store::{Compare, Store, Write};
use tortie_ipam::{AllocRequest, Allocator, IpamConfig, Pool};

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Etcd,
    Embedded,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Etcd => "etcd",
            Backend::Embedded => "embedded",
        }
    }
}

/// A fresh, empty store of the backend: what keeps it alive, and a way to open more clients.
struct Fresh {
    _etcd: Option<Etcd>,
    dir: Option<std::path::PathBuf>,
    spec: (Backend, String),
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Fresh {
    fn new(b: Backend) -> Fresh {
        match b {
            Backend::Etcd => {
                let etcd = Etcd::start();
                let ep = etcd.endpoint();
                Fresh {
                    _etcd: Some(etcd),
                    dir: None,
                    spec: (b, ep),
                }
            }
            Backend::Embedded => {
                let dir = scratch_dir("ipam-bench");
                Fresh {
                    _etcd: None,
                    spec: (b, dir.display().to_string()),
                    dir: Some(dir),
                }
            }
        }
    }

    async fn client(&self) -> Arc<dyn Store> {
        match self.spec.0 {
            Backend::Etcd => Arc::new(
                EtcdStore::connect(
                    EtcdConfig::new([self.spec.1.clone()]).with_timeout(Duration::from_secs(5)),
                )
                .await
                .expect("connect to the bench etcd"),
            ),
            Backend::Embedded => Arc::new(
                EmbeddedStore::open(EmbeddedConfig::new(&self.spec.1))
                    .await
                    .expect("open the bench store"),
            ),
        }
    }
}

struct Row {
    backend: Backend,
    mode: &'static str,
    total: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

/// The anchor: `total` conditioned puts of one ~1 KiB key, one after another.
async fn cas_anchor(b: Backend, total: usize) -> Row {
    let fresh = Fresh::new(b);
    let store = fresh.client().await;
    let key = "/tortie/v1/bench/anchor".to_string();
    let value = vec![b'x'; 1024];
    assert!(
        store
            .txn(
                &[Compare::Absent(key.clone())],
                &[Write::Put(key.clone(), value.clone())]
            )
            .await
            .unwrap()
    );
    let mut lat = Vec::with_capacity(total);
    let start = Instant::now();
    for _ in 0..total {
        let t = Instant::now();
        let rev = store.get(&key).await.unwrap().expect("anchor key").revision;
        let ok = store
            .txn(
                &[Compare::Revision(key.clone(), rev)],
                &[Write::Put(key.clone(), value.clone())],
            )
            .await
            .unwrap();
        assert!(ok, "uncontended CAS lost");
        lat.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    Row {
        backend: b,
        mode: "anchor: get+CAS",
        total,
        elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

/// `allocators` nodes allocate `total / allocators` addresses each, all at once.
async fn run(b: Backend, allocators: usize, own_clients: bool, total: usize) -> Row {
    let fresh = Fresh::new(b);
    let shared = fresh.client().await;
    let pools: Arc<Vec<Pool>> = Arc::new(vec![
        Pool::new("bench", "198.19.0.0/16".parse::<IpNet>().unwrap()).with_block_size(26),
    ]);
    let each = total / allocators;
    let mut allocs = Vec::new();
    for _ in 0..allocators {
        let store = if own_clients {
            fresh.client().await
        } else {
            shared.clone()
        };
        // One allocator takes all `total` addresses: let it hold as many blocks as that needs.
        let config = IpamConfig {
            max_blocks_per_host: 1024,
            ..IpamConfig::default()
        };
        allocs.push(Arc::new(Allocator::new(store, config)));
    }
    let start = Instant::now();
    let tasks: Vec<_> = allocs
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let pools = pools.clone();
            tokio::spawn(async move {
                let node = format!("node-{i}");
                let mut lat = Vec::with_capacity(each);
                for j in 0..each {
                    let handle = format!("k8s-pod-network.{node}-{j}");
                    let pod = format!("pod-{j}");
                    let req = AllocRequest::pod(&handle, &node, "default", &pod, &pools);
                    let t = Instant::now();
                    a.allocate(&req)
                        .await
                        .unwrap_or_else(|e| panic!("{handle}: {e}"));
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let report = check(&*shared).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.in_use, each * allocators);
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    Row {
        backend: b,
        mode: match (allocators, own_clients) {
            (1, _) => "1 allocator",
            (_, false) => "10, one client",
            (_, true) => "10, own clients",
        },
        total: each * allocators,
        elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("IPAM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 2000 } else { 20 });
    let have_etcd = std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_etcd {
        eprintln!("ipam bench: no etcd binary (apt-get install etcd-server): etcd rows skipped");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for b in [Backend::Etcd, Backend::Embedded] {
        if b == Backend::Etcd && !have_etcd {
            continue;
        }
        let anchor = rt.block_on(cas_anchor(b, n));
        eprintln!(
            "{} anchor: {} in {:?}",
            b.name(),
            anchor.total,
            anchor.elapsed
        );
        rows.push(anchor);
        for (allocators, own) in [(1, false), (10, false), (10, true)] {
            let row = rt.block_on(run(b, allocators, own, n));
            eprintln!(
                "{} {}: {} in {:?}",
                b.name(),
                row.mode,
                row.total,
                row.elapsed
            );
            rows.push(row);
        }
    }
    println!();
    println!(
        "IPAM allocations ({} per row from an empty store, /26 blocks; {} CPUs)",
        n,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<10} {:<17} {:>6} {:>9} {:>12} {:>9} {:>10} {:>10}",
        "store", "allocators", "ops", "time", "ops/s", "x anchor", "p50", "p99"
    );
    let rate = |r: &Row| r.total as f64 / r.elapsed.as_secs_f64();
    for r in &rows {
        let anchor = rows
            .iter()
            .find(|a| a.backend == r.backend && a.mode.starts_with("anchor"))
            .map_or(f64::NAN, rate);
        println!(
            "{:<10} {:<17} {:>6} {:>8.2}s {:>12.0} {:>9.2} {:>8.2}ms {:>8.2}ms",
            r.backend.name(),
            r.mode,
            r.total,
            r.elapsed.as_secs_f64(),
            rate(r),
            rate(r) / anchor,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
        );
    }
}

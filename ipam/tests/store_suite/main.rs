//! One suite of [`Store`] behaviours, run against both backends (`etcd::*` against a throwaway
//! etcd-server, `embedded::*` against a file in a scratch directory), then the faults each
//! backend has of its own: etcd stopped in the middle of writes and restarted; the embedded file
//! after a writer is SIGKILLed, two processes writing at once, corrupt files, a held lock.
//!
//! Child processes are this test binary run again with `TORTIE_STORE_CHILD` set (see
//! [`child_process`]), so the suite is self-contained.
//!
//! The cases live by concept: the shared suite (`suite`, instantiated for both backends by
//! `shared_suite!` below), the faults of etcd (`etcd_faults`) and of the embedded store
//! (`embedded_faults`). This file holds the backends, the helpers and the child-process entry.

#[path = "../etcd_support/mod.rs"]
mod etcd_support;

mod embedded_faults;
mod etcd_faults;
mod suite;

use etcd_support::{Etcd, ServerTls, scratch_dir};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::store::etcd::{EtcdConfig, EtcdStore, EtcdTls};
use tortie_ipam::store::{Compare, Event, Store, StoreError, Versioned, Watch, Write};

const P: &str = "/tortie/v1/suite/";

fn k(s: &str) -> String {
    format!("{P}{s}")
}

fn put(key: &str, v: &str) -> Write {
    Write::Put(key.to_string(), v.as_bytes().to_vec())
}

// ---------------------------------------------------------------------------------------------
// Backends

enum Backend {
    Etcd { _etcd: Etcd, store: Arc<EtcdStore> },
    Embedded { dir: PathBuf },
}

struct Harness {
    store: Arc<dyn Store>,
    backend: Backend,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Backend::Embedded { dir } = &self.backend {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Harness {
    async fn etcd() -> Harness {
        let etcd = Etcd::start();
        let store = Arc::new(
            EtcdStore::connect(
                EtcdConfig::new([etcd.endpoint()]).with_timeout(Duration::from_secs(3)),
            )
            .await
            .expect("connect to the test etcd"),
        );
        Harness {
            store: store.clone(),
            backend: Backend::Etcd { _etcd: etcd, store },
        }
    }

    async fn embedded() -> Harness {
        let dir = scratch_dir("embedded");
        let store = EmbeddedStore::open(EmbeddedConfig::new(&dir))
            .await
            .expect("open embedded store");
        Harness {
            store: Arc::new(store),
            backend: Backend::Embedded { dir },
        }
    }

    /// Puts data there that tortie never writes.
    async fn corrupt(&self) {
        match &self.backend {
            Backend::Etcd { store, .. } => {
                let mut c = store.client();
                c.put(b"/tortie/v1/suite/\xff\xfe".to_vec(), b"x".to_vec(), None)
                    .await
                    .unwrap();
            }
            Backend::Embedded { dir } => {
                std::fs::write(
                    dir.join("tortie.db"),
                    b"{\"format\": \"tortie-embedded/1\", \"revision\": ",
                )
                .unwrap();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

async fn get_str(s: &dyn Store, key: &str) -> Option<(String, u64)> {
    s.get(key)
        .await
        .unwrap()
        .map(|v| (String::from_utf8(v.value).unwrap(), v.revision))
}

/// Adds one to the decimal counter at `key` with compare-and-swap; returns the retries it took.
async fn increment(s: &dyn Store, key: &str) -> u32 {
    let mut retries = 0;
    loop {
        let cur = s.get(key).await.expect("get counter");
        let (n, cmp) = match cur {
            None => (0u64, Compare::Absent(key.to_string())),
            Some(v) => (
                std::str::from_utf8(&v.value)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
                Compare::Revision(key.to_string(), v.revision),
            ),
        };
        if s.txn(&[cmp], &[put(key, &(n + 1).to_string())])
            .await
            .expect("txn counter")
        {
            return retries;
        }
        retries += 1;
        if retries % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

async fn next_event(w: &mut Watch) -> Event {
    match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
        Ok(Some(Ok(e))) => e,
        Ok(Some(Err(e))) => panic!("watch error: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within 5 s"),
    }
}

/// No event arrives for a while (longer than the embedded store's poll interval).
async fn quiet(w: &mut Watch) {
    if let Ok(e) = tokio::time::timeout(Duration::from_millis(350), w.next()).await {
        panic!("unexpected watch item: {e:?}");
    }
}

fn ev_put(key: &str, v: &str) -> (String, Option<String>) {
    (key.to_string(), Some(v.to_string()))
}

fn ev_del(key: &str) -> (String, Option<String>) {
    (key.to_string(), None)
}

fn simple(e: &Event) -> (String, Option<String>) {
    match e {
        Event::Put { key, value } => (
            key.clone(),
            Some(String::from_utf8(value.value.clone()).unwrap()),
        ),
        Event::Delete { key } => (key.clone(), None),
    }
}

macro_rules! shared_suite {
    ($($name:ident),* $(,)?) => {
        mod etcd {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = Harness::etcd().await;
                    suite::$name(&h).await;
                }
            )*
        }
        mod embedded {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = Harness::embedded().await;
                    suite::$name(&h).await;
                }
            )*
        }
    };
}

shared_suite!(
    roundtrip,
    txn_all_or_nothing,
    revisions,
    list_order_and_prefix,
    invalid_requests,
    watch_step_by_step,
    watch_burst_converges,
    liveness_expires,
    contention_never_loses_an_update,
    corrupt_data_is_reported,
);

// ---------------------------------------------------------------------------------------------
// Child processes (the embedded faults run this binary again)

/// Child-process entry: does nothing in a normal run; the embedded tests run this binary again
/// with `TORTIE_STORE_CHILD` set to `storm` (write forever) or `increment` (N CAS increments).
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("TORTIE_STORE_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("TORTIE_STORE_DIR").unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = EmbeddedStore::open(EmbeddedConfig::new(&dir))
            .await
            .unwrap();
        match mode.as_str() {
            "storm" => {
                // a, b and c are always written together with the same counter; pad makes each
                // file write take a while.
                let pad = "p".repeat(400_000);
                for i in 1u64.. {
                    let v = i.to_string();
                    store
                        .txn(
                            &[],
                            &[
                                put(&k("a"), &v),
                                put(&k("b"), &v),
                                put(&k("c"), &v),
                                put(&k("pad"), &format!("{v}{pad}")),
                            ],
                        )
                        .await
                        .unwrap();
                }
            }
            "increment" => {
                let n: u32 = std::env::var("TORTIE_STORE_N").unwrap().parse().unwrap();
                store
                    .txn(&[], &[put(&k("child-ready"), "1")])
                    .await
                    .unwrap();
                while store.get(&k("go")).await.unwrap().is_none() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                for _ in 0..n {
                    increment(&store, &k("counter")).await;
                }
            }
            m => panic!("unknown child mode {m}"),
        }
    });
}

fn spawn_child(mode: &str, dir: &Path, n: u32) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TORTIE_STORE_CHILD", mode)
        .env("TORTIE_STORE_DIR", dir)
        .env("TORTIE_STORE_N", n.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

//! One suite of [`Store`] behaviours, run against both backends (`etcd::*` against a throwaway
//! etcd-server, `embedded::*` against a file in a scratch directory), then the faults each
//! backend has of its own: etcd stopped in the middle of writes and restarted; the embedded file
//! after a writer is SIGKILLed, two processes writing at once, corrupt files, a held lock.
//!
//! Child processes are this test binary run again with `TORTIE_STORE_CHILD` set (see
//! [`child_process`]), so the suite is self-contained.

mod etcd_support;

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

// ---------------------------------------------------------------------------------------------
// The shared suite

mod suite {
    use super::*;

    pub async fn roundtrip(h: &Harness) {
        let s = &*h.store;
        assert_eq!(s.get(&k("a")).await.unwrap(), None);
        assert!(s.list(P).await.unwrap().is_empty());
        assert!(s.txn(&[], &[put(&k("a"), "one")]).await.unwrap());
        let (v, r1) = get_str(s, &k("a")).await.unwrap();
        assert_eq!(v, "one");
        assert!(r1 > 0);
        // Binary values survive as they are.
        let bin = vec![0u8, 1, 0xff, 0xfe, b'"', b'\\', 0x80];
        assert!(
            s.txn(&[], &[Write::Put(k("bin"), bin.clone())])
                .await
                .unwrap()
        );
        assert_eq!(s.get(&k("bin")).await.unwrap().unwrap().value, bin);
        // Empty value.
        assert!(s.txn(&[], &[put(&k("empty"), "")]).await.unwrap());
        assert_eq!(
            s.get(&k("empty")).await.unwrap().unwrap().value,
            Vec::<u8>::new()
        );
        // Overwrite.
        assert!(s.txn(&[], &[put(&k("a"), "two")]).await.unwrap());
        let (v, r2) = get_str(s, &k("a")).await.unwrap();
        assert_eq!(v, "two");
        assert!(r2 > r1);
        let l = s.list(P).await.unwrap();
        assert_eq!(
            l.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [k("a"), k("bin"), k("empty")]
        );
        assert_eq!(
            l[0].1,
            Versioned {
                value: b"two".to_vec(),
                revision: r2
            }
        );
        // Delete, and deleting what is not there.
        assert!(s.txn(&[], &[Write::Delete(k("a"))]).await.unwrap());
        assert_eq!(s.get(&k("a")).await.unwrap(), None);
        assert!(s.txn(&[], &[Write::Delete(k("never"))]).await.unwrap());
        assert_eq!(s.list(P).await.unwrap().len(), 2);
        // A large value (a big IPAM block is a few hundred kB at most).
        let big = "x".repeat(300_000);
        assert!(s.txn(&[], &[put(&k("big"), &big)]).await.unwrap());
        assert_eq!(get_str(s, &k("big")).await.unwrap().0.len(), big.len());
    }

    pub async fn txn_all_or_nothing(h: &Harness) {
        let s = &*h.store;
        // Absent holds on a missing key, and the writes all land at one revision.
        assert!(
            s.txn(
                &[Compare::Absent(k("a"))],
                &[put(&k("a"), "1"), put(&k("b"), "1"), put(&k("c"), "1")]
            )
            .await
            .unwrap()
        );
        let ra = s.get(&k("a")).await.unwrap().unwrap().revision;
        assert_eq!(s.get(&k("b")).await.unwrap().unwrap().revision, ra);
        assert_eq!(s.get(&k("c")).await.unwrap().unwrap().revision, ra);
        // Absent fails on an existing key: nothing written, not even the other keys.
        assert!(
            !s.txn(
                &[Compare::Absent(k("a"))],
                &[put(&k("a"), "2"), put(&k("d"), "2"), Write::Delete(k("b"))]
            )
            .await
            .unwrap()
        );
        assert_eq!(get_str(s, &k("a")).await.unwrap(), ("1".into(), ra));
        assert_eq!(s.get(&k("d")).await.unwrap(), None);
        assert!(s.get(&k("b")).await.unwrap().is_some());
        // Several compares: all hold → applied; one fails → nothing.
        let both = [
            Compare::Revision(k("a"), ra),
            Compare::Revision(k("b"), ra),
            Compare::Absent(k("z")),
        ];
        let one_bad = [
            Compare::Revision(k("a"), ra),
            Compare::Revision(k("b"), ra + 1000),
            Compare::Absent(k("z")),
        ];
        assert!(
            !s.txn(&one_bad, &[put(&k("a"), "x"), Write::Delete(k("c"))])
                .await
                .unwrap()
        );
        assert_eq!(get_str(s, &k("a")).await.unwrap().0, "1");
        assert!(s.get(&k("c")).await.unwrap().is_some());
        assert!(
            s.txn(
                &both,
                &[put(&k("a"), "2"), Write::Delete(k("c")), put(&k("e"), "2")]
            )
            .await
            .unwrap()
        );
        let (va, ra2) = get_str(s, &k("a")).await.unwrap();
        assert_eq!(va, "2");
        assert!(ra2 > ra);
        assert_eq!(s.get(&k("c")).await.unwrap(), None);
        assert_eq!(s.get(&k("e")).await.unwrap().unwrap().revision, ra2);
        // Compares without writes report whether they hold and change nothing.
        assert!(s.txn(&[Compare::Revision(k("a"), ra2)], &[]).await.unwrap());
        assert!(!s.txn(&[Compare::Revision(k("a"), ra)], &[]).await.unwrap());
        assert_eq!(s.get(&k("a")).await.unwrap().unwrap().revision, ra2);
    }

    pub async fn revisions(h: &Harness) {
        let s = &*h.store;
        let mut last = 0;
        for i in 0..5 {
            assert!(s.txn(&[], &[put(&k("r"), &i.to_string())]).await.unwrap());
            let r = s.get(&k("r")).await.unwrap().unwrap().revision;
            assert!(r > last, "revision {r} after {last}");
            last = r;
        }
        // Revisions are store-wide: a write of another key is later still.
        assert!(s.txn(&[], &[put(&k("other"), "x")]).await.unwrap());
        let ro = s.get(&k("other")).await.unwrap().unwrap().revision;
        assert!(ro > last);
        // The revision of "r" did not move.
        assert_eq!(s.get(&k("r")).await.unwrap().unwrap().revision, last);
        // A stale revision fails; the current one works once.
        let stale = last;
        assert!(
            s.txn(&[Compare::Revision(k("r"), stale)], &[put(&k("r"), "cas1")])
                .await
                .unwrap()
        );
        assert!(
            !s.txn(&[Compare::Revision(k("r"), stale)], &[put(&k("r"), "cas2")])
                .await
                .unwrap()
        );
        assert_eq!(get_str(s, &k("r")).await.unwrap().0, "cas1");
        // Revision on a missing key fails; Absent holds again after a delete.
        assert!(
            !s.txn(
                &[Compare::Revision(k("missing"), 1)],
                &[put(&k("missing"), "x")]
            )
            .await
            .unwrap()
        );
        assert!(!s.txn(&[Compare::Absent(k("r"))], &[]).await.unwrap());
        assert!(s.txn(&[], &[Write::Delete(k("r"))]).await.unwrap());
        assert!(s.txn(&[Compare::Absent(k("r"))], &[]).await.unwrap());
        let cur = s.get(&k("other")).await.unwrap().unwrap().revision;
        assert!(!s.txn(&[Compare::Revision(k("r"), cur)], &[]).await.unwrap());
        // Re-created keys get a new, higher revision (an old compare cannot match them).
        assert!(
            s.txn(&[Compare::Absent(k("r"))], &[put(&k("r"), "again")])
                .await
                .unwrap()
        );
        assert!(s.get(&k("r")).await.unwrap().unwrap().revision > ro);
    }

    pub async fn list_order_and_prefix(h: &Harness) {
        let s = &*h.store;
        let keys = [
            "/tortie/v1/ipam/blocks/198.19.0.64-26",
            "/tortie/v1/ipam/blocks/198.19.0.0-26",
            "/tortie/v1/ipam/blocks/198.19.1.0-26",
            "/tortie/v1/ipam/blocksX",
            "/tortie/v1/ipam/blocks",
            "/tortie/v1/ipam/handles/pod-a",
            "/tortie/v1/ipam/blocks/198.19.0.128-26",
            "/tortie/v1/ipam/blocks/Z",
            "/tortie/v1/ipam/blocks/a",
        ];
        for (i, key) in keys.iter().enumerate() {
            assert!(s.txn(&[], &[put(key, &i.to_string())]).await.unwrap());
        }
        let got: Vec<String> = s
            .list("/tortie/v1/ipam/blocks/")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            got,
            [
                "/tortie/v1/ipam/blocks/198.19.0.0-26",
                "/tortie/v1/ipam/blocks/198.19.0.128-26",
                "/tortie/v1/ipam/blocks/198.19.0.64-26",
                "/tortie/v1/ipam/blocks/198.19.1.0-26",
                "/tortie/v1/ipam/blocks/Z",
                "/tortie/v1/ipam/blocks/a",
            ]
        );
        let all: Vec<String> = s
            .list("/tortie/v1/ipam/")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut sorted: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
        sorted.sort();
        assert_eq!(all, sorted);
        assert_eq!(s.list("/tortie/v1/ipam/handles/").await.unwrap().len(), 1);
        assert!(s.list("/tortie/v1/ipam/nothing/").await.unwrap().is_empty());
        // A prefix that is a whole key includes that key.
        assert_eq!(s.list("/tortie/v1/ipam/blocksX").await.unwrap().len(), 1);
        // Values and revisions come with the keys.
        let one = s.list("/tortie/v1/ipam/handles/").await.unwrap();
        assert_eq!(one[0].1.value, b"5");
        assert_eq!(
            one[0].1.revision,
            s.get("/tortie/v1/ipam/handles/pod-a")
                .await
                .unwrap()
                .unwrap()
                .revision
        );
    }

    pub async fn invalid_requests(h: &Harness) {
        let s = &*h.store;
        let invalid = |r: Result<bool, StoreError>| {
            assert!(
                matches!(r, Err(StoreError::Invalid(_))),
                "expected Invalid, got {r:?}"
            );
        };
        invalid(s.txn(&[], &[put("/other/key", "x")]).await);
        invalid(s.txn(&[], &[put("", "x")]).await);
        invalid(s.txn(&[], &[put("/tortie/v1/", "x")]).await);
        invalid(s.txn(&[Compare::Absent("relative".into())], &[]).await);
        invalid(
            s.txn(&[Compare::Revision(k("a"), 0)], &[put(&k("a"), "x")])
                .await,
        );
        invalid(
            s.txn(&[], &[put(&k("dup"), "1"), Write::Delete(k("dup"))])
                .await,
        );
        assert!(matches!(
            s.get("/etc/passwd").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(s.list("/").await, Err(StoreError::Invalid(_))));
        assert!(matches!(s.watch("/x/").await, Err(StoreError::Invalid(_))));
        assert!(matches!(
            s.heartbeat("a/b", Duration::from_secs(2)).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.heartbeat("", Duration::from_secs(2)).await,
            Err(StoreError::Invalid(_))
        ));
        // Nothing was written by any of them.
        assert!(s.list("/tortie/v1/").await.unwrap().is_empty());
        let msg = s
            .txn(&[], &[put("/other/key", "x")])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/other/key") && msg.contains("/tortie/v1/"),
            "{msg}"
        );
    }

    pub async fn watch_step_by_step(h: &Harness) {
        let s = &*h.store;
        // Before the watch: not delivered.
        assert!(
            s.txn(&[], &[put(&k("w/old"), "old"), put(&k("outside"), "x")])
                .await
                .unwrap()
        );
        let mut w = s.watch(&k("w/")).await.unwrap();
        quiet(&mut w).await;
        assert!(s.txn(&[], &[put(&k("w/a"), "1")]).await.unwrap());
        let ra = s.get(&k("w/a")).await.unwrap().unwrap().revision;
        match next_event(&mut w).await {
            Event::Put { key, value } => {
                assert_eq!(key, k("w/a"));
                assert_eq!(
                    value,
                    Versioned {
                        value: b"1".to_vec(),
                        revision: ra
                    }
                );
            }
            e => panic!("{e:?}"),
        }
        // Outside the prefix: nothing.
        assert!(
            s.txn(
                &[],
                &[
                    put(&k("outside"), "y"),
                    put(&k("w"), "y"),
                    put(&k("wx/a"), "y")
                ]
            )
            .await
            .unwrap()
        );
        quiet(&mut w).await;
        assert!(s.txn(&[], &[put(&k("w/b"), "2")]).await.unwrap());
        assert_eq!(simple(&next_event(&mut w).await), ev_put(&k("w/b"), "2"));
        assert!(s.txn(&[], &[Write::Delete(k("w/a"))]).await.unwrap());
        assert_eq!(simple(&next_event(&mut w).await), ev_del(&k("w/a")));
        assert!(s.txn(&[], &[put(&k("w/a"), "3")]).await.unwrap());
        assert_eq!(simple(&next_event(&mut w).await), ev_put(&k("w/a"), "3"));
        assert!(s.txn(&[], &[Write::Delete(k("w/old"))]).await.unwrap());
        assert_eq!(simple(&next_event(&mut w).await), ev_del(&k("w/old")));
        // A failed txn produces nothing.
        assert!(
            !s.txn(&[Compare::Absent(k("w/a"))], &[put(&k("w/a"), "no")])
                .await
                .unwrap()
        );
        quiet(&mut w).await;
        // Two watches on one prefix both see a change.
        let mut w2 = s.watch(&k("w/")).await.unwrap();
        assert!(s.txn(&[], &[put(&k("w/c"), "4")]).await.unwrap());
        assert_eq!(simple(&next_event(&mut w).await), ev_put(&k("w/c"), "4"));
        assert_eq!(simple(&next_event(&mut w2).await), ev_put(&k("w/c"), "4"));
    }

    /// Writes without waiting for the watcher: the events come in revision order, none from
    /// before the watch, and replaying them gives the final state (the embedded store may skip
    /// intermediate values, see its docs; etcd delivers every event).
    pub async fn watch_burst_converges(h: &Harness) {
        let s = &*h.store;
        assert!(
            s.txn(&[], &[put(&k("b/pre1"), "p"), put(&k("b/pre2"), "p")])
                .await
                .unwrap()
        );
        let mut state: BTreeMap<String, String> = [
            (k("b/pre1"), "p".to_string()),
            (k("b/pre2"), "p".to_string()),
        ]
        .into_iter()
        .collect();
        let mut w = s.watch(&k("b/")).await.unwrap();
        for i in 0..60 {
            let key = k(&format!("b/{}", i % 7));
            if i % 5 == 3 {
                assert!(s.txn(&[], &[Write::Delete(key)]).await.unwrap());
            } else {
                assert!(s.txn(&[], &[put(&key, &i.to_string())]).await.unwrap());
            }
        }
        assert!(
            s.txn(&[], &[Write::Delete(k("b/pre1")), put(&k("b/pre2"), "q")])
                .await
                .unwrap()
        );
        assert!(s.txn(&[], &[put(&k("b/zz-end"), "end")]).await.unwrap());
        let mut last_rev = 0;
        loop {
            let e = next_event(&mut w).await;
            match &e {
                Event::Put { key, value } => {
                    assert!(
                        value.revision >= last_rev,
                        "event out of order: {e:?} after {last_rev}"
                    );
                    last_rev = value.revision;
                    state.insert(key.clone(), String::from_utf8(value.value.clone()).unwrap());
                    if key == &k("b/zz-end") {
                        break;
                    }
                }
                Event::Delete { key } => {
                    state.remove(key);
                }
            }
        }
        let want: BTreeMap<String, String> = s
            .list(&k("b/"))
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.value).unwrap()))
            .collect();
        assert_eq!(state, want);
        quiet(&mut w).await;
    }

    pub async fn liveness_expires(h: &Harness) {
        let s = &*h.store;
        let ttl = Duration::from_secs(2);
        assert!(s.live_nodes().await.unwrap().is_empty());
        s.heartbeat("node-1", ttl).await.unwrap();
        s.heartbeat("node-2", ttl).await.unwrap();
        let mut live = s.live_nodes().await.unwrap();
        live.sort();
        assert_eq!(live, ["node-1", "node-2"]);
        // node-1 keeps beating, node-2 stops: node-2 goes after its TTL, node-1 stays.
        let start = Instant::now();
        let mut gone_after = None;
        while start.elapsed() < Duration::from_millis(4500) {
            s.heartbeat("node-1", ttl).await.unwrap();
            let live = s.live_nodes().await.unwrap();
            assert!(
                live.contains(&"node-1".to_string()),
                "node-1 lost at {:?}",
                start.elapsed()
            );
            if !live.contains(&"node-2".to_string()) {
                gone_after = Some(start.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let gone_after = gone_after.expect("node-2 still live 4.5 s after its last heartbeat");
        assert!(
            gone_after >= Duration::from_millis(1500),
            "node-2 gone too early: {gone_after:?}"
        );
        eprintln!("liveness: node-2 gone {gone_after:?} after its last heartbeat (TTL 2 s)");
        // Heartbeats are repeatable, and come back after expiry.
        s.heartbeat("node-2", ttl).await.unwrap();
        assert!(
            s.live_nodes()
                .await
                .unwrap()
                .contains(&"node-2".to_string())
        );
    }

    pub async fn contention_never_loses_an_update(h: &Harness) {
        let t = Instant::now();
        let key = k("counter");
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let s = h.store.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut retries = 0;
                for _ in 0..100 {
                    retries += increment(&*s, &key).await;
                }
                retries
            }));
        }
        let mut retries = 0;
        for t in tasks {
            retries += t.await.unwrap();
        }
        assert_eq!(get_str(&*h.store, &key).await.unwrap().0, "1000");
        eprintln!(
            "contention: 10 tasks x 100 increments = 1000 in {:?}, {retries} retries",
            t.elapsed()
        );
    }

    pub async fn corrupt_data_is_reported(h: &Harness) {
        let s = &*h.store;
        assert!(s.txn(&[], &[put(&k("fine"), "x")]).await.unwrap());
        h.corrupt().await;
        match s.list("/tortie/v1/").await {
            Err(e @ StoreError::Corrupt { .. }) => {
                let m = e.to_string();
                assert!(m.contains("corrupt store data"), "{m}");
                eprintln!("corrupt data: {m}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
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
// etcd only

mod etcd_faults {
    use super::*;

    fn unavailable(r: &Result<impl std::fmt::Debug, StoreError>) -> String {
        match r {
            Err(StoreError::Unavailable(m)) => m.clone(),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_to_nothing_is_unavailable_within_the_timeout() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Instant::now();
        let r = EtcdStore::connect(
            EtcdConfig::new([format!("http://127.0.0.1:{port}")])
                .with_timeout(Duration::from_secs(1)),
        )
        .await;
        let m = unavailable(&r);
        assert!(
            t.elapsed() < Duration::from_millis(1800),
            "took {:?}",
            t.elapsed()
        );
        assert!(m.contains(&port.to_string()), "{m}");
        eprintln!("connect to nothing: {m} ({:?})", t.elapsed());
        // Malformed endpoints are Invalid.
        let r = EtcdStore::connect(EtcdConfig::new(["http://[::1"])).await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
        let r = EtcdStore::connect(EtcdConfig::new(Vec::<String>::new())).await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    }

    /// etcd is killed in the middle of a stream of two-key transactions: every call returns
    /// Unavailable within the timeout, a watch ends with an error, no transaction is half
    /// applied, and the same store works again once etcd is back on its data directory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_killed_mid_writes_then_restarted() {
        let mut etcd = Etcd::start();
        let timeout = Duration::from_millis(1000);
        let store = Arc::new(
            EtcdStore::connect(EtcdConfig::new([etcd.endpoint()]).with_timeout(timeout))
                .await
                .unwrap(),
        );
        let mut w = store.watch(P).await.unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The writer: a = b = i in one transaction, i counting up; it records what was acked.
        let writer = {
            let store = store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut acked, mut errors, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
                let mut ok_after_error = 0;
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let t = Instant::now();
                    let r = store
                        .txn(
                            &[],
                            &[put(&k("a"), &i.to_string()), put(&k("b"), &i.to_string())],
                        )
                        .await;
                    slowest = slowest.max(t.elapsed());
                    match r {
                        Ok(true) => {
                            acked = i;
                            if !errors.is_empty() {
                                ok_after_error += 1;
                            }
                        }
                        Ok(false) => panic!("no compares, cannot fail"),
                        Err(e) => {
                            errors.push(e);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                (acked, errors, slowest, ok_after_error)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        etcd.kill();
        let killed = Instant::now();
        // Direct calls during the outage.
        for _ in 0..3 {
            let t = Instant::now();
            let r = store.get(&k("a")).await;
            let m = unavailable(&r);
            assert!(
                t.elapsed() < timeout + Duration::from_millis(500),
                "get took {:?}",
                t.elapsed()
            );
            assert!(m.contains(&etcd.endpoint()), "{m}");
        }
        let t = Instant::now();
        let m = unavailable(&store.heartbeat("n1", Duration::from_secs(2)).await);
        assert!(
            t.elapsed() < 2 * timeout + Duration::from_millis(500),
            "heartbeat took {:?}",
            t.elapsed()
        );
        eprintln!("during the outage: {m}");
        // The watch reports the outage.
        match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
            Ok(Some(Err(StoreError::Unavailable(m)))) => eprintln!("watch: {m}"),
            Ok(Some(Ok(_))) => {
                // Events written before the kill may still be queued: drain them.
                loop {
                    match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
                        Ok(Some(Ok(_))) => continue,
                        Ok(Some(Err(StoreError::Unavailable(m)))) => {
                            eprintln!("watch: {m}");
                            break;
                        }
                        other => panic!("watch did not report the outage: {other:?}"),
                    }
                }
            }
            other => panic!("watch did not report the outage: {other:?}"),
        }
        assert!(
            tokio::time::timeout(Duration::from_secs(1), w.next())
                .await
                .unwrap()
                .is_none(),
            "the watch ends after its error"
        );
        // A new watch is refused while etcd is down.
        unavailable(&store.watch(P).await.map(|_| ()));
        let outage = killed.elapsed();
        etcd.start_again();
        let restarted = Instant::now();
        // The same store works again.
        loop {
            match store.get(&k("a")).await {
                Ok(_) => break,
                Err(StoreError::Unavailable(_))
                    if restarted.elapsed() < Duration::from_secs(10) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("etcd back, store still failing: {e}"),
            }
        }
        let back_after = restarted.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (acked, errors, slowest, ok_after_error) = writer.await.unwrap();
        assert!(
            !errors.is_empty(),
            "the writer saw no error during a {outage:?} outage"
        );
        for e in &errors {
            assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        }
        assert!(
            slowest < timeout + Duration::from_millis(500),
            "a txn took {slowest:?}"
        );
        assert!(
            ok_after_error > 0,
            "the writer never succeeded after the restart"
        );
        let a = get_str(&*store, &k("a")).await.unwrap();
        let b = get_str(&*store, &k("b")).await.unwrap();
        assert_eq!(a, b, "half-applied transaction");
        assert!(
            a.0.parse::<u64>().unwrap() >= acked,
            "acked {acked}, stored {}",
            a.0
        );
        eprintln!(
            "outage: {} errors (first: {}), slowest call {slowest:?}, store usable {back_after:?} after the restart, {acked} acked, {ok_after_error} ok after",
            errors.len(),
            errors[0]
        );
        // And watches work again.
        let mut w = store.watch(P).await.unwrap();
        assert!(store.txn(&[], &[put(&k("after"), "1")]).await.unwrap());
        assert_eq!(simple(&next_event(&mut w).await), ev_put(&k("after"), "1"));
    }

    /// etcd delivers every event, in order, even when written faster than read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_delivers_every_event_in_order() {
        let h = Harness::etcd().await;
        let s = &*h.store;
        let mut w = s.watch(P).await.unwrap();
        assert!(s.txn(&[], &[put(&k("a"), "1")]).await.unwrap());
        assert!(s.txn(&[], &[put(&k("b"), "2")]).await.unwrap());
        assert!(s.txn(&[], &[Write::Delete(k("a"))]).await.unwrap());
        assert!(s.txn(&[], &[put(&k("a"), "3")]).await.unwrap());
        assert!(
            s.txn(&[], &[put(&k("c"), "4"), Write::Delete(k("b"))])
                .await
                .unwrap()
        );
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(simple(&next_event(&mut w).await));
        }
        assert_eq!(
            got,
            [
                ev_put(&k("a"), "1"),
                ev_put(&k("b"), "2"),
                ev_del(&k("a")),
                ev_put(&k("a"), "3"),
                ev_put(&k("c"), "4"),
                ev_del(&k("b"))
            ]
        );
    }

    /// Lists read in pages at one revision; etcd's transaction size limit is an Invalid error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paged_list_and_txn_limits() {
        let h = Harness::etcd().await;
        let s = &*h.store;
        for chunk in 0..10 {
            let writes: Vec<Write> = (0..120)
                .map(|i| put(&k(&format!("many/{:05}", chunk * 120 + i)), "v"))
                .collect();
            assert!(s.txn(&[], &writes).await.unwrap());
        }
        let l = s.list(&k("many/")).await.unwrap();
        assert_eq!(l.len(), 1200);
        assert!(l.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(l[1199].0, k("many/01199"));
        let too_many: Vec<Write> = (0..129)
            .map(|i| put(&k(&format!("big/{i}")), "v"))
            .collect();
        match s.txn(&[], &too_many).await {
            Err(StoreError::Invalid(m)) => eprintln!("129 writes: {m}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(s.list(&k("big/")).await.unwrap().is_empty());
        let huge = "x".repeat(2 << 20);
        match s.txn(&[], &[put(&k("huge"), &huge)]).await {
            Err(StoreError::Invalid(m)) => eprintln!("2 MiB value: {m}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn openssl(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (apt-get install openssl) to make test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// https with a CA and a client certificate (etcd --client-cert-auth).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_with_client_certificate() {
        let d = scratch_dir("tls");
        let ext = d.join("ext.cnf");
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        openssl(
            &d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=tortie test CA",
            ],
        );
        for (name, cn) in [("server", "127.0.0.1"), ("client", "tortie-agent")] {
            openssl(
                &d,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            );
            openssl(
                &d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "2",
                    "-extfile",
                    "ext.cnf",
                ],
            );
        }
        // A second CA that signed nothing etcd uses.
        openssl(
            &d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "other.key",
                "-out",
                "other.pem",
                "-days",
                "2",
                "-subj",
                "/CN=other CA",
            ],
        );
        let etcd = Etcd::start_with(Some(ServerTls {
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            client_ca: Some(d.join("ca.pem")),
        }));
        let tls = EtcdTls {
            ca_file: Some(d.join("ca.pem")),
            cert_file: Some(d.join("client.pem")),
            key_file: Some(d.join("client.key")),
            domain: None,
        };
        let cfg = |tls: EtcdTls| {
            EtcdConfig::new([etcd.endpoint()])
                .with_timeout(Duration::from_secs(2))
                .with_tls(tls)
        };
        let t = Instant::now();
        let store = loop {
            match EtcdStore::connect(cfg(tls.clone())).await {
                Ok(s) => break s,
                Err(e) if t.elapsed() < Duration::from_secs(5) => {
                    eprintln!("tls connect: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("tls connect: {e}\n{}", etcd.log_tail()),
            }
        };
        assert!(store.txn(&[], &[put(&k("tls"), "ok")]).await.unwrap());
        assert_eq!(get_str(&store, &k("tls")).await.unwrap().0, "ok");
        // Without a client certificate, or trusting another CA: refused, clearly.
        let no_cert = EtcdTls {
            cert_file: None,
            key_file: None,
            ..tls.clone()
        };
        let r = EtcdStore::connect(cfg(no_cert)).await;
        eprintln!("tls without client certificate: {r:?}");
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        let wrong_ca = EtcdTls {
            ca_file: Some(d.join("other.pem")),
            ..tls.clone()
        };
        let r = EtcdStore::connect(cfg(wrong_ca)).await;
        eprintln!("tls with another CA: {r:?}");
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        // Missing files are a configuration error.
        let missing = EtcdTls {
            ca_file: Some(d.join("nope.pem")),
            ..tls.clone()
        };
        let r = EtcdStore::connect(cfg(missing)).await;
        assert!(
            matches!(&r, Err(StoreError::Invalid(m)) if m.contains("nope.pem")),
            "{r:?}"
        );
        drop(etcd);
        let _ = std::fs::remove_dir_all(&d);
    }
}

// ---------------------------------------------------------------------------------------------
// Embedded only

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

mod embedded_faults {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn corrupt_msg<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
        match r {
            Err(e @ StoreError::Corrupt { .. }) => e.to_string(),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    /// A writer SIGKILLed at random points of a storm of multi-key writes: the file always
    /// loads, holds one whole transaction's state, and the lock is free again. At least one kill
    /// has to land while the temporary file is being written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigkill_during_writes_leaves_a_consistent_file() {
        let dir = Dir(scratch_dir("storm"));
        let mut last = 0u64;
        let mut mid_write = 0;
        let mut rounds = 0;
        for round in 0..12u64 {
            if round >= 6 && mid_write > 0 {
                break;
            }
            rounds += 1;
            let mut child = spawn_child("storm", &dir.0, 0);
            // Let it write for a while (a different time each round), then kill it mid-storm.
            let store = EmbeddedStore::open(EmbeddedConfig::new(&dir.0))
                .await
                .unwrap();
            let t = Instant::now();
            while store.revision().await.unwrap() < last + 5 {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "the child does not write"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Odd rounds: kill at once when the temporary file appears (in the middle of writing
            // it, most of the time); even rounds: after a few milliseconds, wherever it is.
            if round % 2 == 1 {
                let tmp = dir.0.join(format!(".tortie.db.tmp.{}", child.id()));
                let t = Instant::now();
                while !tmp.exists() && t.elapsed() < Duration::from_secs(2) {
                    std::hint::spin_loop();
                }
            } else {
                tokio::time::sleep(Duration::from_millis(3 * round + 2)).await;
            }
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            child.wait().unwrap();
            if std::fs::read_dir(&dir.0).unwrap().flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".tortie.db.tmp")
            }) {
                mid_write += 1;
            }
            // A fresh open (it also clears the dead writer's temporary file).
            let store = EmbeddedStore::open(EmbeddedConfig::new(&dir.0))
                .await
                .unwrap();
            let a = get_str(&store, &k("a")).await.unwrap();
            let b = get_str(&store, &k("b")).await.unwrap();
            let c = get_str(&store, &k("c")).await.unwrap();
            let pad = get_str(&store, &k("pad")).await.unwrap();
            assert_eq!(a, b);
            assert_eq!(a, c);
            assert!(
                pad.0.starts_with(&a.0) && pad.1 == a.1,
                "pad not from the same txn"
            );
            let rev = store.revision().await.unwrap();
            assert_eq!(rev, a.1, "the last txn wrote a, b, c");
            assert!(rev > last);
            let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tortie.db.tmp"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
            // The lock died with the child: a write goes through at once.
            let t = Instant::now();
            assert!(
                store
                    .txn(&[], &[put(&k("parent"), &round.to_string())])
                    .await
                    .unwrap()
            );
            assert!(t.elapsed() < Duration::from_secs(1));
            last = store.revision().await.unwrap();
        }
        eprintln!(
            "storm: {rounds} kills ({mid_write} left a temporary file behind), final revision {last}"
        );
        assert!(
            mid_write > 0,
            "no kill landed in the middle of a file write"
        );
    }

    /// This process and a child increment one counter at the same time: nothing is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_never_lose_an_update() {
        let dir = Dir(scratch_dir("twoproc"));
        let store = Arc::new(
            EmbeddedStore::open(EmbeddedConfig::new(&dir.0))
                .await
                .unwrap(),
        );
        let n = 300;
        let mut child = spawn_child("increment", &dir.0, n);
        let t = Instant::now();
        while store.get(&k("child-ready")).await.unwrap().is_none() {
            assert!(t.elapsed() < Duration::from_secs(10), "child not ready");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(store.txn(&[], &[put(&k("go"), "1")]).await.unwrap());
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut retries = 0;
                for _ in 0..n / 2 {
                    retries += increment(&*s, &k("counter")).await;
                }
                retries
            }));
        }
        let mut retries = 0;
        for t in tasks {
            retries += t.await.unwrap();
        }
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "child: {status}");
        assert_eq!(
            get_str(&*store, &k("counter")).await.unwrap().0,
            (2 * n).to_string()
        );
        eprintln!(
            "two processes: {} increments in {:?}, {retries} retries here",
            2 * n,
            t.elapsed()
        );
    }

    /// Two stores on one directory in one process: each sees the other's writes, conflicts
    /// and watches cross between them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_see_each_other() {
        let dir = Dir(scratch_dir("handles"));
        let a = EmbeddedStore::open(EmbeddedConfig::new(&dir.0))
            .await
            .unwrap();
        let b = EmbeddedStore::open(EmbeddedConfig::new(&dir.0))
            .await
            .unwrap();
        let mut wb = b.watch(P).await.unwrap();
        assert!(
            a.txn(&[Compare::Absent(k("x"))], &[put(&k("x"), "from a")])
                .await
                .unwrap()
        );
        assert_eq!(get_str(&b, &k("x")).await.unwrap().0, "from a");
        assert!(
            !b.txn(&[Compare::Absent(k("x"))], &[put(&k("x"), "from b")])
                .await
                .unwrap()
        );
        assert_eq!(
            simple(&next_event(&mut wb).await),
            ev_put(&k("x"), "from a")
        );
        let r = b.get(&k("x")).await.unwrap().unwrap().revision;
        assert!(
            b.txn(&[Compare::Revision(k("x"), r)], &[put(&k("x"), "from b")])
                .await
                .unwrap()
        );
        assert!(
            !a.txn(&[Compare::Revision(k("x"), r)], &[put(&k("x"), "stale a")])
                .await
                .unwrap()
        );
        assert_eq!(get_str(&a, &k("x")).await.unwrap().0, "from b");
        assert_eq!(
            simple(&next_event(&mut wb).await),
            ev_put(&k("x"), "from b")
        );
        a.heartbeat("node-a", Duration::from_secs(5)).await.unwrap();
        assert_eq!(b.live_nodes().await.unwrap(), ["node-a"]);
    }

    /// The documented format, as written.
    #[tokio::test]
    async fn file_format_is_as_documented() {
        let dir = Dir(scratch_dir("format"));
        let s = EmbeddedStore::open(EmbeddedConfig::new(&dir.0))
            .await
            .unwrap();
        assert!(
            !dir.0.join("tortie.db").exists(),
            "nothing written before the first write"
        );
        assert!(
            s.txn(
                &[],
                &[
                    put(&k("text"), "{\"cidr\":\"198.19.0.64/26\"}"),
                    Write::Put(k("bin"), vec![0, 1, 0xff])
                ]
            )
            .await
            .unwrap()
        );
        assert!(s.txn(&[], &[put(&k("gone"), "x")]).await.unwrap());
        assert!(s.txn(&[], &[Write::Delete(k("gone"))]).await.unwrap());
        let raw = std::fs::read_to_string(dir.0.join("tortie.db")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "format": "tortie-embedded/1",
                "revision": 3,
                "keys": {
                    k("bin"): { "rev": 1, "base64": "AAH/" },
                    k("text"): { "rev": 1, "text": "{\"cidr\":\"198.19.0.64/26\"}" },
                },
                "deleted": [ { "key": k("gone"), "rev": 3 } ],
            })
        );
        s.heartbeat("n1", Duration::from_secs(3)).await.unwrap();
        let raw = std::fs::read_to_string(dir.0.join("tortie.db")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let hb: serde_json::Value = serde_json::from_str(
            v["keys"]["/tortie/v1/liveness/n1"]["text"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(hb["ttlMs"], 3000);
        assert!(hb["heartbeatUnixMs"].as_u64().unwrap() > 1_700_000_000_000);
        // A hand-written file in the format is read.
        let dir2 = Dir(scratch_dir("format2"));
        std::fs::write(
            dir2.0.join("tortie.db"),
            r#"{"format":"tortie-embedded/1","revision":9,"keys":{"/tortie/v1/a":{"rev":4,"text":"hi"},"/tortie/v1/b":{"rev":9,"base64":"AAE="}}}"#,
        )
        .unwrap();
        let s2 = EmbeddedStore::open(EmbeddedConfig::new(&dir2.0))
            .await
            .unwrap();
        assert_eq!(
            s2.get("/tortie/v1/a").await.unwrap(),
            Some(Versioned {
                value: b"hi".to_vec(),
                revision: 4
            })
        );
        assert_eq!(
            s2.get("/tortie/v1/b").await.unwrap(),
            Some(Versioned {
                value: vec![0, 1],
                revision: 9
            })
        );
        assert!(s2.txn(&[], &[put("/tortie/v1/c", "x")]).await.unwrap());
        assert_eq!(s2.get("/tortie/v1/c").await.unwrap().unwrap().revision, 10);
    }

    /// Every kind of damage is refused with a message that says what is wrong, at open and on a
    /// store that was already open (a watch gets the error and ends).
    #[tokio::test]
    async fn corrupt_files_give_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (
                "{\"format\": \"tortie-embedded/1\", \"revision\": 3, \"keys\": {",
                "not JSON",
            ),
            ("[1, 2, 3]", "format"),
            (
                "{\"format\": \"tortie-embedded/2\", \"revision\": 1, \"keys\": {}}",
                "\"tortie-embedded/2\"",
            ),
            ("{\"version\": 1}", "not a tortie store"),
            (
                "{\"format\": \"tortie-embedded/1\", \"revision\": 1, \"keys\": {}, \"extra\": 1}",
                "unknown field",
            ),
            (
                "{\"format\": \"tortie-embedded/1\", \"revision\": 1, \"keys\": {\"/etc/x\": {\"rev\": 1, \"text\": \"\"}}}",
                "not under /tortie/v1/",
            ),
            (
                "{\"format\": \"tortie-embedded/1\", \"revision\": 1, \"keys\": {\"/tortie/v1/a\": {\"rev\": 2, \"text\": \"\"}}}",
                "rev 2 is not in 1..=1",
            ),
            (
                "{\"format\": \"tortie-embedded/1\", \"revision\": 1, \"keys\": {\"/tortie/v1/a\": {\"rev\": 1, \"base64\": \"!!\"}}}",
                "base64",
            ),
            (
                "{\"format\": \"tortie-embedded/1\", \"revision\": 1, \"keys\": {\"/tortie/v1/a\": {\"rev\": 1}}}",
                "has no value",
            ),
            (
                "{\"format\": \"tortie-embedded/1\", \"revision\": 1, \"keys\": {\"/tortie/v1/a\": {\"rev\": 1, \"text\": \"x\", \"base64\": \"\"}}}",
                "both",
            ),
            (
                "{\"format\": \"tortie-embedded/1\", \"revision\": -1, \"keys\": {}}",
                "expected u64",
            ),
        ];
        for (content, expect) in cases {
            let dir = Dir(scratch_dir("corrupt"));
            std::fs::write(dir.0.join("tortie.db"), content).unwrap();
            let m = corrupt_msg(EmbeddedStore::open(EmbeddedConfig::new(&dir.0)).await);
            assert!(m.contains(expect), "{content:?}: {m}");
            eprintln!("{m}");
        }
        // Damaged under a running store.
        let dir = Dir(scratch_dir("corrupt-live"));
        let mut cfg = EmbeddedConfig::new(&dir.0);
        cfg.poll_interval = Duration::from_millis(20);
        let s = EmbeddedStore::open(cfg).await.unwrap();
        assert!(s.txn(&[], &[put(&k("a"), "1")]).await.unwrap());
        let mut w = s.watch(P).await.unwrap();
        std::fs::write(dir.0.join("tortie.db"), "garbage").unwrap();
        corrupt_msg(s.get(&k("a")).await);
        corrupt_msg(s.txn(&[], &[put(&k("a"), "2")]).await);
        match tokio::time::timeout(Duration::from_secs(2), w.next())
            .await
            .unwrap()
        {
            Some(Err(StoreError::Corrupt { .. })) => {}
            other => panic!("{other:?}"),
        }
        assert!(
            tokio::time::timeout(Duration::from_secs(2), w.next())
                .await
                .unwrap()
                .is_none()
        );
        // The garbage was not overwritten by the refused txn.
        assert_eq!(
            std::fs::read_to_string(dir.0.join("tortie.db")).unwrap(),
            "garbage"
        );
        // Liveness values that are not heartbeats.
        std::fs::remove_file(dir.0.join("tortie.db")).unwrap();
        assert!(
            s.txn(&[], &[put("/tortie/v1/liveness/n1", "not a heartbeat")])
                .await
                .unwrap()
        );
        let m = corrupt_msg(s.live_nodes().await);
        assert!(m.contains("/tortie/v1/liveness/n1"), "{m}");
    }

    /// A lock held elsewhere makes writes wait, then fail with Unavailable; reads go on.
    #[tokio::test]
    async fn held_lock_times_out_clearly() {
        let dir = Dir(scratch_dir("lock"));
        let mut cfg = EmbeddedConfig::new(&dir.0);
        cfg.lock_timeout = Duration::from_millis(300);
        let s = EmbeddedStore::open(cfg).await.unwrap();
        assert!(s.txn(&[], &[put(&k("a"), "1")]).await.unwrap());
        let f = std::fs::File::open(dir.0.join("tortie.db.lock")).unwrap();
        use std::os::unix::io::AsRawFd;
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        let t = Instant::now();
        match s.txn(&[], &[put(&k("a"), "2")]).await {
            Err(StoreError::Unavailable(m)) => {
                assert!(m.contains("locked") && m.contains("tortie.db.lock"), "{m}");
                eprintln!("{m}");
            }
            other => panic!("{other:?}"),
        }
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1000),
            "{took:?}"
        );
        assert_eq!(get_str(&s, &k("a")).await.unwrap().0, "1");
        drop(f);
        assert!(s.txn(&[], &[put(&k("a"), "2")]).await.unwrap());
    }
}

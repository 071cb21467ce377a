//! The shared suite: each behaviour a [`Store`] promises, as a function of a [`Harness`], run
//! once per backend by `shared_suite!` in `main.rs`: round trips, all-or-nothing transactions,
//! revisions, listing, invalid requests, watches, liveness, contention and corrupt data.

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

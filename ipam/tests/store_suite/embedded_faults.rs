//! What only the embedded backend has: a writer SIGKILLed mid-write, two processes and two
//! handles on one directory, the file format as documented, corrupt files, and a held lock.
//! The other processes are this binary run again ([`spawn_child`]).

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

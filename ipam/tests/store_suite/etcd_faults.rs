//! What only the etcd backend has: nothing listening at connect, etcd killed in the middle of
//! writes and restarted, a watch that keeps every event in order, paged lists and etcd's
//! transaction size limit, and https with a client certificate.

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
        EtcdConfig::new([format!("http://127.0.0.1:{port}")]).with_timeout(Duration::from_secs(1)),
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
            Err(StoreError::Unavailable(_)) if restarted.elapsed() < Duration::from_secs(10) => {
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

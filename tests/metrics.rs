//! The agent's metrics, probes and JSON logs, from real agents: `tortie agent` processes in
//! network namespaces (the end-to-end tests' cluster: a router joining two subnets, a shared
//! datastore, pods with addresses from tortie's IPAM), each serving `--metrics-listen` on its
//! node address, scraped from inside its namespace and read with a Prometheus text-format
//! parser. Readiness is flipped by killing the etcd the agents use and starting it again.

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "agent_e2e/cluster.rs"]
#[allow(dead_code)]
mod cluster;

use cluster::{BIN, Cluster, Datastore, base_yaml, sh, wait_for};
use prometheus_parse::{Sample, Scrape, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};
use tortie_ipam::Pool;

const METRICS_PORT: u16 = 9091;
const POOL: &str = "198.19.0.0/17";

fn pools() -> Vec<Pool> {
    vec![Pool::new("pool-1", POOL.parse().expect("pool CIDR")).with_block_size(26)]
}

fn metrics_addr(c: &Cluster, node: &str) -> SocketAddr {
    SocketAddr::new(c.node(node).addr, METRICS_PORT)
}

/// The agent arguments of the end-to-end cluster, plus metrics on the node's address and
/// JSON logs.
fn agent_args(c: &Cluster, name: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        BIN,
        "agent",
        "--node",
        name,
        "--dataplane",
        "kernel",
        "--underlay",
        "eth0",
        "--hold-time",
        "9",
        "--connect-retry",
        "1",
        "--initial-sync-timeout",
        "10",
        "--log-format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--state-dir".into(),
        c.dir.join(format!("state-{name}")).display().to_string(),
    ]);
    args.extend([
        "--api-socket".into(),
        c.dir
            .join(format!("api-{name}/tortie.sock"))
            .display()
            .to_string(),
    ]);
    args.extend(["--metrics-listen".into(), metrics_addr(c, name).to_string()]);
    args.extend(c.store.args());
    args
}

fn start_agent(c: &mut Cluster, name: &str) {
    let args = agent_args(c, name);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = c
        .nodes
        .iter_mut()
        .find(|n| n.name == name)
        .expect("the node");
    node.agent = Some(node.ns.spawn(&format!("agent-{name}"), &refs));
}

/// Moves the calling thread into the named network namespace.
fn enter_netns(name: &str) -> Result<(), String> {
    let f = std::fs::File::open(format!("/run/netns/{name}"))
        .map_err(|e| format!("open the namespace {name}: {e}"))?;
    // SAFETY: setns on a valid namespace descriptor changes only this thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!("setns {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `GET path` over HTTP/1.1 from inside namespace `ns`: (status, body).
fn http_get(ns: &str, addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let (ns, path) = (ns.to_string(), path.to_string());
    std::thread::spawn(move || {
        enter_netns(&ns)?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        let (head, body) = reply
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no end of headers in {reply:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        Ok((status, body.to_string()))
    })
    .join()
    .map_err(|_| "the HTTP thread panicked".to_string())?
}

/// One parsed scrape.
struct Metrics {
    samples: Vec<Sample>,
    text: String,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => Some(*x),
        _ => None,
    }
}

impl Metrics {
    fn parse(text: String) -> Metrics {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("the scrape parses as the Prometheus text format");
        Metrics {
            samples: scrape.samples,
            text,
        }
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }

    /// The value of the one series of `name` with `labels` (among others).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.find(name, labels).and_then(|s| number(&s.value))
    }

    #[track_caller]
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in the scrape:\n{}", self.text))
    }

    /// Every value of `label` among the series of `name`.
    fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| s.labels.get(label).map(str::to_string))
            .collect()
    }
}

fn scrape(c: &Cluster, node: &str) -> Result<Metrics, String> {
    let (status, body) = http_get(c.node(node).ns.name(), metrics_addr(c, node), "/metrics")?;
    if status != 200 {
        return Err(format!("/metrics answered {status}: {body}"));
    }
    Ok(Metrics::parse(body))
}

fn probe(c: &Cluster, node: &str, path: &str) -> Result<(u16, String), String> {
    http_get(c.node(node).ns.name(), metrics_addr(c, node), path)
}

fn addr(c: &Cluster, node: &str) -> String {
    c.node(node).addr.to_string()
}

/// Waits until `node`'s metrics satisfy `ok`; returns that scrape.
#[track_caller]
fn wait_metrics(c: &Cluster, node: &str, what: &str, ok: impl Fn(&Metrics) -> bool) -> Metrics {
    wait_for(
        what,
        Duration::from_secs(45),
        || scrape(c, node).ok().filter(|m| ok(m)),
        || {
            format!(
                "last scrape: {}\nlog:\n{}",
                scrape(c, node).map(|m| m.text).unwrap_or_else(|e| e),
                c.log_tail(node)
            )
        },
    )
}

#[test]
fn the_session_gauges_match_the_sessions_the_agent_reports() {
    // node-3 is configured but runs no agent: node-1's session to it never comes up.
    let mut c = Cluster::new("msess", 3, None);
    c.apply(&base_yaml(
        &c.node_list(),
        POOL,
        "vxlanMode: CrossSubnet",
        true,
    ));
    start_agent(&mut c, "node-1");
    start_agent(&mut c, "node-2");
    let (n2, n3) = (addr(&c, "node-2"), addr(&c, "node-3"));
    let m = wait_metrics(&c, "node-1", "node-1's session with node-2 up", |m| {
        m.value("tortie_bgp_session_up", &[("peer", &n2)]) == Some(1.0)
    });
    let status = sh(Command::new(BIN)
        .args(["status", "--json", "--api-socket"])
        .arg(c.dir.join("api-node-1/tortie.sock")));
    let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let peers = v["peers"].as_array().expect("peers in the status");
    let listed: BTreeSet<String> = peers
        .iter()
        .filter_map(|p| p["address"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        m.label_values("tortie_bgp_session_up", "peer"),
        listed,
        "one series per session\n{status}"
    );
    for p in peers {
        let field = |k: &str| p[k].as_str().unwrap_or_else(|| panic!("{k} in {p}"));
        let labels = [
            ("peer", field("address")),
            ("name", field("name")),
            ("type", field("type")),
        ];
        let established = field("bgpState") == "Established";
        assert_eq!(
            m.get("tortie_bgp_session_up", &labels),
            if established { 1.0 } else { 0.0 },
            "{p}"
        );
    }
    let state =
        |peer: &str, s: &str| m.get("tortie_bgp_session_state", &[("peer", peer), ("state", s)]);
    assert_eq!(state(&n2, "Established"), 1.0);
    assert_eq!(state(&n3, "Established"), 0.0);
    for peer in [&n2, &n3] {
        let on = [
            "Idle",
            "Connect",
            "Active",
            "OpenSent",
            "OpenConfirm",
            "Established",
        ]
        .iter()
        .filter(|s| state(peer, s) == 1.0)
        .count();
        assert_eq!(on, 1, "exactly one state is current for {peer}\n{}", m.text);
    }
    assert!(
        m.get("tortie_bgp_established_transitions_total", &[("peer", &n2)]) >= 1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.get("tortie_bgp_established_transitions_total", &[("peer", &n3)]),
        0.0
    );
    // Counters are typed as counters, gauges as gauges.
    let sample = m
        .find("tortie_bgp_messages_received_total", &[("peer", &n2)])
        .expect("a message counter");
    assert!(
        matches!(sample.value, Value::Counter(x) if x > 0.0),
        "{sample:?}"
    );
    let up = m
        .find("tortie_bgp_session_up", &[("peer", &n2)])
        .expect("up");
    assert!(matches!(up.value, Value::Gauge(_)), "{up:?}");
}

#[test]
fn a_new_pod_block_moves_the_prefix_fib_ipam_and_latency_metrics() {
    let mut c = Cluster::new("mblock", 2, None);
    c.apply(&base_yaml(
        &c.node_list(),
        POOL,
        "vxlanMode: CrossSubnet",
        true,
    ));
    start_agent(&mut c, "node-1");
    start_agent(&mut c, "node-2");
    let n2 = addr(&c, "node-2");
    let before = wait_metrics(&c, "node-1", "node-1 synced with node-2 up", |m| {
        m.value("tortie_bgp_session_up", &[("peer", &n2)]) == Some(1.0)
            && m.value("tortie_dataplane_synced", &[]) == Some(1.0)
    });
    let first_sync = [("pass", "first_sync")];
    assert_eq!(
        before.get("tortie_dataplane_programming_seconds_count", &first_sync),
        1.0,
        "the first sync is one sample"
    );
    assert!(before.get("tortie_dataplane_programming_seconds_sum", &first_sync) > 0.0);

    c.add_pod("node-2", "pod-2", &pools());
    let block = c.pod("pod-2").alloc.block.to_string();
    c.wait_route("node-1", &block);
    let unicast = [("family", "ipv4"), ("type", "unicast")];
    let fib_before = before.get("tortie_dataplane_fib_routes", &unicast);
    let after = wait_metrics(
        &c,
        "node-1",
        "node-1's FIB metric to count the new block",
        |m| m.value("tortie_dataplane_fib_routes", &unicast) == Some(fib_before + 1.0),
    );

    let peer = [("peer", n2.as_str())];
    let grew =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    assert_eq!(
        grew("tortie_bgp_received_routes", &peer),
        1.0,
        "{}",
        after.text
    );
    assert_eq!(
        grew("tortie_bgp_accepted_routes", &peer),
        1.0,
        "{}",
        after.text
    );
    assert!(
        grew("tortie_bgp_prefixes_received_total", &peer) >= 1.0,
        "{}",
        after.text
    );
    assert!(
        grew("tortie_bgp_updates_received_total", &peer) >= 1.0,
        "{}",
        after.text
    );
    assert_eq!(
        grew("tortie_bgp_loc_rib_prefixes", &[("family", "ipv4")]),
        1.0
    );
    let pool = [("pool", "pool-1")];
    assert_eq!(grew("tortie_ipam_blocks", &pool), 1.0, "{}", after.text);
    assert_eq!(grew("tortie_ipam_addresses_in_use", &pool), 1.0);
    assert_eq!(
        after.get("tortie_ipam_node_blocks", &pool),
        0.0,
        "node-2's block is not node-1's"
    );
    assert!(
        grew(
            "tortie_dataplane_programming_seconds_count",
            &[("pass", "change")]
        ) >= 1.0,
        "the write of the new route is a latency sample\n{}",
        after.text
    );
    assert!(grew("tortie_dataplane_operations_total", &[("pass", "change")]) >= 1.0);

    // node-2 sees its own block as its own.
    let own = wait_metrics(&c, "node-2", "node-2's block in its IPAM metrics", |m| {
        m.value("tortie_ipam_node_blocks", &pool) == Some(1.0)
    });
    assert_eq!(own.get("tortie_ipam_node_addresses_in_use", &pool), 1.0);
}

/// Starts etcd in the router namespace on subnet A's gateway; returns its pid.
fn start_etcd(c: &Cluster, log: &str) -> i32 {
    let data = c.dir.join("etcd").display().to_string();
    let ep = "http://198.18.1.1:2379";
    let pid = c.router.spawn(
        log,
        &[
            "etcd",
            "--name",
            "metrics",
            "--data-dir",
            &data,
            "--listen-client-urls",
            ep,
            "--advertise-client-urls",
            ep,
            "--listen-peer-urls",
            "http://198.18.1.1:2380",
            "--initial-advertise-peer-urls",
            "http://198.18.1.1:2380",
            "--initial-cluster",
            "metrics=http://198.18.1.1:2380",
        ],
    );
    wait_for(
        "etcd to answer",
        Duration::from_secs(20),
        || {
            c.router
                .exec(&["etcdctl", "--endpoints", ep, "endpoint", "health"])
                .ok()
                .map(|_| ())
        },
        || std::fs::read_to_string(c.router.log_path(log)).unwrap_or_default(),
    );
    pid
}

#[track_caller]
fn wait_probe(c: &Cluster, node: &str, path: &str, want: u16) -> String {
    wait_for(
        &format!("{path} on {node} to answer {want}"),
        Duration::from_secs(45),
        || match probe(c, node, path) {
            Ok((s, body)) if s == want => Some(body),
            _ => None,
        },
        || {
            format!(
                "last answer: {:?}\nlog:\n{}",
                probe(c, node, path),
                c.log_tail(node)
            )
        },
    )
}

#[test]
fn readyz_is_503_while_etcd_is_down_and_200_once_it_is_back_and_livez_stays_200() {
    let mut c = Cluster::new("mready", 2, None);
    let etcd = start_etcd(&c, "etcd");
    c.store = Datastore::Etcd("http://198.18.1.1:2379".into());
    c.store_ns = Some(c.router.name().to_string());
    c.apply(&base_yaml(
        &c.node_list(),
        POOL,
        "vxlanMode: CrossSubnet",
        true,
    ));
    start_agent(&mut c, "node-1");
    start_agent(&mut c, "node-2");
    assert_eq!(wait_probe(&c, "node-1", "/readyz", 200), "ok\n");

    c.router.signal(etcd, libc::SIGKILL).expect("kill etcd");
    c.router.stop(etcd);
    let body = wait_probe(&c, "node-1", "/readyz", 503);
    assert!(body.starts_with("not ready:\n"), "{body}");
    assert!(body.contains("- datastore: not in sync"), "{body}");
    assert_eq!(
        probe(&c, "node-1", "/livez").expect("livez"),
        (200, "ok\n".to_string()),
        "a node waiting for its datastore is alive"
    );
    let m = scrape(&c, "node-1").expect("a scrape while etcd is down");
    assert_eq!(m.get("tortie_datastore_synced", &[]), 0.0);
    assert_eq!(
        m.get("tortie_metrics_source_up", &[("source", "ipam")]),
        0.0
    );
    assert_eq!(
        m.get("tortie_metrics_source_up", &[("source", "bgp_peers")]),
        1.0
    );

    let started = Instant::now();
    start_etcd(&c, "etcd-again");
    assert_eq!(wait_probe(&c, "node-1", "/readyz", 200), "ok\n");
    assert!(started.elapsed() < Duration::from_secs(45));
    let m = scrape(&c, "node-1").expect("a scrape once etcd is back");
    assert_eq!(m.get("tortie_datastore_synced", &[]), 1.0);
}

#[test]
fn json_log_lines_parse_as_json_and_carry_the_peer_and_dataplane_spans() {
    // node-2 is configured but runs no agent: node-1 has a session to log about, and its first
    // sync comes after the initial-sync timeout.
    let mut c = Cluster::new("mjson", 2, None);
    c.apply(&base_yaml(
        &c.node_list(),
        POOL,
        "vxlanMode: CrossSubnet",
        true,
    ));
    start_agent(&mut c, "node-1");
    let log = c.agent_log("node-1");
    let first_sync = wait_for(
        "the first sync in the agent's log",
        Duration::from_secs(40),
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .find(|l| l.contains("dataplane: first sync written"))
                .map(str::to_string)
        },
        || c.log_tail("node-1"),
    );
    let text = std::fs::read_to_string(&log).expect("the agent's log");
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "no {key} in {line}");
        }
        lines.push(v);
    }
    assert!(lines.len() >= 3, "{text}");
    let v: serde_json::Value = serde_json::from_str(&first_sync).expect("JSON");
    assert_eq!(v["span"]["name"], "dataplane_pass", "{first_sync}");
    assert_eq!(v["span"]["pass"], "first sync", "{first_sync}");
    assert!(
        v["ops"].is_u64(),
        "event fields are top-level: {first_sync}"
    );
    let state = lines
        .iter()
        .find(|v| v["message"] == "BGP state")
        .unwrap_or_else(|| panic!("no BGP state line in\n{text}"));
    assert_eq!(state["span"]["name"], "peer", "{state}");
    assert_eq!(state["span"]["peer"], addr(&c, "node-2"), "{state}");
    assert_eq!(state["span"]["peer_name"], "node-2", "{state}");
}

#[test]
fn an_agent_whose_metrics_address_is_taken_exits_naming_it() {
    let c = Cluster::new("mbind", 1, None);
    c.apply(&base_yaml(
        &c.node_list(),
        POOL,
        "vxlanMode: CrossSubnet",
        true,
    ));
    let taken = metrics_addr(&c, "node-1");
    let ns = c.node("node-1").ns.name().to_string();
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let l = enter_netns(&ns).and_then(|_| {
            std::net::TcpListener::bind(taken).map_err(|e| format!("bind {taken}: {e}"))
        });
        match l {
            Ok(listener) => {
                let _ = bound_tx.send(Ok(()));
                // Held until the agent has exited (or a minute at most).
                let _ = hold_rx.recv_timeout(Duration::from_secs(60));
                drop(listener);
            }
            Err(e) => {
                let _ = bound_tx.send(Err(e));
            }
        }
    });
    bound_rx
        .recv()
        .expect("the holder thread")
        .expect("the test holds the address");
    let args = agent_args(&c, "node-1");
    let mut child = c
        .node("node-1")
        .ns
        .command(&args[0])
        .args(&args[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the agent");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the agent") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the agent kept running with its metrics address taken:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = hold_tx.send(());
    let _ = holder.join();
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(!status.success(), "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on {taken}"))
            && err.contains("--metrics-listen"),
        "{err}"
    );
    assert!(
        !c.dir.join("api-node-1/tortie.sock").exists(),
        "the API socket is removed again"
    );
}

//! The operator's views on the API (`tortie status`, `routes`, `peers`, `ipam`, `peer
//! enable|disable`) against running agents:
//! - `tortie lab` clusters (as root: namespaces, the kernel dataplane, pods), each test with a
//!   lab of its own taken down by a guard, also on panic; the views read each node's
//!   `<dir>/<node>/api.sock`;
//! - agents peering with a real BIRD on 127/8 addresses: the TCP listener's read-only rule,
//!   and a watch stream left unread while BIRD sends 100,000 routes.

mod support;

#[allow(dead_code)]
#[path = "../src/api/client.rs"]
mod client;

use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::tortie::Tortie;
use support::*;
use tortie_proto::v1;

const EXE: &str = env!("CARGO_BIN_EXE_tortie");
const AS: u32 = 64512;

/// One lab at a time: each runs agents, and the machine is small.
static LABS: Mutex<()> = Mutex::new(());

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! need_root {
    () => {
        if !root() {
            eprintln!("skipped: tortie lab needs root");
            return;
        }
    };
}

fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `tortie ARGS...`
fn tortie(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running tortie {args:?}: {e}"))
}

/// `tortie VIEW... --api-socket SOCKET --json`, parsed; `Err` says why not.
fn view_json(socket: &Path, view: &[&str]) -> Result<Value, String> {
    let mut args: Vec<&str> = view.to_vec();
    let socket = socket.to_string_lossy().to_string();
    args.extend(["--api-socket", &socket, "--json"]);
    let out = tortie(&args);
    if !out.status.success() {
        return Err(text(&out));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("tortie {view:?} --json does not parse: {e}\n{}", text(&out)))
}

/// `tortie VIEW... --api-socket SOCKET` as text, which must succeed.
fn view_text(socket: &Path, view: &[&str]) -> String {
    let mut args: Vec<&str> = view.to_vec();
    let socket = socket.to_string_lossy().to_string();
    args.extend(["--api-socket", &socket]);
    let out = tortie(&args);
    assert!(out.status.success(), "tortie {view:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------
// Labs

/// A lab of this test, `lab down` on drop.
struct Lab {
    name: String,
    dir: PathBuf,
    tmp: PathBuf,
    /// `lab status --json` once it is up.
    status: Value,
}

impl Lab {
    /// A lab of `nodes` nodes with one pod each, up and every pod answering.
    fn up(tag: &str, nodes: usize) -> Lab {
        let name = format!("tv{tag}-{}", std::process::id() % 100_000);
        let tmp = std::env::temp_dir().join(format!("tortie-views-{name}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
        let mut lab = Lab {
            dir: tmp.join("lab"),
            name,
            tmp,
            status: Value::Null,
        };
        let n = nodes.to_string();
        let out = lab
            .cmd("up")
            .args(["--nodes", &n, "--pods", "1", "--timeout", "100"])
            .output()
            .unwrap_or_else(|e| panic!("lab up: {e}"));
        assert!(out.status.success(), "lab up failed:\n{}", text(&out));
        let out = lab
            .cmd("status")
            .arg("--json")
            .output()
            .unwrap_or_else(|e| panic!("lab status: {e}"));
        assert!(out.status.success(), "lab status failed:\n{}", text(&out));
        lab.status = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("lab status JSON: {e}\n{}", text(&out)));
        lab
    }

    fn cmd(&self, sub: &str) -> Command {
        let mut c = Command::new(EXE);
        c.args(["lab", sub, "--name", &self.name, "--dir"])
            .arg(&self.dir);
        c
    }

    fn socket(&self, node: &str) -> PathBuf {
        self.dir.join(node).join("api.sock")
    }

    fn nodes(&self) -> Vec<LabNode> {
        self.status["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("no nodes in {:#}", self.status))
            .iter()
            .map(|n| LabNode {
                name: n["name"].as_str().unwrap_or_default().to_string(),
                address: n["address"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("node address in {n}")),
            })
            .collect()
    }

    fn node(&self, name: &str) -> LabNode {
        self.nodes()
            .into_iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// (pod's node, pod's address, pod's block).
    fn pods(&self) -> Vec<(String, String, String)> {
        self.status["pods"]
            .as_array()
            .unwrap_or_else(|| panic!("no pods in {:#}", self.status))
            .iter()
            .map(|p| {
                let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                (s("node"), s("address"), s("block"))
            })
            .collect()
    }

    fn log(&self, node: &str) -> String {
        tail(&self.dir.join(node).join("agent.log"), 30)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        match self.cmd("down").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("lab down in the guard failed:\n{}", text(&out)),
            Err(e) => eprintln!("lab down in the guard: {e}"),
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

#[derive(Debug, Clone)]
struct LabNode {
    name: String,
    address: IpAddr,
}

/// The lab's subnets are /24s: nodes of one route directly, across them over VXLAN.
fn same_subnet(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        _ => false,
    }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LABS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A view's peer by address.
fn peer_of(view: &Value, address: IpAddr) -> Result<&Value, String> {
    view["peers"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["address"].as_str() == Some(&address.to_string()))
        })
        .ok_or_else(|| format!("no peer {address} in {view}"))
}

/// A route row of `tortie routes --json` by prefix.
fn route_of<'a>(view: &'a Value, prefix: &str) -> Result<&'a Value, String> {
    view["routes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["prefix"] == prefix))
        .ok_or_else(|| format!("no route {prefix} in {view:#}"))
}

#[test]
fn status_rows_match_each_nodes_sessions() {
    need_root!();
    let _one = lock();
    let lab = Lab::up("st", 3);
    let nodes = lab.nodes();
    for n in &nodes {
        let others: BTreeSet<String> = nodes
            .iter()
            .filter(|o| o.name != n.name)
            .map(|o| o.address.to_string())
            .collect();
        let v = view_json(&lab.socket(&n.name), &["status"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["node"], n.name.as_str());
        let peers = v["peers"].as_array().cloned().unwrap_or_default();
        let listed: BTreeSet<String> = peers
            .iter()
            .map(|p| p["address"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(listed, others, "{}: one row per session", n.name);
        for p in &peers {
            assert_eq!(
                (
                    p["state"].as_str(),
                    p["bgpState"].as_str(),
                    p["type"].as_str()
                ),
                (Some("up"), Some("Established"), Some("node-to-node mesh")),
                "{}: {p}",
                n.name
            );
        }
        // The table says the same, row by row.
        let table = view_text(&lab.socket(&n.name), &["status"]);
        for addr in &others {
            let row = table
                .lines()
                .find(|l| l.starts_with(&format!("| {addr} ")))
                .unwrap_or_else(|| panic!("no row for {addr} in:\n{table}"));
            assert!(
                row.contains("| node-to-node mesh | up ") && row.contains("| Established |"),
                "{row}"
            );
        }
    }
}

#[test]
fn every_view_prints_json_that_parses_with_its_documented_fields() {
    need_root!();
    let _one = lock();
    let lab = Lab::up("js", 2);
    let s = lab.socket("node1");
    let node2 = lab.node("node2").address.to_string();
    let checks: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["status"],
            vec!["node", "version", "pid", "uptimeSeconds", "peers"],
        ),
        (
            vec!["routes"],
            vec![
                "node",
                "rib",
                "dataplane",
                "programmed",
                "routes",
                "differences",
            ],
        ),
        (vec!["peers"], vec!["node", "peers"]),
        (vec!["peers", &node2], vec!["node", "peers"]),
        (
            vec!["ipam"],
            vec!["node", "pools", "orphanBlocks", "problems"],
        ),
        (vec!["peer", "refresh", &node2], vec!["address", "families"]),
    ];
    for (view, fields) in checks {
        let v = view_json(&s, &view).unwrap_or_else(|e| panic!("{e}"));
        for f in fields {
            assert!(
                v.get(f).is_some(),
                "tortie {view:?} --json has no {f:?}: {v:#}"
            );
        }
    }
    let one = view_json(&s, &["peers", &node2]).unwrap_or_else(|e| panic!("{e}"));
    let p = &one["peers"][0];
    assert_eq!(p["address"], node2.as_str());
    assert!(p["negotiated"]["holdTimeSeconds"].is_u64(), "{p:#}");
    assert!(p["counters"]["messagesIn"].as_u64() > Some(0), "{p:#}");
}

#[test]
fn routes_show_each_remote_block_in_rib_and_fib_with_its_encapsulation() {
    need_root!();
    let _one = lock();
    let lab = Lab::up("rt", 3);
    let me = lab.node("node1");
    let socket = lab.socket(&me.name);
    let v = wait_for(
        "node1's FIB to hold every block",
        SESSION_TIMEOUT,
        POLL,
        || {
            let v = view_json(&socket, &["routes"])?;
            let complete = lab.pods().iter().all(|(_, _, block)| {
                route_of(&v, block).is_ok_and(|r| !r["fib"].is_null() && !r["rib"].is_null())
            });
            if complete {
                Ok(v)
            } else {
                Err(format!("{v:#}"))
            }
        },
    );
    assert_eq!(v["dataplane"], true);
    assert_eq!(v["programmed"], true);
    assert_eq!(v["differences"], 0, "{v:#}");
    for (node, _, block) in lab.pods() {
        let r = route_of(&v, &block).unwrap_or_else(|e| panic!("{e}"));
        assert!(r["difference"].is_null(), "{r:#}");
        if node == me.name {
            assert_eq!(
                (&r["rib"]["local"], &r["fib"]["blackhole"]),
                (&Value::Bool(true), &Value::Bool(true)),
                "own block {r:#}"
            );
            continue;
        }
        let there = lab.node(&node).address.to_string();
        let encap = if same_subnet(me.address, lab.node(&node).address) {
            "none"
        } else {
            "vxlan"
        };
        assert_eq!(
            r["rib"]["bestNextHops"],
            serde_json::json!([there]),
            "{r:#}"
        );
        let hop = &r["fib"]["nextHops"][0];
        assert_eq!(hop["gateway"], there.as_str(), "{r:#}");
        assert_eq!(hop["encap"], encap, "{block} from {node}: {r:#}");
        assert_eq!(r["rib"]["paths"][0]["fromName"], node.as_str(), "{r:#}");
    }
    let table = view_text(&socket, &["routes"]);
    for (node, _, block) in lab.pods().into_iter().filter(|(n, ..)| *n != me.name) {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {block} ")))
            .unwrap_or_else(|| panic!("no row for {block} in:\n{table}"));
        let encap = if same_subnet(me.address, lab.node(&node).address) {
            "| none "
        } else {
            "| vxlan "
        };
        assert!(row.contains(encap) && !row.contains('*'), "{row}");
    }
    assert!(table.contains("FIB: as the RIB's best routes."), "{table}");
}

#[test]
fn routes_of_a_pod_address_show_the_block_that_holds_it() {
    need_root!();
    let _one = lock();
    let lab = Lab::up("lm", 2);
    let (node, address, block) = lab
        .pods()
        .into_iter()
        .find(|(n, ..)| n == "node2")
        .unwrap_or_else(|| panic!("no pod on node2"));
    let v =
        view_json(&lab.socket("node1"), &["routes", &address]).unwrap_or_else(|e| panic!("{e}"));
    let prefixes: Vec<&str> = v["routes"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["prefix"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(prefixes, [block.as_str()], "{v:#}");
    assert_eq!(
        v["routes"][0]["rib"]["bestNextHops"][0],
        lab.node(&node).address.to_string().as_str()
    );
}

#[test]
fn ipam_shows_the_blocks_of_the_pods_with_their_nodes() {
    need_root!();
    let _one = lock();
    let lab = Lab::up("ip", 3);
    let v = view_json(&lab.socket("node2"), &["ipam"]).unwrap_or_else(|e| panic!("{e}"));
    let pool = v["pools"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["cidr"] == "198.19.0.0/16"))
        .unwrap_or_else(|| panic!("no pool 198.19.0.0/16 in {v:#}"));
    let pods = lab.pods();
    assert_eq!(pool["inUse"].as_u64(), Some(pods.len() as u64), "{pool:#}");
    for (node, _, block) in &pods {
        let b = pool["blockList"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["cidr"] == block.as_str()))
            .unwrap_or_else(|| panic!("no block {block} in {pool:#}"));
        assert_eq!(b["node"], node.as_str(), "{b}");
        assert_eq!(b["state"], "confirmed", "{b}");
        assert_eq!(
            (b["inUse"].as_u64(), b["size"].as_u64()),
            (Some(1), Some(64)),
            "{b}"
        );
    }
    let table = view_text(&lab.socket("node2"), &["ipam"]);
    for (node, _, block) in &pods {
        assert!(
            table.lines().any(|l| l.starts_with("| Block ")
                && l.contains(&format!("| {block} "))
                && l.contains(&format!("| {node} "))),
            "{block} of {node} in:\n{table}"
        );
    }
}

#[test]
fn a_peer_disabled_through_the_cli_shows_idle_on_both_ends_and_comes_back_when_enabled() {
    need_root!();
    let _one = lock();
    let lab = Lab::up("dis", 2);
    let (n1, n2) = (lab.node("node1"), lab.node("node2"));
    let (s1, s2) = (lab.socket("node1"), lab.socket("node2"));
    let out = view_text(&s1, &["peer", "disable", "node2"]);
    assert_eq!(out, format!("peer {} disabled\n", n2.address));

    // This end: Idle, disabled, and it stays so.
    let here = wait_for("node1 to show node2 Idle", SESSION_TIMEOUT, POLL, || {
        let v = view_json(&s1, &["status"])?;
        let p = peer_of(&v, n2.address)?.clone();
        if p["bgpState"] == "Idle" {
            Ok(p)
        } else {
            Err(p.to_string())
        }
    });
    assert_eq!(
        (&here["state"], &here["enabled"]),
        (&Value::from("down"), &Value::Bool(false)),
        "{here}"
    );
    assert_eq!(here["info"], "Idle (disabled)");
    // The other end: Idle between its attempts, each refused with the operator's shutdown.
    let there = wait_for(
        "node2 to show node1 Idle, shut down",
        SESSION_TIMEOUT,
        POLL,
        || {
            let v = view_json(&s2, &["status"])?;
            let p = peer_of(&v, n1.address)?.clone();
            let why = p["lastError"].as_str().unwrap_or_default();
            if p["bgpState"] == "Idle" && why.contains("disabled by an operator") {
                Ok(p)
            } else {
                Err(p.to_string())
            }
        },
    );
    assert_eq!(
        there["state"], "start",
        "node2 still wants the session: {there}"
    );
    // node1 no longer routes node2's block.
    let v = view_json(&s1, &["routes"]).unwrap_or_else(|e| panic!("{e}"));
    let (_, _, block2) = lab
        .pods()
        .into_iter()
        .find(|(n, ..)| n == "node2")
        .unwrap_or_default();
    assert!(
        route_of(&v, &block2).is_err(),
        "{block2} still routed: {v:#}\n{}",
        lab.log("node1")
    );

    let out = view_text(&s1, &["peer", "enable", "node2"]);
    assert_eq!(out, format!("peer {} enabled\n", n2.address));
    for (socket, other) in [(&s1, n2.address), (&s2, n1.address)] {
        wait_for("the session back up", Duration::from_secs(90), POLL, || {
            let v = view_json(socket, &["status"])?;
            let p = peer_of(&v, other)?;
            if p["bgpState"] == "Established" {
                Ok(())
            } else {
                Err(p.to_string())
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// Agents peering with BIRD on loopback

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

/// A tortie agent (its API also on TCP at `tcp`, with `extra` flags) peering with a BIRD.
fn agent_with_bird(tcp: SocketAddr, extra: &[&str]) -> (Tortie, Bird, IpAddr) {
    let tortie_cfg = SpeakerConfig::loopback(AS);
    let bird_cfg = SpeakerConfig::loopback(AS).with_neighbor(Neighbor::to(&tortie_cfg).hold(6));
    let tortie_cfg = tortie_cfg.with_neighbor(Neighbor::to(&bird_cfg).hold(9));
    let bird = Bird::start(bird_cfg.clone());
    let mut tortie = Tortie::new(tortie_cfg);
    tortie.extra_args = vec!["--api-listen".into(), tcp.to_string()];
    tortie
        .extra_args
        .extend(extra.iter().map(|s| s.to_string()));
    tortie.spawn();
    let bird_addr = bird_cfg.addr();
    tortie.wait_established(bird_addr, SESSION_TIMEOUT);
    (tortie, bird, bird_addr)
}

async fn tcp_client(
    addr: SocketAddr,
) -> v1::tortie_client::TortieClient<tonic::transport::Channel> {
    v1::tortie_client::TortieClient::connect(format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("connect to the API on {addr}: {e}"))
}

#[test]
fn the_tcp_listener_answers_reads_and_refuses_to_disable_a_peer_without_allow_write() {
    let tcp = SocketAddr::new(IpAddr::V4(alloc_loopback()), alloc_port());
    let (tortie, _bird, bird_addr) = agent_with_bird(tcp, &[]);
    runtime().block_on(async {
        let mut c = tcp_client(tcp).await;
        let peers = c
            .list_peers(v1::ListPeersRequest::default())
            .await
            .unwrap_or_else(|s| panic!("ListPeers over TCP: {s}"))
            .into_inner();
        assert_eq!(peers.peers.len(), 1, "{peers:?}");
        let refused = c
            .set_peer_enabled(v1::SetPeerEnabledRequest {
                peer: bird_addr.to_string(),
                enabled: false,
            })
            .await
            .err()
            .unwrap_or_else(|| panic!("SetPeerEnabled over a read-only TCP listener succeeded"));
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(
            refused.message().contains("--api-allow-write"),
            "{refused:?}"
        );
    });
    assert!(
        tortie.is_established(&bird_addr.into()),
        "the session is untouched:\n{}",
        tortie.logs()
    );
    // The unix socket accepts the same call.
    let out = tortie_view(
        &tortie.api_socket(),
        &["peer", "disable", &bird_addr.to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
}

fn tortie_view(socket: &Path, view: &[&str]) -> Output {
    let mut args: Vec<&str> = view.to_vec();
    let socket = socket.to_string_lossy().to_string();
    args.extend(["--api-socket", &socket]);
    tortie(&args)
}

#[test]
fn the_tcp_listener_with_allow_write_disables_a_peer() {
    let tcp = SocketAddr::new(IpAddr::V4(alloc_loopback()), alloc_port());
    let (tortie, bird, bird_addr) = agent_with_bird(tcp, &["--api-allow-write"]);
    runtime().block_on(async {
        let mut c = tcp_client(tcp).await;
        let r = c
            .set_peer_enabled(v1::SetPeerEnabledRequest {
                peer: bird_addr.to_string(),
                enabled: false,
            })
            .await
            .unwrap_or_else(|s| panic!("SetPeerEnabled over TCP with --api-allow-write: {s}"))
            .into_inner();
        assert!(r.changed && !r.enabled, "{r:?}");
    });
    let state = bird.wait_not_established(tortie.config().addr(), SESSION_TIMEOUT);
    assert_ne!(state, "Established");
}

#[test]
fn views_without_an_agent_exit_1_naming_the_socket() {
    let dir = TempDir::new("views-none");
    let socket = dir.join("run").join("tortie.sock");
    for view in [
        vec!["routes"],
        vec!["peers"],
        vec!["peers", "node2"],
        vec!["ipam"],
        vec!["peer", "disable", "node2"],
        vec!["peer", "refresh", "node2"],
    ] {
        let out = tortie_view(&socket, &view);
        assert_eq!(
            out.status.code(),
            Some(1),
            "tortie {view:?}: {}",
            text(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "no tortie agent is serving {} (is it running? see --api-socket)",
                socket.display()
            )),
            "tortie {view:?}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "tortie {view:?} printed: {}",
            text(&out)
        );
    }
}

#[test]
fn ipam_of_an_agent_without_a_datastore_says_it_has_none() {
    let tortie = Tortie::start(SpeakerConfig::loopback(AS));
    let out = tortie_view(&tortie.api_socket(), &["ipam"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without a datastore") && stderr.contains("(Unavailable)"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_peer_is_refused_naming_the_known_ones() {
    let tcp = SocketAddr::new(IpAddr::V4(alloc_loopback()), alloc_port());
    let (tortie, _bird, bird_addr) = agent_with_bird(tcp, &[]);
    let out = tortie_view(&tortie.api_socket(), &["peer", "disable", "nobody"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no peer \"nobody\"") && stderr.contains(&bird_addr.to_string()),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// A watch stream nobody reads, while 100,000 routes arrive

const MANY: u32 = 100_000;

/// `MANY` host routes from 198.18.0.0 up (in the test ranges; announced, never used).
fn many_routes(cfg: SpeakerConfig) -> SpeakerConfig {
    let base = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0));
    (0..MANY).fold(cfg, |c, i| {
        c.with_originate(&format!("{}/32", std::net::Ipv4Addr::from(base + i)), "")
    })
}

/// An agent with `--dataplane none` and `--config` (no status file: only the API reads it).
struct BareAgent {
    _proc: Proc,
    socket: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

fn bare_agent(cfg: &SpeakerConfig) -> BareAgent {
    let dir = TempDir::new("views-watch");
    let config = dir.join("cluster.yaml");
    let model = Tortie::new(cfg.clone());
    std::fs::write(&config, model.yaml()).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    let node = format!("tortie-{}", cfg.router_id.to_string().replace('.', "-"));
    let socket = dir.join("api").join("tortie.sock");
    let log = dir.join("agent.log");
    let mut cmd = Command::new(EXE);
    cmd.args(["agent", "--dataplane", "none", "--node", &node, "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--secrets-dir")
        .arg(dir.join("secrets"))
        .arg("--api-socket")
        .arg(&socket)
        .args(["--hold-time", "9", "--connect-retry", "1"]);
    let proc = Proc::spawn("tortie-watch", cmd, &log).unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "the agent's API socket",
        Duration::from_secs(15),
        POLL,
        || {
            if socket.exists() {
                Ok(())
            } else {
                Err(tail(&log, 10))
            }
        },
    );
    BareAgent {
        _proc: proc,
        socket,
        log,
        _dir: dir,
    }
}

#[test]
fn a_watch_stream_left_unread_never_holds_up_bgp_while_100k_routes_arrive() {
    let tortie_cfg = SpeakerConfig::loopback(AS);
    let bird_cfg =
        many_routes(SpeakerConfig::loopback(AS).with_neighbor(Neighbor::to(&tortie_cfg).hold(30)));
    let tortie_cfg = tortie_cfg.with_neighbor(Neighbor::to(&bird_cfg).hold(30));
    let agent = bare_agent(&tortie_cfg);

    // The watcher: its own thread and connection; it opens the stream and does not read it
    // until told to, then reads what it was left.
    let (opened_tx, opened_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
    let socket = agent.socket.clone();
    let watcher = std::thread::spawn(move || -> Result<WatchOutcome, String> {
        runtime().block_on(async move {
            let opened = async {
                let mut c = client::connect(&socket).await.map_err(|e| e.to_string())?;
                c.watch_events(v1::WatchEventsRequest {
                    kinds: vec![v1::EventKind::BestRoute as i32],
                })
                .await
                .map(|r| r.into_inner())
                .map_err(|s| format!("WatchEvents: {s}"))
            }
            .await;
            let mut stream = match opened {
                Ok(s) => {
                    let _ = opened_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let _ = read_rx.await;
            read_what_was_left(&mut stream).await
        })
    });
    opened_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the watcher did not report: {e}"))
        .unwrap_or_else(|e| panic!("{e}"));

    let bird = Bird::start(bird_cfg);
    let rt = runtime();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut peers_answered = 0;
    let reached = loop {
        let (peers, count) = rt.block_on(async {
            let mut c = client::connect(&agent.socket)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}\n{}", tail(&agent.log, 20)));
            let asked = Instant::now();
            let peers = c
                .list_peers(v1::ListPeersRequest::default())
                .await
                .map(|r| (r.into_inner(), asked.elapsed()));
            let count = c
                .list_routes(v1::ListRoutesRequest {
                    count_only: true,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().sizes.map_or(0, |s| s.ipv4_prefixes));
            (peers, count)
        });
        let (reply, took) = peers.unwrap_or_else(|s| {
            panic!(
                "ListPeers failed after {:?} with routes arriving: {s}\n{}",
                started.elapsed(),
                tail(&agent.log, 20)
            )
        });
        assert_eq!(reply.peers.len(), 1, "{reply:?}");
        slowest = slowest.max(took);
        peers_answered += 1;
        let count = count.unwrap_or_else(|s| panic!("ListRoutes: {s}"));
        if count >= u64::from(MANY) {
            break count;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the RIB has {count} of {MANY} prefixes after {:?}\n{}\n{}",
            started.elapsed(),
            tail(&agent.log, 20),
            bird.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(reached, u64::from(MANY));
    assert!(
        peers_answered > 1,
        "ListPeers was asked while routes arrived"
    );
    eprintln!(
        "RIB at {MANY} prefixes after {:?}; ListPeers answered {peers_answered} times, slowest {slowest:?}",
        started.elapsed()
    );
    // The stream was left behind, not broken: reading it now gives the routes, or says how
    // much was dropped.
    let _ = read_tx.send(());
    let outcome = watcher
        .join()
        .unwrap_or_else(|_| panic!("the watcher thread panicked"))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("the unread watcher then read: {outcome:?}");
    assert!(
        outcome.lagged.is_some() || outcome.routes >= MANY as usize,
        "neither every route nor a lagged event: {outcome:?}"
    );
}

#[derive(Debug, Default)]
struct WatchOutcome {
    /// Best-route events read.
    routes: usize,
    /// The first lagged event's text.
    lagged: Option<String>,
}

/// Reads best-route events until a lagged event, or every route, or 60 s.
async fn read_what_was_left(
    stream: &mut tonic::Streaming<v1::Event>,
) -> Result<WatchOutcome, String> {
    use v1::event::Event as E;
    let mut out = WatchOutcome::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.lagged.is_none() && out.routes < MANY as usize {
        let next = tokio::time::timeout_at(deadline, stream.message())
            .await
            .map_err(|_| format!("the stream went quiet: {out:?}"))?
            .map_err(|s| format!("the stream failed: {s}"))?
            .ok_or_else(|| format!("the stream ended: {out:?}"))?;
        match next.event {
            Some(E::BestRoute(_)) => out.routes += 1,
            Some(E::Lagged(l)) => out.lagged = Some(l.message),
            other => return Err(format!("an event not asked for: {other:?}")),
        }
    }
    Ok(out)
}

#[test]
fn a_watch_stream_reports_the_session_coming_up_and_the_routes_it_brings() {
    let tortie_cfg = SpeakerConfig::loopback(AS);
    let bird_cfg = SpeakerConfig::loopback(AS)
        .with_neighbor(Neighbor::to(&tortie_cfg).hold(30))
        .with_originate("198.19.40.0/26", "")
        .with_originate("198.19.40.64/26", "");
    let bird_addr = bird_cfg.addr().to_string();
    let tortie_cfg = tortie_cfg.with_neighbor(Neighbor::to(&bird_cfg).hold(30));
    let agent = bare_agent(&tortie_cfg);
    runtime().block_on(async {
        use v1::event::Event as E;
        let mut c = client::connect(&agent.socket)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut stream = c
            .watch_events(v1::WatchEventsRequest::default())
            .await
            .unwrap_or_else(|s| panic!("WatchEvents: {s}"))
            .into_inner();
        let _bird = Bird::start(bird_cfg);
        let mut up = false;
        let mut routes = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + SESSION_TIMEOUT;
        while !(up && routes.len() == 2) {
            let e = tokio::time::timeout_at(deadline, stream.message())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no events within {SESSION_TIMEOUT:?}: up {up}, routes {routes:?}\n{}",
                        tail(&agent.log, 20)
                    )
                })
                .unwrap_or_else(|s| panic!("the stream failed: {s}"))
                .unwrap_or_else(|| panic!("the stream ended"));
            match e.event {
                Some(E::PeerState(p)) if p.to == v1::PeerState::Established as i32 => {
                    assert_eq!(p.address, bird_addr);
                    up = true;
                }
                Some(E::BestRoute(r)) => {
                    assert_eq!(r.next_hops, vec![bird_addr.clone()], "{r:?}");
                    routes.insert(r.prefix);
                }
                _ => {}
            }
        }
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            ["198.19.40.0/26", "198.19.40.64/26"]
        );
    });
}

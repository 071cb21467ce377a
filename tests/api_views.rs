//! The operator's views on the API (`tortie status`, `routes`, `peers`, `ipam`, `peer
//! enable|disable`) against `tortie lab` clusters (as root: namespaces, the kernel dataplane,
//! pods), each test with a lab of its own taken down by a guard, also on panic. The views read
//! each node's `<dir>/<node>/api.sock`.

mod api_support;
mod support;

use api_support::{EXE, text, tortie};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use support::*;

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
                namespace: n["namespace"].as_str().unwrap_or_default().to_string(),
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
    namespace: String,
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

/// The protocol number of the kernel's route to `prefix` in namespace `ns`.
fn kernel_protocol(ns: &str, prefix: &str) -> String {
    let out = Command::new("ip")
        .args(["-N", "-j", "-n", ns, "route", "show", prefix])
        .output()
        .unwrap_or_else(|e| panic!("ip route show {prefix}: {e}"));
    assert!(
        out.status.success(),
        "ip route show {prefix}:\n{}",
        text(&out)
    );
    let routes: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ip -j route: {e}\n{}", text(&out)));
    routes[0]["protocol"]
        .as_str()
        .unwrap_or_else(|| panic!("no route {prefix} in {ns}: {routes}"))
        .to_string()
}

/// A route row of `tortie routes --json` by prefix.
fn route_of<'a>(view: &'a Value, prefix: &str) -> Result<&'a Value, String> {
    view["routes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["prefix"] == prefix))
        .ok_or_else(|| format!("no route {prefix} in {view:#}"))
}

/// The counters of the session with `peer` in `tortie peers PEER --json` on `socket`.
fn counters(socket: &Path, peer: IpAddr) -> Result<Value, String> {
    let v = view_json(socket, &["peers", &peer.to_string()])?;
    let c = peer_of(&v, peer)?["counters"].clone();
    if c.is_object() {
        Ok(c)
    } else {
        Err(format!("no counters for {peer}: {v:#}"))
    }
}

fn counter(c: &Value, name: &str) -> Result<u64, String> {
    c[name]
        .as_u64()
        .ok_or_else(|| format!("no counter {name:?} in {c}"))
}

/// A counter of the session with `peer` once it holds still for a second: nothing is being
/// sent then, so what it gains afterwards is the doing of what the test does next.
fn settled(socket: &Path, peer: IpAddr, name: &str) -> u64 {
    wait_for(
        &format!("{name} toward {peer} to settle"),
        SESSION_TIMEOUT,
        POLL,
        || {
            let before = counter(&counters(socket, peer)?, name)?;
            std::thread::sleep(Duration::from_secs(1));
            let after = counter(&counters(socket, peer)?, name)?;
            if before == after {
                Ok(after)
            } else {
                Err(format!("{name} went from {before} to {after}"))
            }
        },
    )
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
fn a_refresh_makes_the_peer_send_its_routes_again() {
    need_root!();
    let _one = lock();
    let lab = Lab::up("rf", 2);
    let (n1, n2) = (lab.node("node1"), lab.node("node2"));
    let (s1, s2) = (lab.socket("node1"), lab.socket("node2"));
    let blocks_of_node2 = lab
        .pods()
        .into_iter()
        .filter(|(n, ..)| n == "node2")
        .map(|(_, _, block)| block)
        .collect::<BTreeSet<String>>()
        .len() as u64;
    assert!(
        blocks_of_node2 > 0,
        "no pod block on node2: {:#}",
        lab.status
    );
    let sent_before = settled(&s2, n1.address, "prefixesOut");
    let received_before = settled(&s1, n2.address, "prefixesIn");

    let reply = view_json(&s1, &["peer", "refresh", "node2"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply["address"], n2.address.to_string().as_str(), "{reply}");
    assert_eq!(
        reply["families"],
        serde_json::json!(["ipv4-unicast"]),
        "{reply}"
    );

    // The ROUTE-REFRESH reached node2: it sent node1 its blocks again, and node1 got them.
    wait_for(
        "node2 to send node1 its blocks again",
        SESSION_TIMEOUT,
        POLL,
        || {
            let sent = counter(&counters(&s2, n1.address)?, "prefixesOut")?;
            if sent >= sent_before + blocks_of_node2 {
                Ok(())
            } else {
                Err(format!(
                    "prefixesOut {sent}, {sent_before} before the refresh"
                ))
            }
        },
    );
    wait_for("node1 to receive them", SESSION_TIMEOUT, POLL, || {
        let received = counter(&counters(&s1, n2.address)?, "prefixesIn")?;
        if received >= received_before + blocks_of_node2 {
            Ok(())
        } else {
            Err(format!(
                "prefixesIn {received}, {received_before} before the refresh"
            ))
        }
    });
}

#[test]
fn routes_show_each_block_in_rib_and_fib_with_its_encapsulation_and_kernel_protocol() {
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
        assert_eq!(
            r["fib"]["protocol"].as_u64().map(|p| p.to_string()),
            Some(kernel_protocol(&me.namespace, &block)),
            "{block}: {r:#}"
        );
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

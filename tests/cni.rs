//! `tortie-cni` end to end: the real binary, linked as `tortie-cni` in a temp dir and run with
//! the CNI environment inside a node's network namespace (`ip netns exec`), as a runtime runs
//! it; pods are real namespaces; the datastore is a real embedded store (or a real etcd), with
//! the pools loaded by the real `tortie apply`.
//!
//! Traffic tests use a `tortie lab` cluster (agents, BGP, VXLAN across subnets) with no pods
//! of its own, and create the pods through the plugin. The other tests need no agents: a node
//! is a namespace and a data directory. Every namespace, lab and directory has a guard that
//! removes it, also when a test fails.

#[path = "../ipam/tests/etcd_support/mod.rs"]
mod etcd_support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_tortie");

/// One lab at a time: each runs agents, and the machine is small.
static LABS: Mutex<()> = Mutex::new(());

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! need_root {
    () => {
        if !root() {
            eprintln!("skipped: network namespaces need root");
            return;
        }
    };
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Namespaces removed on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn new() -> Namespaces {
        Namespaces(Vec::new())
    }

    fn add(&mut self, name: &str) -> String {
        let _ = ip(&["netns", "del", name]);
        ip(&["netns", "add", name]).expect("ip netns add");
        ip(&["-n", name, "link", "set", "lo", "up"]).expect("lo up");
        self.0.push(name.to_string());
        name.to_string()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("tortie-cni-test-{}", unique(tag)));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary as `tortie-cni`, in a CNI_PATH directory of its own.
fn plugin_dir(tmp: &Path) -> PathBuf {
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(EXE, bin.join("tortie-cni")).expect("symlink tortie-cni");
    bin
}

/// Loads Calico YAML into a datastore with the real CLI (inside `netns` when given).
fn apply(yaml: &str, tmp: &Path, store: &[&str], netns: Option<&str>) {
    let file = tmp.join(format!("{}.yaml", unique("res")));
    std::fs::write(&file, yaml).expect("write yaml");
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, EXE]);
            c
        }
        None => Command::new(EXE),
    };
    let out = c
        .arg("apply")
        .arg("-f")
        .arg(&file)
        .args(store)
        .output()
        .expect("run tortie apply");
    assert!(out.status.success(), "tortie apply:\n{}", text(&out));
}

fn pool_yaml(name: &str, cidr: &str, block: u8) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: {name}}}\nspec: {{cidr: {cidr}, blockSize: {block}, vxlanMode: CrossSubnet}}\n"
    )
}

/// What one plugin run printed.
struct Run {
    out: Output,
    json: Value,
}

impl Run {
    fn ok(&self) -> bool {
        self.out.status.success()
    }

    fn code(&self) -> Option<u64> {
        self.json.get("code").and_then(Value::as_u64)
    }

    fn address(&self) -> String {
        self.json["ips"][0]["address"]
            .as_str()
            .unwrap_or_else(|| panic!("no address in the result:\n{}", text(&self.out)))
            .trim_end_matches("/32")
            .to_string()
    }

    fn expect_ok(self) -> Run {
        assert!(self.ok(), "the plugin failed:\n{}", text(&self.out));
        self
    }

    fn expect_error(self, code: u64) -> Run {
        assert!(!self.ok(), "the plugin succeeded:\n{}", text(&self.out));
        assert_eq!(self.code(), Some(code), "{}", text(&self.out));
        assert_eq!(self.json["msg"].as_str().map(str::is_empty), Some(false));
        assert!(
            self.json["details"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            text(&self.out)
        );
        self
    }
}

/// A node the plugin runs on: its namespace, its datastore, its network configuration.
struct Node {
    ns: String,
    bin: PathBuf,
    conf: Value,
}

impl Node {
    /// Runs the plugin in the node's namespace; `vars` are (name, value), `None` values unset.
    fn run_with(&self, vars: &[(&str, Option<&str>)], stdin: &[u8]) -> Run {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns])
            .arg(self.bin.join("tortie-cni"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in [
            "CNI_COMMAND",
            "CNI_CONTAINERID",
            "CNI_NETNS",
            "CNI_IFNAME",
            "CNI_ARGS",
            "CNI_PATH",
        ] {
            c.env_remove(k);
        }
        for (k, v) in vars {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        let mut child = c.spawn().expect("run tortie-cni");
        if let Some(mut pipe) = child.stdin.take() {
            use std::io::Write as _;
            pipe.write_all(stdin).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait tortie-cni");
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        Run { out, json }
    }

    fn env<'a>(
        &'a self,
        command: &'a str,
        id: &'a str,
        pod_ns: Option<&'a str>,
    ) -> Vec<(&'a str, Option<&'a str>)> {
        vec![
            ("CNI_COMMAND", Some(command)),
            ("CNI_CONTAINERID", Some(id)),
            ("CNI_NETNS", pod_ns),
            ("CNI_IFNAME", Some("eth0")),
            ("CNI_ARGS", Some("K8S_POD_NAMESPACE=test;K8S_POD_NAME=pod")),
            ("CNI_PATH", self.bin.to_str()),
        ]
    }

    fn run(&self, command: &str, id: &str, pod_ns: Option<&str>, conf: &Value) -> Run {
        let netns = pod_ns.map(|n| format!("/run/netns/{n}"));
        self.run_with(
            &self.env(command, id, netns.as_deref()),
            &serde_json::to_vec(conf).expect("conf"),
        )
    }

    fn add(&self, id: &str, pod_ns: &str) -> Run {
        self.run("ADD", id, Some(pod_ns), &self.conf)
    }

    fn del(&self, id: &str, pod_ns: Option<&str>) -> Run {
        self.run("DEL", id, pod_ns, &self.conf)
    }

    fn check(&self, id: &str, pod_ns: &str, prev: &Value) -> Run {
        let mut conf = self.conf.clone();
        conf["prevResult"] = prev.clone();
        self.run("CHECK", id, Some(pod_ns), &conf)
    }

    /// The node's links other than `lo`.
    fn links(&self) -> Vec<String> {
        let out = ip(&["-n", &self.ns, "-j", "link", "show"]).expect("ip link");
        let v: Value = serde_json::from_str(&out).expect("ip -j link");
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .filter(|n| n != "lo")
            .collect()
    }

    /// The node's routes to pod addresses (198.19.0.0/16).
    fn pod_routes(&self) -> Vec<String> {
        ip(&["-n", &self.ns, "route", "show", "root", "198.19.0.0/16"])
            .expect("ip route")
            .lines()
            .filter(|l| !l.starts_with("blackhole") && !l.contains(" via "))
            .map(str::to_string)
            .collect()
    }
}

/// A node with an embedded store holding one pool, and no agent.
struct Standalone {
    node: Node,
    data: PathBuf,
    namespaces: Namespaces,
    _tmp: TempDir,
}

impl Standalone {
    fn new(tag: &str, pool_cidr: &str, block: u8) -> Standalone {
        let tmp = TempDir::new(tag);
        let data = tmp.0.join("data");
        apply(
            &pool_yaml("pool1", pool_cidr, block),
            &tmp.0,
            &["--data-dir", data.to_str().expect("path")],
            None,
        );
        let mut namespaces = Namespaces::new();
        let ns = namespaces.add(&format!("tcni-{}", unique(tag)));
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": "tortie-cni",
            "nodename": "node1",
            "mtu": 1400,
            "apiSocket": "",
            "ipamLockFile": tmp.0.join("ipam.lock"),
            "datastore": {"dataDir": data},
        });
        Standalone {
            node: Node {
                ns,
                bin: plugin_dir(&tmp.0),
                conf,
            },
            data,
            namespaces,
            _tmp: tmp,
        }
    }

    fn pod(&mut self, i: u32) -> String {
        let name = format!("{}-pod{i}", self.node.ns);
        self.namespaces.add(&name)
    }

    /// Every IPAM key of the store: blocks and handles.
    fn ipam_keys(&self) -> Vec<String> {
        self.store()["keys"]
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| k.starts_with("/tortie/v1/ipam/"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn store(&self) -> Value {
        match std::fs::read(self.data.join("tortie.db")) {
            Ok(b) => serde_json::from_slice(&b).expect("tortie.db is JSON"),
            Err(_) => Value::Null,
        }
    }

    /// The handles that hold addresses in the store's blocks.
    fn allocated_handles(&self) -> BTreeSet<String> {
        let store = self.store();
        let mut out = BTreeSet::new();
        for (k, v) in store["keys"].as_object().into_iter().flatten() {
            if !k.starts_with("/tortie/v1/ipam/blocks/") {
                continue;
            }
            let block: Value =
                serde_json::from_str(v["text"].as_str().unwrap_or("null")).expect("block JSON");
            collect_handles(&block, &mut out);
        }
        out
    }
}

/// Every `handle` field anywhere in a block document.
fn collect_handles(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "handle" {
                    if let Some(h) = x.as_str() {
                        out.insert(h.to_string());
                    }
                }
                collect_handles(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_handles(x, out)),
        _ => {}
    }
}

fn handle(id: &str) -> String {
    format!("k8s-pod-network.{id}")
}

// ---------------------------------------------------------------------------------------------
// ADD, DEL, CHECK on one node

#[test]
fn add_gives_the_pod_an_address_a_veth_and_a_default_route_via_the_link_local_gateway() {
    need_root!();
    let mut s = Standalone::new("add", "198.19.4.0/24", 26);
    let pod = s.pod(1);
    let r = s.node.add("c1", &pod).expect_ok();
    let addr = r.address();
    assert!(addr.starts_with("198.19.4."), "{addr}");
    let routes = ip(&["-n", &pod, "route", "show", "default"]).unwrap();
    assert!(routes.contains("via 169.254.1.1 dev eth0"), "{routes}");
    let link = ip(&["-n", &pod, "link", "show", "eth0"]).unwrap();
    assert!(link.contains("mtu 1400"), "{link}");
    let host = r.json["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.node.links(), std::slice::from_ref(&host));
    assert_eq!(
        s.node.pod_routes(),
        [format!("{addr} dev {host} scope link ")]
    );
}

#[test]
fn del_removes_the_link_the_route_and_the_allocation() {
    need_root!();
    let mut s = Standalone::new("del", "198.19.5.0/24", 26);
    let pod = s.pod(1);
    s.node.add("c1", &pod).expect_ok();
    assert!(s.allocated_handles().contains(&handle("c1")));
    s.node.del("c1", Some(&pod)).expect_ok();
    assert!(s.node.links().is_empty(), "{:?}", s.node.links());
    assert!(s.node.pod_routes().is_empty(), "{:?}", s.node.pod_routes());
    assert!(
        s.allocated_handles().is_empty(),
        "{:?}",
        s.allocated_handles()
    );
    assert!(
        !s.ipam_keys().iter().any(|k| k.contains("/handles/")),
        "{:?}",
        s.ipam_keys()
    );
    let eth0 = ip(&["-n", &pod, "link", "show", "eth0"]);
    assert!(eth0.is_err(), "eth0 is still in the pod: {eth0:?}");
}

#[test]
fn a_repeated_add_returns_the_same_address() {
    need_root!();
    let mut s = Standalone::new("again", "198.19.6.0/24", 26);
    let pod = s.pod(1);
    let first = s.node.add("c1", &pod).expect_ok().address();
    let second = s.node.add("c1", &pod).expect_ok().address();
    assert_eq!(first, second);
    assert_eq!(s.allocated_handles().len(), 1);
    assert_eq!(s.node.links().len(), 1, "{:?}", s.node.links());
    let held = ip(&["-n", &pod, "addr", "show", "eth0"]).unwrap();
    assert!(held.contains(&format!("{first}/32")), "{held}");
}

#[test]
fn a_repeated_del_succeeds() {
    need_root!();
    let mut s = Standalone::new("deldel", "198.19.7.0/24", 26);
    let pod = s.pod(1);
    s.node.add("c1", &pod).expect_ok();
    s.node.del("c1", Some(&pod)).expect_ok();
    s.node.del("c1", Some(&pod)).expect_ok();
    assert!(s.allocated_handles().is_empty());
}

#[test]
fn del_succeeds_and_releases_when_the_namespace_is_gone() {
    need_root!();
    let mut s = Standalone::new("gone", "198.19.8.0/24", 26);
    let pod = s.pod(1);
    s.node.add("c1", &pod).expect_ok();
    ip(&["netns", "del", &pod]).unwrap();
    s.node.del("c1", Some(&pod)).expect_ok();
    s.node.del("c1", None).expect_ok();
    assert!(s.allocated_handles().is_empty());
    assert!(s.node.links().is_empty(), "{:?}", s.node.links());
}

#[test]
fn check_passes_on_a_pod_as_add_left_it() {
    need_root!();
    let mut s = Standalone::new("checkok", "198.19.9.0/24", 26);
    let pod = s.pod(1);
    let r = s.node.add("c1", &pod).expect_ok();
    s.node.check("c1", &pod, &r.json).expect_ok();
}

#[test]
fn check_catches_a_deleted_host_route() {
    need_root!();
    let mut s = Standalone::new("checkrt", "198.19.10.0/24", 26);
    let pod = s.pod(1);
    let r = s.node.add("c1", &pod).expect_ok();
    let addr = r.address();
    ip(&["-n", &s.node.ns, "route", "del", &format!("{addr}/32")]).unwrap();
    let c = s.node.check("c1", &pod, &r.json).expect_error(103);
    let details = c.json["details"].as_str().unwrap();
    assert!(
        details.contains(&format!("no route {addr}/32")),
        "{details}"
    );
}

#[test]
fn check_catches_a_deleted_default_route_in_the_pod() {
    need_root!();
    let mut s = Standalone::new("checkdef", "198.19.11.0/24", 26);
    let pod = s.pod(1);
    let r = s.node.add("c1", &pod).expect_ok();
    ip(&["-n", &pod, "route", "del", "default"]).unwrap();
    let c = s.node.check("c1", &pod, &r.json).expect_error(103);
    assert!(
        c.json["details"]
            .as_str()
            .unwrap()
            .contains("default route via 169.254.1.1"),
        "{}",
        text(&c.out)
    );
}

#[test]
fn fifty_concurrent_adds_on_one_node_get_fifty_distinct_addresses() {
    need_root!();
    let mut s = Standalone::new("fifty", "198.19.12.0/24", 26);
    let pods: Vec<String> = (0..50).map(|i| s.pod(i)).collect();
    let conf = serde_json::to_vec(&s.node.conf).unwrap();
    let children: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &s.node.ns])
                .arg(s.node.bin.join("tortie-cni"))
                .env("CNI_COMMAND", "ADD")
                .env("CNI_CONTAINERID", format!("c{i}"))
                .env("CNI_NETNS", format!("/run/netns/{pod}"))
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", &s.node.bin)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().expect("spawn");
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&conf).unwrap();
            child
        })
        .collect();
    let mut addrs = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        addrs.insert(v["ips"][0]["address"].as_str().unwrap().to_string());
    }
    assert_eq!(addrs.len(), 50, "{addrs:?}");
    assert_eq!(s.allocated_handles().len(), 50);
    assert_eq!(s.node.links().len(), 50);
}

#[test]
fn add_against_an_exhausted_pool_returns_code_100_and_leaves_nothing() {
    need_root!();
    // A /30 pool with /30 blocks: four addresses.
    let mut s = Standalone::new("full", "198.19.13.0/30", 30);
    for i in 0..4 {
        let pod = s.pod(i);
        s.node.add(&format!("c{i}"), &pod).expect_ok();
    }
    let pod = s.pod(4);
    let r = s.node.add("c4", &pod).expect_error(100);
    assert!(
        r.json["details"]
            .as_str()
            .unwrap()
            .contains("no free address"),
        "{}",
        text(&r.out)
    );
    assert_eq!(s.node.links().len(), 4);
    assert!(!s.allocated_handles().contains(&handle("c4")));
}

#[test]
fn a_failed_add_gives_its_address_back_and_removes_its_link() {
    need_root!();
    let mut s = Standalone::new("rollback", "198.19.14.0/24", 26);
    let pod = s.pod(1);
    // The pod already has an eth0 (not the plugin's): the veth cannot be made.
    ip(&[
        "-n", &pod, "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ])
    .unwrap();
    let r = s.node.add("c1", &pod).expect_error(102);
    assert!(
        r.json["details"].as_str().unwrap().contains("eth0"),
        "{}",
        text(&r.out)
    );
    assert!(s.node.links().is_empty(), "{:?}", s.node.links());
    assert!(
        s.allocated_handles().is_empty(),
        "{:?}",
        s.allocated_handles()
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input: the specification's error JSON, and nothing created

fn assert_nothing_created(s: &Standalone) {
    assert!(s.node.links().is_empty(), "{:?}", s.node.links());
    assert!(s.ipam_keys().is_empty(), "{:?}", s.ipam_keys());
}

#[test]
fn a_malformed_configuration_is_code_6_and_creates_nothing() {
    need_root!();
    let mut s = Standalone::new("badjson", "198.19.15.0/24", 26);
    let pod = s.pod(1);
    let netns = format!("/run/netns/{pod}");
    let r = s
        .node
        .run_with(
            &s.node.env("ADD", "c1", Some(&netns)),
            b"{\"cniVersion\": \"1.0.0\", ",
        )
        .expect_error(6);
    assert_eq!(r.json["cniVersion"], "1.1.0");
    assert_nothing_created(&s);
}

#[test]
fn a_missing_container_id_is_code_4_naming_it_and_creates_nothing() {
    need_root!();
    let mut s = Standalone::new("noid", "198.19.16.0/24", 26);
    let pod = s.pod(1);
    let netns = format!("/run/netns/{pod}");
    let mut vars = s.node.env("ADD", "c1", Some(&netns));
    vars.retain(|(k, _)| *k != "CNI_CONTAINERID");
    let r = s
        .node
        .run_with(&vars, &serde_json::to_vec(&s.node.conf).unwrap())
        .expect_error(4);
    assert!(
        r.json["details"]
            .as_str()
            .unwrap()
            .contains("CNI_CONTAINERID")
    );
    assert_eq!(r.json["cniVersion"], "1.0.0");
    assert_nothing_created(&s);
}

#[test]
fn an_unknown_cni_version_is_code_1_and_creates_nothing() {
    need_root!();
    let mut s = Standalone::new("badver", "198.19.17.0/24", 26);
    let pod = s.pod(1);
    let mut conf = s.node.conf.clone();
    conf["cniVersion"] = json!("0.2.0");
    let r = s.node.run("ADD", "c1", Some(&pod), &conf).expect_error(1);
    assert!(r.json["details"].as_str().unwrap().contains("0.2.0"));
    assert_nothing_created(&s);
}

#[test]
fn a_pool_the_cluster_does_not_have_is_code_7_naming_it() {
    need_root!();
    let mut s = Standalone::new("nopool", "198.19.18.0/24", 26);
    let pod = s.pod(1);
    let mut conf = s.node.conf.clone();
    conf["ipam"] = json!({"ipv4_pools": ["no-such-pool"]});
    let r = s.node.run("ADD", "c1", Some(&pod), &conf).expect_error(7);
    assert!(r.json["details"].as_str().unwrap().contains("no-such-pool"));
    assert_nothing_created(&s);
}

#[test]
fn version_lists_the_supported_versions() {
    let out = Command::new(EXE)
        .env("CNI_COMMAND", "VERSION")
        .arg0_plugin()
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["supportedVersions"], json!(["1.0.0", "1.1.0"]));
}

#[test]
fn status_succeeds_when_a_pool_is_usable() {
    need_root!();
    let s = Standalone::new("status", "198.19.19.0/24", 26);
    let r = s
        .node
        .run_with(
            &[("CNI_COMMAND", Some("STATUS"))],
            &serde_json::to_vec(&s.node.conf).unwrap(),
        )
        .expect_ok();
    assert!(r.out.stdout.is_empty(), "{}", text(&r.out));
}

#[test]
fn status_is_code_50_when_no_pool_selects_the_node() {
    need_root!();
    let s = Standalone::new("status50", "198.19.20.0/24", 26);
    let mut conf = s.node.conf.clone();
    conf["ipam"] = json!({"assign_ipv4": false, "assign_ipv6": true});
    let r = s
        .node
        .run_with(
            &[("CNI_COMMAND", Some("STATUS"))],
            &serde_json::to_vec(&conf).unwrap(),
        )
        .expect_error(50);
    assert!(
        r.json["details"].as_str().unwrap().contains("IPv6"),
        "{}",
        text(&r.out)
    );
}

/// Runs the binary under the plugin's name without a link: `argv[0]` is what counts.
trait Arg0Plugin {
    fn arg0_plugin(&mut self) -> &mut Self;
}

impl Arg0Plugin for Command {
    fn arg0_plugin(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt as _;
        self.arg0("tortie-cni")
    }
}

// ---------------------------------------------------------------------------------------------
// etcd

/// A throwaway etcd started from a thread inside namespace `ns`, so that it listens on that
/// namespace's 127.0.0.1, where the plugin (run in the node's namespace) reaches it. The
/// thread lives as long as this guard: etcd is tied to it (PR_SET_PDEATHSIG).
struct EtcdIn {
    endpoint: String,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EtcdIn {
    fn start(ns: &str) -> EtcdIn {
        let path = format!("/run/netns/{ns}");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd as _;
            let f = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on an owned descriptor; it moves only this thread.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            let etcd = etcd_support::Etcd::start();
            let _ = ready_tx.send(etcd.endpoint());
            // Until the guard drops (or the test thread is gone).
            let _ = stop_rx.recv();
            drop(etcd);
        });
        let endpoint = ready_rx.recv().expect("etcd did not start");
        EtcdIn {
            endpoint,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for EtcdIn {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn add_and_del_work_against_etcd() {
    need_root!();
    let tmp = TempDir::new("etcd");
    let mut namespaces = Namespaces::new();
    let ns = namespaces.add(&format!("tcni-{}", unique("etcd")));
    let pod = namespaces.add(&format!("{ns}-pod1"));
    let etcd = EtcdIn::start(&ns);
    let endpoint = etcd.endpoint.clone();
    apply(
        &pool_yaml("pool1", "198.19.21.0/24", 26),
        &tmp.0,
        &["--etcd-endpoints", &endpoint],
        Some(&ns),
    );
    let node = Node {
        ns,
        bin: plugin_dir(&tmp.0),
        conf: json!({
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": "tortie-cni",
            "nodename": "node1",
            "apiSocket": "",
            "ipamLockFile": tmp.0.join("ipam.lock"),
            "datastore": {"etcdEndpoints": [endpoint]},
        }),
    };
    let addr = node.add("c1", &pod).expect_ok().address();
    assert!(addr.starts_with("198.19.21."), "{addr}");
    let handles = || {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &node.ns,
                "etcdctl",
                "--endpoints",
                &endpoint,
            ])
            .args(["get", "--prefix", "--keys-only", "/tortie/v1/ipam/handles/"])
            .output()
            .expect("run etcdctl");
        assert!(out.status.success(), "etcdctl:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(handles(), "/tortie/v1/ipam/handles/k8s-pod-network.c1");
    node.del("c1", Some(&pod)).expect_ok();
    assert_eq!(handles(), "");
    assert!(node.links().is_empty(), "{:?}", node.links());
    drop(etcd);
}

// ---------------------------------------------------------------------------------------------
// Traffic in a lab: agents, BGP, VXLAN between subnets

/// A `tortie lab` of two nodes (one per subnet) without pods; `lab down` on drop.
struct Lab {
    name: String,
    dir: PathBuf,
    _tmp: TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    fn up(tag: &str) -> Lab {
        let serial = LABS.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = TempDir::new(tag);
        let name = format!("c{}", unique(tag));
        let dir = tmp.0.join("lab");
        let lab = Lab {
            name,
            dir,
            _tmp: tmp,
            _serial: serial,
        };
        let out = Command::new(EXE)
            .args([
                "lab", "up", "--name", &lab.name, "--nodes", "2", "--pods", "0",
            ])
            .args(["--timeout", "100", "--dir"])
            .arg(&lab.dir)
            .output()
            .expect("run tortie lab up");
        assert!(out.status.success(), "lab up:\n{}", text(&out));
        lab
    }

    fn node(&self, n: u32) -> Node {
        let bin = self.dir.join("cni-test-bin");
        if !bin.join("tortie-cni").exists() {
            std::fs::create_dir_all(&bin).unwrap();
            std::os::unix::fs::symlink(EXE, bin.join("tortie-cni")).unwrap();
        }
        Node {
            ns: format!("{}-node{n}", self.name),
            bin,
            conf: json!({
                "cniVersion": "1.0.0",
                "name": "k8s-pod-network",
                "type": "tortie-cni",
                "nodename": format!("node{n}"),
                "apiSocket": self.dir.join(format!("node{n}")).join("api.sock"),
                "ipamLockFile": self.dir.join("ipam.lock"),
                "datastore": {"dataDir": self.dir.join("data")},
            }),
        }
    }

    fn agent_log(&self, n: u32) -> String {
        std::fs::read_to_string(self.dir.join(format!("node{n}")).join("agent.log"))
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = Command::new(EXE)
            .args(["lab", "down", "--name", &self.name, "--dir"])
            .arg(&self.dir)
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!("lab down failed:\n{}", text(&out));
            }
        }
    }
}

/// ICMP echo from a pod, retried while routes converge.
fn pings(from_ns: &str, to: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let ok = Command::new("ip")
            .args(["netns", "exec", from_ns, "ping", "-c", "1", "-W", "1", to])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_pods_on_one_node_reach_each_other() {
    need_root!();
    let lab = Lab::up("one");
    let node = lab.node(1);
    let mut namespaces = Namespaces::new();
    let a = namespaces.add(&format!("{}-pod1", node.ns));
    let b = namespaces.add(&format!("{}-pod2", node.ns));
    let addr_a = node.add("a", &a).expect_ok().address();
    let addr_b = node.add("b", &b).expect_ok().address();
    assert!(
        pings(&a, &addr_b, Duration::from_secs(20)),
        "{a} cannot reach {addr_b}"
    );
    assert!(
        pings(&b, &addr_a, Duration::from_secs(20)),
        "{b} cannot reach {addr_a}"
    );
}

#[test]
fn pods_on_nodes_in_different_subnets_reach_each_other() {
    need_root!();
    let lab = Lab::up("two");
    let (n1, n2) = (lab.node(1), lab.node(2));
    let mut namespaces = Namespaces::new();
    let a = namespaces.add(&format!("{}-pod1", n1.ns));
    let b = namespaces.add(&format!("{}-pod1", n2.ns));
    let addr_a = n1.add("a", &a).expect_ok().address();
    let addr_b = n2.add("b", &b).expect_ok().address();
    // The agents see the new blocks, originate them over BGP and route them over VXLAN.
    assert!(
        pings(&a, &addr_b, Duration::from_secs(30)),
        "{a} cannot reach {addr_b}"
    );
    assert!(
        pings(&b, &addr_a, Duration::from_secs(30)),
        "{b} cannot reach {addr_a}"
    );
}

#[test]
fn with_an_agent_on_the_node_add_and_del_go_through_its_api() {
    need_root!();
    let lab = Lab::up("api");
    let node = lab.node(1);
    let mut namespaces = Namespaces::new();
    let pod = namespaces.add(&format!("{}-pod1", node.ns));
    let addr = node.add("viaapi", &pod).expect_ok().address();
    let log = lab.agent_log(1);
    assert!(
        log.contains("pod addresses assigned over the API")
            && log.contains("k8s-pod-network.viaapi"),
        "the agent did not assign it:\n{log}"
    );
    node.del("viaapi", Some(&pod)).expect_ok();
    let log = lab.agent_log(1);
    assert!(
        log.contains("pod addresses released over the API") && log.contains(&addr),
        "the agent did not release it:\n{log}"
    );
}

#[test]
fn with_no_agent_on_the_socket_add_uses_the_datastore() {
    need_root!();
    let mut s = Standalone::new("noagent", "198.19.22.0/24", 26);
    let pod = s.pod(1);
    let mut conf = s.node.conf.clone();
    conf["apiSocket"] = json!(s.data.with_file_name("nobody.sock"));
    let r = s.node.run("ADD", "c1", Some(&pod), &conf).expect_ok();
    assert!(r.address().starts_with("198.19.22."));
    assert!(s.allocated_handles().contains(&handle("c1")));
}

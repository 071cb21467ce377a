//! Helpers of `tests/cni.rs`: namespaces and directories with guards, the plugin run as a
//! runtime runs it (`ip netns exec NODE tortie-cni` with the CNI environment, or `tortie` for
//! a configuration of `type: tortie`), a node without
//! agents (a namespace and an embedded store holding one pool), a `tortie lab` of two nodes,
//! etcd inside a namespace, and ICMP from a pod.

#![allow(dead_code)]

#[path = "../../ipam/tests/etcd_support/mod.rs"]
mod etcd_support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const EXE: &str = env!("CARGO_BIN_EXE_tortie");

/// The file names a runtime executes from `CNI_PATH` for `type: tortie-cni` and `type: tortie`.
pub const PLUGIN: &str = "tortie-cni";
pub const PLAIN: &str = "tortie";

/// One lab at a time: each runs agents, and the machine is small.
pub static LABS: Mutex<()> = Mutex::new(());

pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ip(args: &[&str]) -> Result<String, String> {
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
pub struct Namespaces(pub Vec<String>);

impl Namespaces {
    pub fn new() -> Namespaces {
        Namespaces(Vec::new())
    }

    pub fn add(&mut self, name: &str) -> String {
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
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
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

/// The binary as `tortie-cni` and as `tortie`, in a CNI_PATH directory of its own.
pub fn plugin_dir(tmp: &Path) -> PathBuf {
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    for name in [PLUGIN, PLAIN] {
        std::os::unix::fs::symlink(EXE, bin.join(name))
            .unwrap_or_else(|e| panic!("symlink {name}: {e}"));
    }
    bin
}

/// Loads Calico YAML into a datastore with the real CLI (inside `netns` when given).
pub fn apply(yaml: &str, tmp: &Path, store: &[&str], netns: Option<&str>) {
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

pub fn pool_yaml(name: &str, cidr: &str, block: u8) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: {name}}}\nspec: {{cidr: {cidr}, blockSize: {block}, vxlanMode: CrossSubnet}}\n"
    )
}

/// What one plugin run printed.
pub struct Run {
    pub out: Output,
    pub json: Value,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.out.status.success()
    }

    pub fn code(&self) -> Option<u64> {
        self.json.get("code").and_then(Value::as_u64)
    }

    pub fn address(&self) -> String {
        self.json["ips"][0]["address"]
            .as_str()
            .unwrap_or_else(|| panic!("no address in the result:\n{}", text(&self.out)))
            .trim_end_matches("/32")
            .to_string()
    }

    pub fn expect_ok(self) -> Run {
        assert!(self.ok(), "the plugin failed:\n{}", text(&self.out));
        self
    }

    pub fn expect_error(self, code: u64) -> Run {
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

/// A node the plugin runs on: its namespace, its datastore, its network configuration, and
/// the file name in `bin` the plugin is run as ([`PLUGIN`] or [`PLAIN`]).
pub struct Node {
    pub ns: String,
    pub bin: PathBuf,
    pub conf: Value,
    pub plugin: &'static str,
}

impl Node {
    /// Runs the plugin in the node's namespace; `vars` are (name, value), `None` values unset.
    pub fn run_with(&self, vars: &[(&str, Option<&str>)], stdin: &[u8]) -> Run {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns])
            .arg(self.bin.join(self.plugin))
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
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.plugin));
        if let Some(mut pipe) = child.stdin.take() {
            use std::io::Write as _;
            pipe.write_all(stdin).expect("write stdin");
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait {}: {e}", self.plugin));
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        Run { out, json }
    }

    pub fn env<'a>(
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

    pub fn run(&self, command: &str, id: &str, pod_ns: Option<&str>, conf: &Value) -> Run {
        let netns = pod_ns.map(|n| format!("/run/netns/{n}"));
        self.run_with(
            &self.env(command, id, netns.as_deref()),
            &serde_json::to_vec(conf).expect("conf"),
        )
    }

    pub fn add(&self, id: &str, pod_ns: &str) -> Run {
        self.run("ADD", id, Some(pod_ns), &self.conf)
    }

    pub fn del(&self, id: &str, pod_ns: Option<&str>) -> Run {
        self.run("DEL", id, pod_ns, &self.conf)
    }

    pub fn check(&self, id: &str, pod_ns: &str, prev: &Value) -> Run {
        let mut conf = self.conf.clone();
        conf["prevResult"] = prev.clone();
        self.run("CHECK", id, Some(pod_ns), &conf)
    }

    /// The node's links other than `lo`.
    pub fn links(&self) -> Vec<String> {
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
    pub fn pod_routes(&self) -> Vec<String> {
        ip(&["-n", &self.ns, "route", "show", "root", "198.19.0.0/16"])
            .expect("ip route")
            .lines()
            .filter(|l| !l.starts_with("blackhole") && !l.contains(" via "))
            .map(str::to_string)
            .collect()
    }
}

/// A node with an embedded store holding one pool, and no agent.
pub struct Standalone {
    pub node: Node,
    pub data: PathBuf,
    pub namespaces: Namespaces,
    pub _tmp: TempDir,
}

impl Standalone {
    pub fn new(tag: &str, pool_cidr: &str, block: u8) -> Standalone {
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
                plugin: PLUGIN,
            },
            data,
            namespaces,
            _tmp: tmp,
        }
    }

    pub fn pod(&mut self, i: u32) -> String {
        let name = format!("{}-pod{i}", self.node.ns);
        self.namespaces.add(&name)
    }

    /// Every IPAM key of the store: blocks and handles.
    pub fn ipam_keys(&self) -> Vec<String> {
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

    pub fn store(&self) -> Value {
        match std::fs::read(self.data.join("tortie.db")) {
            Ok(b) => serde_json::from_slice(&b).expect("tortie.db is JSON"),
            Err(_) => Value::Null,
        }
    }

    /// The handles that hold addresses in the store's blocks.
    pub fn allocated_handles(&self) -> BTreeSet<String> {
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
pub fn collect_handles(v: &Value, out: &mut BTreeSet<String>) {
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

pub fn handle(id: &str) -> String {
    format!("k8s-pod-network.{id}")
}

pub fn assert_nothing_created(s: &Standalone) {
    assert!(s.node.links().is_empty(), "{:?}", s.node.links());
    assert!(s.ipam_keys().is_empty(), "{:?}", s.ipam_keys());
}

/// Runs the binary under the plugin's name without a link: `argv[0]` is what counts.
pub trait Arg0Plugin {
    fn arg0_plugin(&mut self) -> &mut Self;
}

impl Arg0Plugin for Command {
    fn arg0_plugin(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt as _;
        self.arg0("tortie-cni")
    }
}

/// A throwaway etcd started from a thread inside namespace `ns`, so that it listens on that
/// namespace's 127.0.0.1, where the plugin (run in the node's namespace) reaches it. The
/// thread lives as long as this guard: etcd is tied to it (PR_SET_PDEATHSIG).
pub struct EtcdIn {
    pub endpoint: String,
    pub stop: Option<std::sync::mpsc::Sender<()>>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl EtcdIn {
    pub fn start(ns: &str) -> EtcdIn {
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

/// A `tortie lab` of two nodes (one per subnet) without pods; `lab down` on drop.
pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    pub _tmp: TempDir,
    pub _serial: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    pub fn up(tag: &str) -> Lab {
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

    pub fn node(&self, n: u32) -> Node {
        let bin = self.dir.join("cni-test-bin");
        if !bin.join(PLUGIN).exists() {
            std::fs::create_dir_all(&bin).unwrap();
            std::os::unix::fs::symlink(EXE, bin.join(PLUGIN)).unwrap();
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
            plugin: PLUGIN,
        }
    }

    pub fn agent_log(&self, n: u32) -> String {
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
pub fn pings(from_ns: &str, to: &str, within: Duration) -> bool {
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

//! `tortie lab` end to end: the real binary builds real labs (network namespaces, bridges,
//! agents with the kernel dataplane, BIRD as ToR, pods wired as Calico's CNI plugin does) and
//! takes them down again. Each test's lab has its own name and directory, and a guard runs
//! `lab down` when the test ends, also on panic.
//!
//! Labs are built one at a time (a lock): each runs several agents, and the machine is small.
//! The refusals (no IPIP, no BIRD, an existing lab) need no lab and run alongside.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

const EXE: &str = env!("CARGO_BIN_EXE_tortie");

/// One lab at a time.
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

/// A lab of this test: `lab down` on drop, and its temp dir removed.
struct Lab {
    name: String,
    dir: PathBuf,
    tmp: PathBuf,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let name = format!("t{tag}-{}", std::process::id());
        let tmp = std::env::temp_dir().join(format!("tortie-lab-test-{name}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("temp dir");
        Lab {
            dir: tmp.join("lab"),
            name,
            tmp,
        }
    }

    fn cmd(&self, sub: &str) -> Command {
        let mut c = Command::new(EXE);
        c.args(["lab", sub, "--name", &self.name, "--dir"])
            .arg(&self.dir);
        c
    }

    fn run(mut c: Command) -> Output {
        c.output().expect("run tortie")
    }

    fn up(&self, extra: &[&str]) -> Output {
        let mut c = self.cmd("up");
        c.args(["--timeout", "100"]).args(extra);
        Lab::run(c)
    }

    fn down(&self) -> Output {
        Lab::run(self.cmd("down"))
    }

    fn status(&self) -> Value {
        let mut c = self.cmd("status");
        c.arg("--json");
        let out = Lab::run(c);
        assert!(out.status.success(), "lab status failed:\n{}", text(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON: {e}\n{}", text(&out)))
    }

    /// Namespaces whose name starts with this lab's prefix.
    fn namespaces(&self) -> Vec<String> {
        let prefix = format!("{}-", self.name);
        std::fs::read_dir("/run/netns")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn router(&self) -> String {
        format!("{}-router", self.name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.down();
        if !out.status.success() {
            eprintln!("lab down in the guard failed:\n{}", text(&out));
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_up(out: &Output) {
    assert!(out.status.success(), "lab up failed:\n{}", text(out));
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LABS.lock().unwrap_or_else(|p| p.into_inner())
}

fn pid_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        })
        .unwrap_or(false)
}

/// Every pair in the status answered, and there are n * (n - 1) of them.
fn assert_all_pods_reach_each_other(status: &Value, pods: usize) {
    let pairs = status["reachability"].as_array().expect("reachability");
    assert_eq!(pairs.len(), pods * (pods - 1), "{status:#}");
    let failed: Vec<&Value> = pairs.iter().filter(|p| p["ok"] != true).collect();
    assert!(failed.is_empty(), "unreachable pairs: {failed:?}");
    assert_eq!(status["all_reachable"], true);
}

/// The peers (node names, or "router") of a node's Established sessions.
fn established_peers(status: &Value, node: &str) -> Vec<String> {
    let nodes = status["nodes"].as_array().expect("nodes");
    let n = nodes
        .iter()
        .find(|n| n["name"] == node)
        .unwrap_or_else(|| panic!("no node {node} in {status:#}"));
    let mut out: Vec<String> = n["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|s| s["state"] == "Established")
        .map(|s| s["peer"].as_str().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn up_with_four_nodes_over_vxlan_makes_every_pod_reach_every_other() {
    need_root!();
    let _one = lock();
    let lab = Lab::new("mesh");
    let out = lab.up(&["--nodes", "4"]);
    assert_up(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The matrix printed by `up`: a row per pod with an `ok` for each other pod.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("node4-pod2"))
        .unwrap_or_else(|| panic!("no matrix row in:\n{stdout}"));
    assert_eq!(
        row.split_whitespace().filter(|c| *c == "ok").count(),
        7,
        "{row}"
    );

    let status = lab.status();
    assert_all_pods_reach_each_other(&status, 8);
    assert_eq!(status["spec"]["encap"], "vxlan");
    for n in status["nodes"].as_array().unwrap() {
        assert_eq!(n["agent"]["alive"], true, "{n:#}");
        let name = n["name"].as_str().unwrap();
        assert_eq!(established_peers(&status, name).len(), 3, "{n:#}");
    }
}

#[test]
fn down_stops_every_process_and_leaves_no_namespace_or_directory() {
    need_root!();
    let _one = lock();
    let lab = Lab::new("down");
    assert_up(&lab.up(&["--nodes", "2", "--pods", "1"]));
    let status = lab.status();
    let pids: Vec<i64> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["agent"]["pid"].as_i64())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| pid_alive(p)));
    assert_eq!(lab.namespaces().len(), 1 + 2 + 2);

    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lab.namespaces(), Vec::<String>::new());
    assert!(
        pids.iter().all(|&p| !pid_alive(p)),
        "an agent survived: {pids:?}"
    );
    assert!(!lab.dir.exists());
}

#[test]
fn down_of_a_lab_that_does_not_exist_succeeds_and_does_nothing() {
    need_root!();
    let lab = Lab::new("nolab");
    let out = lab.down();
    assert!(out.status.success(), "{}", text(&out));
    assert!(lab.namespaces().is_empty());
}

#[test]
fn route_reflector_lab_peers_every_node_with_node1_only() {
    need_root!();
    let _one = lock();
    let lab = Lab::new("rr");
    assert_up(&lab.up(&["--nodes", "4", "--route-reflector"]));
    let status = lab.status();
    assert_eq!(
        established_peers(&status, "node1"),
        ["node2", "node3", "node4"]
    );
    for client in ["node2", "node3", "node4"] {
        assert_eq!(established_peers(&status, client), ["node1"], "{client}");
    }
    assert_all_pods_reach_each_other(&status, 8);
}

#[test]
fn tor_bird_lab_without_encapsulation_routes_pods_through_the_routers_bgp_routes() {
    need_root!();
    if Command::new("bird").arg("--version").output().is_err() {
        eprintln!("skipped: no BIRD installed");
        return;
    }
    let _one = lock();
    let lab = Lab::new("tor");
    assert_up(&lab.up(&["--nodes", "4", "--tor", "bird", "--encap", "none"]));
    let status = lab.status();
    assert_eq!(status["router"]["bird"]["alive"], true, "{status:#}");
    for node in ["node1", "node2", "node3", "node4"] {
        assert_eq!(established_peers(&status, node), ["router"], "{node}");
    }
    assert_all_pods_reach_each_other(&status, 8);
    // Without encapsulation the router forwards pod traffic by what BIRD learned: every
    // node's block is in its kernel table, from BIRD.
    let routes = Command::new("ip")
        .args(["-n", &lab.router(), "route", "show", "proto", "bird"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    for pod in status["pods"].as_array().unwrap() {
        let block = pod["block"].as_str().unwrap();
        assert!(
            routes.contains(block),
            "no route for {block} in the router:\n{routes}"
        );
    }
}

#[test]
fn up_refuses_a_lab_whose_namespaces_exist_and_leaves_them_alone() {
    need_root!();
    let lab = Lab::new("exists");
    let ns = lab.router();
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let out = lab.up(&["--nodes", "1"]);
    let still_there = Path::new("/run/netns").join(&ns).exists();
    let _ = Command::new("ip").args(["netns", "delete", &ns]).status();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists") && stderr.contains(&ns),
        "{stderr}"
    );
    assert!(still_there);
    assert!(!lab.dir.exists());
}

#[test]
fn ipip_on_a_kernel_without_ipip_is_refused_and_creates_nothing() {
    need_root!();
    if Path::new("/sys/module/ipip").exists() {
        eprintln!("skipped: this kernel has IPIP");
        return;
    }
    let lab = Lab::new("ipip");
    let out = lab.up(&["--nodes", "2", "--encap", "ipip"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--encap ipip: this kernel has no IPIP support"),
        "{stderr}"
    );
    assert!(lab.namespaces().is_empty(), "{:?}", lab.namespaces());
    assert!(!lab.dir.exists());
}

#[test]
fn tor_bird_without_bird_installed_is_refused_and_creates_nothing() {
    need_root!();
    let lab = Lab::new("nobird");
    // A PATH with iproute2 only.
    let bin = lab.tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("iproute2");
    std::os::unix::fs::symlink(ip, bin.join("ip")).unwrap();
    let mut c = lab.cmd("up");
    c.args(["--nodes", "2", "--tor", "bird"]).env("PATH", &bin);
    let out = Lab::run(c);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--tor bird needs BIRD 2: apt-get install bird2"),
        "{stderr}"
    );
    assert!(lab.namespaces().is_empty());
    assert!(!lab.dir.exists());
}

#[test]
fn encapsulation_none_without_a_tor_is_refused() {
    need_root!();
    let lab = Lab::new("none");
    let out = lab.up(&["--encap", "none"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--encap none needs --tor bird"), "{stderr}");
    assert!(lab.namespaces().is_empty());
}

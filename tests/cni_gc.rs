//! `tortie-cni` GC (CNI 1.1) end to end: the real binary run as `tortie-cni` in a node's
//! namespace with `CNI_COMMAND=GC` and the runtime's `cni.dev/valid-attachments` on stdin,
//! after real ADDs into real pod namespaces. What GC released or left is read back from the
//! real store through the IPAM library (and through `tortie ipam` on a lab's agent); links
//! from the node's namespace.
//!
//! One test runs on a `tortie lab` node (an agent answers on the node, so GC releases through
//! its API, and the pods left must still reach each other across the lab); the others need no
//! agent: a node is a namespace and a data directory. Guards remove every namespace, lab and
//! directory, also when a test fails.

mod cni_support;

use cni_support::*;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::{Allocator, EncapMode, IpamConfig, Pool, TunnelType};

macro_rules! need_root {
    () => {
        if !root() {
            eprintln!("skipped: network namespaces need root");
            return;
        }
    };
}

/// The node's IPIP tunnel address handle, as Calico names it.
const TUNNEL_HANDLE: &str = "ipip-tunnel-addr-node1";

/// The network configuration of a GC: the node's, in CNI 1.1.0, with the runtime's list.
fn gc_conf(node: &Node, valid: &[&str]) -> Value {
    let mut conf = node.conf.clone();
    conf["cniVersion"] = json!("1.1.0");
    conf["cni.dev/valid-attachments"] = valid
        .iter()
        .map(|id| json!({"containerID": id, "ifname": "eth0"}))
        .collect();
    conf
}

/// Runs GC with the environment a runtime gives it (no container: only the command and the
/// plugin path).
fn gc_with(node: &Node, conf: &Value) -> Run {
    node.run_with(
        &[("CNI_COMMAND", Some("GC")), ("CNI_PATH", node.bin.to_str())],
        &serde_json::to_vec(conf).expect("conf"),
    )
}

fn gc(node: &Node, valid: &[&str]) -> Run {
    gc_with(node, &gc_conf(node, valid))
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The allocator of the embedded store in `data` (the one the plugin and the agents use).
async fn allocator(data: &Path) -> Allocator {
    let store = EmbeddedStore::open(EmbeddedConfig::new(data))
        .await
        .expect("open the embedded store");
    Allocator::new(Arc::new(store), IpamConfig::default())
}

/// The addresses `handle` holds in the store, read through the IPAM library.
fn held(data: &Path, handle: &str) -> Vec<IpAddr> {
    block_on(async {
        let a = allocator(data).await;
        a.addresses(handle)
            .await
            .expect("read the handle")
            .into_iter()
            .map(|x| x.addr)
            .collect()
    })
}

/// Gives `node` an IPIP tunnel address from `cidr` (what an agent with IPIP pools holds).
fn add_tunnel_address(data: &Path, node: &str, cidr: &str) -> IpAddr {
    block_on(async {
        let a = allocator(data).await;
        let mut pool = Pool::new("pool1", cidr.parse().expect("cidr")).with_block_size(26);
        pool.ipip_mode = EncapMode::Always;
        a.allocate_tunnel(node, TunnelType::Ipip, &[pool])
            .await
            .expect("allocate a tunnel address")
            .addr
    })
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// The host side the ADD result names.
fn host_side(r: &Run) -> String {
    r.json["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no host interface in the result:\n{}", text(&r.out)))
        .to_string()
}

/// Addresses in use in the cluster, as `tortie ipam --json` on an agent reports them.
fn in_use(socket: &Path) -> u64 {
    let out = Command::new(EXE)
        .args(["ipam", "--json", "--api-socket"])
        .arg(socket)
        .output()
        .expect("run tortie ipam");
    assert!(out.status.success(), "tortie ipam:\n{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("tortie ipam --json");
    v["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["inUse"].as_u64())
        .sum()
}

#[test]
fn gc_through_the_agent_collects_the_pod_not_listed_and_the_listed_pods_keep_their_addresses_and_reach()
 {
    need_root!();
    let lab = Lab::up("gc");
    let (n1, n2) = (lab.node(1), lab.node(2));
    let data = lab.dir.join("data");
    let socket = lab.dir.join("node1").join("api.sock");
    let mut namespaces = Namespaces::new();
    let (pa, pb, pc) = (
        namespaces.add(&format!("{}-gca", n1.ns)),
        namespaces.add(&format!("{}-gcb", n1.ns)),
        namespaces.add(&format!("{}-gcc", n1.ns)),
    );
    let pd = namespaces.add(&format!("{}-gcd", n2.ns));
    let addr_a = n1.add("gca", &pa).expect_ok().address();
    let addr_b = n1.add("gcb", &pb).expect_ok().address();
    let c = n1.add("gcc", &pc).expect_ok();
    let (addr_c, link_c) = (c.address(), host_side(&c));
    let addr_d = n2.add("gcd", &pd).expect_ok().address();
    let tunnel = add_tunnel_address(&data, "node1", "198.19.0.0/16");
    let before = in_use(&socket);

    let r = gc(&n1, &["gca", "gcb"]).expect_ok();
    assert!(r.out.stdout.is_empty(), "GC printed:\n{}", text(&r.out));

    assert!(
        held(&data, &handle("gcc")).is_empty(),
        "gcc still holds an address"
    );
    assert_eq!(in_use(&socket), before - 1);
    assert!(!n1.links().contains(&link_c), "{link_c} is still on node1");
    assert!(
        !n1.pod_routes()
            .iter()
            .any(|r| r.starts_with(&format!("{addr_c} "))),
        "{:?}",
        n1.pod_routes()
    );
    assert_eq!(held(&data, &handle("gca")), [addr(&addr_a)]);
    assert_eq!(held(&data, &handle("gcb")), [addr(&addr_b)]);
    assert_eq!(held(&data, &handle("gcd")), [addr(&addr_d)]);
    assert_eq!(held(&data, TUNNEL_HANDLE), [tunnel]);
    let log = lab.agent_log(1);
    assert!(
        log.contains("pod addresses released over the API") && log.contains(&addr_c),
        "the agent did not release {addr_c}:\n{log}"
    );
    assert!(
        pings(&pa, &addr_b, Duration::from_secs(20)),
        "{pa} cannot reach {addr_b}"
    );
    assert!(
        pings(&pb, &addr_d, Duration::from_secs(30)),
        "{pb} cannot reach {addr_d} on node2"
    );
}

#[test]
fn gc_on_the_datastore_removes_the_link_and_address_of_every_pod_not_listed() {
    need_root!();
    let mut s = Standalone::new("gcds", "198.19.23.0/24", 26);
    let (p1, p2, p3) = (s.pod(1), s.pod(2), s.pod(3));
    let keep = s.node.add("c1", &p1).expect_ok();
    let gone2 = host_side(&s.node.add("c2", &p2).expect_ok());
    let gone3 = host_side(&s.node.add("c3", &p3).expect_ok());
    let r = gc(&s.node, &["c1"]).expect_ok();
    assert!(r.out.stdout.is_empty(), "GC printed:\n{}", text(&r.out));
    assert_eq!(s.node.links(), [host_side(&keep)]);
    assert!(!s.node.links().contains(&gone2) && !s.node.links().contains(&gone3));
    assert_eq!(
        s.allocated_handles().into_iter().collect::<Vec<_>>(),
        [handle("c1")]
    );
    assert!(
        !s.ipam_keys()
            .iter()
            .any(|k| k.ends_with(".c2") || k.ends_with(".c3")),
        "{:?}",
        s.ipam_keys()
    );
    assert_eq!(held(&s.data, &handle("c1")), [addr(&keep.address())]);
}

#[test]
fn gc_leaves_the_nodes_tunnel_address_alone() {
    need_root!();
    let s = Standalone::new("gctun", "198.19.24.0/24", 26);
    let tunnel = add_tunnel_address(&s.data, "node1", "198.19.24.0/24");
    gc(&s.node, &[]).expect_ok();
    assert_eq!(held(&s.data, TUNNEL_HANDLE), [tunnel]);
}

#[test]
fn gc_leaves_another_nodes_pods_alone() {
    need_root!();
    let mut s = Standalone::new("gcother", "198.19.25.0/24", 26);
    let (mine, theirs) = (s.pod(1), s.pod(2));
    s.node.add("mine", &mine).expect_ok();
    let mut node2 = s.node.conf.clone();
    node2["nodename"] = json!("node2");
    let other = s
        .node
        .run("ADD", "theirs", Some(&theirs), &node2)
        .expect_ok();
    gc(&s.node, &[]).expect_ok();
    assert!(held(&s.data, &handle("mine")).is_empty());
    assert_eq!(held(&s.data, &handle("theirs")), [addr(&other.address())]);
    assert_eq!(s.node.links(), [host_side(&other)]);
}

#[test]
fn gc_succeeds_when_the_stale_pods_link_went_with_its_namespace() {
    need_root!();
    let mut s = Standalone::new("gcnons", "198.19.26.0/24", 26);
    let pod = s.pod(1);
    s.node.add("c1", &pod).expect_ok();
    // Deleting the pod's namespace deletes its veth pair (the kernel does it a moment
    // later), as a node reboot would.
    ip(&["netns", "del", &pod]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s.node.links().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.node.links().is_empty(), "{:?}", s.node.links());
    gc(&s.node, &[]).expect_ok();
    assert!(
        s.allocated_handles().is_empty(),
        "{:?}",
        s.allocated_handles()
    );
}

#[test]
fn gc_with_every_pod_listed_changes_nothing() {
    need_root!();
    let mut s = Standalone::new("gcall", "198.19.27.0/24", 26);
    let (p1, p2) = (s.pod(1), s.pod(2));
    s.node.add("c1", &p1).expect_ok();
    s.node.add("c2", &p2).expect_ok();
    let (store, links) = (s.store(), s.node.links());
    gc(&s.node, &["c1", "c2"]).expect_ok();
    assert_eq!(s.store(), store);
    assert_eq!(s.node.links(), links);
}

#[test]
fn gc_with_a_malformed_valid_attachments_list_is_the_specs_error_and_changes_nothing() {
    need_root!();
    let mut s = Standalone::new("gcbad", "198.19.28.0/24", 26);
    let (p1, p2) = (s.pod(1), s.pod(2));
    s.node.add("c1", &p1).expect_ok();
    s.node.add("c2", &p2).expect_ok();
    let (store, links) = (s.store(), s.node.links());
    let malformed = [
        (json!("c1"), 6, "expected an array"),
        (json!({"containerID": "c1"}), 6, "expected an array"),
        (
            json!([{"containerID": "c1", "ifname": "eth0"}, "c2"]),
            6,
            "[1]",
        ),
        (json!([{"ifname": "eth0"}]), 6, "containerID is missing"),
        (
            json!([{"containerID": 1, "ifname": "eth0"}]),
            6,
            "containerID",
        ),
        (json!([{"containerID": "c1"}]), 6, "ifname is missing"),
        (
            json!([{"containerID": "../c1", "ifname": "eth0"}]),
            7,
            "../c1",
        ),
        (json!([{"containerID": "c1", "ifname": "a/b"}]), 7, "a/b"),
    ];
    for (list, code, names) in malformed {
        let mut conf = gc_conf(&s.node, &[]);
        conf["cni.dev/valid-attachments"] = list.clone();
        let r = gc_with(&s.node, &conf).expect_error(code);
        assert_eq!(r.json["cniVersion"], "1.1.0", "{}", text(&r.out));
        let details = r.json["details"].as_str().unwrap_or_default();
        assert!(
            details.contains("cni.dev/valid-attachments") && details.contains(names),
            "{list}: {details}"
        );
        assert_eq!(s.store(), store, "{list} changed the store");
        assert_eq!(s.node.links(), links, "{list} changed the links");
    }
}

#[test]
fn gc_without_a_valid_attachments_list_is_code_7_and_releases_nothing() {
    need_root!();
    let mut s = Standalone::new("gcnone", "198.19.29.0/24", 26);
    let pod = s.pod(1);
    s.node.add("c1", &pod).expect_ok();
    let (store, links) = (s.store(), s.node.links());
    let mut conf = s.node.conf.clone();
    conf["cniVersion"] = json!("1.1.0");
    let r = gc_with(&s.node, &conf).expect_error(7);
    assert!(
        r.json["details"]
            .as_str()
            .is_some_and(|d| d.contains("cni.dev/valid-attachments is missing")),
        "{}",
        text(&r.out)
    );
    assert_eq!(s.store(), store);
    assert_eq!(s.node.links(), links);
}

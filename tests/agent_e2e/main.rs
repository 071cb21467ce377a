//! The agent end to end: real `tortie agent` processes in network namespaces, programming
//! their kernels from a shared datastore, with pods (namespaces with addresses from tortie's
//! IPAM) pinging each other with the real `ping`. The topology is in [`cluster`].

#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

mod cluster;
mod etcd;
mod lifecycle;

use cluster::{BIN, Cluster, base_yaml, sh, wait_for};
use std::process::Command;
use std::time::Duration;
use tortie_ipam::Pool;

fn pool(name: &str, cidr: &str) -> Vec<Pool> {
    vec![Pool::new(name, cidr.parse().expect("pool CIDR")).with_block_size(26)]
}

/// node-1 (subnet A), node-2 (B), node-3 (A), mesh, VXLAN CrossSubnet, a pod on each.
fn three_node_mesh(test: &str) -> (Cluster, Vec<std::net::IpAddr>) {
    let mut c = Cluster::new(test, 3, None);
    c.apply(&base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        true,
    ));
    c.start_all();
    let pools = pool("pool-1", "198.19.0.0/17");
    let addrs = (1..=3)
        .map(|i| c.add_pod(&format!("node-{i}"), &format!("pod-{i}"), &pools))
        .collect();
    (c, addrs)
}

fn block_of(c: &Cluster, pod: &str) -> String {
    c.pod(pod).alloc.block.to_string()
}

#[test]
fn a_mesh_across_two_subnets_routes_direct_in_a_subnet_and_over_vxlan_across() {
    let (c, addrs) = three_node_mesh("mesh");
    let same = c.wait_route("node-1", &block_of(&c, "pod-3"));
    assert!(
        same.contains("via 198.18.1.13 dev eth0"),
        "same subnet goes direct: {same}"
    );
    let across = c.wait_route("node-1", &block_of(&c, "pod-2"));
    assert!(
        across.contains("via 198.18.2.12 dev vxlan.tortie"),
        "another subnet goes over VXLAN: {across}"
    );
    c.wait_all_routes();
    let own = c
        .node("node-1")
        .ns
        .ip_ok(&["route", "show", "type", "blackhole", "proto", "116"]);
    assert!(
        own.contains(&block_of(&c, "pod-1")),
        "own block is a blackhole: {own}"
    );
    for from in 1..=3 {
        for (to, addr) in addrs.iter().enumerate() {
            if to + 1 == from {
                continue;
            }
            assert!(
                c.reaches(&format!("pod-{from}"), *addr, Duration::from_secs(10)),
                "pod-{from} -> pod-{} ({addr}) unreachable\n{}{}",
                to + 1,
                c.dump(&format!("node-{from}")),
                c.dump(&format!("node-{}", to + 1))
            );
        }
    }
}

#[test]
fn a_removed_node_leaves_every_other_fib() {
    let (c, _) = three_node_mesh("rmnode");
    let gone = block_of(&c, "pod-3");
    c.wait_route("node-1", &gone);
    c.wait_route("node-2", &gone);
    // The node goes away as a drained node does: its agent stops (with graceful restart, so
    // its peers would keep its routes for the restart time), then its Node is deleted.
    let pid = c.node("node-3").agent.expect("agent");
    c.node("node-3")
        .ns
        .signal(pid, libc::SIGTERM)
        .expect("SIGTERM");
    c.delete("node", "node-3");
    c.wait_no_route("node-1", &gone);
    c.wait_no_route("node-2", &gone);
}

#[test]
fn a_pool_applied_at_run_time_is_routed_with_its_encapsulation() {
    let mut c = Cluster::new("newpool", 3, None);
    c.apply(&base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        true,
    ));
    c.start_all();
    c.add_pod("node-1", "pod-1", &pool("pool-1", "198.19.0.0/17"));
    c.apply(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-2}\nspec: {cidr: 198.19.128.0/17, blockSize: 26, vxlanMode: Always}\n",
    );
    let p2 = c.add_pod("node-3", "pod-b", &pool("pool-2", "198.19.128.0/17"));
    c.wait_all_routes();
    // node-3 shares node-1's subnet: only the new pool's `Always` puts it on VXLAN. (The
    // block's route may come before the agent has read the pool; it then moves.)
    let block = block_of(&c, "pod-b");
    wait_for(
        "pool-2's block over VXLAN on node-1",
        Duration::from_secs(30),
        || {
            c.route_to("node-1", &block)
                .filter(|r| r.contains("dev vxlan.tortie"))
        },
        || format!("{}\n{}", c.tortie_routes("node-1"), c.log_tail("node-1")),
    );
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> pod-b unreachable\n{}{}",
        c.dump("node-1"),
        c.dump("node-3")
    );
}

#[test]
fn a_bgp_peer_applied_at_run_time_opens_its_session_and_deleting_it_closes_it() {
    let mut c = Cluster::new("newpeer", 2, None);
    c.apply(&base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        false,
    ));
    c.start_all();
    let pools = pool("pool-1", "198.19.0.0/17");
    c.add_pod("node-1", "pod-1", &pools);
    let p2 = c.add_pod("node-2", "pod-2", &pools);
    let block = block_of(&c, "pod-2");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.route_to("node-1", &block),
        None,
        "no mesh, no peer: no route"
    );
    c.apply(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: all-nodes}\nspec: {nodeSelector: all(), peerSelector: all()}\n",
    );
    c.wait_all_routes();
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> pod-2 through the new peering\n{}{}",
        c.dump("node-1"),
        c.dump("node-2")
    );
    c.delete("bgppeer", "all-nodes");
    c.wait_no_route("node-1", &block);
}

#[test]
fn an_agent_killed_and_restarted_during_a_ping_flood_loses_no_packet() {
    let mut c = Cluster::new("kill9", 2, None);
    c.apply(&base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        true,
    ));
    c.start_all();
    let pools = pool("pool-1", "198.19.0.0/17");
    c.add_pod("node-1", "pod-1", &pools);
    let p2 = c.add_pod("node-2", "pod-2", &pools);
    c.wait_all_routes();
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> pod-2 before the kill\n{}{}",
        c.dump("node-1"),
        c.dump("node-2")
    );
    let (tx, rx) = c.ping("pod-1", p2, 3, "0.2");
    assert_eq!(rx, tx, "the path works before the kill");

    // 2,000 echoes 5 ms apart: 10 s of traffic across the kill and the restart.
    let flood = cluster::ping_flood(c.pod("pod-1"), p2, 2000, "0.005");
    std::thread::sleep(Duration::from_millis(1500));
    c.kill_agent("node-1");
    std::thread::sleep(Duration::from_millis(1000));
    c.start_agent("node-1");
    let out = flood.join().expect("the ping thread");
    let (tx, rx) = cluster::parse_ping(&out).expect("ping summary");
    assert_eq!(tx, 2000, "{out}");
    assert_eq!(rx, tx, "packets lost across kill -9 and restart: {out}");
    // The restarted agent found its routes in the kernel and wrote nothing.
    let log = c.restarted_first_sync("node-1");
    assert!(log.contains("ops=0"), "a restart rewrites nothing: {log}");
}

#[test]
fn an_invalid_configuration_stops_the_agent_with_the_field_path() {
    let dir = support::TempDir::new("badcfg");
    let f = dir.join("bad.yaml");
    std::fs::write(
        &f,
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\nspec:\n  bgp:\n    ipv4Address: 198.18.1.11/24\n    asNumber: not-a-number\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["agent", "--node", "n1", "--dataplane", "none", "--config"])
        .arg(&f)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--api-socket")
        .arg(dir.join("api.sock"))
        .output()
        .expect("run the agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("spec.bgp.asNumber"), "{err}");
    assert!(!dir.join("api.sock").exists(), "nothing was started");
}

#[test]
fn an_invalid_document_is_refused_by_apply_with_the_field_path_and_nothing_is_stored() {
    let c = Cluster::new("badapply", 1, None);
    let f = c.dir.join("bad.yaml");
    std::fs::write(
        &f,
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 198.19.0.0/16, blockSize: 40}\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .arg("apply")
        .arg("-f")
        .arg(&f)
        .args(c.store.args())
        .output()
        .expect("run apply");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("spec.blockSize"), "{err}");
    let listed = sh(c
        .cli()
        .args(["get", "ippools", "-o", "yaml"])
        .args(c.store.args()));
    assert!(!listed.contains("198.19.0.0/16"), "{listed}");
}

#[test]
fn a_dedicated_route_reflector_with_no_dataplane_reflects_between_nodes() {
    let mut c = Cluster::new("rrrole", 2, None);
    // The reflector lives in the router namespace, on subnet A's gateway address, which both
    // subnets reach; the nodes peer only with it.
    let mut yaml = base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        false,
    );
    yaml.push_str(
        "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: rr-1, labels: {route-reflector: \"true\"}}\n\
         spec: {bgp: {ipv4Address: 198.18.1.1/24, routeReflectorClusterID: 244.0.0.1}}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: peer-with-rr}\n\
         spec: {nodeSelector: all(), peerSelector: route-reflector == 'true'}\n",
    );
    c.apply(&yaml);
    let sock = c.dir.join("api-rr/tortie.sock");
    let state = c.dir.join("state-rr");
    let mut args: Vec<String> = [
        BIN,
        "agent",
        "--node",
        "rr-1",
        "--role",
        "route-reflector",
        "--dataplane",
        "none",
        "--hold-time",
        "9",
        "--connect-retry",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--api-socket".into(), sock.display().to_string()]);
    args.extend(["--state-dir".into(), state.display().to_string()]);
    args.extend(c.store.args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    c.router.spawn("agent-rr", &refs);
    c.start_all();
    let pools = pool("pool-1", "198.19.0.0/17");
    c.add_pod("node-1", "pod-1", &pools);
    let p2 = c.add_pod("node-2", "pod-2", &pools);
    c.wait_all_routes();
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> pod-2 through the reflector\n{}{}",
        c.dump("node-1"),
        c.dump("node-2")
    );
    // The reflector programs nothing: no tortie route in its namespace.
    let routes = c.router.ip_ok(&["route", "show", "proto", "116"]);
    assert!(
        routes.trim().is_empty(),
        "the reflector wrote routes: {routes}"
    );
    // The nodes peer with the reflector only.
    let status = sh(Command::new(BIN)
        .args(["status", "--json", "--api-socket"])
        .arg(c.dir.join("api-node-1/tortie.sock")));
    let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let peers: Vec<&str> = v["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .filter_map(|p| p["address"].as_str())
        .collect();
    assert_eq!(peers, ["198.18.1.1"], "{status}");
}

//! The agent's life in a running cluster: a graceful stop and restart under traffic, a stop
//! that withdraws, a node that joins late, a BGPFilter changed under a live session, and a pod
//! whose address is borrowed from another node's block.

use crate::cluster::{Cluster, base_yaml, node_yaml, ping_flood, wait_for};
use crate::{block_of, pool};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tortie_ipam::Pool;

/// Two nodes in different subnets (so VXLAN between them), mesh on, a pod on each; node-1's
/// agent gets `node1_flags`. Returns the pods' addresses once both FIBs have the other's block.
fn two_nodes(test: &str, node1_flags: &[&str]) -> (Cluster, IpAddr, IpAddr) {
    let mut c = Cluster::new(test, 2, None);
    c.apply(&base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        true,
    ));
    c.start_agent_with("node-1", node1_flags);
    c.start_agent("node-2");
    let pools = pool("pool-1", "198.19.0.0/17");
    let p1 = c.add_pod("node-1", "pod-1", &pools);
    let p2 = c.add_pod("node-2", "pod-2", &pools);
    c.wait_all_routes();
    (c, p1, p2)
}

/// One peer of a node's agent, by address, from `tortie peers --json`.
fn peer(c: &Cluster, node: &str, address: &str) -> serde_json::Value {
    let all = c.peers_json(node);
    all["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == address))
        .cloned()
        .unwrap_or_else(|| panic!("{node} has no peer {address}: {all}"))
}

/// What says whether a session was reset: when it was last established, and how often.
fn session_identity(c: &Cluster, node: &str, address: &str) -> (String, u64) {
    let p = peer(c, node, address);
    assert_eq!(p["bgpState"], "Established", "{node} -> {address}: {p}");
    let since = p["since"].as_str().map(str::to_string);
    let transitions = p["counters"]["establishedTransitions"].as_u64();
    match (since, transitions) {
        (Some(s), Some(t)) => (s, t),
        _ => panic!("{node} -> {address}: no since or establishedTransitions: {p}"),
    }
}

#[test]
fn an_agent_stopped_with_sigterm_and_restarted_during_a_ping_flood_loses_no_packet() {
    let (mut c, _, p2) = two_nodes("sigterm", &[]);
    let (tx, rx) = c.ping("pod-1", p2, 3, "0.2");
    assert_eq!(rx, tx, "the path works before the stop");
    let block1 = block_of(&c, "pod-1");

    // 2,000 echoes 5 ms apart: 10 s of traffic across the stop and the restart.
    let flood = ping_flood(c.pod("pod-1"), p2, 2000, "0.005");
    std::thread::sleep(Duration::from_millis(1500));
    c.stop_agent("node-1");
    let log = std::fs::read_to_string(c.agent_log("node-1")).unwrap_or_default();
    assert!(
        log.contains("stopping for a restart"),
        "SIGTERM takes the graceful-restart path:\n{}",
        c.log_tail("node-1")
    );
    // node-2 saw the session go, and keeps node-1's routes meanwhile (stale, for the
    // restart time).
    wait_for(
        "node-2 to see its session with node-1 go down",
        Duration::from_secs(5),
        || (peer(&c, "node-2", "198.18.1.11")["bgpState"] != "Established").then_some(()),
        || format!("{}\n{}", c.peers_json("node-2"), c.log_tail("node-2")),
    );
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(1) {
        assert!(
            c.route_to("node-2", &block1).is_some(),
            "node-2 dropped node-1's block while node-1 restarts\n{}",
            c.dump("node-2")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.start_agent("node-1");

    let out = flood.join().expect("the ping thread");
    let (tx, rx) = crate::cluster::parse_ping(&out).expect("ping summary");
    assert_eq!(tx, 2000, "{out}");
    assert_eq!(rx, tx, "packets lost across SIGTERM and restart: {out}");
    // The restarted agent found its routes in the kernel and wrote nothing.
    let first_sync = c.restarted_first_sync("node-1");
    assert!(
        first_sync.contains("ops=0"),
        "a restart rewrites nothing: {first_sync}"
    );
}

#[test]
fn with_withdraw_on_stop_a_sigterm_withdraws_the_routes_at_once() {
    let (mut c, _, _) = two_nodes("wdstop", &["--withdraw-on-stop"]);
    let block1 = block_of(&c, "pod-1");
    c.stop_agent("node-1");
    // Without the flag node-2 would keep the block for the 120 s restart time.
    wait_for(
        "node-2 to drop node-1's block",
        Duration::from_secs(10),
        || c.route_to("node-2", &block1).is_none().then_some(()),
        || format!("{}\n{}", c.tortie_routes("node-2"), c.log_tail("node-2")),
    );
}

#[test]
fn a_node_added_at_run_time_joins_the_mesh() {
    let mut c = Cluster::new("joins", 3, None);
    let nodes = c.node_list();
    c.apply(&base_yaml(
        &nodes[..2],
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        true,
    ));
    c.start_agent("node-1");
    c.start_agent("node-2");
    let pools = pool("pool-1", "198.19.0.0/17");
    let p1 = c.add_pod("node-1", "pod-1", &pools);
    c.add_pod("node-2", "pod-2", &pools);
    c.wait_route("node-1", &block_of(&c, "pod-2"));
    c.wait_route("node-2", &block_of(&c, "pod-1"));

    let (name, addr) = &nodes[2];
    c.apply(&node_yaml(name, *addr));
    c.start_agent("node-3");
    c.add_pod("node-3", "pod-3", &pools);
    let block3 = block_of(&c, "pod-3");
    let same = c.wait_route("node-1", &block3);
    assert!(
        same.contains("via 198.18.1.13 dev eth0"),
        "node-3 shares node-1's subnet: {same}"
    );
    let across = c.wait_route("node-2", &block3);
    assert!(
        across.contains("via 198.18.1.13 dev vxlan.tortie"),
        "node-2 reaches node-3 over VXLAN: {across}"
    );
    c.wait_route("node-3", &block_of(&c, "pod-1"));
    c.wait_route("node-3", &block_of(&c, "pod-2"));
    assert!(
        c.reaches("pod-3", p1, Duration::from_secs(10)),
        "pod-3 -> pod-1 unreachable\n{}{}",
        c.dump("node-3"),
        c.dump("node-1")
    );
}

#[test]
fn a_filter_applied_at_run_time_withdraws_what_it_rejects_without_resetting_the_session() {
    // Filters attach to BGPPeers (mesh sessions have none): an explicit all-to-all peering.
    let mut c = Cluster::new("filter", 2, None);
    let mut yaml = base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        false,
    );
    let peering = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: all-nodes}\n\
                   spec: {nodeSelector: all(), peerSelector: all()}\n";
    yaml.push_str("---\n");
    yaml.push_str(peering);
    c.apply(&yaml);
    c.start_all();
    let pools = pool("pool-1", "198.19.0.0/17");
    c.add_pod("node-1", "pod-1", &pools);
    c.add_pod("node-2", "pod-2", &pools);
    c.wait_all_routes();
    let (block1, block2) = (block_of(&c, "pod-1"), block_of(&c, "pod-2"));
    let before = session_identity(&c, "node-1", "198.18.2.12");

    c.apply(&format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: no-block-2}}\n\
         spec: {{importV4: [{{action: Reject, cidr: {block2}, matchOperator: Equal}}]}}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: all-nodes}}\n\
         spec: {{nodeSelector: all(), peerSelector: all(), filters: [no-block-2]}}\n"
    ));
    c.wait_no_route("node-1", &block2);
    assert!(
        c.route_to("node-2", &block1).is_some(),
        "the filter rejects only node-2's block\n{}",
        c.dump("node-2")
    );
    assert_eq!(
        session_identity(&c, "node-1", "198.18.2.12"),
        before,
        "the filter reset the session"
    );

    c.apply(peering);
    c.wait_route("node-1", &block2);
    assert_eq!(
        session_identity(&c, "node-1", "198.18.2.12"),
        before,
        "removing the filter reset the session"
    );
}

#[test]
fn a_pod_address_borrowed_from_another_nodes_block_is_advertised_and_reachable() {
    // A pool one block wide: node-1's first pod takes the only block.
    let mut c = Cluster::new("borrow", 2, None);
    c.apply(&base_yaml(
        &c.node_list(),
        "198.19.0.0/26",
        "vxlanMode: CrossSubnet",
        true,
    ));
    c.start_all();
    let pools =
        vec![Pool::new("pool-1", "198.19.0.0/26".parse().expect("pool CIDR")).with_block_size(26)];
    c.add_pod("node-1", "pod-1", &pools);
    let p2 = c.add_pod("node-2", "pod-2", &pools);
    let block = block_of(&c, "pod-1");
    let alloc = &c.pod("pod-2").alloc;
    assert!(
        alloc.borrowed && alloc.block.to_string() == block,
        "pod-2 borrows from node-1's block: {alloc:?}"
    );

    // node-1 routes the single address to node-2, beside its own blackhole for the block.
    let host = c.wait_route("node-1", &p2.to_string());
    assert!(
        host.contains("via 198.18.2.12 dev vxlan.tortie"),
        "the borrowed /32 goes to node-2: {host}"
    );
    let blackholes =
        c.node("node-1")
            .ns
            .ip_ok(&["route", "show", "type", "blackhole", "proto", "116"]);
    assert!(
        blackholes.contains(&block),
        "node-1 keeps its blackhole for the block: {blackholes}"
    );
    c.wait_route("node-2", &block);
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> borrowed pod-2 ({p2}) unreachable\n{}{}",
        c.dump("node-1"),
        c.dump("node-2")
    );
}

#[test]
fn routes_carry_the_protocol_number_the_agent_is_given() {
    let mut c = Cluster::new("rtproto", 2, None);
    c.apply(&base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        true,
    ));
    c.start_agent_with("node-1", &["--route-protocol", "117"]);
    c.start_agent("node-2");
    let pools = pool("pool-1", "198.19.0.0/17");
    c.add_pod("node-1", "pod-1", &pools);
    let p2 = c.add_pod("node-2", "pod-2", &pools);
    let block = block_of(&c, "pod-2");
    let ns = &c.node("node-1").ns;
    let line = wait_for(
        "node-1's route to pod-2's block with proto 117",
        Duration::from_secs(40),
        || {
            ns.ip(&["route", "show", "proto", "117"])
                .ok()?
                .lines()
                .find(|l| l.split_whitespace().next() == Some(block.as_str()))
                .map(str::to_string)
        },
        || c.log_tail("node-1"),
    );
    assert!(line.contains("dev vxlan.tortie"), "{line}");
    assert_eq!(
        c.tortie_routes("node-1"),
        "",
        "nothing of node-1's agent carries the default 116"
    );
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> pod-2\n{}",
        c.dump("node-1")
    );
}

#[test]
fn a_route_deleted_by_hand_is_put_back_long_before_the_periodic_repair() {
    let (c, _p1, p2) = two_nodes("handdel", &[]);
    let block = block_of(&c, "pod-2");
    let ns = &c.node("node-1").ns;
    ns.ip(&["route", "del", &block, "proto", "116"])
        .expect("delete tortie's route by hand");
    assert_eq!(c.route_to("node-1", &block), None, "deleted");
    // The periodic repair runs every 60 s: back within 20 s means the kernel's route event
    // brought it back.
    let back = wait_for(
        "the deleted route put back",
        Duration::from_secs(20),
        || c.route_to("node-1", &block),
        || c.log_tail("node-1"),
    );
    assert!(back.contains("dev vxlan.tortie"), "{back}");
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> pod-2 after the repair"
    );
}

#[test]
fn an_import_set_priority_becomes_the_kernel_routes_metric() {
    let mut c = Cluster::new("prio", 2, None);
    let mut yaml = base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        false,
    );
    yaml.push_str(
        "---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: prefer}\n\
         spec: {importV4: [{action: Accept, operations: [{setPriority: {value: 512}}]}]}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: all-nodes}\n\
         spec: {nodeSelector: all(), peerSelector: all(), filters: [prefer]}\n",
    );
    c.apply(&yaml);
    c.start_all();
    let pools = pool("pool-1", "198.19.0.0/17");
    c.add_pod("node-1", "pod-1", &pools);
    let p2 = c.add_pod("node-2", "pod-2", &pools);
    let route = c.wait_route("node-1", &block_of(&c, "pod-2"));
    assert!(route.contains("metric 512"), "{route}");
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> pod-2 over the route with metric 512"
    );
}

#[test]
fn an_underlay_mtu_change_reaches_the_tunnel_device_without_a_restart() {
    let (c, _p1, _p2) = two_nodes("mtuchg", &[]);
    let ns = &c.node("node-1").ns;
    let vxlan_mtu = |want: &'static str| {
        move || {
            ns.ip(&["link", "show", "vxlan.tortie"])
                .ok()
                .filter(|l| l.contains(want))
        }
    };
    wait_for(
        "vxlan.tortie at 1500 - 50",
        Duration::from_secs(10),
        vxlan_mtu("mtu 1450 "),
        || c.log_tail("node-1"),
    );
    ns.ip(&["link", "set", "eth0", "mtu", "1400"])
        .expect("lower the underlay's MTU");
    wait_for(
        "vxlan.tortie at 1400 - 50",
        Duration::from_secs(20),
        vxlan_mtu("mtu 1350 "),
        || c.log_tail("node-1"),
    );
}

/// Each block `tortie ipam --json` of `node`'s agent lists, with its node ("" for none).
fn blocks(c: &Cluster, node: &str) -> Vec<(String, String)> {
    let out = crate::cluster::sh(
        std::process::Command::new(crate::cluster::BIN)
            .args(["ipam", "--json", "--api-socket"])
            .arg(c.api_socket(node)),
    );
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ipam JSON: {e}\n{out}"));
    let pools = v["pools"].as_array().cloned().unwrap_or_default();
    pools
        .iter()
        .chain(std::iter::once(&v["orphanBlocks"]))
        .flat_map(|p| {
            p["blockList"]
                .as_array()
                .or(p.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .map(|b| {
            (
                b["cidr"].as_str().unwrap_or_default().to_string(),
                b["node"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn with_ipam_gc_what_a_deleted_node_held_is_released() {
    let mut c = Cluster::new("ipamgc", 2, None);
    c.apply(&base_yaml(
        &c.node_list(),
        "198.19.0.0/17",
        "vxlanMode: CrossSubnet",
        true,
    ));
    c.start_agent_with("node-1", &["--ipam-gc", "--ipam-gc-grace", "1"]);
    c.start_agent("node-2");
    let pools = pool("pool-1", "198.19.0.0/17");
    c.add_pod("node-1", "pod-1", &pools);
    c.add_pod("node-2", "pod-2", &pools);
    let gone = block_of(&c, "pod-2");
    let kept = block_of(&c, "pod-1");
    assert!(
        blocks(&c, "node-1").contains(&(gone.clone(), "node-2".into())),
        "{:?}",
        blocks(&c, "node-1")
    );
    // node-2 leaves the cluster: its agent stops and its Node is deleted.
    c.stop_agent("node-2");
    c.delete("node", "node-2");
    let left = wait_for(
        "node-2's block released",
        Duration::from_secs(30),
        || {
            let b = blocks(&c, "node-1");
            (!b.iter().any(|(_, n)| n == "node-2")).then_some(b)
        },
        || c.log_tail("node-1"),
    );
    assert!(
        left.contains(&(kept.clone(), "node-1".into())),
        "node-1's own block stays: {left:?}"
    );
    assert!(
        std::fs::read_to_string(c.agent_log("node-1"))
            .unwrap_or_default()
            .contains("IPAM GC: reclaimed what deleted nodes held"),
        "{}",
        c.log_tail("node-1")
    );
}

//! The overlays run whole, as a cluster would run them (see [`crate::pod`]): an operator's
//! overlay that sets etcd's address, every pod's init containers then its agent, on nodes that
//! are network namespaces sharing a LAN with the operator's etcd. What is checked is what an
//! operator would look at: `tortie status` on each node's API socket, the kubelet's probe, and
//! pods (added through the installed CNI plugin, see [`crate::runtime`]) pinging each other.

use crate::cluster::{Lan, Node, peers, peers_up, probe, status};
use crate::manifests::{Rendered, at, pod_spec};
use crate::pod::Pod;
use crate::runtime::add_pod;
use crate::support::try_wait_until;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(60);

/// The port of the workload's readiness probe.
fn readiness_port(r: &Rendered, kind: &str, name: &str) -> u16 {
    let c = &pod_spec(r.find(kind, name))["containers"][0];
    at(c, &["readinessProbe", "httpGet", "port"])
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("{name}: no numeric readiness probe port"))
}

/// Waits until the node's sessions up are exactly `want`, and its readiness probe passes.
fn wait_ready(node: &Node, pods: &mut [Pod], want: &[String], port: u16) {
    let r = try_wait_until(SETTLE, Duration::from_millis(500), || {
        for p in pods.iter_mut() {
            p.check_running()?;
        }
        let s = status(node)?;
        let (all, up) = (peers(&s), peers_up(&s));
        if up != want || all != want {
            return Err(format!(
                "{}: peers {all:?}, up {up:?}; want {want:?}",
                node.name
            ));
        }
        probe(node, port, "/readyz").map_err(|e| format!("{}: /readyz: {e}", node.name))
    });
    if let Err(last) = r {
        let logs: String = pods
            .iter()
            .map(|p| {
                let log = p.log_path("tortie-node");
                let rr = p.log_path("tortie-route-reflector");
                format!(
                    "{}{}",
                    crate::support::tail(&log, 15),
                    crate::support::tail(&rr, 15)
                )
            })
            .collect();
        panic!("not ready after {SETTLE:?}: {last}\n{logs}");
    }
}

#[test]
fn the_mesh_overlay_brings_every_node_into_a_ready_mesh_whose_pods_reach_each_other() {
    let lan = Lan::new("mesh", &["node-a", "node-b"]);
    lan.start_etcd();
    let r = Rendered::operator_overlay("mesh", &lan.endpoint(), &lan.dir.join("overlay"));
    let ds = r.find("DaemonSet", "tortie-node");
    let mut pods = Vec::new();
    for i in 0..lan.nodes.len() {
        let pod = Pod::new(
            &r,
            ds,
            &lan.host(i),
            &lan.secrets(),
            &lan.dir.join(format!("pod-{i}")),
        );
        pod.run_init_containers();
        pods.push(pod);
    }
    for p in &mut pods {
        p.start();
    }
    let port = readiness_port(&r, "DaemonSet", "tortie-node");
    for (i, node) in lan.nodes.iter().enumerate() {
        let others: Vec<String> = lan
            .nodes
            .iter()
            .filter(|n| n.name != node.name)
            .map(|n| n.ip.to_string())
            .collect();
        wait_ready(node, &mut pods[i..=i], &others, port);
        // Registered by its own pod, with the prefix of its interface.
        let stored = lan
            .stored_node(&node.name)
            .expect("the node registered itself");
        assert_eq!(
            stored["spec"]["bgp"]["ipv4Address"],
            format!("{}/24", node.ip).as_str(),
            "{stored}"
        );
    }
    // A pod on each node through the plugin and conflist install-cni left on the host; each
    // node's block reaches the other over BGP.
    let a = add_pod(&lan.nodes[0], "pa");
    let b = add_pod(&lan.nodes[1], "pb");
    let reached = try_wait_until(SETTLE, Duration::from_millis(500), || {
        for p in &mut pods {
            p.check_running()?;
        }
        for (from, to) in [(&a, &b), (&b, &a)] {
            let dst = to.ip.to_string();
            from.ns
                .exec(&["ping", "-c", "1", "-W", "1", &dst])
                .map_err(|e| format!("{} -> {dst}: {e}", from.ip))?;
        }
        Ok(())
    });
    if let Err(last) = reached {
        let routes: String = lan
            .nodes
            .iter()
            .map(|n| {
                let socket = n.root.join("run/tortie/tortie.sock");
                let routes = std::process::Command::new(crate::manifests::BIN)
                    .args(["routes", "--api-socket"])
                    .arg(&socket)
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let kernel = n.ns.ip(&["route"]).unwrap_or_default();
                format!("{}: kernel:\n{kernel}tortie routes:\n{routes}\n", n.name)
            })
            .collect();
        panic!("pods do not reach each other after {SETTLE:?}: {last}\n{routes}");
    }
}

#[test]
fn the_route_reflector_overlay_peers_every_node_with_both_reflectors_only() {
    let lan = Lan::new("rr", &["node-a", "node-b", "rr-1", "rr-2"]);
    lan.start_etcd();
    let r =
        Rendered::operator_overlay("route-reflector", &lan.endpoint(), &lan.dir.join("overlay"));
    let ds = r.find("DaemonSet", "tortie-node");
    let rr = r.find("Deployment", "tortie-route-reflector");
    let mut pods = Vec::new();
    for i in 0..lan.nodes.len() {
        let workload = if lan.nodes[i].name.starts_with("rr-") {
            rr
        } else {
            ds
        };
        let pod = Pod::new(
            &r,
            workload,
            &lan.host(i),
            &lan.secrets(),
            &lan.dir.join(format!("pod-{i}")),
        );
        pod.run_init_containers();
        pods.push(pod);
    }
    for p in &mut pods {
        p.start();
    }
    let mut reflectors: Vec<String> = lan.nodes[2..].iter().map(|n| n.ip.to_string()).collect();
    reflectors.sort();
    let node_port = readiness_port(&r, "DaemonSet", "tortie-node");
    let rr_port = readiness_port(&r, "Deployment", "tortie-route-reflector");
    // Nodes: a session to each reflector and none to each other (no mesh).
    for i in 0..2 {
        wait_ready(&lan.nodes[i], &mut pods[i..=i], &reflectors, node_port);
    }
    // Each reflector (with NET_BIND_SERVICE only): both nodes and the other reflector (the
    // BGPPeer selects every node, reflectors included; their shared cluster id keeps what they
    // reflect to each other from looping).
    for j in 2..4 {
        let mut expected: Vec<String> = lan.nodes[..2].iter().map(|n| n.ip.to_string()).collect();
        expected.push(lan.nodes[5 - j].ip.to_string());
        expected.sort();
        wait_ready(&lan.nodes[j], &mut pods[j..=j], &expected, rr_port);
    }
    for rr in ["rr-1", "rr-2"] {
        let stored = lan
            .stored_node(rr)
            .unwrap_or_else(|| panic!("{rr} registered itself"));
        assert_eq!(
            stored["metadata"]["labels"]["route-reflector"], "true",
            "{stored}"
        );
        assert!(
            stored["spec"]["bgp"]["routeReflectorClusterID"].is_string(),
            "{stored}"
        );
    }
}

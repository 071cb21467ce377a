//! Agents in etcd mode: etcd runs inside the router namespace (on subnet A's gateway
//! address), so the agents reach it over the test's own underlay, and the test's CLI and IPAM
//! calls enter that namespace.

use crate::cluster::{Cluster, Datastore, base_yaml, wait_for};
use crate::pool;
use std::time::Duration;

/// Starts etcd in the router namespace on 198.18.1.1:2379; returns its endpoint.
fn start_etcd(c: &Cluster) -> String {
    let data = c.dir.join("etcd");
    let ep = "http://198.18.1.1:2379".to_string();
    let data_s = data.display().to_string();
    c.router.spawn(
        "etcd",
        &[
            "etcd",
            "--name",
            "e2e",
            "--data-dir",
            &data_s,
            "--listen-client-urls",
            &ep,
            "--advertise-client-urls",
            &ep,
            "--listen-peer-urls",
            "http://198.18.1.1:2380",
            "--initial-advertise-peer-urls",
            "http://198.18.1.1:2380",
            "--initial-cluster",
            "e2e=http://198.18.1.1:2380",
        ],
    );
    wait_for(
        "etcd to answer",
        Duration::from_secs(20),
        || {
            c.router
                .exec(&["etcdctl", "--endpoints", &ep, "endpoint", "health"])
                .ok()
                .map(|_| ())
        },
        || std::fs::read_to_string(c.router.log_path("etcd")).unwrap_or_default(),
    );
    ep
}

#[test]
fn two_agents_in_etcd_mode_learn_each_other_from_the_datastore() {
    let mut c = Cluster::new("etcd2", 2, None);
    let ep = start_etcd(&c);
    c.store = Datastore::Etcd(ep);
    c.store_ns = Some(c.router.name().to_string());
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
    let r = c.wait_route("node-1", &c.pod("pod-2").alloc.block.to_string());
    assert!(r.contains("vxlan.tortie"), "{r}");
    assert!(
        c.reaches("pod-1", p2, Duration::from_secs(10)),
        "pod-1 -> pod-2\n{}{}",
        c.dump("node-1"),
        c.dump("node-2")
    );
    // Both registered their liveness with a lease.
    let live = c
        .router
        .exec(&[
            "etcdctl",
            "--endpoints",
            "http://198.18.1.1:2379",
            "get",
            "--prefix",
            "--keys-only",
            "/tortie/v1/liveness/",
        ])
        .expect("etcdctl get");
    assert!(live.contains("node-1") && live.contains("node-2"), "{live}");
}

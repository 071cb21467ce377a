//! Tests that run inside the qemu VM (Debian's stock kernel, which has the ipip module this machine's
//! kernel lacks). `tests/vm.rs` boots one VM with `tools/vmrun/vmrun.sh` and runs this binary in it with
//! `VMTEST_IN_VM=1 --test-threads=1`; anywhere else every test returns at once with a note.
//!
//! Run by hand: `cargo test -p tortie-felix --test vm` (all of them, in the VM), or
//! `VMTEST_IN_VM=1 tools/vmrun/vmrun.sh target/debug/deps/vm_inner-HASH --test-threads=1 NAME`.
//!
//! Here: the harness itself (the kernel, its modules, the namespace topology of `topo.rs`, and IPIP with
//! hand-written routes as a baseline), and in `felix_ipip.rs` IPIP with felix installing the routes
//! (Always, CrossSubnet) and setting up tunl0, driven with desired state by `felix_topo.rs`.

mod felix_ipip;
mod felix_topo;
mod topo;

use std::net::Ipv4Addr;
use topo::{Netns, Topology};

/// True inside the VM; elsewhere prints why the test does nothing.
fn in_vm(test: &str) -> bool {
    if std::env::var("VMTEST_IN_VM").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "{test}: runs only inside the VM (VMTEST_IN_VM=1); `cargo test -p tortie-felix --test vm` boots it"
    );
    false
}

fn ok<T>(r: topo::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ipip_module_loaded_and_tunl0_in_a_fresh_netns() {
    if !in_vm("ipip_module_loaded_and_tunl0_in_a_fresh_netns") {
        return;
    }
    assert!(
        std::path::Path::new("/sys/module/ipip").exists(),
        "the ipip module is not loaded (VMRUN_LOAD)"
    );
    let ns = ok(Netns::new(&format!("{}-fresh", topo::unique_prefix())));
    // ipip.ko creates the fallback device in every namespace (net.core.fb_tunnels_only_for_init_net=0).
    let link = ok(ns.ip(&["-d", "link", "show", "dev", "tunl0"]));
    assert!(
        link.contains("link/ipip"),
        "tunl0 is not an ipip device:\n{link}"
    );
    assert!(
        link.contains("ipip any remote any local any"),
        "tunl0 is not the fallback device:\n{link}"
    );
    ok(ns.ip(&["link", "set", "tunl0", "up"]));
    ok(ns.ip(&["addr", "add", "198.19.200.1/32", "dev", "tunl0"]));
    let stats = ok(ns.link_stats("tunl0"));
    assert_eq!(
        stats,
        topo::LinkStats {
            tx_packets: 0,
            rx_packets: 0
        }
    );
}

#[test]
fn kernel_loads_modules_on_demand() {
    if !in_vm("kernel_loads_modules_on_demand") {
        return;
    }
    // Neither dummy nor bridge is in VMRUN_LOAD: the kernel's request_module() must find them.
    let ns = ok(Netns::new(&format!("{}-autoload", topo::unique_prefix())));
    ok(ns.ip(&["link", "add", "d0", "type", "dummy"]));
    ok(ns.ip(&["link", "add", "br0", "type", "bridge"]));
    assert!(ns.has_link("d0") && ns.has_link("br0"));
    assert!(std::path::Path::new("/sys/module/dummy").exists());
}

#[test]
fn topology_cleans_up_its_namespaces() {
    if !in_vm("topology_cleans_up_its_namespaces") {
        return;
    }
    let names: Vec<String>;
    {
        let t = ok(Topology::four_nodes());
        names = std::iter::once(t.router.name().to_string())
            .chain(t.nodes.iter().map(|n| n.ns.name().to_string()))
            .chain(t.pods.iter().map(|p| p.ns.name().to_string()))
            .collect();
        assert_eq!(names.len(), 9);
        let list = ok(topo::ip(&["netns", "list"]));
        for n in &names {
            assert!(
                list.contains(n.as_str()),
                "{n} missing from `ip netns list`:\n{list}"
            );
        }
    }
    let list = ok(topo::ip(&["netns", "list"]));
    for n in &names {
        assert!(!list.contains(n.as_str()), "{n} left behind:\n{list}");
    }
    // Also when a test panics: the guards delete their namespaces while it unwinds.
    let prefix = topo::unique_prefix();
    let names = [format!("{prefix}-a"), format!("{prefix}-b")];
    let r = std::panic::catch_unwind(|| {
        let _ns = Netns::new_many(&names).unwrap();
        assert!(std::path::Path::new(&format!("/run/netns/{prefix}-a")).exists());
        // Unwind as a failed assertion does, without the panic hook's message and backtrace.
        std::panic::resume_unwind(Box::new("expected"));
    });
    assert!(r.is_err());
    let list = ok(topo::ip(&["netns", "list"]));
    assert!(
        !list.contains(&format!("{prefix}-")),
        "namespaces of {prefix} left behind after a panic:\n{list}"
    );
}

/// CrossSubnet by hand: same-subnet blocks via the node on eth0 (host-gw), the other subnet's blocks
/// `via <node> dev tunl0 onlink`. The router knows no pod route, so a cross-subnet ping only works
/// encapsulated; the tunl0 counters count exactly the cross-subnet packets, and none of the same-subnet ones.
#[test]
fn pods_ping_across_subnets_over_tunl0() {
    if !in_vm("pods_ping_across_subnets_over_tunl0") {
        return;
    }
    let t = ok(Topology::four_nodes());
    for (i, node) in t.nodes.iter().enumerate() {
        let tunnel_addr = Ipv4Addr::from(u32::from(node.block.0) + 1);
        let mut cmds = vec![
            "link set tunl0 up".to_string(),
            format!("addr add {tunnel_addr}/32 dev tunl0"),
        ];
        for (j, other) in t.nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            if node.same_subnet(other) {
                cmds.push(format!(
                    "route add {} via {} dev {}",
                    other.block_str(),
                    other.addr,
                    node.dev
                ));
            } else {
                cmds.push(format!(
                    "route add {} via {} dev tunl0 onlink",
                    other.block_str(),
                    other.addr
                ));
            }
        }
        ok(node.ns.ip_batch(&cmds));
    }
    let routes = ok(t.nodes[0].ns.ip(&["route", "show"]));
    assert!(
        routes.contains("198.19.3.0/26 via 198.18.2.13 dev tunl0 onlink"),
        "node1 routes:\n{routes}"
    );

    let tunl0 = |n: usize| ok(t.nodes[n].ns.link_stats("tunl0"));
    let before: Vec<_> = (0..4).map(tunl0).collect();

    // Same subnet: pod1 <-> pod2, pod3 <-> pod4: plain routing, tunl0 untouched.
    const N: u64 = 3;
    ok(t.pods[0].ns.ping(t.pods[1].addr, N as u32));
    ok(t.pods[3].ns.ping(t.pods[2].addr, N as u32));
    let after_same: Vec<_> = (0..4).map(tunl0).collect();
    assert_eq!(before, after_same, "same-subnet traffic went through tunl0");

    // Across the subnets: every pod of subnet A pings every pod of subnet B and the other way round.
    // Each such ping is N requests + N replies; per node: 2 peers x 2 directions x N out, the same in.
    for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
        ok(t.pods[a].ns.ping(t.pods[b].addr, N as u32));
        ok(t.pods[b].ns.ping(t.pods[a].addr, N as u32));
    }
    for (n, &prev) in after_same.iter().enumerate() {
        let d = tunl0(n) - prev;
        eprintln!(
            "node{} tunl0: tx {} rx {}",
            n + 1,
            d.tx_packets,
            d.rx_packets
        );
        assert_eq!(
            d,
            topo::LinkStats {
                tx_packets: 4 * N,
                rx_packets: 4 * N
            },
            "node{} tunl0 counters",
            n + 1
        );
    }

    // The router cannot carry pod packets itself: the pings above crossed it encapsulated.
    let err = t
        .router
        .ip(&["route", "get", "198.19.3.2"])
        .expect_err("the router has a route to a pod");
    assert!(err.contains("unreachable"), "{err}");
}

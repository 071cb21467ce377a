//! `tortie-cni` end to end: the real binary, linked as `tortie-cni` (or as `tortie`, for
//! `type: tortie`) in a temp dir and run with the CNI environment inside a node's network
//! namespace (`ip netns exec`), as a runtime runs it; pods are real namespaces; the datastore is a real embedded store (or a real etcd), with
//! the pools loaded by the real `tortie apply`.
//!
//! Traffic tests use a `tortie lab` cluster (agents, BGP, VXLAN across subnets) with no pods
//! of its own, and create the pods through the plugin. The other tests need no agents: a node
//! is a namespace and a data directory. Every namespace, lab and directory has a guard that
//! removes it, also when a test fails.

mod cni_support;

use cni_support::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

macro_rules! need_root {
    () => {
        if !root() {
            eprintln!("skipped: network namespaces need root");
            return;
        }
    };
}

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
fn version_through_the_plain_binary_with_no_arguments_answers_as_the_plugin() {
    let out = Command::new(EXE)
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not the plugin's JSON ({e}):\n{}", text(&out)));
    assert_eq!(v["supportedVersions"], json!(["1.0.0", "1.1.0"]));
}

#[test]
fn the_plain_binary_with_no_arguments_and_no_cni_command_is_the_cli() {
    let out = Command::new(EXE)
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Usage: tortie"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_plain_binary_with_arguments_is_the_cli_even_with_cni_command_set() {
    let out = Command::new(EXE)
        .arg("--version")
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with("tortie ") && !printed.contains("supportedVersions"),
        "{}",
        text(&out)
    );
}

#[test]
fn add_through_a_cni_path_entry_named_tortie_with_type_tortie_wires_the_pod() {
    need_root!();
    let mut s = Standalone::new("plain", "198.19.30.0/24", 26);
    s.node.plugin = PLAIN;
    s.node.conf["type"] = json!("tortie");
    let pod = s.pod(1);
    let r = s.node.add("c1", &pod).expect_ok();
    let addr = r.address();
    assert!(addr.starts_with("198.19.30."), "{addr}");
    let routes = ip(&["-n", &pod, "route", "show", "default"]).unwrap();
    assert!(routes.contains("via 169.254.1.1 dev eth0"), "{routes}");
    assert_eq!(s.node.links().len(), 1, "{:?}", s.node.links());
    assert!(s.allocated_handles().contains(&handle("c1")));
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
        plugin: PLUGIN,
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

#[test]
fn with_mtu_auto_the_pod_gets_the_agents_underlay_mtu_less_the_tunnel() {
    need_root!();
    let lab = Lab::up("mtu");
    let node = lab.node(1);
    // The host's default route now leaves through another device, with a smaller MTU: what
    // the plugin would measure on its own. The agent's dataplane routes through eth0 (1500).
    let ns = node.ns.clone();
    for args in [
        &[
            "link", "add", "dflt0", "mtu", "1300", "type", "veth", "peer", "name", "dflt1",
        ][..],
        &["link", "set", "dflt0", "up"][..],
        &["route", "replace", "default", "dev", "dflt0"][..],
    ] {
        ip(&[&["-n", &ns][..], args].concat()).unwrap();
    }
    let mut namespaces = Namespaces::new();
    let pod = namespaces.add(&format!("{ns}-pod1"));
    node.add("mtu", &pod).expect_ok();
    let link = ip(&["-n", &pod, "link", "show", "eth0"]).unwrap();
    assert!(link.contains("mtu 1450"), "1500 less VXLAN's 50: {link}");
}

#[test]
fn a_dual_stack_add_gives_both_addresses_host_routes_of_protocol_boot_and_both_defaults() {
    need_root!();
    let mut s = Standalone::new("dual", "198.19.23.0/24", 26);
    apply(
        &pool_yaml("pool6", "2001:db8:19::/112", 122),
        s.data.parent().unwrap(),
        &["--data-dir", s.data.to_str().unwrap()],
        None,
    );
    let pod = s.pod(1);
    let mut conf = s.node.conf.clone();
    conf["ipam"] = json!({"assign_ipv4": true, "assign_ipv6": true});
    let r = s.node.run("ADD", "c1", Some(&pod), &conf).expect_ok();
    let ips: Vec<String> = r.json["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(ips[0].starts_with("198.19.23."), "{ips:?}");
    assert!(ips[1].starts_with("2001:db8:19::"), "{ips:?}");
    let v6 = ips[1].split('/').next().unwrap().to_string();
    let in_pod = ip(&["-n", &pod, "-6", "addr", "show", "eth0"]).unwrap();
    assert!(in_pod.contains(&v6), "{in_pod}");
    let default6 = ip(&["-n", &pod, "-6", "route", "show", "default"]).unwrap();
    assert!(
        default6.contains("via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{default6}"
    );
    for (family, host) in [("-4", ips[0].clone()), ("-6", ips[1].clone())] {
        let addr = host.split('/').next().unwrap().to_string();
        // `ip route` leaves `proto boot` out (the default) unless asked for details.
        let route = ip(&["-n", &s.node.ns, "-d", "-j", family, "route", "show", &addr]).unwrap();
        assert!(
            route.contains("\"protocol\":\"boot\""),
            "{family} host route: {route}"
        );
    }
}

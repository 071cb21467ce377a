//! The DaemonSet's init containers, one at a time, as the manifests run them (see [`crate::pod`]):
//! install-cni puts the plugin, its configuration and etcd's TLS files on the host, replacing a
//! plugin that is executing; register-node creates a missing Node from the interface holding
//! the node's address, leaves an operator's Node alone, and refuses an address no interface has.

use crate::cluster::Lan;
use crate::manifests::{BIN, Rendered};
use crate::pod::{NodeHost, Pod};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("tortie-tmp"))
        .collect()
}

fn mesh_pod(lan: &Lan, node: usize, host: &NodeHost) -> (Rendered, Pod) {
    let r = Rendered::operator_overlay("mesh", &lan.endpoint(), &lan.dir.join("overlay"));
    let pod = Pod::new(
        &r,
        r.find("DaemonSet", "tortie-node"),
        host,
        &lan.secrets(),
        &lan.dir.join(format!("pod-{node}")),
    );
    (r, pod)
}

#[test]
fn install_cni_puts_the_plugin_its_conflist_and_etcd_tls_on_the_host() {
    let lan = Lan::new("cniinst", &["node-a"]);
    // Two endpoints: the comma-separated list becomes the conflist's array.
    let endpoints = [lan.endpoint(), "https://198.18.5.253:2379".to_string()];
    let r = Rendered::operator_overlay("mesh", &endpoints.join(","), &lan.dir.join("overlay"));
    let ds = r.find("DaemonSet", "tortie-node");
    let pod = Pod::new(&r, ds, &lan.host(0), &lan.secrets(), &lan.dir.join("pod-0"));
    let f = pod.run_init("install-cni");
    assert!(f.success, "install-cni failed:\n{}", f.output);
    let root = &lan.nodes[0].root;

    let plugin = root.join("opt/cni/bin/tortie-cni");
    let meta = std::fs::symlink_metadata(&plugin).expect("the plugin on the host");
    assert!(meta.is_file(), "{} is not a regular file", plugin.display());
    assert_eq!(mode(&plugin), 0o755);
    assert!(
        std::fs::read(&plugin).expect("read the plugin")
            == std::fs::read(BIN).expect("read tortie"),
        "the installed plugin is not the image's tortie"
    );

    let conflist = root.join("etc/cni/net.d/10-tortie.conflist");
    let text = std::fs::read_to_string(&conflist).expect("the conflist on the host");
    let conf: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the installed conflist is not JSON: {e}\n{text}"));
    let plugin_conf = &conf["plugins"][0];
    // The runtime runs <CNI bin dir>/<type>: the type must be the file just installed.
    assert_eq!(plugin_conf["type"], "tortie-cni", "{text}");
    assert_eq!(plugin_conf["nodename"], "node-a", "{text}");
    let store = &plugin_conf["datastore"];
    assert_eq!(
        store["etcdEndpoints"],
        serde_json::json!(endpoints),
        "{text}"
    );
    assert!(!text.contains("__"), "a placeholder was left: {text}");
    let secrets = lan.secrets();
    for (field, key) in [
        ("etcdCaCert", "etcd-ca"),
        ("etcdCert", "etcd-cert"),
        ("etcdKey", "etcd-key"),
    ] {
        let on_host = store[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in {text}"));
        let file = root.join(on_host.trim_start_matches('/'));
        assert_eq!(
            std::fs::read(&file).unwrap_or_else(|e| panic!("{field} {}: {e}", file.display())),
            secrets["tortie-etcd"][key],
            "{field}"
        );
        assert_eq!(mode(&file), 0o600, "{field}");
    }
    for dir in ["opt/cni/bin", "etc/cni/net.d", "etc/cni/net.d/tortie-tls"] {
        assert_eq!(leftovers(&root.join(dir)), Vec::<String>::new(), "{dir}");
    }
}

#[test]
fn install_cni_replaces_a_plugin_that_is_executing() {
    let lan = Lan::new("cnibusy", &["node-a"]);
    let (_, pod) = mesh_pod(&lan, 0, &lan.host(0));
    // An older plugin, running (as it would be in the middle of a pod's ADD): writing into
    // that file fails with "Text file busy"; renaming over it does not.
    let bin = lan.nodes[0].root.join("opt/cni/bin");
    std::fs::create_dir_all(&bin).expect("create the CNI bin dir");
    let plugin = bin.join("tortie-cni");
    std::fs::copy("/bin/sleep", &plugin).expect("copy sleep");
    let mut running = std::process::Command::new(&plugin)
        .arg("30")
        .spawn()
        .expect("run the old plugin");
    std::thread::sleep(Duration::from_millis(100));
    let f = pod.run_init("install-cni");
    let _ = running.kill();
    let _ = running.wait();
    assert!(
        f.success,
        "install-cni failed over a running plugin:\n{}",
        f.output
    );
    assert!(
        std::fs::read(&plugin).expect("read the plugin")
            == std::fs::read(BIN).expect("read tortie"),
        "the plugin was not replaced"
    );
}

#[test]
fn register_node_creates_a_missing_node_with_the_interface_prefix() {
    let lan = Lan::new("regnew", &["node-a"]);
    lan.start_etcd();
    let (_, pod) = mesh_pod(&lan, 0, &lan.host(0));
    assert!(lan.stored_node("node-a").is_none());
    let f = pod.run_init("register-node");
    assert!(f.success, "register-node failed:\n{}", f.output);
    let node = lan.stored_node("node-a").expect("the Node was created");
    assert_eq!(
        node["spec"]["bgp"]["ipv4Address"], "198.18.5.1/24",
        "{node}"
    );
    assert!(
        node["spec"]["bgp"]["routeReflectorClusterID"].is_null(),
        "{node}"
    );
    assert!(f.output.contains("created Node node-a"), "{}", f.output);
}

#[test]
fn register_node_leaves_a_node_the_operator_applied_alone() {
    let lan = Lan::new("regkeep", &["node-a"]);
    lan.start_etcd();
    let mine = lan.dir.join("node-a.yaml");
    std::fs::write(
        &mine,
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: node-a\n  \
         labels: {rack: rack-1}\nspec:\n  bgp: {ipv4Address: 198.18.5.1/25, asNumber: 65101}\n",
    )
    .expect("write the operator's Node");
    let out = lan.tortie(&["apply", "-f", &mine.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = lan.stored_node("node-a").expect("the operator's Node");

    let (_, pod) = mesh_pod(&lan, 0, &lan.host(0));
    let f = pod.run_init("register-node");
    assert!(f.success, "register-node failed:\n{}", f.output);
    assert!(f.output.contains("exists"), "{}", f.output);
    assert_eq!(lan.stored_node("node-a"), Some(before));
}

#[test]
fn register_node_refuses_a_host_ip_no_interface_holds() {
    let lan = Lan::new("regbad", &["node-a"]);
    lan.start_etcd();
    let mut host = lan.host(0);
    host.ip = "198.18.5.77".parse().expect("an address");
    let (_, pod) = mesh_pod(&lan, 0, &host);
    let f = pod.run_init("register-node");
    assert!(
        !f.success,
        "register-node accepted an address no interface holds"
    );
    assert!(
        f.output.contains("no interface holds HOST_IP=198.18.5.77")
            && f.output.contains("198.18.5.1/24"),
        "the error does not say what is wrong and what there is:\n{}",
        f.output
    );
    assert!(
        lan.stored_node("node-a").is_none(),
        "a Node was written anyway"
    );
}

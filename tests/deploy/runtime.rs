//! The container runtime's part for a pod on a test node: it runs the CNI plugin that the
//! DaemonSet's install-cni step put on the node's host, with the conflist it wrote there, as
//! containerd does (the conflist's first plugin with the list's `name` and `cniVersion` on
//! stdin, the `CNI_*` variables, inside the node's network namespace).
//!
//! The conflist names host paths (the TLS files, the agent's socket); the node's host is a
//! directory here, so absolute paths in it are taken inside that directory, and the plugin's
//! IPAM lock, which defaults to /run/tortie, is placed there as well.

use crate::cluster::Node;
use crate::support::netns::Netns;
use serde_json::Value;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// A pod: its network namespace and the address the plugin gave it.
pub struct PodNet {
    pub ns: Netns,
    pub ip: Ipv4Addr,
}

/// Absolute paths in the configuration, taken inside the node's root.
fn on_host(v: &mut Value, node: &Node) {
    match v {
        Value::String(s) if s.starts_with('/') => {
            *s = node.root.join(&s[1..]).display().to_string();
        }
        Value::Array(a) => a.iter_mut().for_each(|x| on_host(x, node)),
        Value::Object(o) => o.values_mut().for_each(|x| on_host(x, node)),
        _ => {}
    }
}

/// CNI ADD of a new pod `name` on `node`, through the installed plugin and conflist.
#[track_caller]
pub fn add_pod(node: &Node, name: &str) -> PodNet {
    let conflist_path = node.root.join("etc/cni/net.d/10-tortie.conflist");
    let text = std::fs::read_to_string(&conflist_path)
        .unwrap_or_else(|e| panic!("{}: {e}", conflist_path.display()));
    let list: Value = serde_json::from_str(&text).expect("the installed conflist is JSON");
    let mut conf = list["plugins"][0].clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    on_host(&mut conf, node);
    conf["ipamLockFile"] = node
        .root
        .join("run/tortie/cni-ipam.lock")
        .display()
        .to_string()
        .into();
    let plugin_type = conf["type"]
        .as_str()
        .expect("the plugin's type")
        .to_string();
    let bin_dir = node.root.join("opt/cni/bin");

    let ns = Netns::new(&format!("{name}pod"));
    let mut child = Command::new("ip")
        .args(["netns", "exec", node.ns.name()])
        .arg(bin_dir.join(&plugin_type))
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", format!("{name}-{}", ns.name()))
        .env("CNI_NETNS", format!("/run/netns/{}", ns.name()))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &bin_dir)
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CNI plugin");
    child
        .stdin
        .take()
        .expect("the plugin's stdin")
        .write_all(conf.to_string().as_bytes())
        .expect("write the network configuration");
    let out = child.wait_with_output().expect("wait for the CNI plugin");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "CNI ADD of {name} on {}: {stdout}\n{stderr}",
        node.name
    );
    let result: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("CNI ADD result is not JSON: {e}\n{stdout}"));
    let ip = result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no IPv4 address in the ADD result: {stdout}"));
    PodNet { ns, ip }
}

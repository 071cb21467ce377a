//! Pods: a namespace per pod, given its address and its link by the real `tortie-cni`
//! plugin, run as a container runtime runs it.
//!
//! The lab links its own binary as `<dir>/cni/bin/tortie-cni`, writes each node a network
//! configuration list (`<dir>/<node>/10-tortie.conflist`, what a runtime would read from
//! `/etc/cni/net.d`), and for each pod runs the plugin inside the node's namespace with the
//! CNI environment (`CNI_COMMAND=ADD`, the container ID from the pod's IPAM handle, the pod's
//! namespace as `CNI_NETNS`) and the configuration on stdin, exactly as a runtime passes a
//! conflist's first plugin. The plugin allocates from the lab's shared store (or through the
//! node's agent when it answers) and wires the pod as Calico's CNI plugin does; the lab only
//! reads the address back from the CNI result.

use super::agents;
use super::netns::{self, NetnsError};
use super::resources::pool_spec;
use super::state::PodRecord;
use super::topology::{POD_GATEWAY, POD_K8S_NAMESPACE, POOL_NAME, PodPlan, Topology};
use serde_json::{Value, json};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tortie_ipam::Pool;

/// The network name of the lab's configuration.
pub const NETWORK_NAME: &str = "tortie-lab";
/// The plugin's name, as runtimes look it up in `CNI_PATH`.
const PLUGIN: &str = "tortie-cni";
/// The handle prefix Calico's plugin (and tortie's) put before the container ID.
const HANDLE_PREFIX: &str = "k8s-pod-network.";

/// A pod that could not be created.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("pod pool {POOL_NAME}: {0}")]
    Pool(#[from] tortie_ipam::PoolError),
    #[error("{path}: {err}", path = .0.display(), err = .1)]
    Io(PathBuf, std::io::Error),
    #[error("creating pod {pod}: {err}")]
    Netns { pod: String, err: NetnsError },
    #[error("running {plugin} ADD for pod {pod}: {err}", plugin = .plugin.display())]
    Spawn {
        plugin: PathBuf,
        pod: String,
        err: std::io::Error,
    },
    #[error("tortie-cni ADD for pod {pod} failed (code {code}): {msg}: {details}")]
    Cni {
        pod: String,
        code: u64,
        msg: String,
        details: String,
    },
    #[error("tortie-cni ADD for pod {pod} printed no usable result ({what}); stderr: {stderr}")]
    Result {
        pod: String,
        what: String,
        stderr: String,
    },
}

/// Where the plugin link lives (`CNI_PATH`).
pub fn plugin_dir(lab_dir: &Path) -> PathBuf {
    lab_dir.join("cni").join("bin")
}

/// A node's network configuration list.
pub fn conflist_path(lab_dir: &Path, node: &str) -> PathBuf {
    agents::node_dir(lab_dir, node).join("10-tortie.conflist")
}

/// The conflist of a node: tortie-cni on the lab's store, with the node's name and agent.
pub fn conflist(lab_dir: &Path, node: &str) -> Value {
    let agent = agents::record(lab_dir, node);
    json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [{
            "type": PLUGIN,
            "nodename": node,
            "mtu": "auto",
            "datastore": {"dataDir": agents::data_dir(lab_dir)},
            "apiSocket": agent.api_socket,
            "ipamLockFile": lab_dir.join("cni").join("ipam.lock"),
            "ipam": {"ipv4_pools": [POOL_NAME]},
        }],
    })
}

/// What a runtime passes a conflist's first plugin on stdin: the plugin's object with the
/// list's `name` and `cniVersion`.
pub fn plugin_input(conflist: &Value) -> Value {
    let mut conf = conflist["plugins"][0].clone();
    if let Some(o) = conf.as_object_mut() {
        o.insert("name".into(), conflist["name"].clone());
        o.insert("cniVersion".into(), conflist["cniVersion"].clone());
    }
    conf
}

/// The CNI environment of a pod's ADD.
pub fn cni_env(lab_dir: &Path, pod: &PodPlan) -> Vec<(&'static str, String)> {
    let id = pod
        .handle
        .strip_prefix(HANDLE_PREFIX)
        .unwrap_or(&pod.handle);
    vec![
        ("CNI_COMMAND", "ADD".into()),
        ("CNI_CONTAINERID", id.to_string()),
        (
            "CNI_NETNS",
            Path::new(netns::NETNS_DIR)
                .join(&pod.namespace)
                .display()
                .to_string(),
        ),
        ("CNI_IFNAME", "eth0".into()),
        (
            "CNI_ARGS",
            format!(
                "K8S_POD_NAMESPACE={POD_K8S_NAMESPACE};K8S_POD_NAME={}",
                pod.name
            ),
        ),
        ("CNI_PATH", plugin_dir(lab_dir).display().to_string()),
    ]
}

/// Links the binary as the plugin and writes every node's conflist.
pub fn install(lab_dir: &Path, exe: &Path, topology: &Topology) -> Result<(), PodError> {
    let bin = plugin_dir(lab_dir);
    std::fs::create_dir_all(&bin).map_err(|e| PodError::Io(bin.clone(), e))?;
    let link = bin.join(PLUGIN);
    if !link.exists() {
        std::os::unix::fs::symlink(exe, &link).map_err(|e| PodError::Io(link.clone(), e))?;
    }
    for n in &topology.nodes {
        let path = conflist_path(lab_dir, &n.name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| PodError::Io(dir.to_path_buf(), e))?;
        }
        let text = serde_json::to_string_pretty(&conflist(lab_dir, &n.name))
            .map_err(|e| PodError::Io(path.clone(), std::io::Error::other(e)))?;
        std::fs::write(&path, text).map_err(|e| PodError::Io(path.clone(), e))?;
    }
    Ok(())
}

/// Creates one pod: its namespace, then the plugin's ADD inside the node's namespace.
pub fn create(
    lab_dir: &Path,
    topology: &Topology,
    pod: &PodPlan,
    node_namespace: &str,
) -> Result<PodRecord, PodError> {
    let pool = Pool::from_spec(POOL_NAME, &pool_spec(topology.spec.encap))?;
    netns::add(&pod.namespace).map_err(|err| PodError::Netns {
        pod: pod.name.clone(),
        err,
    })?;
    let path = conflist_path(lab_dir, &pod.node);
    let text = std::fs::read(&path).map_err(|e| PodError::Io(path.clone(), e))?;
    let list: Value = serde_json::from_slice(&text)
        .map_err(|e| PodError::Io(path.clone(), std::io::Error::other(e)))?;
    let input = serde_json::to_vec(&plugin_input(&list))
        .map_err(|e| PodError::Io(path.clone(), std::io::Error::other(e)))?;
    let plugin = plugin_dir(lab_dir).join(PLUGIN);
    let spawn_err = |err| PodError::Spawn {
        plugin: plugin.clone(),
        pod: pod.name.clone(),
        err,
    };
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", node_namespace])
        .arg(&plugin)
        .envs(cni_env(lab_dir, pod))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(&input).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    tracing::debug!(pod = %pod.name, %stderr, "tortie-cni ADD");
    let result_err = |what: String| PodError::Result {
        pod: pod.name.clone(),
        what,
        stderr: stderr.clone(),
    };
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| result_err(format!("{} and stdout that is not JSON: {e}", out.status)))?;
    if !out.status.success() {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        return Err(PodError::Cni {
            pod: pod.name.clone(),
            code: v["code"].as_u64().unwrap_or(0),
            msg: s("msg"),
            details: s("details"),
        });
    }
    let address = result_address(&v).map_err(result_err)?;
    let block = pool
        .block_for(&IpAddr::V4(address))
        .map(|b| b.to_string())
        .ok_or_else(|| result_err(format!("{address} is outside pool {}", pool.cidr)))?;
    Ok(PodRecord {
        name: pod.name.clone(),
        node: pod.node.clone(),
        namespace: pod.namespace.clone(),
        address,
        block,
    })
}

/// The pod's IPv4 address in a CNI result, which must route the pod through the lab's
/// gateway (the reachability probes and the report assume Calico's wiring).
pub fn result_address(v: &Value) -> Result<Ipv4Addr, String> {
    let ips = v["ips"].as_array().ok_or("no ips")?;
    let gw = POD_GATEWAY.to_string();
    let via_gateway = v["routes"].as_array().is_some_and(|rs| {
        rs.iter()
            .any(|r| r["dst"] == "0.0.0.0/0" && r["gw"].as_str() == Some(gw.as_str()))
    });
    if !via_gateway {
        return Err(format!("no default route via {gw} in {}", v["routes"]));
    }
    ips.iter()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.parse::<ipnet::IpNet>().ok())
        .find_map(|n| match n.addr() {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| format!("no IPv4 address among {}", v["ips"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{Encap, LabSpec};

    fn topology() -> Topology {
        Topology::plan(&LabSpec {
            name: "tlab".into(),
            nodes: 2,
            pods_per_node: 2,
            encap: Encap::Vxlan,
            route_reflector: false,
            tor: None,
        })
        .unwrap()
    }

    #[test]
    fn the_plugin_gets_the_conflists_plugin_with_its_name_and_version() {
        let list = conflist(Path::new("/run/tortie-lab/tlab"), "node2");
        let input = plugin_input(&list);
        assert_eq!(input["type"], "tortie-cni");
        assert_eq!(input["name"], NETWORK_NAME);
        assert_eq!(input["cniVersion"], "1.0.0");
        assert_eq!(input["nodename"], "node2");
        assert_eq!(input["datastore"]["dataDir"], "/run/tortie-lab/tlab/data");
        assert_eq!(input["apiSocket"], "/run/tortie-lab/tlab/node2/api.sock");
    }

    #[test]
    fn the_container_id_is_the_handle_without_calicos_prefix() {
        let t = topology();
        let env = cni_env(Path::new("/run/tortie-lab/tlab"), &t.pods[0]);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CNI_CONTAINERID"), Some("lab-node1-1"));
        assert_eq!(get("CNI_NETNS"), Some("/run/netns/tlab-node1-pod1"));
        assert_eq!(get("CNI_PATH"), Some("/run/tortie-lab/tlab/cni/bin"));
        assert_eq!(
            get("CNI_ARGS"),
            Some("K8S_POD_NAMESPACE=lab;K8S_POD_NAME=node1-pod1")
        );
    }

    #[test]
    fn the_address_is_read_from_the_cni_result() {
        let v = json!({
            "ips": [{"address": "198.19.0.5/32", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
        });
        assert_eq!(result_address(&v), Ok(Ipv4Addr::new(198, 19, 0, 5)));
        assert!(result_address(&json!({"ips": [], "routes": v["routes"]})).is_err());
    }

    #[test]
    fn a_result_without_the_link_local_gateway_is_refused() {
        let v = json!({
            "ips": [{"address": "198.19.0.5/32", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "198.19.0.1"}],
        });
        assert!(result_address(&v).unwrap_err().contains("169.254.1.1"));
    }
}

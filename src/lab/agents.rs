//! One `tortie agent` per node, started inside the node's namespace, and what the lab reads
//! back from it.
//!
//! Every agent runs the kernel dataplane on the node's `eth0` and shares the lab's embedded
//! store, so the Calico resources applied once and the blocks the lab's pods are allocated from
//! reach all of them. Until the agent's gRPC API client lands, the lab follows each agent
//! through its `--status-file` (the sessions as JSON, rewritten on every change).

use super::process::{self, SpawnError};
use super::state::{AgentRecord, ProcessRecord};
use super::topology::NodePlan;
use serde::Deserialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Child;

/// The store directory every agent of the lab shares.
pub fn data_dir(lab_dir: &Path) -> PathBuf {
    lab_dir.join("data")
}

/// A node's own directory in the lab directory.
pub fn node_dir(lab_dir: &Path, node: &str) -> PathBuf {
    lab_dir.join(node)
}

fn state_dir(lab_dir: &Path, node: &str) -> PathBuf {
    node_dir(lab_dir, node).join("state")
}

/// Where an agent's files go (its process is filled in once started).
pub fn record(lab_dir: &Path, node: &str) -> AgentRecord {
    let dir = node_dir(lab_dir, node);
    AgentRecord {
        node: node.to_string(),
        process: None,
        api_socket: dir.join("api.sock"),
        status_file: dir.join("status.json"),
        log: dir.join("agent.log"),
    }
}

/// The longest path a unix socket address holds (sun_path, with its terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// Refuses a lab directory so deep that the agents' API sockets could not be bound.
pub fn check_socket_path(rec: &AgentRecord) -> Result<(), String> {
    let len = rec.api_socket.as_os_str().len();
    if len > SUN_PATH_MAX {
        return Err(format!(
            "the API socket path {} is {len} bytes, more than a unix socket allows ({SUN_PATH_MAX}); choose a shorter --dir",
            rec.api_socket.display()
        ));
    }
    Ok(())
}

/// `tortie agent ...` arguments for a node.
pub fn agent_args(lab_dir: &Path, node: &NodePlan, rec: &AgentRecord) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |flag: &str, value: OsString| {
        args.push(flag.into());
        args.push(value);
    };
    push("--node", node.name.clone().into());
    push("--data-dir", data_dir(lab_dir).into());
    push("--dataplane", "kernel".into());
    push("--underlay", "eth0".into());
    push("--api-socket", rec.api_socket.clone().into());
    push("--state-dir", state_dir(lab_dir, &node.name).into());
    push("--status-file", rec.status_file.clone().into());
    let mut all: Vec<OsString> = vec!["agent".into()];
    all.extend(args);
    all
}

/// The command-line word that identifies a node's agent: its state directory, which no
/// other process uses.
pub fn marker(lab_dir: &Path, node: &str) -> String {
    state_dir(lab_dir, node).display().to_string()
}

/// Starts the node's agent; the returned child is only used to notice an early exit.
pub fn start(
    exe: &Path,
    lab_dir: &Path,
    node: &NodePlan,
    rec: &mut AgentRecord,
) -> Result<Child, SpawnError> {
    let dir = node_dir(lab_dir, &node.name);
    std::fs::create_dir_all(state_dir(lab_dir, &node.name)).map_err(|err| SpawnError {
        what: format!("the agent of {}", node.name),
        err: std::io::Error::new(err.kind(), format!("{}: {err}", dir.display())),
    })?;
    let child = process::spawn_in_netns(
        &format!("the agent of {}", node.name),
        &node.namespace,
        exe,
        &agent_args(lab_dir, node, rec),
        &rec.log,
    )?;
    let pid = child.id() as i32;
    rec.process = Some(ProcessRecord {
        pid,
        marker: marker(lab_dir, &node.name),
    });
    // The pid file is for people and scripts; lab.json is what `down` reads.
    let _ = std::fs::write(dir.join("agent.pid"), format!("{pid}\n"));
    Ok(child)
}

/// One BGP session as an agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Session {
    pub name: String,
    pub address: String,
    pub state: String,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Session {
    pub fn established(&self) -> bool {
        self.state == "Established"
    }
}

#[derive(Deserialize)]
struct StatusFile {
    peers: Vec<Session>,
}

/// Parses an agent's status file (other fields are ignored: the file is the agent's, and
/// grows).
pub fn parse_sessions(text: &str) -> Result<Vec<Session>, String> {
    serde_json::from_str::<StatusFile>(text)
        .map(|s| s.peers)
        .map_err(|e| format!("unexpected status file content: {e}"))
}

/// The sessions of an agent, or why they are not known yet.
pub fn sessions(rec: &AgentRecord) -> Result<Vec<Session>, String> {
    let text = std::fs::read_to_string(&rec.status_file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "no status yet".to_string()
        } else {
            format!("{}: {e}", rec.status_file.display())
        }
    })?;
    parse_sessions(&text).map_err(|e| format!("{}: {e}", rec.status_file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{Encap, LabSpec, Topology};

    fn node1() -> NodePlan {
        Topology::plan(&LabSpec {
            name: "tlab".into(),
            nodes: 1,
            pods_per_node: 0,
            encap: Encap::Vxlan,
            route_reflector: false,
            tor: None,
        })
        .unwrap()
        .nodes
        .remove(0)
    }

    #[test]
    fn an_agent_runs_the_kernel_dataplane_on_eth0_from_the_shared_store() {
        let lab = Path::new("/run/tortie-lab/tlab");
        let rec = record(lab, "node1");
        let args: Vec<String> = agent_args(lab, &node1(), &rec)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "agent --node node1 --data-dir /run/tortie-lab/tlab/data --dataplane kernel \
             --underlay eth0 --api-socket /run/tortie-lab/tlab/node1/api.sock \
             --state-dir /run/tortie-lab/tlab/node1/state \
             --status-file /run/tortie-lab/tlab/node1/status.json"
        );
        assert!(args.contains(&marker(lab, "node1")));
    }

    #[test]
    fn a_socket_path_too_long_for_sun_path_is_refused() {
        let deep = PathBuf::from(format!("/tmp/{}", "d".repeat(100)));
        let e = check_socket_path(&record(&deep, "node1")).unwrap_err();
        assert!(e.contains("--dir"), "{e}");
        assert!(check_socket_path(&record(Path::new("/run/tortie-lab/tlab"), "node1")).is_ok());
    }

    #[test]
    fn sessions_are_read_from_the_agents_status_file() {
        let text = r#"{"node":"node1","peers":[
            {"name":"node2","kind":"node-to-node mesh","address":"198.18.2.12","port":179,
             "state":"Established","last_error":null,"routes":[]},
            {"name":"node3","address":"198.18.1.13","state":"Active","last_error":"connection refused"}]}"#;
        let s = parse_sessions(text).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s[0].established());
        assert!(!s[1].established());
        assert_eq!(s[1].last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn a_status_file_of_another_shape_is_an_error_not_a_panic() {
        assert!(parse_sessions("{\"peers\": 3}").is_err());
        assert!(parse_sessions("").is_err());
    }
}

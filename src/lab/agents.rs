//! One `tortie agent` per node, started inside the node's namespace, and what the lab reads
//! back from it.
//!
//! Every agent runs the kernel dataplane on the node's `eth0` and shares the lab's embedded
//! store, so the Calico resources applied once and the blocks the lab's pods are allocated from
//! reach all of them. The lab follows each agent's sessions through its API (`ListPeers` on
//! its socket), as an operator's `tortie peers` would; the `--status-file` each agent also
//! writes is for people reading the lab directory.

use super::process::{self, SpawnError};
use super::state::{AgentRecord, ProcessRecord};
use super::topology::NodePlan;
use crate::api::client;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Child;
use tortie_proto::v1;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub name: String,
    pub address: String,
    /// The RFC 4271 state name (`unknown` for one this binary does not know).
    pub state: String,
    pub last_error: Option<String>,
}

impl Session {
    pub fn established(&self) -> bool {
        self.state == "Established"
    }

    /// A peer of a `ListPeers` reply.
    pub fn from_api(p: v1::Peer) -> Session {
        let state = v1::PeerState::try_from(p.state).unwrap_or(v1::PeerState::Unspecified);
        Session {
            name: p.name,
            address: p.address,
            state: crate::status_cmd::state_name(state).to_string(),
            last_error: p.last_error,
        }
    }
}

/// The sessions of an agent, from its API, or why they are not known (yet).
pub fn sessions(rec: &AgentRecord) -> Result<Vec<Session>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime for the API client: {e}"))?;
    rt.block_on(async {
        let mut api = client::connect(&rec.api_socket)
            .await
            .map_err(|e| e.to_string())?;
        let reply = api
            .list_peers(v1::ListPeersRequest::default())
            .await
            .map_err(|s| format!("ListPeers on {}: {}", rec.api_socket.display(), s.message()))?;
        Ok(reply
            .into_inner()
            .peers
            .into_iter()
            .map(Session::from_api)
            .collect())
    })
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
    fn a_peer_of_the_api_becomes_a_session_with_its_rfc_state_name() {
        let s = Session::from_api(v1::Peer {
            name: "node3".into(),
            address: "198.18.1.13".into(),
            state: v1::PeerState::Active as i32,
            last_error: Some("connection refused".into()),
            ..Default::default()
        });
        assert_eq!(s.state, "Active");
        assert!(!s.established());
        assert_eq!(s.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn an_established_peer_is_established() {
        let s = Session::from_api(v1::Peer {
            state: v1::PeerState::Established as i32,
            ..Default::default()
        });
        assert!(s.established());
    }

    #[test]
    fn an_agent_that_does_not_serve_its_socket_gives_a_reason_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("tortie-lab-nosock-{}", std::process::id()));
        let rec = record(&dir, "node1");
        let e = sessions(&rec).unwrap_err();
        assert!(e.contains("no tortie agent is serving"), "{e}");
    }
}

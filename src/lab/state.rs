//! `<lab>/lab.json`: everything `lab status` and `lab down` need to find a lab again, written
//! by `lab up` before it creates anything and rewritten as processes start.
//!
//! Written first so that a `down` after an `up` that failed half-way still knows the lab's
//! namespaces (all named from the spec) and every process that was started. The file is also
//! the marker that a directory is a lab's: `down` removes a directory only when it holds one,
//! so a mistyped `--dir` can never delete anything else.

use super::topology::{LabSpec, Topology, TopologyError};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The value of the file's `format` field.
pub const FORMAT: &str = "tortie-lab/1";
/// The state file inside the lab directory.
pub const FILE_NAME: &str = "lab.json";
/// Where labs live unless `--dir` says otherwise: `<this>/<name>`.
pub const DEFAULT_ROOT: &str = "/run/tortie-lab";

/// A lab's recorded state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabState {
    pub format: String,
    pub spec: LabSpec,
    pub dir: PathBuf,
    /// The tortie binary the agents run (and `apply` was run with).
    pub exe: PathBuf,
    pub created_unix: u64,
    /// The BIRD ToR (`--tor bird`), once started.
    pub bird: Option<ProcessRecord>,
    /// One per node, in node order.
    pub agents: Vec<AgentRecord>,
    /// Pods whose address was allocated, in creation order.
    pub pods: Vec<PodRecord>,
}

/// A process the lab started and must stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRecord {
    pub pid: i32,
    /// A word of the command line (a path only this lab uses), checked in
    /// `/proc/<pid>/cmdline` before signalling, so a reused PID is never killed.
    pub marker: String,
}

/// A node's agent and where it keeps its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRecord {
    pub node: String,
    pub process: Option<ProcessRecord>,
    pub api_socket: PathBuf,
    pub status_file: PathBuf,
    pub log: PathBuf,
}

/// A pod and its address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodRecord {
    pub name: String,
    pub node: String,
    pub namespace: String,
    pub address: Ipv4Addr,
    /// The IPAM block the address came from.
    pub block: String,
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no lab in {dir} (no {FILE_NAME}); `tortie lab up` creates one", dir = .0.display())]
    Missing(PathBuf),
    #[error("{path}: {err}", path = .0.display(), err = .1)]
    Io(PathBuf, std::io::Error),
    #[error("{path}: not a lab state file: {err}", path = .0.display(), err = .1)]
    Parse(PathBuf, serde_json::Error),
    #[error("{path}: format {found:?}, this tortie reads {FORMAT:?}", path = .path.display())]
    Format { path: PathBuf, found: String },
    #[error("{path}: {err}", path = .0.display(), err = .1)]
    Topology(PathBuf, TopologyError),
}

/// The lab directory for `name`, or `dir` when given.
pub fn lab_dir(name: &str, dir: Option<&Path>) -> PathBuf {
    match dir {
        Some(d) => d.to_path_buf(),
        None => Path::new(DEFAULT_ROOT).join(name),
    }
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

impl LabState {
    pub fn new(spec: LabSpec, dir: PathBuf, exe: PathBuf, created_unix: u64) -> LabState {
        LabState {
            format: FORMAT.to_string(),
            spec,
            dir,
            exe,
            created_unix,
            bird: None,
            agents: Vec::new(),
            pods: Vec::new(),
        }
    }

    /// The topology the recorded spec gives (names are never stored twice).
    pub fn topology(&self) -> Result<Topology, StateError> {
        Topology::plan(&self.spec).map_err(|e| StateError::Topology(state_path(&self.dir), e))
    }

    pub fn agent(&self, node: &str) -> Option<&AgentRecord> {
        self.agents.iter().find(|a| a.node == node)
    }

    /// Reads `<dir>/lab.json`.
    pub fn load(dir: &Path) -> Result<LabState, StateError> {
        let path = state_path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing(dir.to_path_buf()));
            }
            Err(e) => return Err(StateError::Io(path, e)),
        };
        LabState::parse(&path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<LabState, StateError> {
        // The format is checked first so an old or foreign file gets that message, not a
        // complaint about some field.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| StateError::Parse(path.to_path_buf(), e))?;
        let found = value
            .get("format")
            .and_then(|f| f.as_str())
            .unwrap_or_default();
        if found != FORMAT {
            return Err(StateError::Format {
                path: path.to_path_buf(),
                found: found.to_string(),
            });
        }
        let state: LabState =
            serde_json::from_value(value).map_err(|e| StateError::Parse(path.to_path_buf(), e))?;
        state.topology()?;
        Ok(state)
    }

    /// Writes `<dir>/lab.json` through a temporary file and a rename, so a reader never sees
    /// half a file.
    pub fn save(&self) -> Result<(), StateError> {
        let path = state_path(&self.dir);
        let tmp = self.dir.join(format!(".{FILE_NAME}.tmp"));
        let text =
            serde_json::to_string_pretty(self).map_err(|e| StateError::Parse(path.clone(), e))?;
        std::fs::write(&tmp, text + "\n").map_err(|e| StateError::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| StateError::Io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{Encap, Tor};

    fn sample(dir: &Path) -> LabState {
        let mut s = LabState::new(
            LabSpec {
                name: "tlab".into(),
                nodes: 2,
                pods_per_node: 1,
                encap: Encap::Vxlan,
                route_reflector: false,
                tor: Some(Tor::Bird),
            },
            dir.to_path_buf(),
            "/usr/bin/tortie".into(),
            1_700_000_000,
        );
        s.bird = Some(ProcessRecord {
            pid: 42,
            marker: dir.join("router/bird.conf").display().to_string(),
        });
        s.agents.push(AgentRecord {
            node: "node1".into(),
            process: Some(ProcessRecord {
                pid: 43,
                marker: dir.join("data").display().to_string(),
            }),
            api_socket: dir.join("node1/api.sock"),
            status_file: dir.join("node1/status.json"),
            log: dir.join("node1/agent.log"),
        });
        s.pods.push(PodRecord {
            name: "node1-pod1".into(),
            node: "node1".into(),
            namespace: "tlab-node1-pod1".into(),
            address: Ipv4Addr::new(198, 19, 0, 1),
            block: "198.19.0.0/26".into(),
        });
        s
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tortie-lab-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_saved_state_loads_back_identical() {
        let dir = temp_dir("roundtrip");
        let s = sample(&dir);
        s.save().unwrap();
        assert_eq!(LabState::load(&dir).unwrap(), s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_without_state_is_reported_as_no_lab() {
        let dir = temp_dir("missing");
        let e = LabState::load(&dir).unwrap_err();
        assert!(matches!(e, StateError::Missing(_)));
        assert!(e.to_string().contains("no lab in"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_another_format_is_refused_naming_the_format() {
        let e = LabState::parse(Path::new("lab.json"), r#"{"format":"other/9"}"#).unwrap_err();
        assert!(e.to_string().contains("\"other/9\""), "{e}");
    }

    #[test]
    fn a_state_with_an_impossible_spec_is_refused() {
        let dir = PathBuf::from("/nonexistent");
        let mut s = sample(&dir);
        s.spec.nodes = 0;
        let text = serde_json::to_string(&s).unwrap();
        let e = LabState::parse(Path::new("lab.json"), &text).unwrap_err();
        assert!(e.to_string().contains("--nodes 0"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = PathBuf::from("/nonexistent");
        let mut v = serde_json::to_value(sample(&dir)).unwrap();
        v["surprise"] = serde_json::json!(1);
        let e = LabState::parse(Path::new("lab.json"), &v.to_string()).unwrap_err();
        assert!(e.to_string().contains("surprise"), "{e}");
    }

    #[test]
    fn the_default_directory_is_named_after_the_lab() {
        assert_eq!(lab_dir("tlab", None), Path::new("/run/tortie-lab/tlab"));
        assert_eq!(
            lab_dir("tlab", Some(Path::new("/tmp/x"))),
            Path::new("/tmp/x")
        );
    }
}

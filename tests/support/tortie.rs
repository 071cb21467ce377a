//! The `tortie agent` binary as a test peer: the same [`SpeakerConfig`] the daemon launchers
//! take becomes Calico v3 YAML (a Node, the `default` BGPConfiguration with `bindMode: NodeIP`
//! and the mesh off, one node-specific BGPPeer per neighbor, passwords as secret files), and
//! the agent's `--status-file` answers the queries.

use super::config::{Neighbor, PeerKey, SpeakerConfig};
use super::process::Proc;
use super::{Daemon, Rib, Route, TempDir, insert_route, tail, try_wait_until};
use ipnet::IpNet;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct Tortie {
    cfg: SpeakerConfig,
    node: String,
    dir: TempDir,
    proc: Option<Proc>,
    /// Extra agent flags (e.g. `--hold-time`).
    pub extra_args: Vec<String>,
    /// Extra fields per BGPPeer, keyed by neighbor name (YAML lines under `spec:`).
    pub peer_extra: Vec<(String, String)>,
    /// Makes this node a route reflector (`routeReflectorClusterID`).
    pub rr_cluster_id: Option<std::net::Ipv4Addr>,
    /// Extra YAML documents appended to the configuration (BGPFilters, ...).
    pub extra_yaml: String,
}

fn peer_ip(n: &Neighbor) -> String {
    match n.addr {
        IpAddr::V4(a) => format!("{a}:{}", n.port),
        IpAddr::V6(a) => format!("[{a}]:{}", n.port),
    }
}

impl Tortie {
    pub fn version() -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_tortie"))
            .arg("--version")
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// A tortie agent from `cfg`; its hold time is the first neighbor's.
    pub fn new(cfg: SpeakerConfig) -> Tortie {
        cfg.check_addresses();
        Tortie {
            node: format!("tortie-{}", cfg.router_id.to_string().replace('.', "-")),
            cfg,
            dir: TempDir::new("tortie"),
            proc: None,
            extra_args: Vec::new(),
            peer_extra: Vec::new(),
            rr_cluster_id: None,
            extra_yaml: String::new(),
        }
    }

    pub fn start(cfg: SpeakerConfig) -> Tortie {
        let mut t = Tortie::new(cfg);
        t.spawn();
        t
    }

    /// The agent's API socket, in its own directory.
    pub fn api_socket(&self) -> PathBuf {
        self.dir.join("api").join("tortie.sock")
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("tortie.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The Calico resources this agent runs from.
    pub fn yaml(&self) -> String {
        let c = &self.cfg;
        let mut y = String::new();
        let v4 = c.listen.iter().find(|a| a.is_ipv4());
        let v6 = c.listen.iter().find(|a| a.is_ipv6());
        let _ = writeln!(
            y,
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}"
        );
        let _ = writeln!(
            y,
            "spec: {{asNumber: {}, listenPort: {}, bindMode: NodeIP, nodeToNodeMeshEnabled: false}}",
            c.local_as, c.port
        );
        let _ = writeln!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: {}}}",
            self.node
        );
        let _ = writeln!(y, "spec:\n  bgp:");
        if let Some(a) = v4 {
            let _ = writeln!(y, "    ipv4Address: {a}/32");
        }
        if let Some(a) = v6 {
            let _ = writeln!(y, "    ipv6Address: {a}/128");
        }
        if let Some(c) = self.rr_cluster_id {
            let _ = writeln!(y, "    routeReflectorClusterID: {c}");
        }
        for n in &c.neighbors {
            let _ = writeln!(
                y,
                "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: {}}}",
                n.name.replace('_', "-")
            );
            let _ = writeln!(
                y,
                "spec:\n  node: {}\n  peerIP: \"{}\"\n  asNumber: {}",
                self.node,
                peer_ip(n),
                n.asn
            );
            if n.password.is_some() {
                let _ = writeln!(
                    y,
                    "  password:\n    secretKeyRef: {{name: bgp-{}, key: password}}",
                    n.name.replace('_', "-")
                );
            }
            for (name, extra) in &self.peer_extra {
                if *name == n.name {
                    let _ = writeln!(y, "{extra}");
                }
            }
        }
        if !self.extra_yaml.is_empty() {
            let _ = writeln!(y, "---\n{}", self.extra_yaml.trim_end());
        }
        y
    }

    fn write_config(&self) {
        std::fs::write(self.dir.join("cluster.yaml"), self.yaml()).expect("write cluster.yaml");
        for n in &self.cfg.neighbors {
            if let Some(pw) = &n.password {
                let d = self
                    .dir
                    .join(format!("secrets/bgp-{}", n.name.replace('_', "-")));
                std::fs::create_dir_all(&d).expect("secrets dir");
                std::fs::write(d.join("password"), pw).expect("write secret");
            }
        }
    }

    /// Starts (or starts again) the agent and waits for its first status file.
    pub fn spawn(&mut self) {
        self.write_config();
        let _ = std::fs::remove_file(self.status_path());
        let hold = self.cfg.neighbors.first().map_or(9, |n| n.hold_time);
        let bin = env!("CARGO_BIN_EXE_tortie");
        let mut cmd = match &self.cfg.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["agent", "--dataplane", "none", "--node", &self.node])
            .arg("--config")
            .arg(self.dir.join("cluster.yaml"))
            .arg("--secrets-dir")
            .arg(self.dir.join("secrets"))
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--status-file")
            .arg(self.status_path())
            .arg("--api-socket")
            .arg(self.api_socket())
            .args(["--hold-time", &hold.to_string(), "--connect-retry", "1"])
            .args(&self.extra_args)
            .env("RUST_LOG", "info,tortie_bgp=debug");
        for o in &self.cfg.originate {
            cmd.arg("--originate").arg(o.prefix.to_string());
        }
        let p = Proc::spawn("tortie", cmd, &self.log_path()).unwrap_or_else(|e| panic!("{e}"));
        self.proc = Some(p);
        let r = try_wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            if let Some(p) = self.proc.as_mut() {
                if let Some(st) = p.exit_status() {
                    return Err(format!("tortie exited: {st}"));
                }
            }
            if self.status_path().exists() {
                Ok(())
            } else {
                Err("no status file yet".into())
            }
        });
        if let Err(e) = r {
            panic!(
                "tortie did not come up: {e}\n{}",
                tail(&self.log_path(), 40)
            );
        }
    }

    /// SIGTERM, as for a restart: the agent drops its sessions without a NOTIFICATION, so
    /// peers that negotiated graceful restart keep its routes (Cease / Administrative
    /// Shutdown only with `--withdraw-on-stop` in `extra_args`). SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }

    /// SIGKILL: gone without a word.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    pub fn running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.is_running())
    }

    pub fn status(&self) -> Result<Value, String> {
        let text = std::fs::read_to_string(self.status_path()).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("status file: {e}"))
    }

    fn peer_json(&self, peer: &PeerKey) -> Result<Value, String> {
        let n = self
            .cfg
            .find_neighbor(peer)
            .ok_or_else(|| format!("no neighbor {peer:?}"))?;
        let status = self.status()?;
        let peers = status["peers"].as_array().cloned().unwrap_or_default();
        peers
            .into_iter()
            .find(|p| p["address"].as_str() == Some(&n.addr.to_string()))
            .ok_or_else(|| format!("peer {} not in the status file", n.addr))
    }

    /// The last error tortie recorded for the session with `peer`.
    pub fn last_error(&self, peer: impl Into<PeerKey>) -> Option<String> {
        self.peer_json(&peer.into()).ok()?["last_error"]
            .as_str()
            .map(str::to_string)
    }
}

impl Daemon for Tortie {
    fn kind(&self) -> &'static str {
        "tortie"
    }

    fn config(&self) -> &SpeakerConfig {
        &self.cfg
    }

    fn peer_state(&self, peer: &PeerKey) -> Result<String, String> {
        let p = self.peer_json(peer)?;
        p["state"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "no state".into())
    }

    fn is_established(&self, peer: &PeerKey) -> bool {
        self.peer_state(peer).is_ok_and(|s| s == "Established")
    }

    fn rib(&self) -> Result<Rib, String> {
        let status = self.status()?;
        let mut rib = Rib::new();
        for p in status["peers"].as_array().cloned().unwrap_or_default() {
            let from: Option<IpAddr> = p["address"].as_str().and_then(|a| a.parse().ok());
            for r in p["routes"].as_array().cloned().unwrap_or_default() {
                let prefix: Option<IpNet> = r["prefix"].as_str().and_then(|s| s.parse().ok());
                let route = Route {
                    prefix,
                    next_hop: r["next_hop"].as_str().and_then(|s| s.parse().ok()),
                    as_path: r["as_path"]
                        .as_str()
                        .unwrap_or("")
                        .split(|c: char| !c.is_ascii_digit())
                        .filter_map(|a| a.parse().ok())
                        .collect(),
                    from,
                    path_id: r["path_id"].as_u64().map(|v| v as u32),
                    source: p["name"].as_str().unwrap_or("").to_string(),
                    ..Route::default()
                };
                insert_route(&mut rib, route);
            }
        }
        Ok(rib)
    }

    fn pid(&self) -> Option<i32> {
        self.proc.as_ref().map(|p| p.pid())
    }

    fn logs(&self) -> String {
        format!("--- tortie log\n{}", tail(&self.log_path(), 60))
    }
}

impl Drop for Tortie {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}\n--- cluster.yaml\n{}", self.logs(), self.yaml());
        }
        self.stop();
    }
}

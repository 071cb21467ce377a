//! The daemons measured: each started by the harness from a generated configuration, listening
//! on the run's target address, passive towards every peer, logging warnings only (so no
//! target pays for a per-session log line the others skip), and stopped by its pid.
//!
//! A target runs as a direct child (never daemonised, so its pid is the one measured and
//! stopped; bgpd drops to user frr but keeps it), with `PR_SET_PDEATHSIG` so a harness killed
//! with SIGKILL takes its targets along. Stopping is SIGTERM, up to 5 s, then SIGKILL, and a
//! reap; the [`Running`] guard does it on drop too, also on a panic.

mod bird;
mod frr;
mod gobgp;
pub mod procstat;
mod tortie;

use crate::error::BenchError;
use std::fmt;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bird,
    Tortie,
    Frr,
    Gobgp,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Bird, Kind::Tortie, Kind::Frr, Kind::Gobgp];

    pub fn parse(s: &str) -> Result<Kind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bird" => Ok(Kind::Bird),
            "tortie" => Ok(Kind::Tortie),
            "frr" | "bgpd" => Ok(Kind::Frr),
            "gobgp" | "gobgpd" => Ok(Kind::Gobgp),
            other => Err(format!(
                "unknown target {other:?} (targets: tortie, bird, gobgp, frr)"
            )),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Bird => "BIRD",
            Kind::Tortie => "tortie",
            Kind::Frr => "FRR",
            Kind::Gobgp => "GoBGP",
        })
    }
}

/// What the target does with its peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Route reflector; every peer is a client.
    Reflector,
    /// A node in a full mesh; the peers are the other nodes.
    MeshNode,
}

/// One target to start.
pub struct Spec {
    pub kind: Kind,
    pub role: Role,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub peers: Vec<Ipv4Addr>,
    pub dir: PathBuf,
    pub tortie_bin: PathBuf,
}

/// How a target is asked things, beyond its pid.
enum Control {
    Tortie { api_socket: PathBuf },
    Bird { ctl: PathBuf },
    Gobgp { api_port: u16 },
    Frr { vty_dir: PathBuf },
}

/// A started target.
pub struct Running {
    pub kind: Kind,
    child: Option<Child>,
    pid: i32,
    log: PathBuf,
    control: Control,
}

/// Runs a control command (birdc, gobgp, vtysh) with a time limit; `Ok(stdout)` on status 0.
pub async fn run_tool(
    program: &str,
    args: &[String],
    limit: Duration,
) -> Result<String, BenchError> {
    let command = format!("{program} {}", args.join(" "));
    let fail = |reason: String| BenchError::Command {
        command: command.clone(),
        reason,
    };
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| fail(format!("no answer within {limit:?}")))?
    .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first line a version flag prints (some print it on stderr).
pub fn version(program: &str, flag: &str) -> String {
    match Command::new(program).arg(flag).output() {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or("").trim().to_string()
        }
        Err(e) => format!("{program}: {e}"),
    }
}

pub const BGPD: &str = "/usr/lib/frr/bgpd";

fn spawn(mut cmd: Command, log: &Path, kind: Kind) -> Result<Child, BenchError> {
    let out = std::fs::File::create(log)
        .map_err(|e| BenchError::io(format!("creating {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| BenchError::io(format!("opening {}", log.display()), e))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl in the child between fork and exec touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| BenchError::target(kind, format!("cannot start {cmd:?}: {e}")))
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
}

impl Running {
    /// Writes the target's configuration into `spec.dir` and starts it.
    pub fn start(spec: &Spec) -> Result<Running, BenchError> {
        let log = spec.dir.join("output.log");
        let (cmd, control) = match spec.kind {
            Kind::Tortie => {
                let conf = spec.dir.join("cluster.yaml");
                write(&conf, &tortie::config(spec))?;
                let api_socket = spec.dir.join("api.sock");
                (
                    tortie::command(spec, &conf, &api_socket),
                    Control::Tortie { api_socket },
                )
            }
            Kind::Bird => {
                let conf = spec.dir.join("bird.conf");
                write(&conf, &bird::config(spec, &spec.dir.join("bird.log")))?;
                let ctl = spec.dir.join("bird.ctl");
                (bird::command(&conf, &ctl), Control::Bird { ctl })
            }
            Kind::Gobgp => {
                let conf = spec.dir.join("gobgpd.toml");
                write(&conf, &gobgp::config(spec))?;
                let api_port = crate::plan::free_port(Ipv4Addr::LOCALHOST)?;
                (gobgp::command(&conf, api_port), Control::Gobgp { api_port })
            }
            Kind::Frr => {
                let vty_dir = spec.dir.clone();
                let conf = spec.dir.join("bgpd.conf");
                write(&conf, &frr::config(spec, &spec.dir.join("bgpd.log")))?;
                frr::give_to_frr(&spec.dir)?;
                (frr::command(spec, &conf), Control::Frr { vty_dir })
            }
        };
        let child = spawn(cmd, &log, spec.kind)?;
        Ok(Running {
            kind: spec.kind,
            pid: child.id() as i32,
            child: Some(child),
            log,
            control,
        })
    }

    /// The exit status, once the target has exited.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }

    /// Whether the process still runs (not exited, not a zombie); needs no `&mut`, so a
    /// watcher can ask while a probe holds the target.
    pub fn alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(s) => {
                let state = s
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next());
                !matches!(state, Some("Z") | Some("X") | None)
            }
            Err(_) => false,
        }
    }

    /// CPU and memory now.
    pub fn sample(&self) -> Result<procstat::ProcSample, BenchError> {
        procstat::sample(self.pid)
    }

    /// The end of the target's own output, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the target answers its control interface.
    pub async fn wait_ready(&mut self, deadline: Instant) -> Result<(), BenchError> {
        let mut last = String::from("not asked yet");
        while Instant::now() < deadline {
            if let Some(st) = self.exited() {
                return Err(BenchError::target(
                    self.kind,
                    format!("exited while starting ({st}):\n{}", self.log_tail(20)),
                ));
            }
            match self.ready_probe().await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BenchError::target(
            self.kind,
            format!("not ready by the deadline; last probe: {last}"),
        ))
    }

    async fn ready_probe(&self) -> Result<(), BenchError> {
        let limit = Duration::from_secs(5);
        match &self.control {
            Control::Tortie { api_socket } => {
                tortie::loc_rib_prefixes(api_socket).await.map(|_| ())
            }
            Control::Bird { ctl } => {
                let out =
                    run_tool("birdc", &bird::ctl_args(ctl, &["show", "status"]), limit).await?;
                if out.contains("Daemon is up and running") {
                    Ok(())
                } else {
                    Err(BenchError::target(
                        self.kind,
                        format!("birdc: {}", out.trim()),
                    ))
                }
            }
            Control::Gobgp { api_port } => {
                run_tool("gobgp", &gobgp::cli_args(*api_port, &["global"]), limit)
                    .await
                    .map(|_| ())
            }
            Control::Frr { vty_dir } => {
                let out = run_tool(
                    "vtysh",
                    &frr::vtysh_args(vty_dir, "show bgp summary json"),
                    limit,
                )
                .await?;
                serde_json::from_str::<serde_json::Value>(out.trim())
                    .map(|_| ())
                    .map_err(|e| BenchError::target(self.kind, format!("vtysh: {e}")))
            }
        }
    }

    /// Prefixes in the target's Loc-RIB (tortie and BIRD: the mesh scenario asks them).
    pub async fn loc_rib_prefixes(&self) -> Result<u64, BenchError> {
        match &self.control {
            Control::Tortie { api_socket } => tortie::loc_rib_prefixes(api_socket).await,
            Control::Bird { ctl } => {
                let out = run_tool(
                    "birdc",
                    &bird::ctl_args(ctl, &["show", "route", "count"]),
                    Duration::from_secs(5),
                )
                .await?;
                bird::parse_route_count(&out).ok_or_else(|| {
                    BenchError::target(
                        self.kind,
                        format!("unexpected `show route count`: {}", out.trim()),
                    )
                })
            }
            _ => Err(BenchError::target(
                self.kind,
                "the harness does not read this target's Loc-RIB",
            )),
        }
    }

    /// SIGTERM, up to 5 s, then SIGKILL; reaps. Signals only the pid it started.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) && self.pid > 0 {
            // SAFETY: kill(2) on our own unreaped child's pid, which cannot have been reused.
            unsafe {
                libc::kill(self.pid, libc::SIGTERM);
            }
            let until = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < until {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A scratch directory for one target run, removed on drop unless kept.
pub struct Scratch {
    pub path: PathBuf,
    keep: bool,
}

impl Scratch {
    pub fn new(root: &Path, name: &str, keep: bool) -> Result<Scratch, BenchError> {
        let path = root.join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::io(format!("creating {}", path.display()), e))?;
        set_mode(root, 0o755)?;
        set_mode(&path, 0o755)?;
        Ok(Scratch { path, keep })
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BenchError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| BenchError::io(format!("chmod {}", path.display()), e))
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

//! `--tor bird`: BIRD 2 as the top-of-rack router, in the router namespace.
//!
//! Calico's AS-per-compute-server model: the router has AS 65000, every node its own AS and
//! one eBGP session with the gateway of its subnet. BIRD learns each node's blocks, installs
//! them in the router's kernel table (so traffic without encapsulation is routed between the
//! subnets) and passes them on to the other nodes with itself as next hop. BIRD 2 needs
//! explicit import and export policies on eBGP sessions (RFC 8212), hence `import all; export
//! all;`. Its timers are short so a lab converges in seconds.

use super::process::{self, SpawnError};
use super::state::ProcessRecord;
use super::topology::{TOR_AS, Topology};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// What the user is told when BIRD 2 is missing.
pub const INSTALL_HINT: &str = "--tor bird needs BIRD 2: apt-get install bird2";

/// BIRD could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error("{INSTALL_HINT}")]
    Missing,
    #[error("{INSTALL_HINT} (found {found:?} at {path})", path = .path.display())]
    WrongVersion { path: PathBuf, found: String },
    #[error("the generated {conf} does not parse: {message}", conf = .conf.display())]
    Config { conf: PathBuf, message: String },
    #[error("writing {path}: {err}", path = .0.display(), err = .1)]
    Write(PathBuf, std::io::Error),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("BIRD did not come up within {0:?}:\n{1}")]
    NotUp(Duration, String),
}

/// The lab's BIRD files, in `<lab>/router/`.
pub struct BirdFiles {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub ctl: PathBuf,
    pub log: PathBuf,
    pub out: PathBuf,
}

impl BirdFiles {
    pub fn new(lab_dir: &Path) -> BirdFiles {
        let dir = lab_dir.join("router");
        BirdFiles {
            conf: dir.join("bird.conf"),
            ctl: dir.join("bird.ctl"),
            log: dir.join("bird.log"),
            out: dir.join("bird.out"),
            dir,
        }
    }
}

/// An executable called `name` on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Finds BIRD 2 (`bird --version` prints `BIRD version 2.x` on stderr).
pub fn find() -> Result<PathBuf, BirdError> {
    let path = on_path("bird").ok_or(BirdError::Missing)?;
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|_| BirdError::Missing)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let found = text.lines().next().unwrap_or("").trim().to_string();
    if found.starts_with("BIRD version 2.") {
        Ok(path)
    } else {
        Err(BirdError::WrongVersion { path, found })
    }
}

/// A BIRD symbol for a node's session (letters, digits and `_` only).
fn protocol_name(node: &str) -> String {
    let clean: String = node
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("tortie_{clean}")
}

/// bird.conf for the lab's router.
pub fn config(t: &Topology, log: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# The top-of-rack router of tortie lab {}.", t.spec.name);
    let _ = writeln!(s, "log \"{}\" all;", log.display());
    let router_id = t
        .racks()
        .first()
        .map(|r| r.gateway())
        .unwrap_or(std::net::Ipv4Addr::new(198, 18, 1, 1));
    let _ = writeln!(s, "router id {router_id};");
    s.push_str("protocol device { scan time 10; }\n");
    s.push_str("protocol kernel { ipv4 { import none; export all; }; }\n");
    for n in &t.nodes {
        let _ = writeln!(s, "protocol bgp {} {{", protocol_name(&n.name));
        let _ = writeln!(s, "  description \"{} (rack {})\";", n.name, n.rack.label());
        let _ = writeln!(s, "  local {} as {TOR_AS};", n.gateway);
        let _ = writeln!(s, "  neighbor {} as {};", n.address, n.as_number);
        s.push_str("  connect delay time 1; connect retry time 5; error wait time 1, 10;\n");
        s.push_str("  ipv4 { import all; export all; };\n");
        s.push_str("}\n");
    }
    s
}

/// Writes and checks the configuration, starts BIRD in the router namespace and waits for
/// its control socket.
pub fn start(
    bird: &Path,
    t: &Topology,
    files: &BirdFiles,
) -> Result<(Child, ProcessRecord), BirdError> {
    std::fs::create_dir_all(&files.dir).map_err(|e| BirdError::Write(files.dir.clone(), e))?;
    std::fs::write(&files.conf, config(t, &files.log))
        .map_err(|e| BirdError::Write(files.conf.clone(), e))?;
    let check = Command::new(bird)
        .arg("-p")
        .arg("-c")
        .arg(&files.conf)
        .output()
        .map_err(|e| BirdError::Config {
            conf: files.conf.clone(),
            message: e.to_string(),
        })?;
    if !check.status.success() {
        return Err(BirdError::Config {
            conf: files.conf.clone(),
            message: String::from_utf8_lossy(&check.stderr).trim().to_string(),
        });
    }
    let _ = std::fs::remove_file(&files.ctl);
    let args: Vec<OsString> = vec![
        "-f".into(),
        "-c".into(),
        files.conf.clone().into(),
        "-s".into(),
        files.ctl.clone().into(),
    ];
    let mut child = process::spawn_in_netns("BIRD", &t.router_namespace, bird, &args, &files.out)?;
    let rec = ProcessRecord {
        pid: child.id() as i32,
        marker: files.conf.display().to_string(),
    };
    let _ = std::fs::write(files.dir.join("bird.pid"), format!("{}\n", rec.pid));
    let limit = Duration::from_secs(10);
    let end = Instant::now() + limit;
    loop {
        if files.ctl.exists() {
            return Ok((child, rec));
        }
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() > end {
            let logs = format!(
                "{}\n{}",
                process::tail(&files.out, 10),
                process::tail(&files.log, 10)
            );
            if !exited {
                process::stop(&rec, Duration::from_secs(2));
            }
            return Err(BirdError::NotUp(limit, logs));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `birdc show protocols` (for `lab status`), when birdc is installed.
pub fn show_protocols(files: &BirdFiles) -> Option<String> {
    let birdc = on_path("birdc")?;
    let out = Command::new(birdc)
        .arg("-s")
        .arg(&files.ctl)
        .args(["show", "protocols"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{Encap, LabSpec, Tor};

    fn topology() -> Topology {
        Topology::plan(&LabSpec {
            name: "tlab".into(),
            nodes: 3,
            pods_per_node: 1,
            encap: Encap::None,
            route_reflector: false,
            tor: Some(Tor::Bird),
        })
        .unwrap()
    }

    #[test]
    fn each_node_gets_an_ebgp_session_from_its_own_gateway() {
        let conf = config(&topology(), Path::new("/tmp/bird.log"));
        assert!(conf.contains(
            "protocol bgp tortie_node2 {\n  description \"node2 (rack b)\";\n  local 198.18.2.1 as 65000;\n  neighbor 198.18.2.12 as 64602;"
        ), "{conf}");
        assert_eq!(conf.matches("protocol bgp ").count(), 3);
        assert!(conf.contains("protocol kernel { ipv4 { import none; export all; }; }"));
    }

    #[test]
    fn the_generated_configuration_parses_with_the_installed_bird() {
        let Ok(bird) = find() else {
            eprintln!("skipped: no BIRD 2 installed");
            return;
        };
        let dir = std::env::temp_dir().join(format!("tortie-lab-bird-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, config(&topology(), &dir.join("bird.log"))).unwrap();
        let out = Command::new(bird)
            .arg("-p")
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! FRR bgpd, started by hand in the foreground without zebra (`-Z`: never program the root
//! namespace's FIB) or watchfrr, listening on the run's address and port only. The peers are
//! one peer-group (passive, route-reflector clients as a reflector), which is how an operator
//! writes a reflector's configuration and what FRR's update groups are built around. bgpd
//! drops to user frr, so the scratch directory is handed to it; `vtysh --vty_socket DIR`
//! answers queries.

use super::{BGPD, Role, Spec};
use crate::error::BenchError;
use crate::plan::BENCH_AS;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

pub fn config(spec: &Spec, log: &Path) -> String {
    let a = spec.addr;
    let mut s = String::from("frr defaults traditional\nhostname bench\n");
    let _ = writeln!(s, "log file {} warnings\n!", log.display());
    let _ = writeln!(s, "router bgp {BENCH_AS}\n bgp router-id {a}");
    if spec.role == Role::Reflector {
        let _ = writeln!(s, " bgp cluster-id {a}");
    }
    s.push_str(" no bgp default ipv4-unicast\n neighbor peers peer-group\n");
    let _ = writeln!(s, " neighbor peers remote-as {BENCH_AS}");
    s.push_str(" neighbor peers passive\n");
    let _ = writeln!(s, " neighbor peers update-source {a}");
    for p in &spec.peers {
        let _ = writeln!(s, " neighbor {p} peer-group peers");
    }
    s.push_str(" address-family ipv4 unicast\n  neighbor peers activate\n");
    if spec.role == Role::Reflector {
        s.push_str("  neighbor peers route-reflector-client\n");
    }
    s.push_str(" exit-address-family\n!\n");
    s
}

/// uid and gid of user frr, from /etc/passwd.
fn frr_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.first() != Some(&"frr") {
            return None;
        }
        Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
    })
}

/// bgpd runs as frr and writes its pid file, vty socket and log in `dir`.
pub fn give_to_frr(dir: &Path) -> Result<(), BenchError> {
    let (uid, gid) =
        frr_ids().ok_or_else(|| BenchError::target("FRR", "no user frr (apt-get install frr)"))?;
    let chown = |p: &Path| {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))
            .map_err(|e| BenchError::io(format!("chown frr {}", p.display()), e))
    };
    chown(dir)?;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| BenchError::io(format!("listing {}", dir.display()), e))?;
    for e in entries.flatten() {
        chown(&e.path())?;
    }
    Ok(())
}

pub fn command(spec: &Spec, conf: &Path) -> Command {
    let d = &spec.dir;
    let mut c = Command::new(BGPD);
    c.args([
        "-u",
        "frr",
        "-g",
        "frr",
        "-F",
        "traditional",
        "-A",
        "127.0.0.1",
        "-P",
        "0",
        "-Z",
    ])
    .arg("-i")
    .arg(d.join("bgpd.pid"))
    .arg("--vty_socket")
    .arg(d)
    .arg("-p")
    .arg(spec.port.to_string())
    .arg("-l")
    .arg(spec.addr.to_string())
    .arg("-f")
    .arg(conf);
    c
}

pub fn vtysh_args(dir: &Path, cmd: &str) -> Vec<String> {
    vec![
        "--vty_socket".to_string(),
        dir.display().to_string(),
        "-c".to_string(),
        cmd.to_string(),
    ]
}

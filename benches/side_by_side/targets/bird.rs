//! BIRD 2: one `protocol bgp` per peer from a template (passive, multihop, since 127/8 peers
//! are not directly connected, and `strict bind` so it listens on the run's address only),
//! queried with `birdc -s SOCKET`. As a reflector every peer is an `rr client`; as a mesh node
//! it imports everything and exports nothing, as a Calico node exports only its own blocks.

use super::{Role, Spec};
use crate::plan::BENCH_AS;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

pub fn config(spec: &Spec, log: &Path) -> String {
    let mut s = String::new();
    let a = spec.addr;
    let _ = writeln!(
        s,
        "log \"{}\" {{ warning, error, fatal, bug }};",
        log.display()
    );
    let _ = writeln!(s, "router id {a};");
    s.push_str("protocol device { scan time 60; }\n");
    let _ = writeln!(s, "template bgp peers {{");
    let _ = writeln!(s, "  local {a} port {} as {BENCH_AS};", spec.port);
    s.push_str("  strict bind on;\n  multihop;\n  passive on;\n");
    match spec.role {
        Role::Reflector => {
            let _ = writeln!(s, "  rr client;\n  rr cluster id {a};");
            s.push_str("  ipv4 { import all; export all; };\n");
        }
        Role::MeshNode => s.push_str("  ipv4 { import all; export none; };\n"),
    }
    s.push_str("}\n");
    for (i, p) in spec.peers.iter().enumerate() {
        let _ = writeln!(
            s,
            "protocol bgp p{i} from peers {{ neighbor {p} as {BENCH_AS}; }}"
        );
    }
    s
}

pub fn command(conf: &Path, ctl: &Path) -> Command {
    let mut c = Command::new("bird");
    c.arg("-f").arg("-c").arg(conf).arg("-s").arg(ctl);
    c
}

pub fn ctl_args(ctl: &Path, args: &[&str]) -> Vec<String> {
    let mut v = vec!["-s".to_string(), ctl.display().to_string()];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// `N of M routes for K networks in table master4`: K.
pub fn parse_route_count(out: &str) -> Option<u64> {
    out.lines().find_map(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "networks")?;
        words.get(at.checked_sub(1)?)?.parse().ok()
    })
}

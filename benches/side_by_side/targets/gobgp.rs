//! GoBGP: one `[[neighbors]]` per peer in passive mode, as route-reflector clients of the
//! run's cluster id, with the gRPC API on a free 127.0.0.1 port (its default binds every
//! address) and pprof off; queried with `gobgp -u 127.0.0.1 -p PORT`.

use super::{Role, Spec};
use crate::plan::BENCH_AS;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

pub fn config(spec: &Spec) -> String {
    let a = spec.addr;
    let mut s = format!(
        "[global.config]\n  as = {BENCH_AS}\n  router-id = \"{a}\"\n  port = {}\n  local-address-list = [\"{a}\"]\n",
        spec.port
    );
    for p in &spec.peers {
        let _ = write!(
            s,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{p}\"\n    peer-as = {BENCH_AS}\n  [neighbors.transport.config]\n    local-address = \"{a}\"\n    passive-mode = true\n"
        );
        if spec.role == Role::Reflector {
            let _ = write!(
                s,
                "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"{a}\"\n"
            );
        }
        s.push_str(
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n",
        );
    }
    s
}

pub fn command(conf: &Path, api_port: u16) -> Command {
    let mut c = Command::new("gobgpd");
    c.arg("-f")
        .arg(conf)
        .arg("--api-hosts")
        .arg(format!("127.0.0.1:{api_port}"))
        .arg("--pprof-disable")
        .arg("--log-level")
        .arg("warn");
    c
}

pub fn cli_args(api_port: u16, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "-u".to_string(),
        "127.0.0.1".to_string(),
        "-p".to_string(),
        api_port.to_string(),
    ];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

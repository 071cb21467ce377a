//! FRR bgpd (queried with `vtysh --vty_socket DIR -c ... json`).
//!
//! Quirks handled here:
//! * Started by hand, in the foreground, without watchfrr/systemd: `bgpd -Z` (no zebra)
//!   in the root namespace; zebra is only ever started inside a namespace
//!   (`SpeakerConfig::program_fib`).
//! * The daemons drop to user `frr` (`-u frr -g frr`; `-u root` fails with "not part of vty
//!   group"), so the state dir is chowned to frr.
//! * `vtysh` needs `--vty_socket DIR` ("failed to connect to any daemons" otherwise);
//!   `HOME` is pointed at the temp dir to keep `.history_frr` out of the real home.
//! * FRR 8 needs `no bgp ebgp-requires-policy` (else nothing is exchanged over eBGP) and
//!   `no bgp network import-check` (else `network X` needs X in the RIB).
//! * 127.x / `lo` peers need `disable-connected-check` (iBGP) or `ebgp-multihop` (eBGP).
//! * Next hops of originated prefixes are set with an outbound route-map per family.
//! * bgpd creates `/var/tmp/frr` (compiled-in crash-log dir) and leaves it; harmless.
//! * The TCP vty port is disabled (`-P 0`).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::config::{PeerKey, SpeakerConfig};
use super::process::Proc;
use super::{
    Daemon, Rib, Route, TempDir, chown_r, first_line_of, insert_route, run, tail, try_wait_until,
    user_ids,
};

const BGPD: &str = "/usr/lib/frr/bgpd";
const ZEBRA: &str = "/usr/lib/frr/zebra";

/// A running FRR bgpd (and zebra, inside a namespace, if the config asks for a FIB).
pub struct Frr {
    cfg: SpeakerConfig,
    dir: TempDir,
    bgpd: Option<Proc>,
    zebra: Option<Proc>,
}

impl Frr {
    /// `bgpd version 8.4.4`
    pub fn version() -> String {
        first_line_of(BGPD, &["--version"], "version")
    }

    /// Write bgpd.conf, start bgpd (and zebra if `program_fib`), wait until vtysh answers.
    pub fn start(cfg: SpeakerConfig) -> Frr {
        cfg.check_addresses();
        let dir = TempDir::new("frr");
        let mut f = Frr {
            cfg,
            dir,
            bgpd: None,
            zebra: None,
        };
        std::fs::create_dir_all(f.state_dir()).expect("create frr dir");
        std::fs::write(f.conf_path(), f.config_text()).expect("write bgpd.conf");
        std::fs::write(
            f.state_dir().join("zebra.conf"),
            format!("log file {}\n", f.state_dir().join("zebra.log").display()),
        )
        .expect("write zebra.conf");
        let (uid, gid) = user_ids("frr").expect("user frr missing (apt-get install frr)");
        chown_r(&f.state_dir(), uid, gid);
        f.spawn();
        f
    }

    fn command(&self, prog: &str) -> Command {
        match &self.cfg.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, prog]);
                c
            }
            None => Command::new(prog),
        }
    }

    fn common_args(&self, cmd: &mut Command, daemon: &str) {
        let d = self.state_dir();
        cmd.args([
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
        ])
        .arg("-i")
        .arg(d.join(format!("{daemon}.pid")))
        .arg("--vty_socket")
        .arg(&d);
    }

    fn spawn(&mut self) {
        let d = self.state_dir();
        if self.cfg.program_fib {
            let mut z = self.command(ZEBRA);
            self.common_args(&mut z, "zebra");
            z.arg("-f")
                .arg(d.join("zebra.conf"))
                .arg("-z")
                .arg(d.join("zserv.api"));
            self.zebra = Some(
                Proc::spawn("zebra", z, &d.join("zebra.out")).unwrap_or_else(|e| panic!("{e}")),
            );
            let r = try_wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
                if d.join("zserv.api").exists() {
                    Ok(())
                } else {
                    Err("no zserv.api yet".into())
                }
            });
            if let Err(e) = r {
                panic!("zebra did not come up: {e}\n{}", self.logs());
            }
        }
        let mut b = self.command(BGPD);
        self.common_args(&mut b, "bgpd");
        if self.cfg.program_fib {
            b.arg("-z").arg(d.join("zserv.api"));
        } else {
            b.arg("-Z");
        }
        b.arg("-p").arg(self.cfg.port.to_string());
        for a in &self.cfg.listen {
            b.arg("-l").arg(a.to_string());
        }
        b.arg("-f").arg(self.conf_path());
        self.bgpd =
            Some(Proc::spawn("bgpd", b, &d.join("bgpd.out")).unwrap_or_else(|e| panic!("{e}")));
        let r = try_wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            if let Some(st) = self.bgpd.as_mut().and_then(|p| p.exit_status()) {
                return Err(format!("bgpd exited: {st}"));
            }
            let v = self.vtysh_json("show bgp summary json")?;
            if v.get("ipv4Unicast").is_some()
                || v.get("ipv6Unicast").is_some()
                || v.as_object().is_some()
            {
                Ok(())
            } else {
                Err(v.to_string())
            }
        });
        if let Err(e) = r {
            panic!("bgpd did not come up: {e}\n{}", self.logs());
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
    /// The frr-owned directory holding config, pid files, vty sockets and logs.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("frr")
    }
    pub fn conf_path(&self) -> PathBuf {
        self.state_dir().join("bgpd.conf")
    }
    pub fn log_path(&self) -> PathBuf {
        self.state_dir().join("bgpd.log")
    }

    pub fn config_text(&self) -> String {
        frr_conf(&self.cfg, &self.log_path())
    }

    /// `vtysh --vty_socket DIR -c CMD1 -c CMD2 ...`
    pub fn vtysh(&self, cmds: &[&str]) -> Result<String, String> {
        let mut c = Command::new("vtysh");
        c.env("HOME", self.dir.path())
            .arg("--vty_socket")
            .arg(self.state_dir());
        for cmd in cmds {
            c.arg("-c").arg(cmd);
        }
        run(&mut c)
    }

    /// One vtysh command whose output is JSON (include the `json` keyword).
    pub fn vtysh_json(&self, cmd: &str) -> Result<Value, String> {
        let out = self.vtysh(&[cmd])?;
        serde_json::from_str(out.trim())
            .map_err(|e| format!("vtysh {cmd:?}: bad JSON ({e}): {}", out.trim()))
    }

    /// `bgpState` of the neighbor (Established, Active, Connect, OpenSent, Idle...).
    pub fn neighbor_state(&self, peer: impl Into<PeerKey>) -> Result<String, String> {
        let n = self.cfg.neighbor_or_panic(&peer.into());
        let addr = n.addr.to_string();
        let v = self.vtysh_json(&format!("show bgp neighbors {addr} json"))?;
        v[&addr]["bgpState"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no bgpState for {addr}: {v}"))
    }

    /// The full `show bgp neighbors ADDR json` object for the neighbor.
    pub fn neighbor_json(&self, peer: impl Into<PeerKey>) -> Result<Value, String> {
        let n = self.cfg.neighbor_or_panic(&peer.into());
        let addr = n.addr.to_string();
        let v = self.vtysh_json(&format!("show bgp neighbors {addr} json"))?;
        Ok(v[&addr].clone())
    }

    /// The BGP RIB (`show bgp ipv4|ipv6 unicast json`).
    pub fn bgp_rib(&self) -> Result<Rib, String> {
        let mut rib = Rib::new();
        for fam in ["ipv4", "ipv6"] {
            let v = self.vtysh_json(&format!("show bgp {fam} unicast json"))?;
            parse_rib(&v, &mut rib);
        }
        Ok(rib)
    }

    /// `clear bgp ADDR` (hard reset of one session).
    pub fn clear(&self, peer: impl Into<PeerKey>) -> Result<String, String> {
        let addr = self.cfg.neighbor_or_panic(&peer.into()).addr.to_string();
        self.vtysh(&[&format!("clear bgp {addr}")])
    }

    /// `clear bgp *` (all sessions).
    pub fn clear_all(&self) -> Result<String, String> {
        self.vtysh(&["clear bgp *"])
    }

    /// `clear bgp ADDR soft` (route refresh in and out, sessions stay up).
    pub fn clear_soft(&self, peer: impl Into<PeerKey>) -> Result<String, String> {
        let addr = self.cfg.neighbor_or_panic(&peer.into()).addr.to_string();
        self.vtysh(&[&format!("clear bgp {addr} soft")])
    }

    /// Run configuration commands (`configure terminal` is prepended).
    pub fn configure(&self, lines: &[&str]) -> Result<String, String> {
        let mut cmds = vec!["configure terminal"];
        cmds.extend_from_slice(lines);
        self.vtysh(&cmds)
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.bgpd.take() {
            p.stop(Duration::from_secs(5));
        }
        if let Some(mut p) = self.zebra.take() {
            p.stop(Duration::from_secs(5));
        }
    }

    /// SIGKILL bgpd (zebra, if any, keeps running).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.bgpd.take() {
            p.kill();
        }
    }

    /// Start again with the same config after [`Frr::stop`] / [`Frr::kill`].
    pub fn start_again(&mut self) {
        assert!(self.bgpd.is_none(), "bgpd is still running");
        if let Some(mut z) = self.zebra.take() {
            z.stop(Duration::from_secs(3));
        }
        self.spawn();
    }
}

impl Daemon for Frr {
    fn kind(&self) -> &'static str {
        "frr"
    }
    fn config(&self) -> &SpeakerConfig {
        &self.cfg
    }
    fn peer_state(&self, peer: &PeerKey) -> Result<String, String> {
        self.neighbor_state(peer)
    }
    fn is_established(&self, peer: &PeerKey) -> bool {
        self.neighbor_state(peer).is_ok_and(|s| s == "Established")
    }
    fn rib(&self) -> Result<Rib, String> {
        self.bgp_rib()
    }
    fn pid(&self) -> Option<i32> {
        self.bgpd.as_ref().map(|p| p.pid())
    }
    fn logs(&self) -> String {
        let d = self.state_dir();
        let mut s = format!(
            "--- bgpd.log ({})\n{}\n--- bgpd stdout/stderr\n{}",
            self.log_path().display(),
            tail(&self.log_path(), 30),
            tail(&d.join("bgpd.out"), 10)
        );
        if self.cfg.program_fib {
            let _ = write!(
                s,
                "\n--- zebra\n{}\n{}",
                tail(&d.join("zebra.log"), 15),
                tail(&d.join("zebra.out"), 5)
            );
        }
        s
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if let Some(mut p) = self.bgpd.take() {
            p.stop(Duration::from_secs(3));
        }
        if let Some(mut p) = self.zebra.take() {
            p.stop(Duration::from_secs(3));
        }
    }
}

/// bgpd.conf for `cfg`.
pub fn frr_conf(cfg: &SpeakerConfig, log: &std::path::Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "frr defaults traditional\nhostname frr-{}\nlog file {}\n!",
        cfg.router_id,
        log.display()
    );
    // Next hops of originated prefixes: one route-map per family, applied outbound.
    let mut has_rm = [false, false];
    for (i, o) in cfg.originate.iter().enumerate() {
        let Some(nh) = o.next_hop else { continue };
        let v6 = o.is_v6();
        let (pl, rm, set) = if v6 {
            (
                "ipv6 prefix-list",
                "ORIG6",
                format!("set ipv6 next-hop global {nh}"),
            )
        } else {
            ("ip prefix-list", "ORIG4", format!("set ip next-hop {nh}"))
        };
        let _ = writeln!(s, "{pl} ORIG{i} seq 5 permit {}", o.prefix);
        let _ = writeln!(
            s,
            "route-map {rm} permit {}\n match {} address prefix-list ORIG{i}\n {set}\n!",
            10 * (i + 1),
            if v6 { "ipv6" } else { "ip" }
        );
        has_rm[v6 as usize] = true;
    }
    for (v6, on) in has_rm.iter().enumerate() {
        if *on {
            let _ = writeln!(
                s,
                "route-map ORIG{} permit 65000\n!",
                if v6 == 1 { 6 } else { 4 }
            );
        }
    }
    let _ = writeln!(s, "router bgp {}", cfg.local_as);
    let _ = writeln!(s, " bgp router-id {}", cfg.router_id);
    s.push_str(" no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n");
    if cfg.neighbors.iter().any(|n| n.graceful_restart) {
        s.push_str(" bgp graceful-restart\n");
        if let Some(n) = cfg.neighbors.iter().find(|n| n.graceful_restart) {
            let _ = writeln!(s, " bgp graceful-restart restart-time {}", n.gr_time);
        }
    }
    for n in &cfg.neighbors {
        let a = n.addr;
        let _ = writeln!(s, " neighbor {a} remote-as {}", n.asn);
        if n.port != 179 {
            let _ = writeln!(s, " neighbor {a} port {}", n.port);
        }
        let _ = writeln!(s, " neighbor {a} update-source {}", cfg.local_addr_for(n));
        if n.multihop {
            if n.is_ebgp(cfg.local_as) {
                let _ = writeln!(s, " neighbor {a} ebgp-multihop 64");
            } else {
                let _ = writeln!(s, " neighbor {a} disable-connected-check");
            }
        }
        let _ = writeln!(
            s,
            " neighbor {a} timers {} {}",
            n.keepalive_time(),
            n.hold_time
        );
        let _ = writeln!(s, " neighbor {a} timers connect {}", n.connect_retry.max(1));
        if n.passive {
            let _ = writeln!(s, " neighbor {a} passive");
        }
        if let Some(pw) = &n.password {
            let _ = writeln!(s, " neighbor {a} password {pw}");
        }
        if !n.graceful_restart && cfg.neighbors.iter().any(|n| n.graceful_restart) {
            let _ = writeln!(s, " neighbor {a} graceful-restart-disable");
        }
    }
    for (v6, fam) in [(false, "ipv4"), (true, "ipv6")] {
        let nets: Vec<_> = cfg.originate.iter().filter(|o| o.is_v6() == v6).collect();
        let peers: Vec<_> = cfg
            .neighbors
            .iter()
            .filter(|n| if v6 { n.ipv6 } else { n.ipv4 })
            .collect();
        if nets.is_empty() && peers.is_empty() {
            continue;
        }
        let _ = writeln!(s, " !\n address-family {fam} unicast");
        for o in nets {
            let _ = writeln!(s, "  network {}", o.prefix);
        }
        for n in peers {
            let _ = writeln!(s, "  neighbor {} activate", n.addr);
            if n.add_path {
                let _ = writeln!(s, "  neighbor {} addpath-tx-all-paths", n.addr);
            }
            if has_rm[v6 as usize] {
                let _ = writeln!(
                    s,
                    "  neighbor {} route-map ORIG{} out",
                    n.addr,
                    if v6 { 6 } else { 4 }
                );
            }
        }
        s.push_str(" exit-address-family\n");
    }
    s.push_str("!\n");
    s
}

/// Parse `show bgp ipv4|ipv6 unicast json` into `rib`.
pub fn parse_rib(v: &Value, rib: &mut Rib) {
    let Some(routes) = v["routes"].as_object() else {
        return;
    };
    for (prefix, paths) in routes {
        let Ok(p) = prefix.parse() else { continue };
        for path in paths.as_array().into_iter().flatten() {
            let mut r = Route {
                prefix: Some(p),
                ..Default::default()
            };
            r.best = path["bestpath"].as_bool().unwrap_or(false);
            r.stale = path["stale"].as_bool().unwrap_or(false);
            r.from = path["peerId"]
                .as_str()
                .and_then(|a| a.parse::<IpAddr>().ok());
            r.path_id = path["remotePathId"].as_u64().map(|x| x as u32);
            r.source = path["peerId"].as_str().unwrap_or("").to_string();
            r.as_path = path["path"]
                .as_str()
                .unwrap_or("")
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|x| x.parse().ok())
                .collect();
            // the first next hop that is not link-local
            r.next_hop = path["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["scope"].as_str() != Some("link-local"))
                .find_map(|n| n["ip"].as_str().and_then(|x| x.parse().ok()));
            for k in ["valid", "origin", "metric", "locPrf", "weight", "community"] {
                if let Some(x) = path.get(k) {
                    r.attrs.insert(k.to_string(), x.to_string());
                }
            }
            insert_route(rib, r);
        }
    }
}

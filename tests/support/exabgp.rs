//! ExaBGP 4.2.
//!
//! ExaBGP only CONNECTS OUT (it has no listener unless `exabgp.tcp.bind` is set, which this
//! harness never does): it suits tests where the other side (tortie, FRR, BIRD, GoBGP)
//! listens, i.e. is passive or at least accepts. `Neighbor::passive` is therefore refused.
//!
//! What it receives is reported by an API `process` with `encoder json`: a small Python
//! helper (python3 ships with exabgp) appends every JSON message to `received.json` and
//! forwards lines appended to `commands.txt` to ExaBGP (so tests can announce and withdraw
//! at run time). [`ExaBgp::rib`] replays that file: announcements, withdrawals, and a
//! session going down (which clears that peer's routes).
//!
//! Quirks handled here:
//! * Runs in the foreground (`exabgp.daemon.daemonize=false`) as root
//!   (`exabgp.daemon.user=root`; the Debian default user is `exabgp`), without the CLI
//!   FIFOs (`exabgp.api.cli=false`) and without command acks (`exabgp.api.ack=false`).
//! * An API process whose stdout closes counts as dead: after 5 deaths ExaBGP shuts down
//!   ("Too many death"). So the helper never closes stdout (a plain `cat >> file` with
//!   `exec` fails this way).
//! * `run` arguments are split on spaces; quoting inside `run` is unreliable, so the
//!   helper is a script file in the temp dir.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::config::{PeerKey, SpeakerConfig};
use super::process::Proc;
use super::{Daemon, Rib, Route, TempDir, first_line_of, insert_route, tail, try_wait_until};

const HELPER: &str = r#"import os, sys, threading, time
cmd_path, out_path = sys.argv[1], sys.argv[2]
ppid = os.getppid()
def pump():
    with open(out_path, "a") as out:
        for line in sys.stdin:
            out.write(line)
            out.flush()
    os._exit(0)
threading.Thread(target=pump, daemon=True).start()
pos = 0
while True:
    if os.getppid() != ppid:
        os._exit(0)
    try:
        with open(cmd_path) as f:
            f.seek(pos)
            data = f.read()
        end = data.rfind("\n") + 1
        if end:
            sys.stdout.write(data[:end])
            sys.stdout.flush()
            pos += len(data[:end].encode())
    except FileNotFoundError:
        pass
    time.sleep(0.1)
"#;

/// A running ExaBGP.
pub struct ExaBgp {
    cfg: SpeakerConfig,
    dir: TempDir,
    proc: Option<Proc>,
}

/// One message ExaBGP reported (a line of `received.json`).
#[derive(Clone, Debug)]
pub struct ExaEvent {
    /// "state", "update", "notification", "open", "keepalive", ...
    pub kind: String,
    pub peer: Option<IpAddr>,
    pub json: Value,
}

impl ExaBgp {
    /// `ExaBGP 4.2.21`
    pub fn version() -> String {
        let l = first_line_of("exabgp", &["--version"], "ExaBGP");
        // "ExaBGP : 4.2.21"
        match l.split_once(':') {
            Some((a, b)) => format!("{} {}", a.trim(), b.trim()),
            None => l,
        }
    }

    /// Write the config and helper, start ExaBGP. It connects to every neighbor by itself;
    /// wait with [`Daemon::wait_established`].
    pub fn start(cfg: SpeakerConfig) -> ExaBgp {
        cfg.check_addresses();
        assert!(
            cfg.neighbors.iter().all(|n| !n.passive),
            "ExaBGP only connects out in this harness: make the other side passive instead"
        );
        let dir = TempDir::new("exabgp");
        let mut x = ExaBgp {
            cfg,
            dir,
            proc: None,
        };
        std::fs::write(x.dir.join("api.py"), HELPER).expect("write api.py");
        std::fs::write(x.commands_path(), "").expect("write commands.txt");
        std::fs::write(x.received_path(), "").expect("write received.json");
        std::fs::write(x.conf_path(), x.config_text()).expect("write exabgp.conf");
        x.spawn();
        x
    }

    fn spawn(&mut self) {
        let mut cmd = match &self.cfg.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "env"]);
                c
            }
            None => Command::new("env"),
        };
        cmd.arg("exabgp.daemon.user=root")
            .arg("exabgp.daemon.daemonize=false")
            .arg("exabgp.api.cli=false")
            .arg("exabgp.api.ack=false")
            .arg("exabgp.tcp.bind=")
            .arg(format!(
                "exabgp.log.destination={}",
                self.log_path().display()
            ))
            .arg("exabgp")
            .arg(self.conf_path());
        let p = Proc::spawn("exabgp", cmd, &self.dir.join("exabgp.out"))
            .unwrap_or_else(|e| panic!("{e}"));
        self.proc = Some(p);
        // Ready = the config was loaded (or it died).
        let r = try_wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            if let Some(st) = self.proc.as_mut().and_then(|p| p.exit_status()) {
                return Err(format!("exabgp exited: {st}"));
            }
            let out = std::fs::read_to_string(self.dir.join("exabgp.out")).unwrap_or_default();
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if out.contains("loaded new configuration") || log.contains("loaded new configuration")
            {
                Ok(())
            } else {
                Err("configuration not loaded yet".into())
            }
        });
        if let Err(e) = r {
            panic!("ExaBGP did not come up: {e}\n{}", self.logs());
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("exabgp.conf")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("exabgp.log")
    }
    /// JSON messages ExaBGP reported, one per line.
    pub fn received_path(&self) -> PathBuf {
        self.dir.join("received.json")
    }
    /// API commands; lines appended here are sent to ExaBGP.
    pub fn commands_path(&self) -> PathBuf {
        self.dir.join("commands.txt")
    }

    pub fn config_text(&self) -> String {
        exabgp_conf(
            &self.cfg,
            &self.dir.join("api.py"),
            &self.commands_path(),
            &self.received_path(),
        )
    }

    /// Send an API command, e.g. `neighbor 127.1.2.3 announce route 198.19.9.0/26
    /// next-hop 192.0.2.9` or `announce route ...` (all neighbors).
    pub fn command(&self, line: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.commands_path())
            .expect("open commands.txt");
        writeln!(f, "{}", line.trim()).expect("write commands.txt");
    }

    /// Announce `prefix` with `next_hop` to all neighbors.
    pub fn announce(&self, prefix: &str, next_hop: &str) {
        self.command(&format!("announce route {prefix} next-hop {next_hop}"));
    }

    /// Withdraw `prefix` from all neighbors.
    pub fn withdraw(&self, prefix: &str, next_hop: &str) {
        self.command(&format!("withdraw route {prefix} next-hop {next_hop}"));
    }

    /// Every JSON message received so far (non-JSON lines are skipped).
    pub fn events(&self) -> Vec<ExaEvent> {
        let text = std::fs::read_to_string(self.received_path()).unwrap_or_default();
        text.lines()
            .filter(|l| l.ends_with('}'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|json| ExaEvent {
                kind: json["type"].as_str().unwrap_or("").to_string(),
                peer: json["neighbor"]["address"]["peer"]
                    .as_str()
                    .and_then(|a| a.parse().ok()),
                json,
            })
            .collect()
    }

    /// Last reported state with the neighbor ("connected", "up", "down"), if any.
    pub fn state(&self, peer: impl Into<PeerKey>) -> Option<String> {
        let n = self.cfg.neighbor_or_panic(&peer.into());
        self.events()
            .iter()
            .rev()
            .find(|e| e.kind == "state" && e.peer == Some(n.addr))
            .and_then(|e| e.json["neighbor"]["state"].as_str().map(str::to_string))
    }

    /// Routes received, from replaying announcements and withdrawals (per peer; a peer
    /// going down clears its routes).
    pub fn received(&self) -> Rib {
        replay(&self.events())
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "exabgp is still running");
        self.spawn();
    }
}

impl Daemon for ExaBgp {
    fn kind(&self) -> &'static str {
        "exabgp"
    }
    fn config(&self) -> &SpeakerConfig {
        &self.cfg
    }
    fn peer_state(&self, peer: &PeerKey) -> Result<String, String> {
        Ok(self
            .state(peer)
            .unwrap_or_else(|| "no state reported yet".into()))
    }
    fn is_established(&self, peer: &PeerKey) -> bool {
        self.state(peer).as_deref() == Some("up")
    }
    fn rib(&self) -> Result<Rib, String> {
        Ok(self.received())
    }
    fn pid(&self) -> Option<i32> {
        self.proc.as_ref().map(|p| p.pid())
    }
    fn logs(&self) -> String {
        format!(
            "--- exabgp.log ({})\n{}\n--- exabgp stdout/stderr\n{}\n--- received.json\n{}",
            self.log_path().display(),
            tail(&self.log_path(), 30),
            tail(&self.dir.join("exabgp.out"), 10),
            tail(&self.received_path(), 10)
        )
    }
}

impl Drop for ExaBgp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(3));
        }
    }
}

/// exabgp.conf for `cfg`.
pub fn exabgp_conf(
    cfg: &SpeakerConfig,
    helper: &std::path::Path,
    commands: &std::path::Path,
    received: &std::path::Path,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "process api {{\n  run /usr/bin/python3 {} {} {};\n  encoder json;\n}}\n",
        helper.display(),
        commands.display(),
        received.display()
    );
    for n in &cfg.neighbors {
        let _ = writeln!(s, "neighbor {} {{", n.addr);
        let _ = writeln!(s, "  router-id {};", cfg.router_id);
        let _ = writeln!(s, "  local-address {};", cfg.local_addr_for(n));
        let _ = writeln!(s, "  local-as {};\n  peer-as {};", cfg.local_as, n.asn);
        if n.port != 179 {
            let _ = writeln!(s, "  connect {};", n.port);
        }
        let _ = writeln!(s, "  hold-time {};", n.hold_time);
        if let Some(pw) = &n.password {
            let _ = writeln!(s, "  md5-password \"{pw}\";");
        }
        s.push_str("  capability {\n    route-refresh enable;\n");
        if n.add_path {
            s.push_str("    add-path send/receive;\n");
        }
        if n.graceful_restart {
            let _ = writeln!(s, "    graceful-restart {};", n.gr_time);
        }
        s.push_str("  }\n  family {\n");
        if n.ipv4 {
            s.push_str("    ipv4 unicast;\n");
        }
        if n.ipv6 {
            s.push_str("    ipv6 unicast;\n");
        }
        s.push_str("  }\n  api {\n    processes [ api ];\n    receive { parsed; update; }\n    neighbor-changes;\n  }\n");
        let routes: Vec<_> = cfg
            .originate
            .iter()
            .filter(|o| if o.is_v6() { n.ipv6 } else { n.ipv4 })
            .collect();
        if !routes.is_empty() {
            s.push_str("  static {\n");
            for o in routes {
                let nh = o
                    .next_hop
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "self".into());
                let _ = writeln!(s, "    route {} next-hop {nh};", o.prefix);
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n\n");
    }
    s
}

/// Replay ExaBGP JSON events into the routes currently held (keyed per peer so that one
/// peer's withdraw does not remove another's path).
pub fn replay(events: &[ExaEvent]) -> Rib {
    use std::collections::BTreeMap;
    // (peer, prefix, path id) -> route
    let mut held: BTreeMap<(Option<IpAddr>, ipnet::IpNet, Option<u32>), Route> = BTreeMap::new();
    for e in events {
        match e.kind.as_str() {
            "state" if e.json["neighbor"]["state"].as_str() == Some("down") => {
                held.retain(|k, _| k.0 != e.peer);
            }
            "update" => {
                let upd = &e.json["neighbor"]["message"]["update"];
                let attr = &upd["attribute"];
                let as_path: Vec<u32> = attr["as-path"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as u32)
                    .collect();
                if let Some(w) = upd["withdraw"].as_object() {
                    for (_fam, nlris) in w {
                        for nlri in nlris.as_array().into_iter().flatten() {
                            if let Some((p, id)) = nlri_of(nlri) {
                                held.remove(&(e.peer, p, id));
                            }
                        }
                    }
                }
                if let Some(a) = upd["announce"].as_object() {
                    for (_fam, by_nh) in a {
                        let Some(by_nh) = by_nh.as_object() else {
                            continue;
                        };
                        for (nh, nlris) in by_nh {
                            // "2001:db8::1" or "2001:db8::1, fe80::1" (global, link-local)
                            let next_hop = nh.split(',').next().and_then(|x| x.trim().parse().ok());
                            for nlri in nlris.as_array().into_iter().flatten() {
                                if let Some((p, id)) = nlri_of(nlri) {
                                    let mut r = Route {
                                        prefix: Some(p),
                                        next_hop,
                                        as_path: as_path.clone(),
                                        from: e.peer,
                                        best: true,
                                        path_id: id,
                                        source: e.peer.map(|a| a.to_string()).unwrap_or_default(),
                                        ..Default::default()
                                    };
                                    if let Some(obj) = attr.as_object() {
                                        for (k, v) in obj {
                                            if k != "as-path" {
                                                r.attrs.insert(k.clone(), v.to_string());
                                            }
                                        }
                                    }
                                    held.insert((e.peer, p, id), r);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut rib = Rib::new();
    for (_, r) in held {
        insert_route(&mut rib, r);
    }
    rib
}

fn nlri_of(v: &Value) -> Option<(ipnet::IpNet, Option<u32>)> {
    let p = v["nlri"]
        .as_str()
        .or_else(|| v.as_str())?
        .parse::<ipnet::IpNet>()
        .ok()?;
    let id = match &v["path-information"] {
        Value::String(s) => s.parse::<std::net::Ipv4Addr>().ok().map(u32::from),
        Value::Number(n) => n.as_u64().map(|x| x as u32),
        _ => None,
    };
    Some((p, id))
}

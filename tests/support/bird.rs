//! BIRD 2 (`bird -f`, queried with `birdc -s SOCKET`).
//!
//! Quirks handled here:
//! * Peers on 127.x / ::1 (or on `lo` addresses in a namespace) are not "directly
//!   connected": such neighbors get `multihop` (else "Invalid next hop").
//! * `strict bind on` so several BIRDs (and other daemons) can share a port on
//!   different 127.x addresses.
//! * A per-prefix NEXT_HOP is set in the channel's export filter (`bgp_next_hop = X`),
//!   which BIRD keeps ("explicitly set in export filter"); GoBGP drops 127/8 next hops.
//! * Timers are short for tests: `connect delay time 1`, `connect retry time N`,
//!   `error wait time 1, 10` (the default 60 s wait after an error would stall tests).
//! * BIRD deletes its pid file and socket on exit; it runs in the foreground (`-f`) as
//!   our child, so its PID is known without the pid file.
//! * Routes learned over multihop with 192.0.2.x next hops show as `unreachable` (no IGP
//!   route); they are in the table all the same.
//! * Classic graceful-restart stale routes are not marked in `show route`: a route is
//!   reported stale when its protocol says "Neighbor graceful restart active" (or BIRD
//!   prints the LLGR `s` marker).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;

use super::config::{PeerKey, SpeakerConfig};
use super::process::Proc;
use super::{Daemon, Rib, Route, TempDir, first_line_of, insert_route, run, tail, try_wait_until};

/// A running BIRD.
pub struct Bird {
    cfg: SpeakerConfig,
    dir: TempDir,
    proc: Option<Proc>,
}

/// What `show protocols all NAME` says about one BGP protocol.
#[derive(Clone, Debug, Default)]
pub struct BirdProtocol {
    pub name: String,
    /// `up`, `start`, `down`...
    pub state: String,
    /// `BGP state:` line: Established, Active, Connect, Passive, OpenSent, Idle...
    pub bgp_state: String,
    pub last_error: Option<String>,
    /// "Neighbor graceful restart active": the peer's routes are kept as stale.
    pub gr_active: bool,
    pub raw: String,
}

impl Bird {
    /// `BIRD version 2.0.12`
    pub fn version() -> String {
        first_line_of("bird", &["--version"], "BIRD")
    }

    /// Write the config, start BIRD, wait until `birdc` answers. Panics on failure.
    pub fn start(cfg: SpeakerConfig) -> Bird {
        cfg.check_addresses();
        let dir = TempDir::new("bird");
        let mut b = Bird {
            cfg,
            dir,
            proc: None,
        };
        std::fs::write(b.conf_path(), b.config_text()).expect("write bird.conf");
        if let Err(e) = run(Command::new("bird").arg("-p").arg("-c").arg(b.conf_path())) {
            panic!("bird.conf does not parse: {e}\n{}", b.config_text());
        }
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let mut cmd = match &self.cfg.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "bird"]);
                c
            }
            None => Command::new("bird"),
        };
        cmd.arg("-f")
            .arg("-c")
            .arg(self.conf_path())
            .arg("-s")
            .arg(self.ctl_path());
        let _ = std::fs::remove_file(self.ctl_path());
        let p =
            Proc::spawn("bird", cmd, &self.dir.join("bird.out")).unwrap_or_else(|e| panic!("{e}"));
        self.proc = Some(p);
        let r = try_wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            if let Some(p) = self.proc.as_mut() {
                if let Some(st) = p.exit_status() {
                    return Err(format!("bird exited: {st}"));
                }
            }
            match self.birdc(&["show", "status"]) {
                Ok(s) if s.contains("Daemon is up and running") => Ok(()),
                Ok(s) => Err(s),
                Err(e) => Err(e),
            }
        });
        if let Err(e) = r {
            panic!("BIRD did not come up: {e}\n{}", self.logs());
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("bird.conf")
    }
    pub fn ctl_path(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("bird.log")
    }

    /// The generated bird.conf.
    pub fn config_text(&self) -> String {
        bird_conf(&self.cfg, &self.log_path())
    }

    /// Run `birdc -s SOCKET args...` (works from the root namespace for a BIRD inside a
    /// namespace: the socket is a file). BIRD error replies (codes 8xxx/9xxx) are `Err`.
    pub fn birdc(&self, args: &[&str]) -> Result<String, String> {
        let out = run(Command::new("birdc")
            .arg("-s")
            .arg(self.ctl_path())
            .args(args))?;
        if out
            .lines()
            .any(|l| l.starts_with("Unable to connect") || l.starts_with("syntax error"))
        {
            return Err(out);
        }
        Ok(out)
    }

    /// BIRD's protocol name for a neighbor.
    pub fn protocol_name(&self, peer: impl Into<PeerKey>) -> String {
        self.cfg.neighbor_or_panic(&peer.into()).name.clone()
    }

    /// `show protocols all NAME`, parsed.
    pub fn protocol(&self, peer: impl Into<PeerKey>) -> Result<BirdProtocol, String> {
        let name = self.protocol_name(peer);
        let raw = self.birdc(&["show", "protocols", "all", &name])?;
        Ok(parse_protocol(&name, &raw))
    }

    /// `BGP state` of the protocol for `peer`.
    pub fn bgp_state(&self, peer: impl Into<PeerKey>) -> Result<String, String> {
        self.protocol(peer).map(|p| p.bgp_state)
    }

    /// `show route all` (all tables), parsed; stale flags filled in from the protocols'
    /// graceful restart state.
    pub fn routes(&self) -> Result<Rib, String> {
        self.routes_cmd(&["show", "route", "all"])
    }

    /// `show route all export NAME`: what BIRD sends to `peer`.
    pub fn exported_to(&self, peer: impl Into<PeerKey>) -> Result<Rib, String> {
        let name = self.protocol_name(peer);
        self.routes_cmd(&["show", "route", "all", "export", &name])
    }

    /// `show route all protocol NAME`: what BIRD learned from `peer`.
    pub fn learned_from(&self, peer: impl Into<PeerKey>) -> Result<Rib, String> {
        let name = self.protocol_name(peer);
        self.routes_cmd(&["show", "route", "all", "protocol", &name])
    }

    fn routes_cmd(&self, args: &[&str]) -> Result<Rib, String> {
        let out = self.birdc(args)?;
        let mut rib = parse_routes(&out);
        let gr: BTreeSet<String> = self
            .cfg
            .neighbors
            .iter()
            .filter(|n| n.graceful_restart)
            .filter_map(|n| self.protocol(PeerKey::Name(n.name.clone())).ok())
            .filter(|p| p.gr_active)
            .map(|p| p.name)
            .collect();
        for paths in rib.values_mut() {
            for r in paths {
                if gr.contains(&r.source) {
                    r.stale = true;
                }
            }
        }
        Ok(rib)
    }

    /// `restart NAME` (drops and re-establishes the session).
    pub fn restart_protocol(&self, peer: impl Into<PeerKey>) -> Result<String, String> {
        let name = self.protocol_name(peer);
        self.birdc(&["restart", &name])
    }

    /// `disable NAME` (administrative shutdown, Cease).
    pub fn disable_protocol(&self, peer: impl Into<PeerKey>) -> Result<String, String> {
        let name = self.protocol_name(peer);
        self.birdc(&["disable", &name])
    }

    /// `enable NAME`.
    pub fn enable_protocol(&self, peer: impl Into<PeerKey>) -> Result<String, String> {
        let name = self.protocol_name(peer);
        self.birdc(&["enable", &name])
    }

    /// Replace the config (e.g. other originated prefixes) and `birdc configure`.
    pub fn reconfigure(&mut self, cfg: SpeakerConfig) -> Result<String, String> {
        cfg.check_addresses();
        self.cfg = cfg;
        std::fs::write(self.conf_path(), self.config_text()).map_err(|e| e.to_string())?;
        self.birdc(&["configure"])
    }

    /// SIGSTOP (alias of [`Daemon::freeze`]).
    pub fn sigstop(&self) {
        self.freeze();
    }

    /// SIGCONT (alias of [`Daemon::thaw`]).
    pub fn sigcont(&self) {
        self.thaw();
    }

    /// Graceful stop (SIGTERM; BIRD sends Cease to its peers).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }

    /// SIGKILL (peers see the TCP connection reset / vanish).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Start again with the same config after [`Bird::stop`] / [`Bird::kill`].
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "BIRD is still running");
        self.spawn();
    }

    /// Kill (SIGKILL) and start again with the same config.
    pub fn hard_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.is_running())
    }
}

impl Daemon for Bird {
    fn kind(&self) -> &'static str {
        "bird"
    }
    fn config(&self) -> &SpeakerConfig {
        &self.cfg
    }
    fn peer_state(&self, peer: &PeerKey) -> Result<String, String> {
        self.bgp_state(peer)
    }
    fn is_established(&self, peer: &PeerKey) -> bool {
        self.bgp_state(peer).is_ok_and(|s| s == "Established")
    }
    fn rib(&self) -> Result<Rib, String> {
        self.routes()
    }
    fn pid(&self) -> Option<i32> {
        self.proc.as_ref().map(|p| p.pid())
    }
    fn logs(&self) -> String {
        format!(
            "--- bird.log ({})\n{}\n--- bird stdout/stderr\n{}",
            self.log_path().display(),
            tail(&self.log_path(), 30),
            tail(&self.dir.join("bird.out"), 10)
        )
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(3));
        }
    }
}

fn channel(cfg: &SpeakerConfig, n: &super::Neighbor, v6: bool) -> String {
    let fam = if v6 { "ipv6" } else { "ipv4" };
    let mut s = format!("  {fam} {{\n    import all;\n");
    let sets: Vec<String> = cfg
        .originate
        .iter()
        .filter(|o| o.is_v6() == v6)
        .filter_map(|o| {
            o.next_hop
                .map(|nh| format!("if net = {} then bgp_next_hop = {nh};", o.prefix))
        })
        .collect();
    if sets.is_empty() {
        s.push_str("    export all;\n");
    } else {
        let _ = writeln!(s, "    export filter {{ {} accept; }};", sets.join(" "));
    }
    if n.add_path {
        s.push_str("    add paths on;\n");
    }
    s.push_str("  };\n");
    s
}

/// bird.conf for `cfg`.
pub fn bird_conf(cfg: &SpeakerConfig, log: &std::path::Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "log \"{}\" all;", log.display());
    let _ = writeln!(s, "router id {};", cfg.router_id);
    s.push_str("protocol device { scan time 10; }\n");
    if cfg.program_fib {
        s.push_str("protocol kernel { ipv4 { import none; export all; }; }\n");
        s.push_str("protocol kernel { ipv6 { import none; export all; }; }\n");
    }
    for (v6, fam, name) in [(false, "ipv4", "orig4"), (true, "ipv6", "orig6")] {
        let routes: Vec<&super::Originate> =
            cfg.originate.iter().filter(|o| o.is_v6() == v6).collect();
        if !routes.is_empty() {
            let _ = writeln!(s, "protocol static {name} {{\n  {fam};");
            for o in routes {
                let _ = writeln!(s, "  route {} blackhole;", o.prefix);
            }
            s.push_str("}\n");
        }
    }
    for n in &cfg.neighbors {
        let local = cfg.local_addr_for(n);
        let _ = writeln!(s, "protocol bgp {} {{", n.name);
        let _ = writeln!(s, "  local {local} port {} as {};", cfg.port, cfg.local_as);
        let _ = writeln!(s, "  neighbor {} port {} as {};", n.addr, n.port, n.asn);
        s.push_str("  strict bind on;\n  debug { states, events };\n");
        if n.multihop {
            s.push_str("  multihop;\n");
        }
        if n.passive {
            s.push_str("  passive on;\n");
        }
        if n.rr_client {
            s.push_str("  rr client;\n");
        }
        if let Some(pw) = &n.password {
            let _ = writeln!(s, "  password \"{pw}\";");
        }
        let _ = writeln!(
            s,
            "  hold time {}; keepalive time {};",
            n.hold_time,
            n.keepalive_time()
        );
        let _ = writeln!(
            s,
            "  connect delay time 1; connect retry time {}; error wait time 1, 10; error forget time 10;",
            n.connect_retry.max(1)
        );
        if n.graceful_restart {
            let _ = writeln!(
                s,
                "  graceful restart on; graceful restart time {};",
                n.gr_time
            );
        } else {
            s.push_str("  graceful restart off;\n");
        }
        if n.ipv4 {
            s.push_str(&channel(cfg, n, false));
        }
        if n.ipv6 {
            s.push_str(&channel(cfg, n, true));
        }
        s.push_str("}\n");
    }
    s
}

/// Parse `show protocols all NAME`.
pub fn parse_protocol(name: &str, raw: &str) -> BirdProtocol {
    let mut p = BirdProtocol {
        name: name.into(),
        raw: raw.into(),
        ..Default::default()
    };
    for line in raw.lines() {
        let t = line.trim();
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&name) && cols.len() >= 4 {
            p.state = cols[3].to_string();
        } else if let Some(v) = t.strip_prefix("BGP state:") {
            p.bgp_state = v.trim().to_string();
        } else if let Some(v) = t.strip_prefix("Last error:") {
            p.last_error = Some(v.trim().to_string());
        } else if t == "Neighbor graceful restart active" {
            p.gr_active = true;
        }
    }
    p
}

/// Parse `show route all` output (BIRD 2.0): route header lines
/// `PREFIX  DEST [PROTO TIME from X] * (PREF[s]) [ASn?]`, continuation headers for more
/// paths of the same prefix (indented with spaces), and tab-indented attribute lines.
pub fn parse_routes(out: &str) -> Rib {
    let mut rib = Rib::new();
    let mut cur_prefix: Option<IpNet> = None;
    let mut cur: Option<Route> = None;
    for line in out.lines() {
        if line.starts_with('\t') {
            let t = line.trim();
            let Some(r) = cur.as_mut() else { continue };
            if let Some(rest) = t.strip_prefix("via ") {
                // "via 192.0.2.1 on eth0"
                if r.next_hop.is_none() {
                    r.next_hop = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                }
            } else if let Some((k, v)) = t.split_once(": ") {
                let k = k.trim();
                let v = v.trim();
                if let Some(attr) = k.strip_prefix("BGP.") {
                    match attr {
                        "next_hop" => {
                            r.next_hop = v.split_whitespace().next().and_then(|a| a.parse().ok());
                        }
                        "as_path" => {
                            r.as_path = v
                                .split(|c: char| !c.is_ascii_digit())
                                .filter_map(|x| x.parse().ok())
                                .collect();
                        }
                        _ => {}
                    }
                    r.attrs.insert(attr.to_string(), v.to_string());
                } else {
                    r.attrs.insert(k.to_string(), v.to_string());
                }
            } else if let Some(k) = t.strip_suffix(':') {
                r.attrs.insert(k.to_string(), String::new());
            }
            continue;
        }
        if line.trim().is_empty() || line.starts_with("Table ") || line.starts_with("BIRD ") {
            continue;
        }
        if !line.contains('[') {
            continue;
        }
        // a new path: with a prefix in column 0, or indented (same prefix as before)
        if let Some(r) = cur.take() {
            insert_route(&mut rib, r);
        }
        let (prefix_part, rest) = if line.starts_with(' ') {
            (None, line.trim_start())
        } else {
            let mut it = line.splitn(2, char::is_whitespace);
            (it.next(), it.next().unwrap_or("").trim_start())
        };
        if let Some(p) = prefix_part {
            // "198.19.1.0/26" or with a path id "198.19.1.0/26 ..."? BIRD prints it separately
            cur_prefix = p.parse().ok();
        }
        let mut r = Route {
            prefix: cur_prefix,
            ..Default::default()
        };
        // rest: "unreachable [p1 01:01:33.150 from 127.9.0.2] * (100) [AS65002?]"
        if let Some((_, inside)) = rest.split_once('[') {
            if let Some((bracket, after)) = inside.split_once(']') {
                let mut w = bracket.split_whitespace();
                r.source = w.next().unwrap_or("").to_string();
                let words: Vec<&str> = bracket.split_whitespace().collect();
                if let Some(i) = words.iter().position(|x| *x == "from") {
                    r.from = words.get(i + 1).and_then(|a| a.parse::<IpAddr>().ok());
                }
                r.best = after.trim_start().starts_with('*');
                if let Some((_, pref)) = after.split_once('(') {
                    let pref = pref.split(')').next().unwrap_or("");
                    let flags: String = pref.chars().filter(|c| c.is_ascii_alphabetic()).collect();
                    r.stale = flags.contains('s');
                    r.attrs.insert("preference".into(), pref.to_string());
                }
            }
        }
        let dest = rest.split_whitespace().next().unwrap_or("");
        r.attrs.insert("dest".into(), dest.to_string());
        cur = Some(r);
    }
    if let Some(r) = cur.take() {
        insert_route(&mut rib, r);
    }
    rib
}

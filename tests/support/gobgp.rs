//! GoBGP (`gobgpd`, queried with `gobgp -j`).
//!
//! Quirks handled here:
//! * gobgpd's gRPC API binds `:50051` on all addresses and pprof `localhost:6060` by
//!   default: in the root namespace it gets `--api-hosts 127.0.0.1:<unique port>
//!   --pprof-disable`; inside a namespace 127.0.0.1:50051 (and the CLI runs there via
//!   `ip netns exec`).
//! * GoBGP treats an UPDATE whose NEXT_HOP is in 127/8 as a withdraw: peers must
//!   advertise a non-127 next hop (192.0.2.x on loopback, attribute value only).
//! * GoBGP's first outgoing connection attempt waits 5-10 s whatever `connect-retry` says:
//!   make GoBGP the passive side when the test wants a fast start.
//! * After ANY session loss GoBGP stays Idle for a hard-coded 5 s (`holdtimeIdle`),
//!   closing accepted connections ("Closed an accepted connection"), so a peer that
//!   restarts is back no sooner than ~5 s. (`idle-hold-time-after-reset`, set to the
//!   neighbor's `connect_retry` here, only applies after an administrative reset.)
//! * Originated prefixes are added through the API after start (`global rib add`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::config::{PeerKey, SpeakerConfig};
use super::process::Proc;
use super::{
    Daemon, Rib, Route, TempDir, alloc_port, first_line_of, insert_route, run, tail, try_wait_until,
};

/// A running gobgpd.
pub struct GoBgp {
    cfg: SpeakerConfig,
    dir: TempDir,
    proc: Option<Proc>,
    api: SocketAddr,
}

impl GoBgp {
    /// `gobgpd version 3.10.0`
    pub fn version() -> String {
        first_line_of("gobgpd", &["--version"], "version")
    }

    /// Write the TOML config, start gobgpd, wait for its API, add the originated routes.
    pub fn start(cfg: SpeakerConfig) -> GoBgp {
        cfg.check_addresses();
        let api = match cfg.netns {
            Some(_) => "127.0.0.1:50051".parse().unwrap(),
            None => SocketAddr::new("127.0.0.1".parse().unwrap(), alloc_port()),
        };
        let dir = TempDir::new("gobgp");
        let mut g = GoBgp {
            cfg,
            dir,
            proc: None,
            api,
        };
        std::fs::write(g.conf_path(), g.config_text()).expect("write gobgpd.toml");
        g.spawn();
        for o in g.cfg.originate.clone() {
            let nh = o.next_hop.map(|n| n.to_string());
            g.add_route(&o.prefix.to_string(), nh.as_deref().unwrap_or(""))
                .unwrap_or_else(|e| panic!("originating {}: {e}\n{}", o.prefix, g.logs()));
        }
        g
    }

    fn spawn(&mut self) {
        let mut cmd = self.command("gobgpd");
        cmd.arg("-f")
            .arg(self.conf_path())
            .arg("--api-hosts")
            .arg(self.api.to_string())
            .arg("--pprof-disable");
        let p = Proc::spawn("gobgpd", cmd, &self.log_path()).unwrap_or_else(|e| panic!("{e}"));
        self.proc = Some(p);
        let r = try_wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            if let Some(st) = self.proc.as_mut().and_then(|p| p.exit_status()) {
                return Err(format!("gobgpd exited: {st}"));
            }
            self.gobgp(&["global"]).map(|_| ())
        });
        if let Err(e) = r {
            panic!("gobgpd did not come up: {e}\n{}", self.logs());
        }
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

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("gobgpd.toml")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("gobgpd.log")
    }
    /// The gRPC API address (inside the daemon's namespace).
    pub fn api(&self) -> SocketAddr {
        self.api
    }

    pub fn config_text(&self) -> String {
        gobgp_conf(&self.cfg)
    }

    /// `gobgp -u HOST -p PORT args...` (inside the namespace if the daemon is in one).
    pub fn gobgp(&self, args: &[&str]) -> Result<String, String> {
        let mut c = self.command("gobgp");
        c.arg("-u")
            .arg(self.api.ip().to_string())
            .arg("-p")
            .arg(self.api.port().to_string())
            .args(args);
        run(&mut c)
    }

    /// `gobgp -j args...`, parsed.
    pub fn gobgp_json(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let out = self.gobgp(&a)?;
        let t = out.trim();
        if t.is_empty() || t == "null" {
            return Ok(Value::Null);
        }
        serde_json::from_str(t).map_err(|e| format!("gobgp {args:?}: bad JSON ({e}): {t}"))
    }

    /// The neighbor's session state in GoBGP's words (`established`, `active`, `idle`...).
    pub fn neighbor_state(&self, peer: impl Into<PeerKey>) -> Result<String, String> {
        let key = peer.into();
        let n = self.cfg.neighbor_or_panic(&key);
        let addr = n.addr.to_string();
        let v = self.gobgp_json(&["neighbor", &addr])?;
        let st = &v["state"]["session_state"];
        Ok(match st {
            Value::Number(n) => match n.as_u64() {
                Some(1) => "idle",
                Some(2) => "connect",
                Some(3) => "active",
                Some(4) => "opensent",
                Some(5) => "openconfirm",
                Some(6) => "established",
                _ => "unknown",
            }
            .to_string(),
            Value::String(s) => s.to_lowercase(),
            _ => format!("unknown ({v})"),
        })
    }

    /// The global RIB (IPv4 and IPv6 unicast).
    pub fn global_rib(&self) -> Result<Rib, String> {
        let mut rib = Rib::new();
        for fam in ["ipv4", "ipv6"] {
            let v = self.gobgp_json(&["global", "rib", "-a", fam])?;
            parse_rib(&v, &mut rib);
        }
        Ok(rib)
    }

    /// Adj-RIB-In from `peer`.
    pub fn adj_in(&self, peer: impl Into<PeerKey>) -> Result<Rib, String> {
        let n = self.cfg.neighbor_or_panic(&peer.into());
        let addr = n.addr.to_string();
        let mut rib = Rib::new();
        for (fam, on) in [("ipv4", n.ipv4), ("ipv6", n.ipv6)] {
            if on {
                let v = self.gobgp_json(&["neighbor", &addr, "adj-in", "-a", fam])?;
                parse_rib(&v, &mut rib);
            }
        }
        Ok(rib)
    }

    /// `gobgp global rib -a FAM add PREFIX [nexthop NH]` ("" = no explicit next hop).
    pub fn add_route(&self, prefix: &str, next_hop: &str) -> Result<(), String> {
        let fam = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let mut args = vec!["global", "rib", "-a", fam, "add", prefix];
        if !next_hop.is_empty() {
            args.extend(["nexthop", next_hop]);
        }
        self.gobgp(&args).map(|_| ())
    }

    /// `gobgp global rib -a FAM del PREFIX`.
    pub fn del_route(&self, prefix: &str) -> Result<(), String> {
        let fam = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.gobgp(&["global", "rib", "-a", fam, "del", prefix])
            .map(|_| ())
    }

    /// `gobgp neighbor ADDR reset` (hard reset of the session).
    pub fn reset_neighbor(&self, peer: impl Into<PeerKey>) -> Result<(), String> {
        let addr = self.cfg.neighbor_or_panic(&peer.into()).addr.to_string();
        self.gobgp(&["neighbor", &addr, "reset"]).map(|_| ())
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

    /// Start again with the same config (and re-add the originated routes).
    pub fn start_again(&mut self) {
        assert!(self.proc.is_none(), "gobgpd is still running");
        self.spawn();
        for o in self.cfg.originate.clone() {
            let nh = o.next_hop.map(|n| n.to_string());
            self.add_route(&o.prefix.to_string(), nh.as_deref().unwrap_or(""))
                .unwrap_or_else(|e| panic!("originating {}: {e}", o.prefix));
        }
    }
}

impl Daemon for GoBgp {
    fn kind(&self) -> &'static str {
        "gobgp"
    }
    fn config(&self) -> &SpeakerConfig {
        &self.cfg
    }
    fn peer_state(&self, peer: &PeerKey) -> Result<String, String> {
        self.neighbor_state(peer)
    }
    fn is_established(&self, peer: &PeerKey) -> bool {
        self.neighbor_state(peer).is_ok_and(|s| s == "established")
    }
    fn rib(&self) -> Result<Rib, String> {
        self.global_rib()
    }
    fn pid(&self) -> Option<i32> {
        self.proc.as_ref().map(|p| p.pid())
    }
    fn logs(&self) -> String {
        format!(
            "--- gobgpd.log ({})\n{}",
            self.log_path().display(),
            tail(&self.log_path(), 30)
        )
    }
}

impl Drop for GoBgp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(3));
        }
    }
}

/// gobgpd.toml for `cfg`.
pub fn gobgp_conf(cfg: &SpeakerConfig) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let addrs: Vec<String> = cfg.listen.iter().map(|a| format!("\"{a}\"")).collect();
    let _ = write!(
        s,
        "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = {}\n  local-address-list = [{}]\n",
        cfg.local_as,
        cfg.router_id,
        cfg.port,
        addrs.join(", ")
    );
    for n in &cfg.neighbors {
        let local = cfg.local_addr_for(n);
        let cr = n.connect_retry.max(1);
        let _ = write!(
            s,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
            n.addr, n.asn
        );
        if let Some(pw) = &n.password {
            let _ = writeln!(s, "    auth-password = \"{pw}\"");
        }
        let _ = write!(
            s,
            "  [neighbors.timers.config]\n    connect-retry = {cr}\n    idle-hold-time-after-reset = {cr}\n    hold-time = {}\n    keepalive-interval = {}\n",
            n.hold_time,
            n.keepalive_time()
        );
        let _ = write!(
            s,
            "  [neighbors.transport.config]\n    local-address = \"{local}\"\n"
        );
        if n.port != 179 {
            let _ = writeln!(s, "    remote-port = {}", n.port);
        }
        if n.passive {
            s.push_str("    passive-mode = true\n");
        }
        if n.multihop && n.is_ebgp(cfg.local_as) {
            s.push_str(
                "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = 64\n",
            );
        }
        if n.graceful_restart {
            let _ = write!(
                s,
                "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {}\n",
                n.gr_time
            );
        }
        for (fam, on) in [("ipv4-unicast", n.ipv4), ("ipv6-unicast", n.ipv6)] {
            if !on {
                continue;
            }
            let _ = write!(
                s,
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{fam}\"\n"
            );
            if n.graceful_restart {
                s.push_str(
                    "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
                );
            }
            if n.add_path {
                s.push_str("    [neighbors.afi-safis.add-paths.config]\n      receive = true\n      send-max = 8\n");
            }
        }
    }
    s
}

/// Parse `gobgp -j global rib` / `adj-in` output (`{prefix: [path, ...]}`) into `rib`.
pub fn parse_rib(v: &Value, rib: &mut Rib) {
    let Some(map) = v.as_object() else { return };
    for (prefix, paths) in map {
        let Ok(p) = prefix.parse() else { continue };
        for path in paths.as_array().into_iter().flatten() {
            let mut r = Route {
                prefix: Some(p),
                ..Default::default()
            };
            r.best = path["best"].as_bool().unwrap_or(false);
            r.stale = path["stale"].as_bool().unwrap_or(false);
            r.from = path["neighbor-ip"]
                .as_str()
                .and_then(|a| a.parse::<IpAddr>().ok());
            r.path_id = path["nlri"]["path_id"].as_u64().map(|x| x as u32);
            r.source = path["source-id"].as_str().unwrap_or("").to_string();
            for a in path["attrs"].as_array().into_iter().flatten() {
                match a["type"].as_u64() {
                    Some(1) => {
                        r.attrs.insert("origin".into(), a["value"].to_string());
                    }
                    Some(2) => {
                        for seg in a["as_paths"].as_array().into_iter().flatten() {
                            r.as_path.extend(
                                seg["asns"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|x| x.as_u64())
                                    .map(|x| x as u32),
                            );
                        }
                    }
                    Some(3) => {
                        r.next_hop = a["nexthop"].as_str().and_then(|x| x.parse().ok());
                    }
                    Some(4) => {
                        r.attrs.insert("med".into(), a["metric"].to_string());
                    }
                    Some(5) => {
                        r.attrs.insert("local_pref".into(), a["value"].to_string());
                    }
                    Some(8) => {
                        r.attrs
                            .insert("communities".into(), a["communities"].to_string());
                    }
                    // MP_REACH_NLRI: {"nexthop": "x", "nlri": [...]}
                    Some(14) if r.next_hop.is_none() => {
                        r.next_hop = a["nexthop"].as_str().and_then(|x| x.parse().ok());
                    }
                    Some(t) => {
                        r.attrs.insert(format!("attr{t}"), a.to_string());
                    }
                    None => {}
                }
            }
            insert_route(rib, r);
        }
    }
}

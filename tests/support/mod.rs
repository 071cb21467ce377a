//! Test harness for interop tests against REAL BGP daemons (BIRD 2, GoBGP, FRR bgpd,
//! ExaBGP) and real network namespaces. No mocks.
//!
//! Include it from an integration test with `mod support;` (this directory is a module
//! shared by the root package's tests; it is not a test target itself).
//!
//! # Safety rules this module enforces
//! * Every address a daemon binds or connects to is in 127.0.0.0/8 or `::1`
//!   ([`alloc_loopback`] hands out a unique 127.x.y.z per call), or lives inside a
//!   namespace created by a [`Netns`] guard (use 198.18.0.0/15 there, see design.md).
//! * Daemons run in the foreground as children of the test process and are stopped by
//!   PID (SIGCONT + SIGTERM, then SIGKILL) when their guard drops, also when the test
//!   panics. Nothing is ever killed by name.
//! * Each daemon gets its own temp dir under `std::env::temp_dir()`, removed on drop
//!   (set `TORTIE_KEEP_TMP=1` to keep it). When a guard drops during a panic, the tail of
//!   the daemon's logs is printed to stderr.
//!
//! # Example
//! ```ignore
//! mod support;
//! use support::*;
//! let tortie = SocketAddr::new(alloc_loopback().into(), alloc_port());
//! let bird = Bird::start(
//!     SpeakerConfig::loopback(65001)
//!         .with_originate("198.19.1.0/26", "192.0.2.1")
//!         .with_neighbor(Neighbor::at(tortie, 65002).passive().hold(3)),
//! );
//! // ... start tortie on `tortie`, peering with bird.config().endpoint() ...
//! bird.wait_established(tortie.ip(), SESSION_TIMEOUT);
//! bird.wait_route_via("198.19.2.0/26", "192.0.2.2", SESSION_TIMEOUT);
//! ```
//! Inside a namespace: `let ns = Netns::new("md5"); ns.add_addr("lo", "198.18.0.1/32");
//! Frr::start(SpeakerConfig::in_netns(&ns, addr, 65001).with_neighbor(...))`, and declare
//! the `Netns` before the daemons so they drop first.
//!
//! # Which side connects
//! ExaBGP only connects out. GoBGP's first outgoing attempt takes 5-10 s and it idles 5 s
//! after every session loss. BIRD (`connect delay time 1`) and FRR (`timers connect 1`)
//! connect within about a second. On `::1` a daemon can have only one IPv6 neighbor
//! (neighbors are told apart by address).
//!
//! # Parallel tests
//! Tests run in threads of one process (and possibly several test binaries at once), so
//! every daemon gets a fresh 127.x.y.z address (derived from the PID and a counter) and a
//! fresh port ([`alloc_port`], probed free); namespaces get unique names.

#![allow(dead_code, unused_imports)]

pub mod bird;
pub mod config;
pub mod exabgp;
pub mod frr;
pub mod gobgp;
pub mod netns;
pub mod process;
pub mod tortie;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use ipnet::IpNet;

pub use bird::Bird;
pub use config::{Neighbor, Originate, PeerKey, SpeakerConfig};
pub use exabgp::ExaBgp;
pub use frr::Frr;
pub use gobgp::GoBgp;
pub use netns::{Md5Counters, Netns};
pub use process::Proc;

// ------------------------------------------------------------------------------------------
// Unique names, addresses and ports

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A process-wide unique number (starts at 0).
pub fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// `PID-N`: unique within this machine while this process runs.
pub fn unique_suffix() -> String {
    format!("{}-{}", std::process::id(), next_id())
}

static LOOPBACK_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh 127.x.y.z address for one daemon (or for tortie), never 127.0.x.x (left to
/// fixed-address scripts such as tests/fixtures/capture.sh). Unique per call within this
/// process (400 per process), and distinct between concurrently running processes unless
/// their PIDs are equal modulo 40000. Any 127/8 address works on `lo` without setup.
pub fn alloc_loopback() -> Ipv4Addr {
    let n = LOOPBACK_COUNTER.fetch_add(1, Ordering::Relaxed);
    assert!(
        n < 400,
        "alloc_loopback: more than 400 addresses in one process"
    );
    let slot = std::process::id() % 40_000;
    let idx = slot * 400 + n; // < 16_000_000
    let net24 = idx / 254; // < 63_000
    let host = 1 + idx % 254; // 1..=254
    let o2 = 1 + net24 / 256; // 1..=247
    let o3 = net24 % 256;
    Ipv4Addr::new(127, o2 as u8, o3 as u8, host as u8)
}

/// `::1`, the only IPv6 loopback address (shared by everything: use distinct ports).
pub const V6_LOOPBACK: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

static PORT_STATE: Mutex<Option<u16>> = Mutex::new(None);
const PORT_LO: u16 = 20_000;
const PORT_HI: u16 = 32_000; // below the ephemeral range (32768..)

/// A TCP port in 20000..32000 that is free on every address right now (probed by binding
/// 0.0.0.0 and [::]). Each call returns a different port within this process; the start
/// point depends on the PID so concurrent processes rarely probe the same ports.
pub fn alloc_port() -> u16 {
    let mut st = PORT_STATE.lock().unwrap_or_else(|e| e.into_inner());
    let span = (PORT_HI - PORT_LO) as u32;
    let mut next = st.unwrap_or_else(|| PORT_LO + ((std::process::id() * 7919) % span) as u16);
    for _ in 0..span {
        let p = next;
        next = if next + 1 >= PORT_HI {
            PORT_LO
        } else {
            next + 1
        };
        if port_is_free(p) {
            *st = Some(next);
            return p;
        }
    }
    panic!("alloc_port: no free port in {PORT_LO}..{PORT_HI}");
}

fn port_is_free(p: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, p)).is_ok()
        && TcpListener::bind((Ipv6Addr::UNSPECIFIED, p)).is_ok()
}

// ------------------------------------------------------------------------------------------
// Temp dirs

/// A directory under `std::env::temp_dir()` with a unique name, removed on drop unless
/// `TORTIE_KEEP_TMP=1` (then its path is printed).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tortie-{tag}-{}", unique_suffix()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        // FRR drops to user frr and must traverse it.
        set_mode(&path, 0o755);
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("TORTIE_KEEP_TMP").is_ok_and(|v| v == "1") {
            eprintln!("support: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// uid and gid of a local user, from /etc/passwd.
pub(crate) fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// `chown -R uid:gid path`.
pub(crate) fn chown_r(path: &Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                chown_r(&p, uid, gid);
            } else {
                let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
            }
        }
    }
}

/// The last `n` lines of a file ("" if unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ------------------------------------------------------------------------------------------
// Waiting

/// Poll `f` every `poll` until it returns `Ok(v)`, and return `v`. `f` returns
/// `Err(state)` describing what it saw; on timeout this panics with the caller's location
/// and the last observed state.
#[track_caller]
pub fn wait_until<T>(timeout: Duration, poll: Duration, f: impl FnMut() -> Result<T, String>) -> T {
    match try_wait_until(timeout, poll, f) {
        Ok(v) => v,
        Err(last) => panic!("wait_until: timed out after {timeout:?}; last state: {last}"),
    }
}

/// [`wait_until`] with a description of what is awaited in the panic message.
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    f: impl FnMut() -> Result<T, String>,
) -> T {
    match try_wait_until(timeout, poll, f) {
        Ok(v) => v,
        Err(last) => panic!("timed out after {timeout:?} waiting for {what}; last state: {last}"),
    }
}

/// Like [`wait_until`] but returns `Err(last state)` on timeout instead of panicking.
pub fn try_wait_until<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(state) => {
                if Instant::now() >= deadline {
                    return Err(state);
                }
            }
        }
        std::thread::sleep(poll);
    }
}

/// Check that `f` keeps returning `Ok` for the whole `duration` (polled every `poll`);
/// panics with `what` and the offending state at the first `Err`. Use it for "never
/// reaches Established" style assertions.
#[track_caller]
pub fn assert_stays<T>(
    what: &str,
    duration: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + duration;
    loop {
        match f() {
            Ok(v) if Instant::now() >= deadline => return v,
            Ok(_) => {}
            Err(state) => panic!("expected {what} to hold for {duration:?}, but: {state}"),
        }
        std::thread::sleep(poll);
    }
}

/// Default timeouts used by the `Daemon` helpers.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
pub const POLL: Duration = Duration::from_millis(200);

// ------------------------------------------------------------------------------------------
// Commands

/// Run a command to completion; `Ok(stdout)` on exit status 0, else `Err` with the
/// command line, status, stdout and stderr.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{cmd:?}: {}; stdout: {}; stderr: {}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// First line of `prog args...` (stdout or stderr), for version strings.
pub(crate) fn first_line_of(prog: &str, args: &[&str], must_contain: &str) -> String {
    match Command::new(prog).args(args).output() {
        Ok(o) => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines()
                .find(|l| l.contains(must_contain))
                .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(e) => format!("{prog}: not runnable ({e})"),
    }
}

/// The versions of all four daemons, one per line (print it from tests).
pub fn versions() -> String {
    format!(
        "{}\n{}\n{}\n{}",
        Bird::version(),
        GoBgp::version(),
        Frr::version(),
        ExaBgp::version()
    )
}

// ------------------------------------------------------------------------------------------
// Routes, as every launcher reports them

/// One path for a prefix in a daemon's RIB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub prefix: Option<IpNet>,
    /// BGP NEXT_HOP (or MP_REACH next hop) as the daemon shows it.
    pub next_hop: Option<IpAddr>,
    /// AS_PATH flattened (AS_SET members included in order).
    pub as_path: Vec<u32>,
    /// The neighbor the path came from (None for locally originated).
    pub from: Option<IpAddr>,
    /// Selected as best by the daemon (where it says so).
    pub best: bool,
    /// Kept as stale by graceful restart (BIRD: the owning protocol has "Neighbor graceful
    /// restart active", or the LLGR `s` marker; GoBGP/FRR: their `stale` flag).
    pub stale: bool,
    /// ADD-PATH path identifier, where shown.
    pub path_id: Option<u32>,
    /// The protocol/peer name the daemon attributes the path to (BIRD protocol name).
    pub source: String,
    /// Other attributes as text (BIRD `BGP.x` lines, `local_pref`, `med`, `communities`,
    /// `origin`...), keyed without the `BGP.` prefix.
    pub attrs: BTreeMap<String, String>,
}

/// prefix -> paths.
pub type Rib = BTreeMap<IpNet, Vec<Route>>;

/// Next hops of all paths for `prefix` (empty if the prefix is absent).
pub fn next_hops(rib: &Rib, prefix: &str) -> Vec<IpAddr> {
    let p: IpNet = prefix
        .parse()
        .unwrap_or_else(|e| panic!("bad prefix {prefix}: {e}"));
    rib.get(&p)
        .map(|v| v.iter().filter_map(|r| r.next_hop).collect())
        .unwrap_or_default()
}

pub(crate) fn rib_summary(rib: &Rib) -> String {
    let mut s = String::new();
    for (p, paths) in rib {
        let nh: Vec<String> = paths
            .iter()
            .map(|r| {
                format!(
                    "{}{}",
                    r.next_hop.map(|n| n.to_string()).unwrap_or("-".into()),
                    if r.stale { "(stale)" } else { "" }
                )
            })
            .collect();
        let _ = write!(s, "{p} via [{}]; ", nh.join(", "));
    }
    if s.is_empty() { "empty RIB".into() } else { s }
}

pub(crate) fn insert_route(rib: &mut Rib, mut r: Route) {
    if let Some(p) = r.prefix {
        r.prefix = Some(p);
        rib.entry(p).or_default().push(r);
    }
}

// ------------------------------------------------------------------------------------------
// What every launcher offers

/// Common queries, so a test matrix can treat the four daemons alike.
pub trait Daemon {
    /// "bird", "gobgp", "frr", "exabgp".
    fn kind(&self) -> &'static str;
    fn config(&self) -> &SpeakerConfig;
    /// The daemon's own word for the session state with `peer` (e.g. "Established",
    /// "Active", "up"), or Err if it cannot be queried / the peer is unknown.
    fn peer_state(&self, peer: &PeerKey) -> Result<String, String>;
    /// Whether the session with `peer` is Established.
    fn is_established(&self, peer: &PeerKey) -> bool;
    /// All routes the daemon has (IPv4 and IPv6 unicast).
    fn rib(&self) -> Result<Rib, String>;
    /// PID of the (main) daemon process, if running.
    fn pid(&self) -> Option<i32>;
    /// Log tails, for failure messages.
    fn logs(&self) -> String;

    /// The session with `peer` address/name.
    fn session(&self, peer: impl Into<PeerKey>) -> Result<String, String>
    where
        Self: Sized,
    {
        self.peer_state(&peer.into())
    }

    /// SIGSTOP the daemon (freeze: keeps its sockets, sends nothing).
    fn freeze(&self) {
        if let Some(pid) = self.pid() {
            process::signal(pid, libc::SIGSTOP).unwrap_or_else(|e| panic!("freeze: {e}"));
        }
    }

    /// SIGCONT the daemon.
    fn thaw(&self) {
        if let Some(pid) = self.pid() {
            process::signal(pid, libc::SIGCONT).unwrap_or_else(|e| panic!("thaw: {e}"));
        }
    }

    /// Wait until the session with `peer` is Established.
    #[track_caller]
    fn wait_established(&self, peer: impl Into<PeerKey>, timeout: Duration)
    where
        Self: Sized,
    {
        let key = peer.into();
        let what = format!("{} session with {key} to be Established", self.kind());
        let r = try_wait_until(timeout, POLL, || {
            if self.is_established(&key) {
                Ok(())
            } else {
                Err(self.peer_state(&key).unwrap_or_else(|e| e))
            }
        });
        if let Err(last) = r {
            panic!(
                "timed out after {timeout:?} waiting for {what}; last state: {last}\n{}",
                self.logs()
            );
        }
    }

    /// Wait until the session with `peer` is NOT Established; returns the state seen.
    #[track_caller]
    fn wait_not_established(&self, peer: impl Into<PeerKey>, timeout: Duration) -> String
    where
        Self: Sized,
    {
        let key = peer.into();
        let what = format!("{} session with {key} to leave Established", self.kind());
        wait_for(&what, timeout, POLL, || {
            let st = self.peer_state(&key).unwrap_or_else(|e| e);
            if self.is_established(&key) {
                Err(st)
            } else {
                Ok(st)
            }
        })
    }

    /// Wait until `prefix` is in the RIB (with any next hop) and return its paths.
    #[track_caller]
    fn wait_route(&self, prefix: &str, timeout: Duration) -> Vec<Route>
    where
        Self: Sized,
    {
        let p: IpNet = prefix
            .parse()
            .unwrap_or_else(|e| panic!("bad prefix {prefix}: {e}"));
        let what = format!("{prefix} in {}'s RIB", self.kind());
        wait_for(&what, timeout, POLL, || {
            let rib = self.rib()?;
            match rib.get(&p) {
                Some(v) if !v.is_empty() => Ok(v.clone()),
                _ => Err(rib_summary(&rib)),
            }
        })
    }

    /// Wait until `prefix` has a path with next hop `nh`.
    #[track_caller]
    fn wait_route_via(&self, prefix: &str, nh: &str, timeout: Duration) -> Route
    where
        Self: Sized,
    {
        let p: IpNet = prefix
            .parse()
            .unwrap_or_else(|e| panic!("bad prefix {prefix}: {e}"));
        let nh: IpAddr = nh
            .parse()
            .unwrap_or_else(|e| panic!("bad next hop {nh}: {e}"));
        let what = format!("{prefix} via {nh} in {}'s RIB", self.kind());
        wait_for(&what, timeout, POLL, || {
            let rib = self.rib()?;
            rib.get(&p)
                .and_then(|v| v.iter().find(|r| r.next_hop == Some(nh)).cloned())
                .ok_or_else(|| rib_summary(&rib))
        })
    }

    /// Wait until `prefix` is gone from the RIB.
    #[track_caller]
    fn wait_no_route(&self, prefix: &str, timeout: Duration)
    where
        Self: Sized,
    {
        let p: IpNet = prefix
            .parse()
            .unwrap_or_else(|e| panic!("bad prefix {prefix}: {e}"));
        let what = format!("{prefix} to leave {}'s RIB", self.kind());
        wait_for(&what, timeout, POLL, || {
            let rib = self.rib()?;
            if rib.get(&p).is_some_and(|v| !v.is_empty()) {
                Err(rib_summary(&rib))
            } else {
                Ok(())
            }
        })
    }
}

/// Parse "a.b.c.d" / "x::y" (panics with context on error).
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("bad address {s}: {e}"))
}

/// Parse a prefix (panics with context on error).
pub fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("bad prefix {s}: {e}"))
}

pub(crate) fn sock(addr: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(addr, port)
}

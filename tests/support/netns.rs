//! Network namespaces created by a test and always deleted again.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::process::{self, Proc};
use super::{TempDir, run};

/// A network namespace `tt-<test>-<pid>-<n>` with `lo` up. Drop stops every process
/// started through [`Netns::spawn`] (by PID), then SIGKILLs any other process still in
/// the namespace (listed by `ip netns pids`; they can only be ones the test started
/// there), then runs `ip netns del`. This also happens when the test panics.
///
/// Declare daemons that run inside it AFTER the `Netns`, so they drop first.
#[derive(Debug)]
pub struct Netns {
    name: String,
    procs: Mutex<Vec<Proc>>,
    logs: TempDir,
}

/// TCP MD5 counters of one namespace (`/proc/net/netstat`, TcpExt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Md5Counters {
    /// Segment without MD5 option on a socket that expects one.
    pub not_found: u64,
    /// Segment with MD5 option on a socket that has no key.
    pub unexpected: u64,
    /// Segment with a wrong signature.
    pub failure: u64,
}

impl Md5Counters {
    pub fn total(&self) -> u64 {
        self.not_found + self.unexpected + self.failure
    }
}

impl Netns {
    /// Create a namespace for test `test` (only its first 8 alphanumeric characters are
    /// used in the name). Panics if `ip netns add` fails.
    pub fn new(test: &str) -> Netns {
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let name = format!("tt-{short}-{}", super::unique_suffix());
        run(Command::new("ip").args(["netns", "add", &name]))
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        // From here on the guard exists, so a failure below still deletes the namespace.
        let ns = Netns {
            name,
            procs: Mutex::new(vec![]),
            logs: TempDir::new("netns"),
        };
        ns.ip(&["link", "set", "lo", "up"])
            .unwrap_or_else(|e| panic!("{e}"));
        ns
    }

    /// Whether a namespace with this name exists (`ip netns list`).
    pub fn exists(name: &str) -> bool {
        Path::new("/run/netns").join(name).exists()
            || run(Command::new("ip").args(["netns", "list"]))
                .map(|s| s.lines().any(|l| l.split_whitespace().next() == Some(name)))
                .unwrap_or(false)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `prog` inside the namespace (`ip netns exec NAME prog`). The
    /// process keeps its PID (`ip` execs it without forking).
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Run `args[0] args[1..]` inside the namespace; `Ok(stdout)` on success.
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        assert!(!args.is_empty(), "exec needs a program");
        run(self.command(args[0]).args(&args[1..]))
    }

    /// [`Netns::exec`] that panics on failure.
    #[track_caller]
    pub fn exec_ok(&self, args: &[&str]) -> String {
        self.exec(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n NAME args...`
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// [`Netns::ip`] that panics on failure.
    #[track_caller]
    pub fn ip_ok(&self, args: &[&str]) -> String {
        self.ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `sysctl -w net.ipv4.ip_forward=0|1` (and IPv6 forwarding) inside the namespace.
    pub fn set_ip_forward(&self, on: bool) {
        let v = if on { "1" } else { "0" };
        self.exec_ok(&["sysctl", "-qw", &format!("net.ipv4.ip_forward={v}")]);
        self.exec_ok(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.all.forwarding={v}"),
        ]);
    }

    /// `ip addr add CIDR dev DEV` (e.g. `add_addr("lo", "198.18.0.1/32")`).
    pub fn add_addr(&self, dev: &str, cidr: &str) {
        self.ip_ok(&["addr", "add", cidr, "dev", dev]);
    }

    /// A veth pair `a_if` (in `a`) <-> `b_if` (in `b`), both up. Created directly inside
    /// the namespaces, so nothing appears in the root namespace. Names <= 15 characters.
    pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
        assert!(
            a_if.len() <= 15 && b_if.len() <= 15,
            "interface names are limited to 15 characters"
        );
        a.ip_ok(&[
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ]);
        a.ip_ok(&["link", "set", a_if, "up"]);
        b.ip_ok(&["link", "set", b_if, "up"]);
    }

    /// A bridge `br` (up) inside the namespace.
    pub fn bridge(&self, br: &str) {
        self.ip_ok(&["link", "add", br, "type", "bridge"]);
        self.ip_ok(&["link", "set", br, "up"]);
    }

    /// Start `args` in the background inside the namespace; stdout/stderr go to a log
    /// file (see [`Netns::log_path`]). The process is stopped by PID when the guard drops
    /// (or with [`Netns::stop`]). Returns its PID.
    pub fn spawn(&self, name: &str, args: &[&str]) -> i32 {
        assert!(!args.is_empty(), "spawn needs a program");
        let mut cmd = self.command(args[0]);
        cmd.args(&args[1..]);
        let p = Proc::spawn(name, cmd, &self.log_path(name)).unwrap_or_else(|e| panic!("{e}"));
        let pid = p.pid();
        self.procs.lock().unwrap_or_else(|e| e.into_inner()).push(p);
        pid
    }

    /// Where the output of [`Netns::spawn`]`(name, ..)` goes.
    pub fn log_path(&self, name: &str) -> std::path::PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Stop (SIGTERM, then SIGKILL) a process started with [`Netns::spawn`].
    pub fn stop(&self, pid: i32) {
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = procs.iter().position(|p| p.pid() == pid) {
            let mut p = procs.remove(i);
            p.stop(Duration::from_secs(3));
        }
    }

    /// Signal a process started with [`Netns::spawn`] (e.g. SIGSTOP / SIGCONT).
    pub fn signal(&self, pid: i32, sig: i32) -> Result<(), String> {
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        match procs.iter_mut().find(|p| p.pid() == pid) {
            Some(p) => p.signal(sig),
            None => Err(format!("pid {pid} was not started by this Netns")),
        }
    }

    /// PIDs of all processes in the namespace (`ip netns pids`).
    pub fn pids(&self) -> Vec<i32> {
        run(Command::new("ip").args(["netns", "pids", &self.name]))
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// All TcpExt counters of the namespace (`cat /proc/net/netstat` run inside it).
    pub fn tcp_ext(&self) -> Result<BTreeMap<String, u64>, String> {
        let text = self.exec(&["cat", "/proc/net/netstat"])?;
        parse_netstat(&text, "TcpExt")
    }

    /// TCPMD5NotFound / TCPMD5Unexpected / TCPMD5Failure of the namespace.
    pub fn md5_counters(&self) -> Md5Counters {
        let m = self
            .tcp_ext()
            .unwrap_or_else(|e| panic!("reading TcpExt in {}: {e}", self.name));
        let g = |k: &str| m.get(k).copied().unwrap_or(0);
        Md5Counters {
            not_found: g("TCPMD5NotFound"),
            unexpected: g("TCPMD5Unexpected"),
            failure: g("TCPMD5Failure"),
        }
    }
}

/// Parse the `PREFIX: names` / `PREFIX: values` line pair of /proc/net/netstat or snmp.
pub fn parse_netstat(text: &str, prefix: &str) -> Result<BTreeMap<String, u64>, String> {
    let tag = format!("{prefix}:");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&tag)).collect();
    if lines.len() < 2 {
        return Err(format!("no {prefix} lines in /proc/net/netstat"));
    }
    let names = lines[0].split_whitespace().skip(1);
    let values = lines[1].split_whitespace().skip(1);
    Ok(names
        .zip(values)
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let mut procs = std::mem::take(&mut *self.procs.lock().unwrap_or_else(|e| e.into_inner()));
        while let Some(mut p) = procs.pop() {
            if panicking {
                let log = self.log_path(p.name());
                eprintln!(
                    "--- {} (pid {}) in {}: tail of {}\n{}",
                    p.name(),
                    p.pid(),
                    self.name,
                    log.display(),
                    super::tail(&log, 20)
                );
            }
            p.stop(Duration::from_secs(3));
        }
        // Anything else still inside (a daemon whose guard was leaked or dropped later):
        // it lives in our namespace, so it is ours; kill it by PID.
        for _ in 0..3 {
            let rest = self.pids();
            if rest.is_empty() {
                break;
            }
            for pid in &rest {
                let _ = process::signal(*pid, libc::SIGCONT);
                let _ = process::signal(*pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for attempt in 0..20 {
            match run(Command::new("ip").args(["netns", "del", &self.name])) {
                Ok(_) => return,
                Err(e) if attempt == 19 => {
                    eprintln!("support: deleting namespace {}: {e}", self.name)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

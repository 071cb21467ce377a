//! Network namespaces for felix's netlink tests: each test makes its own, named uniquely,
//! wired to a peer namespace by a veth pair, and deleted on drop (also when the test panics).
//! Nothing here touches the root namespace's routes or links.
//!
//! Addresses: the underlay is 198.18.0.0/15 (RFC 2544 benchmarking), and for IPv6 its
//! counterpart 2001:2::/48 (RFC 5180 benchmarking). The node side `v0` has 198.18.0.1/24 and
//! 2001:2::1/64 (nodad); the peer side `v1` (in namespace `<name>p`) has .2 and ::2.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use tortie_felix::netlink::{Kernel, KernelConfig, Netns};

pub const NODE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const NODE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// Run a command; its stdout, or a panic with its stderr.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn try_run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A test namespace `nl<tag><pid>-<n>` plus its peer `...p`; both deleted on drop.
pub struct TestNs {
    name: String,
    peer: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestNs {
    /// A bare namespace with `lo` up.
    pub fn bare(tag: &str) -> TestNs {
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(10)
            .collect();
        let name = format!(
            "nl{tag}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        // The guard exists from here on: a failure below still deletes the namespace.
        let ns = TestNs { name, peer: None };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A namespace with `v0` (198.18.0.1/24, 2001:2::1/64) wired to `v1` in a peer namespace
    /// (198.18.0.2/24, 2001:2::2/64), both up.
    pub fn with_veth(tag: &str) -> TestNs {
        let mut ns = TestNs::bare(tag);
        let peer = format!("{}p", ns.name);
        run(Command::new("ip").args(["netns", "add", &peer]));
        ns.peer = Some(peer.clone());
        ns.ip(&[
            "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &peer,
        ]);
        ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "v0"]);
        ns.ip(&["addr", "add", "2001:2::1/64", "dev", "v0", "nodad"]);
        ns.ip(&["link", "set", "v0", "up"]);
        let p = |args: &[&str]| run(Command::new("ip").arg("-n").arg(&peer).args(args));
        p(&["link", "set", "lo", "up"]);
        p(&["addr", "add", "198.18.0.2/24", "dev", "v1"]);
        p(&["addr", "add", "2001:2::2/64", "dev", "v1", "nodad"]);
        p(&["link", "set", "v1", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn netns(&self) -> Netns {
        Netns::named(&self.name).expect("namespace name")
    }

    /// A felix kernel handle inside this namespace.
    pub fn kernel(&self) -> Kernel {
        Kernel::open(self.netns(), KernelConfig::default())
            .expect("open netlink in the test namespace")
    }

    /// `ip -n NAME args...`; panics on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip -n NAME args...`, the error text on failure.
    pub fn try_ip(&self, args: &[&str]) -> Result<String, String> {
        try_run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip -n NAME -j args...` parsed.
    pub fn ip_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = run(Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .arg("-j")
            .args(args));
        parse_json_list(&out)
    }

    /// `bridge -n NAME -j args...` parsed.
    pub fn bridge_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = run(Command::new("bridge")
            .arg("-n")
            .arg(&self.name)
            .arg("-j")
            .args(args));
        parse_json_list(&out)
    }

    /// `ip netns exec NAME prog args...`.
    pub fn exec(&self, prog: &str, args: &[&str]) -> String {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name, prog])
            .args(args))
    }

    /// Index of a link in this namespace.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let v = self.ip_json(&["link", "show", "dev", dev]);
        v.first()
            .and_then(|l| l["ifindex"].as_u64())
            .unwrap_or_else(|| panic!("no ifindex for {dev}: {v:?}")) as u32
    }

    /// Routes of a protocol (`ip -j route show proto P` for both families).
    pub fn routes(&self, proto: u8) -> Vec<serde_json::Value> {
        let p = proto.to_string();
        let mut v = self.ip_json(&["-4", "route", "show", "proto", &p]);
        v.extend(self.ip_json(&["-6", "route", "show", "proto", &p]));
        v
    }
}

fn parse_json_list(out: &str) -> Vec<serde_json::Value> {
    if out.trim().is_empty() {
        return vec![];
    }
    match serde_json::from_str::<serde_json::Value>(out) {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(other) => vec![other],
        Err(e) => panic!("bad JSON ({e}): {out}"),
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        for n in std::iter::once(&self.name).chain(self.peer.as_ref()) {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// `ip` as an `IpAddr`.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The network namespace inode of the calling thread.
pub fn thread_netns() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

//! Network-namespace topologies for dataplane tests, built with iproute2 `ip` commands.
//!
//! Used inside the qemu VM (`tests/vm_inner`, Debian's kernel with ipip) and meant for host tests too
//! (`#[path = "vm_inner/topo.rs"] mod topo;`). Needs root, `ip` (iproute2) and `ping` (iputils).
//!
//! Cheap under TCG, where every process start costs ~50-100 ms: a topology is built with one `ip -batch`
//! per namespace; sysctls, counters and link flags are done in-process from a thread that joined the
//! namespace ([`Netns::enter`]); namespaces are deleted in-process.
//!
//! Every namespace is a [`Netns`] guard: dropping it (also while a failed test unwinds) deletes the
//! namespace, and with it every veth, bridge and tunnel device inside. Names are unique per process and
//! call (`tt-<pid>-<n>-<role>`), so tests can run in parallel; namespaces left behind by a process that
//! was killed (no unwinding) are removed by the next [`Topology::four_nodes`] ([`reap_stale`]).
//!
//! [`Topology::four_nodes`] is the standard test network (`shared/design.md`, "Test networks"):
//!
//! ```text
//!   pod1       pod2                     pod3       pod4        198.19.N.2/32, default via 169.254.1.1
//!    |cali-pod1 |cali-pod2               |cali-pod3 |cali-pod4  (proxy_arp, proxy_delay=0)
//!   node1      node2                    node3      node4       ip_forward=1, block 198.19.N.0/26
//!    |eth0      |eth0                    |eth0      |eth0
//!   198.18.1.11 198.18.1.12             198.18.2.13 198.18.2.14
//!    |          |                        |          |
//!    +--[br-a 198.18.1.1/24]--router--[br-b 198.18.2.1/24]--+  ip_forward=1, knows no pod route
//! ```
//!
//! Nodes in the same subnet share an L2 segment (a bridge in the router namespace); traffic between the
//! subnets is routed by the router, which has no route to any pod: pod traffic crosses the subnets only
//! encapsulated (or after a test gives the router pod routes).
//!
//! [`Topology::four_nodes_dual_stack`] adds IPv6 from the benchmarking range 2001:2::/48 (RFC 5180) in
//! the same shape: subnet A 2001:2:0:1::/64 and B 2001:2:0:2::/64 (router ::1, node N ::1N, e.g.
//! 2001:2:0:1::11), pod N at 2001:2:0:19::N02/128 in block 2001:2:0:19::N00/122, default route via
//! fe80::1 (on the node-side veth). Duplicate address detection is off in all its namespaces
//! (`accept_dad=0` before any link exists), so addresses are usable at once; the first packets may
//! still wait for neighbour discovery.
#![allow(dead_code)] // a toolbox: each test target uses part of it

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub type Result<T> = std::result::Result<T, String>;

/// Run a command; its stdout on success, else an error with the command line, status and output.
pub fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    check(&format!("{cmd} {}", args.join(" ")), out)
}

fn check(what: &str, out: Output) -> Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{what}` failed ({}): {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// `ip ARGS...` in the current namespace.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// `ip [-n NETNS] -batch -`: many `ip` commands (one per line, without the leading `ip`), one process.
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let written = stdin.write_all(lines.join("\n").as_bytes());
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    written.map_err(|e| format!("ip -batch: {e}"))?;
    let what = format!(
        "ip{} -batch: {}",
        netns.map(|n| format!(" -n {n}")).unwrap_or_default(),
        lines.join("; ")
    );
    check(&what, out).map(drop)
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh name prefix, unique on this machine: `tt-<pid>-<n>`.
pub fn unique_prefix() -> String {
    format!(
        "tt-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Delete the `tt-<pid>-*` namespaces whose process is gone (left by a killed test run).
pub fn reap_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.splitn(3, '-');
        if parts.next() != Some("tt") {
            continue;
        }
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(&name);
        }
    }
}

/// What `ip netns del` does: detach the bind mount that keeps the namespace alive, remove the file.
fn delete_netns(name: &str) -> bool {
    let path = format!("/run/netns/{name}");
    let Ok(c) = std::ffi::CString::new(path.clone()) else {
        return false;
    };
    // SAFETY: plain syscall on a NUL-terminated path.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    std::fs::remove_file(&path).is_ok()
}

/// Set a link up (SIOCSIFFLAGS) in the calling thread's namespace.
fn link_up_here(ifname: &str) -> std::io::Result<()> {
    // SAFETY: a socket we own, and a zeroed ifreq with a NUL-terminated name shorter than IFNAMSIZ.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req
            .ifr_name
            .iter_mut()
            .zip(ifname.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A named network namespace (`/run/netns/<name>`, as `ip netns` makes them), deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create namespace `name` (it must not exist yet) with `lo` up.
    pub fn new(name: &str) -> Result<Netns> {
        Ok(Self::new_many(&[name.to_string()])?.pop().unwrap())
    }

    /// Create several namespaces with one `ip` process, each with `lo` up.
    pub fn new_many(names: &[String]) -> Result<Vec<Netns>> {
        let lines: Vec<String> = names.iter().map(|n| format!("netns add {n}")).collect();
        let result = ip_batch(None, &lines);
        // Guards for every name that exists now, so that a half-failed batch is cleaned up too.
        let all: Vec<Netns> = names.iter().map(|n| Netns { name: n.clone() }).collect();
        result?;
        for ns in &all {
            ns.enter(|| link_up_here("lo"))?
                .map_err(|e| format!("{}: lo up: {e}", ns.name))?;
        }
        Ok(all)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `f` on a thread that joined this namespace (setns): sockets it opens, `/proc/sys/net`,
    /// `/proc/thread-self/net` and processes it spawns are in the namespace. (Not /sys/class/net: that
    /// belongs to the namespace that mounted /sys.)
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                let fd = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
                // SAFETY: setns on an fd we own; it only affects this (short-lived) thread.
                if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
                }
                Ok(f())
            });
            t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// `ip -n NAME -batch -`
    pub fn ip_batch(&self, lines: &[String]) -> Result<()> {
        ip_batch(Some(&self.name), lines)
    }

    /// Run a program in this namespace: its stdout on success.
    pub fn exec(&self, cmd: &[&str]) -> Result<String> {
        let what = cmd.join(" ");
        check(
            &format!("{what} (in {})", self.name),
            self.exec_output(cmd)?,
        )
    }

    /// Like [`exec`](Self::exec), with the raw output, for commands expected to fail.
    pub fn exec_output(&self, cmd: &[&str]) -> Result<Output> {
        let (prog, args) = cmd.split_first().ok_or("empty command")?;
        self.enter(|| Command::new(prog).args(args).stdin(Stdio::null()).output())?
            .map_err(|e| format!("{prog}: {e}"))
    }

    /// Write `/proc/sys/<key>` in this namespace; `key` uses slashes (`net/ipv4/conf/eth0/proxy_arp`),
    /// so device names with dots (`vxlan.tortie`) need no escaping.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.sysctls(&[(key, value)])
    }

    /// Several sysctls in one visit.
    pub fn sysctls(&self, kv: &[(&str, &str)]) -> Result<()> {
        self.enter(|| {
            kv.iter().try_for_each(|(k, v)| {
                std::fs::write(format!("/proc/sys/{k}"), v)
                    .map_err(|e| format!("sysctl {k}={v}: {e}"))
            })
        })?
        .map_err(|e| format!("{}: {e}", self.name))
    }

    pub fn read_sysctl(&self, key: &str) -> Result<String> {
        self.enter(|| std::fs::read_to_string(format!("/proc/sys/{key}")))?
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{}: {key}: {e}", self.name))
    }

    /// A device's packet counters (from this namespace's /proc/net/dev).
    pub fn link_stats(&self, dev: &str) -> Result<LinkStats> {
        let text = self
            .enter(|| std::fs::read_to_string("/proc/thread-self/net/dev"))?
            .map_err(|e| format!("{}: /proc/net/dev: {e}", self.name))?;
        // "  tunl0: rx_bytes rx_packets errs drop fifo frame compressed multicast tx_bytes tx_packets ..."
        let line = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(dev)?.strip_prefix(':'))
            .ok_or_else(|| format!("{}: no device {dev}", self.name))?;
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() < 16 {
            return Err(format!(
                "{}: /proc/net/dev line for {dev}: {line}",
                self.name
            ));
        }
        Ok(LinkStats {
            rx_packets: f[1],
            tx_packets: f[9],
        })
    }

    /// Whether a device exists in this namespace.
    pub fn has_link(&self, dev: &str) -> bool {
        let prefix = format!("{dev}:");
        self.enter(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
            .is_ok_and(|t| t.is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with(&prefix))))
    }

    /// Set a link up.
    pub fn link_up(&self, dev: &str) -> Result<()> {
        self.enter(|| link_up_here(dev))?
            .map_err(|e| format!("{}: {dev} up: {e}", self.name))
    }

    /// `ping -c COUNT` from this namespace: 50 ms apart, 2 s to wait for each reply.
    pub fn ping(&self, dst: Ipv4Addr, count: u32) -> Result<()> {
        self.exec(&[
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "2",
            &dst.to_string(),
        ])
        .map(drop)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if Path::new(&format!("/run/netns/{}", self.name)).exists() && !delete_netns(&self.name) {
            eprintln!("topo: cannot delete namespace {}", self.name);
        }
    }
}

impl fmt::Debug for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Netns({})", self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStats {
    pub tx_packets: u64,
    pub rx_packets: u64,
}

impl std::ops::Sub for LinkStats {
    type Output = LinkStats;
    fn sub(self, o: LinkStats) -> LinkStats {
        LinkStats {
            tx_packets: self.tx_packets - o.tx_packets,
            rx_packets: self.rx_packets - o.rx_packets,
        }
    }
}

/// `ip link add` line (for a root-namespace batch) of a veth pair between two namespaces.
fn veth_line(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> String {
    format!(
        "link add {a_if} netns {} type veth peer name {b_if} netns {}",
        a.name(),
        b.name()
    )
}

/// A veth pair between two namespaces, both ends up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    ip_batch(None, &[veth_line(a, a_if, b, b_if)])?;
    a.link_up(a_if)?;
    b.link_up(b_if)
}

/// A "node": a host on an underlay subnet with a pod block.
#[derive(Debug)]
pub struct Node {
    pub ns: Netns,
    /// Underlay address, on `dev`.
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// The router's address on this node's subnet (the node's default gateway).
    pub gateway: Ipv4Addr,
    /// Underlay device: `eth0`.
    pub dev: &'static str,
    /// This node's pod block (address, prefix length): 198.19.N.0/26.
    pub block: (Ipv4Addr, u8),
    /// Dual stack only: the IPv6 underlay address (prefix length 64), e.g. 2001:2:0:1::11.
    pub addr6: Option<Ipv6Addr>,
    /// Dual stack only: the router's IPv6 address on this node's subnet.
    pub gateway6: Option<Ipv6Addr>,
    /// Dual stack only: the IPv6 pod block, 2001:2:0:19::N00/122.
    pub block6: Option<(Ipv6Addr, u8)>,
}

impl Node {
    pub fn block_str(&self) -> String {
        format!("{}/{}", self.block.0, self.block.1)
    }

    /// Whether `other` is in this node's subnet (Calico's "same subnet").
    pub fn same_subnet(&self, other: &Node) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        u32::from(self.addr) & mask == u32::from(other.addr) & mask
    }
}

/// A Calico-style pod behind a node: a /32 on `eth0`, default route via 169.254.1.1, which the node
/// answers by proxy ARP (proxy_delay 0) on the host-side veth; the node routes the /32 to that veth.
#[derive(Debug)]
pub struct Pod {
    pub ns: Netns,
    pub addr: Ipv4Addr,
    /// Index into [`Topology::nodes`].
    pub node: usize,
    /// The node-side veth (`cali-podN`).
    pub host_if: String,
    /// Dual stack only: the pod's IPv6 address (a /128 on `eth0`).
    pub addr6: Option<Ipv6Addr>,
}

/// The node side of a pod: veth up, the /32 route (batch lines) ...
fn pod_node_lines(host_if: &str, addr: Ipv4Addr) -> Vec<String> {
    vec![
        format!("link set {host_if} up"),
        format!("route add {addr}/32 dev {host_if} scope link"),
    ]
}

/// ... its sysctls ...
fn pod_node_sysctls(host_if: &str) -> [(String, &'static str); 2] {
    [
        (format!("net/ipv4/conf/{host_if}/proxy_arp"), "1"),
        (format!("net/ipv4/neigh/{host_if}/proxy_delay"), "0"),
    ]
}

/// ... and the pod side.
fn pod_lines(addr: Ipv4Addr) -> Vec<String> {
    vec![
        "link set eth0 up".into(),
        format!("addr add {addr}/32 dev eth0"),
        "route add 169.254.1.1 dev eth0 scope link".into(),
        "route add default via 169.254.1.1 dev eth0".into(),
    ]
}

fn sysctls(ns: &Netns, kv: &[(String, &str)]) -> Result<()> {
    let kv: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    ns.sysctls(&kv)
}

/// Add a Calico-style pod namespace `name` with address `addr` behind `node` (`nodes[node_index]`).
pub fn add_pod(
    node: &Node,
    node_index: usize,
    name: &str,
    host_if: &str,
    addr: Ipv4Addr,
) -> Result<Pod> {
    let ns = Netns::new(name)?;
    ip_batch(None, &[veth_line(&node.ns, host_if, &ns, "eth0")])?;
    node.ns.ip_batch(&pod_node_lines(host_if, addr))?;
    sysctls(&node.ns, &pod_node_sysctls(host_if))?;
    ns.ip_batch(&pod_lines(addr))?;
    Ok(Pod {
        ns,
        addr,
        node: node_index,
        host_if: host_if.to_string(),
        addr6: None,
    })
}

/// The standard four-node test network (see the module docs). Dropping it deletes every namespace.
#[derive(Debug)]
pub struct Topology {
    pub prefix: String,
    pub router: Netns,
    pub nodes: Vec<Node>,
    /// `pods[i]` is behind `nodes[i]`.
    pub pods: Vec<Pod>,
}

impl Topology {
    /// node1, node2 in 198.18.1.0/24 (.11, .12); node3, node4 in 198.18.2.0/24 (.13, .14); the router
    /// at .1 of both, on bridges br-a and br-b; pod N at 198.19.N.2/32 behind node N, whose block is
    /// 198.19.N.0/26. ip_forward=1 on router and nodes. No pod routes between nodes, and none on the
    /// router: the test adds what it tests.
    pub fn four_nodes() -> Result<Topology> {
        Self::build(false)
    }

    /// [`four_nodes`](Self::four_nodes) plus IPv6 everywhere (module docs): underlay addresses and
    /// default routes, pod addresses and their /128 routes, IPv6 forwarding on router and nodes.
    pub fn four_nodes_dual_stack() -> Result<Topology> {
        Self::build(true)
    }

    fn build(ipv6: bool) -> Result<Topology> {
        reap_stale();
        let prefix = unique_prefix();
        let mut names = vec![format!("{prefix}-router")];
        names.extend((1..=4).map(|n| format!("{prefix}-node{n}")));
        names.extend((1..=4).map(|n| format!("{prefix}-pod{n}")));
        let mut all = Netns::new_many(&names)?.into_iter();
        let router = all.next().unwrap();
        let node_ns: Vec<Netns> = all.by_ref().take(4).collect();
        let pod_ns: Vec<Netns> = all.collect();
        if ipv6 {
            // Before any link exists, so that every device inherits it.
            let kv = [
                ("net/ipv6/conf/all/accept_dad", "0"),
                ("net/ipv6/conf/default/accept_dad", "0"),
            ];
            for ns in std::iter::once(&router).chain(&node_ns).chain(&pod_ns) {
                ns.sysctls(&kv)?;
            }
        }

        // Every veth, from the root namespace, in one go.
        let mut root = Vec::new();
        for n in 0..4 {
            root.push(veth_line(
                &router,
                &format!("r-node{}", n + 1),
                &node_ns[n],
                "eth0",
            ));
            root.push(veth_line(
                &node_ns[n],
                &format!("cali-pod{}", n + 1),
                &pod_ns[n],
                "eth0",
            ));
        }
        let built = ip_batch(None, &root);
        let mut topo = Topology {
            prefix,
            router,
            nodes: Vec::new(),
            pods: Vec::new(),
        };
        for (i, ns) in node_ns.into_iter().enumerate() {
            let (n, s) = (i as u8 + 1, if i < 2 { 1 } else { 2 });
            topo.nodes.push(Node {
                ns,
                addr: Ipv4Addr::new(198, 18, s, 10 + n),
                prefix_len: 24,
                gateway: Ipv4Addr::new(198, 18, s, 1),
                dev: "eth0",
                block: (Ipv4Addr::new(198, 19, n, 0), 26),
                addr6: ipv6.then(|| v6(&format!("2001:2:0:{s}::{}", 10 + n))),
                gateway6: ipv6.then(|| v6(&format!("2001:2:0:{s}::1"))),
                block6: ipv6.then(|| (v6(&format!("2001:2:0:19::{n}00")), 122)),
            });
        }
        for (i, ns) in pod_ns.into_iter().enumerate() {
            let addr = Ipv4Addr::new(198, 19, i as u8 + 1, 2);
            topo.pods.push(Pod {
                ns,
                addr,
                node: i,
                host_if: format!("cali-pod{}", i + 1),
                addr6: ipv6.then(|| v6(&format!("2001:2:0:19::{}02", i + 1))),
            });
        }
        built?; // (after the guards are in `topo`)

        let mut r = Vec::new();
        for (s, br) in [(1, "br-a"), (2, "br-b")] {
            r.push(format!("link add {br} type bridge"));
            r.push(format!("addr add 198.18.{s}.1/24 dev {br}"));
            if ipv6 {
                r.push(format!("addr add 2001:2:0:{s}::1/64 dev {br} nodad"));
            }
            r.push(format!("link set {br} up"));
        }
        for n in 1..=4 {
            r.push(format!(
                "link set r-node{n} master {} up",
                if n <= 2 { "br-a" } else { "br-b" }
            ));
        }
        topo.router.ip_batch(&r)?;
        topo.router.sysctl("net/ipv4/ip_forward", "1")?;
        if ipv6 {
            topo.router.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        }
        for (node, pod) in topo.nodes.iter().zip(&topo.pods) {
            let mut lines = vec![
                "link set eth0 up".to_string(),
                format!("addr add {}/{} dev eth0", node.addr, node.prefix_len),
                format!("route add default via {}", node.gateway),
            ];
            lines.extend(pod_node_lines(&pod.host_if, pod.addr));
            let mut pod_side = pod_lines(pod.addr);
            let mut kv = vec![("net/ipv4/ip_forward".to_string(), "1")];
            if let (Some(a6), Some(gw6), Some(p6)) = (node.addr6, node.gateway6, pod.addr6) {
                lines.extend([
                    format!("addr add {a6}/64 dev eth0 nodad"),
                    format!("route add default via {gw6} dev eth0"),
                    format!("addr add fe80::1/64 dev {} nodad", pod.host_if),
                    format!("route add {p6}/128 dev {}", pod.host_if),
                ]);
                pod_side.splice(1..1, [format!("addr add {p6}/128 dev eth0 nodad")]);
                pod_side.push("route add default via fe80::1 dev eth0".into());
                kv.push(("net/ipv6/conf/all/forwarding".to_string(), "1"));
            }
            node.ns.ip_batch(&lines)?;
            kv.extend(pod_node_sysctls(&pod.host_if));
            sysctls(&node.ns, &kv)?;
            pod.ns.ip_batch(&pod_side)?;
        }
        Ok(topo)
    }
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("IPv6 literal")
}

//! A small cluster for the agent's end-to-end tests: a router namespace joining two subnets
//! (198.18.1.0/24 on bridge `bra`, 198.18.2.0/24 on `brb`), nodes as namespaces with one `eth0`
//! each, real `tortie agent` processes running the kernel dataplane from a shared datastore
//! (the embedded store in a scratch directory, or a throwaway etcd), and pods as namespaces
//! wired the way Calico's CNI plugin does it, with addresses from tortie's IPAM.
//!
//! Everything is torn down by the guards' Drop (agents by pid, namespaces by name).

use crate::support::{Netns, TempDir, unique_suffix};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tortie_ipam::store::Store;
use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::store::etcd::{EtcdConfig, EtcdStore};
use tortie_ipam::{AllocRequest, Allocation, Allocator, IpamConfig, Pool};

pub const BIN: &str = env!("CARGO_BIN_EXE_tortie");

/// Where the cluster keeps its configuration.
#[derive(Clone, Debug)]
pub enum Datastore {
    Embedded(PathBuf),
    Etcd(String),
}

impl Datastore {
    pub fn args(&self) -> Vec<String> {
        match self {
            Datastore::Embedded(d) => vec!["--data-dir".into(), d.display().to_string()],
            Datastore::Etcd(ep) => vec!["--etcd-endpoints".into(), ep.clone()],
        }
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Datastore::Embedded(d) => Arc::new(
                EmbeddedStore::open(EmbeddedConfig::new(d))
                    .await
                    .expect("open the embedded store"),
            ),
            Datastore::Etcd(ep) => Arc::new(
                EtcdStore::connect(EtcdConfig::new([ep.clone()]))
                    .await
                    .expect("connect to etcd"),
            ),
        }
    }
}

pub struct Node {
    pub name: String,
    pub addr: IpAddr,
    pub ns: Netns,
    pub agent: Option<i32>,
}

pub struct Pod {
    pub name: String,
    pub node: String,
    pub ns: Netns,
    pub alloc: Allocation,
}

pub struct Cluster {
    // Field order is drop order: pods, then nodes (their agents stop with their namespace's
    // guard), then the router, then the directory.
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub router: Netns,
    pub store: Datastore,
    /// The namespace the datastore is reached from, when it is not this one (etcd inside the
    /// router namespace): CLI commands and IPAM calls of the test run there.
    pub store_ns: Option<String>,
    pub dir: TempDir,
}

/// Runs a command, failing the test with its output when it fails.
#[track_caller]
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` until it returns `Some`, or fails the test with `what` and `detail()`.
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
    detail: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}\n{}", detail());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The YAML of a cluster: mesh on, AS 64512, one pool, the nodes.
pub fn base_yaml(nodes: &[(String, IpAddr)], pool: &str, encap: &str, mesh: bool) -> String {
    let mut y = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec: {{asNumber: 64512, nodeToNodeMeshEnabled: {mesh}}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: pool-1}}\nspec: {{cidr: {pool}, blockSize: 26, {encap}}}\n"
    );
    for (name, addr) in nodes {
        y.push_str("---\n");
        y.push_str(&node_yaml(name, *addr));
    }
    y
}

/// The YAML of one Node resource with its address in a /24.
pub fn node_yaml(name: &str, addr: IpAddr) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{bgp: {{ipv4Address: {addr}/24}}}}\n"
    )
}

impl Cluster {
    /// `n` nodes alternating between the two subnets; no agents yet.
    pub fn new(test: &str, n: usize, store: Option<Datastore>) -> Cluster {
        let dir = TempDir::new(test);
        let router = Netns::new(&format!("{test}r"));
        router.set_ip_forward(true);
        for (br, gw) in [("bra", "198.18.1.1/24"), ("brb", "198.18.2.1/24")] {
            router.bridge(br);
            router.add_addr(br, gw);
        }
        let mut nodes = Vec::new();
        for i in 0..n {
            let subnet = 1 + i % 2;
            let addr: IpAddr = format!("198.18.{subnet}.{}", 11 + i)
                .parse()
                .expect("node address");
            let ns = Netns::new(&format!("{test}n{i}"));
            let peer = format!("veth-n{i}");
            Netns::veth(&ns, "eth0", &router, &peer);
            router.ip_ok(&[
                "link",
                "set",
                &peer,
                "master",
                if subnet == 1 { "bra" } else { "brb" },
            ]);
            ns.add_addr("eth0", &format!("{addr}/24"));
            ns.ip_ok(&[
                "route",
                "add",
                "default",
                "via",
                &format!("198.18.{subnet}.1"),
            ]);
            ns.set_ip_forward(true);
            nodes.push(Node {
                name: format!("node-{}", i + 1),
                addr,
                ns,
                agent: None,
            });
        }
        let store = store.unwrap_or_else(|| Datastore::Embedded(dir.join("data")));
        Cluster {
            pods: Vec::new(),
            nodes,
            router,
            store,
            store_ns: None,
            dir,
        }
    }

    pub fn node_list(&self) -> Vec<(String, IpAddr)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.addr))
            .collect()
    }

    /// The tortie CLI, run where the datastore is reachable.
    pub fn cli(&self) -> Command {
        match &self.store_ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        }
    }

    /// `tortie apply -f` of `yaml` into the cluster's datastore.
    pub fn apply(&self, yaml: &str) -> String {
        let f = self.dir.join(format!("apply-{}.yaml", unique_suffix()));
        std::fs::write(&f, yaml).expect("write the YAML");
        sh(self
            .cli()
            .arg("apply")
            .arg("-f")
            .arg(&f)
            .args(self.store.args()))
    }

    pub fn delete(&self, kind: &str, name: &str) -> String {
        sh(self
            .cli()
            .args(["delete", kind, name])
            .args(self.store.args()))
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).expect("node")
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("node")
    }

    pub fn agent_log(&self, name: &str) -> std::path::PathBuf {
        self.node(name).ns.log_path(&format!("agent-{name}"))
    }

    /// The last lines of a node's agent log.
    pub fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.agent_log(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Starts (or starts again) the agent of `name` with the kernel dataplane.
    pub fn start_agent(&mut self, name: &str) {
        self.start_agent_with(name, &[]);
    }

    /// The API socket of a node's agent.
    pub fn api_socket(&self, name: &str) -> PathBuf {
        self.dir.join(format!("api-{name}/tortie.sock"))
    }

    /// [`Cluster::start_agent`] with `extra` flags after the usual ones.
    pub fn start_agent_with(&mut self, name: &str, extra: &[&str]) {
        let state = self.dir.join(format!("state-{name}"));
        let socket = self.api_socket(name);
        let mut args: Vec<String> = vec![
            BIN.into(),
            "agent".into(),
            "--node".into(),
            name.into(),
            "--dataplane".into(),
            "kernel".into(),
            "--underlay".into(),
            "eth0".into(),
            "--hold-time".into(),
            "9".into(),
            "--connect-retry".into(),
            "1".into(),
            "--initial-sync-timeout".into(),
            "10".into(),
            "--state-dir".into(),
            state.display().to_string(),
            "--api-socket".into(),
            socket.display().to_string(),
        ];
        args.extend(self.store.args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let log_name = format!("agent-{name}");
        let node = self.node_mut(name);
        let pid = node.ns.spawn(&log_name, &refs);
        node.agent = Some(pid);
    }

    pub fn start_all(&mut self) {
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        for n in names {
            self.start_agent(&n);
        }
    }

    /// SIGKILLs a node's agent.
    pub fn kill_agent(&mut self, name: &str) {
        let node = self.node_mut(name);
        let pid = node.agent.take().expect("the agent runs");
        node.ns
            .signal(pid, libc::SIGKILL)
            .expect("kill -9 the agent");
        let start = Instant::now();
        while crate::support::process::pid_alive(pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        node.ns.stop(pid);
    }

    /// SIGTERMs a node's agent and waits until it has exited by itself (a graceful stop, not
    /// the SIGKILL that follows a grace period).
    #[track_caller]
    pub fn stop_agent(&mut self, name: &str) {
        let pid = self.node(name).agent.expect("the agent runs");
        self.node(name)
            .ns
            .signal(pid, libc::SIGTERM)
            .expect("SIGTERM the agent");
        wait_for(
            &format!("{name}'s agent to exit after SIGTERM"),
            Duration::from_secs(15),
            || (!crate::support::process::pid_alive(pid)).then_some(()),
            || self.log_tail(name),
        );
        let node = self.node_mut(name);
        node.agent = None;
        node.ns.stop(pid);
    }

    /// `tortie peers --json` from a node's agent.
    #[track_caller]
    pub fn peers_json(&self, name: &str) -> serde_json::Value {
        let out = sh(Command::new(BIN)
            .args(["peers", "--json", "--api-socket"])
            .arg(self.api_socket(name)));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("peers JSON: {e}\n{out}"))
    }

    /// Allocates a pod's address on `node` from `pools` and wires the pod as Calico's CNI does:
    /// a veth whose pod side is `eth0` with the /32, a default route via 169.254.1.1 answered
    /// by proxy ARP on the host side, and a host route to the pod.
    pub fn add_pod(&mut self, node: &str, pod: &str, pools: &[Pool]) -> IpAddr {
        let (store, store_ns) = (self.store.clone(), self.store_ns.clone());
        let (node_name, pod_name, pools) = (node.to_string(), pod.to_string(), pools.to_vec());
        // A thread of its own, so that it can enter the datastore's namespace.
        let got = std::thread::spawn(move || {
            if let Some(ns) = store_ns {
                enter_netns(&ns);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let store = store.open().await;
                let a = Allocator::new(store, IpamConfig::default());
                let handle = format!("k8s-pod-network.{pod_name}");
                a.allocate(&AllocRequest::pod(
                    &handle, &node_name, "default", &pod_name, &pools,
                ))
                .await
                .expect("allocate the pod's address")
                .remove(0)
            })
        })
        .join()
        .expect("the IPAM thread");
        let ns = Netns::new(&format!("{pod}p"));
        let host_if: String = format!("cali{}", unique_suffix())
            .chars()
            .take(15)
            .collect();
        let n = self.node(node);
        n.ns.ip_ok(&[
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]);
        n.ns.ip_ok(&["link", "set", &host_if, "up"]);
        // As the CNI plugin does: proxy ARP answers the pod's gateway, at once (the kernel
        // otherwise delays proxied replies by up to 0.8 s, which a short ping can outlast).
        n.ns.exec_ok(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{host_if}.proxy_arp=1"),
            &format!("net.ipv4.neigh.{host_if}.proxy_delay=0"),
        ]);
        n.ns.ip_ok(&[
            "route",
            "add",
            &format!("{}/32", got.addr),
            "dev",
            &host_if,
            "scope",
            "link",
        ]);
        ns.ip_ok(&["link", "set", "eth0", "up"]);
        ns.add_addr("eth0", &format!("{}/32", got.addr));
        ns.ip_ok(&[
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ]);
        ns.ip_ok(&[
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ]);
        let addr = got.addr;
        self.pods.push(Pod {
            name: pod.to_string(),
            node: node.to_string(),
            ns,
            alloc: got,
        });
        addr
    }

    pub fn pod(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name == name).expect("pod")
    }

    /// tortie's routes (protocol 116) in a node's kernel.
    pub fn tortie_routes(&self, node: &str) -> String {
        self.node(node)
            .ns
            .ip(&["route", "show", "proto", "116"])
            .unwrap_or_default()
    }

    /// The tortie route for `prefix` in `node`'s kernel, if any.
    pub fn route_to(&self, node: &str, prefix: &str) -> Option<String> {
        self.tortie_routes(node)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(prefix))
            .map(str::to_string)
    }

    /// Waits until `node` has a tortie route for `prefix`; returns the route line.
    #[track_caller]
    pub fn wait_route(&self, node: &str, prefix: &str) -> String {
        wait_for(
            &format!("a route to {prefix} on {node}"),
            Duration::from_secs(40),
            || self.route_to(node, prefix),
            || {
                format!(
                    "routes: {}\nlog:\n{}",
                    self.tortie_routes(node),
                    self.log_tail(node)
                )
            },
        )
    }

    /// Waits until every node has a route to every other node's pod blocks.
    #[track_caller]
    pub fn wait_all_routes(&self) {
        for p in &self.pods {
            for n in &self.nodes {
                if n.name != p.node {
                    self.wait_route(&n.name, &p.alloc.block.to_string());
                }
            }
        }
    }

    /// Waits until `node` has no tortie route for `prefix`.
    #[track_caller]
    pub fn wait_no_route(&self, node: &str, prefix: &str) {
        wait_for(
            &format!("no route to {prefix} on {node}"),
            Duration::from_secs(40),
            || self.route_to(node, prefix).is_none().then_some(()),
            || {
                format!(
                    "routes: {}\nlog:\n{}",
                    self.tortie_routes(node),
                    self.log_tail(node)
                )
            },
        )
    }

    /// A node's forwarding state, for failure messages.
    pub fn dump(&self, node: &str) -> String {
        let ns = &self.node(node).ns;
        let mut out = format!("--- {node}\n");
        for args in [
            &["route", "show"][..],
            &["neigh", "show", "dev", "vxlan.tortie"][..],
            &["-d", "link", "show", "vxlan.tortie"][..],
        ] {
            out.push_str(&ns.ip(args).unwrap_or_else(|e| e));
        }
        out.push_str(
            &ns.exec(&["bridge", "fdb", "show", "dev", "vxlan.tortie"])
                .unwrap_or_else(|e| e),
        );
        out.push_str(
            &ns.exec(&[
                "sysctl",
                "net.ipv4.conf.all.rp_filter",
                "net.ipv4.conf.eth0.rp_filter",
            ])
            .unwrap_or_else(|e| e),
        );
        out.push_str(
            &ns.exec(&["cat", "/proc/sys/net/ipv4/conf/vxlan.tortie/rp_filter"])
                .unwrap_or_else(|e| e),
        );
        out
    }

    /// Whether `from` reaches `to` within `limit`: pings in rounds of 3 until one answers.
    pub fn reaches(&self, from: &str, to: IpAddr, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.ping(from, to, 3, "0.2").1 > 0 {
                return true;
            }
        }
        false
    }

    /// `ping` from one pod to another: how many of `count` echoes came back.
    pub fn ping(&self, from: &str, to: IpAddr, count: u32, interval: &str) -> (u32, u32) {
        let out = self
            .pod(from)
            .ns
            .command("ping")
            .args([
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                interval,
                "-W",
                "1",
            ])
            .arg(to.to_string())
            .output()
            .expect("run ping");
        let text = String::from_utf8_lossy(&out.stdout);
        parse_ping(&text).unwrap_or_else(|| panic!("unexpected ping output: {text}"))
    }
}

/// `count` echoes `interval` seconds apart from a pod, in a thread; joining it gives ping's
/// output (`-O` reports each missed answer, `-D` stamps each line).
impl Cluster {
    /// The log line of the first dataplane sync after `name`'s agent was restarted (its
    /// second), once it is written.
    pub fn restarted_first_sync(&self, name: &str) -> String {
        wait_for(
            "the restarted agent's first sync",
            Duration::from_secs(30),
            || {
                let text = std::fs::read_to_string(self.agent_log(name)).ok()?;
                text.lines()
                    .filter(|l| l.contains("dataplane: first sync written"))
                    .nth(1)
                    .map(str::to_string)
            },
            || self.log_tail(name),
        )
    }
}

pub fn ping_flood(
    from: &Pod,
    to: IpAddr,
    count: u32,
    interval: &str,
) -> std::thread::JoinHandle<String> {
    let mut cmd = from.ns.command("ping");
    cmd.args(["-n", "-D", "-O", "-c", &count.to_string(), "-i", interval])
        .args(["-W", "2", &to.to_string()]);
    std::thread::spawn(move || {
        let out = cmd.output().expect("run ping");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// Moves the calling thread into the named network namespace.
fn enter_netns(name: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open the namespace");
    // SAFETY: setns on a valid namespace descriptor changes only this thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// (transmitted, received) from ping's summary line.
pub fn parse_ping(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>());
    let tx = nums.next()?.ok()?;
    let rx = nums.next()?.ok()?;
    Some((tx, rx))
}

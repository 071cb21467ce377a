//! The test's "cluster": nodes as network namespaces on one LAN (a bridge in a namespace of
//! its own, 198.18.5.0/24, the nodes' default gateway), each with a directory for its root
//! filesystem, and the operator's
//! etcd on that LAN (198.18.5.254:2379, client TLS with client certificates, as the
//! manifests require). Everything is removed when the value drops, also on a panic.

use crate::manifests::BIN;
use crate::pod::{NodeHost, Secrets};
use crate::support::netns::Netns;
use crate::support::{TempDir, wait_for};
use crate::tls::{self, Tls};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

pub const ETCD_IP: &str = "198.18.5.254";

pub struct Node {
    pub name: String,
    pub ip: Ipv4Addr,
    pub ns: Netns,
    pub root: PathBuf,
}

/// Fields drop in order: the nodes' namespaces, then the LAN's (and the etcd in it), then
/// the directories.
pub struct Lan {
    pub nodes: Vec<Node>,
    pub lan: Netns,
    pub tls: Tls,
    pub dir: TempDir,
}

impl Lan {
    /// Nodes `names[i]` at 198.18.5.(i+1)/24, each with `eth0` on the LAN's bridge.
    pub fn new(test: &str, names: &[&str]) -> Lan {
        let dir = TempDir::new(&format!("deploy-{test}"));
        let lan = Netns::new(&format!("{test}lan"));
        lan.bridge("br0");
        lan.add_addr("br0", &format!("{ETCD_IP}/24"));
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ns = Netns::new(&format!("{test}{i}"));
            let port = format!("p{i}");
            Netns::veth(&ns, "eth0", &lan, &port);
            lan.ip_ok(&["link", "set", &port, "master", "br0"]);
            let ip = Ipv4Addr::new(198, 18, 5, i as u8 + 1);
            ns.add_addr("eth0", &format!("{ip}/24"));
            // Nodes have a default route, and pods depend on it: the host side of a pod's
            // veth answers ARP for the pods' gateway (169.254.1.1) by proxy only when the node
            // routes that address elsewhere. The LAN's namespace forwards nothing.
            ns.ip_ok(&["route", "add", "default", "via", ETCD_IP, "dev", "eth0"]);
            let root = dir.join(format!("node-{name}"));
            std::fs::create_dir_all(&root).expect("create a node root");
            nodes.push(Node {
                name: name.to_string(),
                ip,
                ns,
                root,
            });
        }
        let tls = tls::generate(&dir.join("tls"), ETCD_IP);
        Lan {
            nodes,
            lan,
            tls,
            dir,
        }
    }

    pub fn host(&self, i: usize) -> NodeHost<'_> {
        let n = &self.nodes[i];
        NodeHost {
            name: &n.name,
            ip: n.ip,
            ns: &n.ns,
            root: &n.root,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://{ETCD_IP}:2379")
    }

    fn client_tls_args(&self) -> Vec<String> {
        vec![
            "--etcd-endpoints".into(),
            self.endpoint(),
            "--etcd-ca-cert".into(),
            self.tls.ca.display().to_string(),
            "--etcd-cert".into(),
            self.tls.client_cert.display().to_string(),
            "--etcd-key".into(),
            self.tls.client_key.display().to_string(),
        ]
    }

    /// etcd on the LAN, answering over TLS to clients with a certificate of the test CA.
    pub fn start_etcd(&self) {
        let data = self.dir.join("etcd");
        let client = self.endpoint();
        let peer = format!("http://{ETCD_IP}:2380");
        let s = |p: &PathBuf| p.display().to_string();
        let args = [
            "etcd".to_string(),
            "--name".into(),
            "deploy".into(),
            "--data-dir".into(),
            s(&data),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client.clone(),
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("deploy={peer}"),
            "--cert-file".into(),
            s(&self.tls.server_cert),
            "--key-file".into(),
            s(&self.tls.server_key),
            "--client-cert-auth".into(),
            "--trusted-ca-file".into(),
            s(&self.tls.ca),
        ];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.lan.spawn("etcd", &refs);
        let health = [
            "etcdctl".to_string(),
            "--endpoints".into(),
            client,
            "--cacert".into(),
            s(&self.tls.ca),
            "--cert".into(),
            s(&self.tls.client_cert),
            "--key".into(),
            s(&self.tls.client_key),
            "endpoint".into(),
            "health".into(),
        ];
        let refs: Vec<&str> = health.iter().map(String::as_str).collect();
        wait_for(
            "etcd to answer",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || {
                self.lan.exec(&refs).map(|_| ()).map_err(|e| {
                    format!(
                        "{e}\n{}",
                        crate::support::tail(&self.lan.log_path("etcd"), 10)
                    )
                })
            },
        );
    }

    /// The Secrets an operator creates: tortie-etcd with the client's TLS files.
    pub fn secrets(&self) -> Secrets {
        let read =
            |p: &PathBuf| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        BTreeMap::from([(
            "tortie-etcd".to_string(),
            BTreeMap::from([
                ("etcd-ca".to_string(), read(&self.tls.ca)),
                ("etcd-cert".to_string(), read(&self.tls.client_cert)),
                ("etcd-key".to_string(), read(&self.tls.client_key)),
            ]),
        )])
    }

    /// `tortie ARGS` against the etcd, from the LAN's namespace (as an operator's CLI).
    pub fn tortie(&self, args: &[&str]) -> Output {
        let mut cmd = self.lan.command(BIN);
        cmd.args(args).args(self.client_tls_args());
        cmd.output().expect("run tortie")
    }

    /// A stored Node as JSON, or `None` when the datastore has none of that name.
    pub fn stored_node(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.tortie(&["get", "node", name, "-o", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            assert!(
                stderr.contains("not found"),
                "tortie get node {name}: {stderr}"
            );
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("tortie get node -o json: {e}"));
        // A name given: one resource, or a list of one.
        let node = v.get("items").and_then(|i| i.get(0)).cloned().unwrap_or(v);
        Some(node)
    }
}

/// `tortie status --json` from a node's API socket (on its host, /run/tortie).
pub fn status(node: &Node) -> Result<serde_json::Value, String> {
    let socket = node.root.join("run/tortie/tortie.sock");
    let out = Command::new(BIN)
        .args(["status", "--json", "--api-socket"])
        .arg(&socket)
        .output()
        .map_err(|e| format!("run tortie status: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tortie status: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("status JSON: {e}"))
}

/// The peers `status` shows as up, by address.
pub fn peers_up(status: &serde_json::Value) -> Vec<String> {
    let mut up: Vec<String> = status["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["state"] == "up")
        .filter_map(|p| p["address"].as_str().map(str::to_string))
        .collect();
    up.sort();
    up
}

/// The peers `status` shows, whatever their state, by address.
pub fn peers(status: &serde_json::Value) -> Vec<String> {
    let mut all: Vec<String> = status["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["address"].as_str().map(str::to_string))
        .collect();
    all.sort();
    all
}

/// The kubelet's probe: HTTP GET on the node's address (host network), from inside the
/// node's namespace; a status of 200-399 passes, as for the kubelet.
pub fn probe(node: &Node, port: u16, path: &str) -> Result<(), String> {
    let ns = format!("/run/netns/{}", node.ns.name());
    let addr = std::net::SocketAddr::from((node.ip, port));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // setns changes the calling thread only: a thread of its own enters the namespace.
    let reply = std::thread::spawn(move || -> Result<String, String> {
        let f = std::fs::File::open(&ns).map_err(|e| format!("{ns}: {e}"))?;
        // SAFETY: setns on a namespace descriptor we hold open affects only this thread.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
        }
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(request.as_bytes())
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        Ok(reply)
    })
    .join()
    .map_err(|_| "the probe thread panicked".to_string())??;
    let status: u16 = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {reply:?}"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("{status}: {reply}"))
    }
}

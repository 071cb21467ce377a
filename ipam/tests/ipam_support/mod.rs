//! Helpers of `ipam_stores.rs`: the two real backends behind `Arc<dyn Store>` (a throwaway
//! etcd-server, an embedded store in a scratch directory), what the store holds (address →
//! handle), consistency checks, and child processes (this test binary run again with
//! `TORTIE_IPAM_CHILD` set).

#![allow(dead_code)]

use crate::etcd_support::{Etcd, scratch_dir};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tortie_ipam::block::{BLOCKS_PREFIX, Block};
use tortie_ipam::check::{CheckReport, check};
use tortie_ipam::store::Store;
use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::store::etcd::{EtcdConfig, EtcdStore};

/// Which backend, and its process or directory.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub etcd: Option<Etcd>,
    /// Scratch directory: the embedded store's data directory, and child processes' output.
    pub dir: PathBuf,
    pub name: &'static str,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The request timeout of the tests' etcd clients.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(3);

impl Backend {
    pub async fn etcd() -> Backend {
        let etcd = Etcd::start();
        let store = open_store(&format!("etcd={}", etcd.endpoint())).await;
        Backend {
            store,
            etcd: Some(etcd),
            dir: scratch_dir("ipam-etcd-out"),
            name: "etcd",
        }
    }

    pub async fn embedded() -> Backend {
        let dir = scratch_dir("ipam-embedded");
        let store = open_store(&format!("embedded={}", dir.join("data").display())).await;
        Backend {
            store,
            etcd: None,
            dir,
            name: "embedded",
        }
    }

    /// How a child process (or a second client) reaches the same store.
    pub fn spec(&self) -> String {
        match &self.etcd {
            Some(e) => format!("etcd={}", e.endpoint()),
            None => format!("embedded={}", self.dir.join("data").display()),
        }
    }

    /// A second, independent client of the same store (another connection, another file
    /// handle): what another process would have.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        open_store(&self.spec()).await
    }
}

/// Opens `etcd=<endpoint>` or `embedded=<dir>`.
pub async fn open_store(spec: &str) -> Arc<dyn Store> {
    open_store_with(spec, ETCD_TIMEOUT).await
}

pub async fn open_store_with(spec: &str, timeout: Duration) -> Arc<dyn Store> {
    let (kind, arg) = spec.split_once('=').expect("backend=argument");
    match kind {
        "etcd" => Arc::new(
            EtcdStore::connect(EtcdConfig::new([arg]).with_timeout(timeout))
                .await
                .unwrap_or_else(|e| panic!("connect to {arg}: {e}")),
        ),
        "embedded" => Arc::new(
            EmbeddedStore::open(EmbeddedConfig::new(arg))
                .await
                .unwrap_or_else(|e| panic!("open {arg}: {e}")),
        ),
        k => panic!("unknown backend {k}"),
    }
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// `check` with no problem; returns the addresses in use.
pub async fn consistent(store: &dyn Store) -> CheckReport {
    let r = check(store).await.unwrap();
    assert!(
        r.problems.is_empty(),
        "{} problem(s), first: {:#?}",
        r.problems.len(),
        &r.problems[..r.problems.len().min(10)]
    );
    r
}

/// Every address in use, with its handle and the node it was allocated for, from one listing
/// of the blocks (each block decoded, so each is well formed).
pub async fn in_store(store: &dyn Store) -> BTreeMap<IpAddr, (String, String)> {
    let mut out = BTreeMap::new();
    for (key, v) in store.list(BLOCKS_PREFIX).await.unwrap() {
        let b = Block::decode(&key, &v.value).unwrap();
        for (o, _, a) in b.allocations() {
            let prev = out.insert(b.addr(o), (a.handle.clone(), a.node.clone()));
            assert!(prev.is_none(), "{} in two blocks", b.addr(o));
        }
    }
    out
}

pub async fn block_at(store: &dyn Store, cidr: IpNet) -> Option<Block> {
    let key = tortie_ipam::block::block_key(&cidr);
    store
        .get(&key)
        .await
        .unwrap()
        .map(|v| Block::decode(&key, &v.value).unwrap())
}

/// The environment of a child process: `TORTIE_IPAM_CHILD=<mode>` and the `TORTIE_IPAM_*`
/// parameters; output on `out` (one line per acknowledged operation).
pub struct ChildSpec<'a> {
    pub mode: &'a str,
    pub store: String,
    pub node: &'a str,
    pub round: &'a str,
    pub count: usize,
    pub out: &'a Path,
    /// Handles to release first (a file of one handle per line), for `release-alloc`.
    pub release: Option<&'a Path>,
}

pub fn spawn_child(c: &ChildSpec<'_>) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "concurrency::child_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TORTIE_IPAM_CHILD", c.mode)
    .env("TORTIE_IPAM_STORE", &c.store)
    .env("TORTIE_IPAM_NODE", c.node)
    .env("TORTIE_IPAM_ROUND", c.round)
    .env("TORTIE_IPAM_COUNT", c.count.to_string())
    .env("TORTIE_IPAM_OUT", c.out)
    .stdout(std::process::Stdio::null());
    if let Some(r) = c.release {
        cmd.env("TORTIE_IPAM_RELEASE", r);
    }
    cmd.spawn().unwrap()
}

/// The lines a child wrote: `+ <handle> <addr>` (allocated) and `- <handle>` (released).
pub fn read_out(path: &Path) -> Vec<(bool, String, Option<IpAddr>)> {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    s.lines()
        // A child killed mid-write can leave a partial last line.
        .filter(|l| l.ends_with(';'))
        .map(|l| {
            let l = l.trim_end_matches(';');
            let mut it = l.split(' ');
            let op = it.next().unwrap();
            let h = it.next().unwrap().to_string();
            let a = it.next().map(|a| a.parse().unwrap());
            (op == "+", h, a)
        })
        .collect()
}

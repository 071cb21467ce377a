//! `tortie apply`, `tortie get` and `tortie delete` as an operator runs them: the real binary
//! against an embedded store in a scratch directory and against a throwaway etcd (Debian's
//! `etcd-server` on a random 127.0.0.1 port, see `ipam/tests/etcd_support`). Every behaviour
//! runs on both stores (`mod embedded`, `mod etcd`); what the store holds is checked by
//! reading it with tortie-ipam's store, not through the commands under test.

#[path = "../ipam/tests/etcd_support/mod.rs"]
mod etcd_support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use etcd_support::{Etcd, scratch_dir};
use tortie_ipam::store::Store;
use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::store::etcd::{EtcdConfig, EtcdStore};

const RESOURCES: &str = "/tortie/v1/resources/";

/// Two pools, a filter, a peer using it, the default BGPConfiguration and a node.
const CLUSTER: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
  labels:
    zone: a
spec:
  cidr: 198.19.0.0/17
  blockSize: 26
  vxlanMode: CrossSubnet
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-b
spec:
  cidr: 198.19.128.0/17
  nodeSelector: zone == 'b'
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: tor-export
spec:
  exportV4:
    - action: Accept
      matchOperator: In
      cidr: 198.19.0.0/16
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 198.18.1.1
  asNumber: 65001
  filters:
    - tor-export
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  asNumber: \"64512\"
  nodeToNodeMeshEnabled: true
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-a
spec:
  bgp:
    ipv4Address: 198.18.1.10/24
";

const FILTER: &str = "\
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: tor-export
spec:
  exportV4:
    - action: Reject
      cidr: 198.19.128.0/17
      matchOperator: Equal
";

const PEER_USING_FILTER: &str = "\
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 198.18.1.1
  asNumber: 65001
  filters: [tor-export]
";

/// A valid pool, then a peer whose AS number is not one.
const ONE_BAD: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 198.19.0.0/17
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 198.18.1.1
  asNumber: abc
";

fn pool(name: &str, label: &str, block_size: u8) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}\n  labels:\n    writer: {label}\nspec:\n  cidr: 198.19.0.0/17\n  blockSize: {block_size}\n"
    )
}

/// A scratch directory, removed on drop (also when the test panics).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(scratch_dir(tag))
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The datastore a test runs against.
enum Backend {
    Embedded(PathBuf),
    Etcd(Etcd),
}

impl Backend {
    fn embedded(scratch: &Scratch) -> Backend {
        Backend::Embedded(scratch.0.join("data"))
    }

    fn etcd() -> Backend {
        Backend::Etcd(Etcd::start())
    }

    fn args(&self) -> Vec<String> {
        match self {
            Backend::Embedded(dir) => vec!["--data-dir".into(), dir.display().to_string()],
            Backend::Etcd(etcd) => vec!["--etcd-endpoints".into(), etcd.endpoint()],
        }
    }

    /// Every resource key and its value, read with the store library.
    fn stored(&self) -> Vec<(String, serde_json::Value)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store: Box<dyn Store> = match self {
                Backend::Embedded(dir) => {
                    Box::new(EmbeddedStore::open(EmbeddedConfig::new(dir)).await.unwrap())
                }
                Backend::Etcd(etcd) => Box::new(
                    EtcdStore::connect(EtcdConfig::new([etcd.endpoint()]))
                        .await
                        .unwrap(),
                ),
            };
            store
                .list(RESOURCES)
                .await
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, serde_json::from_slice(&v.value).unwrap()))
                .collect()
        })
    }

    fn stored_keys(&self) -> Vec<String> {
        self.stored().into_iter().map(|(k, _)| k).collect()
    }
}

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_ok(self) -> Run {
        assert!(
            self.ok,
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    fn assert_failed(self) -> Run {
        assert_eq!(
            self.code,
            Some(1),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

fn from_output(out: Output) -> Run {
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn command(args: &[&str], backend: Option<&Backend>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tortie"));
    cmd.args(args);
    if let Some(b) = backend {
        cmd.args(b.args());
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn tortie(backend: &Backend, args: &[&str]) -> Run {
    from_output(command(args, Some(backend)).output().unwrap())
}

fn tortie_stdin(backend: &Backend, args: &[&str], stdin: &str) -> Run {
    let mut child = command(args, Some(backend))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    from_output(child.wait_with_output().unwrap())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The behaviours, each run on both stores by the modules below.

fn apply_then_get_yaml_applies_back_unchanged(b: &Backend, s: &Scratch) {
    let file = s.file("cluster.yaml", CLUSTER);
    let run = tortie(b, &["apply", "-f", path(&file)]).assert_ok();
    for line in [
        "ippool/pool-a created",
        "ippool/pool-b created",
        "bgpfilter/tor-export created",
        "bgppeer/tor created",
        "bgpconfiguration/default created",
        "node/node-a created",
        "Successfully applied 6 resource(s)",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in\n{}", run.stdout);
    }
    let mut again = String::new();
    for kind in ["ippools", "bgpfilters", "bgppeers", "bgpconfig", "nodes"] {
        let yaml = tortie(b, &["get", kind, "-o", "yaml"]).assert_ok().stdout;
        assert!(yaml.contains("List\n"), "a <Kind>List:\n{yaml}");
        again.push_str("---\n");
        again.push_str(&yaml);
    }
    let run = tortie_stdin(b, &["apply", "-f", "-"], &again).assert_ok();
    assert_eq!(
        run.stdout.matches(" unchanged\n").count(),
        6,
        "every resource unchanged:\n{}",
        run.stdout
    );
}

fn a_changed_resource_is_configured(b: &Backend, s: &Scratch) {
    tortie(
        b,
        &[
            "apply",
            "-f",
            path(&s.file("a.yaml", &pool("pool-a", "one", 26))),
        ],
    )
    .assert_ok();
    let run = tortie(
        b,
        &[
            "apply",
            "-f",
            path(&s.file("b.yaml", &pool("pool-a", "two", 26))),
        ],
    )
    .assert_ok();
    assert!(
        run.stdout.contains("ippool/pool-a configured"),
        "{}",
        run.stdout
    );
    let stored = b.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1["metadata"]["labels"]["writer"], "two");
}

fn stored_documents_are_the_resources_json_at_their_keys(b: &Backend, s: &Scratch) {
    tortie(b, &["apply", "-f", path(&s.file("c.yaml", CLUSTER))]).assert_ok();
    let stored = b.stored();
    let keys: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/tortie/v1/resources/bgpconfigurations/default",
            "/tortie/v1/resources/bgpfilters/tor-export",
            "/tortie/v1/resources/bgppeers/tor",
            "/tortie/v1/resources/ippools/pool-a",
            "/tortie/v1/resources/ippools/pool-b",
            "/tortie/v1/resources/nodes/node-a",
        ]
    );
    assert_eq!(
        stored[3].1,
        serde_json::json!({
            "apiVersion": "projectcalico.org/v3",
            "kind": "IPPool",
            "metadata": {"name": "pool-a", "labels": {"zone": "a"}},
            "spec": {"cidr": "198.19.0.0/17", "blockSize": 26, "vxlanMode": "CrossSubnet", "natOutgoing": true}
        })
    );
}

fn get_prints_calicoctls_columns(b: &Backend, s: &Scratch) {
    tortie(b, &["apply", "-f", path(&s.file("c.yaml", CLUSTER))]).assert_ok();
    let pools = tortie(b, &["get", "ippool"]).assert_ok().stdout;
    let lines: Vec<Vec<&str>> = pools
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        lines,
        [
            vec!["NAME", "CIDR", "SELECTOR"],
            vec!["pool-a", "198.19.0.0/17", "all()"],
            vec!["pool-b", "198.19.128.0/17", "zone == 'b'"],
        ]
    );
    let peers = tortie(b, &["get", "BGPPeer"]).assert_ok().stdout;
    let row: Vec<&str> = peers.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["tor", "198.18.1.1", "(global)", "65001"]);
}

fn an_invalid_document_names_its_field_and_nothing_is_written(b: &Backend, s: &Scratch) {
    let file = s.file("bad.yaml", ONE_BAD);
    let run = tortie(b, &["apply", "-f", path(&file)]).assert_failed();
    assert!(
        run.stderr
            .contains("bad.yaml, document 2 (BGPPeer \"tor\"): spec.asNumber:"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert!(b.stored_keys().is_empty(), "{:?}", b.stored_keys());
}

fn a_peer_may_name_a_stored_filter(b: &Backend, s: &Scratch) {
    tortie(b, &["apply", "-f", path(&s.file("f.yaml", FILTER))]).assert_ok();
    let run = tortie(
        b,
        &["apply", "-f", path(&s.file("p.yaml", PEER_USING_FILTER))],
    )
    .assert_ok();
    assert!(run.stdout.contains("bgppeer/tor created"), "{}", run.stdout);
    assert_eq!(
        b.stored_keys(),
        [
            "/tortie/v1/resources/bgpfilters/tor-export",
            "/tortie/v1/resources/bgppeers/tor"
        ]
    );
}

fn a_peer_naming_a_missing_filter_is_refused(b: &Backend, s: &Scratch) {
    let run = tortie(
        b,
        &["apply", "-f", path(&s.file("p.yaml", PEER_USING_FILTER))],
    )
    .assert_failed();
    assert!(run.stderr.contains("spec.filters[0]"), "{}", run.stderr);
    assert!(b.stored_keys().is_empty());
}

fn delete_removes_the_resource(b: &Backend, s: &Scratch) {
    tortie(b, &["apply", "-f", path(&s.file("c.yaml", CLUSTER))]).assert_ok();
    let run = tortie(b, &["delete", "pools", "pool-b"]).assert_ok();
    assert!(
        run.stdout.contains("ippool/pool-b deleted"),
        "{}",
        run.stdout
    );
    assert!(
        !b.stored_keys()
            .contains(&"/tortie/v1/resources/ippools/pool-b".to_string())
    );
    let run = tortie(b, &["get", "ippool", "pool-b"]).assert_failed();
    assert!(
        run.stderr.contains("ippool \"pool-b\" not found"),
        "{}",
        run.stderr
    );
}

fn delete_of_a_missing_resource_fails(b: &Backend, _s: &Scratch) {
    let run = tortie(b, &["delete", "ippool", "nope"]).assert_failed();
    assert!(
        run.stderr.contains("ippool/nope not found"),
        "{}",
        run.stderr
    );
    tortie(b, &["delete", "ippool", "nope", "--skip-not-exists"]).assert_ok();
}

fn delete_f_removes_what_the_file_names(b: &Backend, s: &Scratch) {
    let file = s.file("c.yaml", CLUSTER);
    tortie(b, &["apply", "-f", path(&file)]).assert_ok();
    let run = tortie(b, &["delete", "-f", path(&file)]).assert_ok();
    assert!(
        run.stdout.contains("Successfully deleted 6 resource(s)"),
        "{}",
        run.stdout
    );
    assert!(b.stored_keys().is_empty(), "{:?}", b.stored_keys());
}

fn deleting_a_filter_a_stored_peer_names_is_refused(b: &Backend, s: &Scratch) {
    tortie(b, &["apply", "-f", path(&s.file("c.yaml", CLUSTER))]).assert_ok();
    let run = tortie(b, &["delete", "bgpfilter", "tor-export"]).assert_failed();
    assert!(
        run.stderr.contains("/tortie/v1/resources/bgppeers/tor"),
        "the error names the peer's key:\n{}",
        run.stderr
    );
    assert!(
        b.stored_keys()
            .contains(&"/tortie/v1/resources/bgpfilters/tor-export".to_string())
    );
}

fn get_of_a_missing_name_is_not_found(b: &Backend, _s: &Scratch) {
    let run = tortie(b, &["get", "bgppeer", "ghost"]).assert_failed();
    assert!(
        run.stderr.contains("bgppeer \"ghost\" not found"),
        "{}",
        run.stderr
    );
}

/// Several processes apply different versions of one pool at once: every one succeeds, and
/// what is stored is exactly one writer's document (no mix), which `get` reads back.
fn concurrent_applies_all_succeed_and_one_whole_document_wins(b: &Backend, s: &Scratch) {
    const WRITERS: usize = 6;
    for round in 0..3 {
        let files: Vec<PathBuf> = (0..WRITERS)
            .map(|w| {
                let size = 24 + (w % 4) as u8;
                s.file(
                    &format!("w{round}-{w}.yaml"),
                    &pool("pool-a", &format!("w{w}"), size),
                )
            })
            .collect();
        let children: Vec<_> = files
            .iter()
            .map(|f| {
                command(&["apply", "-f", path(f)], Some(b))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let run = from_output(child.wait_with_output().unwrap()).assert_ok();
            assert!(
                run.stdout.contains("Successfully applied 1 resource(s)"),
                "{}",
                run.stdout
            );
        }
        let stored = b.stored();
        assert_eq!(stored.len(), 1);
        let doc = &stored[0].1;
        let writer = doc["metadata"]["labels"]["writer"]
            .as_str()
            .unwrap()
            .to_string();
        let w: usize = writer.trim_start_matches('w').parse().unwrap();
        let expected = serde_json::json!({
            "apiVersion": "projectcalico.org/v3",
            "kind": "IPPool",
            "metadata": {"name": "pool-a", "labels": {"writer": writer}},
            "spec": {"cidr": "198.19.0.0/17", "blockSize": 24 + (w % 4)}
        });
        assert_eq!(doc, &expected, "round {round}: one writer's whole document");
        let json = tortie(b, &["get", "ippool", "pool-a", "-o", "json"])
            .assert_ok()
            .stdout;
        let got: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            got["metadata"]["labels"]["writer"],
            expected["metadata"]["labels"]["writer"]
        );
    }
    // Sequentially, the last apply is what stays.
    tortie(
        b,
        &[
            "apply",
            "-f",
            path(&s.file("last.yaml", &pool("pool-a", "last", 26))),
        ],
    )
    .assert_ok();
    assert_eq!(b.stored()[0].1["metadata"]["labels"]["writer"], "last");
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $name() {
                    let s = super::Scratch::new("ds-cli");
                    let b = super::Backend::embedded(&s);
                    super::$name(&b, &s);
                }
            )*
        }
        mod etcd {
            $(
                #[test]
                fn $name() {
                    let s = super::Scratch::new("ds-cli");
                    let b = super::Backend::etcd();
                    super::$name(&b, &s);
                }
            )*
        }
    };
}

on_both_stores!(
    apply_then_get_yaml_applies_back_unchanged,
    a_changed_resource_is_configured,
    stored_documents_are_the_resources_json_at_their_keys,
    get_prints_calicoctls_columns,
    an_invalid_document_names_its_field_and_nothing_is_written,
    a_peer_may_name_a_stored_filter,
    a_peer_naming_a_missing_filter_is_refused,
    delete_removes_the_resource,
    delete_of_a_missing_resource_fails,
    delete_f_removes_what_the_file_names,
    deleting_a_filter_a_stored_peer_names_is_refused,
    get_of_a_missing_name_is_not_found,
    concurrent_applies_all_succeed_and_one_whole_document_wins,
);

// ---------------------------------------------------------------------------------------------
// Behaviours that involve no datastore.

/// A datastore that cannot be there: etcd on a closed port, a data directory never created.
fn unreachable_store_args(s: &Scratch) -> Vec<String> {
    vec![
        "--data-dir".into(),
        s.0.join("never-created").display().to_string(),
        "--etcd-endpoints".into(),
        "http://127.0.0.1:9".into(),
    ]
}

#[test]
fn dry_run_validates_without_a_datastore_and_writes_nothing() {
    let s = Scratch::new("ds-dry");
    let file = s.file("c.yaml", CLUSTER);
    let mut args = vec![
        "apply".to_string(),
        "--dry-run".into(),
        "-f".into(),
        path(&file).into(),
    ];
    args.extend(unreachable_store_args(&s));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = from_output(command(&args, None).output().unwrap()).assert_ok();
    assert!(
        run.stdout.contains("ippool/pool-a would be applied"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Dry run: 6 resource(s) valid, nothing written"),
        "{}",
        run.stdout
    );
    assert!(!s.0.join("never-created").exists());
}

#[test]
fn dry_run_of_an_invalid_file_fails_with_the_field_path() {
    let s = Scratch::new("ds-dry");
    let file = s.file("bad.yaml", ONE_BAD);
    let run = from_output(
        command(&["apply", "--dry-run", "-f", path(&file)], None)
            .output()
            .unwrap(),
    )
    .assert_failed();
    assert!(run.stderr.contains("spec.asNumber"), "{}", run.stderr);
}

#[test]
fn dry_run_prints_warnings_for_fields_not_acted_on() {
    let s = Scratch::new("ds-dry");
    let file = s.file("c.yaml", CLUSTER);
    let run = from_output(
        command(&["apply", "--dry-run", "-f", path(&file)], None)
            .output()
            .unwrap(),
    )
    .assert_ok();
    assert!(
        run.stderr.contains("warning: ") && run.stderr.contains("spec.logSeverityScreen"),
        "{}",
        run.stderr
    );
}

#[test]
fn get_of_an_unknown_kind_lists_the_kinds() {
    let s = Scratch::new("ds-kind");
    let mut args = vec!["get".to_string(), "networkpolicy".into()];
    args.extend(unreachable_store_args(&s));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = from_output(command(&args, None).output().unwrap()).assert_failed();
    assert!(
        run.stderr
            .contains("unknown resource kind \"networkpolicy\""),
        "{}",
        run.stderr
    );
    for kind in ["node", "bgpconfiguration", "bgppeer", "bgpfilter", "ippool"] {
        assert!(run.stderr.contains(kind), "{kind} in {}", run.stderr);
    }
}

#[test]
fn a_missing_tls_file_is_named_before_connecting() {
    let s = Scratch::new("ds-tls");
    let missing = s.0.join("ca.pem");
    let run = from_output(
        command(
            &[
                "get",
                "ippools",
                "--etcd-endpoints",
                "https://127.0.0.1:9",
                "--etcd-ca-cert",
                path(&missing),
            ],
            None,
        )
        .output()
        .unwrap(),
    )
    .assert_failed();
    assert!(
        run.stderr.contains(&format!(
            "--etcd-ca-cert {}: no such file",
            missing.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreachable_etcd_is_a_clear_error_naming_it() {
    let s = Scratch::new("ds-down");
    let mut args = vec!["get".to_string(), "ippools".into()];
    args.extend(unreachable_store_args(&s));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = from_output(command(&args, None).output().unwrap()).assert_failed();
    assert!(run.stderr.contains("127.0.0.1:9"), "{}", run.stderr);
}

//! One pod of a rendered workload, run on a test "node" the way the kubelet and the container
//! runtime would run it, without either: the node is a network namespace (hostNetwork) and a
//! directory standing for its root filesystem (hostPath volumes land there).
//!
//! What is taken from the manifest as written: the init containers in order, each to
//! completion, then the containers; `command` (or the Dockerfile's ENTRYPOINT) and `args`
//! with Kubernetes' `$(VAR)` expansion; `env` with `value`, the downward API (`fieldRef`) and
//! `configMapKeyRef`; `volumes` (hostPath, configMap and secret with the kubelet's `..data`
//! layout and `defaultMode`, optional Secrets that do not exist mounted empty); the
//! `securityContext`'s capabilities (`setpriv` limits the bounding set to the runtime's
//! defaults plus `add` minus `drop`, or leaves all for `privileged`) and
//! `allowPrivilegeEscalation: false` (no_new_privs). Each container sees a root of its own
//! in which its volume mounts and the image's files are symbolic links, and every absolute
//! path in its command line and environment is taken inside that root. Not emulated: the
//! read-only root filesystem, user namespaces, cgroups, probes (the tests probe themselves).

use crate::manifests::{
    BIN, Image, Rendered, all_containers, at, containers, name_of, namespace_of, pod_spec, strings,
    text,
};
use crate::support::netns::Netns;
use crate::support::process::Proc;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Secrets by name: key -> content.
pub type Secrets = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// The capabilities a container runtime (containerd, CRI-O) gives an unprivileged container.
const RUNTIME_DEFAULT_CAPS: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// How long an init container may take.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a pod runs.
pub struct NodeHost<'a> {
    /// The Kubernetes node's name (`spec.nodeName`).
    pub name: &'a str,
    /// `status.hostIP` (and `status.podIP`: the pods are on the host network).
    pub ip: Ipv4Addr,
    pub ns: &'a Netns,
    /// The node's root filesystem, for hostPath volumes.
    pub root: &'a Path,
}

/// How an init container ended.
pub struct Finished {
    pub success: bool,
    pub output: String,
}

pub struct Pod {
    workload: String,
    namespace: String,
    spec: Value,
    dir: PathBuf,
    ns_name: String,
    node_name: String,
    host_ip: Ipv4Addr,
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    volumes: BTreeMap<String, PathBuf>,
    image: Image,
    running: Vec<Proc>,
}

fn mkdirs(p: &Path) {
    std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// The kubelet's atomic-writer layout: files in a timestamped directory, `..data` pointing
/// at it, and each key a link through `..data`.
fn write_atomic_volume(dir: &Path, files: &BTreeMap<String, Vec<u8>>, mode: u32) {
    let version = "..2026_01_01_00_00_00.000000001";
    mkdirs(&dir.join(version));
    for (key, body) in files {
        let f = dir.join(version).join(key);
        std::fs::write(&f, body).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        chmod(&f, mode);
        symlink(format!("..data/{key}"), dir.join(key)).expect("link a volume key");
    }
    symlink(version, dir.join("..data")).expect("link ..data");
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, others left as written,
/// `$$` is a literal `$`.
fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some((name, after)) = tail
            .strip_prefix("$(")
            .and_then(|t| t.split_once(')'))
            .filter(|(n, _)| env.contains_key(*n))
        {
            out.push_str(&env[name]);
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// `prog` as found on the test's own PATH.
fn host_program(prog: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{prog} is not on PATH"))
}

/// An absolute container path (alone, or as a `--flag=/path` value) taken inside `root`.
fn in_root(root: &Path, s: &str) -> String {
    if let Some(p) = s.strip_prefix('/') {
        return root.join(p).display().to_string();
    }
    if s.starts_with('-') {
        if let Some((flag, value)) = s.split_once('=') {
            if let Some(p) = value.strip_prefix('/') {
                return format!("{flag}={}", root.join(p).display());
            }
        }
    }
    s.to_string()
}

impl Pod {
    /// Lays out the pod's volumes; runs nothing yet.
    #[track_caller]
    pub fn new(
        r: &Rendered,
        workload: &Value,
        node: &NodeHost,
        secrets: &Secrets,
        dir: &Path,
    ) -> Pod {
        let namespace = namespace_of(workload).to_string();
        let spec = pod_spec(workload).clone();
        assert_eq!(
            at(&spec, &["hostNetwork"]),
            &Value::Bool(true),
            "only host-network pods are emulated"
        );
        let mut config_maps = BTreeMap::new();
        let mut volumes = BTreeMap::new();
        for v in at(&spec, &["volumes"]).as_sequence().into_iter().flatten() {
            let name = name_of(v).to_string();
            let vdir = dir.join("volumes").join(&name);
            if let Some(p) = text(v, &["hostPath", "path"]) {
                let host = node.root.join(p.trim_start_matches('/'));
                mkdirs(&host);
                volumes.insert(name, host);
                continue;
            }
            mkdirs(&vdir);
            let mode = at(v, &["configMap", "defaultMode"])
                .as_u64()
                .or_else(|| at(v, &["secret", "defaultMode"]).as_u64())
                .map_or(0o644, |m| m as u32);
            if let Some(cm) = text(v, &["configMap", "name"]) {
                let data = r.config_map(cm, &namespace).unwrap_or_else(|| {
                    panic!("{}: ConfigMap {namespace}/{cm} is not rendered", r.name)
                });
                let files = data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                    .collect();
                write_atomic_volume(&vdir, &files, mode);
                config_maps.insert(cm.to_string(), data);
            } else if let Some(s) = text(v, &["secret", "secretName"]) {
                match secrets.get(s) {
                    Some(files) => write_atomic_volume(&vdir, files, mode),
                    None => assert!(
                        at(v, &["secret", "optional"]) == &Value::Bool(true),
                        "Secret {s} is not optional and the test gives none"
                    ),
                }
            } else if at(v, &["emptyDir"]).is_null() {
                panic!("volume {name}: a kind the emulation does not know");
            }
            volumes.insert(name, vdir);
        }
        // configMapKeyRef values come from the same rendered ConfigMaps.
        for c in all_containers(&spec) {
            for e in at(c, &["env"]).as_sequence().into_iter().flatten() {
                if let Some(cm) = text(e, &["valueFrom", "configMapKeyRef", "name"]) {
                    let data = r.config_map(cm, &namespace).unwrap_or_else(|| {
                        panic!("{}: ConfigMap {namespace}/{cm} is not rendered", r.name)
                    });
                    config_maps.insert(cm.to_string(), data);
                }
            }
        }
        Pod {
            workload: name_of(workload).to_string(),
            namespace,
            spec,
            dir: dir.to_path_buf(),
            ns_name: node.ns.name().to_string(),
            node_name: node.name.to_string(),
            host_ip: node.ip,
            config_maps,
            volumes,
            image: crate::manifests::image(),
            running: Vec::new(),
        }
    }

    /// The container's root: its volume mounts and the image's files, as links.
    fn root_for(&self, c: &Value) -> PathBuf {
        let root = self.dir.join("containers").join(name_of(c)).join("root");
        let _ = std::fs::remove_dir_all(&root);
        mkdirs(&root);
        for f in &self.image.files {
            let target = match f.as_str() {
                "/usr/local/bin/tortie" => BIN,
                "/usr/local/bin/tortie-cni" => "tortie",
                "/bin/busybox" => "/bin/busybox",
                // With the host's libraries, which are Debian's as the image's are.
                "/usr/sbin/nft" => "/usr/sbin/nft",
                other => panic!("the image holds {other}, which the emulation cannot provide"),
            };
            let link = root.join(f.trim_start_matches('/'));
            mkdirs(link.parent().expect("an image path has a directory"));
            symlink(target, &link).expect("link an image file");
        }
        for m in at(c, &["volumeMounts"]).as_sequence().into_iter().flatten() {
            let (Some(vol), Some(path)) = (text(m, &["name"]), text(m, &["mountPath"])) else {
                panic!("{}: a volumeMount without name or mountPath", name_of(c));
            };
            let src = self
                .volumes
                .get(vol)
                .unwrap_or_else(|| panic!("{}: no volume {vol}", name_of(c)));
            let link = root.join(path.trim_start_matches('/'));
            mkdirs(link.parent().expect("a mount path has a directory"));
            symlink(src, &link).expect("link a volume mount");
        }
        root
    }

    /// The container's environment as Kubernetes resolves it (container paths): the image's
    /// ENV, then the container's `env`.
    fn env(&self, c: &Value) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self.image.env.iter().cloned().collect();
        for e in at(c, &["env"]).as_sequence().into_iter().flatten() {
            let name = name_of(e).to_string();
            let value = if let Some(v) = text(e, &["value"]) {
                expand(v, &env)
            } else if let Some(f) = text(e, &["valueFrom", "fieldRef", "fieldPath"]) {
                match f {
                    "spec.nodeName" => self.node_name.clone(),
                    "status.hostIP" | "status.podIP" => self.host_ip.to_string(),
                    "metadata.namespace" => self.namespace.clone(),
                    "metadata.name" => format!("{}-test", self.workload),
                    other => panic!("{name}: fieldRef {other} is not emulated"),
                }
            } else if let Some(cm) = text(e, &["valueFrom", "configMapKeyRef", "name"]) {
                let key = text(e, &["valueFrom", "configMapKeyRef", "key"]).unwrap_or_default();
                self.config_maps
                    .get(cm)
                    .and_then(|d| d.get(key))
                    .unwrap_or_else(|| panic!("{name}: ConfigMap {cm} has no key {key}"))
                    .clone()
            } else {
                panic!("{name}: an env source the emulation does not know");
            };
            env.insert(name, value);
        }
        env
    }

    /// `ip netns exec NS [setpriv ...] PROGRAM ARGS` with the container's environment only.
    fn command(&self, c: &Value) -> Command {
        let root = self.root_for(c);
        let env = self.env(c);
        let command = strings(at(c, &["command"]));
        let argv: Vec<String> = if command.is_empty() {
            self.image.entrypoint.clone()
        } else {
            command
        }
        .into_iter()
        .chain(strings(at(c, &["args"])))
        .map(|a| in_root(&root, &expand(&a, &env)))
        .collect();
        // The child's PATH is the container's, so `ip` is found here, with the test's PATH.
        let mut cmd = Command::new(host_program("ip"));
        cmd.args(["netns", "exec", &self.ns_name]);
        let sc = at(c, &["securityContext"]);
        if at(sc, &["privileged"]) != &Value::Bool(true) {
            let drop = strings(at(sc, &["capabilities", "drop"]));
            let add = strings(at(sc, &["capabilities", "add"]));
            let mut caps: Vec<String> = if drop.iter().any(|d| d == "ALL") {
                Vec::new()
            } else {
                RUNTIME_DEFAULT_CAPS
                    .iter()
                    .filter(|c| !drop.iter().any(|d| d == *c))
                    .map(|c| c.to_string())
                    .collect()
            };
            caps.extend(add);
            let set: String = caps
                .iter()
                .map(|c| format!(",+{}", c.to_lowercase()))
                .collect();
            cmd.args(["/usr/bin/setpriv", "--inh-caps=-all"])
                .arg(format!("--bounding-set=-all{set}"));
            if at(sc, &["allowPrivilegeEscalation"]) == &Value::Bool(false) {
                cmd.arg("--no-new-privs");
            }
            cmd.arg("--");
        }
        let env = env.iter().map(|(k, v)| {
            let v = if k == "PATH" {
                let dirs: Vec<String> = v.split(':').map(|d| in_root(&root, d)).collect();
                dirs.join(":")
            } else {
                in_root(&root, v)
            };
            (k.clone(), v)
        });
        cmd.args(&argv).env_clear().envs(env).current_dir(&root);
        cmd
    }

    fn container(&self, which: &str, name: &str) -> &Value {
        containers(&self.spec, which)
            .iter()
            .find(|c| name_of(c) == name)
            .unwrap_or_else(|| panic!("{}: no {which} entry {name}", self.workload))
    }

    /// Runs one init container to completion.
    pub fn run_init(&self, name: &str) -> Finished {
        let c = self.container("initContainers", name);
        let log = self.dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create an init container log");
        let err = out.try_clone().expect("clone a log handle");
        let mut child = self
            .command(c)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start init container {name}: {e}"));
        let deadline = Instant::now() + INIT_TIMEOUT;
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        Finished {
            success: status.is_some_and(|s| s.success()),
            output: match status {
                Some(_) => output,
                None => format!("{output}\n(killed after {INIT_TIMEOUT:?})"),
            },
        }
    }

    /// Runs every init container in order, as the kubelet does; panics on the first failure.
    #[track_caller]
    pub fn run_init_containers(&self) {
        for c in containers(&self.spec, "initContainers") {
            let f = self.run_init(name_of(c));
            assert!(
                f.success,
                "{} on {}: init container {} failed:\n{}",
                self.workload,
                self.node_name,
                name_of(c),
                f.output
            );
        }
    }

    /// Starts the containers; they run until the pod is dropped.
    pub fn start(&mut self) {
        for c in containers(&self.spec, "containers") {
            let log = self.log_path(name_of(c));
            let p = Proc::spawn(name_of(c), self.command(c), &log)
                .unwrap_or_else(|e| panic!("start container {}: {e}", name_of(c)));
            self.running.push(p);
        }
    }

    pub fn log_path(&self, container: &str) -> PathBuf {
        self.dir.join(format!("{container}.log"))
    }

    /// Whether every started container still runs (with the exit status of one that does not).
    pub fn check_running(&mut self) -> Result<(), String> {
        for p in &mut self.running {
            if let Some(status) = p.exit_status() {
                let log = self.dir.join(format!("{}.log", p.name()));
                return Err(format!(
                    "{} exited ({status}):\n{}",
                    p.name(),
                    crate::support::tail(&log, 30)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_expansion_replaces_defined_variables_only() {
        let env = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand("--a=$(A),$(B),$$(A)", &env), "--a=x,$(B),$(A)");
    }

    #[test]
    fn container_paths_are_taken_inside_the_root() {
        let root = Path::new("/r");
        assert_eq!(in_root(root, "/etc/x"), "/r/etc/x");
        assert_eq!(in_root(root, "--f=/etc/x"), "--f=/r/etc/x");
        assert_eq!(in_root(root, "--f=https://a:1"), "--f=https://a:1");
        assert_eq!(in_root(root, "agent"), "agent");
    }
}

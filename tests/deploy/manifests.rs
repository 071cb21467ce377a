//! The manifests as a cluster receives them: `kubectl kustomize` of an overlay (or of an
//! operator's overlay built on one), parsed into documents, with the lookups the tests need
//! (ConfigMap data, workloads, their pod specs and containers), and the image's layout as
//! deploy/image/Dockerfile builds it.
//!
//! `kubectl` is the one on PATH (`KUBECTL` overrides it): the tests render with whatever
//! kustomize that kubectl embeds, so the kustomization files must stay within what both
//! Debian's kubectl 1.20 (kustomize v2.0) and a current one understand.

use serde::Deserialize as _;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const OVERLAYS: [&str; 3] = ["mesh", "route-reflector", "tor"];

/// The real binary the image carries.
pub const BIN: &str = env!("CARGO_BIN_EXE_tortie");

/// The ConfigMap of Calico resources every agent pod applies.
pub const RESOURCES_CONFIG_MAP: &str = "tortie-resources";

/// Secrets the manifests use but do not create (README.md, "Install on a cluster").
pub const OPERATOR_SECRETS: [&str; 2] = ["tortie-etcd", "tortie-bgp-passwords"];

static NULL: Value = Value::Null;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn overlay_dir(overlay: &str) -> PathBuf {
    repo().join("deploy/overlays").join(overlay)
}

pub fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// `to` as a path relative to `from` (kustomize refuses absolute paths to bases).
fn relative_to(from: &Path, to: &Path) -> String {
    let up = from.components().count().saturating_sub(1);
    let down = to.strip_prefix("/").unwrap_or(to);
    format!("{}{}", "../".repeat(up), down.display())
}

/// `kubectl kustomize DIR` as documents.
#[track_caller]
pub fn render_dir(dir: &Path) -> Vec<Value> {
    let out = Command::new(kubectl())
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running `{} kustomize`: {e} (tools/test.sh installs kubernetes-client)",
                kubectl()
            )
        });
    assert!(
        out.status.success(),
        "{} kustomize {}: {}",
        kubectl(),
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_documents(&String::from_utf8_lossy(&out.stdout))
}

#[track_caller]
pub fn parse_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("rendered YAML: {e}\n{text}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// One rendered overlay.
pub struct Rendered {
    pub name: String,
    pub docs: Vec<Value>,
}

impl Rendered {
    #[track_caller]
    pub fn overlay(overlay: &str) -> Rendered {
        Rendered {
            name: overlay.to_string(),
            docs: render_dir(&overlay_dir(overlay)),
        }
    }

    /// An operator's overlay on `overlay` that sets where etcd is, as README.md shows it.
    #[track_caller]
    pub fn operator_overlay(overlay: &str, etcd_endpoints: &str, dir: &Path) -> Rendered {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let kustomization = format!(
            "namespace: kube-system\n\
             bases:\n  - {}\n\
             generatorOptions:\n  disableNameSuffixHash: true\n\
             configMapGenerator:\n  - name: tortie-config\n    behavior: merge\n    \
             literals:\n      - etcd_endpoints={etcd_endpoints}\n",
            relative_to(dir, &overlay_dir(overlay))
        );
        let file = dir.join("kustomization.yaml");
        std::fs::write(&file, kustomization).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        Rendered {
            name: format!("{overlay} (operator's overlay)"),
            docs: render_dir(dir),
        }
    }

    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
        let kind = kind.to_string();
        self.docs
            .iter()
            .filter(move |d| text(d, &["kind"]) == Some(kind.as_str()))
    }

    #[track_caller]
    pub fn find(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .find(|d| text(d, &["metadata", "name"]) == Some(name))
            .unwrap_or_else(|| panic!("{}: no {kind} {name} rendered", self.name))
    }

    /// A ConfigMap's data, by name and namespace; `None` when it is not rendered there.
    pub fn config_map(&self, name: &str, namespace: &str) -> Option<BTreeMap<String, String>> {
        let cm = self.of_kind("ConfigMap").find(|d| {
            text(d, &["metadata", "name"]) == Some(name) && namespace_of(d) == namespace
        })?;
        let data = at(cm, &["data"]).as_mapping().cloned().unwrap_or_default();
        Some(
            data.into_iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect(),
        )
    }

    /// The DaemonSets and Deployments.
    pub fn workloads(&self) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| matches!(text(d, &["kind"]), Some("DaemonSet" | "Deployment")))
            .collect()
    }
}

/// The value at `path` (Null when absent).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().try_fold(v, |v, k| v.get(*k)).unwrap_or(&NULL)
}

/// The string at `path`.
pub fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).as_str()
}

pub fn name_of(v: &Value) -> &str {
    text(v, &["metadata", "name"])
        .or_else(|| text(v, &["name"]))
        .unwrap_or("(unnamed)")
}

/// `metadata.namespace`, `default` when unset (as the API server would place it).
pub fn namespace_of(v: &Value) -> &str {
    text(v, &["metadata", "namespace"]).unwrap_or("default")
}

pub fn pod_spec(workload: &Value) -> &Value {
    at(workload, &["spec", "template", "spec"])
}

/// `initContainers` or `containers` of a pod spec.
pub fn containers<'a>(spec: &'a Value, which: &str) -> &'a [Value] {
    at(spec, &[which])
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Every container of a pod spec, init containers first.
pub fn all_containers(spec: &Value) -> impl Iterator<Item = &Value> {
    containers(spec, "initContainers")
        .iter()
        .chain(containers(spec, "containers"))
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The image deploy/image/Dockerfile describes: its entrypoint, and every path it holds.
pub struct Image {
    pub entrypoint: Vec<String>,
    /// The programs it holds (nft's shared libraries are left out).
    pub files: Vec<String>,
    /// `ENV` (PATH).
    pub env: Vec<(String, String)>,
}

/// What tools/image.sh puts in the build context's directories (and checks in the built
/// image): bin/ is copied to /usr/local/bin/, nft/ to / (with nft's libraries).
const CONTEXT_BIN: [&str; 2] = ["tortie", "tortie-cni"];
const CONTEXT_NFT: [&str; 1] = ["/usr/sbin/nft"];

#[track_caller]
pub fn image() -> Image {
    let path = repo().join("deploy/image/Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut entrypoint = None;
    let mut files = Vec::new();
    let mut env = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(json) = line.strip_prefix("ENTRYPOINT ") {
            let e: Vec<String> = serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("Dockerfile ENTRYPOINT {json}: {e}"));
            entrypoint = Some(e);
        } else if let Some(kv) = line.strip_prefix("ENV ") {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("Dockerfile: ENV without KEY=VALUE: {line}"));
            env.push((k.to_string(), v.to_string()));
        } else if let Some(rest) = line.strip_prefix("COPY ") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let [src, dest] = parts[..] else {
                panic!("Dockerfile: COPY with other than one source: {line}");
            };
            if src == "bin/" {
                files.extend(CONTEXT_BIN.iter().map(|f| format!("{dest}{f}")));
            } else if src == "nft/" {
                files.extend(CONTEXT_NFT.iter().map(|f| f.to_string()));
            } else {
                files.push(dest.to_string());
            }
        }
    }
    Image {
        entrypoint: entrypoint.unwrap_or_else(|| panic!("{}: no ENTRYPOINT", path.display())),
        files,
        env,
    }
}

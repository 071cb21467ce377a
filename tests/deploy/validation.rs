//! Every rendered overlay against the Kubernetes schemas: `kubernetes-validate --strict` (PyPI,
//! installed by tools/test.sh) for a current Kubernetes version, so a misspelt or misplaced
//! field fails here rather than at `kubectl apply` (which, client-side, drops unknown fields
//! with a warning at best).

use crate::manifests::{OVERLAYS, Rendered, at, name_of, text};
use crate::support::TempDir;
use serde_yaml_ng::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The Kubernetes version the manifests are checked against.
pub const KUBERNETES_VERSION: &str = "1.33.0";

/// Writes each document to its own file and validates them all in one run.
fn validate(docs: &[Value], dir: &TempDir) -> (Output, Vec<PathBuf>) {
    let mut files = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let kind = text(d, &["kind"]).unwrap_or("unknown");
        let file = dir.join(format!("{i:02}-{kind}-{}.yaml", name_of(d)));
        let yaml = serde_yaml_ng::to_string(d).expect("a parsed document serializes");
        std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        files.push(file);
    }
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!("running kubernetes-validate: {e} (tools/test.sh installs it with pip)")
        });
    (out, files)
}

fn report(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_document_of_every_overlay_validates_strictly() {
    for overlay in OVERLAYS {
        let r = Rendered::overlay(overlay);
        assert!(!r.docs.is_empty(), "{overlay}: nothing rendered");
        let dir = TempDir::new("deploy-validate");
        let (out, files) = validate(&r.docs, &dir);
        let log = report(&out);
        assert!(
            out.status.success(),
            "{overlay}: kubernetes-validate {KUBERNETES_VERSION} failed:\n{log}"
        );
        // A document of a kind it has no schema for is skipped with a warning, not failed:
        // every file must have been checked.
        for f in &files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            assert!(
                log.lines()
                    .any(|l| l.contains(name) && l.contains("passed")),
                "{overlay}: {name} was not validated:\n{log}"
            );
        }
    }
}

#[test]
fn strict_validation_refuses_a_field_kubernetes_does_not_have() {
    let r = Rendered::overlay("mesh");
    let mut ds = r.find("DaemonSet", "tortie-node").clone();
    let spec = at(&ds, &["spec", "template", "spec"]).clone();
    let Value::Mapping(mut spec) = spec else {
        panic!("DaemonSet pod spec is not a mapping");
    };
    spec.insert("hostNetwrok".into(), true.into());
    if let Some(Value::Mapping(t)) = ds.get_mut("spec").and_then(|s| s.get_mut("template")) {
        t.insert("spec".into(), Value::Mapping(spec));
    }
    let dir = TempDir::new("deploy-validate-bad");
    let (out, _) = validate(&[ds], &dir);
    let log = report(&out);
    assert!(!out.status.success(), "a misspelt field passed:\n{log}");
    assert!(
        log.contains("hostNetwrok"),
        "the error does not name the field:\n{log}"
    );
}

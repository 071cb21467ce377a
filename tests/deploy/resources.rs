//! The Calico resources the overlays carry in the tortie-resources ConfigMap: each one loads
//! through the real `tortie apply --dry-run`, with no field tortie would ignore, and every BGP
//! password they name is where the agent reads it (a Secret mounted under its secrets dir).

use crate::manifests::{
    BIN, OVERLAYS, RESOURCES_CONFIG_MAP, Rendered, all_containers, at, name_of, namespace_of,
    parse_documents, pod_spec, strings, text,
};
use crate::support::TempDir;
use std::process::Command;

/// The resource files of an overlay's ConfigMap, written to a directory.
fn extract(r: &Rendered, dir: &TempDir) -> Vec<(String, String)> {
    let data = r
        .config_map(RESOURCES_CONFIG_MAP, "kube-system")
        .unwrap_or_else(|| panic!("{}: no ConfigMap {RESOURCES_CONFIG_MAP}", r.name));
    for (file, body) in &data {
        std::fs::write(dir.join(file), body).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    data.into_iter().collect()
}

#[test]
fn every_calico_resource_of_every_overlay_loads_with_tortie_apply_dry_run() {
    for overlay in OVERLAYS {
        let r = Rendered::overlay(overlay);
        let dir = TempDir::new("deploy-resources");
        let files = extract(&r, &dir);
        let expected: Vec<String> = files
            .iter()
            .flat_map(|(_, body)| parse_documents(body))
            .map(|d| {
                let kind = text(&d, &["kind"]).unwrap_or_default().to_lowercase();
                format!("{kind}/{} would be applied", name_of(&d))
            })
            .collect();
        assert!(!expected.is_empty(), "{overlay}: no resources");
        let out = Command::new(BIN)
            .args(["apply", "--dry-run", "-f"])
            .arg(dir.path())
            .output()
            .expect("run tortie apply");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "{overlay}: tortie apply --dry-run failed:\n{stdout}{stderr}"
        );
        for line in &expected {
            assert!(
                stdout.contains(line),
                "{overlay}: no `{line}` in:\n{stdout}"
            );
        }
        // A field tortie accepts but does not act on would mislead whoever reads the manifest.
        assert!(
            !stderr.contains("warning"),
            "{overlay}: fields tortie ignores:\n{stderr}"
        );
    }
}

#[test]
fn every_bgp_password_an_overlay_names_is_mounted_where_the_agent_reads_it() {
    let mut checked = 0;
    for overlay in OVERLAYS {
        let r = Rendered::overlay(overlay);
        let dir = TempDir::new("deploy-passwords");
        let refs: Vec<(String, String)> = extract(&r, &dir)
            .iter()
            .flat_map(|(_, body)| parse_documents(body))
            .filter_map(|d| {
                let key = at(&d, &["spec", "password", "secretKeyRef"]);
                Some((
                    text(key, &["name"])?.to_string(),
                    text(key, &["key"])?.to_string(),
                ))
            })
            .collect();
        for workload in r.workloads() {
            let spec = pod_spec(workload);
            let volumes = at(spec, &["volumes"])
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            for c in all_containers(spec) {
                let args = strings(at(c, &["args"]));
                let Some(secrets_dir) = args.iter().find_map(|a| a.strip_prefix("--secrets-dir="))
                else {
                    continue;
                };
                for (secret, key) in &refs {
                    // <secrets-dir>/<secret>/<key>: a volume of that Secret at <secrets-dir>/<secret>.
                    let mount = format!("{secrets_dir}/{secret}");
                    let mounted = at(c, &["volumeMounts"])
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .filter(|m| text(m, &["mountPath"]) == Some(mount.as_str()))
                        .filter_map(|m| text(m, &["name"]))
                        .any(|v| {
                            volumes.iter().any(|vol| {
                                text(vol, &["name"]) == Some(v)
                                    && text(vol, &["secret", "secretName"]) == Some(secret)
                            })
                        });
                    assert!(
                        mounted,
                        "{overlay}: {} {}/{}: secretKeyRef {{name: {secret}, key: {key}}} is read \
                         from {mount}/{key}, but no volume of Secret {secret} is mounted at {mount}",
                        text(workload, &["kind"]).unwrap_or_default(),
                        namespace_of(workload),
                        name_of(c)
                    );
                    checked += 1;
                }
            }
        }
    }
    // The ToR template names a password, so this test checks at least one mapping.
    assert!(
        checked > 0,
        "no BGP password in any overlay: the test checked nothing"
    );
}

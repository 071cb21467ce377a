//! What the rendered workloads refer to, checked across documents, where a schema cannot see:
//! every ConfigMap and Secret a pod uses exists in its namespace (or is one the operator
//! creates, as README.md says), nothing talks to the Kubernetes API, every program a container
//! runs is in the image, and only the node agent is privileged.

use crate::manifests::{
    OPERATOR_SECRETS, OVERLAYS, Rendered, all_containers, at, image, name_of, namespace_of,
    pod_spec, strings, text,
};
use serde_yaml_ng::Value;

/// Every ConfigMap name a pod spec refers to (volumes, env, envFrom), with whether optional.
fn config_map_refs(spec: &Value) -> Vec<(String, bool)> {
    let mut refs = Vec::new();
    for v in at(spec, &["volumes"]).as_sequence().into_iter().flatten() {
        if let Some(n) = text(v, &["configMap", "name"]) {
            refs.push((
                n.to_string(),
                at(v, &["configMap", "optional"]) == &Value::Bool(true),
            ));
        }
    }
    for c in all_containers(spec) {
        for e in at(c, &["env"]).as_sequence().into_iter().flatten() {
            let r = at(e, &["valueFrom", "configMapKeyRef"]);
            if let Some(n) = text(r, &["name"]) {
                refs.push((n.to_string(), at(r, &["optional"]) == &Value::Bool(true)));
            }
        }
        for e in at(c, &["envFrom"]).as_sequence().into_iter().flatten() {
            if let Some(n) = text(e, &["configMapRef", "name"]) {
                refs.push((n.to_string(), false));
            }
        }
    }
    refs
}

fn secret_refs(spec: &Value) -> Vec<String> {
    let mut refs: Vec<String> = at(spec, &["volumes"])
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| text(v, &["secret", "secretName"]).map(str::to_string))
        .collect();
    for c in all_containers(spec) {
        for e in at(c, &["env"]).as_sequence().into_iter().flatten() {
            if let Some(n) = text(e, &["valueFrom", "secretKeyRef", "name"]) {
                refs.push(n.to_string());
            }
        }
    }
    refs
}

#[test]
fn every_config_map_and_secret_a_pod_uses_exists_in_its_namespace_or_is_the_operators() {
    let readme =
        std::fs::read_to_string(crate::manifests::repo().join("README.md")).expect("README.md");
    for overlay in OVERLAYS {
        let r = Rendered::overlay(overlay);
        for w in r.workloads() {
            let ns = namespace_of(w);
            assert_eq!(
                ns,
                "kube-system",
                "{overlay}: {} is not in kube-system",
                name_of(w)
            );
            let spec = pod_spec(w);
            for (cm, optional) in config_map_refs(spec) {
                assert!(
                    optional || r.config_map(&cm, ns).is_some(),
                    "{overlay}: {} uses ConfigMap {ns}/{cm}, which is not rendered",
                    name_of(w)
                );
            }
            for s in secret_refs(spec) {
                let rendered = r
                    .of_kind("Secret")
                    .any(|d| name_of(d) == s && namespace_of(d) == ns);
                assert!(
                    rendered || OPERATOR_SECRETS.contains(&s.as_str()),
                    "{overlay}: {} uses Secret {ns}/{s}, neither rendered nor the operator's",
                    name_of(w)
                );
                assert!(
                    rendered || readme.contains(&s),
                    "{overlay}: the operator's Secret {s} is not described in README.md"
                );
            }
        }
    }
}

#[test]
fn no_workload_reads_the_kubernetes_api() {
    for overlay in OVERLAYS {
        let r = Rendered::overlay(overlay);
        for kind in [
            "ServiceAccount",
            "Role",
            "ClusterRole",
            "RoleBinding",
            "ClusterRoleBinding",
        ] {
            let found: Vec<&str> = r.of_kind(kind).map(name_of).collect();
            assert!(found.is_empty(), "{overlay}: {kind} {found:?} rendered");
        }
        for w in r.workloads() {
            assert_eq!(
                at(pod_spec(w), &["automountServiceAccountToken"]),
                &Value::Bool(false),
                "{overlay}: {} mounts a service account token",
                name_of(w)
            );
        }
    }
}

#[test]
fn every_program_a_container_runs_is_in_the_image() {
    let image = image();
    assert!(
        image.files.contains(&image.entrypoint[0]),
        "the entrypoint {:?} is not in the image {:?}",
        image.entrypoint,
        image.files
    );
    let mut seen = 0;
    for overlay in OVERLAYS {
        let r = Rendered::overlay(overlay);
        for w in r.workloads() {
            for c in all_containers(pod_spec(w)) {
                assert!(
                    text(c, &["image"]).is_some_and(|i| i.starts_with("localhost/tortie:")),
                    "{overlay}: {} runs another image: {:?}",
                    name_of(c),
                    text(c, &["image"])
                );
                let command = strings(at(c, &["command"]));
                let program = command.first().unwrap_or(&image.entrypoint[0]);
                assert!(
                    image.files.contains(program),
                    "{overlay}: {} runs {program}, which the image {:?} does not hold",
                    name_of(c),
                    image.files
                );
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "no container checked");
}

#[test]
fn only_the_node_agent_runs_privileged() {
    for overlay in OVERLAYS {
        let r = Rendered::overlay(overlay);
        for w in r.workloads() {
            for c in all_containers(pod_spec(w)) {
                let privileged = at(c, &["securityContext", "privileged"]) == &Value::Bool(true);
                assert_eq!(
                    privileged,
                    name_of(c) == "tortie-node",
                    "{overlay}: {}/{} privileged: {privileged}",
                    name_of(w),
                    name_of(c)
                );
                let added = strings(at(c, &["securityContext", "capabilities", "add"]));
                assert!(
                    added.iter().all(|cap| cap == "NET_BIND_SERVICE"),
                    "{overlay}: {}/{} adds {added:?}",
                    name_of(w),
                    name_of(c)
                );
            }
        }
    }
}

//! The field-status table and the warnings it produces.

use super::super::status::{FIELDS, fields_of};
use super::super::{FieldStatus, Kind, Warning, field_status};
use super::*;
use serde::Deserialize;
use std::collections::BTreeSet;

fn fields_warned(warnings: &[Warning], kind: Kind, name: &str) -> Vec<String> {
    warnings
        .iter()
        .filter(|w| w.kind == kind && w.name == name)
        .map(|w| w.field.clone())
        .collect()
}

#[test]
fn table_lists_log_severity_as_not_yet_acted_on() {
    let status = field_status(Kind::BgpConfiguration, "spec.logSeverityScreen");
    assert_eq!(status, Some(FieldStatus::NotYetActedOn));
    assert_eq!(status.unwrap().to_string(), "accepted, not yet acted on");
}

#[test]
fn table_marks_the_fields_acted_on() {
    let acted: Vec<(Kind, &str)> = FIELDS
        .iter()
        .filter(|e| e.status == FieldStatus::ActedOn)
        .map(|e| (e.kind, e.path))
        .collect();
    use Kind::*;
    assert_eq!(
        acted,
        [
            (Node, "spec.bgp"),
            (Node, "spec.bgp.asNumber"),
            (Node, "spec.bgp.ipv4Address"),
            (Node, "spec.bgp.ipv6Address"),
            (Node, "spec.bgp.routeReflectorClusterID"),
            (BgpConfiguration, "spec.asNumber"),
            (BgpConfiguration, "spec.listenPort"),
            (BgpConfiguration, "spec.nodeToNodeMeshEnabled"),
            (BgpConfiguration, "spec.bindMode"),
            (BgpConfiguration, "spec.serviceClusterIPs"),
            (BgpConfiguration, "spec.serviceExternalIPs"),
            (BgpConfiguration, "spec.serviceLoadBalancerIPs"),
            (BgpConfiguration, "spec.communities"),
            (BgpConfiguration, "spec.prefixAdvertisements"),
            (BgpConfiguration, "spec.nodeMeshPassword"),
            (BgpConfiguration, "spec.nodeMeshMaxRestartTime"),
            (BgpPeer, "spec.node"),
            (BgpPeer, "spec.peerIP"),
            (BgpPeer, "spec.asNumber"),
            (BgpPeer, "spec.nodeSelector"),
            (BgpPeer, "spec.peerSelector"),
            (BgpPeer, "spec.password"),
            (BgpPeer, "spec.sourceAddress"),
            (BgpPeer, "spec.maxRestartTime"),
            (BgpPeer, "spec.ttlSecurity"),
            (BgpPeer, "spec.keepOriginalNextHop"),
            (BgpPeer, "spec.nextHopMode"),
            (BgpPeer, "spec.numAllowedLocalASNumbers"),
            (BgpPeer, "spec.filters"),
            (BgpFilter, "spec.exportV4"),
            (BgpFilter, "spec.importV4"),
            (BgpFilter, "spec.exportV6"),
            (BgpFilter, "spec.importV6"),
            (IpPool, "spec.cidr"),
            (IpPool, "spec.blockSize"),
            (IpPool, "spec.ipipMode"),
            (IpPool, "spec.vxlanMode"),
            (IpPool, "spec.natOutgoing"),
            (IpPool, "spec.disabled"),
            (IpPool, "spec.disableBGPExport"),
            (IpPool, "spec.nodeSelector"),
            (IpPool, "spec.allowedUses"),
        ]
    );
}

#[test]
fn table_has_one_entry_per_field() {
    let mut seen = BTreeSet::new();
    for e in FIELDS {
        assert!(
            seen.insert((e.kind, e.path)),
            "{:?} {} twice",
            e.kind,
            e.path
        );
    }
}

/// Dotted paths of every key under `spec` (and `status`), descending into `spec.bgp`.
fn paths(value: &serde_yaml_ng::Value, prefix: &str, out: &mut Vec<String>) {
    let Some(map) = value.as_mapping() else {
        return;
    };
    for (k, v) in map {
        let path = format!("{prefix}.{}", k.as_str().unwrap());
        if path == "spec.bgp" {
            paths(v, &path, out);
        }
        out.push(path);
    }
}

#[test]
fn every_spec_field_has_a_status() {
    // every-field.yaml sets every documented field of every kind.
    let text = std::fs::read_to_string(fixture("every-field.yaml")).unwrap();
    let mut covered = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = serde_yaml_ng::Value::deserialize(doc).unwrap();
        let kind = Kind::from_kind(v["kind"].as_str().unwrap()).unwrap();
        let mut found = Vec::new();
        paths(&v["spec"], "spec", &mut found);
        if v.get("status").is_some() {
            found.push("status".into());
        }
        for p in found {
            assert!(field_status(kind, &p).is_some(), "{kind} {p} has no status");
            covered.insert((kind, p));
        }
    }
    for kind in Kind::ALL {
        for e in fields_of(kind) {
            assert!(
                covered.contains(&(kind, e.path.to_string())),
                "every-field.yaml does not set {kind} {}",
                e.path
            );
        }
    }
}

#[test]
fn not_yet_acted_on_fields_are_warned_by_document_and_path() {
    let c = cluster();
    let w = c
        .warnings
        .iter()
        .find(|w| w.kind == Kind::BgpConfiguration && w.field == "spec.logSeverityScreen")
        .expect("a warning for logSeverityScreen");
    assert_eq!(w.name, "default");
    assert_eq!(w.source.document, 1);
    assert!(w.source.file.ends_with("cluster-bgp.yaml"));
    assert!(
        w.to_string()
            .ends_with("cluster-bgp.yaml, document 1 (BGPConfiguration \"default\"): spec.logSeverityScreen: accepted, not yet acted on"),
        "{w}"
    );
}

#[test]
fn acted_on_fields_give_no_warning() {
    let c = cluster();
    assert_eq!(
        fields_warned(&c.warnings, Kind::BgpPeer, "node-c-uplink"),
        Vec::<String>::new()
    );
    assert_eq!(
        fields_warned(&c.warnings, Kind::Node, "node-c"),
        Vec::<String>::new()
    );
    assert_eq!(
        fields_warned(&c.warnings, Kind::BgpPeer, "tor"),
        Vec::<String>::new()
    );
}

#[test]
fn nested_fields_are_warned_individually() {
    let c = cluster();
    assert_eq!(
        fields_warned(&c.warnings, Kind::Node, "node-a"),
        ["spec.bgp.ipv4IPIPTunnelAddr", "spec.orchRefs"]
    );
}

#[test]
fn list_item_warnings_name_the_item() {
    let c = yaml_ok(
        "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n\
         - {apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: p1}, spec: {cidr: 198.19.0.0/24}}\n\
         - {apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: p2}, spec: {cidr: 198.19.1.0/24, assignmentMode: Manual}}\n",
    );
    let w = c
        .warnings
        .iter()
        .find(|w| w.name == "p2" && w.field == "spec.assignmentMode")
        .expect("warning");
    assert_eq!((w.source.document, w.source.item), (1, Some(2)));
}

#[test]
fn pool_fields_tortie_cni_uses_give_no_warning() {
    let c = cluster();
    for pool in ["default-ipv4-ippool", "default-ipv6-ippool"] {
        assert_eq!(
            fields_warned(&c.warnings, Kind::IpPool, pool),
            Vec::<String>::new(),
            "{pool}"
        );
    }
}

#[test]
fn mesh_password_and_restart_time_give_no_warning_on_default() {
    let c = yaml_ok(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeMeshPassword: {secretKeyRef: {name: bgp-passwords, key: mesh}}, nodeMeshMaxRestartTime: 90s}\n",
    );
    assert_eq!(
        fields_warned(&c.warnings, Kind::BgpConfiguration, "default"),
        Vec::<String>::new()
    );
}

#[test]
fn mesh_password_on_a_node_specific_configuration_is_warned_as_ignored() {
    let c = yaml_ok(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n1}\nspec: {nodeMeshPassword: {secretKeyRef: {name: s, key: k}}, nodeMeshMaxRestartTime: 90s}\n",
    );
    assert_eq!(
        fields_warned(&c.warnings, Kind::BgpConfiguration, "node.n1"),
        ["spec.nodeMeshPassword", "spec.nodeMeshMaxRestartTime"]
    );
    assert!(
        c.warnings.iter().all(|w| w
            .reason
            .starts_with("ignored on a node-specific BGPConfiguration")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn node_status_is_warned_as_ignored() {
    let c = cluster();
    assert!(fields_warned(&c.warnings, Kind::Node, "node-b").contains(&"status".to_string()));
}

#[test]
fn node_specific_bgp_configuration_warns_about_ignored_fields() {
    let c = yaml_ok(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n1}\nspec: {asNumber: 65000, listenPort: 1179, logSeverityScreen: Debug}\n",
    );
    let fields = fields_warned(&c.warnings, Kind::BgpConfiguration, "node.n1");
    assert_eq!(fields, ["spec.asNumber", "spec.logSeverityScreen"]);
    assert!(
        c.warnings[0]
            .reason
            .starts_with("ignored on a node-specific BGPConfiguration")
    );
    assert_eq!(c.warnings[1].reason, "accepted, not yet acted on");
}

#[test]
fn every_field_fixture_warns_only_for_not_yet_acted_on_fields() {
    let c = load(&["every-field.yaml"]);
    for w in &c.warnings {
        assert_eq!(
            field_status(w.kind, &w.field),
            Some(FieldStatus::NotYetActedOn),
            "{w}"
        );
    }
    let expected = FIELDS
        .iter()
        .filter(|e| e.status == FieldStatus::NotYetActedOn)
        .count();
    let distinct: BTreeSet<_> = c
        .warnings
        .iter()
        .map(|w| (w.kind, w.field.clone()))
        .collect();
    assert_eq!(distinct.len(), expected);
}

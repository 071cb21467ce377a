use super::super::values::AsNumber;
use super::super::{AllowedUse, EncapMode, Kind, Selector, Source};
use super::*;
use std::time::Duration;

#[test]
fn realistic_cluster_loads() {
    let c = cluster();
    assert_eq!(
        c.nodes.keys().collect::<Vec<_>>(),
        ["node-a", "node-b", "node-c"]
    );
    assert_eq!(
        c.bgp_configurations.keys().collect::<Vec<_>>(),
        ["default", "node.node-c"]
    );
    assert_eq!(
        c.bgp_peers.keys().collect::<Vec<_>>(),
        ["node-c-uplink", "peer-with-route-reflectors", "tor"]
    );
    assert_eq!(c.bgp_filters.keys().collect::<Vec<_>>(), ["tor-export"]);
    assert_eq!(
        c.ip_pools.keys().collect::<Vec<_>>(),
        ["default-ipv4-ippool", "default-ipv6-ippool"]
    );
}

#[test]
fn every_documented_field_loads() {
    let c = load(&["every-field.yaml"]);
    let node = &c.node("every-node").unwrap().resource;
    assert_eq!(node.labels()["rack"], "r9");
    assert_eq!(node.metadata.annotations["note"], "all fields");
    let peer = &c.bgp_peers["every-peer"].resource.spec;
    assert_eq!(peer.peer_ip.unwrap().to_string(), "[fd00:18:9::1]:1179");
    assert_eq!(
        peer.max_restart_time.as_ref().unwrap().value,
        Duration::from_secs(5400)
    );
    assert_eq!(
        c.bgp_filters["every-filter"].resource.spec.export_v4[0]
            .operations
            .len(),
        3
    );
}

#[test]
fn resources_remember_file_and_document() {
    let c = cluster();
    let src = &c.bgp_peers["tor"].source;
    assert!(src.file.ends_with("cluster-bgp.yaml"), "{src}");
    assert_eq!((src.document, src.item), (3, None));
}

#[test]
fn list_items_are_numbered_within_their_document() {
    let c = cluster();
    let Source { document, item, .. } = c.ip_pools["default-ipv6-ippool"].source.clone();
    assert_eq!((document, item), (1, Some(2)));
    assert_eq!(c.bgp_filters["tor-export"].source.item, Some(1));
}

#[test]
fn node_as_number_accepts_dotted_form() {
    let c = load(&["every-field.yaml"]);
    let bgp = c.nodes["every-node"].resource.spec.bgp.as_ref().unwrap();
    assert_eq!(bgp.as_number, Some(AsNumber(65546)));
}

#[test]
fn as_number_accepts_string_and_integer() {
    let c = cluster();
    assert_eq!(c.default_as(), 64512); // written "64512"
    let b = c.nodes["node-b"].resource.spec.bgp.as_ref().unwrap();
    assert_eq!(b.as_number, Some(AsNumber(64513))); // written 64513
}

#[test]
fn node_address_keeps_its_subnet() {
    let c = cluster();
    let a = c.nodes["node-a"].resource.spec.bgp.as_ref().unwrap();
    let v4 = a.ipv4_address.unwrap().0;
    assert_eq!(
        (v4.addr().to_string(), v4.prefix_len()),
        ("198.18.1.10".into(), 24)
    );
}

#[test]
fn metadata_datastore_fields_are_ignored() {
    // node-a carries resourceVersion, uid and creationTimestamp.
    let c = cluster();
    assert_eq!(c.nodes["node-a"].resource.metadata.name, "node-a");
}

#[test]
fn ippool_block_size_defaults_by_family() {
    let c = cluster();
    assert_eq!(
        c.ip_pools["default-ipv4-ippool"]
            .resource
            .spec
            .block_size_or_default(),
        Some(26)
    );
    assert_eq!(
        c.ip_pools["default-ipv6-ippool"]
            .resource
            .spec
            .block_size_or_default(),
        Some(122)
    );
}

#[test]
fn ippool_defaults_match_calico() {
    let c = cluster();
    let v6 = &c.ip_pools["default-ipv6-ippool"].resource.spec;
    assert_eq!(v6.ipip_mode(), EncapMode::Never);
    assert_eq!(v6.vxlan_mode(), EncapMode::Always);
    assert_eq!(
        v6.allowed_uses(),
        [AllowedUse::Workload, AllowedUse::Tunnel]
    );
}

#[test]
fn listen_port_has_node_override() {
    let c = cluster();
    assert_eq!(c.listen_port("node-a"), 179);
    assert_eq!(c.listen_port("node-c"), 1179);
}

#[test]
fn defaults_without_any_bgp_configuration() {
    let c = yaml_ok("");
    assert_eq!(c.default_as(), 64512);
    assert_eq!(c.listen_port("x"), 179);
    assert!(c.mesh_enabled());
}

#[test]
fn empty_documents_are_skipped() {
    let c = yaml_ok(
        "---\n# nothing\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\n---\n",
    );
    assert_eq!(c.nodes["n1"].source.document, 2);
}

#[test]
fn generic_list_holds_several_kinds() {
    let c = yaml_ok(
        r#"
apiVersion: projectcalico.org/v3
kind: List
items:
  - {apiVersion: projectcalico.org/v3, kind: Node, metadata: {name: n1}}
  - apiVersion: projectcalico.org/v3
    kind: IPPool
    metadata: {name: p1}
    spec: {cidr: 198.19.0.0/16}
"#,
    );
    assert_eq!(c.nodes.len() + c.ip_pools.len(), 2);
}

#[test]
fn several_paths_make_one_config() {
    let c = load(&["cluster-nodes.yaml", "cluster-pools.yaml"]);
    assert_eq!(
        (c.nodes.len(), c.ip_pools.len(), c.bgp_peers.len()),
        (3, 2, 0)
    );
}

#[test]
fn directory_loads_its_yaml_files() {
    let dir = std::env::temp_dir().join(format!("tortie-config-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in CLUSTER {
        std::fs::copy(fixture(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("README.txt"), "not yaml: [").unwrap();
    let result = Config::load(&[&dir]);
    std::fs::remove_dir_all(&dir).unwrap();
    let c = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.nodes.len(), 3);
}

#[test]
fn node_lookup_by_name() {
    let c = cluster();
    assert_eq!(c.node("node-b").unwrap().resource.name(), "node-b");
}

#[test]
fn unknown_node_lists_known_ones() {
    let e = cluster().node("node-z").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no Node named \"node-z\" in the configuration (it defines: node-a, node-b, node-c)"
    );
}

#[test]
fn kinds_round_trip_their_names() {
    for k in Kind::ALL {
        assert_eq!(Kind::from_kind(k.as_str()), Some(k));
    }
}

#[test]
fn selectors_keep_their_text() {
    let c = cluster();
    let p = &c.bgp_peers["peer-with-route-reflectors"].resource.spec;
    let sel: &Selector = p.peer_selector().unwrap();
    assert_eq!(sel.as_str(), "route-reflector == 'true'");
}

#[test]
fn null_spec_and_lists_mean_empty() {
    let c = yaml_ok(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\n  labels:\nspec:\n---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  communities:\n  serviceClusterIPs:\n",
    );
    assert!(c.nodes["n1"].resource.spec.bgp.is_none());
    assert!(
        c.bgp_configurations["default"]
            .resource
            .spec
            .communities
            .is_empty()
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

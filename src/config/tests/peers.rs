//! The peers each node should have.

use super::super::secrets::{SecretError, read_password};
use super::super::{PeeringKind, SourceAddress};
use super::*;
use std::time::Duration;

#[test]
fn node_a_peers_with_tor_mesh_and_reflector() {
    assert_eq!(
        peer_set(&cluster(), "node-a"),
        [
            "Global 198.18.1.1:179 as 65001 local-as 64512 via tor",
            "NodeMesh 198.18.1.11:179 as 64513 local-as 64512 node node-b passive",
            "SelectedNode 198.18.2.10:1179 as 64512 local-as 64512 via peer-with-route-reflectors node node-c passive",
            "NodeMesh [fd00:18:1::11]:179 as 64513 local-as 64512 node node-b passive",
            "SelectedNode [fd00:18:2::10]:1179 as 64512 local-as 64512 via peer-with-route-reflectors node node-c passive",
        ]
    );
}

#[test]
fn node_b_uses_its_own_as_number() {
    assert_eq!(
        peer_set(&cluster(), "node-b"),
        [
            "Global 198.18.1.1:179 as 65001 local-as 64513 via tor",
            "NodeMesh 198.18.1.10:179 as 64512 local-as 64513 node node-a",
            "SelectedNode 198.18.2.10:1179 as 64512 local-as 64513 via peer-with-route-reflectors node node-c passive",
            "NodeMesh [fd00:18:1::10]:179 as 64512 local-as 64513 node node-a",
            "SelectedNode [fd00:18:2::10]:1179 as 64512 local-as 64513 via peer-with-route-reflectors node node-c passive",
        ]
    );
}

#[test]
fn route_reflector_gets_reverse_peerings_and_no_mesh() {
    assert_eq!(
        peer_set(&cluster(), "node-c"),
        [
            "Global 198.18.1.1:179 as 65001 local-as 64512 via tor",
            "SelectedNode 198.18.1.10:179 as 64512 local-as 64512 via peer-with-route-reflectors node node-a reverse rr-client",
            "SelectedNode 198.18.1.11:179 as 64513 local-as 64512 via peer-with-route-reflectors node node-b reverse",
            "NodeSpecific 198.18.2.1:2179 as 65002 local-as 64512 via node-c-uplink",
            "SelectedNode [fd00:18:1::10]:179 as 64512 local-as 64512 via peer-with-route-reflectors node node-a reverse rr-client",
            "SelectedNode [fd00:18:1::11]:179 as 64513 local-as 64512 via peer-with-route-reflectors node node-b reverse",
        ]
    );
}

#[test]
fn global_peer_carries_password_ttl_and_source() {
    let c = cluster();
    let tor = c
        .bgp_peerings("node-a")
        .unwrap()
        .into_iter()
        .find(|p| p.kind == PeeringKind::Global)
        .unwrap();
    let pw = tor.password.as_ref().unwrap();
    assert_eq!(
        (pw.name.as_str(), pw.key.as_str()),
        ("bgp-passwords", "tor")
    );
    assert_eq!(tor.ttl_security, Some(1));
    assert_eq!(tor.source_address, SourceAddress::UseNodeIp);
    assert_eq!(tor.local_address.to_string(), "198.18.1.10");
    assert!(!tor.passive);
}

#[test]
fn node_specific_peer_carries_source_and_restart_time() {
    let c = cluster();
    let up = c
        .bgp_peerings("node-c")
        .unwrap()
        .into_iter()
        .find(|p| p.kind == PeeringKind::NodeSpecific)
        .unwrap();
    assert_eq!(up.source_address, SourceAddress::None);
    assert_eq!(up.max_restart_time, Some(Duration::from_secs(120)));
    assert_eq!(up.password, None);
}

const NODES: &str = r#"
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n1, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 198.18.1.10/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n2, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 198.18.1.9/24, ipv6Address: 'fd00:18:1::9/64'}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n3, labels: {rack: r2}}
spec: {bgp: {ipv4Address: 198.18.2.10/24}}
"#;

fn with_nodes(extra: &str) -> Config {
    yaml_ok(&format!("{NODES}---\n{extra}"))
}

#[test]
fn full_mesh_connects_every_pair() {
    let c = yaml_ok(NODES);
    assert_eq!(
        peer_set(&c, "n1"),
        [
            "NodeMesh 198.18.1.9:179 as 64512 local-as 64512 node n2 passive",
            "NodeMesh 198.18.2.10:179 as 64512 local-as 64512 node n3 passive",
        ]
    );
    assert_eq!(peer_set(&c, "n3").len(), 2);
}

#[test]
fn mesh_passive_side_compares_address_text() {
    // "198.18.1.9" sorts after "198.18.1.10": n1 waits for n2, n2 connects.
    let c = yaml_ok(NODES);
    let n1 = c.bgp_peerings("n1").unwrap();
    let n2 = c.bgp_peerings("n2").unwrap();
    let to = |ps: &[BgpPeering], ip: &str| {
        ps.iter()
            .find(|p| p.peer_address.to_string() == ip)
            .unwrap()
            .passive
    };
    assert!(to(&n1, "198.18.1.9"));
    assert!(!to(&n2, "198.18.1.10"));
}

#[test]
fn mesh_is_per_family() {
    // n2 has IPv6 but no other node does: no IPv6 sessions anywhere.
    let c = yaml_ok(NODES);
    assert!(
        c.bgp_peerings("n2")
            .unwrap()
            .iter()
            .all(|p| p.peer_address.is_ipv4())
    );
}

#[test]
fn mesh_disabled_leaves_only_bgp_peers() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n",
    );
    assert!(!c.mesh_enabled());
    assert_eq!(peer_set(&c, "n1"), Vec::<String>::new());
}

#[test]
fn route_reflectors_do_not_mesh_even_with_each_other() {
    let c = yaml_ok(
        r#"
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr1}
spec: {bgp: {ipv4Address: 198.18.1.1/24, routeReflectorClusterID: 244.0.0.1}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr2}
spec: {bgp: {ipv4Address: 198.18.1.2/24, routeReflectorClusterID: 244.0.0.1}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: client}
spec: {bgp: {ipv4Address: 198.18.1.3/24}}
"#,
    );
    assert_eq!(peer_set(&c, "rr1"), Vec::<String>::new());
    assert_eq!(peer_set(&c, "client"), Vec::<String>::new());
}

#[test]
fn reflectors_of_one_cluster_are_not_each_others_clients() {
    let c = yaml_ok(
        r#"
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr1, labels: {rr: "true"}}
spec: {bgp: {ipv4Address: 198.18.1.1/24, routeReflectorClusterID: 244.0.0.1}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr2, labels: {rr: "true"}}
spec: {bgp: {ipv4Address: 198.18.1.2/24, routeReflectorClusterID: 244.0.0.1}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: rr-mesh}
spec: {nodeSelector: has(rr), peerSelector: has(rr)}
"#,
    );
    assert_eq!(
        peer_set(&c, "rr1"),
        ["SelectedNode 198.18.1.2:179 as 64512 local-as 64512 via rr-mesh node rr2 passive"]
    );
}

#[test]
fn global_peer_applies_to_every_node() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 198.18.0.1, asNumber: 65001}\n",
    );
    for n in ["n1", "n2", "n3"] {
        assert!(
            peer_set(&c, n)
                .contains(&"Global 198.18.0.1:179 as 65001 local-as 64512 via tor".to_string()),
            "{n}"
        );
    }
}

#[test]
fn node_selector_peer_applies_to_matching_nodes_only() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor-r1}\nspec: {nodeSelector: rack == 'r1', peerIP: 198.18.1.1, asNumber: 65001}\n",
    );
    let has = |n: &str| {
        c.bgp_peerings(n)
            .unwrap()
            .iter()
            .any(|p| p.bgp_peer.as_deref() == Some("tor-r1"))
    };
    assert!(has("n1") && has("n2") && !has("n3"));
}

#[test]
fn node_field_peer_applies_to_that_node_only() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: up}\nspec: {node: n3, peerIP: 198.18.2.1, asNumber: 65002}\n",
    );
    assert!(
        peer_set(&c, "n3")
            .contains(&"NodeSpecific 198.18.2.1:179 as 65002 local-as 64512 via up".to_string())
    );
    assert!(!peer_set(&c, "n1").iter().any(|s| s.contains("via up")));
}

#[test]
fn global_peer_wins_over_node_specific_to_same_address() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: a-node}\nspec: {node: n1, peerIP: 198.18.0.1, asNumber: 65001, ttlSecurity: 3}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: z-global}\nspec: {peerIP: 198.18.0.1, asNumber: 65001}\n",
    );
    let p = c.bgp_peerings("n1").unwrap();
    let tor: Vec<_> = p
        .iter()
        .filter(|p| p.peer_address.to_string() == "198.18.0.1")
        .collect();
    assert_eq!(tor.len(), 1);
    assert_eq!(tor[0].bgp_peer.as_deref(), Some("z-global"));
}

#[test]
fn bgp_peer_to_a_node_replaces_the_mesh_session() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: n1-n3}\nspec: {node: n1, peerIP: 198.18.2.10, asNumber: 64512, password: {secretKeyRef: {name: s, key: k}}}\n",
    );
    let p = c.bgp_peerings("n1").unwrap();
    let to_n3: Vec<_> = p
        .iter()
        .filter(|p| p.peer_node.as_deref() == Some("n3"))
        .collect();
    assert_eq!(to_n3.len(), 1);
    assert_eq!(to_n3[0].kind, PeeringKind::NodeSpecific);
    assert!(to_n3[0].password.is_some());
}

const MESH_SECRETS: &str = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeMeshPassword: {secretKeyRef: {name: bgp-passwords, key: mesh}}, nodeMeshMaxRestartTime: 5m}\n";

fn mesh_sessions(c: &Config, node: &str) -> Vec<BgpPeering> {
    c.bgp_peerings(node)
        .unwrap()
        .into_iter()
        .filter(|p| p.kind == PeeringKind::NodeMesh)
        .collect()
}

#[test]
fn mesh_sessions_take_the_node_mesh_password_and_restart_time() {
    let c = with_nodes(MESH_SECRETS);
    let mesh = mesh_sessions(&c, "n1");
    assert_eq!(mesh.len(), 2, "{mesh:?}");
    for p in &mesh {
        let pw = p.password.as_ref().expect("the mesh password");
        assert_eq!(
            (pw.name.as_str(), pw.key.as_str()),
            ("bgp-passwords", "mesh")
        );
        assert_eq!(p.max_restart_time, Some(Duration::from_secs(300)));
    }
}

#[test]
fn mesh_without_node_mesh_fields_has_no_password_and_the_default_restart_time() {
    for p in mesh_sessions(&yaml_ok(NODES), "n1") {
        assert_eq!((p.password, p.max_restart_time), (None, None));
    }
}

#[test]
fn bgp_peer_sessions_keep_their_own_password_and_restart_time_not_the_mesh_ones() {
    let c = with_nodes(&format!(
        "{MESH_SECRETS}---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: tor}}\nspec: {{peerIP: 198.18.1.1, asNumber: 65001, password: {{secretKeyRef: {{name: bgp-passwords, key: tor}}}}, maxRestartTime: 30s}}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: plain}}\nspec: {{peerIP: 198.18.1.2, asNumber: 65002}}\n"
    ));
    let p = c.bgp_peerings("n1").unwrap();
    let of = |name: &str| {
        p.iter()
            .find(|p| p.bgp_peer.as_deref() == Some(name))
            .unwrap()
    };
    let tor = of("tor");
    assert_eq!(tor.password.as_ref().map(|r| r.key.as_str()), Some("tor"));
    assert_eq!(tor.max_restart_time, Some(Duration::from_secs(30)));
    let plain = of("plain");
    assert_eq!((&plain.password, plain.max_restart_time), (&None, None));
}

#[test]
fn node_mesh_fields_of_a_node_specific_configuration_do_not_reach_the_mesh() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n1}\nspec: {nodeMeshPassword: {secretKeyRef: {name: s, key: k}}, nodeMeshMaxRestartTime: 5m}\n",
    );
    for node in ["n1", "n2"] {
        for p in mesh_sessions(&c, node) {
            assert_eq!((p.password, p.max_restart_time), (None, None), "{node}");
        }
    }
}

#[test]
fn peer_ip_naming_a_node_gets_a_reverse_peering() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: n1-to-n3}\nspec: {node: n1, peerIP: 198.18.2.10, asNumber: 64512}\n",
    );
    assert_eq!(
        peer_set(&c, "n1"),
        ["NodeSpecific 198.18.2.10:179 as 64512 local-as 64512 via n1-to-n3 node n3 passive"]
    );
    assert_eq!(
        peer_set(&c, "n3"),
        ["NodeSpecific 198.18.1.10:179 as 64512 local-as 64512 via n1-to-n3 node n1 reverse"]
    );
}

#[test]
fn peer_ip_to_a_node_uses_its_listen_port() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n3}\nspec: {listenPort: 1179}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: to-n3}\nspec: {node: n1, peerIP: 198.18.2.10, asNumber: 64512}\n",
    );
    let p = c.bgp_peerings("n1").unwrap();
    assert!(
        p.iter()
            .any(|p| p.peer_node.as_deref() == Some("n3") && p.port == 1179)
    );
}

#[test]
fn mesh_uses_the_peer_nodes_listen_port() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n3}\nspec: {listenPort: 1179}\n",
    );
    assert!(peer_set(&c, "n1").contains(
        &"NodeMesh 198.18.2.10:1179 as 64512 local-as 64512 node n3 passive".to_string()
    ));
    assert!(peer_set(&c, "n3").iter().all(|s| s.contains(":179 ")));
}

#[test]
fn default_as_number_from_bgp_configuration() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 65100}\n",
    );
    assert!(
        c.bgp_peerings("n1")
            .unwrap()
            .iter()
            .all(|p| p.local_as == 65100 && p.peer_as == 65100)
    );
}

#[test]
fn never_peers_with_itself() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: self}\nspec: {peerIP: 198.18.1.10, asNumber: 64512}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: all-nodes}\nspec: {peerSelector: all()}\n",
    );
    for n in ["n1", "n2", "n3"] {
        let me = c.nodes[n]
            .resource
            .spec
            .bgp
            .as_ref()
            .unwrap()
            .ipv4_address
            .unwrap()
            .0
            .addr();
        for p in c.bgp_peerings(n).unwrap() {
            assert_ne!(
                p.peer_address,
                std::net::IpAddr::V4(me),
                "{n}: {}",
                summary(&p)
            );
            assert_ne!(p.peer_node.as_deref(), Some(n));
        }
    }
}

#[test]
fn peer_selector_peers_with_every_matching_node() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: r1-to-r2}\nspec: {nodeSelector: rack == 'r1', peerSelector: rack == 'r2'}\n",
    );
    assert_eq!(
        peer_set(&c, "n1"),
        ["SelectedNode 198.18.2.10:179 as 64512 local-as 64512 via r1-to-r2 node n3 passive"]
    );
    // n3 is the remote end: Calico's reverse pass peers it back with both rack r1 nodes.
    assert_eq!(
        peer_set(&c, "n3"),
        [
            "SelectedNode 198.18.1.9:179 as 64512 local-as 64512 via r1-to-r2 node n2 reverse",
            "SelectedNode 198.18.1.10:179 as 64512 local-as 64512 via r1-to-r2 node n1 reverse",
        ]
    );
}

#[test]
fn global_node_selector_matches_every_node() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {nodeSelector: global(), peerIP: 198.18.0.1, asNumber: 65001}\n",
    );
    for n in ["n1", "n2", "n3"] {
        assert!(
            c.bgp_peerings(n)
                .unwrap()
                .iter()
                .any(|p| p.kind == PeeringKind::NodeSpecific)
        );
    }
}

#[test]
fn ipv6_peer_needs_a_local_ipv6_address() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: v6-tor}\nspec: {peerIP: 'fd00:18::1', asNumber: 65001}\n",
    );
    assert!(!peer_set(&c, "n1").iter().any(|s| s.contains("v6-tor")));
    let n2: Vec<_> = c
        .bgp_peerings("n2")
        .unwrap()
        .into_iter()
        .filter(|p| p.peer_address.is_ipv6())
        .collect();
    assert_eq!(n2.len(), 1);
    assert_eq!(n2[0].local_address.to_string(), "fd00:18:1::9");
}

#[test]
fn ttl_security_zero_means_off() {
    let c = with_nodes(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 198.18.0.1, asNumber: 65001, ttlSecurity: 0}\n",
    );
    let p = c.bgp_peerings("n1").unwrap();
    assert_eq!(
        p.iter()
            .find(|p| p.kind == PeeringKind::Global)
            .unwrap()
            .ttl_security,
        None
    );
}

#[test]
fn node_without_bgp_has_no_peers() {
    let c =
        yaml_ok("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: policy-only}\n");
    assert_eq!(c.bgp_peerings("policy-only").unwrap(), Vec::new());
}

#[test]
fn peers_of_an_unknown_node_is_an_error() {
    assert_eq!(cluster().bgp_peerings("node-z").unwrap_err().name, "node-z");
}

fn secrets_dir(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tortie-secrets-{test}-{}", std::process::id()));
    std::fs::create_dir_all(d.join("bgp-passwords")).unwrap();
    d
}

#[test]
fn secret_key_ref_maps_to_a_file_under_secrets_dir() {
    let c = cluster();
    let tor = &c.bgp_peers["tor"].resource.spec;
    let r = &tor.password.as_ref().unwrap().secret_key_ref;
    assert_eq!(
        r.path(std::path::Path::new("/etc/tortie/secrets")),
        std::path::Path::new("/etc/tortie/secrets/bgp-passwords/tor")
    );
}

#[test]
fn password_file_is_read_without_trailing_newline() {
    let dir = secrets_dir("read");
    std::fs::write(dir.join("bgp-passwords/tor"), "s3cret\n").unwrap();
    let c = cluster();
    let r = &c.bgp_peers["tor"]
        .resource
        .spec
        .password
        .as_ref()
        .unwrap()
        .secret_key_ref;
    let pw = read_password(r, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(pw.unwrap().as_deref(), Some("s3cret"));
}

#[test]
fn missing_password_file_is_reported_clearly() {
    let dir = secrets_dir("missing");
    let c = cluster();
    let r = &c.bgp_peers["tor"]
        .resource
        .spec
        .password
        .as_ref()
        .unwrap()
        .secret_key_ref;
    let err = read_password(r, &dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(err, SecretError::Missing { .. }));
    let shown = err.to_string();
    assert!(
        shown.contains("bgp-passwords/tor does not exist"),
        "{shown}"
    );
    assert!(
        shown.contains("secretKeyRef {name: \"bgp-passwords\", key: \"tor\"}"),
        "{shown}"
    );
}

#[test]
fn optional_missing_password_means_none() {
    let c = yaml_ok(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 198.18.0.1, asNumber: 1, password: {secretKeyRef: {name: s, key: k, optional: true}}}\n",
    );
    let r = &c.bgp_peers["p"]
        .resource
        .spec
        .password
        .as_ref()
        .unwrap()
        .secret_key_ref;
    let dir = secrets_dir("optional");
    let pw = read_password(r, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(pw.unwrap(), None);
}

#[test]
fn password_longer_than_80_bytes_is_refused() {
    let dir = secrets_dir("long");
    std::fs::write(dir.join("bgp-passwords/tor"), "x".repeat(81)).unwrap();
    let c = cluster();
    let r = &c.bgp_peers["tor"]
        .resource
        .spec
        .password
        .as_ref()
        .unwrap()
        .secret_key_ref;
    let err = read_password(r, &dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(err, SecretError::TooLong { len: 81, .. }), "{err}");
}

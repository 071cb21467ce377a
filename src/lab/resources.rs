//! The lab's cluster configuration as Calico v3 YAML: one Node per node, the `default`
//! BGPConfiguration, the pod pool, and the BGPPeers of the chosen peering model.
//!
//! The lab loads this file with `tortie apply`, as an operator would with calicoctl, so the
//! agents run from exactly what a real cluster would hold. The shapes follow Calico's
//! documentation: the route reflector setup is the documented `peer-with-rr` BGPPeer with
//! `peerSelector: route-reflector == 'true'`, the ToR model gives every node its own AS and a
//! BGPPeer per rack pointing at that rack's gateway.

use super::topology::{
    CLUSTER_AS, Encap, POOL_BLOCK_SIZE, POOL_CIDR, POOL_NAME, RR_CLUSTER_ID, TOR_AS, Topology,
};
use serde::Serialize;
use std::collections::BTreeMap;
use tortie_ipam::{EncapMode, PoolSpec};

const API_VERSION: &str = "projectcalico.org/v3";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resource<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct NodeSpec {
    bgp: NodeBgp,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeBgp {
    ipv4_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_number: Option<u32>,
    #[serde(
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    route_reflector_cluster_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BgpConfigurationSpec {
    as_number: u32,
    node_to_node_mesh_enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BgpPeerSpec {
    node_selector: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_selector: Option<String>,
    #[serde(rename = "peerIP", skip_serializing_if = "Option::is_none")]
    peer_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_number: Option<u32>,
}

/// The pod pool's spec; also what the lab allocates pod addresses from.
pub fn pool_spec(encap: Encap) -> PoolSpec {
    let (ipip, vxlan) = match encap {
        Encap::Vxlan => (EncapMode::Never, EncapMode::CrossSubnet),
        Encap::Ipip => (EncapMode::CrossSubnet, EncapMode::Never),
        Encap::None => (EncapMode::Never, EncapMode::Never),
    };
    PoolSpec {
        cidr: POOL_CIDR.to_string(),
        block_size: Some(POOL_BLOCK_SIZE),
        ipip_mode: Some(ipip),
        vxlan_mode: Some(vxlan),
        ..PoolSpec::default()
    }
}

fn meta(name: &str, labels: &[(&str, &str)]) -> Metadata {
    Metadata {
        name: name.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn doc<S: Serialize>(kind: &'static str, metadata: Metadata, spec: S) -> Result<String, String> {
    serde_yaml_ng::to_string(&Resource {
        api_version: API_VERSION,
        kind,
        metadata,
        spec,
    })
    .map_err(|e| format!("{kind}: {e}"))
}

/// The whole configuration, documents separated by `---`.
pub fn cluster_yaml(t: &Topology) -> Result<String, String> {
    let tor = t.spec.tor.is_some();
    let mut docs = Vec::new();
    for n in &t.nodes {
        let mut labels = vec![("rack", n.rack.label())];
        if n.route_reflector {
            labels.push(("route-reflector", "true"));
        }
        let spec = NodeSpec {
            bgp: NodeBgp {
                ipv4_address: n.cidr(),
                as_number: tor.then_some(n.as_number),
                route_reflector_cluster_id: n.route_reflector.then(|| RR_CLUSTER_ID.to_string()),
            },
        };
        docs.push(doc("Node", meta(&n.name, &labels), spec)?);
    }
    docs.push(doc(
        "BGPConfiguration",
        meta("default", &[]),
        BgpConfigurationSpec {
            as_number: CLUSTER_AS,
            // The mesh is replaced by the reflector or by the ToR sessions.
            node_to_node_mesh_enabled: !(t.spec.route_reflector || tor),
        },
    )?);
    docs.push(doc(
        "IPPool",
        meta(POOL_NAME, &[]),
        pool_spec(t.spec.encap),
    )?);
    if t.spec.route_reflector {
        docs.push(doc(
            "BGPPeer",
            meta("peer-with-rr", &[]),
            BgpPeerSpec {
                node_selector: "all()".into(),
                peer_selector: Some("route-reflector == 'true'".into()),
                peer_ip: None,
                as_number: None,
            },
        )?);
    }
    if tor {
        for rack in t.racks() {
            docs.push(doc(
                "BGPPeer",
                meta(&format!("tor-rack-{}", rack.label()), &[]),
                BgpPeerSpec {
                    node_selector: format!("rack == '{}'", rack.label()),
                    peer_selector: None,
                    peer_ip: Some(rack.gateway().to_string()),
                    as_number: Some(TOR_AS),
                },
            )?);
        }
    }
    Ok(docs.join("---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lab::topology::{LabSpec, Tor};
    use std::net::{IpAddr, Ipv4Addr};

    fn topology(route_reflector: bool, tor: Option<Tor>, encap: Encap) -> Topology {
        Topology::plan(&LabSpec {
            name: "tlab".into(),
            nodes: 4,
            pods_per_node: 2,
            encap,
            route_reflector,
            tor,
        })
        .unwrap()
    }

    /// The generated YAML, loaded by tortie's own configuration loader.
    fn load(t: &Topology) -> Config {
        let yaml = cluster_yaml(t).unwrap();
        Config::from_texts(&[("cluster.yaml", &yaml)])
            .unwrap_or_else(|e| panic!("generated YAML refused:\n{e}\n{yaml}"))
    }

    /// For every node: the peer addresses Calico's rules give it, against the lab's
    /// expectation (what `lab up` waits for).
    fn assert_sessions_match_the_topology(t: &Topology) {
        let cfg = load(t);
        for n in &t.nodes {
            let mut got: Vec<IpAddr> = cfg
                .bgp_peerings(&n.name)
                .unwrap()
                .iter()
                .map(|p| p.peer_address)
                .collect();
            got.sort();
            let mut want: Vec<IpAddr> = t.expected_peers(n).into_iter().map(IpAddr::V4).collect();
            want.sort();
            assert_eq!(got, want, "sessions of {}", n.name);
        }
    }

    #[test]
    fn full_mesh_yaml_gives_every_node_a_session_to_every_other() {
        let t = topology(false, None, Encap::Vxlan);
        assert_sessions_match_the_topology(&t);
        assert!(load(&t).mesh_enabled());
    }

    #[test]
    fn route_reflector_yaml_makes_node1_the_reflector_of_the_others() {
        let t = topology(true, None, Encap::Vxlan);
        assert_sessions_match_the_topology(&t);
        let cfg = load(&t);
        assert!(!cfg.mesh_enabled());
        let node1 = cfg.node("node1").unwrap();
        let bgp = cfg.node_bgp(node1).unwrap();
        assert_eq!(bgp.route_reflector_cluster_id, Some(RR_CLUSTER_ID));
        assert!(
            cfg.bgp_peerings("node1")
                .unwrap()
                .iter()
                .all(|p| p.route_reflector_client)
        );
        assert!(cfg.bgp_peers.contains_key("peer-with-rr"));
    }

    #[test]
    fn tor_yaml_peers_each_node_with_its_gateway_over_ebgp_from_its_own_as() {
        let t = topology(false, Some(Tor::Bird), Encap::Vxlan);
        assert_sessions_match_the_topology(&t);
        let cfg = load(&t);
        let p = cfg.bgp_peerings("node2").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].peer_address, IpAddr::V4(Ipv4Addr::new(198, 18, 2, 1)));
        assert_eq!(p[0].peer_as, TOR_AS);
        assert_eq!(p[0].local_as, 64602);
    }

    #[test]
    fn nodes_carry_their_rack_label_and_underlay_address() {
        let t = topology(false, None, Encap::Vxlan);
        let cfg = load(&t);
        let node2 = cfg.node("node2").unwrap();
        assert_eq!(
            node2
                .resource
                .metadata
                .labels
                .get("rack")
                .map(String::as_str),
            Some("b")
        );
        let bgp = cfg.node_bgp(node2).unwrap();
        assert_eq!(
            bgp.ipv4.map(|n| n.to_string()).as_deref(),
            Some("198.18.2.12/24")
        );
    }

    #[test]
    fn the_pool_carries_the_chosen_encapsulation_in_cross_subnet_mode() {
        for (encap, ipip, vxlan) in [
            (Encap::Vxlan, "Never", "CrossSubnet"),
            (Encap::Ipip, "CrossSubnet", "Never"),
        ] {
            let yaml = cluster_yaml(&topology(false, None, encap)).unwrap();
            assert!(yaml.contains(&format!("ipipMode: {ipip}")), "{yaml}");
            assert!(yaml.contains(&format!("vxlanMode: {vxlan}")), "{yaml}");
            let cfg = load(&topology(false, None, encap));
            assert!(cfg.ip_pools.contains_key(POOL_NAME));
        }
    }

    #[test]
    fn the_pool_spec_is_a_valid_ipam_pool_of_26_blocks() {
        let pool = tortie_ipam::Pool::from_spec(POOL_NAME, &pool_spec(Encap::Vxlan)).unwrap();
        assert_eq!(pool.block_size, 26);
        assert_eq!(pool.cidr.to_string(), POOL_CIDR);
        assert_eq!(pool.vxlan_mode, EncapMode::CrossSubnet);
    }
}

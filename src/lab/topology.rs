//! The lab's shape as plain data: which namespaces, addresses, links and pods a lab of a given
//! size has, computed before anything is created.
//!
//! Everything here is a pure function of [`LabSpec`], so `up`, `status` and `down` agree on
//! names without asking the kernel, and a `down` after a half-finished `up` knows what to look
//! for. Nodes alternate between two subnets joined by the router namespace (node1 in A, node2
//! in B, ...), so half of the node pairs are cross-subnet: the case CrossSubnet encapsulation
//! and the ToR model exist for.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

/// The lab name when `--name` is not given.
pub const DEFAULT_NAME: &str = "tlab";
/// Most nodes a lab may have: node addresses are 198.18.{1,2}.(10 + index).
pub const MAX_NODES: u16 = 200;
/// Most pods per node (each is a namespace and a veth pair).
pub const MAX_PODS: u16 = 50;
/// Calico's default AS, used by every node unless the ToR model gives each its own.
pub const CLUSTER_AS: u32 = 64512;
/// The ToR router's AS (`--tor bird`).
pub const TOR_AS: u32 = 65000;
/// Node N's AS under `--tor bird` is this plus N (AS-per-compute-server).
pub const NODE_AS_BASE: u32 = 64600;
/// The pod pool's name and range (design.md: pods live in 198.19.0.0/16).
pub const POOL_NAME: &str = "lab-pool";
pub const POOL_CIDR: &str = "198.19.0.0/16";
pub const POOL_BLOCK_SIZE: u8 = 26;
/// The route reflector's cluster id (`--route-reflector`), as in Calico's documentation.
pub const RR_CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(244, 0, 0, 1);
/// The Kubernetes namespace recorded on the lab's IPAM allocations.
pub const POD_K8S_NAMESPACE: &str = "lab";
/// The link-local gateway every pod routes through (Calico's scheme: the host side of the
/// veth answers ARP for it by proxy ARP).
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Pod encapsulation between nodes of different subnets (`--encap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    /// VXLAN between subnets (`vxlanMode: CrossSubnet`).
    Vxlan,
    /// IP-in-IP between subnets (`ipipMode: CrossSubnet`); needs the kernel's ipip module.
    Ipip,
    /// No encapsulation: the router must know the pod routes (needs `--tor bird`).
    None,
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encap::Vxlan => "vxlan",
            Encap::Ipip => "ipip",
            Encap::None => "none",
        })
    }
}

/// What plays the top-of-rack router (`--tor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tor {
    /// BIRD 2 in the router namespace, peering with every node over eBGP.
    Bird,
}

/// One of the two underlay subnets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rack {
    A,
    B,
}

impl Rack {
    pub fn subnet(self) -> Ipv4Net {
        let third = self.third_octet();
        // A /24 built from constant octets is always valid.
        Ipv4Net::new(Ipv4Addr::new(198, 18, third, 0), 24).unwrap_or_default()
    }

    /// The router's address in this subnet, the nodes' default gateway.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.third_octet(), 1)
    }

    /// The bridge in the router namespace that is this subnet's L2 segment.
    pub fn bridge(self) -> &'static str {
        match self {
            Rack::A => "br-a",
            Rack::B => "br-b",
        }
    }

    /// The value of the nodes' `rack` label.
    pub fn label(self) -> &'static str {
        match self {
            Rack::A => "a",
            Rack::B => "b",
        }
    }

    fn third_octet(self) -> u8 {
        match self {
            Rack::A => 1,
            Rack::B => 2,
        }
    }
}

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    pub name: String,
    pub nodes: u16,
    pub pods_per_node: u16,
    pub encap: Encap,
    pub route_reflector: bool,
    pub tor: Option<Tor>,
}

/// A lab that cannot be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "lab name {0:?}: use 1 to 20 characters, lowercase letters, digits and '-', starting with a letter"
    )]
    Name(String),
    #[error("--nodes {0}: a lab has 1 to {MAX_NODES} nodes")]
    Nodes(u16),
    #[error("--pods {0}: a node has 0 to {MAX_PODS} pods")]
    Pods(u16),
    #[error(
        "--encap none needs --tor bird: without encapsulation the router between the subnets must know the pod routes, and only a BGP-speaking router learns them"
    )]
    NoneWithoutTor,
    #[error("--route-reflector and --tor bird are two different peering models: choose one")]
    ReflectorAndTor,
    #[error("pods {0} and {1} would get the same veth name {2}; rename the lab")]
    VethClash(String, String, String),
}

/// One node of the lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// 1-based.
    pub index: u16,
    /// The Calico Node name (`node1`, ...), also the agent's `--node`.
    pub name: String,
    pub namespace: String,
    pub rack: Rack,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// The router-side end of the node's veth (its `eth0` is the other end).
    pub router_port: String,
    /// The node's own AS under the ToR model; the cluster AS otherwise.
    pub as_number: u32,
    /// Node1 reflects routes for the others (`--route-reflector`).
    pub route_reflector: bool,
}

impl NodePlan {
    /// `198.18.x.y/24`, as the Node resource's `spec.bgp.ipv4Address`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.address, self.prefix_len)
    }
}

/// One pod of the lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPlan {
    /// `node1-pod1`: unique in the lab; its namespace adds the lab prefix.
    pub name: String,
    pub node: String,
    /// 1-based within its node.
    pub index: u16,
    pub namespace: String,
    /// The host-side end of the pod's veth in the node namespace, as the CNI plugin names it.
    pub veth: String,
    /// The IPAM handle of the pod's address, as Calico's CNI plugin names them.
    pub handle: String,
}

/// Every name and address of a lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub spec: LabSpec,
    pub router_namespace: String,
    pub nodes: Vec<NodePlan>,
    pub pods: Vec<PodPlan>,
}

/// Checks a lab name: it prefixes namespace names, so it is kept short and shell-safe.
pub fn check_name(name: &str) -> Result<(), TopologyError> {
    let ok = (1..=20).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(TopologyError::Name(name.to_string()))
    }
}

impl LabSpec {
    pub fn validate(&self) -> Result<(), TopologyError> {
        check_name(&self.name)?;
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return Err(TopologyError::Nodes(self.nodes));
        }
        if self.pods_per_node > MAX_PODS {
            return Err(TopologyError::Pods(self.pods_per_node));
        }
        if self.encap == Encap::None && self.tor.is_none() {
            return Err(TopologyError::NoneWithoutTor);
        }
        if self.route_reflector && self.tor.is_some() {
            return Err(TopologyError::ReflectorAndTor);
        }
        Ok(())
    }

    /// A one-line description for progress output.
    pub fn describe(&self) -> String {
        let peering = match (self.tor, self.route_reflector) {
            (Some(Tor::Bird), _) => "eBGP to a BIRD ToR (one AS per node)",
            (None, true) => "node1 as route reflector",
            (None, false) => "full mesh",
        };
        let encap = match self.encap {
            Encap::Vxlan => "VXLAN CrossSubnet",
            Encap::Ipip => "IPIP CrossSubnet",
            Encap::None => "no encapsulation",
        };
        format!(
            "{} node(s), {} pod(s) each, {encap}, {peering}",
            self.nodes, self.pods_per_node
        )
    }
}

/// The router namespace's name.
pub fn router_namespace(lab: &str) -> String {
    format!("{lab}-router")
}

/// The scratch namespace used to probe for IPIP support.
pub fn probe_namespace(lab: &str) -> String {
    format!("{lab}-probe")
}

/// Whether `ns` is a namespace a lab called `lab` creates (router, nodes, pods, probe).
pub fn is_lab_namespace(lab: &str, ns: &str) -> bool {
    let Some(rest) = ns.strip_prefix(lab).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    if rest == "router" || rest == "probe" {
        return true;
    }
    let Some(node) = rest.strip_prefix("node") else {
        return false;
    };
    let (num, pod) = match node.split_once("-pod") {
        Some((n, p)) => (n, Some(p)),
        None => (node, None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    digits(num) && pod.is_none_or(digits)
}

/// The host-side veth the CNI plugin creates for a pod's container id (its stable name).
pub fn veth_name(container_id: &str) -> String {
    crate::cni::veth::host_veth_name(container_id)
}

impl Topology {
    pub fn plan(spec: &LabSpec) -> Result<Topology, TopologyError> {
        spec.validate()?;
        let lab = &spec.name;
        let mut nodes = Vec::with_capacity(usize::from(spec.nodes));
        let mut pods = Vec::new();
        for index in 1..=spec.nodes {
            let rack = if index % 2 == 1 { Rack::A } else { Rack::B };
            let gateway = rack.gateway();
            let [a, b, c, _] = gateway.octets();
            // 10 + index stays below 255 because index <= MAX_NODES.
            let host = u8::try_from(10 + index).unwrap_or(u8::MAX);
            let name = format!("node{index}");
            let as_number = if spec.tor.is_some() {
                NODE_AS_BASE + u32::from(index)
            } else {
                CLUSTER_AS
            };
            for p in 1..=spec.pods_per_node {
                let pod = format!("{name}-pod{p}");
                let container_id = format!("lab-{name}-{p}");
                pods.push(PodPlan {
                    namespace: format!("{lab}-{pod}"),
                    veth: veth_name(&container_id),
                    handle: format!("k8s-pod-network.{container_id}"),
                    node: name.clone(),
                    index: p,
                    name: pod,
                });
            }
            nodes.push(NodePlan {
                index,
                namespace: format!("{lab}-{name}"),
                router_port: format!("to-{name}"),
                name,
                rack,
                address: Ipv4Addr::new(a, b, c, host),
                prefix_len: 24,
                gateway,
                as_number,
                route_reflector: spec.route_reflector && index == 1,
            });
        }
        check_veths(&pods)?;
        Ok(Topology {
            spec: spec.clone(),
            router_namespace: router_namespace(lab),
            nodes,
            pods,
        })
    }

    /// The racks that have at least one node.
    pub fn racks(&self) -> Vec<Rack> {
        let mut out = Vec::new();
        for n in &self.nodes {
            if !out.contains(&n.rack) {
                out.push(n.rack);
            }
        }
        out
    }

    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every namespace of the lab, router first, pods last (the order of creation).
    pub fn namespaces(&self) -> Vec<String> {
        let mut out = vec![self.router_namespace.clone()];
        out.extend(self.nodes.iter().map(|n| n.namespace.clone()));
        out.extend(self.pods.iter().map(|p| p.namespace.clone()));
        out
    }

    /// The addresses a node's agent should have a session with, as the configuration the lab
    /// writes makes Calico's rules compute them: every other node in a full mesh; the
    /// reflector for a client and every client for the reflector; the gateway under the ToR
    /// model.
    pub fn expected_peers(&self, node: &NodePlan) -> Vec<Ipv4Addr> {
        if self.spec.tor.is_some() {
            return vec![node.gateway];
        }
        let others = self.nodes.iter().filter(|n| n.name != node.name);
        if self.spec.route_reflector && !node.route_reflector {
            return others
                .filter(|n| n.route_reflector)
                .map(|n| n.address)
                .collect();
        }
        others.map(|n| n.address).collect()
    }

    /// Which node (or the router) owns an underlay address, for messages.
    pub fn who_is(&self, addr: Ipv4Addr) -> String {
        if let Some(n) = self.nodes.iter().find(|n| n.address == addr) {
            return n.name.clone();
        }
        if self.racks().iter().any(|r| r.gateway() == addr) {
            return "router".to_string();
        }
        addr.to_string()
    }
}

fn check_veths(pods: &[PodPlan]) -> Result<(), TopologyError> {
    // Names only need to be unique inside one node namespace; a clash of the 44-bit hash is
    // refused rather than silently breaking a pod.
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for (i, p) in pods.iter().enumerate() {
        if !seen.insert((p.node.as_str(), p.veth.as_str())) {
            let other = pods[..i]
                .iter()
                .find(|q| q.node == p.node && q.veth == p.veth)
                .map(|q| q.name.clone())
                .unwrap_or_default();
            return Err(TopologyError::VethClash(
                other,
                p.name.clone(),
                p.veth.clone(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: u16) -> LabSpec {
        LabSpec {
            name: "tlab".into(),
            nodes,
            pods_per_node: 2,
            encap: Encap::Vxlan,
            route_reflector: false,
            tor: None,
        }
    }

    #[test]
    fn nodes_alternate_between_the_two_subnets_with_addresses_from_their_index() {
        let t = Topology::plan(&spec(4)).unwrap();
        let addrs: Vec<String> = t.nodes.iter().map(|n| n.cidr()).collect();
        assert_eq!(
            addrs,
            [
                "198.18.1.11/24",
                "198.18.2.12/24",
                "198.18.1.13/24",
                "198.18.2.14/24"
            ]
        );
        let gws: Vec<Ipv4Addr> = t.nodes.iter().map(|n| n.gateway).collect();
        assert_eq!(
            gws,
            [
                Ipv4Addr::new(198, 18, 1, 1),
                Ipv4Addr::new(198, 18, 2, 1),
                Ipv4Addr::new(198, 18, 1, 1),
                Ipv4Addr::new(198, 18, 2, 1)
            ]
        );
        assert!(t.nodes.iter().all(|n| n.rack.subnet().contains(&n.address)));
    }

    #[test]
    fn the_largest_lab_stays_inside_the_underlay_range() {
        let t = Topology::plan(&spec(MAX_NODES)).unwrap();
        let underlay: Ipv4Net = "198.18.0.0/15".parse().unwrap();
        assert_eq!(t.nodes.len(), 200);
        assert!(t.nodes.iter().all(|n| underlay.contains(&n.address)));
        assert_eq!(
            t.nodes.last().unwrap().address,
            Ipv4Addr::new(198, 18, 2, 210)
        );
    }

    #[test]
    fn namespaces_carry_the_lab_prefix_and_are_recognised_as_the_labs() {
        let t = Topology::plan(&spec(2)).unwrap();
        assert_eq!(
            t.namespaces(),
            [
                "tlab-router",
                "tlab-node1",
                "tlab-node2",
                "tlab-node1-pod1",
                "tlab-node1-pod2",
                "tlab-node2-pod1",
                "tlab-node2-pod2"
            ]
        );
        assert!(t.namespaces().iter().all(|ns| is_lab_namespace("tlab", ns)));
        assert!(is_lab_namespace("tlab", &probe_namespace("tlab")));
    }

    #[test]
    fn namespaces_of_other_labs_or_programs_are_not_the_labs() {
        for ns in [
            "tlab",
            "tlab-",
            "tlab-node",
            "tlab-nodex",
            "tlab-node1-pod",
            "tlab-node1-podx",
            "tlab2-node1",
            "tlabx-router",
            "other-router",
            "tlab-node1-pod1-x",
        ] {
            assert!(!is_lab_namespace("tlab", ns), "{ns}");
        }
    }

    #[test]
    fn pod_veths_are_short_enough_for_the_kernel_and_unique_per_node() {
        let mut s = spec(MAX_NODES);
        s.pods_per_node = MAX_PODS;
        let t = Topology::plan(&s).unwrap();
        assert!(
            t.pods
                .iter()
                .all(|p| p.veth.len() <= 15 && p.veth.starts_with("tortie"))
        );
        assert_eq!(t.pods[0].veth, veth_name("lab-node1-1"));
        assert_ne!(veth_name("lab-node1-1"), veth_name("lab-node1-2"));
    }

    #[test]
    fn pods_are_named_after_their_node_with_calico_style_handles() {
        let t = Topology::plan(&spec(1)).unwrap();
        let p = &t.pods[1];
        assert_eq!(p.name, "node1-pod2");
        assert_eq!(p.namespace, "tlab-node1-pod2");
        assert_eq!(p.handle, "k8s-pod-network.lab-node1-2");
    }

    #[test]
    fn a_full_mesh_node_expects_every_other_node() {
        let t = Topology::plan(&spec(3)).unwrap();
        assert_eq!(
            t.expected_peers(&t.nodes[0]),
            [Ipv4Addr::new(198, 18, 2, 12), Ipv4Addr::new(198, 18, 1, 13)]
        );
    }

    #[test]
    fn with_a_reflector_clients_expect_node1_and_node1_expects_every_client() {
        let mut s = spec(4);
        s.route_reflector = true;
        let t = Topology::plan(&s).unwrap();
        assert!(t.nodes[0].route_reflector && !t.nodes[1].route_reflector);
        assert_eq!(t.expected_peers(&t.nodes[0]).len(), 3);
        assert_eq!(
            t.expected_peers(&t.nodes[2]),
            [Ipv4Addr::new(198, 18, 1, 11)]
        );
    }

    #[test]
    fn under_the_tor_model_each_node_has_its_own_as_and_peers_with_its_gateway() {
        let mut s = spec(2);
        s.tor = Some(Tor::Bird);
        let t = Topology::plan(&s).unwrap();
        assert_eq!(t.nodes[0].as_number, 64601);
        assert_eq!(t.nodes[1].as_number, 64602);
        assert_eq!(
            t.expected_peers(&t.nodes[1]),
            [Ipv4Addr::new(198, 18, 2, 1)]
        );
    }

    #[test]
    fn encapsulation_none_without_a_tor_is_refused() {
        let mut s = spec(2);
        s.encap = Encap::None;
        assert_eq!(Topology::plan(&s), Err(TopologyError::NoneWithoutTor));
        s.tor = Some(Tor::Bird);
        assert!(Topology::plan(&s).is_ok());
    }

    #[test]
    fn node_and_pod_counts_outside_the_limits_are_refused() {
        assert_eq!(Topology::plan(&spec(0)), Err(TopologyError::Nodes(0)));
        assert_eq!(Topology::plan(&spec(201)), Err(TopologyError::Nodes(201)));
        let mut s = spec(1);
        s.pods_per_node = 51;
        assert_eq!(Topology::plan(&s), Err(TopologyError::Pods(51)));
    }

    #[test]
    fn lab_names_that_are_not_short_lowercase_words_are_refused() {
        for bad in [
            "",
            "Tlab",
            "1lab",
            "t lab",
            "t/lab",
            "a-very-long-lab-name-indeed",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("lab-2").is_ok());
    }
}

//! The `projectcalico.org/v3` resources tortie reads, field for field as Calico documents them
//! (docs.tigera.io, "Reference > Resources": Node, BGPConfiguration, BGPPeer, BGPFilter,
//! IPPool). Every struct denies unknown fields.

// Every documented field is parsed and validated, but many are read only by later work (the
// ones `status::FIELDS` lists as "accepted, not yet acted on").
#![allow(dead_code)]

use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;
use std::fmt;

use super::selector::Selector;
use super::values::{
    AllowedLocalAs, AsNumber, BlockSize, Cidr, Community, GoDuration, Ip, Ipv4Interface,
    Ipv6Interface, Mac, PeerAddress, Port, PrefixLen, Priority, TtlSecurity, V4, V6,
};

/// The only `apiVersion` accepted.
pub const API_VERSION: &str = "projectcalico.org/v3";

/// The resource kinds tortie reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Node,
    BgpConfiguration,
    BgpPeer,
    BgpFilter,
    IpPool,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Node,
        Kind::BgpConfiguration,
        Kind::BgpPeer,
        Kind::BgpFilter,
        Kind::IpPool,
    ];

    /// The `kind:` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::BgpConfiguration => "BGPConfiguration",
            Kind::BgpPeer => "BGPPeer",
            Kind::BgpFilter => "BGPFilter",
            Kind::IpPool => "IPPool",
        }
    }

    pub fn from_kind(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `apiVersion`, which must be `projectcalico.org/v3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiVersion;

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == API_VERSION {
            Ok(ApiVersion)
        } else {
            let hint = if s == "crd.projectcalico.org/v1" {
                " (that is the CRD storage form; write resources as calicoctl does)"
            } else {
                ""
            };
            Err(serde::de::Error::custom(format_args!(
                "invalid value: {s:?}, expected {API_VERSION}{hint}"
            )))
        }
    }
}

/// `metadata`: `name` is required; `labels` and `annotations` are kept; the fields a
/// datastore writes (`resourceVersion`, `uid`, `creationTimestamp`, ...) are accepted and
/// ignored so that `calicoctl get -o yaml` output loads as it is.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    namespace: Option<IgnoredAny>,
    #[serde(default)]
    resource_version: Option<IgnoredAny>,
    #[serde(default)]
    uid: Option<IgnoredAny>,
    #[serde(default)]
    creation_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    deletion_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<IgnoredAny>,
    #[serde(default)]
    generation: Option<IgnoredAny>,
    #[serde(default)]
    generate_name: Option<IgnoredAny>,
    #[serde(default)]
    self_link: Option<IgnoredAny>,
    #[serde(default)]
    managed_fields: Option<IgnoredAny>,
    #[serde(default)]
    owner_references: Option<IgnoredAny>,
    #[serde(default)]
    finalizers: Option<IgnoredAny>,
}

/// One resource: `apiVersion`, `kind`, `metadata`, `spec` (and, on a Node, the `status`
/// calico-node writes, which is ignored with a warning).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resource<S: Default> {
    pub api_version: ApiVersion,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: S,
    #[serde(default)]
    pub status: Option<IgnoredAny>,
}

impl<S: Default> Resource<S> {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.metadata.labels
    }
}

pub type Node = Resource<NodeSpec>;
pub type BgpConfiguration = Resource<BgpConfigurationSpec>;
pub type BgpPeer = Resource<BgpPeerSpec>;
pub type BgpFilter = Resource<BgpFilterSpec>;
pub type IpPool = Resource<IpPoolSpec>;

// ---------------------------------------------------------------------------------------------
// Node

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    pub bgp: Option<NodeBgpSpec>,
    #[serde(rename = "ipv4VXLANTunnelAddr")]
    pub ipv4_vxlan_tunnel_addr: Option<V4>,
    #[serde(rename = "vxlanTunnelMACAddr")]
    pub vxlan_tunnel_mac_addr: Option<Mac>,
    #[serde(rename = "ipv6VXLANTunnelAddr")]
    pub ipv6_vxlan_tunnel_addr: Option<V6>,
    #[serde(rename = "vxlanTunnelMACAddrV6")]
    pub vxlan_tunnel_mac_addr_v6: Option<Mac>,
    #[serde(default)]
    pub orch_refs: Vec<OrchRef>,
    pub wireguard: Option<NodeWireguardSpec>,
    /// Written by calico-node (Calico's Go API, not in the reference table).
    #[serde(default)]
    pub addresses: Vec<NodeAddress>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeBgpSpec {
    pub as_number: Option<AsNumber>,
    pub ipv4_address: Option<Ipv4Interface>,
    pub ipv6_address: Option<Ipv6Interface>,
    #[serde(rename = "ipv4IPIPTunnelAddr")]
    pub ipv4_ipip_tunnel_addr: Option<V4>,
    #[serde(rename = "routeReflectorClusterID")]
    pub route_reflector_cluster_id: Option<V4>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrchRef {
    pub node_name: Option<String>,
    pub orchestrator: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeWireguardSpec {
    #[serde(rename = "interfaceIPv4Address")]
    pub interface_ipv4_address: Option<Ipv4Interface>,
    #[serde(rename = "interfaceIPv6Address")]
    pub interface_ipv6_address: Option<Ipv6Interface>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeAddress {
    pub address: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// BGPConfiguration

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum LogSeverity {
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum BindMode {
    None,
    #[serde(rename = "NodeIP")]
    NodeIp,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpConfigurationSpec {
    pub log_severity_screen: Option<LogSeverity>,
    pub node_to_node_mesh_enabled: Option<bool>,
    pub as_number: Option<AsNumber>,
    #[serde(default, rename = "serviceClusterIPs")]
    pub service_cluster_ips: Vec<ServiceIpBlock>,
    #[serde(default, rename = "serviceExternalIPs")]
    pub service_external_ips: Vec<ServiceIpBlock>,
    #[serde(default, rename = "serviceLoadBalancerIPs")]
    pub service_load_balancer_ips: Vec<ServiceIpBlock>,
    pub listen_port: Option<Port>,
    pub bind_mode: Option<BindMode>,
    #[serde(default)]
    pub communities: Vec<NamedCommunity>,
    #[serde(default)]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    pub node_mesh_password: Option<BgpPassword>,
    pub node_mesh_max_restart_time: Option<GoDuration>,
    #[serde(default)]
    pub ignored_interfaces: Vec<String>,
    #[serde(rename = "localWorkloadPeeringIPV4")]
    pub local_workload_peering_ipv4: Option<V4>,
    #[serde(rename = "localWorkloadPeeringIPV6")]
    pub local_workload_peering_ipv6: Option<V6>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceIpBlock {
    pub cidr: Cidr,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedCommunity {
    pub name: String,
    pub value: Community,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixAdvertisement {
    pub cidr: Cidr,
    /// Community values (`aa:nn`, `aa:nn:mm`) or names from `communities`; checked later.
    #[serde(default)]
    pub communities: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// BGPPeer

/// `password`: where a BGP password comes from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpPassword {
    pub secret_key_ref: SecretKeyRef,
}

/// A Kubernetes `SecretKeySelector`; tortie maps it to a file, see [`super::secrets`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub optional: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum SourceAddress {
    #[serde(rename = "UseNodeIP")]
    UseNodeIp,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum NextHopMode {
    Auto,
    #[serde(rename = "Self")]
    SelfMode,
    Keep,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpPeerSpec {
    pub node: Option<String>,
    #[serde(rename = "peerIP")]
    pub peer_ip: Option<PeerAddress>,
    pub as_number: Option<AsNumber>,
    #[serde(rename = "localASNumber")]
    pub local_as_number: Option<AsNumber>,
    pub node_selector: Option<Selector>,
    pub peer_selector: Option<Selector>,
    pub local_workload_selector: Option<Selector>,
    pub keep_original_next_hop: Option<bool>,
    pub password: Option<BgpPassword>,
    pub source_address: Option<SourceAddress>,
    pub max_restart_time: Option<GoDuration>,
    #[serde(rename = "numAllowedLocalASNumbers")]
    pub num_allowed_local_as_numbers: Option<AllowedLocalAs>,
    pub ttl_security: Option<TtlSecurity>,
    #[serde(default)]
    pub filters: Vec<String>,
    pub reachable_by: Option<Ip>,
    pub next_hop_mode: Option<NextHopMode>,
}

impl BgpPeerSpec {
    /// `node`, unless empty (Calico treats `""` as unset).
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref().filter(|n| !n.is_empty())
    }

    pub fn node_selector(&self) -> Option<&Selector> {
        self.node_selector.as_ref().filter(|s| !s.is_blank())
    }

    pub fn peer_selector(&self) -> Option<&Selector> {
        self.peer_selector.as_ref().filter(|s| !s.is_blank())
    }

    pub fn local_workload_selector(&self) -> Option<&Selector> {
        self.local_workload_selector
            .as_ref()
            .filter(|s| !s.is_blank())
    }

    /// Global scope: neither `node` nor `nodeSelector`.
    pub fn is_global(&self) -> bool {
        self.node().is_none() && self.node_selector().is_none()
    }
}

// ---------------------------------------------------------------------------------------------
// BGPFilter

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpFilterSpec {
    #[serde(default, rename = "exportV4")]
    pub export_v4: Vec<FilterRule>,
    #[serde(default, rename = "importV4")]
    pub import_v4: Vec<FilterRule>,
    #[serde(default, rename = "exportV6")]
    pub export_v6: Vec<FilterRule>,
    #[serde(default, rename = "importV6")]
    pub import_v6: Vec<FilterRule>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum FilterAction {
    Accept,
    Reject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum MatchOperator {
    Equal,
    NotEqual,
    In,
    NotIn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum RouteSource {
    RemotePeers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum PeerType {
    #[serde(rename = "eBGP")]
    Ebgp,
    #[serde(rename = "iBGP")]
    Ibgp,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilterRule {
    pub cidr: Option<Cidr>,
    pub prefix_length: Option<PrefixLength>,
    pub match_operator: Option<MatchOperator>,
    pub source: Option<RouteSource>,
    pub interface: Option<String>,
    pub peer_type: Option<PeerType>,
    pub priority: Option<Priority>,
    pub communities: Option<CommunityMatch>,
    pub action: FilterAction,
    #[serde(default)]
    pub operations: Vec<FilterOperation>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixLength {
    pub min: Option<PrefixLen>,
    pub max: Option<PrefixLen>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityMatch {
    pub values: Vec<Community>,
}

/// One route modification; exactly one field must be set (checked later).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilterOperation {
    pub add_community: Option<AddCommunity>,
    #[serde(rename = "prependASPath")]
    pub prepend_as_path: Option<PrependAsPath>,
    pub set_priority: Option<SetPriority>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCommunity {
    pub value: Community,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrependAsPath {
    pub prefix: Vec<AsNumber>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPriority {
    pub value: Priority,
}

// ---------------------------------------------------------------------------------------------
// IPPool

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum EncapMode {
    Always,
    CrossSubnet,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum AllowedUse {
    Workload,
    Tunnel,
    LoadBalancer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum AssignmentMode {
    Automatic,
    Manual,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpPoolSpec {
    /// Required; `Option` only so that its absence is reported by validation with the path.
    pub cidr: Option<Cidr>,
    pub block_size: Option<BlockSize>,
    pub ipip_mode: Option<EncapMode>,
    pub vxlan_mode: Option<EncapMode>,
    pub nat_outgoing: Option<bool>,
    pub disabled: Option<bool>,
    #[serde(rename = "disableBGPExport")]
    pub disable_bgp_export: Option<bool>,
    pub node_selector: Option<Selector>,
    pub allowed_uses: Option<Vec<AllowedUse>>,
    pub assignment_mode: Option<AssignmentMode>,
}

impl IpPoolSpec {
    /// `blockSize`, or Calico's default: 26 for IPv4 pools, 122 for IPv6 pools.
    pub fn block_size_or_default(&self) -> Option<u8> {
        let cidr = self.cidr?;
        Some(match (self.block_size, cidr.0) {
            (Some(b), _) => b.0,
            (None, ipnet::IpNet::V4(_)) => 26,
            (None, ipnet::IpNet::V6(_)) => 122,
        })
    }

    pub fn ipip_mode(&self) -> EncapMode {
        self.ipip_mode.unwrap_or(EncapMode::Never)
    }

    pub fn vxlan_mode(&self) -> EncapMode {
        self.vxlan_mode.unwrap_or(EncapMode::Never)
    }

    /// `allowedUses`, defaulting to `[Workload, Tunnel]`.
    pub fn allowed_uses(&self) -> Vec<AllowedUse> {
        self.allowed_uses
            .clone()
            .unwrap_or_else(|| vec![AllowedUse::Workload, AllowedUse::Tunnel])
    }
}

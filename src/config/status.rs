//! What tortie does with each field: the one table to flip when a field starts to matter.
//!
//! Every `spec` field of every kind has an entry. A field whose status is
//! [`FieldStatus::NotYetActedOn`] is still parsed and validated, but when a document sets it,
//! loading adds a [`Warning`] naming the document and the field path, so nothing is silently
//! dropped. A field marked [`FieldStatus::ActedOn`] is one tortie honours: the agent (through
//! [`super::peers`] and the agent's wiring) or, for the IPPool fields that only choose where
//! pods get their addresses, `tortie-cni` (`src/cni/pools.rs`); a comment on the entry says
//! which when it is not the agent. When later work makes a field count, flip its entry here.
//!
//! Entries with children (`spec.bgp` of a Node) are containers: the walk descends into them
//! and looks up each child.

use serde_yaml_ng::Value;
use std::fmt;

use super::error::{Source, Warning};
use super::types::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldStatus {
    ActedOn,
    NotYetActedOn,
}

impl fmt::Display for FieldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldStatus::ActedOn => "acted on",
            FieldStatus::NotYetActedOn => "accepted, not yet acted on",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldEntry {
    pub kind: Kind,
    /// Dotted path from the resource's root, e.g. `spec.bgp.asNumber`.
    pub path: &'static str,
    pub status: FieldStatus,
}

const fn acted(kind: Kind, path: &'static str) -> FieldEntry {
    FieldEntry {
        kind,
        path,
        status: FieldStatus::ActedOn,
    }
}

const fn later(kind: Kind, path: &'static str) -> FieldEntry {
    FieldEntry {
        kind,
        path,
        status: FieldStatus::NotYetActedOn,
    }
}

use Kind::{BgpConfiguration as Cfg, BgpFilter as Filter, BgpPeer as Peer, IpPool as Pool, Node};

/// The table.
pub static FIELDS: &[FieldEntry] = &[
    // Node
    acted(Node, "spec.bgp"),
    acted(Node, "spec.bgp.asNumber"),
    acted(Node, "spec.bgp.ipv4Address"),
    acted(Node, "spec.bgp.ipv6Address"),
    acted(Node, "spec.bgp.routeReflectorClusterID"),
    later(Node, "spec.bgp.ipv4IPIPTunnelAddr"),
    later(Node, "spec.ipv4VXLANTunnelAddr"),
    later(Node, "spec.vxlanTunnelMACAddr"),
    later(Node, "spec.ipv6VXLANTunnelAddr"),
    later(Node, "spec.vxlanTunnelMACAddrV6"),
    later(Node, "spec.orchRefs"),
    later(Node, "spec.wireguard"),
    later(Node, "spec.addresses"),
    later(Node, "status"),
    // BGPConfiguration
    acted(Cfg, "spec.asNumber"),
    acted(Cfg, "spec.listenPort"),
    acted(Cfg, "spec.nodeToNodeMeshEnabled"),
    acted(Cfg, "spec.bindMode"), // the agent's listening sockets (src/agent/plan.rs)
    later(Cfg, "spec.logSeverityScreen"),
    acted(Cfg, "spec.serviceClusterIPs"),
    acted(Cfg, "spec.serviceExternalIPs"),
    acted(Cfg, "spec.serviceLoadBalancerIPs"),
    acted(Cfg, "spec.communities"),
    acted(Cfg, "spec.prefixAdvertisements"),
    acted(Cfg, "spec.nodeMeshPassword"), // the mesh sessions' TCP MD5 key (src/config/peers.rs)
    acted(Cfg, "spec.nodeMeshMaxRestartTime"), // the mesh sessions' graceful-restart time
    later(Cfg, "spec.ignoredInterfaces"),
    later(Cfg, "spec.localWorkloadPeeringIPV4"),
    later(Cfg, "spec.localWorkloadPeeringIPV6"),
    // BGPPeer
    acted(Peer, "spec.node"),
    acted(Peer, "spec.peerIP"),
    acted(Peer, "spec.asNumber"),
    acted(Peer, "spec.nodeSelector"),
    acted(Peer, "spec.peerSelector"),
    acted(Peer, "spec.password"),
    acted(Peer, "spec.sourceAddress"),
    acted(Peer, "spec.maxRestartTime"),
    acted(Peer, "spec.ttlSecurity"),
    later(Peer, "spec.localASNumber"),
    later(Peer, "spec.localWorkloadSelector"),
    acted(Peer, "spec.keepOriginalNextHop"),
    acted(Peer, "spec.nextHopMode"),
    acted(Peer, "spec.numAllowedLocalASNumbers"),
    acted(Peer, "spec.filters"),
    later(Peer, "spec.reachableBy"),
    // BGPFilter
    acted(Filter, "spec.exportV4"),
    acted(Filter, "spec.importV4"),
    acted(Filter, "spec.exportV6"),
    acted(Filter, "spec.importV6"),
    // IPPool
    acted(Pool, "spec.cidr"),
    acted(Pool, "spec.blockSize"),
    acted(Pool, "spec.ipipMode"),
    acted(Pool, "spec.vxlanMode"),
    acted(Pool, "spec.natOutgoing"),
    acted(Pool, "spec.disabled"),
    acted(Pool, "spec.disableBGPExport"),
    // Used by tortie-cni (src/cni/pools.rs), not by the agent: which pools a node's pods draw
    // addresses from (nodeSelector against the Node's labels, allowedUses containing
    // Workload; tortie allocates no LoadBalancer addresses).
    acted(Pool, "spec.nodeSelector"),
    acted(Pool, "spec.allowedUses"),
    later(Pool, "spec.assignmentMode"),
];

/// The status of one field, by kind and dotted path.
pub fn field_status(kind: Kind, path: &str) -> Option<FieldStatus> {
    FIELDS
        .iter()
        .find(|e| e.kind == kind && e.path == path)
        .map(|e| e.status)
}

/// The whole table for one kind, in table order.
pub fn fields_of(kind: Kind) -> impl Iterator<Item = &'static FieldEntry> {
    FIELDS.iter().filter(move |e| e.kind == kind)
}

fn has_children(kind: Kind, path: &str) -> bool {
    FIELDS.iter().any(|e| {
        e.kind == kind
            && e.path.len() > path.len()
            && e.path.starts_with(path)
            && e.path.as_bytes()[path.len()] == b'.'
    })
}

/// Warnings for every field a resource sets whose status is "not yet acted on". `doc` is the
/// resource's raw YAML (already known to deserialize); `status` and `spec` are looked at.
pub(crate) fn warnings_for(
    kind: Kind,
    name: &str,
    source: &Source,
    doc: &Value,
    out: &mut Vec<Warning>,
) {
    let Value::Mapping(root) = doc else { return };
    for top in ["spec", "status"] {
        if let Some(value) = root.get(top) {
            if value.is_null() {
                continue;
            }
            if top == "spec" {
                walk(kind, name, source, "spec", value, out);
            } else {
                visit(kind, name, source, top, value, out);
            }
        }
    }
}

fn walk(
    kind: Kind,
    name: &str,
    source: &Source,
    path: &str,
    value: &Value,
    out: &mut Vec<Warning>,
) {
    let Value::Mapping(map) = value else { return };
    for (key, child) in map {
        let Some(key) = key.as_str() else { continue };
        if child.is_null() {
            continue;
        }
        let child_path = format!("{path}.{key}");
        visit(kind, name, source, &child_path, child, out);
    }
}

fn visit(
    kind: Kind,
    name: &str,
    source: &Source,
    path: &str,
    value: &Value,
    out: &mut Vec<Warning>,
) {
    let reason = match field_status(kind, path) {
        Some(FieldStatus::ActedOn) => {
            if has_children(kind, path) {
                walk(kind, name, source, path, value, out);
            }
            return;
        }
        Some(status @ FieldStatus::NotYetActedOn) => status.to_string(),
        // Unreachable for documents that deserialized (every field has an entry, a test
        // checks it); reported rather than dropped all the same.
        None => "accepted, no status recorded (not acted on)".to_string(),
    };
    out.push(Warning {
        source: source.clone(),
        kind,
        name: name.to_string(),
        field: path.to_string(),
        reason,
    });
}

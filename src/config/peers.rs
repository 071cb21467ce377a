//! Which BGP sessions a node has, computed the way Calico's confd does (read from
//! `confd/pkg/backends/calico/client.go` `updatePeersV1` and `bird.cfg.template`):
//!
//! * **Local AS**: the Node's `spec.bgp.asNumber`, else the `default` BGPConfiguration's
//!   `asNumber`, else 64512. **Listen port**: `node.<name>`'s `listenPort`, else `default`'s,
//!   else 179 (a `node.<name>` `asNumber` is ignored, as in Calico).
//! * **Full mesh** (`nodeToNodeMeshEnabled`, default true): a session to every other node over
//!   each family both have an address in (IPv4 between `ipv4Address`es, IPv6 between
//!   `ipv6Address`es), to the other node's listen port and AS. A node with
//!   `routeReflectorClusterID` takes no part in the mesh at all: it has no mesh sessions, and
//!   the others skip it ("This node is configured as a route reflector ...; ignore node-to-node
//!   mesh setting" and "Skipping ... as it is a route reflector" in Calico's template). Route
//!   reflectors therefore peer with their clients and with each other only through BGPPeers.
//! * **BGPPeers**, in three passes over the resources sorted by name (Calico iterates a Go
//!   map, so its order among conflicting resources is unspecified): global ones (no `node`,
//!   no `nodeSelector`), then node-specific ones (`node: N`, or `nodeSelector` matching N),
//!   then the *reverse* peerings Calico adds for symmetry: when N is the remote end of a
//!   BGPPeer (N matches its `peerSelector`, or N's address, AS and listen port match its
//!   `peerIP`/`asNumber`), N peers back with the nodes on its local side. The first peering
//!   to a given (address, port) wins. A `peerSelector` yields every matching node's IPv4 and
//!   IPv6 address, with that node's AS and listen port. A `peerIP` without a port that is
//!   some node's address with a matching AS uses that node's listen port.
//! * An explicit BGPPeer peering and a mesh peering to the same (address, port) would be two
//!   sessions to one neighbour in BIRD; here the BGPPeer one wins (Calico asks users to turn
//!   the mesh off before peering nodes with BGPPeers).
//! * Never to itself: a peering to one of the node's own addresses, or to the node by name,
//!   is dropped; so is any peering in a family the node has no address in.
//! * **Passive side**: between two Calico nodes one side only connects. As in Calico's
//!   template (`{{if gt $onode_ip $node_ip}} passive on`, a *string* comparison of the
//!   address texts, kept as is so that tortie and calico-node agree in a mixed cluster), a
//!   node is passive towards every node whose address text sorts after its own: the node
//!   with the lexically lower address waits, the higher one connects. Peers outside the
//!   cluster (ToRs) are never passive.
//! * **Route reflection**: a node with `routeReflectorClusterID` treats an iBGP peer as its
//!   route-reflector client unless the peer is a reflector of the same cluster.
//! * **Password and graceful-restart time**: a BGPPeer's sessions take its `password` and
//!   `maxRestartTime`; mesh sessions take the `default` BGPConfiguration's `nodeMeshPassword`
//!   and `nodeMeshMaxRestartTime` (Calico's `node_mesh_password` and `node_mesh_restart_time`;
//!   a `node.<name>` BGPConfiguration's are ignored, and the loader says so). Both kinds
//!   then go the same way: the agent reads the secret file and announces the time.
//!
//! Only fields whose status is "acted on" (see [`super::status`]) shape the result:
//! `localASNumber`, `localWorkloadSelector` and `reachableBy` are accepted but not applied
//! yet (the loader warns about them).

use ipnet::{Ipv4Net, Ipv6Net};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::types::{BgpPeer, NextHopMode, SecretKeyRef, SourceAddress};
use super::{Config, Located, Node, UnknownNode};

/// Calico's default AS number.
pub const DEFAULT_AS: u32 = 64512;
/// The BGP port.
pub const DEFAULT_PORT: u16 = 179;

/// Why a peering exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeeringKind {
    /// The automatic node-to-node mesh.
    NodeMesh,
    /// A BGPPeer with a `peerIP` and global scope (no `node`, no `nodeSelector`).
    Global,
    /// A BGPPeer with a `peerIP` for this node (`node` or `nodeSelector`), or the reverse of
    /// a `peerIP` BGPPeer that names this node's address.
    NodeSpecific,
    /// A node chosen by a BGPPeer's `peerSelector` (or the reverse of one).
    SelectedNode,
}

/// One BGP session a node should have, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpPeering {
    pub kind: PeeringKind,
    /// The BGPPeer resource it comes from (None for the mesh).
    pub bgp_peer: Option<String>,
    /// Added by Calico's reverse-peering pass (this node is the BGPPeer's remote end).
    pub reverse: bool,
    /// The remote node's name when the peer is a node of this cluster.
    pub peer_node: Option<String>,
    pub peer_address: IpAddr,
    pub port: u16,
    pub peer_as: u32,
    pub local_as: u32,
    /// This node's own address in the peer's family.
    pub local_address: IpAddr,
    /// `UseNodeIP`: bind the session to `local_address`; `None`: let the kernel choose.
    pub source_address: SourceAddress,
    /// Where the password comes from (see [`super::secrets`]): the BGPPeer's `password`, or
    /// `nodeMeshPassword` for the mesh.
    pub password: Option<SecretKeyRef>,
    /// GTSM hop count (`ttlSecurity`; None or 0 in the resource = off).
    pub ttl_security: Option<u8>,
    /// Graceful-restart time to announce (`maxRestartTime`, or `nodeMeshMaxRestartTime` for
    /// the mesh; None = the default 120 s).
    pub max_restart_time: Option<Duration>,
    /// Wait for the peer to connect; never connect out.
    pub passive: bool,
    /// This node (a route reflector) reflects routes to this peer.
    pub route_reflector_client: bool,
    /// `nextHopMode`, with the legacy `keepOriginalNextHop: true` read as `Keep`.
    pub next_hop_mode: NextHopMode,
    /// `numAllowedLocalASNumbers`: how often this node's AS may appear in a received path.
    pub allow_own_as: u32,
    /// Names of the BGPFilters applied to this session, in order.
    pub filters: Vec<String>,
}

/// What the computation needs to know of a node.
#[derive(Clone, Debug)]
pub struct NodeBgp<'a> {
    pub name: &'a str,
    pub node: &'a Node,
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
    pub as_number: u32,
    pub listen_port: u16,
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
}

impl NodeBgp<'_> {
    fn addresses(&self, v4: bool, v6: bool) -> Vec<IpAddr> {
        let mut out = Vec::new();
        if v4 {
            out.extend(self.ipv4.map(|n| IpAddr::V4(n.addr())));
        }
        if v6 {
            out.extend(self.ipv6.map(|n| IpAddr::V6(n.addr())));
        }
        out
    }

    fn has_address(&self, ip: IpAddr) -> bool {
        self.addresses(true, true).contains(&ip)
    }
}

impl Config {
    fn default_config(&self) -> Option<&super::BgpConfiguration> {
        self.bgp_configurations.get("default").map(|l| &l.resource)
    }

    /// The cluster's default AS: `default` BGPConfiguration `asNumber`, else 64512.
    pub fn default_as(&self) -> u32 {
        self.default_config()
            .and_then(|c| c.spec.as_number)
            .map_or(DEFAULT_AS, |a| a.0)
    }

    /// `nodeToNodeMeshEnabled` of the `default` BGPConfiguration (default true).
    pub fn mesh_enabled(&self) -> bool {
        self.default_config()
            .and_then(|c| c.spec.node_to_node_mesh_enabled)
            .unwrap_or(true)
    }

    /// `nodeMeshPassword` of the `default` BGPConfiguration: the mesh sessions' password.
    pub fn mesh_password(&self) -> Option<&SecretKeyRef> {
        self.default_config()
            .and_then(|c| c.spec.node_mesh_password.as_ref())
            .map(|p| &p.secret_key_ref)
    }

    /// `nodeMeshMaxRestartTime` of the `default` BGPConfiguration: the graceful-restart time
    /// mesh sessions announce (None: the default 120 s).
    pub fn mesh_max_restart_time(&self) -> Option<Duration> {
        self.default_config()
            .and_then(|c| c.spec.node_mesh_max_restart_time.as_ref())
            .map(|d| d.value)
    }

    /// The port `node` listens on: `node.<node>` `listenPort`, else `default`'s, else 179.
    pub fn listen_port(&self, node: &str) -> u16 {
        let of = |name: &str| {
            self.bgp_configurations
                .get(name)
                .and_then(|c| c.resource.spec.listen_port)
                .map(|p| p.0)
        };
        of(&format!("node.{node}"))
            .or_else(|| of("default"))
            .unwrap_or(DEFAULT_PORT)
    }

    /// A node's BGP facts, or None for a node without `spec.bgp` (it runs no BGP).
    pub fn node_bgp<'a>(&'a self, node: &'a Located<Node>) -> Option<NodeBgp<'a>> {
        let bgp = node.resource.spec.bgp.as_ref()?;
        let name = node.resource.name();
        Some(NodeBgp {
            name,
            node: &node.resource,
            ipv4: bgp.ipv4_address.map(|a| a.0),
            ipv6: bgp.ipv6_address.map(|a| a.0),
            as_number: bgp.as_number.map_or_else(|| self.default_as(), |a| a.0),
            listen_port: self.listen_port(name),
            route_reflector_cluster_id: bgp.route_reflector_cluster_id.map(|c| c.0),
        })
    }

    fn bgp_nodes(&self) -> Vec<NodeBgp<'_>> {
        self.nodes
            .values()
            .filter_map(|n| self.node_bgp(n))
            .collect()
    }

    /// The BGP sessions node `name` should have, sorted by peer address and port. A node
    /// without `spec.bgp` has none.
    pub fn bgp_peerings(&self, name: &str) -> Result<Vec<BgpPeering>, UnknownNode> {
        let me = self.node(name)?;
        let Some(me) = self.node_bgp(me) else {
            return Ok(Vec::new());
        };
        Ok(compute(self, &me))
    }
}

/// One remote end, before the BGPPeer's settings are applied.
struct Target {
    ip: IpAddr,
    port: u16,
    asn: u32,
    node: Option<String>,
    rr_cluster_id: Option<Ipv4Addr>,
}

fn node_target(n: &NodeBgp, ip: IpAddr) -> Target {
    Target {
        ip,
        port: n.listen_port,
        asn: n.as_number,
        node: Some(n.name.to_string()),
        rr_cluster_id: n.route_reflector_cluster_id,
    }
}

fn compute(config: &Config, me: &NodeBgp) -> Vec<BgpPeering> {
    let nodes = config.bgp_nodes();
    let my_labels = me.node.labels();
    let mut out: BTreeMap<(IpAddr, u16), BgpPeering> = BTreeMap::new();

    let make = |t: Target, kind: PeeringKind, peer: Option<&Located<BgpPeer>>, reverse: bool| {
        let local_address = match t.ip {
            IpAddr::V4(_) => me.ipv4.map(|n| IpAddr::V4(n.addr())),
            IpAddr::V6(_) => me.ipv6.map(|n| IpAddr::V6(n.addr())),
        }?;
        let spec = peer.map(|p| &p.resource.spec);
        // A BGPPeer brings its own; the mesh (no BGPPeer) has the default BGPConfiguration's.
        let (password, max_restart_time) = match spec {
            Some(s) => (
                s.password.as_ref().map(|p| p.secret_key_ref.clone()),
                s.max_restart_time.as_ref().map(|d| d.value),
            ),
            None => (
                config.mesh_password().cloned(),
                config.mesh_max_restart_time(),
            ),
        };
        let passive = t.node.is_some() && t.ip.to_string() > local_address.to_string();
        let route_reflector_client = me.route_reflector_cluster_id.is_some()
            && t.asn == me.as_number
            && t.rr_cluster_id != me.route_reflector_cluster_id;
        Some(BgpPeering {
            kind,
            bgp_peer: peer.map(|p| p.resource.name().to_string()),
            reverse,
            peer_node: t.node,
            peer_address: t.ip,
            port: t.port,
            peer_as: t.asn,
            local_as: me.as_number,
            local_address,
            source_address: spec
                .and_then(|s| s.source_address)
                .unwrap_or(SourceAddress::UseNodeIp),
            password,
            ttl_security: spec
                .and_then(|s| s.ttl_security)
                .map(|t| t.0)
                .filter(|t| *t != 0),
            max_restart_time,
            passive,
            route_reflector_client,
            next_hop_mode: match spec.and_then(|s| s.next_hop_mode) {
                Some(m) => m,
                None if spec.and_then(|s| s.keep_original_next_hop) == Some(true) => {
                    NextHopMode::Keep
                }
                None => NextHopMode::Auto,
            },
            allow_own_as: spec
                .and_then(|s| s.num_allowed_local_as_numbers)
                .map_or(0, |n| n.0),
            filters: spec.map(|s| s.filters.clone()).unwrap_or_default(),
        })
    };
    let mut emit = |p: Option<BgpPeering>| {
        if let Some(p) = p {
            out.entry((p.peer_address, p.port)).or_insert(p);
        }
    };

    // The remote ends a BGPPeer names: its peerSelector's nodes, or its peerIP.
    let targets = |peer: &BgpPeer| -> Vec<Target> {
        let s = &peer.spec;
        if let Some(sel) = s.peer_selector() {
            let mut v = Vec::new();
            for n in nodes.iter().filter(|n| sel.matches(n.node.labels())) {
                for ip in n.addresses(true, true) {
                    v.push(node_target(n, ip));
                }
            }
            return v;
        }
        let Some(addr) = s.peer_ip else {
            return Vec::new(); // localWorkloadSelector peers: not acted on yet
        };
        let asn = s.as_number.map_or_else(|| config.default_as(), |a| a.0);
        let same_node = nodes
            .iter()
            .find(|n| n.has_address(addr.ip) && n.as_number == asn);
        let port = addr
            .port
            .or(same_node.map(|n| n.listen_port))
            .unwrap_or(DEFAULT_PORT);
        Vec::from([Target {
            ip: addr.ip,
            port,
            asn,
            node: nodes
                .iter()
                .find(|n| n.has_address(addr.ip))
                .map(|n| n.name.to_string()),
            rr_cluster_id: None,
        }])
    };
    let kind_of = |peer: &BgpPeer, node_scope: bool| {
        if peer.spec.peer_selector().is_some() {
            PeeringKind::SelectedNode
        } else if node_scope {
            PeeringKind::NodeSpecific
        } else {
            PeeringKind::Global
        }
    };

    // Pass 1: global BGPPeers.
    for p in config
        .bgp_peers
        .values()
        .filter(|p| p.resource.spec.is_global())
    {
        for t in targets(&p.resource) {
            emit(make(t, kind_of(&p.resource, false), Some(p), false));
        }
    }
    // Pass 2: BGPPeers for this node.
    for p in config.bgp_peers.values() {
        let s = &p.resource.spec;
        let applies = s.node() == Some(me.name)
            || s.node_selector().is_some_and(|sel| sel.matches(my_labels));
        if !applies {
            continue;
        }
        for t in targets(&p.resource) {
            emit(make(t, kind_of(&p.resource, true), Some(p), false));
        }
    }
    // Pass 3: reverse peerings, where this node is the BGPPeer's remote end.
    for p in config.bgp_peers.values() {
        let s = &p.resource.spec;
        let (remote, v4, v6) = if let Some(sel) = s.peer_selector() {
            (sel.matches(my_labels), true, true)
        } else if let Some(addr) = s.peer_ip {
            let asn = s.as_number.map_or_else(|| config.default_as(), |a| a.0);
            let hit = me.has_address(addr.ip)
                && me.as_number == asn
                && addr.port.is_none_or(|port| port == me.listen_port);
            (hit, addr.ip.is_ipv4(), addr.ip.is_ipv6())
        } else {
            (false, false, false)
        };
        if !remote {
            continue;
        }
        let locals = nodes.iter().filter(|n| {
            if let Some(node) = s.node() {
                n.name == node
            } else if let Some(sel) = s.node_selector() {
                sel.matches(n.node.labels())
            } else {
                true
            }
        });
        let kind = if s.peer_selector().is_some() {
            PeeringKind::SelectedNode
        } else {
            PeeringKind::NodeSpecific
        };
        for n in locals {
            for ip in n.addresses(v4, v6) {
                emit(make(node_target(n, ip), kind, Some(p), true));
            }
        }
    }
    // The mesh, unless disabled or this node is a route reflector; reflectors are skipped.
    if config.mesh_enabled() && me.route_reflector_cluster_id.is_none() {
        for n in &nodes {
            if n.name == me.name || n.route_reflector_cluster_id.is_some() {
                continue;
            }
            for ip in n.addresses(true, true) {
                emit(make(node_target(n, ip), PeeringKind::NodeMesh, None, false));
            }
        }
    }

    out.into_values()
        .filter(|p| p.peer_address != p.local_address && p.peer_node.as_deref() != Some(me.name))
        .collect()
}

//! What the speaker runs from a configuration: its own settings and one [`PeerSpec`] per
//! session Calico's rules give this node ([`crate::config::Config::bgp_peerings`]).

use super::Args;
use crate::config::{self, BgpPeering, Config, PeeringKind};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tortie_bgp::fsm::{GrConfig, PeerConfig};
use tortie_bgp::rib::NextHopMode;
use tortie_bgp::speaker::{NextHopSelf, PeerSpec, SpeakerConfig};
use tortie_bgp::transport::{Md5Key, TtlPolicy};
use tortie_bgp::wire::{AddPathMode, Family};
use tracing::info;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration:\n{0}")]
    Config(#[from] config::ConfigErrors),
    #[error("{0}")]
    Node(#[from] config::UnknownNode),
    #[error("node {0} has no spec.bgp: it runs no BGP")]
    NoBgp(String),
    #[error("peer {peer}: {what}")]
    Peer { peer: IpAddr, what: String },
    #[error("BGP filters: {0}")]
    Policy(String),
    #[error("API: {0}")]
    Api(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("datastore: {0}")]
    Datastore(String),
    #[error("dataplane: {0}")]
    Dataplane(String),
    #[error("{0}")]
    Role(String),
    #[error("BGP speaker: {0}")]
    Speaker(#[from] tortie_bgp::speaker::SpeakerError),
}

/// Everything the speaker needs, derived from the configuration.
pub struct Plan {
    pub speaker: SpeakerConfig,
    pub peers: Vec<PeerSpec>,
}

/// A BGP identifier for a node without an IPv4 address: four bytes of a hash of its name
/// (never 0.0.0.0).
fn router_id_from_name(name: &str) -> Ipv4Addr {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    Ipv4Addr::from(h.max(1))
}

/// The PEER TYPE column of `calicoctl node status`, which is what Calico users read in
/// `tortie status`, the metrics' `type` label and the status file. A route reflector's client
/// keeps the label of the peering that made it ("node specific", or "global"), as calicoctl
/// shows it: BIRD's protocol names, which calicoctl reads, only tell mesh, node and global
/// peers apart. That a session is a client is `routing.rr_client` of its [`PeerSpec`], which
/// the API reports as `PEER_TYPE_ROUTE_REFLECTOR_CLIENT` (see `crate::api::convert::peer`).
fn kind_label(kind: PeeringKind) -> &'static str {
    match kind {
        PeeringKind::NodeMesh => "node-to-node mesh",
        PeeringKind::Global => "global",
        PeeringKind::NodeSpecific | PeeringKind::SelectedNode => "node specific",
    }
}

pub fn plan(cfg: &Config, args: &Args) -> Result<Plan, StartError> {
    let node = cfg.node(&args.node)?;
    let me = cfg
        .node_bgp(node)
        .ok_or_else(|| StartError::NoBgp(args.node.clone()))?;
    let router_id = me
        .ipv4
        .map(|n| n.addr())
        .unwrap_or_else(|| router_id_from_name(&args.node));
    let nh = NextHopSelf {
        v4: me.ipv4.map(|n| n.addr()),
        v6: me.ipv6.map(|n| n.addr()),
    };
    let port = me.listen_port;
    // bindMode NodeIP: listen on the node's own addresses only, as calico-node's BIRD does.
    let node_ip = bind_mode(cfg) == Some(config::BindMode::NodeIp);
    let mut listen = Vec::new();
    if let Some(v4) = me.ipv4 {
        let ip = if node_ip {
            v4.addr()
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        listen.push(SocketAddr::new(IpAddr::V4(ip), port));
    }
    if let Some(v6) = me.ipv6 {
        let ip = if node_ip {
            v6.addr()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED
        };
        listen.push(SocketAddr::new(IpAddr::V6(ip), port));
    }
    let mut peers = Vec::new();
    for p in cfg.bgp_peerings(&args.node)? {
        let mut spec = peer_spec(&p, router_id, nh, &args.node, args)?;
        if let Some(name) = &p.bgp_peer {
            spec.routing.filters = cfg
                .bgp_filters_for(name)
                .map_err(|e| StartError::Policy(e.to_string()))?;
        }
        peers.push(spec);
    }
    let mut speaker = SpeakerConfig::new(me.as_number, router_id, listen);
    speaker.cluster_id = me.route_reflector_cluster_id;
    speaker.local_addresses = [nh.v4.map(IpAddr::V4), nh.v6.map(IpAddr::V6)]
        .into_iter()
        .flatten()
        .collect();
    speaker.advertisements = cfg
        .advertisements(&args.node)
        .map_err(|e| StartError::Policy(e.to_string()))?;
    Ok(Plan { speaker, peers })
}

/// `bindMode` of the `default` BGPConfiguration (Calico ignores it on `node.<name>`).
fn bind_mode(cfg: &Config) -> Option<config::BindMode> {
    cfg.bgp_configurations
        .get("default")
        .and_then(|c| c.resource.spec.bind_mode)
}

fn peer_spec(
    p: &BgpPeering,
    router_id: Ipv4Addr,
    nh: NextHopSelf,
    node: &str,
    args: &Args,
) -> Result<PeerSpec, StartError> {
    let fail = |what: String| StartError::Peer {
        peer: p.peer_address,
        what,
    };
    let family = if p.peer_address.is_ipv4() {
        Family::Ipv4Unicast
    } else {
        Family::Ipv6Unicast
    };
    let mut session = PeerConfig::new(p.local_as, p.peer_as, router_id);
    session.passive = p.passive;
    session.hold_time = args.hold_time;
    session.connect_retry = Duration::from_secs(args.connect_retry.max(1));
    // Calico runs one family per session: IPv4 routes over IPv4 sessions, IPv6 over IPv6.
    session.capabilities.families = vec![family];
    // ADD-PATH both ways (RFC 7911): a route reflector passes every path of a multipath group,
    // and nodes build ECMP groups from them. Peers without it simply do not negotiate it.
    session.capabilities.add_path = vec![(family, AddPathMode::SendReceive)];
    session.capabilities.hostname = Some(node.to_string());
    let restart_time = p
        .max_restart_time
        .map_or(120, |d| d.as_secs().min(4095) as u16);
    session.capabilities.graceful_restart = Some(GrConfig {
        restart_time,
        restarting: args.restarted,
        // The F bit (RFC 4724 section 3): a node's kernel routes stay while its agent is away,
        // so its forwarding state is preserved and peers keep its routes through the
        // restart. Without it they would drop them the moment the session is back (section
        // 4.2), before the restarted agent has sent them again: packets lost. A reflector
        // forwards nothing.
        forwarding_preserved: args.dataplane == super::Dataplane::Kernel
            && args.role == super::Role::Node,
    });
    let mut spec = PeerSpec::new(p.peer_address, session);
    spec.routing.rr_client = p.route_reflector_client;
    spec.routing.next_hop_mode = match p.next_hop_mode {
        config::NextHopMode::Auto => NextHopMode::Auto,
        config::NextHopMode::SelfMode => NextHopMode::SelfAddr,
        config::NextHopMode::Keep => NextHopMode::Keep,
    };
    spec.routing.allow_own_as = p.allow_own_as.min(u32::from(u8::MAX)) as u8;
    spec.name = p
        .peer_node
        .clone()
        .or_else(|| p.bgp_peer.clone())
        .unwrap_or_else(|| p.peer_address.to_string());
    spec.kind = kind_label(p.kind).to_string();
    spec.port = p.port;
    spec.next_hop_self = nh;
    if p.source_address == config::SourceAddress::UseNodeIp {
        spec.local_address = Some(p.local_address);
    }
    // A BGPPeer's `password` and the mesh's `nodeMeshPassword` alike (see config::peers).
    if let Some(secret) = &p.password {
        match config::secrets::read_password(secret, &args.secrets_dir)
            .map_err(|e| fail(e.to_string()))?
        {
            Some(password) => {
                spec.md5 = Some(
                    Md5Key::new(password.trim_end_matches('\n'))
                        .map_err(|e| fail(e.to_string()))?,
                );
            }
            // `optional: true` and no file: no password, as Kubernetes leaves an optional key
            // out (read_password's contract); the peer then refuses us if it wants one.
            None => info!(
                peer = %p.peer_address,
                file = %secret.path(&args.secrets_dir).display(),
                "optional BGP password file absent: session without TCP MD5"
            ),
        }
    }
    if let Some(hops) = p.ttl_security.filter(|&h| h > 0) {
        spec.ttl = TtlPolicy::gtsm(hops).map_err(|e| fail(e.to_string()))?;
    }
    Ok(spec)
}

pub(super) fn parse_hold_time(s: &str) -> Result<u16, String> {
    let v: u16 = s.parse().map_err(|e| format!("{e}"))?;
    if v == 1 || v == 2 {
        return Err("a hold time must be 0 or at least 3 seconds (RFC 4271 section 4.2)".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::{Path, PathBuf};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(node: &str, secrets: &Path) -> Args {
        let secrets = secrets.display().to_string();
        Cli::try_parse_from(["tortie", "--node", node, "--secrets-dir", &secrets])
            .unwrap_or_else(|e| panic!("{e}"))
            .args
    }

    /// A scratch secrets directory, removed when dropped.
    struct Secrets(PathBuf);

    impl Secrets {
        fn new(test: &str) -> Secrets {
            let d = std::env::temp_dir().join(format!("tortie-plan-{test}-{}", std::process::id()));
            std::fs::create_dir_all(d.join("bgp-passwords")).unwrap();
            Secrets(d)
        }
    }

    impl Drop for Secrets {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn cluster(default_spec: &str) -> Config {
        let text = format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec: {default_spec}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: n1}}\nspec: {{bgp: {{ipv4Address: 198.18.1.10/24}}}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: n2}}\nspec: {{bgp: {{ipv4Address: 198.18.1.11/24}}}}\n"
        );
        Config::from_texts(&[("inline.yaml", &text)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn restart_time(spec: &PeerSpec) -> Option<u16> {
        spec.session
            .capabilities
            .graceful_restart
            .as_ref()
            .map(|g| g.restart_time)
    }

    #[test]
    fn mesh_sessions_are_signed_with_the_node_mesh_password_and_announce_its_restart_time() {
        let s = Secrets::new("mesh-md5");
        std::fs::write(s.0.join("bgp-passwords/mesh"), "mesh-s3cret\n").unwrap();
        let cfg = cluster(
            "{nodeMeshPassword: {secretKeyRef: {name: bgp-passwords, key: mesh}}, nodeMeshMaxRestartTime: 5m}",
        );
        let plan = plan(&cfg, &args("n1", &s.0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.peers.len(), 1);
        let mesh = &plan.peers[0];
        assert_eq!(mesh.kind, "node-to-node mesh");
        assert_eq!(mesh.md5, Some(Md5Key::new("mesh-s3cret").unwrap()));
        assert_eq!(restart_time(mesh), Some(300));
    }

    #[test]
    fn a_route_protocol_the_kernel_reserves_is_refused() {
        for n in ["0", "3", "4"] {
            let got = Cli::try_parse_from(["tortie", "--node", "n1", "--route-protocol", n]);
            assert!(got.is_err(), "--route-protocol {n} accepted");
        }
        let ok = Cli::try_parse_from(["tortie", "--node", "n1", "--route-protocol", "117"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.args.route_protocol, 117);
    }

    #[test]
    fn the_speaker_knows_the_nodes_own_address_so_paths_back_to_it_are_not_used() {
        let s = Secrets::new("local-addrs");
        let plan = plan(&cluster("{}"), &args("n1", &s.0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            plan.speaker.local_addresses,
            vec!["198.18.1.10".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn mesh_sessions_without_node_mesh_fields_are_unsigned_with_a_120_second_restart_time() {
        let s = Secrets::new("mesh-plain");
        let plan = plan(&cluster("{}"), &args("n1", &s.0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.peers[0].md5, None);
        assert_eq!(restart_time(&plan.peers[0]), Some(120));
    }

    #[test]
    fn a_missing_mesh_password_file_stops_the_plan_naming_the_file() {
        let s = Secrets::new("mesh-missing");
        let cfg = cluster("{nodeMeshPassword: {secretKeyRef: {name: bgp-passwords, key: mesh}}}");
        let err = match plan(&cfg, &args("n1", &s.0)) {
            Ok(_) => panic!("planned without the password file"),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with("peer 198.18.1.11: "), "{err}");
        assert!(err.contains("bgp-passwords/mesh does not exist"), "{err}");
    }

    #[test]
    fn an_optional_password_without_its_file_leaves_the_session_unsigned() {
        let s = Secrets::new("mesh-optional");
        let cfg = cluster(
            "{nodeMeshPassword: {secretKeyRef: {name: bgp-passwords, key: mesh, optional: true}}}",
        );
        let plan = plan(&cfg, &args("n1", &s.0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.peers[0].md5, None);
    }

    #[test]
    fn a_route_reflector_client_keeps_calicos_label_and_is_marked_as_a_client() {
        let text = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: rr, labels: {route-reflector: 'true'}}\nspec: {bgp: {ipv4Address: 198.18.1.2/24, routeReflectorClusterID: 244.0.0.1}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\nspec: {bgp: {ipv4Address: 198.18.1.10/24}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: peer-with-rr}\nspec: {nodeSelector: all(), peerSelector: route-reflector == 'true'}\n";
        let cfg = Config::from_texts(&[("inline.yaml", text)]).unwrap_or_else(|e| panic!("{e}"));
        let s = Secrets::new("rr-label");
        let plan = plan(&cfg, &args("rr", &s.0)).unwrap_or_else(|e| panic!("{e}"));
        let client = plan
            .peers
            .iter()
            .find(|p| p.name == "n1")
            .unwrap_or_else(|| panic!("no session to n1: {:?}", plan.peers));
        // calicoctl shows a reflector's client by the peering that made it.
        assert_eq!(client.kind, "node specific");
        assert!(client.routing.rr_client);
    }
}

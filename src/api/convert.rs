//! The speaker's view of sessions and routes ([`PeerStatus`], the FSM's [`Negotiated`], the
//! RIB's [`RouteView`]s) as `tortie.v1` messages. Pure functions: the only place where BGP
//! types meet protobuf ones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;
use tortie_bgp::fsm::{Negotiated, State};
use tortie_bgp::rib::{PathView, RouteView};
use tortie_bgp::speaker::{PeerCounters, PeerStatus, RibSizes};
use tortie_bgp::wire::{Family, Origin, SegmentKind};
use tortie_proto::prost_types::Timestamp;
use tortie_proto::v1;

pub fn peer_state(state: State) -> v1::PeerState {
    match state {
        State::Idle => v1::PeerState::Idle,
        State::Connect => v1::PeerState::Connect,
        State::Active => v1::PeerState::Active,
        State::OpenSent => v1::PeerState::OpenSent,
        State::OpenConfirm => v1::PeerState::OpenConfirm,
        State::Established => v1::PeerState::Established,
    }
}

/// The agent labels sessions with calicoctl's PEER TYPE text; the enum is derived from it and
/// the label is passed on verbatim, so a label added later still reaches clients.
///
/// A reflector's client keeps Calico's label ("node specific" or "global", what `calicoctl node
/// status` shows there, also the metrics' `type` label and the status file's); [`peer`] sets
/// the enum to `PEER_TYPE_ROUTE_REFLECTOR_CLIENT` from the session's `rr_client` flag instead.
pub fn peer_type(label: &str) -> v1::PeerType {
    match label {
        "node-to-node mesh" => v1::PeerType::NodeToNodeMesh,
        "global" => v1::PeerType::Global,
        "node specific" => v1::PeerType::NodeSpecific,
        "route reflector client" => v1::PeerType::RouteReflectorClient,
        _ => v1::PeerType::Unspecified,
    }
}

pub fn family(f: Family) -> v1::AddressFamily {
    match f {
        Family::Ipv4Unicast => v1::AddressFamily::Ipv4Unicast,
        Family::Ipv6Unicast => v1::AddressFamily::Ipv6Unicast,
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

pub fn negotiated(n: &Negotiated) -> v1::Negotiated {
    let add_path = Family::ALL
        .into_iter()
        .filter_map(|f| {
            let (send, receive) = (n.tx.add_path.get(f), n.rx.add_path.get(f));
            (send || receive).then(|| v1::AddPath {
                family: family(f) as i32,
                send,
                receive,
            })
        })
        .collect();
    let graceful_restart = n
        .peer_graceful_restart
        .as_ref()
        .map(|gr| v1::GracefulRestart {
            restart_time_seconds: u32::from(gr.restart_time),
            restarting: gr.restart_state,
            notification: gr.notification,
            // Families tortie does not route have no value in the enum; listing them as
            // UNSPECIFIED would say nothing a client could use.
            families: gr
                .families
                .iter()
                .filter_map(|gf| {
                    gf.afi_safi.family().map(|f| v1::GracefulRestartFamily {
                        family: family(f) as i32,
                        forwarding_preserved: gf.forwarding_preserved,
                    })
                })
                .collect(),
        });
    v1::Negotiated {
        peer_router_id: n.peer_id.to_string(),
        hold_time_seconds: u32::from(n.hold_time),
        keepalive_seconds: u32::from(n.keepalive),
        families: n.families.iter().map(|f| family(*f) as i32).collect(),
        // Both directions' contexts agree on these: they are on only when both sides said so.
        four_octet_as: n.rx.as4,
        add_path,
        route_refresh: n.route_refresh,
        enhanced_route_refresh: n.enhanced_route_refresh,
        extended_message: n.rx.extended_message,
        extended_next_hop: n.extended_next_hop,
        graceful_restart,
        peer_hostname: n.peer_hostname.clone(),
    }
}

pub fn peer(p: &PeerStatus) -> v1::Peer {
    let established = p.state == State::Established;
    v1::Peer {
        name: p.name.clone(),
        address: p.address.to_string(),
        port: u32::from(p.port),
        peer_as: p.peer_as,
        // The speaker does not report it per session (yet).
        local_as: None,
        // The label stays Calico's ("node specific", "global"); the enum says what the
        // session is to this node's routing.
        r#type: if p.rr_client {
            v1::PeerType::RouteReflectorClient
        } else {
            peer_type(&p.kind)
        } as i32,
        type_label: p.kind.clone(),
        state: peer_state(p.state) as i32,
        since: Some(timestamp(p.since)),
        // The proto promises no error once Established, whatever the speaker still holds.
        last_error: if established {
            None
        } else {
            p.last_error.clone()
        },
        received: Some(p.received as u64),
        accepted: Some(p.accepted as u64),
        advertised: Some(p.advertised as u64),
        negotiated: if established {
            p.negotiated.as_ref().map(negotiated)
        } else {
            None
        },
        enabled: Some(p.enabled),
        counters: Some(counters(&p.counters)),
    }
}

pub fn counters(c: &PeerCounters) -> v1::PeerCounters {
    v1::PeerCounters {
        messages_in: c.messages_in,
        messages_out: c.messages_out,
        updates_in: c.updates_in,
        updates_out: c.updates_out,
        prefixes_in: c.prefixes_in,
        withdrawals_in: c.withdrawals_in,
        prefixes_out: c.prefixes_out,
        withdrawals_out: c.withdrawals_out,
        established_transitions: c.established_transitions,
    }
}

pub fn rib_sizes(s: RibSizes) -> v1::RibSizes {
    v1::RibSizes {
        ipv4_prefixes: s.v4_prefixes,
        ipv6_prefixes: s.v6_prefixes,
        paths: s.paths,
    }
}

fn origin(o: Option<Origin>) -> v1::Origin {
    match o {
        Some(Origin::Igp) => v1::Origin::Igp,
        Some(Origin::Egp) => v1::Origin::Egp,
        Some(Origin::Incomplete) => v1::Origin::Incomplete,
        None => v1::Origin::Unspecified,
    }
}

fn segment_type(k: SegmentKind) -> v1::AsPathSegmentType {
    match k {
        SegmentKind::Sequence => v1::AsPathSegmentType::Sequence,
        SegmentKind::Set => v1::AsPathSegmentType::Set,
        SegmentKind::ConfedSequence => v1::AsPathSegmentType::ConfedSequence,
        SegmentKind::ConfedSet => v1::AsPathSegmentType::ConfedSet,
    }
}

/// One path; `names` gives the peers' names by address.
pub fn path(p: &PathView, names: &HashMap<IpAddr, String>) -> v1::Path {
    let a = &p.attrs.attrs;
    let local = p.from.is_none();
    v1::Path {
        from_peer: p.from.map(|f| f.to_string()),
        from_name: p
            .from
            .and_then(|f| names.get(&f).cloned())
            .unwrap_or_default(),
        local,
        best: p.best,
        multipath: p.multipath,
        stale: p.stale,
        path_id: p.path_id,
        // A local path's next hop is a placeholder the export fills per peer.
        next_hop: (!local).then(|| p.attrs.next_hop.to_string()),
        link_local_next_hop: p.attrs.link_local.map(|l| l.to_string()),
        origin: origin(a.origin) as i32,
        as_path: a
            .effective_as_path()
            .map(|path| {
                path.segments
                    .iter()
                    .map(|s| v1::AsPathSegment {
                        r#type: segment_type(s.kind) as i32,
                        asns: s.asns.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        med: a.med,
        local_pref: a.local_pref,
        communities: a.communities.iter().map(ToString::to_string).collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(ToString::to_string)
            .collect(),
        extended_communities: a.ext_communities.iter().map(ToString::to_string).collect(),
        originator_id: a.originator_id.map(|o| o.to_string()),
        cluster_list: a.cluster_list.iter().map(ToString::to_string).collect(),
        atomic_aggregate: a.atomic_aggregate,
    }
}

pub fn route(r: &RouteView, names: &HashMap<IpAddr, String>) -> v1::Route {
    let fam = match r.prefix {
        ipnet::IpNet::V4(_) => Family::Ipv4Unicast,
        ipnet::IpNet::V6(_) => Family::Ipv6Unicast,
    };
    v1::Route {
        prefix: r.prefix.to_string(),
        family: family(fam) as i32,
        paths: r.paths.iter().map(|p| path(p, names)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    fn status(state: State) -> PeerStatus {
        PeerStatus {
            name: "rack-1".into(),
            kind: "global".into(),
            address: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)),
            port: 179,
            peer_as: 64512,
            state,
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            last_error: Some("Cease/administrative shutdown".into()),
            negotiated: None,
            received: 3,
            accepted: 1,
            rr_client: false,
            advertised: 2,
            enabled: true,
            counters: Default::default(),
        }
    }

    #[test]
    fn every_fsm_state_has_its_own_proto_state() {
        let all = [
            State::Idle,
            State::Connect,
            State::Active,
            State::OpenSent,
            State::OpenConfirm,
            State::Established,
        ];
        let mapped: std::collections::BTreeSet<i32> =
            all.iter().map(|s| peer_state(*s) as i32).collect();
        assert_eq!(mapped.len(), all.len());
        assert!(!mapped.contains(&(v1::PeerState::Unspecified as i32)));
    }

    #[test]
    fn calicoctl_type_labels_map_to_the_enum_and_unknown_ones_to_unspecified() {
        assert_eq!(peer_type("node-to-node mesh"), v1::PeerType::NodeToNodeMesh);
        assert_eq!(peer_type("node specific"), v1::PeerType::NodeSpecific);
        assert_eq!(peer_type("global"), v1::PeerType::Global);
        assert_eq!(peer_type("something new"), v1::PeerType::Unspecified);
    }

    #[test]
    fn a_route_reflector_client_is_typed_as_a_client_and_keeps_calicos_label() {
        let p = peer(&PeerStatus {
            kind: "node specific".into(),
            rr_client: true,
            ..status(State::Established)
        });
        assert_eq!(p.r#type, v1::PeerType::RouteReflectorClient as i32);
        assert_eq!(p.type_label, "node specific");
    }

    #[test]
    fn a_peer_that_is_not_a_client_is_typed_by_its_label() {
        let p = peer(&PeerStatus {
            kind: "node specific".into(),
            ..status(State::Established)
        });
        assert_eq!(p.r#type, v1::PeerType::NodeSpecific as i32);
    }

    #[test]
    fn a_session_that_is_down_keeps_its_last_error_and_its_label() {
        let p = peer(&status(State::Active));
        assert_eq!(p.state, v1::PeerState::Active as i32);
        assert_eq!(
            p.last_error.as_deref(),
            Some("Cease/administrative shutdown")
        );
        assert_eq!(p.type_label, "global");
        assert_eq!(p.since.map(|t| t.seconds), Some(1_700_000_000));
        assert_eq!(
            (p.received, p.accepted, p.advertised),
            (Some(3), Some(1), Some(2))
        );
    }

    #[test]
    fn add_path_is_listed_per_family_with_both_directions() {
        use tortie_bgp::wire::{AddPath, Ctx, GrFamily, GracefulRestart};
        let n = Negotiated {
            peer_as: 64512,
            peer_id: Ipv4Addr::new(198, 18, 1, 2),
            hold_time: 90,
            keepalive: 30,
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            rx: Ctx {
                as4: true,
                add_path: AddPath {
                    ipv4_unicast: false,
                    ipv6_unicast: true,
                },
                extended_message: false,
            },
            tx: Ctx {
                as4: true,
                add_path: AddPath::default(),
                extended_message: false,
            },
            route_refresh: true,
            enhanced_route_refresh: false,
            peer_graceful_restart: Some(GracefulRestart {
                restart_state: true,
                notification: false,
                restart_time: 120,
                families: vec![
                    GrFamily {
                        afi_safi: Family::Ipv4Unicast.into(),
                        forwarding_preserved: true,
                    },
                    // L2VPN EVPN: nothing tortie routes, so not listed.
                    GrFamily {
                        afi_safi: tortie_bgp::wire::AfiSafi { afi: 25, safi: 70 },
                        forwarding_preserved: true,
                    },
                ],
            }),
            extended_next_hop: false,
            peer_hostname: Some("rack-1".into()),
            peer_capabilities: Vec::new(),
        };
        let m = negotiated(&n);
        assert_eq!(
            m.add_path,
            vec![v1::AddPath {
                family: v1::AddressFamily::Ipv6Unicast as i32,
                send: false,
                receive: true,
            }]
        );
        let gr = m.graceful_restart.unwrap_or_default();
        assert_eq!((gr.restart_time_seconds, gr.restarting), (120, true));
        assert_eq!(
            gr.families,
            vec![v1::GracefulRestartFamily {
                family: v1::AddressFamily::Ipv4Unicast as i32,
                forwarding_preserved: true,
            }]
        );
        assert_eq!(m.peer_router_id, "198.18.1.2");
    }

    #[test]
    fn an_established_session_reports_no_last_error() {
        let p = peer(&status(State::Established));
        assert_eq!(p.last_error, None);
    }

    #[test]
    fn a_disabled_peer_says_so_and_reports_its_counters() {
        let mut st = status(State::Idle);
        st.enabled = false;
        st.counters.prefixes_in = 7;
        let p = peer(&st);
        assert_eq!(p.enabled, Some(false));
        assert_eq!(p.counters.map(|c| c.prefixes_in), Some(7));
    }

    fn path_view(from: Option<IpAddr>) -> PathView {
        use tortie_bgp::rib::RouteAttrs;
        use tortie_bgp::wire::{AsPath, Attributes, Community};
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65001, 65002])),
            local_pref: Some(100),
            communities: vec![Community(65001 << 16 | 7)],
            ..Default::default()
        };
        PathView {
            from,
            path_id: 0,
            attrs: std::sync::Arc::new(RouteAttrs::new(
                attrs,
                IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)),
            )),
            best: true,
            multipath: true,
            stale: false,
        }
    }

    #[test]
    fn a_learned_path_names_its_peer_and_carries_its_attributes() {
        let peer = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2));
        let names = HashMap::from([(peer, "node2".to_string())]);
        let p = path(&path_view(Some(peer)), &names);
        assert_eq!(p.from_peer.as_deref(), Some("198.18.1.2"));
        assert_eq!(p.from_name, "node2");
        assert_eq!(p.next_hop.as_deref(), Some("198.18.1.2"));
        assert_eq!(p.origin, v1::Origin::Igp as i32);
        assert_eq!(
            p.as_path,
            vec![v1::AsPathSegment {
                r#type: v1::AsPathSegmentType::Sequence as i32,
                asns: vec![65001, 65002],
            }]
        );
        assert_eq!(p.communities, vec!["65001:7".to_string()]);
        assert!(!p.local && p.best);
    }

    #[test]
    fn a_local_path_has_no_peer_and_no_next_hop() {
        let p = path(&path_view(None), &HashMap::new());
        assert!(p.local);
        assert_eq!((p.from_peer, p.next_hop), (None, None));
    }
}

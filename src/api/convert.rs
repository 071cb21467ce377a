//! The speaker's view of a session ([`PeerStatus`], the FSM's [`Negotiated`]) as `tortie.v1`
//! messages. Pure functions: the only place where BGP types meet protobuf ones.

use std::time::SystemTime;
use tortie_bgp::fsm::{Negotiated, State};
use tortie_bgp::speaker::PeerStatus;
use tortie_bgp::wire::Family;
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
        r#type: peer_type(&p.kind) as i32,
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
        // Not counted separately from `received` by the speaker.
        accepted: None,
        advertised: Some(p.advertised as u64),
        negotiated: if established {
            p.negotiated.as_ref().map(negotiated)
        } else {
            None
        },
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
    fn a_session_that_is_down_keeps_its_last_error_and_its_label() {
        let p = peer(&status(State::Active));
        assert_eq!(p.state, v1::PeerState::Active as i32);
        assert_eq!(
            p.last_error.as_deref(),
            Some("Cease/administrative shutdown")
        );
        assert_eq!(p.type_label, "global");
        assert_eq!(p.since.map(|t| t.seconds), Some(1_700_000_000));
        assert_eq!((p.received, p.advertised), (Some(3), Some(2)));
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
}

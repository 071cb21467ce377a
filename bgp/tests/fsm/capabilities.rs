//! Capability negotiation (RFC 5492): the intersection of what both sides advertised decides
//! families (RFC 4760), 4-octet AS (RFC 6793), ADD-PATH (RFC 7911), extended messages (RFC
//! 8654), route refresh (RFC 2918, RFC 7313), graceful restart (RFC 4724), extended next hop
//! (RFC 8950); a refused capability is left out of the next OPEN (RFC 5492 section 5).

use crate::support::*;
use tortie_bgp::fsm::{GrConfig, LocalCapabilities, Negotiated, PeerConfig, State, Timer};
use tortie_bgp::wire::capability::code;
use tortie_bgp::wire::{
    AddPath, AddPathFamily, AddPathMode, AfiSafi, Capability, ExtNextHop, Family, GrFamily,
    GracefulRestart, Message, Open,
};

const V4: Family = Family::Ipv4Unicast;
const V6: Family = Family::Ipv6Unicast;

fn mp(f: Family) -> Capability {
    Capability::Multiprotocol(AfiSafi::from(f))
}

fn with_caps(caps: LocalCapabilities) -> PeerConfig {
    PeerConfig {
        capabilities: caps,
        ..ebgp()
    }
}

fn families(fs: &[Family]) -> LocalCapabilities {
    LocalCapabilities {
        families: fs.to_vec(),
        ..LocalCapabilities::default()
    }
}

/// Brings a session with `cfg` up against a peer OPEN with `caps`; returns what was negotiated.
fn negotiated(cfg: PeerConfig, caps: Vec<Capability>) -> Negotiated {
    let mut h = Harness::new(cfg);
    let asn = h.session.config().peer_as;
    let (_, acts) = h.reach_established_with(&open_with(asn, 90, PEER_ID, caps));
    established(&acts).expect("Established")
}

/// Our OPEN for `cfg`.
fn our_open(cfg: PeerConfig) -> Open {
    let mut h = Harness::new(cfg);
    let id = h.reach_connect();
    let acts = h.connected(id);
    open_sent(&acts, id)
}

#[test]
fn families_are_the_intersection_of_both_sides() {
    let n = negotiated(
        with_caps(families(&[V4, V6])),
        vec![mp(V6), Capability::FourOctetAs { asn: PEER_AS }],
    );
    assert_eq!(n.families, [V6]);
}

#[test]
fn families_include_both_when_both_sides_advertise_both() {
    let n = negotiated(with_caps(families(&[V4, V6])), vec![mp(V4), mp(V6)]);
    assert_eq!(n.families, [V4, V6]);
}

#[test]
fn a_peer_without_multiprotocol_capability_gets_ipv4_unicast_only() {
    let n = negotiated(
        with_caps(families(&[V4, V6])),
        vec![Capability::RouteRefresh],
    );
    assert_eq!(n.families, [V4]);
}

#[test]
fn a_peer_without_any_capability_gets_ipv4_unicast_and_2_octet_as() {
    let n = negotiated(ebgp(), vec![]);
    assert_eq!(n.families, [V4]);
    assert!(!n.rx.as4 && !n.tx.as4);
    assert!(!n.route_refresh);
    assert!(n.peer_capabilities.is_empty());
}

#[test]
fn no_common_family_is_refused_with_2_7_listing_our_families() {
    let mut h = Harness::new(with_caps(families(&[V6])));
    let id = h.reach_open_sent();
    let acts = h.msg(
        id,
        &Message::Open(open_with(PEER_AS, 90, PEER_ID, vec![mp(V4)])),
    );
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (2, 7));
    // Capability code 1, length 4, AFI 2, reserved, SAFI 1.
    assert_eq!(n.data, [1, 4, 0, 2, 0, 1]);
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn a_peer_offering_only_families_we_do_not_route_is_refused_with_2_7() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let flowspec = Capability::Multiprotocol(AfiSafi { afi: 1, safi: 133 });
    let acts = h.msg(
        id,
        &Message::Open(open_with(PEER_AS, 90, PEER_ID, vec![flowspec])),
    );
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (2, 7));
    assert_eq!(n.data, [1, 4, 0, 1, 0, 1]);
}

#[test]
fn four_octet_as_is_used_when_both_sides_advertise_it() {
    let n = negotiated(ebgp(), peer_caps(PEER_AS));
    assert!(n.rx.as4 && n.tx.as4);
}

#[test]
fn four_octet_as_is_off_when_the_peer_lacks_it_and_updates_use_2_octet_paths() {
    let mut h = Harness::new(ebgp());
    let (id, acts) = h.reach_established_with(&open_with(PEER_AS, 90, PEER_ID, vec![mp(V4)]));
    let n = established(&acts).unwrap();
    assert!(!n.rx.as4 && !n.tx.as4);
    // An UPDATE from the 2-octet peer decodes with the 2-octet context.
    let u = announce("198.19.0.0/26");
    let acts = h.data(id, &enc(&Message::Update(u.clone())));
    assert_eq!(updates(&acts), vec![u]);
}

#[test]
fn our_open_carries_as_trans_and_the_4_octet_capability_for_a_4_octet_as() {
    let open = our_open(PeerConfig::new(4_200_000_001, PEER_AS, LOCAL_ID));
    assert_eq!(open.my_as, 23456, "AS_TRANS (RFC 6793 section 4.1)");
    assert_eq!(open.four_octet_as(), Some(4_200_000_001));
    assert_eq!(open.asn(), 4_200_000_001);
}

#[test]
fn our_open_carries_the_real_as_in_both_fields_for_a_2_octet_as() {
    let open = our_open(ebgp());
    assert_eq!(open.my_as, LOCAL_AS as u16);
    assert_eq!(open.four_octet_as(), Some(LOCAL_AS));
}

#[test]
fn a_peer_with_a_4_octet_as_is_accepted_through_as_trans() {
    let n = negotiated(
        PeerConfig::new(LOCAL_AS, 4_200_000_001, LOCAL_ID),
        peer_caps(4_200_000_001),
    );
    assert_eq!(n.peer_as, 4_200_000_001);
    assert!(n.rx.as4);
}

#[test]
fn add_path_directions_follow_send_and_receive_modes_per_family() {
    let caps = LocalCapabilities {
        families: vec![V4, V6],
        add_path: vec![(V4, AddPathMode::SendReceive), (V6, AddPathMode::Receive)],
        ..LocalCapabilities::default()
    };
    let peer = vec![
        mp(V4),
        mp(V6),
        Capability::AddPath {
            families: vec![
                AddPathFamily {
                    afi_safi: AfiSafi::from(V4),
                    mode: AddPathMode::Receive,
                },
                AddPathFamily {
                    afi_safi: AfiSafi::from(V6),
                    mode: AddPathMode::SendReceive,
                },
            ],
        },
    ];
    let n = negotiated(with_caps(caps), peer);
    // We receive path ids where we receive and the peer sends; we send where we send and the
    // peer receives.
    assert_eq!(
        n.rx.add_path,
        AddPath {
            ipv4_unicast: false,
            ipv6_unicast: true
        }
    );
    assert_eq!(
        n.tx.add_path,
        AddPath {
            ipv4_unicast: true,
            ipv6_unicast: false
        }
    );
}

#[test]
fn add_path_is_off_when_the_peer_does_not_advertise_it() {
    let caps = LocalCapabilities {
        add_path: vec![(V4, AddPathMode::SendReceive)],
        ..LocalCapabilities::default()
    };
    let n = negotiated(with_caps(caps), peer_caps(PEER_AS));
    assert_eq!(
        (n.rx.add_path, n.tx.add_path),
        (AddPath::default(), AddPath::default())
    );
}

#[test]
fn add_path_is_off_for_a_family_that_is_not_negotiated() {
    let caps = LocalCapabilities {
        add_path: vec![(V4, AddPathMode::SendReceive)],
        ..LocalCapabilities::default()
    };
    let peer = vec![
        mp(V4),
        Capability::AddPath {
            families: vec![AddPathFamily {
                afi_safi: AfiSafi::from(V6),
                mode: AddPathMode::SendReceive,
            }],
        },
    ];
    let n = negotiated(with_caps(caps), peer);
    assert_eq!(
        (n.rx.add_path, n.tx.add_path),
        (AddPath::default(), AddPath::default())
    );
}

#[test]
fn extended_message_is_used_when_both_sides_advertise_it() {
    let mut caps = peer_caps(PEER_AS);
    caps.push(Capability::ExtendedMessage);
    let n = negotiated(ebgp(), caps);
    assert!(n.rx.extended_message && n.tx.extended_message);
    assert_eq!(n.rx.max_len(), 65535);
}

#[test]
fn extended_message_is_off_when_only_one_side_advertises_it() {
    let n = negotiated(ebgp(), peer_caps(PEER_AS));
    assert!(!n.rx.extended_message && !n.tx.extended_message);
    let mut caps = peer_caps(PEER_AS);
    caps.push(Capability::ExtendedMessage);
    let n = negotiated(
        with_caps(LocalCapabilities {
            extended_message: false,
            ..LocalCapabilities::default()
        }),
        caps,
    );
    assert!(!n.rx.extended_message);
}

#[test]
fn route_refresh_is_negotiated_with_code_2() {
    assert!(negotiated(ebgp(), vec![mp(V4), Capability::RouteRefresh]).route_refresh);
}

#[test]
fn route_refresh_is_negotiated_with_frrs_pre_standard_code_128() {
    let old = Capability::Unknown {
        code: 128,
        value: vec![],
    };
    assert!(negotiated(ebgp(), vec![mp(V4), old]).route_refresh);
}

#[test]
fn route_refresh_is_off_without_the_peers_capability_or_ours() {
    assert!(!negotiated(ebgp(), vec![mp(V4)]).route_refresh);
    let ours = LocalCapabilities {
        route_refresh: false,
        ..LocalCapabilities::default()
    };
    assert!(!negotiated(with_caps(ours), vec![mp(V4), Capability::RouteRefresh]).route_refresh);
}

#[test]
fn enhanced_route_refresh_needs_both_sides() {
    assert!(
        negotiated(
            ebgp_enhanced_rr(),
            vec![
                mp(V4),
                Capability::RouteRefresh,
                Capability::EnhancedRouteRefresh
            ]
        )
        .enhanced_route_refresh
    );
    assert!(
        !negotiated(ebgp_enhanced_rr(), vec![mp(V4), Capability::RouteRefresh])
            .enhanced_route_refresh
    );
}

#[test]
fn enhanced_route_refresh_is_not_offered_by_default() {
    let open = our_open(ebgp());
    assert!(
        !open
            .capabilities
            .iter()
            .any(|c| c.code() == code::ENHANCED_ROUTE_REFRESH)
    );
}

fn peer_gr() -> GracefulRestart {
    GracefulRestart {
        restart_state: true,
        notification: false,
        restart_time: 120,
        families: vec![GrFamily {
            afi_safi: AfiSafi::from(V4),
            forwarding_preserved: true,
        }],
    }
}

fn gr_config() -> GrConfig {
    GrConfig {
        restart_time: 120,
        restarting: false,
        forwarding_preserved: true,
    }
}

#[test]
fn graceful_restart_of_the_peer_is_recorded() {
    let caps = LocalCapabilities {
        graceful_restart: Some(gr_config()),
        ..LocalCapabilities::default()
    };
    let mut peer = peer_caps(PEER_AS);
    peer.push(Capability::GracefulRestart(peer_gr()));
    let n = negotiated(with_caps(caps), peer);
    assert_eq!(n.peer_graceful_restart, Some(peer_gr()));
}

#[test]
fn graceful_restart_of_the_peer_is_ignored_when_we_do_not_advertise_it() {
    let mut peer = peer_caps(PEER_AS);
    peer.push(Capability::GracefulRestart(peer_gr()));
    let n = negotiated(ebgp(), peer);
    assert_eq!(n.peer_graceful_restart, None);
    assert!(
        n.peer_capabilities
            .contains(&Capability::GracefulRestart(peer_gr())),
        "still listed"
    );
}

#[test]
fn our_graceful_restart_capability_lists_our_families() {
    let caps = LocalCapabilities {
        families: vec![V4, V6],
        graceful_restart: Some(gr_config()),
        ..LocalCapabilities::default()
    };
    let open = our_open(with_caps(caps));
    let gr = open
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        })
        .expect("GR capability");
    assert_eq!(gr.restart_time, 120);
    assert_eq!(gr.families.len(), 2);
}

#[test]
fn extended_next_hop_needs_both_sides() {
    let caps = LocalCapabilities {
        extended_next_hop: true,
        ..LocalCapabilities::default()
    };
    let enh = Capability::ExtendedNextHop {
        families: vec![ExtNextHop {
            afi: 1,
            safi: 1,
            next_hop_afi: 2,
        }],
    };
    let mut peer = peer_caps(PEER_AS);
    peer.push(enh);
    assert!(negotiated(with_caps(caps.clone()), peer).extended_next_hop);
    assert!(!negotiated(with_caps(caps), peer_caps(PEER_AS)).extended_next_hop);
}

#[test]
fn the_peers_hostname_is_recorded() {
    let mut peer = peer_caps(PEER_AS);
    peer.push(Capability::Fqdn {
        hostname: "tor-1".into(),
        domain: "lab".into(),
    });
    assert_eq!(
        negotiated(ebgp(), peer).peer_hostname.as_deref(),
        Some("tor-1")
    );
}

/// OpenSent, the peer refuses our OPEN with `code/subcode` and `data`; returns our next OPEN
/// after the idle hold.
fn open_after_refusal(cfg: PeerConfig, subcode: u8, data: Vec<u8>) -> Open {
    let mut h = Harness::new(cfg);
    let id = h.reach_open_sent();
    let acts = h.msg(id, &notification(2, subcode, data));
    assert_eq!(h.state(), State::Idle);
    let acts = h.fire_at_deadline(&acts, Timer::IdleHold);
    let next = connect_of(&acts).expect("automatic restart");
    let acts = h.connected(next);
    open_sent(&acts, next)
}

#[test]
fn a_capability_refused_with_2_7_is_left_out_of_the_next_open() {
    let first = our_open(ebgp_enhanced_rr());
    assert!(
        first
            .capabilities
            .iter()
            .any(|c| c.code() == code::EXTENDED_MESSAGE)
    );
    // The peer lists what it refuses as code, length, value.
    let next = open_after_refusal(
        ebgp_enhanced_rr(),
        7,
        vec![code::EXTENDED_MESSAGE, 0, code::ENHANCED_ROUTE_REFRESH, 0],
    );
    let codes: Vec<u8> = next.capabilities.iter().map(|c| c.code()).collect();
    assert!(!codes.contains(&code::EXTENDED_MESSAGE), "{codes:?}");
    assert!(!codes.contains(&code::ENHANCED_ROUTE_REFRESH), "{codes:?}");
    assert_eq!(
        codes.len(),
        first.capabilities.len() - 2,
        "everything else stays"
    );
}

#[test]
fn a_capability_listed_with_our_value_is_left_out_of_the_next_open() {
    let caps = LocalCapabilities {
        add_path: vec![(V4, AddPathMode::SendReceive)],
        ..LocalCapabilities::default()
    };
    // ADD-PATH, length 4: AFI 1, SAFI 1, send/receive, exactly as we encode it.
    let next = open_after_refusal(with_caps(caps), 7, vec![code::ADD_PATH, 4, 0, 1, 1, 3]);
    assert!(!next.capabilities.iter().any(|c| c.code() == code::ADD_PATH));
    assert!(
        next.capabilities
            .iter()
            .any(|c| c.code() == code::MULTIPROTOCOL)
    );
}

#[test]
fn a_capability_the_peer_requires_but_we_did_not_send_changes_nothing() {
    // RFC 5492 section 5: the peer may list a capability it requires. Ours is MP IPv4 unicast;
    // it asks for MP IPv6 unicast. Dropping our own MP capability would not help.
    let first = our_open(ebgp());
    let next = open_after_refusal(ebgp(), 7, vec![code::MULTIPROTOCOL, 4, 0, 2, 0, 1]);
    assert_eq!(next, first);
}

#[test]
fn a_refused_capability_stays_out_of_later_opens_too() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(id, &notification(2, 7, vec![code::EXTENDED_MESSAGE, 0]));
    let acts = h.fire_at_deadline(&acts, Timer::IdleHold);
    let second = connect_of(&acts).unwrap();
    h.connected(second);
    // That connection fails too (OpenSent: Active, ConnectRetryTimer); the third OPEN still
    // leaves the capability out.
    let acts = h.closed(second);
    let acts = h.fire_at_deadline(&acts, Timer::ConnectRetry);
    let third = connect_of(&acts).unwrap();
    let open = open_sent(&h.connected(third), third);
    assert!(
        !open
            .capabilities
            .iter()
            .any(|c| c.code() == code::EXTENDED_MESSAGE)
    );
    assert!(
        open.capabilities
            .iter()
            .any(|c| c.code() == code::FOUR_OCTET_AS)
    );
}

#[test]
fn unsupported_optional_parameter_2_4_leads_to_an_open_without_capabilities() {
    let next = open_after_refusal(ebgp(), 4, vec![]);
    assert!(next.capabilities.is_empty());
    assert_eq!(
        enc(&Message::Open(next))[28],
        0,
        "optional parameters length 0"
    );
}

#[test]
fn a_session_without_capabilities_after_2_4_negotiates_ipv4_unicast() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(id, &notification(2, 4, vec![]));
    let acts = h.fire_at_deadline(&acts, Timer::IdleHold);
    let next = connect_of(&acts).unwrap();
    h.connected(next);
    h.msg(
        next,
        &Message::Open(open_with(PEER_AS, 90, PEER_ID, vec![])),
    );
    let acts = h.data(next, &keepalive());
    let n = established(&acts).unwrap();
    assert_eq!(n.families, [V4]);
    assert!(!n.rx.as4);
}

#[test]
fn other_open_errors_from_the_peer_do_not_change_our_open() {
    let first = our_open(ebgp());
    let next = open_after_refusal(ebgp(), 2, vec![]);
    assert_eq!(next, first);
}

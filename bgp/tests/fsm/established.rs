//! RFC 4271 section 8.2.2, Established state: UPDATE, KEEPALIVE, ROUTE-REFRESH (RFC 2918,
//! RFC 7313), NOTIFICATION, errors, stops.

use crate::support::*;
use tortie_bgp::fsm::{Down, State, Stop, Timer};
use tortie_bgp::wire::notification::cease;
use tortie_bgp::wire::{
    self, Action as Verdict, Capability, Family, Message, Notification, RouteRefreshSubtype,
};

#[test]
fn established_manual_start_is_ignored() {
    let mut h = Harness::new(ebgp());
    h.reach_established();
    assert!(h.start().is_empty());
    assert_eq!(h.state(), State::Established);
}

#[test]
fn established_manual_stop_sends_administrative_shutdown_with_the_message_and_reports_down() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let text = "Calico node upgrade, back in 5 minutes \u{1F527}";
    let acts = h.stop(Stop::Shutdown(Some(text.into())));
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (6, cease::ADMINISTRATIVE_SHUTDOWN));
    assert_eq!(n.shutdown_communication(), Some(text));
    assert!(closed(&acts, id));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert_eq!(timer_set(&acts, Timer::IdleHold), None);
    assert!(h.session.negotiated().is_none());
    assert_eq!(state_change(&acts), Some((State::Established, State::Idle)));
}

#[test]
fn established_manual_stop_message_is_cut_to_255_octets_at_a_character_boundary() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let text = "é".repeat(200); // 400 octets
    let acts = h.stop(Stop::Shutdown(Some(text)));
    let n = notification_sent(&acts, id);
    let got = n
        .shutdown_communication()
        .expect("well-formed communication");
    assert_eq!(got.len(), 254);
    assert!(got.chars().all(|c| c == 'é'));
}

#[test]
fn established_administrative_reset_sends_cease_4_and_restarts() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.stop(Stop::Reset(Some("new policy".into())));
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (6, cease::ADMINISTRATIVE_RESET));
    assert_eq!(n.shutdown_communication(), Some("new policy"));
    let acts = h.fire_at_deadline(&acts, Timer::IdleHold);
    assert!(connect_of(&acts).is_some());
}

#[test]
fn established_peer_deconfigured_sends_cease_3_and_stays_down() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.stop(Stop::Deconfigured);
    assert_eq!(
        code_sub(&notification_sent(&acts, id)),
        (6, cease::PEER_DECONFIGURED)
    );
    assert_eq!(timer_set(&acts, Timer::IdleHold), None);
}

#[test]
fn established_automatic_stop_sends_max_prefixes_cease_and_restarts_after_the_delay() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.stop(Stop::MaxPrefixes {
        restart_after: Some(secs(300)),
    });
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (6, cease::MAX_PREFIXES));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert_eq!(timer_set(&acts, Timer::IdleHold), Some(h.now + secs(300)));
    assert_eq!(h.state(), State::Idle);
    assert_eq!(
        h.accepted(IN),
        vec![tortie_bgp::fsm::Action::Close(IN)],
        "idle hold refuses"
    );
    let acts = h.fire_at_deadline(&acts, Timer::IdleHold);
    assert!(connect_of(&acts).is_some());
}

#[test]
fn established_automatic_stop_without_restart_delay_stays_down_until_manual_start() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.stop(Stop::MaxPrefixes {
        restart_after: None,
    });
    assert_eq!(
        code_sub(&notification_sent(&acts, id)),
        (6, cease::MAX_PREFIXES)
    );
    assert_eq!(timer_set(&acts, Timer::IdleHold), None);
    assert!(h.fire(Timer::IdleHold).is_empty());
    assert!(connect_of(&h.start()).is_some());
}

#[test]
fn established_hold_timer_expiry_sends_4_0_reports_down_and_schedules_idle_hold() {
    let mut h = Harness::new(ebgp());
    let (id, _) = h.reach_established_with(&peer_open());
    let up = h.now;
    // Nothing arrives any more: the timer armed at the OPEN re-arms once (the KEEPALIVE came
    // after it), then expires 90 s after the last message.
    let acts = h.fire(Timer::Hold(id));
    let at = timer_set(&acts, Timer::Hold(id)).expect("re-armed lazily");
    assert_eq!(at, up + secs(90));
    let acts = h.fire_at_deadline(&acts, Timer::Hold(id));
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (4, 0));
    assert!(closed(&acts, id));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert!(jittered(
        h.now,
        timer_set(&acts, Timer::IdleHold).unwrap(),
        secs(1)
    ));
    assert_eq!(state_change(&acts), Some((State::Established, State::Idle)));
}

#[test]
fn established_keepalive_keeps_the_session_up() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    h.advance(secs(60));
    let acts = h.data(id, &keepalive());
    assert!(acts.is_empty(), "{acts:#?}");
    h.advance(secs(60));
    let acts = h.fire(Timer::Hold(id));
    assert!(nothing_sent(&acts));
    assert_eq!(timer_set(&acts, Timer::Hold(id)), Some(h.now + secs(30)));
    assert_eq!(h.state(), State::Established);
}

#[test]
fn established_update_is_delivered() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let u = announce("198.19.0.0/26");
    let acts = h.data(id, &enc_with(&Message::Update(u.clone()), &as4_ctx()));
    assert_eq!(updates(&acts), vec![u]);
    assert!(nothing_sent(&acts));
    assert_eq!(h.state(), State::Established);
}

#[test]
fn established_update_restarts_the_hold_timer() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    h.advance(secs(80));
    h.data(
        id,
        &enc_with(&Message::Update(announce("198.19.0.0/26")), &as4_ctx()),
    );
    h.advance(secs(10));
    let acts = h.fire(Timer::Hold(id));
    assert_eq!(timer_set(&acts, Timer::Hold(id)), Some(h.now + secs(80)));
}

#[test]
fn established_end_of_rib_is_delivered_as_an_update() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.data(
        id,
        &enc_with(
            &Message::Update(wire::Update::end_of_rib(Family::Ipv4Unicast)),
            &as4_ctx(),
        ),
    );
    let got = updates(&acts);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_end_of_rib(), Some(Family::Ipv4Unicast));
}

#[test]
fn established_update_error_resets_the_session_with_the_codecs_notification() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    // NLRI with a prefix length of 33: Invalid Network Field, session reset (RFC 7606 section 5.3).
    let attrs = [
        &[0x40u8, 1, 1, 0][..],
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x01],
        &[0x40, 3, 4, 198, 18, 1, 2],
    ]
    .concat();
    let bytes = raw_update(&[], &attrs, &[33, 198, 19, 0, 0, 0]);
    let expected = wire::decode(&bytes, &as4_ctx()).unwrap_err();
    assert_eq!(expected.action, Verdict::SessionReset);
    let acts = h.data(id, &bytes);
    let n = notification_sent(&acts, id);
    assert_eq!(
        (n.code, n.subcode, &n.data),
        (expected.code, expected.subcode, &expected.data)
    );
    assert_eq!((n.code, n.subcode), (3, 10));
    assert!(updates(&acts).is_empty());
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn established_update_with_overrunning_lengths_resets_with_3_1() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let mut bytes = raw_update(&[], &[], &[]);
    bytes[20] = 9; // withdrawn routes length 9 in a message that has none
    let acts = h.data(id, &bytes);
    assert_eq!(code_sub(&notification_sent(&acts, id)), (3, 1));
}

#[test]
fn established_treat_as_withdraw_update_is_delivered_with_its_errors() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    // ORIGIN 7 is undefined: treat-as-withdraw (RFC 7606 section 7.1).
    let attrs = [
        &[0x40u8, 1, 1, 7][..],
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x01],
        &[0x40, 3, 4, 198, 18, 1, 2],
    ]
    .concat();
    let acts = h.data(id, &raw_update(&[], &attrs, &[26, 198, 19, 0, 0]));
    assert!(nothing_sent(&acts), "no NOTIFICATION for treat-as-withdraw");
    let got = updates(&acts);
    assert_eq!(got.len(), 1);
    assert!(got[0].treat_as_withdraw());
    assert_eq!(got[0].nlri.len(), 1, "the prefixes to withdraw are there");
    assert_eq!(got[0].errors[0].action, Verdict::TreatAsWithdraw);
    assert_eq!(h.state(), State::Established);
}

#[test]
fn established_route_refresh_is_delivered_when_negotiated() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.msg(
        id,
        &route_refresh(Family::Ipv4Unicast, RouteRefreshSubtype::Request),
    );
    let got = refreshes(&acts);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].afi, got[0].safi, got[0].subtype),
        (1, 1, RouteRefreshSubtype::Request)
    );
}

#[test]
fn established_enhanced_route_refresh_markers_are_delivered() {
    let mut h = Harness::new(ebgp_enhanced_rr());
    let mut caps = peer_caps(PEER_AS);
    caps.push(Capability::EnhancedRouteRefresh);
    let (id, acts) = h.reach_established_with(&open_with(PEER_AS, 90, PEER_ID, caps));
    assert!(established(&acts).unwrap().enhanced_route_refresh);
    for st in [
        RouteRefreshSubtype::BeginningOfRefresh,
        RouteRefreshSubtype::EndOfRefresh,
    ] {
        let acts = h.msg(id, &route_refresh(Family::Ipv4Unicast, st));
        assert_eq!(refreshes(&acts)[0].subtype, st);
    }
}

#[test]
fn established_route_refresh_is_ignored_when_not_negotiated() {
    let mut h = Harness::new(ebgp());
    let (id, _) = h.reach_established_with(&open_with(
        PEER_AS,
        90,
        PEER_ID,
        vec![Capability::FourOctetAs { asn: PEER_AS }],
    ));
    let acts = h.msg(
        id,
        &route_refresh(Family::Ipv4Unicast, RouteRefreshSubtype::Request),
    );
    assert!(acts.is_empty(), "{acts:#?}");
    assert_eq!(h.state(), State::Established);
}

#[test]
fn established_route_refresh_with_an_unknown_subtype_is_ignored() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.msg(
        id,
        &route_refresh(Family::Ipv4Unicast, RouteRefreshSubtype::Other(9)),
    );
    assert!(acts.is_empty(), "{acts:#?}");
    assert_eq!(h.state(), State::Established);
}

#[test]
fn established_route_refresh_for_a_family_not_negotiated_is_ignored() {
    // RFC 2918 section 4.
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.msg(
        id,
        &route_refresh(Family::Ipv6Unicast, RouteRefreshSubtype::Request),
    );
    assert!(acts.is_empty(), "{acts:#?}");
}

#[test]
fn established_open_is_an_fsm_error_5_3() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.msg(id, &Message::Open(peer_open()));
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (5, 3));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn established_notification_reports_down_and_schedules_idle_hold() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.msg(
        id,
        &Message::Notification(Notification::cease_with_message(
            cease::ADMINISTRATIVE_SHUTDOWN,
            "reboot",
        )),
    );
    assert!(nothing_sent(&acts));
    assert!(closed(&acts, id));
    match the_down(&acts) {
        Down::NotificationReceived(n) => assert_eq!(n.shutdown_communication(), Some("reboot")),
        d => panic!("{d:?}"),
    }
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(state_change(&acts), Some((State::Established, State::Idle)));
}

#[test]
fn established_tcp_fails_reports_down_and_schedules_idle_hold() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.closed(id);
    assert_eq!(the_down(&acts), Down::ConnectionClosed);
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert!(timer_cleared(&acts, Timer::Hold(id)));
    assert!(timer_cleared(&acts, Timer::Keepalive(id)));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn established_header_error_sends_1_1() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let mut bad = keepalive();
    bad[7] = 0;
    let acts = h.data(id, &bad);
    assert_eq!(code_sub(&notification_sent(&acts, id)), (1, 1));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn established_stale_timers_are_ignored() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    for t in [Timer::ConnectRetry, Timer::IdleHold, Timer::DelayOpen(id)] {
        assert!(h.fire(t).is_empty(), "{t:?}");
    }
    assert_eq!(h.state(), State::Established);
}

#[test]
fn established_send_updates_encodes_with_the_negotiated_context() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let u = announce("198.19.0.64/26");
    let acts = h
        .session
        .send_updates(&[u.clone(), u.clone()], h.now)
        .unwrap();
    let got = sent_with(&acts, id, &as4_ctx());
    assert_eq!(got, vec![Message::Update(u.clone()), Message::Update(u)]);
    assert_eq!(acts.len(), 1, "one write for all of them");
}

#[test]
fn send_updates_before_established_is_refused() {
    let mut h = Harness::new(ebgp());
    h.reach_open_confirm();
    let err = h
        .session
        .send_updates(&[announce("198.19.0.0/26")], h.now)
        .unwrap_err();
    assert_eq!(err.to_string(), "the session is not Established");
}

#[test]
fn request_route_refresh_sends_route_refresh_for_a_negotiated_family_only() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h
        .session
        .request_route_refresh(Family::Ipv4Unicast, h.now)
        .unwrap();
    assert_eq!(
        sent(&acts, id),
        vec![route_refresh(
            Family::Ipv4Unicast,
            RouteRefreshSubtype::Request
        )]
    );
    let acts = h
        .session
        .request_route_refresh(Family::Ipv6Unicast, h.now)
        .unwrap();
    assert!(acts.is_empty());
}

#[test]
fn request_route_refresh_is_a_no_op_when_the_peer_cannot_refresh() {
    let mut h = Harness::new(ebgp());
    h.reach_established_with(&open_with(
        PEER_AS,
        90,
        PEER_ID,
        vec![Capability::FourOctetAs { asn: PEER_AS }],
    ));
    assert!(
        h.session
            .request_route_refresh(Family::Ipv4Unicast, h.now)
            .unwrap()
            .is_empty()
    );
}

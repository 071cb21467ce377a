//! RFC 4271 section 8.2.2, OpenSent state: our OPEN is out, the peer's is awaited. OPEN checks
//! of section 6.2 (with RFC 6286 and RFC 6793), FSM errors of RFC 6608.

use crate::support::*;
use tortie_bgp::fsm::{ConnId, Down, Event, PeerConfig, State, Stop, Timer};
use tortie_bgp::wire::notification::cease;
use tortie_bgp::wire::{Capability, Family, Message, Notification, RouteRefreshSubtype};

#[test]
fn open_sent_manual_start_is_ignored() {
    let mut h = Harness::new(ebgp());
    h.reach_open_sent();
    assert!(h.start().is_empty());
    assert_eq!(h.state(), State::OpenSent);
}

#[test]
fn open_sent_manual_stop_sends_administrative_shutdown_with_the_message_and_goes_idle() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.stop(Stop::Shutdown(Some("node drained for upgrade".into())));
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (6, cease::ADMINISTRATIVE_SHUTDOWN));
    // RFC 9003 section 2: one length octet, then UTF-8.
    assert_eq!(n.data[0] as usize, "node drained for upgrade".len());
    assert_eq!(n.shutdown_communication(), Some("node drained for upgrade"));
    assert!(closed(&acts, id));
    assert!(timer_cleared(&acts, Timer::Hold(id)));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert_eq!(
        timer_set(&acts, Timer::IdleHold),
        None,
        "stays down until the next start"
    );
    assert_eq!(state_change(&acts), Some((State::OpenSent, State::Idle)));
}

#[test]
fn open_sent_automatic_stop_sends_max_prefixes_cease_and_restarts_after_the_delay() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.stop(Stop::MaxPrefixes {
        restart_after: Some(secs(120)),
    });
    assert_eq!(
        code_sub(&notification_sent(&acts, id)),
        (6, cease::MAX_PREFIXES)
    );
    assert_eq!(timer_set(&acts, Timer::IdleHold), Some(h.now + secs(120)));
    let acts = h.fire_at_deadline(&acts, Timer::IdleHold);
    assert!(connect_of(&acts).is_some());
}

#[test]
fn open_sent_hold_timer_expiry_sends_4_0_and_goes_idle_with_idle_hold() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let up = h.connected(id);
    let acts = h.fire_at_deadline(&up, Timer::Hold(id));
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (4, 0));
    assert!(closed(&acts, id));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(h.now - h.t0, OPEN_HOLD);
    assert_eq!(state_change(&acts), Some((State::OpenSent, State::Idle)));
}

#[test]
fn open_sent_tcp_fails_restarts_connect_retry_and_goes_active() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.closed(id);
    assert!(nothing_sent(&acts));
    assert!(timer_cleared(&acts, Timer::Hold(id)));
    assert!(jittered(
        h.now,
        timer_set(&acts, Timer::ConnectRetry).unwrap(),
        secs(5)
    ));
    assert_eq!(the_down(&acts), Down::ConnectionClosed);
    assert_eq!(state_change(&acts), Some((State::OpenSent, State::Active)));
}

#[test]
fn open_sent_tcp_fails_on_a_passive_peer_goes_active_without_connect_retry() {
    let mut h = Harness::new(passive());
    h.start();
    h.accepted(IN);
    let acts = h.closed(IN);
    assert_eq!(timer_set(&acts, Timer::ConnectRetry), None);
    assert_eq!(h.state(), State::Active);
    // Still listening.
    h.accepted(IN);
    assert_eq!(h.state(), State::OpenSent);
}

#[test]
fn open_sent_valid_open_sends_keepalive_arms_negotiated_timers_and_goes_open_confirm() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    h.advance(secs(1));
    let acts = h.msg(id, &Message::Open(peer_open()));
    assert_eq!(kinds(&acts, id), ["KEEPALIVE"]);
    assert_eq!(timer_set(&acts, Timer::Hold(id)), Some(h.now + secs(90)));
    assert!(jittered(
        h.now,
        timer_set(&acts, Timer::Keepalive(id)).unwrap(),
        secs(30)
    ));
    assert!(downs(&acts).is_empty());
    assert_eq!(
        state_change(&acts),
        Some((State::OpenSent, State::OpenConfirm))
    );
}

#[test]
fn open_sent_bad_marker_sends_1_1() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let mut bad = enc(&Message::Open(peer_open()));
    bad[15] = 0x7f;
    let acts = h.data(id, &bad);
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (1, 1));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_sent_unknown_message_type_sends_1_3_with_the_type() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.data(id, &raw_msg(9, &[]));
    let n = notification_sent(&acts, id);
    assert_eq!((n.code, n.subcode, n.data.clone()), (1, 3, vec![9]));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_sent_unsupported_version_sends_2_1_with_version_4_in_the_data() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.data(id, &open_bytes_with_version(5, &peer_open()));
    let n = notification_sent(&acts, id);
    assert_eq!((n.code, n.subcode), (2, 1));
    assert_eq!(n.data, [0x00, 0x04], "the largest version we support");
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_sent_bad_peer_as_sends_2_2() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(
        id,
        &Message::Open(open_with(64999, 90, PEER_ID, peer_caps(64999))),
    );
    assert_eq!(code_sub(&notification_sent(&acts, id)), (2, 2));
    assert!(closed(&acts, id));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_sent_bad_peer_as_in_the_4_octet_capability_sends_2_2() {
    // RFC 6793 section 4.1: the capability carries the real AS; My AS is AS_TRANS.
    let mut h = Harness::new(PeerConfig::new(LOCAL_AS, 4_200_000_001, LOCAL_ID));
    let id = h.reach_open_sent();
    let acts = h.msg(
        id,
        &Message::Open(open_with(
            4_200_000_002,
            90,
            PEER_ID,
            peer_caps(4_200_000_002),
        )),
    );
    assert_eq!(code_sub(&notification_sent(&acts, id)), (2, 2));
}

#[test]
fn open_sent_as_trans_without_the_4_octet_capability_is_a_bad_peer_as() {
    let mut h = Harness::new(PeerConfig::new(LOCAL_AS, 4_200_000_001, LOCAL_ID));
    let id = h.reach_open_sent();
    let open = open_with(4_200_000_001, 90, PEER_ID, vec![]);
    assert_eq!(open.my_as, 23456);
    let acts = h.msg(id, &Message::Open(open));
    assert_eq!(code_sub(&notification_sent(&acts, id)), (2, 2));
}

#[test]
fn open_sent_same_bgp_identifier_on_ibgp_sends_2_3() {
    let mut h = Harness::new(ibgp());
    let id = h.reach_open_sent();
    let acts = h.msg(
        id,
        &Message::Open(open_with(LOCAL_AS, 90, LOCAL_ID, peer_caps(LOCAL_AS))),
    );
    assert_eq!(code_sub(&notification_sent(&acts, id)), (2, 3));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_sent_same_bgp_identifier_on_ebgp_is_accepted() {
    // RFC 6286 section 2.2: identifiers only have to differ within an AS.
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    h.msg(
        id,
        &Message::Open(open_with(PEER_AS, 90, LOCAL_ID, peer_caps(PEER_AS))),
    );
    assert_eq!(h.state(), State::OpenConfirm);
}

#[test]
fn open_sent_zero_bgp_identifier_sends_2_3() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(
        id,
        &Message::Open(open_with(PEER_AS, 90, 0u32.into(), peer_caps(PEER_AS))),
    );
    assert_eq!(code_sub(&notification_sent(&acts, id)), (2, 3));
}

#[test]
fn open_sent_hold_time_1_sends_2_6() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(
        id,
        &Message::Open(open_with(PEER_AS, 1, PEER_ID, peer_caps(PEER_AS))),
    );
    assert_eq!(code_sub(&notification_sent(&acts, id)), (2, 6));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_sent_unsupported_optional_parameter_sends_2_4() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    // Version, AS, hold, id, then one optional parameter of type 1 (authentication, obsolete).
    let mut body = vec![4];
    body.extend_from_slice(&(PEER_AS as u16).to_be_bytes());
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&PEER_ID.octets());
    body.extend_from_slice(&[3, 1, 1, 0]);
    let acts = h.data(id, &raw_msg(1, &body));
    assert_eq!(code_sub(&notification_sent(&acts, id)), (2, 4));
}

#[test]
fn open_sent_notification_received_goes_idle_without_reply() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(id, &notification(6, cease::CONNECTION_REJECTED, vec![]));
    assert!(nothing_sent(&acts), "a NOTIFICATION is never answered");
    assert!(closed(&acts, id));
    assert_eq!(
        the_down(&acts),
        Down::NotificationReceived(Notification::new(6, 5, vec![]))
    );
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(state_change(&acts), Some((State::OpenSent, State::Idle)));
}

#[test]
fn open_sent_notification_with_version_error_goes_idle() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let first = open_sent(&h.connected(id), id);
    let acts = h.msg(id, &notification(2, 1, vec![0, 3]));
    assert!(nothing_sent(&acts));
    assert_eq!(
        the_down(&acts),
        Down::NotificationReceived(Notification::new(2, 1, vec![0, 3]))
    );
    assert_eq!(h.state(), State::Idle);
    // Our next OPEN is unchanged: a version error is no capability refusal.
    let acts = h.fire_at_deadline(&acts, Timer::IdleHold);
    let next = connect_of(&acts).unwrap();
    let acts = h.connected(next);
    assert_eq!(open_sent(&acts, next), first);
}

#[test]
fn open_sent_keepalive_is_an_fsm_error_5_1() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.data(id, &keepalive());
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (5, 1));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_sent_update_is_an_fsm_error_5_1() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(id, &Message::Update(announce("198.19.0.0/26")));
    assert_eq!(code_sub(&notification_sent(&acts, id)), (5, 1));
    assert!(updates(&acts).is_empty());
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_sent_route_refresh_is_an_fsm_error_5_1() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(
        id,
        &route_refresh(Family::Ipv4Unicast, RouteRefreshSubtype::Request),
    );
    assert_eq!(code_sub(&notification_sent(&acts, id)), (5, 1));
}

#[test]
fn open_sent_second_connection_is_tracked_until_its_open() {
    let mut h = Harness::new(ebgp());
    let out = h.reach_open_sent();
    let acts = h.accepted(IN);
    assert!(!closed(&acts, out), "the first connection stays");
    assert_eq!(kinds(&acts, IN), ["OPEN"]);
    assert_eq!(h.state(), State::OpenSent);
    // Either one failing leaves the other.
    let acts = h.closed(IN);
    assert!(downs(&acts).is_empty());
    assert_eq!(h.state(), State::OpenSent);
    h.msg(out, &Message::Open(peer_open()));
    assert_eq!(h.state(), State::OpenConfirm);
}

#[test]
fn open_sent_stale_timers_are_ignored() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    for t in [
        Timer::ConnectRetry,
        Timer::IdleHold,
        Timer::Keepalive(id),
        Timer::DelayOpen(id),
    ] {
        assert!(h.fire(t).is_empty(), "{t:?}");
    }
    assert_eq!(h.state(), State::OpenSent);
}

#[test]
fn open_sent_ignores_events_for_unknown_connections() {
    let mut h = Harness::new(ebgp());
    h.reach_open_sent();
    let other = ConnId {
        inbound: false,
        n: 99,
    };
    assert!(h.data(other, &keepalive()).is_empty());
    assert!(h.closed(other).is_empty());
    assert!(h.handle(Event::ConnectFailed(other)).is_empty());
    assert!(h.fire(Timer::Hold(other)).is_empty());
    assert_eq!(h.state(), State::OpenSent);
}

#[test]
fn open_sent_open_with_unknown_capabilities_is_accepted() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let mut caps = peer_caps(PEER_AS);
    caps.push(Capability::Unknown {
        code: 200,
        value: vec![1, 2, 3],
    });
    h.msg(id, &Message::Open(open_with(PEER_AS, 90, PEER_ID, caps)));
    assert_eq!(h.state(), State::OpenConfirm);
}

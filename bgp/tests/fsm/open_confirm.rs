//! RFC 4271 section 8.2.2, OpenConfirm state: both OPENs exchanged, the peer's KEEPALIVE is
//! awaited.

use crate::support::*;
use tortie_bgp::fsm::{Down, State, Stop, Timer};
use tortie_bgp::wire::notification::cease;
use tortie_bgp::wire::{Family, Message, Notification, RouteRefreshSubtype};

#[test]
fn open_confirm_manual_start_is_ignored() {
    let mut h = Harness::new(ebgp());
    h.reach_open_confirm();
    assert!(h.start().is_empty());
    assert_eq!(h.state(), State::OpenConfirm);
}

#[test]
fn open_confirm_manual_stop_sends_administrative_shutdown_and_goes_idle() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    let acts = h.stop(Stop::Shutdown(Some("bye".into())));
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (6, cease::ADMINISTRATIVE_SHUTDOWN));
    assert_eq!(n.shutdown_communication(), Some("bye"));
    assert!(closed(&acts, id));
    assert!(timer_cleared(&acts, Timer::Hold(id)));
    assert!(timer_cleared(&acts, Timer::Keepalive(id)));
    assert_eq!(state_change(&acts), Some((State::OpenConfirm, State::Idle)));
}

#[test]
fn open_confirm_automatic_stop_without_restart_delay_sends_cease_1_and_stays_down() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    let acts = h.stop(Stop::MaxPrefixes {
        restart_after: None,
    });
    assert_eq!(
        code_sub(&notification_sent(&acts, id)),
        (6, cease::MAX_PREFIXES)
    );
    assert_eq!(timer_set(&acts, Timer::IdleHold), None);
    assert_eq!(h.state(), State::Idle);
    assert_eq!(h.accepted(IN), vec![tortie_bgp::fsm::Action::Close(IN)]);
}

#[test]
fn open_confirm_hold_timer_expiry_before_keepalive_sends_4_0_and_goes_idle() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(id, &Message::Open(peer_open()));
    let acts = h.fire_at_deadline(&acts, Timer::Hold(id));
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (4, 0));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(state_change(&acts), Some((State::OpenConfirm, State::Idle)));
}

#[test]
fn open_confirm_keepalive_timer_expiry_sends_keepalive_and_rearms() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.msg(id, &Message::Open(peer_open()));
    let acts = h.fire_at_deadline(&acts, Timer::Keepalive(id));
    assert_eq!(kinds(&acts, id), ["KEEPALIVE"]);
    assert!(jittered(
        h.now,
        timer_set(&acts, Timer::Keepalive(id)).unwrap(),
        secs(30)
    ));
    assert_eq!(h.state(), State::OpenConfirm);
}

#[test]
fn open_confirm_tcp_fails_goes_idle_with_idle_hold() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    let acts = h.closed(id);
    assert!(nothing_sent(&acts));
    assert_eq!(the_down(&acts), Down::ConnectionClosed);
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(state_change(&acts), Some((State::OpenConfirm, State::Idle)));
}

#[test]
fn open_confirm_notification_goes_idle() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    let acts = h.msg(id, &notification(6, cease::OUT_OF_RESOURCES, vec![]));
    assert!(nothing_sent(&acts));
    assert_eq!(
        the_down(&acts),
        Down::NotificationReceived(Notification::new(6, 8, vec![]))
    );
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_confirm_notification_with_version_error_goes_idle() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    let acts = h.msg(id, &notification(2, 1, vec![0, 3]));
    assert!(nothing_sent(&acts));
    assert!(closed(&acts, id));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_confirm_keepalive_goes_established_and_reports_what_was_negotiated() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    h.advance(secs(1));
    let acts = h.data(id, &keepalive());
    assert!(nothing_sent(&acts));
    let n = established(&acts).expect("Established action");
    assert_eq!(
        (n.peer_as, n.peer_id, n.hold_time, n.keepalive),
        (PEER_AS, PEER_ID, 90, 30)
    );
    assert_eq!(h.session.negotiated(), Some(&n));
    assert_eq!(
        state_change(&acts),
        Some((State::OpenConfirm, State::Established))
    );
}

#[test]
fn open_confirm_update_is_an_fsm_error_5_2() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    let acts = h.data(
        id,
        &enc_with(&Message::Update(announce("198.19.0.0/26")), &as4_ctx()),
    );
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (5, 2));
    assert!(updates(&acts).is_empty());
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_confirm_route_refresh_is_an_fsm_error_5_2() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    let acts = h.msg(
        id,
        &route_refresh(Family::Ipv4Unicast, RouteRefreshSubtype::Request),
    );
    assert_eq!(code_sub(&notification_sent(&acts, id)), (5, 2));
}

#[test]
fn open_confirm_second_open_on_the_same_connection_is_an_fsm_error_5_2() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    let acts = h.msg(id, &Message::Open(peer_open()));
    assert_eq!(code_sub(&notification_sent(&acts, id)), (5, 2));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_confirm_header_error_sends_1_2() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    // A KEEPALIVE must be exactly 19 octets.
    let acts = h.data(id, &raw_msg(4, &[0]));
    let n = notification_sent(&acts, id);
    assert_eq!((n.code, n.subcode, n.data.clone()), (1, 2, vec![0, 20]));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn open_confirm_stale_timers_are_ignored() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_confirm();
    for t in [Timer::ConnectRetry, Timer::IdleHold, Timer::DelayOpen(id)] {
        assert!(h.fire(t).is_empty(), "{t:?}");
    }
    assert_eq!(h.state(), State::OpenConfirm);
}

//! RFC 4271 section 8.2.2, Active state: listening for the peer, or its connection is up and
//! the DelayOpenTimer runs.

use crate::support::*;
use tortie_bgp::fsm::{Action, ConnId, Down, PeerConfig, State, Stop, Timer};
use tortie_bgp::wire::Message;
use tortie_bgp::wire::notification::cease;

/// An active peer in Active: OpenSent, then the connection failed.
fn active() -> (Harness, Vec<Action>) {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let acts = h.closed(id);
    assert_eq!(h.state(), State::Active);
    (h, acts)
}

#[test]
fn active_manual_start_is_ignored() {
    let mut h = Harness::new(passive());
    h.start();
    assert!(h.start().is_empty());
    assert_eq!(h.state(), State::Active);
}

#[test]
fn active_manual_stop_goes_idle_and_stops_listening() {
    let mut h = Harness::new(passive());
    h.start();
    let acts = h.stop(Stop::Shutdown(None));
    assert!(nothing_sent(&acts));
    assert!(downs(&acts).is_empty());
    assert_eq!(state_change(&acts), Some((State::Active, State::Idle)));
    assert_eq!(h.accepted(IN), vec![Action::Close(IN)]);
}

#[test]
fn active_automatic_stop_goes_idle() {
    let mut h = Harness::new(passive());
    h.start();
    let acts = h.stop(Stop::MaxPrefixes {
        restart_after: Some(secs(60)),
    });
    assert_eq!(timer_set(&acts, Timer::IdleHold), Some(h.now + secs(60)));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn active_connect_retry_expiry_connects_out_and_goes_connect() {
    let (mut h, acts) = active();
    let acts = h.fire_at_deadline(&acts, Timer::ConnectRetry);
    assert!(connect_of(&acts).is_some());
    assert!(timer_set(&acts, Timer::ConnectRetry).is_some(), "restarted");
    assert_eq!(state_change(&acts), Some((State::Active, State::Connect)));
}

#[test]
fn active_connect_retry_expiry_of_a_passive_peer_never_connects_out() {
    let mut h = Harness::new(passive());
    h.start();
    let acts = h.fire(Timer::ConnectRetry);
    assert!(acts.is_empty(), "{acts:#?}");
    assert_eq!(h.state(), State::Active);
}

#[test]
fn active_inbound_connection_sends_open_and_goes_open_sent() {
    let mut h = Harness::new(passive());
    h.start();
    let acts = h.accepted(IN);
    assert_eq!(kinds(&acts, IN), ["OPEN"]);
    assert!(timer_cleared(&acts, Timer::ConnectRetry));
    assert_eq!(timer_set(&acts, Timer::Hold(IN)), Some(h.now + OPEN_HOLD));
    assert_eq!(state_change(&acts), Some((State::Active, State::OpenSent)));
}

#[test]
fn active_inbound_connection_with_delay_open_arms_the_timer_and_stays_active() {
    let mut h = Harness::new(PeerConfig {
        passive: true,
        ..delay_open(secs(5))
    });
    h.start();
    let acts = h.accepted(IN);
    assert!(nothing_sent(&acts));
    assert_eq!(
        timer_set(&acts, Timer::DelayOpen(IN)),
        Some(h.now + secs(5))
    );
    assert_eq!(h.state(), State::Active);
}

#[test]
fn active_delay_open_expiry_sends_open_and_goes_open_sent() {
    let mut h = Harness::new(PeerConfig {
        passive: true,
        ..delay_open(secs(5))
    });
    h.start();
    let acts = h.accepted(IN);
    let acts = h.fire_at_deadline(&acts, Timer::DelayOpen(IN));
    assert_eq!(kinds(&acts, IN), ["OPEN"]);
    assert_eq!(timer_set(&acts, Timer::Hold(IN)), Some(h.now + OPEN_HOLD));
    assert_eq!(state_change(&acts), Some((State::Active, State::OpenSent)));
}

#[test]
fn active_open_received_while_delay_open_runs_sends_open_and_keepalive_and_goes_open_confirm() {
    let mut h = Harness::new(PeerConfig {
        passive: true,
        ..delay_open(secs(5))
    });
    h.start();
    h.accepted(IN);
    let acts = h.msg(IN, &Message::Open(peer_open()));
    assert_eq!(kinds(&acts, IN), ["OPEN", "KEEPALIVE"]);
    assert!(timer_cleared(&acts, Timer::DelayOpen(IN)));
    assert_eq!(
        state_change(&acts),
        Some((State::Active, State::OpenConfirm))
    );
}

#[test]
fn active_tcp_fails_while_delay_open_runs_goes_idle_with_idle_hold() {
    let mut h = Harness::new(PeerConfig {
        passive: true,
        ..delay_open(secs(5))
    });
    h.start();
    h.accepted(IN);
    let acts = h.closed(IN);
    assert!(timer_cleared(&acts, Timer::DelayOpen(IN)));
    assert_eq!(the_down(&acts), Down::ConnectionClosed);
    assert!(
        timer_set(&acts, Timer::IdleHold).is_some(),
        "peer oscillation damping"
    );
    assert_eq!(state_change(&acts), Some((State::Active, State::Idle)));
}

#[test]
fn active_header_error_while_delay_open_runs_sends_1_1_and_goes_idle() {
    let mut h = Harness::new(PeerConfig {
        passive: true,
        ..delay_open(secs(5))
    });
    h.start();
    h.accepted(IN);
    let mut bad = keepalive();
    bad[0] = 0xfe;
    let acts = h.data(IN, &bad);
    assert_eq!(code_sub(&notification_sent(&acts, IN)), (1, 1));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn active_open_error_while_delay_open_runs_sends_2_6_and_goes_idle() {
    let mut h = Harness::new(PeerConfig {
        passive: true,
        ..delay_open(secs(5))
    });
    h.start();
    h.accepted(IN);
    let acts = h.msg(
        IN,
        &Message::Open(open_with(PEER_AS, 2, PEER_ID, peer_caps(PEER_AS))),
    );
    assert_eq!(code_sub(&notification_sent(&acts, IN)), (2, 6));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn active_notification_while_delay_open_runs_goes_idle() {
    let mut h = Harness::new(PeerConfig {
        passive: true,
        ..delay_open(secs(5))
    });
    h.start();
    h.accepted(IN);
    let acts = h.msg(IN, &notification(6, cease::CONNECTION_REJECTED, vec![]));
    assert!(nothing_sent(&acts));
    assert!(
        matches!(the_down(&acts), Down::NotificationReceived(n) if n.subcode == cease::CONNECTION_REJECTED)
    );
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn active_update_while_delay_open_runs_is_an_fsm_error_and_goes_idle() {
    let mut h = Harness::new(PeerConfig {
        passive: true,
        ..delay_open(secs(5))
    });
    h.start();
    h.accepted(IN);
    let acts = h.data(
        IN,
        &enc_with(&Message::Update(announce("198.19.0.0/26")), &as4_ctx()),
    );
    assert_eq!(code_sub(&notification_sent(&acts, IN)), (5, 0));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn active_second_inbound_connection_replaces_the_first_before_its_open() {
    let mut h = Harness::new(passive());
    h.start();
    h.accepted(IN);
    let second = ConnId::inbound(8);
    let acts = h.accepted(second);
    assert!(closed(&acts, IN), "the peer gave up on the first one");
    assert_eq!(kinds(&acts, second), ["OPEN"]);
    assert_eq!(h.state(), State::OpenSent);
}

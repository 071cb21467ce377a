//! RFC 4271 section 8.2.2, Idle state, with the idle hold of DampPeerOscillations.

use crate::support::*;
use tortie_bgp::fsm::{Action, ConnId, Down, Event, State, Stop, Timer};

#[test]
fn idle_is_the_initial_state() {
    let h = Harness::new(ebgp());
    assert_eq!(h.state(), State::Idle);
    assert!(h.session.negotiated().is_none());
}

#[test]
fn idle_manual_start_connects_out_arms_connect_retry_and_goes_connect() {
    let mut h = Harness::new(ebgp());
    let acts = h.start();
    let id = connect_of(&acts).expect("a connection attempt");
    assert!(!id.inbound);
    let retry = timer_set(&acts, Timer::ConnectRetry).expect("ConnectRetryTimer armed");
    assert!(
        jittered(h.now, retry, secs(5)),
        "connect retry is 5 s jittered"
    );
    assert!(nothing_sent(&acts));
    assert_eq!(state_change(&acts), Some((State::Idle, State::Connect)));
}

#[test]
fn idle_manual_start_of_a_passive_peer_listens_only_and_goes_active() {
    let mut h = Harness::new(passive());
    let acts = h.start();
    assert_eq!(connect_of(&acts), None, "a passive peer never connects out");
    assert_eq!(timer_set(&acts, Timer::ConnectRetry), None);
    assert_eq!(state_change(&acts), Some((State::Idle, State::Active)));
}

#[test]
fn idle_manual_stop_is_ignored() {
    let mut h = Harness::new(ebgp());
    let acts = h.stop(Stop::Shutdown(Some("maintenance".into())));
    assert_eq!(h.state(), State::Idle);
    assert!(nothing_sent(&acts));
    assert!(downs(&acts).is_empty());
    assert_eq!(state_change(&acts), None);
    // And the session can still be started afterwards.
    h.reach_connect();
}

#[test]
fn idle_automatic_stop_is_ignored() {
    let mut h = Harness::new(ebgp());
    let acts = h.stop(Stop::MaxPrefixes {
        restart_after: Some(secs(30)),
    });
    assert_eq!(h.state(), State::Idle);
    assert!(acts.is_empty(), "{acts:#?}");
}

#[test]
fn idle_automatic_stop_during_idle_hold_neither_cancels_nor_moves_the_automatic_start() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let failed = h.fail_session(id);
    let acts = h.stop(Stop::MaxPrefixes {
        restart_after: None,
    });
    assert!(acts.is_empty(), "{acts:#?}");
    let acts = h.fire_at_deadline(&failed, Timer::IdleHold);
    assert!(
        connect_of(&acts).is_some(),
        "the automatic start still happens"
    );
}

#[test]
fn idle_refuses_inbound_connections_before_start() {
    let mut h = Harness::new(ebgp());
    let acts = h.accepted(IN);
    assert_eq!(acts, vec![Action::Close(IN)]);
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn idle_ignores_timers_tcp_events_and_data_before_start() {
    let mut h = Harness::new(ebgp());
    let out = ConnId {
        inbound: false,
        n: 0,
    };
    for t in [
        Timer::ConnectRetry,
        Timer::IdleHold,
        Timer::Hold(out),
        Timer::Keepalive(out),
        Timer::DelayOpen(out),
    ] {
        let acts = h.fire(t);
        assert!(acts.is_empty(), "{t:?}: {acts:#?}");
    }
    assert!(h.handle(Event::ConnectFailed(out)).is_empty());
    assert!(h.closed(out).is_empty());
    assert!(h.data(out, &keepalive()).is_empty());
    // A connection the session never asked for is closed, not used.
    assert_eq!(h.connected(out), vec![Action::Close(out)]);
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn idle_hold_expiry_is_an_automatic_start_that_connects_out() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let failed = h.fail_session(id);
    assert!(matches!(the_down(&failed), Down::NotificationReceived(_)));
    let acts = h.fire_at_deadline(&failed, Timer::IdleHold);
    let next = connect_of(&acts).expect("AutomaticStart connects out");
    assert_ne!(next, id, "a fresh connection id");
    assert!(timer_set(&acts, Timer::ConnectRetry).is_some());
    assert_eq!(state_change(&acts), Some((State::Idle, State::Connect)));
}

#[test]
fn idle_hold_expiry_of_a_passive_peer_goes_active_without_connecting() {
    let mut h = Harness::new(passive());
    h.start();
    h.accepted(IN);
    let failed = h.closed(IN); // OpenSent, TcpConnectionFails: Active
    assert_eq!(h.state(), State::Active);
    assert!(
        timer_set(&failed, Timer::ConnectRetry).is_none(),
        "passive: no retry timer"
    );
    // Now an error that goes to Idle: hold timer expiry in OpenSent.
    let acts = h.accepted(IN);
    let acts = h.fire_at_deadline(&acts, Timer::Hold(IN));
    assert_eq!(h.state(), State::Idle);
    let acts = h.fire_at_deadline(&acts, Timer::IdleHold);
    assert_eq!(connect_of(&acts), None);
    assert_eq!(h.state(), State::Active);
}

#[test]
fn idle_hold_refuses_inbound_connections() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    h.fail_session(id);
    let acts = h.accepted(IN);
    assert_eq!(acts, vec![Action::Close(IN)]);
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn idle_manual_start_during_idle_hold_starts_at_once() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    h.fail_session(id);
    let acts = h.start();
    assert!(connect_of(&acts).is_some());
    assert!(timer_cleared(&acts, Timer::IdleHold));
    assert_eq!(h.state(), State::Connect);
}

#[test]
fn idle_manual_stop_during_idle_hold_cancels_the_automatic_start() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let failed = h.fail_session(id);
    let acts = h.stop(Stop::Shutdown(None));
    assert!(timer_cleared(&acts, Timer::IdleHold));
    assert!(nothing_sent(&acts));
    // A late IdleHoldTimer event (the driver raced the clear) changes nothing.
    let acts = h.fire_at_deadline(&failed, Timer::IdleHold);
    assert!(acts.is_empty(), "{acts:#?}");
    assert_eq!(h.state(), State::Idle);
    assert_eq!(h.accepted(IN), vec![Action::Close(IN)]);
}

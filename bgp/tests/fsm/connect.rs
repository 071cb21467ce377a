//! RFC 4271 section 8.2.2, Connect state: our outbound connection is being opened, or it is up
//! and the DelayOpenTimer runs.

use crate::support::*;
use tortie_bgp::fsm::{Action, ConnId, Down, Event, State, Stop, Timer};
use tortie_bgp::wire::notification::cease;
use tortie_bgp::wire::{Message, Notification};

#[test]
fn connect_manual_start_is_ignored() {
    let mut h = Harness::new(ebgp());
    h.reach_connect();
    let acts = h.start();
    assert!(acts.is_empty(), "{acts:#?}");
    assert_eq!(h.state(), State::Connect);
}

#[test]
fn connect_manual_stop_drops_the_attempt_and_goes_idle_for_good() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let acts = h.stop(Stop::Shutdown(Some("bye".into())));
    assert!(closed(&acts, id));
    assert!(nothing_sent(&acts), "no TCP yet, so no NOTIFICATION");
    assert!(timer_cleared(&acts, Timer::ConnectRetry));
    assert_eq!(
        timer_set(&acts, Timer::IdleHold),
        None,
        "no automatic restart"
    );
    assert!(downs(&acts).is_empty());
    assert_eq!(state_change(&acts), Some((State::Connect, State::Idle)));
    assert!(h.fire(Timer::ConnectRetry).is_empty());
}

#[test]
fn connect_automatic_stop_with_restart_delay_goes_idle_and_restarts_after_it() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let acts = h.stop(Stop::MaxPrefixes {
        restart_after: Some(secs(30)),
    });
    assert!(closed(&acts, id));
    assert_eq!(h.state(), State::Idle);
    assert_eq!(timer_set(&acts, Timer::IdleHold), Some(h.now + secs(30)));
}

#[test]
fn connect_retry_expiry_drops_the_attempt_and_connects_again() {
    let mut h = Harness::new(ebgp());
    let first = h.start();
    let id = connect_of(&first).unwrap();
    let acts = h.fire_at_deadline(&first, Timer::ConnectRetry);
    assert!(
        closed(&acts, id),
        "the attempt still in progress is abandoned"
    );
    let again = connect_of(&acts).expect("a new attempt");
    assert_ne!(again, id);
    let retry = timer_set(&acts, Timer::ConnectRetry).expect("ConnectRetryTimer restarted");
    assert!(jittered(h.now, retry, secs(5)));
    assert_eq!(h.state(), State::Connect);
    assert_eq!(state_change(&acts), None);
    // The abandoned attempt completing late is closed, the new one proceeds.
    assert_eq!(h.connected(id), vec![Action::Close(id)]);
    h.connected(again);
    assert_eq!(h.state(), State::OpenSent);
}

#[test]
fn connect_tcp_connected_sends_open_arms_the_large_hold_timer_and_goes_open_sent() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let acts = h.connected(id);
    assert!(timer_cleared(&acts, Timer::ConnectRetry));
    assert_eq!(kinds(&acts, id), ["OPEN"]);
    let open = open_sent(&acts, id);
    assert_eq!(
        (open.my_as, open.hold_time, open.bgp_id),
        (LOCAL_AS as u16, 90, LOCAL_ID)
    );
    assert_eq!(open.four_octet_as(), Some(LOCAL_AS));
    assert_eq!(
        timer_set(&acts, Timer::Hold(id)),
        Some(h.now + OPEN_HOLD),
        "4 minutes"
    );
    assert_eq!(state_change(&acts), Some((State::Connect, State::OpenSent)));
}

#[test]
fn connect_tcp_connected_with_delay_open_arms_the_delay_open_timer_and_stays_connect() {
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    let acts = h.connected(id);
    assert!(nothing_sent(&acts), "OPEN waits");
    assert!(timer_cleared(&acts, Timer::ConnectRetry));
    assert_eq!(
        timer_set(&acts, Timer::DelayOpen(id)),
        Some(h.now + secs(10))
    );
    assert_eq!(h.state(), State::Connect);
}

#[test]
fn connect_delay_open_expiry_sends_open_and_goes_open_sent() {
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    let up = h.connected(id);
    let acts = h.fire_at_deadline(&up, Timer::DelayOpen(id));
    assert_eq!(kinds(&acts, id), ["OPEN"]);
    assert_eq!(timer_set(&acts, Timer::Hold(id)), Some(h.now + OPEN_HOLD));
    assert_eq!(state_change(&acts), Some((State::Connect, State::OpenSent)));
}

#[test]
fn connect_open_received_while_delay_open_runs_sends_open_and_keepalive_and_goes_open_confirm() {
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    h.connected(id);
    h.advance(secs(2));
    let acts = h.msg(id, &Message::Open(peer_open()));
    assert!(timer_cleared(&acts, Timer::DelayOpen(id)));
    assert_eq!(kinds(&acts, id), ["OPEN", "KEEPALIVE"]);
    assert_eq!(timer_set(&acts, Timer::Hold(id)), Some(h.now + secs(90)));
    assert!(jittered(
        h.now,
        timer_set(&acts, Timer::Keepalive(id)).unwrap(),
        secs(30)
    ));
    assert_eq!(
        state_change(&acts),
        Some((State::Connect, State::OpenConfirm))
    );
    // The DelayOpenTimer firing late changes nothing.
    assert!(h.fire(Timer::DelayOpen(id)).is_empty());
}

#[test]
fn connect_failed_goes_active_and_retries_on_the_connect_retry_timer() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let acts = h.handle(Event::ConnectFailed(id));
    assert_eq!(the_down(&acts), Down::ConnectFailed);
    assert!(
        timer_set(&acts, Timer::IdleHold).is_none(),
        "a refused connect is not damped"
    );
    let retry = timer_set(&acts, Timer::ConnectRetry).expect("connect retry armed");
    assert!(jittered(h.now, retry, secs(5)));
    assert_eq!(state_change(&acts), Some((State::Connect, State::Active)));
    let again = h.fire_at_deadline(&acts, Timer::ConnectRetry);
    assert!(
        connect_of(&again).is_some_and(|n| n != id),
        "a fresh attempt"
    );
}

#[test]
fn connect_failed_still_accepts_the_peers_connection() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    h.handle(Event::ConnectFailed(id));
    let inbound = ConnId::inbound(1);
    let acts = h.accepted(inbound);
    assert_eq!(kinds(&acts, inbound), ["OPEN"]);
    assert_eq!(h.state(), State::OpenSent);
}

#[test]
fn connect_tcp_closed_before_it_was_up_is_a_connect_failure() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let acts = h.closed(id);
    assert_eq!(the_down(&acts), Down::ConnectFailed);
    assert_eq!(h.state(), State::Active);
}

#[test]
fn connect_tcp_fails_while_delay_open_runs_restarts_connect_retry_and_goes_active() {
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    h.connected(id);
    let acts = h.closed(id);
    assert!(timer_cleared(&acts, Timer::DelayOpen(id)));
    assert!(jittered(
        h.now,
        timer_set(&acts, Timer::ConnectRetry).unwrap(),
        secs(5)
    ));
    assert_eq!(state_change(&acts), Some((State::Connect, State::Active)));
    // And the ConnectRetryTimer brings it back to Connect.
    let acts = h.fire_at_deadline(&acts, Timer::ConnectRetry);
    assert!(connect_of(&acts).is_some());
    assert_eq!(h.state(), State::Connect);
}

#[test]
fn connect_inbound_connection_supersedes_the_attempt_and_goes_open_sent() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let acts = h.accepted(IN);
    assert!(closed(&acts, id), "the outbound attempt is abandoned");
    assert!(timer_cleared(&acts, Timer::ConnectRetry));
    assert_eq!(kinds(&acts, IN), ["OPEN"]);
    assert_eq!(timer_set(&acts, Timer::Hold(IN)), Some(h.now + OPEN_HOLD));
    assert_eq!(h.state(), State::OpenSent);
}

#[test]
fn connect_header_error_while_delay_open_runs_sends_1_1_and_goes_idle() {
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    h.connected(id);
    let mut bad = enc(&Message::Open(peer_open()));
    bad[3] = 0;
    let acts = h.data(id, &bad);
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (1, 1));
    assert!(closed(&acts, id));
    assert_eq!(the_down(&acts), Down::NotificationSent(n));
    assert!(timer_set(&acts, Timer::IdleHold).is_some());
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn connect_open_error_while_delay_open_runs_sends_2_2_and_goes_idle() {
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    h.connected(id);
    let acts = h.msg(
        id,
        &Message::Open(open_with(65000, 90, PEER_ID, peer_caps(65000))),
    );
    assert_eq!(code_sub(&notification_sent(&acts, id)), (2, 2));
    assert_eq!(
        kinds(&acts, id),
        ["NOTIFICATION"],
        "no OPEN of ours before the error"
    );
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn connect_notification_while_delay_open_runs_goes_idle_without_reply() {
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    h.connected(id);
    let acts = h.msg(id, &notification(2, 1, vec![0, 4]));
    assert!(nothing_sent(&acts));
    assert!(closed(&acts, id));
    assert_eq!(
        the_down(&acts),
        Down::NotificationReceived(Notification::new(2, 1, vec![0, 4]))
    );
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn connect_keepalive_while_delay_open_runs_is_an_fsm_error_and_goes_idle() {
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    h.connected(id);
    let acts = h.data(id, &keepalive());
    // RFC 6608: no OpenSent/OpenConfirm/Established subcode applies; 0 is "unspecified".
    assert_eq!(code_sub(&notification_sent(&acts, id)), (5, 0));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn connect_manual_stop_while_delay_open_runs_sends_cease() {
    // SendNOTIFICATIONwithoutOPEN (RFC 4271 section 8.1.1): TCP is up, so the peer hears why.
    let mut h = Harness::new(delay_open(secs(10)));
    let id = h.reach_connect();
    h.connected(id);
    let acts = h.stop(Stop::Shutdown(None));
    assert_eq!(
        code_sub(&notification_sent(&acts, id)),
        (6, cease::ADMINISTRATIVE_SHUTDOWN)
    );
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn connect_stale_hold_and_keepalive_timers_are_ignored() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    assert!(h.fire(Timer::Hold(id)).is_empty());
    assert!(h.fire(Timer::Keepalive(id)).is_empty());
    assert!(h.fire(Timer::IdleHold).is_empty());
    assert_eq!(h.state(), State::Connect);
}

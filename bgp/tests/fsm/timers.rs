//! Hold time negotiation (RFC 4271 sections 4.2 and 4.4) and the Hold and Keepalive timers
//! (sections 8.2.2 and 10), restarted lazily: a timer that fires re-arms itself if a message
//! arrived (hold) or was sent (keepalive) since it was set.

use crate::support::*;
use tortie_bgp::fsm::{Action, PeerConfig, State, Timer};
use tortie_bgp::wire::Message;

fn with_hold(ours: u16) -> PeerConfig {
    PeerConfig {
        hold_time: ours,
        ..ebgp()
    }
}

fn negotiate(ours: u16, theirs: u16) -> (Harness, tortie_bgp::fsm::ConnId, Vec<Action>) {
    let mut h = Harness::new(with_hold(ours));
    let id = h.reach_open_sent();
    let acts = h.msg(
        id,
        &Message::Open(open_with(PEER_AS, theirs, PEER_ID, peer_caps(PEER_AS))),
    );
    assert_eq!(h.state(), State::OpenConfirm);
    (h, id, acts)
}

#[test]
fn hold_time_is_the_smaller_of_both_when_the_peer_proposes_less() {
    let (h, id, acts) = negotiate(90, 30);
    assert_eq!(timer_set(&acts, Timer::Hold(id)), Some(h.now + secs(30)));
    assert!(jittered(
        h.now,
        timer_set(&acts, Timer::Keepalive(id)).unwrap(),
        secs(10)
    ));
}

#[test]
fn hold_time_is_the_smaller_of_both_when_we_propose_less() {
    let (h, id, acts) = negotiate(9, 240);
    assert_eq!(timer_set(&acts, Timer::Hold(id)), Some(h.now + secs(9)));
    assert!(jittered(
        h.now,
        timer_set(&acts, Timer::Keepalive(id)).unwrap(),
        secs(3)
    ));
}

#[test]
fn hold_time_and_keepalive_are_in_negotiated() {
    let mut h = Harness::new(with_hold(60));
    let (_, acts) = h.reach_established_with(&open_with(PEER_AS, 45, PEER_ID, peer_caps(PEER_AS)));
    let n = established(&acts).unwrap();
    assert_eq!((n.hold_time, n.keepalive), (45, 15));
}

#[test]
fn our_open_carries_the_configured_hold_time() {
    let mut h = Harness::new(with_hold(30));
    let id = h.reach_connect();
    let acts = h.connected(id);
    assert_eq!(open_sent(&acts, id).hold_time, 30);
}

#[test]
fn hold_time_zero_from_the_peer_means_no_hold_and_no_keepalive_timers() {
    let (mut h, id, acts) = negotiate(90, 0);
    assert!(
        timer_cleared(&acts, Timer::Hold(id)),
        "the large OpenSent hold timer is stopped"
    );
    assert_eq!(timer_set(&acts, Timer::Hold(id)), None);
    assert_eq!(timer_set(&acts, Timer::Keepalive(id)), None);
    assert_eq!(
        kinds(&acts, id),
        ["KEEPALIVE"],
        "the KEEPALIVE answering the OPEN is still sent"
    );
    let acts = h.data(id, &keepalive());
    assert_eq!(established(&acts).unwrap().hold_time, 0);
    // Hours of silence, and stale timer events, change nothing.
    h.advance(secs(10_000));
    assert!(h.fire(Timer::Hold(id)).is_empty());
    assert!(h.fire(Timer::Keepalive(id)).is_empty());
    assert_eq!(h.state(), State::Established);
}

#[test]
fn hold_time_zero_from_us_means_no_timers_either() {
    let (_, id, acts) = negotiate(0, 90);
    assert_eq!(timer_set(&acts, Timer::Hold(id)), None);
    assert_eq!(timer_set(&acts, Timer::Keepalive(id)), None);
}

#[test]
fn keepalive_time_is_one_third_of_the_hold_time_with_jitter() {
    let (h, id, acts) = negotiate(90, 90);
    let at = timer_set(&acts, Timer::Keepalive(id)).unwrap();
    assert!(jittered(h.now, at, secs(30)), "{:?}", at - h.now);
}

#[test]
fn keepalives_are_never_sent_more_than_once_a_second() {
    // Hold 3 s: keepalive 1 s; jitter must not bring it below 1 s (RFC 4271 section 4.4).
    let (mut h, id, mut acts) = negotiate(3, 3);
    h.data(id, &keepalive());
    for _ in 0..50 {
        let at = timer_set(&acts, Timer::Keepalive(id)).unwrap();
        assert!(at - h.now >= secs(1), "{:?}", at - h.now);
        acts = h.fire_at_deadline(&acts, Timer::Keepalive(id));
        assert_eq!(kinds(&acts, id), ["KEEPALIVE"]);
        h.data(id, &keepalive());
    }
}

#[test]
fn keepalive_timer_expiry_in_established_sends_keepalive_and_rearms() {
    let (mut h, id, acts) = negotiate(90, 90);
    h.data(id, &keepalive());
    let mut acts = acts;
    for _ in 0..10 {
        acts = h.fire_at_deadline(&acts, Timer::Keepalive(id));
        assert_eq!(kinds(&acts, id), ["KEEPALIVE"]);
        assert!(jittered(
            h.now,
            timer_set(&acts, Timer::Keepalive(id)).unwrap(),
            secs(30)
        ));
        h.data(id, &keepalive());
    }
    assert_eq!(h.state(), State::Established);
}

#[test]
fn keepalive_timer_is_rearmed_lazily_after_an_update_was_sent() {
    let (mut h, id, acts) = negotiate(90, 90);
    h.data(id, &keepalive());
    let due = timer_set(&acts, Timer::Keepalive(id)).unwrap();
    // An UPDATE goes out shortly before the timer fires: it counts as the keepalive.
    h.advance_to(due - secs(2));
    let sent_at = h.now;
    h.session
        .send_updates(&[announce("198.19.0.0/26")], h.now)
        .unwrap();
    h.advance_to(due);
    let acts = h.fire(Timer::Keepalive(id));
    assert!(
        nothing_sent(&acts),
        "no KEEPALIVE right after an UPDATE: {acts:#?}"
    );
    let next = timer_set(&acts, Timer::Keepalive(id)).expect("re-armed");
    assert!(jittered(sent_at, next, secs(30)), "{:?}", next - sent_at);
    // When it fires again with nothing sent since, the KEEPALIVE goes out.
    let acts = h.fire_at_deadline(&acts, Timer::Keepalive(id));
    assert_eq!(kinds(&acts, id), ["KEEPALIVE"]);
}

#[test]
fn keepalive_timer_fires_once_per_keepalive_without_updates() {
    // The jittered deadline is the real one: firing at it always sends (no second wake-up).
    let (mut h, id, mut acts) = negotiate(90, 90);
    h.data(id, &keepalive());
    let mut sends = 0;
    let mut wakeups = 0;
    let end = h.now + secs(3600);
    while h.now < end {
        acts = h.fire_at_deadline(&acts, Timer::Keepalive(id));
        wakeups += 1;
        sends += kinds(&acts, id).len();
        h.data(id, &keepalive());
    }
    assert_eq!(sends, wakeups);
    assert!(
        (120..=160).contains(&sends),
        "{sends} keepalives in an hour at 22.5..30 s"
    );
}

#[test]
fn hold_timer_is_rearmed_lazily_while_keepalives_arrive_in_time() {
    let (mut h, id, acts) = negotiate(90, 90);
    h.data(id, &keepalive());
    let mut hold = timer_set(&acts, Timer::Hold(id)).unwrap();
    // The peer sends a KEEPALIVE every 30 s for an hour; the hold timer fires at each deadline
    // it was given and must only ever re-arm.
    let end = h.now + secs(3600);
    let mut next_ka = h.now + secs(30);
    while h.now < end {
        if next_ka <= hold {
            h.advance_to(next_ka);
            assert!(h.data(id, &keepalive()).is_empty());
            next_ka += secs(30);
        } else {
            h.advance_to(hold);
            let acts = h.fire(Timer::Hold(id));
            assert!(
                nothing_sent(&acts),
                "hold timer expired at {:?}: {acts:#?}",
                h.now - h.t0
            );
            hold = timer_set(&acts, Timer::Hold(id)).expect("re-armed");
            assert!(hold > h.now);
        }
    }
    assert_eq!(h.state(), State::Established);
}

#[test]
fn hold_timer_expires_exactly_hold_time_after_the_last_message() {
    let (mut h, id, acts) = negotiate(90, 90);
    h.data(id, &keepalive());
    h.advance(secs(40));
    h.data(id, &keepalive());
    let last = h.now;
    let acts = h.fire_at_deadline(&acts, Timer::Hold(id));
    let acts = h.fire_at_deadline(&acts, Timer::Hold(id));
    assert_eq!(h.now, last + secs(90));
    assert_eq!(code_sub(&notification_sent(&acts, id)), (4, 0));
}

#[test]
fn open_sent_hold_timer_is_not_restarted_by_incoming_bytes() {
    // Only the OPEN answers OpenSent; partial bytes of it do not extend the 4 minutes.
    let mut h = Harness::new(ebgp());
    let id = h.reach_connect();
    let up = h.connected(id);
    let open = enc(&Message::Open(peer_open()));
    h.advance(secs(200));
    h.data(id, &open[..10]);
    let acts = h.fire_at_deadline(&up, Timer::Hold(id));
    assert_eq!(code_sub(&notification_sent(&acts, id)), (4, 0));
}

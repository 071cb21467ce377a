//! Idle hold after errors (RFC 4271 section 8.1.1, DampPeerOscillations): the delay before the
//! automatic restart doubles per consecutive failure up to a ceiling, with the jitter of
//! section 10 (0.75..1.0 of the base), and starts over once a session stayed up long enough.

use std::time::{Duration, Instant};

use crate::support::*;
use tortie_bgp::fsm::{Action, PeerConfig, State, Stop, Timer};

/// Fails one session attempt (the peer refuses our OPEN); returns the idle hold delay and
/// moves the clock to its deadline. The first call starts the session (ManualStart); later ones fire the IdleHoldTimer
/// the previous failure armed (AutomaticStart).
fn fail_once(h: &mut Harness) -> Duration {
    let acts = if h.now == h.t0 {
        h.start()
    } else {
        h.fire(Timer::IdleHold)
    };
    let id = connect_of(&acts).expect("connects out");
    let acts = h.fail_session(id);
    let at = timer_set(&acts, Timer::IdleHold).expect("idle hold armed");
    let delay = at - h.now;
    h.advance_to(at);
    delay
}

fn within(delay: Duration, base: Duration) -> bool {
    delay >= base.mul_f64(0.75) && delay <= base
}

#[test]
fn idle_hold_doubles_per_consecutive_failure_up_to_the_max_with_jitter() {
    let mut h = Harness::new(ebgp());
    let bases = [1, 2, 4, 8, 16, 32, 60, 60, 60];
    for base in bases {
        let d = fail_once(&mut h);
        assert!(within(d, secs(base)), "base {base} s, got {d:?}");
    }
}

#[test]
fn idle_hold_grows_across_different_kinds_of_failure() {
    let mut h = Harness::new(ebgp());
    assert!(within(fail_once(&mut h), secs(1)));
    // Then a hold timer expiry in OpenSent.
    let id = connect_of(&h.fire(Timer::IdleHold)).unwrap();
    let up = h.connected(id);
    let acts = h.fire_at_deadline(&up, Timer::Hold(id));
    let d = timer_set(&acts, Timer::IdleHold).unwrap() - h.now;
    assert!(within(d, secs(2)), "{d:?}");
    // Then a NOTIFICATION from the peer in OpenConfirm.
    h.advance(d);
    let id = connect_of(&h.fire(Timer::IdleHold)).unwrap();
    h.connected(id);
    h.msg(id, &tortie_bgp::wire::Message::Open(peer_open()));
    let acts = h.msg(id, &notification(6, 8, vec![]));
    let d = timer_set(&acts, Timer::IdleHold).unwrap() - h.now;
    assert!(within(d, secs(4)), "{d:?}");
}

#[test]
fn idle_hold_resets_after_a_session_stayed_established_for_stable_after() {
    let mut h = Harness::new(ebgp());
    for _ in 0..4 {
        fail_once(&mut h); // 1, 2, 4, 8
    }
    let id = connect_of(&h.fire(Timer::IdleHold)).unwrap();
    h.connected(id);
    h.msg(id, &tortie_bgp::wire::Message::Open(peer_open()));
    h.data(id, &keepalive());
    assert_eq!(h.state(), State::Established);
    h.advance(secs(60));
    let acts = h.closed(id);
    let d = timer_set(&acts, Timer::IdleHold).unwrap() - h.now;
    assert!(within(d, secs(1)), "back to the initial idle hold: {d:?}");
}

#[test]
fn idle_hold_keeps_growing_after_a_session_that_flapped_quickly() {
    let mut h = Harness::new(ebgp());
    for _ in 0..3 {
        fail_once(&mut h); // 1, 2, 4
    }
    let id = connect_of(&h.fire(Timer::IdleHold)).unwrap();
    h.connected(id);
    h.msg(id, &tortie_bgp::wire::Message::Open(peer_open()));
    h.data(id, &keepalive());
    h.advance(secs(59));
    let acts = h.closed(id);
    let d = timer_set(&acts, Timer::IdleHold).unwrap() - h.now;
    assert!(within(d, secs(8)), "{d:?}");
}

#[test]
fn inbound_connections_during_idle_hold_are_refused_and_accepted_after_it() {
    let mut h = Harness::new(passive());
    h.start();
    h.accepted(IN);
    let acts = h.data(IN, &keepalive()); // FSM error in OpenSent: Idle, idle hold
    assert_eq!(h.state(), State::Idle);
    let at = timer_set(&acts, Timer::IdleHold).unwrap();
    let again = tortie_bgp::fsm::ConnId::inbound(8);
    assert_eq!(h.accepted(again), vec![Action::Close(again)]);
    h.advance_to(at);
    h.fire(Timer::IdleHold);
    assert_eq!(h.state(), State::Active);
    let acts = h.accepted(again);
    assert_eq!(kinds(&acts, again), ["OPEN"]);
}

#[test]
fn manual_start_resets_the_backoff() {
    let mut h = Harness::new(ebgp());
    for _ in 0..4 {
        fail_once(&mut h);
    }
    h.stop(Stop::Shutdown(None));
    let acts = h.start();
    let id = connect_of(&acts).unwrap();
    let acts = h.fail_session(id);
    let d = timer_set(&acts, Timer::IdleHold).unwrap() - h.now;
    assert!(within(d, secs(1)), "{d:?}");
}

#[test]
fn idle_hold_honours_configured_initial_and_max() {
    let cfg = PeerConfig {
        idle_hold: secs(5),
        idle_hold_max: secs(12),
        ..ebgp()
    };
    let mut h = Harness::new(cfg);
    for base in [5, 10, 12, 12] {
        let d = fail_once(&mut h);
        assert!(within(d, secs(base)), "base {base}: {d:?}");
    }
}

fn first_delays(seed: u64) -> Vec<Duration> {
    let mut h = Harness::new(PeerConfig {
        jitter_seed: seed,
        ..ebgp()
    });
    (0..5).map(|_| fail_once(&mut h)).collect()
}

#[test]
fn jitter_is_deterministic_for_a_seed_and_differs_between_neighbouring_seeds() {
    // 42 and 43 differ in the lowest bit only, as the seeds of two peers often do.
    assert_eq!(first_delays(42), first_delays(42));
    assert_ne!(first_delays(42), first_delays(43));
}

#[test]
fn jitter_spreads_over_the_whole_range() {
    let factors: Vec<f64> = (0..500u64)
        .map(|seed| {
            let mut h = Harness::new(PeerConfig {
                jitter_seed: seed * 7919,
                ..ebgp()
            });
            fail_once(&mut h).as_secs_f64()
        })
        .collect();
    let min = factors.iter().cloned().fold(f64::MAX, f64::min);
    let max = factors.iter().cloned().fold(0.0, f64::max);
    assert!(min >= 0.75 && max <= 1.0, "{min}..{max}");
    assert!(min < 0.76 && max > 0.99, "spread {min}..{max}");
}

#[test]
fn the_session_never_reads_the_clock() {
    // The same events at the same offsets from two far-apart simulated clocks give the same
    // timers at the same offsets: nothing depends on the real time.
    let run = |base: Instant| {
        let mut h = Harness::new(ebgp());
        h.t0 = base;
        h.now = base;
        let mut offsets = Vec::new();
        let mut note = |acts: &[Action]| {
            for a in acts {
                if let Action::SetTimer(t, at) = a {
                    offsets.push((*t, *at - base));
                }
            }
        };
        let acts = h.start();
        note(&acts);
        let id = connect_of(&acts).unwrap();
        h.advance(secs(3));
        note(&h.fail_session(id));
        offsets
    };
    let now = Instant::now();
    assert_eq!(run(now), run(now + secs(1_000_000)));
}

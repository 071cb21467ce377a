//! Max-prefix (RFC 4486): a peer over its limit is stopped with Cease / Maximum Number of
//! Prefixes Reached, loses its routes, and comes back after the restart delay if one is set.

use crate::sim::{NbrCfg, Net, Sid, SpeakerCfg};
use crate::{AS, block, ip};
use std::time::Duration;
use tortie_bgp::fsm::State;

const LIMIT: u32 = 3;
const DELAY: Duration = Duration::from_secs(30);

/// A (198.18.0.1) limits B (198.18.0.2, AS 65002) to `LIMIT` prefixes; B announces `n`.
/// C (198.18.0.3) is another iBGP peer of A.
fn lab(n: usize, restart: Option<Duration>) -> (Net, Sid, Sid, Sid) {
    let mut net = Net::new();
    let a = net.add(SpeakerCfg::new("A", AS, ip(1)));
    let b = net.add(SpeakerCfg::new("B", 65002, ip(2)));
    let c = net.add(SpeakerCfg::new("C", AS, ip(3)));
    let limited = NbrCfg {
        max_prefixes: Some(LIMIT),
        max_prefixes_restart: restart,
        ..NbrCfg::default()
    };
    net.peer_with(a, b, limited, NbrCfg::default());
    net.peer(a, c);
    for i in 0..n {
        net.originate(b, &block(i));
    }
    net.run_until_quiet();
    (net, a, b, c)
}

#[test]
fn max_prefix_at_the_limit_keeps_the_session() {
    let (net, a, b, _) = lab(LIMIT as usize, None);
    assert_eq!(net.state(a, b), State::Established);
    assert_eq!(net.fib(a).len(), LIMIT as usize);
    assert!(net.notifications(a, b).is_empty());
}

#[test]
fn max_prefix_overrun_sends_cease_maximum_number_of_prefixes_reached() {
    let (net, a, b, _) = lab(LIMIT as usize + 1, None);
    let sent = net.notifications(a, b);
    assert_eq!(sent.len(), 1);
    // Marker, length 21, type NOTIFICATION, code 6 (Cease), subcode 1 (RFC 4486).
    let mut want = vec![0xff; 16];
    want.extend_from_slice(&[0, 21, 3, 6, 1]);
    assert_eq!(sent[0].frame.as_ref(), want.as_slice());
    assert_eq!(net.max_prefix_stops(a), 1);
    assert_eq!(net.state(a, b), State::Idle);
    assert_ne!(net.state(b, a), State::Established);
}

#[test]
fn max_prefix_overrun_removes_the_peers_routes() {
    let (net, a, _, c) = lab(LIMIT as usize + 1, None);
    for i in 0..=LIMIT as usize {
        assert!(net.rib_paths(a, &block(i)).is_empty());
        assert!(net.rib_paths(c, &block(i)).is_empty());
    }
    assert!(net.fib(a).is_empty());
}

#[test]
fn max_prefix_without_restart_delay_stays_down() {
    let (mut net, a, b, _) = lab(LIMIT as usize + 1, None);
    net.advance(Duration::from_secs(600));
    assert_eq!(net.state(a, b), State::Idle);
    assert_eq!(net.max_prefix_stops(a), 1);
}

#[test]
fn max_prefix_session_comes_back_after_the_restart_delay() {
    let (mut net, a, b, _) = lab(LIMIT as usize + 1, Some(DELAY));
    net.withdraw(b, &block(LIMIT as usize));
    // B keeps trying to connect; A refuses while its idle hold runs.
    net.advance(DELAY - Duration::from_secs(1));
    assert_eq!(net.state(a, b), State::Idle);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.state(a, b), State::Established);
    assert_eq!(net.fib(a).len(), LIMIT as usize);
    assert_eq!(net.max_prefix_stops(a), 1);
}

#[test]
fn max_prefix_overrun_again_after_the_delay_stops_the_session_again() {
    let (mut net, a, b, _) = lab(LIMIT as usize + 1, Some(DELAY));
    net.advance(DELAY + Duration::from_secs(1));
    assert_eq!(net.max_prefix_stops(a), 2);
    assert_eq!(net.state(a, b), State::Idle);
    assert_eq!(net.notifications(a, b).len(), 2);
}

/// The UPDATE that crosses the limit is applied before the session is stopped, so its routes
/// reach the FIB and the other peers and are withdrawn again a moment later. Only the limit
/// check should stop them: RFC 4486 makes the limit the point where the peer's routes stop
/// being accepted.
#[test]
fn max_prefix_overrun_routes_never_reach_the_fib_or_other_peers() {
    let (net, a, _, c) = lab(LIMIT as usize + 1, None);
    for i in 0..=LIMIT as usize {
        // A removal of a prefix never installed is harmless; an installation is not.
        let history = net.fib_history(a, &block(i));
        assert!(
            !history.iter().any(Option::is_some),
            "{} reached A's FIB",
            block(i)
        );
        assert!(
            !net.announced(a, c)
                .iter()
                .any(|(p, _)| p.to_string() == block(i)),
            "{} was passed on to C",
            block(i)
        );
    }
}

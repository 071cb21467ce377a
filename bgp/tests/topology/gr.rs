//! Graceful restart, the helper side (RFC 4724 section 4.2): A keeps B's routes, marked stale,
//! while B restarts; B's End-of-RIB or the restart time decides what stays.

use crate::sim::{NbrCfg, Net, Sid, SpeakerCfg};
use crate::{AS, addr, ip};
use std::time::Duration;
use tortie_bgp::fsm::{State, Stop};

const P1: &str = "198.19.2.0/26";
const P2: &str = "198.19.2.64/26";
const P3: &str = "198.19.2.128/26";
const RESTART_TIME: u16 = 120;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A (198.18.0.1) and B (198.18.0.2), iBGP, both advertising graceful restart; B announces
/// P1..P3. `b_side` configures how B treats A.
fn pair(b_side: NbrCfg) -> (Net, Sid, Sid) {
    let mut net = Net::new();
    let mut a = SpeakerCfg::new("A", AS, ip(1));
    a.graceful_restart = Some(RESTART_TIME);
    let mut b = SpeakerCfg::new("B", AS, ip(2));
    b.graceful_restart = Some(RESTART_TIME);
    let (a, b) = (net.add(a), net.add(b));
    net.peer_with(a, b, NbrCfg::default(), b_side);
    for p in [P1, P2, P3] {
        net.originate(b, p);
    }
    net.run_until_quiet();
    assert_eq!(net.state(a, b), State::Established);
    for p in [P1, P2, P3] {
        assert_eq!(net.best(a, p), vec![addr(2)]);
    }
    (net, a, b)
}

fn stale(net: &Net, a: Sid, p: &str) -> bool {
    let paths = net.rib_paths(a, p);
    assert_eq!(paths.len(), 1, "{p}");
    paths[0].stale
}

/// Present in A's FIB via B, and never removed from it since the start.
fn kept(net: &Net, a: Sid, p: &str) -> bool {
    net.fib_route(a, p)
        .is_some_and(|r| r.next_hops == vec![addr(2)])
        && net.fib_history(a, p).iter().all(Option::is_some)
}

#[test]
fn gr_helper_keeps_stale_routes_and_drops_the_unrefreshed_ones_after_end_of_rib() {
    let (mut net, a, b) = pair(NbrCfg::default());
    net.kill(b);
    net.run_until_quiet();
    assert_ne!(net.state(a, b), State::Established);
    for p in [P1, P2, P3] {
        assert!(stale(&net, a, p), "{p} marked stale");
        assert!(kept(&net, a, p), "{p} still forwarded");
    }
    // B is down for 30 s (A keeps trying to reconnect meanwhile).
    net.advance(secs(30));
    assert!(stale(&net, a, P3) && kept(&net, a, P3));
    // B comes back with part of its routes; its table walk ends with End-of-RIB.
    net.restart(b);
    net.originate(b, P1);
    net.originate(b, P2);
    net.advance(secs(10));
    assert_eq!(net.state(a, b), State::Established);
    for p in [P1, P2] {
        assert!(!stale(&net, a, p), "{p} refreshed");
        assert!(kept(&net, a, p), "{p} never left the FIB");
    }
    assert!(
        net.rib_paths(a, P3).is_empty(),
        "not re-announced: gone after End-of-RIB"
    );
    assert!(net.fib_route(a, P3).is_none());
    // The restart timer of the outage, still armed, must not touch the refreshed routes.
    net.advance(secs(200));
    for p in [P1, P2] {
        assert!(!stale(&net, a, p) && kept(&net, a, p));
    }
}

#[test]
fn gr_helper_removes_stale_routes_when_the_restart_time_ends() {
    let (mut net, a, b) = pair(NbrCfg::default());
    net.kill(b);
    net.advance(secs(u64::from(RESTART_TIME) - 1));
    for p in [P1, P2, P3] {
        assert!(
            stale(&net, a, p) && kept(&net, a, p),
            "{p} kept during the restart time"
        );
    }
    net.advance(secs(2));
    for p in [P1, P2, P3] {
        assert!(net.rib_paths(a, p).is_empty(), "{p} gone");
        assert_eq!(net.fib_history(a, p).last(), Some(&None));
    }
    assert!(net.fib(a).is_empty());
}

#[test]
fn gr_notification_removes_routes_at_once() {
    let (mut net, a, b) = pair(NbrCfg::default());
    let t = net.now();
    net.stop(b, a, Stop::Shutdown(None));
    net.run_until_quiet();
    assert!(net.now() - t < secs(1));
    assert_ne!(net.state(a, b), State::Established);
    for p in [P1, P2, P3] {
        assert!(net.rib_paths(a, p).is_empty(), "{p} gone at once");
    }
    assert!(net.fib(a).is_empty());
}

#[test]
fn gr_restarted_peer_reconnecting_over_a_half_open_session_keeps_its_routes() {
    // B connects out (not Calico's passive side) so it can reach A after its restart while A
    // still believes the old session is up (A never saw the old connection close).
    let active = NbrCfg {
        passive: Some(false),
        ..NbrCfg::default()
    };
    let (mut net, a, b) = pair(active);
    net.link_down(a, b);
    net.kill(b);
    net.advance(secs(5));
    assert_eq!(net.state(a, b), State::Established, "A has not noticed");
    net.link_up(a, b);
    net.restart(b);
    net.originate(b, P1);
    // RFC 4724 section 4.2: the new connection means the peer restarted: the old session goes,
    // its routes stay stale until End-of-RIB.
    net.advance(secs(5));
    assert_eq!(net.state(a, b), State::Established);
    assert!(!stale(&net, a, P1) && kept(&net, a, P1));
    assert!(net.rib_paths(a, P2).is_empty() && net.rib_paths(a, P3).is_empty());
    assert!(net.fib_route(a, P2).is_none());
}

#[test]
fn gr_not_negotiated_when_only_the_peer_advertises_it() {
    // B advertises graceful restart, A does not: the session has no graceful restart and a
    // crash of B removes its routes at once.
    let mut net = Net::new();
    let a = net.add(SpeakerCfg::new("A", AS, ip(1)));
    let mut bc = SpeakerCfg::new("B", AS, ip(2));
    bc.graceful_restart = Some(RESTART_TIME);
    let b = net.add(bc);
    net.peer(a, b);
    net.originate(b, P1);
    net.run_until_quiet();
    assert_eq!(net.best(a, P1), vec![addr(2)]);
    net.kill(b);
    net.run_until_quiet();
    assert!(net.rib_paths(a, P1).is_empty());
}

/// RFC 4724 section 4.2: "if the Forwarding State bit for a specific address family is not
/// set in the newly received Graceful Restart Capability ... the Receiving Speaker MUST
/// immediately remove all the stale routes from the peer that it is retaining for that
/// address family". B comes back without having kept its forwarding state: A must stop
/// forwarding along the stale routes as soon as the session is up, not keep them until
/// End-of-RIB.
#[test]
fn gr_peer_back_without_forwarding_state_loses_its_stale_routes_at_once() {
    let (mut net, a, b) = pair(NbrCfg::default());
    net.kill(b);
    net.advance(secs(10));
    net.reconfigure(b, |c| c.forwarding_preserved = false);
    net.restart(b);
    net.originate(b, P1);
    net.advance(secs(10));
    assert_eq!(net.state(a, b), State::Established);
    assert!(net.rib_paths(a, P3).is_empty());
    // P1 came back in B's table walk, but its stale copy must have left the FIB when the
    // session came up: B's forwarding state was lost.
    let history = net.fib_history(a, P1);
    assert!(
        history.contains(&None),
        "P1 was never withdrawn from the FIB: {history:?}"
    );
}

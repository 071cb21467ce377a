//! What an operator (the agent's API) asks of a running speaker, with two tortie speakers in
//! one process over real TCP on loopback: turning a peer off and on, the per-peer counters
//! and the Loc-RIB sizes.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tortie_bgp::fsm::{PeerConfig, State};
use tortie_bgp::speaker::{PeerSpec, PeerStatus, RibSizes, Speaker, SpeakerConfig};
use tortie_bgp::wire::Family;

fn addr(last: u8) -> Ipv4Addr {
    // A block of 127/8 of this test binary's own, so parallel tests do not collide.
    Ipv4Addr::new(127, 32, (std::process::id() % 200) as u8, last)
}

async fn speaker(ip: Ipv4Addr) -> Speaker {
    let cfg = SpeakerConfig::new(64512, ip, vec![SocketAddr::new(IpAddr::V4(ip), 0)]);
    Speaker::start(cfg).await.expect("speaker starts").0
}

fn peer(local: Ipv4Addr, remote: Ipv4Addr, port: u16, passive: bool) -> PeerSpec {
    let mut s = PeerConfig::new(64512, 64512, local);
    s.passive = passive;
    s.hold_time = 9;
    s.connect_retry = Duration::from_secs(1);
    s.capabilities.families = vec![Family::Ipv4Unicast, Family::Ipv6Unicast];
    let mut p = PeerSpec::new(IpAddr::V4(remote), s);
    p.port = port;
    p.local_address = Some(IpAddr::V4(local));
    p.next_hop_self.v6 = Some("2001:db8::1".parse().unwrap());
    p
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `a` connects to `b`, which waits passively; both sessions Established.
async fn pair(a_last: u8, b_last: u8) -> (Speaker, Speaker, IpAddr, IpAddr) {
    let (a_ip, b_ip) = (addr(a_last), addr(b_last));
    let a = speaker(a_ip).await;
    let b = speaker(b_ip).await;
    let (a_port, b_port) = (a.listen_addrs()[0].port(), b.listen_addrs()[0].port());
    a.add_peer(peer(a_ip, b_ip, b_port, false)).await.unwrap();
    b.add_peer(peer(b_ip, a_ip, a_port, true)).await.unwrap();
    let (a_ip, b_ip) = (IpAddr::V4(a_ip), IpAddr::V4(b_ip));
    wait_for("both sessions Established", async || {
        let up = status(&a, b_ip).await.state == State::Established
            && status(&b, a_ip).await.state == State::Established;
        up.then_some(())
    })
    .await;
    (a, b, a_ip, b_ip)
}

async fn status(s: &Speaker, peer: IpAddr) -> PeerStatus {
    s.peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.address == peer)
        .unwrap_or_else(|| panic!("no peer {peer}"))
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

#[tokio::test]
async fn a_disabled_peer_stays_idle_until_it_is_enabled() {
    let (a, b, a_ip, b_ip) = pair(1, 2).await;

    // The passive side turns the session off: the active side keeps trying to connect, and
    // is refused.
    assert!(b.set_enabled(a_ip, false).await.unwrap());
    let at_a = wait_for("a to see the shutdown", async || {
        let p = status(&a, b_ip).await;
        (p.state != State::Established && p.last_error.is_some()).then_some(p)
    })
    .await;
    let err = at_a.last_error.unwrap_or_default();
    assert!(
        err.contains("Administrative Shutdown") && err.contains("disabled by an operator"),
        "{err}"
    );
    for _ in 0..30 {
        let p = status(&b, a_ip).await;
        assert_eq!(p.state, State::Idle, "a disabled peer stays Idle");
        assert!(!p.enabled);
        assert_ne!(status(&a, b_ip).await.state, State::Established);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(b.set_enabled(a_ip, true).await.unwrap());
    let p = wait_for("the session back up", async || {
        let p = status(&b, a_ip).await;
        (p.state == State::Established).then_some(p)
    })
    .await;
    assert!(p.enabled);
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn enabling_or_disabling_an_unknown_peer_reports_that_it_does_not_exist() {
    let s = speaker(addr(5)).await;
    let nobody = IpAddr::V4(addr(6));
    assert!(!s.set_enabled(nobody, false).await.unwrap());
    assert!(!s.set_enabled(nobody, true).await.unwrap());
    s.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn counters_count_prefixes_announced_and_withdrawn_in_both_directions() {
    let (a, b, a_ip, b_ip) = pair(11, 12).await;
    a.originate(nets(&[
        "198.19.3.0/26",
        "198.19.3.64/26",
        "2001:db8:3::/64",
    ]))
    .await
    .unwrap();
    let at_b = wait_for("three prefixes counted at b", async || {
        let c = status(&b, a_ip).await.counters;
        (c.prefixes_in == 3).then_some(c)
    })
    .await;
    assert!(
        at_b.updates_in >= 2,
        "one UPDATE per family at least: {at_b:?}"
    );
    assert_eq!(at_b.established_transitions, 1);
    let at_a = status(&a, b_ip).await.counters;
    assert_eq!(at_a.prefixes_out, 3, "{at_a:?}");

    a.withdraw(nets(&["198.19.3.64/26"])).await.unwrap();
    wait_for("the withdrawal counted on both sides", async || {
        let (rx, tx) = (
            status(&b, a_ip).await.counters,
            status(&a, b_ip).await.counters,
        );
        (rx.withdrawals_in == 1 && tx.withdrawals_out == 1).then_some(())
    })
    .await;
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn every_message_one_side_sends_the_other_counts_as_received() {
    let (a, b, a_ip, b_ip) = pair(21, 22).await;
    a.originate(nets(&["198.19.4.0/26"])).await.unwrap();
    let (sent, received) = wait_for("a's messages all counted at b", async || {
        let tx = status(&a, b_ip).await.counters;
        let rx = status(&b, a_ip).await.counters;
        (tx.updates_out >= 1
            && tx.messages_out == rx.messages_in
            && tx.updates_out == rx.updates_in)
            .then_some((tx, rx))
    })
    .await;
    // OPEN, KEEPALIVE, the UPDATE and End-of-RIB markers at least.
    assert!(sent.messages_out >= 4, "{sent:?}");
    assert!(received.messages_in > received.updates_in, "{received:?}");
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn counters_carry_on_across_a_session_reset() {
    let (a, b, a_ip, b_ip) = pair(31, 32).await;
    a.originate(nets(&["198.19.5.0/26"])).await.unwrap();
    wait_for("the prefix counted at b", async || {
        (status(&b, a_ip).await.counters.prefixes_in == 1).then_some(())
    })
    .await;
    assert!(a.set_enabled(b_ip, false).await.unwrap());
    wait_for("b to see the session down", async || {
        (status(&b, a_ip).await.state != State::Established).then_some(())
    })
    .await;
    assert!(a.set_enabled(b_ip, true).await.unwrap());
    let c = wait_for("the prefix announced again after the reset", async || {
        let p = status(&b, a_ip).await;
        (p.state == State::Established && p.counters.prefixes_in == 2).then_some(p.counters)
    })
    .await;
    assert_eq!(c.established_transitions, 2, "{c:?}");
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn rib_sizes_count_prefixes_per_family_and_paths() {
    let (a, b, _, _) = pair(41, 42).await;
    a.originate(nets(&[
        "198.19.6.0/26",
        "198.19.6.64/26",
        "2001:db8:6::/64",
    ]))
    .await
    .unwrap();
    let three = RibSizes {
        v4_prefixes: 2,
        v6_prefixes: 1,
        paths: 3,
    };
    assert_eq!(a.rib_sizes().await.unwrap(), three, "own prefixes");
    wait_for("b to learn all three", async || {
        (b.rib_sizes().await.unwrap() == three).then_some(())
    })
    .await;

    a.withdraw(nets(&["2001:db8:6::/64"])).await.unwrap();
    let two = RibSizes {
        v4_prefixes: 2,
        v6_prefixes: 0,
        paths: 2,
    };
    wait_for("b to drop the IPv6 prefix", async || {
        (b.rib_sizes().await.unwrap() == two).then_some(())
    })
    .await;
    assert_eq!(a.rib_sizes().await.unwrap(), two);
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn a_best_route_watcher_sees_a_learned_prefix_come_and_go() {
    let (a, b, a_ip, _) = pair(51, 52).await;
    let mut watch = b.subscribe_best_routes();
    let p: IpNet = "198.19.8.0/26".parse().unwrap();
    a.originate(vec![p]).await.unwrap();
    let next = async |watch: &mut tokio::sync::broadcast::Receiver<_>| {
        loop {
            let batch: std::sync::Arc<[tortie_bgp::rib::RouteChange]> =
                tokio::time::timeout(Duration::from_secs(10), watch.recv())
                    .await
                    .expect("a change within 10 s")
                    .expect("no lag");
            if let Some(c) = batch.iter().find(|c| c.prefix == p) {
                return c.route.clone();
            }
        }
    };
    let route = next(&mut watch).await.expect("a route for the prefix");
    assert_eq!(route.next_hops, vec![a_ip]);
    a.withdraw(vec![p]).await.unwrap();
    assert_eq!(next(&mut watch).await, None, "withdrawn");
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn a_disabled_peer_answers_connection_attempts_with_administrative_shutdown() {
    let (a, b, a_ip, b_ip) = pair(61, 62).await;
    assert!(b.set_enabled(a_ip, false).await.unwrap());
    let seen = wait_for("a to see the shutdown", async || {
        let p = status(&a, b_ip).await;
        (p.state != State::Established && p.last_error.is_some()).then_some(p.counters)
    })
    .await;
    // a connects again (its idle hold is a second or two) and is refused with a NOTIFICATION,
    // not a bare close: the reason it keeps is still the operator's.
    let p = wait_for("a refused after a new connection", async || {
        let p = status(&a, b_ip).await;
        (p.counters.messages_in > seen.messages_in).then_some(p)
    })
    .await;
    let err = p.last_error.unwrap_or_default();
    assert!(err.contains("disabled by an operator"), "{err}");
    assert_ne!(p.state, State::Established);
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

#[tokio::test]
async fn a_table_counted_in_slices_reports_every_advertised_prefix_once_the_walk_is_done() {
    let (a, _b, _a_ip, b_ip) = pair(71, 72).await;
    // 60,000 host routes (198.18.64.0 on, inside 198.18.0.0/15) for one peer: more export
    // evaluations than one slice of the router's count, so status queries read the last
    // finished walk while the next one runs.
    let first = u32::from(Ipv4Addr::new(198, 18, 64, 0));
    let many: Vec<IpNet> = (0..60_000u32)
        .map(|i| IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(first + i), 32).unwrap()))
        .collect();
    a.originate(many).await.unwrap();
    let n = wait_for("all 60,000 prefixes counted as advertised", async || {
        let n = status(&a, b_ip).await.advertised;
        (n == 60_000).then_some(n)
    })
    .await;
    assert_eq!(n, 60_000);
}

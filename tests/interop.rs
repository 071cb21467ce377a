//! tortie against the daemons its peers run: BIRD 2, GoBGP, FRR and ExaBGP from Debian, each
//! started by the test on its own 127.x.y.z (or ::1) address. For every daemon: an iBGP and
//! an eBGP session over IPv4 and an MP-BGP session over IPv6 reach Established, the daemon's
//! own CLI shows the prefix tortie originates, and tortie learns the prefix the daemon
//! originates.

mod support;
use std::net::IpAddr;
use support::tortie::Tortie;
use support::*;

const TORTIE_AS: u32 = 64512;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Session {
    IbgpV4,
    EbgpV4,
    V6,
}

/// A fresh pair of prefixes for one test: (tortie's, the daemon's).
fn prefixes(session: Session) -> (String, String) {
    let n = next_id() % 250 + 1;
    match session {
        Session::V6 => (
            format!("2001:db8:{n:x}:1::/64"),
            format!("2001:db8:{n:x}:2::/64"),
        ),
        _ => (format!("198.19.{n}.0/26"), format!("198.19.{n}.64/26")),
    }
}

/// A namespace of this test with two addresses on its loopback, one for tortie and one for
/// the daemon: real next hops (daemons refuse 127/8 ones), port 179, nothing reachable from
/// outside.
struct Pair {
    ns: Netns,
    tortie: SpeakerConfig,
    daemon: SpeakerConfig,
    tortie_addr: IpAddr,
    daemon_addr: IpAddr,
}

impl Pair {
    fn new(
        daemon_name: &str,
        v6: bool,
        daemon_as: u32,
        hold: u16,
        configure: impl Fn(Neighbor) -> Neighbor,
    ) -> Pair {
        let ns = Netns::new(&format!("io{}", next_id()));
        let n = next_id() % 250 + 1;
        let (t4, d4) = (
            std::net::Ipv4Addr::new(198, 18, n as u8, 1),
            std::net::Ipv4Addr::new(198, 18, n as u8, 2),
        );
        let (t6, d6) = (
            ip(&format!("2001:db8:{n:x}::1")),
            ip(&format!("2001:db8:{n:x}::2")),
        );
        for a in [format!("{t4}/32"), format!("{d4}/32")] {
            ns.add_addr("lo", &a);
        }
        let mut tortie = SpeakerConfig::in_netns(&ns, t4, TORTIE_AS);
        let mut daemon = SpeakerConfig::in_netns(&ns, d4, daemon_as);
        if v6 {
            for a in [t6, d6] {
                ns.ip_ok(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/128"),
                    "dev",
                    "lo",
                    "nodad",
                ]);
            }
            tortie = tortie.with_listen(t6);
            daemon = daemon.with_listen(d6);
        }
        let toward_tortie = {
            let n = if v6 {
                Neighbor::new(t6, 179, TORTIE_AS)
            } else {
                Neighbor::to(&tortie)
            };
            // GoBGP is slow to connect out: let tortie do it. ExaBGP only connects out.
            if daemon_name == "gobgp" {
                n.passive()
            } else {
                n
            }
        };
        daemon = daemon.with_neighbor(configure(toward_tortie.multihop(true).hold(hold)));
        let toward_daemon = if v6 {
            Neighbor::to_v6(&daemon)
        } else {
            Neighbor::to(&daemon)
        };
        tortie = tortie.with_neighbor(configure(toward_daemon.hold(hold)));
        let (tortie_addr, daemon_addr) = if v6 {
            (t6, d6)
        } else {
            (IpAddr::V4(t4), IpAddr::V4(d4))
        };
        Pair {
            ns,
            tortie,
            daemon,
            tortie_addr,
            daemon_addr,
        }
    }
}

fn run_case<D: Daemon>(
    daemon_name: &str,
    session: Session,
    start: impl FnOnce(SpeakerConfig) -> D,
) {
    eprintln!(
        "{daemon_name} {session:?}; versions:\n{}\n{}",
        versions(),
        Tortie::version()
    );
    let daemon_as = if session == Session::EbgpV4 {
        65001
    } else {
        TORTIE_AS
    };
    let (ours, theirs) = prefixes(session);
    let v6 = session == Session::V6;
    let pair = Pair::new(daemon_name, v6, daemon_as, 9, |n| n);
    let daemon = start(pair.daemon.clone().with_originate(&theirs, ""));
    let tortie = Tortie::start(pair.tortie.clone().with_originate(&ours, ""));

    tortie.wait_established(pair.daemon_addr, SESSION_TIMEOUT);
    daemon.wait_established(pair.tortie_addr, SESSION_TIMEOUT);
    let seen = daemon.wait_route(&ours, SESSION_TIMEOUT);
    eprintln!("{daemon_name} shows {ours}: {seen:?}");
    assert!(
        seen.iter()
            .any(|r| r.next_hop.is_none() || r.next_hop == Some(pair.tortie_addr)),
        "{daemon_name} has {ours} via {seen:?}, expected next hop {}",
        pair.tortie_addr
    );
    let learned = tortie.wait_route(&theirs, SESSION_TIMEOUT);
    eprintln!("tortie learned {theirs}: {learned:?}");
    if session == Session::EbgpV4 {
        assert_eq!(
            learned[0].as_path,
            vec![65001],
            "eBGP path from {daemon_name}"
        );
    } else if !v6 {
        assert!(
            learned[0].as_path.is_empty(),
            "iBGP path from {daemon_name}: {:?}",
            learned[0].as_path
        );
    }
}

macro_rules! matrix {
    ($($name:ident: $daemon:literal, $session:expr, $start:expr;)*) => {$(
        #[test]
        fn $name() {
            run_case($daemon, $session, $start);
        }
    )*};
}

matrix! {
    bird_ibgp_ipv4: "bird", Session::IbgpV4, Bird::start;
    bird_ebgp_ipv4: "bird", Session::EbgpV4, Bird::start;
    bird_mp_bgp_ipv6: "bird", Session::V6, Bird::start;
    gobgp_ibgp_ipv4: "gobgp", Session::IbgpV4, GoBgp::start;
    gobgp_ebgp_ipv4: "gobgp", Session::EbgpV4, GoBgp::start;
    gobgp_mp_bgp_ipv6: "gobgp", Session::V6, GoBgp::start;
    frr_ibgp_ipv4: "frr", Session::IbgpV4, Frr::start;
    frr_ebgp_ipv4: "frr", Session::EbgpV4, Frr::start;
    frr_mp_bgp_ipv6: "frr", Session::V6, Frr::start;
    exabgp_ibgp_ipv4: "exabgp", Session::IbgpV4, ExaBgp::start;
    exabgp_ebgp_ipv4: "exabgp", Session::EbgpV4, ExaBgp::start;
    exabgp_mp_bgp_ipv6: "exabgp", Session::V6, ExaBgp::start;
}

// --- TCP MD5 (RFC 2385) -------------------------------------------------------------------

fn md5_right_password<D: Daemon>(name: &str, start: impl FnOnce(SpeakerConfig) -> D) {
    let pair = Pair::new(name, false, 65001, 9, |n| n.password("s3cret-md5"));
    let daemon = start(pair.daemon.clone());
    let tortie = Tortie::start(pair.tortie.clone());
    tortie.wait_established(pair.daemon_addr, SESSION_TIMEOUT);
    daemon.wait_established(pair.tortie_addr, SESSION_TIMEOUT);
    assert!(
        tortie.log().contains("md5=true"),
        "tortie signs its connections"
    );
}

fn md5_wrong_password<D: Daemon>(name: &str, start: impl FnOnce(SpeakerConfig) -> D) {
    let pair = Pair::new(name, false, 65001, 9, |n| n);
    let mut daemon_cfg = pair.daemon.clone();
    daemon_cfg.neighbors[0].password = Some("the-daemons-password".into());
    let mut tortie_cfg = pair.tortie.clone();
    tortie_cfg.neighbors[0].password = Some("tortie-has-another".into());
    let before = pair.ns.md5_counters();
    let daemon = start(daemon_cfg);
    let tortie = Tortie::start(tortie_cfg);
    let peer = pair.daemon_addr;
    wait_for(
        "tortie to report the MD5 timeouts",
        std::time::Duration::from_secs(25),
        POLL,
        || {
            let log = tortie.log();
            if log
                .contains("TCP MD5 is configured for this peer and the connection keeps timing out")
            {
                Ok(())
            } else {
                Err(format!(
                    "state {:?}",
                    tortie.peer_state(&PeerKey::from(peer))
                ))
            }
        },
    );
    assert!(
        !tortie.is_established(&PeerKey::from(peer)),
        "never Established with a wrong password"
    );
    assert!(!daemon.is_established(&PeerKey::from(pair.tortie_addr)));
    let after = pair.ns.md5_counters();
    eprintln!("TCPMD5 counters before {before:?} after {after:?}");
    assert!(
        after.failure > before.failure,
        "the kernel dropped badly signed segments: {before:?} -> {after:?}"
    );
}

#[test]
fn bird_md5_right_password_comes_up() {
    md5_right_password("bird", Bird::start);
}

#[test]
fn frr_md5_right_password_comes_up() {
    md5_right_password("frr", Frr::start);
}

#[test]
fn bird_md5_wrong_password_never_comes_up_and_says_why() {
    md5_wrong_password("bird", Bird::start);
}

#[test]
fn frr_md5_wrong_password_never_comes_up_and_says_why() {
    md5_wrong_password("frr", Frr::start);
}

// --- Hold timer: a frozen peer ----------------------------------------------------------

fn frozen_peer<D: Daemon>(name: &str, start: impl FnOnce(SpeakerConfig) -> D) {
    let (ours, theirs) = prefixes(Session::EbgpV4);
    let pair = Pair::new(name, false, 65001, 3, |n| n);
    let daemon = start(pair.daemon.clone().with_originate(&theirs, ""));
    let tortie = Tortie::start(pair.tortie.clone().with_originate(&ours, ""));
    let peer = PeerKey::from(pair.daemon_addr);
    tortie.wait_route(&theirs, SESSION_TIMEOUT);

    daemon.freeze();
    let frozen_at = std::time::Instant::now();
    let state = tortie.wait_not_established(pair.daemon_addr, std::time::Duration::from_secs(10));
    let took = frozen_at.elapsed();
    eprintln!("tortie left Established after {took:?} ({state})");
    let err = tortie.last_error(pair.daemon_addr).unwrap_or_default();
    assert!(
        err.contains("sent NOTIFICATION 4/0"),
        "hold timer expiry, got {err:?}"
    );
    assert!(
        took >= std::time::Duration::from_secs(2),
        "not before the 3 s hold time: {took:?}"
    );
    wait_for(
        "tortie to drop the frozen peer's routes",
        std::time::Duration::from_secs(5),
        POLL,
        || {
            let rib = tortie.rib()?;
            if rib.contains_key(&net(&theirs)) {
                Err(format!("{rib:?}"))
            } else {
                Ok(())
            }
        },
    );

    daemon.thaw();
    tortie.wait_established(peer, SESSION_TIMEOUT);
    tortie.wait_route(&theirs, SESSION_TIMEOUT);
    daemon.wait_route(&ours, SESSION_TIMEOUT);
}

#[test]
fn bird_frozen_expires_tortie_hold_timer_and_reconnects_when_resumed() {
    frozen_peer("bird", Bird::start);
}

#[test]
fn frr_frozen_expires_tortie_hold_timer_and_reconnects_when_resumed() {
    frozen_peer("frr", Frr::start);
}

// --- The peer restarts --------------------------------------------------------------------

fn restarted_peer<D: Daemon>(
    name: &str,
    mut daemon: impl FnMut(Option<D>, SpeakerConfig) -> D,
    cfg_of: impl Fn(&Pair) -> SpeakerConfig,
) {
    let (ours, theirs) = prefixes(Session::IbgpV4);
    let pair = Pair::new(name, false, TORTIE_AS, 9, |n| n);
    let d = daemon(None, cfg_of(&pair).with_originate(&theirs, ""));
    let mut tortie = Tortie::start(pair.tortie.clone().with_originate(&ours, ""));
    let pid = tortie.pid();
    tortie.wait_route(&theirs, SESSION_TIMEOUT);

    let d = daemon(Some(d), cfg_of(&pair).with_originate(&theirs, ""));
    tortie.wait_established(pair.daemon_addr, SESSION_TIMEOUT);
    tortie.wait_route(&theirs, SESSION_TIMEOUT);
    d.wait_route(&ours, SESSION_TIMEOUT);
    assert!(tortie.running(), "tortie kept running");
    assert_eq!(tortie.pid(), pid, "tortie did not restart");
    let log = tortie.log();
    assert!(
        log.contains("session down"),
        "tortie saw the session go down"
    );
}

#[test]
fn bird_restart_tortie_reconnects_on_its_own() {
    restarted_peer::<Bird>(
        "bird",
        |old, cfg| match old {
            Some(mut b) => {
                b.hard_restart();
                b
            }
            None => Bird::start(cfg),
        },
        |p| p.daemon.clone(),
    );
}

#[test]
fn gobgp_restart_tortie_reconnects_on_its_own() {
    restarted_peer::<GoBgp>(
        "gobgp",
        |old, cfg| {
            if let Some(mut g) = old {
                g.kill();
                g.start_again();
                return g;
            }
            GoBgp::start(cfg)
        },
        |p| p.daemon.clone(),
    );
}

#[test]
fn frr_restart_tortie_reconnects_on_its_own() {
    restarted_peer::<Frr>(
        "frr",
        |old, cfg| {
            if let Some(mut f) = old {
                f.kill();
                f.start_again();
                return f;
            }
            Frr::start(cfg)
        },
        |p| p.daemon.clone(),
    );
}

#[test]
fn exabgp_restart_tortie_reconnects_on_its_own() {
    restarted_peer::<ExaBgp>(
        "exabgp",
        |old, cfg| {
            if let Some(mut e) = old {
                e.kill();
                e.start_again();
                return e;
            }
            ExaBgp::start(cfg)
        },
        |p| p.daemon.clone(),
    );
}

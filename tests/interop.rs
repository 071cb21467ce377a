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
        Session::V6 => (format!("2001:db8:{n:x}:1::/64"), format!("2001:db8:{n:x}:2::/64")),
        _ => (format!("198.19.{n}.0/26"), format!("198.19.{n}.64/26")),
    }
}

fn run_case<D: Daemon>(daemon_name: &str, session: Session, start: impl FnOnce(SpeakerConfig) -> D) {
    eprintln!("{daemon_name} {session:?}; versions:\n{}\n{}", versions(), Tortie::version());
    let daemon_as = if session == Session::EbgpV4 { 65001 } else { TORTIE_AS };
    let (ours, theirs) = prefixes(session);
    let v6 = session == Session::V6;

    // Both speakers live in a namespace of this test, on addresses of its loopback: real
    // next hops (daemons refuse 127/8 ones), port 179, nothing reachable from outside.
    let ns = Netns::new(&format!("io{}", next_id()));
    let n = next_id() % 250 + 1;
    let (t4, d4) = (std::net::Ipv4Addr::new(198, 18, n as u8, 1), std::net::Ipv4Addr::new(198, 18, n as u8, 2));
    let (t6, d6): (IpAddr, IpAddr) = (ip(&format!("2001:db8:{n:x}::1")), ip(&format!("2001:db8:{n:x}::2")));
    for a in [format!("{t4}/32"), format!("{d4}/32")] {
        ns.add_addr("lo", &a);
    }
    if v6 {
        for a in [t6, d6] {
            ns.ip_ok(&["-6", "addr", "add", &format!("{a}/128"), "dev", "lo", "nodad"]);
        }
    }
    let mut tortie_cfg = SpeakerConfig::in_netns(&ns, t4, TORTIE_AS);
    let mut daemon_cfg = SpeakerConfig::in_netns(&ns, d4, daemon_as);
    if v6 {
        tortie_cfg = tortie_cfg.with_listen(t6);
        daemon_cfg = daemon_cfg.with_listen(d6);
    }
    daemon_cfg = daemon_cfg.with_originate(&theirs, "");
    let toward_tortie = {
        let n = if v6 { Neighbor::new(t6, 179, TORTIE_AS) } else { Neighbor::to(&tortie_cfg) };
        // GoBGP is slow to connect out: let tortie do it. ExaBGP only connects out.
        if daemon_name == "gobgp" { n.passive() } else { n }
    };
    daemon_cfg = daemon_cfg.with_neighbor(toward_tortie.multihop(true).hold(9));
    let toward_daemon = if v6 { Neighbor::to_v6(&daemon_cfg) } else { Neighbor::to(&daemon_cfg) };
    tortie_cfg = tortie_cfg.with_neighbor(toward_daemon.hold(9)).with_originate(&ours, "");

    let daemon = start(daemon_cfg);
    let tortie = Tortie::start(tortie_cfg);
    let (daemon_addr, tortie_addr) = if v6 { (d6, t6) } else { (IpAddr::V4(d4), IpAddr::V4(t4)) };

    tortie.wait_established(daemon_addr, SESSION_TIMEOUT);
    daemon.wait_established(tortie_addr, SESSION_TIMEOUT);
    let seen = daemon.wait_route(&ours, SESSION_TIMEOUT);
    eprintln!("{daemon_name} shows {ours}: {seen:?}");
    assert!(
        seen.iter().any(|r| r.next_hop.is_none() || r.next_hop == Some(tortie_addr)),
        "{daemon_name} has {ours} via {seen:?}, expected next hop {tortie_addr}"
    );
    let learned = tortie.wait_route(&theirs, SESSION_TIMEOUT);
    eprintln!("tortie learned {theirs}: {learned:?}");
    if session == Session::EbgpV4 {
        assert_eq!(learned[0].as_path, vec![65001], "eBGP path from {daemon_name}");
    } else if !v6 {
        assert!(learned[0].as_path.is_empty(), "iBGP path from {daemon_name}: {:?}", learned[0].as_path);
    }
    drop(tortie);
    drop(daemon);
    drop(ns);
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

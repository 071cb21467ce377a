//! Two tortie speakers in one process, over real TCP on loopback: sessions come up, originated
//! prefixes arrive, withdrawals and shutdowns propagate.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tortie_bgp::fsm::{PeerConfig, State};
use tortie_bgp::speaker::{PeerSpec, Speaker, SpeakerConfig};
use tortie_bgp::wire::Family;

fn addr(last: u8) -> Ipv4Addr {
    // A block of 127/8 of this test binary's own, so parallel tests do not collide.
    Ipv4Addr::new(127, 31, (std::process::id() % 200) as u8, last)
}

async fn speaker(ip: Ipv4Addr, asn: u32) -> Speaker {
    let cfg = SpeakerConfig::new(asn, ip, vec![SocketAddr::new(IpAddr::V4(ip), 0)]);
    Speaker::start(cfg).await.expect("speaker starts").0
}

fn peer(
    local: Ipv4Addr,
    remote: Ipv4Addr,
    port: u16,
    local_as: u32,
    peer_as: u32,
    passive: bool,
) -> PeerSpec {
    let mut s = PeerConfig::new(local_as, peer_as, local);
    s.passive = passive;
    s.hold_time = 9;
    s.capabilities.families = vec![Family::Ipv4Unicast, Family::Ipv6Unicast];
    let mut p = PeerSpec::new(IpAddr::V4(remote), s);
    p.port = port;
    p.local_address = Some(IpAddr::V4(local));
    p.next_hop_self.v6 = Some("2001:db8::1".parse().unwrap());
    p
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn two_speakers_exchange_originated_prefixes_over_ibgp() {
    let (a_ip, b_ip) = (addr(1), addr(2));
    let a = speaker(a_ip, 64512).await;
    let b = speaker(b_ip, 64512).await;
    let b_port = b.listen_addrs()[0].port();
    let a_port = a.listen_addrs()[0].port();
    a.add_peer(peer(a_ip, b_ip, b_port, 64512, 64512, false))
        .await
        .unwrap();
    b.add_peer(peer(b_ip, a_ip, a_port, 64512, 64512, true))
        .await
        .unwrap();
    a.originate(vec![
        "198.19.1.0/26".parse().unwrap(),
        "2001:db8:1::/64".parse().unwrap(),
    ])
    .await
    .unwrap();

    let routes = wait_for("routes at b", async || {
        let r = b.adj_rib_in(IpAddr::V4(a_ip)).await.unwrap()?;
        (r.len() == 2).then_some(r)
    })
    .await;
    let v4 = routes
        .iter()
        .find(|r| r.prefix == "198.19.1.0/26".parse::<IpNet>().unwrap())
        .unwrap();
    assert_eq!(v4.next_hop, IpAddr::V4(a_ip));
    assert_eq!(v4.attrs.local_pref, Some(100));
    let v6 = routes
        .iter()
        .find(|r| r.prefix.to_string() == "2001:db8:1::/64")
        .unwrap();
    assert_eq!(v6.next_hop, "2001:db8::1".parse::<IpAddr>().unwrap());

    a.withdraw(vec!["198.19.1.0/26".parse().unwrap()])
        .await
        .unwrap();
    wait_for("withdrawal at b", async || {
        let r = b.adj_rib_in(IpAddr::V4(a_ip)).await.unwrap()?;
        (r.len() == 1).then_some(())
    })
    .await;

    a.shutdown(Some("maintenance".into())).await.unwrap();
    let status = wait_for("b sees the shutdown", async || {
        let p = b.peers().await.unwrap().into_iter().next()?;
        (p.state != State::Established && p.last_error.is_some()).then_some(p)
    })
    .await;
    let err = status.last_error.unwrap();
    assert!(
        err.contains("Administrative Shutdown") && err.contains("maintenance"),
        "{err}"
    );
    b.shutdown(None).await.unwrap();
}

fn reject(cidr: &str) -> tortie_bgp::rib::policy::Rule {
    use tortie_bgp::rib::policy::{Action, MatchOperator, PrefixLengthRange, PrefixMatch, Rule};
    Rule {
        prefix: Some(PrefixMatch::new(
            cidr.parse().unwrap(),
            MatchOperator::Equal,
            PrefixLengthRange::default(),
        )),
        ..Rule::new(Action::Reject)
    }
}

#[tokio::test]
async fn changed_filters_apply_without_resetting_the_session() {
    let (a_ip, b_ip) = (addr(11), addr(12));
    let a = speaker(a_ip, 65001).await;
    let b = speaker(b_ip, 65002).await;
    let (b_port, a_port) = (b.listen_addrs()[0].port(), a.listen_addrs()[0].port());
    let a_peer = peer(a_ip, b_ip, b_port, 65001, 65002, false);
    let b_peer = peer(b_ip, a_ip, a_port, 65002, 65001, true);
    let (a_routing, b_routing) = (a_peer.routing.clone(), b_peer.routing.clone());
    a.add_peer(a_peer).await.unwrap();
    b.add_peer(b_peer).await.unwrap();
    let (p1, p2): (IpNet, IpNet) = (
        "198.19.7.0/26".parse().unwrap(),
        "198.19.7.64/26".parse().unwrap(),
    );
    a.originate(vec![p1, p2]).await.unwrap();
    let at_b = async || -> Option<Vec<IpNet>> {
        let mut v: Vec<IpNet> = b
            .adj_rib_in(IpAddr::V4(a_ip))
            .await
            .unwrap()?
            .into_iter()
            .map(|r| r.prefix)
            .collect();
        v.sort();
        Some(v)
    };
    wait_for("both prefixes at b", async || {
        at_b().await.filter(|v| v.len() == 2)
    })
    .await;
    let since = b.peers().await.unwrap()[0].since;

    // A stops exporting p2 to B: B sees it withdrawn.
    let mut r = a_routing;
    r.filters = vec![tortie_bgp::rib::policy::Filter {
        export_v4: vec![reject("198.19.7.64/26")],
        ..tortie_bgp::rib::policy::Filter::new("no-p2")
    }];
    assert!(a.set_routing(IpAddr::V4(b_ip), r).await.unwrap());
    wait_for("p2 withdrawn at b", async || {
        at_b().await.filter(|v| *v == vec![p1])
    })
    .await;

    // B stops importing p1: B asks A for its routes again and drops p1.
    let mut r = b_routing;
    r.filters = vec![tortie_bgp::rib::policy::Filter {
        import_v4: vec![reject("198.19.7.0/26")],
        ..tortie_bgp::rib::policy::Filter::new("no-p1")
    }];
    assert!(b.set_routing(IpAddr::V4(a_ip), r).await.unwrap());
    wait_for("p1 gone at b", async || {
        at_b().await.filter(|v| v.is_empty())
    })
    .await;

    let status = &b.peers().await.unwrap()[0];
    assert_eq!(status.state, State::Established);
    assert_eq!(status.since, since, "the session never went down");
    a.shutdown(None).await.unwrap();
    b.shutdown(None).await.unwrap();
}

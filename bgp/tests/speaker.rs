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

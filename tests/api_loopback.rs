//! The API against agents peering with a real BIRD on 127/8 addresses: the TCP listener's
//! read-only rule (`--api-listen`, `--api-allow-write`), and what the views say when no agent
//! answers, when the agent has no datastore, and for a peer it does not have.

mod api_support;
mod support;

use api_support::{AS, runtime, text, tortie_view};
use std::net::{IpAddr, SocketAddr};
use support::tortie::Tortie;
use support::*;
use tortie_proto::v1;

/// A tortie agent (its API also on TCP at `tcp`, with `extra` flags) peering with a BIRD.
fn agent_with_bird(tcp: SocketAddr, extra: &[&str]) -> (Tortie, Bird, IpAddr) {
    let tortie_cfg = SpeakerConfig::loopback(AS);
    let bird_cfg = SpeakerConfig::loopback(AS).with_neighbor(Neighbor::to(&tortie_cfg).hold(6));
    let tortie_cfg = tortie_cfg.with_neighbor(Neighbor::to(&bird_cfg).hold(9));
    let bird = Bird::start(bird_cfg.clone());
    let mut tortie = Tortie::new(tortie_cfg);
    tortie.extra_args = vec!["--api-listen".into(), tcp.to_string()];
    tortie
        .extra_args
        .extend(extra.iter().map(|s| s.to_string()));
    tortie.spawn();
    let bird_addr = bird_cfg.addr();
    tortie.wait_established(bird_addr, SESSION_TIMEOUT);
    (tortie, bird, bird_addr)
}

async fn tcp_client(
    addr: SocketAddr,
) -> v1::tortie_client::TortieClient<tonic::transport::Channel> {
    v1::tortie_client::TortieClient::connect(format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("connect to the API on {addr}: {e}"))
}

#[test]
fn the_tcp_listener_answers_reads_and_refuses_to_disable_a_peer_without_allow_write() {
    let tcp = SocketAddr::new(IpAddr::V4(alloc_loopback()), alloc_port());
    let (tortie, _bird, bird_addr) = agent_with_bird(tcp, &[]);
    runtime().block_on(async {
        let mut c = tcp_client(tcp).await;
        let peers = c
            .list_peers(v1::ListPeersRequest::default())
            .await
            .unwrap_or_else(|s| panic!("ListPeers over TCP: {s}"))
            .into_inner();
        assert_eq!(peers.peers.len(), 1, "{peers:?}");
        let refused = c
            .set_peer_enabled(v1::SetPeerEnabledRequest {
                peer: bird_addr.to_string(),
                enabled: false,
            })
            .await
            .err()
            .unwrap_or_else(|| panic!("SetPeerEnabled over a read-only TCP listener succeeded"));
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(
            refused.message().contains("--api-allow-write"),
            "{refused:?}"
        );
    });
    assert!(
        tortie.is_established(&bird_addr.into()),
        "the session is untouched:\n{}",
        tortie.logs()
    );
    // The unix socket accepts the same call.
    let out = tortie_view(
        &tortie.api_socket(),
        &["peer", "disable", &bird_addr.to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_tcp_listener_with_allow_write_disables_a_peer() {
    let tcp = SocketAddr::new(IpAddr::V4(alloc_loopback()), alloc_port());
    let (tortie, bird, bird_addr) = agent_with_bird(tcp, &["--api-allow-write"]);
    runtime().block_on(async {
        let mut c = tcp_client(tcp).await;
        let r = c
            .set_peer_enabled(v1::SetPeerEnabledRequest {
                peer: bird_addr.to_string(),
                enabled: false,
            })
            .await
            .unwrap_or_else(|s| panic!("SetPeerEnabled over TCP with --api-allow-write: {s}"))
            .into_inner();
        assert!(r.changed && !r.enabled, "{r:?}");
    });
    let state = bird.wait_not_established(tortie.config().addr(), SESSION_TIMEOUT);
    assert_ne!(state, "Established");
}

#[test]
fn views_without_an_agent_exit_1_naming_the_socket() {
    let dir = TempDir::new("views-none");
    let socket = dir.join("run").join("tortie.sock");
    for view in [
        vec!["routes"],
        vec!["peers"],
        vec!["peers", "node2"],
        vec!["ipam"],
        vec!["peer", "disable", "node2"],
        vec!["peer", "refresh", "node2"],
    ] {
        let out = tortie_view(&socket, &view);
        assert_eq!(
            out.status.code(),
            Some(1),
            "tortie {view:?}: {}",
            text(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "no tortie agent is serving {} (is it running? see --api-socket)",
                socket.display()
            )),
            "tortie {view:?}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "tortie {view:?} printed: {}",
            text(&out)
        );
    }
}

#[test]
fn ipam_of_an_agent_without_a_datastore_says_it_has_none() {
    let tortie = Tortie::start(SpeakerConfig::loopback(AS));
    let out = tortie_view(&tortie.api_socket(), &["ipam"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without a datastore") && stderr.contains("(Unavailable)"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_peer_is_refused_naming_the_known_ones() {
    let tcp = SocketAddr::new(IpAddr::V4(alloc_loopback()), alloc_port());
    let (tortie, _bird, bird_addr) = agent_with_bird(tcp, &[]);
    let out = tortie_view(&tortie.api_socket(), &["peer", "disable", "nobody"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no peer \"nobody\"") && stderr.contains(&bird_addr.to_string()),
        "{stderr}"
    );
}

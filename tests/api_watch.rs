//! WatchEvents against an agent (`--dataplane none`, `--config`) peering with a real BIRD on
//! 127/8 addresses: the stream reports what happens, and a stream left unread while BIRD sends
//! 100,000 routes holds up neither BGP nor the other API calls.

mod api_support;
mod support;

#[allow(dead_code)]
#[path = "../src/api/client.rs"]
mod client;

use api_support::{AS, EXE, runtime};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::tortie::Tortie;
use support::*;
use tortie_proto::v1;

const MANY: u32 = 100_000;

/// `MANY` host routes from 198.18.0.0 up (in the test ranges; announced, never used).
fn many_routes(cfg: SpeakerConfig) -> SpeakerConfig {
    let base = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0));
    (0..MANY).fold(cfg, |c, i| {
        c.with_originate(&format!("{}/32", std::net::Ipv4Addr::from(base + i)), "")
    })
}

/// An agent with `--dataplane none` and `--config` (no status file: only the API reads it).
struct BareAgent {
    _proc: Proc,
    socket: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

fn bare_agent(cfg: &SpeakerConfig) -> BareAgent {
    let dir = TempDir::new("views-watch");
    let config = dir.join("cluster.yaml");
    let model = Tortie::new(cfg.clone());
    std::fs::write(&config, model.yaml()).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    let node = format!("tortie-{}", cfg.router_id.to_string().replace('.', "-"));
    let socket = dir.join("api").join("tortie.sock");
    let log = dir.join("agent.log");
    let mut cmd = Command::new(EXE);
    cmd.args(["agent", "--dataplane", "none", "--node", &node, "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--secrets-dir")
        .arg(dir.join("secrets"))
        .arg("--api-socket")
        .arg(&socket)
        .args(["--hold-time", "9", "--connect-retry", "1"]);
    let proc = Proc::spawn("tortie-watch", cmd, &log).unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "the agent's API socket",
        Duration::from_secs(15),
        POLL,
        || {
            if socket.exists() {
                Ok(())
            } else {
                Err(tail(&log, 10))
            }
        },
    );
    BareAgent {
        _proc: proc,
        socket,
        log,
        _dir: dir,
    }
}

#[test]
fn a_watch_stream_left_unread_never_holds_up_bgp_while_100k_routes_arrive() {
    let tortie_cfg = SpeakerConfig::loopback(AS);
    let bird_cfg =
        many_routes(SpeakerConfig::loopback(AS).with_neighbor(Neighbor::to(&tortie_cfg).hold(30)));
    let tortie_cfg = tortie_cfg.with_neighbor(Neighbor::to(&bird_cfg).hold(30));
    let agent = bare_agent(&tortie_cfg);

    // The watcher: its own thread and connection; it opens the stream and does not read it
    // until told to, then reads what it was left.
    let (opened_tx, opened_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
    let socket = agent.socket.clone();
    let watcher = std::thread::spawn(move || -> Result<WatchOutcome, String> {
        runtime().block_on(async move {
            let opened = async {
                let mut c = client::connect(&socket).await.map_err(|e| e.to_string())?;
                c.watch_events(v1::WatchEventsRequest {
                    kinds: vec![v1::EventKind::BestRoute as i32],
                })
                .await
                .map(|r| r.into_inner())
                .map_err(|s| format!("WatchEvents: {s}"))
            }
            .await;
            let mut stream = match opened {
                Ok(s) => {
                    let _ = opened_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let _ = read_rx.await;
            read_what_was_left(&mut stream).await
        })
    });
    opened_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the watcher did not report: {e}"))
        .unwrap_or_else(|e| panic!("{e}"));

    let bird = Bird::start(bird_cfg);
    let rt = runtime();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut peers_answered = 0;
    let reached = loop {
        let (peers, count) = rt.block_on(async {
            let mut c = client::connect(&agent.socket)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}\n{}", tail(&agent.log, 20)));
            let asked = Instant::now();
            let peers = c
                .list_peers(v1::ListPeersRequest::default())
                .await
                .map(|r| (r.into_inner(), asked.elapsed()));
            let count = c
                .list_routes(v1::ListRoutesRequest {
                    count_only: true,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().sizes.map_or(0, |s| s.ipv4_prefixes));
            (peers, count)
        });
        let (reply, took) = peers.unwrap_or_else(|s| {
            panic!(
                "ListPeers failed after {:?} with routes arriving: {s}\n{}",
                started.elapsed(),
                tail(&agent.log, 20)
            )
        });
        assert_eq!(reply.peers.len(), 1, "{reply:?}");
        slowest = slowest.max(took);
        peers_answered += 1;
        let count = count.unwrap_or_else(|s| panic!("ListRoutes: {s}"));
        if count >= u64::from(MANY) {
            break count;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the RIB has {count} of {MANY} prefixes after {:?}\n{}\n{}",
            started.elapsed(),
            tail(&agent.log, 20),
            bird.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(reached, u64::from(MANY));
    assert!(
        peers_answered > 1,
        "ListPeers was asked while routes arrived"
    );
    eprintln!(
        "RIB at {MANY} prefixes after {:?}; ListPeers answered {peers_answered} times, slowest {slowest:?}",
        started.elapsed()
    );
    // The stream was left behind, not broken: reading it now gives the routes, or says how
    // much was dropped.
    let _ = read_tx.send(());
    let outcome = watcher
        .join()
        .unwrap_or_else(|_| panic!("the watcher thread panicked"))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("the unread watcher then read: {outcome:?}");
    assert!(
        outcome.lagged.is_some() || outcome.routes >= MANY as usize,
        "neither every route nor a lagged event: {outcome:?}"
    );
}

#[derive(Debug, Default)]
struct WatchOutcome {
    /// Best-route events read.
    routes: usize,
    /// The first lagged event's text.
    lagged: Option<String>,
}

/// Reads best-route events until a lagged event, or every route, or 60 s.
async fn read_what_was_left(
    stream: &mut tonic::Streaming<v1::Event>,
) -> Result<WatchOutcome, String> {
    use v1::event::Event as E;
    let mut out = WatchOutcome::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.lagged.is_none() && out.routes < MANY as usize {
        let next = tokio::time::timeout_at(deadline, stream.message())
            .await
            .map_err(|_| format!("the stream went quiet: {out:?}"))?
            .map_err(|s| format!("the stream failed: {s}"))?
            .ok_or_else(|| format!("the stream ended: {out:?}"))?;
        match next.event {
            Some(E::BestRoute(_)) => out.routes += 1,
            Some(E::Lagged(l)) => out.lagged = Some(l.message),
            other => return Err(format!("an event not asked for: {other:?}")),
        }
    }
    Ok(out)
}

#[test]
fn a_watch_stream_reports_the_session_coming_up_and_the_routes_it_brings() {
    let tortie_cfg = SpeakerConfig::loopback(AS);
    let bird_cfg = SpeakerConfig::loopback(AS)
        .with_neighbor(Neighbor::to(&tortie_cfg).hold(30))
        .with_originate("198.19.40.0/26", "")
        .with_originate("198.19.40.64/26", "");
    let bird_addr = bird_cfg.addr().to_string();
    let tortie_cfg = tortie_cfg.with_neighbor(Neighbor::to(&bird_cfg).hold(30));
    let agent = bare_agent(&tortie_cfg);
    runtime().block_on(async {
        use v1::event::Event as E;
        let mut c = client::connect(&agent.socket)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut stream = c
            .watch_events(v1::WatchEventsRequest::default())
            .await
            .unwrap_or_else(|s| panic!("WatchEvents: {s}"))
            .into_inner();
        let _bird = Bird::start(bird_cfg);
        let mut up = false;
        let mut routes = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + SESSION_TIMEOUT;
        while !(up && routes.len() == 2) {
            let e = tokio::time::timeout_at(deadline, stream.message())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no events within {SESSION_TIMEOUT:?}: up {up}, routes {routes:?}\n{}",
                        tail(&agent.log, 20)
                    )
                })
                .unwrap_or_else(|s| panic!("the stream failed: {s}"))
                .unwrap_or_else(|| panic!("the stream ended"));
            match e.event {
                Some(E::PeerState(p)) if p.to == v1::PeerState::Established as i32 => {
                    assert_eq!(p.address, bird_addr);
                    up = true;
                }
                Some(E::BestRoute(r)) => {
                    assert_eq!(r.next_hops, vec![bird_addr.clone()], "{r:?}");
                    routes.insert(r.prefix);
                }
                _ => {}
            }
        }
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            ["198.19.40.0/26", "198.19.40.64/26"]
        );
    });
}

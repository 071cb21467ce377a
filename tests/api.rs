//! The agent's gRPC API on its unix socket, against a real `tortie agent` peering with a real
//! BIRD on 127.x loopback addresses: the socket's file, `tortie status` (table and `--json`),
//! ListPeers through the client the CLI uses (`src/api/client.rs`, included as it is), and
//! what happens with no agent, a stale socket, a second agent and SIGTERM.

mod support;

#[allow(dead_code)]
#[path = "../src/api/client.rs"]
mod client;

use serde_json::Value;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::tortie::Tortie;
use support::*;
use tortie_proto::v1;

/// Calico's default AS on both sides: an iBGP session, as in a cluster.
const AS: u32 = 64512;
/// BIRD proposes less than tortie's 9 s, so the negotiated value is BIRD's.
const BIRD_HOLD: u16 = 6;

/// An agent whose one BGPPeer, a BIRD, is Established.
struct Established {
    // Dropped in this order: the agent first, so BIRD sees a clean Cease.
    tortie: Tortie,
    bird: Bird,
    bird_addr: IpAddr,
    bird_port: u16,
    tortie_cfg: SpeakerConfig,
}

fn established() -> Established {
    let tortie_cfg = SpeakerConfig::loopback(AS);
    let bird_cfg =
        SpeakerConfig::loopback(AS).with_neighbor(Neighbor::to(&tortie_cfg).hold(BIRD_HOLD));
    let tortie_cfg = tortie_cfg.with_neighbor(Neighbor::to(&bird_cfg).hold(9));
    let bird = Bird::start(bird_cfg.clone());
    let tortie = Tortie::start(tortie_cfg.clone());
    let bird_addr = bird_cfg.addr();
    tortie.wait_established(bird_addr, SESSION_TIMEOUT);
    Established {
        tortie,
        bird,
        bird_addr,
        bird_port: bird_cfg.port,
        tortie_cfg,
    }
}

/// The node name the support launcher gives an agent.
fn node_name(cfg: &SpeakerConfig) -> String {
    format!("tortie-{}", cfg.router_id.to_string().replace('.', "-"))
}

fn tortie_status(socket: &Path, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tortie"));
    cmd.arg("status").arg("--api-socket").arg(socket);
    if json {
        cmd.arg("--json");
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running tortie status: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The cells of a table line, trimmed.
fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

/// ListPeers through the CLI's client; `Err` describes what went wrong.
fn list_peers(socket: &Path) -> Result<v1::ListPeersResponse, String> {
    runtime().block_on(async {
        let mut c = client::connect(socket).await.map_err(|e| e.to_string())?;
        c.list_peers(v1::ListPeersRequest::default())
            .await
            .map(|r| r.into_inner())
            .map_err(|s| format!("ListPeers: {s}"))
    })
}

fn peer_at(reply: &v1::ListPeersResponse, addr: IpAddr) -> Result<v1::Peer, String> {
    reply
        .peers
        .iter()
        .find(|p| p.address == addr.to_string())
        .cloned()
        .ok_or_else(|| format!("no peer {addr} in {reply:?}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A socket file that nothing listens on, as an agent killed with SIGKILL leaves behind.
fn dead_socket(path: &Path) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
    drop(listener);
    assert!(path.exists(), "the socket file outlives its listener");
}

#[test]
fn the_socket_is_a_unix_socket_with_mode_0600_in_a_0755_directory() {
    let tortie = Tortie::start(SpeakerConfig::loopback(AS));
    let socket = tortie.api_socket();
    let meta =
        std::fs::symlink_metadata(&socket).unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    assert!(
        meta.file_type().is_socket(),
        "{} is a socket",
        socket.display()
    );
    assert_eq!(mode(&socket), 0o600, "socket mode");
    let dir = socket.parent().unwrap_or_else(|| panic!("no parent"));
    assert_eq!(mode(dir), 0o755, "directory mode");
}

#[test]
fn status_lists_the_bird_peer_as_up_and_established_in_calicoctl_layout() {
    let s = established();
    let out = tortie_status(&s.tortie.api_socket(), false);
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    let pid = s.tortie.pid().unwrap_or_else(|| panic!("agent has no pid"));
    let first = format!(
        "tortie process is running (node {}, pid {pid}, up ",
        node_name(&s.tortie_cfg)
    );
    assert!(text.starts_with(&first), "first line: {text}");
    let lines: Vec<&str> = text.lines().collect();
    let v4 = lines
        .iter()
        .position(|l| *l == "IPv4 BGP status")
        .unwrap_or_else(|| panic!("no IPv4 section:\n{text}"));
    let table = &lines[v4 + 1..v4 + 6];
    for rule in [table[0], table[2], table[4]] {
        assert!(
            rule.starts_with("+-") && rule.chars().all(|c| c == '+' || c == '-'),
            "rule line {rule:?} in:\n{text}"
        );
    }
    assert!(
        table.iter().all(|l| l.len() == table[0].len()),
        "aligned columns:\n{text}"
    );
    assert_eq!(
        cells(table[1]),
        ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"]
    );
    let row = cells(table[3]);
    assert_eq!(
        row[0],
        format!("{} port {}", s.bird_addr, s.bird_port),
        "in:\n{text}"
    );
    assert_eq!(row[1], "node specific");
    assert_eq!(row[2], "up");
    assert!(
        row[3].len() == 8 && row[3].chars().filter(|c| *c == ':').count() == 2,
        "SINCE is a time of day: {row:?}"
    );
    assert_eq!(row[4], "Established");
    assert!(
        text.ends_with("\nIPv6 BGP status\nNo IPv6 peers found.\n"),
        "IPv6 section:\n{text}"
    );
}

#[test]
fn status_json_has_the_documented_fields() {
    let s = established();
    let out = tortie_status(&s.tortie.api_socket(), true);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("--json output does not parse: {e}\n{}", stdout(&out)));
    assert_eq!(v["node"], node_name(&s.tortie_cfg).as_str());
    assert_eq!(v["pid"].as_i64(), s.tortie.pid().map(i64::from));
    assert!(v["uptimeSeconds"].is_u64(), "uptimeSeconds in {v}");
    let peers = v["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("no peers array in {v}"));
    assert_eq!(peers.len(), 1, "{v}");
    let p = &peers[0];
    assert_eq!(p["address"], s.bird_addr.to_string().as_str());
    assert_eq!(p["port"].as_u64(), Some(u64::from(s.bird_port)));
    assert_eq!(p["type"], "node specific");
    assert_eq!(p["state"], "up");
    assert_eq!(p["bgpState"], "Established");
    assert_eq!(p["info"], "Established");
    assert_eq!(p["peerAs"].as_u64(), Some(u64::from(AS)));
    assert!(
        p["received"].is_u64() && p["accepted"].is_u64() && p["advertised"].is_u64(),
        "{p}"
    );
    assert!(p["lastError"].is_null(), "{p}");
    let since = p["since"].as_str().unwrap_or_default();
    assert!(
        since.len() == 20 && since.ends_with('Z') && since.as_bytes().get(10) == Some(&b'T'),
        "since is RFC 3339 UTC: {p}"
    );
}

#[test]
fn list_peers_reports_the_negotiated_hold_time_and_families() {
    let s = established();
    let reply = list_peers(&s.tortie.api_socket()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.node, node_name(&s.tortie_cfg));
    let p = peer_at(&reply, s.bird_addr).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.state, v1::PeerState::Established as i32);
    assert_eq!(p.r#type, v1::PeerType::NodeSpecific as i32);
    let n = p
        .negotiated
        .unwrap_or_else(|| panic!("an Established peer has negotiated values"));
    assert_eq!(
        n.hold_time_seconds,
        u32::from(BIRD_HOLD),
        "the smaller proposal"
    );
    assert_eq!(n.keepalive_seconds, u32::from(BIRD_HOLD) / 3);
    assert_eq!(n.families, vec![v1::AddressFamily::Ipv4Unicast as i32]);
    assert_eq!(n.peer_router_id, s.bird.config().router_id.to_string());
    assert!(n.four_octet_as, "BIRD and tortie both speak 4-octet AS");
}

#[test]
fn a_peer_that_stopped_shows_not_established_with_its_last_error() {
    let mut s = established();
    let socket = s.tortie.api_socket();
    s.bird.stop();
    let p = wait_for(
        "tortie's API to report the session down with an error",
        SESSION_TIMEOUT,
        POLL,
        || {
            let p = peer_at(&list_peers(&socket)?, s.bird_addr)?;
            if p.state != v1::PeerState::Established as i32 && p.last_error.is_some() {
                Ok(p)
            } else {
                Err(format!("{p:?}"))
            }
        },
    );
    assert!(
        p.negotiated.is_none(),
        "no negotiated values while down: {p:?}"
    );
    assert!(
        !p.last_error.unwrap_or_default().trim().is_empty(),
        "the error says something"
    );
}

#[test]
fn status_without_a_socket_file_exits_1_naming_the_path() {
    let dir = TempDir::new("api-none");
    let socket = dir.join("run").join("tortie.sock");
    let out = tortie_status(&socket, false);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let expected = format!(
        "no tortie agent is serving {} (is it running? see --api-socket)",
        socket.display()
    );
    assert!(stderr(&out).contains(&expected), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn status_on_a_socket_nobody_answers_exits_1_naming_the_path() {
    let dir = TempDir::new("api-dead");
    let socket = dir.join("tortie.sock");
    dead_socket(&socket);
    let out = tortie_status(&socket, false);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let expected = format!(
        "no tortie agent is serving {} (is it running? see --api-socket)",
        socket.display()
    );
    assert!(stderr(&out).contains(&expected), "stderr: {}", stderr(&out));
}

#[test]
fn an_agent_replaces_a_stale_socket_nobody_answers_on() {
    let mut tortie = Tortie::new(SpeakerConfig::loopback(AS));
    dead_socket(&tortie.api_socket());
    tortie.spawn();
    let out = tortie_status(&tortie.api_socket(), false);
    assert!(out.status.success(), "{out:?}\n{}", tortie.log());
    assert_eq!(mode(&tortie.api_socket()), 0o600);
}

#[test]
fn a_second_agent_on_the_same_socket_refuses_to_start() {
    let first = Tortie::start(SpeakerConfig::loopback(AS));
    let socket = first.api_socket();
    // Another node on its own address, so only the API socket is shared.
    let second_cfg = SpeakerConfig::loopback(AS);
    let dir = TempDir::new("api-second");
    let config = dir.join("cluster.yaml");
    std::fs::write(&config, Tortie::new(second_cfg.clone()).yaml())
        .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tortie"));
    cmd.args(["agent", "--dataplane", "none", "--node"])
        .arg(node_name(&second_cfg))
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--secrets-dir")
        .arg(dir.join("secrets"))
        .arg("--api-socket")
        .arg(&socket);
    let log = dir.join("second.log");
    let mut second = Proc::spawn("tortie-second", cmd, &log).unwrap_or_else(|e| panic!("{e}"));
    let exit = wait_for(
        "the second agent to exit",
        Duration::from_secs(15),
        POLL,
        || second.exit_status().ok_or_else(|| tail(&log, 5)),
    );
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(exit, "exit status: 1", "{said}");
    assert!(
        said.contains(&format!("another agent serves {}", socket.display())),
        "the second agent says why: {said}"
    );
    let out = tortie_status(&socket, false);
    assert!(
        out.status.success(),
        "the first agent still serves its socket: {out:?}"
    );
}

#[test]
fn the_socket_is_removed_when_the_agent_stops_on_sigterm() {
    let mut tortie = Tortie::start(SpeakerConfig::loopback(AS));
    let socket = tortie.api_socket();
    assert!(socket.exists(), "serving {}", socket.display());
    tortie.stop();
    assert!(
        !socket.exists(),
        "{} is gone after SIGTERM\n{}",
        socket.display(),
        tortie.log()
    );
    assert!(
        tortie.log().contains("API stopped"),
        "stopped cleanly rather than killed:\n{}",
        tortie.log()
    );
}

//! `tortie status`: the agent's sessions as `calicoctl node status` prints BIRD's, read from
//! the agent's API, or as JSON for scripts.
//!
//! STATE is what BIRD shows for a protocol (`up` once Established, `start` while it tries,
//! `down` when an operator disabled it), INFO the RFC 4271 state, followed by the last error
//! while the session is not up (or `(disabled)`): the same columns an operator of Calico
//! already reads. Times are UTC. Everything in the agent's reply
//! is checked before it is printed; a reply that does not parse is an error, not a guess.
//!
//! `--json` prints one object whose shape only grows:
//! `{"node", "version", "pid", "uptimeSeconds", "peers": [{"name", "address", "port",
//! "type", "state", "bgpState", "since", "info", "lastError", "peerAs", "received",
//! "accepted", "advertised", "enabled"}]}`; `since` is RFC 3339 (UTC) or null when unknown, counters and
//! `enabled` are null when the agent does not report them.

use crate::api::client::{self, ClientError};
use serde::Serialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use tonic::transport::Channel;
use tortie_proto::v1::{self, tortie_client::TortieClient};

#[derive(clap::Args)]
pub struct Args {
    /// The agent's API socket.
    #[arg(long, value_name = "PATH", default_value = "/run/tortie/tortie.sock")]
    api_socket: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Why no status could be shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{call} failed: {} ({:?})", status.message(), status.code())]
    Call {
        call: &'static str,
        status: tonic::Status,
    },
    #[error("the agent's {call} reply is malformed: {what}")]
    Reply { call: &'static str, what: String },
}

/// The agent itself, from `GetStatus`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub node: String,
    pub version: String,
    pub pid: u32,
    /// `None` when the agent did not say.
    #[serde(serialize_with = "as_seconds")]
    pub uptime: Option<Duration>,
}

/// One session, as a row of the table (and an element of `--json`'s `peers`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRow {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    /// calicoctl's PEER TYPE text.
    #[serde(rename = "type")]
    pub peer_type: String,
    /// `up`, `start` or `down` (disabled), as BIRD's protocol state.
    pub state: String,
    /// The RFC 4271 state name (`Established`, `Active`, ...), `unknown` for a value this
    /// client does not know.
    pub bgp_state: String,
    #[serde(serialize_with = "as_rfc3339")]
    pub since: Option<SystemTime>,
    pub info: String,
    pub last_error: Option<String>,
    pub peer_as: u32,
    /// Paths the peer sent (before import policy).
    pub received: Option<u64>,
    /// Of those, the paths import policy let in.
    pub accepted: Option<u64>,
    pub advertised: Option<u64>,
    /// `false` once an operator disabled the session (`tortie peer disable`).
    pub enabled: Option<bool>,
}

fn as_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_secs()),
        None => s.serialize_none(),
    }
}

pub(crate) fn as_rfc3339<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t.and_then(utc) {
        Some(c) => s.serialize_str(&format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )),
        None => s.serialize_none(),
    }
}

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// UTC calendar fields of `t` (proleptic Gregorian); `None` before 1970.
pub(crate) fn utc(t: SystemTime) -> Option<Civil> {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    // Days to a date, counting in 400-year eras that start on 1 March (leap day last).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(Civil {
        year,
        month,
        day,
        hour: (rem / 3_600) as u32,
        minute: (rem % 3_600 / 60) as u32,
        second: (rem % 60) as u32,
    })
}

/// BIRD's SINCE: the time of day when it is today, else the date.
pub(crate) fn since_text(since: Option<SystemTime>, now: SystemTime) -> String {
    match (since.and_then(utc), utc(now)) {
        (Some(s), Some(n)) if (s.year, s.month, s.day) == (n.year, n.month, n.day) => {
            format!("{:02}:{:02}:{:02}", s.hour, s.minute, s.second)
        }
        (Some(s), _) => format!("{:04}-{:02}-{:02}", s.year, s.month, s.day),
        (None, _) => "-".into(),
    }
}

/// `3m12s`, `2h05m`, `4d03h`: two units at most.
pub fn uptime_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m{:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

pub(crate) fn state_name(s: v1::PeerState) -> &'static str {
    match s {
        v1::PeerState::Idle => "Idle",
        v1::PeerState::Connect => "Connect",
        v1::PeerState::Active => "Active",
        v1::PeerState::OpenSent => "OpenSent",
        v1::PeerState::OpenConfirm => "OpenConfirm",
        v1::PeerState::Established => "Established",
        v1::PeerState::Unspecified => "unknown",
    }
}

fn type_text(label: &str, t: v1::PeerType) -> String {
    if !label.is_empty() {
        return printable(label);
    }
    match t {
        v1::PeerType::NodeToNodeMesh => "node-to-node mesh",
        v1::PeerType::Global => "global",
        v1::PeerType::NodeSpecific => "node specific",
        v1::PeerType::RouteReflectorClient => "route reflector client",
        v1::PeerType::Unspecified => "unknown",
    }
    .into()
}

/// Text from the agent with control characters (a newline in an error) made harmless for a
/// one-line table cell.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub(crate) fn row(p: v1::Peer) -> Result<PeerRow, StatusError> {
    let bad = |what: String| StatusError::Reply {
        call: "ListPeers",
        what,
    };
    let address: IpAddr = p.address.parse().map_err(|_| {
        bad(format!(
            "peer {:?}: address {:?} is not an IP address",
            p.name, p.address
        ))
    })?;
    let port = u16::try_from(p.port)
        .map_err(|_| bad(format!("peer {address}: port {} is out of range", p.port)))?;
    // An enum value newer than this client reads as UNSPECIFIED (the proto's rule).
    let state = v1::PeerState::try_from(p.state).unwrap_or(v1::PeerState::Unspecified);
    let peer_type = v1::PeerType::try_from(p.r#type).unwrap_or(v1::PeerType::Unspecified);
    let bgp_state = state_name(state).to_string();
    let last_error = p.last_error.as_deref().map(printable);
    let disabled = p.enabled == Some(false);
    let info = match (&last_error, state) {
        _ if disabled => format!("{bgp_state} (disabled)"),
        (_, v1::PeerState::Established) | (None, _) => bgp_state.clone(),
        (Some(e), _) => format!("{bgp_state} {e}"),
    };
    Ok(PeerRow {
        name: printable(&p.name),
        address,
        port,
        peer_type: type_text(&p.type_label, peer_type),
        state: if disabled {
            "down"
        } else if state == v1::PeerState::Established {
            "up"
        } else {
            "start"
        }
        .into(),
        bgp_state,
        since: p.since.and_then(|t| SystemTime::try_from(t).ok()),
        info,
        last_error,
        peer_as: p.peer_as,
        received: p.received,
        accepted: p.accepted,
        advertised: p.advertised,
        enabled: p.enabled,
    })
}

pub(crate) async fn fetch_peers(
    client: &mut TortieClient<Channel>,
) -> Result<Vec<PeerRow>, StatusError> {
    let reply = client
        .list_peers(v1::ListPeersRequest::default())
        .await
        .map_err(|status| StatusError::Call {
            call: "ListPeers",
            status,
        })?
        .into_inner();
    let mut rows = reply
        .peers
        .into_iter()
        .map(row)
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|r| (r.address, r.port));
    Ok(rows)
}

async fn fetch_status(client: &mut TortieClient<Channel>) -> Result<AgentStatus, StatusError> {
    let reply = client
        .get_status(v1::GetStatusRequest {})
        .await
        .map_err(|status| StatusError::Call {
            call: "GetStatus",
            status,
        })?
        .into_inner();
    Ok(AgentStatus {
        node: printable(&reply.node),
        version: printable(&reply.version),
        pid: reply.pid,
        uptime: reply.uptime.and_then(|d| Duration::try_from(d).ok()),
    })
}

/// The sessions of the agent serving `socket`, sorted by address (for the lab's per-node
/// views; this command itself asks on the connection it already has).
#[allow(dead_code)]
pub async fn peer_rows(socket: &Path) -> Result<Vec<PeerRow>, StatusError> {
    let mut client = client::connect(socket).await?;
    fetch_peers(&mut client).await
}

/// A table in the layout of calicoctl (tablewriter): centred headers, cells padded by one
/// space.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = rule.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let pad = w - h.chars().count();
        let left = pad / 2;
        out.push_str(&format!(
            "| {}{}{} ",
            " ".repeat(left),
            h,
            " ".repeat(pad - left)
        ));
    }
    out.push_str("|\n");
    out.push_str(&rule);
    for r in rows {
        for (cell, w) in r.iter().zip(&widths) {
            let pad = w - cell.chars().count();
            out.push_str(&format!("| {cell}{} ", " ".repeat(pad)));
        }
        out.push_str("|\n");
    }
    out.push_str(&rule);
    out
}

/// The IPv4 and IPv6 sections of `calicoctl node status` for `rows`, with SINCE relative to
/// `now` (a time of day for today, a date before).
pub fn render_peers(rows: &[PeerRow], now: SystemTime) -> String {
    let mut out = String::new();
    for (v6, title) in [(false, "IPv4"), (true, "IPv6")] {
        if v6 {
            out.push('\n');
        }
        out.push_str(&format!("{title} BGP status\n"));
        let cells: Vec<Vec<String>> = rows
            .iter()
            .filter(|r| r.address.is_ipv6() == v6)
            .map(|r| {
                let address = if r.port == 179 {
                    r.address.to_string()
                } else {
                    format!("{} port {}", r.address, r.port)
                };
                vec![
                    address,
                    r.peer_type.clone(),
                    r.state.clone(),
                    since_text(r.since, now),
                    r.info.clone(),
                ]
            })
            .collect();
        if cells.is_empty() {
            out.push_str(&format!("No {title} peers found.\n"));
        } else {
            out.push_str(&table(
                &["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
                &cells,
            ));
        }
    }
    out
}

/// The whole text output: the agent line, then the sessions.
pub fn render(status: &AgentStatus, rows: &[PeerRow], now: SystemTime) -> String {
    let up = status
        .uptime
        .map(|d| format!(", up {}", uptime_text(d)))
        .unwrap_or_default();
    format!(
        "tortie process is running (node {}, pid {}{up}).\n\n{}",
        status.node,
        status.pid,
        render_peers(rows, now)
    )
}

/// `--json`'s document.
pub fn json(status: &AgentStatus, rows: &[PeerRow]) -> serde_json::Value {
    serde_json::json!({
        "node": status.node,
        "version": status.version,
        "pid": status.pid,
        "uptimeSeconds": status.uptime.map(|d| d.as_secs()),
        "peers": rows,
    })
}

async fn status(args: &Args) -> Result<String, StatusError> {
    let mut client = client::connect(&args.api_socket).await?;
    let agent = fetch_status(&mut client).await?;
    let rows = fetch_peers(&mut client).await?;
    Ok(if args.json {
        format!("{:#}\n", json(&agent, &rows))
    } else {
        render(&agent, &rows, SystemTime::now())
    })
}

/// Runs a command's future on a small runtime: prints its text, or its error with the
/// command's name on stderr and exit status 1.
pub(crate) fn run_printing(
    command: &str,
    fut: impl std::future::Future<Output = Result<String, StatusError>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tortie {command}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(fut) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tortie {command}: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn run(args: Args) -> ExitCode {
    run_printing("status", status(&args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn peer(address: &str, state: v1::PeerState, last_error: Option<&str>) -> v1::Peer {
        v1::Peer {
            name: "rack-1".into(),
            address: address.into(),
            port: 179,
            peer_as: 64512,
            type_label: "global".into(),
            state: state as i32,
            since: Some(tortie_proto::prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            last_error: last_error.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn utc_calendar_fields_match_known_instants() {
        // 2023-11-14T22:13:20Z, and the leap day 2024-02-29T00:00:00Z.
        let c = utc(at(1_700_000_000)).map(|c| (c.year, c.month, c.day, c.hour, c.minute));
        assert_eq!(c, Some((2023, 11, 14, 22, 13)));
        let c = utc(at(1_709_164_800)).map(|c| (c.year, c.month, c.day));
        assert_eq!(c, Some((2024, 2, 29)));
    }

    #[test]
    fn since_is_a_time_of_day_today_and_a_date_before() {
        let since = Some(at(1_700_000_000));
        assert_eq!(since_text(since, at(1_700_000_100)), "22:13:20");
        assert_eq!(since_text(since, at(1_700_100_000)), "2023-11-14");
        assert_eq!(since_text(None, at(0)), "-");
    }

    #[test]
    fn uptime_shows_two_units_at_most() {
        assert_eq!(uptime_text(Duration::from_secs(42)), "42s");
        assert_eq!(uptime_text(Duration::from_secs(192)), "3m12s");
        assert_eq!(uptime_text(Duration::from_secs(7_500)), "2h05m");
        assert_eq!(
            uptime_text(Duration::from_secs(3 * 86_400 + 7_200)),
            "3d02h"
        );
    }

    #[test]
    fn a_session_that_is_down_shows_start_and_its_error() {
        let r = row(peer(
            "198.18.1.2",
            v1::PeerState::Active,
            Some("Socket: Connection\nrefused"),
        ))
        .map(|r| (r.state, r.info));
        assert_eq!(
            r.ok(),
            Some((
                "start".to_string(),
                "Active Socket: Connection refused".to_string()
            ))
        );
    }

    #[test]
    fn an_unknown_state_from_a_newer_agent_reads_as_unknown() {
        let mut p = peer("198.18.1.2", v1::PeerState::Idle, None);
        p.state = 99;
        assert_eq!(row(p).ok().map(|r| r.bgp_state), Some("unknown".into()));
    }

    #[test]
    fn a_reply_with_a_bad_address_is_an_error_naming_it() {
        let err = row(peer("198.18.1.300", v1::PeerState::Idle, None)).err();
        assert!(
            err.is_some_and(|e| e.to_string().contains("\"198.18.1.300\"")),
            "the error names the address"
        );
    }

    #[test]
    fn peers_are_split_into_ipv4_and_ipv6_tables() {
        let rows: Vec<PeerRow> = [
            peer("198.18.1.2", v1::PeerState::Established, None),
            peer("2001:db8::2", v1::PeerState::Connect, None),
        ]
        .into_iter()
        .filter_map(|p| row(p).ok())
        .collect();
        let text = render_peers(&rows, at(1_700_000_100));
        let (v4, v6) = text.split_once("IPv6 BGP status").unwrap_or_default();
        assert!(v4.contains("| 198.18.1.2   | global    | up    | 22:13:20 | Established |"));
        assert!(v6.contains("| 2001:db8::2  | global    | start | 22:13:20 | Connect |"));
    }

    #[test]
    fn no_peers_of_a_family_says_so() {
        let text = render_peers(&[], at(0));
        assert!(text.contains("IPv4 BGP status\nNo IPv4 peers found.\n"));
        assert!(text.contains("IPv6 BGP status\nNo IPv6 peers found.\n"));
    }

    #[test]
    fn a_disabled_peer_is_down_and_says_so() {
        let mut p = peer(
            "198.18.1.2",
            v1::PeerState::Idle,
            Some("sent NOTIFICATION Cease"),
        );
        p.enabled = Some(false);
        let r = row(p).map(|r| (r.state, r.info)).ok();
        assert_eq!(r, Some(("down".to_string(), "Idle (disabled)".to_string())));
    }
}

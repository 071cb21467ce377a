//! `tortie peers [PEER]`: every session with its counts, or one (by address or name) in
//! detail: what the OPEN exchange negotiated, the hold time, the message and prefix counters,
//! the last error (`birdc show protocols all NAME`).
//!
//! `--json` prints `{"node", "peers": [PEER]}` (one element with PEER given), PEER being the
//! fields of `tortie status --json` plus `"negotiated": null | {"peerRouterId",
//! "holdTimeSeconds", "keepaliveSeconds", "families", "fourOctetAs", "addPath": [{"family",
//! "send", "receive"}], "routeRefresh", "enhancedRouteRefresh", "extendedMessage",
//! "extendedNextHop", "gracefulRestart": null | {"restartTimeSeconds", "restarting",
//! "notification", "families": [{"family", "forwardingPreserved"}]}, "peerHostname"}` and
//! `"counters": null | {"messagesIn", "messagesOut", "updatesIn", "updatesOut", "prefixesIn",
//! "withdrawalsIn", "prefixesOut", "withdrawalsOut", "establishedTransitions"}`. Families are
//! `ipv4-unicast`, `ipv6-unicast` (`unknown` for one this client does not know).

use super::{ApiArgs, call_error, enum_or, json_text};
use crate::status_cmd::{PeerRow, StatusError, printable, row, since_text, table};
use serde::Serialize;
use std::process::ExitCode;
use std::time::SystemTime;
use tortie_proto::v1;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// One peer, by address or name, shown in detail.
    #[arg(value_name = "PEER")]
    peer: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AddPathJson {
    pub family: &'static str,
    pub send: bool,
    pub receive: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GrFamilyJson {
    pub family: &'static str,
    pub forwarding_preserved: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestartJson {
    pub restart_time_seconds: u32,
    pub restarting: bool,
    pub notification: bool,
    pub families: Vec<GrFamilyJson>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NegotiatedJson {
    pub peer_router_id: String,
    pub hold_time_seconds: u32,
    pub keepalive_seconds: u32,
    pub families: Vec<&'static str>,
    pub four_octet_as: bool,
    pub add_path: Vec<AddPathJson>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    pub extended_message: bool,
    pub extended_next_hop: bool,
    pub graceful_restart: Option<GracefulRestartJson>,
    pub peer_hostname: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CountersJson {
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    pub prefixes_in: u64,
    pub withdrawals_in: u64,
    pub prefixes_out: u64,
    pub withdrawals_out: u64,
    pub established_transitions: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerDetail {
    #[serde(flatten)]
    pub row: PeerRow,
    pub negotiated: Option<NegotiatedJson>,
    pub counters: Option<CountersJson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeersJson {
    pub node: String,
    pub peers: Vec<PeerDetail>,
}

pub fn family(f: i32) -> &'static str {
    match enum_or(f, v1::AddressFamily::Unspecified) {
        v1::AddressFamily::Ipv4Unicast => "ipv4-unicast",
        v1::AddressFamily::Ipv6Unicast => "ipv6-unicast",
        v1::AddressFamily::Unspecified => "unknown",
    }
}

fn negotiated(n: v1::Negotiated) -> NegotiatedJson {
    NegotiatedJson {
        peer_router_id: printable(&n.peer_router_id),
        hold_time_seconds: n.hold_time_seconds,
        keepalive_seconds: n.keepalive_seconds,
        families: n.families.iter().map(|f| family(*f)).collect(),
        four_octet_as: n.four_octet_as,
        add_path: n
            .add_path
            .iter()
            .map(|a| AddPathJson {
                family: family(a.family),
                send: a.send,
                receive: a.receive,
            })
            .collect(),
        route_refresh: n.route_refresh,
        enhanced_route_refresh: n.enhanced_route_refresh,
        extended_message: n.extended_message,
        extended_next_hop: n.extended_next_hop,
        graceful_restart: n.graceful_restart.map(|g| GracefulRestartJson {
            restart_time_seconds: g.restart_time_seconds,
            restarting: g.restarting,
            notification: g.notification,
            families: g
                .families
                .iter()
                .map(|f| GrFamilyJson {
                    family: family(f.family),
                    forwarding_preserved: f.forwarding_preserved,
                })
                .collect(),
        }),
        peer_hostname: n.peer_hostname.as_deref().map(printable),
    }
}

fn counters(c: v1::PeerCounters) -> CountersJson {
    CountersJson {
        messages_in: c.messages_in,
        messages_out: c.messages_out,
        updates_in: c.updates_in,
        updates_out: c.updates_out,
        prefixes_in: c.prefixes_in,
        withdrawals_in: c.withdrawals_in,
        prefixes_out: c.prefixes_out,
        withdrawals_out: c.withdrawals_out,
        established_transitions: c.established_transitions,
    }
}

pub fn detail(p: v1::Peer) -> Result<PeerDetail, StatusError> {
    let n = p.negotiated.clone().map(negotiated);
    let c = p.counters.map(counters);
    Ok(PeerDetail {
        row: row(p)?,
        negotiated: n,
        counters: c,
    })
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The list view: one row per session.
pub fn render_list(peers: &[PeerDetail], now: SystemTime) -> String {
    if peers.is_empty() {
        return "No peers configured.\n".to_string();
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            let r = &p.row;
            vec![
                r.address.to_string(),
                r.name.clone(),
                r.peer_as.to_string(),
                r.peer_type.clone(),
                r.state.clone(),
                since_text(r.since, now),
                opt(r.received),
                opt(r.accepted),
                opt(r.advertised),
                r.info.clone(),
            ]
        })
        .collect();
    table(
        &[
            "PEER ADDRESS",
            "NAME",
            "AS",
            "PEER TYPE",
            "STATE",
            "SINCE",
            "RECEIVED",
            "ACCEPTED",
            "ADVERTISED",
            "INFO",
        ],
        &rows,
    )
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The detail view of one session, in the manner of `birdc show protocols all`.
pub fn render_detail(p: &PeerDetail) -> String {
    let r = &p.row;
    let mut out = format!("Peer {} ({})\n", r.address, r.name);
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<22}{v}\n"));
    line("Type:", r.peer_type.clone());
    line("Peer AS:", r.peer_as.to_string());
    line("Port:", r.port.to_string());
    line(
        "Enabled:",
        match r.enabled {
            Some(e) => yes(e).to_string(),
            None => "unknown".to_string(),
        },
    );
    let since = r
        .since
        .and_then(crate::status_cmd::utc)
        .map(|c| {
            format!(
                " since {:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                c.year, c.month, c.day, c.hour, c.minute, c.second
            )
        })
        .unwrap_or_default();
    line("BGP state:", format!("{}{since}", r.bgp_state));
    line(
        "Last error:",
        r.last_error.clone().unwrap_or_else(|| "-".to_string()),
    );
    // As BIRD's "imported, filtered, exported", from what the peer sent.
    let filtered = match (r.received, r.accepted) {
        (Some(rx), Some(acc)) => rx.saturating_sub(acc).to_string(),
        _ => "-".to_string(),
    };
    line(
        "Routes:",
        format!(
            "{} received, {} accepted, {filtered} filtered, {} advertised",
            opt(r.received),
            opt(r.accepted),
            opt(r.advertised)
        ),
    );
    match &p.negotiated {
        None => line("Negotiated:", "- (not Established)".to_string()),
        Some(n) => {
            out.push_str("  Negotiated:\n");
            let mut line = |k: &str, v: String| out.push_str(&format!("    {k:<20}{v}\n"));
            line("Peer router id:", n.peer_router_id.clone());
            line(
                "Hold time:",
                format!(
                    "{} s (keepalive {} s)",
                    n.hold_time_seconds, n.keepalive_seconds
                ),
            );
            line("Families:", n.families.join(", "));
            line("4-octet AS:", yes(n.four_octet_as).into());
            let add_path: Vec<String> = n
                .add_path
                .iter()
                .map(|a| {
                    let dir = match (a.send, a.receive) {
                        (true, true) => "send and receive",
                        (true, false) => "send",
                        (false, true) => "receive",
                        (false, false) => "off",
                    };
                    format!("{} {dir}", a.family)
                })
                .collect();
            line(
                "ADD-PATH:",
                if add_path.is_empty() {
                    "no".into()
                } else {
                    add_path.join(", ")
                },
            );
            line(
                "Route refresh:",
                format!(
                    "{} (enhanced: {})",
                    yes(n.route_refresh),
                    yes(n.enhanced_route_refresh)
                ),
            );
            line("Extended messages:", yes(n.extended_message).into());
            line("Extended next hop:", yes(n.extended_next_hop).into());
            line(
                "Graceful restart:",
                match &n.graceful_restart {
                    None => "no".into(),
                    Some(g) => {
                        let fams: Vec<String> = g
                            .families
                            .iter()
                            .map(|f| {
                                format!(
                                    "{}{}",
                                    f.family,
                                    if f.forwarding_preserved {
                                        " (forwarding preserved)"
                                    } else {
                                        ""
                                    }
                                )
                            })
                            .collect();
                        format!(
                            "restart time {} s{}{}",
                            g.restart_time_seconds,
                            if g.restarting { ", restarting" } else { "" },
                            if fams.is_empty() {
                                String::new()
                            } else {
                                format!(", {}", fams.join(", "))
                            }
                        )
                    }
                },
            );
            if let Some(h) = &n.peer_hostname {
                line("Peer hostname:", h.clone());
            }
        }
    }
    if let Some(c) = &p.counters {
        out.push_str("  Counters (since the peer was configured):\n");
        let mut line = |k: &str, v: String| out.push_str(&format!("    {k:<20}{v}\n"));
        line(
            "Messages:",
            format!("{} in, {} out", c.messages_in, c.messages_out),
        );
        line(
            "UPDATEs:",
            format!("{} in, {} out", c.updates_in, c.updates_out),
        );
        line(
            "Prefixes in:",
            format!(
                "{} announced, {} withdrawn",
                c.prefixes_in, c.withdrawals_in
            ),
        );
        line(
            "Prefixes out:",
            format!(
                "{} announced, {} withdrawn",
                c.prefixes_out, c.withdrawals_out
            ),
        );
        line(
            "Established:",
            format!("{} time(s)", c.established_transitions),
        );
    }
    out
}

async fn peers(args: &Args) -> Result<String, StatusError> {
    let mut client = args.api.connect().await?;
    let reply = client
        .list_peers(v1::ListPeersRequest {
            peer: args.peer.clone().unwrap_or_default(),
        })
        .await
        .map_err(call_error("ListPeers"))?
        .into_inner();
    let mut peers = reply
        .peers
        .into_iter()
        .map(detail)
        .collect::<Result<Vec<_>, _>>()?;
    peers.sort_by_key(|p| (p.row.address, p.row.port));
    let j = PeersJson {
        node: printable(&reply.node),
        peers,
    };
    if args.api.json {
        return json_text(&j);
    }
    Ok(match (&args.peer, j.peers.as_slice()) {
        (Some(_), [one]) => render_detail(one),
        _ => render_list(&j.peers, SystemTime::now()),
    })
}

pub fn run(args: Args) -> ExitCode {
    crate::status_cmd::run_printing("peers", peers(&args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn established() -> v1::Peer {
        v1::Peer {
            name: "node2".into(),
            address: "198.18.1.2".into(),
            port: 179,
            peer_as: 64512,
            type_label: "node-to-node mesh".into(),
            state: v1::PeerState::Established as i32,
            received: Some(3),
            accepted: Some(2),
            advertised: Some(2),
            enabled: Some(true),
            negotiated: Some(v1::Negotiated {
                peer_router_id: "198.18.1.2".into(),
                hold_time_seconds: 90,
                keepalive_seconds: 30,
                families: vec![v1::AddressFamily::Ipv4Unicast as i32],
                four_octet_as: true,
                route_refresh: true,
                ..Default::default()
            }),
            counters: Some(v1::PeerCounters {
                messages_in: 12,
                messages_out: 11,
                prefixes_in: 3,
                established_transitions: 1,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_detail_shows_hold_time_capabilities_and_counters() {
        let d = detail(established()).unwrap_or_else(|e| panic!("{e}"));
        let text = render_detail(&d);
        for expected in [
            "Peer 198.18.1.2 (node2)",
            "  Enabled:              yes",
            "  Routes:               3 received, 2 accepted, 1 filtered, 2 advertised",
            "    Hold time:          90 s (keepalive 30 s)",
            "    Families:           ipv4-unicast",
            "    Route refresh:      yes (enhanced: no)",
            "    Messages:           12 in, 11 out",
            "    Prefixes in:        3 announced, 0 withdrawn",
            "    Established:        1 time(s)",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
    }

    #[test]
    fn a_session_that_is_not_up_has_no_negotiated_values() {
        let mut p = established();
        p.state = v1::PeerState::Active as i32;
        p.negotiated = None;
        p.last_error = Some("connect failed".into());
        let text = render_detail(&detail(p).unwrap_or_else(|e| panic!("{e}")));
        assert!(
            text.contains("  Negotiated:           - (not Established)"),
            "{text}"
        );
        assert!(
            text.contains("  Last error:           connect failed"),
            "{text}"
        );
    }

    #[test]
    fn the_json_of_a_peer_carries_the_status_fields_and_the_details() {
        let d = detail(established()).unwrap_or_else(|e| panic!("{e}"));
        let v = serde_json::to_value(&d).unwrap_or_default();
        assert_eq!(v["address"], "198.18.1.2");
        assert_eq!(v["bgpState"], "Established");
        assert_eq!(v["negotiated"]["holdTimeSeconds"], 90);
        assert_eq!(v["negotiated"]["families"][0], "ipv4-unicast");
        assert_eq!(v["counters"]["prefixesIn"], 3);
        assert_eq!(v["enabled"], true);
    }
}

//! `tortie routes [PREFIX]`: the RIB's best routes beside what felix programmed, one row per
//! prefix, marked where the two differ.
//!
//! PREFIX selects the prefix and everything inside it; an address (no length) finds the most
//! specific route containing it (where a pod's traffic goes); `--exact` keeps that prefix only.
//! Both tables are read in pages until complete, so the view is whole however large the RIB.
//!
//! `--json` prints `{"node", "rib": {"ipv4Prefixes", "ipv6Prefixes", "paths"}, "dataplane",
//! "programmed", "routes": [ROUTE], "differences"}` where ROUTE is `{"prefix", "rib": null |
//! {"local", "bestNextHops", "paths": [PATH]}, "fib": null | {"blackhole", "protocol",
//! "nextHops": [{"gateway", "device", "encap", "onlink"}]}, "difference": null | "only-in-rib" |
//! "only-in-fib" | "next-hops-differ"}` and PATH is `{"from", "fromName", "local", "best",
//! "multipath", "stale", "pathId", "nextHop", "origin", "asPath", "med", "localPref",
//! "communities", "largeCommunities", "extendedCommunities", "originatorId", "clusterList"}`
//! (`from`, `nextHop`, `med`, `localPref`, `originatorId` null when absent; `asPath` as BIRD
//! prints it, sets in braces). `protocol` is the kernel route protocol (`rtm_protocol`) felix
//! wrote the route with, what `ip route show proto N` selects it by (null from an agent that
//! does not report it). `dataplane` is false for an agent without a kernel dataplane (then
//! every `fib` is null); `differences` counts them all.

use super::{ApiArgs, call_error, enum_or, json_text};
use crate::status_cmd::{StatusError, printable, table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use tonic::transport::Channel;
use tortie_proto::v1::{self, tortie_client::TortieClient};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A prefix (its routes and those inside it) or an address (the route it takes).
    #[arg(value_name = "PREFIX")]
    prefix: Option<String>,
    /// Only the prefix itself.
    #[arg(long)]
    exact: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PathJson {
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub local: bool,
    pub best: bool,
    pub multipath: bool,
    pub stale: bool,
    pub path_id: u32,
    pub next_hop: Option<String>,
    pub origin: &'static str,
    pub as_path: String,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub extended_communities: Vec<String>,
    pub originator_id: Option<String>,
    pub cluster_list: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RibJson {
    /// This node's own prefix.
    pub local: bool,
    /// The multipath group's next hops, best first (empty when local).
    pub best_next_hops: Vec<String>,
    pub paths: Vec<PathJson>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FibHopJson {
    pub gateway: String,
    pub device: String,
    pub encap: &'static str,
    pub onlink: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FibJson {
    pub blackhole: bool,
    /// The kernel route protocol; the API gives one for the whole FIB (felix writes every
    /// route with its own), repeated here so that each route says how to find it in the kernel.
    pub protocol: Option<u32>,
    pub next_hops: Vec<FibHopJson>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteRow {
    pub prefix: String,
    pub rib: Option<RibJson>,
    pub fib: Option<FibJson>,
    pub difference: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RibSizesJson {
    pub ipv4_prefixes: u64,
    pub ipv6_prefixes: u64,
    pub paths: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutesJson {
    pub node: String,
    pub rib: Option<RibSizesJson>,
    pub dataplane: bool,
    pub programmed: bool,
    pub routes: Vec<RouteRow>,
    pub differences: u64,
}

fn origin(o: i32) -> &'static str {
    match enum_or(o, v1::Origin::Unspecified) {
        v1::Origin::Igp => "IGP",
        v1::Origin::Egp => "EGP",
        v1::Origin::Incomplete => "incomplete",
        v1::Origin::Unspecified => "unknown",
    }
}

/// BIRD's AS path text: sequences as numbers, sets in braces, confederation parts in
/// parentheses.
pub fn as_path_text(segments: &[v1::AsPathSegment]) -> String {
    segments
        .iter()
        .map(|s| {
            let asns: Vec<String> = s.asns.iter().map(u32::to_string).collect();
            let asns = asns.join(" ");
            match enum_or(s.r#type, v1::AsPathSegmentType::Unspecified) {
                v1::AsPathSegmentType::Set => format!("{{{asns}}}"),
                v1::AsPathSegmentType::ConfedSequence => format!("({asns})"),
                v1::AsPathSegmentType::ConfedSet => format!("({{{asns}}})"),
                _ => asns,
            }
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn path_json(p: v1::Path) -> PathJson {
    PathJson {
        from: p.from_peer.as_deref().map(printable),
        from_name: (!p.from_name.is_empty()).then(|| printable(&p.from_name)),
        local: p.local,
        best: p.best,
        multipath: p.multipath,
        stale: p.stale,
        path_id: p.path_id,
        next_hop: p.next_hop.as_deref().map(printable),
        origin: origin(p.origin),
        as_path: as_path_text(&p.as_path),
        med: p.med,
        local_pref: p.local_pref,
        communities: p.communities.iter().map(|c| printable(c)).collect(),
        large_communities: p.large_communities.iter().map(|c| printable(c)).collect(),
        extended_communities: p
            .extended_communities
            .iter()
            .map(|c| printable(c))
            .collect(),
        originator_id: p.originator_id.as_deref().map(printable),
        cluster_list: p.cluster_list.iter().map(|c| printable(c)).collect(),
    }
}

pub fn rib_json(r: v1::Route) -> RibJson {
    let paths: Vec<PathJson> = r.paths.into_iter().map(path_json).collect();
    let local = paths.iter().any(|p| p.best && p.local);
    let best_next_hops = paths
        .iter()
        .filter(|p| p.multipath && !p.local)
        .filter_map(|p| p.next_hop.clone())
        .collect();
    RibJson {
        local,
        best_next_hops,
        paths,
    }
}

fn encap(e: i32) -> &'static str {
    match enum_or(e, v1::Encapsulation::Unspecified) {
        v1::Encapsulation::None => "none",
        v1::Encapsulation::Vxlan => "vxlan",
        v1::Encapsulation::Ipip => "ipip",
        v1::Encapsulation::Unspecified => "unknown",
    }
}

/// A FIB route as shown; `protocol` as the API reports it, 0 (`RTPROT_UNSPEC`, which no
/// route of felix has) meaning an agent that does not report it.
pub fn fib_json(f: v1::FibRoute, protocol: u32) -> FibJson {
    FibJson {
        blackhole: f.blackhole,
        protocol: (protocol != 0).then_some(protocol),
        next_hops: f
            .next_hops
            .into_iter()
            .map(|n| FibHopJson {
                gateway: printable(&n.gateway),
                device: printable(&n.device),
                encap: encap(n.encapsulation),
                onlink: n.onlink,
            })
            .collect(),
    }
}

fn difference(kind: i32) -> &'static str {
    match enum_or(kind, v1::FibDifferenceKind::Unspecified) {
        v1::FibDifferenceKind::OnlyInRib => "only-in-rib",
        v1::FibDifferenceKind::OnlyInFib => "only-in-fib",
        v1::FibDifferenceKind::NextHopsDiffer => "next-hops-differ",
        v1::FibDifferenceKind::Unspecified => "differs",
    }
}

/// The RIB and FIB listings side by side, one row per prefix, in the agent's listing order
/// (IPv4 first, then by address and length); a prefix that does not parse (never from a
/// correct agent) is kept, last.
pub fn merge(
    rib: Vec<v1::Route>,
    fib: Vec<v1::FibRoute>,
    fib_protocol: u32,
    differences: &[v1::FibDifference],
) -> Vec<RouteRow> {
    let mut rows: BTreeMap<ipnet::IpNet, RouteRow> = BTreeMap::new();
    let mut unparsed = Vec::new();
    let slot = |prefix: &str| -> Option<ipnet::IpNet> { prefix.parse().ok() };
    for r in rib {
        let prefix = printable(&r.prefix);
        let key = slot(&r.prefix);
        let row = RouteRow {
            prefix,
            rib: Some(rib_json(r)),
            fib: None,
            difference: None,
        };
        match key {
            Some(k) => {
                rows.insert(k, row);
            }
            None => unparsed.push(row),
        }
    }
    for f in fib {
        let key = slot(&f.prefix);
        let prefix = printable(&f.prefix);
        let fib = Some(fib_json(f, fib_protocol));
        match key.and_then(|k| rows.get_mut(&k)) {
            Some(row) => row.fib = fib,
            None => {
                let row = RouteRow {
                    prefix,
                    rib: None,
                    fib,
                    difference: None,
                };
                match key {
                    Some(k) => {
                        rows.insert(k, row);
                    }
                    None => unparsed.push(row),
                }
            }
        }
    }
    for d in differences {
        if let Some(row) = slot(&d.prefix).and_then(|k| rows.get_mut(&k)) {
            row.difference = Some(difference(d.kind));
        }
    }
    rows.into_values().chain(unparsed).collect()
}

fn text_rows(rows: &[RouteRow], dataplane: bool) -> Vec<Vec<String>> {
    let dash = || "-".to_string();
    rows.iter()
        .map(|r| {
            let (best, from) = match &r.rib {
                None => (dash(), dash()),
                Some(rib) if rib.local => ("local".to_string(), dash()),
                Some(rib) => {
                    let from: Vec<String> = rib
                        .paths
                        .iter()
                        .filter(|p| p.multipath && !p.local)
                        .map(|p| {
                            p.from_name
                                .clone()
                                .or_else(|| p.from.clone())
                                .unwrap_or_else(dash)
                        })
                        .collect();
                    let best = if rib.best_next_hops.is_empty() {
                        "unreachable".to_string()
                    } else {
                        rib.best_next_hops.join(",")
                    };
                    (
                        best,
                        if from.is_empty() {
                            dash()
                        } else {
                            from.join(",")
                        },
                    )
                }
            };
            let paths = r.rib.as_ref().map_or(0, |rib| rib.paths.len()).to_string();
            let (via, dev, enc) = match (&r.fib, dataplane) {
                (_, false) | (None, true) => (dash(), dash(), dash()),
                (Some(f), true) if f.blackhole => ("blackhole".to_string(), dash(), dash()),
                (Some(f), true) => {
                    let join = |g: &dyn Fn(&FibHopJson) -> String| {
                        f.next_hops.iter().map(g).collect::<Vec<_>>().join(",")
                    };
                    (
                        join(&|h| h.gateway.clone()),
                        join(&|h| h.device.clone()),
                        join(&|h| h.encap.to_string()),
                    )
                }
            };
            vec![
                r.prefix.clone(),
                best,
                from,
                paths,
                via,
                dev,
                enc,
                r.difference.map_or(String::new(), |d| format!("* {d}")),
            ]
        })
        .collect()
}

/// The text view: the table, then a line on each table's size and the differences.
pub fn render(j: &RoutesJson) -> String {
    let mut out = String::new();
    if j.routes.is_empty() {
        out.push_str("No routes found.\n");
    } else {
        out.push_str(&table(
            &[
                "PREFIX",
                "BEST NEXT HOPS",
                "FROM",
                "PATHS",
                "FIB VIA",
                "DEVICE",
                "ENCAP",
                "DIFF",
            ],
            &text_rows(&j.routes, j.dataplane),
        ));
    }
    if let Some(s) = &j.rib {
        out.push_str(&format!(
            "RIB: {} IPv4 and {} IPv6 prefixes, {} paths.\n",
            s.ipv4_prefixes, s.ipv6_prefixes, s.paths
        ));
    }
    out.push_str(&if !j.dataplane {
        "FIB: none (the agent runs without a kernel dataplane).\n".to_string()
    } else if !j.programmed {
        "FIB: not programmed yet (waiting for the initial table).\n".to_string()
    } else if j.differences == 0 {
        "FIB: as the RIB's best routes.\n".to_string()
    } else {
        format!(
            "FIB: {} difference(s) from the RIB's best routes (marked *).\n",
            j.differences
        )
    });
    out
}

fn request_match(args: &Args) -> v1::PrefixMatch {
    match (&args.prefix, args.exact) {
        (_, true) => v1::PrefixMatch::Exact,
        (Some(p), false) if !p.contains('/') => v1::PrefixMatch::Longest,
        _ => v1::PrefixMatch::Within,
    }
}

/// The cursor for the next page: the last prefix of this one, while the page was full (a
/// page shorter than what was left is the last one).
fn next_cursor(last: Option<&str>, got: usize, left: u64) -> Option<String> {
    last.filter(|_| (got as u64) < left).map(str::to_string)
}

async fn fetch(
    client: &mut TortieClient<Channel>,
    prefix: &str,
    how: v1::PrefixMatch,
) -> Result<RoutesJson, StatusError> {
    let mut rib = Vec::new();
    let mut after = String::new();
    let (node, sizes) = loop {
        let reply = client
            .list_routes(v1::ListRoutesRequest {
                prefix: prefix.to_string(),
                r#match: how as i32,
                after: after.clone(),
                ..Default::default()
            })
            .await
            .map_err(call_error("ListRoutes"))?
            .into_inner();
        let next = next_cursor(
            reply.routes.last().map(|r| r.prefix.as_str()),
            reply.routes.len(),
            reply.total,
        );
        rib.extend(reply.routes);
        match next {
            Some(n) => after = n,
            None => break (reply.node, reply.sizes),
        }
    };
    let mut fib = Vec::new();
    let mut after = String::new();
    let last_page = loop {
        let mut reply = client
            .list_fib_routes(v1::ListFibRoutesRequest {
                prefix: prefix.to_string(),
                r#match: how as i32,
                after: after.clone(),
                ..Default::default()
            })
            .await
            .map_err(call_error("ListFibRoutes"))?
            .into_inner();
        let next = next_cursor(
            reply.routes.last().map(|r| r.prefix.as_str()),
            reply.routes.len(),
            reply.total,
        );
        fib.append(&mut reply.routes);
        match next {
            Some(n) => after = n,
            None => break reply,
        }
    };
    let routes = merge(rib, fib, last_page.protocol, &last_page.differences);
    Ok(RoutesJson {
        node: printable(&node),
        rib: sizes.map(|s| RibSizesJson {
            ipv4_prefixes: s.ipv4_prefixes,
            ipv6_prefixes: s.ipv6_prefixes,
            paths: s.paths,
        }),
        dataplane: last_page.dataplane,
        programmed: last_page.programmed,
        routes,
        differences: last_page.differences_total,
    })
}

async fn routes(args: &Args) -> Result<String, StatusError> {
    let mut client = args.api.connect().await?;
    let prefix = args.prefix.clone().unwrap_or_default();
    let j = fetch(&mut client, &prefix, request_match(args)).await?;
    if args.api.json {
        json_text(&j)
    } else {
        Ok(render(&j))
    }
}

pub fn run(args: Args) -> ExitCode {
    crate::status_cmd::run_printing("routes", routes(&args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(from: Option<&str>, nh: Option<&str>, best: bool) -> v1::Path {
        v1::Path {
            from_peer: from.map(str::to_string),
            from_name: from.map_or(String::new(), |_| "node2".into()),
            local: from.is_none(),
            best,
            multipath: best,
            next_hop: nh.map(str::to_string),
            ..Default::default()
        }
    }

    fn rib(prefix: &str, paths: Vec<v1::Path>) -> v1::Route {
        v1::Route {
            prefix: prefix.into(),
            paths,
            ..Default::default()
        }
    }

    fn fib(prefix: &str, gw: Option<&str>) -> v1::FibRoute {
        v1::FibRoute {
            prefix: prefix.into(),
            blackhole: gw.is_none(),
            next_hops: gw
                .map(|g| {
                    vec![v1::FibNextHop {
                        gateway: g.into(),
                        device: "vxlan.tortie".into(),
                        encapsulation: v1::Encapsulation::Vxlan as i32,
                        onlink: true,
                    }]
                })
                .unwrap_or_default(),
        }
    }

    /// Felix's route protocol, as an agent reports it.
    const RTPROT_TORTIE: u32 = 116;

    #[test]
    fn each_fib_route_in_json_carries_the_kernel_route_protocol() {
        let rows = merge(
            vec![rib("198.19.0.0/26", vec![path(None, None, true)])],
            vec![
                fib("198.19.0.0/26", None),
                fib("198.19.0.64/26", Some("198.18.2.3")),
            ],
            RTPROT_TORTIE,
            &[],
        );
        let v = serde_json::to_value(&rows).unwrap();
        assert_eq!(v[0]["fib"]["protocol"], 116, "{v:#}");
        assert_eq!(v[1]["fib"]["protocol"], 116, "{v:#}");
        assert_eq!(v[1]["fib"]["nextHops"][0]["gateway"], "198.18.2.3", "{v:#}");
    }

    #[test]
    fn a_protocol_the_agent_does_not_report_is_null() {
        let rows = merge(
            vec![],
            vec![fib("198.19.0.64/26", Some("198.18.2.3"))],
            0,
            &[],
        );
        let v = serde_json::to_value(&rows).unwrap();
        assert!(v[0]["fib"]["protocol"].is_null(), "{v:#}");
        assert!(v[0]["fib"].get("protocol").is_some(), "{v:#}");
    }

    #[test]
    fn as_paths_read_as_bird_prints_them() {
        let segs = vec![
            v1::AsPathSegment {
                r#type: v1::AsPathSegmentType::Sequence as i32,
                asns: vec![65000, 65001],
            },
            v1::AsPathSegment {
                r#type: v1::AsPathSegmentType::Set as i32,
                asns: vec![1, 2],
            },
        ];
        assert_eq!(as_path_text(&segs), "65000 65001 {1 2}");
    }

    #[test]
    fn rib_and_fib_rows_meet_by_prefix_with_their_difference() {
        let rows = merge(
            vec![
                rib(
                    "198.19.0.64/26",
                    vec![path(Some("198.18.2.3"), Some("198.18.2.3"), true)],
                ),
                rib("198.19.0.0/26", vec![path(None, None, true)]),
            ],
            vec![
                fib("198.19.0.0/26", None),
                fib("198.19.0.64/26", Some("198.18.2.3")),
                fib("198.19.1.0/26", Some("198.18.2.9")),
            ],
            RTPROT_TORTIE,
            &[v1::FibDifference {
                prefix: "198.19.1.0/26".into(),
                kind: v1::FibDifferenceKind::OnlyInFib as i32,
                ..Default::default()
            }],
        );
        let summary: Vec<(&str, bool, bool, Option<&str>)> = rows
            .iter()
            .map(|r| {
                (
                    r.prefix.as_str(),
                    r.rib.is_some(),
                    r.fib.is_some(),
                    r.difference,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("198.19.0.0/26", true, true, None),
                ("198.19.0.64/26", true, true, None),
                ("198.19.1.0/26", false, true, Some("only-in-fib")),
            ]
        );
        assert!(rows[0].rib.as_ref().is_some_and(|r| r.local));
        assert_eq!(
            rows[1].rib.as_ref().map(|r| r.best_next_hops.clone()),
            Some(vec!["198.18.2.3".to_string()])
        );
    }

    #[test]
    fn the_text_view_marks_differences_and_shows_each_side() {
        let j = RoutesJson {
            node: "node1".into(),
            rib: Some(RibSizesJson {
                ipv4_prefixes: 1,
                ipv6_prefixes: 0,
                paths: 1,
            }),
            dataplane: true,
            programmed: true,
            routes: merge(
                vec![rib(
                    "198.19.0.64/26",
                    vec![path(Some("198.18.2.3"), Some("198.18.2.3"), true)],
                )],
                vec![],
                RTPROT_TORTIE,
                &[v1::FibDifference {
                    prefix: "198.19.0.64/26".into(),
                    kind: v1::FibDifferenceKind::OnlyInRib as i32,
                    ..Default::default()
                }],
            ),
            differences: 1,
        };
        let text = render(&j);
        assert!(
            text.contains("| 198.19.0.64/26 | 198.18.2.3     | node2 | 1     | -       | -      | -     | * only-in-rib |"),
            "{text}"
        );
        assert!(text.contains("FIB: 1 difference(s)"), "{text}");
    }

    #[test]
    fn an_address_asks_for_the_longest_match_and_a_prefix_for_what_is_inside() {
        let args = |p: &str, exact: bool| Args {
            prefix: Some(p.into()),
            exact,
            api: ApiArgs {
                api_socket: "/x".into(),
                json: false,
            },
        };
        assert_eq!(
            request_match(&args("198.19.0.5", false)),
            v1::PrefixMatch::Longest
        );
        assert_eq!(
            request_match(&args("198.19.0.0/16", false)),
            v1::PrefixMatch::Within
        );
        assert_eq!(
            request_match(&args("198.19.0.0/26", true)),
            v1::PrefixMatch::Exact
        );
    }

    #[test]
    fn paging_stops_at_a_page_that_holds_all_that_was_left() {
        assert_eq!(
            next_cursor(Some("198.19.0.0/26"), 2, 5).as_deref(),
            Some("198.19.0.0/26")
        );
        assert_eq!(next_cursor(Some("198.19.0.0/26"), 5, 5), None);
        assert_eq!(next_cursor(None, 0, 5), None);
    }
}

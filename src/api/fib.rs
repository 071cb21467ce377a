//! ListFibRoutes: the routes felix programmed (the agent's FIB snapshot), and where they
//! disagree with the RIB's best routes.
//!
//! What counts as a difference is what an operator should look at, not every way the two
//! tables legitimately differ:
//! - this node's own prefixes are local in the RIB and blackholes (its blocks) or nothing
//!   (service ranges, borrowed /32s) in the FIB: not differences; a blackhole with no route
//!   in the RIB is an own block that is not announced (`disableBGPExport`): not one either;
//! - a remote best route the kernel lacks, or a kernel route with no best route behind it, is
//!   ONLY_IN_RIB / ONLY_IN_FIB;
//! - both present: the FIB's gateways must be the RIB's multipath next hops, except when felix
//!   resolved the route through the underlay's default gateway (no encapsulation, next hop in
//!   another subnet: then no gateway is a BGP next hop), which is what it should do.
//!
//! The snapshot is taken under the watch channel's read lock only for as long as it takes to
//! copy the selected entries: felix publishing its next pass never waits on a client.

use super::ApiState;
use super::routes::{MAX_PAGE, page, page_size, parse_after, selected};
use super::select::Select;
use crate::agent::observe::{FibEntry, FibNextHop};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use tonic::Status;
use tortie_bgp::rib::RouteView;
use tortie_proto::v1;

/// A prefix's best route in the RIB, as the dataplane is given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibBest {
    pub local: bool,
    pub next_hops: BTreeSet<IpAddr>,
}

/// The best route of each RIB entry that has one (an entry whose paths are all unusable has
/// none, and the dataplane removes it).
pub fn rib_best(routes: &[RouteView]) -> BTreeMap<IpNet, RibBest> {
    routes
        .iter()
        .filter_map(|r| {
            let best = r.paths.iter().find(|p| p.best)?;
            let next_hops = r
                .paths
                .iter()
                .filter(|p| p.multipath && p.from.is_some())
                .map(|p| p.attrs.next_hop)
                .collect();
            Some((
                r.prefix,
                RibBest {
                    local: best.from.is_none(),
                    next_hops,
                },
            ))
        })
        .collect()
}

fn gateways(e: &FibEntry) -> Vec<String> {
    match &e.next_hops {
        None => vec!["blackhole".to_string()],
        Some(nhs) => nhs.iter().map(|n| n.gateway.to_string()).collect(),
    }
}

fn rib_text(r: &RibBest) -> Vec<String> {
    if r.local {
        vec!["local".to_string()]
    } else {
        r.next_hops.iter().map(ToString::to_string).collect()
    }
}

/// Felix's recursive resolution: every next hop unencapsulated, and none of them a BGP next
/// hop (they are the underlay's gateways).
fn resolved_through_gateway(nhs: &[FibNextHop], rib: &BTreeSet<IpAddr>) -> bool {
    !nhs.is_empty()
        && nhs
            .iter()
            .all(|n| n.encap == "none" && !rib.contains(&n.gateway))
}

/// The differences between the RIB's best routes and the FIB, by prefix.
pub fn differences(
    rib: &BTreeMap<IpNet, RibBest>,
    fib: &BTreeMap<IpNet, &FibEntry>,
) -> Vec<v1::FibDifference> {
    use v1::FibDifferenceKind as Kind;
    let prefixes: BTreeSet<IpNet> = rib.keys().chain(fib.keys()).copied().collect();
    let mut out = Vec::new();
    for prefix in prefixes {
        let kind = match (rib.get(&prefix), fib.get(&prefix).copied()) {
            (Some(r), None) if !r.local => Some(Kind::OnlyInRib),
            (None, Some(f)) if f.next_hops.is_some() => Some(Kind::OnlyInFib),
            (Some(r), Some(f)) => match (r.local, &f.next_hops) {
                (true, None) => None,
                // Local in the RIB, routed away in the kernel; or a remote route for one of
                // this node's blocks, which felix keeps as a blackhole.
                (true, Some(_)) | (false, None) => Some(Kind::NextHopsDiffer),
                (false, Some(nhs)) => {
                    let fib_gateways: BTreeSet<IpAddr> = nhs.iter().map(|n| n.gateway).collect();
                    (fib_gateways != r.next_hops && !resolved_through_gateway(nhs, &r.next_hops))
                        .then_some(Kind::NextHopsDiffer)
                }
            },
            _ => None,
        };
        if let Some(kind) = kind {
            out.push(v1::FibDifference {
                prefix: prefix.to_string(),
                kind: kind as i32,
                rib_next_hops: rib.get(&prefix).map(rib_text).unwrap_or_default(),
                fib_next_hops: fib.get(&prefix).map(|f| gateways(f)).unwrap_or_default(),
            });
        }
    }
    out
}

fn encapsulation(encap: &str) -> v1::Encapsulation {
    match encap {
        "none" => v1::Encapsulation::None,
        "vxlan" => v1::Encapsulation::Vxlan,
        "ipip" => v1::Encapsulation::Ipip,
        _ => v1::Encapsulation::Unspecified,
    }
}

pub fn fib_route(e: &FibEntry) -> v1::FibRoute {
    v1::FibRoute {
        prefix: e.prefix.to_string(),
        blackhole: e.next_hops.is_none(),
        next_hops: e
            .next_hops
            .iter()
            .flatten()
            .map(|n| v1::FibNextHop {
                gateway: n.gateway.to_string(),
                device: n.device.clone(),
                encapsulation: encapsulation(n.encap) as i32,
                onlink: n.onlink,
            })
            .collect(),
    }
}

pub async fn list(
    state: &ApiState,
    req: v1::ListFibRoutesRequest,
) -> Result<v1::ListFibRoutesResponse, Status> {
    let select = Select::from_request(&req.prefix, req.r#match)?;
    let after = parse_after(&req.after)?;
    let Some(fib) = &state.observed.fib else {
        return Ok(v1::ListFibRoutesResponse {
            node: state.node.clone(),
            dataplane: false,
            ..Default::default()
        });
    };
    let (entries, programmed, protocol, updated) = {
        let view = fib.borrow();
        let scope = select.rib_scope();
        let entries: Vec<FibEntry> = view
            .routes
            .iter()
            .filter(|e| scope.is_none_or(|s| s.contains(&e.prefix)))
            .cloned()
            .collect();
        (entries, view.synced, view.protocol, view.updated)
    };
    let entries = select.apply(entries, |e| e.prefix);
    let (diffs, diff_total) = if programmed {
        let rib = rib_best(&selected(state, select).await?);
        let by_prefix: BTreeMap<IpNet, &FibEntry> = entries.iter().map(|e| (e.prefix, e)).collect();
        let mut all = differences(&rib, &by_prefix);
        let total = all.len();
        all.truncate(MAX_PAGE);
        (all, total)
    } else {
        (Vec::new(), 0)
    };
    let (page, total) = page(entries, |e| e.prefix, after, page_size(req.limit));
    Ok(v1::ListFibRoutesResponse {
        node: state.node.clone(),
        dataplane: true,
        programmed,
        protocol: u32::from(protocol),
        updated: updated.map(super::convert::timestamp),
        routes: page.iter().map(fib_route).collect(),
        differences: diffs,
        total: total as u64,
        differences_total: diff_total as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn remote(nhs: &[&str]) -> RibBest {
        RibBest {
            local: false,
            next_hops: nhs.iter().map(|n| ip(n)).collect(),
        }
    }

    fn local() -> RibBest {
        RibBest {
            local: true,
            next_hops: BTreeSet::new(),
        }
    }

    fn via(prefix: &str, gw: &str, encap: &'static str) -> FibEntry {
        FibEntry {
            prefix: net(prefix),
            next_hops: Some(vec![FibNextHop {
                gateway: ip(gw),
                device: if encap == "vxlan" {
                    "vxlan.tortie"
                } else {
                    "eth0"
                }
                .into(),
                encap,
                onlink: encap == "vxlan",
            }]),
        }
    }

    fn blackhole(prefix: &str) -> FibEntry {
        FibEntry {
            prefix: net(prefix),
            next_hops: None,
        }
    }

    fn diff(rib: &[(&str, RibBest)], fib: &[FibEntry]) -> Vec<(String, v1::FibDifferenceKind)> {
        let rib: BTreeMap<IpNet, RibBest> = rib.iter().map(|(p, r)| (net(p), r.clone())).collect();
        let fib: BTreeMap<IpNet, &FibEntry> = fib.iter().map(|e| (e.prefix, e)).collect();
        differences(&rib, &fib)
            .into_iter()
            .map(|d| {
                let kind = v1::FibDifferenceKind::try_from(d.kind)
                    .unwrap_or(v1::FibDifferenceKind::Unspecified);
                (d.prefix, kind)
            })
            .collect()
    }

    #[test]
    fn a_remote_block_routed_to_its_node_is_no_difference() {
        let d = diff(
            &[("198.19.0.64/26", remote(&["198.18.2.3"]))],
            &[via("198.19.0.64/26", "198.18.2.3", "vxlan")],
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn an_own_block_local_in_the_rib_and_a_blackhole_in_the_fib_is_no_difference() {
        let d = diff(&[("198.19.0.0/26", local())], &[blackhole("198.19.0.0/26")]);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn own_prefixes_the_fib_does_not_hold_and_unannounced_blackholes_are_no_difference() {
        let d = diff(&[("198.19.9.7/32", local())], &[blackhole("198.19.5.0/26")]);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn a_best_route_missing_from_the_kernel_is_only_in_rib() {
        let d = diff(&[("198.19.0.64/26", remote(&["198.18.2.3"]))], &[]);
        assert_eq!(
            d,
            [(
                "198.19.0.64/26".to_string(),
                v1::FibDifferenceKind::OnlyInRib
            )]
        );
    }

    #[test]
    fn a_kernel_route_without_a_best_route_is_only_in_fib() {
        let d = diff(&[], &[via("198.19.0.64/26", "198.18.2.3", "vxlan")]);
        assert_eq!(
            d,
            [(
                "198.19.0.64/26".to_string(),
                v1::FibDifferenceKind::OnlyInFib
            )]
        );
    }

    #[test]
    fn a_kernel_route_via_another_node_than_the_best_route_differs() {
        let d = diff(
            &[("198.19.0.64/26", remote(&["198.18.2.3"]))],
            &[via("198.19.0.64/26", "198.18.2.4", "vxlan")],
        );
        assert_eq!(
            d,
            [(
                "198.19.0.64/26".to_string(),
                v1::FibDifferenceKind::NextHopsDiffer
            )]
        );
    }

    #[test]
    fn a_route_resolved_through_the_underlay_gateway_is_no_difference() {
        let d = diff(
            &[("198.19.0.64/26", remote(&["198.18.2.3"]))],
            &[via("198.19.0.64/26", "198.18.1.1", "none")],
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn a_remote_route_for_an_own_block_kept_as_a_blackhole_differs() {
        let d = diff(
            &[("198.19.0.0/26", remote(&["198.18.2.3"]))],
            &[blackhole("198.19.0.0/26")],
        );
        assert_eq!(
            d,
            [(
                "198.19.0.0/26".to_string(),
                v1::FibDifferenceKind::NextHopsDiffer
            )]
        );
    }
}

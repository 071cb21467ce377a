//! ListRoutes: the Loc-RIB, a page at a time.
//!
//! The speaker hands out a snapshot of the routes within a prefix (or all); this module
//! narrows it (exact, longest match), orders it (IPv4 first, then by address and length, the
//! order `after` pages by) and cuts the page. A count-only request of the whole table asks
//! only for the RIB's sizes, so polling the size of a large table does not copy it.

use super::select::{Select, parse_prefix};
use super::service::ask;
use super::{ApiState, convert};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use tonic::Status;
use tortie_bgp::rib::RouteView;
use tortie_proto::v1;

/// The most routes one reply carries (and the page size when the request sets none): about
/// 2 MB of protobuf, well under the 4 MB a gRPC client takes by default.
pub const MAX_PAGE: usize = 10_000;

pub fn page_size(limit: u32) -> usize {
    match limit as usize {
        0 => MAX_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// Drops what comes up to and including `after` (a sorted listing), then keeps `limit`;
/// returns the page and how many were left after `after`.
pub fn page<T>(
    items: Vec<T>,
    prefix: impl Fn(&T) -> IpNet,
    after: Option<IpNet>,
    limit: usize,
) -> (Vec<T>, usize) {
    let start = after.map_or(0, |a| items.partition_point(|i| prefix(i) <= a));
    let rest = items.len() - start;
    (items.into_iter().skip(start).take(limit).collect(), rest)
}

pub fn parse_after(after: &str) -> Result<Option<IpNet>, Status> {
    if after.trim().is_empty() {
        Ok(None)
    } else {
        parse_prefix("after", after).map(Some)
    }
}

/// The Loc-RIB routes `select` asks for, sorted. An address is one lookup; a listing is read
/// from the router a page at a time.
pub async fn selected(state: &ApiState, select: Select) -> Result<Vec<RouteView>, Status> {
    if let Select::Longest(addr) = select {
        let best = ask("ListRoutes", state.speaker.longest_match(addr)).await?;
        return Ok(best.into_iter().collect());
    }
    let routes = ask("ListRoutes", state.speaker.routes(select.rib_scope())).await?;
    Ok(select.apply(routes, |r| r.prefix))
}

/// One page of what `select` asks for, and how many there are after `after` in all: only the
/// page is copied out of the router.
async fn selected_page(
    state: &ApiState,
    select: Select,
    after: Option<IpNet>,
    limit: usize,
) -> Result<(Vec<RouteView>, usize), Status> {
    match select {
        Select::Longest(_) => {
            let all = selected(state, select).await?;
            Ok(page(all, |r| r.prefix, after, limit))
        }
        // A prefix is the first key of its own range: a page of one.
        Select::Exact(n) => {
            let (first, _) = ask("ListRoutes", state.speaker.routes_page(Some(n), None, 1)).await?;
            let all: Vec<RouteView> = first.into_iter().filter(|r| r.prefix == n).collect();
            Ok(page(all, |r| r.prefix, after, limit))
        }
        Select::All | Select::Within(_) => Ok(ask(
            "ListRoutes",
            state.speaker.routes_page(select.rib_scope(), after, limit),
        )
        .await?),
    }
}

pub async fn list(
    state: &ApiState,
    req: v1::ListRoutesRequest,
) -> Result<v1::ListRoutesResponse, Status> {
    let select = Select::from_request(&req.prefix, req.r#match)?;
    let after = parse_after(&req.after)?;
    let sizes = ask("ListRoutes", state.speaker.rib_sizes()).await?;
    if req.count_only && select == Select::All && after.is_none() {
        return Ok(v1::ListRoutesResponse {
            node: state.node.clone(),
            routes: Vec::new(),
            total: sizes.v4_prefixes + sizes.v6_prefixes,
            sizes: Some(convert::rib_sizes(sizes)),
        });
    }
    let (page, total) = selected_page(state, select, after, page_size(req.limit)).await?;
    let routes = if req.count_only {
        Vec::new()
    } else {
        let names: HashMap<IpAddr, String> = ask("ListRoutes", state.speaker.peers())
            .await?
            .into_iter()
            .map(|p| (p.address, p.name))
            .collect();
        page.iter().map(|r| convert::route(r, &names)).collect()
    };
    Ok(v1::ListRoutesResponse {
        node: state.node.clone(),
        routes,
        total: total as u64,
        sizes: Some(convert::rib_sizes(sizes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn a_page_starts_after_the_given_prefix() {
        let all = nets(&["198.19.0.0/26", "198.19.0.64/26", "198.19.0.128/26"]);
        let (p, rest) = page(all, |n| *n, "198.19.0.0/26".parse().ok(), 1);
        assert_eq!(p, nets(&["198.19.0.64/26"]));
        assert_eq!(rest, 2, "what is left after the cursor, the page included");
    }

    #[test]
    fn a_cursor_that_is_not_listed_still_pages_in_order() {
        let all = nets(&["198.19.0.0/26", "198.19.0.128/26"]);
        let (p, _) = page(all, |n| *n, "198.19.0.64/26".parse().ok(), 10);
        assert_eq!(p, nets(&["198.19.0.128/26"]));
    }

    #[test]
    fn the_page_size_is_capped() {
        assert_eq!(page_size(0), MAX_PAGE);
        assert_eq!(page_size(5), 5);
        assert_eq!(page_size(u32::MAX), MAX_PAGE);
    }
}

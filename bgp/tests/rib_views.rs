//! Status reads of the Loc-RIB: a page of routes at a time, and the route an address takes.
//! Pure, no sockets.

use ipnet::IpNet;
use std::net::Ipv4Addr;
use tortie_bgp::rib::{Rib, RibConfig};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A RIB holding `prefixes` as this node's own routes.
fn rib(prefixes: &[&str]) -> Rib {
    let mut rib = Rib::new(RibConfig::new(64512, Ipv4Addr::new(198, 18, 0, 1)));
    for p in prefixes {
        rib.originate(net(p), None);
    }
    rib
}

const TABLE: [&str; 6] = [
    "198.19.0.0/16",
    "198.19.1.0/26",
    "198.19.1.5/32",
    "198.19.2.0/26",
    "2001:db8:19::/64",
    "2001:db8:19::/122",
];

fn prefixes(routes: &[tortie_bgp::rib::RouteView]) -> Vec<IpNet> {
    routes.iter().map(|r| r.prefix).collect()
}

#[test]
fn pages_list_every_route_once_in_prefix_order_ipv4_first() {
    let rib = rib(&TABLE);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (page, rest) = rib.routes_page(None, after, 2);
        assert_eq!(
            rest,
            TABLE.len() - seen.len(),
            "what is left after the cursor"
        );
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.prefix);
        seen.extend(prefixes(&page));
    }
    let want: Vec<IpNet> = TABLE.iter().map(|p| net(p)).collect();
    assert_eq!(seen, want);
}

#[test]
fn a_page_within_a_prefix_holds_it_and_what_is_inside_only() {
    let rib = rib(&TABLE);
    let (page, rest) = rib.routes_page(Some(net("198.19.1.0/24")), None, 10);
    assert_eq!(
        prefixes(&page),
        vec![net("198.19.1.0/26"), net("198.19.1.5/32")]
    );
    assert_eq!(rest, 2);
    let (page, _) = rib.routes_page(Some(net("2001:db8:19::/64")), None, 10);
    assert_eq!(
        prefixes(&page),
        vec![net("2001:db8:19::/64"), net("2001:db8:19::/122")]
    );
}

#[test]
fn a_cursor_past_the_selected_prefix_gives_an_empty_page() {
    let rib = rib(&TABLE);
    let (page, rest) = rib.routes_page(Some(net("198.19.1.0/24")), Some(net("198.19.9.0/24")), 10);
    assert!(page.is_empty());
    assert_eq!(rest, 0);
    let (page, rest) = rib.routes_page(Some(net("198.19.1.0/24")), Some(net("2001:db8::/32")), 10);
    assert!(page.is_empty());
    assert_eq!(rest, 0);
}

#[test]
fn a_cursor_that_is_not_a_route_still_pages_from_the_next_one() {
    let rib = rib(&TABLE);
    let (page, rest) = rib.routes_page(None, Some(net("198.19.1.64/26")), 1);
    assert_eq!(prefixes(&page), vec![net("198.19.2.0/26")]);
    assert_eq!(rest, 3);
}

#[test]
fn an_address_takes_the_most_specific_route_containing_it() {
    let rib = rib(&TABLE);
    let hit = |a: &str| rib.longest_match(net(a)).map(|r| r.prefix);
    assert_eq!(hit("198.19.1.5/32"), Some(net("198.19.1.5/32")));
    assert_eq!(hit("198.19.1.6/32"), Some(net("198.19.1.0/26")));
    assert_eq!(hit("198.19.200.1/32"), Some(net("198.19.0.0/16")));
    assert_eq!(hit("198.18.0.1/32"), None);
    assert_eq!(hit("2001:db8:19::7/128"), Some(net("2001:db8:19::/122")));
    assert_eq!(hit("2001:db8:19::1:1/128"), Some(net("2001:db8:19::/64")));
}

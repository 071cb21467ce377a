//! felix's netlink monitor against the real kernel: each test makes its own namespaces, opens a
//! [`Monitor`] in one, changes routes, links or neighbours there with iproute2 (as someone
//! else would), and checks the events that come out, and what [`wants_repair`] and
//! [`device_lost`] make of them. Root only.
//!
//! Absence ("no event for X") is checked with a sentinel: after the change that must not be
//! reported, a route of our own is added, and every event before the sentinel's is inspected.

#[path = "nl_support/mod.rs"]
mod nl_support;

use std::time::Duration;

use ipnet::IpNet;
use nl_support::*;
use tortie_felix::netlink::monitor::*;
use tortie_felix::netlink::{Fault, Netns, NlError, TORTIE_PROTOCOL};

const P: u8 = TORTIE_PROTOCOL;
/// How long any expected event may take; the kernel sends it during the `ip` command.
const WAIT: Duration = Duration::from_secs(10);

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn monitor(ns: &TestNs) -> Monitor {
    Monitor::open(&ns.netns(), &MonitorConfig::default()).expect("open the monitor")
}

/// The next event, or a panic after [`WAIT`].
async fn next(m: &mut Monitor) -> MonitorEvent {
    match tokio::time::timeout(WAIT, m.next()).await {
        Ok(ev) => ev.expect("monitor socket"),
        Err(_) => panic!("no event within {WAIT:?}"),
    }
}

/// Events up to and including the first route event for `prefix` (other prefixes, links and
/// the kernel's own housekeeping routes come before it in any order).
async fn events_until_route(m: &mut Monitor, prefix: &str) -> (Vec<MonitorEvent>, RouteEvent) {
    let prefix = net(prefix);
    let mut before = Vec::new();
    loop {
        match next(m).await {
            MonitorEvent::Route(r) if r.prefix == prefix => return (before, r),
            other => before.push(other),
        }
    }
}

async fn route_event(m: &mut Monitor, prefix: &str) -> RouteEvent {
    events_until_route(m, prefix).await.1
}

#[tokio::test]
async fn deleting_a_route_of_ours_yields_a_deleted_event_with_our_protocol() {
    let ns = TestNs::bare("mondel");
    ns.ip(&["route", "add", "blackhole", "198.19.1.0/26", "proto", "116"]);
    let mut m = monitor(&ns);

    ns.ip(&["route", "del", "198.19.1.0/26"]);
    let r = route_event(&mut m, "198.19.1.0/26").await;
    assert!(r.deleted, "{r:?}");
    assert!(!r.replaced, "{r:?}");
    assert_eq!((r.protocol, r.table), (P, 254), "{r:?}");
    assert!(wants_repair(&MonitorEvent::Route(r), P));
}

#[tokio::test]
async fn adding_a_route_of_ours_yields_an_add_event() {
    let ns = TestNs::bare("monadd");
    let mut m = monitor(&ns);

    ns.ip(&["route", "add", "blackhole", "198.19.1.0/26", "proto", "116"]);
    let r = route_event(&mut m, "198.19.1.0/26").await;
    assert!(!r.deleted && !r.replaced, "{r:?}");
    assert_eq!(r.protocol, P);
    assert!(!wants_repair(&MonitorEvent::Route(r), P));
}

#[tokio::test]
async fn a_route_of_another_protocol_yields_an_event_with_that_protocol() {
    let ns = TestNs::bare("monother");
    let mut m = monitor(&ns);

    ns.ip(&["route", "add", "blackhole", "198.19.2.0/26", "proto", "12"]);
    let added = route_event(&mut m, "198.19.2.0/26").await;
    ns.ip(&["route", "del", "198.19.2.0/26"]);
    let deleted = route_event(&mut m, "198.19.2.0/26").await;

    assert_eq!((added.deleted, added.protocol), (false, 12), "{added:?}");
    assert_eq!(
        (deleted.deleted, deleted.protocol),
        (true, 12),
        "{deleted:?}"
    );
    assert!(!wants_repair(&MonitorEvent::Route(added), P));
    assert!(!wants_repair(&MonitorEvent::Route(deleted), P));
}

#[tokio::test]
async fn ipv6_route_deletions_are_monitored() {
    let ns = TestNs::bare("mon6");
    ns.ip(&[
        "-6",
        "route",
        "add",
        "blackhole",
        "2001:2:0:19::/122",
        "proto",
        "116",
    ]);
    let mut m = monitor(&ns);

    ns.ip(&["-6", "route", "del", "2001:2:0:19::/122"]);
    let r = route_event(&mut m, "2001:2:0:19::/122").await;
    assert!(r.deleted, "{r:?}");
    assert_eq!((r.protocol, r.table), (P, 254), "{r:?}");
    assert!(wants_repair(&MonitorEvent::Route(r), P));
}

#[tokio::test]
async fn a_route_in_another_table_reports_that_table() {
    let ns = TestNs::bare("montable");
    let mut m = monitor(&ns);

    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "198.19.3.0/26",
        "proto",
        "116",
        "table",
        "1000",
    ]);
    let r = route_event(&mut m, "198.19.3.0/26").await;
    assert_eq!((r.table, r.protocol), (1000, P), "{r:?}");
}

#[tokio::test]
async fn another_protocol_replacing_our_route_wants_repair_and_sends_no_deletion() {
    let ns = TestNs::bare("monrepl");
    ns.ip(&["route", "add", "blackhole", "198.19.4.0/26", "proto", "116"]);
    let mut m = monitor(&ns);

    ns.ip(&[
        "route",
        "replace",
        "blackhole",
        "198.19.4.0/26",
        "proto",
        "4",
    ]);
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "198.19.99.0/26",
        "proto",
        "116",
    ]);
    let (before, sentinel) = events_until_route(&mut m, "198.19.99.0/26").await;
    assert!(!sentinel.deleted);

    let ours: Vec<&RouteEvent> = before
        .iter()
        .filter_map(|e| match e {
            MonitorEvent::Route(r) if r.prefix == net("198.19.4.0/26") => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(ours.len(), 1, "{before:#?}");
    let r = ours[0];
    assert!(r.replaced && !r.deleted, "{r:?}");
    assert_eq!(r.protocol, 4);
    assert!(wants_repair(&MonitorEvent::Route(r.clone()), P));
}

#[tokio::test]
async fn only_the_monitored_namespace_is_seen() {
    let ns = TestNs::bare("monmine");
    let other = TestNs::bare("monother");
    other.ip(&["route", "add", "blackhole", "198.19.5.0/26", "proto", "116"]);
    let mut m = monitor(&ns);

    other.ip(&["route", "del", "198.19.5.0/26"]);
    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "198.19.99.0/26",
        "proto",
        "116",
    ]);
    let (before, _) = events_until_route(&mut m, "198.19.99.0/26").await;
    assert!(
        !before
            .iter()
            .any(|e| matches!(e, MonitorEvent::Route(r) if r.prefix == net("198.19.5.0/26"))),
        "{before:#?}"
    );
}

#[tokio::test]
async fn a_socket_overrun_is_reported_as_lost_and_monitoring_continues() {
    let ns = TestNs::bare("monlost");
    let cfg = MonitorConfig {
        // The kernel raises this to its minimum (a few KiB): room for a handful of messages.
        buffer_bytes: 1,
        ..MonitorConfig::default()
    };
    let mut m = Monitor::open(&ns.netns(), &cfg).expect("open the monitor");

    // 500 routes while nobody reads.
    let batch: String = (0..500)
        .map(|i| {
            format!(
                "route add blackhole 198.19.{}.{}/32 proto 116\n",
                10 + i / 250,
                i % 250
            )
        })
        .collect();
    let file = std::env::temp_dir().join(format!("{}.batch", ns.name()));
    std::fs::write(&file, batch).unwrap();
    let added = ns.try_ip(&["-batch", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    added.expect("ip -batch");

    let mut events = Vec::new();
    while let Some(ev) = m.try_next().expect("monitor socket") {
        events.push(ev);
    }
    assert!(
        events.contains(&MonitorEvent::Lost),
        "{} events, none Lost",
        events.len()
    );
    assert!(
        events.len() < 500,
        "{} events: the buffer did not overflow",
        events.len()
    );
    assert!(m.stats().overruns >= 1, "{:?}", m.stats());
    assert!(wants_repair(&MonitorEvent::Lost, P));

    ns.ip(&[
        "route",
        "add",
        "blackhole",
        "198.19.99.0/26",
        "proto",
        "116",
    ]);
    let r = route_event(&mut m, "198.19.99.0/26").await;
    assert!(!r.deleted);
}

/// `vxlan.tortie` on `v0`, up, in a namespace of its own.
fn with_vxlan(tag: &str) -> TestNs {
    let ns = TestNs::with_veth(tag);
    ns.ip(&[
        "link",
        "add",
        "vxlan.tortie",
        "type",
        "vxlan",
        "id",
        "4096",
        "local",
        "198.18.0.1",
        "dev",
        "v0",
        "dstport",
        "4789",
    ]);
    ns.ip(&["link", "set", "vxlan.tortie", "up"]);
    ns
}

/// The first link event for `name`.
async fn link_event(m: &mut Monitor, name: &str) -> LinkEvent {
    loop {
        if let MonitorEvent::Link(l) = next(m).await {
            if l.name == name {
                return l;
            }
        }
    }
}

#[tokio::test]
async fn a_tunnel_device_set_down_is_a_lost_device() {
    let ns = with_vxlan("mondown");
    let mut m = monitor(&ns);

    ns.ip(&["link", "set", "vxlan.tortie", "down"]);
    let l = link_event(&mut m, "vxlan.tortie").await;
    assert!(!l.up && !l.deleted, "{l:?}");
    assert_eq!(l.index, ns.ifindex("vxlan.tortie"));
    let ev = MonitorEvent::Link(l);
    assert!(device_lost(&ev, &["tunl0", "vxlan.tortie"]));
    assert!(!device_lost(&ev, &["tunl0"]));
}

#[tokio::test]
async fn a_deleted_tunnel_device_is_a_lost_device() {
    let ns = with_vxlan("mondevdel");
    let mut m = monitor(&ns);

    ns.ip(&["link", "del", "vxlan.tortie"]);
    let deleted = loop {
        let l = link_event(&mut m, "vxlan.tortie").await;
        if l.deleted {
            break l;
        }
    };
    assert!(device_lost(
        &MonitorEvent::Link(deleted),
        &["tunl0", "vxlan.tortie"]
    ));
}

#[tokio::test]
async fn a_deleted_neighbour_entry_of_ours_wants_repair() {
    let ns = TestNs::with_veth("monneigh");
    let v0 = ns.ifindex("v0");
    ns.ip(&[
        "neigh",
        "replace",
        "198.18.0.9",
        "lladdr",
        "66:74:c6:00:00:09",
        "dev",
        "v0",
        "nud",
        "permanent",
        "protocol",
        "116",
    ]);
    let cfg = MonitorConfig {
        neighbours: true,
        ..MonitorConfig::default()
    };
    let mut m = Monitor::open(&ns.netns(), &cfg).expect("open the monitor");

    // The kernel first reports the entry as failed (an RTM_NEWNEIGH), then deleted.
    ns.ip(&["neigh", "del", "198.18.0.9", "dev", "v0"]);
    let n = loop {
        if let MonitorEvent::Neighbour(n) = next(&mut m).await {
            if n.dst == Some(ip("198.18.0.9")) && n.deleted {
                break n;
            }
        }
    };
    assert!(!n.fdb, "{n:?}");
    assert_eq!((n.ifindex, n.protocol), (v0, Some(P)), "{n:?}");
    assert!(wants_repair(&MonitorEvent::Neighbour(n), P));
}

#[tokio::test]
async fn opening_in_a_missing_namespace_is_an_environment_error() {
    let missing = Netns::named(&format!("nlmonmissing{}", std::process::id())).unwrap();
    let e = Monitor::open(&missing, &MonitorConfig::default()).unwrap_err();
    assert!(matches!(e, NlError::Netns { .. }), "{e}");
    assert_eq!(e.fault(), Fault::Environment);
}

#[test]
fn opening_outside_a_tokio_runtime_is_refused() {
    let e = Monitor::open(&Netns::current(), &MonitorConfig::default()).unwrap_err();
    assert!(matches!(e, NlError::Invalid(_)), "{e}");
}

#[tokio::test]
async fn a_monitor_subscribed_to_nothing_is_refused() {
    let cfg = MonitorConfig {
        routes: false,
        links: false,
        neighbours: false,
        ..MonitorConfig::default()
    };
    let e = Monitor::open(&Netns::current(), &cfg).unwrap_err();
    assert!(matches!(e, NlError::Invalid(_)), "{e}");
}

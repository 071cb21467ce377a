//! Route metrics (BGP priorities, BGPFilter `setPriority` on import) against the kernel: a
//! priority is the route's `metric`, a route without one is written as before (no metric), a
//! changed metric leaves exactly one route with the new metric and the prefix is never without
//! a route meanwhile, a restart adopts what has the right metric and writes nothing, and the
//! routes a crash or a hand can leave beside ours (another metric of the same prefix) go.
//!
//! One namespace per test with a veth underlay `eth0` (its peer `eth0p` in the same namespace;
//! 198.18.1.10/24, 2001:db8:1::10/64); remote blocks via 198.18.1.20 and 2001:db8:1::20, same
//! subnet, no encapsulation. What felix wrote is read back with `ip route`. Root only.

#[path = "vm_inner/topo.rs"]
mod topo;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use topo::Netns;
use tortie_felix::desired::{
    self, BestRoute, DesiredState, Inputs, LocalNode, Planner, Underlay, VxlanSettings,
};
use tortie_felix::netlink::{Kernel, TORTIE_PROTOCOL};
use tortie_felix::reconcile::{ApplyReport, Felix};

const P4: &str = "198.19.5.0/26";
const P6: &str = "2001:db8:ff:5::/122";
const NH4: &str = "198.18.1.20";
const NH6: &str = "2001:db8:1::20";

fn ok<T>(r: topo::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A namespace with the underlay `eth0`.
fn namespace() -> Netns {
    let ns = ok(Netns::new(&format!("{}-metric", topo::unique_prefix())));
    ok(ns.sysctl("net/ipv6/conf/default/accept_dad", "0"));
    ok(ns.ip_batch(&[
        "link add eth0 type veth peer name eth0p".into(),
        "link set eth0p up".into(),
        "addr add 198.18.1.10/24 dev eth0".into(),
        "addr add 2001:db8:1::10/64 dev eth0 nodad".into(),
        "link set eth0 up".into(),
    ]));
    ns
}

fn felix(ns: &Netns) -> Felix {
    let k = Kernel::open_named(ns.name()).expect("netlink");
    Felix::new(k, "eth0", Some(ns.name().to_string()))
}

/// A planner for this node (no pools: plain routes via the next hop), with `routes` as
/// (prefix, next hop, priority) and this node's block 198.19.1.0/26 (a blackhole).
fn planner(routes: &[(&str, &str, Option<u32>)]) -> Planner {
    Planner::new(&Inputs {
        node: LocalNode {
            name: "a".into(),
            ipv4: Some("198.18.1.10/24".parse().unwrap()),
            ipv6: Some("2001:db8:1::10/64".parse().unwrap()),
            underlay: Underlay {
                name: "eth0".into(),
                index: None,
                gateways_v4: vec![],
                gateways_v6: vec![],
                mtu: 1500,
            },
        },
        pools: vec![],
        blocks: vec![net("198.19.1.0/26")],
        routes: routes
            .iter()
            .map(|(p, nh, priority)| BestRoute {
                prefix: net(p),
                next_hops: vec![ip(nh)],
                priority: *priority,
            })
            .collect(),
        vxlan: VxlanSettings::default(),
    })
}

fn no_failures(r: ApplyReport) -> ApplyReport {
    assert!(
        r.failures.is_empty() && r.device_problems.is_empty(),
        "{r:?}"
    );
    r
}

/// Applies the planner's changes; returns (operations, netlink messages written).
fn apply_changes(f: &mut Felix, p: &mut Planner) -> (usize, u64) {
    let changes = p.take_changes();
    let w = f.writes();
    let r = no_failures(f.apply_changes(p.state(), &changes).expect("apply_changes"));
    (r.ops, f.writes() - w)
}

/// The lines of `ip route show` (every protocol, `proto` filters them) for exactly `prefix`.
fn route_lines(ns: &Netns, prefix: &str, proto: Option<&str>) -> Vec<String> {
    let fam = if prefix.contains(':') { "-6" } else { "-4" };
    let mut args = vec![fam, "route", "show"];
    if let Some(p) = proto {
        args.extend(["proto", p]);
    }
    ok(ns.ip(&args))
        .lines()
        .filter(|l| {
            let l = l.strip_prefix("blackhole ").unwrap_or(l);
            l.split_whitespace().next() == Some(prefix)
        })
        .map(str::to_string)
        .collect()
}

/// The lines of tortie's routes for exactly `prefix`.
fn our_lines(ns: &Netns, prefix: &str) -> Vec<String> {
    route_lines(ns, prefix, Some(&TORTIE_PROTOCOL.to_string()))
}

/// The metric `ip route` shows on a line (none: metric 0).
fn metric_of(line: &str) -> u32 {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "metric" {
            return words.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        }
    }
    0
}

/// The metric of the one route of ours for `prefix`; fails unless there is exactly one.
fn only_metric(ns: &Netns, prefix: &str) -> u32 {
    let lines = our_lines(ns, prefix);
    assert_eq!(lines.len(), 1, "routes of ours for {prefix}: {lines:#?}");
    metric_of(&lines[0])
}

/// A fresh felix (as after a restart) with `desired`: operations and messages of its first
/// full apply.
fn restart(ns: &Netns, desired: &DesiredState) -> (usize, u64) {
    let mut fresh = felix(ns);
    let r = no_failures(fresh.apply(desired).expect("apply after restart"));
    (r.ops, fresh.writes())
}

// ---- writing a metric ------------------------------------------------------------------------

#[test]
fn ipv4_route_with_priority_512_is_installed_with_metric_512() {
    let ns = namespace();
    let p = planner(&[(P4, NH4, Some(512))]);
    no_failures(felix(&ns).apply(p.state()).expect("apply"));
    let lines = our_lines(&ns, P4);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("metric 512"), "{}", lines[0]);
    assert!(
        lines[0].contains(&format!("via {NH4} dev eth0")),
        "{}",
        lines[0]
    );
}

#[test]
fn ipv6_route_with_priority_512_is_installed_with_metric_512() {
    let ns = namespace();
    let p = planner(&[(P6, NH6, Some(512))]);
    no_failures(felix(&ns).apply(p.state()).expect("apply"));
    let lines = our_lines(&ns, P6);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("metric 512"), "{}", lines[0]);
}

#[test]
fn routes_without_priority_get_the_kernel_default_metric_as_before() {
    let ns = namespace();
    let p = planner(&[(P4, NH4, None), (P6, NH6, None)]);
    no_failures(felix(&ns).apply(p.state()).expect("apply"));
    // IPv4: no metric at all (0); IPv6: the kernel's 1024; the blackhole: none.
    let v4 = our_lines(&ns, P4);
    assert!(v4.len() == 1 && !v4[0].contains("metric"), "{v4:?}");
    assert_eq!(only_metric(&ns, P6), 1024);
    let bh = our_lines(&ns, "198.19.1.0/26");
    assert!(bh.len() == 1 && !bh[0].contains("metric"), "{bh:?}");
}

// ---- changing it -----------------------------------------------------------------------------

#[test]
fn metric_change_leaves_exactly_one_route_with_the_new_metric() {
    for (prefix, nh, default) in [(P4, NH4, 0), (P6, NH6, 1024)] {
        let ns = namespace();
        let mut p = planner(&[(prefix, nh, None)]);
        let mut f = felix(&ns);
        no_failures(f.apply(p.state()).expect("apply"));
        assert_eq!(only_metric(&ns, prefix), default);
        for (priority, metric) in [
            (Some(512), 512),
            (Some(2048), 2048),
            (Some(100), 100),
            (None, default),
        ] {
            p.set_route(net(prefix), [ip(nh)], priority);
            let (ops, writes) = apply_changes(&mut f, &mut p);
            assert_eq!(
                (ops, writes),
                (1, 2),
                "{prefix} to {priority:?}: one move, add then delete"
            );
            assert_eq!(only_metric(&ns, prefix), metric, "{prefix} to {priority:?}");
        }
        assert_eq!(restart(&ns, p.state()), (0, 0), "{prefix}");
    }
}

#[test]
fn metric_change_through_a_full_apply_leaves_one_route() {
    let ns = namespace();
    let mut p = planner(&[(P4, NH4, Some(512))]);
    let mut f = felix(&ns);
    no_failures(f.apply(p.state()).expect("apply"));
    p.set_route(net(P4), [ip("198.18.1.21")], Some(300));
    let r = no_failures(f.apply(p.state()).expect("apply"));
    assert_eq!(r.ops, 1);
    let lines = our_lines(&ns, P4);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("via 198.18.1.21") && metric_of(&lines[0]) == 300,
        "{lines:?}"
    );
}

/// `ip monitor route`, read line by line on a thread; the child is killed (by its PID) on drop.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Monitor {
    fn start(ns: &Netns) -> Monitor {
        let mut child = Command::new("ip")
            .args(["-n", ns.name(), "monitor", "route"])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("ip monitor");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Monitor { child, lines }
    }

    /// Lines up to (without) the first that contains `marker`; `None` after `wait`, with the
    /// lines seen so far kept for the next call.
    fn until(&self, marker: &str, wait: Duration, seen: &mut Vec<String>) -> Option<Vec<String>> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(marker) => return Some(std::mem::take(seen)),
                Ok(l) => seen.push(l),
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A route of another protocol, as a marker in the monitor's stream: the events before it.
/// `ip monitor` subscribes some time after it starts, so the marker is added again (deleted
/// and re-added) until the monitor reports it, for at most 10 s.
fn mark(ns: &Netns, monitor: &Monitor, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..20 {
        let _ = ns.ip(&["route", "del", prefix, "proto", "static"]);
        ok(ns.ip(&["route", "add", prefix, "via", NH4, "proto", "static"]));
        if let Some(before) = monitor.until(prefix, Duration::from_millis(500), &mut seen) {
            return before;
        }
    }
    panic!("ip monitor never reported {prefix}; saw {seen:#?}");
}

#[test]
fn metric_change_adds_the_new_route_before_deleting_the_old() {
    let ns = namespace();
    let mut p = planner(&[(P4, NH4, None)]);
    let mut f = felix(&ns);
    no_failures(f.apply(p.state()).expect("apply"));
    let monitor = Monitor::start(&ns);
    // Markers before and after: the monitor is listening, and everything between is the move.
    mark(&ns, &monitor, "203.0.113.0/26");
    p.set_route(net(P4), [ip(NH4)], Some(512));
    apply_changes(&mut f, &mut p);
    let events: Vec<String> = mark(&ns, &monitor, "203.0.113.64/26")
        .into_iter()
        .filter(|l| l.contains(P4))
        .collect();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        !events[0].starts_with("Deleted") && events[0].contains("metric 512"),
        "first the new route: {events:#?}"
    );
    assert!(
        events[1].starts_with("Deleted") && !events[1].contains("metric"),
        "then the old one goes: {events:#?}"
    );
}

#[test]
fn move_refused_by_the_kernel_keeps_the_old_route_and_is_retried() {
    let ns = namespace();
    let mut p = planner(&[(P4, NH4, None)]);
    let mut f = felix(&ns);
    no_failures(f.apply(p.state()).expect("apply"));
    // Another daemon's route holds (prefix, metric 512): the add of the move is refused.
    ok(ns.ip(&[
        "route",
        "add",
        P4,
        "via",
        "198.18.1.1",
        "proto",
        "static",
        "metric",
        "512",
    ]));
    p.set_route(net(P4), [ip(NH4)], Some(512));
    let changes = p.take_changes();
    let r = f.apply_changes(p.state(), &changes).expect("apply_changes");
    assert_eq!(r.failures.len(), 1, "{r:?}");
    assert_eq!(only_metric(&ns, P4), 0, "the old route still routes");
    ok(ns.ip(&["route", "del", P4, "proto", "static", "metric", "512"]));
    let r = no_failures(
        f.apply_changes(p.state(), &Default::default())
            .expect("retry"),
    );
    assert_eq!(r.ops, 1);
    assert_eq!(only_metric(&ns, P4), 512);
}

// ---- restarts and strays ----------------------------------------------------------------------

#[test]
fn restarted_felix_with_the_same_metrics_writes_nothing() {
    let ns = namespace();
    let p = planner(&[
        (P4, NH4, Some(512)),
        ("198.19.6.0/26", NH4, None),
        (P6, NH6, Some(512)),
        // The kernel's own IPv6 default, spelt out: the same route as none.
        ("2001:db8:ff:6::/122", NH6, Some(1024)),
    ]);
    no_failures(felix(&ns).apply(p.state()).expect("apply"));
    assert_eq!(only_metric(&ns, "2001:db8:ff:6::/122"), 1024);
    assert_eq!(restart(&ns, p.state()), (0, 0));
}

#[test]
fn restart_with_a_priority_changed_meanwhile_moves_the_route() {
    let ns = namespace();
    no_failures(
        felix(&ns)
            .apply(planner(&[(P4, NH4, Some(512))]).state())
            .expect("apply"),
    );
    let p = planner(&[(P4, NH4, Some(2048))]);
    let (ops, writes) = restart(&ns, p.state());
    assert_eq!((ops, writes), (1, 2));
    assert_eq!(only_metric(&ns, P4), 2048);
}

#[test]
fn restart_after_a_half_done_move_keeps_the_desired_metric_only() {
    let ns = namespace();
    no_failures(
        felix(&ns)
            .apply(planner(&[(P4, NH4, None)]).state())
            .expect("apply"),
    );
    // The first half of a move to 512 landed, then the agent died.
    let proto = TORTIE_PROTOCOL.to_string();
    ok(ns.ip(&[
        "route", "add", P4, "via", NH4, "proto", &proto, "metric", "512",
    ]));
    assert_eq!(our_lines(&ns, P4).len(), 2);
    let p = planner(&[(P4, NH4, Some(512))]);
    let (ops, writes) = restart(&ns, p.state());
    assert_eq!((ops, writes), (1, 1), "only the old route's delete");
    assert_eq!(only_metric(&ns, P4), 512);
}

#[test]
fn restart_with_two_stale_metrics_ends_with_one_route_at_the_desired_metric() {
    let ns = namespace();
    no_failures(
        felix(&ns)
            .apply(planner(&[(P6, NH6, None)]).state())
            .expect("apply"),
    );
    let proto = TORTIE_PROTOCOL.to_string();
    ok(ns.ip(&[
        "route", "add", P6, "via", NH6, "proto", &proto, "metric", "300",
    ]));
    let p = planner(&[(P6, NH6, Some(512))]);
    let (ops, _) = restart(&ns, p.state());
    assert_eq!(ops, 2, "a stray deleted, the kept route moved");
    assert_eq!(only_metric(&ns, P6), 512);
    assert_eq!(restart(&ns, p.state()), (0, 0));
}

#[test]
fn repair_deletes_a_route_of_ours_with_another_metric() {
    let ns = namespace();
    let p = planner(&[(P4, NH4, Some(512))]);
    let mut f = felix(&ns);
    no_failures(f.apply(p.state()).expect("apply"));
    let proto = TORTIE_PROTOCOL.to_string();
    ok(ns.ip(&[
        "route", "add", P4, "via", NH4, "proto", &proto, "metric", "300",
    ]));
    let w = f.writes();
    let r = no_failures(f.repair(p.state()).expect("repair"));
    assert_eq!((r.ops, f.writes() - w), (1, 1), "{r:?}");
    assert_eq!(only_metric(&ns, P4), 512);
}

#[test]
fn foreign_route_with_another_metric_is_left_alone() {
    let ns = namespace();
    let mut p = planner(&[(P4, NH4, None)]);
    let mut f = felix(&ns);
    no_failures(f.apply(p.state()).expect("apply"));
    ok(ns.ip(&[
        "route",
        "add",
        P4,
        "via",
        "198.18.1.1",
        "proto",
        "static",
        "metric",
        "300",
    ]));
    let foreign = || route_lines(&ns, P4, Some("static"));
    let before = foreign();
    assert_eq!(before.len(), 1);
    // A move to another metric, a repair, a restart: the static route is never touched.
    p.set_route(net(P4), [ip(NH4)], Some(512));
    apply_changes(&mut f, &mut p);
    no_failures(f.repair(p.state()).expect("repair"));
    assert_eq!(restart(&ns, p.state()), (0, 0));
    assert_eq!(foreign(), before);
    assert_eq!(only_metric(&ns, P4), 512);
    assert_eq!(route_lines(&ns, P4, None).len(), 2);
}

#[test]
fn felix_records_the_metric_it_wrote() {
    let ns = namespace();
    let p = planner(&[(P4, NH4, Some(512)), (P6, NH6, Some(1024))]);
    let mut f = felix(&ns);
    no_failures(f.apply(p.state()).expect("apply"));
    let current = f.current().expect("synced");
    assert_eq!(
        current.routes.get(&net(P4)).map(desired::Route::metric),
        Some(512)
    );
    assert_eq!(
        current.routes.get(&net(P6)).map(desired::Route::metric),
        Some(0)
    );
    assert_eq!(current.normalized(), p.state().fib.normalized());
}

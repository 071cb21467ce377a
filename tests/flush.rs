//! `tortie flush` in a network namespace of the test's own: tortie's routes go, and a route
//! of another protocol (BIRD's 12, as Calico's BIRD writes) stays.

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;

use support::netns::Netns;

const BIN: &str = env!("CARGO_BIN_EXE_tortie");

fn need_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (network namespaces)");
        return false;
    }
    true
}

fn flush(ns: &Netns, extra: &[&str]) -> std::process::Output {
    ns.command(BIN)
        .arg("flush")
        .args(extra)
        .output()
        .expect("run tortie flush")
}

#[test]
fn flush_removes_tortie_routes_and_leaves_other_protocols_alone() {
    if !need_root() {
        return;
    }
    let ns = Netns::new("flush");
    ns.ip(&["route", "add", "blackhole", "198.19.5.0/26", "proto", "116"])
        .expect("tortie's route");
    ns.ip(&["route", "add", "blackhole", "198.19.6.0/26", "proto", "12"])
        .expect("BIRD's route");
    let out = flush(&ns, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = ns
        .ip(&["route", "show", "type", "blackhole"])
        .expect("ip route");
    assert!(!left.contains("198.19.5.0/26"), "{left}");
    assert!(left.contains("198.19.6.0/26 proto bird"), "{left}");
}

#[test]
fn flush_takes_the_protocol_number_the_agent_ran_with() {
    if !need_root() {
        return;
    }
    let ns = Netns::new("flush117");
    ns.ip(&["route", "add", "blackhole", "198.19.7.0/26", "proto", "117"])
        .expect("route");
    ns.ip(&["route", "add", "blackhole", "198.19.8.0/26", "proto", "116"])
        .expect("route");
    let out = flush(&ns, &["--route-protocol", "117"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = ns
        .ip(&["route", "show", "type", "blackhole"])
        .expect("ip route");
    assert!(!left.contains("198.19.7.0/26"), "{left}");
    assert!(left.contains("198.19.8.0/26"), "{left}");
}

#[test]
fn agent_flush_is_the_same_flush() {
    if !need_root() {
        return;
    }
    let ns = Netns::new("agentflush");
    ns.ip(&["route", "add", "blackhole", "198.19.9.0/26", "proto", "116"])
        .expect("route");
    let out = ns
        .command(BIN)
        .args(["agent", "--flush"])
        .output()
        .expect("run tortie agent --flush");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = ns
        .ip(&["route", "show", "type", "blackhole"])
        .expect("ip route");
    assert!(!left.contains("198.19.9.0/26"), "{left}");
}

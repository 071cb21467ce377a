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

/// In a namespace of its own holding blackhole routes `(prefix, protocol)`, runs tortie with
/// `args`, which must succeed, and returns the blackhole routes left.
fn blackholes_left_after(tag: &str, routes: &[(&str, &str)], args: &[&str]) -> String {
    let ns = Netns::new(tag);
    for (prefix, proto) in routes {
        ns.ip(&["route", "add", "blackhole", prefix, "proto", proto])
            .expect("add a route");
    }
    let out = ns.command(BIN).args(args).output().expect("run tortie");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ns.ip(&["route", "show", "type", "blackhole"])
        .expect("ip route")
}

#[test]
fn flush_removes_tortie_routes_and_leaves_other_protocols_alone() {
    if !need_root() {
        return;
    }
    let left = blackholes_left_after(
        "flush",
        &[("198.19.5.0/26", "116"), ("198.19.6.0/26", "12")],
        &["flush"],
    );
    assert!(!left.contains("198.19.5.0/26"), "{left}");
    assert!(left.contains("198.19.6.0/26 proto bird"), "{left}");
}

#[test]
fn flush_takes_the_protocol_number_the_agent_ran_with() {
    if !need_root() {
        return;
    }
    let left = blackholes_left_after(
        "flush117",
        &[("198.19.7.0/26", "117"), ("198.19.8.0/26", "116")],
        &["flush", "--route-protocol", "117"],
    );
    assert!(!left.contains("198.19.7.0/26"), "{left}");
    assert!(left.contains("198.19.8.0/26"), "{left}");
}

#[test]
fn agent_flush_is_the_same_flush() {
    if !need_root() {
        return;
    }
    let left = blackholes_left_after(
        "agentflush",
        &[("198.19.9.0/26", "116")],
        &["agent", "--flush"],
    );
    assert!(!left.contains("198.19.9.0/26"), "{left}");
}

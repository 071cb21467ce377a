//! `natOutgoing`: traffic from a pod of a masquerading pool to a destination outside every
//! pool leaves with the node's address (nftables masquerade); nothing else is touched.
//!
//! The rules live in one nftables table of tortie's own (`inet tortie`), replaced as a whole in
//! one atomic transaction whenever the pools change, so tortie never edits rules it does not
//! own and a half-applied state cannot exist. They are applied with the `nft` program
//! (Debian's `nftables` package), as calico-node drives iptables.

use crate::desired::NatOutgoing;
use ipnet::IpNet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// The nftables table that holds every rule tortie writes.
pub const TABLE: &str = "tortie";

#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error("cannot run nft (is the nftables package installed?): {0}")]
    Spawn(std::io::Error),
    #[error("nft refused the ruleset: {0}")]
    Rejected(String),
}

fn elements<'a>(nets: impl Iterator<Item = &'a IpNet>) -> String {
    nets.map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}

fn set(out: &mut String, name: &str, ty: &str, nets: Vec<&IpNet>) {
    // Pools may nest (routing takes the most specific), but nftables refuses overlapping
    // elements in an interval set ("conflicting intervals specified"). A set means the union
    // of its elements, so it is written aggregated.
    let nets = IpNet::aggregate(&nets.into_iter().copied().collect());
    let _ = write!(out, "  set {name} {{ type {ty}; flags interval;");
    if !nets.is_empty() {
        let _ = write!(out, " elements = {{ {} }};", elements(nets.iter()));
    }
    out.push_str(" }\n");
}

/// The ruleset for `nat`: the table is created (so deleting it never fails), deleted and
/// written anew in one transaction.
pub fn ruleset(nat: &NatOutgoing) -> String {
    let v4 = |n: &&IpNet| matches!(n, IpNet::V4(_));
    let v6 = |n: &&IpNet| matches!(n, IpNet::V6(_));
    let mut s =
        format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    set(
        &mut s,
        "pools4",
        "ipv4_addr",
        nat.all_pools.iter().filter(v4).collect(),
    );
    set(
        &mut s,
        "pools6",
        "ipv6_addr",
        nat.all_pools.iter().filter(v6).collect(),
    );
    set(
        &mut s,
        "masq4",
        "ipv4_addr",
        nat.masquerade.iter().filter(v4).collect(),
    );
    set(
        &mut s,
        "masq6",
        "ipv6_addr",
        nat.masquerade.iter().filter(v6).collect(),
    );
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    s.push_str("    ip saddr @masq4 ip daddr != @pools4 masquerade\n");
    s.push_str("    ip6 saddr @masq6 ip6 daddr != @pools6 masquerade\n  }\n}\n");
    s
}

fn nft(netns: Option<&str>, input: &str) -> Result<(), NatError> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            c
        }
        None => {
            let mut c = Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NatError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(NatError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(NatError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NatError::Rejected(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Replaces tortie's NAT table with the rules for `nat`, in the given network namespace (by
/// name under /run/netns) or the current one.
pub fn apply(nat: &NatOutgoing, netns: Option<&str>) -> Result<(), NatError> {
    nft(netns, &ruleset(nat))
}

/// Removes tortie's NAT table (`--flush`).
pub fn remove(netns: Option<&str>) -> Result<(), NatError> {
    nft(
        netns,
        &format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_masquerades_pool_sources_to_destinations_outside_every_pool() {
        let mut nat = NatOutgoing::default();
        for p in ["198.19.0.0/16", "198.18.128.0/20", "fd00:19::/48"] {
            nat.all_pools.insert(p.parse().unwrap());
        }
        nat.masquerade.insert("198.19.0.0/16".parse().unwrap());
        let r = ruleset(&nat);
        assert!(
            r.starts_with("table inet tortie {}\ndelete table inet tortie\n"),
            "{r}"
        );
        assert!(r.contains("set pools4 { type ipv4_addr; flags interval; elements = { 198.18.128.0/20, 198.19.0.0/16 }; }"), "{r}");
        assert!(
            r.contains(
                "set masq4 { type ipv4_addr; flags interval; elements = { 198.19.0.0/16 }; }"
            ),
            "{r}"
        );
        assert!(
            r.contains("set masq6 { type ipv6_addr; flags interval; }"),
            "empty set has no elements: {r}"
        );
        assert!(r.contains("ip saddr @masq4 ip daddr != @pools4 masquerade"));
    }

    #[test]
    fn nested_pools_are_written_as_their_union() {
        let mut nat = NatOutgoing::default();
        for p in [
            "198.19.0.0/16",
            "198.19.2.0/23",
            "198.18.0.0/24",
            "198.18.1.0/24",
        ] {
            nat.all_pools.insert(p.parse().unwrap());
        }
        nat.masquerade.insert("198.19.2.0/23".parse().unwrap());
        let r = ruleset(&nat);
        assert!(
            r.contains("set pools4 { type ipv4_addr; flags interval; elements = { 198.18.0.0/23, 198.19.0.0/16 }; }"),
            "{r}"
        );
        assert!(r.contains("elements = { 198.19.2.0/23 }"), "{r}");
    }
}

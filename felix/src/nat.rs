//! `natOutgoing`: traffic from a pod of a masquerading pool to a destination outside every
//! pool leaves with the node's address (nftables masquerade); nothing else is touched.
//!
//! The rules live in one nftables table of tortie's own (`inet tortie`), replaced as a whole in
//! one atomic transaction whenever the pools change, so tortie never edits rules it does not
//! own and a half-applied state cannot exist. They are applied with the `nft` program
//! (Debian's `nftables` package), as calico-node drives iptables.
//!
//! A node with no `natOutgoing` pool has no table at all (no NAT hook, so no conntrack work
//! for NAT), and a table left from an earlier configuration is removed. At start-up the table
//! is read back (`nft -j list table inet tortie`) and compared, object by object, with what
//! tortie would write ([`expected`]: the sets with their elements, the chain with its hook,
//! the rules with their expressions; handles ignored): when it matches, nothing is written, so
//! a restarted agent leaves the table (and its handles) as it was. Anything that does not match
//! exactly, including a listing this code does not understand, is rewritten.

use crate::desired::NatOutgoing;
use ipnet::IpNet;
use serde_json::{Value, json};
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
    #[error("nft could not list table inet {TABLE}: {0}")]
    List(String),
}

/// Does `nat` need the table at all? Only when some pool masquerades.
pub fn needed(nat: &NatOutgoing) -> bool {
    !nat.masquerade.is_empty()
}

fn elements<'a>(nets: impl Iterator<Item = &'a IpNet>) -> String {
    nets.map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}

/// Pools may nest (routing takes the most specific), but nftables refuses overlapping
/// elements in an interval set ("conflicting intervals specified"). A set means the union of
/// its elements, so it is written aggregated.
fn aggregated(nets: Vec<&IpNet>) -> Vec<IpNet> {
    IpNet::aggregate(&nets.into_iter().copied().collect())
}

/// The four sets: name, nftables type, elements.
fn sets(nat: &NatOutgoing) -> [(&'static str, &'static str, Vec<IpNet>); 4] {
    let v4 = |n: &&IpNet| matches!(n, IpNet::V4(_));
    let v6 = |n: &&IpNet| matches!(n, IpNet::V6(_));
    [
        (
            "pools4",
            "ipv4_addr",
            aggregated(nat.all_pools.iter().filter(v4).collect()),
        ),
        (
            "pools6",
            "ipv6_addr",
            aggregated(nat.all_pools.iter().filter(v6).collect()),
        ),
        (
            "masq4",
            "ipv4_addr",
            aggregated(nat.masquerade.iter().filter(v4).collect()),
        ),
        (
            "masq6",
            "ipv6_addr",
            aggregated(nat.masquerade.iter().filter(v6).collect()),
        ),
    ]
}

/// The two rules: protocol (`ip`/`ip6`), source set, destination set.
const RULES: [(&str, &str, &str); 2] = [("ip", "masq4", "pools4"), ("ip6", "masq6", "pools6")];

fn set(out: &mut String, name: &str, ty: &str, nets: &[IpNet]) {
    let _ = write!(out, "  set {name} {{ type {ty}; flags interval;");
    if !nets.is_empty() {
        let _ = write!(out, " elements = {{ {} }};", elements(nets.iter()));
    }
    out.push_str(" }\n");
}

/// The ruleset for `nat`: the table is created (so deleting it never fails), deleted and
/// written anew in one transaction.
pub fn ruleset(nat: &NatOutgoing) -> String {
    let mut s =
        format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    for (name, ty, nets) in sets(nat) {
        set(&mut s, name, ty, &nets);
    }
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for (proto, masq, pools) in RULES {
        let _ = writeln!(
            s,
            "    {proto} saddr @{masq} {proto} daddr != @{pools} masquerade"
        );
    }
    s.push_str("  }\n}\n");
    s
}

/// What `nft -j list table inet tortie` shows for the table [`ruleset`] writes, with the
/// handles and the metainfo left out ([`normalize`]).
pub fn expected(nat: &NatOutgoing) -> Vec<Value> {
    let mut out = vec![json!({"table": {"family": "inet", "name": TABLE}})];
    for (name, ty, nets) in sets(nat) {
        let mut set = json!({
            "family": "inet", "name": name, "table": TABLE, "type": ty, "flags": ["interval"],
        });
        if !nets.is_empty() {
            let elem: Vec<Value> = nets
                .iter()
                .map(|n| {
                    if n.prefix_len() == n.max_prefix_len() {
                        json!(n.addr().to_string())
                    } else {
                        json!({"prefix": {"addr": n.addr().to_string(), "len": n.prefix_len()}})
                    }
                })
                .collect();
            set["elem"] = Value::Array(elem);
        }
        out.push(json!({ "set": set }));
    }
    out.push(json!({"chain": {
        "family": "inet", "table": TABLE, "name": "postrouting",
        "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept",
    }}));
    for (proto, masq, pools) in RULES {
        let m = |op: &str, field: &str, set: &str| {
            json!({"match": {
                "op": op,
                "left": {"payload": {"protocol": proto, "field": field}},
                "right": format!("@{set}"),
            }})
        };
        out.push(json!({"rule": {
            "family": "inet", "table": TABLE, "chain": "postrouting",
            "expr": [m("==", "saddr", masq), m("!=", "daddr", pools), {"masquerade": null}],
        }}));
    }
    normalize(out)
}

/// A table listing without what says nothing about the rules: the metainfo object and every
/// `handle`; set elements in a canonical order.
pub fn normalize(objects: Vec<Value>) -> Vec<Value> {
    objects
        .into_iter()
        .filter(|o| o.get("metainfo").is_none())
        .map(|mut o| {
            if let Some(inner) = o.as_object_mut().and_then(|m| m.values_mut().next()) {
                if let Some(m) = inner.as_object_mut() {
                    m.remove("handle");
                    if let Some(Value::Array(elem)) = m.get_mut("elem") {
                        elem.sort_by_cached_key(|e| e.to_string());
                    }
                }
            }
            o
        })
        .collect()
}

/// Does the listing (`nft -j list table inet tortie`'s `nftables` array) hold exactly the
/// table for `nat`?
pub fn holds(listing: Vec<Value>, nat: &NatOutgoing) -> bool {
    needed(nat) && normalize(listing) == expected(nat)
}

fn nft_command(netns: Option<&str>, args: &[&str]) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]).args(args);
            c
        }
        None => {
            let mut c = Command::new("nft");
            c.args(args);
            c
        }
    }
}

fn nft(netns: Option<&str>, input: &str) -> Result<(), NatError> {
    let mut child = nft_command(netns, &["-f", "-"])
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

/// tortie's table as `nft -j` lists it (the `nftables` array), or `None` when there is none.
pub fn read(netns: Option<&str>) -> Result<Option<Vec<Value>>, NatError> {
    let out = nft_command(netns, &["-j", "list", "table", "inet", TABLE])
        .stdin(Stdio::null())
        .output()
        .map_err(NatError::Spawn)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if err.contains("No such file or directory") {
            return Ok(None);
        }
        return Err(NatError::List(err));
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| NatError::List(e.to_string()))?;
    match v.get("nftables") {
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        _ => Err(NatError::List(format!("unexpected listing: {v}"))),
    }
}

/// Replaces tortie's NAT table with the rules for `nat`, in the given network namespace (by
/// name under /run/netns) or the current one. Without a masquerading pool the table is removed
/// instead.
pub fn apply(nat: &NatOutgoing, netns: Option<&str>) -> Result<(), NatError> {
    if needed(nat) {
        nft(netns, &ruleset(nat))
    } else {
        remove(netns)
    }
}

/// Makes the kernel hold the table for `nat` (or none), knowing nothing of what it holds:
/// reads the table and writes only when it differs. Returns whether it wrote.
pub fn sync(nat: &NatOutgoing, netns: Option<&str>) -> Result<bool, NatError> {
    let same = match read(netns) {
        Ok(None) => !needed(nat),
        Ok(Some(listing)) => holds(listing, nat),
        // Without nft there can be no table of ours; a node that masquerades nothing needs none.
        Err(NatError::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound && !needed(nat) => true,
        Err(e) => return Err(e),
    };
    if same {
        return Ok(false);
    }
    apply(nat, netns)?;
    Ok(true)
}

/// Removes tortie's NAT table (`--flush`, or no masquerading pool).
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

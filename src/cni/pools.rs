//! Which IP pools a pod's address may come from, and what their encapsulation costs the pod's
//! MTU.
//!
//! The pools are the IPPool resources of the cluster configuration, turned into the IPAM
//! library's [`Pool`]s. A network configuration that names pools (`ipam.ipv4_pools`, by name
//! or CIDR, as Calico accepts them) gets exactly those, and a name that matches no pool is an
//! error rather than a silent fall-back; one that names none gets every enabled pool of the
//! family whose `nodeSelector` selects the node, as Calico's IPAM does.

use crate::config::{self, Config};
use std::collections::BTreeMap;
use tortie_felix::desired::{IPIP_OVERHEAD, VXLAN_V4_OVERHEAD, VXLAN_V6_OVERHEAD};
use tortie_ipam::{AllowedUse, EncapMode, Family, Pool, PoolSpec};

/// Why the pools could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolChoiceError {
    #[error(
        "ipam.{field}: {wanted:?} is neither the name nor the CIDR of an IPPool (the cluster has: {known})"
    )]
    Unknown {
        field: &'static str,
        wanted: String,
        known: String,
    },
    #[error("ipam.{field}: IPPool {name:?} ({cidr}) is not an {family} pool")]
    WrongFamily {
        field: &'static str,
        name: String,
        cidr: String,
        family: Family,
    },
    #[error("ipam.{field}: IPPool {name:?} is disabled")]
    Disabled { field: &'static str, name: String },
    #[error("ipam.{field}: IPPool {name:?} does not allow workload addresses (allowedUses)")]
    NotForWorkloads { field: &'static str, name: String },
    #[error("no enabled {family} IPPool selects node {node} (check the pools' nodeSelector)")]
    NoneForNode { family: Family, node: String },
    #[error(transparent)]
    Pool(#[from] tortie_ipam::PoolError),
}

fn encap(m: config::EncapMode) -> EncapMode {
    match m {
        config::EncapMode::Always => EncapMode::Always,
        config::EncapMode::CrossSubnet => EncapMode::CrossSubnet,
        config::EncapMode::Never => EncapMode::Never,
    }
}

/// The cluster's pools as the IPAM library takes them (pools without a CIDR, which validation
/// never lets through, are skipped).
pub fn from_config(cfg: &Config) -> Result<Vec<Pool>, PoolChoiceError> {
    let mut out = Vec::new();
    for (name, p) in &cfg.ip_pools {
        let s = &p.resource.spec;
        let Some(cidr) = s.cidr else { continue };
        let uses: Vec<AllowedUse> = s
            .allowed_uses()
            .into_iter()
            .filter_map(|u| match u {
                config::AllowedUse::Workload => Some(AllowedUse::Workload),
                config::AllowedUse::Tunnel => Some(AllowedUse::Tunnel),
                config::AllowedUse::LoadBalancer => None,
            })
            .collect();
        // A LoadBalancer-only pool is for service addresses, which this plugin never hands
        // out: left out, rather than refused as a pool with no use (which would fail every pod).
        if uses.is_empty() {
            continue;
        }
        let spec = PoolSpec {
            cidr: cidr.0.to_string(),
            block_size: s.block_size.map(|b| b.0),
            ipip_mode: Some(encap(s.ipip_mode())),
            vxlan_mode: Some(encap(s.vxlan_mode())),
            nat_outgoing: s.nat_outgoing.unwrap_or(false),
            disabled: s.disabled.unwrap_or(false),
            disable_bgp_export: s.disable_bgp_export.unwrap_or(false),
            node_selector: s.node_selector.as_ref().map(|sel| sel.as_str().to_string()),
            allowed_uses: Some(uses),
        };
        out.push(Pool::from_spec(name, &spec)?);
    }
    Ok(out)
}

/// The labels of a node's Node resource (none when the cluster has no Node of that name).
pub fn node_labels(cfg: &Config, node: &str) -> BTreeMap<String, String> {
    cfg.nodes
        .get(node)
        .map(|n| n.resource.metadata.labels.clone())
        .unwrap_or_default()
}

/// The pools for one family: those named in `wanted` (names or CIDRs), else every enabled
/// workload pool of the family whose selector selects the node's labels.
pub fn choose(
    pools: &[Pool],
    family: Family,
    wanted: &[String],
    node: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<Pool>, PoolChoiceError> {
    let field = match family {
        Family::V4 => "ipv4_pools",
        Family::V6 => "ipv6_pools",
    };
    if wanted.is_empty() {
        let selects = |sel: &str| {
            config::Selector::parse(sel)
                .map(|s| s.matches(labels))
                .unwrap_or(false)
        };
        let chosen = tortie_ipam::pool::eligible(pools, family, AllowedUse::Workload, &selects);
        if chosen.is_empty() {
            return Err(PoolChoiceError::NoneForNode {
                family,
                node: node.to_string(),
            });
        }
        return Ok(chosen);
    }
    let mut out: Vec<Pool> = Vec::new();
    for w in wanted {
        let found = pools
            .iter()
            .find(|p| p.name == *w || p.cidr.to_string() == *w || w.parse() == Ok(p.cidr));
        let Some(p) = found else {
            let known: Vec<String> = pools
                .iter()
                .map(|p| format!("{} ({})", p.name, p.cidr))
                .collect();
            return Err(PoolChoiceError::Unknown {
                field,
                wanted: w.clone(),
                known: if known.is_empty() {
                    "no pools".into()
                } else {
                    known.join(", ")
                },
            });
        };
        if p.family() != family {
            return Err(PoolChoiceError::WrongFamily {
                field,
                name: p.name.clone(),
                cidr: p.cidr.to_string(),
                family,
            });
        }
        if p.disabled {
            return Err(PoolChoiceError::Disabled {
                field,
                name: p.name.clone(),
            });
        }
        if !p.allows(AllowedUse::Workload) {
            return Err(PoolChoiceError::NotForWorkloads {
                field,
                name: p.name.clone(),
            });
        }
        if !out.iter().any(|o| o.name == p.name) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// What the pools' encapsulation takes off the underlay MTU: felix's tunnel overheads (VXLAN
/// 50 over IPv4, 70 over IPv6, IPIP 20), the largest of those the pools use, since a pod's
/// packets may leave through any of the node's tunnels.
pub fn overhead(pools: &[Pool]) -> u32 {
    pools
        .iter()
        .map(|p| {
            let vxlan = if p.vxlan_mode == EncapMode::Never {
                0
            } else if p.family() == Family::V6 {
                VXLAN_V6_OVERHEAD
            } else {
                VXLAN_V4_OVERHEAD
            };
            let ipip = if p.ipip_mode == EncapMode::Never {
                0
            } else {
                IPIP_OVERHEAD
            };
            vxlan.max(ipip)
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> Config {
        Config::from_texts(&[("test.yaml", yaml)]).unwrap()
    }

    const POOLS: &str = r#"
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: rack-a}
spec: {cidr: 198.19.0.0/24, vxlanMode: CrossSubnet, nodeSelector: "rack == 'a'"}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: rack-b}
spec: {cidr: 198.19.1.0/24, ipipMode: Always, nodeSelector: "rack == 'b'"}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: off}
spec: {cidr: 198.19.2.0/24, disabled: true}
"#;

    fn labels(rack: &str) -> BTreeMap<String, String> {
        [("rack".to_string(), rack.to_string())].into()
    }

    #[test]
    fn a_load_balancer_only_pool_is_left_out_and_the_others_still_serve() {
        let yaml = format!(
            "{POOLS}---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: lb}}\nspec: {{cidr: 198.19.3.0/24, allowedUses: [LoadBalancer]}}\n"
        );
        let pools = from_config(&cfg(&yaml)).unwrap();
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        assert!(!names.contains(&"lb"), "{names:?}");
        assert!(names.contains(&"rack-a"), "{names:?}");
    }

    #[test]
    fn without_names_the_pools_selecting_the_node_are_used() {
        let pools = from_config(&cfg(POOLS)).unwrap();
        let got = choose(&pools, Family::V4, &[], "n1", &labels("a")).unwrap();
        let names: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["rack-a"]);
    }

    #[test]
    fn named_pools_are_found_by_name_or_cidr() {
        let pools = from_config(&cfg(POOLS)).unwrap();
        let got = choose(
            &pools,
            Family::V4,
            &["rack-b".into(), "198.19.0.0/24".into()],
            "n1",
            &labels("a"),
        )
        .unwrap();
        let names: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["rack-b", "rack-a"]);
    }

    #[test]
    fn a_name_that_matches_no_pool_is_an_error_listing_the_pools() {
        let pools = from_config(&cfg(POOLS)).unwrap();
        let e = choose(&pools, Family::V4, &["nope".into()], "n1", &labels("a")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("nope") && text.contains("rack-a (198.19.0.0/24)"),
            "{text}"
        );
    }

    #[test]
    fn a_named_disabled_pool_is_refused() {
        let pools = from_config(&cfg(POOLS)).unwrap();
        let e = choose(&pools, Family::V4, &["off".into()], "n1", &labels("a")).unwrap_err();
        assert!(matches!(e, PoolChoiceError::Disabled { .. }));
    }

    #[test]
    fn a_node_no_pool_selects_gets_a_clear_error() {
        let pools = from_config(&cfg(POOLS)).unwrap();
        let e = choose(&pools, Family::V4, &[], "n9", &labels("c")).unwrap_err();
        assert!(e.to_string().contains("n9"), "{e}");
    }

    #[test]
    fn the_mtu_overhead_is_the_largest_tunnel_the_pools_use() {
        let pools = from_config(&cfg(POOLS)).unwrap();
        let named =
            |n: &str| -> Vec<Pool> { pools.iter().filter(|p| p.name == n).cloned().collect() };
        assert_eq!(overhead(&named("rack-a")), 50, "VXLAN");
        assert_eq!(overhead(&named("rack-b")), 20, "IPIP");
        assert_eq!(overhead(&pools), 50);
        assert_eq!(overhead(&named("off")), 0, "no encapsulation");
    }
}

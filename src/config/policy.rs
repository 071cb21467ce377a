//! BGPFilter and BGPConfiguration resources to the BGP crate's policy types
//! ([`tortie_bgp::rib::policy`]).
//!
//! ```text
//!  BgpPeering.bgp_peer ──▶ Config::bgp_filters_for(name) ──▶ Vec<Filter> (spec.filters order)
//!  node name ──▶ Config::advertisements(node) ──▶ Advertisements (prefixAdvertisements)
//! ```
//! Mesh peerings have no BGPPeer and so no filters (calico-node passes none to them either).
//!
//! The loader has validated the resources already; what can still fail here is reported as a
//! [`ConfigError`] naming the resource and field, for resources built in code or a loader
//! that lets something through.
//!
//! Per-node `prefixAdvertisements`: calico-node uses those of `node.<name>` when that resource
//! sets any, for both families, and otherwise those of `default` (it never merges the two).
//! Community names are looked up in the `communities` of the same resource, and each entry's
//! values are deduplicated and ordered as strings, as Calico's syncer does.

use std::collections::BTreeSet;

use ipnet::IpNet;
use tortie_bgp::rib::policy::{self as p, Advertisements, CommunityValue, Filter, Rule};
use tortie_bgp::wire::{Community, LargeCommunity};

use super::values::Community as ConfigCommunity;
use super::{
    BgpConfiguration, BgpFilter, Config, ConfigError, FilterAction, FilterRule, Kind, Located,
    MatchOperator, PeerType, RouteSource,
};

/// A conversion that cannot be done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no BGPPeer named {0:?} in the configuration")]
    UnknownBgpPeer(String),
    /// A resource field that cannot be converted (boxed: a `ConfigError` is large).
    #[error(transparent)]
    Invalid(Box<ConfigError>),
}

impl From<ConfigError> for PolicyError {
    fn from(e: ConfigError) -> Self {
        PolicyError::Invalid(Box::new(e))
    }
}

impl Config {
    /// The filters of BGPPeer `bgp_peer`, in its `spec.filters` order (which is the order
    /// they are evaluated in).
    pub fn bgp_filters_for(&self, bgp_peer: &str) -> Result<Vec<Filter>, PolicyError> {
        let peer = self
            .bgp_peers
            .get(bgp_peer)
            .ok_or_else(|| PolicyError::UnknownBgpPeer(bgp_peer.to_string()))?;
        let mut filters = Vec::with_capacity(peer.resource.spec.filters.len());
        for (i, name) in peer.resource.spec.filters.iter().enumerate() {
            let Some(f) = self.bgp_filters.get(name) else {
                return Err(ConfigError::resource(
                    &peer.source,
                    Kind::BgpPeer,
                    bgp_peer,
                    format!("spec.filters[{i}]"),
                    format!("no BGPFilter named {name:?}"),
                )
                .into());
            };
            filters.push(filter(f)?);
        }
        Ok(filters)
    }

    /// The `prefixAdvertisements` that apply on node `node`: those of `node.<node>` when it
    /// has any, else those of `default` (empty without either).
    pub fn advertisements(&self, node: &str) -> Result<Advertisements, PolicyError> {
        let node_specific = self
            .bgp_configurations
            .get(&format!("node.{node}"))
            .filter(|r| !r.resource.spec.prefix_advertisements.is_empty());
        match node_specific.or_else(|| self.bgp_configurations.get("default")) {
            Some(r) => advertisements(r),
            None => Ok(Advertisements::new()),
        }
    }
}

/// One BGPFilter resource.
pub fn filter(r: &Located<BgpFilter>) -> Result<Filter, PolicyError> {
    let spec = &r.resource.spec;
    let rules = |field: &str, list: &[FilterRule], v6: bool| -> Result<Vec<Rule>, PolicyError> {
        list.iter()
            .enumerate()
            .map(|(i, x)| rule(r, &format!("spec.{field}[{i}]"), v6, x))
            .collect()
    };
    Ok(Filter {
        name: r.resource.name().to_string(),
        import_v4: rules("importV4", &spec.import_v4, false)?,
        export_v4: rules("exportV4", &spec.export_v4, false)?,
        import_v6: rules("importV6", &spec.import_v6, true)?,
        export_v6: rules("exportV6", &spec.export_v6, true)?,
    })
}

fn rule(
    r: &Located<BgpFilter>,
    field: &str,
    v6: bool,
    x: &FilterRule,
) -> Result<Rule, PolicyError> {
    let err = |sub: &str, msg: String| {
        let path = if sub.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{sub}")
        };
        PolicyError::from(ConfigError::resource(
            &r.source,
            Kind::BgpFilter,
            r.resource.name(),
            path,
            msg,
        ))
    };
    let prefix = match (x.cidr, x.match_operator) {
        (Some(cidr), Some(op)) => {
            if matches!(cidr.0, IpNet::V6(_)) != v6 {
                let family = if v6 { "IPv6" } else { "IPv4" };
                return Err(err("cidr", format!("{cidr} is not an {family} CIDR")));
            }
            let lengths = match x.prefix_length {
                Some(pl) => {
                    let (min, max) = (pl.min.map(|m| m.0), pl.max.map(|m| m.0));
                    let family_max = if v6 { 128 } else { 32 };
                    if let Some(bad) = [min, max].into_iter().flatten().find(|&l| l > family_max) {
                        return Err(err(
                            "prefixLength",
                            format!("{bad} is longer than /{family_max}"),
                        ));
                    }
                    if let (Some(lo), Some(hi)) = (min, max) {
                        if lo > hi {
                            return Err(err(
                                "prefixLength",
                                format!("min {lo} is greater than max {hi}"),
                            ));
                        }
                    }
                    p::PrefixLengthRange { min, max }
                }
                None => p::PrefixLengthRange::default(),
            };
            Some(p::PrefixMatch::new(cidr.0, operator(op), lengths))
        }
        (Some(_), None) => return Err(err("matchOperator", "required with cidr".into())),
        (None, Some(_)) => return Err(err("cidr", "required with matchOperator".into())),
        (None, None) if x.prefix_length.is_some() => {
            return Err(err("prefixLength", "needs cidr".into()));
        }
        (None, None) => None,
    };
    let communities = match &x.communities {
        Some(m) if m.values.is_empty() => {
            return Err(err("communities.values", "needs a community value".into()));
        }
        Some(m) => m.values.iter().map(|&c| community(c)).collect(),
        None => Vec::new(),
    };
    let action = match x.action {
        FilterAction::Accept => p::Action::Accept,
        FilterAction::Reject => p::Action::Reject,
    };
    if action == p::Action::Reject && !x.operations.is_empty() {
        return Err(err(
            "operations",
            "only allowed when action is Accept".into(),
        ));
    }
    let mut operations = Vec::with_capacity(x.operations.len());
    for (i, op) in x.operations.iter().enumerate() {
        let here = format!("operations[{i}]");
        operations.push(
            match (&op.add_community, &op.prepend_as_path, &op.set_priority) {
                (Some(c), None, None) => p::Operation::AddCommunity(community(c.value)),
                (None, Some(pp), None) if pp.prefix.is_empty() => {
                    return Err(err(
                        &format!("{here}.prependASPath.prefix"),
                        "needs an AS number".into(),
                    ));
                }
                (None, Some(pp), None) => {
                    p::Operation::PrependAsPath(pp.prefix.iter().map(|a| a.0).collect())
                }
                (None, None, Some(s)) => p::Operation::SetPriority(s.value.0),
                _ => {
                    return Err(err(
                        &here,
                        "exactly one of addCommunity, prependASPath, setPriority must be set"
                            .into(),
                    ));
                }
            },
        );
    }
    Ok(Rule {
        prefix,
        source: x
            .source
            .map(|RouteSource::RemotePeers| p::RouteSource::RemotePeers),
        interface: x.interface.clone(),
        peer_type: x.peer_type.map(|t| match t {
            PeerType::Ebgp => p::PeerType::Ebgp,
            PeerType::Ibgp => p::PeerType::Ibgp,
        }),
        communities,
        // tortie's BGPFilter schema has no `asPathPrefix` (newer Calico does).
        as_path_prefix: Vec::new(),
        priority: x.priority.map(|v| v.0),
        action,
        operations,
    })
}

fn operator(op: MatchOperator) -> p::MatchOperator {
    match op {
        MatchOperator::Equal => p::MatchOperator::Equal,
        MatchOperator::NotEqual => p::MatchOperator::NotEqual,
        MatchOperator::In => p::MatchOperator::In,
        MatchOperator::NotIn => p::MatchOperator::NotIn,
    }
}

fn community(c: ConfigCommunity) -> CommunityValue {
    match c {
        ConfigCommunity::Standard(a, n) => CommunityValue::Standard(Community::new(a, n)),
        ConfigCommunity::Large(global, local1, local2) => CommunityValue::Large(LargeCommunity {
            global,
            local1,
            local2,
        }),
    }
}

/// The `prefixAdvertisements` of one BGPConfiguration, names resolved against its own
/// `communities`.
fn advertisements(r: &Located<BgpConfiguration>) -> Result<Advertisements, PolicyError> {
    let spec = &r.resource.spec;
    let mut out = Advertisements::new();
    for (i, adv) in spec.prefix_advertisements.iter().enumerate() {
        // Calico collects the values in a set and sorts them as strings.
        let mut values = BTreeSet::new();
        for (j, c) in adv.communities.iter().enumerate() {
            let value = match ConfigCommunity::parse(c) {
                Ok(v) => v,
                Err(_) => match spec.communities.iter().find(|n| &n.name == c) {
                    Some(named) => named.value,
                    None => {
                        return Err(ConfigError::resource(
                            &r.source,
                            Kind::BgpConfiguration,
                            r.resource.name(),
                            format!("spec.prefixAdvertisements[{i}].communities[{j}]"),
                            format!(
                                "{c:?} is neither a community value (aa:nn or aa:nn:mm) nor a \
                                 name defined in spec.communities"
                            ),
                        )
                        .into());
                    }
                },
            };
            values.insert(value.to_string());
        }
        let resolved = values.iter().map(|s| {
            // Every string came from a parsed value just above.
            community(ConfigCommunity::parse(s).expect("a formatted community parses"))
        });
        out.push(adv.cidr.0, resolved);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use tortie_bgp::rib::policy::{Direction, RouteContext, Verdict, evaluate};
    use tortie_bgp::wire::Attributes;

    const HEAD: &str = "apiVersion: projectcalico.org/v3\n";

    fn config(docs: &[&str]) -> Config {
        let text: Vec<String> = docs.iter().map(|d| format!("{HEAD}{d}")).collect();
        Config::from_texts(&[("policy.yaml", &text.join("---\n"))])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const PEER: &str = "kind: BGPPeer\nmetadata: {name: tor}\n\
        spec: {peerIP: 198.18.1.1, asNumber: 65001, filters: [first, second]}\n";

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn filters_come_in_the_bgp_peer_order() {
        let c = config(&[
            PEER,
            "kind: BGPFilter\nmetadata: {name: second}\nspec: {importV4: [{action: Reject}]}\n",
            "kind: BGPFilter\nmetadata: {name: first}\nspec: {exportV6: [{action: Accept}]}\n",
        ]);
        let f = c.bgp_filters_for("tor").unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(f[0].export_v6, vec![Rule::new(p::Action::Accept)]);
        assert_eq!(f[1].import_v4, vec![Rule::new(p::Action::Reject)]);
        assert!(f[1].export_v4.is_empty());
    }

    #[test]
    fn a_bgp_peer_without_filters_has_none() {
        let c = config(&[
            "kind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 198.18.1.1, asNumber: 65001}\n",
        ]);
        assert_eq!(c.bgp_filters_for("tor").unwrap(), vec![]);
    }

    #[test]
    fn an_unknown_bgp_peer_is_an_error() {
        let c = config(&[]);
        assert_eq!(
            c.bgp_filters_for("nope"),
            Err(PolicyError::UnknownBgpPeer("nope".into()))
        );
    }

    #[test]
    fn every_rule_field_converts() {
        let c = config(&[
            PEER,
            "kind: BGPFilter\nmetadata: {name: first}\nspec:\n  exportV4:\n\
             \x20 - {action: Accept, cidr: 10.0.0.0/8, matchOperator: NotIn, prefixLength: {min: 16, max: 24},\n\
             \x20    source: RemotePeers, peerType: eBGP, priority: 512, interface: 'eth*',\n\
             \x20    communities: {values: ['65000:1']},\n\
             \x20    operations: [{addCommunity: {value: '65000:2:3'}}, {prependASPath: {prefix: [65000, 65001]}},\n\
             \x20                 {setPriority: {value: 256}}]}\n",
            "kind: BGPFilter\nmetadata: {name: second}\nspec: {}\n",
        ]);
        let f = c.bgp_filters_for("tor").unwrap();
        let r = &f[0].export_v4[0];
        let m = r.prefix.as_ref().unwrap();
        assert_eq!(
            (m.cidr(), m.operator(), m.lengths()),
            (net("10.0.0.0/8"), p::MatchOperator::NotIn, (16, 24))
        );
        assert_eq!(r.source, Some(p::RouteSource::RemotePeers));
        assert_eq!(r.peer_type, Some(p::PeerType::Ebgp));
        assert_eq!(r.priority, Some(512));
        assert_eq!(r.interface.as_deref(), Some("eth*"));
        assert_eq!(
            r.communities,
            vec![CommunityValue::Standard(Community::new(65000, 1))]
        );
        assert_eq!(
            r.operations,
            vec![
                p::Operation::AddCommunity(CommunityValue::Large(LargeCommunity {
                    global: 65000,
                    local1: 2,
                    local2: 3
                })),
                p::Operation::PrependAsPath(vec![65000, 65001]),
                p::Operation::SetPriority(256),
            ]
        );
        assert_eq!(r.action, p::Action::Accept);
    }

    #[test]
    fn converted_filters_evaluate_as_written() {
        let c = config(&[
            PEER,
            "kind: BGPFilter\nmetadata: {name: first}\nspec:\n  importV4:\n\
             \x20 - {action: Reject, cidr: 10.0.0.0/8, matchOperator: In}\n",
            "kind: BGPFilter\nmetadata: {name: second}\nspec:\n  importV4:\n\
             \x20 - {action: Accept, operations: [{setPriority: {value: 256}}]}\n",
        ]);
        let filters = c.bgp_filters_for("tor").unwrap();
        let attrs = Attributes::default();
        let ctx = |prefix: &str| RouteContext {
            prefix: net(prefix),
            attrs: &attrs,
            from_peer: true,
            peer_type: p::PeerType::Ebgp,
            priority: None,
        };
        let (v, out) = evaluate(&filters, Direction::Import, &ctx("10.1.0.0/16"));
        assert_eq!(v, Verdict::Reject);
        assert!(matches!(out, Cow::Borrowed(_)));
        let v = evaluate(&filters, Direction::Import, &ctx("192.168.0.0/16")).0;
        assert_eq!(
            v,
            Verdict::Accept {
                priority: Some(256)
            }
        );
    }

    fn invalid(e: PolicyError) -> ConfigError {
        match e {
            PolicyError::Invalid(e) => *e,
            other => panic!("{other}"),
        }
    }

    fn bad_filter(rule_yaml: &str) -> ConfigError {
        let mut c = config(&[]);
        let good = config(&[
            "kind: BGPFilter\nmetadata: {name: f}\nspec: {importV4: [{action: Accept}]}\n",
        ]);
        let mut f = good.bgp_filters["f"].clone();
        f.resource.spec.import_v4 = vec![serde_yaml_ng::from_str(rule_yaml).unwrap()];
        c.bgp_filters.insert("f".into(), f);
        invalid(filter(&c.bgp_filters["f"]).unwrap_err())
    }

    #[test]
    fn a_cidr_of_the_other_family_is_an_error() {
        let e = bad_filter("{action: Accept, cidr: 'fd00::/8', matchOperator: In}");
        assert_eq!(e.field.as_deref(), Some("spec.importV4[0].cidr"));
        assert_eq!(e.name.as_deref(), Some("f"));
    }

    #[test]
    fn a_cidr_without_operator_is_an_error() {
        let e = bad_filter("{action: Accept, cidr: 10.0.0.0/8}");
        assert_eq!(e.field.as_deref(), Some("spec.importV4[0].matchOperator"));
    }

    #[test]
    fn prefix_length_without_cidr_is_an_error() {
        let e = bad_filter("{action: Accept, prefixLength: {min: 24}}");
        assert_eq!(e.field.as_deref(), Some("spec.importV4[0].prefixLength"));
    }

    #[test]
    fn operations_on_reject_are_an_error() {
        let e = bad_filter("{action: Reject, operations: [{setPriority: {value: 5}}]}");
        assert_eq!(e.field.as_deref(), Some("spec.importV4[0].operations"));
    }

    #[test]
    fn an_operation_with_two_fields_is_an_error() {
        let e = bad_filter(
            "{action: Accept, operations: [{setPriority: {value: 5}, addCommunity: {value: '1:2'}}]}",
        );
        assert_eq!(e.field.as_deref(), Some("spec.importV4[0].operations[0]"));
    }

    #[test]
    fn an_empty_community_match_is_an_error() {
        let e = bad_filter("{action: Accept, communities: {values: []}}");
        assert_eq!(
            e.field.as_deref(),
            Some("spec.importV4[0].communities.values")
        );
    }

    const COMMUNITIES: &str = "  communities:\n  - {name: big, value: '63400:300:100'}\n\
        \x20 - {name: small, value: '63400:120'}\n";

    #[test]
    fn advertisements_resolve_names_and_literal_values() {
        let c = config(&[&format!(
            "kind: BGPConfiguration\nmetadata: {{name: default}}\nspec:\n{COMMUNITIES}\
             \x20 prefixAdvertisements:\n  - {{cidr: 198.19.0.0/16, communities: [big, small, '65000:7']}}\n"
        )]);
        let adv = c.advertisements("node-a").unwrap();
        let (std, large) = adv.communities_for(net("198.19.4.0/26"));
        assert_eq!(
            std,
            vec![Community::new(63400, 120), Community::new(65000, 7)]
        );
        assert_eq!(
            large,
            vec![LargeCommunity {
                global: 63400,
                local1: 300,
                local2: 100
            }]
        );
    }

    #[test]
    fn node_specific_advertisements_replace_the_default_ones() {
        let c = config(&[
            "kind: BGPConfiguration\nmetadata: {name: default}\nspec:\n\
             \x20 prefixAdvertisements: [{cidr: 198.19.0.0/16, communities: ['65000:1']}]\n",
            "kind: BGPConfiguration\nmetadata: {name: node.node-a}\nspec:\n\
             \x20 prefixAdvertisements: [{cidr: 'fd00::/48', communities: ['65000:2']}]\n",
        ]);
        let a = c.advertisements("node-a").unwrap();
        assert_eq!(a.cidrs().collect::<Vec<_>>(), vec![net("fd00::/48")]);
        assert_eq!(a.communities_for(net("198.19.0.0/26")), (vec![], vec![]));
        let b = c.advertisements("node-b").unwrap();
        assert_eq!(b.cidrs().collect::<Vec<_>>(), vec![net("198.19.0.0/16")]);
    }

    #[test]
    fn no_bgp_configuration_means_no_advertisements() {
        assert!(config(&[]).advertisements("node-a").unwrap().is_empty());
    }

    #[test]
    fn an_undefined_community_name_is_an_error() {
        let good = config(&["kind: BGPConfiguration\nmetadata: {name: default}\nspec: {}\n"]);
        let mut r = good.bgp_configurations["default"].clone();
        r.resource.spec.prefix_advertisements =
            serde_yaml_ng::from_str("[{cidr: 198.19.0.0/16, communities: [nope]}]").unwrap();
        let e = invalid(advertisements(&r).unwrap_err());
        assert_eq!(
            e.field.as_deref(),
            Some("spec.prefixAdvertisements[0].communities[0]")
        );
    }
}

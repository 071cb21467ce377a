//! Checks that span fields or resources (single values were checked while deserializing).

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::error::{ConfigError, Source, Warning};
use super::types::{
    EncapMode, FilterAction, FilterRule, Kind, NamedCommunity, PrefixAdvertisement,
};
use super::values::{Community, check_name};
use super::{Config, Located};

/// The only fields Calico honours on a `node.<name>` BGPConfiguration.
pub(crate) const NODE_CONFIG_FIELDS: &[&str] = &[
    "spec.listenPort",
    "spec.logSeverityScreen",
    "spec.prefixAdvertisements",
];

struct Ctx<'a> {
    errors: &'a mut Vec<ConfigError>,
    warnings: &'a mut Vec<Warning>,
}

impl Ctx<'_> {
    fn err<T: Default>(
        &mut self,
        r: &Located<super::Resource<T>>,
        kind: Kind,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError::resource(
            &r.source,
            kind,
            r.resource.name(),
            field,
            message,
        ));
    }

    fn warn(&mut self, source: &Source, kind: Kind, name: &str, field: &str, reason: &str) {
        self.warnings.push(Warning {
            source: source.clone(),
            kind,
            name: name.to_string(),
            field: field.to_string(),
            reason: reason.to_string(),
        });
    }
}

pub(crate) fn validate(
    config: &Config,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<Warning>,
) {
    let mut cx = Ctx { errors, warnings };
    nodes(config, &mut cx);
    bgp_configurations(config, &mut cx);
    bgp_peers(config, &mut cx);
    bgp_filters(config, &mut cx);
    ip_pools(config, &mut cx);
}

fn nodes(config: &Config, cx: &mut Ctx) {
    // Two nodes with one address would each skip the other as "ourselves".
    let mut owners: BTreeMap<IpAddr, &Located<super::Node>> = BTreeMap::new();
    for node in config.nodes.values() {
        let Some(bgp) = &node.resource.spec.bgp else {
            continue;
        };
        if bgp.ipv4_address.is_none() && bgp.ipv6_address.is_none() {
            cx.err(
                node,
                Kind::Node,
                "spec.bgp",
                "needs ipv4Address or ipv6Address (tortie does not autodetect node addresses)",
            );
            continue;
        }
        let addrs = [
            (
                "spec.bgp.ipv4Address",
                bgp.ipv4_address.map(|a| IpAddr::V4(a.0.addr())),
            ),
            (
                "spec.bgp.ipv6Address",
                bgp.ipv6_address.map(|a| IpAddr::V6(a.0.addr())),
            ),
        ];
        for (field, addr) in addrs {
            let Some(addr) = addr else { continue };
            if let Some(first) = owners.get(&addr) {
                cx.err(
                    node,
                    Kind::Node,
                    field,
                    format!(
                        "{addr} is also the address of Node {:?} ({})",
                        first.resource.name(),
                        first.source
                    ),
                );
            } else {
                owners.insert(addr, node);
            }
        }
    }
}

fn communities(
    cx: &mut Ctx,
    r: &Located<super::BgpConfiguration>,
    defined: &[NamedCommunity],
    adverts: &[PrefixAdvertisement],
) {
    let mut names = BTreeMap::new();
    for (i, c) in defined.iter().enumerate() {
        if c.name.is_empty() {
            cx.err(
                r,
                Kind::BgpConfiguration,
                format!("spec.communities[{i}].name"),
                "must not be empty",
            );
        } else if let Some(first) = names.insert(c.name.as_str(), i) {
            cx.err(
                r,
                Kind::BgpConfiguration,
                format!("spec.communities[{i}].name"),
                format!(
                    "{:?} is already defined by spec.communities[{first}]",
                    c.name
                ),
            );
        }
    }
    for (i, adv) in adverts.iter().enumerate() {
        for (j, c) in adv.communities.iter().enumerate() {
            if Community::parse(c).is_err() && !names.contains_key(c.as_str()) {
                cx.err(
                    r,
                    Kind::BgpConfiguration,
                    format!("spec.prefixAdvertisements[{i}].communities[{j}]"),
                    format!(
                        "{c:?} is neither a community value (aa:nn or aa:nn:mm) nor a name \
                         defined in spec.communities"
                    ),
                );
            }
        }
    }
}

fn bgp_configurations(config: &Config, cx: &mut Ctx) {
    for r in config.bgp_configurations.values() {
        let name = r.resource.name();
        let spec = &r.resource.spec;
        if name != "default" {
            match name.strip_prefix("node.") {
                Some(node) if check_name(node).is_ok() => {}
                _ => {
                    cx.err(
                        r,
                        Kind::BgpConfiguration,
                        "metadata.name",
                        format!(
                            "invalid value: {name:?}, expected \"default\" or \"node.<nodename>\""
                        ),
                    );
                    continue;
                }
            }
        }
        communities(cx, r, &spec.communities, &spec.prefix_advertisements);
        for (field, list) in [("spec.ignoredInterfaces", &spec.ignored_interfaces)] {
            for (i, s) in list.iter().enumerate() {
                if s.is_empty() {
                    cx.err(
                        r,
                        Kind::BgpConfiguration,
                        format!("{field}[{i}]"),
                        "must not be empty",
                    );
                }
            }
        }
        if name != "default" {
            // Calico: "Only prefixAdvertisements, listenPort, and logSeverityScreen can be
            // overridden this way"; the rest is ignored on a node-specific resource.
            let set = [
                ("spec.asNumber", spec.as_number.is_some()),
                (
                    "spec.nodeToNodeMeshEnabled",
                    spec.node_to_node_mesh_enabled.is_some(),
                ),
                (
                    "spec.serviceClusterIPs",
                    !spec.service_cluster_ips.is_empty(),
                ),
                (
                    "spec.serviceExternalIPs",
                    !spec.service_external_ips.is_empty(),
                ),
                (
                    "spec.serviceLoadBalancerIPs",
                    !spec.service_load_balancer_ips.is_empty(),
                ),
                ("spec.bindMode", spec.bind_mode.is_some()),
                ("spec.communities", !spec.communities.is_empty()),
                ("spec.nodeMeshPassword", spec.node_mesh_password.is_some()),
                (
                    "spec.nodeMeshMaxRestartTime",
                    spec.node_mesh_max_restart_time.is_some(),
                ),
                (
                    "spec.ignoredInterfaces",
                    !spec.ignored_interfaces.is_empty(),
                ),
                (
                    "spec.localWorkloadPeeringIPV4",
                    spec.local_workload_peering_ipv4.is_some(),
                ),
                (
                    "spec.localWorkloadPeeringIPV6",
                    spec.local_workload_peering_ipv6.is_some(),
                ),
            ];
            for (field, present) in set {
                if present {
                    cx.warn(
                        &r.source,
                        Kind::BgpConfiguration,
                        name,
                        field,
                        "ignored on a node-specific BGPConfiguration (Calico applies it only \
                         from \"default\"; per node it honours listenPort, logSeverityScreen \
                         and prefixAdvertisements)",
                    );
                }
            }
        }
        if let Some(pw) = &spec.node_mesh_password {
            if let Err((part, e)) = super::secrets::check_ref(&pw.secret_key_ref) {
                cx.err(
                    r,
                    Kind::BgpConfiguration,
                    format!("spec.nodeMeshPassword.secretKeyRef.{part}"),
                    e,
                );
            }
        }
    }
}

fn bgp_peers(config: &Config, cx: &mut Ctx) {
    for r in config.bgp_peers.values() {
        let k = Kind::BgpPeer;
        let s = &r.resource.spec;
        if let Some(node) = s.node() {
            if let Err(e) = check_name(node) {
                cx.err(r, k, "spec.node", e);
            }
        }
        if s.node().is_some() && s.node_selector().is_some() {
            cx.err(
                r,
                k,
                "spec.nodeSelector",
                "cannot be set together with spec.node",
            );
        }
        if s.peer_ip.is_some() && s.peer_selector().is_some() {
            cx.err(
                r,
                k,
                "spec.peerSelector",
                "cannot be set together with spec.peerIP",
            );
        }
        if s.as_number.is_some() && s.peer_selector().is_some() {
            cx.err(
                r,
                k,
                "spec.asNumber",
                "must be empty with spec.peerSelector (the selected nodes' own AS numbers are used)",
            );
        }
        if s.local_workload_selector().is_some()
            && (s.peer_ip.is_some() || s.peer_selector().is_some())
        {
            cx.err(
                r,
                k,
                "spec.localWorkloadSelector",
                "cannot be set together with spec.peerIP or spec.peerSelector",
            );
        }
        if s.peer_ip.is_none()
            && s.peer_selector().is_none()
            && s.local_workload_selector().is_none()
        {
            cx.err(r, k, "spec", "needs spec.peerIP or spec.peerSelector");
        }
        if s.peer_ip.is_some() && s.as_number.is_none() && s.peer_selector().is_none() {
            cx.err(
                r,
                k,
                "spec.asNumber",
                "required with spec.peerIP (the peer's AS number)",
            );
        }
        if let Some(pw) = &s.password {
            if let Err((part, e)) = super::secrets::check_ref(&pw.secret_key_ref) {
                cx.err(r, k, format!("spec.password.secretKeyRef.{part}"), e);
            }
        }
        for (i, f) in s.filters.iter().enumerate() {
            if !config.bgp_filters.contains_key(f) {
                cx.err(
                    r,
                    k,
                    format!("spec.filters[{i}]"),
                    format!("no BGPFilter named {f:?}"),
                );
            }
        }
    }
}

fn filter_rule(
    cx: &mut Ctx,
    r: &Located<super::BgpFilter>,
    field: &str,
    v6: bool,
    rule: &FilterRule,
) {
    let k = Kind::BgpFilter;
    let (family, max) = if v6 { ("IPv6", 128) } else { ("IPv4", 32) };
    if let Some(cidr) = rule.cidr {
        if matches!(cidr.0, IpNet::V6(_)) != v6 {
            cx.err(
                r,
                k,
                format!("{field}.cidr"),
                format!("{cidr} is not an {family} CIDR"),
            );
        }
    }
    match (rule.cidr.is_some(), rule.match_operator.is_some()) {
        (true, false) => cx.err(r, k, format!("{field}.matchOperator"), "required with cidr"),
        (false, true) => cx.err(r, k, format!("{field}.cidr"), "required with matchOperator"),
        _ => {}
    }
    if let Some(pl) = rule.prefix_length {
        if rule.cidr.is_none() {
            cx.err(r, k, format!("{field}.prefixLength"), "needs cidr");
        }
        if let Some(min) = pl.min {
            if min.0 > max {
                cx.err(
                    r,
                    k,
                    format!("{field}.prefixLength.min"),
                    format!("must be 0 to {max}"),
                );
            } else if let Some(cidr) = rule.cidr {
                if min.0 < cidr.0.prefix_len() {
                    cx.err(
                        r,
                        k,
                        format!("{field}.prefixLength.min"),
                        format!(
                            "{} is shorter than the cidr's own /{}",
                            min.0,
                            cidr.0.prefix_len()
                        ),
                    );
                }
            }
        }
        if let Some(mx) = pl.max {
            if mx.0 == 0 || mx.0 > max {
                cx.err(
                    r,
                    k,
                    format!("{field}.prefixLength.max"),
                    format!("must be 1 to {max}"),
                );
            }
        }
        if let (Some(min), Some(mx)) = (pl.min, pl.max) {
            if min.0 > mx.0 {
                cx.err(
                    r,
                    k,
                    format!("{field}.prefixLength"),
                    format!("min {} is greater than max {}", min.0, mx.0),
                );
            }
        }
    }
    if rule.interface.as_deref() == Some("") {
        cx.err(r, k, format!("{field}.interface"), "must not be empty");
    }
    if !rule.operations.is_empty() && rule.action != FilterAction::Accept {
        cx.err(
            r,
            k,
            format!("{field}.operations"),
            "only allowed when action is Accept",
        );
    }
    if rule.operations.len() > 10 {
        cx.err(r, k, format!("{field}.operations"), "at most 10 operations");
    }
    for (i, op) in rule.operations.iter().enumerate() {
        let set = [
            op.add_community.is_some(),
            op.prepend_as_path.is_some(),
            op.set_priority.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            cx.err(
                r,
                k,
                format!("{field}.operations[{i}]"),
                "exactly one of addCommunity, prependASPath, setPriority must be set",
            );
        }
        if let Some(p) = &op.prepend_as_path {
            if p.prefix.is_empty() || p.prefix.len() > 10 {
                cx.err(
                    r,
                    k,
                    format!("{field}.operations[{i}].prependASPath.prefix"),
                    "needs 1 to 10 AS numbers",
                );
            }
        }
    }
}

fn bgp_filters(config: &Config, cx: &mut Ctx) {
    for r in config.bgp_filters.values() {
        let s = &r.resource.spec;
        for (name, rules, v6) in [
            ("spec.exportV4", &s.export_v4, false),
            ("spec.importV4", &s.import_v4, false),
            ("spec.exportV6", &s.export_v6, true),
            ("spec.importV6", &s.import_v6, true),
        ] {
            for (i, rule) in rules.iter().enumerate() {
                filter_rule(cx, r, &format!("{name}[{i}]"), v6, rule);
            }
        }
    }
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn ip_pools(config: &Config, cx: &mut Ctx) {
    let k = Kind::IpPool;
    let link_local: [IpNet; 2] = [
        "169.254.0.0/16".parse().expect("net"),
        "fe80::/10".parse().expect("net"),
    ];
    let mut seen: Vec<(&Located<super::IpPool>, IpNet)> = Vec::new();
    for r in config.ip_pools.values() {
        let s = &r.resource.spec;
        let Some(cidr) = s.cidr else {
            cx.err(r, k, "spec.cidr", "missing: every IPPool needs a cidr");
            continue;
        };
        let net = cidr.0;
        let v6 = matches!(net, IpNet::V6(_));
        if let Some(ll) = link_local.iter().find(|ll| overlaps(**ll, net)) {
            cx.err(
                r,
                k,
                "spec.cidr",
                format!("{net} overlaps the link-local range {ll}"),
            );
        }
        let (lo, hi) = if v6 { (116, 128) } else { (20, 32) };
        if let Some(b) = s.block_size {
            if !(lo..=hi).contains(&b.0) {
                cx.err(
                    r,
                    k,
                    "spec.blockSize",
                    format!(
                        "{} is out of range for an {} pool ({lo} to {hi})",
                        b.0,
                        if v6 { "IPv6" } else { "IPv4" }
                    ),
                );
            }
        }
        let block = s.block_size_or_default().expect("cidr is set");
        if block < net.prefix_len() {
            cx.err(
                r,
                k,
                "spec.cidr",
                format!(
                    "{net} is smaller than one /{block} block (the pool must hold at least one)"
                ),
            );
        }
        let (ipip, vxlan) = (s.ipip_mode(), s.vxlan_mode());
        if ipip != EncapMode::Never && vxlan != EncapMode::Never {
            cx.err(
                r,
                k,
                "spec.vxlanMode",
                format!("cannot be set together with spec.ipipMode (ipipMode {ipip:?}, vxlanMode {vxlan:?}); choose one encapsulation"),
            );
        }
        if v6 && ipip != EncapMode::Never {
            cx.err(
                r,
                k,
                "spec.ipipMode",
                "IPIP is IPv4 only; use vxlanMode for an IPv6 pool",
            );
        }
        if s.allowed_uses.as_ref().is_some_and(Vec::is_empty) {
            cx.err(
                r,
                k,
                "spec.allowedUses",
                "must not be empty (omit it for Workload and Tunnel)",
            );
        }
        for (other, other_net) in &seen {
            if overlaps(*other_net, net) {
                cx.err(
                    r,
                    k,
                    "spec.cidr",
                    format!(
                        "{net} overlaps IPPool {:?} ({other_net}, {})",
                        other.resource.name(),
                        other.source
                    ),
                );
            }
        }
        seen.push((r, net));
    }
}

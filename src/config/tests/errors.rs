//! Each kind of bad input is refused with an error naming file, document, resource and field.

use super::*;

/// Checks the parts every error must name.
fn names(e: &ConfigError, file: &str, document: usize, kind: &str, name: &str, field: &str) {
    assert!(e.file.ends_with(file), "{e}");
    assert_eq!(e.document, Some(document), "{e}");
    assert_eq!(e.kind.as_deref(), Some(kind), "{e}");
    assert_eq!(e.name.as_deref(), Some(name), "{e}");
    assert_eq!(e.field.as_deref(), Some(field), "{e}");
    let shown = e.to_string();
    let head = format!("{file}, document {document} ({kind} {name:?}): {field}: ");
    assert!(shown.contains(&head), "{shown}\n  does not contain {head}");
}

#[test]
fn unknown_field_is_refused() {
    let e = only_error("bad-unknown-field.yaml");
    names(
        &e,
        "bad-unknown-field.yaml",
        2,
        "BGPPeer",
        "tor-a",
        "spec.holdTime",
    );
    assert!(
        e.message
            .starts_with("unknown field `holdTime`, expected one of `node`"),
        "{e}"
    );
    assert_eq!(e.line, Some((16, 3)));
}

#[test]
fn bad_as_number_is_refused() {
    let e = only_error("bad-as-number.yaml");
    names(
        &e,
        "bad-as-number.yaml",
        2,
        "BGPPeer",
        "tor-a",
        "spec.asNumber",
    );
    assert_eq!(
        e.message,
        "invalid value: \"abc\", expected a 32-bit AS number"
    );
    assert_eq!(e.line, Some((15, 13)));
}

#[test]
fn as_number_out_of_range_is_refused() {
    for bad in ["4294967296", "0", "\"65536.1\"", "-5"] {
        let e = yaml_err(&format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec: {{asNumber: {bad}}}\n"
        ));
        assert_eq!(e.field.as_deref(), Some("spec.asNumber"), "{bad}: {e}");
        assert!(
            e.message.contains("expected a 32-bit AS number"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn unquoted_dotted_as_number_asks_for_quotes() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n}\nspec: {bgp: {asNumber: 1.10, ipv4Address: 198.18.1.1/24}}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.bgp.asNumber"));
    assert!(e.message.contains("must be quoted"), "{e}");
}

#[test]
fn bad_cidr_is_refused() {
    let e = only_error("bad-cidr.yaml");
    names(&e, "bad-cidr.yaml", 2, "IPPool", "pool-a", "spec.cidr");
    assert!(
        e.message
            .starts_with("invalid value: \"198.19.0.0/33\", expected a CIDR"),
        "{e}"
    );
}

#[test]
fn cidr_with_host_bits_is_refused() {
    let e = only_error("bad-host-bits.yaml");
    names(&e, "bad-host-bits.yaml", 2, "IPPool", "pool-a", "spec.cidr");
    assert!(
        e.message
            .contains("host bits are set; did you mean 198.19.0.0/16?"),
        "{e}"
    );
}

#[test]
fn overlapping_pools_name_both() {
    let e = only_error("bad-overlapping-pools.yaml");
    names(
        &e,
        "bad-overlapping-pools.yaml",
        2,
        "IPPool",
        "pool-b",
        "spec.cidr",
    );
    assert!(
        e.message
            .contains("198.19.64.0/18 overlaps IPPool \"pool-a\" (198.19.0.0/16"),
        "{e}"
    );
    assert!(
        e.message
            .contains("bad-overlapping-pools.yaml, document 1)"),
        "{e}"
    );
}

#[test]
fn ipip_and_vxlan_together_are_refused() {
    let e = only_error("bad-ipip-and-vxlan.yaml");
    names(
        &e,
        "bad-ipip-and-vxlan.yaml",
        2,
        "IPPool",
        "pool-a",
        "spec.vxlanMode",
    );
    assert!(
        e.message
            .contains("cannot be set together with spec.ipipMode"),
        "{e}"
    );
}

#[test]
fn one_encapsulation_with_the_other_never_is_fine() {
    yaml_ok(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 198.19.0.0/16, ipipMode: Never, vxlanMode: Always}\n",
    );
}

#[test]
fn block_size_out_of_range_is_refused() {
    let e = only_error("bad-block-size.yaml");
    names(
        &e,
        "bad-block-size.yaml",
        2,
        "IPPool",
        "pool-a",
        "spec.blockSize",
    );
    assert!(
        e.message
            .contains("19 is out of range for an IPv4 pool (20 to 32)"),
        "{e}"
    );
}

#[test]
fn ipv6_block_size_range_is_116_to_128() {
    let pool = |b: u8| {
        yaml(&format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {{cidr: 'fd00:19::/48', blockSize: {b}}}\n"
        ))
    };
    assert!(pool(116).is_ok() && pool(128).is_ok());
    let e = pool(115).unwrap_err();
    assert!(
        e.to_string()
            .contains("115 is out of range for an IPv6 pool (116 to 128)"),
        "{e}"
    );
}

#[test]
fn pool_smaller_than_a_block_is_refused() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 198.19.0.0/28}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.cidr"));
    assert!(e.message.contains("smaller than one /26 block"), "{e}");
}

#[test]
fn bad_selector_reports_position() {
    let e = only_error("bad-selector.yaml");
    names(
        &e,
        "bad-selector.yaml",
        2,
        "BGPPeer",
        "rr-clients",
        "spec.nodeSelector",
    );
    assert_eq!(
        e.message,
        "invalid selector \"rack == 'r1' && has(route-reflector\": expected `)` to close has( at character 36"
    );
}

#[test]
fn bad_peer_ip_is_refused() {
    let e = only_error("bad-peer-ip.yaml");
    names(&e, "bad-peer-ip.yaml", 2, "BGPPeer", "tor-a", "spec.peerIP");
    assert!(
        e.message
            .contains("expected an IP address, IPv4:port or [IPv6]:port"),
        "{e}"
    );
    assert!(
        e.message.contains("port \"70000\" is not 1 to 65535"),
        "{e}"
    );
}

#[test]
fn duplicate_names_are_refused() {
    let e = only_error("bad-duplicate-names.yaml");
    names(
        &e,
        "bad-duplicate-names.yaml",
        2,
        "BGPPeer",
        "tor-a",
        "metadata.name",
    );
    assert!(
        e.message
            .contains("duplicate BGPPeer \"tor-a\": already defined at"),
        "{e}"
    );
    assert!(
        e.message.ends_with("bad-duplicate-names.yaml, document 1"),
        "{e}"
    );
}

#[test]
fn same_name_in_different_kinds_is_fine() {
    yaml_ok(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: x}\n---\napiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: x}\n",
    );
}

#[test]
fn wrong_api_version_is_refused() {
    let e = only_error("bad-api-version.yaml");
    names(
        &e,
        "bad-api-version.yaml",
        2,
        "BGPPeer",
        "tor-a",
        "apiVersion",
    );
    assert!(
        e.message.starts_with(
            "invalid value: \"crd.projectcalico.org/v1\", expected projectcalico.org/v3"
        ),
        "{e}"
    );
}

#[test]
fn errors_from_several_documents_are_all_reported() {
    let errors = yaml(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: a}\nspec: {peerIP: nope, asNumber: 1}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 198.19.0.0/16, blockSize: 40}\n",
    )
    .unwrap_err();
    let docs: Vec<_> = errors.iter().map(|e| e.document).collect();
    assert_eq!(docs, [Some(1), Some(2)], "{errors}");
}

#[test]
fn yaml_syntax_error_names_line() {
    let e = yaml_err("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: [\n");
    assert_eq!(e.document, Some(1));
    assert!(e.message.starts_with("not valid YAML"), "{e}");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn missing_file_is_reported() {
    let e = Config::load(&[fixture("no-such-file.yaml")]).unwrap_err();
    assert!(
        e.to_string().contains("no-such-file.yaml: cannot read:"),
        "{e}"
    );
}

#[test]
fn unknown_kind_is_refused() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\n",
    );
    assert_eq!(e.field.as_deref(), Some("kind"));
    assert!(
        e.message
            .starts_with("unsupported kind \"FelixConfiguration\""),
        "{e}"
    );
}

#[test]
fn missing_name_is_refused() {
    let e = yaml_err("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {labels: {a: b}}\n");
    assert_eq!(e.field.as_deref(), Some("metadata"));
    assert_eq!(e.message, "missing field `name`");
}

#[test]
fn bad_name_characters_are_refused() {
    let e = yaml_err("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: 'a b'}\n");
    assert_eq!(e.field.as_deref(), Some("metadata.name"));
}

#[test]
fn list_item_errors_name_the_item() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n  - {apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: ok}, spec: {cidr: 198.19.0.0/16}}\n  - {apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: bad}, spec: {cidr: 198.20.0.0/16, ipipMode: Sometimes}}\n",
    );
    assert_eq!((e.document, e.item), (Some(1), Some(2)));
    assert_eq!(e.field.as_deref(), Some("spec.ipipMode"));
    assert!(e.to_string().starts_with("inline.yaml, document 1, item 2 (IPPool \"bad\"): spec.ipipMode: unknown variant `Sometimes`"), "{e}");
}

#[test]
fn typed_list_holds_only_its_kind() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n  - {apiVersion: projectcalico.org/v3, kind: Node, metadata: {name: n}}\n",
    );
    assert!(
        e.message
            .contains("a IPPoolList holds only IPPool resources"),
        "{e}"
    );
}

#[test]
fn enum_values_are_checked() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 198.18.1.1, asNumber: 1, sourceAddress: NodeIP}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.sourceAddress"));
    assert!(e.message.contains("expected `UseNodeIP` or `None`"), "{e}");
}

#[test]
fn ttl_security_above_255_is_refused() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 198.18.1.1, asNumber: 1, ttlSecurity: 256}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.ttlSecurity"));
    assert!(e.message.contains("expected a hop count 0 to 255"), "{e}");
}

#[test]
fn listen_port_zero_is_refused() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {listenPort: 0}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.listenPort"));
    assert_eq!(
        e.message,
        "invalid value: 0, expected a port number 1 to 65535"
    );
}

#[test]
fn bad_duration_is_refused() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 198.18.1.1, asNumber: 1, maxRestartTime: 120}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.maxRestartTime"));
    assert!(e.message.contains("a unit is required"), "{e}");
}

#[test]
fn node_address_needs_prefix_length() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n}\nspec: {bgp: {ipv4Address: 198.18.1.10}}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.bgp.ipv4Address"));
    assert!(e.message.contains("with prefix length"), "{e}");
}

#[test]
fn node_address_family_is_checked() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n}\nspec: {bgp: {ipv4Address: 'fd00::1/64'}}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.bgp.ipv4Address"));
}

#[test]
fn two_nodes_with_one_address_are_refused() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: a}\nspec: {bgp: {ipv4Address: 198.18.1.10/24}}\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: b}\nspec: {bgp: {ipv4Address: 198.18.1.10/24}}\n",
    );
    assert_eq!(
        (e.name.as_deref(), e.field.as_deref()),
        (Some("b"), Some("spec.bgp.ipv4Address"))
    );
    assert!(e.message.contains("also the address of Node \"a\""), "{e}");
}

#[test]
fn node_with_bgp_needs_an_address() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n}\nspec: {bgp: {asNumber: 65000}}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.bgp"));
}

fn peer(spec: &str) -> ConfigError {
    yaml_err(&format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: p}}\nspec: {spec}\n"
    ))
}

#[test]
fn peer_needs_an_address_or_selector() {
    let e = peer("{asNumber: 65001}");
    assert_eq!(e.field.as_deref(), Some("spec"));
    assert_eq!(e.message, "needs spec.peerIP or spec.peerSelector");
}

#[test]
fn peer_ip_needs_as_number() {
    assert_eq!(
        peer("{peerIP: 198.18.1.1}").field.as_deref(),
        Some("spec.asNumber")
    );
}

#[test]
fn node_and_node_selector_are_exclusive() {
    let e = peer("{node: a, nodeSelector: all(), peerIP: 198.18.1.1, asNumber: 1}");
    assert_eq!(e.field.as_deref(), Some("spec.nodeSelector"));
}

#[test]
fn peer_ip_and_peer_selector_are_exclusive() {
    let e = peer("{peerIP: 198.18.1.1, peerSelector: all()}");
    assert_eq!(e.field.as_deref(), Some("spec.peerSelector"));
}

#[test]
fn peer_selector_takes_no_as_number() {
    let e = peer("{peerSelector: all(), asNumber: 65001}");
    assert_eq!(e.field.as_deref(), Some("spec.asNumber"));
}

#[test]
fn peer_filter_must_exist() {
    let e = peer("{peerIP: 198.18.1.1, asNumber: 1, filters: [nope]}");
    assert_eq!(e.field.as_deref(), Some("spec.filters[0]"));
    assert_eq!(e.message, "no BGPFilter named \"nope\"");
}

#[test]
fn secret_ref_cannot_leave_the_secrets_dir() {
    let e = peer("{peerIP: 198.18.1.1, asNumber: 1, password: {secretKeyRef: {name: .., key: x}}}");
    assert_eq!(e.field.as_deref(), Some("spec.password.secretKeyRef.name"));
    let e =
        peer("{peerIP: 198.18.1.1, asNumber: 1, password: {secretKeyRef: {name: s, key: a/b}}}");
    assert_eq!(e.field.as_deref(), Some("spec.password.secretKeyRef.key"));
}

#[test]
fn bgp_configuration_name_is_default_or_node() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: global}\n",
    );
    assert_eq!(e.field.as_deref(), Some("metadata.name"));
    assert!(
        e.message
            .contains("expected \"default\" or \"node.<nodename>\""),
        "{e}"
    );
}

#[test]
fn prefix_advertisement_community_must_be_defined() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  prefixAdvertisements: [{cidr: 198.19.0.0/16, communities: [nope]}]\n",
    );
    assert_eq!(
        e.field.as_deref(),
        Some("spec.prefixAdvertisements[0].communities[0]")
    );
}

#[test]
fn bad_community_value_is_refused() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {communities: [{name: c, value: '70000:1'}]}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.communities[0].value"));
}

fn filter(rules: &str) -> ConfigError {
    yaml_err(&format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: f}}\nspec: {rules}\n"
    ))
}

#[test]
fn filter_cidr_family_must_match_the_list() {
    let e = filter("{importV4: [{action: Accept, matchOperator: In, cidr: 'fd00::/64'}]}");
    assert_eq!(e.field.as_deref(), Some("spec.importV4[0].cidr"));
    assert!(e.message.contains("is not an IPv4 CIDR"), "{e}");
}

#[test]
fn filter_cidr_needs_match_operator() {
    let e = filter("{exportV4: [{action: Accept, cidr: 198.19.0.0/16}]}");
    assert_eq!(e.field.as_deref(), Some("spec.exportV4[0].matchOperator"));
}

#[test]
fn filter_operations_only_on_accept() {
    let e = filter("{exportV4: [{action: Reject, operations: [{setPriority: {value: 5}}]}]}");
    assert_eq!(e.field.as_deref(), Some("spec.exportV4[0].operations"));
}

#[test]
fn filter_operation_sets_exactly_one_field() {
    let e = filter(
        "{exportV4: [{action: Accept, operations: [{setPriority: {value: 5}, addCommunity: {value: '1:2'}}]}]}",
    );
    assert_eq!(e.field.as_deref(), Some("spec.exportV4[0].operations[0]"));
}

#[test]
fn filter_prefix_length_bounds() {
    let e = filter(
        "{importV6: [{action: Accept, matchOperator: In, cidr: 'fd00::/64', prefixLength: {min: 80, max: 70}}]}",
    );
    assert_eq!(e.field.as_deref(), Some("spec.importV6[0].prefixLength"));
    let e = filter(
        "{importV4: [{action: Accept, matchOperator: In, cidr: 198.19.0.0/16, prefixLength: {max: 33}}]}",
    );
    assert_eq!(
        e.field.as_deref(),
        Some("spec.importV4[0].prefixLength.max")
    );
}

#[test]
fn filter_rule_needs_an_action() {
    let e = filter("{exportV4: [{matchOperator: In, cidr: 198.19.0.0/16}]}");
    assert_eq!(e.field.as_deref(), Some("spec.exportV4[0]"));
    assert_eq!(e.message, "missing field `action`");
}

#[test]
fn ipv6_pool_cannot_use_ipip() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 'fd00:19::/48', ipipMode: Always}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.ipipMode"));
}

#[test]
fn pool_in_link_local_range_is_refused() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 169.254.0.0/16}\n",
    );
    assert!(e.message.contains("link-local"), "{e}");
}

#[test]
fn pool_needs_a_cidr() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {natOutgoing: true}\n",
    );
    assert_eq!(e.field.as_deref(), Some("spec.cidr"));
}

#[test]
fn status_is_only_for_nodes() {
    let e = yaml_err(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 198.19.0.0/16}\nstatus: {}\n",
    );
    assert_eq!(e.field.as_deref(), Some("status"));
}

#[test]
fn unquoted_selector_starting_with_bang_asks_for_quotes() {
    let e = peer("\n  nodeSelector: !has(route-reflector)\n  peerSelector: has(route-reflector)");
    assert_eq!(e.field.as_deref(), Some("spec.nodeSelector"));
    assert_eq!(
        e.message,
        "YAML read `!has(route-reflector)` as a tag, not as text: quote a value that starts \
         with '!' (e.g. \"!has(route-reflector)\")"
    );
}

//! The pure IPAM model: block arithmetic, pools and their validation, affinity states, FIFO
//! reuse inside a block, the document formats and their defensive decoding.

use ipnet::IpNet;
use proptest::prelude::*;
use std::net::IpAddr;
use tortie_ipam::block::{block_cidr_from_key, block_key};
use tortie_ipam::check::check_docs;
use tortie_ipam::handle::{Handle, check_handle, handle_key};
use tortie_ipam::pool::{eligible, validate_pools};
use tortie_ipam::{
    Affinity, AffinityState, AllocAttrs, AllowedUse, Block, EncapMode, Family, IpamError, Kind,
    Pool, PoolSpec, TunnelType,
};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn attrs(handle: &str, pod: &str) -> AllocAttrs {
    AllocAttrs {
        handle: handle.into(),
        pod: Some(pod.into()),
        namespace: Some("default".into()),
        node: "node-1".into(),
        kind: Kind::Workload,
    }
}

fn confirmed(node: &str) -> Option<Affinity> {
    Some(Affinity {
        node: node.into(),
        state: AffinityState::Confirmed,
        claimed: 1_767_225_600,
    })
}

// ---- block arithmetic

#[test]
fn v4_ordinals_map_to_addresses_and_back_within_the_block() {
    let b = Block::new(net("198.19.0.64/26"), None, 0);
    assert_eq!(b.size(), 64);
    assert_eq!(b.addr(0), ip("198.19.0.64"));
    assert_eq!(b.addr(63), ip("198.19.0.127"));
    assert_eq!(b.ordinal(&ip("198.19.0.64")), Some(0));
    assert_eq!(b.ordinal(&ip("198.19.0.127")), Some(63));
    assert_eq!(b.ordinal(&ip("198.19.0.63")), None, "just below the block");
    assert_eq!(b.ordinal(&ip("198.19.0.128")), None, "just above the block");
    assert_eq!(b.ordinal(&ip("fd00::1")), None, "other family");
    for o in 0..64 {
        assert_eq!(b.ordinal(&b.addr(o)), Some(o));
    }
}

#[test]
fn v6_ordinals_map_to_addresses_and_back_within_the_block() {
    let b = Block::new(net("fd00:19::40/122"), None, 0);
    assert_eq!(b.size(), 64);
    assert_eq!(b.addr(0), ip("fd00:19::40"));
    assert_eq!(b.addr(63), ip("fd00:19::7f"));
    assert_eq!(b.ordinal(&ip("fd00:19::3f")), None);
    assert_eq!(b.ordinal(&ip("fd00:19::80")), None);
    assert_eq!(b.ordinal(&ip("198.19.0.64")), None);
    for o in 0..64 {
        assert_eq!(b.ordinal(&b.addr(o)), Some(o));
    }
}

#[test]
fn block_sizes_at_the_ends_of_the_allowed_ranges() {
    assert_eq!(Block::new(net("198.19.0.0/20"), None, 0).size(), 4096);
    let one = Block::new(net("198.19.0.7/32"), None, 0);
    assert_eq!((one.size(), one.addr(0)), (1, ip("198.19.0.7")));
    assert_eq!(Block::new(net("fd00::/116"), None, 0).size(), 4096);
    assert_eq!(Block::new(net("fd00::9/128"), None, 0).size(), 1);
    let last = Block::new(net("255.255.255.192/26"), None, 0);
    assert_eq!(
        last.addr(63),
        ip("255.255.255.255"),
        "no overflow at the top of the space"
    );
    let last6 = Block::new(net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc0/122"), None, 0);
    assert_eq!(
        last6.addr(63),
        ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    );
}

#[test]
fn pools_enumerate_their_blocks_and_find_the_block_of_an_address() {
    let p = Pool::new("p", net("198.19.0.0/16"));
    assert_eq!(p.block_size, 26);
    assert_eq!(p.block_count(), 1024);
    assert_eq!(p.nth_block(0), net("198.19.0.0/26"));
    assert_eq!(p.nth_block(1), net("198.19.0.64/26"));
    assert_eq!(p.nth_block(1023), net("198.19.255.192/26"));
    assert_eq!(p.block_for(&ip("198.19.3.70")), Some(net("198.19.3.64/26")));
    assert_eq!(p.block_for(&ip("198.20.0.1")), None);
    assert!(p.holds_block(&net("198.19.3.64/26")));
    assert!(
        !p.holds_block(&net("198.19.3.64/27")),
        "a block has the pool's size"
    );

    let p6 = Pool::new("p6", net("fd00:19::/48"));
    assert_eq!(p6.block_size, 122);
    assert_eq!(p6.block_count(), 1u128 << 74);
    assert_eq!(p6.nth_block(1), net("fd00:19::40/122"));
    assert_eq!(
        p6.nth_block((1u128 << 74) - 1),
        net("fd00:19:0:ffff:ffff:ffff:ffff:ffc0/122")
    );
    assert_eq!(
        p6.block_for(&ip("fd00:19::99")),
        Some(net("fd00:19::80/122"))
    );
}

#[test]
fn block_keys_write_the_cidr_with_a_dash() {
    assert_eq!(
        block_key(&net("198.19.0.64/26")),
        "/tortie/v1/ipam/blocks/198.19.0.64-26"
    );
    assert_eq!(
        block_key(&net("fd00:19::40/122")),
        "/tortie/v1/ipam/blocks/fd00:19::40-122"
    );
    for n in ["198.19.0.64/26", "fd00:19::40/122", "10.0.0.0/20"] {
        assert_eq!(block_cidr_from_key(&block_key(&net(n))), Some(net(n)));
    }
    assert_eq!(
        block_cidr_from_key("/tortie/v1/ipam/blocks/198.19.0.65-26"),
        None,
        "host bits"
    );
    assert_eq!(block_cidr_from_key("/tortie/v1/ipam/handles/x"), None);
    assert_eq!(
        handle_key("ipip-tunnel-addr-n1"),
        "/tortie/v1/ipam/handles/ipip-tunnel-addr-n1"
    );
}

// ---- pools

fn spec(cidr: &str) -> PoolSpec {
    PoolSpec {
        cidr: cidr.into(),
        ..PoolSpec::default()
    }
}

fn field_of(r: Result<Pool, tortie_ipam::PoolError>) -> &'static str {
    r.expect_err("refused").field
}

#[test]
fn pool_defaults_follow_calico() {
    let p = Pool::from_spec("p", &spec("198.19.0.0/16")).unwrap();
    assert_eq!(p.block_size, 26);
    assert_eq!(
        (p.ipip_mode, p.vxlan_mode),
        (EncapMode::Never, EncapMode::Never)
    );
    assert_eq!(p.node_selector, "all()");
    assert_eq!(
        p.allowed_uses,
        vec![AllowedUse::Workload, AllowedUse::Tunnel]
    );
    assert_eq!(
        Pool::from_spec("p6", &spec("fd00:19::/48"))
            .unwrap()
            .block_size,
        122
    );
}

#[test]
fn pool_spec_reads_calico_field_names() {
    let s: PoolSpec = serde_json::from_str(
        r#"{"cidr":"198.19.0.0/16","blockSize":24,"ipipMode":"CrossSubnet","natOutgoing":true,
            "disableBGPExport":true,"nodeSelector":"rack == 'a'","allowedUses":["Tunnel"]}"#,
    )
    .unwrap();
    let p = Pool::from_spec("p", &s).unwrap();
    assert_eq!(p.block_size, 24);
    assert_eq!(p.ipip_mode, EncapMode::CrossSubnet);
    assert!(p.nat_outgoing && p.disable_bgp_export && !p.disabled);
    assert_eq!(p.node_selector, "rack == 'a'");
    assert_eq!(p.allowed_uses, vec![AllowedUse::Tunnel]);
}

#[test]
fn pool_with_host_bits_is_refused_naming_cidr() {
    let e = Pool::from_spec("p", &spec("198.19.0.1/16")).unwrap_err();
    assert_eq!(e.field, "spec.cidr");
    assert!(
        e.to_string().contains("host bits") && e.to_string().contains("198.19.0.0/16"),
        "{e}"
    );
    assert_eq!(
        field_of(Pool::from_spec("p", &spec("not-a-cidr"))),
        "spec.cidr"
    );
}

#[test]
fn pool_block_size_out_of_range_is_refused_naming_block_size() {
    for (cidr, b) in [
        ("198.19.0.0/16", 19),
        ("198.19.0.0/16", 33),
        ("fd00::/48", 115),
        ("fd00::/48", 129),
        ("fd00::/48", 26),
    ] {
        let s = PoolSpec {
            block_size: Some(b),
            ..spec(cidr)
        };
        assert_eq!(
            field_of(Pool::from_spec("p", &s)),
            "spec.blockSize",
            "{cidr} /{b}"
        );
    }
    for (cidr, b) in [
        ("198.19.0.0/16", 20),
        ("198.19.0.0/16", 32),
        ("fd00::/48", 116),
        ("fd00::/48", 128),
    ] {
        assert!(
            Pool::from_spec(
                "p",
                &PoolSpec {
                    block_size: Some(b),
                    ..spec(cidr)
                }
            )
            .is_ok()
        );
    }
    // A pool smaller than one block.
    let e = Pool::from_spec("p", &spec("198.19.0.0/28")).unwrap_err();
    assert_eq!(e.field, "spec.blockSize");
    assert!(e.to_string().contains("/26 blocks do not fit"), "{e}");
}

#[test]
fn pool_with_both_encapsulations_is_refused_naming_vxlan_mode() {
    let s = PoolSpec {
        ipip_mode: Some(EncapMode::Always),
        vxlan_mode: Some(EncapMode::CrossSubnet),
        ..spec("198.19.0.0/16")
    };
    let e = Pool::from_spec("p", &s).unwrap_err();
    assert_eq!(e.field, "spec.vxlanMode");
    assert!(e.to_string().contains("spec.ipipMode"), "{e}");
    let s6 = PoolSpec {
        ipip_mode: Some(EncapMode::Always),
        ..spec("fd00::/48")
    };
    assert_eq!(field_of(Pool::from_spec("p", &s6)), "spec.ipipMode");
    let none = PoolSpec {
        allowed_uses: Some(vec![]),
        ..spec("198.19.0.0/16")
    };
    assert_eq!(field_of(Pool::from_spec("p", &none)), "spec.allowedUses");
}

#[test]
fn overlapping_pools_are_refused_naming_cidr_and_the_other_pool() {
    let a = Pool::new("pool-a", net("198.19.0.0/16"));
    let b = Pool::new("pool-b", net("198.19.64.0/18"));
    let e = validate_pools(&[a.clone(), b]).unwrap_err();
    assert_eq!((e.pool.as_str(), e.field), ("pool-b", "spec.cidr"));
    assert!(
        e.to_string()
            .contains("overlaps IPPool \"pool-a\" (198.19.0.0/16)"),
        "{e}"
    );
    let c = Pool::new("pool-c", net("198.20.0.0/16"));
    let d = Pool::new("pool-d", net("fd00::/48"));
    assert!(validate_pools(&[a, c, d]).is_ok());
}

#[test]
fn eligible_pools_filter_on_state_family_use_and_the_callers_selector() {
    let mut disabled = Pool::new("off", net("10.1.0.0/16"));
    disabled.disabled = true;
    let mut tunnel_only = Pool::new("tun", net("10.2.0.0/16"));
    tunnel_only.allowed_uses = vec![AllowedUse::Tunnel];
    let mut rack_b = Pool::new("rack-b", net("10.3.0.0/16"));
    rack_b.node_selector = "rack == 'b'".into();
    let pools = vec![
        disabled,
        tunnel_only,
        rack_b,
        Pool::new("all", net("10.4.0.0/16")),
        Pool::new("v6", net("fd00::/48")),
    ];
    let on_rack_a = |sel: &str| sel == "all()" || sel == "rack == 'a'";
    let names = |v: Vec<Pool>| v.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        names(eligible(
            &pools,
            Family::V4,
            AllowedUse::Workload,
            &on_rack_a
        )),
        ["all"]
    );
    assert_eq!(
        names(eligible(&pools, Family::V4, AllowedUse::Tunnel, &on_rack_a)),
        ["tun", "all"]
    );
    assert_eq!(
        names(eligible(&pools, Family::V4, AllowedUse::Workload, &|_| {
            true
        })),
        ["rack-b", "all"]
    );
    assert_eq!(
        names(eligible(&pools, Family::V6, AllowedUse::Workload, &|_| {
            true
        })),
        ["v6"]
    );
}

// ---- affinity states

#[test]
fn affinity_states_follow_pending_confirmed_pending_deletion() {
    use AffinityState::*;
    for (from, to, ok) in [
        (Pending, Confirmed, true),
        (Confirmed, PendingDeletion, true),
        (Pending, PendingDeletion, true),
        (Confirmed, Pending, false),
        (PendingDeletion, Confirmed, false),
        (PendingDeletion, Pending, false),
        (Confirmed, Confirmed, false),
    ] {
        assert_eq!(from.can_become(to), ok, "{from:?} -> {to:?}");
    }
    let mut b = Block::new(
        net("198.19.0.64/26"),
        Some(Affinity {
            node: "n".into(),
            state: Pending,
            claimed: 0,
        }),
        10,
    );
    assert_eq!(b.owner(), None, "pending is no owner");
    b.set_affinity_state(Confirmed).unwrap();
    assert_eq!(
        (b.owner(), b.seq),
        (Some("n"), 11),
        "a transition is a write"
    );
    assert!(matches!(
        b.set_affinity_state(Pending),
        Err(IpamError::Invalid(_))
    ));
    b.set_affinity_state(PendingDeletion).unwrap();
    assert_eq!(b.owner(), None, "pending deletion is no owner");
    let mut unaffine = Block::new(net("198.19.0.64/26"), None, 0);
    assert!(unaffine.set_affinity_state(Confirmed).is_err());
}

// ---- allocation inside a block

#[test]
fn released_addresses_are_reused_oldest_first_after_never_used_ones() {
    let mut b = Block::new(net("198.19.0.0/29"), confirmed("node-1"), 100);
    let got: Vec<u32> = b
        .take(4, &attrs("h1", "p1"))
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(got, [0, 1, 2, 3]);
    b.release(&[2]);
    b.release(&[0]);
    b.release(&[3]);
    assert_eq!(
        b.free_order(),
        [4, 5, 6, 7, 2, 0, 3],
        "never-used first, then by release"
    );
    let next: Vec<u32> = b
        .take(6, &attrs("h2", "p2"))
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(next, [4, 5, 6, 7, 2, 0]);
    // The order survives the document.
    let again = Block::decode("k", &b.encode()).unwrap();
    assert_eq!(again.free_order(), [3]);
}

#[test]
fn every_write_bumps_the_block_seq_and_allocations_keep_theirs() {
    let mut b = Block::new(net("198.19.0.0/30"), confirmed("node-1"), 1000);
    let a = b.take(2, &attrs("h1", "p1"));
    assert_eq!(a, vec![(0, 1001), (1, 1001)]);
    let c = b.take(1, &attrs("h2", "p2"));
    assert_eq!(c, vec![(2, 1002)]);
    b.release(&[0]);
    assert_eq!(b.seq, 1003);
    assert_eq!(b.slot(1).unwrap().0.seq, 1001);
    assert!(b.take(0, &attrs("h3", "p3")).is_empty());
    assert_eq!(b.seq, 1003, "taking nothing writes nothing");
}

#[test]
fn release_counts_per_handle_and_frees_attributes() {
    let mut b = Block::new(net("198.19.0.0/29"), confirmed("node-1"), 0);
    b.take(2, &attrs("h1", "p1"));
    b.take(3, &attrs("h2", "p2"));
    assert_eq!(b.ordinals_of("h2"), vec![2, 3, 4]);
    let counts = b.release(&[0, 3, 1]);
    assert_eq!((counts["h1"], counts["h2"]), (2, 1));
    assert_eq!(
        b.handle_counts().into_iter().collect::<Vec<_>>(),
        vec![("h2".to_string(), 2)]
    );
    let doc = String::from_utf8(b.encode()).unwrap();
    assert!(
        !doc.contains("\"h1\""),
        "unreferenced attributes are dropped: {doc}"
    );
}

// ---- documents

#[test]
fn block_document_is_compact_json() {
    let mut b = Block::new(
        net("198.19.0.64/26"),
        confirmed("node-1"),
        1_767_225_600_000_000_000,
    );
    b.take(2, &attrs("k8s-pod-network.4f1c", "web-0"));
    b.release(&[1]);
    let doc = String::from_utf8(b.encode()).unwrap();
    assert_eq!(
        doc,
        r#"{"cidr":"198.19.0.64/26","affinity":{"node":"node-1","state":"confirmed","claimed":1767225600},"seq":1767225600000000002,"next":2,"attrs":[{"handle":"k8s-pod-network.4f1c","pod":"web-0","namespace":"default","node":"node-1","kind":"workload"}],"allocs":[[0,0,1767225600000000001]],"free":[[1,1767225600000000002]]}"#
    );
    let empty = Block::new(
        net("198.19.0.64/26"),
        confirmed("node-1"),
        1_767_225_600_000_000_000,
    );
    assert!(
        empty.encode().len() < 160,
        "an empty /26: {} bytes",
        empty.encode().len()
    );
    assert!(
        Block::new(net("fd00:19::/116"), confirmed("node-1"), 0)
            .encode()
            .len()
            < 160,
        "an empty /116 stays small"
    );
}

#[test]
fn full_blocks_stay_small() {
    for cidr in ["198.19.0.64/26", "fd00:19::40/122"] {
        let mut b = Block::new(net(cidr), confirmed("node-1"), 1_767_225_600_000_000_000);
        for i in 0..64 {
            b.take(
                1,
                &attrs(&format!("k8s-pod-network.{i:064x}"), &format!("pod-{i}")),
            );
        }
        let n = b.encode().len();
        assert!(n < 14_000, "{cidr} with 64 pods: {n} bytes");
        let mut one = Block::new(net(cidr), confirmed("node-1"), 1_767_225_600_000_000_000);
        one.take(64, &attrs("one-handle", "p"));
        assert!(
            one.encode().len() < 2_000,
            "{cidr} full for one handle: {} bytes",
            one.encode().len()
        );
        assert_eq!(Block::decode("k", &b.encode()).unwrap(), b);
    }
}

#[test]
fn kinds_use_calicos_attribute_type_names() {
    let s = |k: Kind| serde_json::to_string(&k).unwrap();
    assert_eq!(s(Kind::Workload), "\"workload\"");
    assert_eq!(s(Kind::Tunnel(TunnelType::Ipip)), "\"ipipTunnelAddress\"");
    assert_eq!(s(Kind::Tunnel(TunnelType::Vxlan)), "\"vxlanTunnelAddress\"");
    assert_eq!(
        s(Kind::Tunnel(TunnelType::VxlanV6)),
        "\"vxlanV6TunnelAddress\""
    );
    let k: Kind = serde_json::from_str("\"vxlanTunnelAddress\"").unwrap();
    assert_eq!(k, Kind::Tunnel(TunnelType::Vxlan));
    assert_eq!(TunnelType::Ipip.handle("n1"), "ipip-tunnel-addr-n1");
    assert_eq!(TunnelType::Vxlan.handle("n1"), "vxlan-tunnel-addr-n1");
    assert_eq!(TunnelType::VxlanV6.handle("n1"), "vxlan-v6-tunnel-addr-n1");
}

fn corrupt_what(key: &str, doc: &str) -> String {
    match Block::decode(key, doc.as_bytes()) {
        Err(IpamError::Corrupt { key: k, what }) => {
            assert_eq!(k, key);
            what
        }
        other => panic!("expected Corrupt for {doc}, got {other:?}"),
    }
}

#[test]
fn malformed_block_documents_are_corrupt_naming_the_key() {
    let key = "/tortie/v1/ipam/blocks/198.19.0.64-26";
    let w = |rest: &str| format!(r#"{{"cidr":"198.19.0.64/26","seq":5,{rest}}}"#);
    assert!(corrupt_what(key, "not json").contains("not a block"));
    assert!(
        corrupt_what(key, r#"{"cidr":"198.19.0.0/26","seq":1,"next":0}"#)
            .contains("not 198.19.0.64/26")
    );
    assert!(
        corrupt_what(key, r#"{"cidr":"198.19.0.64/19","seq":1,"next":0}"#).contains("not a block")
    );
    assert!(corrupt_what(key, &w(r#""next":65"#)).contains("beyond"));
    assert!(
        corrupt_what(key, &w(r#""next":2,"allocs":[[0,0,1]],"free":[[1,2]]"#))
            .contains("missing attributes")
    );
    let a = r#""attrs":[{"handle":"h","node":"n","kind":"workload"}]"#;
    assert!(
        corrupt_what(
            key,
            &w(&format!(
                r#""next":2,{a},"allocs":[[0,0,1],[0,0,1]],"free":[[1,2]]"#
            ))
        )
        .contains("twice")
    );
    assert!(
        corrupt_what(
            key,
            &w(&format!(
                r#""next":2,{a},"allocs":[[0,0,1],[1,0,1]],"free":[[1,2]]"#
            ))
        )
        .contains("also in use")
    );
    assert!(
        corrupt_what(
            key,
            &w(&format!(
                r#""next":3,{a},"allocs":[[0,0,1]],"free":[[1,2]]"#
            ))
        )
        .contains("neither allocated nor free")
    );
    assert!(
        corrupt_what(key, &w(&format!(r#""next":1,{a},"allocs":[[5,0,1]]"#)))
            .contains("not below next")
    );
    assert!(
        corrupt_what(
            key,
            &w(r#""next":0,"affinity":{"node":"n","state":"sideways","claimed":0}"#)
        )
        .contains("not a block")
    );
}

#[test]
fn handle_documents_round_trip_and_refuse_garbage() {
    let mut h = Handle::new("k8s-pod-network.4f1c");
    h.add(net("198.19.0.64/26"), 2);
    h.add(net("fd00:19::40/122"), 1);
    let doc = String::from_utf8(h.encode()).unwrap();
    assert_eq!(
        doc,
        r#"{"handle":"k8s-pod-network.4f1c","blocks":{"198.19.0.64/26":2,"fd00:19::40/122":1}}"#
    );
    let key = handle_key("k8s-pod-network.4f1c");
    assert_eq!(Handle::decode(&key, doc.as_bytes()).unwrap(), h);
    for bad in [
        "[]",
        r#"{"handle":"other","blocks":{}}"#,
        r#"{"handle":"k8s-pod-network.4f1c","blocks":{"nope":1}}"#,
    ] {
        assert!(
            matches!(Handle::decode(&key, bad.as_bytes()), Err(IpamError::Corrupt { key: k, .. }) if k == key),
            "{bad}"
        );
    }
    assert!(
        check_handle("a/b").is_err() && check_handle("").is_err() && check_handle("a b").is_err()
    );
    assert!(check_handle("vxlan-v6-tunnel-addr-node-1").is_ok());
}

#[test]
fn check_finds_handles_that_disagree_with_blocks() {
    let mut b = Block::new(net("198.19.0.64/26"), confirmed("node-1"), 0);
    b.take(2, &attrs("h1", "p1"));
    let mut h = Handle::new("h1");
    h.add(b.cidr, 2);
    assert!(check_docs(&[b.clone()], &[h.clone()]).is_empty());
    h.add(b.cidr, 1);
    assert_eq!(check_docs(&[b.clone()], &[h]).len(), 1);
    assert_eq!(check_docs(&[b.clone()], &[]).len(), 1, "no handle document");
    let overlapping = Block::new(net("198.19.0.64/27"), None, 0);
    assert!(
        check_docs(&[b, overlapping], &[])
            .iter()
            .any(|p| p.contains("overlap"))
    );
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Block::decode("/tortie/v1/ipam/blocks/198.19.0.64-26", &bytes);
        let _ = Handle::decode("/tortie/v1/ipam/handles/h", &bytes);
    }

    #[test]
    fn decoding_mangled_documents_never_panics(cut in 0usize..400, byte in any::<u8>(), at in 0usize..400) {
        let mut b = Block::new(net("198.19.0.64/26"), confirmed("node-1"), 7);
        b.take(5, &attrs("h1", "p1"));
        b.release(&[1, 3]);
        let mut doc = b.encode();
        let at = at % doc.len();
        doc[at] = byte;
        doc.truncate(cut.max(1));
        let _ = Block::decode("/tortie/v1/ipam/blocks/198.19.0.64-26", &doc);
    }

    #[test]
    fn take_and_release_keep_every_ordinal_in_exactly_one_place(ops in proptest::collection::vec((any::<bool>(), 1u32..5), 1..60)) {
        let mut b = Block::new(net("198.19.0.0/28"), confirmed("node-1"), 0);
        let mut used: Vec<u32> = Vec::new();
        for (take, n) in ops {
            if take {
                for (o, _) in b.take(n, &attrs("h", "p")) {
                    prop_assert!(!used.contains(&o));
                    used.push(o);
                }
            } else {
                let k = (n as usize).min(used.len());
                let gone: Vec<u32> = used.drain(..k).collect();
                b.release(&gone);
            }
            prop_assert_eq!(b.in_use(), used.len());
            prop_assert_eq!(b.free_count() as usize, 16 - used.len());
            prop_assert_eq!(&Block::decode("k", &b.encode()).unwrap(), &b);
        }
    }
}

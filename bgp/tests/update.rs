//! UPDATE messages: every attribute and NLRI form from hand-written byte vectors, and the
//! encoder writing the same bytes back.

mod common;
use common::*;

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};
use tortie_bgp::wire::{
    AddPath, Aggregator, AsPath, AsSegment, Community, Ctx, ExtCommunity, Family, LargeCommunity,
    Message, MpNlri, MpReach, MpUnreach, NextHop, Nlri, Origin, RawAttribute, SegmentKind, Update,
    decode, encode_to_vec,
};

fn as4() -> Ctx {
    Ctx {
        as4: true,
        ..Ctx::default()
    }
}

fn v4(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

fn decode_update(bytes: &[u8], ctx: &Ctx) -> Update {
    match decode(bytes, ctx) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

/// Decodes, checks there was no fault, and checks the encoder gives the same bytes back.
fn decode_clean_round_trip(bytes: &[u8], ctx: &Ctx) -> Update {
    let u = decode_update(bytes, ctx);
    assert_eq!(u.errors, vec![], "unexpected RFC 7606 faults");
    assert_eq!(
        encode_to_vec(&Message::Update(u.clone()), ctx).unwrap(),
        bytes,
        "re-encoding differs"
    );
    u
}

#[test]
fn ipv4_announcement_with_mandatory_attributes() {
    let nlri = [26, 198, 19, 0, 64, 24, 198, 19, 1];
    let u = decode_clean_round_trip(&update(&[], &mandatory_as4(), &nlri), &as4());
    assert_eq!(u.attrs.origin, Some(Origin::Igp));
    assert_eq!(u.attrs.as_path, Some(AsPath::sequence([65001])));
    assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(198, 18, 1, 1)));
    assert_eq!(
        u.nlri,
        vec![
            Nlri::new(v4("198.19.0.64/26")),
            Nlri::new(v4("198.19.1.0/24"))
        ]
    );
}

#[test]
fn ipv4_withdrawal_needs_no_attributes() {
    let u = decode_clean_round_trip(&update(&[26, 198, 19, 0, 128], &[], &[]), &as4());
    assert_eq!(u.withdrawn, vec![Nlri::new(v4("198.19.0.128/26"))]);
    assert_eq!(u.as_end_of_rib(), None);
}

#[test]
fn default_route_and_host_route_prefix_lengths() {
    let nlri = [0, 32, 198, 19, 2, 7];
    let u = decode_clean_round_trip(&update(&[], &mandatory_as4(), &nlri), &as4());
    assert_eq!(
        u.nlri,
        vec![Nlri::new(v4("0.0.0.0/0")), Nlri::new(v4("198.19.2.7/32"))]
    );
}

#[test]
fn host_bits_past_the_prefix_length_are_cleared() {
    // 198.19.0.255/26 on the wire: the decoder keeps 198.19.0.192/26.
    let u = decode_update(
        &update(&[], &mandatory_as4(), &[26, 198, 19, 0, 255]),
        &as4(),
    );
    assert_eq!(u.nlri, vec![Nlri::new(v4("198.19.0.192/26"))]);
}

#[test]
fn add_path_identifiers_precede_each_prefix() {
    let ctx = Ctx {
        as4: true,
        add_path: AddPath {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
        ..Ctx::default()
    };
    let nlri = [0, 0, 0, 1, 26, 198, 19, 0, 0, 0, 0, 0, 2, 26, 198, 19, 0, 0];
    let u = decode_clean_round_trip(&update(&[], &mandatory_as4(), &nlri), &ctx);
    assert_eq!(
        u.nlri,
        vec![
            Nlri::with_path_id(v4("198.19.0.0/26"), 1),
            Nlri::with_path_id(v4("198.19.0.0/26"), 2)
        ]
    );
}

#[test]
fn two_octet_as_path_in_a_non_as4_session() {
    let attrs = [
        &ORIGIN_IGP[..],
        &attr(0x40, 2, &[2, 2, 0xfd, 0xe9, 0xfd, 0xea]),
        &NEXT_HOP_198_18_1_1,
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[24, 198, 19, 3]), &Ctx::default());
    assert_eq!(u.attrs.as_path, Some(AsPath::sequence([65001, 65002])));
}

#[test]
fn as_path_segment_kinds_set_sequence_and_confederation() {
    let value = [
        2, 1, 0, 0, 0xfd, 0xe9, // AS_SEQUENCE 65001
        1, 2, 0, 0, 0xfd, 0xea, 0, 0, 0xfd, 0xeb, // AS_SET {65002, 65003}
        3, 1, 0, 0, 0xfd, 0xec, // AS_CONFED_SEQUENCE (65004)
        4, 1, 0, 0, 0xfd, 0xed, // AS_CONFED_SET [65005]
    ];
    let attrs = [
        &ORIGIN_IGP[..],
        &attr(0x40, 2, &value),
        &NEXT_HOP_198_18_1_1,
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[24, 198, 19, 3]), &as4());
    let path = u.attrs.as_path.unwrap();
    let kinds: Vec<_> = path.segments.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SegmentKind::Sequence,
            SegmentKind::Set,
            SegmentKind::ConfedSequence,
            SegmentKind::ConfedSet
        ]
    );
    assert_eq!(path.to_string(), "65001 {65002,65003} (65004) [65005]");
    assert_eq!(
        path.route_len(),
        2,
        "a set counts one, confederation segments none"
    );
}

#[test]
fn med_local_pref_atomic_aggregate_and_aggregator() {
    let attrs = [
        mandatory_as4(),
        attr(0x80, 4, &[0, 0, 0, 50]),
        attr(0x40, 5, &[0, 0, 0, 200]),
        attr(0x40, 6, &[]),
        attr(0xc0, 7, &[0, 0, 0xfd, 0xe9, 198, 18, 1, 1]),
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[24, 198, 19, 3]), &as4());
    assert_eq!(u.attrs.med, Some(50));
    assert_eq!(u.attrs.local_pref, Some(200));
    assert!(u.attrs.atomic_aggregate);
    assert_eq!(
        u.attrs.aggregator,
        Some(Aggregator {
            asn: 65001,
            address: Ipv4Addr::new(198, 18, 1, 1)
        })
    );
}

#[test]
fn communities_extended_and_large() {
    let attrs = [
        mandatory_as4(),
        attr(0xc0, 8, &[0xfd, 0xe9, 0, 100, 0xff, 0xff, 0xff, 0x01]),
        attr(0xc0, 16, &[0x00, 0x02, 0xfd, 0xe9, 0, 0, 0, 7]),
        attr(0xc0, 32, &[0xfa, 0x56, 0xea, 0x01, 0, 0, 0, 1, 0, 0, 0, 2]),
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[24, 198, 19, 3]), &as4());
    assert_eq!(
        u.attrs.communities,
        vec![Community::new(65001, 100), Community::NO_EXPORT]
    );
    assert_eq!(
        u.attrs.ext_communities,
        vec![ExtCommunity([0, 2, 0xfd, 0xe9, 0, 0, 0, 7])]
    );
    assert_eq!(u.attrs.ext_communities[0].to_string(), "rt:65001:7");
    assert_eq!(
        u.attrs.large_communities,
        vec![LargeCommunity {
            global: 4_200_000_001,
            local1: 1,
            local2: 2
        }]
    );
    assert_eq!(u.attrs.large_communities[0].to_string(), "4200000001:1:2");
}

#[test]
fn originator_id_and_cluster_list_of_route_reflection() {
    let attrs = [
        mandatory_as4(),
        attr(0x40, 5, &[0, 0, 0, 100]),
        attr(0x80, 9, &[198, 18, 1, 5]),
        attr(0x80, 10, &[198, 18, 0, 1, 198, 18, 0, 2]),
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[24, 198, 19, 3]), &as4());
    assert_eq!(u.attrs.originator_id, Some(Ipv4Addr::new(198, 18, 1, 5)));
    assert_eq!(
        u.attrs.cluster_list,
        vec![Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)]
    );
}

#[test]
fn as4_path_and_as4_aggregator_restore_4_octet_asns_for_a_2_octet_session() {
    let attrs = [
        &ORIGIN_IGP[..],
        &attr(0x40, 2, &[2, 2, 0x5b, 0xa0, 0xfd, 0xe9]), // 23456 65001
        &NEXT_HOP_198_18_1_1,
        &attr(0xc0, 7, &[0x5b, 0xa0, 198, 18, 1, 1]),
        &attr(0xc0, 17, &[2, 2, 0xfa, 0x56, 0xea, 0x01, 0, 0, 0xfd, 0xe9]), // 4200000001 65001
        &attr(0xc0, 18, &[0xfa, 0x56, 0xea, 0x01, 198, 18, 1, 1]),
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[24, 198, 19, 3]), &Ctx::default());
    assert_eq!(
        u.attrs.effective_as_path(),
        Some(AsPath::sequence([4_200_000_001, 65001]))
    );
    assert_eq!(
        u.attrs.effective_aggregator().map(|a| a.asn),
        Some(4_200_000_001)
    );
}

#[test]
fn encoding_toward_a_2_octet_peer_substitutes_as_trans_and_adds_as4_path() {
    let mut u = Update::default();
    u.attrs.origin = Some(Origin::Igp);
    u.attrs.as_path = Some(AsPath::sequence([4_200_000_001, 65001]));
    u.attrs.next_hop = Some(Ipv4Addr::new(198, 18, 1, 1));
    u.nlri = vec![Nlri::new(v4("198.19.3.0/24"))];
    let bytes = encode_to_vec(&Message::Update(u), &Ctx::default()).unwrap();
    let back = decode_update(&bytes, &Ctx::default());
    assert_eq!(back.attrs.as_path, Some(AsPath::sequence([23456, 65001])));
    assert_eq!(
        back.attrs.as4_path,
        Some(AsPath::sequence([4_200_000_001, 65001]))
    );
    assert_eq!(
        back.attrs.effective_as_path(),
        Some(AsPath::sequence([4_200_000_001, 65001]))
    );
}

#[test]
fn as4_path_merge_keeps_leading_asns_that_as4_path_lacks() {
    // A 2-octet speaker prepended 65010 after the AS4_PATH was formed (RFC 6793 4.2.3).
    let as_path = AsPath::sequence([65010, 23456, 65001]);
    let as4 = AsPath::sequence([4_200_000_001, 65001]);
    assert_eq!(
        as_path.merge_as4(&as4),
        AsPath::sequence([65010, 4_200_000_001, 65001])
    );
    // An AS4_PATH longer than AS_PATH is ignored.
    assert_eq!(
        AsPath::sequence([65001]).merge_as4(&as4),
        AsPath::sequence([65001])
    );
}

#[test]
fn unknown_optional_transitive_attribute_is_kept_and_passed_on_with_partial_set() {
    let attrs = [mandatory_as4(), attr(0xc0, 99, &[1, 2, 3])].concat();
    let bytes = update(&[], &attrs, &[24, 198, 19, 3]);
    let u = decode_update(&bytes, &as4());
    assert_eq!(u.errors, vec![]);
    assert_eq!(
        u.attrs.unknown,
        vec![RawAttribute {
            flags: 0xc0,
            type_code: 99,
            value: vec![1, 2, 3]
        }]
    );
    let out = encode_to_vec(&Message::Update(u), &as4()).unwrap();
    let expected = update(
        &[],
        &[mandatory_as4(), attr(0xe0, 99, &[1, 2, 3])].concat(),
        &[24, 198, 19, 3],
    );
    assert_eq!(out, expected);
}

#[test]
fn unknown_optional_non_transitive_attribute_is_quietly_ignored() {
    let attrs = [mandatory_as4(), attr(0x80, 99, &[1, 2, 3])].concat();
    let u = decode_update(&update(&[], &attrs, &[24, 198, 19, 3]), &as4());
    assert_eq!((u.errors.len(), u.attrs.unknown.len()), (0, 0));
}

#[test]
fn extended_length_attributes_decode_and_short_values_encode_compactly() {
    let attrs = [
        &ORIGIN_IGP[..],
        &attr_ext(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
        &NEXT_HOP_198_18_1_1,
    ]
    .concat();
    let bytes = update(&[], &attrs, &[24, 198, 19, 3]);
    let u = decode_update(&bytes, &as4());
    assert_eq!(u.errors, vec![]);
    let out = encode_to_vec(&Message::Update(u), &as4()).unwrap();
    assert_eq!(out, update(&[], &mandatory_as4(), &[24, 198, 19, 3]));
}

#[test]
fn long_attribute_values_use_the_extended_length() {
    let mut u = Update::default();
    u.attrs.origin = Some(Origin::Igp);
    u.attrs.as_path = Some(AsPath::sequence([65001]));
    u.attrs.next_hop = Some(Ipv4Addr::new(198, 18, 1, 1));
    u.attrs.communities = (0..100).map(|i| Community::new(65001, i)).collect();
    u.nlri = vec![Nlri::new(v4("198.19.3.0/24"))];
    let bytes = encode_to_vec(&Message::Update(u.clone()), &as4()).unwrap();
    let pos = bytes
        .windows(2)
        .position(|w| w == [0xd0, 8])
        .expect("COMMUNITIES with flags 0xd0");
    assert_eq!(&bytes[pos + 2..pos + 4], &400u16.to_be_bytes());
    assert_eq!(decode_update(&bytes, &as4()), u);
}

#[test]
fn long_as_sequences_are_split_into_255_asn_segments() {
    let mut u = Update::default();
    u.attrs.origin = Some(Origin::Igp);
    u.attrs.as_path = Some(AsPath::sequence((1..=300).collect::<Vec<u32>>()));
    u.attrs.next_hop = Some(Ipv4Addr::new(198, 18, 1, 1));
    u.nlri = vec![Nlri::new(v4("198.19.3.0/24"))];
    let bytes = encode_to_vec(&Message::Update(u), &as4()).unwrap();
    let path = decode_update(&bytes, &as4()).attrs.as_path.unwrap();
    assert_eq!(
        path.segments
            .iter()
            .map(|s| s.asns.len())
            .collect::<Vec<_>>(),
        [255, 45]
    );
    assert_eq!(path.route_len(), 300);
}

/// MP_REACH_NLRI, IPv6 unicast, next hop 2001:db8::1 and fe80::1, two prefixes.
fn mp_reach_v6_value() -> Vec<u8> {
    let mut v = vec![0, 2, 1, 32];
    v.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    v.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
    v.push(0);
    v.extend_from_slice(&[64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0]);
    v.extend_from_slice(&[
        122, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40,
    ]);
    v
}

#[test]
fn mp_reach_ipv6_with_global_and_link_local_next_hop() {
    let attrs = [
        attr(0x80, 14, &mp_reach_v6_value()),
        ORIGIN_IGP.to_vec(),
        AS_PATH_65001_AS4.to_vec(),
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[]), &as4());
    assert_eq!(
        u.mp_reach,
        Some(MpReach {
            next_hop: NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap())
            },
            nlri: MpNlri::Ipv6(vec![
                Nlri::new(v6("2001:db8:1::/64")),
                Nlri::new(v6("2001:db8:1::40/122"))
            ]),
        })
    );
}

#[test]
fn mp_unreach_ipv6_withdraws() {
    let value = [0, 2, 1, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0];
    let u = decode_clean_round_trip(&update(&[], &attr(0x80, 15, &value), &[]), &as4());
    assert_eq!(
        u.mp_unreach,
        Some(MpUnreach {
            nlri: MpNlri::Ipv6(vec![Nlri::new(v6("2001:db8:1::/64"))])
        })
    );
}

#[test]
fn mp_reach_ipv4_with_an_ipv6_next_hop_per_rfc_8950() {
    let mut v = vec![0, 1, 1, 16];
    v.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    v.push(0);
    v.extend_from_slice(&[26, 198, 19, 0, 64]);
    let attrs = [
        attr(0x80, 14, &v),
        ORIGIN_IGP.to_vec(),
        AS_PATH_65001_AS4.to_vec(),
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[]), &as4());
    let reach = u.mp_reach.unwrap();
    assert_eq!(
        reach.next_hop,
        NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: None
        }
    );
    assert_eq!(
        reach.nlri,
        MpNlri::Ipv4(vec![Nlri::new(v4("198.19.0.64/26"))])
    );
}

#[test]
fn mp_reach_ipv6_with_add_path() {
    let ctx = Ctx {
        as4: true,
        add_path: AddPath {
            ipv4_unicast: false,
            ipv6_unicast: true,
        },
        ..Ctx::default()
    };
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    v.push(0);
    v.extend_from_slice(&[0, 0, 0, 7, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 2]);
    let attrs = [
        attr(0x80, 14, &v),
        ORIGIN_IGP.to_vec(),
        AS_PATH_65001_AS4.to_vec(),
    ]
    .concat();
    let u = decode_clean_round_trip(&update(&[], &attrs, &[]), &ctx);
    assert_eq!(
        u.mp_reach.unwrap().nlri,
        MpNlri::Ipv6(vec![Nlri::with_path_id(v6("2001:db8:2::/48"), 7)])
    );
}

#[test]
fn end_of_rib_markers_for_ipv4_and_ipv6() {
    let eor4 = update(&[], &[], &[]);
    assert_eq!(eor4.len(), 23);
    assert_eq!(
        decode_update(&eor4, &as4()).as_end_of_rib(),
        Some(Family::Ipv4Unicast)
    );
    let eor6 = update(&[], &attr(0x80, 15, &[0, 2, 1]), &[]);
    assert_eq!(
        decode_update(&eor6, &as4()).as_end_of_rib(),
        Some(Family::Ipv6Unicast)
    );
    for family in Family::ALL {
        let bytes = encode_to_vec(&Message::Update(Update::end_of_rib(family)), &as4()).unwrap();
        assert_eq!(decode_update(&bytes, &as4()).as_end_of_rib(), Some(family));
    }
    assert_eq!(
        encode_to_vec(
            &Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
            &as4()
        )
        .unwrap(),
        eor6
    );
}

#[test]
fn mp_attributes_are_encoded_first() {
    let u = Update {
        attrs: tortie_bgp::wire::Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath {
                segments: vec![AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![65001],
                }],
            }),
            ..Default::default()
        },
        mp_reach: Some(MpReach {
            next_hop: NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: None,
            },
            nlri: MpNlri::Ipv6(vec![Nlri::new(v6("2001:db8:1::/64"))]),
        }),
        ..Update::default()
    };
    let bytes = encode_to_vec(&Message::Update(u), &as4()).unwrap();
    assert_eq!(
        bytes[24], 14,
        "first attribute type (after 19 header + 2 + 2 lengths + flags)"
    );
}

#[test]
fn json_shows_prefixes_as_strings_and_attributes_by_name() {
    let attrs = [mandatory_as4(), attr(0xc0, 8, &[0xfd, 0xe9, 0, 100])].concat();
    let u = decode_update(&update(&[], &attrs, &[26, 198, 19, 0, 64]), &as4());
    let json = serde_json::to_value(Message::Update(u)).unwrap();
    assert_eq!(json["type"], "UPDATE");
    assert_eq!(json["nlri"][0], "198.19.0.64/26");
    assert_eq!(json["attrs"]["next_hop"], "198.18.1.1");
    assert_eq!(json["attrs"]["origin"], "igp");
    assert_eq!(json["attrs"]["communities"][0], "65001:100");
    assert_eq!(json["attrs"]["as_path"][0]["asns"][0], 65001);
}

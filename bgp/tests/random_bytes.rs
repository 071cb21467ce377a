//! Random bytes never panic the decoder.
//!
//! Three sources of input: (a) arbitrary byte vectors, (b) a valid header (marker, consistent
//! length, type 1..5) over a random body, some of them shaped like OPEN and UPDATE bodies so that
//! the inner parsers are reached, and (c) mutations of valid encoded messages: bit flips, byte
//! overwrites, truncations, insertions, deletions and length-field tweaks. Each input goes to
//! `frame_len` and `decode` under several contexts, which must return, and whatever they return
//! must be coherent:
//!
//! * an `Err` from `decode` is a session reset with an error code RFC 4271 knows;
//! * an UPDATE's `errors` are never session resets, and each carries the action, code and
//!   subcode that RFC 7606 gives its reason;
//! * a decoded message re-encodes (or is refused cleanly) and the re-encoding decodes to the same
//!   message, up to what is not carried by design (the `errors` list, and the Partial bit that
//!   is set on unknown attributes passed on).
//!
//! This is the small, fast version for the normal suite (a few thousand inputs); the `fuzz/`
//! crate runs the same checks under libFuzzer, and `PROPTEST_CASES=1000000 cargo test -p
//! tortie-bgp --release --test random_bytes` makes this one a long run.

use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;
use std::net::{Ipv4Addr, Ipv6Addr};
use tortie_bgp::wire::attr::flag;
use tortie_bgp::wire::error::{code, subcode};
use tortie_bgp::wire::{
    Action, AddPath, AddPathFamily, AddPathMode, AfiSafi, Aggregator, AsPath, AsSegment,
    Attributes, Capability, Community, Ctx, DecodeError, ExtCommunity, ExtNextHop, Family,
    GrFamily, GracefulRestart, LargeCommunity, Message, MpNlri, MpReach, MpUnreach, NextHop, Nlri,
    Notification, Open, Origin, RawAttribute, Reason, RouteRefresh, RouteRefreshSubtype,
    SegmentKind, Update, decode, encode_to_vec, frame_len,
};

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The contexts every input is decoded under.
const CTXS: [Ctx; 5] = [
    Ctx {
        as4: false,
        add_path: AddPath {
            ipv4_unicast: false,
            ipv6_unicast: false,
        },
        extended_message: false,
    },
    Ctx {
        as4: true,
        add_path: AddPath {
            ipv4_unicast: false,
            ipv6_unicast: false,
        },
        extended_message: false,
    },
    Ctx {
        as4: true,
        add_path: AddPath {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
        extended_message: true,
    },
    Ctx {
        as4: false,
        add_path: AddPath {
            ipv4_unicast: false,
            ipv6_unicast: true,
        },
        extended_message: true,
    },
    Ctx {
        as4: true,
        add_path: AddPath {
            ipv4_unicast: true,
            ipv6_unicast: true,
        },
        extended_message: false,
    },
];

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// The action and UPDATE error subcode RFC 7606 (and RFC 4271 section 6.3, RFC 6793, RFC 4760)
/// give a finding that does not reset the session; `None` for reasons that must reset it, or
/// that do not belong to an UPDATE.
fn rfc7606(reason: &Reason) -> Option<(Action, u8)> {
    use Action::*;
    use Reason::*;
    // Per attribute, sections 7.1 to 7.14: attribute discard for ATOMIC_AGGREGATE, AGGREGATOR
    // and the AS4_ attributes, session reset for MP_(UN)REACH_NLRI, treat-as-withdraw otherwise.
    let by_code = |c: u8| match c {
        6 | 7 | 17 | 18 => Some(AttributeDiscard),
        14 | 15 => None,
        _ => Some(TreatAsWithdraw),
    };
    Some(match reason {
        AttributeOverrun { .. } => (TreatAsWithdraw, subcode::MALFORMED_ATTRIBUTE_LIST),
        DuplicateAttribute { code: 14 | 15 } => return None,
        DuplicateAttribute { .. } => (AttributeDiscard, subcode::MALFORMED_ATTRIBUTE_LIST),
        MissingAttribute { .. } => (TreatAsWithdraw, subcode::MISSING_WELL_KNOWN_ATTRIBUTE),
        AttributeFlags { code, .. } => (by_code(*code)?, subcode::ATTRIBUTE_FLAGS_ERROR),
        AttributeLength { code, .. } => (by_code(*code)?, subcode::ATTRIBUTE_LENGTH_ERROR),
        InvalidOrigin(_) => (TreatAsWithdraw, subcode::INVALID_ORIGIN),
        MalformedAsPath(_) => (TreatAsWithdraw, subcode::MALFORMED_AS_PATH),
        InvalidNextHop(_) => (TreatAsWithdraw, subcode::INVALID_NEXT_HOP),
        MalformedAs4Path(_) => (AttributeDiscard, subcode::OPTIONAL_ATTRIBUTE_ERROR),
        UnexpectedAs4Attribute { .. } => (AttributeDiscard, subcode::OPTIONAL_ATTRIBUTE_ERROR),
        // RFC 4760 section 7 lets a family that was not negotiated be ignored.
        UnsupportedFamily { .. } => (AttributeDiscard, subcode::OPTIONAL_ATTRIBUTE_ERROR),
        // RFC 4271 section 6.3, not revised by RFC 7606: a NOTIFICATION.
        UnrecognizedWellKnown { .. } => return None,
        _ => return None,
    })
}

fn check_finding(e: &DecodeError) -> Result<(), TestCaseError> {
    prop_assert_ne!(
        e.action,
        Action::SessionReset,
        "a session reset must come back as Err: {:?}",
        e
    );
    prop_assert_eq!(e.code, code::UPDATE_MESSAGE, "{:?}", e);
    let expected = rfc7606(&e.reason);
    prop_assert_eq!(Some((e.action, e.subcode)), expected, "{:?}", e);
    if let Reason::MissingAttribute { code } = e.reason {
        prop_assert_eq!(
            &e.data,
            &vec![code],
            "data of Missing Well-known Attribute is the type code"
        );
    }
    Ok(())
}

/// What a re-encoding is allowed to change: the findings are not encoded, and an unknown optional
/// transitive attribute is passed on with the Partial bit set (RFC 4271 section 5).
fn normalized(msg: &Message) -> Message {
    let mut msg = msg.clone();
    if let Message::Update(u) = &mut msg {
        u.errors.clear();
        for a in &mut u.attrs.unknown {
            a.flags |= flag::PARTIAL;
        }
    }
    msg
}

/// Feeds `bytes` to `frame_len` and `decode` under every context in [`CTXS`].
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    for ctx in &CTXS {
        let framed = frame_len(bytes, ctx);
        match decode(bytes, ctx) {
            Err(e) => {
                prop_assert_eq!(e.action, Action::SessionReset, "{:?}", e);
                prop_assert!(
                    [1, 2, 3, 7].contains(&e.code),
                    "NOTIFICATION code {}",
                    e.code
                );
            }
            Ok(msg) => {
                prop_assert_eq!(
                    framed,
                    Ok(Some(bytes.len())),
                    "a message that decodes frames whole"
                );
                if let Message::Update(u) = &msg {
                    for e in &u.errors {
                        check_finding(e)?;
                    }
                }
                // Re-encode: a clean refusal (a Unicode replacement in an FQDN may grow it past
                // its field) or a message that decodes back the same.
                let Ok(again) = encode_to_vec(&msg, ctx) else {
                    continue;
                };
                let back = decode(&again, ctx);
                prop_assert!(
                    back.is_ok(),
                    "re-encoding of {:?} does not decode: {:?}",
                    msg,
                    back
                );
                let back = back.unwrap();
                prop_assert_eq!(
                    normalized(&back),
                    normalized(&msg),
                    "input {} re-encoded as {} under {:?}",
                    hex::encode(bytes),
                    hex::encode(&again),
                    ctx
                );
                // And the re-encoding is canonical.
                prop_assert_eq!(
                    encode_to_vec(&back, ctx).map(hex::encode),
                    Ok(hex::encode(&again))
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

fn framed(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()).min(0xffff) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

/// A path attribute: flags and type code biased to the known ones, a value, and now and then a
/// length field that does not match the value.
fn attribute() -> impl Strategy<Value = Vec<u8>> {
    let flags = prop_oneof![
        3 => prop::sample::select(vec![0x40u8, 0x80, 0xc0, 0xe0, 0x50, 0x90, 0xd0, 0xf0]),
        1 => any::<u8>(),
    ];
    let type_code = prop_oneof![
        4 => prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32]),
        1 => any::<u8>(),
    ];
    let value = prop_oneof![
        2 => vec(any::<u8>(), 0..=12),
        1 => vec(any::<u8>(), 0..=64),
        // MP_REACH_NLRI-shaped: AFI, SAFI, next hop length and bytes, reserved, prefixes.
        1 => (prop::sample::select(vec![1u16, 2, 3]), prop::sample::select(vec![1u8, 2, 128]),
              prop::sample::select(vec![4u8, 16, 32, 0, 5]), vec(any::<u8>(), 0..=48))
            .prop_map(|(afi, safi, nh, rest)| {
                let mut v = afi.to_be_bytes().to_vec();
                v.push(safi);
                v.push(nh);
                v.extend(rest);
                v
            }),
        // AS_PATH-shaped: segments of type 1..4 with a count.
        1 => vec((1u8..=5, 0u8..=4, vec(any::<u8>(), 0..=16)), 1..=3).prop_map(|segs| {
            segs.into_iter().flat_map(|(t, n, asns)| [vec![t, n], asns].concat()).collect()
        }),
    ];
    (
        flags,
        type_code,
        value,
        prop_oneof![6 => Just(0i32), 1 => -2i32..=2],
    )
        .prop_map(|(flags, code, value, skew)| {
            let len = (value.len() as i32 + skew).max(0) as usize;
            let mut a = vec![flags, code];
            if flags & flag::EXTENDED_LENGTH != 0 {
                a.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                a.push(len.min(255) as u8);
            }
            a.extend(value);
            a
        })
}

/// Prefix lists: length octets mostly plausible, path ids in front sometimes.
fn prefixes() -> impl Strategy<Value = Vec<u8>> {
    // Well-formed IPv4 prefixes, with or without a path id in front.
    let well_formed = |path_id: bool| {
        vec((any::<[u8; 4]>(), 0u8..=32, any::<[u8; 4]>()), 0..=4).prop_map(move |ps| {
            let mut b = Vec::new();
            for (id, len, addr) in ps {
                if path_id {
                    b.extend(id);
                }
                b.push(len);
                b.extend(&addr[..usize::from(len).div_ceil(8)]);
            }
            b
        })
    };
    prop_oneof![
        3 => well_formed(false),
        2 => well_formed(true),
        1 => vec((prop_oneof![0u8..=33, any::<u8>()], vec(any::<u8>(), 0..=4)), 0..=4)
            .prop_map(|ps| ps.into_iter().flat_map(|(len, b)| [vec![len], b].concat()).collect()),
        1 => vec(any::<u8>(), 0..=24),
    ]
}

fn update_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prefixes(),
        vec(attribute(), 0..=6),
        prefixes(),
        prop_oneof![6 => Just(0i32), 1 => -3i32..=3],
    )
        .prop_map(|(withdrawn, attrs, nlri, skew)| {
            let attrs = attrs.concat();
            let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
            b.extend(withdrawn);
            b.extend(((attrs.len() as i32 + skew).clamp(0, 0xffff) as u16).to_be_bytes());
            b.extend(attrs);
            b.extend(nlri);
            b
        })
}

fn open_body() -> impl Strategy<Value = Vec<u8>> {
    let cap = (
        prop_oneof![
            3 => prop::sample::select(vec![1u8, 2, 5, 6, 64, 65, 69, 70, 73]),
            1 => any::<u8>(),
        ],
        vec(any::<u8>(), 0..=16),
    )
        .prop_map(|(c, v)| [vec![c, v.len() as u8], v].concat());
    (
        prop_oneof![4 => Just(4u8), 1 => any::<u8>()],
        any::<[u8; 8]>(),
        vec(vec(cap, 0..=4), 0..=3),
        any::<bool>(),
        prop_oneof![6 => Just(0i32), 1 => -2i32..=2],
    )
        .prop_map(|(version, fixed, params, extended, skew)| {
            let mut b = vec![version];
            b.extend(fixed);
            let mut p = Vec::new();
            for caps in params {
                let caps = caps.concat();
                p.push(2);
                if extended {
                    p.extend((caps.len() as u16).to_be_bytes());
                } else {
                    p.push(caps.len() as u8);
                }
                p.extend(caps);
            }
            let len = (p.len() as i32 + skew).max(0) as usize;
            if extended {
                b.extend([255, 255]);
                b.extend((len as u16).to_be_bytes());
            } else {
                b.push(len.min(255) as u8);
            }
            b.extend(p);
            b
        })
}

/// A header that frames its body correctly, over a random or a shaped body.
fn framed_random_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => (1u8..=5, vec(any::<u8>(), 0..=64)).prop_map(|(t, b)| framed(t, &b)),
        1 => (any::<u8>(), vec(any::<u8>(), 0..=8)).prop_map(|(t, b)| framed(t, &b)),
        4 => update_body().prop_map(|b| framed(2, &b)),
        2 => open_body().prop_map(|b| framed(1, &b)),
    ]
}

/// Valid messages of every kind, to mutate.
fn seeds() -> Vec<(Ctx, Message)> {
    let p4 = |s: &str| -> Ipv4Net { s.parse().unwrap() };
    let p6 = |s: &str| -> Ipv6Net { s.parse().unwrap() };
    let open = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(198, 18, 1, 1),
        vec![
            Capability::Multiprotocol(AfiSafi { afi: 1, safi: 1 }),
            Capability::Multiprotocol(AfiSafi { afi: 2, safi: 1 }),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
            Capability::ExtendedNextHop {
                families: vec![ExtNextHop {
                    afi: 1,
                    safi: 1,
                    next_hop_afi: 2,
                }],
            },
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                notification: true,
                restart_time: 120,
                families: vec![GrFamily {
                    afi_safi: AfiSafi { afi: 1, safi: 1 },
                    forwarding_preserved: true,
                }],
            }),
            Capability::FourOctetAs { asn: 4_200_000_001 },
            Capability::AddPath {
                families: vec![AddPathFamily {
                    afi_safi: AfiSafi { afi: 1, safi: 1 },
                    mode: AddPathMode::SendReceive,
                }],
            },
            Capability::Fqdn {
                hostname: "node-1".into(),
                domain: "cluster.local".into(),
            },
            Capability::Unknown {
                code: 71,
                value: vec![1, 2, 3],
            },
        ],
    );
    let full_attrs = |as4: bool| Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentKind::ConfedSequence,
                    asns: vec![65001],
                },
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![64512, 4_200_000_000, 23456],
                },
                AsSegment {
                    kind: SegmentKind::Set,
                    asns: vec![1, 2],
                },
                AsSegment {
                    kind: SegmentKind::ConfedSet,
                    asns: vec![65002],
                },
            ],
        }),
        next_hop: Some(Ipv4Addr::new(198, 18, 1, 1)),
        med: Some(10),
        local_pref: Some(100),
        atomic_aggregate: true,
        aggregator: Some(Aggregator {
            asn: 4_200_000_000,
            address: Ipv4Addr::new(198, 18, 1, 2),
        }),
        communities: vec![Community::new(64512, 1), Community::NO_EXPORT],
        originator_id: Some(Ipv4Addr::new(198, 18, 1, 3)),
        cluster_list: vec![Ipv4Addr::new(198, 18, 1, 4)],
        ext_communities: vec![ExtCommunity([0, 2, 0xfc, 0, 0, 0, 0, 1])],
        as4_path: None,
        as4_aggregator: None,
        large_communities: vec![LargeCommunity {
            global: 4_200_000_000,
            local1: 1,
            local2: 2,
        }],
        unknown: vec![RawAttribute {
            flags: 0xe0,
            type_code: 99,
            value: vec![9; if as4 { 3 } else { 300 }],
        }],
    };
    let mut out = Vec::new();
    for ctx in CTXS {
        let id = |n| {
            if ctx.add_path.ipv4_unicast {
                Some(n)
            } else {
                None
            }
        };
        let id6 = |n| {
            if ctx.add_path.ipv6_unicast {
                Some(n)
            } else {
                None
            }
        };
        let v4 = Update {
            withdrawn: vec![Nlri {
                prefix: p4("198.19.1.0/26"),
                path_id: id(1),
            }],
            attrs: full_attrs(ctx.as4),
            nlri: vec![
                Nlri {
                    prefix: p4("198.19.0.0/26"),
                    path_id: id(2),
                },
                Nlri {
                    prefix: p4("0.0.0.0/0"),
                    path_id: id(3),
                },
                Nlri {
                    prefix: p4("198.19.0.7/32"),
                    path_id: id(4),
                },
            ],
            ..Update::default()
        };
        let v6 = Update {
            attrs: Attributes {
                origin: Some(Origin::Incomplete),
                as_path: Some(AsPath::sequence([64512])),
                ..Attributes::default()
            },
            mp_reach: Some(MpReach {
                next_hop: NextHop::V6 {
                    global: "fd00::1".parse::<Ipv6Addr>().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap()),
                },
                nlri: MpNlri::Ipv6(vec![Nlri {
                    prefix: p6("fd00:198:19::/122"),
                    path_id: id6(5),
                }]),
            }),
            mp_unreach: Some(MpUnreach {
                nlri: MpNlri::Ipv4(vec![Nlri {
                    prefix: p4("10.0.0.0/8"),
                    path_id: id(6),
                }]),
            }),
            ..Update::default()
        };
        let v4_over_v6 = Update {
            attrs: Attributes {
                origin: Some(Origin::Egp),
                as_path: Some(AsPath::default()),
                ..Attributes::default()
            },
            mp_reach: Some(MpReach {
                next_hop: NextHop::V6 {
                    global: "fd00::2".parse().unwrap(),
                    link_local: None,
                },
                nlri: MpNlri::Ipv4(vec![Nlri {
                    prefix: p4("198.19.2.0/26"),
                    path_id: id(7),
                }]),
            }),
            ..Update::default()
        };
        out.extend([
            (ctx, Message::Open(open.clone())),
            (ctx, Message::Update(v4)),
            (ctx, Message::Update(v6)),
            (ctx, Message::Update(v4_over_v6)),
            (
                ctx,
                Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
            ),
            (
                ctx,
                Message::Notification(Notification::cease_with_message(2, "maintenance ✓")),
            ),
            (
                ctx,
                Message::Notification(Notification::new(3, 1, vec![1, 2, 3])),
            ),
            (ctx, Message::Keepalive),
            (
                ctx,
                Message::RouteRefresh(RouteRefresh {
                    afi: 2,
                    safi: 1,
                    subtype: RouteRefreshSubtype::BeginningOfRefresh,
                }),
            ),
        ]);
    }
    out
}

fn seed_bytes() -> Vec<Vec<u8>> {
    seeds()
        .into_iter()
        .map(|(ctx, m)| encode_to_vec(&m, &ctx).expect("seed encodes"))
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// Overwrites the header length field.
    SetLength(u16),
    /// Adds to the header length field.
    SkewLength(i16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), vec(any::<u8>(), 1..=8)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<Index>(), 1usize..=8).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => any::<u16>().prop_map(Mutation::SetLength),
        1 => (-4i16..=4).prop_map(Mutation::SkewLength),
    ]
}

fn mutate(mut b: Vec<u8>, muts: &[Mutation], fix_length: bool) -> Vec<u8> {
    for m in muts {
        match m {
            Mutation::FlipBit(i, bit) if !b.is_empty() => {
                let i = i.index(b.len());
                b[i] ^= 1 << bit;
            }
            Mutation::SetByte(i, v) if !b.is_empty() => {
                let i = i.index(b.len());
                b[i] = *v;
            }
            Mutation::Truncate(i) => b.truncate(i.index(b.len() + 1)),
            Mutation::Insert(i, v) => {
                let at = i.index(b.len() + 1);
                b.splice(at..at, v.iter().copied());
            }
            Mutation::Remove(i, n) if !b.is_empty() => {
                let at = i.index(b.len());
                b.drain(at..(at + n).min(b.len()));
            }
            Mutation::SetLength(len) if b.len() >= 18 => {
                b[16..18].copy_from_slice(&len.to_be_bytes())
            }
            Mutation::SkewLength(d) if b.len() >= 18 => {
                let len = u16::from_be_bytes([b[16], b[17]]).wrapping_add_signed(*d);
                b[16..18].copy_from_slice(&len.to_be_bytes());
            }
            _ => {}
        }
    }
    // Half the time the header is made to agree with the mutated body, so that the body parsers
    // see the damage instead of the length check.
    if fix_length && b.len() >= 18 {
        let len = b.len().min(0xffff) as u16;
        b[16..18].copy_from_slice(&len.to_be_bytes());
    }
    b
}

fn mutated_valid_message() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seed_bytes();
    (
        prop::sample::select(seeds),
        vec(mutation(), 1..=4),
        any::<bool>(),
    )
        .prop_map(|(seed, muts, fix)| mutate(seed, &muts, fix))
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

#[test]
fn the_seeds_themselves_decode_cleanly() {
    for (ctx, msg) in seeds() {
        let bytes = encode_to_vec(&msg, &ctx).unwrap();
        // Equal unless 4-octet AS numbers went to a 2-octet context (AS_TRANS, by design).
        match decode(&bytes, &ctx) {
            Ok(Message::Update(u)) => assert!(u.errors.is_empty(), "{:?}", u.errors),
            Ok(back) => assert_eq!(back, msg),
            Err(e) => panic!("{ctx:?} {}: {e}", hex::encode(&bytes)),
        }
        check(&bytes).unwrap();
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop_oneof![
        vec(any::<u8>(), 0..=64),
        // Behind a valid marker, so that the length and type checks are reached.
        vec(any::<u8>(), 0..=64).prop_map(|b| [vec![0xff; 16], b].concat()),
    ]) {
        check(&bytes)?;
    }
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn valid_headers_over_random_bodies_never_panic(bytes in framed_random_body()) {
        check(&bytes)?;
    }

    #[test]
    fn mutations_of_valid_messages_never_panic(bytes in mutated_valid_message()) {
        check(&bytes)?;
    }
}

#[test]
fn frame_len_splits_a_stream_of_valid_messages() {
    // Cutting a stream of back-to-back messages at every possible point: `frame_len` says to wait
    // until a whole message has arrived, then names its exact length.
    let ctx = CTXS[2];
    let stream: Vec<u8> = seeds()
        .into_iter()
        .filter(|(c, _)| *c == ctx)
        .flat_map(|(_, m)| encode_to_vec(&m, &ctx).unwrap())
        .collect();
    let mut at = 0;
    while at < stream.len() {
        let rest = &stream[at..];
        let len = frame_len(rest, &ctx)
            .unwrap()
            .expect("a whole message is buffered");
        for cut in 0..len {
            assert_eq!(
                frame_len(&rest[..cut], &ctx),
                Ok(None),
                "at {at}, {cut} of {len} octets"
            );
        }
        assert!(decode(&rest[..len], &ctx).is_ok());
        at += len;
    }
}

//! The generators (proptest strategies): a negotiated context, and under it every message kind
//! with only the values the codec promises to carry losslessly.

use super::*;

pub(crate) fn ctx() -> impl Strategy<Value = Ctx> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(as4, v4, v6, extended_message)| Ctx {
            as4,
            add_path: AddPath {
                ipv4_unicast: v4,
                ipv6_unicast: v6,
            },
            extended_message,
        },
    )
}

/// Mostly short lists, sometimes up to `max` elements.
pub(crate) fn few<S>(s: S, max: usize) -> impl Strategy<Value = Vec<S::Value>> + Clone
where
    S: Strategy + Clone,
    S::Value: Debug,
{
    prop_oneof![4 => vec(s.clone(), 0..=max.min(4)), 1 => vec(s, 0..=max)]
}

pub(crate) fn ipv4() -> impl Strategy<Value = Ipv4Addr> + Clone {
    any::<u32>().prop_map(Ipv4Addr::from)
}

pub(crate) fn ipv6() -> impl Strategy<Value = Ipv6Addr> + Clone {
    any::<u128>().prop_map(Ipv6Addr::from)
}

/// What RFC 4271 section 6.3 accepts in NEXT_HOP.
pub(crate) fn unicast_ipv4() -> impl Strategy<Value = Ipv4Addr> + Clone {
    ipv4().prop_filter("NEXT_HOP must be unicast", |a| {
        !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
    })
}

/// AS numbers, with the edges weighted in: 0, AS_TRANS, the 2/4-octet boundary, the top.
pub(crate) fn asn(four_octet: bool) -> BoxedStrategy<u32> {
    if four_octet {
        prop_oneof![
            3 => any::<u32>(),
            1 => prop::sample::select(vec![0, 1, 23456, 64512, 65535, 65536, 4_200_000_000, u32::MAX]),
        ]
        .boxed()
    } else {
        prop_oneof![
            3 => any::<u16>().prop_map(u32::from),
            1 => prop::sample::select(vec![0u32, 1, 23456, 64512, 65535]),
        ]
        .boxed()
    }
}

pub(crate) fn segment_kind(confed: bool) -> BoxedStrategy<SegmentKind> {
    if confed {
        prop::sample::select(vec![
            SegmentKind::Set,
            SegmentKind::Sequence,
            SegmentKind::ConfedSequence,
            SegmentKind::ConfedSet,
        ])
        .boxed()
    } else {
        prop::sample::select(vec![SegmentKind::Set, SegmentKind::Sequence]).boxed()
    }
}

/// 1 to 255 AS numbers per segment, which the wire carries as one segment.
pub(crate) fn as_segment(
    four_octet: bool,
    confed: bool,
) -> impl Strategy<Value = AsSegment> + Clone {
    let asns = prop_oneof![8 => vec(asn(four_octet), 1..=6), 1 => vec(asn(four_octet), 1..=255)];
    (segment_kind(confed), asns).prop_map(|(kind, asns)| AsSegment { kind, asns })
}

pub(crate) fn as_path(four_octet: bool, confed: bool) -> impl Strategy<Value = AsPath> + Clone {
    vec(as_segment(four_octet, confed), 0..=4).prop_map(|segments| AsPath { segments })
}

pub(crate) fn aggregator(four_octet: bool) -> impl Strategy<Value = Aggregator> + Clone {
    (asn(four_octet), ipv4()).prop_map(|(asn, address)| Aggregator { asn, address })
}

pub(crate) fn origin() -> impl Strategy<Value = Origin> + Clone {
    prop::sample::select(vec![Origin::Igp, Origin::Egp, Origin::Incomplete])
}

/// Unknown optional transitive attributes, distinct type codes (a repeated code is a duplicate
/// attribute, RFC 7606 section 3 (g)), values long enough now and then for the Extended Length
/// form.
pub(crate) fn unknown_attributes() -> impl Strategy<Value = Vec<RawAttribute>> + Clone {
    let codes: Vec<u8> = (0..=255u8)
        .filter(|c| !KNOWN_ATTRIBUTES.contains(c))
        .collect();
    subsequence(codes, 0..=3)
        .prop_shuffle()
        .prop_flat_map(|codes| {
            codes
                .into_iter()
                .map(|type_code| {
                    prop_oneof![6 => vec(any::<u8>(), 0..=16), 1 => vec(any::<u8>(), 0..=300)]
                        .prop_map(move |value| RawAttribute {
                            flags: UNKNOWN_FLAGS,
                            type_code,
                            value,
                        })
                })
                .collect::<Vec<_>>()
        })
}

/// Every field of [`Attributes`]. `wire_as4` is what the session negotiated; `asn_as4` whether
/// AS numbers may need 4 octets (with `wire_as4` off that is the lossy AS_TRANS case, so the
/// equality properties keep them equal). AS4_PATH / AS4_AGGREGATOR exist only toward a 2-octet
/// peer (RFC 6793 section 4.2.2: a 4-octet speaker never sends them to another).
pub(crate) fn attributes(
    wire_as4: bool,
    asn_as4: bool,
) -> impl Strategy<Value = Attributes> + Clone {
    let main = (
        option::of(origin()),
        option::of(as_path(asn_as4, true)),
        option::of(unicast_ipv4()),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        any::<bool>(),
        option::of(aggregator(asn_as4)),
        few(any::<u32>().prop_map(Community), 80),
    );
    let more = (
        option::of(ipv4()),
        few(ipv4(), 16),
        few(any::<[u8; 8]>().prop_map(ExtCommunity), 40),
        // RFC 6793 section 6: AS4_PATH carries no confederation segments.
        as4_only(wire_as4, as_path(true, false)),
        as4_only(wire_as4, aggregator(true)),
        few(
            any::<(u32, u32, u32)>().prop_map(|(global, local1, local2)| LargeCommunity {
                global,
                local1,
                local2,
            }),
            30,
        ),
        unknown_attributes(),
    );
    (main, more).prop_map(
        |(
            (origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator, communities),
            (
                originator_id,
                cluster_list,
                ext_communities,
                as4_path,
                as4_aggregator,
                large_communities,
                unknown,
            ),
        )| Attributes {
            origin,
            as_path,
            next_hop,
            med,
            local_pref,
            atomic_aggregate,
            aggregator,
            communities,
            originator_id,
            cluster_list,
            ext_communities,
            as4_path,
            as4_aggregator,
            large_communities,
            unknown,
        },
    )
}

/// `None` when the session negotiated 4-octet AS, else sometimes a value.
pub(crate) fn as4_only<S>(wire_as4: bool, s: S) -> BoxedStrategy<Option<S::Value>>
where
    S: Strategy + 'static,
    S::Value: Debug + Clone,
{
    if wire_as4 {
        Just(None).boxed()
    } else {
        option::of(s).boxed()
    }
}

pub(crate) fn ipv4_prefix() -> impl Strategy<Value = Ipv4Net> + Clone {
    (ipv4(), 0u8..=32).prop_map(|(a, len)| Ipv4Net::new(a, len).expect("length <= 32").trunc())
}

pub(crate) fn ipv6_prefix() -> impl Strategy<Value = Ipv6Net> + Clone {
    (ipv6(), 0u8..=128).prop_map(|(a, len)| Ipv6Net::new(a, len).expect("length <= 128").trunc())
}

/// A prefix with a path identifier exactly when ADD-PATH is on for its family.
pub(crate) fn nlri4(add_path: bool) -> impl Strategy<Value = Nlri<Ipv4Net>> + Clone {
    (ipv4_prefix(), any::<u32>()).prop_map(move |(prefix, id)| Nlri {
        prefix,
        path_id: add_path.then_some(id),
    })
}

pub(crate) fn nlri6(add_path: bool) -> impl Strategy<Value = Nlri<Ipv6Net>> + Clone {
    (ipv6_prefix(), any::<u32>()).prop_map(move |(prefix, id)| Nlri {
        prefix,
        path_id: add_path.then_some(id),
    })
}

pub(crate) fn v6_next_hop() -> impl Strategy<Value = NextHop> + Clone {
    (ipv6(), option::of(ipv6())).prop_map(|(global, link_local)| NextHop::V6 { global, link_local })
}

/// IPv4 unicast with an IPv4 next hop or an IPv6 one (RFC 8950), IPv6 unicast with a global
/// next hop and optionally a link-local one (RFC 2545 section 3).
pub(crate) fn mp_reach(ctx: Ctx) -> impl Strategy<Value = MpReach> + Clone {
    prop_oneof![
        (
            prop_oneof![ipv4().prop_map(NextHop::V4), v6_next_hop()],
            few(nlri4(ctx.add_path.ipv4_unicast), 30)
        )
            .prop_map(|(next_hop, v)| MpReach {
                next_hop,
                nlri: MpNlri::Ipv4(v)
            }),
        (v6_next_hop(), few(nlri6(ctx.add_path.ipv6_unicast), 30)).prop_map(|(next_hop, v)| {
            MpReach {
                next_hop,
                nlri: MpNlri::Ipv6(v),
            }
        }),
    ]
}

pub(crate) fn mp_unreach(ctx: Ctx) -> impl Strategy<Value = MpUnreach> + Clone {
    prop_oneof![
        few(nlri4(ctx.add_path.ipv4_unicast), 30).prop_map(|v| MpUnreach {
            nlri: MpNlri::Ipv4(v)
        }),
        few(nlri6(ctx.add_path.ipv6_unicast), 30).prop_map(|v| MpUnreach {
            nlri: MpNlri::Ipv6(v)
        }),
    ]
}

/// A valid UPDATE: ORIGIN and AS_PATH whenever something is announced, NEXT_HOP whenever the
/// NLRI field announces (RFC 7606 section 3 (d)), so that decoding records no error.
pub(crate) fn update_with(ctx: Ctx, asn_as4: bool) -> impl Strategy<Value = Update> + Clone {
    (
        few(nlri4(ctx.add_path.ipv4_unicast), 40),
        attributes(ctx.as4, asn_as4),
        option::of(mp_reach(ctx)),
        option::of(mp_unreach(ctx)),
        few(nlri4(ctx.add_path.ipv4_unicast), 40),
        (origin(), as_path(asn_as4, true), unicast_ipv4()),
    )
        .prop_map(
            |(withdrawn, mut attrs, mp_reach, mp_unreach, nlri, (o, p, nh))| {
                if !nlri.is_empty() || mp_reach.is_some() {
                    attrs.origin.get_or_insert(o);
                    attrs.as_path.get_or_insert(p);
                }
                if !nlri.is_empty() {
                    attrs.next_hop.get_or_insert(nh);
                }
                Update {
                    withdrawn,
                    attrs,
                    mp_reach,
                    mp_unreach,
                    nlri,
                    errors: Vec::new(),
                }
            },
        )
}

/// A lossless UPDATE: AS numbers fit the negotiated width.
pub(crate) fn update(ctx: Ctx) -> impl Strategy<Value = Update> + Clone {
    update_with(ctx, ctx.as4)
}

pub(crate) fn afi_safi() -> impl Strategy<Value = AfiSafi> + Clone {
    prop_oneof![
        3 => prop::sample::select(vec![AfiSafi { afi: 1, safi: 1 }, AfiSafi { afi: 2, safi: 1 }]),
        1 => any::<(u16, u8)>().prop_map(|(afi, safi)| AfiSafi { afi, safi }),
    ]
}

pub(crate) fn add_path_mode() -> impl Strategy<Value = AddPathMode> + Clone {
    prop::sample::select(vec![
        AddPathMode::Receive,
        AddPathMode::Send,
        AddPathMode::SendReceive,
    ])
}

pub(crate) fn cap_multiprotocol() -> impl Strategy<Value = Capability> + Clone {
    afi_safi().prop_map(Capability::Multiprotocol)
}

/// Value at most 255 octets: 42 records of 6.
pub(crate) fn cap_extended_next_hop() -> impl Strategy<Value = Capability> + Clone {
    let f = any::<(u16, u16, u16)>().prop_map(|(afi, safi, next_hop_afi)| ExtNextHop {
        afi,
        safi,
        next_hop_afi,
    });
    few(f, 42).prop_map(|families| Capability::ExtendedNextHop { families })
}

/// Restart time is 12 bits; value at most 255 octets: 2 + 63 records of 4.
pub(crate) fn cap_graceful_restart() -> impl Strategy<Value = Capability> + Clone {
    let f = (afi_safi(), any::<bool>()).prop_map(|(afi_safi, forwarding_preserved)| GrFamily {
        afi_safi,
        forwarding_preserved,
    });
    (any::<bool>(), any::<bool>(), 0u16..=0x0fff, few(f, 63)).prop_map(
        |(restart_state, notification, restart_time, families)| {
            Capability::GracefulRestart(GracefulRestart {
                restart_state,
                notification,
                restart_time,
                families,
            })
        },
    )
}

pub(crate) fn cap_four_octet_as() -> impl Strategy<Value = Capability> + Clone {
    asn(true).prop_map(|asn| Capability::FourOctetAs { asn })
}

pub(crate) fn cap_add_path() -> impl Strategy<Value = Capability> + Clone {
    let f =
        (afi_safi(), add_path_mode()).prop_map(|(afi_safi, mode)| AddPathFamily { afi_safi, mode });
    few(f, 63).prop_map(|families| Capability::AddPath { families })
}

/// Hostname and domain, ASCII or any printable text, together within the 255-octet value.
pub(crate) fn cap_fqdn() -> impl Strategy<Value = Capability> + Clone {
    let name = prop_oneof!["[a-z0-9-]{0,63}", "[a-z0-9.-]{0,100}", "\\PC{0,25}"];
    (name.clone(), name).prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain })
}

pub(crate) fn cap_unknown() -> impl Strategy<Value = Capability> + Clone {
    let codes: Vec<u8> = (0..=255u8)
        .filter(|c| !KNOWN_CAPABILITIES.contains(c))
        .collect();
    (
        prop::sample::select(codes),
        prop_oneof![4 => vec(any::<u8>(), 0..=16), 1 => vec(any::<u8>(), 0..=255)],
    )
        .prop_map(|(code, value)| Capability::Unknown { code, value })
}

pub(crate) fn capability() -> impl Strategy<Value = Capability> + Clone {
    prop_oneof![
        cap_multiprotocol(),
        Just(Capability::RouteRefresh),
        cap_extended_next_hop(),
        Just(Capability::ExtendedMessage),
        cap_graceful_restart(),
        cap_four_octet_as(),
        cap_add_path(),
        Just(Capability::EnhancedRouteRefresh),
        cap_fqdn(),
        cap_unknown(),
    ]
}

/// Hold time 0 or at least 3 s, non-zero BGP identifier (RFC 4271 section 6.2, RFC 6286).
pub(crate) fn open_with(
    caps: impl Strategy<Value = Vec<Capability>> + Clone,
) -> impl Strategy<Value = Open> + Clone {
    (any::<u16>(), prop_oneof![Just(0u16), 3u16..], 1u32.., caps).prop_map(
        |(my_as, hold_time, id, capabilities)| Open {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        },
    )
}

pub(crate) fn open() -> impl Strategy<Value = Open> + Clone {
    open_with(vec(capability(), 0..=12))
}

/// One of each capability variant, in any order, plus random ones.
pub(crate) fn open_with_every_capability() -> impl Strategy<Value = Open> + Clone {
    let each = (
        cap_multiprotocol(),
        cap_extended_next_hop(),
        cap_graceful_restart(),
        cap_four_octet_as(),
        cap_add_path(),
        cap_fqdn(),
        cap_unknown(),
        vec(capability(), 0..=4),
    )
        .prop_map(|(mp, enh, gr, as4, ap, fqdn, unknown, extra)| {
            let mut caps = vec![
                mp,
                Capability::RouteRefresh,
                enh,
                Capability::ExtendedMessage,
                gr,
                as4,
                ap,
                Capability::EnhancedRouteRefresh,
                fqdn,
                unknown,
            ];
            caps.extend(extra);
            caps
        })
        .prop_shuffle();
    open_with(each)
}

pub(crate) fn notification() -> impl Strategy<Value = Notification> + Clone {
    prop_oneof![
        (any::<u8>(), any::<u8>(), few(any::<u8>(), 300))
            .prop_map(|(c, s, d)| Notification::new(c, s, d)),
        // Cease with a shutdown communication (RFC 9003), texts longer than 255 octets included.
        (
            prop_oneof![Just(2u8), Just(4u8), any::<u8>()],
            "\\PC{0,120}"
        )
            .prop_map(|(sub, text)| Notification::cease_with_message(sub, &text)),
    ]
}

pub(crate) fn route_refresh() -> impl Strategy<Value = RouteRefresh> + Clone {
    let subtype = prop_oneof![
        Just(RouteRefreshSubtype::Request),
        Just(RouteRefreshSubtype::BeginningOfRefresh),
        Just(RouteRefreshSubtype::EndOfRefresh),
        // 0, 1 and 2 have names: `Other` is any other value.
        (3u8..=255).prop_map(RouteRefreshSubtype::Other),
    ];
    (any::<u16>(), any::<u8>(), subtype).prop_map(|(afi, safi, subtype)| RouteRefresh {
        afi,
        safi,
        subtype,
    })
}

pub(crate) fn message_with(ctx: Ctx, asn_as4: bool) -> impl Strategy<Value = Message> + Clone {
    prop_oneof![
        2 => open().prop_map(Message::Open),
        4 => update_with(ctx, asn_as4).prop_map(Message::Update),
        1 => notification().prop_map(Message::Notification),
        1 => Just(Message::Keepalive),
        1 => route_refresh().prop_map(Message::RouteRefresh),
    ]
}

/// A context and a message valid and lossless under it.
pub(crate) fn ctx_and_message() -> impl Strategy<Value = (Ctx, Message)> {
    ctx().prop_flat_map(|ctx| (Just(ctx), message_with(ctx, ctx.as4)))
}

pub(crate) fn ctx_and_update() -> impl Strategy<Value = (Ctx, Update)> {
    ctx().prop_flat_map(|ctx| (Just(ctx), update(ctx)))
}

//! The properties: any message survives encode then decode under any context and re-encodes to
//! the same bytes; each message kind and attribute in turn; 4-octet AS numbers toward a
//! 2-octet peer; and oversized updates refused without touching the buffer.

use super::checks::*;
use super::strategies::*;
use super::*;

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn any_message_survives_encode_then_decode_under_any_ctx((ctx, msg) in ctx_and_message()) {
        round_trip(&msg, &ctx)?;
    }

    #[test]
    fn reencoding_a_decoded_message_gives_the_same_bytes(
        (ctx, msg) in ctx().prop_flat_map(|ctx| (Just(ctx), message_with(ctx, true)))
    ) {
        // Here AS numbers may need 4 octets whatever the context: the AS_TRANS / AS4_PATH
        // encoding toward a 2-octet peer must be canonical too.
        canonical(&msg, &ctx)?;
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn open_with_every_capability_variant_survives_encode_then_decode(open in open_with_every_capability()) {
        let msg = Message::Open(open);
        // The context does not change how an OPEN is written.
        round_trip(&msg, &Ctx::default())?;
        round_trip(&msg, &Ctx { as4: true, add_path: AddPath::ALL, extended_message: true })?;
    }

    #[test]
    fn update_with_every_attribute_survives_encode_then_decode_without_errors((ctx, u) in ctx_and_update()) {
        round_trip(&Message::Update(u), &ctx)?;
    }

    #[test]
    fn mp_reach_and_mp_unreach_carry_path_ids_exactly_when_add_path_is_on(
        (ctx, reach, unreach) in ctx().prop_flat_map(|ctx| (Just(ctx), mp_reach(ctx), mp_unreach(ctx)))
    ) {
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..Attributes::default()
        };
        let u = Update { attrs, mp_reach: Some(reach), mp_unreach: Some(unreach), ..Update::default() };
        let bytes = round_trip(&Message::Update(u.clone()), &ctx)?;
        // Flipping the ADD-PATH setting of a family changes nothing when no prefix of that family
        // occurs, and breaks the round trip (or the parse) when one does: path ids follow the
        // context, family by family.
        if let Some(bytes) = bytes {
            for f in tortie_bgp::wire::Family::ALL {
                let mut flipped = ctx;
                flipped.add_path.set(f, !ctx.add_path.get(f));
                let again = decode(&bytes, &flipped);
                let has_prefixes = [u.mp_reach.as_ref().map(|m| &m.nlri), u.mp_unreach.as_ref().map(|m| &m.nlri)]
                    .into_iter()
                    .flatten()
                    .any(|n| n.family() == f && !n.is_empty());
                if !has_prefixes {
                    prop_assert_eq!(again, Ok(Message::Update(u.clone())));
                } else {
                    prop_assert_ne!(again, Ok(Message::Update(u.clone())));
                }
            }
        }
    }

    #[test]
    fn notification_with_any_code_subcode_and_data_survives_encode_then_decode(
        (ctx, n) in (ctx(), notification())
    ) {
        round_trip(&Message::Notification(n), &ctx)?;
    }

    #[test]
    fn cease_shutdown_communication_survives_and_is_cut_at_255_octets(
        sub in prop_oneof![Just(2u8), Just(4u8)],
        text in prop_oneof!["\\PC{0,40}", "\\PC{200,300}"],
    ) {
        let n = Notification::cease_with_message(sub, &text);
        prop_assert!(n.data.len() <= 256);
        let bytes = round_trip(&Message::Notification(n.clone()), &Ctx::default())?.expect("fits");
        let Ok(Message::Notification(back)) = decode(&bytes, &Ctx::default()) else { unreachable!() };
        let said = back.shutdown_communication().expect("well-formed communication");
        prop_assert!(said.len() <= 255);
        prop_assert!(text.starts_with(said));
        // Cut only as far as needed: the next character would not have fit.
        if said.len() < text.len() {
            prop_assert!(said.len() + text[said.len()..].chars().next().unwrap().len_utf8() > 255);
        }
    }

    #[test]
    fn route_refresh_of_every_subtype_survives_encode_then_decode((ctx, rr) in (ctx(), route_refresh())) {
        let bytes = round_trip(&Message::RouteRefresh(rr), &ctx)?.expect("23 octets always fit");
        prop_assert_eq!(bytes.len(), 23);
    }

    #[test]
    fn four_octet_asns_toward_a_two_octet_peer_come_back_through_as4_path_and_as4_aggregator(
        path in as_path(true, false),
        agg in option::of(aggregator(true)),
        nlri in vec(nlri4(false), 1..=4),
    ) {
        // RFC 6793 section 4.2.2: AS_PATH and AGGREGATOR carry AS_TRANS for 4-octet numbers,
        // AS4_PATH and AS4_AGGREGATOR the true values; section 4.2.3 puts them back together.
        // Extended messages, so that four full segments fit twice (AS_PATH and AS4_PATH).
        let ctx = Ctx { extended_message: true, ..Ctx::default() };
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(path.clone()),
            next_hop: Some(Ipv4Addr::new(198, 18, 1, 1)),
            aggregator: agg,
            ..Attributes::default()
        };
        let u = Update { attrs, nlri, ..Update::default() };
        let bytes = encode_to_vec(&Message::Update(u), &ctx).expect("fits");
        let Ok(Message::Update(back)) = decode(&bytes, &ctx) else { panic!("{}", hex::encode(&bytes)) };
        prop_assert!(back.errors.is_empty(), "{:?}", back.errors);
        let two_octet = |a: u32| if a > 65535 { 23456 } else { a };
        let wire_path = back.attrs.as_path.clone().expect("AS_PATH");
        prop_assert!(wire_path.segments.iter().flat_map(|s| &s.asns).all(|&a| a <= 65535));
        prop_assert_eq!(
            wire_path.segments.iter().flat_map(|s| s.asns.clone()).collect::<Vec<_>>(),
            path.segments.iter().flat_map(|s| s.asns.iter().map(|&a| two_octet(a))).collect::<Vec<_>>()
        );
        prop_assert_eq!(back.attrs.as4_path.is_some(), path.has_4_octet_asn());
        // Adjacent AS_SEQUENCEs are one path however they are cut into segments.
        prop_assert_eq!(back.attrs.effective_as_path().map(joined), Some(joined(path)));
        prop_assert_eq!(back.attrs.effective_aggregator(), agg);
    }

    #[test]
    fn oversized_updates_are_too_long_and_leave_the_buffer_untouched(
        (ctx, n) in (ctx(), 700usize..=14_000),
        path_id in any::<u32>(),
    ) {
        // n /24s: 4 octets each (8 with ADD-PATH); under 4096 octets or over it, and at the top
        // of the range over 65535 as well.
        let add_path = ctx.add_path.ipv4_unicast;
        let nlri: Vec<_> = (0..n)
            .map(|i| Nlri {
                prefix: Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | ((i as u32) << 8)), 24).unwrap(),
                path_id: add_path.then_some(path_id),
            })
            .collect();
        let attrs = Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([64512])),
            next_hop: Some(Ipv4Addr::new(198, 18, 1, 1)),
            ..Attributes::default()
        };
        let msg = Message::Update(Update { attrs, nlri, ..Update::default() });
        let aspath_len = if ctx.as4 { 9 } else { 7 };
        let expected = 19 + 2 + 2 + 4 + aspath_len + 7 + n * if add_path { 8 } else { 4 };
        let max = ctx.max_len();
        let result = round_trip(&msg, &ctx)?;
        prop_assert_eq!(result.is_some(), expected <= max, "{} octets, limit {}", expected, max);
        if expected > max {
            let mut out = BytesMut::from(&b"xyz"[..]);
            prop_assert_eq!(encode(&msg, &ctx, &mut out), Err(EncodeError::TooLong { len: expected, max }));
            prop_assert_eq!(&out[..], b"xyz");
        }
    }
}

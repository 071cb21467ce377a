//! Edges, written out: messages of exactly the maximum size and one octet more, capability
//! values over 255 octets, KEEPALIVE under every context, and End-of-RIB markers.

use super::*;

/// An UPDATE of exactly `len` octets: the mandatory attributes and as many 0.0.0.0/0 (one octet
/// each) as fill it.
fn update_of_len(len: usize) -> Message {
    let attrs = Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(Ipv4Addr::new(198, 18, 1, 1)),
        ..Attributes::default()
    };
    let fixed = 19 + 2 + 2 + 4 + 3 + 7;
    let nlri = vec![Nlri::new(Ipv4Net::default()); len - fixed];
    Message::Update(Update {
        attrs,
        nlri,
        ..Update::default()
    })
}

#[test]
fn update_of_exactly_4096_octets_encodes_and_one_octet_more_is_too_long() {
    let ctx = Ctx::default();
    let bytes = encode_to_vec(&update_of_len(MAX_LEN), &ctx).unwrap();
    assert_eq!(bytes.len(), MAX_LEN);
    assert_eq!(decode(&bytes, &ctx).unwrap(), update_of_len(MAX_LEN));
    let mut out = BytesMut::from(&b"queued"[..]);
    let err = encode(&update_of_len(MAX_LEN + 1), &ctx, &mut out).unwrap_err();
    assert_eq!(
        err,
        EncodeError::TooLong {
            len: MAX_LEN + 1,
            max: MAX_LEN
        }
    );
    assert_eq!(&out[..], b"queued");
}

#[test]
fn update_of_exactly_65535_octets_encodes_with_extended_messages_and_one_octet_more_is_too_long() {
    let ctx = Ctx {
        extended_message: true,
        ..Ctx::default()
    };
    let bytes = encode_to_vec(&update_of_len(MAX_EXTENDED_LEN), &ctx).unwrap();
    assert_eq!(bytes.len(), MAX_EXTENDED_LEN);
    assert_eq!(
        decode(&bytes, &ctx).unwrap(),
        update_of_len(MAX_EXTENDED_LEN)
    );
    let mut out = BytesMut::new();
    let err = encode(&update_of_len(MAX_EXTENDED_LEN + 1), &ctx, &mut out).unwrap_err();
    assert_eq!(
        err,
        EncodeError::TooLong {
            len: MAX_EXTENDED_LEN + 1,
            max: MAX_EXTENDED_LEN
        }
    );
    assert!(out.is_empty());
}

#[test]
fn notification_fills_exactly_4096_octets_and_one_more_data_octet_is_too_long() {
    let ctx = Ctx::default();
    let n = |len| Message::Notification(Notification::new(6, 2, vec![b'x'; len]));
    let bytes = encode_to_vec(&n(MAX_LEN - 21), &ctx).unwrap();
    assert_eq!(bytes.len(), MAX_LEN);
    assert_eq!(decode(&bytes, &ctx).unwrap(), n(MAX_LEN - 21));
    let err = encode_to_vec(&n(MAX_LEN - 20), &ctx).unwrap_err();
    assert_eq!(
        err,
        EncodeError::TooLong {
            len: MAX_LEN + 1,
            max: MAX_LEN
        }
    );
}

#[test]
fn open_over_4096_octets_is_too_long_even_with_extended_messages() {
    // 20 unknown capabilities of 255 octets: 20 * 257 = 5140 octets of capabilities.
    let caps = (0..20)
        .map(|i| Capability::Unknown {
            code: 200 + i,
            value: vec![i; 255],
        })
        .collect();
    let msg = Message::Open(Open {
        my_as: 64512,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(1, 2, 3, 4),
        capabilities: caps,
    });
    let ctx = Ctx {
        extended_message: true,
        ..Ctx::default()
    };
    let mut out = BytesMut::from(&b"queued"[..]);
    let err = encode(&msg, &ctx, &mut out).unwrap_err();
    assert!(
        matches!(err, EncodeError::TooLong { len, max: MAX_LEN } if len > MAX_LEN),
        "{err:?}"
    );
    assert_eq!(&out[..], b"queued");
}

#[test]
fn capability_values_over_255_octets_are_field_too_long_and_leave_the_buffer_untouched() {
    for cap in [
        Capability::Unknown {
            code: 200,
            value: vec![0; 256],
        },
        Capability::Fqdn {
            hostname: "h".repeat(200),
            domain: "d".repeat(54),
        },
        Capability::Fqdn {
            hostname: "h".repeat(256),
            domain: String::new(),
        },
    ] {
        let msg = Message::Open(Open::new(
            64512,
            90,
            Ipv4Addr::new(1, 2, 3, 4),
            vec![cap.clone()],
        ));
        let mut out = BytesMut::from(&b"queued"[..]);
        let err = encode(&msg, &Ctx::default(), &mut out).unwrap_err();
        assert!(
            matches!(err, EncodeError::FieldTooLong { .. }),
            "{cap:?}: {err:?}"
        );
        assert_eq!(&out[..], b"queued", "{cap:?}");
    }
    // The largest FQDN that fits: 1 + 200 + 1 + 53 = 255.
    let fits = Capability::Fqdn {
        hostname: "h".repeat(200),
        domain: "d".repeat(53),
    };
    let msg = Message::Open(Open::new(64512, 90, Ipv4Addr::new(1, 2, 3, 4), vec![fits]));
    assert_eq!(
        decode(
            &encode_to_vec(&msg, &Ctx::default()).unwrap(),
            &Ctx::default()
        ),
        Ok(msg)
    );
}

#[test]
fn keepalive_survives_encode_then_decode_under_every_ctx() {
    for bits in 0..16u8 {
        let ctx = Ctx {
            as4: bits & 1 != 0,
            add_path: AddPath {
                ipv4_unicast: bits & 2 != 0,
                ipv6_unicast: bits & 4 != 0,
            },
            extended_message: bits & 8 != 0,
        };
        let bytes = encode_to_vec(&Message::Keepalive, &ctx).unwrap();
        assert_eq!(bytes.len(), 19);
        assert_eq!(decode(&bytes, &ctx), Ok(Message::Keepalive));
    }
}

#[test]
fn end_of_rib_markers_survive_encode_then_decode() {
    for ctx in [
        Ctx::default(),
        Ctx {
            as4: true,
            add_path: AddPath::ALL,
            extended_message: true,
        },
    ] {
        for f in tortie_bgp::wire::Family::ALL {
            let msg = Message::Update(Update::end_of_rib(f));
            let Ok(Message::Update(back)) = decode(&encode_to_vec(&msg, &ctx).unwrap(), &ctx)
            else {
                panic!()
            };
            assert_eq!(back.as_end_of_rib(), Some(f));
        }
    }
}

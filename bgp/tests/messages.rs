//! Header, OPEN, NOTIFICATION, KEEPALIVE and ROUTE-REFRESH: byte vectors in, values out, and the
//! same bytes back from the encoder.

mod common;
use common::*;

use std::net::Ipv4Addr;
use tortie_bgp::wire::{
    self, Action, AddPathFamily, AddPathMode, AfiSafi, Capability, Ctx, ExtNextHop, GrFamily,
    GracefulRestart, Message, Notification, Open, Reason, RouteRefresh, RouteRefreshSubtype,
    decode, encode_to_vec, frame_len,
};

fn as4() -> Ctx {
    Ctx {
        as4: true,
        ..Ctx::default()
    }
}

#[test]
fn keepalive_is_a_bare_header() {
    let bytes = msg(4, &[]);
    assert_eq!(decode(&bytes, &Ctx::default()), Ok(Message::Keepalive));
    assert_eq!(
        encode_to_vec(&Message::Keepalive, &Ctx::default()).unwrap(),
        bytes
    );
}

#[test]
fn keepalive_with_a_body_is_bad_message_length() {
    let err = decode(&msg(4, &[0]), &Ctx::default()).unwrap_err();
    assert_eq!(
        (err.action, err.code, err.subcode),
        (Action::SessionReset, 1, 2)
    );
    assert_eq!(err.data, vec![0, 20], "data is the erroneous length field");
}

#[test]
fn bad_marker_is_connection_not_synchronized() {
    let mut bytes = msg(4, &[]);
    bytes[3] = 0xfe;
    let err = decode(&bytes, &Ctx::default()).unwrap_err();
    assert_eq!(
        (err.code, err.subcode, err.reason),
        (1, 1, Reason::BadMarker)
    );
    assert_eq!(frame_len(&bytes, &Ctx::default()).unwrap_err().subcode, 1);
}

#[test]
fn length_below_19_is_bad_message_length() {
    let mut bytes = msg(4, &[]);
    bytes[17] = 18;
    let err = frame_len(&bytes, &Ctx::default()).unwrap_err();
    assert_eq!(
        (err.code, err.subcode, err.data.as_slice()),
        (1, 2, &[0, 18][..])
    );
}

#[test]
fn length_above_4096_is_refused_without_extended_messages() {
    let body = [0u8; 4096 - 19 + 1];
    let bytes = msg(2, &body);
    let err = frame_len(&bytes, &Ctx::default()).unwrap_err();
    assert_eq!((err.code, err.subcode), (1, 2));
    let ext = Ctx {
        extended_message: true,
        ..Ctx::default()
    };
    assert_eq!(frame_len(&bytes, &ext), Ok(Some(bytes.len())));
}

#[test]
fn open_stays_limited_to_4096_with_extended_messages() {
    let mut body = vec![4, 0xfd, 0xe9, 0, 90, 198, 18, 1, 1, 0];
    body.resize(5000, 0);
    let ext = Ctx {
        extended_message: true,
        ..Ctx::default()
    };
    let err = decode(&msg(1, &body), &ext).unwrap_err();
    assert_eq!((err.code, err.subcode), (1, 2));
}

#[test]
fn unknown_message_type_is_bad_message_type_with_the_type_as_data() {
    let err = decode(&msg(9, &[]), &Ctx::default()).unwrap_err();
    assert_eq!(
        (err.code, err.subcode, err.data.as_slice()),
        (1, 3, &[9][..])
    );
}

#[test]
fn frame_len_waits_for_the_whole_message() {
    let bytes = msg(4, &[]);
    assert_eq!(frame_len(&bytes[..10], &Ctx::default()), Ok(None));
    assert_eq!(frame_len(&bytes[..18], &Ctx::default()), Ok(None));
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes);
    assert_eq!(frame_len(&two, &Ctx::default()), Ok(Some(19)));
}

/// OPEN from AS 65001, hold 90, id 198.18.1.1, with one Capabilities parameter holding
/// multiprotocol IPv4 unicast, route refresh and 4-octet AS 65001.
const OPEN_BASIC: &str = "04 fde9 005a c6120101 10 02 0e 01040001 0001 0200 4104 0000fde9";

#[test]
fn open_decodes_fields_and_capabilities() {
    let bytes = msg(1, &hex(OPEN_BASIC));
    let Message::Open(open) = decode(&bytes, &Ctx::default()).unwrap() else {
        panic!("not an OPEN")
    };
    assert_eq!(open.my_as, 65001);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.bgp_id, Ipv4Addr::new(198, 18, 1, 1));
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Multiprotocol(AfiSafi { afi: 1, safi: 1 }),
            Capability::RouteRefresh,
            Capability::FourOctetAs { asn: 65001 },
        ]
    );
    assert_eq!(
        encode_to_vec(&Message::Open(open), &Ctx::default()).unwrap(),
        bytes
    );
}

#[test]
fn open_four_octet_as_comes_from_the_capability_behind_as_trans() {
    let open = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(198, 18, 1, 2),
        vec![Capability::FourOctetAs { asn: 4_200_000_001 }],
    );
    assert_eq!(open.my_as, 23456);
    let bytes = encode_to_vec(&Message::Open(open.clone()), &Ctx::default()).unwrap();
    let Message::Open(back) = decode(&bytes, &Ctx::default()).unwrap() else {
        panic!()
    };
    assert_eq!(back.asn(), 4_200_000_001);
    assert_eq!(back, open);
}

#[test]
fn open_with_every_capability_round_trips() {
    let caps = vec![
        Capability::Multiprotocol(AfiSafi { afi: 2, safi: 1 }),
        Capability::RouteRefresh,
        Capability::ExtendedNextHop {
            families: vec![ExtNextHop {
                afi: 1,
                safi: 1,
                next_hop_afi: 2,
            }],
        },
        Capability::ExtendedMessage,
        Capability::GracefulRestart(GracefulRestart {
            restart_state: true,
            notification: true,
            restart_time: 120,
            families: vec![
                GrFamily {
                    afi_safi: AfiSafi { afi: 1, safi: 1 },
                    forwarding_preserved: true,
                },
                GrFamily {
                    afi_safi: AfiSafi { afi: 2, safi: 1 },
                    forwarding_preserved: false,
                },
            ],
        }),
        Capability::FourOctetAs { asn: 64512 },
        Capability::AddPath {
            families: vec![
                AddPathFamily {
                    afi_safi: AfiSafi { afi: 1, safi: 1 },
                    mode: AddPathMode::SendReceive,
                },
                AddPathFamily {
                    afi_safi: AfiSafi { afi: 2, safi: 1 },
                    mode: AddPathMode::Receive,
                },
            ],
        },
        Capability::EnhancedRouteRefresh,
        Capability::Fqdn {
            hostname: "node-1".into(),
            domain: "cluster.local".into(),
        },
        Capability::Unknown {
            code: 71,
            value: vec![0, 1, 1, 0, 0, 0, 0],
        },
    ];
    let open = Open::new(64512, 240, Ipv4Addr::new(198, 18, 1, 3), caps);
    let bytes = encode_to_vec(&Message::Open(open.clone()), &Ctx::default()).unwrap();
    assert_eq!(decode(&bytes, &Ctx::default()), Ok(Message::Open(open)));
}

#[test]
fn graceful_restart_capability_bits_follow_rfc_4724() {
    // R and N set, restart time 120 (0x078), IPv4 unicast with F set.
    let caps = hex("40 06 c078 0001 01 80");
    let mut body = hex("04 fde9 005a c6120101");
    body.push(2 + caps.len() as u8);
    body.extend_from_slice(&[2, caps.len() as u8]);
    body.extend_from_slice(&caps);
    let Message::Open(open) = decode(&msg(1, &body), &Ctx::default()).unwrap() else {
        panic!()
    };
    assert_eq!(
        open.capabilities,
        vec![Capability::GracefulRestart(GracefulRestart {
            restart_state: true,
            notification: true,
            restart_time: 120,
            families: vec![GrFamily {
                afi_safi: AfiSafi { afi: 1, safi: 1 },
                forwarding_preserved: true
            }],
        })]
    );
}

#[test]
fn open_version_3_is_unsupported_version_with_4_as_data() {
    let mut body = hex(OPEN_BASIC);
    body[0] = 3;
    let err = decode(&msg(1, &body), &Ctx::default()).unwrap_err();
    assert_eq!(
        (err.code, err.subcode, err.data.as_slice()),
        (2, 1, &[0, 4][..])
    );
}

#[test]
fn open_hold_time_of_one_or_two_seconds_is_unacceptable() {
    for hold in [1u8, 2] {
        let mut body = hex(OPEN_BASIC);
        body[4] = hold;
        let err = decode(&msg(1, &body), &Ctx::default()).unwrap_err();
        assert_eq!((err.code, err.subcode), (2, 6), "hold time {hold}");
    }
    let mut body = hex(OPEN_BASIC);
    body[4] = 0;
    assert!(
        decode(&msg(1, &body), &Ctx::default()).is_ok(),
        "0 means no keepalives and is fine"
    );
}

#[test]
fn open_zero_bgp_identifier_is_bad_bgp_identifier() {
    let mut body = hex(OPEN_BASIC);
    body[5..9].fill(0);
    let err = decode(&msg(1, &body), &Ctx::default()).unwrap_err();
    assert_eq!((err.code, err.subcode), (2, 3));
}

#[test]
fn open_unknown_optional_parameter_is_unsupported_optional_parameter() {
    let body = hex("04 fde9 005a c6120101 04 01 02 0000");
    let err = decode(&msg(1, &body), &Ctx::default()).unwrap_err();
    assert_eq!((err.code, err.subcode), (2, 4));
}

#[test]
fn open_parameter_overrunning_the_message_is_an_open_error() {
    let body = hex("04 fde9 005a c6120101 06 02 09 0104000100");
    let err = decode(&msg(1, &body), &Ctx::default()).unwrap_err();
    assert_eq!(
        (err.code, err.subcode, err.reason),
        (2, 0, Reason::OptionalParametersOverrun)
    );
}

#[test]
fn open_capability_with_wrong_length_is_malformed() {
    // 4-octet AS capability with 3 octets.
    let body = hex("04 fde9 005a c6120101 05 02 03 41 01 00");
    let err = decode(&msg(1, &body), &Ctx::default()).unwrap_err();
    assert_eq!((err.code, err.subcode), (2, 0));
    assert!(matches!(
        err.reason,
        Reason::MalformedCapability { code: 65, .. }
    ));
}

#[test]
fn open_extended_optional_parameters_length_is_understood() {
    // RFC 9072: Non-Ext OP Len 255, Non-Ext OP Type 255, 2-octet lengths.
    let body = hex("04 fde9 005a c6120101 ff ff 0009 02 0006 4104 0000fde9");
    let Message::Open(open) = decode(&msg(1, &body), &Ctx::default()).unwrap() else {
        panic!()
    };
    assert_eq!(
        open.capabilities,
        vec![Capability::FourOctetAs { asn: 65001 }]
    );
}

#[test]
fn open_with_more_than_255_octets_of_capabilities_uses_extended_parameters() {
    let caps = (0..100)
        .map(|i| Capability::Unknown {
            code: 200,
            value: vec![i; 3],
        })
        .collect();
    let open = Open::new(65001, 90, Ipv4Addr::new(198, 18, 1, 1), caps);
    let bytes = encode_to_vec(&Message::Open(open.clone()), &Ctx::default()).unwrap();
    assert_eq!(bytes[28], 255, "Non-Ext OP Len");
    assert_eq!(bytes[29], 255, "Non-Ext OP Type");
    assert_eq!(decode(&bytes, &Ctx::default()), Ok(Message::Open(open)));
}

#[test]
fn add_path_with_an_undefined_direction_is_kept_as_unknown() {
    let body = hex("04 fde9 005a c6120101 08 02 06 45 04 0001 01 07");
    let Message::Open(open) = decode(&msg(1, &body), &Ctx::default()).unwrap() else {
        panic!()
    };
    assert_eq!(
        open.capabilities,
        vec![Capability::Unknown {
            code: 69,
            value: vec![0, 1, 1, 7]
        }]
    );
}

#[test]
fn notification_carries_code_subcode_and_data() {
    let bytes = msg(3, &[3, 1, 0xaa]);
    let n = Notification::new(3, 1, vec![0xaa]);
    assert_eq!(
        decode(&bytes, &Ctx::default()),
        Ok(Message::Notification(n.clone()))
    );
    assert_eq!(
        encode_to_vec(&Message::Notification(n), &Ctx::default()).unwrap(),
        bytes
    );
}

#[test]
fn notification_shutdown_communication_is_read_per_rfc_9003() {
    let mut body = vec![6, 2, 11];
    body.extend_from_slice(b"maintenance");
    let Message::Notification(n) = decode(&msg(3, &body), &Ctx::default()).unwrap() else {
        panic!()
    };
    assert_eq!(n.shutdown_communication(), Some("maintenance"));
    assert_eq!(n.describe(), "6/2 (Cease: Administrative Shutdown)");
}

#[test]
fn notification_shutdown_communication_is_cut_to_255_octets_at_a_char_boundary() {
    let long = "é".repeat(200); // 400 octets
    let n = Notification::cease_with_message(2, &long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.shutdown_communication().map(str::len), Some(254));
}

#[test]
fn notification_with_malformed_communication_still_decodes() {
    let Message::Notification(n) = decode(&msg(3, &[6, 4, 50, b'x']), &Ctx::default()).unwrap()
    else {
        panic!()
    };
    assert_eq!(n.shutdown_communication(), None);
    assert_eq!(n.data, vec![50, b'x']);
}

#[test]
fn route_refresh_subtypes_of_rfc_7313() {
    for (sub, expected) in [
        (0, RouteRefreshSubtype::Request),
        (1, RouteRefreshSubtype::BeginningOfRefresh),
        (2, RouteRefreshSubtype::EndOfRefresh),
        (9, RouteRefreshSubtype::Other(9)),
    ] {
        let bytes = msg(5, &[0, 2, sub, 1]);
        let rr = RouteRefresh {
            afi: 2,
            safi: 1,
            subtype: expected,
        };
        assert_eq!(
            decode(&bytes, &Ctx::default()),
            Ok(Message::RouteRefresh(rr))
        );
        assert_eq!(
            encode_to_vec(&Message::RouteRefresh(rr), &Ctx::default()).unwrap(),
            bytes
        );
    }
}

#[test]
fn route_refresh_borr_with_bad_length_is_route_refresh_message_error() {
    let bytes = msg(5, &[0, 1, 1, 1, 0]);
    let err = decode(&bytes, &Ctx::default()).unwrap_err();
    assert_eq!((err.code, err.subcode), (7, 1));
    assert_eq!(err.data, bytes, "data is the whole message");
}

#[test]
fn plain_route_refresh_with_bad_length_is_bad_message_length() {
    let err = decode(&msg(5, &[0, 1, 0, 1, 0]), &Ctx::default()).unwrap_err();
    assert_eq!((err.code, err.subcode), (1, 2));
}

#[test]
fn encoding_a_message_over_the_limit_fails_and_leaves_the_buffer_alone() {
    let n = Notification::new(6, 0, vec![0; 5000]);
    let mut out = bytes::BytesMut::from(&b"abc"[..]);
    let err = wire::encode(&Message::Notification(n.clone()), &as4(), &mut out).unwrap_err();
    assert!(matches!(
        err,
        wire::EncodeError::TooLong {
            len: 5021,
            max: 4096
        }
    ));
    assert_eq!(&out[..], b"abc");
    let ext = Ctx {
        extended_message: true,
        ..as4()
    };
    assert!(wire::encode(&Message::Notification(n), &ext, &mut out).is_ok());
}

//! Cases the properties found, kept as named regression tests (there is no failure persistence:
//! see `config`).

use super::*;

/// Found by `four_octet_asns_toward_a_two_octet_peer_come_back_through_as4_path_and_as4_aggregator`
/// when its paths may hold confederation segments (the generator now leaves them out).
///
/// RFC 6793 section 4.2.3: when AS_PATH and AS4_PATH hold as many AS numbers, the path is
/// AS4_PATH, but "a valid AS_CONFED_SEQUENCE or AS_CONFED_SET path segment SHALL be prepended
/// if it is either the leading path segment or is adjacent to a path segment that is
/// prepended". `AsPath::merge_as4` once stopped as soon as no AS number was left to take and
/// so dropped the leading confederation segment.
///
/// Wire bytes (as4 off): AS_PATH `03 01 fde9 02 01 5ba0` = ( 65001 ) 23456,
/// AS4_PATH `02 01 fa56ea00` = 4200000000; the effective path is `(65001) 4200000000`.
#[test]
fn leading_confederation_segment_survives_as_trans_toward_a_two_octet_peer() {
    let path = AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentKind::ConfedSequence,
                asns: vec![65001],
            },
            AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![4_200_000_000],
            },
        ],
    };
    let ctx = Ctx::default();
    let attrs = Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(path.clone()),
        next_hop: Some(Ipv4Addr::new(198, 18, 1, 1)),
        ..Attributes::default()
    };
    let nlri = vec![Nlri::new("10.0.0.0/24".parse().unwrap())];
    let msg = Message::Update(Update {
        attrs,
        nlri,
        ..Update::default()
    });
    let bytes = encode_to_vec(&msg, &ctx).unwrap();
    assert_eq!(
        hex::encode(&bytes),
        "ffffffffffffffffffffffffffffffff003a020000001f\
         40010100\
         400208 0301fde9 02015ba0\
         400304c6120101\
         c01106 0201fa56ea00\
         180a0000"
            .replace(' ', "")
    );
    let Ok(Message::Update(back)) = decode(&bytes, &ctx) else {
        panic!("{}", hex::encode(&bytes))
    };
    assert_eq!(back.attrs.effective_as_path(), Some(path));
}

/// An AS_SET of more than 255 AS numbers has no one-segment wire form, and splitting it into
/// several sets would make each count 1 in the route length (RFC 4271 section 9.1.2.2 a), so
/// the encoder refuses it instead of silently lengthening the path.
#[test]
fn as_set_of_more_than_255_asns_is_refused_rather_than_split() {
    let path = AsPath {
        segments: vec![AsSegment {
            kind: SegmentKind::Set,
            asns: (1..=300).collect(),
        }],
    };
    let ctx = Ctx {
        as4: true,
        ..Ctx::default()
    };
    let attrs = Attributes {
        as_path: Some(path),
        ..Attributes::default()
    };
    let msg = Message::Update(Update {
        attrs,
        ..Update::default()
    });
    assert_eq!(
        encode_to_vec(&msg, &ctx),
        Err(tortie_bgp::wire::EncodeError::FieldTooLong {
            what: "AS_SET",
            len: 300,
            max: 255
        })
    );
}

/// RFC 4271 section 4.3: the lower four bits of the Attribute Flags octet "MUST be zero when
/// sent and MUST be ignored when received": an UPDATE received with `c7 63 01 aa` (optional
/// transitive type 99 with unused bits 0x07) is passed on as `e0 63 01 aa`.
#[test]
fn unknown_attribute_is_passed_on_with_the_unused_flag_bits_zero() {
    let ctx = Ctx::default();
    let body = [0, 0, 0, 4, 0xc7, 99, 1, 0xaa];
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    bytes.push(2);
    bytes.extend_from_slice(&body);
    let msg = decode(&bytes, &ctx).unwrap();
    let out = encode_to_vec(&msg, &ctx).unwrap();
    assert_eq!(hex::encode(&out[19..]), "00000004e06301aa");
}

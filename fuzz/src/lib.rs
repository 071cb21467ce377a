//! What the fuzz targets check, shared with the seed-corpus writer.
//!
//! An input's first byte chooses the decode context (bit 0: 4-octet AS, bit 1: ADD-PATH for
//! IPv4 unicast, bit 2: ADD-PATH for IPv6 unicast, bit 3: extended messages; the other bits are
//! ignored); the rest is the message (target `decode`) or a byte stream (target `frame`).

use tortie_bgp::wire::attr::flag;
use tortie_bgp::wire::error::{code, subcode};
use tortie_bgp::wire::{decode, encode_to_vec, frame_len, Action, AddPath, Ctx, DecodeError, Message, Reason};

pub fn ctx_from_byte(b: u8) -> Ctx {
    Ctx {
        as4: b & 1 != 0,
        add_path: AddPath { ipv4_unicast: b & 2 != 0, ipv6_unicast: b & 4 != 0 },
        extended_message: b & 8 != 0,
    }
}

pub fn ctx_to_byte(ctx: &Ctx) -> u8 {
    u8::from(ctx.as4)
        | u8::from(ctx.add_path.ipv4_unicast) << 1
        | u8::from(ctx.add_path.ipv6_unicast) << 2
        | u8::from(ctx.extended_message) << 3
}

/// The action and UPDATE error subcode RFC 7606 (and RFC 4271 section 6.3, RFC 6793, RFC 4760)
/// give a finding that does not reset the session; `None` when the reason must reset it.
pub fn rfc7606(reason: &Reason) -> Option<(Action, u8)> {
    use Action::*;
    use Reason::*;
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
        UnsupportedFamily { .. } => (AttributeDiscard, subcode::OPTIONAL_ATTRIBUTE_ERROR),
        _ => return None,
    })
}

fn check_finding(e: &DecodeError) {
    assert_ne!(e.action, Action::SessionReset, "a session reset must come back as Err: {e:?}");
    assert_eq!(e.code, code::UPDATE_MESSAGE, "{e:?}");
    assert_eq!(Some((e.action, e.subcode)), rfc7606(&e.reason), "{e:?}");
}

/// What a re-encoding is allowed to change: findings are not encoded, and unknown optional
/// transitive attributes are passed on with the Partial bit set (RFC 4271 section 5).
pub fn normalized(msg: &Message) -> Message {
    let mut msg = msg.clone();
    if let Message::Update(u) = &mut msg {
        u.errors.clear();
        for a in &mut u.attrs.unknown {
            a.flags |= flag::PARTIAL;
        }
    }
    msg
}

/// Decodes one message and checks everything that must hold of the outcome. Panics otherwise.
pub fn check_message(bytes: &[u8], ctx: &Ctx) {
    let framed = frame_len(bytes, ctx);
    let msg = match decode(bytes, ctx) {
        Err(e) => {
            assert_eq!(e.action, Action::SessionReset, "{e:?}");
            assert!([1, 2, 3, 7].contains(&e.code), "NOTIFICATION code {}", e.code);
            return;
        }
        Ok(msg) => msg,
    };
    assert_eq!(framed, Ok(Some(bytes.len())), "a message that decodes frames whole");
    if let Message::Update(u) = &msg {
        u.errors.iter().for_each(check_finding);
    }
    // A clean refusal is fine (a lossily decoded FQDN may no longer fit its field); otherwise
    // the re-encoding decodes to the same message and is itself canonical.
    let Ok(again) = encode_to_vec(&msg, ctx) else { return };
    let back = decode(&again, ctx).unwrap_or_else(|e| panic!("re-encoding {} does not decode: {e}", hex(&again)));
    assert_eq!(normalized(&back), normalized(&msg), "re-encoded as {}", hex(&again));
    let third = encode_to_vec(&back, ctx).expect("a re-encoding encodes again");
    assert_eq!(hex(&third), hex(&again), "re-encoding is not canonical");
}

/// Cuts a byte stream into messages the way a session does, checking each.
pub fn check_stream(mut stream: &[u8], ctx: &Ctx) {
    loop {
        match frame_len(stream, ctx) {
            Err(e) => {
                assert_eq!(e.action, Action::SessionReset);
                assert_eq!(e.code, code::MESSAGE_HEADER);
                return;
            }
            Ok(None) => {
                return;
            }
            Ok(Some(n)) => {
                assert!((19..=ctx.max_len()).contains(&n) && n <= stream.len(), "frame of {n} octets");
                // One octet short of the frame is "wait for more".
                assert_eq!(frame_len(&stream[..n - 1], ctx), Ok(None));
                check_message(&stream[..n], ctx);
                stream = &stream[n..];
            }
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

//! The checks every generated message goes through: its size limit under a context, the
//! encode → decode → re-encode round trip, and the canonical form the lossy cases are compared
//! in.

use super::*;

/// The largest message of this kind under `ctx` (RFC 8654 section 4: OPEN and KEEPALIVE keep
/// 4096 even with extended messages).
pub(crate) fn max_len(msg: &Message, ctx: &Ctx) -> usize {
    match msg.message_type() {
        MessageType::Open | MessageType::Keepalive => MAX_LEN,
        _ => ctx.max_len(),
    }
}

/// Encodes after some bytes already in the buffer, then either decodes the result back to an
/// equal message, or checks that the refusal is `TooLong` for a message that really is too long
/// and left the buffer untouched. Returns the encoding when there is one.
pub(crate) fn round_trip(msg: &Message, ctx: &Ctx) -> Result<Option<Vec<u8>>, TestCaseError> {
    let before = b"bytes queued earlier".as_slice();
    let mut out = BytesMut::from(before);
    match encode(msg, ctx, &mut out) {
        Ok(()) => {
            prop_assert_eq!(&out[..before.len()], before, "encode must append");
            let bytes = &out[before.len()..];
            prop_assert!(
                bytes.len() <= max_len(msg, ctx),
                "{} octets over the limit",
                bytes.len()
            );
            let decoded = decode(bytes, ctx);
            if let Ok(Message::Update(u)) = &decoded {
                prop_assert!(
                    u.errors.is_empty(),
                    "RFC 7606 findings on a valid UPDATE: {:#?}",
                    u.errors
                );
            }
            prop_assert_eq!(decoded.as_ref(), Ok(msg), "bytes: {}", hex::encode(bytes));
            Ok(Some(bytes.to_vec()))
        }
        Err(EncodeError::TooLong { len, max }) => {
            prop_assert_eq!(
                &out[..],
                before,
                "a refused message must leave the buffer as it was"
            );
            prop_assert_eq!(max, max_len(msg, ctx));
            prop_assert!(len > max);
            // The length it reports is the real one: an UPDATE (NOTIFICATION, ROUTE-REFRESH)
            // under 65536 octets does fit once extended messages are negotiated.
            let ext = Ctx {
                extended_message: true,
                ..*ctx
            };
            if max_len(msg, &ext) == MAX_EXTENDED_LEN && len <= MAX_EXTENDED_LEN {
                let bytes =
                    encode_to_vec(msg, &ext).map_err(|e| TestCaseError::fail(format!("{e}")))?;
                prop_assert_eq!(bytes.len(), len);
            }
            Ok(None)
        }
        Err(e) => Err(TestCaseError::fail(format!("valid message refused: {e}"))),
    }
}

/// The same path with adjacent AS_SEQUENCE segments joined (RFC 4271 section 9.1.2.2 counts
/// them the same way).
pub(crate) fn joined(path: AsPath) -> AsPath {
    let mut segments: Vec<AsSegment> = Vec::new();
    for seg in path.segments {
        match segments.last_mut() {
            Some(last)
                if last.kind == SegmentKind::Sequence && seg.kind == SegmentKind::Sequence =>
            {
                last.asns.extend(seg.asns)
            }
            _ => segments.push(seg),
        }
    }
    AsPath { segments }
}

/// `encode(decode(encode(m))) == encode(m)`.
pub(crate) fn canonical(msg: &Message, ctx: &Ctx) -> Result<(), TestCaseError> {
    let Ok(first) = encode_to_vec(msg, ctx) else {
        return Ok(());
    };
    let decoded = decode(&first, ctx)
        .map_err(|e| TestCaseError::fail(format!("{e}: {}", hex::encode(&first))))?;
    let again = encode_to_vec(&decoded, ctx).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(hex::encode(&again), hex::encode(&first));
    Ok(())
}

//! The 19-octet message header (RFC 4271 section 4.1) and framing.

use super::Ctx;
use super::error::{DecodeError, EncodeError, Reason, code, subcode};
use bytes::{BufMut, BytesMut};
use serde::Serialize;

pub const HEADER_LEN: usize = 19;
/// RFC 4271 section 4.1.
pub const MAX_LEN: usize = 4096;
/// RFC 8654 section 3, once both sides advertised the extended message capability.
pub const MAX_EXTENDED_LEN: usize = 65535;

const MARKER: [u8; 16] = [0xff; 16];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    fn from_u8(t: u8) -> Option<Self> {
        Some(match t {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// Inclusive length bounds of a message of this type, header included (RFC 4271 section
    /// 6.1). OPEN and KEEPALIVE keep the 4096 limit even with extended messages (RFC 8654
    /// section 4). ROUTE-REFRESH length beyond the minimum is checked by its own decoder,
    /// because RFC 7313 gives it its own error.
    fn bounds(self, ctx: &Ctx) -> (usize, usize) {
        let max = ctx.max_len();
        match self {
            MessageType::Open => (29, MAX_LEN),
            MessageType::Update => (23, max),
            MessageType::Notification => (21, max),
            MessageType::Keepalive => (HEADER_LEN, HEADER_LEN),
            MessageType::RouteRefresh => (23, max),
        }
    }
}

fn bad_length(len: u16, min: usize, max: usize) -> DecodeError {
    DecodeError::reset(
        Reason::BadLength {
            len,
            min: min as u16,
            max: max as u16,
        },
        code::MESSAGE_HEADER,
        subcode::BAD_MESSAGE_LENGTH,
        len.to_be_bytes().to_vec(),
    )
}

/// Checks the marker and the length field of the header at the start of `buf`.
fn check_prefix(buf: &[u8], ctx: &Ctx) -> Result<Option<u16>, DecodeError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if head[..16] != MARKER {
        return Err(DecodeError::reset(
            Reason::BadMarker,
            code::MESSAGE_HEADER,
            subcode::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        ));
    }
    let len = u16::from_be_bytes([head[16], head[17]]);
    if usize::from(len) < HEADER_LEN || usize::from(len) > ctx.max_len() {
        return Err(bad_length(len, HEADER_LEN, ctx.max_len()));
    }
    Ok(Some(len))
}

/// The length of the first message in a TCP byte stream, once all of it has arrived.
/// `Ok(None)`: wait for more bytes. `Err`: the stream is out of sync; reset the session.
pub fn frame_len(buf: &[u8], ctx: &Ctx) -> Result<Option<usize>, DecodeError> {
    Ok(check_prefix(buf, ctx)?
        .map(usize::from)
        .filter(|&len| buf.len() >= len))
}

/// Validates the header of a complete message and returns its type and body.
pub(crate) fn parse<'a>(buf: &'a [u8], ctx: &Ctx) -> Result<(MessageType, &'a [u8]), DecodeError> {
    let Some(len) = check_prefix(buf, ctx)? else {
        return Err(DecodeError::reset(
            Reason::LengthMismatch {
                len: 0,
                have: buf.len(),
            },
            code::MESSAGE_HEADER,
            subcode::BAD_MESSAGE_LENGTH,
            Vec::new(),
        ));
    };
    if usize::from(len) != buf.len() {
        return Err(DecodeError::reset(
            Reason::LengthMismatch {
                len,
                have: buf.len(),
            },
            code::MESSAGE_HEADER,
            subcode::BAD_MESSAGE_LENGTH,
            len.to_be_bytes().to_vec(),
        ));
    }
    let kind = MessageType::from_u8(buf[18]).ok_or_else(|| {
        DecodeError::reset(
            Reason::UnknownType(buf[18]),
            code::MESSAGE_HEADER,
            subcode::BAD_MESSAGE_TYPE,
            vec![buf[18]],
        )
    })?;
    let (min, max) = kind.bounds(ctx);
    if usize::from(len) < min || usize::from(len) > max {
        return Err(bad_length(len, min, max));
    }
    Ok((kind, &buf[HEADER_LEN..]))
}

/// Writes a header, lets `body` append the body, then fills in the length.
pub(crate) fn write(
    kind: MessageType,
    ctx: &Ctx,
    out: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.reserve(HEADER_LEN);
    out.put_slice(&MARKER);
    out.put_u16(0);
    out.put_u8(kind as u8);
    body(out)?;
    let len = out.len() - start;
    let max = kind.bounds(ctx).1;
    if len > max {
        return Err(EncodeError::TooLong { len, max });
    }
    out[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
    Ok(())
}

//! The BGP-4 wire format (RFC 4271 section 4) and its extensions.
//!
//! Decoding is two steps kept apart for readability: a structural parse (lengths, TLVs, prefixes)
//! and the RFC 7606 validation that decides what a malformation costs ([`rfc7606`]). Encoding
//! writes into a `BytesMut` and refuses messages that exceed the negotiated size.

pub mod attr;
pub mod capability;
mod ctx;
pub mod error;
mod header;
pub mod nlri;
pub mod notification;
mod open;
pub mod pack;
pub mod rfc7606;
mod route_refresh;
mod update;

pub use attr::{
    Aggregator, AsPath, AsSegment, Attributes, Community, ExtCommunity, LargeCommunity, Origin,
    RawAttribute, SegmentKind,
};
pub use capability::{
    AddPathFamily, AddPathMode, AfiSafi, Capability, ExtNextHop, GrFamily, GracefulRestart,
};
pub use ctx::{AddPath, Ctx, Family};
pub use error::{Action, DecodeError, EncodeError, Reason};
pub use header::{HEADER_LEN, MAX_EXTENDED_LEN, MAX_LEN, MessageType, frame_len};
pub use nlri::{MpNlri, NextHop, Nlri};
pub use notification::Notification;
pub use open::Open;
pub use route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use update::{MpReach, MpUnreach, Update};

use bytes::BytesMut;
use serde::Serialize;

/// One BGP message.
// UPDATE dominates both the size and the traffic; boxing it would cost an allocation per
// message for no gain, since messages are moved once from the codec to their handler.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// Decodes exactly one message: `buf` holds its header and body and nothing more
/// (use [`frame_len`] to cut messages out of a stream).
///
/// `Err` means the session must be reset with the NOTIFICATION the error carries. Lesser RFC 7606
/// findings in an UPDATE (treat-as-withdraw, attribute discard) come back inside
/// [`Update::errors`], with everything that could still be decoded.
pub fn decode(buf: &[u8], ctx: &Ctx) -> Result<Message, DecodeError> {
    let (kind, body) = header::parse(buf, ctx)?;
    match kind {
        MessageType::Open => open::decode(body).map(Message::Open),
        MessageType::Update => update::decode(body, ctx).map(Message::Update),
        MessageType::Notification => Ok(Message::Notification(notification::decode(body))),
        MessageType::Keepalive => Ok(Message::Keepalive),
        MessageType::RouteRefresh => route_refresh::decode(buf, body).map(Message::RouteRefresh),
    }
}

/// Appends the encoding of `msg` to `out`. On error `out` is left as it was.
pub fn encode(msg: &Message, ctx: &Ctx, out: &mut BytesMut) -> Result<(), EncodeError> {
    let start = out.len();
    let res = header::write(msg.message_type(), ctx, out, |out| match msg {
        Message::Open(m) => open::encode(m, out),
        Message::Update(m) => update::encode(m, ctx, out),
        Message::Notification(m) => notification::encode(m, out),
        Message::Keepalive => Ok(()),
        Message::RouteRefresh(m) => {
            route_refresh::encode(m, out);
            Ok(())
        }
    });
    if res.is_err() {
        out.truncate(start);
    }
    res
}

/// Encodes `msg` into a fresh buffer.
pub fn encode_to_vec(msg: &Message, ctx: &Ctx) -> Result<Vec<u8>, EncodeError> {
    let mut out = BytesMut::new();
    encode(msg, ctx, &mut out)?;
    Ok(out.to_vec())
}

/// Lowercase hex of raw bytes in JSON output.
pub(crate) fn serialize_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s.serialize_str(&text)
}

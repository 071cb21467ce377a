//! NOTIFICATION messages (RFC 4271 section 4.5), with the shutdown communication of RFC 8203 as
//! updated by RFC 9003.

use super::error::{EncodeError, code};
use bytes::{BufMut, BytesMut};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// Cease subcodes (RFC 4486 section 4, RFC 8538, RFC 9384).
pub mod cease {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// RFC 9003 section 2: the communication is at most 255 octets of UTF-8.
pub const MAX_COMMUNICATION: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// A Cease with a shutdown communication (RFC 9003 section 2): `text` is cut at a character
    /// boundary to fit 255 octets.
    pub fn cease_with_message(subcode: u8, text: &str) -> Self {
        let mut end = text.len().min(MAX_COMMUNICATION);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&text.as_bytes()[..end]);
        Notification {
            code: code::CEASE,
            subcode,
            data,
        }
    }

    /// The shutdown communication of an Administrative Shutdown or Reset, if the data holds a
    /// well-formed one. A malformed one is not an error (RFC 9003 section 2 only asks to log it);
    /// the raw data stays available.
    pub fn shutdown_communication(&self) -> Option<&str> {
        use cease::*;
        if self.code != code::CEASE
            || !matches!(self.subcode, ADMINISTRATIVE_SHUTDOWN | ADMINISTRATIVE_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    /// "code/subcode (names)", as operators read NOTIFICATIONs in `show` output.
    pub fn describe(&self) -> String {
        let (c, s) = names(self.code, self.subcode);
        format!(
            "{}/{} ({c}{}{s})",
            self.code,
            self.subcode,
            if s.is_empty() { "" } else { ": " }
        )
    }
}

/// Names of error codes and subcodes (RFC 4271 section 4.5 and the updates listed in
/// [`cease`]).
pub fn names(code: u8, subcode: u8) -> (&'static str, &'static str) {
    let code_name = match code {
        1 => "Message Header Error",
        2 => "OPEN Message Error",
        3 => "UPDATE Message Error",
        4 => "Hold Timer Expired",
        5 => "Finite State Machine Error",
        6 => "Cease",
        7 => "ROUTE-REFRESH Message Error",
        _ => "Unknown",
    };
    let sub = match (code, subcode) {
        (1, 1) => "Connection Not Synchronized",
        (1, 2) => "Bad Message Length",
        (1, 3) => "Bad Message Type",
        (2, 1) => "Unsupported Version Number",
        (2, 2) => "Bad Peer AS",
        (2, 3) => "Bad BGP Identifier",
        (2, 4) => "Unsupported Optional Parameter",
        (2, 6) => "Unacceptable Hold Time",
        (2, 7) => "Unsupported Capability",
        (2, 11) => "Role Mismatch",
        (3, 1) => "Malformed Attribute List",
        (3, 2) => "Unrecognized Well-known Attribute",
        (3, 3) => "Missing Well-known Attribute",
        (3, 4) => "Attribute Flags Error",
        (3, 5) => "Attribute Length Error",
        (3, 6) => "Invalid ORIGIN Attribute",
        (3, 8) => "Invalid NEXT_HOP Attribute",
        (3, 9) => "Optional Attribute Error",
        (3, 10) => "Invalid Network Field",
        (3, 11) => "Malformed AS_PATH",
        (5, 1) => "Receive Unexpected Message in OpenSent State",
        (5, 2) => "Receive Unexpected Message in OpenConfirm State",
        (5, 3) => "Receive Unexpected Message in Established State",
        (6, 1) => "Maximum Number of Prefixes Reached",
        (6, 2) => "Administrative Shutdown",
        (6, 3) => "Peer De-configured",
        (6, 4) => "Administrative Reset",
        (6, 5) => "Connection Rejected",
        (6, 6) => "Other Configuration Change",
        (6, 7) => "Connection Collision Resolution",
        (6, 8) => "Out of Resources",
        (6, 9) => "Hard Reset",
        (6, 10) => "BFD Down",
        (7, 1) => "Invalid Message Length",
        _ => "",
    };
    (code_name, sub)
}

impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Hex<'a>(&'a [u8]);
        impl Serialize for Hex<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                super::serialize_hex(self.0, s)
            }
        }
        let (code_name, sub_name) = names(self.code, self.subcode);
        let mut st = s.serialize_struct("Notification", 6)?;
        st.serialize_field("code", &self.code)?;
        st.serialize_field("subcode", &self.subcode)?;
        st.serialize_field("code_name", code_name)?;
        st.serialize_field("subcode_name", sub_name)?;
        st.serialize_field("data", &Hex(&self.data))?;
        if let Some(text) = self.shutdown_communication() {
            st.serialize_field("communication", text)?;
        }
        st.end()
    }
}

/// A NOTIFICATION is never answered with one, so decoding it cannot fail once the header is
/// valid (which guarantees the 2 octets of code and subcode).
pub(crate) fn decode(body: &[u8]) -> Notification {
    match body {
        [code, subcode, data @ ..] => Notification {
            code: *code,
            subcode: *subcode,
            data: data.to_vec(),
        },
        _ => Notification {
            code: 0,
            subcode: 0,
            data: body.to_vec(),
        },
    }
}

pub(crate) fn encode(n: &Notification, out: &mut BytesMut) -> Result<(), EncodeError> {
    out.put_u8(n.code);
    out.put_u8(n.subcode);
    out.put_slice(&n.data);
    Ok(())
}

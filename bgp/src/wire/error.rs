//! Decode errors typed by the action RFC 7606 prescribes and the NOTIFICATION RFC 4271 section 6
//! (and its updates) would send.

use serde::Serialize;
use std::fmt;

/// What the receiver of a malformed message does (RFC 7606 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Ignore the malformed attribute and process the rest of the UPDATE.
    AttributeDiscard,
    /// Process every prefix the UPDATE carries as a withdrawal.
    TreatAsWithdraw,
    /// Send the NOTIFICATION and close the session.
    SessionReset,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::AttributeDiscard => "attribute-discard",
            Action::TreatAsWithdraw => "treat-as-withdraw",
            Action::SessionReset => "session-reset",
        })
    }
}

/// NOTIFICATION error codes (RFC 4271 section 4.5, RFC 7313).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH_MESSAGE: u8 = 7;
}

/// NOTIFICATION error subcodes, per code.
pub mod subcode {
    // Message Header Error (RFC 4271 section 6.1)
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    // OPEN Message Error (RFC 4271 section 6.2, RFC 5492)
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    // UPDATE Message Error (RFC 4271 section 6.3)
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
    // ROUTE-REFRESH Message Error (RFC 7313 section 5)
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// What exactly was wrong, for logs, the `decode` dissector and tests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reason {
    #[error("marker is not all ones")]
    BadMarker,
    #[error("length field {len} is outside {min}..={max}")]
    BadLength { len: u16, min: u16, max: u16 },
    #[error("buffer holds {have} octets but the length field says {len}")]
    LengthMismatch { len: u16, have: usize },
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    #[error("hold time {0} s is neither 0 nor at least 3 s")]
    UnacceptableHoldTime(u16),
    #[error("BGP identifier 0.0.0.0 is not allowed")]
    ZeroBgpIdentifier,
    #[error("optional parameters overrun the OPEN message")]
    OptionalParametersOverrun,
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    #[error("capability {code} is malformed: {what}")]
    MalformedCapability { code: u8, what: &'static str },
    #[error("withdrawn routes length or total path attribute length overruns the UPDATE")]
    UpdateLengthsOverrun,
    #[error("withdrawn routes field is malformed: {0}")]
    InvalidWithdrawn(&'static str),
    #[error("NLRI field is malformed: {0}")]
    InvalidNlri(&'static str),
    #[error("path attribute {} overruns the path attribute field", code.map_or("header".to_string(), |c| c.to_string()))]
    AttributeOverrun { code: Option<u8> },
    #[error("path attribute {code} has flags {flags:#04x}, conflicting with its type")]
    AttributeFlags { code: u8, flags: u8 },
    #[error("path attribute {code} has invalid length {len}")]
    AttributeLength { code: u8, len: usize },
    #[error("path attribute {code} appears more than once")]
    DuplicateAttribute { code: u8 },
    #[error("well-known attribute {code} is not recognized")]
    UnrecognizedWellKnown { code: u8 },
    #[error("mandatory attribute {code} is missing")]
    MissingAttribute { code: u8 },
    #[error("ORIGIN value {0} is undefined")]
    InvalidOrigin(u8),
    #[error("AS_PATH is malformed: {0}")]
    MalformedAsPath(&'static str),
    #[error("AS4_PATH is malformed: {0}")]
    MalformedAs4Path(&'static str),
    #[error("{code} received from a 4-octet-AS speaker (RFC 6793 section 6)")]
    UnexpectedAs4Attribute { code: u8 },
    #[error("NEXT_HOP {0} is not a unicast address")]
    InvalidNextHop(std::net::Ipv4Addr),
    #[error("multiprotocol next hop length {len} is invalid for AFI {afi}")]
    MpNextHopLength { afi: u16, len: usize },
    #[error("{code} is malformed: {what}")]
    MalformedMp { code: u8, what: &'static str },
    #[error("{code} for unsupported AFI {afi} SAFI {safi}")]
    UnsupportedFamily { code: u8, afi: u16, safi: u8 },
    #[error("ROUTE-REFRESH has length {0}, expected 23")]
    RouteRefreshLength(usize),
}

/// In JSON a reason is its sentence.
impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A decode failure: what was wrong, the RFC 7606 action it calls for, and the NOTIFICATION
/// (code, subcode, data) that RFC 4271 section 6 assigns to it. For treat-as-withdraw and
/// attribute discard the NOTIFICATION is not sent; it is kept for logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error, Serialize)]
#[error("{reason}: {action} (NOTIFICATION {code}/{subcode})")]
pub struct DecodeError {
    pub action: Action,
    pub reason: Reason,
    pub code: u8,
    pub subcode: u8,
    #[serde(serialize_with = "super::serialize_hex")]
    pub data: Vec<u8>,
}

impl DecodeError {
    pub(crate) fn new(
        action: Action,
        reason: Reason,
        code: u8,
        subcode: u8,
        data: Vec<u8>,
    ) -> Self {
        DecodeError {
            action,
            reason,
            code,
            subcode,
            data,
        }
    }

    pub(crate) fn reset(reason: Reason, code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self::new(Action::SessionReset, reason, code, subcode, data)
    }
}

/// Why a message could not be encoded. These are faults of the caller, never of a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {len} octets exceeds the negotiated maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("{what} is {len} octets, more than its field can hold ({max})")]
    FieldTooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

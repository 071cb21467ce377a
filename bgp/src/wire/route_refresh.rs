//! ROUTE-REFRESH messages (RFC 2918) with the subtypes of enhanced route refresh (RFC 7313).

use super::error::{DecodeError, Reason, code, subcode};
use bytes::{BufMut, BytesMut};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteRefreshSubtype {
    /// A plain request to re-advertise (RFC 2918).
    Request,
    /// Beginning of Route Refresh (RFC 7313 section 4).
    BeginningOfRefresh,
    /// End of Route Refresh.
    EndOfRefresh,
    /// Any other value, which the receiver ignores (RFC 7313 section 5).
    Other(u8),
}

impl RouteRefreshSubtype {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => RouteRefreshSubtype::Request,
            1 => RouteRefreshSubtype::BeginningOfRefresh,
            2 => RouteRefreshSubtype::EndOfRefresh,
            v => RouteRefreshSubtype::Other(v),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            RouteRefreshSubtype::Request => 0,
            RouteRefreshSubtype::BeginningOfRefresh => 1,
            RouteRefreshSubtype::EndOfRefresh => 2,
            RouteRefreshSubtype::Other(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RouteRefresh {
    pub afi: u16,
    pub safi: u8,
    pub subtype: RouteRefreshSubtype,
}

/// `whole` is the complete message: RFC 7313 section 5 puts it in the NOTIFICATION data.
pub(crate) fn decode(whole: &[u8], body: &[u8]) -> Result<RouteRefresh, DecodeError> {
    let Ok([a0, a1, sub, safi]) = <[u8; 4]>::try_from(body) else {
        let reason = Reason::RouteRefreshLength(whole.len());
        // Subtypes 1 and 2 have their own error; a plain request keeps RFC 4271's.
        return Err(match body.get(2) {
            Some(1 | 2) => DecodeError::reset(
                reason,
                code::ROUTE_REFRESH_MESSAGE,
                subcode::INVALID_MESSAGE_LENGTH,
                whole.to_vec(),
            ),
            _ => DecodeError::reset(
                reason,
                code::MESSAGE_HEADER,
                subcode::BAD_MESSAGE_LENGTH,
                (whole.len() as u16).to_be_bytes().to_vec(),
            ),
        });
    };
    Ok(RouteRefresh {
        afi: u16::from_be_bytes([a0, a1]),
        safi,
        subtype: RouteRefreshSubtype::from_u8(sub),
    })
}

pub(crate) fn encode(r: &RouteRefresh, out: &mut BytesMut) {
    out.put_u16(r.afi);
    out.put_u8(r.subtype.to_u8());
    out.put_u8(r.safi);
}

//! UPDATE messages (RFC 4271 section 4.3), with multiprotocol reachability (RFC 4760) and
//! End-of-RIB markers (RFC 4724 section 2).

use super::attr::{self, Attributes};
use super::error::{Action, DecodeError, EncodeError, Reason, code, subcode};
use super::nlri::{self, MpNlri, NextHop, Nlri};
use super::{Ctx, Family, rfc7606};
use bytes::{BufMut, BytesMut};
use ipnet::Ipv4Net;
use serde::Serialize;

/// MP_REACH_NLRI: prefixes of one family made reachable through one next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MpReach {
    pub next_hop: NextHop,
    pub nlri: MpNlri,
}

/// MP_UNREACH_NLRI: prefixes of one family withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MpUnreach {
    pub nlri: MpNlri,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Update {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<Nlri<Ipv4Net>>,
    pub attrs: Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mp_reach: Option<MpReach>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mp_unreach: Option<MpUnreach>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nlri: Vec<Nlri<Ipv4Net>>,
    /// RFC 7606 faults that did not reset the session (treat-as-withdraw, attribute discard).
    /// Never encoded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<DecodeError>,
}

impl Update {
    /// The End-of-RIB marker of a family (RFC 4724 section 2).
    pub fn end_of_rib(family: Family) -> Update {
        match family {
            Family::Ipv4Unicast => Update::default(),
            Family::Ipv6Unicast => Update {
                mp_unreach: Some(MpUnreach {
                    nlri: MpNlri::Ipv6(Vec::new()),
                }),
                ..Update::default()
            },
        }
    }

    /// Which family this UPDATE marks the End-of-RIB of, if it is such a marker.
    pub fn as_end_of_rib(&self) -> Option<Family> {
        let bare = self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.mp_reach.is_none()
            && self.attrs == Attributes::default()
            && self.errors.is_empty();
        match &self.mp_unreach {
            _ if !bare => None,
            None => Some(Family::Ipv4Unicast),
            Some(u) if u.nlri.is_empty() => Some(u.nlri.family()),
            Some(_) => None,
        }
    }

    /// RFC 7606 section 2: whether the prefixes announced here must be handled as withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action == Action::TreatAsWithdraw)
    }

    /// The most severe RFC 7606 action among the recorded faults.
    pub fn worst_action(&self) -> Option<Action> {
        self.errors.iter().map(|e| e.action).max()
    }
}

fn reset(reason: Reason, sub: u8) -> DecodeError {
    DecodeError::reset(reason, code::UPDATE_MESSAGE, sub, Vec::new())
}

/// Splits a field preceded by a 2-octet length.
fn length_prefixed(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = buf.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    (rest.len() >= len).then(|| rest.split_at(len))
}

pub(crate) fn decode(body: &[u8], ctx: &Ctx) -> Result<Update, DecodeError> {
    // RFC 4271 section 6.3: lengths that overrun the message cannot be recovered from.
    let overrun = || {
        reset(
            Reason::UpdateLengthsOverrun,
            subcode::MALFORMED_ATTRIBUTE_LIST,
        )
    };
    let (withdrawn, rest) = length_prefixed(body).ok_or_else(overrun)?;
    let (attrs, nlri) = length_prefixed(rest).ok_or_else(overrun)?;
    // RFC 7606 section 5.3: prefixes that cannot be parsed cannot be withdrawn either.
    let add_path = ctx.add_path.ipv4_unicast;
    let withdrawn = nlri::decode_v4(withdrawn, add_path).map_err(|e| {
        reset(
            Reason::InvalidWithdrawn(e.describe()),
            subcode::INVALID_NETWORK_FIELD,
        )
    })?;
    let nlri = nlri::decode_v4(nlri, add_path).map_err(|e| {
        reset(
            Reason::InvalidNlri(e.describe()),
            subcode::INVALID_NETWORK_FIELD,
        )
    })?;
    let mut update = Update {
        withdrawn,
        nlri,
        ..Update::default()
    };
    rfc7606::decode_attributes(attrs, ctx, &mut update)?;
    Ok(update)
}

/// Writes a field preceded by its 2-octet length.
fn put_length_prefixed(
    out: &mut BytesMut,
    what: &'static str,
    body: impl FnOnce(&mut BytesMut),
) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_u16(0);
    body(out);
    let len = out.len() - start - 2;
    let len16 = u16::try_from(len).map_err(|_| EncodeError::FieldTooLong {
        what,
        len,
        max: usize::from(u16::MAX),
    })?;
    out[start..start + 2].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}

pub(crate) fn encode(u: &Update, ctx: &Ctx, out: &mut BytesMut) -> Result<(), EncodeError> {
    let add_path = ctx.add_path.ipv4_unicast;
    out.reserve(4 + (u.withdrawn.len() + u.nlri.len()) * nlri::encoded_len(32, add_path));
    put_length_prefixed(out, "withdrawn routes", |out| {
        nlri::encode_v4(&u.withdrawn, add_path, out)
    })?;
    let mut attrs_result = Ok(());
    put_length_prefixed(out, "path attributes", |out| {
        if let Some(m) = &u.mp_reach {
            attr::encode::mp_reach(out, m, ctx);
        }
        if let Some(m) = &u.mp_unreach {
            attr::encode::mp_unreach(out, m, ctx);
        }
        attrs_result = attr::encode::attributes(out, &u.attrs, ctx);
    })?;
    attrs_result?;
    nlri::encode_v4(&u.nlri, add_path, out);
    Ok(())
}

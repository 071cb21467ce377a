//! Structural decoding of path attributes: the TLV walk and one value decoder per attribute.
//! Each decoder says what is wrong and which UPDATE error subcode RFC 4271 section 6.3 gives it;
//! what that costs the UPDATE is decided in [`crate::wire::rfc7606`].

use super::{
    Aggregator, AsPath, AsSegment, Community, ExtCommunity, LargeCommunity, Origin, SegmentKind,
    code, flag,
};
use crate::wire::error::{Reason, subcode};
use crate::wire::nlri::{MpNlri, NextHop};
use crate::wire::update::{MpReach, MpUnreach};
use crate::wire::{Ctx, Family};
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16};
use nom::{IResult, Parser};
use std::net::Ipv4Addr;

/// One attribute as found on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawAttr<'a> {
    pub flags: u8,
    pub code: u8,
    pub value: &'a [u8],
    /// Flags, type, length and value: the data of a NOTIFICATION about this attribute.
    pub whole: &'a [u8],
}

/// A malformed attribute value: what is wrong and the UPDATE error subcode it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub reason: Reason,
    pub subcode: u8,
}

impl Malformed {
    fn length(code: u8, len: usize) -> Self {
        Malformed {
            reason: Reason::AttributeLength { code, len },
            subcode: subcode::ATTRIBUTE_LENGTH_ERROR,
        }
    }
}

fn header(i: &[u8]) -> IResult<&[u8], (u8, u8, usize)> {
    let (i, (flags, code)) = (be_u8, be_u8).parse(i)?;
    let (i, len) = if flags & flag::EXTENDED_LENGTH != 0 {
        be_u16.map(usize::from).parse(i)?
    } else {
        be_u8.map(usize::from).parse(i)?
    };
    Ok((i, (flags, code, len)))
}

/// Splits the first attribute off the path attribute field. `Err` carries the type code when
/// the header could be read (RFC 7606 section 4: overrun or underrun of the field).
pub(crate) fn split(buf: &[u8]) -> Result<(RawAttr<'_>, &[u8]), Option<u8>> {
    let (rest, (flags, code, len)) = header(buf).map_err(|_| buf.get(1).copied())?;
    let (rest, value) = take::<_, _, nom::error::Error<&[u8]>>(len)
        .parse(rest)
        .map_err(|_| Some(code))?;
    let whole = &buf[..buf.len() - rest.len()];
    Ok((
        RawAttr {
            flags,
            code,
            value,
            whole,
        },
        rest,
    ))
}

/// Reads a value that must be exactly `N` octets.
fn fixed<const N: usize>(code: u8, v: &[u8]) -> Result<[u8; N], Malformed> {
    <[u8; N]>::try_from(v).map_err(|_| Malformed::length(code, v.len()))
}

/// Splits a value that must be a non-zero multiple of `N` octets into chunks.
fn chunks<const N: usize>(
    code: u8,
    v: &[u8],
) -> Result<impl Iterator<Item = [u8; N]> + '_, Malformed> {
    if v.is_empty() || v.len() % N != 0 {
        return Err(Malformed::length(code, v.len()));
    }
    Ok(v.chunks_exact(N)
        .filter_map(|c| <[u8; N]>::try_from(c).ok()))
}

/// RFC 4271 section 5.1.1; RFC 7606 section 7.1.
pub(crate) fn origin(v: &[u8]) -> Result<Origin, Malformed> {
    let [o] = fixed::<1>(code::ORIGIN, v)?;
    match o {
        0 => Ok(Origin::Igp),
        1 => Ok(Origin::Egp),
        2 => Ok(Origin::Incomplete),
        _ => Err(Malformed {
            reason: Reason::InvalidOrigin(o),
            subcode: subcode::INVALID_ORIGIN,
        }),
    }
}

/// AS_PATH or AS4_PATH with 2- or 4-octet AS numbers; RFC 7606 section 7.2 lists what makes a
/// segment malformed: an unknown type, a zero count, an overrun, or a lone trailing octet.
pub(crate) fn as_path(v: &[u8], four_octet: bool) -> Result<AsPath, &'static str> {
    let asn_len = if four_octet { 4 } else { 2 };
    let mut segments = Vec::new();
    let mut i = v;
    while !i.is_empty() {
        let (rest, (kind, count)) = (be_u8, be_u8)
            .parse(i)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| "segment header underrun")?;
        let kind = SegmentKind::from_u8(kind).ok_or("unknown segment type")?;
        if count == 0 {
            return Err("segment of length zero");
        }
        let (rest, body) = take::<_, _, nom::error::Error<&[u8]>>(usize::from(count) * asn_len)
            .parse(rest)
            .map_err(|_| "segment overruns the attribute")?;
        let asns = if four_octet {
            body.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            body.chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        };
        segments.push(AsSegment { kind, asns });
        i = rest;
    }
    Ok(AsPath { segments })
}

/// RFC 4271 section 6.3: a NEXT_HOP that cannot be a unicast host is semantically incorrect.
pub(crate) fn next_hop(v: &[u8]) -> Result<Ipv4Addr, Malformed> {
    let addr = Ipv4Addr::from(fixed::<4>(code::NEXT_HOP, v)?);
    if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
        return Err(Malformed {
            reason: Reason::InvalidNextHop(addr),
            subcode: subcode::INVALID_NEXT_HOP,
        });
    }
    Ok(addr)
}

/// MULTI_EXIT_DISC, LOCAL_PREF: four octets (RFC 7606 sections 7.4, 7.5).
pub(crate) fn u32_value(code: u8, v: &[u8]) -> Result<u32, Malformed> {
    fixed::<4>(code, v).map(u32::from_be_bytes)
}

/// ORIGINATOR_ID (RFC 4456 section 8, RFC 7606 section 7.9).
pub(crate) fn originator_id(v: &[u8]) -> Result<Ipv4Addr, Malformed> {
    fixed::<4>(code::ORIGINATOR_ID, v).map(Ipv4Addr::from)
}

/// ATOMIC_AGGREGATE carries no value (RFC 7606 section 7.6).
pub(crate) fn atomic_aggregate(v: &[u8]) -> Result<(), Malformed> {
    fixed::<0>(code::ATOMIC_AGGREGATE, v).map(|_| ())
}

/// AGGREGATOR (6 or 8 octets with 4-octet AS, RFC 7606 section 7.7) and AS4_AGGREGATOR (8).
pub(crate) fn aggregator(code: u8, v: &[u8], four_octet: bool) -> Result<Aggregator, Malformed> {
    if four_octet {
        let b = fixed::<8>(code, v)?;
        Ok(Aggregator {
            asn: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            address: Ipv4Addr::new(b[4], b[5], b[6], b[7]),
        })
    } else {
        let b = fixed::<6>(code, v)?;
        Ok(Aggregator {
            asn: u32::from(u16::from_be_bytes([b[0], b[1]])),
            address: Ipv4Addr::new(b[2], b[3], b[4], b[5]),
        })
    }
}

/// COMMUNITIES (RFC 7606 section 7.8).
pub(crate) fn communities(v: &[u8]) -> Result<Vec<Community>, Malformed> {
    Ok(chunks::<4>(code::COMMUNITIES, v)?
        .map(|c| Community(u32::from_be_bytes(c)))
        .collect())
}

/// CLUSTER_LIST (RFC 7606 section 7.10).
pub(crate) fn cluster_list(v: &[u8]) -> Result<Vec<Ipv4Addr>, Malformed> {
    Ok(chunks::<4>(code::CLUSTER_LIST, v)?
        .map(Ipv4Addr::from)
        .collect())
}

/// EXTENDED_COMMUNITIES (RFC 7606 section 7.14).
pub(crate) fn ext_communities(v: &[u8]) -> Result<Vec<ExtCommunity>, Malformed> {
    Ok(chunks::<8>(code::EXTENDED_COMMUNITIES, v)?
        .map(ExtCommunity)
        .collect())
}

/// LARGE_COMMUNITY (RFC 8092 section 6).
pub(crate) fn large_communities(v: &[u8]) -> Result<Vec<LargeCommunity>, Malformed> {
    Ok(chunks::<12>(code::LARGE_COMMUNITY, v)?
        .map(|c| {
            let w = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            LargeCommunity {
                global: w(0),
                local1: w(4),
                local2: w(8),
            }
        })
        .collect())
}

fn mp_malformed(code: u8, what: &'static str) -> Malformed {
    Malformed {
        reason: Reason::MalformedMp { code, what },
        subcode: subcode::OPTIONAL_ATTRIBUTE_ERROR,
    }
}

fn afi_safi(code: u8, v: &[u8]) -> Result<(&[u8], Family), Malformed> {
    let (rest, (afi, safi)) =
        (be_u16, be_u8)
            .parse(v)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| {
                mp_malformed(code, "shorter than AFI and SAFI")
            })?;
    let family = Family::from_afi_safi(afi, safi).ok_or(Malformed {
        reason: Reason::UnsupportedFamily { code, afi, safi },
        subcode: subcode::OPTIONAL_ATTRIBUTE_ERROR,
    })?;
    Ok((rest, family))
}

/// MP_REACH_NLRI (RFC 4760 section 3).
pub(crate) fn mp_reach(v: &[u8], ctx: &Ctx) -> Result<MpReach, Malformed> {
    let code = code::MP_REACH_NLRI;
    let (rest, family) = afi_safi(code, v)?;
    let (rest, nh) =
        be_u8
            .flat_map(take)
            .parse(rest)
            .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| {
                mp_malformed(code, "next hop overruns the attribute")
            })?;
    let next_hop = match (family, NextHop::decode(nh)) {
        (Family::Ipv6Unicast, Some(hop @ NextHop::V6 { .. }))
        | (Family::Ipv4Unicast, Some(hop)) => hop,
        _ => {
            return Err(Malformed {
                reason: Reason::MpNextHopLength {
                    afi: family.afi(),
                    len: nh.len(),
                },
                subcode: subcode::OPTIONAL_ATTRIBUTE_ERROR,
            });
        }
    };
    // The reserved octet (formerly the SNPA count) is ignored.
    let (_, nlri) = rest
        .split_first()
        .ok_or_else(|| mp_malformed(code, "missing reserved octet"))?;
    let nlri = MpNlri::decode(family, nlri, ctx.add_path.get(family))
        .map_err(|e| mp_malformed(code, e.describe()))?;
    Ok(MpReach { next_hop, nlri })
}

/// MP_UNREACH_NLRI (RFC 4760 section 4).
pub(crate) fn mp_unreach(v: &[u8], ctx: &Ctx) -> Result<MpUnreach, Malformed> {
    let code = code::MP_UNREACH_NLRI;
    let (rest, family) = afi_safi(code, v)?;
    let nlri = MpNlri::decode(family, rest, ctx.add_path.get(family))
        .map_err(|e| mp_malformed(code, e.describe()))?;
    Ok(MpUnreach { nlri })
}

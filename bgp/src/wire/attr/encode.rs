//! Writes path attributes: MP_REACH_NLRI and MP_UNREACH_NLRI first (RFC 7606 section 5.1), the
//! rest in ascending type order, the Extended Length bit only where a value needs it.

use super::{AS_TRANS, Aggregator, AsPath, Attributes, SegmentKind, code, flag};
use crate::wire::Ctx;
use crate::wire::EncodeError;
use crate::wire::update::{MpReach, MpUnreach};
use bytes::{BufMut, BytesMut};

/// Writes one attribute whose value `value` appends to `out`.
fn put_attr(out: &mut BytesMut, flags: u8, type_code: u8, value: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u8(flags | flag::EXTENDED_LENGTH);
    out.put_u8(type_code);
    out.put_u16(0);
    value(out);
    let len = out.len() - start - 4;
    if len <= 255 {
        // Short form: one length octet; move the value down over the spare one.
        out[start] &= !flag::EXTENDED_LENGTH;
        out[start + 2] = len as u8;
        out.copy_within(start + 4.., start + 3);
        out.truncate(out.len() - 1);
    } else {
        // Values are bounded by the message size (65535), checked by the caller.
        out[start + 2..start + 4]
            .copy_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    }
}

fn put_as_path(out: &mut BytesMut, path: &AsPath, four_octet: bool) {
    for seg in &path.segments {
        for chunk in seg.asns.chunks(255) {
            out.put_u8(seg.kind as u8);
            out.put_u8(chunk.len() as u8);
            for &asn in chunk {
                if four_octet {
                    out.put_u32(asn);
                } else {
                    out.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS as u16));
                }
            }
        }
    }
}

fn put_aggregator(out: &mut BytesMut, a: &Aggregator, four_octet: bool) {
    if four_octet {
        out.put_u32(a.asn);
    } else {
        out.put_u16(u16::try_from(a.asn).unwrap_or(AS_TRANS as u16));
    }
    out.put_slice(&a.address.octets());
}

pub(crate) fn mp_reach(out: &mut BytesMut, m: &MpReach, ctx: &Ctx) {
    let family = m.nlri.family();
    put_attr(out, flag::OPTIONAL, code::MP_REACH_NLRI, |out| {
        out.put_u16(family.afi());
        out.put_u8(family.safi());
        out.put_u8(m.next_hop.wire_len() as u8);
        m.next_hop.encode(out);
        out.put_u8(0);
        m.nlri.encode(ctx.add_path.get(family), out);
    });
}

pub(crate) fn mp_unreach(out: &mut BytesMut, m: &MpUnreach, ctx: &Ctx) {
    let family = m.nlri.family();
    put_attr(out, flag::OPTIONAL, code::MP_UNREACH_NLRI, |out| {
        out.put_u16(family.afi());
        out.put_u8(family.safi());
        m.nlri.encode(ctx.add_path.get(family), out);
    });
}

/// Writes every attribute of `a`. Toward a 2-octet-AS peer, 4-octet AS numbers become AS_TRANS
/// and the true path goes in AS4_PATH / AS4_AGGREGATOR (RFC 6793 section 4.2.2); toward a
/// 4-octet-AS peer those two attributes are never sent.
pub(crate) fn attributes(out: &mut BytesMut, a: &Attributes, ctx: &Ctx) -> Result<(), EncodeError> {
    for path in [&a.as_path, &a.as4_path].into_iter().flatten() {
        if let Some(seg) = path
            .segments
            .iter()
            .find(|s| s.kind != SegmentKind::Sequence && s.asns.len() > 255)
        {
            return Err(EncodeError::FieldTooLong {
                what: "AS_SET",
                len: seg.asns.len(),
                max: 255,
            });
        }
    }
    const WK: u8 = flag::TRANSITIVE;
    const OT: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    const ON: u8 = flag::OPTIONAL;
    if let Some(o) = a.origin {
        put_attr(out, WK, code::ORIGIN, |out| out.put_u8(o as u8));
    }
    if let Some(p) = &a.as_path {
        put_attr(out, WK, code::AS_PATH, |out| put_as_path(out, p, ctx.as4));
    }
    if let Some(nh) = a.next_hop {
        put_attr(out, WK, code::NEXT_HOP, |out| out.put_slice(&nh.octets()));
    }
    if let Some(med) = a.med {
        put_attr(out, ON, code::MULTI_EXIT_DISC, |out| out.put_u32(med));
    }
    if let Some(lp) = a.local_pref {
        put_attr(out, WK, code::LOCAL_PREF, |out| out.put_u32(lp));
    }
    if a.atomic_aggregate {
        put_attr(out, WK, code::ATOMIC_AGGREGATE, |_| {});
    }
    if let Some(agg) = &a.aggregator {
        put_attr(out, OT, code::AGGREGATOR, |out| {
            put_aggregator(out, agg, ctx.as4)
        });
    }
    if !a.communities.is_empty() {
        put_attr(out, OT, code::COMMUNITIES, |out| {
            a.communities.iter().for_each(|c| out.put_u32(c.0))
        });
    }
    if let Some(id) = a.originator_id {
        put_attr(out, ON, code::ORIGINATOR_ID, |out| {
            out.put_slice(&id.octets())
        });
    }
    if !a.cluster_list.is_empty() {
        put_attr(out, ON, code::CLUSTER_LIST, |out| {
            a.cluster_list
                .iter()
                .for_each(|id| out.put_slice(&id.octets()))
        });
    }
    if !a.ext_communities.is_empty() {
        put_attr(out, OT, code::EXTENDED_COMMUNITIES, |out| {
            a.ext_communities.iter().for_each(|c| out.put_slice(&c.0))
        });
    }
    if !ctx.as4 {
        let as4_path = match (&a.as4_path, &a.as_path) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(p)) if p.has_4_octet_asn() => Some(p.without_confed()),
            _ => None,
        };
        if let Some(p) = as4_path {
            put_attr(out, OT, code::AS4_PATH, |out| put_as_path(out, &p, true));
        }
        let as4_agg = a
            .as4_aggregator
            .or(a.aggregator.filter(|g| g.asn > u32::from(u16::MAX)));
        if let Some(agg) = as4_agg {
            put_attr(out, OT, code::AS4_AGGREGATOR, |out| {
                put_aggregator(out, &agg, true)
            });
        }
    }
    if !a.large_communities.is_empty() {
        put_attr(out, OT, code::LARGE_COMMUNITY, |out| {
            for c in &a.large_communities {
                out.put_u32(c.global);
                out.put_u32(c.local1);
                out.put_u32(c.local2);
            }
        });
    }
    for u in &a.unknown {
        // RFC 4271 section 5: an unrecognized optional transitive attribute is passed on with
        // the Partial bit set.
        let mut flags = u.flags & (flag::OPTIONAL | flag::TRANSITIVE | flag::PARTIAL);
        if flags & (flag::OPTIONAL | flag::TRANSITIVE) == flag::OPTIONAL | flag::TRANSITIVE {
            flags |= flag::PARTIAL;
        }
        put_attr(out, flags, u.type_code, |out| out.put_slice(&u.value));
    }
    Ok(())
}

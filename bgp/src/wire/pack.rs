//! Packing many prefixes into as few UPDATE messages as the negotiated size allows
//! (RFC 4271 section 9.2: one UPDATE carries every prefix that shares its attributes).

use super::attr::encode as attr_encode;
use super::nlri::{MpNlri, NextHop, Nlri, encoded_len};
use super::update::{MpReach, MpUnreach};
use super::{Attributes, Ctx, EncodeError, Family, HEADER_LEN, Update};
use bytes::BytesMut;
use ipnet::{Ipv4Net, Ipv6Net};

/// Header, withdrawn routes length and total path attribute length.
const UPDATE_FIXED: usize = HEADER_LEN + 4;
/// Flags, type and a 2-octet length: the MP attributes are the ones that grow large.
const EXT_ATTR_HEADER: usize = 4;

fn attrs_len(attrs: &Attributes, ctx: &Ctx) -> Result<usize, EncodeError> {
    let mut buf = BytesMut::new();
    attr_encode::attributes(&mut buf, attrs, ctx)?;
    Ok(buf.len())
}

/// Splits `items` into runs whose encoded prefixes fit `budget` octets each.
fn chunks<P: Copy>(
    items: &[Nlri<P>],
    budget: usize,
    add_path: bool,
    len_of: impl Fn(&P) -> u8,
) -> Vec<Vec<Nlri<P>>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut used = 0;
    for n in items {
        let l = encoded_len(len_of(&n.prefix), add_path);
        if used + l > budget && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(*n);
        used += l;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn budget(fixed: usize, ctx: &Ctx) -> Result<usize, EncodeError> {
    // Room for at least one largest prefix, or the attributes alone are too big.
    let max = ctx.max_len();
    match max.checked_sub(fixed) {
        Some(b) if b >= encoded_len(128, true) => Ok(b),
        _ => Err(EncodeError::TooLong { len: fixed, max }),
    }
}

/// UPDATEs announcing IPv4 prefixes in the NLRI field with `attrs` (which carry NEXT_HOP).
pub fn announce_v4(
    attrs: &Attributes,
    prefixes: &[Nlri<Ipv4Net>],
    ctx: &Ctx,
) -> Result<Vec<Update>, EncodeError> {
    let b = budget(UPDATE_FIXED + attrs_len(attrs, ctx)?, ctx)?;
    Ok(
        chunks(prefixes, b, ctx.add_path.ipv4_unicast, |p| p.prefix_len())
            .into_iter()
            .map(|nlri| Update {
                attrs: attrs.clone(),
                nlri,
                ..Update::default()
            })
            .collect(),
    )
}

/// UPDATEs announcing prefixes of `family` in MP_REACH_NLRI (RFC 4760) through `next_hop`.
pub fn announce_mp(
    attrs: &Attributes,
    next_hop: NextHop,
    nlri: &MpNlri,
    ctx: &Ctx,
) -> Result<Vec<Update>, EncodeError> {
    let fixed = UPDATE_FIXED + attrs_len(attrs, ctx)? + EXT_ATTR_HEADER + 5 + next_hop.wire_len();
    let b = budget(fixed, ctx)?;
    let family = nlri.family();
    let add_path = ctx.add_path.get(family);
    let reach = |n: MpNlri| Update {
        attrs: attrs.clone(),
        mp_reach: Some(MpReach { next_hop, nlri: n }),
        ..Update::default()
    };
    Ok(match nlri {
        MpNlri::Ipv4(v) => chunks(v, b, add_path, |p| p.prefix_len())
            .into_iter()
            .map(|c| reach(MpNlri::Ipv4(c)))
            .collect(),
        MpNlri::Ipv6(v) => chunks(v, b, add_path, |p| p.prefix_len())
            .into_iter()
            .map(|c| reach(MpNlri::Ipv6(c)))
            .collect(),
    })
}

/// UPDATEs withdrawing IPv4 prefixes in the withdrawn routes field.
pub fn withdraw_v4(prefixes: &[Nlri<Ipv4Net>], ctx: &Ctx) -> Result<Vec<Update>, EncodeError> {
    let b = budget(UPDATE_FIXED, ctx)?;
    Ok(
        chunks(prefixes, b, ctx.add_path.ipv4_unicast, |p| p.prefix_len())
            .into_iter()
            .map(|withdrawn| Update {
                withdrawn,
                ..Update::default()
            })
            .collect(),
    )
}

/// UPDATEs withdrawing IPv6 prefixes in MP_UNREACH_NLRI.
pub fn withdraw_v6(prefixes: &[Nlri<Ipv6Net>], ctx: &Ctx) -> Result<Vec<Update>, EncodeError> {
    let b = budget(UPDATE_FIXED + EXT_ATTR_HEADER + 3, ctx)?;
    Ok(
        chunks(prefixes, b, ctx.add_path.get(Family::Ipv6Unicast), |p| {
            p.prefix_len()
        })
        .into_iter()
        .map(|v| Update {
            mp_unreach: Some(MpUnreach {
                nlri: MpNlri::Ipv6(v),
            }),
            ..Update::default()
        })
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AsPath, Origin, encode_to_vec};
    use std::net::Ipv4Addr;

    fn attrs() -> Attributes {
        Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65001])),
            next_hop: Some(Ipv4Addr::new(198, 18, 1, 1)),
            ..Attributes::default()
        }
    }

    fn v4(n: u32) -> Vec<Nlri<Ipv4Net>> {
        (0..n)
            .map(|i| Nlri::new(Ipv4Net::new(Ipv4Addr::from(0xc613_0000 | (i << 6)), 26).unwrap()))
            .collect()
    }

    #[test]
    fn thousands_of_prefixes_fill_messages_up_to_the_limit_and_no_further() {
        let ctx = Ctx {
            as4: true,
            ..Ctx::default()
        };
        let updates = announce_v4(&attrs(), &v4(2000), &ctx).unwrap();
        let sizes: Vec<usize> = updates
            .iter()
            .map(|u| {
                encode_to_vec(&crate::wire::Message::Update(u.clone()), &ctx)
                    .unwrap()
                    .len()
            })
            .collect();
        assert!(sizes.iter().all(|&s| s <= 4096), "{sizes:?}");
        assert!(sizes[0] > 4096 - 5, "first message is full: {}", sizes[0]);
        assert_eq!(updates.iter().map(|u| u.nlri.len()).sum::<usize>(), 2000);
    }

    #[test]
    fn extended_messages_take_more_prefixes_per_update() {
        let small = announce_v4(
            &attrs(),
            &v4(4000),
            &Ctx {
                as4: true,
                ..Ctx::default()
            },
        )
        .unwrap();
        let large = announce_v4(
            &attrs(),
            &v4(4000),
            &Ctx {
                as4: true,
                extended_message: true,
                ..Ctx::default()
            },
        )
        .unwrap();
        assert!(large.len() < small.len());
    }

    #[test]
    fn ipv6_announcements_fit_the_limit_with_the_mp_reach_overhead() {
        let ctx = Ctx {
            as4: true,
            ..Ctx::default()
        };
        let nlri: Vec<Nlri<Ipv6Net>> = (0..1000u128)
            .map(|i| {
                Nlri::new(
                    Ipv6Net::new(
                        std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 64)),
                        64,
                    )
                    .unwrap(),
                )
            })
            .collect();
        let nh = NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        };
        let updates = announce_mp(&attrs(), nh, &MpNlri::Ipv6(nlri), &ctx).unwrap();
        for u in &updates {
            assert!(
                encode_to_vec(&crate::wire::Message::Update(u.clone()), &ctx)
                    .unwrap()
                    .len()
                    <= 4096
            );
        }
        assert_eq!(
            updates
                .iter()
                .map(|u| u.mp_reach.as_ref().unwrap().nlri.len())
                .sum::<usize>(),
            1000
        );
    }

    #[test]
    fn withdrawals_pack_without_attributes() {
        let ctx = Ctx::default();
        let updates = withdraw_v4(&v4(3000), &ctx).unwrap();
        for u in &updates {
            assert!(
                encode_to_vec(&crate::wire::Message::Update(u.clone()), &ctx)
                    .unwrap()
                    .len()
                    <= 4096
            );
        }
        assert_eq!(
            updates.iter().map(|u| u.withdrawn.len()).sum::<usize>(),
            3000
        );
    }
}

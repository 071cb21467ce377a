//! Nexthop objects (`ip nexthop`, kernel 5.3+): `RTM_NEWNEXTHOP` / `RTM_DELNEXTHOP` /
//! `RTM_GETNEXTHOP` with `struct nhmsg`, built and parsed by hand because
//! `netlink-packet-route` 0.34 has no nexthop messages.
//!
//! # Why tortie uses them
//! With one object per remote node (`id N: via <node-ip> dev tunl0 onlink`) and every block
//! route of that node pointing at it (`<block> nhid N`):
//! * the kernel validates the gateway once, not once per route, so installing routes is
//!   cheaper (the benchmark measures this);
//! * an encapsulation or next-hop change for a node is **one** `RTM_NEWNEXTHOP` with
//!   `NLM_F_REPLACE`, however many blocks the node has; every route follows atomically.
//!
//! # Kernel rules worth knowing
//! * Deleting an object deletes every route that uses it.
//! * A gateway object cannot be replaced by a group or the other way round (`EINVAL`);
//!   delete and recreate instead (and re-add the routes).
//! * IDs are a per-namespace space shared with every other user; objects carry an
//!   `nh_protocol`, so ours are told apart by [`TORTIE_PROTOCOL`](super::TORTIE_PROTOCOL), but an
//!   ID taken by someone else makes our create fail with `EEXIST`. Allocate IDs from a range of
//!   your own.
//! * A gateway object needs its device up *with carrier* (`ENETDOWN`, "Carrier for nexthop
//!   device is down"), where a plain route only needs it up. Tunnel devices have carrier as
//!   soon as they are up; create objects after `ensure_vxlan`/`ensure_tunl0`.
//! * ECMP over objects is a group object (`NHA_GROUP`, family `AF_UNSPEC`) whose members are
//!   gateway objects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::socket::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, align4};

pub(crate) const RTM_NEWNEXTHOP: u16 = 104;
pub(crate) const RTM_DELNEXTHOP: u16 = 105;
pub(crate) const RTM_GETNEXTHOP: u16 = 106;

const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_GROUP_TYPE: u16 = 3;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const NHA_ENCAP_TYPE: u16 = 7;
const NHA_ENCAP: u16 = 8;
const NHA_FDB: u16 = 11;
const NHA_RES_GROUP: u16 = 12;

const NEXTHOP_GRP_TYPE_MPATH: u16 = 0;
/// `RTNH_F_ONLINK`, the same bit as for route next hops.
pub(crate) const RTNH_F_ONLINK: u32 = 4;
const NHMSG_LEN: usize = 8;

const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// A member of a nexthop group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupMember {
    /// ID of a gateway object.
    pub id: u32,
    /// Weight 1..=256.
    pub weight: u16,
}

/// What a nexthop object forwards to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NexthopKind {
    /// `via gateway dev oif [onlink]`; the family is the gateway's.
    Gateway {
        gateway: IpAddr,
        oif: u32,
        onlink: bool,
    },
    /// `blackhole` of one family.
    Blackhole { ipv6: bool },
    /// A multipath group of other objects.
    Group(Vec<GroupMember>),
    /// Something tortie does not write (device-only, FDB, resilient group, encap); can only
    /// be deleted.
    Other,
}

/// A nexthop object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NexthopObject {
    /// Non-zero id (`nhid`).
    pub id: u32,
    /// `nh_protocol`: the owner, like a route's protocol.
    pub protocol: u8,
    pub kind: NexthopKind,
}

impl NexthopObject {
    /// `id N via gateway dev oif onlink proto tortie`, as tunnel routes need.
    pub fn gateway(id: u32, gateway: IpAddr, oif: u32, onlink: bool) -> NexthopObject {
        NexthopObject {
            id,
            protocol: super::TORTIE_PROTOCOL,
            kind: NexthopKind::Gateway {
                gateway,
                oif,
                onlink,
            },
        }
    }

    pub fn with_protocol(mut self, protocol: u8) -> NexthopObject {
        self.protocol = protocol;
        self
    }

    /// The form the kernel reports back (group members sorted by id).
    pub fn normalized(mut self) -> NexthopObject {
        if let NexthopKind::Group(m) = &mut self.kind {
            m.sort();
        }
        self
    }

    /// Check what the kernel would refuse.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("nexthop id 0".into());
        }
        match &self.kind {
            NexthopKind::Gateway { oif, .. } if *oif == 0 => {
                Err(format!("nexthop {}: gateway needs a device", self.id))
            }
            NexthopKind::Group(m) if m.is_empty() => {
                Err(format!("nexthop {}: empty group", self.id))
            }
            NexthopKind::Group(m) => match m
                .iter()
                .find(|g| g.id == 0 || !(1..=256).contains(&g.weight))
            {
                Some(g) => Err(format!("nexthop {}: bad group member {g:?}", self.id)),
                None => Ok(()),
            },
            NexthopKind::Other => Err(format!("nexthop {}: this kind cannot be written", self.id)),
            _ => Ok(()),
        }
    }
}

/// One write of a nexthop batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NexthopOp {
    /// Add; `EEXIST` if the id is taken.
    Create(NexthopObject),
    /// Add or replace the object with this id; routes using it follow.
    Replace(NexthopObject),
    /// Delete by id — and every route using it.
    Delete(u32),
}

fn put_attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + (align4(len) - len), 0);
}

fn put_nhmsg(out: &mut Vec<u8>, family: u8, protocol: u8, flags: u32) {
    out.extend_from_slice(&[family, 0 /* scope */, protocol, 0 /* resvd */]);
    out.extend_from_slice(&flags.to_ne_bytes());
}

/// Append the payload of a nexthop operation; returns the netlink type and flags.
pub(crate) fn encode_nexthop(op: &NexthopOp, out: &mut Vec<u8>) -> Result<(u16, u16), String> {
    let (obj, flags) = match op {
        NexthopOp::Delete(id) => {
            if *id == 0 {
                return Err("nexthop id 0".into());
            }
            put_nhmsg(out, AF_UNSPEC, 0, 0);
            put_attr(out, NHA_ID, &id.to_ne_bytes());
            return Ok((RTM_DELNEXTHOP, 0));
        }
        NexthopOp::Create(o) => (o, NLM_F_CREATE | NLM_F_EXCL),
        NexthopOp::Replace(o) => (o, NLM_F_CREATE | NLM_F_REPLACE),
    };
    obj.validate()?;
    match &obj.kind {
        NexthopKind::Gateway {
            gateway,
            oif,
            onlink,
        } => {
            let family = if gateway.is_ipv4() { AF_INET } else { AF_INET6 };
            put_nhmsg(
                out,
                family,
                obj.protocol,
                if *onlink { RTNH_F_ONLINK } else { 0 },
            );
            put_attr(out, NHA_ID, &obj.id.to_ne_bytes());
            match gateway {
                IpAddr::V4(a) => put_attr(out, NHA_GATEWAY, &a.octets()),
                IpAddr::V6(a) => put_attr(out, NHA_GATEWAY, &a.octets()),
            }
            put_attr(out, NHA_OIF, &oif.to_ne_bytes());
        }
        NexthopKind::Blackhole { ipv6 } => {
            put_nhmsg(out, if *ipv6 { AF_INET6 } else { AF_INET }, obj.protocol, 0);
            put_attr(out, NHA_ID, &obj.id.to_ne_bytes());
            put_attr(out, NHA_BLACKHOLE, &[]);
        }
        NexthopKind::Group(members) => {
            put_nhmsg(out, AF_UNSPEC, obj.protocol, 0);
            put_attr(out, NHA_ID, &obj.id.to_ne_bytes());
            let mut grp = Vec::with_capacity(members.len() * 8);
            for m in members {
                // struct nexthop_grp { u32 id; u8 weight; u8 weight_high; u16 resvd2 }, weight-1.
                let w = m.weight.saturating_sub(1);
                grp.extend_from_slice(&m.id.to_ne_bytes());
                grp.extend_from_slice(&[(w & 0xff) as u8, (w >> 8) as u8, 0, 0]);
            }
            put_attr(out, NHA_GROUP, &grp);
            put_attr(out, NHA_GROUP_TYPE, &NEXTHOP_GRP_TYPE_MPATH.to_ne_bytes());
        }
        NexthopKind::Other => {
            return Err(format!("nexthop {}: this kind cannot be written", obj.id));
        }
    }
    Ok((RTM_NEWNEXTHOP, flags))
}

/// A whole framed message for `op` (for tests that take messages apart).
pub fn nexthop_request_bytes(op: &NexthopOp, seq: u32) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    super::socket::push_message(&mut buf, seq, 0, |b| encode_nexthop(op, b))?;
    Ok(buf)
}

/// The payload of a nexthop dump request (every object; ours are filtered after).
pub(crate) fn dump_request() -> Vec<u8> {
    let mut out = Vec::new();
    put_nhmsg(&mut out, AF_UNSPEC, 0, 0);
    out
}

/// Iterate netlink attributes, validating lengths.
pub(crate) fn attrs(mut buf: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), String>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let (len, kind) = match buf.get(0..4).and_then(|h| <[u8; 4]>::try_from(h).ok()) {
            Some([l0, l1, k0, k1]) => (
                usize::from(u16::from_ne_bytes([l0, l1])),
                u16::from_ne_bytes([k0, k1]) & 0x3fff,
            ),
            None => {
                buf = &[];
                return Some(Err("attribute header truncated".into()));
            }
        };
        if len < 4 || len > buf.len() {
            buf = &[];
            return Some(Err(format!("attribute length {len} out of bounds")));
        }
        let data = buf.get(4..len).unwrap_or(&[]);
        buf = buf.get(align4(len).min(buf.len())..).unwrap_or(&[]);
        Some(Ok((kind, data)))
    })
}

fn u32_of(data: &[u8], what: &str) -> Result<u32, String> {
    data.try_into()
        .map(u32::from_ne_bytes)
        .map_err(|_| format!("{what}: {} bytes, want 4", data.len()))
}

/// Decode one `RTM_NEWNEXTHOP` dump message.
pub fn decode_nexthop(payload: &[u8]) -> Result<NexthopObject, String> {
    let hdr = payload
        .get(..NHMSG_LEN)
        .ok_or_else(|| format!("nhmsg of {} bytes", payload.len()))?;
    let family = hdr[0];
    let protocol = hdr[2];
    let flags = u32::from_ne_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let mut id = None;
    let mut gateway = None;
    let mut oif = None;
    let mut blackhole = false;
    let mut group = None;
    let mut other = false;
    for a in attrs(payload.get(NHMSG_LEN..).unwrap_or(&[])) {
        let (kind, data) = a?;
        match kind {
            NHA_ID => id = Some(u32_of(data, "NHA_ID")?),
            NHA_OIF => oif = Some(u32_of(data, "NHA_OIF")?),
            NHA_BLACKHOLE => blackhole = true,
            NHA_GATEWAY => {
                gateway = Some(if let Ok(o) = <[u8; 4]>::try_from(data) {
                    IpAddr::V4(Ipv4Addr::from(o))
                } else if let Ok(o) = <[u8; 16]>::try_from(data) {
                    IpAddr::V6(Ipv6Addr::from(o))
                } else {
                    return Err(format!("NHA_GATEWAY of {} bytes", data.len()));
                })
            }
            NHA_GROUP => {
                if data.len() % 8 != 0 {
                    return Err(format!("NHA_GROUP of {} bytes", data.len()));
                }
                let members = data
                    .chunks_exact(8)
                    .filter_map(|c| <[u8; 8]>::try_from(c).ok())
                    .map(|[i0, i1, i2, i3, w, w_high, _, _]| GroupMember {
                        id: u32::from_ne_bytes([i0, i1, i2, i3]),
                        weight: (u16::from(w) | (u16::from(w_high) << 8)) + 1,
                    })
                    .collect::<Vec<_>>();
                group = Some(members);
            }
            NHA_GROUP_TYPE => {
                let t = <[u8; 2]>::try_from(data)
                    .map(u16::from_ne_bytes)
                    .unwrap_or(u16::MAX);
                if t != NEXTHOP_GRP_TYPE_MPATH {
                    other = true;
                }
            }
            NHA_FDB | NHA_ENCAP | NHA_ENCAP_TYPE | NHA_RES_GROUP => other = true,
            _ => {}
        }
    }
    let id = id.ok_or("nexthop without NHA_ID")?;
    let kind = if other {
        NexthopKind::Other
    } else if let Some(members) = group {
        NexthopKind::Group(members)
    } else if blackhole {
        NexthopKind::Blackhole {
            ipv6: family == AF_INET6,
        }
    } else if let (Some(gateway), Some(oif)) = (gateway, oif) {
        NexthopKind::Gateway {
            gateway,
            oif,
            onlink: flags & RTNH_F_ONLINK != 0,
        }
    } else {
        NexthopKind::Other
    };
    Ok(NexthopObject { id, protocol, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(op: NexthopOp) -> NexthopObject {
        let bytes = nexthop_request_bytes(&op, 1).unwrap();
        decode_nexthop(&bytes[16..]).unwrap()
    }

    #[test]
    fn round_trips() {
        let objs = [
            NexthopObject::gateway(7, "198.18.2.2".parse().unwrap(), 3, true),
            NexthopObject::gateway(8, "fd00:18::2".parse().unwrap(), 3, false).with_protocol(4),
            NexthopObject {
                id: 9,
                protocol: 116,
                kind: NexthopKind::Blackhole { ipv6: true },
            },
            NexthopObject {
                id: 10,
                protocol: 116,
                kind: NexthopKind::Group(vec![
                    GroupMember { id: 7, weight: 1 },
                    GroupMember { id: 8, weight: 256 },
                ]),
            },
        ];
        for o in objs {
            assert_eq!(rt(NexthopOp::Replace(o.clone())), o);
        }
    }

    #[test]
    fn onlink_flag_and_header() {
        let bytes = nexthop_request_bytes(
            &NexthopOp::Create(NexthopObject::gateway(
                5,
                "198.18.0.1".parse().unwrap(),
                2,
                true,
            )),
            3,
        )
        .unwrap();
        let p = &bytes[16..];
        assert_eq!(p[0], libc::AF_INET as u8);
        assert_eq!(p[1], 0);
        assert_eq!(p[2], super::super::TORTIE_PROTOCOL);
        assert_eq!(u32::from_ne_bytes([p[4], p[5], p[6], p[7]]), RTNH_F_ONLINK);
    }

    #[test]
    fn invalid_and_garbage() {
        assert!(nexthop_request_bytes(&NexthopOp::Delete(0), 1).is_err());
        assert!(
            nexthop_request_bytes(
                &NexthopOp::Create(NexthopObject::gateway(
                    1,
                    "1.2.3.4".parse().unwrap(),
                    0,
                    false
                )),
                1
            )
            .is_err()
        );
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 53 % 256) as u8).collect();
            let _ = decode_nexthop(&junk);
        }
    }
}

//! Prefixes as they travel in NLRI fields (RFC 4271 section 4.3, RFC 4760 section 5), with the
//! ADD-PATH path identifier when negotiated (RFC 7911 section 3), and multiprotocol next hops.

use super::ctx::Family;
use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Serialize, Serializer};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One prefix of an NLRI or withdrawn-routes field. The prefix is always canonical: bits past
/// the prefix length are zero, whatever the peer sent there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri<P> {
    pub prefix: P,
    /// The ADD-PATH path identifier; `None` when ADD-PATH is not in use for the family.
    pub path_id: Option<u32>,
}

impl<P> Nlri<P> {
    pub fn new(prefix: P) -> Self {
        Nlri {
            prefix,
            path_id: None,
        }
    }

    pub fn with_path_id(prefix: P, path_id: u32) -> Self {
        Nlri {
            prefix,
            path_id: Some(path_id),
        }
    }
}

impl<P: Serialize> Serialize for Nlri<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self.path_id {
            None => self.prefix.serialize(s),
            Some(id) => {
                let mut st = s.serialize_struct("Nlri", 2)?;
                st.serialize_field("prefix", &self.prefix)?;
                st.serialize_field("path_id", &id)?;
                st.end()
            }
        }
    }
}

/// The NLRI of an MP_REACH_NLRI or MP_UNREACH_NLRI attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum MpNlri {
    Ipv4(Vec<Nlri<Ipv4Net>>),
    Ipv6(Vec<Nlri<Ipv6Net>>),
}

impl MpNlri {
    pub fn family(&self) -> Family {
        match self {
            MpNlri::Ipv4(_) => Family::Ipv4Unicast,
            MpNlri::Ipv6(_) => Family::Ipv6Unicast,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            MpNlri::Ipv4(v) => v.len(),
            MpNlri::Ipv6(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn decode(family: Family, buf: &[u8], add_path: bool) -> Result<Self, NlriError> {
        Ok(match family {
            Family::Ipv4Unicast => MpNlri::Ipv4(decode_v4(buf, add_path)?),
            Family::Ipv6Unicast => MpNlri::Ipv6(decode_v6(buf, add_path)?),
        })
    }

    pub(crate) fn encode(&self, add_path: bool, out: &mut BytesMut) {
        match self {
            MpNlri::Ipv4(v) => encode_v4(v, add_path, out),
            MpNlri::Ipv6(v) => encode_v6(v, add_path, out),
        }
    }
}

/// The next hop of an MP_REACH_NLRI (RFC 4760 section 3; RFC 2545 section 3 for the IPv6
/// link-local second address; RFC 8950 for IPv6 next hops of IPv4 prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum NextHop {
    V4(Ipv4Addr),
    V6 {
        global: Ipv6Addr,
        #[serde(skip_serializing_if = "Option::is_none")]
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    pub(crate) fn wire_len(&self) -> usize {
        match self {
            NextHop::V4(_) => 4,
            NextHop::V6 {
                link_local: None, ..
            } => 16,
            NextHop::V6 {
                link_local: Some(_),
                ..
            } => 32,
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<NextHop> {
        let v6 = |b: &[u8]| <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from);
        match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes)
                .ok()
                .map(|b| NextHop::V4(Ipv4Addr::from(b))),
            16 => v6(bytes).map(|global| NextHop::V6 {
                global,
                link_local: None,
            }),
            32 => Some(NextHop::V6 {
                global: v6(&bytes[..16])?,
                link_local: Some(v6(&bytes[16..])?),
            }),
            _ => None,
        }
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) {
        match self {
            NextHop::V4(a) => out.put_slice(&a.octets()),
            NextHop::V6 { global, link_local } => {
                out.put_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.put_slice(&ll.octets());
                }
            }
        }
    }
}

/// Why a prefix list could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlriError {
    PrefixTooLong,
    Overrun,
}

impl NlriError {
    pub fn describe(self) -> &'static str {
        match self {
            NlriError::PrefixTooLong => "prefix length exceeds the address length",
            NlriError::Overrun => "prefix overruns the field",
        }
    }
}

/// Decodes a list of IPv4 prefixes. The vector never holds more entries than `buf` has octets.
pub fn decode_v4(buf: &[u8], add_path: bool) -> Result<Vec<Nlri<Ipv4Net>>, NlriError> {
    // One loop per ADD-PATH setting, so that the hot loop carries no test for it.
    if add_path {
        decode_v4_items::<true>(buf)
    } else {
        decode_v4_items::<false>(buf)
    }
}

/// Decodes a list of IPv6 prefixes.
pub fn decode_v6(buf: &[u8], add_path: bool) -> Result<Vec<Nlri<Ipv6Net>>, NlriError> {
    if add_path {
        decode_v6_items::<true>(buf)
    } else {
        decode_v6_items::<false>(buf)
    }
}

// The prefix loops run at about two nanoseconds a prefix, which a little carelessness triples,
// so they are written with care:
// - The only dependency carried from one item to the next is the offset (the length octet says
//   where the next item starts); everything else stays off that chain.
// - The address is read as one whole big-endian word, which may take in octets past the prefix
//   (of the next item), and then masked to the prefix length, which clears exactly those bits.
//   A variable-length copy into a zeroed array instead costs a `memcpy` call and a
//   store-forwarding stall per prefix. An item too near the end of the field for a whole-word
//   read goes to the zero-padding path, out of line.
// - No helper returns a tuple or per-item `Result` into the loop: that once made the compiler
//   assemble each `Ipv4Net` on the stack and read it back misaligned, another stall per prefix.

fn decode_v4_items<const ADD_PATH: bool>(buf: &[u8]) -> Result<Vec<Nlri<Ipv4Net>>, NlriError> {
    // /24s take 4 octets each, the common case; the vector grows if the guess is low. The guess
    // never exceeds `buf.len() / 4 + 1` entries, so the allocation is bounded by the input.
    let mut out = Vec::with_capacity(buf.len() / 4 + 1);
    let mut at = 0;
    while at < buf.len() {
        let mut path_id = None;
        if ADD_PATH {
            let Some(id) = buf[at..].first_chunk::<4>() else {
                return Err(NlriError::Overrun);
            };
            path_id = Some(u32::from_be_bytes(*id));
            at += 4;
        }
        let Some(&len) = buf.get(at) else {
            return Err(NlriError::Overrun);
        };
        if len > 32 {
            return Err(NlriError::PrefixTooLong);
        }
        let addr = &buf[at + 1..];
        let octets = usize::from(len).div_ceil(8);
        if addr.len() < octets {
            return Err(NlriError::Overrun);
        }
        let word = match addr.first_chunk::<4>() {
            Some(w) => u32::from_be_bytes(*w),
            None => u32::from_be_bytes(padded(&addr[..octets])),
        };
        let Ok(prefix) = Ipv4Net::new(Ipv4Addr::from(word & mask_v4(len)), len) else {
            return Err(NlriError::PrefixTooLong);
        };
        out.push(Nlri { prefix, path_id });
        at += 1 + octets;
    }
    Ok(out)
}

fn decode_v6_items<const ADD_PATH: bool>(buf: &[u8]) -> Result<Vec<Nlri<Ipv6Net>>, NlriError> {
    // /64s take 9 octets each; bounded by the input as above.
    let mut out = Vec::with_capacity(buf.len() / 9 + 1);
    let mut at = 0;
    while at < buf.len() {
        let mut path_id = None;
        if ADD_PATH {
            let Some(id) = buf[at..].first_chunk::<4>() else {
                return Err(NlriError::Overrun);
            };
            path_id = Some(u32::from_be_bytes(*id));
            at += 4;
        }
        let Some(&len) = buf.get(at) else {
            return Err(NlriError::Overrun);
        };
        if len > 128 {
            return Err(NlriError::PrefixTooLong);
        }
        let addr = &buf[at + 1..];
        let octets = usize::from(len).div_ceil(8);
        if addr.len() < octets {
            return Err(NlriError::Overrun);
        }
        let word = match addr.first_chunk::<16>() {
            Some(w) => u128::from_be_bytes(*w),
            None => u128::from_be_bytes(padded(&addr[..octets])),
        };
        let Ok(prefix) = Ipv6Net::new(Ipv6Addr::from(word & mask_v6(len)), len) else {
            return Err(NlriError::PrefixTooLong);
        };
        out.push(Nlri { prefix, path_id });
        at += 1 + octets;
    }
    Ok(out)
}

/// The address octets of a prefix at the very end of the field, zero-padded to a whole word.
#[cold]
#[inline(never)]
fn padded<const N: usize>(octets: &[u8]) -> [u8; N] {
    let mut word = [0u8; N];
    for (w, o) in word.iter_mut().zip(octets) {
        *w = *o;
    }
    word
}

#[inline(always)]
fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

#[inline(always)]
fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Encoded size of one prefix.
pub fn encoded_len(prefix_len: u8, add_path: bool) -> usize {
    usize::from(add_path) * 4 + 1 + usize::from(prefix_len).div_ceil(8)
}

// The encoders write each address as a whole word and then cut the octets past the prefix off
// again: a fixed-size write plus `truncate` is a few moves, where a variable-length `put_slice`
// is a `memcpy` call per prefix. Reserving the worst case first means no regrowth mid-list.

pub fn encode_v4(list: &[Nlri<Ipv4Net>], add_path: bool, out: &mut BytesMut) {
    out.reserve(list.len() * encoded_len(32, add_path));
    for n in list {
        if add_path {
            out.put_u32(n.path_id.unwrap_or(0));
        }
        let len = n.prefix.prefix_len();
        let [a, b, c, d] = n.prefix.network().octets();
        out.put_slice(&[len, a, b, c, d]);
        out.truncate(out.len() - (4 - usize::from(len).div_ceil(8)));
    }
}

pub fn encode_v6(list: &[Nlri<Ipv6Net>], add_path: bool, out: &mut BytesMut) {
    out.reserve(list.len() * encoded_len(128, add_path));
    for n in list {
        if add_path {
            out.put_u32(n.path_id.unwrap_or(0));
        }
        let len = n.prefix.prefix_len();
        out.put_u8(len);
        out.put_slice(&n.prefix.network().octets());
        out.truncate(out.len() - (16 - usize::from(len).div_ceil(8)));
    }
}

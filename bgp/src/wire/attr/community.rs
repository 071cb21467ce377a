//! Community values: RFC 1997 communities, RFC 4360 extended communities, RFC 8092 large
//! communities. They print the way BIRD, FRR and calicoctl write them.

use serde::{Serialize, Serializer};
use std::fmt;

/// An RFC 1997 community, printed `asn:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xffff_ff01);
    pub const NO_ADVERTISE: Community = Community(0xffff_ff02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xffff_ff03);

    pub fn new(asn: u16, value: u16) -> Self {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// An RFC 4360 extended community, eight octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtCommunity(pub [u8; 8]);

impl fmt::Display for ExtCommunity {
    /// Route targets and route origins (RFC 4360 section 4, RFC 5668) as `rt:` / `ro:`; anything
    /// else as `0x` and the 16 hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        let tag = match b[1] {
            0x02 => "rt",
            0x03 => "ro",
            _ => "",
        };
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match (b[0] & 0x3f, tag) {
            (0x00, t) if !t.is_empty() => write!(f, "{t}:{}:{}", u16_at(2), u32_at(4)),
            (0x01, t) if !t.is_empty() => {
                write!(f, "{t}:{}.{}.{}.{}:{}", b[2], b[3], b[4], b[5], u16_at(6))
            }
            (0x02, t) if !t.is_empty() => write!(f, "{t}:{}:{}", u32_at(2), u16_at(6)),
            _ => {
                f.write_str("0x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
        }
    }
}

/// An RFC 8092 large community, printed `global:local1:local2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

macro_rules! serialize_as_string {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_string!(Community, ExtCommunity, LargeCommunity);

//! MAC addresses and the datastore-free VTEP MAC scheme.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet MAC address. Serialises as `"02:74:c6:12:01:0a"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

/// Second octet of every IPv4 VTEP MAC (`02:74:...`, `t` for tortie).
pub const VTEP_MAC_TAG_V4: u8 = 0x74;
/// Second octet of every IPv6 VTEP MAC (`02:76:...`).
pub const VTEP_MAC_TAG_V6: u8 = 0x76;

impl Mac {
    /// Locally administered (bit 1 of the first octet set).
    pub fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Unicast (bit 0 of the first octet clear).
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The text was not six `:`-separated hex octets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (six colon-separated hex octets): {0:?}")]
pub struct MacParseError(pub String);

impl FromStr for Mac {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The VTEP MAC of the node whose underlay address is `addr` (see the module docs for the
/// scheme): `02:74:a:b:c:d` for IPv4 `a.b.c.d`; `02:76:` + (low 32 bits of the address XOR
/// FNV-1a-32 of its high 96 bits) for IPv6.
pub fn vtep_mac(addr: IpAddr) -> Mac {
    match addr {
        IpAddr::V4(a) => vtep_mac_v4(a),
        IpAddr::V6(a) => vtep_mac_v6(a),
    }
}

/// `02:74:a:b:c:d`: injective over all of IPv4.
pub fn vtep_mac_v4(addr: Ipv4Addr) -> Mac {
    let [a, b, c, d] = addr.octets();
    Mac([0x02, VTEP_MAC_TAG_V4, a, b, c, d])
}

/// `02:76:` + (low 32 bits XOR FNV-1a-32(high 96 bits)), big-endian: injective within any
/// /96, pseudo-random (collision probability 2^-32 per pair) across different /96s.
pub fn vtep_mac_v6(addr: Ipv6Addr) -> Mac {
    let o = addr.octets();
    let low = u32::from_be_bytes([o[12], o[13], o[14], o[15]]);
    let tail = (low ^ fnv1a32(&o[..12])).to_be_bytes();
    Mac([0x02, VTEP_MAC_TAG_V6, tail[0], tail[1], tail[2], tail[3]])
}

/// FNV-1a, 32 bits (offset basis 0x811c9dc5, prime 0x01000193): fixed forever, so every
/// version of tortie computes the same MACs.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

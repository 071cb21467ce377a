//! What the OPEN exchange negotiated, as far as the byte format is concerned.

use serde::Serialize;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;

/// The address families tortie routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Family {
    #[serde(rename = "ipv4-unicast")]
    Ipv4Unicast,
    #[serde(rename = "ipv6-unicast")]
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Family> {
        match (afi, safi) {
            (AFI_IPV4, SAFI_UNICAST) => Some(Family::Ipv4Unicast),
            (AFI_IPV6, SAFI_UNICAST) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    pub fn afi(self) -> u16 {
        match self {
            Family::Ipv4Unicast => AFI_IPV4,
            Family::Ipv6Unicast => AFI_IPV6,
        }
    }

    pub fn safi(self) -> u8 {
        SAFI_UNICAST
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// Families whose NLRI carry an ADD-PATH path identifier (RFC 7911) in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AddPath {
    pub ipv4_unicast: bool,
    pub ipv6_unicast: bool,
}

impl AddPath {
    pub const ALL: AddPath = AddPath {
        ipv4_unicast: true,
        ipv6_unicast: true,
    };

    pub fn get(self, family: Family) -> bool {
        match family {
            Family::Ipv4Unicast => self.ipv4_unicast,
            Family::Ipv6Unicast => self.ipv6_unicast,
        }
    }

    pub fn set(&mut self, family: Family, on: bool) {
        match family {
            Family::Ipv4Unicast => self.ipv4_unicast = on,
            Family::Ipv6Unicast => self.ipv6_unicast = on,
        }
    }
}

/// The decode/encode context of one direction of one session.
///
/// A session keeps two: one for what it receives (path identifiers the peer sends) and one for
/// what it sends. Before the OPEN exchange completes everything is off, which is also
/// `Ctx::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Ctx {
    /// Both sides advertised the 4-octet AS capability (RFC 6793).
    pub as4: bool,
    /// Path identifiers are present on NLRI of these families (RFC 7911).
    pub add_path: AddPath,
    /// Both sides advertised the extended message capability (RFC 8654).
    pub extended_message: bool,
}

impl Ctx {
    /// The largest message this context allows, header included.
    pub fn max_len(&self) -> usize {
        if self.extended_message {
            super::MAX_EXTENDED_LEN
        } else {
            super::MAX_LEN
        }
    }
}

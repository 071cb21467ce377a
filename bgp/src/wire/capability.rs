//! Capabilities advertised in OPEN (RFC 5492), one value type per capability code.

use super::Family;
use super::error::{DecodeError, EncodeError, Reason, code as ncode, subcode};
use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::be_u8;
use nom::{IResult, Parser};
use serde::Serialize;

/// Capability codes (IANA "Capability Codes" registry).
pub mod code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const FQDN: u8 = 73;
}

/// An AFI/SAFI pair as capabilities carry it; it may name a family tortie does not route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AfiSafi {
    pub afi: u16,
    pub safi: u8,
}

impl AfiSafi {
    pub fn family(self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }
}

impl From<Family> for AfiSafi {
    fn from(f: Family) -> Self {
        AfiSafi {
            afi: f.afi(),
            safi: f.safi(),
        }
    }
}

/// Graceful restart (RFC 4724 section 3, with the N bit of RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GracefulRestart {
    /// R: the sender has restarted.
    pub restart_state: bool,
    /// N: the sender supports graceful restart for NOTIFICATION messages (RFC 8538).
    pub notification: bool,
    /// Seconds, 12 bits.
    pub restart_time: u16,
    pub families: Vec<GrFamily>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GrFamily {
    pub afi_safi: AfiSafi,
    /// F: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// ADD-PATH direction (RFC 7911 section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddPathMode {
    Receive = 1,
    Send = 2,
    SendReceive = 3,
}

impl AddPathMode {
    pub fn receives(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::SendReceive)
    }

    pub fn sends(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::SendReceive)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AddPathFamily {
    pub afi_safi: AfiSafi,
    pub mode: AddPathMode,
}

/// Extended next hop encoding (RFC 8950 section 3): NLRI of `afi_safi` may carry next hops of
/// `next_hop_afi`. The NLRI SAFI is two octets here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ExtNextHop {
    pub afi: u16,
    pub safi: u16,
    pub next_hop_afi: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "capability", rename_all = "kebab-case")]
pub enum Capability {
    /// RFC 4760 section 8.
    Multiprotocol(AfiSafi),
    /// RFC 2918.
    RouteRefresh,
    /// RFC 8950.
    ExtendedNextHop { families: Vec<ExtNextHop> },
    /// RFC 8654.
    ExtendedMessage,
    /// RFC 4724.
    GracefulRestart(GracefulRestart),
    /// RFC 6793.
    FourOctetAs { asn: u32 },
    /// RFC 7911.
    AddPath { families: Vec<AddPathFamily> },
    /// RFC 7313.
    EnhancedRouteRefresh,
    /// draft-walton-bgp-hostname-capability, as FRR and BIRD send it.
    Fqdn { hostname: String, domain: String },
    /// Anything else, kept as received.
    Unknown {
        code: u8,
        #[serde(serialize_with = "super::serialize_hex")]
        value: Vec<u8>,
    },
}

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

fn malformed(code: u8, what: &'static str) -> DecodeError {
    DecodeError::reset(
        Reason::MalformedCapability { code, what },
        ncode::OPEN_MESSAGE,
        subcode::UNSPECIFIC,
        Vec::new(),
    )
}

/// Splits a value into fixed-size records.
fn records<const N: usize>(
    code: u8,
    v: &[u8],
) -> Result<impl Iterator<Item = [u8; N]> + '_, DecodeError> {
    if v.len() % N != 0 {
        return Err(malformed(
            code,
            "length is not a multiple of the record size",
        ));
    }
    Ok(v.chunks_exact(N)
        .filter_map(|c| <[u8; N]>::try_from(c).ok()))
}

fn empty(code: u8, v: &[u8], cap: Capability) -> Result<Capability, DecodeError> {
    if v.is_empty() {
        Ok(cap)
    } else {
        Err(malformed(code, "must have no value"))
    }
}

fn fqdn(v: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    (be_u8.flat_map(take), be_u8.flat_map(take)).parse(v)
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop { .. } => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs { .. } => code::FOUR_OCTET_AS,
            Capability::AddPath { .. } => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::Fqdn { .. } => code::FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Decodes one capability value. A known capability whose value does not parse is an OPEN
    /// error (subcode 0), as BIRD and FRR treat it.
    pub(crate) fn decode(code: u8, v: &[u8]) -> Result<Capability, DecodeError> {
        use code::*;
        Ok(match code {
            MULTIPROTOCOL => {
                let [a0, a1, _reserved, safi] =
                    <[u8; 4]>::try_from(v).map_err(|_| malformed(code, "length is not 4"))?;
                Capability::Multiprotocol(AfiSafi {
                    afi: u16::from_be_bytes([a0, a1]),
                    safi,
                })
            }
            ROUTE_REFRESH => empty(code, v, Capability::RouteRefresh)?,
            EXTENDED_MESSAGE => empty(code, v, Capability::ExtendedMessage)?,
            ENHANCED_ROUTE_REFRESH => empty(code, v, Capability::EnhancedRouteRefresh)?,
            EXTENDED_NEXT_HOP => Capability::ExtendedNextHop {
                families: records::<6>(code, v)?
                    .map(|r| ExtNextHop {
                        afi: u16::from_be_bytes([r[0], r[1]]),
                        safi: u16::from_be_bytes([r[2], r[3]]),
                        next_hop_afi: u16::from_be_bytes([r[4], r[5]]),
                    })
                    .collect(),
            },
            GRACEFUL_RESTART => {
                let (head, rest) = v
                    .split_first_chunk::<2>()
                    .ok_or_else(|| malformed(code, "shorter than 2 octets"))?;
                let word = u16::from_be_bytes(*head);
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: word & 0x8000 != 0,
                    notification: word & 0x4000 != 0,
                    restart_time: word & 0x0fff,
                    families: records::<4>(code, rest)?
                        .map(|r| GrFamily {
                            afi_safi: AfiSafi {
                                afi: u16::from_be_bytes([r[0], r[1]]),
                                safi: r[2],
                            },
                            forwarding_preserved: r[3] & 0x80 != 0,
                        })
                        .collect(),
                })
            }
            FOUR_OCTET_AS => Capability::FourOctetAs {
                asn: <[u8; 4]>::try_from(v)
                    .map(u32::from_be_bytes)
                    .map_err(|_| malformed(code, "length is not 4"))?,
            },
            ADD_PATH => {
                let mut families = Vec::new();
                for r in records::<4>(code, v)? {
                    let mode = match r[3] {
                        1 => AddPathMode::Receive,
                        2 => AddPathMode::Send,
                        3 => AddPathMode::SendReceive,
                        // RFC 7911 section 4: treat the capability as not understood.
                        _ => {
                            return Ok(Capability::Unknown {
                                code,
                                value: v.to_vec(),
                            });
                        }
                    };
                    families.push(AddPathFamily {
                        afi_safi: AfiSafi {
                            afi: u16::from_be_bytes([r[0], r[1]]),
                            safi: r[2],
                        },
                        mode,
                    });
                }
                Capability::AddPath { families }
            }
            FQDN => {
                let (rest, (host, domain)) =
                    fqdn(v).map_err(|_: NomErr| malformed(code, "name overruns the value"))?;
                if !rest.is_empty() {
                    return Err(malformed(code, "trailing octets"));
                }
                Capability::Fqdn {
                    hostname: String::from_utf8_lossy(host).into_owned(),
                    domain: String::from_utf8_lossy(domain).into_owned(),
                }
            }
            _ => Capability::Unknown {
                code,
                value: v.to_vec(),
            },
        })
    }

    /// Appends code, length and value.
    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u8(self.code());
        out.put_u8(0);
        match self {
            Capability::Multiprotocol(f) => {
                out.put_u16(f.afi);
                out.put_u8(0);
                out.put_u8(f.safi);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop { families } => {
                for f in families {
                    out.put_u16(f.afi);
                    out.put_u16(f.safi);
                    out.put_u16(f.next_hop_afi);
                }
            }
            Capability::GracefulRestart(gr) => {
                let flags =
                    (u16::from(gr.restart_state) << 15) | (u16::from(gr.notification) << 14);
                out.put_u16(flags | (gr.restart_time & 0x0fff));
                for f in &gr.families {
                    out.put_u16(f.afi_safi.afi);
                    out.put_u8(f.afi_safi.safi);
                    out.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
                }
            }
            Capability::FourOctetAs { asn } => out.put_u32(*asn),
            Capability::AddPath { families } => {
                for f in families {
                    out.put_u16(f.afi_safi.afi);
                    out.put_u8(f.afi_safi.safi);
                    out.put_u8(f.mode as u8);
                }
            }
            Capability::Fqdn { hostname, domain } => {
                for (what, name) in [("FQDN hostname", hostname), ("FQDN domain", domain)] {
                    let len = u8::try_from(name.len()).map_err(|_| EncodeError::FieldTooLong {
                        what,
                        len: name.len(),
                        max: 255,
                    })?;
                    out.put_u8(len);
                    out.put_slice(name.as_bytes());
                }
            }
            Capability::Unknown { value, .. } => out.put_slice(value),
        }
        let len = out.len() - start - 2;
        let Ok(len8) = u8::try_from(len) else {
            out.truncate(start);
            return Err(EncodeError::FieldTooLong {
                what: "capability value",
                len,
                max: 255,
            });
        };
        out[start + 1] = len8;
        Ok(())
    }
}

/// Splits the capabilities of one Capabilities optional parameter (RFC 5492 section 4).
pub(crate) fn decode_list(mut v: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    while !v.is_empty() {
        let (rest, (code, value)) =
            (be_u8, be_u8.flat_map(take))
                .parse(v)
                .map_err(|_: NomErr| {
                    malformed(
                        v.first().copied().unwrap_or(0),
                        "overruns the optional parameter",
                    )
                })?;
        out.push(Capability::decode(code, value)?);
        v = rest;
    }
    Ok(())
}

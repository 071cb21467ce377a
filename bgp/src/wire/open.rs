//! OPEN messages (RFC 4271 section 4.2) with capabilities (RFC 5492) and extended optional
//! parameters length (RFC 9072).

use super::attr::AS_TRANS;
use super::capability::{self, Capability};
use super::error::{DecodeError, EncodeError, Reason, code, subcode};
use bytes::{BufMut, BytesMut};
use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32};
use serde::Serialize;
use std::net::Ipv4Addr;

const VERSION: u8 = 4;
/// Optional parameter type of capabilities (RFC 5492 section 4).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 section 2: this value in the first parameter's type octet announces the extended
/// format (2-octet lengths).
const PARAM_EXTENDED: u8 = 255;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Open {
    /// The 2-octet "My Autonomous System" field: AS_TRANS when the real AS needs 4 octets.
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`, filling "My Autonomous System" with AS_TRANS when `asn` needs 4 octets
    /// (RFC 6793 section 4.1). The caller includes the 4-octet AS capability.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Open {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
        Open {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The sender's AS: from the 4-octet AS capability when present (RFC 6793 section 4.1).
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs { asn } => Some(*asn),
            _ => None,
        })
    }
}

fn open_error(reason: Reason, sub: u8, data: Vec<u8>) -> DecodeError {
    DecodeError::reset(reason, code::OPEN_MESSAGE, sub, data)
}

type NomErr<'a> = nom::Err<nom::error::Error<&'a [u8]>>;

pub(crate) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
    let overrun = |_: NomErr| {
        open_error(
            Reason::OptionalParametersOverrun,
            subcode::UNSPECIFIC,
            Vec::new(),
        )
    };
    let (rest, (version, my_as, hold_time, bgp_id, opt_len)) =
        (be_u8, be_u16, be_u16, be_u32, be_u8)
            .parse(body)
            .map_err(overrun)?;
    // RFC 4271 section 6.2, in the order it lists the checks.
    if version != VERSION {
        return Err(open_error(
            Reason::UnsupportedVersion(version),
            subcode::UNSUPPORTED_VERSION,
            vec![0, VERSION],
        ));
    }
    if hold_time == 1 || hold_time == 2 {
        return Err(open_error(
            Reason::UnacceptableHoldTime(hold_time),
            subcode::UNACCEPTABLE_HOLD_TIME,
            Vec::new(),
        ));
    }
    if bgp_id == 0 {
        // RFC 6286 section 2.2: any non-zero value.
        return Err(open_error(
            Reason::ZeroBgpIdentifier,
            subcode::BAD_BGP_IDENTIFIER,
            Vec::new(),
        ));
    }
    let extended = opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED);
    let (params, trailing) = if extended {
        let (r, (_, len)) = (be_u8, be_u16).parse(rest).map_err(overrun)?;
        take(len).parse(r).map(|(t, p)| (p, t)).map_err(overrun)?
    } else {
        take(opt_len)
            .parse(rest)
            .map(|(t, p)| (p, t))
            .map_err(overrun)?
    };
    if !trailing.is_empty() {
        return Err(overrun(nom::Err::Error(nom::error::Error::new(
            trailing,
            nom::error::ErrorKind::Eof,
        ))));
    }
    let mut capabilities = Vec::new();
    let mut p = params;
    while !p.is_empty() {
        let (r, (ptype, value)) = if extended {
            (be_u8, be_u16.flat_map(take)).parse(p).map_err(overrun)?
        } else {
            (be_u8, be_u8.flat_map(take)).parse(p).map_err(overrun)?
        };
        if ptype != PARAM_CAPABILITIES {
            return Err(open_error(
                Reason::UnsupportedOptionalParameter(ptype),
                subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
                Vec::new(),
            ));
        }
        capability::decode_list(value, &mut capabilities)?;
        p = r;
    }
    Ok(Open {
        my_as,
        hold_time,
        bgp_id: Ipv4Addr::from(bgp_id),
        capabilities,
    })
}

pub(crate) fn encode(open: &Open, out: &mut BytesMut) -> Result<(), EncodeError> {
    out.put_u8(VERSION);
    out.put_u16(open.my_as);
    out.put_u16(open.hold_time);
    out.put_slice(&open.bgp_id.octets());
    // Capabilities are packed into as few Capabilities parameters as fit in 255 octets each.
    let mut caps = BytesMut::new();
    let mut params: Vec<BytesMut> = Vec::new();
    for cap in &open.capabilities {
        let mark = caps.len();
        cap.encode(&mut caps)?;
        if caps.len() > 255 && mark > 0 {
            let this = caps.split_off(mark);
            params.push(std::mem::replace(&mut caps, this));
        }
    }
    if !caps.is_empty() {
        params.push(caps);
    }
    let short_len: usize = params.iter().map(|p| 2 + p.len()).sum();
    if short_len <= 255 && params.iter().all(|p| p.len() <= 255) {
        out.put_u8(short_len as u8);
        for p in &params {
            out.put_u8(PARAM_CAPABILITIES);
            out.put_u8(p.len() as u8);
            out.put_slice(p);
        }
    } else {
        // RFC 9072 section 2.
        let long_len: usize = params.iter().map(|p| 3 + p.len()).sum();
        let len16 = u16::try_from(long_len).map_err(|_| EncodeError::FieldTooLong {
            what: "optional parameters",
            len: long_len,
            max: 65535,
        })?;
        out.put_u8(255);
        out.put_u8(PARAM_EXTENDED);
        out.put_u16(len16);
        for p in &params {
            out.put_u8(PARAM_CAPABILITIES);
            out.put_u16(p.len() as u16);
            out.put_slice(p);
        }
    }
    Ok(())
}

//! Neighbour (ARP/NDP) and bridge FDB entries for VXLAN peers.
//!
//! For every remote node reached over VXLAN the kernel needs two entries on the VXLAN device:
//! * a permanent **neighbour** entry `<remote VTEP address> lladdr <remote VTEP MAC>`, so the
//!   inner packet gets the right destination MAC without ARP over the overlay;
//! * an **FDB** entry `<remote VTEP MAC> dst <remote node underlay address>` (`AF_BRIDGE`,
//!   `NTF_SELF`: the VXLAN driver's own table), so the VXLAN driver knows where to send the
//!   encapsulated frame.
//!
//! "Ours" is everything of that shape on a device tortie owns: permanent neighbour entries
//! (written with `NDA_PROTOCOL` = our protocol, and filtered on it when the kernel reports
//! it) and FDB entries with a remote destination. Writes use `NLM_F_CREATE|NLM_F_REPLACE`, so
//! adding is idempotent and a changed MAC or remote replaces the old one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourHeader, NeighbourMessage,
    NeighbourState,
};
use netlink_packet_route::route::{RouteProtocol, RouteType};

use super::socket::{NLM_F_CREATE, NLM_F_REPLACE};

pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;

/// A permanent neighbour entry: `ip neigh replace IP lladdr MAC dev #IFINDEX nud permanent`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighbourEntry {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub mac: [u8; 6],
}

/// A VXLAN FDB entry: `bridge fdb replace MAC dev #IFINDEX dst DST self permanent`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbEntry {
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// The remote VTEP's underlay address.
    pub dst: IpAddr,
}

/// One write of a neighbour batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NeighOp {
    Replace(NeighbourEntry),
    Delete(NeighbourEntry),
}

/// One write of an FDB batch. A delete removes the entry for the MAC whatever its remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdbOp {
    Replace(FdbEntry),
    Delete(FdbEntry),
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn message(header: NeighbourHeader, attributes: Vec<NeighbourAttribute>) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header = header;
    m.attributes = attributes;
    m
}

fn emit(m: &NeighbourMessage, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + m.buffer_len(), 0);
    m.emit(&mut out[start..]);
}

/// Build a neighbour request (type, flags, message).
pub fn neigh_request(op: &NeighOp, protocol: u8) -> Result<(u16, u16, NeighbourMessage), String> {
    let (e, add) = match op {
        NeighOp::Replace(e) => (e, true),
        NeighOp::Delete(e) => (e, false),
    };
    if e.ifindex == 0 {
        return Err("neighbour on link index 0".into());
    }
    let header = NeighbourHeader {
        family: family_of(e.ip),
        ifindex: e.ifindex,
        state: NeighbourState::Permanent,
        flags: NeighbourFlags::empty(),
        kind: RouteType::Unspec,
    };
    let mut attrs = vec![NeighbourAttribute::Destination(neigh_addr(e.ip))];
    if add {
        attrs.push(NeighbourAttribute::LinkLayerAddress(e.mac.to_vec()));
        attrs.push(NeighbourAttribute::Protocol(RouteProtocol::from(protocol)));
    }
    let m = message(header, attrs);
    Ok(if add {
        (RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, m)
    } else {
        (RTM_DELNEIGH, 0, m)
    })
}

/// Build an FDB request (type, flags, message).
pub fn fdb_request(op: &FdbOp) -> Result<(u16, u16, NeighbourMessage), String> {
    let (e, add) = match op {
        FdbOp::Replace(e) => (e, true),
        FdbOp::Delete(e) => (e, false),
    };
    if e.ifindex == 0 {
        return Err("FDB entry on link index 0".into());
    }
    if e.mac == [0; 6] {
        return Err("FDB entry for the all-zero MAC (the default remote) is not ours".into());
    }
    let header = NeighbourHeader {
        family: AddressFamily::Bridge,
        ifindex: e.ifindex,
        state: NeighbourState::Permanent,
        flags: NeighbourFlags::Own, // NTF_SELF: the VXLAN device's own FDB
        kind: RouteType::Unspec,
    };
    let mut attrs = vec![NeighbourAttribute::LinkLayerAddress(e.mac.to_vec())];
    if add {
        let dst = match e.dst {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        attrs.push(NeighbourAttribute::Destination(NeighbourAddress::Other(
            dst,
        )));
    }
    let m = message(header, attrs);
    Ok(if add {
        (RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, m)
    } else {
        (RTM_DELNEIGH, 0, m)
    })
}

pub(crate) fn encode_neigh(
    op: &NeighOp,
    protocol: u8,
    out: &mut Vec<u8>,
) -> Result<(u16, u16), String> {
    let (ty, flags, m) = neigh_request(op, protocol)?;
    emit(&m, out);
    Ok((ty, flags))
}

pub(crate) fn encode_fdb(op: &FdbOp, out: &mut Vec<u8>) -> Result<(u16, u16), String> {
    let (ty, flags, m) = fdb_request(op)?;
    emit(&m, out);
    Ok((ty, flags))
}

/// Dump payload: neighbours of one family on one device (strict check: filter by
/// `NDA_IFINDEX`).
pub(crate) fn neigh_dump_request(family: AddressFamily, ifindex: u32) -> Vec<u8> {
    let header = NeighbourHeader {
        family,
        ..NeighbourHeader::default()
    };
    let m = message(header, vec![NeighbourAttribute::IfIndex(ifindex)]);
    let mut out = Vec::new();
    emit(&m, &mut out);
    out
}

/// Dump payload: the FDB of one device.
pub(crate) fn fdb_dump_request(ifindex: u32) -> Vec<u8> {
    let header = NeighbourHeader {
        family: AddressFamily::Bridge,
        ifindex,
        ..NeighbourHeader::default()
    };
    let m = message(header, vec![]);
    let mut out = Vec::new();
    emit(&m, &mut out);
    out
}

fn ip_of(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice())
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            16 => <[u8; 16]>::try_from(b.as_slice())
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        },
        _ => None,
    }
}

/// Decode a dumped neighbour; `None` unless it is a permanent entry with a MAC on `ifindex`
/// whose protocol (when reported) is `protocol`.
pub fn decode_neighbour(
    payload: &[u8],
    ifindex: u32,
    protocol: u8,
) -> Result<Option<NeighbourEntry>, String> {
    let m = NeighbourMessage::parse(payload).map_err(|e| format!("neighbour message: {e}"))?;
    if m.header.ifindex != ifindex || m.header.state != NeighbourState::Permanent {
        return Ok(None);
    }
    let mut ip = None;
    let mut mac = None;
    let mut proto = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(d) => ip = ip_of(d),
            NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
            NeighbourAttribute::Protocol(p) => proto = Some(u8::from(*p)),
            _ => {}
        }
    }
    if proto.is_some_and(|p| p != protocol) {
        return Ok(None);
    }
    Ok(match (ip, mac) {
        (Some(ip), Some(mac)) => Some(NeighbourEntry { ifindex, ip, mac }),
        _ => None,
    })
}

/// Decode a dumped FDB entry; `None` unless it is a `self` entry on `ifindex` with a remote
/// destination and a non-zero MAC.
pub fn decode_fdb(payload: &[u8], ifindex: u32) -> Result<Option<FdbEntry>, String> {
    let m = NeighbourMessage::parse(payload).map_err(|e| format!("FDB message: {e}"))?;
    if m.header.ifindex != ifindex || !m.header.flags.contains(NeighbourFlags::Own) {
        return Ok(None);
    }
    let mut dst = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(d) => dst = ip_of(d),
            NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
            _ => {}
        }
    }
    Ok(match (mac, dst) {
        (Some(mac), Some(dst)) if mac != [0; 6] => Some(FdbEntry { ifindex, mac, dst }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_round_trip() {
        let e = NeighbourEntry {
            ifindex: 4,
            ip: "198.19.2.0".parse().unwrap(),
            mac: [0x66, 0x74, 1, 2, 3, 4],
        };
        let mut b = Vec::new();
        encode_neigh(&NeighOp::Replace(e.clone()), 116, &mut b).unwrap();
        assert_eq!(decode_neighbour(&b, 4, 116).unwrap(), Some(e.clone()));
        assert_eq!(
            decode_neighbour(&b, 4, 12).unwrap(),
            None,
            "another protocol's entry"
        );
        assert_eq!(
            decode_neighbour(&b, 5, 116).unwrap(),
            None,
            "another device"
        );
    }

    #[test]
    fn fdb_round_trip() {
        let e = FdbEntry {
            ifindex: 4,
            mac: [0x66, 0x74, 1, 2, 3, 4],
            dst: "fd00:18::2".parse().unwrap(),
        };
        let mut b = Vec::new();
        encode_fdb(&FdbOp::Replace(e.clone()), &mut b).unwrap();
        assert_eq!(decode_fdb(&b, 4).unwrap(), Some(e.clone()));
        assert!(encode_fdb(&FdbOp::Replace(FdbEntry { mac: [0; 6], ..e }), &mut b).is_err());
    }
}

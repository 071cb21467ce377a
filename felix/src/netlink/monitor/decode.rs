//! Decoding what the kernel broadcasts: one datagram of rtnetlink notifications into
//! [`MonitorEvent`]s. Pure byte handling, no socket. Only the few fields the monitor reports
//! are read (`rtmsg`, `ifinfomsg`, `ndmsg` headers and a handful of attributes), every length
//! is checked against the bytes that are there, and whatever does not fit is skipped with a
//! debug log: a notification is a hint to repair, so a skipped one costs a late repair at
//! worst, while a panic would cost the agent.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{LinkEvent, MonitorEvent, NeighbourEvent, RouteEvent};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
/// In an `RTM_NEWROUTE` notification: the route replaced an existing one with the same key.
const NLM_F_REPLACE: u16 = 0x100;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_BRIDGE: u8 = 7;
const AF_INET6: u8 = 10;

/// `struct rtmsg`, `struct ifinfomsg`, `struct ndmsg`.
const RTMSG_LEN: usize = 12;
const IFINFOMSG_LEN: usize = 16;
const NDMSG_LEN: usize = 12;

const RTM_F_CLONED: u32 = 0x200;
const RTA_DST: u16 = 1;
const RTA_TABLE: u16 = 15;
const IFLA_IFNAME: u16 = 3;
const IFF_UP: u32 = 0x1;
const NDA_DST: u16 = 1;
const NDA_PROTOCOL: u16 = 12;
const NUD_PERMANENT: u16 = 0x80;
/// Attribute type bits that are flags, not part of the type (`NLA_TYPE_MASK`).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Decode the messages of one datagram into `out`; returns how many were skipped. A broken
/// header ends the datagram (its length cannot be trusted to find the next one); a broken
/// payload skips only its message.
pub(super) fn decode(buf: &[u8], out: &mut VecDeque<MonitorEvent>) -> u64 {
    let mut skipped = 0;
    let mut rest = buf;
    while !rest.is_empty() {
        let len = u32_at(rest, 0).map_or(0, |l| l as usize);
        let (Some(ty), Some(flags)) = (u16_at(rest, 4), u16_at(rest, 6)) else {
            tracing::debug!(
                bytes = rest.len(),
                "netlink monitor: trailing bytes shorter than a header; skipped"
            );
            return skipped + 1;
        };
        let Some(payload) = rest.get(NLMSG_HDRLEN..len).filter(|_| len >= NLMSG_HDRLEN) else {
            tracing::debug!(
                len,
                left = rest.len(),
                "netlink monitor: message length does not fit the datagram; rest skipped"
            );
            return skipped + 1;
        };
        match decode_message(ty, flags, payload) {
            Ok(Some(ev)) => out.push_back(ev),
            Ok(None) => skipped += 1,
            Err(why) => {
                tracing::debug!(ty, %why, "netlink monitor: malformed message skipped");
                skipped += 1;
            }
        }
        rest = rest.get(align4(len)..).unwrap_or(&[]);
    }
    skipped
}

/// One message: `Ok(None)` for what is not monitored, `Err` for what is malformed.
fn decode_message(ty: u16, flags: u16, p: &[u8]) -> Result<Option<MonitorEvent>, String> {
    match ty {
        RTM_NEWROUTE | RTM_DELROUTE => {
            Ok(decode_route(ty == RTM_DELROUTE, flags, p)?.map(MonitorEvent::Route))
        }
        RTM_NEWLINK | RTM_DELLINK => Ok(decode_link(ty == RTM_DELLINK, p)?.map(MonitorEvent::Link)),
        RTM_NEWNEIGH | RTM_DELNEIGH => {
            Ok(decode_neighbour(ty == RTM_DELNEIGH, p)?.map(MonitorEvent::Neighbour))
        }
        NLMSG_OVERRUN => Ok(Some(MonitorEvent::Lost)),
        NLMSG_NOOP | NLMSG_ERROR | NLMSG_DONE => Ok(None),
        other => {
            tracing::debug!(
                ty = other,
                "netlink monitor: unexpected message type skipped"
            );
            Ok(None)
        }
    }
}

fn decode_route(deleted: bool, flags: u16, p: &[u8]) -> Result<Option<RouteEvent>, String> {
    let hdr = p
        .get(..RTMSG_LEN)
        .ok_or_else(|| format!("route message of {} bytes, shorter than rtmsg", p.len()))?;
    let (family, dst_len, rtm_table, protocol) = (hdr[0], hdr[1], hdr[4], hdr[5]);
    let rtm_flags = u32_at(hdr, 8).unwrap_or(0);
    let max_len = match family {
        AF_INET => 32,
        AF_INET6 => 128,
        other => {
            tracing::debug!(
                family = other,
                "netlink monitor: route of another family skipped"
            );
            return Ok(None);
        }
    };
    if rtm_flags & RTM_F_CLONED != 0 {
        return Ok(None);
    }
    if dst_len > max_len {
        return Err(format!("prefix length {dst_len} for family {family}"));
    }
    let mut dst = None;
    let mut table = u32::from(rtm_table);
    for (kind, value) in attributes(p.get(RTMSG_LEN..).unwrap_or(&[]))? {
        match kind {
            RTA_DST => dst = Some(address(family, value)?),
            RTA_TABLE => table = u32_at(value, 0).ok_or("RTA_TABLE shorter than 4 bytes")?,
            _ => {}
        }
    }
    let addr = match (dst, family) {
        (Some(a), _) => a,
        (None, _) if dst_len != 0 => return Err(format!("/{dst_len} route without RTA_DST")),
        (None, AF_INET) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, _) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let prefix = IpNet::new(addr, dst_len).map_err(|e| format!("prefix {addr}/{dst_len}: {e}"))?;
    Ok(Some(RouteEvent {
        deleted,
        replaced: !deleted && flags & NLM_F_REPLACE != 0,
        prefix,
        protocol,
        table,
    }))
}

fn decode_link(deleted: bool, p: &[u8]) -> Result<Option<LinkEvent>, String> {
    let hdr = p
        .get(..IFINFOMSG_LEN)
        .ok_or_else(|| format!("link message of {} bytes, shorter than ifinfomsg", p.len()))?;
    // Bridge port notifications (AF_BRIDGE) share the group; a DELLINK there only means the
    // port left its bridge, not that the device is gone.
    if hdr[0] != AF_UNSPEC {
        return Ok(None);
    }
    let index = u32_at(hdr, 4).unwrap_or(0);
    let up = u32_at(hdr, 8).unwrap_or(0) & IFF_UP != 0;
    let mut name = None;
    for (kind, value) in attributes(p.get(IFINFOMSG_LEN..).unwrap_or(&[]))? {
        if kind == IFLA_IFNAME {
            let raw = value.split(|&b| b == 0).next().unwrap_or(&[]);
            name = Some(
                std::str::from_utf8(raw)
                    .map_err(|_| "IFLA_IFNAME is not UTF-8".to_string())?
                    .to_string(),
            );
        }
    }
    let name = name.ok_or_else(|| format!("link #{index} without IFLA_IFNAME"))?;
    Ok(Some(LinkEvent {
        deleted,
        index,
        name,
        up,
    }))
}

fn decode_neighbour(deleted: bool, p: &[u8]) -> Result<Option<NeighbourEvent>, String> {
    let hdr = p
        .get(..NDMSG_LEN)
        .ok_or_else(|| format!("neighbour message of {} bytes, shorter than ndmsg", p.len()))?;
    let family = hdr[0];
    if !matches!(family, AF_INET | AF_INET6 | AF_BRIDGE) {
        return Ok(None);
    }
    let ifindex = u32_at(hdr, 4).unwrap_or(0);
    let state = u16_at(hdr, 8).unwrap_or(0);
    let (mut dst, mut protocol) = (None, None);
    for (kind, value) in attributes(p.get(NDMSG_LEN..).unwrap_or(&[]))? {
        match kind {
            // An FDB entry's destination is the remote VTEP, of either family.
            NDA_DST if family == AF_BRIDGE => {
                let f = if value.len() == 16 { AF_INET6 } else { AF_INET };
                dst = Some(address(f, value)?);
            }
            NDA_DST => dst = Some(address(family, value)?),
            NDA_PROTOCOL => protocol = Some(*value.first().ok_or("empty NDA_PROTOCOL")?),
            _ => {}
        }
    }
    Ok(Some(NeighbourEvent {
        deleted,
        fdb: family == AF_BRIDGE,
        ifindex,
        dst,
        protocol,
        permanent: state & NUD_PERMANENT != 0,
    }))
}

/// The attributes (`rtattr`) of a payload, as (type without flag bits, value).
fn attributes(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (Some(len), Some(kind)) = (u16_at(b, 0), u16_at(b, 2)) else {
            return Err(format!(
                "{} trailing bytes, shorter than an attribute",
                b.len()
            ));
        };
        let len = len as usize;
        let value = b.get(4..len).filter(|_| len >= 4).ok_or_else(|| {
            format!(
                "attribute {kind} of length {len} with {} bytes left",
                b.len()
            )
        })?;
        out.push((kind & NLA_TYPE_MASK, value));
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

fn address(family: u8, b: &[u8]) -> Result<IpAddr, String> {
    match family {
        AF_INET => <[u8; 4]>::try_from(b).map(|a| IpAddr::V4(a.into())),
        _ => <[u8; 16]>::try_from(b).map(|a| IpAddr::V6(a.into())),
    }
    .map_err(|_| format!("address of {} bytes for family {family}", b.len()))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2)?.try_into().ok().map(u16::from_ne_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_ne_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
        out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align4(out.len()), 0);
    }

    /// One framed message.
    fn message(ty: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&[0u8; 8]);
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    /// An `rtmsg` for `prefix` (main table in the header, `RTA_TABLE` when `table` is given).
    fn route(prefix: &str, protocol: u8, table: Option<u32>, rtm_flags: u32) -> Vec<u8> {
        let prefix = net(prefix);
        let family = if prefix.addr().is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        };
        let mut p = vec![family, prefix.prefix_len(), 0, 0, 254, protocol, 0, 1];
        p.extend_from_slice(&rtm_flags.to_ne_bytes());
        if prefix.prefix_len() > 0 {
            match prefix.addr() {
                IpAddr::V4(a) => attr(&mut p, RTA_DST, &a.octets()),
                IpAddr::V6(a) => attr(&mut p, RTA_DST, &a.octets()),
            }
        }
        if let Some(t) = table {
            attr(&mut p, RTA_TABLE, &t.to_ne_bytes());
        }
        p
    }

    fn link(family: u8, index: u32, flags: u32, name: Option<&str>) -> Vec<u8> {
        let mut p = vec![family, 0, 0, 0];
        p.extend_from_slice(&index.to_ne_bytes());
        p.extend_from_slice(&flags.to_ne_bytes());
        p.extend_from_slice(&0u32.to_ne_bytes());
        if let Some(n) = name {
            let mut v = n.as_bytes().to_vec();
            v.push(0);
            attr(&mut p, IFLA_IFNAME, &v);
        }
        p
    }

    fn decoded(buf: &[u8]) -> (Vec<MonitorEvent>, u64) {
        let mut q = VecDeque::new();
        let skipped = decode(buf, &mut q);
        (q.into_iter().collect(), skipped)
    }

    fn route_event(deleted: bool, prefix: &str, protocol: u8, table: u32) -> MonitorEvent {
        MonitorEvent::Route(RouteEvent {
            deleted,
            replaced: false,
            prefix: net(prefix),
            protocol,
            table,
        })
    }

    #[test]
    fn a_route_deletion_is_decoded_with_prefix_protocol_and_table() {
        let buf = message(RTM_DELROUTE, 0, &route("198.19.1.0/26", 116, Some(254), 0));
        let (evs, skipped) = decoded(&buf);
        assert_eq!(evs, vec![route_event(true, "198.19.1.0/26", 116, 254)]);
        assert_eq!(skipped, 0);
    }

    #[test]
    fn rta_table_overrides_the_header_table() {
        let buf = message(
            RTM_NEWROUTE,
            0,
            &route("2001:2:0:19::/122", 12, Some(1000), 0),
        );
        let (evs, _) = decoded(&buf);
        assert_eq!(evs, vec![route_event(false, "2001:2:0:19::/122", 12, 1000)]);
    }

    #[test]
    fn a_default_route_has_no_destination_attribute() {
        let (evs, _) = decoded(&message(RTM_NEWROUTE, 0, &route("0.0.0.0/0", 3, None, 0)));
        assert_eq!(evs, vec![route_event(false, "0.0.0.0/0", 3, 254)]);
        let (evs, _) = decoded(&message(RTM_NEWROUTE, 0, &route("::/0", 9, None, 0)));
        assert_eq!(evs, vec![route_event(false, "::/0", 9, 254)]);
    }

    #[test]
    fn nlm_f_replace_marks_a_replacement_but_not_a_deletion() {
        let p = route("198.19.1.0/26", 4, None, 0);
        let (evs, _) = decoded(&message(RTM_NEWROUTE, NLM_F_REPLACE, &p));
        assert!(matches!(&evs[..], [MonitorEvent::Route(r)] if r.replaced && !r.deleted));
        let (evs, _) = decoded(&message(RTM_DELROUTE, NLM_F_REPLACE, &p));
        assert!(matches!(&evs[..], [MonitorEvent::Route(r)] if !r.replaced && r.deleted));
    }

    #[test]
    fn cloned_routes_are_skipped() {
        let p = route("2001:2::9/128", 116, None, RTM_F_CLONED);
        let (evs, skipped) = decoded(&message(RTM_DELROUTE, 0, &p));
        assert_eq!((evs, skipped), (vec![], 1));
    }

    #[test]
    fn a_truncated_header_ends_the_datagram_without_events() {
        let full = message(RTM_DELROUTE, 0, &route("198.19.1.0/26", 116, None, 0));
        for cut in [1, 3, NLMSG_HDRLEN - 1, NLMSG_HDRLEN + 5, full.len() - 4] {
            let (evs, skipped) = decoded(&full[..cut]);
            assert_eq!((evs, skipped), (vec![], 1), "cut at {cut}");
        }
    }

    #[test]
    fn a_truncated_payload_skips_only_its_message() {
        let mut buf = message(RTM_DELROUTE, 0, &route("198.19.1.0/26", 116, None, 0)[..7]);
        buf.extend(message(
            RTM_DELROUTE,
            0,
            &route("198.19.2.0/26", 116, None, 0),
        ));
        let (evs, skipped) = decoded(&buf);
        assert_eq!(evs, vec![route_event(true, "198.19.2.0/26", 116, 254)]);
        assert_eq!(skipped, 1);
    }

    #[test]
    fn a_truncated_attribute_skips_the_message() {
        let mut p = route("198.19.1.0/26", 116, None, 0);
        p.truncate(RTMSG_LEN + 6); // RTA_DST says 8 bytes, 2 of its value remain
        let (evs, skipped) = decoded(&message(RTM_DELROUTE, 0, &p));
        assert_eq!((evs, skipped), (vec![], 1));
    }

    #[test]
    fn impossible_prefixes_are_skipped() {
        // /33 for IPv4.
        let mut p = route("198.19.1.0/26", 116, None, 0);
        p[1] = 33;
        assert_eq!(decoded(&message(RTM_DELROUTE, 0, &p)).0, vec![]);
        // An IPv6 address in an IPv4 route.
        let mut p = vec![AF_INET, 26, 0, 0, 254, 116, 0, 1, 0, 0, 0, 0];
        attr(&mut p, RTA_DST, &[0u8; 16]);
        assert_eq!(decoded(&message(RTM_DELROUTE, 0, &p)).0, vec![]);
        // A /26 without a destination.
        let p = vec![AF_INET, 26, 0, 0, 254, 116, 0, 1, 0, 0, 0, 0];
        assert_eq!(decoded(&message(RTM_DELROUTE, 0, &p)).0, vec![]);
    }

    #[test]
    fn other_route_families_and_message_types_are_skipped() {
        let mut p = route("198.19.1.0/26", 116, None, 0);
        p[0] = 128; // RTNL_FAMILY_IPMR
        let mut buf = message(RTM_NEWROUTE, 0, &p);
        buf.extend(message(20, 0, &[0u8; 8])); // RTM_NEWADDR
        buf.extend(message(NLMSG_DONE, 0, &[0u8; 4]));
        assert_eq!(decoded(&buf), (vec![], 3));
    }

    #[test]
    fn nlmsg_overrun_means_lost_events() {
        assert_eq!(
            decoded(&message(NLMSG_OVERRUN, 0, &[])).0,
            vec![MonitorEvent::Lost]
        );
    }

    #[test]
    fn links_are_decoded_and_bridge_port_messages_skipped() {
        let mut buf = message(
            RTM_NEWLINK,
            0,
            &link(AF_UNSPEC, 7, IFF_UP, Some("vxlan.tortie")),
        );
        buf.extend(message(
            RTM_DELLINK,
            0,
            &link(AF_UNSPEC, 8, 0, Some("tunl0")),
        ));
        buf.extend(message(
            RTM_DELLINK,
            0,
            &link(AF_BRIDGE, 9, 0, Some("veth9")),
        ));
        buf.extend(message(RTM_DELLINK, 0, &link(AF_UNSPEC, 10, 0, None)));
        let (evs, skipped) = decoded(&buf);
        let l = |deleted, index, name: &str, up| {
            MonitorEvent::Link(LinkEvent {
                deleted,
                index,
                name: name.into(),
                up,
            })
        };
        assert_eq!(
            evs,
            vec![
                l(false, 7, "vxlan.tortie", true),
                l(true, 8, "tunl0", false)
            ]
        );
        assert_eq!(skipped, 2);
    }

    #[test]
    fn neighbours_and_fdb_entries_are_decoded() {
        let mut n = vec![AF_INET, 0, 0, 0];
        n.extend_from_slice(&5u32.to_ne_bytes());
        n.extend_from_slice(&NUD_PERMANENT.to_ne_bytes());
        n.extend_from_slice(&[0, 1]);
        attr(&mut n, NDA_DST, &[198, 19, 7, 0]);
        attr(&mut n, NDA_PROTOCOL, &[116]);
        let mut f = vec![AF_BRIDGE, 0, 0, 0];
        f.extend_from_slice(&5u32.to_ne_bytes());
        f.extend_from_slice(&NUD_PERMANENT.to_ne_bytes());
        f.extend_from_slice(&[2, 1]);
        attr(&mut f, NDA_DST, &[198, 18, 0, 2]);
        let mut buf = message(RTM_DELNEIGH, 0, &n);
        buf.extend(message(RTM_NEWNEIGH, 0, &f));
        let (evs, _) = decoded(&buf);
        assert_eq!(
            evs,
            vec![
                MonitorEvent::Neighbour(NeighbourEvent {
                    deleted: true,
                    fdb: false,
                    ifindex: 5,
                    dst: Some("198.19.7.0".parse().unwrap()),
                    protocol: Some(116),
                    permanent: true,
                }),
                MonitorEvent::Neighbour(NeighbourEvent {
                    deleted: false,
                    fdb: true,
                    ifindex: 5,
                    dst: Some("198.18.0.2".parse().unwrap()),
                    protocol: None,
                    permanent: true,
                }),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decoded(&buf);
        }

        #[test]
        fn arbitrary_payloads_of_monitored_types_never_panic(
            ty in proptest::sample::select(vec![RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWLINK, RTM_DELLINK, RTM_NEWNEIGH, RTM_DELNEIGH]),
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..128),
        ) {
            let _ = decoded(&message(ty, 0, &payload));
        }
    }
}

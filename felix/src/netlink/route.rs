//! Routes as tortie writes and reads them: [`KernelRoute`], its encoding into
//! `RTM_NEWROUTE`/`RTM_DELROUTE` (serialized by `netlink-packet-route`) and its decoding from
//! dumps.
//!
//! A route is identified in the kernel by (table, prefix, metric) — and, for deletes written
//! here, also by our protocol, so a delete can never remove another daemon's route. What it
//! forwards to is a [`RouteKind`]: next hops given inline (one, or several as an
//! `RTA_MULTIPATH` ECMP group), a nexthop object (`RTA_NH_ID`, see
//! [`nexthop`](super::nexthop)), or a blackhole.
//!
//! Routes tortie reads back that it could not have written (unreachable, prohibit, a `via`
//! of another family, lightweight-tunnel encapsulation) decode as [`RouteKind::Other`], never
//! silently disappear: the reconciler sees them and sweeps them.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope, RouteType,
};

use super::TORTIE_PROTOCOL;
use super::socket::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;

/// The main routing table (`ip route` without `table`).
pub const RT_TABLE_MAIN: u32 = 254;
/// IPv6 turns metric 0 into this (`IP6_RT_PRIO_USER`); see [`KernelRoute::normalized`].
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

/// One next hop of a unicast route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    /// The router to send to; `None` for a device route (the destination is on the link).
    /// Must be of the prefix's family.
    pub gateway: Option<IpAddr>,
    /// Output interface index; 0 lets the kernel resolve it from the gateway.
    pub oif: u32,
    /// `onlink`: trust that the gateway is reachable on `oif` without a covering route (how
    /// tunl0 and VXLAN routes reach a node address that is in no local subnet).
    pub onlink: bool,
    /// ECMP weight, 1..=256 (ip route's `weight`); meaningful only in a multipath route.
    pub weight: u16,
}

impl NextHop {
    /// `via gateway dev oif`.
    pub fn via(gateway: IpAddr, oif: u32) -> NextHop {
        NextHop {
            gateway: Some(gateway),
            oif,
            onlink: false,
            weight: 1,
        }
    }

    /// `via gateway dev oif onlink`.
    pub fn via_onlink(gateway: IpAddr, oif: u32) -> NextHop {
        NextHop {
            gateway: Some(gateway),
            oif,
            onlink: true,
            weight: 1,
        }
    }

    /// `dev oif` (scope link).
    pub fn dev(oif: u32) -> NextHop {
        NextHop {
            gateway: None,
            oif,
            onlink: false,
            weight: 1,
        }
    }

    /// The same next hop with an ECMP weight.
    pub fn weight(mut self, weight: u16) -> NextHop {
        self.weight = weight;
        self
    }
}

/// Where a route sends packets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Next hops given inline: one is a plain route, several an ECMP (`RTA_MULTIPATH`) route.
    Unicast(Vec<NextHop>),
    /// Through a nexthop object (`nhid N`); changing the object re-points every such route.
    Nexthop(u32),
    /// Drop silently (`blackhole`): this node's own blocks, so traffic to unallocated
    /// addresses of a local block does not leave by the default route.
    Blackhole,
    /// A route of a type tortie never writes (the `rtm_type`, or 0 for a unicast route with
    /// attributes tortie does not use such as `RTA_VIA` or `RTA_ENCAP`). Can only be deleted.
    Other(u8),
}

/// A route in the kernel's FIB, as tortie writes and reads it (both families).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelRoute {
    /// Routing table id ([`RT_TABLE_MAIN`] normally).
    pub table: u32,
    /// Destination; host bits must be zero.
    pub prefix: IpNet,
    pub kind: RouteKind,
    /// `rtm_protocol`: who owns the route ([`TORTIE_PROTOCOL`] for ours).
    pub protocol: u8,
    /// Metric (`RTA_PRIORITY`); lower wins. See [`KernelRoute::normalized`] for IPv6's 0.
    pub metric: u32,
    /// Preferred source address for traffic this host sends by the route (`RTA_PREFSRC`).
    pub prefsrc: Option<IpAddr>,
}

impl KernelRoute {
    /// A route of tortie's default protocol in the main table, metric 0.
    pub fn new(prefix: IpNet, kind: RouteKind) -> KernelRoute {
        KernelRoute {
            table: RT_TABLE_MAIN,
            prefix,
            kind,
            protocol: TORTIE_PROTOCOL,
            metric: 0,
            prefsrc: None,
        }
    }

    /// `prefix via gateway dev oif`.
    pub fn via(prefix: IpNet, gateway: IpAddr, oif: u32) -> KernelRoute {
        KernelRoute::new(prefix, RouteKind::Unicast(vec![NextHop::via(gateway, oif)]))
    }

    /// `blackhole prefix`.
    pub fn blackhole(prefix: IpNet) -> KernelRoute {
        KernelRoute::new(prefix, RouteKind::Blackhole)
    }

    /// `prefix nhid id`.
    pub fn nexthop(prefix: IpNet, id: u32) -> KernelRoute {
        KernelRoute::new(prefix, RouteKind::Nexthop(id))
    }

    pub fn with_protocol(mut self, protocol: u8) -> KernelRoute {
        self.protocol = protocol;
        self
    }

    pub fn with_metric(mut self, metric: u32) -> KernelRoute {
        self.metric = metric;
        self
    }

    pub fn with_table(mut self, table: u32) -> KernelRoute {
        self.table = table;
        self
    }

    /// The form the kernel reports back, so a desired route and a dumped one compare equal:
    /// IPv6 metric 0 becomes 1024, a single next hop has weight 1, multipath next hops are
    /// sorted (the kernel keeps insertion order, which carries no meaning).
    pub fn normalized(mut self) -> KernelRoute {
        if self.prefix.addr().is_ipv6() && self.metric == 0 {
            self.metric = IPV6_DEFAULT_METRIC;
        }
        if let RouteKind::Unicast(nhs) = &mut self.kind {
            if let [only] = nhs.as_mut_slice() {
                only.weight = 1;
            } else {
                nhs.sort();
            }
        }
        self
    }

    /// The (table, prefix, metric) triple the kernel keys routes by.
    pub fn key(&self) -> (u32, IpNet, u32) {
        (self.table, self.prefix, self.metric)
    }

    /// Check what the kernel would otherwise reject with a less helpful error (or, for IPv6
    /// host bits, silently accept).
    pub fn validate(&self) -> Result<(), String> {
        if self.prefix.trunc() != self.prefix {
            return Err(format!("{}: host bits set in the prefix", self.prefix));
        }
        if self.table == 0 {
            return Err(format!("{}: table 0 (unspecified)", self.prefix));
        }
        if let Some(src) = self.prefsrc {
            if src.is_ipv4() != self.prefix.addr().is_ipv4() {
                return Err(format!(
                    "{}: preferred source {src} of the other family",
                    self.prefix
                ));
            }
        }
        match &self.kind {
            RouteKind::Unicast(nhs) => {
                if nhs.is_empty() {
                    return Err(format!("{}: unicast route without next hops", self.prefix));
                }
                for nh in nhs {
                    if let Some(gw) = nh.gateway {
                        if gw.is_ipv4() != self.prefix.addr().is_ipv4() {
                            return Err(format!(
                                "{}: gateway {gw} of the other address family",
                                self.prefix
                            ));
                        }
                    } else if nh.oif == 0 {
                        return Err(format!(
                            "{}: next hop with neither gateway nor device",
                            self.prefix
                        ));
                    }
                    if nh.onlink && (nh.oif == 0 || nh.gateway.is_none()) {
                        return Err(format!(
                            "{}: onlink needs a gateway and a device",
                            self.prefix
                        ));
                    }
                    if nhs.len() > 1 && !(1..=256).contains(&nh.weight) {
                        return Err(format!(
                            "{}: ECMP weight {} outside 1..=256",
                            self.prefix, nh.weight
                        ));
                    }
                }
                Ok(())
            }
            RouteKind::Nexthop(0) => Err(format!("{}: nexthop id 0", self.prefix)),
            RouteKind::Nexthop(_) | RouteKind::Blackhole => Ok(()),
            RouteKind::Other(t) => {
                Err(format!("{}: route type {t} cannot be written", self.prefix))
            }
        }
    }
}

impl fmt::Display for KernelRoute {
    /// Roughly `ip route` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RouteKind::Blackhole => write!(f, "blackhole {}", self.prefix)?,
            RouteKind::Nexthop(id) => write!(f, "{} nhid {id}", self.prefix)?,
            RouteKind::Other(t) => write!(f, "{} type {t}", self.prefix)?,
            RouteKind::Unicast(nhs) => {
                write!(f, "{}", self.prefix)?;
                let multi = nhs.len() > 1;
                for nh in nhs {
                    if multi {
                        write!(f, " nexthop")?;
                    }
                    if let Some(gw) = nh.gateway {
                        write!(f, " via {gw}")?;
                    }
                    if nh.oif != 0 {
                        write!(f, " dev #{}", nh.oif)?;
                    }
                    if multi {
                        write!(f, " weight {}", nh.weight)?;
                    }
                    if nh.onlink {
                        write!(f, " onlink")?;
                    }
                }
            }
        }
        write!(f, " proto {} metric {}", self.protocol, self.metric)?;
        if self.table != RT_TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// What a route message does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteOpKind {
    /// Add; fails with `EEXIST` if any route has the same (table, prefix, metric) — foreign
    /// ones included (`NLM_F_CREATE|NLM_F_EXCL`).
    Create,
    /// Add or replace the route with the same (table, prefix, metric)
    /// (`NLM_F_CREATE|NLM_F_REPLACE`). The kernel replaces whatever route holds that key,
    /// whoever owns it; the reconciler uses it only where its dump showed ours or nothing.
    Replace,
    /// Delete the route with this (table, prefix, metric) *and our protocol*; metric 0 matches
    /// any metric. Next hops are not compared.
    Delete,
}

/// One write of a batch (see [`Kernel::apply_routes`](super::Kernel::apply_routes)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteOp {
    Create(KernelRoute),
    Replace(KernelRoute),
    Delete(KernelRoute),
}

impl RouteOp {
    pub fn kind(&self) -> RouteOpKind {
        match self {
            RouteOp::Create(_) => RouteOpKind::Create,
            RouteOp::Replace(_) => RouteOpKind::Replace,
            RouteOp::Delete(_) => RouteOpKind::Delete,
        }
    }

    pub fn route(&self) -> &KernelRoute {
        match self {
            RouteOp::Create(r) | RouteOp::Replace(r) | RouteOp::Delete(r) => r,
        }
    }
}

fn family(prefix: &IpNet) -> AddressFamily {
    match prefix {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

fn addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

/// Build the `rtmsg` + attributes of a route message.
pub fn route_message(op: RouteOpKind, route: &KernelRoute) -> Result<RouteMessage, String> {
    let delete = op == RouteOpKind::Delete;
    if !delete {
        route.validate()?;
    } else if route.prefix.trunc() != route.prefix {
        return Err(format!("{}: host bits set in the prefix", route.prefix));
    }
    let mut header = RouteHeader {
        address_family: family(&route.prefix),
        destination_prefix_length: route.prefix.prefix_len(),
        protocol: RouteProtocol::from(route.protocol),
        ..RouteHeader::default()
    };
    let mut attrs = Vec::with_capacity(4);
    if route.prefix.prefix_len() > 0 {
        attrs.push(RouteAttribute::Destination(addr(route.prefix.addr())));
    }
    if let Ok(t) = u8::try_from(route.table) {
        header.table = t;
    } else {
        header.table = RouteHeader::RT_TABLE_UNSPEC;
        attrs.push(RouteAttribute::Table(route.table));
    }
    if route.metric != 0 || delete {
        attrs.push(RouteAttribute::Priority(route.metric));
    }
    if let (Some(src), false) = (route.prefsrc, delete) {
        attrs.push(RouteAttribute::PrefSource(addr(src)));
    }
    if delete {
        // Any type and scope: (table, prefix, metric, protocol) identify the route.
        header.scope = RouteScope::NoWhere;
        header.kind = RouteType::Unspec;
        return Ok(message(header, attrs));
    }
    header.scope = RouteScope::Universe;
    match &route.kind {
        RouteKind::Blackhole => header.kind = RouteType::BlackHole,
        RouteKind::Nexthop(id) => {
            header.kind = RouteType::Unicast;
            attrs.push(RouteAttribute::NhId(*id));
        }
        RouteKind::Unicast(nhs) => {
            header.kind = RouteType::Unicast;
            match nhs.as_slice() {
                [nh] => {
                    if let Some(gw) = nh.gateway {
                        attrs.push(RouteAttribute::Gateway(addr(gw)));
                    } else if route.prefix.addr().is_ipv4() {
                        header.scope = RouteScope::Link;
                    }
                    if nh.oif != 0 {
                        attrs.push(RouteAttribute::Oif(nh.oif));
                    }
                    if nh.onlink {
                        header.flags |= RouteFlags::Onlink;
                    }
                }
                many => {
                    let hops = many
                        .iter()
                        .map(|nh| {
                            let mut h = RouteNextHop::default();
                            h.interface_index = nh.oif;
                            h.hops = u8::try_from(nh.weight.saturating_sub(1)).unwrap_or(u8::MAX);
                            if nh.onlink {
                                h.flags |= RouteNextHopFlags::Onlink;
                            }
                            if let Some(gw) = nh.gateway {
                                h.attributes.push(RouteAttribute::Gateway(addr(gw)));
                            }
                            h
                        })
                        .collect();
                    attrs.push(RouteAttribute::MultiPath(hops));
                }
            }
        }
        RouteKind::Other(t) => {
            return Err(format!(
                "{}: route type {t} cannot be written",
                route.prefix
            ));
        }
    }
    Ok(message(header, attrs))
}

fn message(header: RouteHeader, attributes: Vec<RouteAttribute>) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header = header;
    m.attributes = attributes;
    m
}

/// Netlink type and flags of a route operation.
pub(crate) fn op_type_flags(op: RouteOpKind) -> (u16, u16) {
    match op {
        RouteOpKind::Create => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL),
        RouteOpKind::Replace => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE),
        RouteOpKind::Delete => (RTM_DELROUTE, 0),
    }
}

/// Append the payload of a route operation (for the batch writer).
pub(crate) fn encode_route(
    op: RouteOpKind,
    route: &KernelRoute,
    out: &mut Vec<u8>,
) -> Result<(u16, u16), String> {
    let msg = route_message(op, route)?;
    let start = out.len();
    out.resize(start + msg.buffer_len(), 0);
    msg.emit(&mut out[start..]);
    Ok(op_type_flags(op))
}

/// A whole framed netlink message for `op` (header with `seq`, no `NLM_F_ACK`): what the
/// batch writer sends, exposed so tests can take messages apart attribute by attribute.
pub fn route_request_bytes(
    op: RouteOpKind,
    route: &KernelRoute,
    seq: u32,
) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    super::socket::push_message(&mut buf, seq, 0, |b| encode_route(op, route, b))?;
    Ok(buf)
}

/// The payload of a strict-checked route dump request: one family, one table, one protocol
/// (0 = every protocol), filtered in the kernel.
pub(crate) fn dump_request(family: AddressFamily, table: u32, protocol: u8) -> Vec<u8> {
    let mut header = RouteHeader {
        address_family: family,
        protocol: RouteProtocol::from(protocol),
        ..RouteHeader::default()
    };
    let mut attrs = Vec::new();
    match u8::try_from(table) {
        Ok(t) => header.table = t,
        Err(_) => attrs.push(RouteAttribute::Table(table)),
    }
    let msg = message(header, attrs);
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    buf
}

/// Decode one dumped route. `Ok(None)`: not a route of the inet families (or a cached
/// clone), which a dump of ours skips.
pub fn decode_route(payload: &[u8]) -> Result<Option<KernelRoute>, String> {
    let msg = RouteMessage::parse(payload).map_err(|e| format!("route message: {e}"))?;
    from_message(&msg)
}

/// Turn a parsed route message into a [`KernelRoute`].
pub fn from_message(msg: &RouteMessage) -> Result<Option<KernelRoute>, String> {
    let h = &msg.header;
    let v4 = match h.address_family {
        AddressFamily::Inet => true,
        AddressFamily::Inet6 => false,
        _ => return Ok(None),
    };
    if h.flags.contains(RouteFlags::Cloned) {
        return Ok(None);
    }
    let mut dst = None;
    let mut table = u32::from(h.table);
    let mut metric = 0;
    let mut gateway = None;
    let mut oif = 0;
    let mut nh_id = None;
    let mut prefsrc = None;
    let mut multipath = None;
    let mut unsupported = false;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = Some(ip_of(d)?),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Gateway(g) => gateway = Some(ip_of(g)?),
            RouteAttribute::Oif(o) => oif = *o,
            RouteAttribute::NhId(id) => nh_id = Some(*id),
            RouteAttribute::PrefSource(p) => prefsrc = Some(ip_of(p)?),
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            RouteAttribute::Via(_)
            | RouteAttribute::Encap(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::NewDestination(_) => unsupported = true,
            _ => {}
        }
    }
    let len = h.destination_prefix_length;
    let prefix = match dst {
        Some(ip) => IpNet::new(ip, len).map_err(|_| format!("prefix length {len} for {ip}"))?,
        None if len == 0 => {
            if v4 {
                IpNet::V4(Default::default())
            } else {
                IpNet::V6(Default::default())
            }
        }
        None => return Err(format!("route with prefix length {len} but no destination")),
    };
    if prefix.addr().is_ipv4() != v4 {
        return Err(format!(
            "destination {prefix} in a message of the other family"
        ));
    }
    let kind = if let Some(id) = nh_id {
        // With a nexthop object the kernel also reports the object's gateway and device
        // (compat mode) and a blackhole type for a blackhole object; the object is the truth.
        RouteKind::Nexthop(id)
    } else {
        match h.kind {
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unicast if unsupported => RouteKind::Other(0),
            RouteType::Unicast => match multipath {
                Some(hops) => {
                    let mut nhs = Vec::with_capacity(hops.len());
                    for hop in hops.iter() {
                        let mut gw = None;
                        for a in &hop.attributes {
                            match a {
                                RouteAttribute::Gateway(g) => gw = Some(ip_of(g)?),
                                RouteAttribute::Via(_) | RouteAttribute::Encap(_) => {
                                    unsupported = true
                                }
                                _ => {}
                            }
                        }
                        nhs.push(NextHop {
                            gateway: gw,
                            oif: hop.interface_index,
                            onlink: hop.flags.contains(RouteNextHopFlags::Onlink),
                            weight: u16::from(hop.hops) + 1,
                        });
                    }
                    if unsupported || nhs.is_empty() {
                        RouteKind::Other(0)
                    } else {
                        RouteKind::Unicast(nhs)
                    }
                }
                None => RouteKind::Unicast(vec![NextHop {
                    gateway,
                    oif,
                    onlink: h.flags.contains(RouteFlags::Onlink),
                    weight: 1,
                }]),
            },
            other => RouteKind::Other(u8::from(other)),
        }
    };
    Ok(Some(KernelRoute {
        table,
        prefix,
        kind,
        protocol: u8::from(h.protocol),
        metric,
        prefsrc,
    }))
}

fn ip_of(a: &RouteAddress) -> Result<IpAddr, String> {
    match a {
        RouteAddress::Inet(v4) => Ok(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Ok(IpAddr::V6(*v6)),
        other => Err(format!("unexpected address {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn round_trip(op: RouteOpKind, r: &KernelRoute) -> KernelRoute {
        let bytes = route_request_bytes(op, r, 1).unwrap();
        decode_route(&bytes[16..]).unwrap().unwrap()
    }

    #[test]
    fn single_gateway_onlink_round_trips() {
        let r = KernelRoute::new(
            net("198.19.1.0/26"),
            RouteKind::Unicast(vec![NextHop::via_onlink("198.18.2.2".parse().unwrap(), 7)]),
        )
        .with_metric(10);
        assert_eq!(round_trip(RouteOpKind::Replace, &r), r);
    }

    #[test]
    fn multipath_v6_round_trips() {
        let r = KernelRoute::new(
            net("fd00:19::/122"),
            RouteKind::Unicast(vec![
                NextHop::via("fd00:18::2".parse().unwrap(), 3).weight(2),
                NextHop::via("fd00:18::3".parse().unwrap(), 4).weight(256),
            ]),
        )
        .with_table(1000);
        assert_eq!(round_trip(RouteOpKind::Create, &r), r);
    }

    #[test]
    fn blackhole_and_nhid_round_trip() {
        for r in [
            KernelRoute::blackhole(net("198.19.0.0/26")),
            KernelRoute::nexthop(net("198.19.0.64/26"), 42),
        ] {
            assert_eq!(round_trip(RouteOpKind::Replace, &r), r);
        }
    }

    #[test]
    fn invalid_routes_are_refused_before_the_kernel() {
        let gw6: IpAddr = "fd00::1".parse().unwrap();
        let bad = [
            KernelRoute::via(net("198.19.0.1/26").trunc(), gw6, 1),
            KernelRoute::new("198.19.0.1/26".parse().unwrap(), RouteKind::Blackhole),
            KernelRoute::new(net("198.19.0.0/26"), RouteKind::Unicast(vec![])),
            KernelRoute::new(
                net("198.19.0.0/26"),
                RouteKind::Unicast(vec![NextHop::dev(0)]),
            ),
            KernelRoute::nexthop(net("198.19.0.0/26"), 0),
            KernelRoute::new(
                net("198.19.0.0/26"),
                RouteKind::Unicast(vec![NextHop::dev(1).weight(0), NextHop::dev(2)]),
            ),
        ];
        for r in bad {
            assert!(
                route_request_bytes(RouteOpKind::Replace, &r, 1).is_err(),
                "{r}"
            );
        }
    }

    #[test]
    fn delete_carries_protocol_and_metric_only() {
        let r =
            KernelRoute::via(net("198.19.0.0/26"), "198.18.0.2".parse().unwrap(), 2).with_metric(5);
        let bytes = route_request_bytes(RouteOpKind::Delete, &r, 9).unwrap();
        let msg = RouteMessage::parse(&bytes[16..]).unwrap();
        assert_eq!(u8::from(msg.header.protocol), TORTIE_PROTOCOL);
        assert_eq!(msg.header.scope, RouteScope::NoWhere);
        assert!(msg.attributes.contains(&RouteAttribute::Priority(5)));
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_)))
        );
    }

    /// The top-level attributes of a framed route message: (type, payload).
    fn wire_attributes(bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
        // nlmsghdr (16) + rtmsg (12), then 4-aligned rtattrs.
        let mut out = Vec::new();
        let mut at = 16 + 12;
        while at + 4 <= bytes.len() {
            let len = usize::from(u16::from_ne_bytes([bytes[at], bytes[at + 1]]));
            let ty = u16::from_ne_bytes([bytes[at + 2], bytes[at + 3]]);
            assert!(len >= 4 && at + len <= bytes.len(), "bad rtattr at {at}");
            out.push((ty, bytes[at + 4..at + len].to_vec()));
            at += (len + 3) & !3;
        }
        out
    }

    /// `RTA_PRIORITY` in linux/rtnetlink.h.
    const RTA_PRIORITY: u16 = 6;

    #[test]
    fn a_metric_is_written_as_rta_priority() {
        let r = KernelRoute::via(net("198.19.0.0/26"), "198.18.0.2".parse().unwrap(), 2)
            .with_metric(512);
        for op in [RouteOpKind::Create, RouteOpKind::Replace] {
            let bytes = route_request_bytes(op, &r, 1).unwrap();
            let prio: Vec<Vec<u8>> = wire_attributes(&bytes)
                .into_iter()
                .filter(|(t, _)| *t == RTA_PRIORITY)
                .map(|(_, v)| v)
                .collect();
            assert_eq!(prio, vec![512u32.to_ne_bytes().to_vec()], "{op:?}");
        }
    }

    #[test]
    fn metric_0_is_written_without_rta_priority() {
        for r in [
            KernelRoute::via(net("198.19.0.0/26"), "198.18.0.2".parse().unwrap(), 2),
            KernelRoute::via(net("fd00:19::/122"), "fd00:18::2".parse().unwrap(), 2),
            KernelRoute::blackhole(net("198.19.1.0/26")),
        ] {
            let bytes = route_request_bytes(RouteOpKind::Create, &r, 1).unwrap();
            assert!(
                !wire_attributes(&bytes)
                    .iter()
                    .any(|(t, _)| *t == RTA_PRIORITY),
                "{r}"
            );
        }
    }

    #[test]
    fn a_delete_names_its_exact_metric() {
        let r = KernelRoute::blackhole(net("fd00:19::/122")).with_metric(IPV6_DEFAULT_METRIC);
        let bytes = route_request_bytes(RouteOpKind::Delete, &r, 3).unwrap();
        let attrs = wire_attributes(&bytes);
        assert!(
            attrs.contains(&(RTA_PRIORITY, 1024u32.to_ne_bytes().to_vec())),
            "{attrs:?}"
        );
    }

    #[test]
    fn a_dumped_rta_priority_is_read_as_the_metric() {
        for (prefix, gw) in [
            ("198.19.0.0/26", "198.18.0.2"),
            ("fd00:19::/122", "fd00:18::2"),
        ] {
            let r = KernelRoute::via(net(prefix), gw.parse().unwrap(), 4).with_metric(512);
            // What a dump returns is an RTM_NEWROUTE of the same layout.
            let bytes = route_request_bytes(RouteOpKind::Replace, &r, 1).unwrap();
            let back = decode_route(&bytes[16..]).unwrap().unwrap();
            assert_eq!(back.metric, 512, "{prefix}");
            assert_eq!(back, r);
        }
    }

    #[test]
    fn normalized_matches_kernel_forms() {
        let r = KernelRoute::via(net("fd00::/64"), "fd00:1::1".parse().unwrap(), 1).normalized();
        assert_eq!(r.metric, IPV6_DEFAULT_METRIC);
        let m = KernelRoute::new(
            net("10.0.0.0/8"),
            RouteKind::Unicast(vec![NextHop::dev(3), NextHop::dev(2)]),
        )
        .normalized();
        assert_eq!(
            m.kind,
            RouteKind::Unicast(vec![NextHop::dev(2), NextHop::dev(3)])
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = decode_route(&junk);
        }
    }
}

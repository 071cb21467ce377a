//! Links and addresses: dump, look up by name, and the two tunnel devices tortie owns.
//!
//! * `vxlan.tortie` / `vxlan-v6.tortie` ([`VxlanSpec`]): created, or adopted when one with
//!   the same immutable parameters (VNI, port, local address, underlay device, learning off)
//!   exists; recreated when those differ (the kernel cannot change them in place). The MAC
//!   address and MTU are set in place. Recreating a device drops every route, neighbour and
//!   FDB entry through it, so the reconciler re-adds them afterwards.
//! * `tunl0` ([`Tunl0Spec`]): the IPIP fallback device the `ipip` module creates in every
//!   namespace. It is adopted (MTU, up, address); when it is missing the module is checked
//!   (`/sys/module/ipip`) and a missing module is a clear [`NlError::MissingModule`](super::NlError::MissingModule). The
//!   fallback device is created with path-MTU discovery off (`nopmtudisc`), and the kernel
//!   refuses tunnel-parameter changes on it (`ip_tunnel_changelink`: `EINVAL` for the fallback
//!   device), so `IFLA_IPTUN_PMTUDISC = 0` is only sent when a dump shows it on (a `tunl0`
//!   someone created as a regular ipip device).
//!
//! Link messages are built and parsed with `netlink-packet-route`. Each [`LinkRequest`] can be
//! turned into the exact bytes sent ([`link_request_bytes`]), so tests take them apart.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::IpNet;
use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeader, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkHeader, LinkInfo,
    LinkMessage,
};

use super::nexthop::attrs;
use super::socket::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;

/// The IPv4-underlay VXLAN device.
pub const VXLAN_V4_NAME: &str = "vxlan.tortie";
/// The IPv6-underlay VXLAN device (15 characters, the most `IFNAMSIZ` allows).
pub const VXLAN_V6_NAME: &str = "vxlan-v6.tortie";
/// IANA's VXLAN port (the Linux default is 8472, so it is always given explicitly).
pub const VXLAN_PORT: u16 = 4789;
/// Calico's default VNI for IPv4 (`vxlanVNI`).
pub const VXLAN_V4_VNI: u32 = 4096;
/// Calico's default VNI for IPv6 (`vxlanVNIV6`).
pub const VXLAN_V6_VNI: u32 = 6096;
/// The IPIP fallback device.
pub const TUNL0_NAME: &str = "tunl0";
/// Longest interface name (`IFNAMSIZ` - 1).
pub const MAX_IFNAME: usize = 15;

/// What a dump says about a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` ("veth", "vxlan", "ipip", "bridge"...); `None` for `lo` and
    /// physical devices.
    pub kind: Option<String>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier and operationally running (`IFF_RUNNING`).
    pub running: bool,
    /// Hardware address, when it is a 6-byte MAC.
    pub mac: Option<[u8; 6]>,
    /// `IFLA_LINK`: the lower device, for veth the peer.
    pub link: Option<u32>,
    pub vxlan: Option<VxlanInfo>,
    pub iptun: Option<IpTunnelInfo>,
}

/// The parameters of a VXLAN device that matter to tortie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanInfo {
    pub vni: u32,
    pub port: u16,
    pub local: Option<IpAddr>,
    /// Underlay device index (`dev`).
    pub underlay: Option<u32>,
    pub learning: bool,
}

/// The parameters of an IP-in-IP device that matter to tortie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpTunnelInfo {
    pub local: Option<IpAddr>,
    pub remote: Option<IpAddr>,
    pub pmtudisc: bool,
    pub underlay: Option<u32>,
}

/// Desired VXLAN device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// This node's underlay address (its family decides v4 or v6 underlay).
    pub local: IpAddr,
    /// Underlay device index (the device that holds `local`).
    pub underlay: Option<u32>,
    /// The VTEP MAC address (unicast).
    pub mac: [u8; 6],
    /// MTU to set; `None` keeps what the kernel derives (underlay - 50 / - 70).
    pub mtu: Option<u32>,
}

impl VxlanSpec {
    /// `vxlan.tortie`: VNI 4096, port 4789, learning off.
    pub fn v4(local: Ipv4Addr, underlay: Option<u32>, mac: [u8; 6]) -> VxlanSpec {
        VxlanSpec {
            name: VXLAN_V4_NAME.into(),
            vni: VXLAN_V4_VNI,
            port: VXLAN_PORT,
            local: IpAddr::V4(local),
            underlay,
            mac,
            mtu: None,
        }
    }

    /// `vxlan-v6.tortie`: VNI 6096, port 4789, learning off.
    pub fn v6(local: std::net::Ipv6Addr, underlay: Option<u32>, mac: [u8; 6]) -> VxlanSpec {
        VxlanSpec {
            name: VXLAN_V6_NAME.into(),
            vni: VXLAN_V6_VNI,
            port: VXLAN_PORT,
            local: IpAddr::V6(local),
            underlay,
            mac,
            mtu: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.vni == 0 || self.vni >= 1 << 24 {
            return Err(format!("{}: VNI {} outside 1..2^24", self.name, self.vni));
        }
        if self.port == 0 {
            return Err(format!("{}: port 0", self.name));
        }
        if self.mac[0] & 1 != 0 || self.mac == [0; 6] {
            return Err(format!(
                "{}: MAC {} is not a unicast address",
                self.name,
                fmt_mac(&self.mac)
            ));
        }
        check_mtu(self.mtu)
    }

    /// Whether an existing device can be adopted (its immutable parameters match).
    pub fn matches(&self, link: &Link) -> bool {
        link.kind.as_deref() == Some("vxlan")
            && link.vxlan.as_ref().is_some_and(|v| {
                v.vni == self.vni
                    && v.port == self.port
                    && v.local == Some(self.local)
                    && v.underlay.filter(|&i| i != 0) == self.underlay
                    && !v.learning
            })
    }
}

/// Desired `tunl0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tunl0Spec {
    /// MTU to set (Calico: underlay - 20).
    pub mtu: Option<u32>,
    /// The node's IPIP tunnel address, as a /32 (other IPv4 addresses on tunl0 are removed).
    pub address: Option<Ipv4Addr>,
}

/// Link attributes to change in place; `None` leaves one alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkSettings {
    pub mtu: Option<u32>,
    pub up: Option<bool>,
    pub mac: Option<[u8; 6]>,
}

impl LinkSettings {
    /// Whether `link` already has these settings.
    pub fn satisfied_by(&self, link: &Link) -> bool {
        self.mtu.is_none_or(|m| m == link.mtu)
            && self.up.is_none_or(|u| u == link.up)
            && self.mac.is_none_or(|m| Some(m) == link.mac)
    }

    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.mtu.is_none() && self.up.is_none() && self.mac.is_none()
    }
}

/// What `ensure_*` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// Existed as wanted; nothing was written.
    Unchanged,
    /// Existed; MTU, MAC, state or addresses were changed in place.
    Updated,
    /// Did not exist; created.
    Created,
    /// Existed with other immutable parameters; deleted and created again.
    Recreated,
}

/// A link request, as sent.
#[derive(Clone, Debug)]
pub enum LinkRequest<'a> {
    /// `ip link add NAME address MAC mtu M type vxlan id VNI dstport P local A dev D nolearning` + up.
    CreateVxlan(&'a VxlanSpec),
    /// `ip link add tunl0 type ipip nopmtudisc` (only where the module has no fallback device).
    CreateTunl0(&'a Tunl0Spec),
    /// `ip link set dev #INDEX [mtu M] [address MAC] [up|down]`.
    Set(u32, &'a LinkSettings),
    /// `ip link set dev #INDEX type ipip nopmtudisc` (`IFLA_IPTUN_PMTUDISC = 0`).
    IpipNoPmtuDisc(u32),
    /// `ip link del dev #INDEX`.
    Delete(u32),
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_IFNAME
        || name.contains(['/', ' ', '\0'])
        || name == "."
        || name == ".."
    {
        return Err(format!("bad interface name {name:?}"));
    }
    Ok(())
}

fn check_mtu(mtu: Option<u32>) -> Result<(), String> {
    match mtu {
        Some(m) if !(68..=65535).contains(&m) => Err(format!("MTU {m} outside 68..=65535")),
        _ => Ok(()),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn link_message(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header = LinkHeader {
        interface_family: AddressFamily::Unspec,
        index,
        ..LinkHeader::default()
    };
    m.attributes = attributes;
    m
}

fn set_up(m: &mut LinkMessage, up: bool) {
    m.header.change_mask |= LinkFlags::Up;
    if up {
        m.header.flags |= LinkFlags::Up;
    }
}

/// The netlink type, flags and `ifinfomsg` message of a link request.
pub fn link_request(req: &LinkRequest<'_>) -> Result<(u16, u16, LinkMessage), String> {
    Ok(match req {
        LinkRequest::CreateVxlan(spec) => {
            spec.validate()?;
            let mut data = vec![
                InfoVxlan::Id(spec.vni),
                InfoVxlan::Port(spec.port),
                InfoVxlan::Learning(false),
            ];
            match spec.local {
                IpAddr::V4(a) => data.push(InfoVxlan::Local(a)),
                IpAddr::V6(a) => data.push(InfoVxlan::Local6(a)),
            }
            if let Some(dev) = spec.underlay {
                data.push(InfoVxlan::Link(dev));
            }
            let mut attrs = vec![
                LinkAttribute::IfName(spec.name.clone()),
                LinkAttribute::Address(spec.mac.to_vec()),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Vxlan),
                    LinkInfo::Data(InfoData::Vxlan(data)),
                ]),
            ];
            if let Some(mtu) = spec.mtu {
                attrs.push(LinkAttribute::Mtu(mtu));
            }
            let mut m = link_message(0, attrs);
            set_up(&mut m, true);
            (RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, m)
        }
        LinkRequest::CreateTunl0(spec) => {
            check_mtu(spec.mtu)?;
            let mut attrs = vec![
                LinkAttribute::IfName(TUNL0_NAME.into()),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::IpIp),
                    LinkInfo::Data(InfoData::IpTunnel(vec![InfoIpTunnel::PMtuDisc(false)])),
                ]),
            ];
            if let Some(mtu) = spec.mtu {
                attrs.push(LinkAttribute::Mtu(mtu));
            }
            let mut m = link_message(0, attrs);
            set_up(&mut m, true);
            (RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, m)
        }
        LinkRequest::Set(index, s) => {
            check_mtu(s.mtu)?;
            if *index == 0 {
                return Err("link index 0".into());
            }
            let mut attrs = Vec::new();
            if let Some(mtu) = s.mtu {
                attrs.push(LinkAttribute::Mtu(mtu));
            }
            if let Some(mac) = s.mac {
                attrs.push(LinkAttribute::Address(mac.to_vec()));
            }
            let mut m = link_message(*index, attrs);
            if let Some(up) = s.up {
                set_up(&mut m, up);
            }
            (RTM_NEWLINK, 0, m)
        }
        LinkRequest::IpipNoPmtuDisc(index) => {
            let m = link_message(
                *index,
                vec![LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::IpIp),
                    LinkInfo::Data(InfoData::IpTunnel(vec![InfoIpTunnel::PMtuDisc(false)])),
                ])],
            );
            (RTM_NEWLINK, 0, m)
        }
        LinkRequest::Delete(index) => (RTM_DELLINK, 0, link_message(*index, vec![])),
    })
}

pub(crate) fn encode_link(req: &LinkRequest<'_>, out: &mut Vec<u8>) -> Result<(u16, u16), String> {
    let (ty, flags, m) = link_request(req)?;
    let start = out.len();
    out.resize(start + m.buffer_len(), 0);
    m.emit(&mut out[start..]);
    Ok((ty, flags))
}

/// The exact framed bytes of a link request (header with `seq`, no `NLM_F_ACK`).
pub fn link_request_bytes(req: &LinkRequest<'_>, seq: u32) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    super::socket::push_message(&mut buf, seq, 0, |b| encode_link(req, b))?;
    Ok(buf)
}

/// `RTM_GETLINK` payload asking for one link by name.
pub(crate) fn get_by_name_request(name: &str) -> Result<Vec<u8>, String> {
    check_name(name)?;
    let m = link_message(0, vec![LinkAttribute::IfName(name.into())]);
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf);
    Ok(buf)
}

/// `RTM_GETLINK` payload asking for one link by index, or for a dump (index 0).
pub(crate) fn get_by_index_request(index: u32) -> Vec<u8> {
    let m = link_message(index, vec![]);
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf);
    buf
}

/// Decode a `RTM_NEWLINK` message.
pub fn decode_link(payload: &[u8]) -> Result<Link, String> {
    match LinkMessage::parse(payload) {
        Ok(m) => Ok(from_message(&m)),
        // A newer kernel may send an attribute the parser rejects; the basics are read by hand
        // so one odd device never breaks a dump.
        Err(e) => decode_link_minimal(payload).map_err(|m| format!("link message: {e}; {m}")),
    }
}

fn from_message(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        running: m.header.flags.contains(LinkFlags::Running),
        mac: None,
        link: None,
        vxlan: None,
        iptun: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(mac) => link.mac = <[u8; 6]>::try_from(mac.as_slice()).ok(),
            LinkAttribute::Link(l) => link.link = Some(*l),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => link.kind = Some(k.to_string()),
                        LinkInfo::Data(InfoData::Vxlan(v)) => {
                            let mut x = VxlanInfo {
                                vni: 0,
                                port: 8472,
                                local: None,
                                underlay: None,
                                learning: true,
                            };
                            for a in v {
                                match a {
                                    InfoVxlan::Id(id) => x.vni = *id,
                                    InfoVxlan::Port(p) => x.port = *p,
                                    InfoVxlan::Local(l) => x.local = Some(IpAddr::V4(*l)),
                                    InfoVxlan::Local6(l) => x.local = Some(IpAddr::V6(*l)),
                                    InfoVxlan::Link(l) => x.underlay = Some(*l),
                                    InfoVxlan::Learning(l) => x.learning = *l,
                                    _ => {}
                                }
                            }
                            link.vxlan = Some(x);
                        }
                        LinkInfo::Data(InfoData::IpTunnel(t)) => {
                            let mut x = IpTunnelInfo {
                                local: None,
                                remote: None,
                                pmtudisc: true,
                                underlay: None,
                            };
                            for a in t {
                                match a {
                                    InfoIpTunnel::Local(l) => {
                                        x.local = Some(*l).filter(|a| !a.is_unspecified())
                                    }
                                    InfoIpTunnel::Remote(r) => {
                                        x.remote = Some(*r).filter(|a| !a.is_unspecified())
                                    }
                                    InfoIpTunnel::PMtuDisc(p) => x.pmtudisc = *p,
                                    InfoIpTunnel::Link(l) => {
                                        x.underlay = Some(*l).filter(|&l| l != 0)
                                    }
                                    _ => {}
                                }
                            }
                            link.iptun = Some(x);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFINFOMSG_LEN: usize = 16;

fn cstr(data: &[u8]) -> String {
    String::from_utf8_lossy(data.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()
}

fn decode_link_minimal(payload: &[u8]) -> Result<Link, String> {
    let hdr: [u8; IFINFOMSG_LEN] = payload
        .get(..IFINFOMSG_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or("ifinfomsg truncated")?;
    let [_, _, _, _, i0, i1, i2, i3, f0, f1, f2, f3, ..] = hdr;
    let index = u32::from_ne_bytes([i0, i1, i2, i3]);
    let flags = u32::from_ne_bytes([f0, f1, f2, f3]);
    let mut link = Link {
        index,
        name: String::new(),
        kind: None,
        mtu: 0,
        up: flags & libc::IFF_UP as u32 != 0,
        running: flags & libc::IFF_RUNNING as u32 != 0,
        mac: None,
        link: None,
        vxlan: None,
        iptun: None,
    };
    for a in attrs(payload.get(IFINFOMSG_LEN..).unwrap_or(&[])) {
        let (kind, data) = a?;
        match kind {
            IFLA_IFNAME => link.name = cstr(data),
            IFLA_MTU => link.mtu = data.try_into().map(u32::from_ne_bytes).unwrap_or(0),
            IFLA_ADDRESS => link.mac = data.try_into().ok(),
            IFLA_LINK => link.link = data.try_into().map(u32::from_ne_bytes).ok(),
            IFLA_LINKINFO => {
                for i in attrs(data) {
                    let (k, d) = i?;
                    if k == IFLA_INFO_KIND {
                        link.kind = Some(cstr(d));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(link)
}

/// An address on a link.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LinkAddress {
    pub index: u32,
    /// The address with its prefix length (`198.18.0.1/24`).
    pub addr: IpNet,
}

/// `RTM_GETADDR` dump payload for one family.
pub(crate) fn addr_dump_request(family: AddressFamily, index: u32) -> Vec<u8> {
    let mut m = AddressMessage::default();
    m.header = AddressHeader {
        family,
        index,
        ..AddressHeader::default()
    };
    let mut buf = vec![0u8; m.buffer_len()];
    m.emit(&mut buf);
    buf
}

/// Decode a `RTM_NEWADDR` message (`None` for families other than inet).
pub fn decode_address(payload: &[u8]) -> Result<Option<LinkAddress>, String> {
    let m = AddressMessage::parse(payload).map_err(|e| format!("address message: {e}"))?;
    if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return Ok(None);
    }
    // IFA_LOCAL is the address on a point-to-point link, IFA_ADDRESS otherwise.
    let mut local = None;
    let mut address = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let ip = local
        .or(address)
        .ok_or("address message without an address")?;
    let addr = IpNet::new(ip, m.header.prefix_len)
        .map_err(|_| format!("prefix length {} for {ip}", m.header.prefix_len))?;
    Ok(Some(LinkAddress {
        index: m.header.index,
        addr,
    }))
}

/// `RTM_NEWADDR` (add or replace; IPv6 without duplicate address detection) or
/// `RTM_DELADDR`.
pub(crate) fn encode_address(
    add: bool,
    index: u32,
    addr: &IpNet,
    out: &mut Vec<u8>,
) -> Result<(u16, u16), String> {
    if index == 0 {
        return Err("link index 0".into());
    }
    let mut m = AddressMessage::default();
    m.header = AddressHeader {
        family: if addr.addr().is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        },
        prefix_len: addr.prefix_len(),
        scope: AddressScope::Universe,
        index,
        ..AddressHeader::default()
    };
    m.attributes.push(AddressAttribute::Local(addr.addr()));
    m.attributes.push(AddressAttribute::Address(addr.addr()));
    if add && addr.addr().is_ipv6() {
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    let start = out.len();
    out.resize(start + m.buffer_len(), 0);
    m.emit(&mut out[start..]);
    Ok(if add {
        (RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE)
    } else {
        (RTM_DELADDR, 0)
    })
}

/// Whether the `ipip` module is present (loaded or built in: both show in `/sys/module`).
pub fn ipip_module_loaded() -> bool {
    Path::new("/sys/module/ipip").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_create_round_trips() {
        let mut spec = VxlanSpec::v4(
            Ipv4Addr::new(198, 18, 0, 1),
            Some(5),
            [0x66, 0x74, 0, 0, 0, 1],
        );
        spec.mtu = Some(1450);
        let bytes = link_request_bytes(&LinkRequest::CreateVxlan(&spec), 1).unwrap();
        let link = decode_link(&bytes[16..]).unwrap();
        assert_eq!(link.name, VXLAN_V4_NAME);
        assert_eq!(link.mtu, 1450);
        assert!(link.up);
        assert_eq!(link.mac, Some(spec.mac));
        assert_eq!(
            link.vxlan,
            Some(VxlanInfo {
                vni: 4096,
                port: 4789,
                local: Some(spec.local),
                underlay: Some(5),
                learning: false
            })
        );
        assert!(spec.matches(&Link {
            kind: Some("vxlan".into()),
            ..link
        }));
    }

    #[test]
    fn bad_specs() {
        let mut s = VxlanSpec::v4(Ipv4Addr::new(1, 2, 3, 4), None, [1, 0, 0, 0, 0, 1]);
        assert!(s.validate().is_err(), "multicast MAC");
        s.mac = [2, 0, 0, 0, 0, 1];
        s.name = "a-name-that-is-too-long".into();
        assert!(s.validate().is_err());
        s.name = "ok".into();
        s.vni = 1 << 24;
        assert!(s.validate().is_err());
        assert!(link_request(&LinkRequest::Set(0, &LinkSettings::default())).is_err());
    }

    #[test]
    fn minimal_decoder_reads_the_basics() {
        let s = LinkSettings {
            mtu: Some(1400),
            up: Some(true),
            mac: Some([2, 0, 0, 0, 0, 9]),
        };
        let bytes = link_request_bytes(&LinkRequest::Set(7, &s), 1).unwrap();
        let l = decode_link_minimal(&bytes[16..]).unwrap();
        assert_eq!(
            (l.index, l.mtu, l.up, l.mac),
            (7, 1400, true, Some([2, 0, 0, 0, 0, 9]))
        );
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 29 % 256) as u8).collect();
            let _ = decode_link(&junk);
            let _ = decode_address(&junk);
        }
    }
}

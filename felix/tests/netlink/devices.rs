//! The devices felix owns and the links it reads: VXLAN devices created, adopted and recreated
//! (IPv4 and IPv6), `tunl0` (its messages checked attribute by attribute, and the clear error
//! without the ipip module), and the lookup of links and addresses.

use netlink_packet_core::Parseable;
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use tortie_felix::netlink::link::{self, VXLAN_V4_NAME, VXLAN_V6_NAME};
use tortie_felix::netlink::nexthop::nexthop_request_bytes;
use tortie_felix::netlink::route::route_request_bytes;

use super::*;

fn link_json(ns: &TestNs, dev: &str) -> Value {
    ns.ip_json(&["-d", "link", "show", "dev", dev])
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {dev}"))
}

#[test]
fn vxlan_device_create_adopt_recreate() {
    let ns = TestNs::with_veth("vxlan");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let mac = [0x66, 0x74, 0xc6, 0x12, 0x00, 0x01];
    let mut spec = VxlanSpec::v4(NODE_V4, Some(v0), mac);
    spec.mtu = Some(1450);

    let (l, change) = k.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Created);
    assert_eq!(l.name, VXLAN_V4_NAME);
    let j = link_json(&ns, VXLAN_V4_NAME);
    assert_eq!(j["address"], "66:74:c6:12:00:01");
    assert_eq!(j["mtu"], 1450);
    assert!(
        j["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{j}"
    );
    let d = &j["linkinfo"]["info_data"];
    assert_eq!(j["linkinfo"]["info_kind"], "vxlan");
    assert_eq!(d["id"], 4096);
    assert_eq!(d["port"], 4789);
    assert_eq!(d["local"], "198.18.0.1");
    assert_eq!(d["link"], "v0");
    assert_eq!(d["learning"], false, "{d}");

    // Adopt: nothing written, not even by a fresh handle (an agent restart).
    let mut k2 = ns.kernel();
    let (l2, change) = k2.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Unchanged);
    assert_eq!(l2.index, l.index);
    assert_eq!(k2.stats().writes, 0);

    // MTU and MAC change in place.
    spec.mtu = Some(1400);
    spec.mac[5] = 2;
    let (l3, change) = k.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Updated);
    assert_eq!(l3.index, l.index);
    let j = link_json(&ns, VXLAN_V4_NAME);
    assert_eq!(
        (j["mtu"].as_u64(), j["address"].as_str()),
        (Some(1400), Some("66:74:c6:12:00:02"))
    );

    // Someone turns it down: brought up again.
    ns.ip(&["link", "set", VXLAN_V4_NAME, "down"]);
    assert_eq!(k.ensure_vxlan(&spec).unwrap().1, LinkChange::Updated);
    assert!(k.require_link(VXLAN_V4_NAME).unwrap().up);

    // Another VNI cannot be changed in place: recreated.
    spec.vni = 4097;
    let (l4, change) = k.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Recreated);
    assert_ne!(l4.index, l.index);
    assert_eq!(
        link_json(&ns, VXLAN_V4_NAME)["linkinfo"]["info_data"]["id"],
        4097
    );
}

#[test]
fn vxlan_v6_device() {
    let ns = TestNs::with_veth("vxlan6");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    // A bridge squatting the name is replaced by the VXLAN device.
    ns.ip(&["link", "add", VXLAN_V6_NAME, "type", "bridge"]);
    let spec = VxlanSpec::v6(NODE_V6, Some(v0), [0x66, 0x74, 0x20, 0x01, 0, 1]);
    let (l, change) = k.ensure_vxlan(&spec).unwrap();
    assert_eq!(change, LinkChange::Recreated);
    let j = link_json(&ns, VXLAN_V6_NAME);
    let d = &j["linkinfo"]["info_data"];
    assert_eq!(d["id"], 6096);
    assert_eq!(d["local6"], "2001:2::1");
    assert_eq!(d["port"], 4789);
    // The kernel derives the MTU from the underlay: 1500 - 70.
    assert_eq!(l.mtu, 1430);
    assert_eq!(k.ensure_vxlan(&spec).unwrap().1, LinkChange::Unchanged);
}

#[test]
fn links_addresses_and_lookup() {
    let ns = TestNs::with_veth("links");
    let mut k = ns.kernel();
    let links = k.links().unwrap();
    assert!(links.iter().any(|l| l.name == "lo"));
    let v0 = k.require_link("v0").unwrap();
    assert_eq!(v0.kind.as_deref(), Some("veth"));
    assert_eq!(v0.mtu, 1500);
    assert!(v0.up);
    assert_eq!(
        k.link_by_index(v0.index).unwrap().map(|l| l.name),
        Some("v0".to_string())
    );
    assert_eq!(k.link_by_name("nope0").unwrap(), None);
    assert!(matches!(
        k.require_link("nope0"),
        Err(NlError::NoSuchLink(_))
    ));

    let addrs = k.addresses(v0.index).unwrap();
    assert!(addrs.contains(&net("198.18.0.1/24")), "{addrs:?}");
    assert!(addrs.contains(&net("2001:2::1/64")), "{addrs:?}");

    // Exactly these IPv4 addresses: one added, the other removed; IPv6 untouched.
    assert!(
        k.set_addresses(
            v0.index,
            false,
            &[net("198.18.0.1/24"), net("198.18.1.1/32")]
        )
        .unwrap()
    );
    assert!(
        !k.set_addresses(
            v0.index,
            false,
            &[net("198.18.0.1/24"), net("198.18.1.1/32")]
        )
        .unwrap()
    );
    let shown: Vec<String> = ns.ip_json(&["-4", "addr", "show", "dev", "v0"])[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert_eq!(shown, vec!["198.18.0.1/24", "198.18.1.1/32"]);
    assert!(
        k.set_addresses(v0.index, false, &[net("198.18.0.1/24")])
            .unwrap()
    );
    assert_eq!(
        ns.ip_json(&["-4", "addr", "show", "dev", "v0"])[0]["addr_info"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        k.addresses(v0.index)
            .unwrap()
            .contains(&net("2001:2::1/64"))
    );

    // MTU and state in place.
    k.set_link(
        v0.index,
        &LinkSettings {
            mtu: Some(1400),
            up: Some(false),
            mac: None,
        },
    )
    .unwrap();
    let j = ns.ip_json(&["link", "show", "dev", "v0"]);
    assert_eq!(j[0]["mtu"], 1400);
    assert!(!j[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
}

/// tunl0 cannot exist on this host (no ipip module), so its messages are checked attribute by
/// attribute, parsed back with netlink-packet-route.
#[test]
fn tunl0_messages_attribute_by_attribute() {
    let spec = Tunl0Spec {
        mtu: Some(1480),
        address: Some(Ipv4Addr::new(198, 19, 3, 0)),
    };
    let bytes = link::link_request_bytes(&LinkRequest::CreateTunl0(&spec), 5).unwrap();
    assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 16, "RTM_NEWLINK");
    let flags = u16::from_ne_bytes([bytes[6], bytes[7]]);
    assert_eq!(flags, 0x1 | 0x400 | 0x200, "REQUEST|CREATE|EXCL");
    let m = LinkMessage::parse(&bytes[16..]).unwrap();
    assert!(m.header.flags.contains(LinkFlags::Up) && m.header.change_mask.contains(LinkFlags::Up));
    assert!(
        m.attributes
            .contains(&LinkAttribute::IfName("tunl0".into()))
    );
    assert!(m.attributes.contains(&LinkAttribute::Mtu(1480)));
    let info = m
        .attributes
        .iter()
        .find_map(|a| {
            if let LinkAttribute::LinkInfo(i) = a {
                Some(i)
            } else {
                None
            }
        })
        .unwrap();
    assert!(info.contains(&LinkInfo::Kind(InfoKind::IpIp)));
    assert!(info.contains(&LinkInfo::Data(InfoData::IpTunnel(vec![
        InfoIpTunnel::PMtuDisc(false)
    ]))));

    // nopmtudisc on an existing (non-fallback) ipip device.
    let bytes = link::link_request_bytes(&LinkRequest::IpipNoPmtuDisc(9), 6).unwrap();
    let m = LinkMessage::parse(&bytes[16..]).unwrap();
    assert_eq!(m.header.index, 9);
    assert_eq!(m.attributes.len(), 1);
    assert!(format!("{:?}", m.attributes[0]).contains("PMtuDisc(false)"));

    // MTU and up on the adopted device.
    let s = LinkSettings {
        mtu: Some(1480),
        up: Some(true),
        mac: None,
    };
    let bytes = link::link_request_bytes(&LinkRequest::Set(9, &s), 7).unwrap();
    let m = LinkMessage::parse(&bytes[16..]).unwrap();
    assert_eq!(m.header.index, 9);
    assert_eq!(m.attributes, vec![LinkAttribute::Mtu(1480)]);
    assert!(m.header.flags.contains(LinkFlags::Up));

    // The IPIP route: <block> via <node> dev tunl0 onlink proto tortie.
    let r = KernelRoute::new(
        net("198.19.3.0/26"),
        RouteKind::Unicast(vec![NextHop::via_onlink(ip("198.18.2.2"), 9)]),
    );
    let bytes = route_request_bytes(RouteOpKind::Replace, &r, 8).unwrap();
    assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 24, "RTM_NEWROUTE");
    assert_eq!(
        u16::from_ne_bytes([bytes[6], bytes[7]]),
        0x1 | 0x400 | 0x100,
        "REQUEST|CREATE|REPLACE"
    );
    let m = RouteMessage::parse(&bytes[16..]).unwrap();
    assert!(m.header.flags.contains(RouteFlags::Onlink));
    assert_eq!(m.header.protocol, RouteProtocol::Other(P));
    assert_eq!(m.header.scope, RouteScope::Universe);
    assert_eq!(m.header.kind, RouteType::Unicast);
    assert_eq!(m.header.table, 254);
    assert_eq!(m.header.destination_prefix_length, 26);
    assert!(m.attributes.contains(&RouteAttribute::Destination(
        netlink_packet_route::route::RouteAddress::Inet(Ipv4Addr::new(198, 19, 3, 0))
    )));
    assert!(m.attributes.contains(&RouteAttribute::Gateway(
        netlink_packet_route::route::RouteAddress::Inet(Ipv4Addr::new(198, 18, 2, 2))
    )));
    assert!(m.attributes.contains(&RouteAttribute::Oif(9)));
    assert_eq!(m.attributes.len(), 3, "{:?}", m.attributes);

    // The per-node nexthop object for tunl0: nhmsg flags carry RTNH_F_ONLINK.
    let bytes = nexthop_request_bytes(
        &NexthopOp::Replace(NexthopObject::gateway(42, ip("198.18.2.2"), 9, true)),
        9,
    )
    .unwrap();
    assert_eq!(
        u16::from_ne_bytes([bytes[4], bytes[5]]),
        104,
        "RTM_NEWNEXTHOP"
    );
    let p = &bytes[16..];
    assert_eq!((p[0], p[1], p[2], p[3]), (libc::AF_INET as u8, 0, P, 0));
    assert_eq!(
        u32::from_ne_bytes([p[4], p[5], p[6], p[7]]),
        4,
        "RTNH_F_ONLINK"
    );
    let o = tortie_felix::netlink::nexthop::decode_nexthop(p).unwrap();
    assert_eq!(
        o.kind,
        NexthopKind::Gateway {
            gateway: ip("198.18.2.2"),
            oif: 9,
            onlink: true
        }
    );
}

#[test]
fn tunl0_without_the_ipip_module_is_a_clear_error() {
    let ns = TestNs::bare("tunl0");
    let mut k = ns.kernel();
    let r = k.ensure_tunl0(&Tunl0Spec {
        mtu: Some(1480),
        address: Some(Ipv4Addr::new(198, 19, 3, 0)),
    });
    if link::ipip_module_loaded() {
        // A kernel with ipip (the VM): the fallback device is adopted and configured.
        let (l, change) = r.unwrap();
        assert_eq!(change, LinkChange::Updated);
        assert_eq!((l.mtu, l.up), (1480, true));
        assert_eq!(l.iptun.as_ref().map(|t| t.pmtudisc), Some(false));
        assert_eq!(k.addresses(l.index).unwrap(), vec![net("198.19.3.0/32")]);
        let j = link_json(&ns, "tunl0");
        assert_eq!(j["linkinfo"]["info_data"]["pmtudisc"], false, "{j}");
        let again = Tunl0Spec {
            mtu: Some(1480),
            address: Some(Ipv4Addr::new(198, 19, 3, 0)),
        };
        assert_eq!(k.ensure_tunl0(&again).unwrap().1, LinkChange::Unchanged);
        // The IPIP route shape installs: <block> via <node> dev tunl0 onlink.
        let r = KernelRoute::new(
            net("198.19.4.0/26"),
            RouteKind::Unicast(vec![NextHop::via_onlink(ip("198.18.2.2"), l.index)]),
        );
        k.replace_route(&r).unwrap();
        let routes = ns.routes(P);
        let j = route_json(&routes, "198.19.4.0/26");
        assert_eq!(
            (j["dev"].as_str(), j["gateway"].as_str()),
            (Some("tunl0"), Some("198.18.2.2"))
        );
        assert!(
            j["flags"].as_array().unwrap().iter().any(|f| f == "onlink"),
            "{j}"
        );
        assert_eq!(k.dump_routes().unwrap(), vec![r]);
        return;
    }
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            NlError::MissingModule {
                module: "ipip",
                device: "tunl0"
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.fault(), Fault::Environment);
    let text = e.to_string();
    assert!(
        text.contains("ipip") && text.contains("tunl0") && text.contains("VXLAN"),
        "{text}"
    );
    // VXLAN keeps working in the same namespace.
    let (_, c) = k
        .ensure_vxlan(&VxlanSpec::v4(NODE_V4, None, [0x66, 0x74, 0, 0, 0, 1]))
        .unwrap();
    assert_eq!(c, LinkChange::Created);
}

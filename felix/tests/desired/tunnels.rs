//! The tunnel devices themselves: when `tunl0` and the VXLAN devices are needed and with which
//! VNI, port, MAC and MTU; the prefsrc of tunnel routes; and the VTEP MACs derived from node
//! addresses, collisions included.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

// ---------------------------------------------------------------------------------------------
// tunnel devices and MTU

#[test]
fn no_tunnel_devices_when_no_pool_encapsulates() {
    let s = one_v4(Never, Never, SAME4);
    assert_eq!(s.tunnels, Tunnels::default());
}

#[test]
fn tunl0_is_needed_when_a_pool_uses_ipip_even_without_routes() {
    let s = compute(&inputs(
        vec![pool("198.19.0.0/16", CrossSubnet, Never)],
        &[],
        vec![],
    ));
    assert_eq!(
        s.tunnels.tunl0,
        Some(IpipTunnel {
            name: "tunl0".into(),
            mtu: 1480
        })
    );
    assert_eq!(s.tunnels.vxlan, None);
}

#[test]
fn vxlan_devices_carry_vni_4096_port_4789_own_mac_and_local_address() {
    let s = compute(&inputs(
        vec![
            pool("198.19.0.0/16", Never, Always),
            pool("2001:db8:ff::/48", Never, Always),
        ],
        &[],
        vec![],
    ));
    assert_eq!(
        s.tunnels.vxlan,
        Some(VxlanTunnel {
            name: "vxlan.tortie".into(),
            vni: 4096,
            port: 4789,
            mac: vtep_mac(ip("198.18.1.10")),
            local: ip("198.18.1.10"),
            mtu: 1450,
        })
    );
    let v6 = s.tunnels.vxlan_v6.unwrap();
    assert_eq!(
        (v6.name.as_str(), v6.vni, v6.port, v6.mtu),
        ("vxlan-v6.tortie", 4096, 4789, 1430)
    );
    assert_eq!(v6.mac, vtep_mac(ip("2001:db8:1::10")));
    assert_eq!(s.tunnels.tunl0, None);
}

#[test]
fn mtu_is_underlay_minus_20_50_70() {
    for (underlay, ipip, vx4, vx6) in [
        (1500, 1480, 1450, 1430),
        (9000, 8980, 8950, 8930),
        (1400, 1380, 1350, 1330),
    ] {
        let mut i = inputs(
            vec![
                pool("198.19.0.0/17", Always, Never),
                pool("198.19.128.0/17", Never, Always),
                pool("2001:db8:ff::/48", Never, Always),
            ],
            &[],
            vec![],
        );
        i.node.underlay.mtu = underlay;
        let t = compute(&i).tunnels;
        assert_eq!(t.tunl0.unwrap().mtu, ipip);
        assert_eq!(t.vxlan.unwrap().mtu, vx4);
        assert_eq!(t.vxlan_v6.unwrap().mtu, vx6);
    }
}

#[test]
fn vni_and_port_are_configurable() {
    let mut i = inputs(vec![pool("198.19.0.0/16", Never, Always)], &[], vec![]);
    i.vxlan = VxlanSettings { vni: 7, port: 8472 };
    let t = compute(&i).tunnels.vxlan.unwrap();
    assert_eq!((t.vni, t.port), (7, 8472));
}

// ---------------------------------------------------------------------------------------------
// prefsrc

#[test]
fn tunnel_routes_carry_the_node_address_as_prefsrc() {
    let s4 = one_v4(Always, Never, OTHER4);
    assert!(
        matches!(route_of(&s4, "198.19.5.0/26"), Some(Route::Unicast { prefsrc: Some(a), .. }) if a == ip("198.18.1.10"))
    );
    let s6 = one_v6(Always, OTHER6);
    assert!(
        matches!(route_of(&s6, "2001:db8:ff:5::/122"), Some(Route::Unicast { prefsrc: Some(a), .. }) if a == ip("2001:db8:1::10"))
    );
}

#[test]
fn underlay_routes_carry_no_prefsrc() {
    let s = one_v4(Never, Never, OTHER4);
    assert!(matches!(
        route_of(&s, "198.19.5.0/26"),
        Some(Route::Unicast { prefsrc: None, .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// VTEP MACs

#[test]
fn vtep_mac_v4_embeds_the_address_locally_administered_unicast() {
    let m = vtep_mac(ip("198.18.1.10"));
    assert_eq!(m.to_string(), "02:74:c6:12:01:0a");
    assert!(m.is_locally_administered() && m.is_unicast());
}

#[test]
fn vtep_mac_v6_is_locally_administered_unicast_with_its_own_tag() {
    let m = vtep_mac(ip("2001:db8:1::10"));
    assert_eq!(m.0[..2], [0x02, 0x76]);
    assert!(m.is_locally_administered() && m.is_unicast());
}

#[test]
fn vtep_macs_are_stable() {
    // Fixed vectors: every node and every tortie version must compute the same MACs.
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    let a: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
    let h = fnv1a32(&a.octets()[..12]).to_be_bytes();
    let want = [0x02, 0x76, h[0], h[1], h[2], h[3] ^ 0x10];
    assert_eq!(vtep_mac(IpAddr::V6(a)).0, want);
    assert_eq!(vtep_mac(IpAddr::V6(a)), vtep_mac(IpAddr::V6(a)));
}

#[test]
fn vtep_macs_are_distinct_for_neighbouring_v4_addresses() {
    let macs: BTreeSet<Mac> = (0u32..4096)
        .map(|i| {
            vtep_mac(IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i,
            )))
        })
        .collect();
    assert_eq!(macs.len(), 4096);
}

#[test]
fn vtep_macs_are_distinct_for_neighbouring_v6_addresses() {
    let base = u128::from("2001:db8:1::".parse::<Ipv6Addr>().unwrap());
    let macs: BTreeSet<Mac> = (0u128..4096)
        .map(|i| vtep_mac(IpAddr::V6(Ipv6Addr::from(base + i))))
        .collect();
    assert_eq!(macs.len(), 4096);
}

#[test]
fn vtep_macs_differ_for_the_same_host_part_in_different_v6_subnets() {
    let macs: BTreeSet<Mac> = (1u16..=256)
        .map(|s| vtep_mac(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, s, 0, 0, 0, 0, 5))))
        .collect();
    assert_eq!(macs.len(), 256);
}

#[test]
fn vtep_macs_of_v4_and_v6_never_coincide() {
    assert_ne!(
        vtep_mac(ip("198.18.1.10")).0[1],
        vtep_mac(ip("::c612:10a")).0[1]
    );
}

#[test]
fn mac_parses_and_prints() {
    let m: Mac = "02:74:C6:12:1:0a".parse().unwrap();
    assert_eq!(m.to_string(), "02:74:c6:12:01:0a");
    for bad in [
        "",
        "02:74:c6:12:01",
        "02:74:c6:12:01:0a:00",
        "02:74:c6:12:01:zz",
        "02:74:c6:12:01:100",
    ] {
        assert!(bad.parse::<Mac>().is_err(), "{bad:?}");
    }
}

/// Two IPv6 addresses in different /96s with the same VTEP MAC.
fn colliding_v6_pair() -> (Ipv6Addr, Ipv6Addr) {
    let a: Ipv6Addr = "2001:db8:2::20".parse().unwrap();
    let hi_b: Ipv6Addr = "2001:db8:3::".parse().unwrap();
    let ha = fnv1a32(&a.octets()[..12]);
    let hb = fnv1a32(&hi_b.octets()[..12]);
    let low_a = u32::from_be_bytes(a.octets()[12..].try_into().unwrap());
    let b = Ipv6Addr::from(u128::from(hi_b) | u128::from(low_a ^ ha ^ hb));
    assert_eq!(vtep_mac(IpAddr::V6(a)), vtep_mac(IpAddr::V6(b)));
    (a, b)
}

#[test]
fn vtep_mac_collision_keeps_the_lower_address_and_reports() {
    let (a, b) = colliding_v6_pair();
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let s = compute(&inputs(
        vec![pool("2001:db8:ff::/48", Never, Always)],
        &[],
        vec![
            best("2001:db8:ff:5::/122", &[&lo.to_string()]),
            best("2001:db8:ff:6::/122", &[&hi.to_string()]),
        ],
    ));
    assert!(route_of(&s, "2001:db8:ff:5::/122").is_some());
    assert_eq!(route_of(&s, "2001:db8:ff:6::/122"), None);
    assert!(s.problems.contains(&Problem::VtepMacCollision {
        mac: vtep_mac(IpAddr::V6(lo)),
        kept: IpAddr::V6(lo),
        dropped: IpAddr::V6(hi)
    }));
    assert_eq!(s.fib.fdb.len(), 1);
    assert_eq!(s.fib.neighbours.len(), 1);
}

#[test]
fn vtep_mac_collision_with_our_own_mac_drops_the_remote() {
    let (a, b) = colliding_v6_pair();
    let mut i = inputs(
        vec![pool("2001:db8:ff::/48", Never, Always)],
        &[],
        vec![best("2001:db8:ff:6::/122", &[&b.to_string()])],
    );
    i.node.ipv6 = Some(ipnet::Ipv6Net::new(a, 64).unwrap());
    let s = compute(&i);
    assert_eq!(route_of(&s, "2001:db8:ff:6::/122"), None);
    assert!(s.fib.fdb.is_empty());
}

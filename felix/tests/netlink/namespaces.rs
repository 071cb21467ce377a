//! Namespaces: sysctls written in the test namespace only, and opening a socket in a namespace
//! without moving the calling thread.

use tortie_felix::netlink::link::VXLAN_V4_NAME;

use super::*;

#[test]
fn sysctls_in_the_namespace_only() {
    let ns = TestNs::with_veth("sysctl");
    let k = ns.kernel();
    let root_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    k.set_ip_forward(true, true).unwrap();
    assert_eq!(
        ns.exec("sysctl", &["-n", "net.ipv4.ip_forward"]).trim(),
        "1"
    );
    assert_eq!(
        ns.exec("sysctl", &["-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "1"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        root_before
    );
    // A device name with a dot.
    let mut k = k;
    k.ensure_vxlan(&VxlanSpec::v4(NODE_V4, None, [0x66, 0x74, 0, 0, 0, 1]))
        .unwrap();
    k.set_rp_filter(VXLAN_V4_NAME, 2).unwrap();
    assert!(
        !k.set_rp_filter(VXLAN_V4_NAME, 2).unwrap(),
        "unchanged value is not rewritten"
    );
    assert_eq!(
        k.read_sysctl(&["net", "ipv4", "conf", VXLAN_V4_NAME, "rp_filter"])
            .unwrap(),
        "2"
    );
    assert_eq!(
        ns.exec("cat", &["/proc/sys/net/ipv4/conf/vxlan.tortie/rp_filter"])
            .trim(),
        "2"
    );
    assert!(matches!(
        k.write_sysctl(&["net", "..", "x"], "1"),
        Err(NlError::Invalid(_))
    ));
}

#[test]
fn opening_a_namespace_leaves_the_calling_thread_alone() {
    let ns = TestNs::bare("thread");
    let before = thread_netns();
    let mut k = ns.kernel();
    assert_eq!(thread_netns(), before);
    // The socket is in the test namespace: it sees that namespace's links (lo, and the
    // fallback tunnel devices of loaded modules), not the root's.
    let names: Vec<String> = k.links().unwrap().into_iter().map(|l| l.name).collect();
    let shown: Vec<String> = ns
        .ip_json(&["link", "show"])
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, shown);
    assert!(names.contains(&"lo".to_string()));
    let e = Kernel::open(
        Netns::named("tortie-no-such-namespace").unwrap(),
        KernelConfig::default(),
    )
    .unwrap_err();
    assert_eq!(e.fault(), Fault::Environment, "{e}");
    assert!(Netns::named("../etc").is_err());
}

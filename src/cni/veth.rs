//! A pod's link as Calico's CNI plugin makes it: a veth pair whose host side
//! (`tortie<hash>`, stable from the container ID) stays in the host namespace and whose other
//! side is the container's `CNI_IFNAME`.
//!
//! The container gets its /32 (/128) and a default route via 169.254.1.1 (IPv6: via the host
//! side's link-local address), an address nobody holds: the host side answers ARP for it by
//! proxy ARP, and its fixed MAC `ee:ee:ee:ee:ee:ee` gives it a known IPv6 link-local address,
//! so every pod's gateway looks the same and no per-pod gateway address is spent. The host
//! routes the pod's address to the host side with the device-route protocol (`boot`), which
//! felix leaves alone. Removing the host side removes the pair and every route through it.

use super::iproute::{self, DataplaneError, Ns};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The gateway of every pod's IPv4 default route (answered by proxy ARP).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The host side's MAC, as Calico sets it.
pub const HOST_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// The host side's IPv6 link-local address, derived from [`HOST_MAC`] (EUI-64).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// The prefix of host-side names.
pub const HOST_PREFIX: &str = "tortie";

/// The host side's name for a container: `tortie` and 9 hex digits of a hash of the ID
/// (15 characters, the kernel's limit), the same on every ADD and DEL of that container.
pub fn host_veth_name(container_id: &str) -> String {
    // FNV-1a 64: stable across builds and releases, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{HOST_PREFIX}{:09x}", h >> 28)
}

/// What to create for one pod.
#[derive(Debug, Clone)]
pub struct PodLink<'a> {
    pub host_veth: String,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub mtu: u32,
    pub addrs: Vec<IpAddr>,
}

/// What was created: the container side's MAC, for the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wired {
    pub container_mac: String,
}

/// Host-side per-device sysctls: proxy ARP answers for the gateway (at once, not after the
/// default random delay of up to 0.8 s), forwarding on the device; for IPv6, forwarding and no
/// router advertisements taken from the pod.
pub fn host_sysctls(veth: &str, v6: bool) -> Vec<(Vec<String>, &'static str)> {
    let k = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out = vec![
        (k(&["net", "ipv4", "conf", veth, "proxy_arp"]), "1"),
        (k(&["net", "ipv4", "neigh", veth, "proxy_delay"]), "0"),
        (k(&["net", "ipv4", "conf", veth, "forwarding"]), "1"),
    ];
    if v6 {
        out.push((k(&["net", "ipv6", "conf", veth, "disable_ipv6"]), "0"));
        out.push((k(&["net", "ipv6", "conf", veth, "accept_ra"]), "0"));
        out.push((k(&["net", "ipv6", "conf", veth, "forwarding"]), "1"));
    }
    out
}

/// The `ip` commands run in the container's namespace (`ip -batch` lines take no `-6`:
/// iproute2 infers the family from the addresses).
pub fn container_commands(ifname: &str, addrs: &[IpAddr]) -> Vec<String> {
    let mut out = vec![format!("link set {ifname} up")];
    for a in addrs {
        match a {
            IpAddr::V4(v4) => {
                out.push(format!("addr add {v4}/32 dev {ifname}"));
            }
            IpAddr::V6(v6) => out.push(format!("addr add {v6}/128 dev {ifname} nodad")),
        }
    }
    if addrs.iter().any(IpAddr::is_ipv4) {
        out.push(format!("route add {GATEWAY_V4} dev {ifname} scope link"));
        out.push(format!("route add default via {GATEWAY_V4} dev {ifname}"));
    }
    if addrs.iter().any(IpAddr::is_ipv6) {
        out.push(format!("route add default via {GATEWAY_V6} dev {ifname}"));
    }
    out
}

/// The `ip` commands run in the host namespace once the link is up: the host routes.
pub fn host_route_commands(veth: &str, addrs: &[IpAddr]) -> Vec<String> {
    addrs
        .iter()
        .map(|a| match a {
            IpAddr::V4(v4) => format!("route replace {v4}/32 dev {veth} scope link proto boot"),
            IpAddr::V6(v6) => format!("route replace {v6}/128 dev {veth} proto boot"),
        })
        .collect()
}

/// Creates the pair and everything on it. On failure the host side is removed again (which
/// removes the container side and the routes), so nothing is left half-made.
pub fn create(p: &PodLink<'_>) -> Result<Wired, DataplaneError> {
    let result = create_inner(p);
    if result.is_err() {
        if let Err(e) = remove(&p.host_veth) {
            tracing::warn!(veth = %p.host_veth, error = %e, "could not remove the half-made veth");
        }
    }
    result
}

fn create_inner(p: &PodLink<'_>) -> Result<Wired, DataplaneError> {
    let host = Ns::Host;
    let pod = Ns::Path(p.netns);
    let mtu = p.mtu.to_string();
    let netns = p.netns.to_string_lossy();
    // The container side is created in its namespace directly with its final name, so no
    // temporary name can clash in the host namespace; an existing CNI_IFNAME there fails here.
    iproute::ip(
        host,
        &[
            "link",
            "add",
            &p.host_veth,
            "mtu",
            &mtu,
            "address",
            HOST_MAC,
            "type",
            "veth",
            "peer",
            "name",
            p.ifname,
            "mtu",
            &mtu,
            "netns",
            &netns,
        ],
    )?;
    let v6 = p.addrs.iter().any(IpAddr::is_ipv6);
    for (key, value) in host_sysctls(&p.host_veth, v6) {
        let parts: Vec<&str> = key.iter().map(String::as_str).collect();
        iproute::write_sysctl(host, &parts, value)?;
    }
    iproute::batch(host, &[format!("link set {} up", p.host_veth)])?;
    if v6 {
        // A namespace may start with IPv6 off; the pod's address needs it on its interface.
        iproute::write_sysctl(pod, &["net", "ipv6", "conf", "all", "disable_ipv6"], "0")?;
        iproute::write_sysctl(pod, &["net", "ipv6", "conf", p.ifname, "disable_ipv6"], "0")?;
    }
    iproute::batch(pod, &container_commands(p.ifname, &p.addrs))?;
    iproute::batch(host, &host_route_commands(&p.host_veth, &p.addrs))?;
    let container_mac = iproute::link(pod, p.ifname)?
        .and_then(|l| l.get("address")?.as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(Wired { container_mac })
}

/// Removes the host side (and with it the container side and every route through them);
/// `false` when there was none.
pub fn remove(host_veth: &str) -> Result<bool, DataplaneError> {
    match iproute::ip(Ns::Host, &["link", "del", host_veth]) {
        Ok(_) => Ok(true),
        Err(DataplaneError::Failed { stderr, .. })
            if stderr.contains("Cannot find device") || stderr.contains("does not exist") =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_short_and_distinct() {
        let a = host_veth_name("0123456789abcdef0123456789abcdef");
        assert_eq!(a, host_veth_name("0123456789abcdef0123456789abcdef"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("tortie"));
        assert_ne!(a, host_veth_name("0123456789abcdef0123456789abcdee"));
    }

    #[test]
    fn the_ipv6_gateway_is_the_link_local_address_of_the_host_mac() {
        assert_eq!(GATEWAY_V6.to_string(), "fe80::ecee:eeff:feee:eeee");
    }

    #[test]
    fn a_pod_routes_everything_through_the_link_local_gateway() {
        let cmds = container_commands("eth0", &["198.19.0.5".parse().unwrap()]);
        assert_eq!(
            cmds,
            [
                "link set eth0 up",
                "addr add 198.19.0.5/32 dev eth0",
                "route add 169.254.1.1 dev eth0 scope link",
                "route add default via 169.254.1.1 dev eth0",
            ]
        );
    }

    #[test]
    fn an_ipv6_pod_routes_through_the_host_sides_link_local_address() {
        let cmds = container_commands("eth0", &["fd00::5".parse().unwrap()]);
        assert!(cmds.contains(&"addr add fd00::5/128 dev eth0 nodad".to_string()));
        assert!(
            cmds.contains(&"route add default via fe80::ecee:eeff:feee:eeee dev eth0".to_string())
        );
        assert!(!cmds.iter().any(|c| c.contains("169.254.1.1")));
    }

    #[test]
    fn host_routes_carry_the_device_route_protocol() {
        let cmds = host_route_commands(
            "tortie012345678",
            &["198.19.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        );
        assert_eq!(
            cmds,
            [
                "route replace 198.19.0.5/32 dev tortie012345678 scope link proto boot",
                "route replace fd00::5/128 dev tortie012345678 proto boot",
            ]
        );
    }

    #[test]
    fn the_host_side_answers_arp_for_the_gateway_at_once() {
        let s = host_sysctls("tortie012345678", false);
        let has = |k: &str, v: &str| s.iter().any(|(key, val)| key.join(".") == k && *val == v);
        assert!(has("net.ipv4.conf.tortie012345678.proxy_arp", "1"));
        assert!(has("net.ipv4.neigh.tortie012345678.proxy_delay", "0"));
        assert!(!s.iter().any(|(k, _)| k[1] == "ipv6"));
    }
}

//! CHECK: is the container's networking still what ADD made of it?
//!
//! The addresses come from `prevResult` (what ADD returned); each must still be held by the
//! container's IPAM handle, be on the container's interface, be routed by the host to the host
//! side of the veth, and the container must still route through the link-local gateway. Every
//! mismatch is collected, so one CHECK names everything that is wrong, not only the first.

use super::addresses::Ipam;
use super::config::NetConf;
use super::env::Env;
use super::iproute::{self, DataplaneError, Ns};
use super::result::{CniError, CniResult, Code};
use super::veth::{self, GATEWAY_V4, GATEWAY_V6};
use std::net::IpAddr;
use std::path::Path;

/// Runs CHECK.
pub fn run(conf: &NetConf, env: &Env, rt: &tokio::runtime::Runtime) -> Result<(), CniError> {
    let Some(prev) = &conf.prev_result else {
        return Err(CniError::new(
            Code::InvalidConfig,
            "CHECK needs prevResult (the result of ADD) in the network configuration",
        ));
    };
    let Some(netns) = env.netns.as_deref() else {
        return Err(CniError::new(
            Code::InvalidEnvironment,
            "CNI_NETNS is not set (required for CHECK)",
        ));
    };
    if std::fs::metadata(netns).is_err() {
        return Err(CniError::new(
            Code::ContainerUnknown,
            format!(
                "the container's network namespace {} is gone",
                netns.display()
            ),
        ));
    }
    let expected = expected_addresses(prev)?;
    let handle = env.handle();
    let held = {
        let ipam = rt.block_on(Ipam::connect_store(conf))?;
        rt.block_on(ipam.addresses(&handle))?
    };
    let mut problems = Vec::new();
    for a in &expected {
        if !held.iter().any(|h| h.addr == *a) {
            problems.push(format!("IPAM handle {handle} no longer holds {a}"));
        }
    }
    let host_veth = veth::host_veth_name(&env.container_id);
    let dataplane = |e: DataplaneError| {
        CniError::new(Code::DataplaneFailed, format!("reading the dataplane: {e}"))
    };
    problems.extend(check_host(&host_veth, &expected).map_err(dataplane)?);
    problems.extend(check_container(netns, &env.ifname, &expected).map_err(dataplane)?);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(Code::CheckFailed, problems.join("; ")))
    }
}

/// The addresses of `prevResult`, without their prefix lengths.
fn expected_addresses(prev: &CniResult) -> Result<Vec<IpAddr>, CniError> {
    if prev.ips.is_empty() {
        return Err(CniError::new(
            Code::InvalidConfig,
            "prevResult has no ips: it is not the result of a tortie-cni ADD",
        ));
    }
    prev.ips
        .iter()
        .map(|ip| {
            ip.address
                .parse::<ipnet::IpNet>()
                .map(|n| n.addr())
                .map_err(|_| {
                    CniError::new(
                        Code::Decode,
                        format!(
                            "prevResult.ips: {:?} is not an address with prefix length",
                            ip.address
                        ),
                    )
                })
        })
        .collect()
}

fn is_up(link: &serde_json::Value) -> bool {
    link.get("flags")
        .and_then(|f| f.as_array())
        .is_some_and(|f| f.iter().any(|x| x == "UP"))
}

/// The host side: present, up, proxy ARP on, and the host route per address through it.
fn check_host(host_veth: &str, expected: &[IpAddr]) -> Result<Vec<String>, DataplaneError> {
    let mut problems = Vec::new();
    let Some(link) = iproute::link(Ns::Host, host_veth)? else {
        problems.push(format!(
            "the host side {host_veth} of the pod's veth is gone"
        ));
        return Ok(problems);
    };
    if !is_up(&link) {
        problems.push(format!("the host side {host_veth} is down"));
    }
    if expected.iter().any(IpAddr::is_ipv4)
        && iproute::read_sysctl(Ns::Host, &["net", "ipv4", "conf", host_veth, "proxy_arp"])? != "1"
    {
        problems.push(format!("proxy ARP is off on {host_veth}"));
    }
    for a in expected {
        let prefix = ipnet::IpNet::from(*a).to_string();
        let routes = iproute::json(Ns::Host, &["route", "show", "exact", &prefix])?;
        let through = routes
            .iter()
            .any(|r| r.get("dev").and_then(|d| d.as_str()) == Some(host_veth));
        if !through {
            problems.push(format!("the host has no route {prefix} dev {host_veth}"));
        }
    }
    Ok(problems)
}

/// The container side: present, up, holding each address, routing via the gateway.
fn check_container(
    netns: &Path,
    ifname: &str,
    expected: &[IpAddr],
) -> Result<Vec<String>, DataplaneError> {
    let ns = Ns::Path(netns);
    let mut problems = Vec::new();
    let Some(link) = iproute::link(ns, ifname)? else {
        problems.push(format!("the container has no interface {ifname}"));
        return Ok(problems);
    };
    if !is_up(&link) {
        problems.push(format!("the container's {ifname} is down"));
    }
    let addrs = iproute::json(ns, &["addr", "show", "dev", ifname])?;
    let held: Vec<String> = addrs
        .iter()
        .flat_map(|l| {
            l.get("addr_info")
                .and_then(|a| a.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| {
            Some(format!(
                "{}/{}",
                a.get("local")?.as_str()?,
                a.get("prefixlen")?.as_u64()?
            ))
        })
        .collect();
    for a in expected {
        let want = ipnet::IpNet::from(*a).to_string();
        if !held.contains(&want) {
            problems.push(format!("the container's {ifname} does not hold {want}"));
        }
    }
    let gateways = [
        (
            expected.iter().any(IpAddr::is_ipv4),
            "-4",
            IpAddr::V4(GATEWAY_V4),
        ),
        (
            expected.iter().any(IpAddr::is_ipv6),
            "-6",
            IpAddr::V6(GATEWAY_V6),
        ),
    ];
    for (wanted, family, gw) in gateways {
        if !wanted {
            continue;
        }
        let routes = iproute::json(ns, &[family, "route", "show", "default"])?;
        let ok = routes.iter().any(|r| {
            r.get("gateway").and_then(|g| g.as_str()) == Some(gw.to_string().as_str())
                && r.get("dev").and_then(|d| d.as_str()) == Some(ifname)
        });
        if !ok {
            problems.push(format!(
                "the container has no default route via {gw} dev {ifname}"
            ));
        }
    }
    Ok(problems)
}

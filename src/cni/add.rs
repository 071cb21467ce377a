//! ADD: an address from tortie's IPAM, a veth into the container, its routes, and the result.
//!
//! Order and rollback: the address is taken first (under the host's IPAM lock), then the
//! link is made; if making the link fails, the link is removed and the addresses this ADD
//! allocated are given back, so a failed ADD leaves nothing. A repeated ADD for the same
//! container gets the address its handle already holds and rebuilds the link from scratch,
//! so its result is the first one's.

use super::addresses::Ipam;
use super::config::{Mtu, NetConf};
use super::env::Env;
use super::lock;
use super::node;
use super::result::{CniError, CniResult, Code, Interface, IpConfig, RouteConfig};
use super::store_ipam::{AssignRequest, PodAddress};
use super::veth::{self, GATEWAY_V4, GATEWAY_V6, HOST_MAC, PodLink};
use std::net::IpAddr;
use std::path::Path;

/// Runs ADD.
pub fn run(conf: &NetConf, env: &Env, rt: &tokio::runtime::Runtime) -> Result<CniResult, CniError> {
    let Some(netns) = env.netns.as_deref() else {
        return Err(CniError::new(
            Code::InvalidEnvironment,
            "CNI_NETNS is not set (required for ADD)",
        ));
    };
    check_netns(netns)?;
    let node = node::name(conf)?;
    let handle = env.handle();
    let (namespace, pod) = env.pod();
    let req = AssignRequest {
        handle: &handle,
        node: &node,
        namespace,
        pod,
        ipv4: conf.ipam.assign_ipv4,
        ipv6: conf.ipam.assign_ipv6,
        ipv4_pools: &conf.ipam.ipv4_pools,
        ipv6_pools: &conf.ipam.ipv6_pools,
    };

    let (ipam, assigned) = {
        let _turn = lock::acquire(&conf.lock_file, lock::TIMEOUT)?;
        let ipam = rt.block_on(Ipam::connect(conf))?;
        let assigned = rt.block_on(ipam.assign(&req))?;
        (ipam, assigned)
    };
    tracing::info!(
        container = %env.container_id,
        %node,
        via = %ipam.describe(),
        addresses = ?assigned.addrs.iter().map(|a| a.addr).collect::<Vec<_>>(),
        reused = assigned.fresh.is_empty(),
        "addresses assigned"
    );

    let mtu = match conf.mtu {
        Mtu::Fixed(m) => m,
        // The agent's own underlay when it said (felix's tunnel MTUs come from it), else the
        // device of the host's default route.
        Mtu::Auto => assigned
            .underlay_mtu
            .unwrap_or_else(node::underlay_mtu)
            .saturating_sub(assigned.mtu_overhead)
            .max(68),
    };
    let host_veth = veth::host_veth_name(&env.container_id);
    let addrs: Vec<IpAddr> = assigned.addrs.iter().map(|a| a.addr).collect();
    let link = PodLink {
        host_veth: host_veth.clone(),
        netns,
        ifname: &env.ifname,
        mtu,
        addrs,
    };
    let wired = match wire(&link) {
        Ok(w) => w,
        Err(e) => {
            rt.block_on(ipam.release_fresh(&handle, &assigned.fresh));
            return Err(e);
        }
    };
    Ok(result(
        conf,
        env,
        netns,
        &host_veth,
        &wired.container_mac,
        mtu,
        &assigned.addrs,
    ))
}

/// Replaces a link an earlier ADD of this container left, then makes the pod's link.
fn wire(link: &PodLink<'_>) -> Result<veth::Wired, CniError> {
    let failed = |what: String, e| CniError::new(Code::DataplaneFailed, format!("{what}: {e}"));
    let existed = veth::remove(&link.host_veth)
        .map_err(|e| failed(format!("removing the earlier link {}", link.host_veth), e))?;
    if existed {
        tracing::info!(veth = %link.host_veth, "a repeated ADD: the earlier link was removed");
    }
    veth::create(link)
        .map_err(|e| failed(format!("wiring {} to {}", link.host_veth, link.ifname), e))
}

/// The namespace must be there: ADD for a container that is gone is the runtime's mistake.
fn check_netns(netns: &Path) -> Result<(), CniError> {
    match std::fs::metadata(netns) {
        Ok(_) => Ok(()),
        Err(e) => Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_NETNS {}: {e}", netns.display()),
        )),
    }
}

/// The CNI result: the host side and the container side, the addresses on the container side,
/// the default route(s).
pub fn result(
    conf: &NetConf,
    env: &Env,
    netns: &Path,
    host_veth: &str,
    container_mac: &str,
    mtu: u32,
    addrs: &[PodAddress],
) -> CniResult {
    // `mtu` on interfaces is new in 1.1.0.
    let with_mtu = (conf.cni_version != "1.0.0").then_some(mtu);
    let mut routes = Vec::new();
    if addrs.iter().any(|a| a.addr.is_ipv4()) {
        routes.push(RouteConfig {
            dst: "0.0.0.0/0".into(),
            gw: Some(IpAddr::V4(GATEWAY_V4)),
        });
    }
    if addrs.iter().any(|a| a.addr.is_ipv6()) {
        routes.push(RouteConfig {
            dst: "::/0".into(),
            gw: Some(IpAddr::V6(GATEWAY_V6)),
        });
    }
    CniResult {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![
            Interface {
                name: host_veth.to_string(),
                mac: HOST_MAC.to_string(),
                mtu: with_mtu,
                sandbox: String::new(),
            },
            Interface {
                name: env.ifname.clone(),
                mac: container_mac.to_string(),
                mtu: with_mtu,
                sandbox: netns.display().to_string(),
            },
        ],
        ips: addrs
            .iter()
            .map(|a| IpConfig {
                address: ipnet::IpNet::from(a.addr).to_string(),
                gateway: None,
                interface: Some(1),
            })
            .collect(),
        routes,
        dns: Default::default(),
    }
}

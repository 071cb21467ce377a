//! felix driven directly with desired state (no BGP) in the four-node topology of `topo.rs`: for each
//! node, [`inputs`] are what the agent would hand it (the node's address with its /24 or /64, the
//! underlay `eth0` with its MTU as the kernel reports it and the router as default gateway, the pools,
//! the node's own block(s), and as best routes the other nodes' blocks via their node addresses);
//! [`desired::compute`] turns them into the desired state and [`Felix::apply`] programs it in the
//! node's namespace.
//!
//! Shared by the VM tests (`tests/vm_inner`, IPIP) and the host tests (`tests/dataplane/`, VXLAN and
//! host-gw), which include it with `#[path]` next to `topo.rs`.
#![allow(dead_code)] // each test target uses part of it

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tortie_felix::desired::{
    self, BestRoute, DesiredState, EncapMode, Family, Inputs, LocalNode, Pool, Underlay,
};
use tortie_felix::netlink::Kernel;
use tortie_felix::reconcile::{ApplyReport, Felix};

use crate::topo::{Netns, Node, Result, Topology};

/// The IPv4 pod pool of the test networks.
pub const POOL_V4: &str = "198.19.0.0/16";
/// The IPv6 pod pool of the dual-stack topology.
pub const POOL_V6: &str = "2001:2:0:19::/64";

/// A pool with the given `ipipMode`, `vxlanMode` and `natOutgoing`.
pub fn pool(cidr: &str, ipip: EncapMode, vxlan: EncapMode, nat_outgoing: bool) -> Pool {
    Pool {
        cidr: cidr.parse().expect("pool CIDR"),
        ipip_mode: ipip,
        vxlan_mode: vxlan,
        nat_outgoing,
        disabled: false,
    }
}

pub fn ipip_pool(mode: EncapMode) -> Pool {
    pool(POOL_V4, mode, EncapMode::Never, false)
}

pub fn vxlan_pool(mode: EncapMode) -> Pool {
    pool(POOL_V4, EncapMode::Never, mode, false)
}

fn block_v4(n: &Node) -> IpNet {
    IpNet::V4(Ipv4Net::new(n.block.0, n.block.1).expect("block"))
}

fn block_v6(n: &Node) -> Option<IpNet> {
    n.block6
        .map(|(a, l)| IpNet::V6(Ipv6Net::new(a, l).expect("block6")))
}

/// What the agent of `t.nodes[i]` would give felix. A family is included (address, gateway, own
/// block, the other nodes' blocks) when some pool of that family is given; `mtu` is the underlay's.
pub fn inputs(t: &Topology, i: usize, pools: &[Pool], mtu: u32) -> Inputs {
    let has = |f: Family| pools.iter().any(|p| Family::of_net(&p.cidr) == f);
    let (v4, v6) = (
        has(Family::V4),
        has(Family::V6) && t.nodes[i].addr6.is_some(),
    );
    let me = &t.nodes[i];
    let mut blocks = Vec::new();
    let mut routes = Vec::new();
    for (j, other) in t.nodes.iter().enumerate() {
        let mut push = |block: IpNet, addr: IpAddr| {
            if i == j {
                blocks.push(block);
            } else {
                routes.push(BestRoute {
                    prefix: block,
                    next_hops: vec![addr],
                    priority: None,
                });
            }
        };
        if v4 {
            push(block_v4(other), IpAddr::V4(other.addr));
        }
        if v6 {
            if let (Some(b), Some(a)) = (block_v6(other), other.addr6) {
                push(b, IpAddr::V6(a));
            }
        }
    }
    Inputs {
        node: LocalNode {
            name: me.ns.name().to_string(),
            ipv4: v4.then(|| Ipv4Net::new(me.addr, me.prefix_len).expect("node prefix")),
            ipv6: if v6 {
                me.addr6.map(|a| Ipv6Net::new(a, 64).expect("node prefix"))
            } else {
                None
            },
            underlay: Underlay {
                name: me.dev.to_string(),
                index: None,
                gateways_v4: if v4 { vec![me.gateway] } else { vec![] },
                gateways_v6: if v6 {
                    me.gateway6.into_iter().collect()
                } else {
                    vec![]
                },
                mtu,
            },
        },
        pools: pools.to_vec(),
        blocks,
        routes,
        vxlan: Default::default(),
    }
}

/// felix on one node: its handle, what it was given and what it computed.
pub struct NodeFelix {
    pub felix: Felix,
    pub inputs: Inputs,
    pub desired: DesiredState,
}

impl NodeFelix {
    /// Recompute from changed inputs and apply.
    pub fn apply_inputs(&mut self, inputs: Inputs) -> Result<ApplyReport> {
        self.desired = desired::compute(&inputs);
        self.inputs = inputs;
        apply(&mut self.felix, &self.desired)
    }
}

/// A fresh felix (on a fresh netlink socket) for `node`'s namespace; writes nothing.
pub fn felix_for(node: &Node) -> Result<Felix> {
    let name = node.ns.name().to_string();
    let kernel = Kernel::open_named(&name).map_err(|e| format!("{name}: netlink: {e}"))?;
    Ok(Felix::new(kernel, node.dev, Some(name)))
}

/// The underlay device's MTU, as the kernel has it.
pub fn underlay_mtu(felix: &mut Felix, dev: &str) -> Result<u32> {
    felix
        .kernel()
        .require_link(dev)
        .map(|l| l.mtu)
        .map_err(|e| format!("{dev}: {e}"))
}

/// `Felix::apply`, failing on any refused operation or device problem.
pub fn apply(felix: &mut Felix, desired: &DesiredState) -> Result<ApplyReport> {
    let report = felix.apply(desired).map_err(|e| format!("apply: {e}"))?;
    if !report.failures.is_empty() || !report.device_problems.is_empty() {
        return Err(format!("apply: {report:?}"));
    }
    Ok(report)
}

/// Starts felix on every node of `t` with `pools` and applies the computed state.
pub fn apply_all(t: &Topology, pools: &[Pool]) -> Result<Vec<NodeFelix>> {
    (0..t.nodes.len())
        .map(|i| {
            let node = &t.nodes[i];
            let mut felix = felix_for(node)?;
            let mtu = underlay_mtu(&mut felix, node.dev)?;
            let inputs = inputs(t, i, pools, mtu);
            let desired = desired::compute(&inputs);
            if !desired.problems.is_empty() {
                return Err(format!(
                    "{}: problems: {:?}",
                    node.ns.name(),
                    desired.problems
                ));
            }
            apply(&mut felix, &desired).map_err(|e| format!("{}: {e}", node.ns.name()))?;
            Ok(NodeFelix {
                felix,
                inputs,
                desired,
            })
        })
        .collect()
}

/// `ping -c COUNT` (50 ms apart, 2 s per reply) to an address of either family.
pub fn ping(ns: &Netns, dst: IpAddr, count: u32) -> Result<()> {
    ns.exec(&[
        "ping",
        "-n",
        "-q",
        "-c",
        &count.to_string(),
        "-i",
        "0.05",
        "-W",
        "2",
        &dst.to_string(),
    ])
    .map(drop)
}

/// One ping that must fail (no reply within a second).
pub fn ping_fails(ns: &Netns, dst: IpAddr) -> Result<()> {
    let out = ns.exec_output(&["ping", "-n", "-q", "-c", "1", "-W", "1", &dst.to_string()])?;
    if out.status.success() {
        return Err(format!("{dst} answered from {}", ns.name()));
    }
    Ok(())
}

/// Single pings until one is answered (neighbour discovery on fresh links), at most `within`.
pub fn ping_until(ns: &Netns, dst: IpAddr, within: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let out = ns.exec_output(&["ping", "-n", "-q", "-c", "1", "-W", "1", &dst.to_string()])?;
        if out.status.success() {
            return Ok(());
        }
        if start.elapsed() >= within {
            return Err(format!(
                "{dst} did not answer {} within {within:?}: {}",
                ns.name(),
                String::from_utf8_lossy(&out.stdout).trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

pub fn v6(a: Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}

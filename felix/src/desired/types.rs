//! Plain input and output types of the desired-state computation (serde-friendly; no netlink,
//! bgp or ipam types).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::mac::Mac;

/// Name of the IPIP fallback device (the kernel's, created by the `ipip` module).
pub const TUNL0: &str = "tunl0";
/// Name of the VXLAN device over an IPv4 underlay.
pub const VXLAN_V4: &str = "vxlan.tortie";
/// Name of the VXLAN device over an IPv6 underlay.
pub const VXLAN_V6: &str = "vxlan-v6.tortie";
/// Calico's default `vxlanVNI` (one value, used for both the IPv4 and the IPv6 device).
pub const DEFAULT_VXLAN_VNI: u32 = 4096;
/// IANA's VXLAN port, Calico's default `vxlanPort`.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Outer IPv4 header.
pub const IPIP_OVERHEAD: u32 = 20;
/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_V4_OVERHEAD: u32 = 50;
/// The metric the kernel gives an IPv6 route written without one (`IP6_RT_PRIO_USER`; the
/// same number as `netlink::route::IPV6_DEFAULT_METRIC`). IPv4 has no such default: 0 is 0.
pub const IPV6_DEFAULT_METRIC: u32 = 1024;
/// Outer IPv6 (40) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_V6_OVERHEAD: u32 = 70;

/// Address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of_addr(a: &IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn of_net(n: &IpNet) -> Family {
        match n {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// An IPPool's `ipipMode` / `vxlanMode`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum EncapMode {
    Always,
    CrossSubnet,
    #[default]
    Never,
}

/// Everything the desired state is a function of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    pub node: LocalNode,
    /// All IP pools, enabled and disabled, both families.
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// This node's affine blocks (host bits, if any, are ignored).
    #[serde(default)]
    pub blocks: Vec<IpNet>,
    /// The best routes from BGP, one entry per prefix (entries for the same prefix are merged).
    #[serde(default)]
    pub routes: Vec<BestRoute>,
    #[serde(default)]
    pub vxlan: VxlanSettings,
}

/// This node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalNode {
    pub name: String,
    /// The node's IPv4 address with its configured prefix length (`spec.bgp.ipv4Address`,
    /// e.g. `198.18.1.10/24`). "Same subnet" = this prefix contains the remote node's address.
    #[serde(default)]
    pub ipv4: Option<Ipv4Net>,
    /// The node's IPv6 address with its configured prefix length (`spec.bgp.ipv6Address`).
    #[serde(default)]
    pub ipv6: Option<Ipv6Net>,
    pub underlay: Underlay,
}

/// The device the node's address lives on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Underlay {
    /// Device name, e.g. `eth0`.
    pub name: String,
    /// ifindex, when known (only carried through; routes say [`Device::Underlay`]).
    #[serde(default)]
    pub index: Option<u32>,
    /// The gateways of the underlay's IPv4 default route(s) (several = ECMP default).
    #[serde(default)]
    pub gateways_v4: Vec<Ipv4Addr>,
    /// The gateways of the underlay's IPv6 default route(s); link-local gateways are fine.
    #[serde(default)]
    pub gateways_v6: Vec<Ipv6Addr>,
    /// The underlay device's MTU.
    pub mtu: u32,
}

/// An IP pool, as far as routing and NAT care.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub cidr: IpNet,
    #[serde(default)]
    pub ipip_mode: EncapMode,
    #[serde(default)]
    pub vxlan_mode: EncapMode,
    #[serde(default)]
    pub nat_outgoing: bool,
    /// IPAM hands out no new addresses from it; routing and NAT are unaffected (module docs).
    #[serde(default)]
    pub disabled: bool,
}

/// One best route from the Loc-RIB: a prefix, its ECMP next hops and its priority. In Calico
/// a next hop IS the remote node's address (`spec.bgp.ipv4Address` / `ipv6Address` without
/// the length), so the next hop alone identifies the remote node, its VTEP and its VTEP MAC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BestRoute {
    pub prefix: IpNet,
    pub next_hops: Vec<IpAddr>,
    /// The kernel route metric a BGPFilter `setPriority` on import gave the route (lower
    /// wins); `None`: no priority, the route is written without one (the kernel's default
    /// metric, see [`canonical_metric`]). Entries merged for one prefix keep the lowest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// A route metric in the one form a [`Route`] holds ([`Route::metric`]): 0 = "none written", the
/// kernel's default. For IPv4 that is metric 0 itself; IPv6 turns 0 into
/// [`IPV6_DEFAULT_METRIC`], so for an IPv6 prefix 1024 is the same kernel route as 0 and
/// becomes 0 here. Equal canonical metrics are equal kernel keys, and only those.
pub fn canonical_metric(prefix: &IpNet, metric: u32) -> u32 {
    match prefix {
        IpNet::V6(_) if metric == IPV6_DEFAULT_METRIC => 0,
        _ => metric,
    }
}

/// The metric the kernel reports for a route of `prefix` whose canonical metric is `metric`
/// (the inverse of [`canonical_metric`]): what a delete must name to hit exactly that route.
pub fn kernel_metric(prefix: &IpNet, metric: u32) -> u32 {
    match prefix {
        IpNet::V6(_) if metric == 0 => IPV6_DEFAULT_METRIC,
        _ => metric,
    }
}

/// VNI and UDP port of both VXLAN devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VxlanSettings {
    pub vni: u32,
    pub port: u16,
}

impl Default for VxlanSettings {
    fn default() -> Self {
        VxlanSettings {
            vni: DEFAULT_VXLAN_VNI,
            port: DEFAULT_VXLAN_PORT,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs

/// The desired state: the FIB objects (diffable against a kernel dump), the tunnel devices and
/// the NAT description, plus what could not be honoured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredState {
    pub fib: Fib,
    pub tunnels: Tunnels,
    pub nat: NatOutgoing,
    /// Inputs that were ignored or could not be programmed (a set: each is owned by one pool,
    /// route or VTEP MAC, and kept up to date incrementally by the [`super::Planner`]).
    pub problems: BTreeSet<Problem>,
}

/// The kernel objects tortie owns: what the reconciler dumps and what [`super::diff`] compares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fib {
    /// Routes keyed by prefix (the prefix carries the family; host bits are always zero).
    pub routes: BTreeMap<IpNet, Route>,
    /// Permanent neighbour entries on the VXLAN devices; at most one per `(device, addr)`.
    pub neighbours: BTreeSet<Neighbour>,
    /// FDB entries on the VXLAN devices (`bridge fdb ... dst <remote>`).
    pub fdb: BTreeSet<FdbEntry>,
}

/// A kernel route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Route {
    /// `RTN_UNICAST`; more than one next hop = `RTA_MULTIPATH`.
    #[serde(rename_all = "camelCase")]
    Unicast {
        /// Sorted, no duplicates (as [`Route::unicast`] builds them).
        nexthops: Vec<NextHop>,
        /// `RTA_PREFSRC`: this node's address, on routes that use a tunnel device (module docs).
        #[serde(default)]
        prefsrc: Option<IpAddr>,
        /// `RTA_PRIORITY`, in canonical form ([`canonical_metric`]): 0 = none written (the
        /// kernel's default, what every route got before priorities existed), else the
        /// metric of the best route's priority. Part of the kernel's key for the route, so a
        /// change of metric is a [`super::Op::MoveRoute`], not a replace.
        #[serde(default, skip_serializing_if = "is_zero")]
        metric: u32,
    },
    /// `RTN_BLACKHOLE`, always with the default metric (this node's own blocks have no
    /// priority).
    Blackhole,
}

fn is_zero(m: &u32) -> bool {
    *m == 0
}

impl Route {
    /// A unicast route with its next hops sorted and deduplicated; `metric` canonical
    /// ([`canonical_metric`]).
    pub fn unicast(mut nexthops: Vec<NextHop>, prefsrc: Option<IpAddr>, metric: u32) -> Route {
        nexthops.sort();
        nexthops.dedup();
        Route::Unicast {
            nexthops,
            prefsrc,
            metric,
        }
    }

    /// The same route with its next hops in canonical order (the kernel returns them in
    /// insertion order; order carries no meaning).
    pub fn normalized(&self) -> Route {
        match self {
            Route::Unicast {
                nexthops,
                prefsrc,
                metric,
            } => Route::unicast(nexthops.clone(), *prefsrc, *metric),
            Route::Blackhole => Route::Blackhole,
        }
    }

    /// The canonical metric (0 for a blackhole): with the prefix, the kernel's key.
    pub fn metric(&self) -> u32 {
        match self {
            Route::Unicast { metric, .. } => *metric,
            Route::Blackhole => 0,
        }
    }

    /// The same route up to next-hop order (and duplicates): what [`Route::normalized`]
    /// compares, without copying when the next hops are already in the same order.
    pub fn equivalent(&self, other: &Route) -> bool {
        match (self, other) {
            (Route::Blackhole, Route::Blackhole) => true,
            (
                Route::Unicast {
                    nexthops: a,
                    prefsrc: p,
                    metric: m,
                },
                Route::Unicast {
                    nexthops: b,
                    prefsrc: q,
                    metric: n,
                },
            ) => p == q && m == n && (a == b || self.normalized() == other.normalized()),
            _ => false,
        }
    }

    pub fn nexthops(&self) -> &[NextHop] {
        match self {
            Route::Unicast { nexthops, .. } => nexthops,
            Route::Blackhole => &[],
        }
    }
}

/// One next hop of a unicast route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextHop {
    pub gateway: IpAddr,
    pub device: Device,
    /// `RTNH_F_ONLINK`: the gateway is not checked against the device's connected subnets.
    pub onlink: bool,
}

/// The devices tortie routes through. The reconciler maps them to ifindexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Device {
    /// The node's underlay device ([`Underlay::name`]).
    Underlay,
    /// [`TUNL0`].
    Tunl0,
    /// [`VXLAN_V4`].
    Vxlan,
    /// [`VXLAN_V6`].
    VxlanV6,
}

impl Device {
    /// The device's name; the underlay's is the caller's.
    pub fn name<'a>(&self, underlay: &'a str) -> &'a str {
        match self {
            Device::Underlay => underlay,
            Device::Tunl0 => TUNL0,
            Device::Vxlan => VXLAN_V4,
            Device::VxlanV6 => VXLAN_V6,
        }
    }

    pub fn is_tunnel(&self) -> bool {
        !matches!(self, Device::Underlay)
    }

    /// The VXLAN device for an underlay family.
    pub fn vxlan_for(family: Family) -> Device {
        match family {
            Family::V4 => Device::Vxlan,
            Family::V6 => Device::VxlanV6,
        }
    }
}

/// A permanent neighbour entry on a VXLAN device: the remote node's address (used as the
/// on-link gateway of routes through the device) → the remote VTEP's MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Neighbour {
    pub device: Device,
    pub addr: IpAddr,
    pub mac: Mac,
}

/// An FDB entry on a VXLAN device: the remote VTEP's MAC → the remote node's underlay address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdbEntry {
    pub device: Device,
    pub mac: Mac,
    pub dst: IpAddr,
}

/// The tunnel devices this node needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tunnels {
    pub tunl0: Option<IpipTunnel>,
    pub vxlan: Option<VxlanTunnel>,
    pub vxlan_v6: Option<VxlanTunnel>,
}

/// `tunl0` (the IPIP fallback device: no local or remote; the outer destination is the
/// route's gateway).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpipTunnel {
    pub name: String,
    /// Underlay MTU − 20.
    pub mtu: u32,
}

/// `vxlan.tortie` / `vxlan-v6.tortie`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VxlanTunnel {
    pub name: String,
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// Our own VTEP MAC ([`super::vtep_mac`] of `local`).
    pub mac: Mac,
    /// Our underlay address: the outer source, and what remote nodes derive our MAC from.
    pub local: IpAddr,
    /// Underlay MTU − 50 (IPv4) or − 70 (IPv6).
    pub mtu: u32,
}

/// natOutgoing, as data: masquerade packets whose source is in one of `masquerade` and whose
/// destination is in none of `all_pools`. Nothing else is masqueraded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NatOutgoing {
    /// Every pool's CIDR, enabled or disabled, both families.
    pub all_pools: BTreeSet<IpNet>,
    /// The CIDRs of the pools with `natOutgoing: true` (disabled ones included).
    pub masquerade: BTreeSet<IpNet>,
}

impl NatOutgoing {
    /// Would a packet from `src` to `dst` be masqueraded?
    pub fn masquerades(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.masquerade.iter().any(|p| p.contains(&src))
            && !self.all_pools.iter().any(|p| p.contains(&dst))
    }
}

/// Something in the inputs that was ignored or could not be programmed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Problem {
    /// A pool sets both `ipipMode` and `vxlanMode`; VXLAN is used (as Calico's Felix does).
    BothEncapsulations { pool: IpNet },
    /// An IPv6 pool sets `ipipMode` (IPIP is IPv4 only); it is treated as `Never`.
    IpipOnIpv6Pool { pool: IpNet },
    /// A next hop of the other family than the prefix (e.g. RFC 8950); not supported.
    NextHopFamilyMismatch { prefix: IpNet, next_hop: IpAddr },
    /// A next hop that is this node's own address (would loop).
    NextHopIsSelf { prefix: IpNet, next_hop: IpAddr },
    /// An unspecified (`0.0.0.0` / `::`) or multicast next hop.
    InvalidNextHop { prefix: IpNet, next_hop: IpAddr },
    /// Direct routing to a next hop outside our subnet, but no default gateway of that family
    /// on the underlay to resolve it through.
    Unresolvable { prefix: IpNet, next_hop: IpAddr },
    /// VXLAN towards this next hop needs our own underlay address of its family.
    NoLocalAddress { prefix: IpNet, next_hop: IpAddr },
    /// Two VTEPs derive the same MAC; `dropped`'s VXLAN next hops are not programmed, `kept`
    /// (the lower address, or our own) keeps the MAC.
    VtepMacCollision {
        mac: Mac,
        kept: IpAddr,
        dropped: IpAddr,
    },
    /// No next hop of the route survived; the route is not installed.
    NoUsableNextHop { prefix: IpNet },
}

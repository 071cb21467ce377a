//! Desired kernel state, computed from best routes, blocks and pools: a pure function
//! ([`compute`]), its incremental form ([`Planner`]) and a pure diff ([`diff`]). No I/O and no
//! netlink types: the reconciler maps [`Fib`] objects to rtnetlink messages and [`Op`]s to
//! writes.
//!
//! # Inputs and outputs
//!
//! [`Inputs`]: this node ([`LocalNode`]: name, IPv4 and/or IPv6 address *with its configured
//! prefix length*, the [`Underlay`] device with its default gateways and MTU), every IP
//! [`Pool`] (enabled or not), this node's affine blocks, and the [`BestRoute`]s of the Loc-RIB
//! (prefix + ECMP next hops, a next hop being the remote node's address as in Calico, and an
//! optional priority: the route's metric, see below).
//!
//! [`DesiredState`]: the [`Fib`] (routes keyed by prefix, VXLAN neighbour and FDB entries), the
//! [`Tunnels`] to create, the [`NatOutgoing`] description, and the [`Problem`]s met.
//!
//! # Routing rules
//!
//! The pool *containing* a route's prefix governs it (pools do not overlap; if they do, the
//! most specific wins). For each next hop of a remote prefix, on its own (so an ECMP group
//! can mix encapsulations, one next hop per remote node):
//!
//! | pool encap | next hop | next hop in the kernel |
//! |---|---|---|
//! | IPIP `Always`, or `CrossSubnet` and another subnet | any | `via <node> dev tunl0 onlink` |
//! | VXLAN `Always`, or `CrossSubnet` and another subnet | any | `via <node> dev vxlan.tortie onlink` (v6: `vxlan-v6.tortie`) + neighbour `<node> lladdr <mac>` + FDB `<mac> dst <node>` |
//! | none, `Never`, `CrossSubnet` same subnet, or no pool | same subnet | `via <node> dev <underlay>` |
//! | same | another subnet | `via <gw> dev <underlay>` for each default gateway (BIRD's `gateway recursive`) |
//!
//! * "Same subnet" is Calico's: this node's configured prefix contains the next hop (the
//!   network and broadcast addresses of the prefix included). Without our own address of the
//!   family nothing is same subnet (Felix's `nodeInOurSubnet`). An IPv6 link-local next hop
//!   is on-link and counts as same subnet.
//! * Recursive resolution goes through the underlay's default gateway(s); several gateways give
//!   a multipath route. A gateway inside our prefix (or IPv6 link-local) is used as is; one
//!   outside it gets `onlink` (it is the gateway of the kernel's own default route, which can
//!   only exist if the gateway is on that link, e.g. a /32 node address with an onlink default
//!   route). With no gateway of the family the next hop is dropped ([`Problem::Unresolvable`]):
//!   tortie never writes a route the kernel cannot use (no off-link gateway without `onlink`).
//! * Next hops equal to our own address, of the other family, unspecified or multicast are
//!   dropped; identical resulting next hops are merged; a route left with none is not
//!   installed ([`Problem::NoUsableNextHop`]).
//! * Our own affine blocks get `blackhole <block>`, except /32 and /128 blocks (as Calico's
//!   `bird_aggr.cfg.template`: `if not (hasSuffix $cidr "/32")`). A best route whose prefix *is*
//!   one of our blocks is not installed; a more specific remote route inside our block (an
//!   address borrowed by another node) is.
//! * Prefixes inside no pool (a ToR's routes, a default route from BGP) are plain routes via
//!   the next hop, resolved through the gateway when not on-link, never encapsulated (Calico's
//!   `calico_kernel_programming` filter ends in a bare `accept`).
//! * Routes through a tunnel carry `prefsrc` = this node's address (see below); routes on the
//!   underlay carry none (the kernel's choice is the underlay's address anyway).
//!
//! ## Where Calico's behaviour was unclear, and what tortie does
//!
//! * **Disabled pools**: `disabled` only stops IPAM from handing out addresses. Their existing
//!   blocks stay routed with the pool's encapsulation: confd lists every pool under
//!   `/v1/ipam/v4/pool` in `calico_kernel_programming` (only `disableBGPExport` pools are
//!   rejected, and only for export), and Felix's route resolver keeps disabled pools in its
//!   trie ("disabled IPAM pools ... used for tagging external IPs as safe destinations that
//!   don't require SNAT", `felix/calc/l3_route_resolver.go`). For the same reason disabled
//!   pools are in [`NatOutgoing::all_pools`], and in [`NatOutgoing::masquerade`] when they
//!   set `natOutgoing` (Felix's `masq_mgr.go` adds every pool it is told about, with no
//!   `disabled` check).
//! * **Both `ipipMode` and `vxlanMode` set** (rejected by validation, in Calico and in tortie's
//!   config): VXLAN wins, as in Felix's `poolTypeForPool` (`VXLANMode` is tested first).
//! * **`ipipMode` on an IPv6 pool** (Calico rejects it: IPIP is IPv4 only): treated as `Never`.
//! * **Tunnel devices** are needed when any pool of the family (disabled included) uses the
//!   encapsulation, not only when a route of ours does: "same subnet" is not symmetric (a node
//!   in 10.0.0.0/16 and one in 10.0.1.0/24 disagree), so a peer can send to us encapsulated
//!   while we send to it directly; Felix likewise enables IPIP/VXLAN from the pools.
//! * **VNI**: Felix has a single `vxlanVNI` (default 4096) and `vxlanPort` (default 4789) and
//!   uses them for both `vxlan.calico` and `vxlan-v6.calico` (`vxlan_mgr.go`: `vxlanID:
//!   dpConfig.RulesConfig.VXLANVNI` for either IP version). tortie does the same: VNI 4096 and
//!   port 4789 for `vxlan.tortie` and `vxlan-v6.tortie` ([`VxlanSettings`]); the kernel allows
//!   it because the two devices are of different families.
//! * **MTU**: tunl0 = underlay − 20, vxlan.tortie = underlay − 50, vxlan-v6.tortie = underlay − 70
//!   (Calico's defaults 1480/1450/1430 on a 1500 underlay).
//!
//! # VTEP MACs without a datastore
//!
//! Calico stores a random VTEP MAC per node in the Node resource (`vxlanTunnelMACAddr`). tortie
//! derives it from the node's underlay address, so each node computes any peer's MAC from the
//! BGP next hop alone ([`vtep_mac`]):
//!
//! * IPv4 `a.b.c.d` → `02:74:a:b:c:d`. Injective: two IPv4 addresses never share a MAC.
//! * IPv6 → `02:76:` + (the low 32 bits of the address XOR FNV-1a-32 of its high 96 bits).
//!   Injective within any /96 (so neighbouring addresses never collide); across different
//!   /96s a pair collides with probability 2⁻³² (≈1.2·10⁻⁴ for 1000 nodes in distinct /96s).
//!   A hash alone would risk collisions inside one subnet; the low bits alone would collide
//!   for `fd00:1::5` and `fd00:2::5`, the common cross-subnet numbering.
//!
//! `0x02` makes every MAC locally administered and unicast; the second octet keeps the two
//! families apart. A collision (two VTEPs, or a VTEP and our own, on one MAC) is detected and
//! reported ([`Problem::VtepMacCollision`]): the lower address (or our own) keeps the MAC, the
//! other's VXLAN next hops are dropped rather than misdelivered.
//!
//! # Why no tunnel address from IPAM
//!
//! Calico gives `vxlan.calico` an address from the pool and routes `via <remote tunnel IP> dev
//! vxlan.calico onlink`, with an ARP entry for that tunnel IP. tortie uses the remote *node
//! address* as the on-link gateway instead: the neighbour entry maps it to the remote's MAC on
//! the VXLAN device (neighbour tables are per device, so this does not disturb the underlay's
//! ARP/ND entry for the same address), and the FDB entry maps the MAC to the same address as
//! the outer destination. IPIP needs no gateway resolution at all (`tunl0` encapsulates
//! towards the route's gateway). Nothing has to be allocated, stored or learnt.
//!
//! Traffic forwarded for pods keeps the pod's source address. Host-originated traffic through
//! a tunnel (the node talking to a remote pod) would otherwise get a source the kernel picks
//! from some other device, so tunnel routes carry `prefsrc` = this node's address of the
//! family. The remote pod's reply goes to that node address, i.e. back over the plain underlay
//! (unencapsulated, asymmetric); therefore the tunnel devices have reverse-path filtering off
//! (`rp_filter` = 0, with `all` not stricter; even loose filtering drops packets arriving on
//! an address-less device whose source routes back elsewhere), which the reconciler sets.
//!
//! # Route metrics
//!
//! A best route may carry a priority ([`BestRoute::priority`], from a BGPFilter `setPriority`
//! on import): the metric of its kernel route, lower wins. [`Route::metric`] holds it in one
//! canonical form ([`canonical_metric`]): 0 = no `RTA_PRIORITY` written, the kernel's default
//! (metric 0 for IPv4, 1024 for IPv6, so an IPv6 priority of 1024 is 0 too). A best route
//! without a priority is written as before priorities existed. Entries merged for one prefix
//! keep the lowest priority; blackholes of our own blocks have none. The kernel keys a route
//! by (table, prefix, metric), so a changed metric is not a replace but an [`Op::MoveRoute`]:
//! the new route is added beside the old one, then the old one deleted.
//!
//! # Incremental updates
//!
//! The rules above are written once (`compute.rs`: the decision for one route, the finishing
//! step that drops VTEPs that lost their MAC, who keeps a shared MAC, the tunnel devices and
//! the NAT description). [`compute`] is [`Planner::new`]: decide every route, settle the MAC
//! groups of the VXLAN remotes they reference, finish every route. A [`Planner`] then keeps
//! inputs and state in step under [`Planner::set_route`], [`Planner::remove_route`],
//! [`Planner::set_blocks`] (O(log n) per route touched), and [`Planner::set_pools`] /
//! [`Planner::set_node`] (a full recompute): a route's old decision is retracted and the new
//! one asserted, the neighbour and FDB entries follow per-remote reference counts, each
//! problem belongs to one pool, route or MAC and goes with it. It reports the keys that
//! changed ([`Changes`]), and the diff restricted to those keys ([`Fib::restricted`]) is the
//! whole diff, so the reconciler's `apply_changes` costs what the change costs, not what the
//! table holds. A property test checks that any sequence of updates gives exactly [`compute`]
//! of the final inputs and that the reported keys cover every difference.
//!
//! # Diff
//!
//! [`diff`] compares two [`Fib`]s (the current one as read back from the kernel holds only
//! tortie-owned objects) and returns the minimal [`Op`]s in a safe, deterministic order:
//! stale routes are deleted first, FDB and neighbour entries appear before the routes that use
//! them, stale neighbours and FDB entries go last. One changed route is one [`Op`] (a
//! [`Op::MoveRoute`] when its metric changes).
//! [`Fib::apply`] models the kernel's handling of each operation.

mod compute;
mod diff;
mod mac;
mod planner;
mod types;

pub use compute::compute;
pub use diff::{ApplyError, Op, diff};
pub use mac::{
    Mac, MacParseError, VTEP_MAC_TAG_V4, VTEP_MAC_TAG_V6, fnv1a32, vtep_mac, vtep_mac_v4,
    vtep_mac_v6,
};
pub use planner::{Changes, Planner};
pub use types::*;

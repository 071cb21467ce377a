//! `Felix::apply_changes` against the kernel: after any sequence of planner updates (route
//! metrics changing among them), each applied with only its changed keys, the namespace holds
//! exactly what a fresh felix applying the full desired state would write (it adopts everything
//! and writes nothing), and felix's own record of the kernel is the desired FIB. Also: one moved
//! block against a large table is one message.
//!
//! One namespace per test with a veth underlay `eth0` (its peer in the same namespace) (198.18.1.10/24, 2001:db8:1::10/64, default
//! routes via 198.18.1.1 and fe80::1); VXLAN and host-gw pools of both families (no IPIP: this
//! kernel has no ipip module), natOutgoing on and off. Root only.

#[path = "vm_inner/topo.rs"]
mod topo;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use topo::Netns;
use tortie_felix::desired::{
    self, BestRoute, Changes, DesiredState, EncapMode, Inputs, LocalNode, Planner, Pool, Underlay,
    VxlanSettings,
};
use tortie_felix::netlink::Kernel;
use tortie_felix::reconcile::{ApplyReport, Felix};

use EncapMode::{Always, CrossSubnet, Never};

fn ok<T>(r: topo::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A namespace with the underlay.
fn namespace() -> Netns {
    let ns = ok(Netns::new(&format!("{}-planner", topo::unique_prefix())));
    ok(ns.sysctl("net/ipv6/conf/default/accept_dad", "0"));
    ok(ns.ip_batch(&[
        "link add eth0 type veth peer name eth0p".into(),
        "link set eth0p up".into(),
        "addr add 198.18.1.10/24 dev eth0".into(),
        "addr add 2001:db8:1::10/64 dev eth0 nodad".into(),
        "link set eth0 up".into(),
        "route add default via 198.18.1.1".into(),
        "route add default via fe80::1 dev eth0".into(),
    ]));
    ns
}

fn felix(ns: &Netns) -> Felix {
    let k = Kernel::open_named(ns.name()).expect("netlink");
    Felix::new(k, "eth0", Some(ns.name().to_string()))
}

fn node() -> LocalNode {
    LocalNode {
        name: "a".into(),
        ipv4: Some("198.18.1.10/24".parse().unwrap()),
        ipv6: Some("2001:db8:1::10/64".parse().unwrap()),
        underlay: Underlay {
            name: "eth0".into(),
            index: None,
            gateways_v4: vec!["198.18.1.1".parse().unwrap()],
            gateways_v6: vec!["fe80::1".parse().unwrap()],
            mtu: 1500,
        },
    }
}

fn pools(v4: EncapMode, v6: EncapMode, nat: bool) -> Vec<Pool> {
    vec![
        Pool {
            cidr: net("198.19.0.0/16"),
            ipip_mode: Never,
            vxlan_mode: v4,
            nat_outgoing: nat,
            disabled: false,
        },
        Pool {
            cidr: net("2001:db8:ff::/48"),
            ipip_mode: Never,
            vxlan_mode: v6,
            nat_outgoing: false,
            disabled: false,
        },
    ]
}

fn inputs(pools: Vec<Pool>, blocks: Vec<IpNet>, routes: &BTreeMap<IpNet, Vec<IpAddr>>) -> Inputs {
    inputs_with_priorities(
        pools,
        blocks,
        &routes
            .iter()
            .map(|(p, nhs)| (*p, (nhs.clone(), None)))
            .collect(),
    )
}

/// Best routes with their priorities (the metric of their kernel route).
fn inputs_with_priorities(
    pools: Vec<Pool>,
    blocks: Vec<IpNet>,
    routes: &BTreeMap<IpNet, (Vec<IpAddr>, Option<u32>)>,
) -> Inputs {
    Inputs {
        node: node(),
        pools,
        blocks,
        routes: routes
            .iter()
            .map(|(p, (nhs, priority))| BestRoute {
                prefix: *p,
                next_hops: nhs.clone(),
                priority: *priority,
            })
            .collect(),
        vxlan: VxlanSettings::default(),
    }
}

fn no_failures(r: ApplyReport) -> ApplyReport {
    assert!(
        r.failures.is_empty() && r.device_problems.is_empty(),
        "{r:?}"
    );
    r
}

/// The kernel holds exactly `desired`: felix's record of it is `desired`'s FIB, and a fresh felix
/// (which dumps the kernel and diffs the full state) finds nothing to write, NAT table included.
fn assert_kernel_holds(ns: &Netns, f: &Felix, desired: &DesiredState) {
    assert_eq!(
        f.current().map(|c| c.normalized()),
        Some(desired.fib.normalized()),
        "felix's record"
    );
    let mut fresh = felix(ns);
    let r = no_failures(fresh.apply(desired).expect("apply"));
    assert_eq!(
        (r.ops, fresh.writes(), fresh.nat_writes()),
        (0, 0, 0),
        "a fresh full apply would change the kernel: {r:?}"
    );
}

// ---- generators --------------------------------------------------------------------------------

fn arb_mode() -> impl Strategy<Value = EncapMode> {
    prop_oneof![Just(Always), Just(CrossSubnet), Just(Never)]
}

/// IPv6 VXLAN `Always` is left out: the kernel refuses an IPv6 `onlink` gateway that a
/// non-default route reaches through another device ("Nexthop has invalid gateway or device
/// mismatch"), and a same-subnet node's address is reached through the underlay's connected
/// /64, so such a route cannot be written with the node address as its gateway.
fn arb_mode_v6() -> impl Strategy<Value = EncapMode> {
    prop_oneof![Just(CrossSubnet), Just(Never)]
}

fn arb_next_hop() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        6 => (1u8..4, 20u8..24).prop_map(|(c, d)| IpAddr::V4(Ipv4Addr::new(198, 18, c, d))),
        3 => (1u16..3, 0x20u16..0x23)
            .prop_map(|(s, h)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, s, 0, 0, 0, 0, h))),
        1 => Just(ip("198.18.1.10")),
    ]
}

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        4 => (0u8..6, prop_oneof![3 => Just(26u8), 1 => Just(32)])
            .prop_map(|(i, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(198, 19, i, 0), l).unwrap())),
        2 => (0u16..3).prop_map(|i| IpNet::V6(
            Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0xff, i, 0, 0, 0, 0), 122).unwrap()
        )),
        1 => Just(net("203.0.113.0/24")),
    ]
}

/// No priority (the kernel's default metric), or one; IPv6's 1024 is its default spelt out.
fn arb_priority() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![3 => Just(None), 1 => Just(Some(512)), 1 => Just(Some(1024)), 1 => Just(Some(2048))]
}

#[derive(Clone, Debug)]
enum Update {
    SetRoute(IpNet, Vec<IpAddr>, Option<u32>),
    RemoveRoute(IpNet),
    SetBlocks(Vec<IpNet>),
    SetPools(EncapMode, EncapMode, bool),
}

fn arb_update() -> impl Strategy<Value = Update> {
    prop_oneof![
        10 => (arb_prefix(), prop::collection::vec(arb_next_hop(), 0..3), arb_priority())
            .prop_map(|(p, nhs, m)| Update::SetRoute(p, nhs, m)),
        3 => arb_prefix().prop_map(Update::RemoveRoute),
        1 => prop::collection::vec(arb_prefix(), 0..2).prop_map(Update::SetBlocks),
        1 => (arb_mode(), arb_mode_v6(), any::<bool>()).prop_map(|(a, b, n)| Update::SetPools(a, b, n)),
    ]
}

fn update(p: &mut Planner, u: &Update) {
    match u.clone() {
        Update::SetRoute(prefix, nhs, priority) => p.set_route(prefix, nhs, priority),
        Update::RemoveRoute(prefix) => p.remove_route(prefix),
        Update::SetBlocks(b) => p.set_blocks(b),
        Update::SetPools(a, b, nat) => p.set_pools(pools(a, b, nat)),
    }
}

proptest! {
    // Each case programs a namespace; a few dozen sequences are plenty next to the pure
    // property tests of the planner (`desired_planner.rs`).
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn prop_apply_changes_leaves_the_kernel_as_a_fresh_full_apply(
        (v4, v6, nat) in (arb_mode(), arb_mode_v6(), any::<bool>()),
        routes in prop::collection::btree_map(
            arb_prefix().prop_map(|p| p.trunc()),
            (prop::collection::vec(arb_next_hop(), 1..3), arb_priority()),
            0..8,
        ),
        updates in prop::collection::vec(arb_update(), 1..16),
        batch in 1usize..4,
    ) {
        let ns = namespace();
        let mut f = felix(&ns);
        let mut planner = Planner::new(&inputs_with_priorities(pools(v4, v6, nat), vec![net("198.19.0.0/26")], &routes));
        no_failures(f.apply(planner.state()).expect("apply"));
        // Updates applied `batch` at a time, with the changes of the batch.
        for chunk in updates.chunks(batch) {
            for u in chunk {
                update(&mut planner, u);
            }
            let changes = planner.take_changes();
            no_failures(f.apply_changes(planner.state(), &changes).expect("apply_changes"));
        }
        let want = desired::compute(&planner.inputs());
        prop_assert_eq!(planner.state(), &want);
        assert_kernel_holds(&ns, &f, &want);
    }
}

/// 2,000 blocks of 40 nodes (half through VXLAN): a block moving to another node, to a node never
/// seen before and back, and a withdrawal, each one `apply_changes` with the messages it needs.
#[test]
fn moving_blocks_writes_only_what_changed() {
    let ns = namespace();
    let mut f = felix(&ns);
    let routes: BTreeMap<IpNet, Vec<IpAddr>> = (0..2000u32)
        .map(|i| {
            let p = IpNet::V4(
                Ipv4Net::new(
                    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i * 16),
                    28,
                )
                .unwrap(),
            );
            let n = i % 40;
            (
                p,
                vec![IpAddr::V4(Ipv4Addr::new(
                    198,
                    18,
                    1 + (n % 2) as u8,
                    20 + n as u8,
                ))],
            )
        })
        .collect();
    let mut planner = Planner::new(&inputs(pools(CrossSubnet, Never, false), vec![], &routes));
    no_failures(f.apply(planner.state()).expect("apply"));
    let step = |planner: &mut Planner, f: &mut Felix, what: &str| -> (usize, u64, Changes) {
        let changes = planner.take_changes();
        let w = f.writes();
        let r = no_failures(f.apply_changes(planner.state(), &changes).expect(what));
        (r.ops, f.writes() - w, changes)
    };
    let block = net("198.19.0.16/28"); // on 198.18.2.21: through VXLAN

    planner.set_route(block, [ip("198.18.1.22")], None);
    let (ops, writes, _) = step(&mut planner, &mut f, "to a same-subnet node");
    assert_eq!((ops, writes), (1, 1));

    planner.set_route(block, [ip("198.18.3.99")], None);
    let (ops, writes, c) = step(&mut planner, &mut f, "to a new VXLAN node");
    assert_eq!((ops, writes), (3, 3), "FDB, neighbour, route: {c:?}");

    planner.set_route(block, [ip("198.18.2.21")], None);
    let (ops, writes, _) = step(&mut planner, &mut f, "back");
    assert_eq!(
        (ops, writes),
        (3, 3),
        "route, then the new node's neighbour and FDB entry"
    );

    planner.remove_route(block);
    let (ops, writes, _) = step(&mut planner, &mut f, "withdrawn");
    assert_eq!((ops, writes), (1, 1));

    // Nothing changed: nothing to do.
    let (ops, writes, c) = step(&mut planner, &mut f, "idle");
    assert!(c.is_empty());
    assert_eq!((ops, writes), (0, 0));
    assert_kernel_holds(&ns, &f, planner.state());
}

/// A felix that has not synced yet, or tunnel changes, take the full path: the result is the same.
#[test]
fn apply_changes_falls_back_to_a_full_apply_when_it_must() {
    let ns = namespace();
    let routes: BTreeMap<IpNet, Vec<IpAddr>> = [
        (net("198.19.1.0/26"), vec![ip("198.18.2.20")]),
        (net("2001:db8:ff:1::/122"), vec![ip("2001:db8:2::20")]),
    ]
    .into_iter()
    .collect();
    let mut planner = Planner::new(&inputs(pools(Always, CrossSubnet, true), vec![], &routes));
    let mut f = felix(&ns);
    // Never applied: apply_changes with no changes still does the first sync.
    no_failures(
        f.apply_changes(planner.state(), &Changes::default())
            .unwrap(),
    );
    assert!(ns.has_link(desired::VXLAN_V4) && ns.has_link(desired::VXLAN_V6));
    assert_kernel_holds(&ns, &f, planner.state());
    // VXLAN off for IPv6: its device goes, and the route moves to the underlay.
    planner.set_pools(pools(Always, Never, false));
    let c = planner.take_changes();
    assert!(c.tunnels && c.nat);
    no_failures(f.apply_changes(planner.state(), &c).unwrap());
    assert!(!ns.has_link(desired::VXLAN_V6));
    let tables = ok(ns.exec(&["nft", "list", "tables"]));
    assert!(
        !tables.contains("tortie"),
        "no natOutgoing pool, no table: {tables}"
    );
    assert_kernel_holds(&ns, &f, planner.state());
}

/// An operation the kernel refuses (a foreign route holds the prefix) is reported, and the next
/// `apply_changes`, whatever its own changes, tries its key again.
#[test]
fn refused_keys_are_retried_by_the_next_apply_changes() {
    let ns = namespace();
    let mut f = felix(&ns);
    let mut planner = Planner::new(&inputs(
        pools(CrossSubnet, Never, false),
        vec![],
        &BTreeMap::new(),
    ));
    no_failures(f.apply(planner.state()).expect("apply"));
    ok(ns.ip(&[
        "route",
        "add",
        "198.19.3.0/26",
        "via",
        "198.18.1.1",
        "proto",
        "static",
    ]));
    planner.set_route(net("198.19.3.0/26"), [ip("198.18.1.22")], None);
    let c = planner.take_changes();
    let r = f.apply_changes(planner.state(), &c).expect("apply_changes");
    assert_eq!(r.failures.len(), 1, "{r:?}");
    ok(ns.ip(&["route", "del", "198.19.3.0/26", "proto", "static"]));
    let w = f.writes();
    let r = no_failures(
        f.apply_changes(planner.state(), &Changes::default())
            .expect("retry"),
    );
    assert_eq!((r.ops, f.writes() - w), (1, 1), "{r:?}");
    assert_kernel_holds(&ns, &f, planner.state());
    // Nothing left to retry.
    let r = no_failures(
        f.apply_changes(planner.state(), &Changes::default())
            .unwrap(),
    );
    assert_eq!(r.ops, 0);
}

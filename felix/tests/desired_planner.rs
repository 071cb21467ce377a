//! The incremental planner (`tortie_felix::desired::Planner`): after any sequence of updates its
//! state is exactly `compute` of the final inputs, and the keys it reports as changed cover every
//! difference, so the diff restricted to them is the whole diff.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use tortie_felix::desired::*;

use EncapMode::{Always, CrossSubnet, Never};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Two IPv6 addresses in different /96s with the same VTEP MAC (2001:db8:2::20 and one in
/// 2001:db8:3::/96).
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

fn pool(cidr: &str, ipip: EncapMode, vxlan: EncapMode, nat: bool) -> Pool {
    Pool {
        cidr: net(cidr),
        ipip_mode: ipip,
        vxlan_mode: vxlan,
        nat_outgoing: nat,
        disabled: false,
    }
}

// ---------------------------------------------------------------------------------------------
// generators: small spaces, so that updates hit the same prefixes, remotes and MACs

fn arb_mode() -> impl Strategy<Value = EncapMode> {
    prop_oneof![Just(Always), Just(CrossSubnet), Just(Never)]
}

fn arb_next_hop() -> impl Strategy<Value = IpAddr> {
    let (a, b) = colliding_v6_pair();
    prop_oneof![
        6 => (1u8..3, 1u8..5).prop_map(|(c, d)| IpAddr::V4(Ipv4Addr::new(198, 18, c, d))),
        4 => (1u16..3, 0x1fu16..0x22)
            .prop_map(|(s, h)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, s, 0, 0, 0, 0, h))),
        // A colliding pair of VTEP MACs.
        2 => Just(IpAddr::V6(a)),
        2 => Just(IpAddr::V6(b)),
        1 => Just(ip("198.18.1.10")),
        1 => Just(ip("0.0.0.0")),
    ]
}

/// A BGPFilter `setPriority`, or none: 0 and (for IPv6) 1024 are the kernel's default metric.
fn arb_priority() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some(0)),
        2 => Just(Some(512)),
        1 => Just(Some(1024)),
        1 => Just(Some(2048)),
    ]
}

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        // In the IPIP pool, the VXLAN pool, or outside both; /26 or /32.
        (
            prop_oneof![Just(0u8), Just(1), Just(64), Just(65), Just(200)],
            prop_oneof![Just(26u8), Just(32)]
        )
            .prop_map(|(i, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(198, 19, i, 0), l).unwrap())),
        (0u16..3).prop_map(|i| IpNet::V6(
            Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0xff, i, 0, 0, 0, 0), 122).unwrap()
        )),
        Just(net("0.0.0.0/0")),
    ]
}

fn arb_pools() -> impl Strategy<Value = Vec<Pool>> {
    (
        arb_mode(),
        arb_mode(),
        arb_mode(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(a, b, c, nat, nat6)| {
            vec![
                pool("198.19.0.0/18", a, Never, nat),
                pool("198.19.64.0/18", Never, b, false),
                pool("2001:db8:ff::/48", Never, c, nat6),
            ]
        })
}

#[derive(Clone, Debug)]
enum Update {
    SetRoute(IpNet, Vec<IpAddr>, Option<u32>),
    RemoveRoute(IpNet),
    SetBlocks(Vec<IpNet>),
    SetPools(Vec<Pool>),
    /// Gateways on or off, and our IPv6 address one of a colliding pair or not.
    SetNode {
        gw4: bool,
        gw6: bool,
        own6_collides: bool,
    },
}

fn arb_update() -> impl Strategy<Value = Update> {
    prop_oneof![
        12 => (arb_prefix(), prop::collection::vec(arb_next_hop(), 0..4), arb_priority())
            .prop_map(|(p, nhs, m)| Update::SetRoute(p, nhs, m)),
        4 => arb_prefix().prop_map(Update::RemoveRoute),
        2 => prop::collection::vec(arb_prefix(), 0..3).prop_map(Update::SetBlocks),
        1 => arb_pools().prop_map(Update::SetPools),
        1 => (any::<bool>(), any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(gw4, gw6, own6_collides)| Update::SetNode { gw4, gw6, own6_collides }),
    ]
}

/// The inputs the updates describe, kept as plainly as possible: the model `compute` is run on.
#[derive(Clone, Debug)]
struct Model {
    node: LocalNode,
    pools: Vec<Pool>,
    blocks: Vec<IpNet>,
    routes: BTreeMap<IpNet, (Vec<IpAddr>, Option<u32>)>,
}

impl Model {
    fn inputs(&self) -> Inputs {
        Inputs {
            node: self.node.clone(),
            pools: self.pools.clone(),
            blocks: self.blocks.clone(),
            routes: self
                .routes
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

    fn apply(&mut self, u: &Update, planner: &mut Planner) {
        match u.clone() {
            Update::SetRoute(p, nhs, priority) => {
                self.routes.insert(p.trunc(), (nhs.clone(), priority));
                planner.set_route(p, nhs, priority);
            }
            Update::RemoveRoute(p) => {
                self.routes.remove(&p.trunc());
                planner.remove_route(p);
            }
            Update::SetBlocks(b) => {
                self.blocks = b.clone();
                planner.set_blocks(b);
            }
            Update::SetPools(p) => {
                self.pools = p.clone();
                planner.set_pools(p);
            }
            Update::SetNode {
                gw4,
                gw6,
                own6_collides,
            } => {
                let mut n = node();
                if !gw4 {
                    n.underlay.gateways_v4.clear();
                }
                if !gw6 {
                    n.underlay.gateways_v6.clear();
                }
                if own6_collides {
                    n.ipv6 = Some(Ipv6Net::new(colliding_v6_pair().1, 64).unwrap());
                }
                self.node = n.clone();
                planner.set_node(n);
            }
        }
    }
}

fn arb_start() -> impl Strategy<Value = Model> {
    (
        arb_pools(),
        prop::collection::vec(arb_prefix(), 0..3),
        prop::collection::btree_map(
            arb_prefix().prop_map(|p| p.trunc()),
            (prop::collection::vec(arb_next_hop(), 0..4), arb_priority()),
            0..8,
        ),
    )
        .prop_map(|(pools, blocks, routes)| Model {
            node: node(),
            pools,
            blocks,
            routes,
        })
}

/// `changes` covers every difference between `before` and `after`, and the diff restricted to
/// the changed keys is the full diff.
fn check_changes(before: &DesiredState, after: &DesiredState, changes: &Changes) {
    let all = Changes::between(before, after);
    assert!(
        all.routes.is_subset(&changes.routes),
        "routes {all:?} vs {changes:?}"
    );
    assert!(
        all.neighbours.is_subset(&changes.neighbours),
        "neighbours {all:?} vs {changes:?}"
    );
    assert!(
        all.fdb.is_subset(&changes.fdb),
        "fdb {all:?} vs {changes:?}"
    );
    assert!(!all.tunnels || changes.tunnels);
    assert!(!all.nat || changes.nat);
    let restricted = diff(
        &before.fib.restricted(changes),
        &after.fib.restricted(changes),
    );
    assert_eq!(restricted, diff(&before.fib, &after.fib));
    let mut k = before.fib.clone();
    k.apply_all(&restricted).unwrap();
    assert_eq!(k, after.fib);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn prop_planner_updates_give_compute_of_the_final_inputs(
        start in arb_start(),
        updates in prop::collection::vec(arb_update(), 1..24),
    ) {
        let mut model = start;
        let mut planner = Planner::new(&model.inputs());
        prop_assert_eq!(planner.state(), &compute(&model.inputs()));
        prop_assert!(planner.take_changes().is_empty());
        for u in &updates {
            let before = planner.state().clone();
            model.apply(u, &mut planner);
            let want = compute(&model.inputs());
            prop_assert_eq!(planner.state(), &want, "after {:?}", u);
            let changes = planner.take_changes();
            check_changes(&before, &want, &changes);
        }
        // The planner's own view of its inputs gives its state too.
        prop_assert_eq!(&compute(&planner.inputs()), planner.state());
    }

    #[test]
    fn prop_changes_accumulate_over_several_updates(
        start in arb_start(),
        updates in prop::collection::vec(arb_update(), 1..12),
    ) {
        let mut model = start;
        let mut planner = Planner::new(&model.inputs());
        let before = planner.state().clone();
        for u in &updates {
            model.apply(u, &mut planner);
        }
        let changes = planner.take_changes();
        check_changes(&before, planner.state(), &changes);
    }
}

// ---------------------------------------------------------------------------------------------
// examples

fn vxlan_inputs(n: u32, nodes: u32) -> Inputs {
    Inputs {
        node: node(),
        pools: vec![pool("10.0.0.0/8", Never, CrossSubnet, false)],
        blocks: vec![],
        routes: (0..n)
            .map(|i| BestRoute {
                prefix: IpNet::V4(
                    Ipv4Net::new(
                        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i * 64),
                        26,
                    )
                    .unwrap(),
                ),
                // Half the nodes in our subnet (direct), half in another (VXLAN).
                next_hops: vec![IpAddr::V4(Ipv4Addr::new(
                    198,
                    18,
                    1 + (i % nodes) as u8 % 2,
                    20 + (i % nodes) as u8,
                ))],
                priority: None,
            })
            .collect(),
        vxlan: VxlanSettings::default(),
    }
}

#[test]
fn one_moved_block_changes_one_route_and_no_entry() {
    let mut p = Planner::new(&vxlan_inputs(10_000, 50));
    let prefix = net("10.0.1.0/26"); // block 4, on a node in the other subnet
    let before = p.route(&prefix).unwrap().to_vec();
    p.set_route(prefix, [ip("198.18.2.21")], None);
    let c = p.take_changes();
    assert_eq!(c.routes, [prefix].into_iter().collect::<BTreeSet<_>>());
    assert!(
        c.neighbours.is_empty() && c.fdb.is_empty() && !c.tunnels && !c.nat,
        "{c:?}"
    );
    // Setting the same route again changes nothing.
    p.set_route(prefix, [ip("198.18.2.21")], None);
    assert!(p.take_changes().is_empty());
    p.set_route(prefix, before, None);
    assert_eq!(p.take_changes().routes.len(), 1);
}

#[test]
fn first_and_last_route_to_a_vxlan_node_add_and_remove_its_entries() {
    let mut p = Planner::new(&vxlan_inputs(100, 10));
    let new_node = ip("198.18.7.7");
    p.set_route(net("10.200.0.0/26"), [new_node], None);
    let c = p.take_changes();
    assert_eq!(c.routes.len(), 1);
    assert_eq!(
        c.neighbours,
        [(Device::Vxlan, new_node)].into_iter().collect()
    );
    assert_eq!(
        c.fdb,
        [(Device::Vxlan, vtep_mac(new_node))].into_iter().collect()
    );
    // A second block on the same node: only its route.
    p.set_route(net("10.200.0.64/26"), [new_node], None);
    let c = p.take_changes();
    assert_eq!((c.routes.len(), c.neighbours.len(), c.fdb.len()), (1, 0, 0));
    p.remove_route(net("10.200.0.0/26"));
    assert_eq!(p.take_changes().neighbours.len(), 0);
    // The last one: the entries go.
    p.remove_route(net("10.200.0.64/26"));
    let c = p.take_changes();
    assert_eq!((c.routes.len(), c.neighbours.len(), c.fdb.len()), (1, 1, 1));
    assert!(
        p.state()
            .fib
            .neighbour_of(Device::Vxlan, new_node)
            .is_none()
    );
    assert_eq!(p.state(), &compute(&p.inputs()));
}

#[test]
fn a_collision_that_appears_and_goes_moves_the_loser_s_routes() {
    let (a, b) = colliding_v6_pair();
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let mut i = vxlan_inputs(0, 1);
    i.pools = vec![pool("2001:db8:ff::/48", Never, Always, false)];
    i.routes = vec![BestRoute {
        prefix: net("2001:db8:ff:6::/122"),
        next_hops: vec![IpAddr::V6(hi)],
        priority: None,
    }];
    let mut p = Planner::new(&i);
    assert!(
        p.state()
            .fib
            .routes
            .contains_key(&net("2001:db8:ff:6::/122"))
    );
    // The lower address appears: it keeps the MAC, the route via the higher one goes.
    p.set_route(net("2001:db8:ff:5::/122"), [IpAddr::V6(lo)], None);
    let c = p.take_changes();
    assert_eq!(c.routes.len(), 2, "{c:?}");
    assert!(
        !p.state()
            .fib
            .routes
            .contains_key(&net("2001:db8:ff:6::/122"))
    );
    assert!(p.state().problems.contains(&Problem::VtepMacCollision {
        mac: vtep_mac(IpAddr::V6(lo)),
        kept: IpAddr::V6(lo),
        dropped: IpAddr::V6(hi),
    }));
    assert_eq!(p.state(), &compute(&p.inputs()));
    // It goes again: the route via the higher one comes back, the problem goes.
    p.remove_route(net("2001:db8:ff:5::/122"));
    assert!(
        p.state()
            .fib
            .routes
            .contains_key(&net("2001:db8:ff:6::/122"))
    );
    assert!(p.state().problems.is_empty(), "{:?}", p.state().problems);
    assert_eq!(p.state(), &compute(&p.inputs()));
}

#[test]
fn pools_change_reports_tunnels_nat_and_every_changed_route() {
    let mut p = Planner::new(&vxlan_inputs(200, 10));
    let before = p.state().clone();
    p.set_pools(vec![pool("10.0.0.0/8", Never, Never, true)]);
    let c = p.take_changes();
    assert!(c.tunnels && c.nat);
    assert_eq!(c, Changes::between(&before, p.state()));
    // Half the routes were through VXLAN, and all its entries go.
    assert_eq!(c.routes.len(), 100);
    assert!(p.state().fib.neighbours.is_empty() && !c.neighbours.is_empty());
}

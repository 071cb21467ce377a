//! The decision process, one step per test: speaker A (AS 64512, 198.18.0.1) and two or three
//! peers announcing the same prefix with crafted attributes. The winner of each test is made
//! worse than the others on every later step, so only the step under test can pick it.

use crate::sim::{NbrCfg, Net, Sid, SpeakerCfg};
use crate::{AS, addr, attrs, ip, rid};
use std::net::{IpAddr, Ipv4Addr};
use tortie_bgp::wire::{AsPath, AsSegment, Attributes, Origin, SegmentKind};

const P: &str = "198.19.100.0/24";

/// A neighbour of A: AS, address 198.18.0.`host`, router id, what it originates for P.
struct Nb {
    asn: u32,
    host: u8,
    id: Ipv4Addr,
    attrs: Option<Attributes>,
}

fn nb(asn: u32, host: u8, id: Ipv4Addr, attrs: Option<Attributes>) -> Nb {
    Nb {
        asn,
        host,
        id,
        attrs,
    }
}

/// A with `nbs`, every session up and P announced by each; `tune` adjusts A first.
fn lab(nbs: &[Nb], tune: impl FnOnce(&mut SpeakerCfg)) -> (Net, Sid, Vec<Sid>) {
    let mut net = Net::new();
    let mut a_cfg = SpeakerCfg::new("A", AS, ip(1));
    tune(&mut a_cfg);
    let a = net.add(a_cfg);
    let ids: Vec<Sid> = nbs
        .iter()
        .map(|n| {
            let mut c = SpeakerCfg::new(&format!("n{}", n.host), n.asn, ip(n.host));
            c.router_id = n.id;
            let s = net.add(c);
            net.peer(a, s);
            net.originate_with(s, P, n.attrs.clone());
            s
        })
        .collect();
    net.run_until_quiet();
    for &s in &ids {
        assert_eq!(
            net.rib_paths(a, P)
                .iter()
                .filter(|p| p.from == Some(net.addr(s)))
                .count(),
            1
        );
    }
    (net, a, ids)
}

fn from(net: &Net, s: Sid) -> Option<IpAddr> {
    Some(net.addr(s))
}

fn as_path(segs: &[(SegmentKind, &[u32])]) -> AsPath {
    AsPath {
        segments: segs
            .iter()
            .map(|(kind, asns)| AsSegment {
                kind: *kind,
                asns: asns.to_vec(),
            })
            .collect(),
    }
}

#[test]
fn decision_highest_local_pref_wins() {
    // I1: LOCAL_PREF 200 but the longest AS_PATH, iBGP, highest router id and address.
    let (net, a, s) = lab(
        &[
            nb(
                AS,
                9,
                rid(9),
                attrs(|a| {
                    a.local_pref = Some(200);
                    a.as_path = Some(AsPath::sequence(vec![65050, 65051]));
                }),
            ),
            nb(AS, 2, rid(2), attrs(|_| {})),
            nb(65001, 3, rid(3), attrs(|_| {})),
        ],
        |_| {},
    );
    assert_eq!(net.best_from(a, P), vec![from(&net, s[0])]);
    assert_eq!(net.fib_route(a, P).unwrap().next_hops, vec![addr(9)]);
}

#[test]
fn decision_shortest_as_path_wins_and_an_as_set_counts_one() {
    // At A: E1 [65001 {65010 65011 65012}] = 2, E2 [65002 65020] = 2, E3 [65003 65030 65031] = 3.
    let set = as_path(&[(SegmentKind::Set, &[65010, 65011, 65012])]);
    let (net, a, s) = lab(
        &[
            nb(65001, 9, rid(9), attrs(|a| a.as_path = Some(set))),
            nb(
                65002,
                5,
                rid(5),
                attrs(|a| a.as_path = Some(AsPath::sequence(vec![65020]))),
            ),
            nb(
                65003,
                2,
                rid(2),
                attrs(|a| a.as_path = Some(AsPath::sequence(vec![65030, 65031]))),
            ),
        ],
        |_| {},
    );
    let e1 = net
        .rib_paths(a, P)
        .into_iter()
        .find(|p| p.from == from(&net, s[0]))
        .unwrap();
    assert_eq!(e1.attrs.attrs.as_path.as_ref().unwrap().route_len(), 2);
    // E1 and E2 tie (E2 first: lower router id); E3 is out although its ids are the lowest.
    assert_eq!(
        net.best_from(a, P),
        vec![from(&net, s[1]), from(&net, s[0])]
    );
}

#[test]
fn decision_lowest_origin_wins() {
    let (net, a, s) = lab(
        &[
            nb(65001, 9, rid(9), attrs(|a| a.origin = Some(Origin::Igp))),
            nb(65002, 3, rid(3), attrs(|a| a.origin = Some(Origin::Egp))),
            nb(
                65003,
                2,
                rid(2),
                attrs(|a| a.origin = Some(Origin::Incomplete)),
            ),
        ],
        |_| {},
    );
    assert_eq!(net.best_from(a, P), vec![from(&net, s[0])]);
}

#[test]
fn decision_lowest_med_wins_within_the_same_neighbouring_as() {
    let (net, a, s) = lab(
        &[
            nb(65001, 2, rid(2), attrs(|a| a.med = Some(50))),
            nb(65001, 9, rid(9), attrs(|a| a.med = Some(10))),
        ],
        |_| {},
    );
    assert_eq!(net.best_from(a, P), vec![from(&net, s[1])]);
}

#[test]
fn decision_med_is_not_compared_between_different_neighbouring_ases() {
    // E2 (AS 65002) has the lowest MED of all, but MED only ranks E1 against E3 (both AS
    // 65001): E3 goes, E1 and E2 stay, and the router id makes E1 the best.
    let (net, a, s) = lab(
        &[
            nb(65001, 2, rid(2), attrs(|a| a.med = Some(50))),
            nb(65002, 3, rid(3), attrs(|a| a.med = Some(10))),
            nb(65001, 4, rid(4), attrs(|a| a.med = Some(60))),
        ],
        |_| {},
    );
    assert_eq!(
        net.best_from(a, P),
        vec![from(&net, s[0]), from(&net, s[1])]
    );
}

#[test]
fn decision_missing_med_counts_as_the_lowest() {
    // RFC 4271 section 9.1.2.2 (c): a missing MED is the lowest possible value.
    let (net, a, s) = lab(
        &[
            nb(65001, 2, rid(2), attrs(|a| a.med = Some(1))),
            nb(65001, 9, rid(9), attrs(|a| a.med = None)),
        ],
        |_| {},
    );
    assert_eq!(net.best_from(a, P), vec![from(&net, s[1])]);
}

#[test]
fn decision_ebgp_wins_over_ibgp() {
    // Both paths one AS long (the iBGP one carries 65099 from where it came), the iBGP peer
    // has the lower router id and address.
    let (net, a, s) = lab(
        &[
            nb(
                AS,
                2,
                rid(2),
                attrs(|a| a.as_path = Some(AsPath::sequence(vec![65099]))),
            ),
            nb(65001, 9, rid(9), attrs(|_| {})),
        ],
        |_| {},
    );
    assert_eq!(net.best_from(a, P), vec![from(&net, s[1])]);
}

#[test]
fn decision_lowest_igp_cost_wins() {
    let (mut net, a, s) = lab(
        &[
            nb(AS, 2, rid(2), attrs(|_| {})),
            nb(AS, 9, rid(9), attrs(|_| {})),
        ],
        |_| {},
    );
    assert_eq!(
        net.best_from(a, P).len(),
        2,
        "equal so far: one multipath group"
    );
    net.set_igp_cost(a, |nh| Some(if nh == addr(2) { 20 } else { 10 }));
    net.run_until_quiet();
    assert_eq!(net.best_from(a, P), vec![from(&net, s[1])]);
    assert_eq!(net.fib_route(a, P).unwrap().next_hops, vec![addr(9)]);
}

#[test]
fn decision_unreachable_next_hop_is_excluded() {
    let (mut net, a, s) = lab(
        &[
            nb(AS, 2, rid(2), attrs(|a| a.local_pref = Some(300))),
            nb(AS, 9, rid(9), attrs(|_| {})),
        ],
        |_| {},
    );
    assert_eq!(net.best_from(a, P), vec![from(&net, s[0])]);
    net.set_igp_cost(a, |nh| (nh != addr(2)).then_some(0));
    net.run_until_quiet();
    assert_eq!(net.best_from(a, P), vec![from(&net, s[1])]);
    assert_eq!(
        net.rib_paths(a, P).len(),
        2,
        "the path is kept, just not used"
    );
    net.set_igp_cost(a, |_| None);
    net.run_until_quiet();
    assert!(net.best(a, P).is_empty());
    assert!(net.fib_route(a, P).is_none());
}

#[test]
fn decision_lowest_router_id_breaks_the_tie() {
    // n2 has the lower address, n3 the lower router id.
    let (net, a, s) = lab(
        &[
            nb(AS, 2, rid(9), attrs(|_| {})),
            nb(AS, 3, rid(1), attrs(|_| {})),
        ],
        |_| {},
    );
    assert_eq!(
        net.best_from(a, P),
        vec![from(&net, s[1]), from(&net, s[0])]
    );
}

#[test]
fn decision_originator_id_of_a_reflected_route_stands_in_for_the_router_id() {
    // A hears P from reflector R (router id .1, the lowest) reflecting client C (router id
    // .200), and from D directly (router id .100). The reflected path ranks by C's id: D wins.
    let mut net = Net::new();
    let a = net.add(SpeakerCfg::new("A", AS, ip(1)));
    let mut rc = SpeakerCfg::new("R", AS, ip(2));
    rc.router_id = rid(1);
    rc.cluster_id = Some(rid(250));
    let r = net.add(rc);
    let mut cc = SpeakerCfg::new("C", AS, ip(3));
    cc.router_id = rid(200);
    let c = net.add(cc);
    let mut dc = SpeakerCfg::new("D", AS, ip(4));
    dc.router_id = rid(100);
    let d = net.add(dc);
    let client = NbrCfg {
        rr_client: true,
        ..NbrCfg::default()
    };
    net.peer_with(r, a, client.clone(), NbrCfg::default());
    net.peer_with(r, c, client, NbrCfg::default());
    net.peer(a, d);
    net.originate(c, P);
    net.originate(d, P);
    net.run_until_quiet();
    let paths = net.rib_paths(a, P);
    let via_r = paths.iter().find(|p| p.from == from(&net, r)).unwrap();
    assert_eq!(via_r.attrs.attrs.originator_id, Some(rid(200)));
    assert_eq!(net.best_from(a, P), vec![from(&net, d), from(&net, r)]);
}

#[test]
fn decision_shortest_cluster_list_wins() {
    // C (router id .200) is a client of R1 (cluster .1) and of R3 (cluster .3); R3 is a
    // client of R2 (cluster .2); A is a client of R1 and R2. A gets C's route via R1 with
    // CLUSTER_LIST [.1] and via R2 with [.2 .3]: same ORIGINATOR_ID, so the shorter list wins
    // although R2's address is the lower one.
    let mut net = Net::new();
    let a = net.add(SpeakerCfg::new("A", AS, ip(1)));
    let rr = |net: &mut Net, name: &str, host: u8, cluster: u8| {
        let mut c = SpeakerCfg::new(name, AS, ip(host));
        c.cluster_id = Some(Ipv4Addr::new(198, 18, 254, cluster));
        net.add(c)
    };
    let r1 = rr(&mut net, "R1", 30, 1);
    let r2 = rr(&mut net, "R2", 20, 2);
    let r3 = rr(&mut net, "R3", 40, 3);
    let mut cc = SpeakerCfg::new("C", AS, ip(50));
    cc.router_id = rid(200);
    let c = net.add(cc);
    let client = NbrCfg {
        rr_client: true,
        ..NbrCfg::default()
    };
    for (rr, cl) in [(r1, c), (r3, c), (r2, r3), (r1, a), (r2, a)] {
        net.peer_with(rr, cl, client.clone(), NbrCfg::default());
    }
    net.originate(c, P);
    net.run_until_quiet();
    let paths = net.rib_paths(a, P);
    let list = |s: Sid| {
        let p = paths.iter().find(|p| p.from == from(&net, s)).unwrap();
        assert_eq!(p.attrs.attrs.originator_id, Some(rid(200)));
        p.attrs.attrs.cluster_list.len()
    };
    assert_eq!((list(r1), list(r2)), (1, 2));
    assert_eq!(net.best_from(a, P)[0], from(&net, r1));
}

#[test]
fn decision_lowest_peer_address_breaks_the_last_tie() {
    // Two eBGP neighbours in different ASes with the same router id (allowed between ASes).
    let (net, a, s) = lab(
        &[
            nb(65001, 5, rid(7), attrs(|_| {})),
            nb(65002, 4, rid(7), attrs(|_| {})),
        ],
        |_| {},
    );
    assert_eq!(
        net.best_from(a, P),
        vec![from(&net, s[1]), from(&net, s[0])]
    );
}

#[test]
fn decision_ecmp_group_is_every_path_equal_down_to_the_igp_cost() {
    let (mut net, a, s) = lab(
        &[
            nb(AS, 2, rid(4), attrs(|_| {})),
            nb(AS, 3, rid(3), attrs(|_| {})),
            nb(AS, 4, rid(2), attrs(|_| {})),
            nb(AS, 5, rid(1), attrs(|_| {})),
        ],
        |_| {},
    );
    net.set_igp_cost(a, |nh| Some(if nh == addr(5) { 5 } else { 1 }));
    net.run_until_quiet();
    // n5 (cheapest router id) is out on IGP cost; the rest in router id order.
    let want: Vec<_> = [s[2], s[1], s[0]].iter().map(|&x| from(&net, x)).collect();
    assert_eq!(net.best_from(a, P), want);
    assert_eq!(
        net.fib_route(a, P).unwrap().next_hops,
        vec![addr(4), addr(3), addr(2)]
    );
}

#[test]
fn decision_ecmp_group_is_bounded_by_max_ecmp() {
    let (net, a, s) = lab(
        &[
            nb(AS, 2, rid(3), attrs(|_| {})),
            nb(AS, 3, rid(2), attrs(|_| {})),
            nb(AS, 4, rid(1), attrs(|_| {})),
        ],
        |c| c.max_ecmp = 2,
    );
    assert_eq!(
        net.best_from(a, P),
        vec![from(&net, s[2]), from(&net, s[1])]
    );
    assert_eq!(
        net.fib_route(a, P).unwrap().next_hops,
        vec![addr(4), addr(3)]
    );
    assert_eq!(net.rib_paths(a, P).len(), 3);
}

#[test]
fn decision_local_route_wins_over_learned_ones() {
    let (mut net, a, _) = lab(
        &[nb(AS, 2, rid(2), attrs(|a| a.local_pref = Some(500)))],
        |_| {},
    );
    net.originate(a, P);
    net.run_until_quiet();
    assert_eq!(net.best_from(a, P), vec![None]);
    assert!(net.fib_route(a, P).unwrap().local);
}

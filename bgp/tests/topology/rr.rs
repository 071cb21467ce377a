//! Route reflection (RFC 4456): two reflectors, six clients, no client-client sessions.

use crate::sim::{NbrCfg, Net, Sid, SpeakerCfg};
use crate::{AS, addr, attrs, block, ip};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tortie_bgp::fsm::State;
use tortie_bgp::wire::{Nlri, Update};

const CLUSTER_1: Ipv4Addr = Ipv4Addr::new(198, 18, 254, 1);
const CLUSTER_2: Ipv4Addr = Ipv4Addr::new(198, 18, 254, 2);

struct Rr {
    net: Net,
    rrs: [Sid; 2],
    clients: Vec<Sid>,
    clusters: [Ipv4Addr; 2],
}

/// RR1 198.18.0.1 and RR2 198.18.0.2 (plain iBGP to each other), clients 198.18.0.11..16
/// each peered with both reflectors; client `i` originates block `i`.
fn topology(same_cluster: bool) -> Rr {
    let mut net = Net::new();
    let clusters = [CLUSTER_1, if same_cluster { CLUSTER_1 } else { CLUSTER_2 }];
    let rrs = [0, 1].map(|i| {
        let mut c = SpeakerCfg::new(&format!("rr{}", i + 1), AS, ip(i as u8 + 1));
        c.cluster_id = Some(clusters[i]);
        net.add(c)
    });
    let clients: Vec<Sid> = (0..6)
        .map(|i| net.add(SpeakerCfg::new(&format!("client{i}"), AS, ip(11 + i as u8))))
        .collect();
    net.peer(rrs[0], rrs[1]);
    let client = NbrCfg {
        rr_client: true,
        ..NbrCfg::default()
    };
    for &c in &clients {
        for &r in &rrs {
            net.peer_with(r, c, client.clone(), NbrCfg::default());
        }
    }
    for (i, &c) in clients.iter().enumerate() {
        net.originate(c, &block(i));
    }
    net.run_until_quiet();
    Rr {
        net,
        rrs,
        clients,
        clusters,
    }
}

fn assert_every_client_has_every_block(t: &Rr) {
    let net = &t.net;
    for (i, &x) in t.clients.iter().enumerate() {
        for (j, &y) in t.clients.iter().enumerate() {
            if i == j {
                continue;
            }
            let b = block(j);
            let hops = net.best(x, &b);
            assert!(!hops.is_empty(), "{} lacks {b}", net.name(x));
            assert!(
                hops.iter().all(|h| *h == net.addr(y)),
                "{}: {b} via {hops:?}",
                net.name(x)
            );
            let fib = net.fib_route(x, &b).expect("in the FIB");
            assert!(fib.next_hops.iter().all(|h| *h == net.addr(y)));
        }
        assert_eq!(net.fib(x).len(), t.clients.len(), "{}", net.name(x));
    }
}

fn rr_every_client_learns_every_other_clients_block(same: bool) {
    let t = topology(same);
    for &r in &t.rrs {
        for &c in &t.clients {
            assert_eq!(t.net.state(r, c), State::Established);
        }
    }
    assert_every_client_has_every_block(&t);
}

fn rr_sets_originator_id_and_cluster_list(same: bool) {
    let t = topology(same);
    let net = &t.net;
    for (i, &x) in t.clients.iter().enumerate() {
        for (j, &y) in t.clients.iter().enumerate() {
            if i == j {
                continue;
            }
            for (k, &r) in t.rrs.iter().enumerate() {
                let path = net
                    .rib_paths(x, &block(j))
                    .into_iter()
                    .find(|p| p.from == Some(net.addr(r)))
                    .unwrap_or_else(|| panic!("{} has no path via {}", net.name(x), net.name(r)));
                let a = &path.attrs.attrs;
                assert_eq!(a.originator_id, Some(net.router_id(y)));
                assert_eq!(a.cluster_list, vec![t.clusters[k]]);
                // iBGP reflection keeps the originator's next hop.
                assert_eq!(path.attrs.next_hop, net.addr(y));
            }
        }
    }
}

fn rr_each_client_gets_a_path_via_both_reflectors(same: bool) {
    let t = topology(same);
    let net = &t.net;
    for (i, &x) in t.clients.iter().enumerate() {
        for j in (0..t.clients.len()).filter(|&j| j != i) {
            let paths = net.rib_paths(x, &block(j));
            let from: BTreeSet<Option<IpAddr>> = paths.iter().map(|p| p.from).collect();
            let want: BTreeSet<Option<IpAddr>> = t.rrs.iter().map(|&r| Some(net.addr(r))).collect();
            assert_eq!(from, want);
            // Equal down to the peer address: both in the multipath group, and the best is
            // the one from the lower address (RR1).
            assert!(paths.iter().all(|p| p.multipath));
            assert_eq!(net.best_from(x, &block(j))[0], Some(net.addr(t.rrs[0])));
        }
    }
}

fn rr_client_never_receives_its_own_route(same: bool) {
    let t = topology(same);
    let net = &t.net;
    for (i, &c) in t.clients.iter().enumerate() {
        for &r in &t.rrs {
            let own = block(i);
            assert!(
                !net.announced(r, c)
                    .iter()
                    .any(|(p, _)| p.to_string() == own),
                "{} sent {} its own {own}",
                net.name(r),
                net.name(c)
            );
        }
        let paths = net.rib_paths(c, &block(i));
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].from, None);
    }
}

#[test]
fn rr_drops_a_route_carrying_its_own_cluster_id() {
    let t = topology(true);
    let net = &t.net;
    let [rr1, rr2] = t.rrs;
    for (i, &c) in t.clients.iter().enumerate() {
        // RR1 did reflect the client's route to RR2 ...
        let sent = net.announced(rr1, rr2);
        let (_, a) = sent
            .iter()
            .find(|(p, _)| p.to_string() == block(i))
            .expect("reflected to the other reflector");
        assert_eq!(a.cluster_list, vec![CLUSTER_1]);
        // ... and RR2, in the same cluster, dropped it: only the client's own path is left.
        let paths = net.rib_paths(rr2, &block(i));
        let from: Vec<_> = paths.iter().map(|p| p.from).collect();
        assert_eq!(from, vec![Some(net.addr(c))]);
    }
}

#[test]
fn rr_with_another_cluster_id_keeps_the_reflected_path_but_prefers_the_shorter_cluster_list() {
    let t = topology(false);
    let net = &t.net;
    let [rr1, rr2] = t.rrs;
    for (i, &c) in t.clients.iter().enumerate() {
        let paths = net.rib_paths(rr2, &block(i));
        assert_eq!(paths.len(), 2);
        // Same ORIGINATOR_ID (the client), so the shorter CLUSTER_LIST (none) wins, though
        // RR1's address is lower than the client's.
        assert!(paths[0].best);
        assert_eq!(paths[0].from, Some(net.addr(c)));
        assert_eq!(paths[1].from, Some(net.addr(rr1)));
        assert_eq!(paths[1].attrs.attrs.cluster_list, vec![CLUSTER_1]);
        // Equal down to the IGP cost: in the multipath group, ranked after the best.
        assert!(paths[1].multipath);
    }
}

#[test]
fn rr_client_drops_a_reflected_route_with_its_own_originator_id() {
    let mut t = topology(true);
    let (rr1, c0, c1) = (t.rrs[0], t.clients[0], t.clients[1]);
    let reflected = |originator: Ipv4Addr, prefix: &str| Update {
        attrs: attrs(|a| {
            a.next_hop = Some(ip(12));
            a.local_pref = Some(100);
            a.originator_id = Some(originator);
            a.cluster_list = vec![CLUSTER_1];
        })
        .unwrap(),
        nlri: vec![Nlri::new(prefix.parse().unwrap())],
        ..Update::default()
    };
    let own = t.net.router_id(c0);
    let other = t.net.router_id(c1);
    t.net.send_raw(
        rr1,
        c0,
        &[
            reflected(own, "198.19.200.0/24"),
            reflected(other, "198.19.201.0/24"),
        ],
    );
    t.net.run_until_quiet();
    assert!(t.net.rib_paths(c0, "198.19.200.0/24").is_empty());
    assert_eq!(t.net.best(c0, "198.19.201.0/24"), vec![addr(12)]);
    assert_eq!(t.net.state(c0, rr1), State::Established);
}

fn rr_losing_one_reflector_keeps_every_client_converged_via_the_other(same: bool) {
    let mut t = topology(same);
    let before: Vec<usize> = t
        .clients
        .iter()
        .map(|&c| (0..6).map(|j| t.net.fib_history(c, &block(j)).len()).sum())
        .collect();
    let [rr1, rr2] = t.rrs;
    t.net.kill(rr1);
    t.net.advance(Duration::from_secs(10));
    assert_every_client_has_every_block(&t);
    let net = &t.net;
    for (k, &x) in t.clients.iter().enumerate() {
        assert_ne!(net.state(x, rr1), State::Established);
        for j in (0..6).filter(|&j| j != k) {
            assert_eq!(net.best_from(x, &block(j)), vec![Some(net.addr(rr2))]);
            // The prefix never left the FIB on the way.
            assert!(net.fib_history(x, &block(j)).iter().all(Option::is_some));
        }
        let after: usize = (0..6).map(|j| net.fib_history(x, &block(j)).len()).sum();
        assert!(after >= before[k]);
    }
}

#[test]
fn rr_client_cut_off_from_one_reflector_stays_converged_via_the_other() {
    let mut t = topology(true);
    let (rr1, rr2, c0) = (t.rrs[0], t.rrs[1], t.clients[0]);
    t.net.link_down(rr1, c0);
    // Nothing notices until the hold timer (90 s) expires.
    t.net.advance(Duration::from_secs(60));
    assert_eq!(t.net.state(c0, rr1), State::Established);
    t.net.advance(Duration::from_secs(60));
    assert_ne!(t.net.state(c0, rr1), State::Established);
    assert_ne!(t.net.state(rr1, c0), State::Established);
    assert_every_client_has_every_block(&t);
    for j in 1..6 {
        assert_eq!(t.net.best_from(c0, &block(j)), vec![Some(t.net.addr(rr2))]);
    }
    // Block 0 is still reachable everywhere: RR2 still reflects it.
    for &x in &t.clients[1..] {
        assert_eq!(t.net.best(x, &block(0))[0], t.net.addr(c0));
    }
    t.net.link_up(rr1, c0);
    t.net.advance(Duration::from_secs(120));
    assert_eq!(t.net.state(c0, rr1), State::Established);
    assert_eq!(t.net.rib_paths(c0, &block(1)).len(), 2);
}

#[test]
fn rr_is_quiet_once_converged() {
    let mut t = topology(true);
    t.net.clear_wire();
    t.net.advance(Duration::from_secs(300));
    assert!(t.net.wire().iter().all(|m| m.kind == 4), "only KEEPALIVEs");
}

/// Two reflectors hand a client two paths with the same next hop (the originator). The
/// dataplane should get that next hop once, not one entry per path.
#[test]
fn rr_two_reflected_paths_give_one_fib_next_hop() {
    let t = topology(true);
    let net = &t.net;
    for (i, &x) in t.clients.iter().enumerate() {
        for (j, &y) in t.clients.iter().enumerate() {
            if i != j {
                assert_eq!(
                    net.fib_route(x, &block(j)).unwrap().next_hops,
                    vec![net.addr(y)]
                );
            }
        }
    }
}

/// The test bodies above that take `same: bool`, run with both reflectors in one cluster and
/// with a cluster each.
macro_rules! variants {
    ($($name:ident),* $(,)?) => {
        mod same_cluster {
            $( #[test] fn $name() { super::$name(true) } )*
        }
        mod different_clusters {
            $(
                #[test]
                fn $name() { super::$name(false) }
            )*
        }
    };
}

variants!(
    rr_every_client_learns_every_other_clients_block,
    rr_sets_originator_id_and_cluster_list,
    rr_each_client_gets_a_path_via_both_reflectors,
    rr_client_never_receives_its_own_route,
    rr_losing_one_reflector_keeps_every_client_converged_via_the_other,
);

/// The smallest case of what was once a livelock: RR1 (cluster .1) and RR2 (cluster .2) with a
/// plain iBGP session, one client of both announcing one prefix. Each reflector holds the
/// client's path and the other reflector's reflected copy, equal down to the IGP cost, so the
/// copy sits in the multipath group. An identical re-advertisement must change nothing
/// (RFC 4271 section 9), or the reflectors echo the UPDATE to each other forever.
#[test]
fn rr_two_reflectors_with_different_cluster_ids_settle() {
    let mut net = Net::new();
    let mut c = SpeakerCfg::new("rr1", AS, ip(1));
    c.cluster_id = Some(CLUSTER_1);
    let r1 = net.add(c);
    let mut c = SpeakerCfg::new("rr2", AS, ip(2));
    c.cluster_id = Some(CLUSTER_2);
    let r2 = net.add(c);
    let c0 = net.add(SpeakerCfg::new("client", AS, ip(11)));
    net.peer(r1, r2);
    let client = NbrCfg {
        rr_client: true,
        ..NbrCfg::default()
    };
    net.peer_with(r1, c0, client.clone(), NbrCfg::default());
    net.peer_with(r2, c0, client, NbrCfg::default());
    net.originate(c0, &block(0));
    net.run_events(2_000);
    let updates_r1_r2 = net.updates(r1, r2).len();
    // Route + End-of-RIB each way would be all; the loop makes it grow without end.
    assert!(
        updates_r1_r2 <= 3,
        "RR1 sent RR2 {updates_r1_r2} UPDATEs in {:?}",
        net.elapsed()
    );
    net.run_until_quiet();
}

#[test]
fn rr_withdrawal_reaches_every_client() {
    let mut t = topology(true);
    t.net.withdraw(t.clients[3], &block(3));
    t.net.run_until_quiet();
    for &x in t.rrs.iter().chain(&t.clients) {
        assert!(
            t.net.rib_paths(x, &block(3)).is_empty(),
            "{}",
            t.net.name(x)
        );
        assert!(t.net.fib_route(x, &block(3)).is_none());
    }
}

/// Two clients announce the same (anycast) prefix. Without ADD-PATH a third client hears only
/// the reflector's best path; with ADD-PATH (RFC 7911) the reflector sends its whole multipath
/// group, so the client builds the ECMP group of both origins.
#[test]
fn rr_add_path_passes_every_equal_path_to_clients() {
    const ANY: &str = "198.19.250.0/24";
    let mut net = Net::new();
    let mut c = SpeakerCfg::new("rr", AS, ip(1));
    c.cluster_id = Some(CLUSTER_1);
    let rr = net.add(c);
    let o1 = net.add(SpeakerCfg::new("origin1", AS, ip(11)));
    let o2 = net.add(SpeakerCfg::new("origin2", AS, ip(12)));
    let plain = net.add(SpeakerCfg::new("plain", AS, ip(13)));
    let ap = net.add(SpeakerCfg::new("addpath", AS, ip(14)));
    let client = NbrCfg {
        rr_client: true,
        ..NbrCfg::default()
    };
    for c in [o1, o2, plain] {
        net.peer_with(rr, c, client.clone(), NbrCfg::default());
    }
    let with_add_path = NbrCfg {
        add_path: true,
        ..NbrCfg::default()
    };
    let rr_side = NbrCfg {
        add_path: true,
        ..client
    };
    net.peer_with(rr, ap, rr_side, with_add_path);
    net.originate(o1, ANY);
    net.originate(o2, ANY);
    net.run_until_quiet();
    assert_eq!(net.best(rr, ANY), vec![addr(11), addr(12)]);
    assert_eq!(net.best(plain, ANY), vec![addr(11)]);
    assert_eq!(net.best(ap, ANY), vec![addr(11), addr(12)]);
    assert_eq!(
        net.fib_route(ap, ANY).unwrap().next_hops,
        vec![addr(11), addr(12)]
    );
    // One origin goes: the add-path client drops exactly that path.
    net.withdraw(o1, ANY);
    net.run_until_quiet();
    assert_eq!(net.best(ap, ANY), vec![addr(12)]);
    assert_eq!(net.rib_paths(ap, ANY).len(), 1);
    assert_eq!(net.best(plain, ANY), vec![addr(12)]);
}

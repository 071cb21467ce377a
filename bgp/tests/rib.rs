//! The RIB on its own: import, the decision process, export rules per role, the change
//! stream, graceful restart and UPDATE generation. Pure, no sockets.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};
use tortie_bgp::rib::{NextHopMode, Rib, RibConfig, RibPeer, SessionInfo};
use tortie_bgp::wire::{
    AddPath, AsPath, Attributes, Community, Ctx, Family, GracefulRestart, MpNlri, Nlri, Origin,
    Update,
};

const LOCAL_AS: u32 = 64512;

fn v4(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn id(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn session(bgp_id: &str) -> SessionInfo {
    SessionInfo {
        bgp_id: id(bgp_id),
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        tx: Ctx {
            as4: true,
            ..Ctx::default()
        },
        local_address: Some(addr("198.18.0.1")),
        peer_graceful_restart: None,
        extended_next_hop: false,
    }
}

fn announce(
    prefixes: &[&str],
    nh: &str,
    path: &[u32],
    tweak: impl FnOnce(&mut Attributes),
) -> Update {
    let mut a = Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.to_vec())),
        next_hop: Some(nh.parse().unwrap()),
        ..Attributes::default()
    };
    tweak(&mut a);
    Update {
        attrs: a,
        nlri: prefixes
            .iter()
            .map(|p| Nlri::new(p.parse().unwrap()))
            .collect(),
        ..Update::default()
    }
}

fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes
            .iter()
            .map(|p| Nlri::new(p.parse().unwrap()))
            .collect(),
        ..Update::default()
    }
}

struct Lab {
    rib: Rib,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            rib: Rib::new(RibConfig::new(LOCAL_AS, id("198.18.0.1"))),
        }
    }

    fn rr(cluster: &str) -> Lab {
        let mut cfg = RibConfig::new(LOCAL_AS, id("198.18.0.1"));
        cfg.cluster_id = Some(id(cluster));
        Lab { rib: Rib::new(cfg) }
    }

    fn peer(&mut self, address: &str, asn: u32, bgp_id: &str, rr_client: bool) -> u32 {
        let mut p = RibPeer::new(addr(address), asn);
        p.rr_client = rr_client;
        let pid = self.rib.add_peer(p);
        self.rib.peer_up(pid, session(bgp_id));
        pid
    }

    /// Everything a peer is sent now (table walk included), decoded into prefix -> update.
    fn sent(&mut self, pid: u32) -> Vec<Update> {
        self.rib.run_export_pass();
        let mut all = Vec::new();
        while self.rib.has_updates(pid) {
            all.extend(self.rib.take_updates(pid, 1000).unwrap());
        }
        all
    }

    fn best_next_hops(&self, prefix: &str) -> Vec<IpAddr> {
        self.rib
            .routes(Some(v4(prefix)))
            .into_iter()
            .flat_map(|r| r.paths)
            .filter(|p| p.multipath)
            .map(|p| p.attrs.next_hop)
            .collect()
    }
}

fn announced(updates: &[Update]) -> Vec<(IpNet, Attributes)> {
    let mut out = Vec::new();
    for u in updates {
        for n in &u.nlri {
            out.push((IpNet::V4(n.prefix), u.attrs.clone()));
        }
        if let Some(r) = &u.mp_reach {
            if let MpNlri::Ipv6(v) = &r.nlri {
                for n in v {
                    out.push((IpNet::V6(n.prefix), u.attrs.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn higher_local_pref_wins() {
    let mut l = Lab::new();
    let a = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", false);
    let b = l.peer("198.18.0.3", LOCAL_AS, "198.18.0.3", false);
    l.rib
        .apply_update(
            a,
            &announce(&["198.19.1.0/26"], "198.18.0.2", &[], |x| {
                x.local_pref = Some(100)
            }),
        )
        .unwrap();
    l.rib
        .apply_update(
            b,
            &announce(&["198.19.1.0/26"], "198.18.0.3", &[], |x| {
                x.local_pref = Some(200)
            }),
        )
        .unwrap();
    assert_eq!(l.best_next_hops("198.19.1.0/26"), vec![addr("198.18.0.3")]);
}

#[test]
fn equal_paths_form_an_ecmp_group() {
    let mut l = Lab::new();
    let a = l.peer("198.18.0.2", 65001, "198.18.0.2", false);
    let b = l.peer("198.18.0.3", 65001, "198.18.0.3", false);
    l.rib
        .apply_update(
            a,
            &announce(&["198.19.1.0/26"], "198.18.0.2", &[65001], |_| {}),
        )
        .unwrap();
    l.rib
        .apply_update(
            b,
            &announce(&["198.19.1.0/26"], "198.18.0.3", &[65001], |_| {}),
        )
        .unwrap();
    assert_eq!(
        l.best_next_hops("198.19.1.0/26"),
        vec![addr("198.18.0.2"), addr("198.18.0.3")]
    );
    let changes = l.rib.take_fib_changes(100);
    assert_eq!(changes.len(), 1, "coalesced: {changes:?}");
    assert_eq!(changes[0].route.as_ref().unwrap().next_hops.len(), 2);
}

#[test]
fn ibgp_learned_routes_are_not_sent_to_ibgp_peers_in_a_mesh() {
    let mut l = Lab::new();
    let a = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", false);
    let b = l.peer("198.18.0.3", LOCAL_AS, "198.18.0.3", false);
    l.sent(b);
    l.rib
        .apply_update(a, &announce(&["198.19.1.0/26"], "198.18.0.2", &[], |_| {}))
        .unwrap();
    assert!(announced(&l.sent(b)).is_empty());
}

#[test]
fn route_reflector_reflects_client_routes_with_originator_and_cluster_list() {
    let mut l = Lab::rr("198.18.255.1");
    let c1 = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", true);
    let c2 = l.peer("198.18.0.3", LOCAL_AS, "198.18.0.3", true);
    let nc = l.peer("198.18.0.4", LOCAL_AS, "198.18.0.4", false);
    l.sent(c2);
    l.sent(nc);
    l.rib
        .apply_update(c1, &announce(&["198.19.1.0/26"], "198.18.0.2", &[], |_| {}))
        .unwrap();
    for dst in [c2, nc] {
        let got = announced(&l.sent(dst));
        assert_eq!(got.len(), 1, "to {dst}");
        let a = &got[0].1;
        assert_eq!(a.originator_id, Some(id("198.18.0.2")));
        assert_eq!(a.cluster_list, vec![id("198.18.255.1")]);
        assert_eq!(
            a.next_hop,
            Some(id("198.18.0.2")),
            "next hop kept when reflecting"
        );
    }
    assert!(
        announced(&l.sent(c1)).is_empty(),
        "not back to the originator"
    );
}

#[test]
fn route_reflector_sends_non_client_routes_to_clients_only() {
    let mut l = Lab::rr("198.18.255.1");
    let c1 = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", true);
    let n1 = l.peer("198.18.0.4", LOCAL_AS, "198.18.0.4", false);
    let n2 = l.peer("198.18.0.5", LOCAL_AS, "198.18.0.5", false);
    l.sent(c1);
    l.sent(n2);
    l.rib
        .apply_update(n1, &announce(&["198.19.2.0/26"], "198.18.0.4", &[], |_| {}))
        .unwrap();
    assert_eq!(announced(&l.sent(c1)).len(), 1);
    assert!(announced(&l.sent(n2)).is_empty());
}

#[test]
fn route_with_our_cluster_id_is_a_loop() {
    let mut l = Lab::rr("198.18.255.1");
    let c1 = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", true);
    l.rib
        .apply_update(
            c1,
            &announce(&["198.19.1.0/26"], "198.18.0.2", &[], |a| {
                a.cluster_list = vec![id("198.18.255.1")]
            }),
        )
        .unwrap();
    assert_eq!(l.rib.prefix_count(), 0);
}

#[test]
fn ebgp_export_prepends_our_as_and_sets_next_hop_self() {
    let mut l = Lab::new();
    let node = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", false);
    let tor = l.peer("198.18.1.1", 65100, "198.18.1.1", false);
    l.sent(tor);
    l.rib
        .apply_update(
            node,
            &announce(&["198.19.1.0/26"], "198.18.0.2", &[], |a| {
                a.local_pref = Some(100)
            }),
        )
        .unwrap();
    let got = announced(&l.sent(tor));
    assert_eq!(got[0].1.as_path, Some(AsPath::sequence([LOCAL_AS])));
    assert_eq!(got[0].1.next_hop, Some(id("198.18.0.1")));
    assert_eq!(got[0].1.local_pref, None);
}

/// What `dst` (configured with `mode`) is sent as next hop for a route node 198.18.0.2
/// announced with its own address, through a route reflector (this RIB).
fn next_hop_sent(mode: NextHopMode, dst_as: u32) -> Option<Ipv4Addr> {
    let mut l = Lab::rr("198.18.0.1");
    let node = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", true);
    let mut p = RibPeer::new(addr("198.18.0.3"), dst_as);
    p.rr_client = dst_as == LOCAL_AS;
    p.next_hop_mode = mode;
    let dst = l.rib.add_peer(p);
    l.rib.peer_up(dst, session("198.18.0.3"));
    l.sent(dst);
    l.rib
        .apply_update(
            node,
            &announce(&["198.19.1.0/26"], "198.18.0.2", &[], |a| {
                a.local_pref = Some(100)
            }),
        )
        .unwrap();
    announced(&l.sent(dst))
        .first()
        .and_then(|(_, a)| a.next_hop)
}

#[test]
fn next_hop_mode_auto_keeps_the_next_hop_toward_ibgp_and_sets_self_toward_ebgp() {
    assert_eq!(
        next_hop_sent(NextHopMode::Auto, LOCAL_AS),
        Some(id("198.18.0.2"))
    );
    assert_eq!(
        next_hop_sent(NextHopMode::Auto, 65100),
        Some(id("198.18.0.1"))
    );
}

#[test]
fn next_hop_mode_self_sets_this_nodes_address_toward_ibgp_too() {
    assert_eq!(
        next_hop_sent(NextHopMode::SelfAddr, LOCAL_AS),
        Some(id("198.18.0.1"))
    );
}

#[test]
fn next_hop_mode_keep_passes_the_received_next_hop_toward_ebgp_too() {
    assert_eq!(
        next_hop_sent(NextHopMode::Keep, 65100),
        Some(id("198.18.0.2"))
    );
}

#[test]
fn own_as_in_path_from_ebgp_is_a_loop_unless_allowed() {
    let mut l = Lab::new();
    let mut p = RibPeer::new(addr("198.18.1.1"), 65100);
    p.allow_own_as = 1;
    let tor = l.rib.add_peer(p);
    l.rib.peer_up(tor, session("198.18.1.1"));
    l.rib
        .apply_update(
            tor,
            &announce(&["198.19.1.0/26"], "198.18.1.1", &[65100, LOCAL_AS], |_| {}),
        )
        .unwrap();
    l.rib
        .apply_update(
            tor,
            &announce(
                &["198.19.2.0/26"],
                "198.18.1.1",
                &[65100, LOCAL_AS, 1, LOCAL_AS],
                |_| {},
            ),
        )
        .unwrap();
    assert_eq!(l.rib.prefix_count(), 1, "allowed once, not twice");
}

#[test]
fn no_export_community_stays_inside_the_as() {
    let mut l = Lab::new();
    let a = l.peer("198.18.1.1", 65100, "198.18.1.1", false);
    let b = l.peer("198.18.1.2", 65200, "198.18.1.2", false);
    l.sent(b);
    l.rib
        .apply_update(
            a,
            &announce(&["198.19.1.0/26"], "198.18.1.1", &[65100], |x| {
                x.communities = vec![Community::NO_EXPORT]
            }),
        )
        .unwrap();
    assert!(announced(&l.sent(b)).is_empty());
}

#[test]
fn initial_table_then_end_of_rib_for_each_family() {
    let mut l = Lab::new();
    for i in 0..300u32 {
        l.rib.originate(
            IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0xc613_0000 | (i << 6)), 26).unwrap()),
            None,
        );
    }
    let p = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", false);
    let updates = l.sent(p);
    assert_eq!(announced(&updates).len(), 300);
    let eors: Vec<_> = updates.iter().filter_map(|u| u.as_end_of_rib()).collect();
    assert_eq!(eors, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    assert_eq!(
        updates.last().unwrap().as_end_of_rib(),
        Some(Family::Ipv6Unicast)
    );
    assert!(
        updates.iter().filter(|u| !u.nlri.is_empty()).count() <= 2,
        "300 prefixes share one or two UPDATEs"
    );
}

#[test]
fn a_route_refresh_resends_that_familys_table_without_end_of_rib() {
    let mut l = Lab::new();
    l.rib.originate(v4("198.19.1.0/26"), None);
    let p = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", false);
    l.sent(p);
    l.rib.resend(p, Family::Ipv4Unicast);
    let again = l.sent(p);
    assert_eq!(
        announced(&again)
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        vec![v4("198.19.1.0/26")]
    );
    assert!(
        again.iter().all(|u| u.as_end_of_rib().is_none()),
        "{again:?}"
    );
}

#[test]
fn a_route_refresh_for_another_family_resends_nothing_of_this_one() {
    let mut l = Lab::new();
    l.rib.originate(v4("198.19.1.0/26"), None);
    let p = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", false);
    l.sent(p);
    l.rib.resend(p, Family::Ipv6Unicast);
    assert_eq!(l.sent(p), Vec::<Update>::new());
}

#[test]
fn withdrawal_reaches_peers_that_had_the_route() {
    let mut l = Lab::new();
    let a = l.peer("198.18.1.1", 65100, "198.18.1.1", false);
    let b = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", false);
    l.rib
        .apply_update(
            a,
            &announce(&["198.19.1.0/26"], "198.18.1.1", &[65100], |_| {}),
        )
        .unwrap();
    assert_eq!(announced(&l.sent(b)).len(), 1);
    l.rib
        .apply_update(a, &withdraw(&["198.19.1.0/26"]))
        .unwrap();
    let updates = l.sent(b);
    assert_eq!(updates.iter().map(|u| u.withdrawn.len()).sum::<usize>(), 1);
}

#[test]
fn graceful_restart_keeps_stale_paths_until_end_of_rib() {
    let mut l = Lab::new();
    let a = l.rib.add_peer(RibPeer::new(addr("198.18.0.2"), LOCAL_AS));
    let mut s = session("198.18.0.2");
    s.peer_graceful_restart = Some(GracefulRestart {
        restart_state: false,
        notification: false,
        restart_time: 120,
        families: vec![],
    });
    l.rib.peer_up(a, s.clone());
    l.rib
        .apply_update(
            a,
            &announce(
                &["198.19.1.0/26", "198.19.2.0/26"],
                "198.18.0.2",
                &[],
                |_| {},
            ),
        )
        .unwrap();
    assert_eq!(
        l.rib.peer_down(a, true),
        Some(std::time::Duration::from_secs(120))
    );
    assert_eq!(l.rib.prefix_count(), 2, "kept while the peer restarts");
    assert!(l.rib.routes(None).iter().all(|r| r.paths[0].stale));
    l.rib.peer_up(a, s);
    l.rib
        .apply_update(a, &announce(&["198.19.1.0/26"], "198.18.0.2", &[], |_| {}))
        .unwrap();
    l.rib
        .apply_update(a, &Update::end_of_rib(Family::Ipv4Unicast))
        .unwrap();
    let routes = l.rib.routes(None);
    assert_eq!(
        routes.len(),
        1,
        "the route not refreshed before End-of-RIB is gone"
    );
    assert!(!routes[0].paths[0].stale);
}

#[test]
fn add_path_peer_receives_every_path_of_the_multipath_group() {
    let mut l = Lab::rr("198.18.255.1");
    let a = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", true);
    let b = l.peer("198.18.0.3", LOCAL_AS, "198.18.0.3", true);
    let c = l.rib.add_peer({
        let mut p = RibPeer::new(addr("198.18.0.4"), LOCAL_AS);
        p.rr_client = true;
        p
    });
    let mut s = session("198.18.0.4");
    s.tx.add_path = AddPath::ALL;
    l.rib.peer_up(c, s);
    l.rib
        .apply_update(a, &announce(&["198.19.1.0/26"], "198.18.0.2", &[], |_| {}))
        .unwrap();
    l.rib
        .apply_update(b, &announce(&["198.19.1.0/26"], "198.18.0.3", &[], |_| {}))
        .unwrap();
    let updates = l.sent(c);
    let ids: Vec<Option<u32>> = updates
        .iter()
        .flat_map(|u| u.nlri.iter().map(|n| n.path_id))
        .collect();
    assert_eq!(ids.len(), 2, "{updates:?}");
    assert_ne!(ids[0], ids[1]);
    // One path goes: only its path id is withdrawn.
    l.rib
        .apply_update(a, &withdraw(&["198.19.1.0/26"]))
        .unwrap();
    let updates = l.sent(c);
    let wd: Vec<_> = updates.iter().flat_map(|u| u.withdrawn.iter()).collect();
    assert_eq!(wd.len(), 1, "{updates:?}");
}

#[test]
fn max_prefixes_over_the_limit_is_an_error() {
    let mut l = Lab::new();
    let mut p = RibPeer::new(addr("198.18.1.1"), 65100);
    p.max_prefixes = Some(1);
    let tor = l.rib.add_peer(p);
    l.rib.peer_up(tor, session("198.18.1.1"));
    let err = l.rib.apply_update(
        tor,
        &announce(
            &["198.19.1.0/26", "198.19.2.0/26"],
            "198.18.1.1",
            &[65100],
            |_| {},
        ),
    );
    assert!(err.is_err());
}

/// `n` /32s of 198.18.0.0/15 from 198.18.16.0 on, as text.
fn host_routes(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}/32", Ipv4Addr::from(0xc612_1000 + i)))
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn reflected_prefixes_sharing_attributes_fill_updates() {
    let mut l = Lab::rr("198.18.255.1");
    let feeder = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", true);
    let client = l.peer("198.18.0.3", LOCAL_AS, "198.18.0.3", true);
    l.sent(client);
    let prefixes = host_routes(2000);
    for chunk in prefixes.chunks(500) {
        l.rib
            .apply_update(feeder, &announce(&refs(chunk), "198.18.0.2", &[], |_| {}))
            .unwrap();
    }
    // One batch, as the router takes them (4,096 prefixes).
    l.rib.run_export_pass();
    let updates = l.rib.take_updates(client, 4096).unwrap();
    let got = announced(&updates);
    assert_eq!(got.len(), 2000);
    assert!(
        got.iter()
            .all(|(_, a)| a.originator_id == Some(id("198.18.0.2")))
    );
    // 2,000 five-octet prefixes take three 4,096-octet messages; one UPDATE per prefix (or per
    // received UPDATE) would be the attributes failing to group.
    let carrying = updates.iter().filter(|u| !u.nlri.is_empty()).count();
    assert!(carrying <= 3, "{carrying} UPDATEs for 2,000 prefixes");
}

#[test]
fn a_client_that_comes_up_later_is_sent_each_prefix_once() {
    let mut l = Lab::rr("198.18.255.1");
    let feeder = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", true);
    let early = l.peer("198.18.0.3", LOCAL_AS, "198.18.0.3", true);
    l.sent(early);
    let prefixes = host_routes(300);
    l.rib
        .apply_update(
            feeder,
            &announce(&refs(&prefixes), "198.18.0.2", &[], |_| {}),
        )
        .unwrap();
    // The change is logged for the early client, which has not read it yet.
    l.rib.run_export_pass();
    let late = l.peer("198.18.0.4", LOCAL_AS, "198.18.0.4", true);
    let got = announced(&l.sent(late));
    let distinct: std::collections::HashSet<IpNet> = got.iter().map(|(p, _)| *p).collect();
    assert_eq!(got.len(), 300, "the table once, nothing more from the log");
    assert_eq!(distinct.len(), 300);
    assert_eq!(announced(&l.sent(early)).len(), 300);
}

#[test]
fn a_client_that_does_not_read_holds_a_bounded_backlog_and_gets_the_last_state() {
    let mut l = Lab::rr("198.18.255.1");
    let feeder = l.peer("198.18.0.2", LOCAL_AS, "198.18.0.2", true);
    let reader = l.peer("198.18.0.3", LOCAL_AS, "198.18.0.3", true);
    let idle = l.peer("198.18.0.4", LOCAL_AS, "198.18.0.4", true);
    l.sent(reader);
    l.sent(idle);
    let prefixes = host_routes(100);
    let rounds = 800u32;
    let mut most = 0;
    for med in 0..rounds {
        let u = announce(&refs(&prefixes), "198.18.0.2", &[], |a| a.med = Some(med));
        l.rib.apply_update(feeder, &u).unwrap();
        l.sent(reader);
        most = most.max(l.rib.backlog(idle));
    }
    // 80,000 changes of 100 prefixes: the idle client's share of the shared log is folded
    // into a set of its own (each prefix once) before the log outgrows twice the table plus
    // 65,536 entries.
    assert!(
        most <= 2 * 100 + 65_536 + 100,
        "backlog reached {most} entries"
    );
    let got = announced(&l.sent(idle));
    let last: std::collections::HashMap<IpNet, Option<u32>> =
        got.iter().map(|(p, a)| (*p, a.med)).collect();
    assert_eq!(last.len(), 100);
    assert!(
        last.values().all(|m| *m == Some(rounds - 1)),
        "every prefix ends with the last MED"
    );
}

/// A peer whose import policy rejects the one prefix `deny`.
fn filtered_peer(l: &mut Lab, deny: &str) -> u32 {
    use tortie_bgp::rib::policy::{
        Action, Filter, MatchOperator, PrefixLengthRange, PrefixMatch, Rule,
    };
    let rule = Rule {
        prefix: Some(PrefixMatch::new(
            v4(deny),
            MatchOperator::Equal,
            PrefixLengthRange::default(),
        )),
        ..Rule::new(Action::Reject)
    };
    let mut p = RibPeer::new(addr("198.18.1.1"), LOCAL_AS);
    p.filters = vec![Filter {
        name: "deny-one".into(),
        import_v4: vec![rule],
        ..Filter::default()
    }];
    let pid = l.rib.add_peer(p);
    l.rib.peer_up(pid, session("198.18.1.1"));
    pid
}

/// (accepted, filtered) paths of a peer.
fn counts(l: &Lab, pid: u32) -> (u32, u32) {
    (l.rib.peer_path_count(pid), l.rib.peer_filtered_count(pid))
}

#[test]
fn a_path_import_policy_rejects_is_counted_as_filtered_not_accepted() {
    let mut l = Lab::new();
    let p = filtered_peer(&mut l, "198.19.2.0/26");
    let u = announce(
        &["198.19.1.0/26", "198.19.2.0/26"],
        "198.18.1.1",
        &[],
        |_| {},
    );
    l.rib.apply_update(p, &u).unwrap();
    assert_eq!(counts(&l, p), (1, 1));
}

#[test]
fn withdrawing_a_filtered_path_takes_it_out_of_the_count() {
    let mut l = Lab::new();
    let p = filtered_peer(&mut l, "198.19.2.0/26");
    let u = announce(&["198.19.2.0/26"], "198.18.1.1", &[], |_| {});
    l.rib.apply_update(p, &u).unwrap();
    l.rib
        .apply_update(p, &withdraw(&["198.19.2.0/26"]))
        .unwrap();
    assert_eq!(counts(&l, p), (0, 0));
}

#[test]
fn a_filtered_path_replaced_by_an_acceptable_one_counts_once_as_accepted() {
    let mut l = Lab::new();
    let tor = l.peer("198.18.1.1", 65100, "198.18.1.1", false);
    // Our own AS in an eBGP path is a loop: turned away on import.
    let looped = announce(&["198.19.1.0/26"], "198.18.1.1", &[65100, LOCAL_AS], |_| {});
    l.rib.apply_update(tor, &looped).unwrap();
    assert_eq!(counts(&l, tor), (0, 1));
    let clean = announce(&["198.19.1.0/26"], "198.18.1.1", &[65100], |_| {});
    l.rib.apply_update(tor, &clean).unwrap();
    assert_eq!(counts(&l, tor), (1, 0));
}

#[test]
fn a_session_reset_forgets_what_was_filtered() {
    let mut l = Lab::new();
    let p = filtered_peer(&mut l, "198.19.2.0/26");
    let u = announce(
        &["198.19.1.0/26", "198.19.2.0/26"],
        "198.18.1.1",
        &[],
        |_| {},
    );
    l.rib.apply_update(p, &u).unwrap();
    l.rib.peer_down(p, false);
    assert_eq!(counts(&l, p), (0, 0));
}

#[test]
fn the_filtered_count_stops_growing_at_its_bound() {
    let mut l = Lab::new();
    let p = filtered_peer(&mut l, "0.0.0.0/0");
    // Reject everything: one rule matching every IPv4 prefix.
    let mut cfg = RibPeer::new(addr("198.18.1.1"), LOCAL_AS);
    cfg.filters = {
        use tortie_bgp::rib::policy::{Action, Filter, Rule};
        vec![Filter {
            name: "reject-all".into(),
            import_v4: vec![Rule::new(Action::Reject)],
            ..Filter::default()
        }]
    };
    l.rib.update_peer(p, cfg);
    let over = tortie_bgp::rib::MAX_FILTERED_KEYS as u32 + 10;
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    let mut u = announce(&[], "198.18.1.1", &[], |_| {});
    u.nlri = (0..over)
        .map(|i| Nlri::new(ipnet::Ipv4Net::new(Ipv4Addr::from(base + i), 32).unwrap()))
        .collect();
    l.rib.apply_update(p, &u).unwrap();
    assert_eq!(
        counts(&l, p),
        (0, tortie_bgp::rib::MAX_FILTERED_KEYS as u32)
    );
}

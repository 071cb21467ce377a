//! Routing with real daemons: route reflection both ways (BIRD reflecting for tortie nodes,
//! tortie reflecting for BIRD and GoBGP), graceful restart of tortie seen from BIRD, and
//! ADD-PATH giving a client both paths of a prefix. Every speaker runs in a namespace of the
//! test, on addresses of its loopback.

mod support;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use support::tortie::Tortie;
use support::*;

const AS: u32 = 64512;

/// A namespace with addresses 198.18.N.1, .2, ... on its loopback.
struct Lab {
    ns: Netns,
    n: u8,
}

impl Lab {
    fn new() -> Lab {
        let ns = Netns::new(&format!("rt{}", next_id()));
        Lab {
            ns,
            n: (next_id() % 250 + 1) as u8,
        }
    }

    fn addr(&self, host: u8) -> Ipv4Addr {
        let a = Ipv4Addr::new(198, 18, self.n, host);
        let _ = self
            .ns
            .ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
        a
    }

    fn speaker(&self, host: u8, asn: u32) -> SpeakerConfig {
        SpeakerConfig::in_netns(&self.ns, self.addr(host), asn)
    }
}

fn prefix(lab: &Lab, i: u8) -> String {
    format!("198.19.{}.{}/26", lab.n, i * 64)
}

#[test]
fn bird_reflects_between_tortie_nodes() {
    let lab = Lab::new();
    let rr_cfg = lab.speaker(1, AS);
    let a_cfg = lab.speaker(2, AS);
    let b_cfg = lab.speaker(3, AS);
    let rr_cfg = rr_cfg
        .with_neighbor(Neighbor::to(&a_cfg).rr_client().passive())
        .with_neighbor(Neighbor::to(&b_cfg).rr_client().passive());
    let (pa, pb) = (prefix(&lab, 0), prefix(&lab, 1));
    let rr = Bird::start(rr_cfg.clone());
    let a = Tortie::start(
        a_cfg
            .clone()
            .with_neighbor(Neighbor::to(&rr_cfg))
            .with_originate(&pa, ""),
    );
    let b = Tortie::start(
        b_cfg
            .clone()
            .with_neighbor(Neighbor::to(&rr_cfg))
            .with_originate(&pb, ""),
    );
    let via_a = b.wait_route_via(&pa, &a_cfg.addr().to_string(), SESSION_TIMEOUT);
    assert_eq!(
        via_a.from,
        Some(rr_cfg.addr()),
        "learned from the reflector"
    );
    a.wait_route_via(&pb, &b_cfg.addr().to_string(), SESSION_TIMEOUT);
    // BIRD shows the reflected route it got from A.
    rr.wait_route(&pa, SESSION_TIMEOUT);
}

#[test]
fn tortie_reflects_between_bird_and_gobgp_clients() {
    let lab = Lab::new();
    let rr_cfg = lab.speaker(1, AS);
    let bird_cfg = lab.speaker(2, AS);
    let gobgp_cfg = lab.speaker(3, AS);
    let (pb, pg) = (prefix(&lab, 0), prefix(&lab, 1));
    let bird = Bird::start(
        bird_cfg
            .clone()
            .with_neighbor(Neighbor::to(&rr_cfg))
            .with_originate(&pb, ""),
    );
    let gobgp = GoBgp::start(
        gobgp_cfg
            .clone()
            .with_neighbor(Neighbor::to(&rr_cfg).passive())
            .with_originate(&pg, ""),
    );
    let mut rr = Tortie::new(
        rr_cfg
            .clone()
            .with_neighbor(Neighbor::to(&bird_cfg))
            .with_neighbor(Neighbor::to(&gobgp_cfg)),
    );
    rr.rr_cluster_id = Some(Ipv4Addr::new(198, 18, 255, lab.n));
    rr.spawn();
    let at_gobgp = gobgp.wait_route(&pb, SESSION_TIMEOUT);
    assert_eq!(
        at_gobgp[0].next_hop,
        Some(bird_cfg.addr()),
        "the reflector keeps the next hop"
    );
    let at_bird = bird.wait_route(&pg, SESSION_TIMEOUT);
    eprintln!("BIRD got {pg}: {at_bird:?}");
    assert_eq!(at_bird[0].next_hop, Some(gobgp_cfg.addr()));
    let attrs = &at_bird[0].attrs;
    assert_eq!(
        attrs.get("originator_id").map(String::as_str),
        Some(gobgp_cfg.addr().to_string().as_str()),
        "{attrs:?}"
    );
    assert!(
        attrs
            .get("cluster_list")
            .is_some_and(|c| c.contains(&format!("198.18.255.{}", lab.n))),
        "{attrs:?}"
    );
}

#[test]
fn add_path_gives_a_client_both_paths_through_tortie_reflector() {
    let lab = Lab::new();
    let rr_cfg = lab.speaker(1, AS);
    let c1 = lab.speaker(2, AS);
    let c2 = lab.speaker(3, AS);
    let c3 = lab.speaker(4, AS);
    let p = prefix(&lab, 0);
    let _b1 = Bird::start(
        c1.clone()
            .with_neighbor(Neighbor::to(&rr_cfg))
            .with_originate(&p, ""),
    );
    let _b2 = Bird::start(
        c2.clone()
            .with_neighbor(Neighbor::to(&rr_cfg))
            .with_originate(&p, ""),
    );
    let b3 = Bird::start(
        c3.clone()
            .with_neighbor(Neighbor::to(&rr_cfg).add_path(true)),
    );
    let mut rr = Tortie::new(
        rr_cfg
            .clone()
            .with_neighbor(Neighbor::to(&c1))
            .with_neighbor(Neighbor::to(&c2))
            .with_neighbor(Neighbor::to(&c3)),
    );
    rr.rr_cluster_id = Some(Ipv4Addr::new(198, 18, 255, lab.n));
    rr.spawn();
    let hops = wait_for(
        "two paths at the ADD-PATH client",
        SESSION_TIMEOUT,
        POLL,
        || {
            let rib = b3.rib()?;
            let mut hops = next_hops(&rib, &p);
            hops.sort();
            if hops.len() == 2 {
                Ok(hops)
            } else {
                Err(format!("{hops:?}"))
            }
        },
    );
    assert_eq!(hops, vec![c1.addr(), c2.addr()]);
}

#[test]
fn bird_keeps_tortie_routes_through_a_crash_and_restart() {
    let lab = Lab::new();
    let bird_cfg = lab.speaker(1, AS);
    let t_cfg = lab.speaker(2, AS);
    let p = prefix(&lab, 0);
    let bird = Bird::start(
        bird_cfg
            .clone()
            .with_neighbor(Neighbor::to(&t_cfg).graceful_restart(true)),
    );
    let mut t = Tortie::start(
        t_cfg
            .clone()
            .with_neighbor(Neighbor::to(&bird_cfg).graceful_restart(true))
            .with_originate(&p, ""),
    );
    bird.wait_route_via(&p, &t_cfg.addr().to_string(), SESSION_TIMEOUT);

    t.kill();
    let killed = Instant::now();
    // From the kill until the route is refreshed, BIRD is asked every 100 ms: the route must
    // be there every time, stale while tortie is away (restarted after 3 s).
    let mut respawned = false;
    let mut stale_seen = false;
    loop {
        let rib = bird.rib().expect("birdc answers");
        let Some(paths) = rib.get(&net(&p)) else {
            panic!("BIRD withdrew {p} {:?} after the kill", killed.elapsed());
        };
        let stale = paths.iter().all(|r| r.stale);
        stale_seen |= stale;
        if respawned && !stale {
            break;
        }
        if !respawned && killed.elapsed() >= Duration::from_secs(3) {
            assert!(stale, "kept as stale while tortie is away: {paths:?}");
            t.spawn();
            respawned = true;
        }
        assert!(
            killed.elapsed() < SESSION_TIMEOUT,
            "not refreshed after {:?}",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stale_seen, "BIRD marked the route stale during the restart");
    assert!(
        t.log().contains("announcing a graceful restart"),
        "restart announced (R bit)"
    );
}

#[test]
fn frr_tor_sees_only_what_tortie_bgpfilter_exports_and_tortie_keeps_only_what_it_imports() {
    let lab = Lab::new();
    let t_cfg = lab.speaker(1, AS);
    let tor_cfg = lab.speaker(2, 65100);
    let (ours_ok, ours_blocked) = (prefix(&lab, 0), prefix(&lab, 1));
    let (theirs_ok, theirs_blocked) = (
        format!("198.19.{}.0/24", (lab.n + 100) % 255),
        format!("198.19.{}.0/24", (lab.n + 101) % 255),
    );
    let tor = Frr::start(
        tor_cfg
            .clone()
            .with_neighbor(Neighbor::to(&t_cfg))
            .with_originate(&theirs_ok, "")
            .with_originate(&theirs_blocked, ""),
    );
    let neighbor = Neighbor::to(&tor_cfg);
    let mut t = Tortie::new(
        t_cfg
            .clone()
            .with_neighbor(neighbor.clone())
            .with_originate(&ours_ok, "")
            .with_originate(&ours_blocked, ""),
    );
    t.peer_extra
        .push((neighbor.name.clone(), "  filters: [tor-policy]".into()));
    t.extra_yaml = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {{name: tor-policy}}\nspec:\n  exportV4:\n    - {{action: Reject, matchOperator: Equal, cidr: {ours_blocked}}}\n  importV4:\n    - {{action: Reject, matchOperator: In, cidr: {theirs_blocked}}}\n    - action: Accept\n      matchOperator: In\n      cidr: 198.19.0.0/16\n      operations:\n        - addCommunity: {{value: \"64512:777\"}}\n"
    );
    t.spawn();
    assert!(
        !t.log().contains("spec.filters: accepted, not yet acted on"),
        "filters are acted on"
    );

    // The ToR has both of its prefixes to offer; tortie will take one.
    tor.wait_route(&theirs_blocked, SESSION_TIMEOUT);
    let at_tor = tor.wait_route(&ours_ok, SESSION_TIMEOUT);
    assert_eq!(at_tor[0].as_path, vec![AS], "eBGP: our AS prepended");
    assert_eq!(at_tor[0].next_hop, Some(t_cfg.addr()), "next hop self");
    let learned = t.wait_route(&theirs_ok, SESSION_TIMEOUT);
    let status = t.status().unwrap();
    let route = status["peers"][0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == theirs_ok.as_str())
        .cloned()
        .unwrap();
    assert!(
        route["communities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "64512:777"),
        "import operation applied: {route}"
    );
    assert_eq!(learned[0].as_path, vec![65100]);
    // Everything has been exchanged by now (both End-of-RIBs are long past); the filtered
    // prefixes are absent on both sides.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !tor.rib().unwrap().contains_key(&net(&ours_blocked)),
        "export filter rejected {ours_blocked}"
    );
    assert!(
        !t.rib().unwrap().contains_key(&net(&theirs_blocked)),
        "import filter rejected {theirs_blocked}"
    );
    // The session's counts tell them apart: three paths received (FRR also sends ours_ok
    // back, with our AS in its path: it has no sender-side loop detection by default, and
    // that path is turned away as a loop), one accepted.
    let start = Instant::now();
    let counts = |s: &serde_json::Value| {
        (
            s["peers"][0]["received"].as_u64(),
            s["peers"][0]["accepted"].as_u64(),
        )
    };
    let mut last = t.status().unwrap();
    while counts(&last) != (Some(3), Some(1)) && start.elapsed() < SESSION_TIMEOUT {
        std::thread::sleep(Duration::from_millis(100));
        last = t.status().unwrap();
    }
    assert_eq!(counts(&last), (Some(3), Some(1)), "{last}");
}

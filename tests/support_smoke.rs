//! Smoke tests of the interop harness in tests/support, without tortie: the real daemons
//! peer with each other on 127.x loopback addresses and inside a namespace.
//! Needs root and the Debian packages bird2, gobgpd, frr, exabgp (tools/test.sh installs
//! them).

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use support::process::pid_alive;
use support::*;

const T: Duration = Duration::from_secs(30);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn daemon_versions() {
    let v = versions();
    println!("{v}");
    assert!(Bird::version().contains("BIRD"), "{v}");
    assert!(GoBgp::version().contains("gobgpd"), "{v}");
    assert!(Frr::version().contains("bgpd"), "{v}");
    assert!(ExaBgp::version().contains("ExaBGP"), "{v}");
}

/// (a) BIRD connects, GoBGP listens (its own first connect attempt waits 5-10 s); each
/// originates a prefix with a 192.0.2.x next hop; routes added and deleted at run time
/// through GoBGP's API propagate. With graceful restart on: a SIGKILLed BIRD leaves its
/// route stale in GoBGP until BIRD is back (and a killed GoBGP likewise in BIRD); a hard
/// restart of BIRD (SIGKILL + start) recovers.
#[test]
fn bird_and_gobgp_exchange_routes_on_loopback() {
    println!("{}\n{}", Bird::version(), GoBgp::version());
    let t0 = Instant::now();
    let phase = |what: &str| println!("{:>6.2?} {what}", t0.elapsed());
    let bcfg = SpeakerConfig::loopback(65001).with_originate("198.19.1.0/26", "192.0.2.1");
    let gcfg = SpeakerConfig::loopback(65002).with_originate("198.19.2.0/26", "192.0.2.2");
    let (baddr, gaddr) = (bcfg.addr(), gcfg.addr());
    let bcfg = bcfg.with_neighbor(Neighbor::to(&gcfg).graceful_restart(true));
    let gcfg = gcfg.with_neighbor(Neighbor::to(&bcfg).passive().graceful_restart(true));

    let mut gobgp = GoBgp::start(gcfg);
    let mut bird = Bird::start(bcfg);
    bird.wait_established(gaddr, T);
    gobgp.wait_established(baddr, T);

    let r = bird.wait_route_via("198.19.2.0/26", "192.0.2.2", T);
    assert_eq!(r.as_path, vec![65002], "{r:?}");
    assert_eq!(r.from, Some(gaddr), "{r:?}");
    assert!(!r.stale, "{r:?}");
    let r = gobgp.wait_route_via("198.19.1.0/26", "192.0.2.1", T);
    assert_eq!(r.as_path, vec![65001], "{r:?}");
    assert!(!r.stale, "{r:?}");

    phase("sessions up, routes exchanged");
    gobgp.add_route("198.19.2.64/26", "192.0.2.2").unwrap();
    bird.wait_route_via("198.19.2.64/26", "192.0.2.2", T);
    gobgp.del_route("198.19.2.64/26").unwrap();
    bird.wait_no_route("198.19.2.64/26", T);
    assert!(
        bird.learned_from(gaddr)
            .unwrap()
            .contains_key(&net("198.19.2.0/26"))
    );
    assert!(
        bird.exported_to(gaddr)
            .unwrap()
            .contains_key(&net("198.19.1.0/26"))
    );

    phase("runtime add/delete done");
    // GoBGP crashes: BIRD keeps its route as stale (graceful restart helper)
    gobgp.kill();
    wait_for("BIRD to mark GoBGP's route stale", T, POLL, || {
        let rib = bird.routes()?;
        match rib.get(&net("198.19.2.0/26")) {
            Some(v) if v.iter().all(|r| r.stale) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    phase("stale in BIRD");
    gobgp.start_again();
    bird.wait_established(gaddr, T);
    wait_for("GoBGP's route to be fresh again in BIRD", T, POLL, || {
        let rib = bird.routes()?;
        match rib.get(&net("198.19.2.0/26")) {
            Some(v) if v.iter().any(|r| !r.stale) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    phase("GoBGP back, fresh again");
    // BIRD crashes: GoBGP keeps BIRD's route as stale; BIRD comes back
    let old = bird.pid();
    bird.kill();
    wait_for("GoBGP to mark BIRD's route stale", T, POLL, || {
        let rib = gobgp.global_rib()?;
        match rib.get(&net("198.19.1.0/26")) {
            Some(v) if v.iter().all(|r| r.stale) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    phase("stale in GoBGP");
    bird.start_again();
    assert_ne!(old, bird.pid());
    bird.wait_established(gaddr, T);
    bird.wait_route_via("198.19.2.0/26", "192.0.2.2", T);
    wait_for("BIRD's route to be fresh again in GoBGP", T, POLL, || {
        let rib = gobgp.global_rib()?;
        match rib.get(&net("198.19.1.0/26")) {
            Some(v) if v.iter().any(|r| !r.stale) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    phase("BIRD back, fresh again");
    // and a plain hard restart
    bird.hard_restart();
    bird.wait_established(gaddr, T);
    bird.wait_route_via("198.19.2.0/26", "192.0.2.2", T);
    phase("hard restart done");
}

/// IPv6 sessions over ::1 (each daemon can have only ONE neighbor on ::1, since daemons
/// tell neighbors apart by address): BIRD <-> GoBGP and ExaBGP -> FRR, IPv6 unicast with
/// 2001:db8:: next hops.
#[test]
fn ipv6_sessions_on_v6_loopback() {
    let bcfg = SpeakerConfig::loopback(65001)
        .with_v6_loopback()
        .with_originate("2001:db8:1::/48", "2001:db8::1");
    let gcfg = SpeakerConfig::loopback(65002)
        .with_v6_loopback()
        .with_originate("2001:db8:2::/48", "2001:db8::2");
    let fcfg = SpeakerConfig::loopback(65003)
        .with_v6_loopback()
        .with_originate("2001:db8:3::/48", "2001:db8::3");
    let xcfg = SpeakerConfig::loopback(65004)
        .with_v6_loopback()
        .with_originate("2001:db8:4::/48", "2001:db8::4");
    let bcfg2 = bcfg.clone().with_neighbor(Neighbor::to_v6(&gcfg));
    let gcfg2 = gcfg.clone().with_neighbor(Neighbor::to_v6(&bcfg).passive());
    let fcfg2 = fcfg.clone().with_neighbor(Neighbor::to_v6(&xcfg).passive());
    let xcfg2 = xcfg.clone().with_neighbor(Neighbor::to_v6(&fcfg));
    let v6 = V6_LOOPBACK;

    let gobgp = GoBgp::start(gcfg2);
    let bird = Bird::start(bcfg2);
    let frr = Frr::start(fcfg2);
    let exa = ExaBgp::start(xcfg2);
    bird.wait_established(v6, T);
    gobgp.wait_established(v6, T);
    frr.wait_established(v6, T);
    exa.wait_established(v6, T);

    let r = bird.wait_route_via("2001:db8:2::/48", "2001:db8::2", T);
    assert_eq!(r.as_path, vec![65002], "{r:?}");
    let r = gobgp.wait_route_via("2001:db8:1::/48", "2001:db8::1", T);
    assert_eq!(r.as_path, vec![65001], "{r:?}");
    let r = frr.wait_route_via("2001:db8:4::/48", "2001:db8::4", T);
    assert_eq!(r.as_path, vec![65004], "{r:?}");
    let r = exa.wait_route_via("2001:db8:3::/48", "2001:db8::3", T);
    assert_eq!(r.as_path, vec![65003], "{r:?}");
}

/// (b) ExaBGP connects to FRR (passive); ExaBGP's static route is in FRR's RIB, FRR's
/// prefix is in what ExaBGP received; a route announced through ExaBGP's API arrives;
/// `clear bgp` drops the session and ExaBGP reconnects.
#[test]
fn exabgp_connects_to_frr_on_loopback() {
    println!("{}\n{}", Frr::version(), ExaBgp::version());
    let fcfg = SpeakerConfig::loopback(65003).with_originate("198.19.3.0/26", "192.0.2.3");
    let xcfg = SpeakerConfig::loopback(65004).with_originate("198.19.4.0/26", "192.0.2.4");
    let (faddr, xaddr) = (fcfg.addr(), xcfg.addr());
    let fcfg = fcfg.with_neighbor(Neighbor::to(&xcfg).passive());
    let xcfg = xcfg.with_neighbor(Neighbor::to(&fcfg));

    let frr = Frr::start(fcfg);
    let exa = ExaBgp::start(xcfg);
    frr.wait_established(xaddr, T);
    exa.wait_established(faddr, T);

    let r = frr.wait_route_via("198.19.4.0/26", "192.0.2.4", T);
    assert_eq!(r.as_path, vec![65004], "{r:?}");
    assert_eq!(r.from, Some(xaddr), "{r:?}");
    let r = exa.wait_route_via("198.19.3.0/26", "192.0.2.3", T);
    assert_eq!(r.as_path, vec![65003], "{r:?}");

    exa.announce("198.19.4.64/26", "192.0.2.4");
    frr.wait_route_via("198.19.4.64/26", "192.0.2.4", T);
    exa.withdraw("198.19.4.64/26", "192.0.2.4");
    frr.wait_no_route("198.19.4.64/26", T);

    let ups = || {
        exa.events()
            .iter()
            .filter(|e| e.kind == "state" && e.json["neighbor"]["state"] == "up")
            .count()
    };
    let before = ups();
    frr.clear(xaddr).unwrap();
    wait_for(
        "ExaBGP to report the session up again after clear bgp",
        T,
        POLL,
        || {
            let n = ups();
            if n > before && frr.is_established(&xaddr.into()) {
                Ok(())
            } else {
                Err(format!("{n} up events"))
            }
        },
    );
    frr.wait_route_via("198.19.4.0/26", "192.0.2.4", T);
}

/// (c) The namespace guard: lo is up, commands and spawned processes run inside, and
/// everything is gone after drop, also after a panic.
#[test]
fn netns_guard_creates_and_deletes() {
    let (name, spawned, stray);
    {
        let ns = Netns::new("guard");
        name = ns.name().to_string();
        assert!(Netns::exists(&name));
        let addrs = ns.ip_ok(&["addr"]);
        println!("ip -n {name} addr:\n{addrs}");
        assert!(addrs.contains("lo:") && addrs.contains("UP"), "{addrs}");
        ns.add_addr("lo", "198.18.0.1/32");
        assert!(
            ns.exec_ok(&["ip", "-4", "addr", "show", "dev", "lo"])
                .contains("198.18.0.1/32")
        );
        ns.set_ip_forward(true);
        assert_eq!(
            ns.exec_ok(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
            "1"
        );
        spawned = ns.spawn("sleeper", &["sleep", "600"]);
        assert!(pid_alive(spawned));
        // a detached process the guard did not start: the drop sweeps it by PID
        ns.exec_ok(&["sh", "-c", "sleep 601 >/dev/null 2>&1 &"]);
        let pids = ns.pids();
        stray = *pids
            .iter()
            .find(|p| **p != spawned)
            .expect("the detached sleep");
        assert!(ns.md5_counters().total() == 0);
    }
    assert!(!Netns::exists(&name), "{name} still exists");
    assert!(!pid_alive(spawned), "spawned pid {spawned} survived");
    assert!(!pid_alive(stray), "stray pid {stray} survived");

    let name = std::sync::Mutex::new(String::new());
    let r = std::panic::catch_unwind(|| {
        let ns = Netns::new("panic");
        *name.lock().unwrap() = ns.name().to_string();
        panic!("test failure inside the namespace");
    });
    assert!(r.is_err());
    let name = name.into_inner().unwrap();
    assert!(
        !name.is_empty() && !Netns::exists(&name),
        "{name} survived a panic"
    );
}

/// BIRD (198.18.0.1) and FRR (198.18.0.2) on `lo` of one namespace, port 179, MD5 with
/// the given passwords. BIRD listens, FRR connects.
fn md5_pair(ns: &Netns, bird_pw: &str, frr_pw: &str, hold: u16) -> (Bird, Frr) {
    let (ba, fa) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    ns.add_addr("lo", &format!("{ba}/32"));
    ns.add_addr("lo", &format!("{fa}/32"));
    let b = SpeakerConfig::in_netns(ns, ba, 65001).with_originate("198.19.1.0/26", "");
    let f = SpeakerConfig::in_netns(ns, fa, 65002).with_originate("198.19.2.0/26", "");
    let b = b.with_neighbor(
        Neighbor::to(&f)
            .password(bird_pw)
            .multihop(true)
            .hold(hold)
            .passive(),
    );
    let f = f.with_neighbor(Neighbor::to(&b).password(frr_pw).multihop(true).hold(hold));
    (Bird::start(b), Frr::start(f))
}

/// (d) MD5 with the right password on both sides comes up.
#[test]
fn md5_bird_frr_in_netns_right_password() {
    let ns = Netns::new("md5ok");
    let (bird, frr) = md5_pair(&ns, "s3cret", "s3cret", 9);
    let (ba, fa) = (ip("198.18.0.1"), ip("198.18.0.2"));
    frr.wait_established(ba, T);
    bird.wait_established(fa, T);
    frr.wait_route_via("198.19.1.0/26", "198.18.0.1", T);
    bird.wait_route("198.19.2.0/26", T);
    println!("md5 counters with matching keys: {:?}", ns.md5_counters());
}

/// (d) With a wrong password the session never comes up and the namespace's TCP MD5
/// counters grow (the kernel drops the segments silently).
#[test]
fn md5_bird_frr_in_netns_wrong_password() {
    let ns = Netns::new("md5bad");
    let before = ns.md5_counters();
    let (bird, frr) = md5_pair(&ns, "s3cret", "wrong", 9);
    let (ba, fa) = (ip("198.18.0.1"), ip("198.18.0.2"));
    assert_stays(
        "no Established session with mismatched MD5 keys",
        secs(6),
        POLL,
        || {
            for (who, est, st) in [
                (
                    "frr",
                    frr.is_established(&ba.into()),
                    frr.neighbor_state(ba),
                ),
                ("bird", bird.is_established(&fa.into()), bird.bgp_state(fa)),
            ] {
                if est {
                    return Err(format!("{who} is {st:?}"));
                }
            }
            Ok(())
        },
    );
    let after = ns.md5_counters();
    println!(
        "md5 counters: before {before:?}, after {after:?}; frr {:?}, bird {:?}",
        frr.neighbor_state(ba),
        bird.bgp_state(fa)
    );
    assert!(
        after.failure > before.failure || after.total() > before.total(),
        "{before:?} -> {after:?}"
    );
}

/// (e) SIGSTOP on BIRD: FRR (hold 3 s, keepalive 1 s) drops the session after its hold
/// time with Hold Timer Expired; SIGCONT brings it back.
#[test]
fn sigstop_bird_expires_frr_hold_timer() {
    let bcfg = SpeakerConfig::loopback(65001).with_originate("198.19.1.0/26", "192.0.2.1");
    let fcfg = SpeakerConfig::loopback(65002);
    let (baddr, faddr) = (bcfg.addr(), fcfg.addr());
    let bcfg = bcfg.with_neighbor(Neighbor::to(&fcfg).hold(3).keepalive(1).passive());
    let fcfg = fcfg.with_neighbor(Neighbor::to(&bcfg).hold(3).keepalive(1));
    let bird = Bird::start(bcfg);
    let frr = Frr::start(fcfg);
    frr.wait_established(baddr, T);
    bird.wait_established(faddr, T);
    frr.wait_route_via("198.19.1.0/26", "192.0.2.1", T);

    let t0 = Instant::now();
    bird.freeze();
    let st = frr.wait_not_established(baddr, secs(10));
    let dt = t0.elapsed();
    let nj = frr.neighbor_json(baddr).unwrap().to_string();
    println!(
        "FRR left Established after {dt:?} (state {st}); {}",
        &nj[..nj.len().min(400)]
    );
    assert!(
        dt >= Duration::from_millis(1500),
        "dropped too early: {dt:?}"
    );
    assert!(
        nj.contains("Hold Timer Expired"),
        "no hold timer expiry in FRR's neighbor state: {nj}"
    );
    frr.wait_no_route("198.19.1.0/26", secs(5));

    bird.thaw();
    frr.wait_established(baddr, T);
    bird.wait_established(faddr, T);
    frr.wait_route_via("198.19.1.0/26", "192.0.2.1", T);
}

/// Two namespaces joined by a veth (198.18.1.0/24): BIRD (`protocol kernel`) and FRR (with
/// zebra) on directly connected addresses, port 179; each installs the other's prefix in
/// its namespace's FIB.
#[test]
fn fib_programming_in_netns() {
    let a = Netns::new("fiba");
    let b = Netns::new("fibb");
    Netns::veth(&a, "a0", &b, "b0");
    a.add_addr("a0", "198.18.1.1/24");
    b.add_addr("b0", "198.18.1.2/24");
    let (aa, ba) = (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2));
    let acfg = SpeakerConfig::in_netns(&a, aa, 65001)
        .with_originate("198.19.1.0/26", "")
        .with_fib();
    let bcfg = SpeakerConfig::in_netns(&b, ba, 65002)
        .with_originate("198.19.2.0/26", "")
        .with_fib();
    let acfg = acfg.with_neighbor(Neighbor::to(&bcfg).passive());
    let bcfg = bcfg.with_neighbor(Neighbor::to(&acfg));
    let bird = Bird::start(acfg);
    let frr = Frr::start(bcfg);
    frr.wait_established(aa, T);
    bird.wait_established(ba, T);
    bird.wait_route_via("198.19.2.0/26", "198.18.1.2", T);
    frr.wait_route_via("198.19.1.0/26", "198.18.1.1", T);
    fn in_fib<'a>(
        ns: &'a Netns,
        prefix: &'a str,
        via: &'a str,
    ) -> impl FnMut() -> Result<(), String> + 'a {
        move || {
            let routes = ns.ip(&["-4", "route", "show", "table", "main"])?;
            let hit = routes
                .lines()
                .any(|l| l.starts_with(prefix) && l.contains(&format!("via {via} ")));
            if hit { Ok(()) } else { Err(routes) }
        }
    }
    wait_for(
        "BIRD to install FRR's prefix",
        T,
        POLL,
        in_fib(&a, "198.19.2.0/26", "198.18.1.2"),
    );
    wait_for(
        "zebra to install BIRD's prefix",
        T,
        POLL,
        in_fib(&b, "198.19.1.0/26", "198.18.1.1"),
    );
    println!("{}\n{}", a.ip_ok(&["route"]), b.ip_ok(&["route"]));
}

//! Calico's node-to-node mesh: every node an iBGP peer of every other, each announcing its
//! own block.

use crate::sim::{NbrCfg, Net, Sid, SpeakerCfg};
use crate::{AS, block, ip};
use tortie_bgp::fsm::State;

/// `n` speakers 198.18.0.1..n, all peered; speaker `i` originates block `i`.
fn mesh(n: usize, both_active: bool) -> (Net, Vec<Sid>) {
    let mut net = Net::new();
    let s: Vec<Sid> = (0..n)
        .map(|i| net.add(SpeakerCfg::new(&format!("node{i}"), AS, ip(i as u8 + 1))))
        .collect();
    for i in 0..n {
        for j in i + 1..n {
            if both_active {
                let active = NbrCfg {
                    passive: Some(false),
                    ..NbrCfg::default()
                };
                net.peer_with(s[i], s[j], active.clone(), active);
            } else {
                net.peer(s[i], s[j]);
            }
        }
    }
    for (i, &x) in s.iter().enumerate() {
        net.originate(x, &block(i));
    }
    net.run_until_quiet();
    (net, s)
}

fn assert_converged(net: &Net, s: &[Sid]) {
    for (i, &x) in s.iter().enumerate() {
        for (j, &y) in s.iter().enumerate() {
            if i == j {
                assert!(net.fib_route(x, &block(i)).unwrap().local);
                continue;
            }
            assert_eq!(net.state(x, y), State::Established);
            let b = block(j);
            assert_eq!(net.best(x, &b), vec![net.addr(y)], "{} {b}", net.name(x));
            assert_eq!(net.best_from(x, &b), vec![Some(net.addr(y))]);
            assert_eq!(net.fib_route(x, &b).unwrap().next_hops, vec![net.addr(y)]);
        }
        assert_eq!(net.fib(x).len(), s.len(), "{}", net.name(x));
    }
}

#[test]
fn mesh_of_5_every_node_learns_every_block_via_its_originator() {
    let (net, s) = mesh(5, false);
    assert_converged(&net, &s);
}

#[test]
fn mesh_of_5_with_both_sides_connecting_converges_through_collisions() {
    let (net, s) = mesh(5, true);
    assert_converged(&net, &s);
}

#[test]
fn mesh_never_readvertises_ibgp_routes_to_ibgp_peers() {
    let (net, s) = mesh(5, false);
    for (i, &x) in s.iter().enumerate() {
        for (j, &y) in s.iter().enumerate() {
            if i == j {
                continue;
            }
            // Each node holds one path per remote block: only the originator's.
            assert_eq!(net.rib_paths(x, &block(j)).len(), 1);
            // On the wire from x to y: x's own block once, then End-of-RIB. Nothing else.
            let announced: Vec<String> = net
                .announced(x, y)
                .iter()
                .map(|(p, _)| p.to_string())
                .collect();
            assert_eq!(
                announced,
                vec![block(i)],
                "{} -> {}",
                net.name(x),
                net.name(y)
            );
            let updates = net.updates(x, y);
            assert_eq!(updates.len(), 2, "{} -> {}", net.name(x), net.name(y));
            assert!(updates.iter().any(|u| u.as_end_of_rib().is_some()));
        }
    }
}

#[test]
fn mesh_withdrawal_reaches_every_node() {
    let (mut net, s) = mesh(5, false);
    net.withdraw(s[0], &block(0));
    net.run_until_quiet();
    for &x in &s {
        assert!(net.rib_paths(x, &block(0)).is_empty(), "{}", net.name(x));
        assert!(net.fib_route(x, &block(0)).is_none());
    }
    for &x in &s[1..] {
        assert_eq!(net.fib_history(x, &block(0)).last(), Some(&None));
    }
}

#[test]
fn mesh_is_quiet_once_converged() {
    let (mut net, s) = mesh(5, false);
    net.clear_wire();
    net.advance(std::time::Duration::from_secs(300));
    // Only KEEPALIVEs: no UPDATE, no session flap.
    assert!(net.wire().iter().all(|m| m.kind == 4));
    assert!(!net.wire().is_empty());
    assert_converged(&net, &s);
}

#[test]
fn mesh_node_crash_withdraws_its_block_and_restart_brings_it_back() {
    let (mut net, s) = mesh(5, false);
    // node2 connects out to node3 and node4 and waits for node0 and node1.
    net.kill(s[2]);
    net.run_until_quiet();
    for &x in s.iter().filter(|&&x| x != s[2]) {
        assert!(net.rib_paths(x, &block(2)).is_empty(), "{}", net.name(x));
        assert!(net.fib_route(x, &block(2)).is_none());
        assert_eq!(net.fib(x).len(), 4);
    }
    net.advance(std::time::Duration::from_secs(20));
    net.restart(s[2]);
    net.originate(s[2], &block(2));
    net.advance(std::time::Duration::from_secs(20));
    assert_converged(&net, &s);
}

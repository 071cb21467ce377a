//! The change stream to the dataplane is coalesced: whatever happens to a prefix between two
//! `take_fib_changes` reads, the next read holds it at most once, in its final state.

use crate::sim::{Net, Sid, SpeakerCfg, net as prefix};
use crate::{AS, addr, attrs, ip};
use tortie_bgp::wire::{Nlri, Update};

const P: &str = "198.19.7.0/24";
const FLAPS: usize = 1000;

fn pair() -> (Net, Sid, Sid) {
    let mut net = Net::new();
    let a = net.add(SpeakerCfg::new("A", AS, ip(1)));
    let b = net.add(SpeakerCfg::new("B", AS, ip(2)));
    net.peer(a, b);
    net.run_until_quiet();
    (net, a, b)
}

fn announce(med: u32) -> Update {
    Update {
        attrs: attrs(|a| {
            a.next_hop = Some(ip(2));
            a.local_pref = Some(100);
            a.med = Some(med);
        })
        .unwrap(),
        nlri: vec![Nlri::new(P.parse().unwrap())],
        ..Update::default()
    }
}

fn withdraw() -> Update {
    Update {
        withdrawn: vec![Nlri::new(P.parse().unwrap())],
        ..Update::default()
    }
}

/// For each change-stream read of `s` that mentions P, how many entries for P it holds.
fn per_read(net: &Net, s: Sid) -> Vec<usize> {
    net.fib_reads(s)
        .iter()
        .map(|(_, r)| r.iter().filter(|c| c.prefix == prefix(P)).count())
        .filter(|&n| n > 0)
        .collect()
}

#[test]
fn flap_storm_from_a_peer_yields_one_change_with_the_final_state() {
    let (mut net, a, b) = pair();
    // 1000 announce/withdraw pairs, then a last announcement, all in one read of A's socket.
    let mut storm = Vec::new();
    for i in 0..FLAPS {
        storm.push(announce(i as u32));
        storm.push(withdraw());
    }
    storm.push(announce(7));
    net.send_raw(b, a, &storm);
    net.run_until_quiet();
    assert_eq!(per_read(&net, a), vec![1], "one read, one entry");
    let h = net.fib_history(a, P);
    assert_eq!(h[0].as_ref().unwrap().next_hops, vec![addr(2)]);
    assert_eq!(net.rib_paths(a, P)[0].attrs.attrs.med, Some(7));
}

#[test]
fn flap_storm_ending_withdrawn_yields_one_removal() {
    let (mut net, a, b) = pair();
    net.send_raw(b, a, &[announce(1)]);
    net.run_until_quiet();
    assert_eq!(net.fib_history(a, P).len(), 1);
    let mut storm = Vec::new();
    for i in 0..FLAPS {
        storm.push(withdraw());
        storm.push(announce(i as u32));
    }
    storm.push(withdraw());
    net.send_raw(b, a, &storm);
    net.run_until_quiet();
    assert_eq!(
        per_read(&net, a),
        vec![1, 1],
        "one more read with one entry for the storm"
    );
    let h = net.fib_history(a, P);
    assert_eq!(h[1], None);
    assert!(net.fib_route(a, P).is_none());
}

#[test]
fn flap_storm_of_a_local_prefix_yields_one_change_and_at_most_one_update() {
    let (mut net, a, b) = pair();
    net.clear_wire();
    net.with_rib(b, |rib| {
        for _ in 0..FLAPS {
            rib.originate(prefix(P), None);
            rib.withdraw_local(prefix(P));
        }
        rib.originate(prefix(P), None);
    });
    net.run_until_quiet();
    // B's own dataplane: one entry, local.
    assert_eq!(per_read(&net, b), vec![1]);
    let h = net.fib_history(b, P);
    assert!(h[0].as_ref().unwrap().local);
    // A: one UPDATE, one change.
    let sent: Vec<_> = net.announced(b, a);
    assert_eq!(sent.len(), 1);
    assert_eq!(net.updates(b, a).len(), 1);
    assert_eq!(per_read(&net, a), vec![1]);
    assert_eq!(net.best(a, P), vec![addr(2)]);
}

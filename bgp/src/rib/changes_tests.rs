//! The change queues under random churn: after every step the queues agree with the flags
//! and positions kept in the table (each prefix at most once per queue, empty entries only
//! while queued), and once everything is taken the dataplane, built from the change stream
//! alone, holds what the Loc-RIB says, and so do two listeners (one with ADD-PATH) built from
//! their UPDATEs alone.

use super::*;
use crate::wire::{AddPath, AsPath, MpNlri, MpReach, NextHop, Nlri, Origin, Update};
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::collections::BTreeMap;

const LOCAL_AS: u32 = 64512;

#[derive(Debug, Clone)]
enum Op {
    Announce {
        peer: usize,
        prefix: usize,
        path_id: u32,
        nh: u8,
        med: u32,
    },
    Withdraw {
        peer: usize,
        prefix: usize,
        path_id: u32,
    },
    /// This node's own IPv6 prefix.
    Local {
        prefix: usize,
        on: bool,
    },
    TakeFib(usize),
    ExportPass,
    TakeUpdates {
        listener: usize,
        max: usize,
    },
    /// The session of an announcing peer goes down (its paths go) and comes back.
    Bounce(usize),
    /// A listener's session goes down and comes back (a table walk).
    BounceListener(usize),
    /// One next hop becomes unreachable (or all reachable again) and the table is re-decided.
    Unreachable(Option<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3, 0usize..5, 0u32..2, 1u8..4, 0u32..2).prop_map(
            |(peer, prefix, path_id, nh, med)| Op::Announce { peer, prefix, path_id, nh, med }
        ),
        4 => (0usize..3, 0usize..5, 0u32..2)
            .prop_map(|(peer, prefix, path_id)| Op::Withdraw { peer, prefix, path_id }),
        2 => (0usize..2, any::<bool>()).prop_map(|(prefix, on)| Op::Local { prefix, on }),
        2 => (0usize..4).prop_map(Op::TakeFib),
        2 => Just(Op::ExportPass),
        2 => (0usize..2, 1usize..4).prop_map(|(listener, max)| Op::TakeUpdates { listener, max }),
        1 => (0usize..3).prop_map(Op::Bounce),
        1 => (0usize..2).prop_map(Op::BounceListener),
        1 => prop::option::of(1u8..4).prop_map(Op::Unreachable),
    ]
}

fn v4(i: usize) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, 0, i as u8, 0), 24).unwrap()
}

fn v6(i: usize) -> Ipv6Net {
    Ipv6Net::new(Ipv6Addr::new(0xfd00, i as u16, 0, 0, 0, 0, 0, 0), 64).unwrap()
}

fn next_hop(nh: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, nh)
}

fn session(bgp_id: u8, add_path: bool) -> SessionInfo {
    SessionInfo {
        bgp_id: Ipv4Addr::new(10, 9, 9, bgp_id),
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        tx: Ctx {
            as4: true,
            add_path: if add_path {
                AddPath::ALL
            } else {
                AddPath::default()
            },
            ..Ctx::default()
        },
        local_address: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
        peer_graceful_restart: None,
        extended_next_hop: false,
    }
}

struct Lab {
    rib: Rib,
    /// Two iBGP route reflector clients and one eBGP peer.
    peers: [PeerId; 3],
    /// Route reflector clients that announce nothing; the second uses ADD-PATH.
    listeners: [PeerId; 2],
    /// What the dataplane holds, from the change stream.
    fib: BTreeMap<IpNet, FibRoute>,
    /// What each listener holds, from its UPDATEs: (prefix, path id) -> next hop.
    heard: [BTreeMap<(IpNet, u32), IpAddr>; 2],
}

impl Lab {
    fn new() -> Lab {
        let mut cfg = RibConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, 1));
        cfg.cluster_id = Some(Ipv4Addr::new(198, 18, 0, 1));
        let mut rib = Rib::new(cfg);
        let mut peers = [0; 3];
        for (i, asn) in [LOCAL_AS, LOCAL_AS, 65001].into_iter().enumerate() {
            let mut p = RibPeer::new(IpAddr::V4(Ipv4Addr::new(10, 8, 0, 1 + i as u8)), asn);
            p.rr_client = asn == LOCAL_AS;
            peers[i] = rib.add_peer(p);
            rib.peer_up(peers[i], session(1 + i as u8, true));
        }
        let mut listeners = [0; 2];
        for (i, l) in listeners.iter_mut().enumerate() {
            let mut p = RibPeer::new(IpAddr::V4(Ipv4Addr::new(10, 8, 1, 1 + i as u8)), LOCAL_AS);
            p.rr_client = true;
            *l = rib.add_peer(p);
            rib.peer_up(*l, session(20 + i as u8, i == 1));
        }
        Lab {
            rib,
            peers,
            listeners,
            fib: BTreeMap::new(),
            heard: [BTreeMap::new(), BTreeMap::new()],
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Announce {
                peer,
                prefix,
                path_id,
                nh,
                med,
            } => {
                let path = if peer == 2 { vec![65001] } else { vec![] };
                let u = Update {
                    attrs: Attributes {
                        origin: Some(Origin::Igp),
                        as_path: Some(AsPath::sequence(path)),
                        next_hop: Some(next_hop(nh)),
                        med: Some(med),
                        ..Attributes::default()
                    },
                    nlri: vec![Nlri {
                        prefix: v4(prefix),
                        path_id: Some(path_id),
                    }],
                    ..Update::default()
                };
                self.rib.apply_update(self.peers[peer], &u).unwrap();
            }
            Op::Withdraw {
                peer,
                prefix,
                path_id,
            } => {
                let u = Update {
                    withdrawn: vec![Nlri {
                        prefix: v4(prefix),
                        path_id: Some(path_id),
                    }],
                    ..Update::default()
                };
                self.rib.apply_update(self.peers[peer], &u).unwrap();
            }
            Op::Local { prefix, on: true } => self.rib.originate(IpNet::V6(v6(prefix)), None),
            Op::Local { prefix, on: false } => self.rib.withdraw_local(IpNet::V6(v6(prefix))),
            Op::TakeFib(max) => self.take_fib(max),
            Op::ExportPass => self.rib.run_export_pass(),
            Op::TakeUpdates { listener, max } => self.take_updates(listener, max),
            Op::Bounce(peer) => {
                let id = self.peers[peer];
                self.rib.peer_down(id, false);
                self.rib.peer_up(id, session(1 + peer as u8, true));
            }
            Op::BounceListener(i) => {
                let id = self.listeners[i];
                self.rib.peer_down(id, false);
                // The listener drops what it had from us.
                self.heard[i].clear();
                self.rib.peer_up(id, session(20 + i as u8, i == 1));
            }
            Op::Unreachable(nh) => {
                let dead = nh.map(|n| IpAddr::V4(next_hop(n)));
                self.rib
                    .set_igp_cost(move |a| if Some(a) == dead { None } else { Some(0) });
                self.rib.redecide_all();
            }
        }
    }

    fn take_fib(&mut self, max: usize) {
        let batch = self.rib.take_fib_changes(max);
        assert!(batch.len() <= max);
        for c in batch {
            match c.route {
                Some(r) => self.fib.insert(c.prefix, r),
                None => self.fib.remove(&c.prefix),
            };
        }
    }

    fn take_updates(&mut self, i: usize, max: usize) {
        let heard = &mut self.heard[i];
        for u in self.rib.take_updates(self.listeners[i], max).unwrap() {
            for n in &u.withdrawn {
                heard.remove(&(IpNet::V4(n.prefix), n.path_id.unwrap_or(0)));
            }
            if let Some(MpNlri::Ipv6(v)) = u.mp_unreach.as_ref().map(|m| &m.nlri) {
                for n in v {
                    heard.remove(&(IpNet::V6(n.prefix), n.path_id.unwrap_or(0)));
                }
            }
            for n in &u.nlri {
                let nh = IpAddr::V4(u.attrs.next_hop.unwrap());
                heard.insert((IpNet::V4(n.prefix), n.path_id.unwrap_or(0)), nh);
            }
            if let Some(MpReach {
                next_hop,
                nlri: MpNlri::Ipv6(v),
            }) = &u.mp_reach
            {
                let nh = match *next_hop {
                    NextHop::V4(a) => IpAddr::V4(a),
                    NextHop::V6 { global, .. } => IpAddr::V6(global),
                };
                for n in v {
                    heard.insert((IpNet::V6(n.prefix), n.path_id.unwrap_or(0)), nh);
                }
            }
        }
    }

    /// Everything taken: the dataplane and the listeners agree with the Loc-RIB.
    fn drain_and_compare(&mut self) {
        while self.rib.fib_changes_pending() > 0 {
            self.take_fib(3);
        }
        self.rib.run_export_pass();
        for i in 0..2 {
            while self.rib.has_updates(self.listeners[i]) {
                self.take_updates(i, 3);
            }
        }
        self.rib.check_queues();
        assert_eq!(
            self.rib.empty_entries(),
            0,
            "empty entries left after draining"
        );

        let snapshot: BTreeMap<IpNet, FibRoute> = self
            .rib
            .fib_snapshot()
            .into_iter()
            .map(|c| (c.prefix, c.route.unwrap()))
            .collect();
        assert_eq!(self.fib, snapshot, "dataplane from the change stream");

        let routes = self.rib.routes(None);
        assert_eq!(routes.len(), self.rib.prefix_count());
        for (i, &l) in self.listeners.iter().enumerate() {
            let mut want = BTreeMap::new();
            for r in &routes {
                for o in self.rib.export_prefix(r.prefix, l) {
                    let id = if i == 1 { o.tx_path_id } else { 0 };
                    want.insert((r.prefix, id), o.next_hop);
                }
            }
            assert_eq!(self.heard[i], want, "listener {i} from its UPDATEs");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn queues_under_churn(ops in prop::collection::vec(op(), 1..80)) {
        let mut lab = Lab::new();
        // The listeners' initial tables (empty) and End-of-RIB.
        for i in 0..2 {
            while lab.rib.has_updates(lab.listeners[i]) {
                lab.take_updates(i, 10);
            }
        }
        for op in &ops {
            lab.apply(op);
            lab.rib.check_queues();
            let live = lab.rib.routes(None).len();
            prop_assert_eq!(lab.rib.prefix_count(), live);
            prop_assert!(lab.rib.fib_changes_pending() <= live + lab.rib.empty_entries());
        }
        lab.drain_and_compare();
    }
}

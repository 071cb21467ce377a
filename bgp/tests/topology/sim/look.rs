//! What the tests look at: routes, the FIB as the change stream built it, session states,
//! and every message that crossed a pipe.

use super::{Net, Sid, net};
use bytes::Bytes;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;
use tortie_bgp::fsm::State;
use tortie_bgp::rib::{FibRoute, PathView, Rib, RouteChange};
use tortie_bgp::wire::{self, Attributes, Ctx, Message, Notification, Update};

/// One BGP message as it crossed a pipe.
#[derive(Debug, Clone)]
pub struct Msg {
    pub at: Instant,
    pub from: Sid,
    pub to: Sid,
    /// The message type octet (1 OPEN, 2 UPDATE, 3 NOTIFICATION, 4 KEEPALIVE, 5 ROUTE-REFRESH).
    pub kind: u8,
    pub frame: Bytes,
    pub(super) ctx: Ctx,
}

impl Msg {
    pub fn decode(&self) -> Message {
        wire::decode(&self.frame, &self.ctx).expect("a message on the wire decodes")
    }

    pub fn update(&self) -> Option<Update> {
        match (self.kind, self.decode()) {
            (2, Message::Update(u)) => Some(u),
            _ => None,
        }
    }

    pub fn notification(&self) -> Option<Notification> {
        match (self.kind, self.decode()) {
            (3, Message::Notification(n)) => Some(n),
            _ => None,
        }
    }
}

impl Net {
    pub fn name(&self, s: Sid) -> &str {
        &self.speakers[s].cfg.name
    }

    pub fn addr(&self, s: Sid) -> IpAddr {
        IpAddr::V4(self.speakers[s].cfg.address)
    }

    pub fn router_id(&self, s: Sid) -> Ipv4Addr {
        self.speakers[s].cfg.router_id
    }

    pub fn rib(&self, s: Sid) -> &Rib {
        &self.speakers[s].rib
    }

    pub(super) fn nbr_of(&self, a: Sid, b: Sid) -> Option<usize> {
        self.speakers[a].nbrs.iter().position(|n| n.peer == b)
    }

    pub(super) fn nbr(&self, a: Sid, b: Sid) -> usize {
        self.nbr_of(a, b)
            .unwrap_or_else(|| panic!("{} has no session with {}", self.name(a), self.name(b)))
    }

    pub fn state(&self, a: Sid, b: Sid) -> State {
        self.speakers[a].nbrs[self.nbr(a, b)].session.state()
    }

    /// Every path `s` holds for exactly `prefix`, best first.
    pub fn rib_paths(&self, s: Sid, prefix: &str) -> Vec<PathView> {
        let p = net(prefix);
        self.speakers[s]
            .rib
            .routes(Some(p))
            .into_iter()
            .filter(|r| r.prefix == p)
            .flat_map(|r| r.paths)
            .collect()
    }

    /// The next hops of the multipath group for `prefix`, best first (empty: no route).
    pub fn best(&self, s: Sid, prefix: &str) -> Vec<IpAddr> {
        self.rib_paths(s, prefix)
            .into_iter()
            .filter(|p| p.multipath)
            .map(|p| p.attrs.next_hop)
            .collect()
    }

    /// The peers the multipath group's paths came from, best first (`None`: local).
    pub fn best_from(&self, s: Sid, prefix: &str) -> Vec<Option<IpAddr>> {
        self.rib_paths(s, prefix)
            .into_iter()
            .filter(|p| p.multipath)
            .map(|p| p.from)
            .collect()
    }

    /// What the dataplane of `s` holds: the change stream applied so far.
    pub fn fib(&self, s: Sid) -> &BTreeMap<IpNet, FibRoute> {
        &self.speakers[s].fib
    }

    pub fn fib_route(&self, s: Sid, prefix: &str) -> Option<&FibRoute> {
        self.speakers[s].fib.get(&net(prefix))
    }

    /// Every change-stream entry `s` read for `prefix`, in order.
    pub fn fib_history(&self, s: Sid, prefix: &str) -> Vec<Option<FibRoute>> {
        let p = net(prefix);
        self.speakers[s]
            .fib_reads
            .iter()
            .flat_map(|(_, r)| r.iter())
            .filter(|c| c.prefix == p)
            .map(|c| c.route.clone())
            .collect()
    }

    /// Every non-empty change-stream read of `s`, with its time.
    pub fn fib_reads(&self, s: Sid) -> &[(Instant, Vec<RouteChange>)] {
        &self.speakers[s].fib_reads
    }

    pub fn max_prefix_stops(&self, s: Sid) -> u32 {
        self.speakers[s].max_prefix_stops
    }

    /// Every message sent so far, in order.
    pub fn wire(&self) -> &[Msg] {
        &self.wire
    }

    pub fn clear_wire(&mut self) {
        self.wire.clear();
    }

    /// The UPDATEs `from` sent to `to`, decoded.
    pub fn updates(&self, from: Sid, to: Sid) -> Vec<Update> {
        self.wire
            .iter()
            .filter(|m| m.from == from && m.to == to)
            .filter_map(Msg::update)
            .collect()
    }

    /// The prefixes `from` announced to `to`, with the attributes, in order.
    pub fn announced(&self, from: Sid, to: Sid) -> Vec<(IpNet, Attributes)> {
        self.updates(from, to)
            .into_iter()
            .flat_map(|u| {
                let a = u.attrs.clone();
                u.nlri
                    .into_iter()
                    .map(move |n| (IpNet::V4(n.prefix), a.clone()))
            })
            .collect()
    }

    pub fn notifications(&self, from: Sid, to: Sid) -> Vec<&Msg> {
        self.wire
            .iter()
            .filter(|m| m.from == from && m.to == to && m.kind == 3)
            .collect()
    }
}

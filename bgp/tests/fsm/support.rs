//! A harness for the session state machine: simulated time, peer messages built with the codec,
//! and what the session sent decoded back into messages for assertions.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use tortie_bgp::fsm::{Action, ConnId, Down, Event, PeerConfig, Session, State, Stop, Timer};
use tortie_bgp::wire::{
    self, AfiSafi, AsPath, Attributes, Capability, Ctx, Family, Message, Nlri, Notification, Open,
    Origin, RouteRefresh, RouteRefreshSubtype, Update,
};

pub const LOCAL_AS: u32 = 64512;
pub const PEER_AS: u32 = 64513;
pub const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const PEER_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// RFC 4271 section 8.2.2: the large hold time while waiting for the peer's OPEN.
pub const OPEN_HOLD: Duration = Duration::from_secs(240);

/// The inbound connection id the tests hand to [`Event::Accepted`].
pub const IN: ConnId = ConnId {
    inbound: true,
    n: 7,
};

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// An eBGP peer with the defaults of [`PeerConfig::new`]: hold 90 s, connect retry 5 s, idle
/// hold 1 s doubling to 60 s, stable after 60 s.
pub fn ebgp() -> PeerConfig {
    PeerConfig::new(LOCAL_AS, PEER_AS, LOCAL_ID)
}

/// eBGP offering enhanced route refresh (RFC 7313), which is off by default.
pub fn ebgp_enhanced_rr() -> PeerConfig {
    let mut c = ebgp();
    c.capabilities.enhanced_route_refresh = true;
    c
}

pub fn ibgp() -> PeerConfig {
    PeerConfig::new(LOCAL_AS, LOCAL_AS, LOCAL_ID)
}

pub fn passive() -> PeerConfig {
    PeerConfig {
        passive: true,
        ..ebgp()
    }
}

pub fn delay_open(d: Duration) -> PeerConfig {
    PeerConfig {
        delay_open: Some(d),
        ..ebgp()
    }
}

/// One session and the simulated clock that drives it. The session never reads a clock: each
/// event goes in with `now`, which only the test moves.
pub struct Harness {
    pub session: Session,
    pub t0: Instant,
    pub now: Instant,
}

impl Harness {
    pub fn new(cfg: PeerConfig) -> Self {
        let t0 = Instant::now();
        Harness {
            session: Session::new(cfg),
            t0,
            now: t0,
        }
    }

    pub fn state(&self) -> State {
        self.session.state()
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Moves the clock to `at` (never backwards).
    pub fn advance_to(&mut self, at: Instant) {
        assert!(at >= self.now, "time runs forwards");
        self.now = at;
    }

    pub fn handle(&mut self, ev: Event<'_>) -> Vec<Action> {
        self.session.handle(ev, self.now)
    }

    pub fn start(&mut self) -> Vec<Action> {
        self.handle(Event::Start)
    }

    pub fn stop(&mut self, stop: Stop) -> Vec<Action> {
        self.handle(Event::Stop(stop))
    }

    pub fn fire(&mut self, t: Timer) -> Vec<Action> {
        self.handle(Event::Timer(t))
    }

    /// Moves the clock to the deadline the session set for `t` in `acts`, then fires it.
    pub fn fire_at_deadline(&mut self, acts: &[Action], t: Timer) -> Vec<Action> {
        let at = timer_set(acts, t).unwrap_or_else(|| panic!("{t:?} was not armed in {acts:#?}"));
        self.advance_to(at);
        self.fire(t)
    }

    pub fn data(&mut self, id: ConnId, bytes: &[u8]) -> Vec<Action> {
        self.handle(Event::Data(id, bytes))
    }

    pub fn msg(&mut self, id: ConnId, m: &Message) -> Vec<Action> {
        let bytes = enc(m);
        self.data(id, &bytes)
    }

    pub fn connected(&mut self, id: ConnId) -> Vec<Action> {
        self.handle(Event::Connected(id))
    }

    pub fn accepted(&mut self, id: ConnId) -> Vec<Action> {
        self.handle(Event::Accepted(id))
    }

    pub fn closed(&mut self, id: ConnId) -> Vec<Action> {
        self.handle(Event::Closed(id))
    }

    // --- Driving a session to a state ----------------------------------------------------------

    /// ManualStart of an active peer: returns the outbound connection being opened (Connect).
    pub fn reach_connect(&mut self) -> ConnId {
        let acts = self.start();
        let id = connect_of(&acts).expect("ManualStart connects out");
        assert_eq!(self.state(), State::Connect);
        id
    }

    /// Connect, then TCP up: our OPEN is out (OpenSent).
    pub fn reach_open_sent(&mut self) -> ConnId {
        let id = self.reach_connect();
        self.connected(id);
        assert_eq!(self.state(), State::OpenSent);
        id
    }

    /// OpenSent, then the peer's OPEN `open` (OpenConfirm).
    pub fn reach_open_confirm_with(&mut self, open: &Open) -> ConnId {
        let id = self.reach_open_sent();
        let acts = self.msg(id, &Message::Open(open.clone()));
        assert_eq!(self.state(), State::OpenConfirm, "{acts:#?}");
        id
    }

    pub fn reach_open_confirm(&mut self) -> ConnId {
        let open = peer_open();
        self.reach_open_confirm_with(&open)
    }

    /// OpenConfirm, then the peer's KEEPALIVE (Established). Returns the connection and the
    /// actions of the KEEPALIVE.
    pub fn reach_established_with(&mut self, open: &Open) -> (ConnId, Vec<Action>) {
        let id = self.reach_open_confirm_with(open);
        let acts = self.msg(id, &Message::Keepalive);
        assert_eq!(self.state(), State::Established, "{acts:#?}");
        (id, acts)
    }

    pub fn reach_established(&mut self) -> ConnId {
        self.reach_established_with(&peer_open()).0
    }

    /// A failure that leaves the session in Idle with the idle hold armed; returns the actions.
    /// A session failure after TCP came up: our connection `id` (still connecting) comes up,
    /// and the peer answers our OPEN with NOTIFICATION Cease / Out of Resources.
    pub fn fail_session(&mut self, id: ConnId) -> Vec<Action> {
        self.connected(id);
        let acts = self.msg(
            id,
            &Message::Notification(tortie_bgp::wire::Notification::new(6, 8, Vec::new())),
        );
        assert_eq!(self.state(), State::Idle);
        acts
    }
}

// --- Messages --------------------------------------------------------------------------------

pub fn enc(m: &Message) -> Vec<u8> {
    wire::encode_to_vec(m, &Ctx::default()).expect("test message encodes")
}

pub fn enc_with(m: &Message, ctx: &Ctx) -> Vec<u8> {
    wire::encode_to_vec(m, ctx).expect("test message encodes")
}

/// What a typical peer (BIRD, FRR) advertises: IPv4 unicast, route refresh, 4-octet AS.
pub fn peer_caps(asn: u32) -> Vec<Capability> {
    vec![
        Capability::Multiprotocol(AfiSafi::from(Family::Ipv4Unicast)),
        Capability::RouteRefresh,
        Capability::FourOctetAs { asn },
    ]
}

/// The peer's OPEN: AS [`PEER_AS`], hold 90 s, id [`PEER_ID`], [`peer_caps`].
pub fn peer_open() -> Open {
    Open::new(PEER_AS, 90, PEER_ID, peer_caps(PEER_AS))
}

pub fn open_with(asn: u32, hold: u16, id: Ipv4Addr, caps: Vec<Capability>) -> Open {
    Open::new(asn, hold, id, caps)
}

/// An OPEN as raw bytes with any version (the codec only encodes version 4).
pub fn open_bytes_with_version(version: u8, open: &Open) -> Vec<u8> {
    let mut b = enc(&Message::Open(open.clone()));
    b[19] = version;
    b
}

pub fn keepalive() -> Vec<u8> {
    enc(&Message::Keepalive)
}

pub fn notification(code: u8, subcode: u8, data: Vec<u8>) -> Message {
    Message::Notification(Notification::new(code, subcode, data))
}

pub fn route_refresh(family: Family, subtype: RouteRefreshSubtype) -> Message {
    Message::RouteRefresh(RouteRefresh {
        afi: family.afi(),
        safi: family.safi(),
        subtype,
    })
}

/// An UPDATE announcing `prefix` from [`PEER_AS`] via 198.18.1.2.
pub fn announce(prefix: &str) -> Update {
    let net: Ipv4Net = prefix.parse().expect("prefix");
    Update {
        attrs: Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![PEER_AS])),
            next_hop: Some(PEER_ID),
            ..Attributes::default()
        },
        nlri: vec![Nlri::new(net)],
        ..Update::default()
    }
}

/// The negotiated context of a session between [`peer_caps`] and the default local
/// capabilities: 4-octet AS on, nothing else.
pub fn as4_ctx() -> Ctx {
    Ctx {
        as4: true,
        ..Ctx::default()
    }
}

/// A raw UPDATE from its fields (withdrawn, attributes, NLRI), for malformed ones.
pub fn raw_update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    raw_msg(2, &body)
}

/// A message with a correct header around `body`.
pub fn raw_msg(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

// --- Reading actions -------------------------------------------------------------------------

/// Every message sent on `id`, decoded with the default context (fine for OPEN, KEEPALIVE,
/// NOTIFICATION, ROUTE-REFRESH).
pub fn sent(acts: &[Action], id: ConnId) -> Vec<Message> {
    sent_with(acts, id, &Ctx::default())
}

pub fn sent_with(acts: &[Action], id: ConnId, ctx: &Ctx) -> Vec<Message> {
    let mut out = Vec::new();
    for a in acts {
        if let Action::Send(to, bytes) = a {
            if *to != id {
                continue;
            }
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let len = wire::frame_len(rest, ctx)
                    .expect("we frame correctly")
                    .expect("whole messages");
                out.push(wire::decode(&rest[..len], ctx).expect("we send valid messages"));
                rest = &rest[len..];
            }
        }
    }
    out
}

/// The one NOTIFICATION sent on `id`.
pub fn notification_sent(acts: &[Action], id: ConnId) -> Notification {
    let notes: Vec<Notification> = sent(acts, id)
        .into_iter()
        .filter_map(|m| match m {
            Message::Notification(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(notes.len(), 1, "one NOTIFICATION on {id}: {acts:#?}");
    notes.into_iter().next().unwrap()
}

pub fn code_sub(n: &Notification) -> (u8, u8) {
    (n.code, n.subcode)
}

pub fn nothing_sent(acts: &[Action]) -> bool {
    !acts.iter().any(|a| matches!(a, Action::Send(..)))
}

pub fn open_sent(acts: &[Action], id: ConnId) -> Open {
    sent(acts, id)
        .into_iter()
        .find_map(|m| match m {
            Message::Open(o) => Some(o),
            _ => None,
        })
        .unwrap_or_else(|| panic!("an OPEN on {id}: {acts:#?}"))
}

pub fn kinds(acts: &[Action], id: ConnId) -> Vec<&'static str> {
    sent(acts, id)
        .iter()
        .map(|m| match m {
            Message::Open(_) => "OPEN",
            Message::Update(_) => "UPDATE",
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh(_) => "ROUTE-REFRESH",
        })
        .collect()
}

/// The deadline of the last `SetTimer` of `t`, unless a later `ClearTimer` disarmed it.
pub fn timer_set(acts: &[Action], t: Timer) -> Option<Instant> {
    let mut at = None;
    for a in acts {
        match a {
            Action::SetTimer(x, when) if *x == t => at = Some(*when),
            Action::ClearTimer(x) if *x == t => at = None,
            _ => {}
        }
    }
    at
}

pub fn timer_cleared(acts: &[Action], t: Timer) -> bool {
    acts.iter()
        .any(|a| matches!(a, Action::ClearTimer(x) if *x == t))
}

pub fn closed(acts: &[Action], id: ConnId) -> bool {
    acts.iter()
        .any(|a| matches!(a, Action::Close(x) if *x == id))
}

pub fn connect_of(acts: &[Action]) -> Option<ConnId> {
    acts.iter().find_map(|a| match a {
        Action::Connect(id) => Some(*id),
        _ => None,
    })
}

pub fn downs(acts: &[Action]) -> Vec<Down> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Down(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

pub fn the_down(acts: &[Action]) -> Down {
    let d = downs(acts);
    assert_eq!(d.len(), 1, "one Down: {acts:#?}");
    d.into_iter().next().unwrap()
}

pub fn updates(acts: &[Action]) -> Vec<Update> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Update(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

pub fn refreshes(acts: &[Action]) -> Vec<RouteRefresh> {
    acts.iter()
        .filter_map(|a| match a {
            Action::RouteRefresh(r) => Some(*r),
            _ => None,
        })
        .collect()
}

pub fn established(acts: &[Action]) -> Option<tortie_bgp::fsm::Negotiated> {
    acts.iter().find_map(|a| match a {
        Action::Established(n) => Some((**n).clone()),
        _ => None,
    })
}

pub fn state_change(acts: &[Action]) -> Option<(State, State)> {
    acts.iter().find_map(|a| match a {
        Action::StateChanged { from, to } => Some((*from, *to)),
        _ => None,
    })
}

/// Whether `at` lies within `base` scaled by 0.75..=1.0 after `from` (the jitter of RFC 4271
/// section 10).
pub fn jittered(from: Instant, at: Instant, base: Duration) -> bool {
    let d = at - from;
    d >= base.mul_f64(0.75) && d <= base
}

/// Bytes of several messages in one buffer.
pub fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

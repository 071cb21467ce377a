//! Connection collision detection (RFC 4271 section 6.8, RFC 6286 section 2.3): of two
//! connections with the same peer, the one opened by the speaker with the higher BGP
//! Identifier survives; the other is closed with Cease / Connection Collision Resolution
//! (RFC 4486). An Established session is not disturbed by a new connection, unless the peer
//! can restart gracefully (RFC 4724 section 4.2).

use std::net::Ipv4Addr;

use crate::support::*;
use tortie_bgp::fsm::{
    Action, ConnId, Down, GrConfig, LocalCapabilities, PeerConfig, State, Timer,
};
use tortie_bgp::wire::notification::cease;
use tortie_bgp::wire::{AfiSafi, Capability, Family, GrFamily, GracefulRestart, Message, Open};

/// Higher than [`LOCAL_ID`] (198.18.1.1).
const HIGHER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// Lower than [`LOCAL_ID`].
const LOWER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn open_from(id: Ipv4Addr) -> Message {
    Message::Open(open_with(PEER_AS, 90, id, peer_caps(PEER_AS)))
}

/// Our outbound connection and the peer's inbound one, both in OpenSent.
fn both_open_sent(cfg: PeerConfig) -> (Harness, ConnId) {
    let mut h = Harness::new(cfg);
    let out = h.reach_open_sent();
    let acts = h.accepted(IN);
    assert!(!closed(&acts, out));
    assert_eq!(kinds(&acts, IN), ["OPEN"]);
    (h, out)
}

fn assert_collision_loser(acts: &[Action], loser: ConnId) {
    let n = notification_sent(acts, loser);
    assert_eq!(code_sub(&n), (6, cease::CONNECTION_COLLISION_RESOLUTION));
    assert!(closed(acts, loser));
    assert!(timer_cleared(acts, Timer::Hold(loser)));
    assert!(
        downs(acts).is_empty(),
        "the session itself is not down: {acts:#?}"
    );
}

#[test]
fn collision_higher_peer_id_keeps_the_inbound_connection_when_its_open_comes_first_on_ours() {
    let (mut h, out) = both_open_sent(ebgp());
    let acts = h.msg(out, &open_from(HIGHER));
    assert_collision_loser(&acts, out);
    assert_eq!(h.state(), State::OpenSent);
    let acts = h.msg(IN, &open_from(HIGHER));
    assert_eq!(kinds(&acts, IN), ["KEEPALIVE"]);
    assert_eq!(h.state(), State::OpenConfirm);
    h.data(IN, &keepalive());
    assert_eq!(h.state(), State::Established);
}

#[test]
fn collision_higher_peer_id_keeps_the_inbound_connection_when_its_open_comes_first_on_theirs() {
    let (mut h, out) = both_open_sent(ebgp());
    let acts = h.msg(IN, &open_from(HIGHER));
    assert_collision_loser(&acts, out);
    assert_eq!(kinds(&acts, IN), ["KEEPALIVE"]);
    assert_eq!(h.state(), State::OpenConfirm);
}

#[test]
fn collision_lower_peer_id_keeps_our_outbound_connection_when_the_open_comes_first_on_ours() {
    let (mut h, out) = both_open_sent(ebgp());
    let acts = h.msg(out, &open_from(LOWER));
    assert_collision_loser(&acts, IN);
    assert_eq!(kinds(&acts, out), ["KEEPALIVE"]);
    assert_eq!(h.state(), State::OpenConfirm);
    h.data(out, &keepalive());
    assert_eq!(h.state(), State::Established);
}

#[test]
fn collision_lower_peer_id_keeps_our_outbound_connection_when_the_open_comes_first_on_theirs() {
    let (mut h, out) = both_open_sent(ebgp());
    let acts = h.msg(IN, &open_from(LOWER));
    assert_collision_loser(&acts, IN);
    assert_eq!(h.state(), State::OpenSent);
    h.msg(out, &open_from(LOWER));
    assert_eq!(h.state(), State::OpenConfirm);
}

/// Outbound in OpenConfirm (its OPEN exchange done), then the peer's connection arrives and
/// its OPEN follows: both OPENs exchanged when the collision is resolved.
fn outbound_open_confirm_then_inbound(peer_id: Ipv4Addr) -> (Harness, ConnId) {
    let mut h = Harness::new(ebgp());
    let out = h.reach_open_sent();
    h.msg(out, &open_from(peer_id));
    assert_eq!(h.state(), State::OpenConfirm);
    let acts = h.accepted(IN);
    assert_eq!(kinds(&acts, IN), ["OPEN"]);
    (h, out)
}

#[test]
fn collision_with_open_confirm_higher_peer_id_closes_our_connection() {
    let (mut h, out) = outbound_open_confirm_then_inbound(HIGHER);
    let acts = h.msg(IN, &open_from(HIGHER));
    assert_collision_loser(&acts, out);
    assert!(timer_cleared(&acts, Timer::Keepalive(out)));
    assert_eq!(kinds(&acts, IN), ["KEEPALIVE"]);
    assert_eq!(h.state(), State::OpenConfirm);
    let acts = h.data(IN, &keepalive());
    assert!(established(&acts).is_some());
}

#[test]
fn collision_with_open_confirm_lower_peer_id_closes_the_new_connection() {
    let (mut h, out) = outbound_open_confirm_then_inbound(LOWER);
    let acts = h.msg(IN, &open_from(LOWER));
    assert_collision_loser(&acts, IN);
    assert!(!closed(&acts, out));
    assert_eq!(h.state(), State::OpenConfirm);
    let acts = h.data(out, &keepalive());
    assert!(established(&acts).is_some());
}

#[test]
fn collision_with_equal_identifiers_keeps_the_connection_of_the_larger_as() {
    // RFC 6286 section 2.3 (eBGP may share identifiers). The peer's AS is larger: its
    // connection survives.
    let (mut h, out) = both_open_sent(ebgp());
    let acts = h.msg(out, &open_from(LOCAL_ID));
    assert_collision_loser(&acts, out);
    h.msg(IN, &open_from(LOCAL_ID));
    assert_eq!(h.state(), State::OpenConfirm);
}

#[test]
fn collision_with_equal_identifiers_keeps_our_connection_when_our_as_is_larger() {
    let cfg = PeerConfig::new(PEER_AS + 1, PEER_AS, LOCAL_ID);
    let (mut h, out) = both_open_sent(cfg);
    let acts = h.msg(out, &open_from(LOCAL_ID));
    assert_collision_loser(&acts, IN);
    assert_eq!(h.state(), State::OpenConfirm);
}

#[test]
fn establishing_one_connection_closes_the_other_with_collision_resolution() {
    // Ours is in OpenConfirm, the peer's has not sent its OPEN yet: ours reaches Established
    // first, and a collision with an Established connection closes the newer one.
    let (mut h, out) = outbound_open_confirm_then_inbound(HIGHER);
    let acts = h.data(out, &keepalive());
    assert!(established(&acts).is_some());
    assert_collision_loser(&acts, IN);
    assert_eq!(h.state(), State::Established);
}

#[test]
fn inbound_connection_while_established_is_closed() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let acts = h.accepted(IN);
    assert_eq!(acts, vec![Action::Close(IN)]);
    assert_eq!(h.state(), State::Established);
    assert_eq!(h.session.negotiated().unwrap().peer_id, PEER_ID);
    // The Established connection still works.
    let acts = h.data(
        id,
        &enc_with(&Message::Update(announce("198.19.0.0/26")), &as4_ctx()),
    );
    assert_eq!(updates(&acts).len(), 1);
}

fn gr_peer_open() -> Open {
    let mut caps = peer_caps(PEER_AS);
    caps.push(Capability::GracefulRestart(GracefulRestart {
        restart_state: false,
        notification: false,
        restart_time: 120,
        families: vec![GrFamily {
            afi_safi: AfiSafi::from(Family::Ipv4Unicast),
            forwarding_preserved: true,
        }],
    }));
    open_with(PEER_AS, 90, PEER_ID, caps)
}

fn gr_config() -> PeerConfig {
    PeerConfig {
        capabilities: LocalCapabilities {
            graceful_restart: Some(GrConfig {
                restart_time: 120,
                restarting: false,
                forwarding_preserved: true,
            }),
            ..LocalCapabilities::default()
        },
        ..ebgp()
    }
}

#[test]
fn inbound_connection_while_established_with_a_graceful_restart_peer_replaces_the_old_session() {
    let mut h = Harness::new(gr_config());
    let (old, _) = h.reach_established_with(&gr_peer_open());
    let acts = h.accepted(IN);
    assert!(closed(&acts, old));
    assert!(
        sent(&acts, old).is_empty(),
        "the old connection is gone; nothing is sent on it"
    );
    assert_eq!(the_down(&acts), Down::ConnectionClosed);
    assert!(timer_cleared(&acts, Timer::Hold(old)));
    assert_eq!(kinds(&acts, IN), ["OPEN"]);
    assert_eq!(
        timer_set(&acts, Timer::IdleHold),
        None,
        "no idle hold: the peer is back"
    );
    assert_eq!(
        state_change(&acts),
        Some((State::Established, State::OpenSent))
    );
    // The restarted peer's session comes up on the new connection.
    h.msg(IN, &Message::Open(gr_peer_open()));
    let acts = h.data(IN, &keepalive());
    assert!(established(&acts).is_some());
}

#[test]
fn inbound_connection_while_established_is_closed_when_only_we_do_graceful_restart() {
    let mut h = Harness::new(gr_config());
    h.reach_established();
    assert_eq!(h.accepted(IN), vec![Action::Close(IN)]);
    assert_eq!(h.state(), State::Established);
}

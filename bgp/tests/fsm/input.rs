//! Framing of the TCP byte stream: messages split across reads, several messages in one read,
//! bounded buffering, and length fields beyond the limit (RFC 4271 section 6.1, RFC 8654).

use crate::support::*;
use ipnet::Ipv4Net;
use tortie_bgp::fsm::{LocalCapabilities, PeerConfig, State};
use tortie_bgp::wire::{Capability, Ctx, Message, Nlri};

#[test]
fn a_message_split_across_several_reads_is_handled_once_complete() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let open = enc(&Message::Open(peer_open()));
    // Inside the marker, inside the length, inside the body.
    let (a, rest) = open.split_at(5);
    let (b, rest) = rest.split_at(12);
    let (c, d) = rest.split_at(10);
    for part in [a, b, c] {
        assert!(h.data(id, part).is_empty());
        assert_eq!(h.state(), State::OpenSent);
    }
    let acts = h.data(id, d);
    assert_eq!(kinds(&acts, id), ["KEEPALIVE"]);
    assert_eq!(h.state(), State::OpenConfirm);
    assert_eq!(h.session.buffered(id), Some(0));
}

#[test]
fn messages_fed_one_byte_at_a_time_bring_the_session_up() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let bytes = concat(&[enc(&Message::Open(peer_open())), keepalive()]);
    let mut all = Vec::new();
    for b in &bytes {
        all.extend(h.data(id, std::slice::from_ref(b)));
    }
    assert!(established(&all).is_some());
    assert_eq!(h.state(), State::Established);
}

#[test]
fn several_messages_in_one_read_are_all_handled_in_order() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let (u1, u2) = (announce("198.19.0.0/26"), announce("198.19.0.64/26"));
    let bytes = concat(&[
        enc(&Message::Open(peer_open())),
        keepalive(),
        enc_with(&Message::Update(u1.clone()), &as4_ctx()),
        keepalive(),
        enc_with(&Message::Update(u2.clone()), &as4_ctx()),
    ]);
    let acts = h.data(id, &bytes);
    assert!(established(&acts).is_some());
    assert_eq!(updates(&acts), vec![u1, u2]);
    let est = acts
        .iter()
        .position(|a| matches!(a, tortie_bgp::fsm::Action::Established(_)))
        .unwrap();
    let first = acts
        .iter()
        .position(|a| matches!(a, tortie_bgp::fsm::Action::Update(_)))
        .unwrap();
    assert!(est < first, "Established is reported before the routes");
    assert_eq!(h.session.buffered(id), Some(0));
}

#[test]
fn messages_after_a_fatal_error_in_the_same_read_are_dropped() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let mut bad = keepalive();
    bad[0] = 0;
    let bytes = concat(&[
        enc_with(&Message::Update(announce("198.19.0.0/26")), &as4_ctx()),
        bad,
        enc_with(&Message::Update(announce("198.19.0.64/26")), &as4_ctx()),
    ]);
    let acts = h.data(id, &bytes);
    assert_eq!(updates(&acts).len(), 1, "only the UPDATE before the error");
    assert_eq!(code_sub(&notification_sent(&acts, id)), (1, 1));
    assert_eq!(h.state(), State::Idle);
    assert_eq!(
        h.session.buffered(id),
        None,
        "the connection and its buffer are gone"
    );
}

#[test]
fn messages_after_a_notification_in_the_same_read_are_dropped() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let bytes = concat(&[
        enc(&notification(6, 2, vec![])),
        enc_with(&Message::Update(announce("198.19.0.0/26")), &as4_ctx()),
    ]);
    let acts = h.data(id, &bytes);
    assert!(updates(&acts).is_empty());
    assert!(nothing_sent(&acts));
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn an_incomplete_header_waits_for_more() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let ka = keepalive();
    assert!(h.data(id, &ka[..17]).is_empty());
    assert_eq!(h.session.buffered(id), Some(17));
    let acts = h.data(id, &[ka[17], ka[18], 0xff, 0xff]);
    assert!(acts.is_empty());
    assert_eq!(
        h.session.buffered(id),
        Some(2),
        "the KEEPALIVE was consumed"
    );
}

#[test]
fn megabytes_of_partial_data_never_grow_the_buffer_beyond_one_message_plus_the_last_read() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let update = enc_with(&Message::Update(announce("198.19.0.0/26")), &as4_ctx());
    // Two megabytes: KEEPALIVEs with an UPDATE every hundred messages.
    let mut stream = Vec::new();
    let mut pairs = 0;
    while stream.len() < 2 << 20 {
        stream.extend_from_slice(&update);
        pairs += 1;
        for _ in 0..100 {
            stream.extend_from_slice(&keepalive());
        }
    }
    let chunk = 1000; // never aligned with a message boundary
    let largest = update.len();
    let mut delivered = 0;
    let mut max_buffered = 0;
    for part in stream.chunks(chunk) {
        let acts = h.data(id, part);
        delivered += updates(&acts).len();
        let buffered = h.session.buffered(id).unwrap();
        assert!(
            buffered < largest,
            "{buffered} octets buffered after a read of {}",
            part.len()
        );
        max_buffered = max_buffered.max(buffered);
        // Time passes; the hold timer must see the traffic.
        h.advance(std::time::Duration::from_millis(1));
    }
    assert_eq!(delivered, pairs);
    assert!(max_buffered > 0);
    assert_eq!(h.state(), State::Established);
}

#[test]
fn a_partial_message_of_the_maximum_size_is_buffered_until_complete() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    // An UPDATE of exactly 4096 octets, fed in 100-octet reads.
    let nlri: Vec<Nlri<Ipv4Net>> = (0..2000u32)
        .map(|i| {
            Nlri::new(Ipv4Net::new(std::net::Ipv4Addr::from(0xc613_0000 + (i << 8)), 24).unwrap())
        })
        .collect();
    let mut u = announce("198.19.0.0/26");
    u.nlri = nlri;
    let mut bytes = enc_with(
        &Message::Update(u.clone()),
        &Ctx {
            as4: true,
            extended_message: true,
            ..Ctx::default()
        },
    );
    // Trim NLRI until it fits 4096 exactly is fiddly; cut to a whole number of /24s instead.
    let body_fixed = bytes.len() - 2000 * 4;
    let keep = (4096 - body_fixed) / 4;
    u.nlri.truncate(keep);
    bytes = enc_with(&Message::Update(u.clone()), &as4_ctx());
    assert!(bytes.len() > 4000 && bytes.len() <= 4096, "{}", bytes.len());
    let (last, head) = bytes.split_last().unwrap();
    for part in head.chunks(100) {
        assert!(h.data(id, part).is_empty());
        assert!(h.session.buffered(id).unwrap() < bytes.len());
    }
    let acts = h.data(id, std::slice::from_ref(last));
    assert_eq!(updates(&acts), vec![u]);
    assert_eq!(h.session.buffered(id), Some(0));
}

#[test]
fn a_length_field_beyond_4096_resets_with_1_2_as_soon_as_the_header_is_in() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let mut header = vec![0xff; 16];
    header.extend_from_slice(&5000u16.to_be_bytes());
    header.push(2);
    let acts = h.data(id, &header);
    let n = notification_sent(&acts, id);
    assert_eq!(
        (n.code, n.subcode, n.data.clone()),
        (1, 2, vec![0x13, 0x88])
    );
    assert_eq!(h.state(), State::Idle);
}

#[test]
fn a_length_field_below_19_resets_with_1_2() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let mut header = vec![0xff; 16];
    header.extend_from_slice(&18u16.to_be_bytes());
    header.push(4);
    let acts = h.data(id, &header);
    assert_eq!(code_sub(&notification_sent(&acts, id)), (1, 2));
}

#[test]
fn a_length_field_beyond_4096_in_open_sent_resets_with_1_2() {
    // Before the OPEN exchange nothing is negotiated: the 4096 limit applies.
    let mut h = Harness::new(ebgp());
    let id = h.reach_open_sent();
    let mut header = vec![0xff; 16];
    header.extend_from_slice(&4097u16.to_be_bytes());
    header.push(1);
    let acts = h.data(id, &header);
    assert_eq!(code_sub(&notification_sent(&acts, id)), (1, 2));
}

#[test]
fn extended_messages_are_accepted_once_negotiated() {
    let cfg = PeerConfig {
        capabilities: LocalCapabilities::default(),
        ..ebgp()
    };
    let mut h = Harness::new(cfg);
    let mut caps = peer_caps(PEER_AS);
    caps.push(Capability::ExtendedMessage);
    let (id, _) = h.reach_established_with(&open_with(PEER_AS, 90, PEER_ID, caps));
    let ext = Ctx {
        as4: true,
        extended_message: true,
        ..Ctx::default()
    };
    let mut u = announce("198.19.0.0/26");
    u.nlri = (0..3000u32)
        .map(|i| {
            Nlri::new(Ipv4Net::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
        })
        .collect();
    let bytes = enc_with(&Message::Update(u.clone()), &ext);
    assert!(bytes.len() > 4096);
    let mut delivered = Vec::new();
    for part in bytes.chunks(1400) {
        delivered.extend(updates(&h.data(id, part)));
    }
    assert_eq!(delivered, vec![u]);
    // KEEPALIVE keeps its fixed size even so.
    let mut long_keepalive = vec![0xff; 16];
    long_keepalive.extend_from_slice(&20u16.to_be_bytes());
    long_keepalive.extend_from_slice(&[4, 0]);
    let acts = h.data(id, &long_keepalive);
    assert_eq!(code_sub(&notification_sent(&acts, id)), (1, 2));
}

#[test]
fn a_message_beyond_4096_without_extended_messages_resets_with_1_2() {
    let mut h = Harness::new(ebgp());
    let id = h.reach_established();
    let ext = Ctx {
        as4: true,
        extended_message: true,
        ..Ctx::default()
    };
    let mut u = announce("198.19.0.0/26");
    u.nlri = (0..1100u32)
        .map(|i| {
            Nlri::new(Ipv4Net::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
        })
        .collect();
    let bytes = enc_with(&Message::Update(u), &ext);
    assert!(bytes.len() > 4096);
    let acts = h.data(id, &bytes[..1000]);
    let n = notification_sent(&acts, id);
    assert_eq!(code_sub(&n), (1, 2));
    assert_eq!(n.data, (bytes.len() as u16).to_be_bytes());
}

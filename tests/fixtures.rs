//! Messages that BIRD 2.0.12, GoBGP 3.10.0, FRR 8.4.4 and ExaBGP 4.2.21 actually sent on live
//! sessions (captured by `tests/fixtures/capture.sh`; see `tests/fixtures/README.md`) decode
//! cleanly under the context their session negotiated, and survive an encode/decode round trip.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use tortie_bgp::wire::{
    self, AddPath, Capability, Ctx, Family, Message, MpNlri, NextHop, SegmentKind, Update,
};

struct Fixture {
    file: String,
    kind: String,
    ctx: Ctx,
    bytes: Vec<u8>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture with the context from `index.tsv`.
fn fixtures() -> Vec<Fixture> {
    let index = std::fs::read_to_string(dir().join("index.tsv")).expect("index.tsv");
    index
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 10, "index.tsv row: {line}");
            let families = f[8];
            let ctx = Ctx {
                as4: f[7] == "4",
                add_path: AddPath {
                    ipv4_unicast: families.contains("ipv4"),
                    ipv6_unicast: families.contains("ipv6"),
                },
                extended_message: f[9] == "yes",
            };
            let text = std::fs::read_to_string(dir().join(f[0])).expect("fixture file");
            let bytes = hex::decode(text.trim()).expect("fixture is hex");
            Fixture {
                file: f[0].to_string(),
                kind: f[5].to_string(),
                ctx,
                bytes,
            }
        })
        .collect()
}

fn fixture(file: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.file == file)
        .unwrap_or_else(|| panic!("no fixture {file}"))
}

fn decoded(file: &str) -> Message {
    let f = fixture(file);
    wire::decode(&f.bytes, &f.ctx).expect("fixture decodes")
}

fn update(file: &str) -> Update {
    match decoded(file) {
        Message::Update(u) => u,
        other => panic!("{file}: not an UPDATE: {other:?}"),
    }
}

fn open(file: &str) -> wire::Open {
    match decoded(file) {
        Message::Open(o) => o,
        other => panic!("{file}: not an OPEN: {other:?}"),
    }
}

/// What a message looks like once passed on: unknown optional transitive attributes gain the
/// Partial bit (RFC 4271 section 5).
fn as_passed_on(mut msg: Message) -> Message {
    if let Message::Update(u) = &mut msg {
        for a in &mut u.attrs.unknown {
            a.flags |= 0x20;
        }
    }
    msg
}

#[test]
fn every_captured_message_decodes_cleanly_and_round_trips() {
    let all = fixtures();
    assert!(all.len() > 150, "only {} fixtures", all.len());
    for f in &all {
        let msg = wire::decode(&f.bytes, &f.ctx).unwrap_or_else(|e| panic!("{}: {e}", f.file));
        let kind = match &msg {
            Message::Open(_) => "OPEN",
            Message::Update(u) => {
                assert_eq!(u.errors, vec![], "{}: RFC 7606 faults", f.file);
                "UPDATE"
            }
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh(_) => "ROUTE-REFRESH",
        };
        assert_eq!(kind, f.kind, "{}", f.file);
        let again = wire::encode_to_vec(&msg, &f.ctx).unwrap_or_else(|e| panic!("{}: {e}", f.file));
        assert_eq!(
            wire::decode(&again, &f.ctx),
            Ok(as_passed_on(msg)),
            "{}: round trip",
            f.file
        );
    }
}

#[test]
fn every_daemon_is_represented() {
    let all = fixtures();
    for daemon in ["bird/", "gobgp/", "frr/", "exabgp/"] {
        for kind in ["OPEN", "UPDATE"] {
            assert!(
                all.iter()
                    .any(|f| f.file.starts_with(daemon) && f.kind == kind),
                "{daemon} {kind}"
            );
        }
    }
}

#[test]
fn bird_open_announces_its_4_octet_as_behind_as_trans() {
    let o = open("bird/to-gobgp/open.hex");
    assert_eq!(o.my_as, 23456);
    assert_eq!(o.asn(), 4_200_000_001);
    assert!(o.capabilities.contains(&Capability::ExtendedMessage));
    assert!(o.capabilities.contains(&Capability::EnhancedRouteRefresh));
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::AddPath { .. }))
    );
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Fqdn { hostname, .. } if hostname == "bird1"))
    );
}

#[test]
fn frr_open_carries_graceful_restart_bits_and_its_hostname() {
    let o = open("frr/to-bird-ipv6-transport/open.hex");
    let gr = o.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(gr) => Some(gr),
        _ => None,
    });
    let gr = gr.expect("FRR sends graceful restart");
    assert!(gr.restart_state && gr.notification);
    assert_eq!(gr.restart_time, 120);
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Fqdn { hostname, .. } if hostname == "frr1"))
    );
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::ExtendedNextHop { .. }))
    );
}

#[test]
fn exabgp_open_without_4_octet_as() {
    let o = open("exabgp/to-bird/open.hex");
    assert_eq!(o.four_octet_as(), None);
    assert_eq!(o.asn(), 65004);
}

#[test]
fn frr_extended_message_update_carries_1024_prefixes_with_path_ids() {
    let f = fixture("frr/to-bird-ipv4-transport/update-ipv4-198.19.8.0_32.hex");
    assert_eq!(f.bytes.len(), 9278);
    assert!(
        wire::decode(
            &f.bytes,
            &Ctx {
                extended_message: false,
                ..f.ctx
            }
        )
        .is_err(),
        "over 4096 without RFC 8654"
    );
    let u = update("frr/to-bird-ipv4-transport/update-ipv4-198.19.8.0_32.hex");
    assert_eq!(u.nlri.len(), 1024);
    assert!(
        u.nlri
            .iter()
            .all(|n| n.prefix.prefix_len() == 32 && n.path_id.is_some())
    );
}

#[test]
fn frr_ipv6_next_hop_has_a_link_local_second_address() {
    let u = update("frr/to-bird-ipv6-transport/update-ipv6-2001-db8-3--_48.hex");
    let reach = u.mp_reach.expect("MP_REACH_NLRI");
    let NextHop::V6 { link_local, .. } = reach.next_hop else {
        panic!("not an IPv6 next hop")
    };
    assert_eq!(link_local, Some("fe80::3".parse::<Ipv6Addr>().unwrap()));
    assert_eq!(reach.nlri.family(), Family::Ipv6Unicast);
}

#[test]
fn frr_sends_ipv4_prefixes_with_an_ipv6_next_hop_per_rfc_8950() {
    let u = update("frr/to-bird-ipv6-transport/update-ipv4-198.19.3.64_26.hex");
    let reach = u.mp_reach.expect("MP_REACH_NLRI");
    assert!(matches!(reach.next_hop, NextHop::V6 { .. }));
    assert!(
        matches!(reach.nlri, MpNlri::Ipv4(ref v) if v[0].prefix.to_string() == "198.19.3.64/26")
    );
}

#[test]
fn exabgp_2_octet_as_path_with_an_as_set() {
    let all = fixtures();
    let found = all.iter().filter(|f| f.file.starts_with("exabgp/") && f.kind == "UPDATE").any(|f| {
        matches!(wire::decode(&f.bytes, &f.ctx), Ok(Message::Update(u))
            if u.attrs.as_path.as_ref().is_some_and(|p| p.segments.iter().any(|s| s.kind == SegmentKind::Set)))
    });
    assert!(found, "an ExaBGP UPDATE with an AS_SET");
}

#[test]
fn bird_toward_a_2_octet_peer_sends_as4_path() {
    let all = fixtures();
    let u = all
        .iter()
        .filter(|f| f.file.starts_with("bird/to-exabgp/update-ipv4"))
        .find_map(|f| match wire::decode(&f.bytes, &f.ctx) {
            Ok(Message::Update(u)) if u.attrs.as4_path.is_some() => Some(u),
            _ => None,
        })
        .expect("a BIRD UPDATE with AS4_PATH");
    assert!(u.attrs.as_path.as_ref().unwrap().contains(23456));
    assert!(u.attrs.effective_as_path().unwrap().contains(4_200_000_001));
}

#[test]
fn end_of_rib_markers_from_every_daemon() {
    for f in fixtures().iter().filter(|f| f.file.contains("/eor-")) {
        let Ok(Message::Update(u)) = wire::decode(&f.bytes, &f.ctx) else {
            panic!("{}", f.file)
        };
        let expected = if f.file.ends_with("eor-ipv4.hex") {
            Family::Ipv4Unicast
        } else {
            Family::Ipv6Unicast
        };
        assert_eq!(u.as_end_of_rib(), Some(expected), "{}", f.file);
    }
}

#[test]
fn shutdown_notifications_carry_their_text() {
    let texts: Vec<String> = fixtures()
        .iter()
        .filter(|f| f.kind == "NOTIFICATION")
        .filter_map(|f| match wire::decode(&f.bytes, &f.ctx) {
            Ok(Message::Notification(n)) => n.shutdown_communication().map(str::to_string),
            _ => None,
        })
        .collect();
    assert!(texts.len() >= 3, "shutdown texts: {texts:?}");
}

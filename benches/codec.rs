//! UPDATE codec throughput, side by side with zettabgp and bgpkit-parser.
//!
//! Run: `cargo bench --bench codec` (under a minute once built). Criterion reports each case in
//! prefixes/s; at the end a table of all decoders and encoders, timed again here with `Instant`
//! on the same bytes, gives ns per message, million prefixes per second and the ratio to tortie.
//!
//! Like with like: tortie's figure is the full `wire::decode` a session runs (header checks,
//! RFC 7606 attribute validation, every prefix materialised in a `Vec`). zettabgp's
//! `BgpUpdateMessage::decode_from` (after its header check) and bgpkit-parser's
//! `parse_bgp_message` both build a `Vec` of every prefix too; before any timing each decoder's
//! prefix count is asserted, so a lazy parse could not win. Each timed iteration drops what it
//! decoded, as a session would.
//!
//! Messages: a 500-prefix IPv4 UPDATE (distinct /26s in 198.19.0.0/16) with ORIGIN, AS_PATH,
//! NEXT_HOP, MED, LOCAL_PREF and COMMUNITIES, and a 400-prefix MP_REACH_NLRI IPv6 UPDATE
//! (distinct /64s under 2001:db8::/32, global and link-local next hop) with the same attributes
//! bar NEXT_HOP; 400 because 500 /64s (4,500 octets of NLRI) do not fit a 4,096-octet message.
//! Both are built by tortie's own encoder, with 4-octet AS numbers.
//!
//! Encoding, each codec encodes what it decoded. tortie and zettabgp write into a reused buffer;
//! bgpkit-parser's API returns fresh `Bytes` (an allocation per call, part of its figure).
//! zettabgp's output is not the same message: it drops the IPv6 link-local next hop, turns the
//! AS_SEQUENCE into an AS_SET and sets the extended-length flag on some attributes (the table's
//! last lines compare sizes).

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use ipnet::{Ipv4Net, Ipv6Net};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};
use tortie_bgp::wire::{
    self, AsPath, Attributes, Community, Ctx, Message, MpNlri, MpReach, NextHop, Nlri, Origin,
    Update,
};

use bgpkit_parser::models::{AsnLength, BgpMessage as KitMessage};
use bgpkit_parser::parser::bgp::parse_bgp_message;
use zettabgp::BgpTransportMode;
use zettabgp::prelude::{BgpAddrs, BgpMessage as _, BgpSessionParams, BgpUpdateMessage};

const V4_PREFIXES: usize = 500;
const V6_PREFIXES: usize = 400;

fn attributes(next_hop: Option<Ipv4Addr>) -> Attributes {
    Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(vec![64512, 65001, 4_200_000_001])),
        next_hop,
        med: Some(100),
        local_pref: Some(200),
        communities: vec![
            Community(64512 << 16 | 100),
            Community(64512 << 16 | 200),
            Community(0xFFFF_FF03),
        ],
        ..Attributes::default()
    }
}

/// 500 distinct /26s: 198.19.0.0/26, 198.19.0.64/26, ... 198.19.124.192/26.
fn v4_update() -> Update {
    let base = u32::from(Ipv4Addr::new(198, 19, 0, 0));
    let nlri = (0..V4_PREFIXES as u32)
        .map(|i| Nlri::new(Ipv4Net::new(Ipv4Addr::from(base + i * 64), 26).unwrap()))
        .collect();
    Update {
        attrs: attributes(Some(Ipv4Addr::new(198, 18, 1, 1))),
        nlri,
        ..Update::default()
    }
}

/// 400 distinct /64s: 2001:db8:0:0::/64 ... 2001:db8:1:8f::/64 (varying the third and fourth groups).
fn v6_update() -> Update {
    let nlri = (0..V6_PREFIXES as u16)
        .map(|i| {
            Nlri::new(
                Ipv6Net::new(
                    Ipv6Addr::new(0x2001, 0xdb8, i >> 8, i & 0xff, 0, 0, 0, 0),
                    64,
                )
                .unwrap(),
            )
        })
        .collect();
    let next_hop = NextHop::V6 {
        global: "2001:db8:ffff::1".parse().unwrap(),
        link_local: Some("fe80::1:2ff:fe03:405".parse().unwrap()),
    };
    Update {
        attrs: attributes(None),
        mp_reach: Some(MpReach {
            next_hop,
            nlri: MpNlri::Ipv6(nlri),
        }),
        ..Update::default()
    }
}

fn ctx() -> Ctx {
    Ctx {
        as4: true,
        ..Ctx::default()
    }
}

// ---- the three decoders and encoders, each returning what it materialised ----

fn tortie_decode(bytes: &[u8], ctx: &Ctx) -> Message {
    wire::decode(bytes, ctx).expect("tortie decode")
}

fn tortie_count(msg: &Message) -> usize {
    match msg {
        Message::Update(u) => {
            assert!(u.errors.is_empty(), "tortie found faults: {:?}", u.errors);
            u.nlri.len() + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len())
        }
        other => panic!("tortie decoded {other:?}"),
    }
}

fn tortie_encode(msg: &Message, ctx: &Ctx, out: &mut BytesMut) {
    out.clear();
    wire::encode(msg, ctx, out).expect("tortie encode");
}

fn zetta_params() -> BgpSessionParams {
    // peer_mode selects the family of the plain NLRI field; IPv4 as on a normal session.
    let mut p = BgpSessionParams::new(
        64512,
        180,
        BgpTransportMode::IPv4,
        Ipv4Addr::new(192, 0, 2, 1),
        Vec::new(),
    );
    p.has_as32bit = true;
    // No ADD-PATH guessing: it rescans the NLRI and would only cost zettabgp time.
    p.fuzzy_pathid = false;
    p
}

/// zettabgp's equivalent of a full message decode: header check, then the UPDATE body.
fn zetta_decode(bytes: &[u8], params: &BgpSessionParams) -> BgpUpdateMessage {
    let (kind, len) = params.decode_message_head(bytes).expect("zettabgp header");
    assert!(kind == zettabgp::message::BgpMessageType::Update && len == bytes.len() - 19);
    let mut msg = BgpUpdateMessage::new();
    msg.decode_from(params, &bytes[19..])
        .expect("zettabgp decode");
    msg
}

fn zetta_count(msg: &BgpUpdateMessage) -> usize {
    let n = |a: &BgpAddrs| a.len();
    n(&msg.updates) + msg.get_mpupdates().map_or(0, |m| n(&m.addrs))
}

/// Encodes into `buf`, returning the message length.
fn zetta_encode(msg: &BgpUpdateMessage, params: &BgpSessionParams, buf: &mut [u8]) -> usize {
    let len = msg
        .encode_to(params, &mut buf[19..])
        .expect("zettabgp encode");
    params
        .prepare_message_buf(buf, zettabgp::message::BgpMessageType::Update, len)
        .expect("zettabgp header")
}

fn kit_decode(bytes: &Bytes) -> KitMessage {
    // A clone of `Bytes` is a reference-count increment, not a copy.
    let mut data = bytes.clone();
    parse_bgp_message(&mut data, false, &AsnLength::Bits32).expect("bgpkit decode")
}

fn kit_count(msg: &KitMessage) -> usize {
    let KitMessage::Update(u) = msg else {
        panic!("bgpkit decoded {msg:?}")
    };
    let mp = u
        .attributes
        .get_reachable_nlri()
        .map_or(0, |n| n.prefixes.len());
    u.announced_prefixes.len() + mp
}

fn kit_encode(msg: &KitMessage) -> Bytes {
    msg.encode(AsnLength::Bits32).expect("bgpkit encode")
}

// ---- the cases ----

struct Case {
    name: &'static str,
    prefixes: usize,
    msg: Message,
    bytes: Vec<u8>,
    kit_bytes: Bytes,
    zetta_msg: BgpUpdateMessage,
    kit_msg: KitMessage,
}

fn cases() -> Vec<Case> {
    let ctx = ctx();
    let params = zetta_params();
    [
        ("v4 500 x /26", V4_PREFIXES, v4_update()),
        ("v6 400 x /64 MP_REACH", V6_PREFIXES, v6_update()),
    ]
    .into_iter()
    .map(|(name, prefixes, update)| {
        let msg = Message::Update(update);
        let bytes = wire::encode_to_vec(&msg, &ctx).expect("encode");
        assert!(bytes.len() <= 4096, "{name}: {} octets", bytes.len());
        // Every decoder must materialise every prefix; checked once, before any timing.
        let ours = tortie_decode(&bytes, &ctx);
        assert_eq!(ours, msg, "{name}: tortie round trip");
        assert_eq!(tortie_count(&ours), prefixes, "{name}: tortie");
        let zetta_msg = zetta_decode(&bytes, &params);
        assert_eq!(zetta_count(&zetta_msg), prefixes, "{name}: zettabgp");
        let kit_bytes = Bytes::from(bytes.clone());
        let kit_msg = kit_decode(&kit_bytes);
        assert_eq!(kit_count(&kit_msg), prefixes, "{name}: bgpkit-parser");
        Case {
            name,
            prefixes,
            msg,
            bytes,
            kit_bytes,
            zetta_msg,
            kit_msg,
        }
    })
    .collect()
}

// ---- criterion ----

fn criterion_benches(c: &mut Criterion, cases: &[Case]) {
    let ctx = ctx();
    let params = zetta_params();
    for case in cases {
        let mut g = c.benchmark_group(format!("decode {}", case.name));
        g.throughput(Throughput::Elements(case.prefixes as u64));
        g.bench_function("tortie", |b| {
            b.iter(|| tortie_decode(black_box(&case.bytes), &ctx))
        });
        g.bench_function("zettabgp", |b| {
            b.iter(|| zetta_decode(black_box(&case.bytes), &params))
        });
        g.bench_function("bgpkit-parser", |b| {
            b.iter(|| kit_decode(black_box(&case.kit_bytes)))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("encode {}", case.name));
        g.throughput(Throughput::Elements(case.prefixes as u64));
        let mut out = BytesMut::with_capacity(4096);
        g.bench_function("tortie", |b| {
            b.iter(|| {
                tortie_encode(black_box(&case.msg), &ctx, &mut out);
                black_box(out.len())
            })
        });
        let mut buf = [0u8; 4096];
        g.bench_function("zettabgp", |b| {
            b.iter(|| zetta_encode(black_box(&case.zetta_msg), &params, &mut buf))
        });
        g.bench_function("bgpkit-parser", |b| {
            b.iter(|| kit_encode(black_box(&case.kit_msg)))
        });
        g.finish();
    }
}

// ---- the comparison table ----

/// Median ns per call of `f` over batches of about 2 ms, for about `budget` in all.
fn time_ns(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up and size a batch.
    let mut iters = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() >= Duration::from_millis(2) || iters >= 1 << 20 {
            break;
        }
        iters *= 2;
    }
    let batches = (budget.as_secs_f64() / 0.002).clamp(1.0, 1000.0) as usize;
    let mut per_call: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
}

fn table(cases: &[Case], budget: Duration, test_mode: bool) {
    let ctx = ctx();
    let params = zetta_params();
    println!();
    if test_mode {
        println!(
            "(test mode: a moment per codec in whatever profile this was built in; not a measurement)"
        );
    }
    println!(
        "Side by side (median of ~2 ms batches, one thread; ratio = other's time / tortie's time, >1 means tortie is faster)"
    );
    println!(
        "{:<34} {:<14} {:>10} {:>13} {:>16}",
        "case", "codec", "ns/msg", "M prefixes/s", "ratio vs tortie"
    );
    for case in cases {
        for op in ["decode", "encode"] {
            let results: [(&str, f64); 3] = if op == "decode" {
                [
                    (
                        "tortie",
                        time_ns(budget, || {
                            drop(black_box(tortie_decode(black_box(&case.bytes), &ctx)))
                        }),
                    ),
                    (
                        "zettabgp",
                        time_ns(budget, || {
                            drop(black_box(zetta_decode(black_box(&case.bytes), &params)))
                        }),
                    ),
                    (
                        "bgpkit-parser",
                        time_ns(budget, || {
                            drop(black_box(kit_decode(black_box(&case.kit_bytes))))
                        }),
                    ),
                ]
            } else {
                let mut out = BytesMut::with_capacity(4096);
                let mut buf = [0u8; 4096];
                [
                    (
                        "tortie",
                        time_ns(budget, || {
                            tortie_encode(black_box(&case.msg), &ctx, black_box(&mut out))
                        }),
                    ),
                    (
                        "zettabgp",
                        time_ns(budget, || {
                            black_box(zetta_encode(black_box(&case.zetta_msg), &params, &mut buf));
                        }),
                    ),
                    (
                        "bgpkit-parser",
                        time_ns(budget, || {
                            drop(black_box(kit_encode(black_box(&case.kit_msg))))
                        }),
                    ),
                ]
            };
            let ours = results[0].1;
            for (codec, ns) in results {
                let mpps = case.prefixes as f64 / ns * 1e3;
                println!(
                    "{:<34} {:<14} {:>10.0} {:>13.1} {:>15.2}x",
                    format!("{op} {}", case.name),
                    codec,
                    ns,
                    mpps,
                    ns / ours
                );
            }
        }
    }
    // How the other encoders' output compares with ours (they encode what they decoded).
    let mut buf = [0u8; 4096];
    for case in cases {
        let z = zetta_encode(&case.zetta_msg, &params, &mut buf);
        let k = kit_encode(&case.kit_msg);
        let same = |b: &[u8]| {
            if b == case.bytes.as_slice() {
                "identical"
            } else {
                "differs"
            }
        };
        println!(
            "{}: {} octets; zettabgp re-encodes {} octets ({}), bgpkit-parser {} octets ({})",
            case.name,
            case.bytes.len(),
            z,
            same(&buf[..z]),
            k.len(),
            same(&k)
        );
    }
}

fn main() {
    let cases = cases();
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(50)
        .without_plots()
        .configure_from_args();
    criterion_benches(&mut c, &cases);
    c.final_summary();
    // `--list` names the benches; `--profile-time N` is for running one under a profiler.
    if has("--list") || args.iter().any(|a| a.starts_with("--profile-time")) {
        return;
    }
    // `cargo test --benches` runs this without `--bench` (criterion's test mode, each bench
    // once): run the table too, but only for a moment, to keep it compiling and working.
    let test_mode = has("--test") || !has("--bench");
    let budget = if test_mode {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(400)
    };
    table(&cases, budget, test_mode);
}

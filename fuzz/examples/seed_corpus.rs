//! Writes the seed corpus of the fuzz targets: valid messages of every kind, encoded under a few
//! contexts, each behind the byte that selects its context.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus [DIR]` writes
//! `DIR/decode/*` and `DIR/frame/*` (DIR defaults to `fuzz/corpus`, which git ignores).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use tortie_bgp::wire::{
    encode_to_vec, AddPath, AddPathFamily, AddPathMode, AfiSafi, Aggregator, AsPath, AsSegment, Attributes, Capability,
    Community, Ctx, ExtCommunity, ExtNextHop, Family, GrFamily, GracefulRestart, LargeCommunity, Message, MpNlri,
    MpReach, MpUnreach, NextHop, Nlri, Notification, Open, Origin, RawAttribute, RouteRefresh, RouteRefreshSubtype,
    SegmentKind, Update,
};
use tortie_fuzz::{check_message, ctx_to_byte};

fn messages(ctx: &Ctx) -> Vec<(&'static str, Message)> {
    let id4 = |n| ctx.add_path.ipv4_unicast.then_some(n);
    let id6 = |n| ctx.add_path.ipv6_unicast.then_some(n);
    let p4 = |s: &str| s.parse().unwrap();
    let p6 = |s: &str| s.parse().unwrap();
    let asn = |a: u32| if ctx.as4 { a } else { a.min(65000) };
    let open = Open::new(
        4_200_000_001,
        90,
        Ipv4Addr::new(198, 18, 1, 1),
        vec![
            Capability::Multiprotocol(AfiSafi { afi: 1, safi: 1 }),
            Capability::Multiprotocol(AfiSafi { afi: 2, safi: 1 }),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
            Capability::ExtendedNextHop { families: vec![ExtNextHop { afi: 1, safi: 1, next_hop_afi: 2 }] },
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: true,
                restart_time: 120,
                families: vec![GrFamily { afi_safi: AfiSafi { afi: 1, safi: 1 }, forwarding_preserved: true }],
            }),
            Capability::FourOctetAs { asn: 4_200_000_001 },
            Capability::AddPath {
                families: vec![AddPathFamily { afi_safi: AfiSafi { afi: 1, safi: 1 }, mode: AddPathMode::SendReceive }],
            },
            Capability::Fqdn { hostname: "node-1".into(), domain: "cluster.local".into() },
            Capability::Unknown { code: 71, value: vec![1, 2, 3] },
        ],
    );
    let attrs = Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath {
            segments: vec![
                AsSegment { kind: SegmentKind::ConfedSequence, asns: vec![65001] },
                AsSegment { kind: SegmentKind::Sequence, asns: vec![64512, asn(4_200_000_000)] },
                AsSegment { kind: SegmentKind::Set, asns: vec![1, 2] },
                AsSegment { kind: SegmentKind::ConfedSet, asns: vec![65002] },
            ],
        }),
        next_hop: Some(Ipv4Addr::new(198, 18, 1, 1)),
        med: Some(10),
        local_pref: Some(100),
        atomic_aggregate: true,
        aggregator: Some(Aggregator { asn: asn(4_200_000_000), address: Ipv4Addr::new(198, 18, 1, 2) }),
        communities: vec![Community::new(64512, 1), Community::NO_EXPORT],
        originator_id: Some(Ipv4Addr::new(198, 18, 1, 3)),
        cluster_list: vec![Ipv4Addr::new(198, 18, 1, 4)],
        ext_communities: vec![ExtCommunity([0, 2, 0xfc, 0, 0, 0, 0, 1])],
        as4_path: (!ctx.as4).then(|| AsPath::sequence([64512, 4_200_000_000])),
        as4_aggregator: (!ctx.as4).then_some(Aggregator { asn: 4_200_000_000, address: Ipv4Addr::new(198, 18, 1, 2) }),
        large_communities: vec![LargeCommunity { global: 4_200_000_000, local1: 1, local2: 2 }],
        unknown: vec![RawAttribute { flags: 0xe0, type_code: 99, value: vec![9; 3] }],
    };
    let ipv4 = Update {
        withdrawn: vec![Nlri { prefix: p4("198.19.1.0/26"), path_id: id4(1) }],
        attrs,
        nlri: vec![
            Nlri { prefix: p4("198.19.0.0/26"), path_id: id4(2) },
            Nlri { prefix: p4("0.0.0.0/0"), path_id: id4(3) },
            Nlri { prefix: p4("198.19.0.7/32"), path_id: id4(4) },
        ],
        ..Update::default()
    };
    let ipv6 = Update {
        attrs: Attributes {
            origin: Some(Origin::Incomplete),
            as_path: Some(AsPath::sequence([64512])),
            ..Attributes::default()
        },
        mp_reach: Some(MpReach {
            next_hop: NextHop::V6 {
                global: "fd00::1".parse::<Ipv6Addr>().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            },
            nlri: MpNlri::Ipv6(vec![Nlri { prefix: p6("fd00:198:19::/122"), path_id: id6(5) }]),
        }),
        mp_unreach: Some(MpUnreach { nlri: MpNlri::Ipv4(vec![Nlri { prefix: p4("10.0.0.0/8"), path_id: id4(6) }]) }),
        ..Update::default()
    };
    let ipv4_via_ipv6 = Update {
        attrs: Attributes { origin: Some(Origin::Egp), as_path: Some(AsPath::default()), ..Attributes::default() },
        mp_reach: Some(MpReach {
            next_hop: NextHop::V6 { global: "fd00::2".parse().unwrap(), link_local: None },
            nlri: MpNlri::Ipv4(vec![Nlri { prefix: p4("198.19.2.0/26"), path_id: id4(7) }]),
        }),
        mp_unreach: Some(MpUnreach { nlri: MpNlri::Ipv6(vec![Nlri { prefix: p6("fd00::/64"), path_id: id6(8) }]) }),
        ..Update::default()
    };
    vec![
        ("open", Message::Open(open)),
        ("update-ipv4", Message::Update(ipv4)),
        ("update-ipv6", Message::Update(ipv6)),
        ("update-ipv4-via-ipv6", Message::Update(ipv4_via_ipv6)),
        ("eor-ipv4", Message::Update(Update::end_of_rib(Family::Ipv4Unicast))),
        ("eor-ipv6", Message::Update(Update::end_of_rib(Family::Ipv6Unicast))),
        ("notification-shutdown", Message::Notification(Notification::cease_with_message(2, "maintenance"))),
        ("notification", Message::Notification(Notification::new(3, 4, vec![0x40, 1, 1, 0]))),
        ("keepalive", Message::Keepalive),
        (
            "route-refresh",
            Message::RouteRefresh(RouteRefresh { afi: 1, safi: 1, subtype: RouteRefreshSubtype::BeginningOfRefresh }),
        ),
    ]
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let (decode_dir, frame_dir) = (dir.join("decode"), dir.join("frame"));
    std::fs::create_dir_all(&decode_dir)?;
    std::fs::create_dir_all(&frame_dir)?;
    let ctxs = [
        Ctx::default(),
        Ctx { as4: true, ..Ctx::default() },
        Ctx { as4: true, add_path: AddPath::ALL, extended_message: true },
        Ctx { as4: false, add_path: AddPath { ipv4_unicast: true, ipv6_unicast: false }, extended_message: false },
    ];
    let mut files = 0;
    for ctx in &ctxs {
        let sel = ctx_to_byte(ctx);
        let mut stream = vec![sel];
        for (name, msg) in messages(ctx) {
            let bytes = encode_to_vec(&msg, ctx).expect("seed encodes");
            check_message(&bytes, ctx);
            stream.extend_from_slice(&bytes);
            std::fs::write(decode_dir.join(format!("{name}-ctx{sel:x}")), [&[sel][..], &bytes].concat())?;
            files += 1;
        }
        std::fs::write(frame_dir.join(format!("stream-ctx{sel:x}")), &stream)?;
        files += 1;
    }
    println!("wrote {files} seed inputs under {}", dir.display());
    Ok(())
}

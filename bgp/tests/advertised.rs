//! Counting what each peer is sent, a slice at a time ([`AdvertisedWalk`]): the same counts
//! as one pass, under the export rules of each peer. Pure, no sockets.

use ipnet::Ipv4Net;
use std::net::{IpAddr, Ipv4Addr};
use tortie_bgp::rib::{AdvertisedWalk, PeerId, Rib, RibConfig, RibPeer, SessionInfo};
use tortie_bgp::wire::{AsPath, Attributes, Ctx, Family, Nlri, Origin, Update};

const LOCAL_AS: u32 = 64512;

fn session(id: u8) -> SessionInfo {
    SessionInfo {
        bgp_id: Ipv4Addr::new(198, 18, 0, id),
        families: vec![Family::Ipv4Unicast],
        tx: Ctx {
            as4: true,
            ..Ctx::default()
        },
        local_address: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
        peer_graceful_restart: None,
        extended_next_hop: false,
    }
}

/// `n` /26s from 198.19.`third`.0, with `next_hop`.
fn announce(third: u8, n: u8, next_hop: Ipv4Addr, path: &[u32]) -> Update {
    Update {
        attrs: Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(path.to_vec())),
            next_hop: Some(next_hop),
            ..Attributes::default()
        },
        nlri: (0..n)
            .map(|i| {
                Nlri::new(Ipv4Net::new(Ipv4Addr::new(198, 19, third, i * 4), 30).expect("prefix"))
            })
            .collect(),
        ..Update::default()
    }
}

/// A full-mesh node with two iBGP peers (5 and 3 prefixes learned) and an eBGP ToR (4).
fn node() -> (Rib, Vec<PeerId>) {
    let mut rib = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, 1)));
    let mut ids = Vec::new();
    for (i, asn) in [(2u8, LOCAL_AS), (3, LOCAL_AS), (4, 65100)] {
        let id = rib.add_peer(RibPeer::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, i)), asn));
        rib.peer_up(id, session(i));
        ids.push(id);
    }
    let nh = |i| Ipv4Addr::new(198, 18, 0, i);
    rib.apply_update(ids[0], &announce(2, 5, nh(2), &[]))
        .expect("import");
    rib.apply_update(ids[1], &announce(3, 3, nh(3), &[]))
        .expect("import");
    rib.apply_update(ids[2], &announce(4, 4, nh(4), &[65100]))
        .expect("import");
    (rib, ids)
}

fn counted(rib: &Rib, ids: &[PeerId], budget: usize) -> Vec<(PeerId, usize)> {
    let mut walk = AdvertisedWalk::new(ids.to_vec());
    let mut slices = 0;
    while !rib.advertised_step(&mut walk, budget) {
        slices += 1;
        assert!(slices < 1000, "the walk never ends");
    }
    walk.counts().collect()
}

#[test]
fn each_peer_is_counted_under_its_own_export_rules() {
    let (rib, ids) = node();
    // iBGP peers get the eBGP routes only (a mesh does not pass iBGP routes on); the ToR gets
    // both iBGP peers' routes and nothing of its own back.
    assert_eq!(
        counted(&rib, &ids, usize::MAX),
        vec![(ids[0], 4), (ids[1], 4), (ids[2], 8)]
    );
}

#[test]
fn a_walk_in_slices_of_one_prefix_counts_what_one_pass_counts() {
    let (rib, ids) = node();
    assert_eq!(counted(&rib, &ids, 1), counted(&rib, &ids, usize::MAX));
}

#[test]
fn a_walk_over_an_empty_table_is_done_at_once_with_zero() {
    let rib = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, 1)));
    let mut walk = AdvertisedWalk::new(vec![1]);
    assert!(rib.advertised_step(&mut walk, 1));
    assert_eq!(walk.counts().collect::<Vec<_>>(), vec![(1, 0)]);
}

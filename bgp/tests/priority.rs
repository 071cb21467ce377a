//! Route priority as Calico's BGPFilters use it: an export `setPriority` reaches iBGP peers as
//! LOCAL_PREF (`PRIORITY_BASE - priority`), and `priority` conditions see, on import, the
//! priority a received LOCAL_PREF stands for and, on export, the normal priority when none
//! was set. Pure, no sockets.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};
use tortie_bgp::rib::policy::{
    Action, Filter, NORMAL_ROUTE_PRIORITY, Operation, Rule, local_pref_for_priority,
};
use tortie_bgp::rib::{PeerId, Rib, RibConfig, RibPeer, SessionInfo};
use tortie_bgp::wire::{AsPath, Attributes, Ctx, Family, Nlri, Origin, Update};

const LOCAL_AS: u32 = 64512;
const PREFIX: &str = "198.19.1.0/26";

fn session(last: u8) -> SessionInfo {
    SessionInfo {
        bgp_id: Ipv4Addr::new(198, 18, 0, last),
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

fn peer(rib: &mut Rib, last: u8, filters: Vec<Filter>) -> PeerId {
    let mut p = RibPeer::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)), LOCAL_AS);
    p.filters = filters;
    let id = rib.add_peer(p);
    rib.peer_up(id, session(last));
    id
}

fn announce(local_pref: Option<u32>) -> Update {
    Update {
        attrs: Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(Ipv4Addr::new(198, 18, 0, 2)),
            local_pref,
            ..Attributes::default()
        },
        nlri: vec![Nlri::new(PREFIX.parse::<Ipv4Net>().unwrap())],
        ..Update::default()
    }
}

fn import_filter(rule: Rule) -> Vec<Filter> {
    vec![Filter {
        name: "f".into(),
        import_v4: vec![rule],
        ..Filter::default()
    }]
}

fn export_filter(rule: Rule) -> Vec<Filter> {
    vec![Filter {
        name: "f".into(),
        export_v4: vec![rule],
        ..Filter::default()
    }]
}

/// Every UPDATE `id` is owed now.
fn sent(rib: &mut Rib, id: PeerId) -> Vec<Update> {
    rib.run_export_pass();
    let mut out = Vec::new();
    while rib.has_updates(id) {
        out.extend(rib.take_updates(id, 1000).unwrap());
    }
    out
}

fn local_pref_sent(updates: &[Update]) -> Option<u32> {
    updates
        .iter()
        .find(|u| !u.nlri.is_empty())
        .and_then(|u| u.attrs.local_pref)
}

fn has_prefix(rib: &Rib) -> bool {
    !rib.routes(Some(PREFIX.parse::<IpNet>().unwrap()))
        .is_empty()
}

#[test]
fn an_export_set_priority_reaches_an_ibgp_peer_as_local_pref() {
    let mut rib = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, 1)));
    let dst = peer(
        &mut rib,
        3,
        export_filter(Rule {
            operations: vec![Operation::SetPriority(512)],
            ..Rule::new(Action::Accept)
        }),
    );
    sent(&mut rib, dst);
    rib.originate(PREFIX.parse().unwrap(), None);
    assert_eq!(
        local_pref_sent(&sent(&mut rib, dst)),
        Some(local_pref_for_priority(512))
    );
}

#[test]
fn without_a_set_priority_an_ibgp_peer_is_sent_the_routes_own_local_pref() {
    let mut rib = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, 1)));
    let dst = peer(&mut rib, 3, Vec::new());
    sent(&mut rib, dst);
    rib.originate(PREFIX.parse().unwrap(), None);
    assert_eq!(local_pref_sent(&sent(&mut rib, dst)), Some(100));
}

#[test]
fn an_import_priority_condition_sees_the_priority_a_received_local_pref_stands_for() {
    let reject_512 = Rule {
        priority: Some(512),
        ..Rule::new(Action::Reject)
    };
    let mut rib = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, 1)));
    let src = peer(&mut rib, 2, import_filter(reject_512.clone()));
    rib.apply_update(src, &announce(Some(local_pref_for_priority(512))))
        .unwrap();
    assert!(!has_prefix(&rib), "priority 512 rejected");

    let mut rib = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, 1)));
    let src = peer(&mut rib, 2, import_filter(reject_512));
    rib.apply_update(src, &announce(Some(100))).unwrap();
    assert!(has_prefix(&rib), "another priority passes");
}

#[test]
fn an_export_priority_condition_sees_the_normal_priority_on_a_route_without_one() {
    let mut rib = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(198, 18, 0, 1)));
    let dst = peer(
        &mut rib,
        3,
        export_filter(Rule {
            priority: Some(NORMAL_ROUTE_PRIORITY),
            ..Rule::new(Action::Reject)
        }),
    );
    sent(&mut rib, dst);
    rib.originate(PREFIX.parse().unwrap(), None);
    assert_eq!(local_pref_sent(&sent(&mut rib, dst)), None, "rejected");
}

//! Neighbour and FDB entries for VXLAN peers.

use tortie_felix::netlink::link::VXLAN_V4_NAME;

use super::*;

#[test]
fn neighbour_and_fdb_entries_for_vxlan_peers() {
    let ns = TestNs::with_veth("neigh");
    let mut k = ns.kernel();
    let v0 = ns.ifindex("v0");
    let (vx, _) = k
        .ensure_vxlan(&VxlanSpec::v4(NODE_V4, Some(v0), [0x66, 0x74, 0, 0, 0, 1]))
        .unwrap();
    let peer_mac = [0x66, 0x74, 0xc6, 0x13, 0x02, 0x00];
    let n = NeighbourEntry {
        ifindex: vx.index,
        ip: ip("198.19.2.0"),
        mac: peer_mac,
    };
    let f = FdbEntry {
        ifindex: vx.index,
        mac: peer_mac,
        dst: ip("198.18.0.2"),
    };
    assert!(
        k.apply_neighbours(&[NeighOp::Replace(n.clone())])
            .unwrap()
            .is_ok()
    );
    assert!(k.apply_fdb(&[FdbOp::Replace(f.clone())]).unwrap().is_ok());

    let neigh = ns.ip_json(&["neigh", "show", "dev", VXLAN_V4_NAME]);
    let j = neigh
        .iter()
        .find(|e| e["dst"] == "198.19.2.0")
        .unwrap_or_else(|| panic!("{neigh:#?}"));
    assert_eq!(j["lladdr"], "66:74:c6:13:02:00");
    assert!(
        j["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "PERMANENT"),
        "{j}"
    );
    let fdb = ns.bridge_json(&["fdb", "show", "dev", VXLAN_V4_NAME]);
    let j = fdb
        .iter()
        .find(|e| e["mac"] == "66:74:c6:13:02:00")
        .unwrap_or_else(|| panic!("{fdb:#?}"));
    assert_eq!(j["dst"], "198.18.0.2");
    assert!(
        j["flags"].as_array().unwrap().iter().any(|s| s == "self"),
        "{j}"
    );

    // A foreign permanent entry of another protocol on the same device is not ours.
    ns.ip(&[
        "neigh",
        "add",
        "198.19.9.9",
        "lladdr",
        "02:00:00:00:00:09",
        "dev",
        VXLAN_V4_NAME,
        "nud",
        "permanent",
        "protocol",
        "static",
    ]);
    assert_eq!(k.dump_neighbours(vx.index).unwrap(), vec![n.clone()]);
    assert_eq!(k.dump_fdb(vx.index).unwrap(), vec![f.clone()]);

    // Replace: new MAC / new remote, same key.
    let n2 = NeighbourEntry {
        mac: [0x66, 0x74, 0, 0, 0, 9],
        ..n.clone()
    };
    let f2 = FdbEntry {
        dst: ip("198.18.0.3"),
        ..f.clone()
    };
    assert!(
        k.apply_neighbours(&[NeighOp::Replace(n2.clone())])
            .unwrap()
            .is_ok()
    );
    assert!(k.apply_fdb(&[FdbOp::Replace(f2.clone())]).unwrap().is_ok());
    assert_eq!(k.dump_neighbours(vx.index).unwrap(), vec![n2.clone()]);
    assert_eq!(k.dump_fdb(vx.index).unwrap(), vec![f2.clone()]);

    // IPv6 neighbour on the same device.
    let n6 = NeighbourEntry {
        ifindex: vx.index,
        ip: ip("2001:2:0:19::"),
        mac: peer_mac,
    };
    assert!(
        k.apply_neighbours(&[NeighOp::Replace(n6.clone())])
            .unwrap()
            .is_ok()
    );
    assert_eq!(k.dump_neighbours(vx.index).unwrap().len(), 2);

    let report = k
        .apply_neighbours(&[NeighOp::Delete(n2), NeighOp::Delete(n6)])
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(k.apply_fdb(&[FdbOp::Delete(f2)]).unwrap().is_ok());
    assert!(k.dump_neighbours(vx.index).unwrap().is_empty());
    assert!(k.dump_fdb(vx.index).unwrap().is_empty());
    let neigh = ns.ip_json(&["neigh", "show", "dev", VXLAN_V4_NAME]);
    assert_eq!(neigh.len(), 1, "only the foreign entry is left: {neigh:#?}");
}

//! `compute` as a function of sets (input order never matters) and its inputs and output as
//! data: a JSON round trip, and the defaults a pool gets from JSON.

use super::*;

// ---------------------------------------------------------------------------------------------
// determinism and serde

#[test]
fn compute_is_independent_of_input_order() {
    let pools = vec![
        pool("198.19.0.0/17", CrossSubnet, Never),
        pool("198.19.128.0/17", Never, Always),
    ];
    let routes = vec![
        best("198.19.5.0/26", &[SAME4, OTHER4]),
        best("198.19.200.0/26", &[OTHER4, "198.18.3.3"]),
        best("203.0.113.0/24", &["198.18.1.254"]),
    ];
    let a = compute(&inputs(
        pools.clone(),
        &["198.19.1.0/26", "198.19.130.0/26"],
        routes.clone(),
    ));
    let mut rp = pools;
    rp.reverse();
    let mut rr: Vec<BestRoute> = routes.into_iter().rev().collect();
    for r in &mut rr {
        r.next_hops.reverse();
    }
    let b = compute(&inputs(rp, &["198.19.130.0/26", "198.19.1.0/26"], rr));
    assert_eq!(a, b);
}

#[test]
fn inputs_and_desired_state_round_trip_through_json() {
    let i = inputs(
        vec![
            pool("198.19.0.0/16", Never, CrossSubnet),
            pool("2001:db8:ff::/48", Never, Always),
        ],
        &["198.19.1.0/26"],
        vec![
            best("198.19.5.0/26", &[OTHER4, SAME4]),
            best("2001:db8:ff:5::/122", &[OTHER6]),
        ],
    );
    let j = serde_json::to_string(&i).unwrap();
    assert!(j.contains("\"vxlanMode\":\"CrossSubnet\""), "{j}");
    assert_eq!(serde_json::from_str::<Inputs>(&j).unwrap(), i);
    let s = compute(&i);
    let j = serde_json::to_string(&s).unwrap();
    assert!(
        j.contains("\"198.19.1.0/26\":{\"type\":\"blackhole\"}"),
        "{j}"
    );
    assert_eq!(serde_json::from_str::<DesiredState>(&j).unwrap(), s);
}

#[test]
fn pool_defaults_in_json_are_never_and_false() {
    let p: Pool = serde_json::from_str(r#"{"cidr":"198.19.0.0/16"}"#).unwrap();
    assert_eq!(p, pool("198.19.0.0/16", Never, Never));
}

//! Tests of loading, errors, warnings and peer computation. Fixtures live in tests/config/
//! (read from disk, as the agent would); small rule-by-rule cases are inline YAML.

use std::path::PathBuf;

use super::{BgpPeering, Config, ConfigError, ConfigErrors};

mod errors;
mod load;
mod peers;
mod warnings;

pub(super) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(name)
}

pub(super) fn load(names: &[&str]) -> Config {
    let paths: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    Config::load(&paths).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) const CLUSTER: [&str; 3] = [
    "cluster-nodes.yaml",
    "cluster-bgp.yaml",
    "cluster-pools.yaml",
];

pub(super) fn cluster() -> Config {
    load(&CLUSTER)
}

pub(super) fn load_err(name: &str) -> ConfigErrors {
    match Config::load(&[fixture(name)]) {
        Ok(_) => panic!("{name} loaded without error"),
        Err(e) => e,
    }
}

/// The single error a fixture gives.
pub(super) fn only_error(name: &str) -> ConfigError {
    let errors = load_err(name);
    assert_eq!(
        errors.len(),
        1,
        "{name}: expected one error, got:\n{errors}"
    );
    errors.iter().next().expect("one").clone()
}

/// Inline YAML, labelled `inline.yaml`.
pub(super) fn yaml(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_texts(&[("inline.yaml", text)])
}

pub(super) fn yaml_ok(text: &str) -> Config {
    yaml(text).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn yaml_err(text: &str) -> ConfigError {
    match yaml(text) {
        Ok(_) => panic!("loaded without error"),
        Err(e) => {
            assert_eq!(e.len(), 1, "expected one error, got:\n{e}");
            e.0[0].clone()
        }
    }
}

/// One line per peering, for comparing peer sets.
pub(super) fn summary(p: &BgpPeering) -> String {
    let addr = match p.peer_address {
        std::net::IpAddr::V4(a) => format!("{a}:{}", p.port),
        std::net::IpAddr::V6(a) => format!("[{a}]:{}", p.port),
    };
    let mut s = format!(
        "{:?} {addr} as {} local-as {}",
        p.kind, p.peer_as, p.local_as
    );
    if let Some(b) = &p.bgp_peer {
        s += &format!(" via {b}");
    }
    if let Some(n) = &p.peer_node {
        s += &format!(" node {n}");
    }
    for (flag, name) in [
        (p.passive, "passive"),
        (p.reverse, "reverse"),
        (p.route_reflector_client, "rr-client"),
    ] {
        if flag {
            s += &format!(" {name}");
        }
    }
    s
}

pub(super) fn peer_set(config: &Config, node: &str) -> Vec<String> {
    config
        .bgp_peerings(node)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(summary)
        .collect()
}

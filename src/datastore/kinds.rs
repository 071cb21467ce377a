//! Resource kinds as the command line and the store keys spell them.
//!
//! The command line accepts what calicoctl accepts (any case, singular, plural or calicoctl's
//! short forms), so scripts written for calicoctl keep working; keys always use the lower-case
//! plural, so one resource has exactly one key however it was named.

use super::{DatastoreError, RESOURCES_PREFIX};
use crate::config::Kind;

/// A kind's names: singular (what `tortie apply` prints), plural (the key's directory), and
/// the other spellings calicoctl accepts.
struct Names {
    kind: Kind,
    singular: &'static str,
    plural: &'static str,
    aliases: &'static [&'static str],
}

const NAMES: [Names; 5] = [
    Names {
        kind: Kind::Node,
        singular: "node",
        plural: "nodes",
        aliases: &["no", "nos"],
    },
    Names {
        kind: Kind::BgpConfiguration,
        singular: "bgpconfiguration",
        plural: "bgpconfigurations",
        aliases: &["bgpconfig", "bgpconfigs"],
    },
    Names {
        kind: Kind::BgpPeer,
        singular: "bgppeer",
        plural: "bgppeers",
        aliases: &["bgpp", "bgpps", "bp", "bps"],
    },
    Names {
        kind: Kind::BgpFilter,
        singular: "bgpfilter",
        plural: "bgpfilters",
        aliases: &["bgpf", "bgpfs", "bf", "bfs"],
    },
    Names {
        kind: Kind::IpPool,
        singular: "ippool",
        plural: "ippools",
        aliases: &["ipp", "ipps", "pool", "pools"],
    },
];

fn names(kind: Kind) -> &'static Names {
    // NAMES lists every Kind; the fallback is never taken but keeps this total.
    NAMES.iter().find(|n| n.kind == kind).unwrap_or(&NAMES[0])
}

/// A kind named on the command line: case-insensitive, singular, plural or a short form.
pub fn parse_kind(s: &str) -> Result<Kind, DatastoreError> {
    let lower = s.trim().to_ascii_lowercase();
    NAMES
        .iter()
        .find(|n| n.singular == lower || n.plural == lower || n.aliases.contains(&lower.as_str()))
        .map(|n| n.kind)
        .ok_or_else(|| {
            DatastoreError::Usage(format!(
                "unknown resource kind {s:?}; tortie stores {}",
                known_kinds()
            ))
        })
}

/// The kinds and their spellings, for error messages.
pub fn known_kinds() -> String {
    NAMES
        .iter()
        .map(|n| {
            let mut all = vec![n.plural];
            all.extend(n.aliases.iter().copied());
            format!("{} ({})", n.singular, all.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ippool`, `bgppeer`, ...: how `tortie apply` and `tortie delete` name a kind.
pub fn singular(kind: Kind) -> &'static str {
    names(kind).singular
}

/// `ippools`, `bgppeers`, ...: the directory of a kind under [`RESOURCES_PREFIX`].
pub fn plural(kind: Kind) -> &'static str {
    names(kind).plural
}

/// The kind whose key directory is `dir`.
pub fn from_plural(dir: &str) -> Option<Kind> {
    NAMES.iter().find(|n| n.plural == dir).map(|n| n.kind)
}

/// `/tortie/v1/resources/<plural>/<name>`.
pub fn key_of(kind: Kind, name: &str) -> String {
    format!("{RESOURCES_PREFIX}{}/{name}", plural(kind))
}

/// `/tortie/v1/resources/<plural>/`: every key of one kind.
pub fn kind_prefix(kind: Kind) -> String {
    format!("{RESOURCES_PREFIX}{}/", plural(kind))
}

/// The kind and name a key stands for, when it is a resource key tortie writes.
pub fn parse_key(key: &str) -> Option<(Kind, &str)> {
    let rest = key.strip_prefix(RESOURCES_PREFIX)?;
    let (dir, name) = rest.split_once('/')?;
    let kind = from_plural(dir)?;
    if crate::config::values::check_name(name).is_err() {
        return None;
    }
    Some((kind, name))
}

/// Key of a resource: `/tortie/v1/resources/<kind in lower case plural>/<name>`. `kind` is
/// any spelling [`parse_kind`] or a `kind:` field accepts (`IPPool`, `ippools`, `pool`...);
/// an unknown kind is lower-cased and given an `s`, so its key is still under the prefix and
/// matches nothing tortie writes.
#[allow(dead_code)] // for the agent and the lab; the commands use `key_of`
pub fn resource_key(kind: &str, name: &str) -> String {
    match parse_kind(kind) {
        Ok(k) => key_of(k, name),
        Err(_) => {
            let lower = kind.trim().to_ascii_lowercase();
            let dir = if lower.ends_with('s') {
                lower
            } else {
                format!("{lower}s")
            };
            format!("{RESOURCES_PREFIX}{dir}/{name}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_calicoctl_accepts_names_its_kind() {
        let cases: [(&str, Kind); 16] = [
            ("node", Kind::Node),
            ("Nodes", Kind::Node),
            ("no", Kind::Node),
            ("bgpconfig", Kind::BgpConfiguration),
            ("BGPConfiguration", Kind::BgpConfiguration),
            ("bgpconfigurations", Kind::BgpConfiguration),
            ("bgpconfigs", Kind::BgpConfiguration),
            ("bgppeer", Kind::BgpPeer),
            ("BGPPeers", Kind::BgpPeer),
            ("bp", Kind::BgpPeer),
            ("bgpfilter", Kind::BgpFilter),
            ("BgpFilters", Kind::BgpFilter),
            ("IPPool", Kind::IpPool),
            ("ippools", Kind::IpPool),
            ("pool", Kind::IpPool),
            ("IPPS", Kind::IpPool),
        ];
        for (s, kind) in cases {
            assert_eq!(parse_kind(s).ok(), Some(kind), "{s}");
        }
    }

    #[test]
    fn an_unknown_kind_is_refused_with_the_list_of_kinds() {
        let err = parse_kind("networkpolicy").unwrap_err().to_string();
        assert!(err.contains("\"networkpolicy\""), "{err}");
        for kind in ["node", "bgpconfiguration", "bgppeer", "bgpfilter", "ippool"] {
            assert!(err.contains(kind), "{err} lacks {kind}");
        }
    }

    #[test]
    fn keys_use_the_lower_case_plural_whatever_the_spelling() {
        assert_eq!(
            resource_key("IPPool", "default-pool"),
            "/tortie/v1/resources/ippools/default-pool"
        );
        assert_eq!(
            resource_key("bgpconfig", "default"),
            "/tortie/v1/resources/bgpconfigurations/default"
        );
        assert_eq!(
            resource_key("BGPPeer", "tor"),
            "/tortie/v1/resources/bgppeers/tor"
        );
        assert_eq!(
            resource_key("node", "node-a"),
            "/tortie/v1/resources/nodes/node-a"
        );
        assert_eq!(
            resource_key("bgpfilters", "f"),
            "/tortie/v1/resources/bgpfilters/f"
        );
    }

    #[test]
    fn an_unknown_kind_still_gets_a_key_under_the_prefix() {
        assert_eq!(
            resource_key("Widget", "w"),
            "/tortie/v1/resources/widgets/w"
        );
    }

    #[test]
    fn a_key_parses_back_to_its_kind_and_name() {
        for kind in Kind::ALL {
            let key = key_of(kind, "a.b-c_1");
            assert_eq!(parse_key(&key), Some((kind, "a.b-c_1")), "{key}");
        }
    }

    #[test]
    fn keys_tortie_does_not_write_do_not_parse() {
        for key in [
            "/tortie/v1/resources/widgets/w",
            "/tortie/v1/resources/ippools/",
            "/tortie/v1/resources/ippools/a/b",
            "/tortie/v1/resources/ippools",
            "/tortie/v1/ipam/blocks/198.19.0.0-26",
        ] {
            assert_eq!(parse_key(key), None, "{key}");
        }
    }
}

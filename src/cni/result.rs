//! What the plugin prints: the CNI result of a successful ADD (and the answer of VERSION), or
//! the CNI error object, with the specification's error codes.
//!
//! The runtime reads exactly one JSON object from stdout and nothing else, so every outcome,
//! including the plugin's own failures, is turned into one of these types before it is
//! printed. Codes 1 to 99 are the specification's (CNI 1.0/1.1, "Error" section); 100 and
//! above are tortie's, each for one kind of failure a runtime or an operator would handle
//! differently.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The versions whose result and error formats this plugin speaks (STATUS needs 1.1.0).
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];

/// The newest supported version: what VERSION reports as its own.
pub const LATEST_VERSION: &str = "1.1.0";

/// An error code of the specification or of tortie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// 1: the network configuration's `cniVersion` is not one this plugin speaks.
    IncompatibleVersion,
    /// 2: a field of the network configuration has a value this plugin does not support.
    UnsupportedField,
    /// 3: the container (its network namespace) is unknown or gone.
    ContainerUnknown,
    /// 4: a required `CNI_*` environment variable is missing or invalid.
    InvalidEnvironment,
    /// 5: reading the network configuration (stdin) failed.
    Io,
    /// 6: the network configuration is not valid JSON of the expected shape.
    Decode,
    /// 7: the network configuration is well-formed but not valid.
    InvalidConfig,
    /// 11: a transient failure (datastore unreachable, contention): try again later.
    TryAgainLater,
    /// 50: STATUS: the plugin cannot serve ADD requests.
    NotAvailable,
    /// 100: IPAM has no address to give (pools exhausted, block limit, no usable pool).
    NoAddress,
    /// 101: IPAM failed otherwise (a corrupt document, an invalid request).
    IpamFailed,
    /// 102: creating or removing links, addresses, routes or sysctls failed.
    DataplaneFailed,
    /// 103: CHECK found the container's networking not as ADD left it.
    CheckFailed,
}

impl Code {
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::ContainerUnknown => 3,
            Code::InvalidEnvironment => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::NotAvailable => 50,
            Code::NoAddress => 100,
            Code::IpamFailed => 101,
            Code::DataplaneFailed => 102,
            Code::CheckFailed => 103,
        }
    }

    /// The short description the error object carries in `msg`.
    pub fn summary(self) -> &'static str {
        match self {
            Code::IncompatibleVersion => "incompatible CNI version",
            Code::UnsupportedField => "unsupported field in network configuration",
            Code::ContainerUnknown => "container unknown or does not exist",
            Code::InvalidEnvironment => "invalid environment variables",
            Code::Io => "I/O failure",
            Code::Decode => "failed to decode content",
            Code::InvalidConfig => "invalid network config",
            Code::TryAgainLater => "try again later",
            Code::NotAvailable => "plugin not available",
            Code::NoAddress => "no IP address available",
            Code::IpamFailed => "IPAM failed",
            Code::DataplaneFailed => "dataplane setup failed",
            Code::CheckFailed => "container networking does not match",
        }
    }
}

/// A failure as the runtime gets it: a code and the whole story in `details`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {details}", code.summary())]
pub struct CniError {
    pub code: Code,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, details: impl Into<String>) -> CniError {
        CniError {
            code,
            details: details.into(),
        }
    }

    /// The error object of the specification, in `cni_version` (the configuration's, or the
    /// latest when the configuration could not be read).
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code.number(),
            "msg": self.code.summary(),
            "details": self.details,
        })
    }
}

/// An interface of the result: the host side (no sandbox) or the container side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address of the result (`address` with its prefix length, as the spec writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route of the result, inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteConfig {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// The result of ADD (and the `prevResult` CHECK and DEL are given back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub dns: serde_json::Map<String, serde_json::Value>,
}

/// The answer to VERSION.
pub fn version_info() -> serde_json::Value {
    serde_json::json!({
        "cniVersion": LATEST_VERSION,
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

/// Checks a `cniVersion` value.
pub fn check_version(version: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "cniVersion {version:?} is not supported; tortie-cni speaks {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_the_specifications_object_with_code_msg_and_details() {
        let e = CniError::new(Code::InvalidEnvironment, "CNI_CONTAINERID is not set");
        assert_eq!(
            e.to_json("1.0.0"),
            serde_json::json!({
                "cniVersion": "1.0.0",
                "code": 4,
                "msg": "invalid environment variables",
                "details": "CNI_CONTAINERID is not set",
            })
        );
    }

    #[test]
    fn the_specifications_codes_keep_their_numbers() {
        let codes = [
            (Code::IncompatibleVersion, 1),
            (Code::UnsupportedField, 2),
            (Code::ContainerUnknown, 3),
            (Code::InvalidEnvironment, 4),
            (Code::Io, 5),
            (Code::Decode, 6),
            (Code::InvalidConfig, 7),
            (Code::TryAgainLater, 11),
            (Code::NotAvailable, 50),
        ];
        for (c, n) in codes {
            assert_eq!(c.number(), n, "{c:?}");
        }
    }

    #[test]
    fn tortie_codes_are_in_the_plugin_range() {
        for c in [
            Code::NoAddress,
            Code::IpamFailed,
            Code::DataplaneFailed,
            Code::CheckFailed,
        ] {
            assert!(c.number() >= 100, "{c:?}");
        }
    }

    #[test]
    fn an_unknown_version_is_refused_with_code_1_naming_the_supported_ones() {
        let e = check_version("0.2.0").unwrap_err();
        assert_eq!(e.code, Code::IncompatibleVersion);
        assert!(e.details.contains("0.2.0") && e.details.contains("1.0.0"));
        assert!(check_version("1.0.0").is_ok());
    }

    #[test]
    fn version_lists_every_supported_version() {
        let v = version_info();
        assert_eq!(
            v["supportedVersions"],
            serde_json::json!(["1.0.0", "1.1.0"])
        );
        assert_eq!(v["cniVersion"], "1.1.0");
    }

    #[test]
    fn a_result_leaves_out_empty_optional_fields() {
        let r = CniResult {
            cni_version: "1.0.0".into(),
            interfaces: vec![Interface {
                name: "tortie0123456789".into(),
                mac: String::new(),
                mtu: None,
                sandbox: String::new(),
            }],
            ips: vec![IpConfig {
                address: "198.19.0.5/32".into(),
                gateway: None,
                interface: Some(0),
            }],
            routes: vec![RouteConfig {
                dst: "0.0.0.0/0".into(),
                gw: Some("169.254.1.1".parse().unwrap()),
            }],
            dns: Default::default(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "tortie0123456789"}],
                "ips": [{"address": "198.19.0.5/32", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
                "dns": {},
            })
        );
    }
}

//! The network configuration on stdin (what a runtime takes from
//! `/etc/cni/net.d/*.conflist`), read and validated before anything is touched (the `CNI_*`
//! environment is [`super::env`]).
//!
//! Every problem becomes a [`CniError`] with the code the specification assigns to it (6 for
//! JSON that does not decode, 7 for an invalid value, 2 for an unsupported one, 1 for the
//! version), naming the field and the value, so a failed ADD explains itself in the runtime's
//! event log. Keys tortie does not know are logged and otherwise ignored: the
//! runtime adds some of its own (`runtimeConfig`, `args`), and a conflist may carry fields for
//! other plugins.

use super::result::{CniError, CniResult, Code, check_version};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The plugin's `type`s: the executable names the runtime looks up in `CNI_PATH`, the binary
/// itself (`tortie`) or its plugin name (`tortie-cni`); both run the plugin (see
/// [`super::invoked_as_plugin`]).
pub const PLUGIN_TYPES: [&str; 2] = ["tortie", "tortie-cni"];
/// `ipam.type` when given: tortie's own IPAM (the plugin never delegates to another one).
pub const IPAM_TYPE: &str = "tortie";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/tortie/data";
pub const DEFAULT_NODENAME_FILE: &str = "/var/lib/tortie/nodename";
pub const DEFAULT_API_SOCKET: &str = "/run/tortie/tortie.sock";
pub const DEFAULT_LOCK_FILE: &str = "/run/tortie/cni-ipam.lock";

/// Keys of the network configuration this plugin reads (the `etcd_*` and `api_socket` ones
/// are Calico's names, taken so that a Calico-style conflist works unchanged).
const KNOWN_KEYS: [&str; 17] = [
    "cniVersion",
    "name",
    "type",
    "nodename",
    "nodename_file",
    "mtu",
    "datastore",
    "apiSocket",
    "ipam",
    "log_level",
    "ipamLockFile",
    "prevResult",
    "api_socket",
    "etcd_endpoints",
    "etcd_ca_cert_file",
    "etcd_cert_file",
    "etcd_key_file",
];
/// Keys runtimes add or the specification defines, which this plugin has no use for.
const RUNTIME_KEYS: [&str; 4] = ["runtimeConfig", "args", "capabilities", "dns"];

/// The pod's MTU: fixed, or derived from the underlay and the pools' encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mtu {
    Auto,
    Fixed(u32),
}

/// Where the datastore is, when the plugin talks to it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datastore {
    pub data_dir: PathBuf,
    pub etcd_endpoints: Vec<String>,
    pub etcd_ca_cert: Option<PathBuf>,
    pub etcd_cert: Option<PathBuf>,
    pub etcd_key: Option<PathBuf>,
}

/// Which addresses a pod gets, and from which pools (names or CIDRs; empty = every enabled
/// pool whose nodeSelector selects the node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConf {
    pub assign_ipv4: bool,
    pub assign_ipv6: bool,
    pub ipv4_pools: Vec<String>,
    pub ipv6_pools: Vec<String>,
}

/// The validated network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub nodename: Option<String>,
    pub nodename_file: PathBuf,
    pub mtu: Mtu,
    pub datastore: Datastore,
    /// The local agent's API socket; `None` when the configuration turns it off (`""`).
    pub api_socket: Option<PathBuf>,
    pub ipam: IpamConf,
    pub log_level: String,
    /// The host-wide lock serialising IPAM between plugin processes (as Calico's).
    pub lock_file: PathBuf,
    pub prev_result: Option<CniResult>,
    /// Keys that were ignored, for a log line.
    pub ignored_keys: Vec<String>,
}

/// A boolean written as JSON `true` or as Calico's string `"true"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

/// etcd endpoints as a list, or as Calico's comma-separated string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Endpoints {
    List(Vec<String>),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawMtu {
    Number(i64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDatastore {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    etcd_endpoints: Vec<String>,
    etcd_ca_cert: Option<PathBuf>,
    etcd_cert: Option<PathBuf>,
    etcd_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct RawIpam {
    #[serde(rename = "type")]
    type_: Option<String>,
    assign_ipv4: Option<Flag>,
    assign_ipv6: Option<Flag>,
    #[serde(default)]
    ipv4_pools: Vec<String>,
    #[serde(default)]
    ipv6_pools: Vec<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    cni_version: String,
    name: String,
    #[serde(rename = "type")]
    type_: String,
    nodename: Option<String>,
    #[serde(rename = "nodename_file")]
    nodename_file: Option<PathBuf>,
    mtu: Option<RawMtu>,
    #[serde(default)]
    datastore: RawDatastore,
    api_socket: Option<PathBuf>,
    #[serde(rename = "api_socket")]
    api_socket_calico: Option<PathBuf>,
    #[serde(rename = "etcd_endpoints")]
    etcd_endpoints: Option<Endpoints>,
    #[serde(rename = "etcd_ca_cert_file")]
    etcd_ca_cert_file: Option<PathBuf>,
    #[serde(rename = "etcd_cert_file")]
    etcd_cert_file: Option<PathBuf>,
    #[serde(rename = "etcd_key_file")]
    etcd_key_file: Option<PathBuf>,
    #[serde(default)]
    ipam: RawIpam,
    #[serde(rename = "log_level")]
    log_level: Option<String>,
    ipam_lock_file: Option<PathBuf>,
    prev_result: Option<CniResult>,
}

fn invalid(details: String) -> CniError {
    CniError::new(Code::InvalidConfig, details)
}

/// The `cniVersion` of a configuration, read on its own so that even an invalid
/// configuration's error is written in its version; `None` when there is none to read.
pub fn peek_version(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let s = v.get("cniVersion")?.as_str()?;
    check_version(s).ok()?;
    Some(s.to_string())
}

/// The `log_level` of a configuration, if it has a readable one.
pub fn peek_log_level(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(v.get("log_level")?.as_str()?.to_string())
}

impl NetConf {
    /// Decodes and validates a network configuration.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(
                Code::Decode,
                format!("the network configuration on stdin is not JSON: {e}"),
            )
        })?;
        let Some(object) = value.as_object() else {
            return Err(CniError::new(
                Code::Decode,
                "the network configuration on stdin is not a JSON object",
            ));
        };
        match object.get("cniVersion") {
            None => return Err(invalid("cniVersion is missing".into())),
            Some(serde_json::Value::String(v)) => check_version(v)?,
            Some(other) => {
                return Err(CniError::new(
                    Code::Decode,
                    format!("cniVersion: expected a string such as \"1.0.0\", found {other}"),
                ));
            }
        }
        let ignored_keys: Vec<String> = object
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()) && !RUNTIME_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        let raw: Raw = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e.path().to_string();
            CniError::new(
                Code::Decode,
                format!("network configuration field {path}: {}", e.inner()),
            )
        })?;
        raw.validate(ignored_keys)
    }
}

impl Raw {
    fn validate(self, mut ignored_keys: Vec<String>) -> Result<NetConf, CniError> {
        check_network_name(&self.name)?;
        if !PLUGIN_TYPES.contains(&self.type_.as_str()) {
            return Err(CniError::new(
                Code::UnsupportedField,
                format!(
                    "type {:?}: this plugin is {:?} or {:?} (the file name runtimes execute from CNI_PATH)",
                    self.type_, PLUGIN_TYPES[0], PLUGIN_TYPES[1]
                ),
            ));
        }
        let nodename = match self.nodename {
            Some(n) => {
                check_nodename(&n).map_err(|e| invalid(format!("nodename {n:?}: {e}")))?;
                Some(n)
            }
            None => None,
        };
        let mtu = match self.mtu {
            None => Mtu::Auto,
            Some(RawMtu::Text(t)) if t == "auto" => Mtu::Auto,
            Some(RawMtu::Text(t)) => {
                return Err(invalid(format!(
                    "mtu {t:?}: expected a number from 68 to 65535, or \"auto\""
                )));
            }
            Some(RawMtu::Number(0)) => Mtu::Auto,
            Some(RawMtu::Number(n)) => match u32::try_from(n) {
                Ok(m) if (68..=65535).contains(&m) => Mtu::Fixed(m),
                _ => {
                    return Err(invalid(format!(
                        "mtu {n}: expected a number from 68 to 65535, or \"auto\""
                    )));
                }
            },
        };
        let mut raw_ds = self.datastore;
        let calico_etcd = self.etcd_endpoints.is_some()
            || self.etcd_ca_cert_file.is_some()
            || self.etcd_cert_file.is_some()
            || self.etcd_key_file.is_some();
        if calico_etcd {
            let nested = !raw_ds.etcd_endpoints.is_empty()
                || raw_ds.etcd_ca_cert.is_some()
                || raw_ds.etcd_cert.is_some()
                || raw_ds.etcd_key.is_some();
            if nested {
                return Err(invalid(
                    "etcd is given twice: use either datastore.etcd* or Calico's etcd_* keys"
                        .into(),
                ));
            }
            raw_ds.etcd_endpoints = match self.etcd_endpoints {
                Some(Endpoints::List(l)) => l,
                Some(Endpoints::Text(t)) => t
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect(),
                None => Vec::new(),
            };
            raw_ds.etcd_ca_cert = self.etcd_ca_cert_file;
            raw_ds.etcd_cert = self.etcd_cert_file;
            raw_ds.etcd_key = self.etcd_key_file;
        }
        let datastore = raw_ds.validate()?;
        if self.api_socket.is_some() && self.api_socket_calico.is_some() {
            return Err(invalid(
                "the API socket is given twice: use either apiSocket or api_socket".into(),
            ));
        }
        let api_socket = match self.api_socket.or(self.api_socket_calico) {
            None => Some(PathBuf::from(DEFAULT_API_SOCKET)),
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) if p.is_absolute() => Some(p),
            Some(p) => {
                return Err(invalid(format!(
                    "apiSocket {}: expected an absolute path, or \"\" for none",
                    p.display()
                )));
            }
        };
        let nodename_file = absolute(
            "nodename_file",
            self.nodename_file
                .unwrap_or_else(|| DEFAULT_NODENAME_FILE.into()),
        )?;
        let lock_file = absolute(
            "ipamLockFile",
            self.ipam_lock_file
                .unwrap_or_else(|| DEFAULT_LOCK_FILE.into()),
        )?;
        let (ipam, ipam_ignored) = self.ipam.validate()?;
        ignored_keys.extend(ipam_ignored);
        let log_level = self.log_level.unwrap_or_else(|| "info".into());
        if !["error", "warn", "warning", "info", "debug", "trace", "off"]
            .contains(&log_level.to_ascii_lowercase().as_str())
        {
            return Err(invalid(format!(
                "log_level {log_level:?}: expected error, warn, info, debug, trace or off"
            )));
        }
        Ok(NetConf {
            cni_version: self.cni_version,
            name: self.name,
            nodename,
            nodename_file,
            mtu,
            datastore,
            api_socket,
            ipam,
            log_level,
            lock_file,
            prev_result: self.prev_result,
            ignored_keys,
        })
    }
}

fn absolute(field: &str, p: PathBuf) -> Result<PathBuf, CniError> {
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(invalid(format!(
            "{field} {}: expected an absolute path",
            p.display()
        )))
    }
}

impl RawDatastore {
    fn validate(self) -> Result<Datastore, CniError> {
        let data_dir = absolute(
            "datastore.dataDir",
            self.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        )?;
        // An entry may hold several comma-separated endpoints, as an install script fills a
        // single placeholder with its ETCD_ENDPOINTS.
        let endpoints: Vec<String> = self
            .etcd_endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        if !self.etcd_endpoints.is_empty() && endpoints.is_empty() {
            return Err(invalid(
                "datastore.etcdEndpoints: the list holds no endpoint".into(),
            ));
        }
        for e in &endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() < 9 {
                return Err(invalid(format!(
                    "datastore.etcdEndpoints: {e:?} is not an http:// or https:// URL"
                )));
            }
        }
        let tls = [
            ("datastore.etcdCaCert", &self.etcd_ca_cert),
            ("datastore.etcdCert", &self.etcd_cert),
            ("datastore.etcdKey", &self.etcd_key),
        ];
        for (field, file) in tls {
            let Some(file) = file else { continue };
            if endpoints.is_empty() {
                return Err(invalid(format!(
                    "{field} is for etcd, but datastore.etcdEndpoints is empty"
                )));
            }
            if !file.is_absolute() {
                return Err(invalid(format!(
                    "{field} {}: expected an absolute path",
                    file.display()
                )));
            }
        }
        if self.etcd_cert.is_some() != self.etcd_key.is_some() {
            return Err(invalid(
                "datastore.etcdCert and datastore.etcdKey go together".into(),
            ));
        }
        Ok(Datastore {
            data_dir,
            etcd_endpoints: endpoints,
            etcd_ca_cert: self.etcd_ca_cert,
            etcd_cert: self.etcd_cert,
            etcd_key: self.etcd_key,
        })
    }
}

fn flag(field: &str, f: Option<Flag>, default: bool) -> Result<bool, CniError> {
    match f {
        None => Ok(default),
        Some(Flag::Bool(b)) => Ok(b),
        Some(Flag::Text(t)) => match t.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid(format!(
                "ipam.{field} {t:?}: expected true or false"
            ))),
        },
    }
}

impl RawIpam {
    fn validate(self) -> Result<(IpamConf, Vec<String>), CniError> {
        if let Some(t) = &self.type_ {
            if t != IPAM_TYPE {
                return Err(CniError::new(
                    Code::UnsupportedField,
                    format!(
                        "ipam.type {t:?}: tortie-cni allocates from tortie's IPAM itself; leave ipam.type out or set it to {IPAM_TYPE:?}"
                    ),
                ));
            }
        }
        let assign_ipv4 = flag("assign_ipv4", self.assign_ipv4, true)?;
        let assign_ipv6 = flag("assign_ipv6", self.assign_ipv6, false)?;
        if !assign_ipv4 && !assign_ipv6 {
            return Err(invalid(
                "ipam: assign_ipv4 and assign_ipv6 are both false: a pod needs an address".into(),
            ));
        }
        for (field, pools) in [
            ("ipv4_pools", &self.ipv4_pools),
            ("ipv6_pools", &self.ipv6_pools),
        ] {
            if let Some(bad) = pools.iter().find(|p| p.trim().is_empty()) {
                return Err(invalid(format!(
                    "ipam.{field}: {bad:?} names no pool (give IPPool names or CIDRs)"
                )));
            }
        }
        let ignored = self.other.keys().map(|k| format!("ipam.{k}")).collect();
        Ok((
            IpamConf {
                assign_ipv4,
                assign_ipv6,
                ipv4_pools: self
                    .ipv4_pools
                    .iter()
                    .map(|p| p.trim().to_string())
                    .collect(),
                ipv6_pools: self
                    .ipv6_pools
                    .iter()
                    .map(|p| p.trim().to_string())
                    .collect(),
            },
            ignored,
        ))
    }
}

/// The specification's rule for network names.
fn check_network_name(name: &str) -> Result<(), CniError> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "name {name:?}: a network name starts with a letter or digit and has only letters, digits, '_', '.' and '-'"
        )))
    }
}

/// A node name as Kubernetes and Calico write them (a DNS subdomain).
pub fn check_nodename(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 253 {
        return Err("a node name has 1 to 253 characters".into());
    }
    if !n
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        || !n.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !n.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(
            "a node name has lowercase letters, digits, '-' and '.', and starts and ends with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: serde_json::Value) -> Result<NetConf, CniError> {
        let mut base = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": "tortie-cni",
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        NetConf::parse(&serde_json::to_vec(&base).unwrap())
    }

    #[test]
    fn a_minimal_configuration_takes_calicos_defaults() {
        let c = conf(serde_json::json!({})).unwrap();
        assert_eq!(c.mtu, Mtu::Auto);
        assert_eq!(c.datastore.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.api_socket, Some(PathBuf::from(DEFAULT_API_SOCKET)));
        assert!(c.ipam.assign_ipv4 && !c.ipam.assign_ipv6);
        assert!(c.ipam.ipv4_pools.is_empty());
    }

    #[test]
    fn calicos_string_booleans_are_taken() {
        let c = conf(serde_json::json!({"ipam": {"assign_ipv4": "false", "assign_ipv6": "true"}}))
            .unwrap();
        assert!(!c.ipam.assign_ipv4 && c.ipam.assign_ipv6);
    }

    #[test]
    fn json_that_does_not_decode_is_code_6() {
        let e = NetConf::parse(b"{\"cniVersion\": \"1.0.0\",").unwrap_err();
        assert_eq!(e.code, Code::Decode);
    }

    #[test]
    fn a_field_of_the_wrong_type_is_code_6_naming_the_field() {
        let e = conf(serde_json::json!({"ipam": {"ipv4_pools": "default"}})).unwrap_err();
        assert_eq!(e.code, Code::Decode);
        assert!(e.details.contains("ipam.ipv4_pools"), "{}", e.details);
    }

    #[test]
    fn an_unknown_version_is_code_1() {
        let e = conf(serde_json::json!({"cniVersion": "9.9.9"})).unwrap_err();
        assert_eq!(e.code, Code::IncompatibleVersion);
    }

    #[test]
    fn another_plugin_type_is_an_unsupported_field_naming_both_of_ours() {
        let e = conf(serde_json::json!({"type": "calico"})).unwrap_err();
        assert_eq!(e.code, Code::UnsupportedField);
        assert!(e.details.contains("calico"), "{}", e.details);
        assert!(
            e.details.contains("\"tortie\" or \"tortie-cni\""),
            "{}",
            e.details
        );
    }

    #[test]
    fn the_binarys_own_name_is_a_plugin_type_too() {
        assert!(conf(serde_json::json!({"type": "tortie"})).is_ok());
        assert!(conf(serde_json::json!({"type": "tortie-cni"})).is_ok());
    }

    #[test]
    fn another_ipam_plugin_is_refused() {
        let e = conf(serde_json::json!({"ipam": {"type": "host-local"}})).unwrap_err();
        assert_eq!(e.code, Code::UnsupportedField);
        assert!(e.details.contains("host-local"));
    }

    #[test]
    fn an_mtu_out_of_range_is_code_7() {
        let e = conf(serde_json::json!({"mtu": 40})).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
        assert_eq!(
            conf(serde_json::json!({"mtu": 1400})).unwrap().mtu,
            Mtu::Fixed(1400)
        );
        assert_eq!(
            conf(serde_json::json!({"mtu": "auto"})).unwrap().mtu,
            Mtu::Auto
        );
    }

    #[test]
    fn no_family_at_all_is_refused() {
        let e = conf(serde_json::json!({"ipam": {"assign_ipv4": false}})).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
    }

    #[test]
    fn tls_files_without_etcd_are_refused() {
        let e = conf(serde_json::json!({"datastore": {"etcdCaCert": "/etc/ca.pem"}})).unwrap_err();
        assert!(e.details.contains("etcdCaCert"), "{}", e.details);
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        let c = conf(serde_json::json!({"ipv4_pool": ["x"], "runtimeConfig": {}})).unwrap();
        assert_eq!(c.ignored_keys, ["ipv4_pool"]);
    }

    #[test]
    fn calicos_etcd_keys_are_taken() {
        let c = conf(serde_json::json!({
            "etcd_endpoints": "https://10.0.0.1:2379, https://10.0.0.2:2379",
            "etcd_ca_cert_file": "/etc/cni/net.d/tortie-tls/etcd-ca",
            "etcd_cert_file": "/etc/cni/net.d/tortie-tls/etcd-cert",
            "etcd_key_file": "/etc/cni/net.d/tortie-tls/etcd-key",
            "api_socket": "/run/tortie/tortie.sock",
        }))
        .unwrap();
        assert_eq!(
            c.datastore.etcd_endpoints,
            ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
        assert_eq!(
            c.datastore.etcd_key,
            Some(PathBuf::from("/etc/cni/net.d/tortie-tls/etcd-key"))
        );
        assert!(c.ignored_keys.is_empty(), "{:?}", c.ignored_keys);
    }

    #[test]
    fn a_list_entry_with_several_endpoints_is_split() {
        let c = conf(serde_json::json!({
            "datastore": {"etcdEndpoints": ["https://10.0.0.1:2379,https://10.0.0.2:2379"]},
        }))
        .unwrap();
        assert_eq!(
            c.datastore.etcd_endpoints,
            ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
    }

    #[test]
    fn etcd_given_both_ways_is_refused() {
        let e = conf(serde_json::json!({
            "etcd_endpoints": "https://10.0.0.1:2379",
            "datastore": {"etcdEndpoints": ["https://10.0.0.2:2379"]},
        }))
        .unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
    }

    #[test]
    fn an_empty_api_socket_turns_the_agent_off() {
        let c = conf(serde_json::json!({"apiSocket": ""})).unwrap();
        assert_eq!(c.api_socket, None);
    }
}

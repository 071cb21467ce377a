//! GC (CNI 1.1): the runtime names every attachment of the network that is still valid, and
//! the plugin gives back what it holds for any other container on this node: the addresses
//! of the IPAM handle `k8s-pod-network.<container ID>`, and the host side of the pod's veth
//! when it is still there. This is what DEL would have done for containers whose DEL never
//! came (a runtime that crashed, a node that rebooted with its pods).
//!
//! The list comes in the configuration as `cni.dev/valid-attachments` (libcni also writes it
//! as `cni.dev/attachments`, an earlier wording of the specification). It is validated as a
//! whole before anything is touched: a missing or malformed list is an error, never taken
//! for an empty one, since an empty list means "release every pod of this node".
//!
//! Which handles are this node's is read from the blocks' allocation attributes (the node an
//! address was allocated for, so also addresses borrowed from another node's block): only
//! workload handles in the plugin's own naming are candidates, so tunnel addresses, other
//! nodes' pods and other users' handles are never released. Listing and releasing happen
//! under the host's IPAM lock, so no ADD of this node allocates in between. A failure on one
//! container does not stop the others: every failure is reported together at the end, as
//! the specification asks (remove as much as possible, then report).

use super::addresses::Ipam;
use super::config::NetConf;
use super::env::{is_container_id, is_ifname};
use super::lock;
use super::node;
use super::result::{CniError, Code};
use super::store_ipam;
use super::veth;
use std::collections::BTreeSet;
use tortie_ipam::Kind;

/// The key the specification gives the list of valid attachments.
pub const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";
/// The same list under the name an earlier wording of the specification used (libcni sets
/// both).
pub const ATTACHMENTS: &str = "cni.dev/attachments";

/// The prefix of the IPAM handles ADD creates (see [`super::env::Env::handle`]).
const POD_HANDLE_PREFIX: &str = "k8s-pod-network.";

/// One attachment the runtime still holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

/// Whether `key` is one of the configuration keys GC reads (so it is not reported as
/// ignored).
pub fn is_attachments_key(key: &str) -> bool {
    key == VALID_ATTACHMENTS || key == ATTACHMENTS
}

fn decode_error(details: String) -> CniError {
    CniError::new(Code::Decode, details)
}

fn invalid(details: String) -> CniError {
    CniError::new(Code::InvalidConfig, details)
}

/// The valid attachments of the configuration on stdin: code 6 for a list of the wrong
/// shape, 7 for a missing list or an invalid container ID or interface name.
pub fn valid_attachments(input: &[u8]) -> Result<Vec<Attachment>, CniError> {
    let value: serde_json::Value = serde_json::from_slice(input).map_err(|e| {
        decode_error(format!(
            "the network configuration on stdin is not JSON: {e}"
        ))
    })?;
    let (primary, alias) = (value.get(VALID_ATTACHMENTS), value.get(ATTACHMENTS));
    let (key, list) = match (primary, alias) {
        (Some(p), Some(a)) if p != a => {
            return Err(invalid(format!(
                "{VALID_ATTACHMENTS} and {ATTACHMENTS} are both given and differ: which attachments are valid is ambiguous"
            )));
        }
        (Some(p), _) => (VALID_ATTACHMENTS, p),
        (None, Some(a)) => (ATTACHMENTS, a),
        (None, None) => {
            return Err(invalid(format!(
                "{VALID_ATTACHMENTS} is missing: GC needs the runtime's list of valid attachments (an empty list is [], and would release every pod of the node)"
            )));
        }
    };
    let Some(items) = list.as_array() else {
        return Err(decode_error(format!(
            "{key}: expected an array of {{\"containerID\", \"ifname\"}} objects, found {list}"
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| -> Result<String, CniError> {
            match item.get(name) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(decode_error(format!(
                    "{key}[{i}].{name}: expected a string, found {other}"
                ))),
                None if item.is_object() => {
                    Err(decode_error(format!("{key}[{i}]: {name} is missing")))
                }
                None => Err(decode_error(format!(
                    "{key}[{i}]: expected an object with containerID and ifname, found {item}"
                ))),
            }
        };
        let container_id = field("containerID")?;
        let ifname = field("ifname")?;
        if !is_container_id(&container_id) {
            return Err(invalid(format!(
                "{key}[{i}].containerID {container_id:?}: expected letters, digits, '_', '.' and '-', starting with a letter or digit"
            )));
        }
        if !is_ifname(&ifname) {
            return Err(invalid(format!(
                "{key}[{i}].ifname {ifname:?}: an interface name has 1 to 15 characters without '/', ':' or spaces"
            )));
        }
        out.push(Attachment {
            container_id,
            ifname,
        });
    }
    Ok(out)
}

/// The container of a pod handle of the plugin's naming (`k8s-pod-network.<container ID>`).
fn container_of(handle: &str) -> Option<&str> {
    handle
        .strip_prefix(POD_HANDLE_PREFIX)
        .filter(|id| is_container_id(id))
}

/// The containers to collect: holding a pod handle among `handles` (workload allocations of
/// this node) and not in `valid`.
pub fn stale_containers<'a>(
    handles: impl IntoIterator<Item = (&'a str, Kind)>,
    valid: &[Attachment],
) -> BTreeSet<String> {
    let keep: BTreeSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    handles
        .into_iter()
        .filter(|(_, kind)| *kind == Kind::Workload)
        .filter_map(|(h, _)| container_of(h))
        .filter(|id| !keep.contains(id))
        .map(str::to_string)
        .collect()
}

/// Runs GC; `input` is the configuration as read from stdin (already parsed into `conf`).
pub fn run(conf: &NetConf, input: &[u8], rt: &tokio::runtime::Runtime) -> Result<(), CniError> {
    let valid = valid_attachments(input)?;
    let node = node::name(conf)?;
    let _turn = lock::acquire(&conf.lock_file, lock::TIMEOUT)?;
    let store = rt.block_on(store_ipam::open(&conf.datastore))?;
    let listing = store_ipam::allocator(store);
    let found = rt
        .block_on(listing.allocations_of_node(&node))
        .map_err(|e| store_ipam::ipam_error(&format!("listing the addresses of node {node}"), e))?;
    if !found.unreadable.is_empty() {
        tracing::warn!(blocks = ?found.unreadable, "IPAM blocks that do not decode were skipped: their allocations are not collected (see `tortie ipam check`)");
    }
    let stale = stale_containers(
        found
            .allocations
            .iter()
            .map(|a| (a.allocation.handle.as_str(), a.attrs.kind)),
        &valid,
    );
    if stale.is_empty() {
        tracing::info!(%node, valid = valid.len(), "GC: nothing stale");
        return Ok(());
    }
    // A stale container whose veth name a valid one shares (a hash collision) keeps it.
    let valid_links: BTreeSet<String> = valid
        .iter()
        .map(|a| veth::host_veth_name(&a.container_id))
        .collect();
    let ipam = rt.block_on(Ipam::connect(conf))?;
    let mut failures: Vec<CniError> = Vec::new();
    for id in &stale {
        let host_veth = veth::host_veth_name(id);
        let link_removed = if valid_links.contains(&host_veth) {
            tracing::warn!(container = %id, veth = %host_veth, "a valid container's link has this name; left alone");
            false
        } else {
            match veth::remove(&host_veth) {
                Ok(removed) => removed,
                Err(e) => {
                    failures.push(CniError::new(
                        Code::DataplaneFailed,
                        format!("container {id}: removing its link {host_veth}: {e}"),
                    ));
                    false
                }
            }
        };
        let handle = format!("{POD_HANDLE_PREFIX}{id}");
        match rt.block_on(ipam.release(&handle)) {
            Ok(released) => tracing::info!(
                container = %id,
                veth = %host_veth,
                link_removed,
                released = ?released,
                via = %ipam.describe(),
                "GC: collected a container the runtime no longer has"
            ),
            Err(e) => failures.push(CniError::new(
                e.code,
                format!("container {id}: {}", e.details),
            )),
        }
    }
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(CniError::new(
            first.code,
            format!(
                "GC of {} stale container(s) on node {node} failed for {}: {}",
                stale.len(),
                failures.len(),
                failures
                    .iter()
                    .map(|f| f.details.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_ipam::TunnelType;

    fn attachments(v: serde_json::Value) -> Result<Vec<Attachment>, CniError> {
        valid_attachments(&serde_json::to_vec(&v).unwrap())
    }

    fn conf_with(key: &str, list: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({"cniVersion": "1.1.0", "name": "k8s-pod-network", "type": "tortie-cni"});
        v[key] = list;
        v
    }

    #[test]
    fn the_list_is_read_with_container_ids_and_interface_names() {
        let got = attachments(conf_with(
            VALID_ATTACHMENTS,
            serde_json::json!([{"containerID": "abc", "ifname": "eth0"}, {"containerID": "d.e-f_1", "ifname": "net1"}]),
        ))
        .unwrap();
        assert_eq!(
            got,
            [
                Attachment {
                    container_id: "abc".into(),
                    ifname: "eth0".into()
                },
                Attachment {
                    container_id: "d.e-f_1".into(),
                    ifname: "net1".into()
                },
            ]
        );
    }

    #[test]
    fn the_earlier_key_name_is_taken_too() {
        let got = attachments(conf_with(
            ATTACHMENTS,
            serde_json::json!([{"containerID": "abc", "ifname": "eth0"}]),
        ))
        .unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn a_missing_list_is_code_7_and_never_taken_for_an_empty_one() {
        let e = attachments(serde_json::json!({"cniVersion": "1.1.0"})).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.details.contains(VALID_ATTACHMENTS), "{}", e.details);
        assert!(
            attachments(conf_with(VALID_ATTACHMENTS, serde_json::json!([])))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_list_that_is_not_an_array_is_code_6() {
        let e = attachments(conf_with(VALID_ATTACHMENTS, serde_json::json!("abc"))).unwrap_err();
        assert_eq!(e.code, Code::Decode);
    }

    #[test]
    fn an_entry_without_a_string_container_id_is_code_6_naming_it() {
        let e = attachments(conf_with(
            VALID_ATTACHMENTS,
            serde_json::json!([{"containerID": "ok", "ifname": "eth0"}, {"containerID": 7, "ifname": "eth0"}]),
        ))
        .unwrap_err();
        assert_eq!(e.code, Code::Decode);
        assert!(e.details.contains("[1].containerID"), "{}", e.details);
        let e = attachments(conf_with(
            VALID_ATTACHMENTS,
            serde_json::json!([{"ifname": "eth0"}]),
        ))
        .unwrap_err();
        assert!(
            e.details.contains("containerID is missing"),
            "{}",
            e.details
        );
    }

    #[test]
    fn an_invalid_container_id_is_code_7() {
        let e = attachments(conf_with(
            VALID_ATTACHMENTS,
            serde_json::json!([{"containerID": "../x", "ifname": "eth0"}]),
        ))
        .unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
    }

    #[test]
    fn two_differing_lists_are_refused() {
        let mut v = conf_with(
            VALID_ATTACHMENTS,
            serde_json::json!([{"containerID": "a", "ifname": "eth0"}]),
        );
        v[ATTACHMENTS] = serde_json::json!([]);
        assert_eq!(attachments(v).unwrap_err().code, Code::InvalidConfig);
    }

    #[test]
    fn only_pod_handles_of_containers_not_listed_are_stale() {
        let valid = [Attachment {
            container_id: "keep".into(),
            ifname: "eth0".into(),
        }];
        let handles = [
            ("k8s-pod-network.keep", Kind::Workload),
            ("k8s-pod-network.gone", Kind::Workload),
            ("k8s-pod-network.gone", Kind::Workload),
            ("ipip-tunnel-addr-node1", Kind::Tunnel(TunnelType::Ipip)),
            ("k8s-pod-network.tunnel", Kind::Tunnel(TunnelType::Vxlan)),
            ("someone-else.gone", Kind::Workload),
            ("k8s-pod-network.", Kind::Workload),
        ];
        assert_eq!(
            stale_containers(handles, &valid),
            BTreeSet::from(["gone".to_string()])
        );
    }
}

//! Pod addresses straight from the datastore (etcd or the embedded store) through the IPAM
//! library: what the plugin does when no agent answers on the node, and what the agent's
//! AssignPodAddress call does with its own store.
//!
//! An assignment is idempotent per handle and family: an address the handle already holds is
//! returned again instead of a second one, so a repeated ADD gets the same address. What a
//! call allocated afresh is reported apart ([`Assigned::fresh`]), so that a failed ADD
//! releases only those and never an address an earlier, successful ADD gave the pod.

use super::pools::{self, PoolChoiceError};
use super::result::{CniError, Code};
use crate::config::Config;
use crate::datastore::{DatastoreError, StoreArgs, load_config};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use tortie_ipam::store::{Store, StoreError};
use tortie_ipam::{AllocRequest, Allocator, Family, IpamConfig, IpamError, Kind, ReleaseOptions};

/// What to assign.
#[derive(Debug, Clone)]
pub struct AssignRequest<'a> {
    pub handle: &'a str,
    pub node: &'a str,
    pub namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Pool names or CIDRs per family; empty = the pools selecting the node.
    pub ipv4_pools: &'a [String],
    pub ipv6_pools: &'a [String],
}

/// An address of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddress {
    pub addr: IpAddr,
    pub block: IpNet,
    /// From another node's block: the agent advertises the single address.
    pub borrowed: bool,
}

/// An address this call allocated (and a failed ADD gives back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh {
    pub addr: IpAddr,
    pub seq: u64,
}

/// The outcome of an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// IPv4 first.
    pub addrs: Vec<PodAddress>,
    pub fresh: Vec<Fresh>,
    /// What the chosen pools' encapsulation takes off the underlay MTU.
    pub mtu_overhead: u32,
    /// The underlay MTU the agent's dataplane uses, when the agent answered with one.
    pub underlay_mtu: Option<u32>,
}

/// An IPAM failure as the runtime should see it: out of addresses, try again, or broken.
pub fn ipam_error(context: &str, e: IpamError) -> CniError {
    let code = match &e {
        IpamError::Exhausted { .. } | IpamError::BlockLimit { .. } | IpamError::NoPools { .. } => {
            Code::NoAddress
        }
        IpamError::Store(StoreError::Unavailable(_)) | IpamError::Contention { .. } => {
            Code::TryAgainLater
        }
        _ => Code::IpamFailed,
    };
    CniError::new(code, format!("{context}: {e}"))
}

/// A datastore failure: unreachable is transient, a bad option is the configuration's fault.
pub fn datastore_error(context: &str, e: DatastoreError) -> CniError {
    let code = match &e {
        DatastoreError::Store(StoreError::Unavailable(_)) | DatastoreError::Contention { .. } => {
            Code::TryAgainLater
        }
        DatastoreError::Usage(_) => Code::InvalidConfig,
        _ => Code::IpamFailed,
    };
    CniError::new(code, format!("{context}: {e}"))
}

fn choice_error(e: PoolChoiceError) -> CniError {
    let code = match e {
        PoolChoiceError::NoneForNode { .. } => Code::NoAddress,
        PoolChoiceError::Pool(_) => Code::IpamFailed,
        _ => Code::InvalidConfig,
    };
    CniError::new(code, e.to_string())
}

/// The datastore options of the network configuration, as the CLI's store options.
pub fn store_args(ds: &super::config::Datastore) -> StoreArgs {
    StoreArgs {
        data_dir: ds.data_dir.clone(),
        etcd_endpoints: ds.etcd_endpoints.clone(),
        etcd_ca_cert: ds.etcd_ca_cert.clone(),
        etcd_cert: ds.etcd_cert.clone(),
        etcd_key: ds.etcd_key.clone(),
    }
}

/// Opens the datastore the configuration names.
pub async fn open(ds: &super::config::Datastore) -> Result<Arc<dyn Store>, CniError> {
    let args = store_args(ds);
    args.open()
        .await
        .map_err(|e| datastore_error(&format!("opening the {}", args.describe()), e))
}

/// A plugin's allocator on `store` (Calico's IPAM defaults).
pub fn allocator(store: Arc<dyn Store>) -> Allocator {
    Allocator::new(store, IpamConfig::default())
}

/// Assigns the request's addresses from the pools of `cfg`, reusing what the handle holds.
pub async fn assign(
    allocator: &Allocator,
    cfg: &Config,
    req: &AssignRequest<'_>,
) -> Result<Assigned, CniError> {
    let all = pools::from_config(cfg).map_err(choice_error)?;
    let labels = pools::node_labels(cfg, req.node);
    let held = allocator
        .addresses(req.handle)
        .await
        .map_err(|e| ipam_error(&format!("reading handle {}", req.handle), e))?;
    let mut out = Assigned {
        addrs: Vec::new(),
        fresh: Vec::new(),
        mtu_overhead: 0,
        underlay_mtu: None,
    };
    let wanted = [
        (req.ipv4, Family::V4, req.ipv4_pools),
        (req.ipv6, Family::V6, req.ipv6_pools),
    ];
    for (on, family, names) in wanted {
        if !on {
            continue;
        }
        let chosen = pools::choose(&all, family, names, req.node, &labels).map_err(choice_error)?;
        out.mtu_overhead = out.mtu_overhead.max(pools::overhead(&chosen));
        if let Some(a) = held.iter().find(|a| Family::of_addr(&a.addr) == family) {
            out.addrs.push(PodAddress {
                addr: a.addr,
                block: a.block,
                borrowed: a.borrowed,
            });
            continue;
        }
        let alloc = AllocRequest {
            handle: req.handle,
            node: req.node,
            pod: req.pod,
            namespace: req.namespace,
            kind: Kind::Workload,
            family,
            count: 1,
            pools: &chosen,
        };
        match allocator.allocate(&alloc).await {
            Ok(got) => {
                for a in got {
                    out.fresh.push(Fresh {
                        addr: a.addr,
                        seq: a.seq,
                    });
                    out.addrs.push(PodAddress {
                        addr: a.addr,
                        block: a.block,
                        borrowed: a.borrowed,
                    });
                }
            }
            Err(e) => {
                // All or nothing: an IPv4 address taken before an IPv6 failure goes back.
                release_fresh(allocator, req.handle, &out.fresh).await;
                return Err(ipam_error(
                    &format!("allocating an {family} address on node {}", req.node),
                    e,
                ));
            }
        }
    }
    Ok(out)
}

/// Gives back addresses a failed ADD allocated (only if still this handle's, at that seq);
/// a failure is logged: the IPAM garbage collection takes what is left.
pub async fn release_fresh(allocator: &Allocator, handle: &str, fresh: &[Fresh]) {
    if let Err(e) = release_only(allocator, handle, fresh).await {
        tracing::warn!(handle, error = %e, "could not give back the addresses of a failed ADD");
    }
}

/// Releases the listed addresses while `handle` still holds them at that seq; returns those
/// released.
pub async fn release_only(
    allocator: &Allocator,
    handle: &str,
    fresh: &[Fresh],
) -> Result<Vec<IpAddr>, CniError> {
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let opts: Vec<ReleaseOptions> = fresh
        .iter()
        .map(|f| ReleaseOptions {
            addr: f.addr,
            handle: Some(handle.to_string()),
            seq: Some(f.seq),
        })
        .collect();
    allocator
        .release_with(&opts)
        .await
        .map(|r| r.released)
        .map_err(|e| ipam_error(&format!("releasing addresses of handle {handle}"), e))
}

/// Releases every address of `handle`; nothing to release is no error.
pub async fn release(allocator: &Allocator, handle: &str) -> Result<Vec<IpAddr>, CniError> {
    allocator
        .release_by_handle(handle)
        .await
        .map_err(|e| ipam_error(&format!("releasing handle {handle}"), e))
}

/// The addresses `handle` holds.
pub async fn addresses(allocator: &Allocator, handle: &str) -> Result<Vec<PodAddress>, CniError> {
    let held = allocator
        .addresses(handle)
        .await
        .map_err(|e| ipam_error(&format!("reading handle {handle}"), e))?;
    Ok(held
        .into_iter()
        .map(|a| PodAddress {
            addr: a.addr,
            block: a.block,
            borrowed: a.borrowed,
        })
        .collect())
}

/// The cluster configuration in the store (its IPPools, and the Node's labels).
pub async fn cluster_config(store: &dyn Store, describe: &str) -> Result<Config, CniError> {
    load_config(store).await.map_err(|e| {
        datastore_error(
            &format!("reading the cluster configuration from the {describe}"),
            e,
        )
    })
}

/// The data directory of the embedded store, for messages.
pub fn describe(ds: &super::config::Datastore) -> String {
    store_args(ds).describe()
}

/// Whether the pools the configuration asks for exist and are usable on `node`.
pub fn check_pools(
    cfg: &Config,
    conf: &super::config::NetConf,
    node: &str,
) -> Result<(), CniError> {
    let all = pools::from_config(cfg).map_err(choice_error)?;
    let labels = pools::node_labels(cfg, node);
    let wanted = [
        (conf.ipam.assign_ipv4, Family::V4, &conf.ipam.ipv4_pools),
        (conf.ipam.assign_ipv6, Family::V6, &conf.ipam.ipv6_pools),
    ];
    for (on, family, names) in wanted {
        if on {
            pools::choose(&all, family, names, node, &labels).map_err(choice_error)?;
        }
    }
    Ok(())
}

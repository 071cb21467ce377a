//! AssignPodAddress and ReleasePodAddress: the CNI plugin's address calls, answered from the
//! agent's own datastore with the plugin's own allocation code (`cni::store_ipam`), so an
//! address is the same whichever path the plugin took, and the agent sees it at once.
//!
//! One allocator serves every call of the process: the IPAM library serialises allocations
//! per node inside an allocator, so concurrent ADDs take turns instead of racing on the
//! node's block through compare-and-swap retries.

use super::ApiState;
use crate::cni::result::{CniError, Code};
use crate::cni::store_ipam::{self, AssignRequest, Fresh};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tonic::Status;
use tortie_ipam::Allocator;
use tortie_ipam::store::Store;
use tortie_proto::v1;

/// Longest time one call may spend on the datastore; below the client's call timeout, so
/// the plugin hears why rather than a bare deadline.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(4);

static ALLOCATOR: OnceLock<Allocator> = OnceLock::new();

fn allocator(store: &Arc<dyn Store>) -> &'static Allocator {
    // An agent has one datastore for its whole life, so the first call's store is the store.
    ALLOCATOR.get_or_init(|| store_ipam::allocator(store.clone()))
}

fn status(e: CniError) -> Status {
    match e.code {
        Code::NoAddress => Status::resource_exhausted(e.details),
        Code::TryAgainLater => Status::unavailable(e.details),
        Code::InvalidConfig | Code::UnsupportedField => Status::invalid_argument(e.details),
        _ => Status::internal(e.details),
    }
}

fn store_of(state: &ApiState) -> Result<&Arc<dyn Store>, Status> {
    state.observed.store.as_ref().ok_or_else(|| {
        Status::unavailable("this agent runs without a datastore (--config files): it has no IPAM")
    })
}

async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, CniError>>,
) -> Result<T, Status> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => r.map_err(status),
        Err(_) => Err(Status::unavailable(format!(
            "{what} did not finish within {} s (datastore slow or contended)",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

fn check_handle(handle: &str) -> Result<(), Status> {
    tortie_ipam::handle::check_handle(handle).map_err(|e| Status::invalid_argument(e.to_string()))
}

pub async fn assign(
    state: &ApiState,
    req: v1::AssignPodAddressRequest,
) -> Result<v1::AssignPodAddressResponse, Status> {
    let store = store_of(state)?;
    check_handle(&req.handle)?;
    if req.node != state.node {
        return Err(Status::failed_precondition(format!(
            "this agent serves node {:?}, the request is for node {:?}",
            state.node, req.node
        )));
    }
    let mut ipv4 = false;
    let mut ipv6 = false;
    for f in &req.families {
        match v1::IpFamily::try_from(*f) {
            Ok(v1::IpFamily::V4) => ipv4 = true,
            Ok(v1::IpFamily::V6) => ipv6 = true,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "families: {f} is no IP family"
                )));
            }
        }
    }
    if !ipv4 && !ipv6 {
        return Err(Status::invalid_argument("families: none given"));
    }
    let cfg = state.observed.config.borrow().clone();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let (namespace, pod) = (non_empty(&req.namespace), non_empty(&req.pod));
    let areq = AssignRequest {
        handle: &req.handle,
        node: &state.node,
        namespace: namespace.as_deref(),
        pod: pod.as_deref(),
        ipv4,
        ipv6,
        ipv4_pools: &req.ipv4_pools,
        ipv6_pools: &req.ipv6_pools,
    };
    let alloc = allocator(store);
    let assigned = bounded("AssignPodAddress", store_ipam::assign(alloc, &cfg, &areq)).await?;
    tracing::info!(handle = %req.handle, addresses = ?assigned.addrs.iter().map(|a| a.addr).collect::<Vec<_>>(), "pod addresses assigned over the API");
    Ok(v1::AssignPodAddressResponse {
        addresses: assigned
            .addrs
            .iter()
            .map(|a| {
                let fresh = assigned.fresh.iter().find(|f| f.addr == a.addr);
                v1::PodAddress {
                    address: a.addr.to_string(),
                    block: a.block.to_string(),
                    borrowed: a.borrowed,
                    fresh: fresh.is_some(),
                    seq: fresh.map_or(0, |f| f.seq),
                }
            })
            .collect(),
        mtu_overhead: assigned.mtu_overhead,
        underlay_mtu: state
            .observed
            .fib
            .as_ref()
            .and_then(|f| f.borrow().underlay_mtu)
            .unwrap_or(0),
    })
}

pub async fn release(
    state: &ApiState,
    req: v1::ReleasePodAddressRequest,
) -> Result<v1::ReleasePodAddressResponse, Status> {
    let store = store_of(state)?;
    check_handle(&req.handle)?;
    let alloc = allocator(store);
    let released = if req.only.is_empty() {
        bounded("ReleasePodAddress", store_ipam::release(alloc, &req.handle)).await?
    } else {
        let mut only = Vec::with_capacity(req.only.len());
        for a in &req.only {
            let addr: IpAddr = a.address.parse().map_err(|_| {
                Status::invalid_argument(format!("only: {:?} is not an IP address", a.address))
            })?;
            only.push(Fresh { addr, seq: a.seq });
        }
        bounded(
            "ReleasePodAddress",
            store_ipam::release_only(alloc, &req.handle, &only),
        )
        .await?
    };
    tracing::info!(handle = %req.handle, ?released, "pod addresses released over the API");
    Ok(v1::ReleasePodAddressResponse {
        released: released.iter().map(IpAddr::to_string).collect(),
    })
}

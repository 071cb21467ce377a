//! Where the plugin gets and gives back pod addresses: the node's agent over its API socket
//! when one answers there, else the datastore directly.
//!
//! Through the agent (AssignPodAddress, ReleasePodAddress), the agent allocates from its own
//! store connection and sees the address at once; without one (the agent not started yet, or
//! a node that runs none) the plugin does the same allocation itself against the datastore
//! the configuration names. The agent runs the plugin's own allocation code
//! ([`store_ipam`]), so the two paths cannot disagree about pools, idempotency or what a
//! failed ADD gives back. CHECK and STATUS read the datastore: they change nothing the agent
//! would need to hear of.

use super::config::NetConf;
use super::result::{CniError, Code};
use super::store_ipam::{self, AssignRequest, Assigned, Fresh, PodAddress};
use crate::api::client::{self, ClientError};
use std::net::IpAddr;
use std::path::PathBuf;
use tonic::transport::Channel;
use tortie_ipam::Allocator;
use tortie_proto::v1;
use tortie_proto::v1::tortie_client::TortieClient;

/// An open IPAM path.
pub enum Ipam {
    /// The datastore, directly.
    Store {
        allocator: Allocator,
        describe: String,
    },
    /// The node's agent.
    Agent {
        client: TortieClient<Channel>,
        socket: PathBuf,
    },
}

/// A gRPC failure as a CNI error: out of addresses, try again, the configuration's fault, or
/// broken.
fn from_status(call: &str, socket: &std::path::Path, s: tonic::Status) -> CniError {
    let code = match s.code() {
        tonic::Code::ResourceExhausted => Code::NoAddress,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted => {
            Code::TryAgainLater
        }
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => Code::InvalidConfig,
        _ => Code::IpamFailed,
    };
    CniError::new(
        code,
        format!(
            "{call} on the agent at {}: {}",
            socket.display(),
            s.message()
        ),
    )
}

fn bad_reply(socket: &std::path::Path, what: String) -> CniError {
    CniError::new(
        Code::IpamFailed,
        format!(
            "the agent at {} answered AssignPodAddress with {what}",
            socket.display()
        ),
    )
}

impl Ipam {
    /// The agent when the configuration names a socket and an agent answers there; else the
    /// datastore.
    pub async fn connect(conf: &NetConf) -> Result<Ipam, CniError> {
        if let Some(socket) = &conf.api_socket {
            match client::connect(socket).await {
                Ok(client) => {
                    return Ok(Ipam::Agent {
                        client,
                        socket: socket.clone(),
                    });
                }
                Err(ClientError::NotServing(_)) => {
                    tracing::debug!(socket = %socket.display(), "no agent answers; using the datastore");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot use the agent's API; using the datastore");
                }
            }
        }
        Ipam::connect_store(conf).await
    }

    /// The datastore, whether or not an agent runs.
    pub async fn connect_store(conf: &NetConf) -> Result<Ipam, CniError> {
        let store = store_ipam::open(&conf.datastore).await?;
        Ok(Ipam::Store {
            allocator: store_ipam::allocator(store),
            describe: store_ipam::describe(&conf.datastore),
        })
    }

    /// Which path, for logs.
    pub fn describe(&self) -> String {
        match self {
            Ipam::Store { describe, .. } => describe.clone(),
            Ipam::Agent { socket, .. } => format!("the agent at {}", socket.display()),
        }
    }

    pub async fn assign(&self, req: &AssignRequest<'_>) -> Result<Assigned, CniError> {
        match self {
            Ipam::Store {
                allocator,
                describe,
            } => {
                let cfg = store_ipam::cluster_config(allocator.store().as_ref(), describe).await?;
                store_ipam::assign(allocator, &cfg, req).await
            }
            Ipam::Agent { client, socket } => {
                let mut families = Vec::new();
                if req.ipv4 {
                    families.push(v1::IpFamily::V4 as i32);
                }
                if req.ipv6 {
                    families.push(v1::IpFamily::V6 as i32);
                }
                let reply = client
                    .clone()
                    .assign_pod_address(v1::AssignPodAddressRequest {
                        handle: req.handle.to_string(),
                        node: req.node.to_string(),
                        namespace: req.namespace.unwrap_or("").to_string(),
                        pod: req.pod.unwrap_or("").to_string(),
                        families,
                        ipv4_pools: req.ipv4_pools.to_vec(),
                        ipv6_pools: req.ipv6_pools.to_vec(),
                    })
                    .await
                    .map_err(|s| from_status("AssignPodAddress", socket, s))?
                    .into_inner();
                assigned_from(socket, req, reply)
            }
        }
    }

    /// Gives back what a failed ADD allocated; failures are logged (GC takes the rest).
    pub async fn release_fresh(&self, handle: &str, fresh: &[Fresh]) {
        if fresh.is_empty() {
            return;
        }
        match self {
            Ipam::Store { allocator, .. } => {
                store_ipam::release_fresh(allocator, handle, fresh).await
            }
            Ipam::Agent { client, socket } => {
                let only = fresh
                    .iter()
                    .map(|f| v1::PodAddress {
                        address: f.addr.to_string(),
                        seq: f.seq,
                        fresh: true,
                        ..Default::default()
                    })
                    .collect();
                let r = client
                    .clone()
                    .release_pod_address(v1::ReleasePodAddressRequest {
                        handle: handle.to_string(),
                        only,
                    })
                    .await;
                if let Err(s) = r {
                    let e = from_status("ReleasePodAddress", socket, s);
                    tracing::warn!(handle, error = %e, "could not give back the addresses of a failed ADD");
                }
            }
        }
    }

    pub async fn release(&self, handle: &str) -> Result<Vec<IpAddr>, CniError> {
        match self {
            Ipam::Store { allocator, .. } => store_ipam::release(allocator, handle).await,
            Ipam::Agent { client, socket } => {
                let reply = client
                    .clone()
                    .release_pod_address(v1::ReleasePodAddressRequest {
                        handle: handle.to_string(),
                        only: Vec::new(),
                    })
                    .await
                    .map_err(|s| from_status("ReleasePodAddress", socket, s))?
                    .into_inner();
                // Only for the log: an unreadable entry is not worth failing a DEL over.
                Ok(reply
                    .released
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .collect())
            }
        }
    }

    /// The addresses `handle` holds (read from the datastore).
    pub async fn addresses(&self, handle: &str) -> Result<Vec<PodAddress>, CniError> {
        match self {
            Ipam::Store { allocator, .. } => store_ipam::addresses(allocator, handle).await,
            Ipam::Agent { socket, .. } => Err(CniError::new(
                Code::IpamFailed,
                format!(
                    "reading a handle goes to the datastore, not to the agent at {}",
                    socket.display()
                ),
            )),
        }
    }

    /// Whether an ADD could be served: the cluster configuration reads and a pool of each
    /// wanted family is usable on the node.
    pub async fn ready(&self, conf: &NetConf, node: &str) -> Result<(), CniError> {
        match self {
            Ipam::Store {
                allocator,
                describe,
            } => {
                let cfg = store_ipam::cluster_config(allocator.store().as_ref(), describe).await?;
                store_ipam::check_pools(&cfg, conf, node)
            }
            Ipam::Agent { socket, .. } => Err(CniError::new(
                Code::IpamFailed,
                format!(
                    "readiness is read from the datastore, not from the agent at {}",
                    socket.display()
                ),
            )),
        }
    }
}

/// The agent's answer, checked: one address per family asked for, each parseable.
fn assigned_from(
    socket: &std::path::Path,
    req: &AssignRequest<'_>,
    reply: v1::AssignPodAddressResponse,
) -> Result<Assigned, CniError> {
    let mut out = Assigned {
        addrs: Vec::new(),
        fresh: Vec::new(),
        mtu_overhead: reply.mtu_overhead,
        // Below IPv6's minimum link MTU or above a jumbo frame is not an MTU.
        underlay_mtu: Some(reply.underlay_mtu).filter(|m| (1280..=65535).contains(m)),
    };
    for a in &reply.addresses {
        let addr: IpAddr = a
            .address
            .parse()
            .map_err(|_| bad_reply(socket, format!("the address {:?}", a.address)))?;
        let block = a
            .block
            .parse()
            .map_err(|_| bad_reply(socket, format!("the block {:?}", a.block)))?;
        if a.fresh {
            out.fresh.push(Fresh { addr, seq: a.seq });
        }
        out.addrs.push(PodAddress {
            addr,
            block,
            borrowed: a.borrowed,
        });
    }
    let v4 = out.addrs.iter().filter(|a| a.addr.is_ipv4()).count();
    let v6 = out.addrs.len() - v4;
    if v4 != usize::from(req.ipv4) || v6 != usize::from(req.ipv6) || out.mtu_overhead > 1000 {
        return Err(bad_reply(
            socket,
            format!(
                "{v4} IPv4 and {v6} IPv6 address(es) and an MTU overhead of {}",
                out.mtu_overhead
            ),
        ));
    }
    Ok(out)
}

//! Where the plugin gets and gives back pod addresses: the node's agent over its API socket
//! when one answers there, else the datastore directly.
//!
//! Through the agent, the agent learns of the address at once and allocates from its own
//! store connection; without one (the agent not started yet, or a node that runs none) the
//! plugin does the same allocation itself against the datastore the configuration names.
//! Either way the allocation is the same code ([`store_ipam`]), so the two paths cannot
//! disagree about pools, idempotency or what a failed ADD gives back.

use super::config::NetConf;
use super::result::CniError;
use super::store_ipam::{self, AssignRequest, Assigned, Fresh, PodAddress};
use std::net::IpAddr;
use tortie_ipam::Allocator;

/// An open IPAM path.
pub enum Ipam {
    /// The datastore, directly.
    Store {
        allocator: Allocator,
        describe: String,
    },
}

impl Ipam {
    /// Opens the path the configuration allows: the agent's socket when it answers, else the
    /// datastore.
    pub async fn connect(conf: &NetConf) -> Result<Ipam, CniError> {
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
        }
    }

    /// Gives back what a failed ADD allocated; failures are logged (GC takes the rest).
    pub async fn release_fresh(&self, handle: &str, fresh: &[Fresh]) {
        match self {
            Ipam::Store { allocator, .. } => {
                store_ipam::release_fresh(allocator, handle, fresh).await
            }
        }
    }

    pub async fn release(&self, handle: &str) -> Result<Vec<IpAddr>, CniError> {
        match self {
            Ipam::Store { allocator, .. } => store_ipam::release(allocator, handle).await,
        }
    }

    pub async fn addresses(&self, handle: &str) -> Result<Vec<PodAddress>, CniError> {
        match self {
            Ipam::Store { allocator, .. } => store_ipam::addresses(allocator, handle).await,
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
        }
    }
}

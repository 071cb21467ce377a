//! DEL: remove the pod's link and give its addresses back.
//!
//! Idempotent, and independent of the container's namespace: the host side of the veth is
//! found by its name (derived from the container ID) in the host namespace, and the addresses
//! by the handle, so a DEL after the namespace is gone, or a second DEL, finds less to do
//! and still succeeds. The link goes first, so an address is never handed to another pod
//! while a route still points it at this one's veth.

use super::addresses::Ipam;
use super::config::NetConf;
use super::env::Env;
use super::lock;
use super::result::{CniError, Code};
use super::veth;

/// Runs DEL.
pub fn run(conf: &NetConf, env: &Env, rt: &tokio::runtime::Runtime) -> Result<(), CniError> {
    let host_veth = veth::host_veth_name(&env.container_id);
    let removed = veth::remove(&host_veth).map_err(|e| {
        CniError::new(
            Code::DataplaneFailed,
            format!("removing the pod's link {host_veth}: {e}"),
        )
    })?;
    let handle = env.handle();
    let released = {
        let _turn = lock::acquire(&conf.lock_file, lock::TIMEOUT)?;
        let ipam = rt.block_on(Ipam::connect(conf))?;
        rt.block_on(ipam.release(&handle))?
    };
    tracing::info!(
        container = %env.container_id,
        veth = %host_veth,
        link_removed = removed,
        released = ?released,
        "deleted"
    );
    Ok(())
}

//! What the agent shows of itself to the API, the metrics and the probes: snapshots published
//! by the tasks that own the state (tokio `watch` channels: readers take the latest value and
//! never hold up the writer) and a lossy broadcast of dataplane events.
//!
//! Nothing here is read by routing: a slow or stuck reader cannot stall BGP or the dataplane.

use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, watch};
use tortie_ipam::store::Store;

/// One route as felix programmed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibEntry {
    pub prefix: IpNet,
    /// `None` for a blackhole (this node's own block).
    pub next_hops: Option<Vec<FibNextHop>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibNextHop {
    pub gateway: IpAddr,
    /// The kernel device name (`eth0`, `vxlan.tortie`, `tunl0`...).
    pub device: String,
    /// `none`, `vxlan` or `ipip`.
    pub encap: &'static str,
    pub onlink: bool,
}

/// What felix holds in the kernel, after its last successful write.
#[derive(Debug, Clone, Default)]
pub struct FibView {
    /// By prefix. Empty until the first sync.
    pub routes: Vec<FibEntry>,
    /// The first sync is written (the dataplane is programmed).
    pub synced: bool,
    /// The `rtm_protocol` of tortie's routes.
    pub protocol: u8,
    /// The MTU of the underlay device felix routes through (tunnel MTUs are this less their
    /// overhead); what tortie-cni sizes pod interfaces from. `None` before the first sync.
    pub underlay_mtu: Option<u32>,
    pub updated: Option<SystemTime>,
}

/// One write pass of the dataplane, for metrics.
#[derive(Debug, Clone)]
pub struct DataplaneEvent {
    /// `first sync`, `change` or `repair`.
    pub what: &'static str,
    /// Netlink operations written.
    pub ops: usize,
    /// Operations the kernel refused.
    pub failures: usize,
    /// How long the pass took (computing the diff and writing it).
    pub took: Duration,
    /// Routes felix holds after the pass.
    pub routes: usize,
}

/// The agent's observable state. Cheap to clone.
#[derive(Clone)]
pub struct Observed {
    pub node: String,
    pub started: SystemTime,
    /// `None` with `--dataplane none` (and on a route reflector).
    pub fib: Option<watch::Receiver<FibView>>,
    /// Dataplane passes as they happen (lossy for slow receivers).
    pub dataplane_events: broadcast::Sender<DataplaneEvent>,
    /// The datastore (to read IPAM), `None` with `--config` files.
    pub store: Option<Arc<dyn Store>>,
    /// The configuration the agent runs now.
    pub config: watch::Receiver<Arc<crate::config::Config>>,
    /// The datastore was read and its watch is live (always true with `--config` files).
    pub datastore_synced: watch::Receiver<bool>,
}

/// The writing ends, kept by the agent's tasks.
pub struct Publish {
    pub fib: Option<watch::Sender<FibView>>,
    pub dataplane_events: broadcast::Sender<DataplaneEvent>,
    pub config: watch::Sender<Arc<crate::config::Config>>,
}

/// A pair of ends for a node (`with_fib`: the kernel dataplane runs; `synced` comes from the
/// datastore's watch).
pub fn channels(
    node: &str,
    config: crate::config::Config,
    store: Option<Arc<dyn Store>>,
    with_fib: bool,
    synced: watch::Receiver<bool>,
) -> (Observed, Publish) {
    let (fib_tx, fib_rx) = if with_fib {
        let (t, r) = watch::channel(FibView::default());
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let (events, _) = broadcast::channel(1024);
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    (
        Observed {
            node: node.to_string(),
            started: SystemTime::now(),
            fib: fib_rx,
            dataplane_events: events.clone(),
            store,
            config: config_rx,
            datastore_synced: synced,
        },
        Publish {
            fib: fib_tx,
            dataplane_events: events,
            config: config_tx,
        },
    )
}

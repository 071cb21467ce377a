//! Prometheus metrics, `/readyz` and `/livez` over HTTP/1.1 on `--metrics-listen`, for the
//! scraper and the DaemonSet's probes.
//!
//! Nothing here sits on a routing path. Per-peer session state and counters, the Loc-RIB
//! sizes, the FIB and IPAM are read when a scrape arrives, each from the snapshot its owner
//! publishes and with a time limit ([`snapshot::SOURCE_TIMEOUT`]): a busy speaker or an
//! unreachable datastore costs the scrape those series (and sets `tortie_metrics_source_up`
//! to 0), never a stalled BGP session. What only exists as a stream, the dataplane's write
//! passes, is accumulated by a task of its own ([`dataplane_passes`]) from the lossy
//! broadcast the dataplane sends them on.
//!
//! Modules: [`http`] (the server), [`exposition`] (the text format), [`snapshot`] (reading
//! the sources), [`readiness`] (what `/readyz` checks), [`ipam_usage`] (blocks and addresses
//! per pool), [`dataplane_passes`] (the latency histogram and pass counters).

mod dataplane_passes;
mod exposition;
mod http;
mod ipam_usage;
mod readiness;
mod snapshot;

use crate::agent::observe::Observed;
use dataplane_passes::PassMetrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tortie_bgp::speaker::Speaker;
use tracing::{info, warn};

/// What the metrics and probes read.
#[derive(Clone)]
pub struct MetricsState {
    pub speaker: Speaker,
    pub observed: Observed,
}

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot serve metrics on {addr}: {source} (see --metrics-listen)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the metric {0}")]
    Setup(#[from] prometheus::Error),
}

/// Everything a request handler needs; shared by the connections.
pub(crate) struct Shared {
    pub state: MetricsState,
    pub passes: PassMetrics,
    /// Uptime is measured on the monotonic clock from here.
    pub serving_since: Instant,
    /// How long the agent had been running when the server started.
    pub uptime_at_start: Duration,
}

impl Shared {
    fn uptime(&self) -> Duration {
        self.uptime_at_start + self.serving_since.elapsed()
    }
}

/// A running metrics server. Dropping it stops serving too, without waiting.
pub struct MetricsServer {
    local: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    passes: JoinHandle<()>,
}

/// How long [`MetricsServer::stop`] lets requests in flight finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

impl MetricsServer {
    /// Stops accepting and closes the connections (after [`DRAIN_TIMEOUT`] at most).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(DRAIN_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                warn!("metrics requests still running after {DRAIN_TIMEOUT:?}: closing them");
                task.abort();
            }
        }
        self.passes.abort();
        info!(listen = %self.local, "metrics stopped");
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.passes.abort();
    }
}

/// Serves `/metrics`, `/readyz` and `/livez` on `addr` until [`MetricsServer::stop`].
pub async fn serve(addr: SocketAddr, state: MetricsState) -> Result<MetricsServer, MetricsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let passes = PassMetrics::new(state.observed.fib.is_some())?;
    // Subscribed before returning: the agent starts its first dataplane write after this.
    let passes_task =
        dataplane_passes::follow(state.observed.dataplane_events.subscribe(), passes.clone());
    let uptime_at_start = SystemTime::now()
        .duration_since(state.observed.started)
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        state,
        passes,
        serving_since: Instant::now(),
        uptime_at_start,
    });
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(http::accept_loop(listener, shared, rx));
    info!(listen = %local, "metrics, /readyz and /livez serving");
    Ok(MetricsServer {
        local,
        shutdown: Some(tx),
        task: Some(task),
        passes: passes_task,
    })
}

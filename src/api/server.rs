//! The `tortie.v1.Tortie` service and the task that serves it on the unix socket.
//!
//! Calls read snapshots and never wait on BGP for long: `GetStatus` asks the speaker nothing,
//! and `ListPeers` gives the speaker's one request/response [`PEERS_TIMEOUT`] before it answers
//! UNAVAILABLE, so a busy router is reported rather than queued behind.

use super::{ApiError, ApiState, convert, socket};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use tortie_proto::v1::tortie_server::{Tortie, TortieServer};
use tortie_proto::v1::{GetStatusRequest, GetStatusResponse, ListPeersRequest, ListPeersResponse};
use tracing::{error, info, warn};

/// How long `ListPeers` waits for the speaker's snapshot.
pub const PEERS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`ApiServer::stop`] lets calls in flight finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

struct Service {
    state: ApiState,
    /// Uptime is measured on the monotonic clock from here; `started` is only reported.
    serving_since: Instant,
    /// How long the agent had been running when the API started.
    uptime_at_start: Duration,
}

#[tonic::async_trait]
impl Tortie for Service {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let uptime = self.uptime_at_start + self.serving_since.elapsed();
        Ok(Response::new(GetStatusResponse {
            node: self.state.node.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            start_time: Some(convert::timestamp(self.state.started)),
            uptime: tortie_proto::prost_types::Duration::try_from(uptime).ok(),
            pid: std::process::id(),
        }))
    }

    async fn list_peers(
        &self,
        _request: Request<ListPeersRequest>,
    ) -> Result<Response<ListPeersResponse>, Status> {
        let peers = match tokio::time::timeout(PEERS_TIMEOUT, self.state.speaker.peers()).await {
            Ok(Ok(peers)) => peers,
            Ok(Err(e)) => return Err(Status::unavailable(format!("BGP speaker: {e}"))),
            Err(_) => {
                warn!(
                    timeout = ?PEERS_TIMEOUT,
                    "ListPeers: the BGP speaker did not answer in time"
                );
                return Err(Status::unavailable(format!(
                    "the BGP speaker did not answer within {} s",
                    PEERS_TIMEOUT.as_secs()
                )));
            }
        };
        Ok(Response::new(ListPeersResponse {
            node: self.state.node.clone(),
            peers: peers.iter().map(convert::peer).collect(),
        }))
    }
}

/// A running API server. Dropping it stops serving too (without waiting) and removes the
/// socket, so an agent that fails after [`serve`] leaves no socket behind.
pub struct ApiServer {
    socket: PathBuf,
    file: socket::FileId,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Stops accepting, lets calls in flight finish (for a few seconds at most), and removes
    /// the socket file.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(DRAIN_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                warn!("API calls still running after {DRAIN_TIMEOUT:?}: closing them");
                task.abort();
            }
        }
        socket::remove_if_ours(&self.socket, self.file);
        info!(socket = %self.socket.display(), "API stopped");
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
            socket::remove_if_ours(&self.socket, self.file);
        }
    }
}

/// Serves the API on `socket` until [`ApiServer::stop`].
pub async fn serve(socket: PathBuf, state: ApiState) -> Result<ApiServer, ApiError> {
    let (listener, file) = socket::bind(&socket).await?;
    let uptime_at_start = SystemTime::now()
        .duration_since(state.started)
        .unwrap_or_default();
    let service = Service {
        state,
        serving_since: Instant::now(),
        uptime_at_start,
    };
    let (tx, rx) = oneshot::channel::<()>();
    let incoming = UnixListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(TortieServer::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            error!(error = %e, "the API server failed");
        }
    });
    info!(socket = %socket.display(), "API serving");
    Ok(ApiServer {
        socket,
        file,
        shutdown: Some(tx),
        task: Some(task),
    })
}

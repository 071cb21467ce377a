//! The tasks that serve the API: one on the unix socket, and one on TCP with `--api-listen`.
//!
//! Both listeners are bound before [`serve`] returns, so a taken address or a live socket of
//! another agent stops the agent at start with a clear error instead of a task failing later.
//! Each listener gets its own [`Service`], writable or not (see `service`).

use super::service::Service;
use super::{ApiError, ApiState, socket};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tortie_proto::v1::tortie_server::TortieServer;
use tracing::{error, info, warn};

/// How long [`ApiServer::stop`] lets calls in flight finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// A running API server. Dropping it stops serving too (without waiting) and removes the
/// socket, so an agent that fails after [`serve`] leaves no socket behind.
pub struct ApiServer {
    socket: PathBuf,
    file: socket::FileId,
    shutdown: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ApiServer {
    /// Stops accepting, ends the event streams, lets calls in flight finish (for a few seconds
    /// at most), and removes the socket file.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        for mut task in std::mem::take(&mut self.tasks) {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
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
            let _ = tx.send(true);
            socket::remove_if_ours(&self.socket, self.file);
        }
    }
}

fn service(state: &ApiState, writable: bool, shutdown: &watch::Receiver<bool>) -> Service {
    Service {
        state: state.clone(),
        writable,
        serving_since: Instant::now(),
        uptime_at_start: SystemTime::now()
            .duration_since(state.started)
            .unwrap_or_default(),
        shutdown: shutdown.clone(),
    }
}

/// The server future until `shutdown` turns true.
fn spawn_server<S, IO, IE>(what: String, service: Service, incoming: S) -> JoinHandle<()>
where
    S: futures::Stream<Item = Result<IO, IE>> + Send + 'static,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut stop = service.shutdown.clone();
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(TortieServer::new(service))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            error!(listener = %what, error = %e, "the API server failed");
        }
    })
}

/// Serves the API on `socket` (and on `state.tcp_listen`) until [`ApiServer::stop`].
pub async fn serve(socket: PathBuf, state: ApiState) -> Result<ApiServer, ApiError> {
    // TCP first: a taken port then leaves no socket file behind.
    let tcp = match state.tcp_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ApiError::BindTcp { addr, source })?,
        ),
        None => None,
    };
    let (listener, file) = socket::bind(&socket).await?;
    let (tx, rx) = watch::channel(false);
    let mut tasks = vec![spawn_server(
        socket.display().to_string(),
        service(&state, true, &rx),
        UnixListenerStream::new(listener),
    )];
    info!(socket = %socket.display(), "API serving");
    if let Some(tcp) = tcp {
        let addr: Option<SocketAddr> = tcp.local_addr().ok();
        let shown = addr.map_or_else(|| "TCP".to_string(), |a| a.to_string());
        tasks.push(spawn_server(
            shown.clone(),
            service(&state, state.allow_write, &rx),
            TcpListenerStream::new(tcp),
        ));
        info!(listen = %shown, writable = state.allow_write, "API serving on TCP");
    }
    Ok(ApiServer {
        socket,
        file,
        shutdown: Some(tx),
        tasks,
    })
}

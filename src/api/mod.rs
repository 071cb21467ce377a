//! The agent's gRPC API (`tortie.v1.Tortie`, see `proto/`) on a unix socket.
//!
//! Being written (issue 7): this placeholder only fixes the interface the agent calls.

use std::path::PathBuf;
use std::time::SystemTime;
use tortie_bgp::speaker::Speaker;

/// What the API answers from.
#[derive(Clone)]
pub struct ApiState {
    pub node: String,
    pub speaker: Speaker,
    pub started: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Io(String),
}

/// A running API server.
pub struct ApiServer;

impl ApiServer {
    /// Stops serving and removes the socket.
    pub async fn stop(self) {}
}

/// Serves the API on `socket` until [`ApiServer::stop`].
pub async fn serve(socket: PathBuf, state: ApiState) -> Result<ApiServer, ApiError> {
    // Placeholder until the server lands: serves nothing.
    let _ = (socket, state);
    Ok(ApiServer)
}

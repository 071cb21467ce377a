//! The agent's gRPC API (`tortie.v1.Tortie`, see `proto/`) on a unix socket (and on TCP with
//! `--api-listen`), and the client the `tortie` commands use to call it.
//!
//! One socket per agent, mode 0600 in a 0755 directory: the API has calls that change the
//! agent (disable a peer, refresh), so only root talks to it. Starting a second agent on the
//! same path fails rather than stealing the socket from the one that serves it; a socket file
//! left by an agent that died is replaced. Over TCP, which any local user (or the network)
//! reaches, the write calls are refused unless `--api-allow-write`.
//!
//! Every call answers from snapshots or bounded requests to the speaker, so no client, however
//! slow, holds up BGP or the dataplane.

pub mod client;
mod convert;
mod events;
mod fib;
mod ipam;
mod peers;
mod pod_address;
mod routes;
mod select;
mod server;
mod service;
mod socket;

// `ApiServer` is what `serve` returns; exported for callers that keep it in a field.
#[allow(unused_imports)]
pub use server::{ApiServer, serve};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;
use tortie_bgp::speaker::Speaker;

/// What the API answers from.
#[derive(Clone)]
pub struct ApiState {
    pub node: String,
    pub speaker: Speaker,
    pub started: SystemTime,
    /// Snapshots of the FIB, the configuration, the datastore (see `agent::observe`).
    pub observed: crate::agent::observe::Observed,
    /// Also serve on this TCP address (`--api-listen`).
    pub tcp_listen: Option<SocketAddr>,
    /// Accept the write calls over TCP too (`--api-allow-write`); the unix socket always does.
    pub allow_write: bool,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("another agent serves {}", .0.display())]
    AnotherAgent(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it (see --api-socket)", .0.display())]
    NotASocket(PathBuf),
    #[error("{} names no file (see --api-socket)", .0.display())]
    NoFileName(PathBuf),
    #[error("socket path {} is {len} bytes long; at most {max} fit in a unix socket address", path.display())]
    PathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("cannot create the directory {} for the API socket: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot tell whether an agent serves {}: {source}", path.display())]
    Probe {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind the API socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for the API (--api-listen): {source}")]
    BindTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

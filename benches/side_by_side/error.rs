//! What can go wrong in a run, each error naming the target, session, command or file it is
//! about, so a failed run says where to look without a debugger.

use std::net::{Ipv4Addr, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("session {local} -> {remote}: {reason}")]
    Session {
        local: Ipv4Addr,
        remote: SocketAddr,
        reason: String,
    },
    #[error("{target}: {reason}")]
    Target { target: String, reason: String },
    #[error("`{command}` failed: {reason}")]
    Command { command: String, reason: String },
    #[error("{0}")]
    Plan(String),
    #[error("encoding the load: {0}")]
    Encode(String),
    #[error("writing the report {path}: {reason}")]
    Report { path: String, reason: String },
}

impl BenchError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn target(target: impl std::fmt::Display, reason: impl Into<String>) -> BenchError {
        BenchError::Target {
            target: target.to_string(),
            reason: reason.into(),
        }
    }
}

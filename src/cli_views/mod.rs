//! The operator's commands on a running agent's API, beside `tortie status`: `tortie routes`
//! (RIB beside FIB), `tortie peers` (sessions in detail), `tortie ipam` (usage) and `tortie
//! peer enable|disable|refresh`.
//!
//! Each command takes `--api-socket PATH` (default `/run/tortie/tortie.sock`, so each lab
//! node is reachable by its own socket) and `--json`, whose shape is documented in the
//! command's module and only grows. With no agent answering, or a reply that does not parse,
//! a command prints why on stderr and exits with status 1.

pub mod ipam;
pub mod peer_cmd;
pub mod peers;
pub mod routes;

use crate::api::client;
use crate::status_cmd::StatusError;
use std::path::PathBuf;
use tonic::transport::Channel;
use tortie_proto::v1::tortie_client::TortieClient;

/// The options every view shares.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// The agent's API socket.
    #[arg(long, value_name = "PATH", default_value = "/run/tortie/tortie.sock")]
    pub api_socket: PathBuf,
    /// Print JSON (a documented shape that only grows) instead of tables.
    #[arg(long)]
    pub json: bool,
}

impl ApiArgs {
    pub async fn connect(&self) -> Result<TortieClient<Channel>, StatusError> {
        Ok(client::connect(&self.api_socket).await?)
    }
}

/// The error for a call the agent answered with a gRPC error.
pub fn call_error(call: &'static str) -> impl FnOnce(tonic::Status) -> StatusError {
    move |status| StatusError::Call { call, status }
}

/// The error for a reply that does not hold what the proto promises.
pub fn reply_error(call: &'static str, what: String) -> StatusError {
    StatusError::Reply { call, what }
}

/// `--json` output: pretty, one document, a final newline.
pub fn json_text(v: &impl serde::Serialize) -> Result<String, StatusError> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| reply_error("(output)", format!("cannot write JSON: {e}")))
}

/// An enum value read leniently: one newer than this client reads as UNSPECIFIED (the
/// proto's rule), which the caller prints as `unknown`.
pub fn enum_or<E: TryFrom<i32>>(v: i32, unspecified: E) -> E {
    E::try_from(v).unwrap_or(unspecified)
}

/// `n (p%)` of `of`, as calicoctl prints usage.
pub fn with_percent(n: u64, of: f64) -> String {
    if of > 0.0 {
        format!("{n} ({:.0}%)", n as f64 * 100.0 / of)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_shows_a_rounded_percentage() {
        assert_eq!(with_percent(3, 64.0), "3 (5%)");
        assert_eq!(with_percent(0, 0.0), "0");
    }
}

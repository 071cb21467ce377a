//! `tortie peer enable|disable|refresh PEER`: the write calls of the API for an operator.
//!
//! `disable` closes the session with Cease / Administrative Shutdown and keeps it Idle (its
//! routes are withdrawn, the peer's connections refused) until `enable`; `refresh` asks an
//! Established peer for its routes again (ROUTE-REFRESH). Both go through the agent's unix
//! socket, which always accepts them.
//!
//! `--json` prints `{"address", "enabled", "changed"}` for enable and disable (`changed`
//! false when the peer already was so), `{"address", "families"}` for refresh.

use super::{ApiArgs, call_error, json_text};
use crate::status_cmd::{StatusError, printable};
use serde::Serialize;
use std::process::ExitCode;
use tortie_proto::v1;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Start a disabled peer's session again.
    Enable(Target),
    /// Stop a peer's session (Cease / Administrative Shutdown); it stays Idle until enabled.
    Disable(Target),
    /// Ask an Established peer to send its routes again (ROUTE-REFRESH).
    Refresh(RefreshArgs),
}

#[derive(clap::Args, Debug)]
struct Target {
    /// The peer's address or name.
    #[arg(value_name = "PEER")]
    peer: String,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FamilyArg {
    Ipv4,
    Ipv6,
}

#[derive(clap::Args, Debug)]
struct RefreshArgs {
    #[command(flatten)]
    target: Target,
    /// Only this family (repeatable); default: every family the session negotiated.
    #[arg(long, value_enum)]
    family: Vec<FamilyArg>,
}

#[derive(Debug, Serialize)]
struct EnabledJson {
    address: String,
    enabled: bool,
    changed: bool,
}

#[derive(Debug, Serialize)]
struct RefreshJson {
    address: String,
    families: Vec<&'static str>,
}

async fn set_enabled(t: &Target, enabled: bool) -> Result<String, StatusError> {
    let mut client = t.api.connect().await?;
    let r = client
        .set_peer_enabled(v1::SetPeerEnabledRequest {
            peer: t.peer.clone(),
            enabled,
        })
        .await
        .map_err(call_error("SetPeerEnabled"))?
        .into_inner();
    let j = EnabledJson {
        address: printable(&r.address),
        enabled: r.enabled,
        changed: r.changed,
    };
    if t.api.json {
        return json_text(&j);
    }
    let word = if j.enabled { "enabled" } else { "disabled" };
    Ok(if j.changed {
        format!("peer {} {word}\n", j.address)
    } else {
        format!("peer {} was already {word}\n", j.address)
    })
}

async fn refresh(a: &RefreshArgs) -> Result<String, StatusError> {
    let mut client = a.target.api.connect().await?;
    let families = a
        .family
        .iter()
        .map(|f| match f {
            FamilyArg::Ipv4 => v1::AddressFamily::Ipv4Unicast as i32,
            FamilyArg::Ipv6 => v1::AddressFamily::Ipv6Unicast as i32,
        })
        .collect();
    let r = client
        .refresh_peer(v1::RefreshPeerRequest {
            peer: a.target.peer.clone(),
            families,
        })
        .await
        .map_err(call_error("RefreshPeer"))?
        .into_inner();
    let j = RefreshJson {
        address: printable(&r.address),
        families: r
            .families
            .iter()
            .map(|f| super::peers::family(*f))
            .collect(),
    };
    if a.target.api.json {
        return json_text(&j);
    }
    Ok(format!(
        "route refresh requested from {} for {}\n",
        j.address,
        j.families.join(", ")
    ))
}

pub fn run(args: Args) -> ExitCode {
    match &args.action {
        Action::Enable(t) => crate::status_cmd::run_printing("peer enable", set_enabled(t, true)),
        Action::Disable(t) => {
            crate::status_cmd::run_printing("peer disable", set_enabled(t, false))
        }
        Action::Refresh(a) => crate::status_cmd::run_printing("peer refresh", refresh(a)),
    }
}

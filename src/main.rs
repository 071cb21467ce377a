//! The `tortie` binary: the node agent and the commands operators run beside it.

mod agent;
mod api;
mod config;
mod datastore;
mod decode;
mod lab;
mod status_cmd;
mod status_file;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tortie",
    version,
    about = "A Calico-style vRouter for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run this node's agent: BGP sessions from Calico v3 configuration.
    Agent(agent::Args),
    /// Decode raw BGP messages (binary on stdin, or --hex) and print each as JSON.
    Decode(decode::Args),
    /// A virtual cluster in network namespaces: `lab up`, `lab status`, `lab down`.
    Lab(lab::Args),
    /// Validate Calico v3 resources and write them to the datastore (as `calicoctl apply`).
    Apply(datastore::ApplyArgs),
    /// Show stored resources: a table, or YAML/JSON that `tortie apply` takes back.
    Get(datastore::GetArgs),
    /// Delete stored resources, by KIND NAME or as named in files.
    Delete(datastore::DeleteArgs),
    /// Show this node's agent and BGP sessions, as `calicoctl node status` does.
    Status(status_cmd::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Agent(args) => {
            init_logging();
            agent::run(args)
        }
        Command::Decode(args) => decode::run(args),
        Command::Lab(args) => {
            init_logging();
            lab::run(args)
        }
        Command::Apply(args) => {
            init_logging();
            datastore::run_apply(args)
        }
        Command::Get(args) => {
            init_logging();
            datastore::run_get(args)
        }
        Command::Delete(args) => {
            init_logging();
            datastore::run_delete(args)
        }
        Command::Status(args) => status_cmd::run(args),
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

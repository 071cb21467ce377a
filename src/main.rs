//! The `tortie` binary: the node agent and the commands operators run beside it.

mod config;
mod decode;

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
    /// Decode raw BGP messages (binary on stdin, or --hex) and print each as JSON.
    Decode(decode::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => decode::run(args),
    }
}

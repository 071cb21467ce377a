//! The `tortie` binary: the node agent and the commands operators run beside it.

mod agent;
mod api;
mod cli_views;
mod cni;
mod config;
mod datastore;
mod decode;
mod flush_cmd;
mod lab;
mod metrics;
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
    /// Show the RIB's best routes beside the kernel routes felix programmed.
    Routes(cli_views::routes::Args),
    /// Show the BGP sessions with their counts, or one peer in detail.
    Peers(cli_views::peers::Args),
    /// Show IP pool and block usage.
    Ipam(cli_views::ipam::Args),
    /// Enable, disable or refresh one BGP peer.
    Peer(cli_views::peer_cmd::Args),
    /// Remove every route, VXLAN device and NAT table tortie wrote to this node's kernel.
    Flush(flush_cmd::Args),
}

fn main() -> ExitCode {
    // Runtimes execute CNI plugins by file name: a `tortie-cni` link to this binary is the
    // plugin, which takes no arguments and speaks CNI on stdin/stdout.
    if cni::invoked_as_plugin() {
        return cni::run_plugin();
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Agent(args) => {
            init_logging(&args.log);
            agent::run(args)
        }
        Command::Decode(args) => decode::run(args),
        Command::Lab(args) => {
            init_logging(&LogArgs::default());
            lab::run(args)
        }
        Command::Apply(args) => {
            init_logging(&LogArgs::default());
            datastore::run_apply(args)
        }
        Command::Get(args) => {
            init_logging(&LogArgs::default());
            datastore::run_get(args)
        }
        Command::Delete(args) => {
            init_logging(&LogArgs::default());
            datastore::run_delete(args)
        }
        Command::Status(args) => status_cmd::run(args),
        Command::Routes(args) => cli_views::routes::run(args),
        Command::Peers(args) => cli_views::peers::run(args),
        Command::Ipam(args) => cli_views::ipam::run(args),
        Command::Peer(args) => cli_views::peer_cmd::run(args),
        Command::Flush(args) => flush_cmd::run(args),
    }
}

/// How a command logs: the agent takes these as flags; the other commands use the defaults.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log lines on stderr as text, or as one JSON object per line (for log collectors).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// The least severe level logged (error, warn, info, debug, trace, off), or a filter with
    /// per-module levels such as `info,tortie_bgp=debug`. RUST_LOG, when set, wins.
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = parse_log_filter)]
    pub log_level: String,
}

impl Default for LogArgs {
    fn default() -> Self {
        LogArgs {
            log_format: LogFormat::Text,
            log_level: "info".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// A level, or a filter with at least one `target=level` (a bare word would otherwise be read
/// as a target name and silently enable everything under it).
fn parse_log_filter(s: &str) -> Result<String, String> {
    let s = s.trim();
    let expected = "expected a level (error, warn, info, debug, trace, off) or a filter such as `info,tortie_bgp=debug`";
    if LEVELS.contains(&s.to_ascii_lowercase().as_str()) {
        return Ok(s.to_ascii_lowercase());
    }
    if !s.contains('=') {
        return Err(format!("{s:?} is not a log level: {expected}"));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{s:?} is not a log filter ({e}): {expected}"))
}

/// Logs go to stderr, as text (coloured on a terminal) or JSON lines. `RUST_LOG`, when set,
/// filters them; else `--log-level` (default `info`).
fn init_logging(args: &LogArgs) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let from_flag = || EnvFilter::builder().parse_lossy(&args.log_level);
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::builder().parse(&v) {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "tortie: RUST_LOG={v:?} is not a valid filter ({e}); using --log-level {}",
                    args.log_level
                );
                from_flag()
            }
        },
        _ => from_flag(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // Event fields at the top level next to `message`; `span` is the innermost span
        // (`peer`, `dataplane_pass`) and `spans` the whole stack.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_log_filter;

    #[test]
    fn a_log_level_is_taken_in_any_case() {
        assert_eq!(parse_log_filter("DEBUG").as_deref(), Ok("debug"));
        assert_eq!(parse_log_filter("warn").as_deref(), Ok("warn"));
    }

    #[test]
    fn a_filter_with_module_levels_is_taken() {
        assert_eq!(
            parse_log_filter("info,tortie_bgp=debug").as_deref(),
            Ok("info,tortie_bgp=debug")
        );
    }

    #[test]
    fn a_word_that_is_no_level_is_refused_with_the_choices() {
        let e = parse_log_filter("verbose").unwrap_err();
        assert!(
            e.contains("verbose") && e.contains("error, warn, info"),
            "{e}"
        );
    }

    #[test]
    fn a_malformed_filter_is_refused() {
        assert!(parse_log_filter("tortie_bgp=loud").is_err());
    }
}

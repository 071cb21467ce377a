//! `tortie-cni`: the CNI 1.0/1.1 plugin, run by a container runtime (the `tortie` binary
//! invoked under the name `tortie-cni`, or as plain `tortie` for a network configuration of
//! `type: tortie`) to give pods their addresses from tortie's IPAM and wire them to the node
//! as Calico's CNI plugin does.
//!
//! The runtime passes the command and the container in `CNI_*` variables and the network
//! configuration on stdin, and reads one JSON object from stdout: the result, or an error
//! with the specification's code. Logs go to stderr. Modules: [`config`] and [`env`] (the
//! inputs, validated), [`result`] (the outputs and codes), [`add`], [`del`], [`check`], [`gc`]
//! (the commands), [`addresses`] (the agent or the datastore), [`store_ipam`], [`pools`],
//! [`lock`], [`node`], [`veth`] and [`iproute`] (the dataplane).

mod add;
mod addresses;
mod check;
pub mod config;
mod del;
pub mod env;
mod gc;
mod iproute;
mod lock;
mod node;
mod pools;
pub mod result;
pub mod store_ipam;
pub mod veth;

use config::NetConf;
use env::{Command, Env};
use result::{CniError, Code, LATEST_VERSION};
use std::io::{Read as _, Write as _};
use std::process::ExitCode;

/// The file name that makes the `tortie` binary run as the plugin whatever else it is given.
pub const PLUGIN_NAME: &str = "tortie-cni";

/// Whether the process was started as the plugin: by the name `tortie-cni`, or (a network
/// configuration of `type: tortie`) under any name with no arguments and `CNI_COMMAND` set.
pub fn invoked_as_plugin() -> bool {
    let mut args = std::env::args_os();
    let argv0 = args.next();
    let has_arguments = args.next().is_some();
    let cni_command = std::env::var_os("CNI_COMMAND").is_some_and(|c| !c.is_empty());
    plugin_mode(argv0.as_deref(), has_arguments, cni_command)
}

/// A runtime executes `$CNI_PATH/<type>` with no arguments and the command in `CNI_COMMAND`,
/// so `type: tortie` runs this binary under its own name. That cannot take over a use of the
/// CLI: every CLI command has a subcommand, and the CLI with no arguments only prints its
/// help. An empty `CNI_COMMAND` (a stray export, never a runtime) leaves the CLI alone.
fn plugin_mode(argv0: Option<&std::ffi::OsStr>, has_arguments: bool, cni_command: bool) -> bool {
    let named_plugin = argv0
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == PLUGIN_NAME);
    named_plugin || (!has_arguments && cni_command)
}

/// Runs the plugin: one command, one JSON object on stdout, exit status 0 or 1.
pub fn run_plugin() -> ExitCode {
    let get = |k: &str| std::env::var(k).ok();
    let mut input = Vec::new();
    let read = std::io::stdin().read_to_end(&mut input);
    init_logging(config::peek_log_level(&input).as_deref());
    let version = config::peek_version(&input).unwrap_or_else(|| LATEST_VERSION.to_string());
    let outcome = read
        .map_err(|e| {
            CniError::new(
                Code::Io,
                format!("reading the network configuration from stdin: {e}"),
            )
        })
        .and_then(|_| run(&get, &input));
    match outcome {
        Ok(out) => {
            if let Some(value) = out {
                if !print(&value) {
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(code = e.code.number(), "{e}");
            print(&e.to_json(&version));
            ExitCode::from(1)
        }
    }
}

/// Prints one JSON object on stdout; false when stdout is gone.
fn print(value: &serde_json::Value) -> bool {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
    if let Err(e) = written {
        tracing::error!(error = %e, "cannot write the result to stdout");
        return false;
    }
    true
}

/// Runs the command the environment names; `Some` is printed on stdout.
fn run(
    get: &dyn Fn(&str) -> Option<String>,
    input: &[u8],
) -> Result<Option<serde_json::Value>, CniError> {
    let command = env::command(get)?;
    if command == Command::Version {
        return Ok(Some(result::version_info()));
    }
    let mut conf = NetConf::parse(input)?;
    if command == Command::Gc {
        conf.ignored_keys.retain(|k| !gc::is_attachments_key(k));
    }
    if !conf.ignored_keys.is_empty() {
        tracing::warn!(keys = ?conf.ignored_keys, "network configuration keys tortie-cni does not use were ignored");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(Code::Io, format!("starting the async runtime: {e}")))?;
    if command == Command::Status {
        return status(&conf, &rt).map(|()| None);
    }
    if command == Command::Gc {
        return gc::run(&conf, input, &rt).map(|()| None);
    }
    let env = Env::read(command, get)?;
    match command {
        Command::Add => {
            let r = add::run(&conf, &env, &rt)?;
            serde_json::to_value(&r)
                .map(Some)
                .map_err(|e| CniError::new(Code::Io, format!("encoding the result: {e}")))
        }
        Command::Del => del::run(&conf, &env, &rt).map(|()| None),
        Command::Check => check::run(&conf, &env, &rt).map(|()| None),
        Command::Status | Command::Version | Command::Gc => Ok(None),
    }
}

/// STATUS: whether an ADD could be served now (the datastore or the agent answers, and the
/// pools the configuration asks for are usable on this node); 50 when not.
fn status(conf: &NetConf, rt: &tokio::runtime::Runtime) -> Result<(), CniError> {
    let checked = node::name(conf).and_then(|n| {
        let ipam = rt.block_on(addresses::Ipam::connect_store(conf))?;
        rt.block_on(ipam.ready(conf, &n))
    });
    checked.map_err(|e| CniError::new(Code::NotAvailable, e.to_string()))
}

/// Logs on stderr (the runtime keeps stdout for the result), at the configuration's
/// `log_level` (default info); `RUST_LOG` wins when set.
fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let level = match level.map(str::to_ascii_lowercase).as_deref() {
        Some("warning") => "warn".to_string(),
        Some(l) if ["error", "warn", "info", "debug", "trace", "off"].contains(&l) => l.to_string(),
        _ => "info".to_string(),
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::builder().parse(v).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::plugin_mode;
    use std::ffi::OsStr;

    #[test]
    fn the_name_tortie_cni_is_the_plugin_with_or_without_cni_command() {
        let argv0 = Some(OsStr::new("/opt/cni/bin/tortie-cni"));
        assert!(plugin_mode(argv0, false, true));
        assert!(plugin_mode(argv0, false, false));
        assert!(plugin_mode(argv0, true, false));
    }

    #[test]
    fn any_name_with_no_arguments_and_cni_command_is_the_plugin() {
        assert!(plugin_mode(
            Some(OsStr::new("/opt/cni/bin/tortie")),
            false,
            true
        ));
        assert!(plugin_mode(None, false, true));
    }

    #[test]
    fn the_cli_stays_the_cli_with_arguments_or_without_cni_command() {
        let tortie = Some(OsStr::new("/usr/local/bin/tortie"));
        assert!(!plugin_mode(tortie, true, true));
        assert!(!plugin_mode(tortie, false, false));
    }
}

//! Helpers the API tests share: running the `tortie` binary and a small tokio runtime.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub const EXE: &str = env!("CARGO_BIN_EXE_tortie");
/// Calico's default AS on both sides: an iBGP session, as in a cluster.
pub const AS: u32 = 64512;

pub fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `tortie ARGS...`
pub fn tortie(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running tortie {args:?}: {e}"))
}

/// `tortie VIEW... --api-socket SOCKET`.
pub fn tortie_view(socket: &Path, view: &[&str]) -> Output {
    let mut args: Vec<&str> = view.to_vec();
    let socket = socket.to_string_lossy().to_string();
    args.extend(["--api-socket", &socket]);
    tortie(&args)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

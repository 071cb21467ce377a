//! iproute2 (`ip`) run in the host's namespace or in a container's namespace given by path,
//! and sysctls written in either.
//!
//! Why `ip` and not felix's netlink code: felix's `Kernel` writes only routes of its own
//! protocol (116, and it refuses 0 to 4 by design) and has no requests for veth pairs or for
//! moving a link into another namespace, while the pod's host route must carry the device-route
//! protocol (3, `boot`, as Calico's `deviceRouteProtocol`) so that felix's reconciler never
//! takes it for one of its own. iproute2 does all of it, reads back as JSON (`ip -j`), and is
//! already what the lab needs on every machine. felix's [`Netns`] is used to enter a namespace:
//! a short-lived thread enters it and starts `ip` there (a child inherits the namespace of the
//! thread that forks it), so the plugin's own thread never changes namespace.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tortie_felix::netlink::{Netns, NlError, sysctl};

/// A dataplane operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("`ip {args}` in {ns} failed: {stderr}")]
    Failed {
        ns: String,
        args: String,
        stderr: String,
    },
    #[error("cannot run `ip` (iproute2 is needed): {0}")]
    Spawn(std::io::Error),
    #[error("network namespace {}: {source}", path.display())]
    Netns { path: PathBuf, source: NlError },
    #[error("sysctl {key} in {ns}: {source}")]
    Sysctl {
        ns: String,
        key: String,
        source: NlError,
    },
    #[error("`ip {args}` in {ns} printed {what}")]
    Output {
        ns: String,
        args: String,
        what: String,
    },
}

/// Which namespace: the plugin's own (the host's), or a container's by path.
#[derive(Debug, Clone, Copy)]
pub enum Ns<'a> {
    Host,
    Path(&'a Path),
}

impl Ns<'_> {
    fn netns(&self) -> Netns {
        match self {
            Ns::Host => Netns::current(),
            Ns::Path(p) => Netns::path(*p),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Ns::Host => "the host namespace".into(),
            Ns::Path(p) => format!("namespace {}", p.display()),
        }
    }
}

/// Runs `ip ARGS` (with `input` on stdin for `-batch -`); the stdout on success.
fn run(ns: Ns<'_>, args: &[&str], input: Option<&str>) -> Result<String, DataplaneError> {
    let text = args.join(" ");
    tracing::debug!(ns = %ns.describe(), cmd = %text, input = input.unwrap_or(""), "ip");
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let input = input.map(str::to_string);
    let output = ns
        .netns()
        .run(move || -> std::io::Result<std::process::Output> {
            let mut child = Command::new("ip")
                .args(&owned)
                .stdin(if input.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
                pipe.write_all(text.as_bytes())?;
            }
            child.wait_with_output()
        })
        .map_err(|source| match &ns {
            Ns::Path(p) => DataplaneError::Netns {
                path: p.to_path_buf(),
                source,
            },
            Ns::Host => DataplaneError::Netns {
                path: PathBuf::from("/proc/self/ns/net"),
                source,
            },
        })?
        .map_err(DataplaneError::Spawn)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(DataplaneError::Failed {
        ns: ns.describe(),
        args: text,
        stderr: if stderr.is_empty() {
            output.status.to_string()
        } else {
            stderr
        },
    })
}

/// `ip ARGS`.
pub fn ip(ns: Ns<'_>, args: &[&str]) -> Result<String, DataplaneError> {
    run(ns, args, None)
}

/// Several commands in one `ip -batch -`, stopping at the first failure.
pub fn batch(ns: Ns<'_>, lines: &[String]) -> Result<(), DataplaneError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut input = lines.join("\n");
    input.push('\n');
    run(ns, &["-batch", "-"], Some(&input))
        .map(|_| ())
        .map_err(|e| match e {
            DataplaneError::Failed { ns, stderr, .. } => DataplaneError::Failed {
                ns,
                args: format!("-batch: {}", lines.join("; ")),
                stderr,
            },
            other => other,
        })
}

/// `ip -j ARGS`, as a JSON array (empty when `ip` prints nothing, as for no matches).
pub fn json(ns: Ns<'_>, args: &[&str]) -> Result<Vec<serde_json::Value>, DataplaneError> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = run(ns, &full, None)?;
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<serde_json::Value>(&out) {
        Ok(serde_json::Value::Array(items)) => Ok(items),
        Ok(other) => Err(DataplaneError::Output {
            ns: ns.describe(),
            args: full.join(" "),
            what: format!("JSON that is not an array: {other}"),
        }),
        Err(e) => Err(DataplaneError::Output {
            ns: ns.describe(),
            args: full.join(" "),
            what: format!("no JSON ({e})"),
        }),
    }
}

/// One link as `ip -j link show` describes it: `None` when there is no such device.
pub fn link(ns: Ns<'_>, name: &str) -> Result<Option<serde_json::Value>, DataplaneError> {
    match json(ns, &["-d", "link", "show", "dev", name]) {
        Ok(items) => Ok(items.into_iter().next()),
        Err(DataplaneError::Failed { stderr, .. }) if stderr.contains("does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `/proc/sys/<components>` in a namespace.
pub fn write_sysctl(ns: Ns<'_>, components: &[&str], value: &str) -> Result<(), DataplaneError> {
    sysctl::write_sysctl(&ns.netns(), components, value)
        .map(|_| ())
        .map_err(|source| DataplaneError::Sysctl {
            ns: ns.describe(),
            key: components.join("."),
            source,
        })
}

/// Reads `/proc/sys/<components>` in a namespace.
pub fn read_sysctl(ns: Ns<'_>, components: &[&str]) -> Result<String, DataplaneError> {
    sysctl::read_sysctl(&ns.netns(), components).map_err(|source| DataplaneError::Sysctl {
        ns: ns.describe(),
        key: components.join("."),
        source,
    })
}

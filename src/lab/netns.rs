//! Network namespaces and links through iproute2 (`ip -n NS ...`), and code run inside a
//! namespace from a thread of this process (`setns`).
//!
//! Every command names its namespace explicitly, so nothing the lab does can touch the host's
//! own namespace by accident. Sysctls and the pods' ICMP probes need no shell or `sysctl`
//! binary: a thread enters the namespace and works there (`/proc/sys/net` shows the calling
//! thread's namespace), which keeps the lab to what a fresh Debian has (iproute2).

use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A namespace operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("cannot run `{cmd}`: {err} (iproute2's `ip` is needed: apt-get install iproute2)")]
    Spawn { cmd: String, err: std::io::Error },
    #[error("cannot enter namespace {ns}: {err}")]
    Enter { ns: String, err: std::io::Error },
    #[error("namespace {ns}: setting {key} to {value}: {err}")]
    Sysctl {
        ns: String,
        key: String,
        value: String,
        err: std::io::Error,
    },
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Result<String, NetnsError> {
    let text = describe(&cmd);
    tracing::debug!(cmd = %text, input = stdin.unwrap_or(""), "running");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let spawn_err = |err| NetnsError::Spawn {
        cmd: text.clone(),
        err,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let stderr = if stderr.is_empty() {
            out.status.to_string()
        } else {
            stderr
        };
        Err(NetnsError::Failed { cmd: text, stderr })
    }
}

/// `ip ARGS` in the host's namespace: only for `ip netns ...` itself.
fn ip_netns(args: &[&str]) -> Result<String, NetnsError> {
    let mut c = Command::new("ip");
    c.arg("netns").args(args);
    run(c, None)
}

/// `ip -n NS ARGS`.
pub fn ip(ns: &str, args: &[&str]) -> Result<String, NetnsError> {
    let mut c = Command::new("ip");
    c.args(["-n", ns]).args(args);
    run(c, None)
}

/// Several `ip` commands in one process (`ip -n NS -batch -`), stopping at the first error,
/// which names the line.
pub fn batch(ns: &str, lines: &[String]) -> Result<(), NetnsError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut c = Command::new("ip");
    c.args(["-n", ns, "-batch", "-"]);
    let mut input = lines.join("\n");
    input.push('\n');
    run(c, Some(&input)).map(|_| ()).map_err(|e| match e {
        NetnsError::Failed { stderr, .. } => NetnsError::Failed {
            cmd: format!("ip -n {ns} -batch: {}", lines.join("; ")),
            stderr,
        },
        other => other,
    })
}

pub fn exists(ns: &str) -> bool {
    Path::new(NETNS_DIR).join(ns).exists()
}

/// Creates a namespace with `lo` up.
pub fn add(ns: &str) -> Result<(), NetnsError> {
    ip_netns(&["add", ns])?;
    ip(ns, &["link", "set", "lo", "up"]).map(|_| ())
}

/// Deletes a namespace (its links go with it); `false` when there was none.
pub fn delete(ns: &str) -> Result<bool, NetnsError> {
    if !exists(ns) {
        return Ok(false);
    }
    ip_netns(&["delete", ns]).map(|_| true)
}

/// Every named namespace.
pub fn list() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// The processes inside a namespace (`ip netns pids`).
pub fn pids(ns: &str) -> Vec<i32> {
    ip_netns(&["pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .filter(|&p: &i32| p > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets it creates live there.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let path = Path::new(NETNS_DIR).join(ns);
    let enter_err = |err| NetnsError::Enter {
        ns: ns.to_string(),
        err,
    };
    let file = std::fs::File::open(&path).map_err(enter_err)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on a descriptor we own; it changes only this thread's network
            // namespace, and the thread ends when `f` returns.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(enter_err(std::io::Error::last_os_error()));
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(enter_err(std::io::Error::other(
                "the thread working in the namespace panicked",
            )))
        })
    })
}

/// Writes sysctls (keys as `net.ipv4.ip_forward`) inside namespace `ns`.
pub fn sysctls(ns: &str, settings: &[(String, &str)]) -> Result<(), NetnsError> {
    in_netns(ns, || {
        for (key, value) in settings {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&path, value).map_err(|err| NetnsError::Sysctl {
                ns: ns.to_string(),
                key: key.clone(),
                value: value.to_string(),
                err,
            })?;
        }
        Ok(())
    })?
}

/// Reads one sysctl inside namespace `ns`.
#[cfg(test)]
pub fn read_sysctl(ns: &str, key: &str) -> Result<String, NetnsError> {
    in_netns(ns, || {
        std::fs::read_to_string(Path::new("/proc/sys").join(key.replace('.', "/")))
            .map(|s| s.trim().to_string())
            .map_err(|err| NetnsError::Sysctl {
                ns: ns.to_string(),
                key: key.to_string(),
                value: "(read)".into(),
                err,
            })
    })?
}

/// Whether this kernel can create IPIP devices: the module is loaded, or creating one in a
/// scratch namespace works (which loads it when it is available as a module).
pub fn ipip_available(scratch_ns: &str) -> Result<bool, NetnsError> {
    if Path::new("/sys/module/ipip").exists() {
        return Ok(true);
    }
    if exists(scratch_ns) {
        delete(scratch_ns)?;
    }
    add(scratch_ns)?;
    let created = ip(
        scratch_ns,
        &["link", "add", "name", "probe-ipip", "type", "ipip"],
    )
    .is_ok();
    delete(scratch_ns)?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace removed again when the test ends, even on panic.
    struct Scratch(String);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let name = format!("tlabunit-{tag}-{}", std::process::id());
            let _ = delete(&name);
            add(&name).unwrap();
            Scratch(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = delete(&self.0);
        }
    }

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_sysctl_written_from_inside_a_namespace_changes_that_namespace_only() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = Scratch::new("sysctl");
        let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        sysctls(&ns.0, &[("net.ipv4.ip_forward".into(), "1")]).unwrap();
        assert_eq!(read_sysctl(&ns.0, "net.ipv4.ip_forward").unwrap(), "1");
        let host_after = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        assert_eq!(host_before, host_after);
    }

    #[test]
    fn a_failing_batch_names_the_namespace_and_the_error() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = Scratch::new("batch");
        let e = batch(&ns.0, &["link set nosuchdev up".to_string()]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&ns.0) && text.contains("nosuchdev"), "{text}");
    }

    #[test]
    fn a_deleted_namespace_is_gone_and_deleting_it_again_is_no_error() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = Scratch::new("delete");
        assert!(exists(&ns.0));
        assert!(delete(&ns.0).unwrap());
        assert!(!exists(&ns.0));
        assert!(!delete(&ns.0).unwrap());
    }
}

//! Detached daemons (agents, BIRD) started in a namespace, and stopped again by PID only.
//!
//! A lab outlives the `lab up` that built it, so its daemons run in their own session
//! (`setsid`), with stdin closed and output to a log file: a terminal closing, a Ctrl-C in the
//! shell or a test reading `lab up`'s output never reaches them. Stopping is by recorded PID,
//! after checking `/proc/<pid>/cmdline` still holds the word recorded at start (a path only
//! that lab uses), so a PID reused by an unrelated process is left alone.

use super::state::ProcessRecord;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting {what}: {err}")]
pub struct SpawnError {
    pub what: String,
    pub err: std::io::Error,
}

/// Starts `program args` inside namespace `ns` (`ip netns exec` keeps the PID: it execs the
/// program), detached, output appended to `log`.
pub fn spawn_in_netns(
    what: &str,
    ns: &str,
    program: &Path,
    args: &[OsString],
    log: &Path,
) -> Result<Child, SpawnError> {
    let fail = |err| SpawnError {
        what: what.to_string(),
        err,
    };
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| {
            fail(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", log.display()),
            ))
        })?;
    let err = out.try_clone().map_err(fail)?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(fail)?;
    tracing::debug!(what, ns, pid = child.id(), log = %log.display(), "started");
    Ok(child)
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the ")" that closes the command name (which may contain spaces).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// The command line of `pid`, one entry per argument.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the running `pid` is still the process the record describes.
pub fn is_ours(rec: &ProcessRecord) -> bool {
    alive(rec.pid) && cmdline(rec.pid).iter().any(|a| a == &rec.marker)
}

fn signal(pid: i32, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill(2) on one positive PID (never 0 or -1, which would mean groups).
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn wait_gone(pid: i32, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !alive(pid)
}

/// What stopping a recorded process did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    NotRunning,
    /// The PID now belongs to another program: not signalled.
    NotOurs(Vec<String>),
    Terminated,
    Killed,
    /// Still there after SIGKILL (stuck in the kernel).
    Survived,
}

/// SIGTERM, then SIGKILL after `grace`.
pub fn stop(rec: &ProcessRecord, grace: Duration) -> Stopped {
    stop_all(std::slice::from_ref(rec), grace)
        .pop()
        .unwrap_or(Stopped::NotRunning)
}

/// [`stop`] for several processes at once: all get SIGTERM together and share the grace
/// period, so a lab of many agents stops in one grace period, not one per agent.
pub fn stop_all(recs: &[ProcessRecord], grace: Duration) -> Vec<Stopped> {
    let mut out: Vec<Option<Stopped>> = recs
        .iter()
        .map(|r| {
            if !alive(r.pid) {
                Some(Stopped::NotRunning)
            } else if !is_ours(r) {
                Some(Stopped::NotOurs(cmdline(r.pid)))
            } else {
                tracing::debug!(pid = r.pid, "SIGTERM");
                signal(r.pid, libc::SIGTERM);
                None
            }
        })
        .collect();
    let pending = |out: &[Option<Stopped>]| -> Vec<usize> {
        (0..out.len())
            .filter(|&i| out[i].is_none() && alive(recs[i].pid))
            .collect()
    };
    let end = Instant::now() + grace;
    while Instant::now() < end && !pending(&out).is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stubborn = pending(&out);
    for (i, slot) in out.iter_mut().enumerate() {
        if slot.is_none() && !stubborn.contains(&i) {
            *slot = Some(Stopped::Terminated);
        }
    }
    for &i in &stubborn {
        // Checked again: the PID cannot be reused while the process exists, but it may
        // have exited just now.
        if is_ours(&recs[i]) {
            tracing::warn!(pid = recs[i].pid, "still running after SIGTERM: SIGKILL");
            signal(recs[i].pid, libc::SIGKILL);
        }
    }
    for &i in &stubborn {
        out[i] = Some(if wait_gone(recs[i].pid, Duration::from_secs(3)) {
            Stopped::Killed
        } else {
            Stopped::Survived
        });
    }
    out.into_iter()
        .map(|s| s.unwrap_or(Stopped::NotRunning))
        .collect()
}

/// The last `lines` lines of a log file (for failure messages).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read(path) else {
        return format!("({} cannot be read)", path.display());
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_whose_command_line_lacks_the_marker_is_not_signalled() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        wait_exec(child.id());
        let rec = ProcessRecord {
            pid: child.id() as i32,
            marker: "/run/tortie-lab/nobody/node1/state".into(),
        };
        let got = stop(&rec, Duration::from_millis(100));
        assert!(matches!(got, Stopped::NotOurs(_)), "{got:?}");
        assert!(alive(rec.pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits until the child has exec'd `sleep`: between fork and exec its command line is
    /// this test binary's, and for an instant during exec it reads empty.
    fn wait_exec(pid: u32) {
        for _ in 0..500 {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmd.starts_with(b"sleep\0") {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("sleep never started");
    }

    #[test]
    fn a_process_with_the_marker_is_terminated() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        wait_exec(child.id());
        let rec = ProcessRecord {
            pid: child.id() as i32,
            marker: "30".into(),
        };
        // Reap concurrently, as init would for a detached daemon.
        let reaper = std::thread::spawn(move || child.wait());
        assert_eq!(stop(&rec, Duration::from_secs(5)), Stopped::Terminated);
        reaper.join().unwrap().unwrap();
    }

    #[test]
    fn a_gone_pid_is_not_running() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        let rec = ProcessRecord {
            pid,
            marker: "true".into(),
        };
        assert_eq!(stop(&rec, Duration::from_millis(10)), Stopped::NotRunning);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let p = std::env::temp_dir().join(format!("tortie-lab-tail-{}", std::process::id()));
        std::fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&p, 2), "c\nd");
        std::fs::remove_file(&p).unwrap();
    }
}

//! Child processes stopped by PID, never by name.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Send `sig` to `pid` (must be > 0).
pub fn signal(pid: i32, sig: i32) -> Result<(), String> {
    assert!(pid > 0, "refusing to signal pid {pid}");
    // SAFETY: plain syscall with a positive pid (never 0 / -1 / a process group).
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Whether a process with this PID exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // state is the first field after the ")" closing comm
            let state = s
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// A daemon running in the foreground as our child. Dropping it stops it (SIGCONT +
/// SIGTERM, then SIGKILL after a grace period) and reaps it.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    pid: i32,
}

impl Proc {
    /// Spawn `cmd` with stdin from /dev/null and stdout+stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc, String> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("open {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {name} ({cmd:?}): {e}"))?;
        let pid = child.id() as i32;
        Ok(Proc {
            name: name.into(),
            child: Some(child),
            pid,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Still running (not exited; a SIGSTOPped process counts as running).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Exit status text if it has exited.
    pub fn exit_status(&mut self) -> Option<String> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|s| s.to_string())
    }

    /// Send a signal (only while the child is unreaped, so the PID is still ours).
    pub fn signal(&mut self, sig: i32) -> Result<(), String> {
        if self.child.is_none() {
            return Err(format!("{} (pid {}) already stopped", self.name, self.pid));
        }
        signal(self.pid, sig)
    }

    pub fn freeze(&mut self) -> Result<(), String> {
        self.signal(libc::SIGSTOP)
    }

    pub fn thaw(&mut self) -> Result<(), String> {
        self.signal(libc::SIGCONT)
    }

    /// SIGTERM (plus SIGCONT in case it is frozen), wait up to `grace`, then SIGKILL; reap.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = signal(self.pid, libc::SIGTERM);
            let _ = signal(self.pid, libc::SIGCONT);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// SIGKILL now and reap (a crash, as far as peers can tell).
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

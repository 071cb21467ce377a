//! The host-wide IPAM lock: one plugin process at a time allocates or releases on a node, as
//! Calico's CNI plugin holds `/var/run/calico/ipam.lock`.
//!
//! Every allocation is a compare-and-swap on the node's block, so concurrent plugins would be
//! correct without it, but fifty pods started at once would retry against each other for
//! seconds; taking turns costs each only its own few store writes. The lock is an advisory
//! `flock`, so a plugin that dies holding it releases it with its file descriptor; waiting is
//! bounded, and a timeout is a "try again later" for the runtime.

use super::result::{CniError, Code};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest wait for another plugin's turn.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Held while it lives.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

/// Waits for the lock at `path` (its directory is created when missing).
pub fn acquire(path: &Path, timeout: Duration) -> Result<HostLock, CniError> {
    let io = |what: &str, e: std::io::Error| {
        CniError::new(
            Code::Io,
            format!("IPAM lock {}: {what}: {e}", path.display()),
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("creating its directory", e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io("opening", e))?;
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(HostLock { _file: file });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.raw_os_error() != Some(libc::EINTR)
        {
            return Err(io("locking", err));
        }
        if Instant::now() >= deadline {
            return Err(CniError::new(
                Code::TryAgainLater,
                format!(
                    "another tortie-cni held the IPAM lock {} for over {} s",
                    path.display(),
                    timeout.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_makes_the_next_taker_wait_and_time_out() {
        let dir = std::env::temp_dir().join(format!("tortie-cni-lock-{}", std::process::id()));
        let path = dir.join("ipam.lock");
        let held = acquire(&path, TIMEOUT).unwrap();
        let e = acquire(&path, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.code, Code::TryAgainLater);
        drop(held);
        assert!(acquire(&path, Duration::from_millis(50)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

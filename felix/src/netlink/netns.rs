//! Which network namespace a socket or a sysctl write lives in.
//!
//! A netlink socket belongs to the namespace of the thread that *created* it, for its whole
//! life, whichever thread uses it later. `/proc/sys/net/...` resolves to the namespace of the
//! thread that *opens* the file. Both are therefore done by [`Netns::run`]: it starts a short-
//! lived thread, `setns(fd, CLONE_NEWNET)` on that thread only, runs the closure there and lets
//! the thread end. The caller's thread never changes namespace, so nothing has to be switched
//! back, and a multi-threaded tokio runtime is never left with a worker in the wrong
//! namespace (the gotcha of calling `setns` on a runtime thread).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::error::NlError;

/// Where named namespaces live (`ip netns add NAME` creates `/run/netns/NAME`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A network namespace: the caller's own, or one named by a namespace file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Netns {
    /// The namespace of the calling thread.
    Current,
    /// A bind-mounted namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`).
    Path(PathBuf),
}

impl Netns {
    /// The caller's namespace.
    pub fn current() -> Netns {
        Netns::Current
    }

    /// `/run/netns/NAME`, as `ip netns add NAME` makes it. The name must be a single path
    /// component.
    pub fn named(name: &str) -> Result<Netns, NlError> {
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains('\0')
        {
            return Err(NlError::Invalid(format!(
                "bad network namespace name {name:?}"
            )));
        }
        Ok(Netns::Path(Path::new(NETNS_RUN_DIR).join(name)))
    }

    /// A namespace file at any path.
    pub fn path(path: impl Into<PathBuf>) -> Netns {
        Netns::Path(path.into())
    }

    /// Run `f` inside this namespace and return its result.
    ///
    /// For [`Netns::Current`] `f` runs inline. Otherwise it runs on a fresh thread that entered
    /// the namespace; the calling thread is untouched. A panic in `f` is propagated.
    pub fn run<T, F>(&self, f: F) -> Result<T, NlError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let path = match self {
            Netns::Current => return Ok(f()),
            Netns::Path(p) => p,
        };
        let file = File::open(path).map_err(|source| NlError::Netns {
            path: path.clone(),
            source,
        })?;
        let joined = std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("tortie-netns".into())
                .spawn_scoped(scope, move || {
                    // SAFETY: `setns` only changes the network namespace of this thread, which
                    // exists only to run `f`; the fd is valid for the duration of the call.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(f())
                })
                .map_err(|source| NlError::Netns {
                    path: path.clone(),
                    source,
                })?;
            Ok::<_, NlError>(handle.join())
        })?;
        match joined {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(NlError::Netns {
                path: path.clone(),
                source,
            }),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Netns::Current => write!(f, "current namespace"),
            Netns::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

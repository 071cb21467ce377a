//! The load tool: BGP sessions from many 127/8 addresses, written with tortie's codec.
//! [`feeder`]s announce and withdraw, [`monitor`]s count what the target hands on,
//! [`session`] is the OPEN exchange and socket plumbing both share, and [`sink`] measures the
//! tool's own ceiling so a slow tool is never mistaken for a slow target.

pub mod feeder;
pub mod monitor;
pub mod session;
pub mod sink;

/// Raises the open-file limit to its hard maximum: thousands of sessions need thousands of
/// descriptors here and in the targets, which inherit the limit.
pub fn raise_nofile() -> Result<u64, crate::error::BenchError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return Err(crate::error::BenchError::io(
            "getrlimit(RLIMIT_NOFILE)",
            std::io::Error::last_os_error(),
        ));
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc != 0 {
        return Err(crate::error::BenchError::io(
            "setrlimit(RLIMIT_NOFILE)",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(lim.rlim_cur)
}

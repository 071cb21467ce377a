//! Opening the socket: created and bound on a helper thread inside the target namespace
//! ([`Netns::run`]), its buffers and netlink options set, and the batch limits derived from the
//! buffer sizes the kernel actually granted.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{MAX_MESSAGE, NlSocket, SocketConfig, SocketStats};
use crate::netlink::error::NlError;
use crate::netlink::netns::Netns;

const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;

/// Receive buffer for one datagram. Dump replies are at most 32 KiB per datagram.
const RECV_BUF: usize = 128 * 1024;

pub(crate) fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: valid fd, pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, pointers to a live c_int and its length.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A NETLINK_ROUTE socket in the calling thread's namespace, bound to a port the kernel
/// picks; `flags` are added to `SOCK_RAW | SOCK_CLOEXEC` (the monitor's `SOCK_NONBLOCK`).
pub(crate) fn bound_route_socket(flags: libc::c_int) -> Result<OwnedFd, NlError> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(NlError::socket("socket")(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value (port 0: kernel picks).
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: pointer to a live sockaddr_nl and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(NlError::socket("bind")(io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Sets a socket buffer to `want` bytes: the `force` option past `net.core.[rw]mem_max`, or,
/// without CAP_NET_ADMIN, the `plain` one as far as that limit allows.
pub(crate) fn set_buffer(
    fd: &OwnedFd,
    force: libc::c_int,
    plain: libc::c_int,
    want: usize,
) -> io::Result<()> {
    let want = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
    setsockopt_int(fd, libc::SOL_SOCKET, force, want)
        .or_else(|_| setsockopt_int(fd, libc::SOL_SOCKET, plain, want))
}

/// Create, bind and tune the socket in the calling thread's namespace.
fn open_here(cfg: &SocketConfig) -> Result<(OwnedFd, u32), NlError> {
    let fd = bound_route_socket(0)?;
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: pointer to a live sockaddr_nl and its length.
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_nl).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(NlError::socket("getsockname")(io::Error::last_os_error()));
    }
    for (force, plain) in [
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
    ] {
        set_buffer(&fd, force, plain, cfg.buffer_bytes)
            .map_err(NlError::socket("SO_SNDBUF/SO_RCVBUF"))?;
    }
    for opt in [NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK] {
        setsockopt_int(&fd, libc::SOL_NETLINK, opt, 1)
            .map_err(NlError::socket("NETLINK_*_ACK/STRICT_CHK"))?;
    }
    let tv = libc::timeval {
        tv_sec: cfg.recv_timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_usec: libc::suseconds_t::from(cfg.recv_timeout.subsec_micros() as i32),
    };
    // SAFETY: pointer to a live timeval and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(NlError::socket("SO_RCVTIMEO")(io::Error::last_os_error()));
    }
    Ok((fd, addr.nl_pid))
}

impl NlSocket {
    /// Open a socket inside `netns` (see [`Netns::run`]); it stays there for its life.
    pub(crate) fn open(netns: &Netns, cfg: &SocketConfig) -> Result<NlSocket, NlError> {
        let (fd, port) = netns.run(|| open_here(cfg))??;
        let sndbuf = getsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF)
            .map_err(NlError::socket("SO_SNDBUF"))?;
        let rcvbuf = getsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF)
            .map_err(NlError::socket("SO_RCVBUF"))?;
        let sndbuf = usize::try_from(sndbuf).unwrap_or(0);
        let rcvbuf = usize::try_from(rcvbuf).unwrap_or(0);
        // netlink_sendmsg: len must not exceed sk_sndbuf - 32.
        let max_batch_bytes = sndbuf.saturating_sub(64).max(MAX_MESSAGE + 4096);
        let max_batch_messages =
            (rcvbuf / cfg.error_reply_budget.max(1)).clamp(1, cfg.max_batch_messages.max(1));
        Ok(NlSocket {
            fd,
            port,
            seq: 1,
            rbuf: vec![0u8; RECV_BUF],
            sbuf: Vec::with_capacity(max_batch_bytes.min(8 << 20)),
            max_batch_bytes,
            max_batch_messages,
            ack_every_message: cfg.ack_every_message,
            recv_timeout: cfg.recv_timeout,
            stats: SocketStats::default(),
        })
    }
}

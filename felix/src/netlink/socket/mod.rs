//! The netlink socket: message framing, batched writes with bulk acknowledgements, dumps.
//!
//! # Why not one request at a time
//! The kernel handles every `RTM_NEWROUTE` synchronously inside `sendmsg`, so pipelining
//! requests gains nothing; what costs is the per-message work around it. A batch here is
//! written as few large `sendmsg` calls as the socket buffer allows (thousands of
//! messages concatenated in one buffer). Only the last message of each buffer asks for an
//! acknowledgement (`NLM_F_ACK`); the kernel answers every *failed* message with an error
//! anyway, whatever its flags, and it handles the messages of a buffer in order. So once the
//! ack of the last message arrives, every error of that buffer has arrived before it, each
//! carrying the sequence number of the message it refers to. Successful messages cost no
//! reply skb and no `recv`. (`ack_every_message` restores one ack per message, for
//! comparison.)
//!
//! # Limits that shape a batch
//! * `sendmsg` rejects a buffer larger than the socket's send buffer (`EMSGSIZE`), so the
//!   socket asks for a large one with `SO_SNDBUFFORCE` (root) and falls back to `SO_SNDBUF`.
//! * Replies are queued to the receive buffer while `sendmsg` runs; if it fills, replies are
//!   dropped and the next `recv` fails with `ENOBUFS`. A buffer therefore holds at most as many
//!   messages as the receive buffer has room for error replies (the worst case: all fail).
//!   An overrun is still handled: the outcome of the affected messages is reported as
//!   *unconfirmed* rather than guessed.
//! * `NETLINK_CAP_ACK` keeps error replies small (no copy of the request), `NETLINK_EXT_ACK`
//!   adds the kernel's reason text, `NETLINK_GET_STRICT_CHK` lets dumps filter in the kernel
//!   (by protocol and table for routes).
//!
//! Every reply is validated: lengths against the datagram, the sender (the kernel, port 0),
//! sequence numbers against the request; anything else is a typed error, never a panic.
//!
//! # Where things are
//! Framing and parsing of messages is `frame.rs`; creating and tuning the socket in a namespace,
//! `open.rs`; batched writes and their acknowledgements, `batch.rs`; dumps and single requests,
//! `request.rs`. This file holds the socket itself, its settings and counters, and the plain
//! send and receive every exchange goes through.

mod batch;
mod frame;
mod open;
pub(crate) use open::{bound_route_socket, set_buffer, setsockopt_int};
mod request;

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::error::NlError;

pub use batch::BatchReport;
pub(crate) use frame::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, align4, push_message};

/// Room kept free at the end of a send buffer for the next message (an attribute is at most
/// 64 KiB, and no message built here comes close).
const MAX_MESSAGE: usize = 64 * 1024;
/// What one error reply costs in the receive buffer (skb truesize, generous).
const ERROR_REPLY_COST: usize = 2048;

/// Counters of what a socket sent; tests use them to prove that "nothing changed" means
/// "nothing written".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Netlink messages sent, requests and dumps included.
    pub messages: u64,
    /// Messages that change kernel state (everything but dump and get requests).
    pub writes: u64,
    /// `sendmsg` calls.
    pub sendmsg_calls: u64,
}

/// Socket tuning. The defaults suit a node agent running as root.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    /// Requested send and receive buffer size in bytes (`SO_*BUFFORCE`; the kernel doubles it).
    pub buffer_bytes: usize,
    /// Upper bound of messages per `sendmsg` (further bounded by the receive buffer).
    pub max_batch_messages: usize,
    /// How long to wait for a reply before giving up with [`NlError::Timeout`].
    pub recv_timeout: Duration,
    /// Ask for an acknowledgement of every message instead of only the last one per buffer.
    pub ack_every_message: bool,
    /// Receive-buffer bytes budgeted per error reply when sizing a buffer of messages (the
    /// worst case is every message failing). Lower values risk overruns, which are then
    /// reported as [`BatchReport::unconfirmed`].
    pub error_reply_budget: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            buffer_bytes: 16 << 20,
            max_batch_messages: 8192,
            recv_timeout: Duration::from_secs(10),
            ack_every_message: false,
            error_reply_budget: ERROR_REPLY_COST,
        }
    }
}

/// A `NETLINK_ROUTE` socket bound in one namespace.
pub(crate) struct NlSocket {
    fd: OwnedFd,
    port: u32,
    seq: u32,
    rbuf: Vec<u8>,
    sbuf: Vec<u8>,
    max_batch_bytes: usize,
    max_batch_messages: usize,
    ack_every_message: bool,
    recv_timeout: Duration,
    pub(crate) stats: SocketStats,
}

impl NlSocket {
    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn send(&mut self, buf: &[u8]) -> Result<(), NlError> {
        loop {
            // SAFETY: valid fd; the pointer and length describe `buf`.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NlError::socket("sendmsg")(e));
            }
            self.stats.sendmsg_calls += 1;
            if n as usize != buf.len() {
                return Err(NlError::Malformed(format!(
                    "short netlink send: {n} of {} bytes",
                    buf.len()
                )));
            }
            return Ok(());
        }
    }

    /// Receive one datagram into `rbuf`; returns its length. `nonblocking` polls.
    fn recv(&mut self, nonblocking: bool) -> Result<usize, io::Error> {
        loop {
            // SAFETY: sockaddr_nl is plain old data.
            let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
            let mut from_len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            let flags = libc::MSG_TRUNC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
            // SAFETY: valid fd; `rbuf` is a live buffer of the given length; `from` is a live
            // sockaddr_nl of the given length.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.rbuf.as_mut_ptr().cast(),
                    self.rbuf.len(),
                    flags,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            if n > self.rbuf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("netlink datagram of {n} bytes truncated"),
                ));
            }
            if from.nl_pid != 0 {
                // Not from the kernel; rtnetlink does not let unprivileged peers send to us,
                // but never trust it.
                continue;
            }
            return Ok(n);
        }
    }

    fn recv_err(&self, e: io::Error) -> NlError {
        match e.raw_os_error() {
            Some(libc::EAGAIN) => NlError::Timeout(self.recv_timeout),
            Some(libc::ENOBUFS) => NlError::Overrun(1),
            _ if e.kind() == io::ErrorKind::InvalidData => NlError::Malformed(e.to_string()),
            _ => NlError::socket("recvmsg")(e),
        }
    }

    /// Our netlink port id.
    #[allow(dead_code)]
    pub(crate) fn port(&self) -> u32 {
        self.port
    }
}

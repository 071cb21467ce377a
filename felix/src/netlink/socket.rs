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

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::error::{KernelError, NlError, OpError, OpFailure};
use super::netns::Netns;

pub(crate) const NLMSG_HDRLEN: usize = 16;

pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;

pub(crate) const NLM_F_REQUEST: u16 = 0x01;
pub(crate) const NLM_F_MULTI: u16 = 0x02;
pub(crate) const NLM_F_ACK: u16 = 0x04;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// In an error reply: the copy of the request was cut to its header (`NETLINK_CAP_ACK`).
const NLM_F_CAPPED: u16 = 0x100;
/// In an error reply: extended-ACK attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;

/// Receive buffer for one datagram. Dump replies are at most 32 KiB per datagram.
const RECV_BUF: usize = 128 * 1024;
/// Room kept free at the end of a send buffer for the next message (an attribute is at most
/// 64 KiB, and no message built here comes close).
const MAX_MESSAGE: usize = 64 * 1024;
/// What one error reply costs in the receive buffer (skb truesize, generous).
const ERROR_REPLY_COST: usize = 2048;
/// Dumps interrupted by concurrent changes (`NLM_F_DUMP_INTR`) are restarted this often.
const DUMP_ATTEMPTS: usize = 5;

/// Round up to netlink's 4-byte alignment.
pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

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

/// Outcome of one batch: which messages failed and why, and what it cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Operations the caller passed.
    pub ops: usize,
    /// The failed ones, in the order they were reported (ascending index).
    pub failures: Vec<OpFailure>,
    /// Operations whose outcome is unknown because replies were lost to a receive-queue
    /// overrun. Empty in practice; when not, re-dump.
    pub unconfirmed: Vec<usize>,
    /// `sendmsg` calls used.
    pub sendmsg_calls: usize,
    /// Bytes sent.
    pub bytes: usize,
}

impl BatchReport {
    /// Every operation took effect.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty() && self.unconfirmed.is_empty()
    }

    /// Operations known to have taken effect.
    pub fn succeeded(&self) -> usize {
        self.ops
            .saturating_sub(self.failures.len() + self.unconfirmed.len())
    }

    pub(crate) fn merge(&mut self, offset: usize, other: BatchReport) {
        self.ops += other.ops;
        self.failures
            .extend(other.failures.into_iter().map(|mut f| {
                f.index += offset;
                f
            }));
        self.unconfirmed
            .extend(other.unconfirmed.into_iter().map(|i| i + offset));
        self.sendmsg_calls += other.sendmsg_calls;
        self.bytes += other.bytes;
    }
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

/// One netlink message inside a received datagram (header fields and payload).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Iterate the messages of a datagram, validating each header.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Msg<'_>, NlError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let hdr = match rest.get(..NLMSG_HDRLEN) {
            Some(h) => h,
            None => {
                let n = rest.len();
                rest = &[];
                return Some(Err(NlError::Malformed(format!(
                    "{n} trailing bytes, shorter than a header"
                ))));
            }
        };
        let len = u32_ne(hdr, 0) as usize;
        let ty = u16_ne(hdr, 4);
        let flags = u16_ne(hdr, 6);
        let seq = u32_ne(hdr, 8);
        if len < NLMSG_HDRLEN || len > rest.len() {
            let n = rest.len();
            rest = &[];
            return Some(Err(NlError::Malformed(format!(
                "message length {len} with {n} bytes left"
            ))));
        }
        let payload = rest.get(NLMSG_HDRLEN..len).unwrap_or(&[]);
        rest = rest.get(align4(len).min(rest.len())..).unwrap_or(&[]);
        Some(Ok(Msg {
            ty,
            flags,
            seq,
            payload,
        }))
    })
}

fn u16_ne(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_ne_bytes)
        .unwrap_or(0)
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0)
}

/// A `struct nlmsghdr` (port 0: the kernel fills in ours).
fn header(len: u32, ty: u16, flags: u16, seq: u32) -> [u8; NLMSG_HDRLEN] {
    let (l, t, f, s) = (
        len.to_ne_bytes(),
        ty.to_ne_bytes(),
        flags.to_ne_bytes(),
        seq.to_ne_bytes(),
    );
    [
        l[0], l[1], l[2], l[3], t[0], t[1], f[0], f[1], s[0], s[1], s[2], s[3], 0, 0, 0, 0,
    ]
}

/// Append one framed message: header, then the payload `payload` writes (it returns the
/// message type and flags), then padding. `NLM_F_REQUEST` and `extra_flags` are added to the
/// flags. Returns the offset of the message in `buf`; on error `buf` is left as it was.
pub(crate) fn push_message<E>(
    buf: &mut Vec<u8>,
    seq: u32,
    extra_flags: u16,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(u16, u16), E>,
) -> Result<usize, E> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
    let (ty, flags) = match payload(buf) {
        Ok(k) => k,
        Err(e) => {
            buf.truncate(start);
            return Err(e);
        }
    };
    let len = buf.len() - start;
    buf.resize(start + align4(len), 0);
    let hdr = header(len as u32, ty, flags | NLM_F_REQUEST | extra_flags, seq);
    if let Some(h) = buf.get_mut(start..start + NLMSG_HDRLEN) {
        h.copy_from_slice(&hdr);
    }
    Ok(start)
}

/// Append one framed message with a ready payload.
pub(crate) fn push_bytes(
    buf: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    payload: &[u8],
) -> usize {
    let r: Result<usize, std::convert::Infallible> = push_message(buf, seq, 0, |b| {
        b.extend_from_slice(payload);
        Ok((ty, flags))
    });
    r.unwrap_or_else(|never| match never {})
}

/// Decode an `NLMSG_ERROR` payload: `Ok(None)` for an acknowledgement, `Ok(Some(e))` for a
/// refusal (with the extended-ACK text when present).
pub(crate) fn parse_error(msg: &Msg<'_>) -> Result<Option<KernelError>, NlError> {
    let p = msg.payload;
    let code = p
        .get(0..4)
        .and_then(|s| s.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or_else(|| NlError::Malformed(format!("error message of {} bytes", p.len())))?;
    if code == 0 {
        return Ok(None);
    }
    let mut message = None;
    if msg.flags & NLM_F_ACK_TLVS != 0 {
        // The copy of the request: its header only when capped, else all of it.
        let orig_len = u32_ne(p, 4) as usize;
        let tlv_start = if msg.flags & NLM_F_CAPPED != 0 {
            4 + NLMSG_HDRLEN
        } else {
            4 + align4(orig_len)
        };
        let mut tlvs = p.get(tlv_start..).unwrap_or(&[]);
        while tlvs.len() >= 4 {
            let len = u16_ne(tlvs, 0) as usize;
            let kind = u16_ne(tlvs, 2) & 0x3fff;
            if len < 4 || len > tlvs.len() {
                break;
            }
            if kind == NLMSGERR_ATTR_MSG {
                let raw = tlvs.get(4..len).unwrap_or(&[]);
                let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
                message = Some(String::from_utf8_lossy(raw).into_owned());
            }
            tlvs = tlvs.get(align4(len).min(tlvs.len())..).unwrap_or(&[]);
        }
    }
    Ok(Some(KernelError {
        errno: code.checked_neg().unwrap_or(i32::MAX),
        message,
    }))
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

fn setsockopt_int(
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

/// Create, bind and tune the socket in the calling thread's namespace.
fn open_here(cfg: &SocketConfig) -> Result<(OwnedFd, u32), NlError> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
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
    let want = libc::c_int::try_from(cfg.buffer_bytes).unwrap_or(libc::c_int::MAX);
    for (force, plain) in [
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
    ] {
        if setsockopt_int(&fd, libc::SOL_SOCKET, force, want).is_err() {
            // Without CAP_NET_ADMIN: whatever net.core.[rw]mem_max allows.
            setsockopt_int(&fd, libc::SOL_SOCKET, plain, want)
                .map_err(NlError::socket("SO_SNDBUF/SO_RCVBUF"))?;
        }
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

    /// Write `count` messages as a batch. `encode(i, buf)` appends the payload of message `i`
    /// and returns its type and flags (without `NLM_F_REQUEST`/`NLM_F_ACK`), or a reason why it
    /// cannot be encoded (reported as [`OpError::Invalid`], the rest still goes out).
    pub(crate) fn write_batch<F>(
        &mut self,
        count: usize,
        mut encode: F,
    ) -> Result<BatchReport, NlError>
    where
        F: FnMut(usize, &mut Vec<u8>) -> Result<(u16, u16), String>,
    {
        let mut report = BatchReport {
            ops: count,
            ..BatchReport::default()
        };
        let mut sbuf = mem::take(&mut self.sbuf);
        let result = (|| {
            let mut next = 0usize;
            // (op index, offset in sbuf) of the messages in the current buffer.
            let mut chunk: Vec<(usize, usize)> = Vec::new();
            while next < count {
                sbuf.clear();
                chunk.clear();
                let first_seq = self.seq;
                while next < count
                    && chunk.len() < self.max_batch_messages
                    && sbuf.len() + MAX_MESSAGE <= self.max_batch_bytes
                {
                    let seq = first_seq.wrapping_add(chunk.len() as u32);
                    let ack = if self.ack_every_message { NLM_F_ACK } else { 0 };
                    match push_message(&mut sbuf, seq, ack, |b| encode(next, b)) {
                        Ok(off) => chunk.push((next, off)),
                        Err(reason) => report.failures.push(OpFailure {
                            index: next,
                            error: OpError::Invalid(reason),
                        }),
                    }
                    next += 1;
                }
                let Some(&(_, last_off)) = chunk.last() else {
                    continue;
                };
                // The last message of the buffer always asks for an ack: its reply closes the
                // buffer.
                if let Some(h) = sbuf.get_mut(last_off + 6..last_off + 8) {
                    if let Ok(raw) = <[u8; 2]>::try_from(&*h) {
                        h.copy_from_slice(&(u16::from_ne_bytes(raw) | NLM_F_ACK).to_ne_bytes());
                    }
                }
                self.seq = first_seq.wrapping_add(chunk.len() as u32);
                self.send(&sbuf)?;
                self.stats.messages += chunk.len() as u64;
                self.stats.writes += chunk.len() as u64;
                report.sendmsg_calls += 1;
                report.bytes += sbuf.len();
                self.collect_acks(first_seq, &chunk, &mut report)?;
            }
            Ok(())
        })();
        self.sbuf = sbuf;
        result?;
        report.failures.sort_by_key(|f| f.index);
        Ok(report)
    }

    /// Read the replies to one sent buffer until the last message's ack.
    fn collect_acks(
        &mut self,
        first_seq: u32,
        chunk: &[(usize, usize)],
        report: &mut BatchReport,
    ) -> Result<(), NlError> {
        let n = chunk.len();
        let mut replied = vec![false; n];
        let mut overrun = false;
        let mut done = false;
        while !done {
            let len = match self.recv(overrun) {
                Ok(len) => len,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    overrun = true;
                    continue;
                }
                Err(e) if overrun && e.raw_os_error() == Some(libc::EAGAIN) => break,
                Err(e) => return Err(self.recv_err(e)),
            };
            let Some(data) = self.rbuf.get(..len) else {
                break;
            };
            for msg in messages(data) {
                let msg = msg?;
                let off = msg.seq.wrapping_sub(first_seq) as usize;
                if off >= n {
                    continue; // a late reply to an earlier request
                }
                match msg.ty {
                    NLMSG_ERROR => {
                        if let Some(r) = replied.get_mut(off) {
                            *r = true;
                        }
                        if let Some(err) = parse_error(&msg)? {
                            if let Some(&(index, _)) = chunk.get(off) {
                                report.failures.push(OpFailure {
                                    index,
                                    error: OpError::Rejected(err),
                                });
                            }
                        }
                        if off == n - 1 {
                            done = true;
                        }
                    }
                    NLMSG_OVERRUN => overrun = true,
                    _ => {}
                }
            }
        }
        if overrun {
            // Some replies were dropped: a message whose reply we did not see may have failed
            // (or, without per-message acks, succeeded); its outcome is unknown.
            for (pos, &(index, _)) in chunk.iter().enumerate() {
                if !replied.get(pos).copied().unwrap_or(false) {
                    report.unconfirmed.push(index);
                }
            }
        }
        Ok(())
    }

    /// Send a dump request and collect what `parse` makes of each reply message (`None`:
    /// skip it). Restarted when the kernel flags the dump as interrupted by a change.
    pub(crate) fn dump<T>(
        &mut self,
        ty: u16,
        payload: &[u8],
        mut parse: impl FnMut(u16, &[u8]) -> Result<Option<T>, NlError>,
    ) -> Result<Vec<T>, NlError> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            let mut buf = Vec::with_capacity(NLMSG_HDRLEN + payload.len() + 4);
            push_bytes(&mut buf, ty, NLM_F_DUMP, seq, payload);
            self.send(&buf)?;
            self.stats.messages += 1;
            let mut out = Vec::new();
            let mut interrupted = false;
            // A message `parse` rejects is reported after the dump has been read to its end:
            // a dump left half-read would make the socket's next dump fail with EBUSY.
            let mut rejected = None;
            'recv: loop {
                let len = self.recv(false).map_err(|e| self.recv_err(e))?;
                let Some(data) = self.rbuf.get(..len) else {
                    break;
                };
                for msg in messages(data) {
                    let msg = msg?;
                    if msg.seq != seq {
                        continue;
                    }
                    if msg.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match msg.ty {
                        NLMSG_DONE => {
                            // The payload may carry an error code (e.g. a dump that failed late).
                            let code = msg
                                .payload
                                .get(0..4)
                                .and_then(|s| s.try_into().ok())
                                .map(i32::from_ne_bytes)
                                .unwrap_or(0);
                            if code < 0 {
                                return Err(NlError::Kernel {
                                    what: format!("dump (message type {ty})"),
                                    error: KernelError {
                                        errno: code.checked_neg().unwrap_or(i32::MAX),
                                        message: None,
                                    },
                                });
                            }
                            break 'recv;
                        }
                        NLMSG_ERROR => match parse_error(&msg)? {
                            Some(error) => {
                                return Err(NlError::Kernel {
                                    what: format!("dump (message type {ty})"),
                                    error,
                                });
                            }
                            None => break 'recv,
                        },
                        NLMSG_NOOP | NLMSG_OVERRUN => {}
                        t => match parse(t, msg.payload) {
                            Ok(Some(v)) => out.push(v),
                            Ok(None) => {}
                            Err(e) => {
                                rejected.get_or_insert(e);
                            }
                        },
                    }
                    if msg.flags & NLM_F_MULTI == 0 {
                        break 'recv;
                    }
                }
            }
            if let Some(e) = rejected {
                return Err(e);
            }
            if !interrupted {
                return Ok(out);
            }
            tracing::debug!(
                ty,
                "netlink dump interrupted by a concurrent change; restarting"
            );
        }
        Err(NlError::Malformed(format!(
            "dump (message type {ty}) interrupted {DUMP_ATTEMPTS} times in a row"
        )))
    }

    /// Send one request with `NLM_F_ACK` and return the payloads of its non-ack replies (for a
    /// "get" these are the answer). A refusal becomes [`NlError::Kernel`] with `what`.
    pub(crate) fn request(
        &mut self,
        ty: u16,
        flags: u16,
        payload: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<Vec<(u16, Vec<u8>)>, NlError> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(NLMSG_HDRLEN + payload.len() + 4);
        push_bytes(&mut buf, ty, flags | NLM_F_ACK, seq, payload);
        self.send(&buf)?;
        self.stats.messages += 1;
        if !is_get(ty) {
            self.stats.writes += 1;
        }
        let mut out = Vec::new();
        loop {
            let len = self.recv(false).map_err(|e| self.recv_err(e))?;
            let Some(data) = self.rbuf.get(..len) else {
                break;
            };
            for msg in messages(data) {
                let msg = msg?;
                if msg.seq != seq {
                    continue;
                }
                match msg.ty {
                    NLMSG_ERROR => {
                        return match parse_error(&msg)? {
                            None => Ok(out),
                            Some(error) => Err(NlError::Kernel {
                                what: what(),
                                error,
                            }),
                        };
                    }
                    NLMSG_DONE | NLMSG_NOOP | NLMSG_OVERRUN => {}
                    t => out.push((t, msg.payload.to_vec())),
                }
            }
        }
        Err(NlError::Malformed("reply datagram vanished".into()))
    }

    /// Our netlink port id.
    #[allow(dead_code)]
    pub(crate) fn port(&self) -> u32 {
        self.port
    }
}

/// `RTM_GET*` message types are `RTM_BASE + 4k + 2`.
fn is_get(ty: u16) -> bool {
    ty >= 16 && (ty - 16) % 4 == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trip() {
        let mut buf = Vec::new();
        push_bytes(&mut buf, 24, NLM_F_CREATE, 7, &[1, 2, 3, 4, 5]);
        push_message(&mut buf, 8, NLM_F_ACK, |b| {
            b.extend_from_slice(&[9; 8]);
            Ok::<_, ()>((25, 0))
        })
        .unwrap();
        assert_eq!(buf.len(), 24 + 24);
        let msgs: Vec<_> = messages(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (msgs[0].ty, msgs[0].seq, msgs[0].payload),
            (24, 7, &[1u8, 2, 3, 4, 5][..])
        );
        assert_eq!(msgs[0].flags, NLM_F_CREATE | NLM_F_REQUEST);
        assert_eq!((msgs[1].ty, msgs[1].seq, msgs[1].payload.len()), (25, 8, 8));
        assert_eq!(msgs[1].flags, NLM_F_ACK | NLM_F_REQUEST);
    }

    #[test]
    fn failed_payload_leaves_no_trace() {
        let mut buf = vec![1, 2, 3, 4];
        let r = push_message(&mut buf, 1, 0, |b| {
            b.push(7);
            Err::<(u16, u16), _>("nope")
        });
        assert_eq!(r, Err("nope"));
        assert_eq!(buf, vec![1, 2, 3, 4]);
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        for bad in [
            &[1u8, 2, 3][..],
            &[100, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            let r: Result<Vec<_>, _> = messages(bad).collect();
            assert!(matches!(r, Err(NlError::Malformed(_))), "{bad:?}");
        }
        // An error message too short for its code.
        let msg = Msg {
            ty: NLMSG_ERROR,
            flags: 0,
            seq: 1,
            payload: &[1, 2],
        };
        assert!(matches!(parse_error(&msg), Err(NlError::Malformed(_))));
    }

    #[test]
    fn error_with_extended_ack() {
        // code -EEXIST, capped copy of the request header, then NLMSGERR_ATTR_MSG.
        let mut p = Vec::new();
        p.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        p.extend_from_slice(&[0u8; 16]);
        let text = b"File exists here\0";
        p.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        let msg = Msg {
            ty: NLMSG_ERROR,
            flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
            seq: 1,
            payload: &p,
        };
        let e = parse_error(&msg).unwrap().unwrap();
        assert_eq!(e.errno, libc::EEXIST);
        assert_eq!(e.message.as_deref(), Some("File exists here"));
        let ack = Msg {
            ty: NLMSG_ERROR,
            flags: 0,
            seq: 1,
            payload: &[0, 0, 0, 0],
        };
        assert_eq!(parse_error(&ack).unwrap(), None);
    }

    #[test]
    fn get_types() {
        assert!(is_get(18) && is_get(22) && is_get(26) && is_get(30) && is_get(106));
        assert!(!is_get(24) && !is_get(25) && !is_get(104) && !is_get(16));
    }
}

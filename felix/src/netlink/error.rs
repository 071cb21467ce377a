//! Errors of the kernel interface, typed by whose fault they are.
//!
//! Four parties can be at fault when talking to the kernel, and the caller reacts differently
//! to each, so [`NlError::fault`] says which one:
//! * the **caller** asked for something that cannot be expressed (an IPv4 prefix via an IPv6
//!   gateway, a prefix with host bits set, an empty ECMP group): fix the desired state;
//! * the **kernel** refused a well-formed request (`EEXIST`, `ENETUNREACH`, `ENODEV`...): the
//!   kernel's state disagrees with ours; re-dump and retry later;
//! * the **environment** is not as required (the namespace file is missing, the `ipip` module
//!   is not loaded, no `CAP_NET_ADMIN`): an operator has to act;
//! * a **reply** broke the netlink protocol (truncated, unknown framing): a bug here or in the
//!   kernel; the connection is suspect and should be reopened.
//!
//! Per-message failures inside a batch are not [`NlError`]s: they are [`OpFailure`]s in a
//! [`BatchReport`](super::BatchReport), so one bad route never hides the others.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Who has to act on an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request itself is invalid; retrying it unchanged will fail again.
    Caller,
    /// The kernel refused a valid request given its current state.
    Kernel,
    /// The host is not set up as required (namespace, module, privileges).
    Environment,
    /// A reply could not be understood: a protocol or parser bug.
    Protocol,
}

/// The kernel's refusal of one netlink request: the errno and, when the kernel gave one
/// (extended ACK, `NETLINK_EXT_ACK`), its human-readable reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    /// Positive errno (`libc::EEXIST`, ...).
    pub errno: i32,
    /// The extended-ACK message, e.g. "Nexthop has invalid gateway".
    pub message: Option<String>,
}

impl KernelError {
    /// The errno as an [`io::Error`] (for its `kind()` and text).
    pub fn io(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.io())?;
        if let Some(m) = &self.message {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

/// Why one message of a batch did not take effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpError {
    /// The caller's request could not be encoded (never sent).
    Invalid(String),
    /// The kernel answered this message with an error.
    Rejected(KernelError),
}

impl OpError {
    /// Whose fault: [`Fault::Caller`] or [`Fault::Kernel`].
    pub fn fault(&self) -> Fault {
        match self {
            OpError::Invalid(_) => Fault::Caller,
            OpError::Rejected(_) => Fault::Kernel,
        }
    }

    /// The errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            OpError::Invalid(_) => None,
            OpError::Rejected(k) => Some(k.errno),
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Invalid(m) => write!(f, "invalid request: {m}"),
            OpError::Rejected(k) => write!(f, "kernel refused: {k}"),
        }
    }
}

/// One failed message of a batch: its index in the caller's slice, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpFailure {
    /// Index into the operations the caller passed.
    pub index: usize,
    pub error: OpError,
}

/// Errors of the kernel interface. See the module docs for the fault classes.
#[derive(Debug, thiserror::Error)]
pub enum NlError {
    /// Caller: the request cannot be expressed.
    #[error("invalid request: {0}")]
    Invalid(String),

    /// Kernel: a single (non-batched) request was refused.
    #[error("kernel refused {what}: {error}")]
    Kernel { what: String, error: KernelError },

    /// Caller or kernel state: a link looked up by name does not exist.
    #[error("no link named {0:?}")]
    NoSuchLink(String),

    /// Environment: the namespace file cannot be opened or entered.
    #[error("network namespace {}: {source}", path.display())]
    Netns { path: PathBuf, source: io::Error },

    /// Environment: a device needs a kernel module that is not loaded, and this process cannot
    /// load it.
    #[error(
        "{device} needs the kernel module `{module}`, which is not loaded \
         (no /sys/module/{module}); load it on the host (`modprobe {module}`) \
         or use VXLAN encapsulation instead"
    )]
    MissingModule {
        module: &'static str,
        device: &'static str,
    },

    /// Environment: a sysctl file could not be read or written.
    #[error("sysctl {}: {source}", path.display())]
    Sysctl { path: PathBuf, source: io::Error },

    /// Environment: a system call on the netlink socket failed (no privileges, no memory...).
    #[error("netlink socket: {op}: {source}")]
    Socket { op: &'static str, source: io::Error },

    /// Protocol: the kernel did not answer within the socket's receive timeout.
    #[error("netlink: no reply from the kernel within {0:?}")]
    Timeout(std::time::Duration),

    /// Protocol: the receive queue overflowed, so acknowledgements were lost; the outcome of
    /// some requests is unknown and the caller must re-dump.
    #[error("netlink: receive queue overrun (ENOBUFS), {0} replies lost; re-dump to resynchronise")]
    Overrun(usize),

    /// Protocol: a reply could not be parsed or violated the netlink framing.
    #[error("malformed netlink reply: {0}")]
    Malformed(String),
}

impl NlError {
    /// Whose fault this error is.
    pub fn fault(&self) -> Fault {
        match self {
            NlError::Invalid(_) => Fault::Caller,
            NlError::Kernel { .. } | NlError::NoSuchLink(_) => Fault::Kernel,
            NlError::Netns { .. }
            | NlError::MissingModule { .. }
            | NlError::Sysctl { .. }
            | NlError::Socket { .. } => Fault::Environment,
            NlError::Timeout(_) | NlError::Overrun(_) | NlError::Malformed(_) => Fault::Protocol,
        }
    }

    /// The errno when the kernel refused a request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel { error, .. } => Some(error.errno),
            NlError::Socket { source, .. }
            | NlError::Netns { source, .. }
            | NlError::Sysctl { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn socket(op: &'static str) -> impl FnOnce(io::Error) -> NlError {
        move |source| NlError::Socket { op, source }
    }

    pub(crate) fn from_op(what: impl Into<String>, e: OpError) -> NlError {
        match e {
            OpError::Invalid(m) => NlError::Invalid(m),
            OpError::Rejected(error) => NlError::Kernel {
                what: what.into(),
                error,
            },
        }
    }
}

//! Dumps and single requests: one message out, its replies read back and checked against its
//! sequence number. A dump interrupted by a concurrent change is restarted; a refusal carries
//! the kernel's errno and extended-ACK text.

use super::NlSocket;
use super::frame::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN,
    NLMSG_NOOP, NLMSG_OVERRUN, messages, parse_error, push_bytes,
};
use crate::netlink::error::{KernelError, NlError};

/// Dumps interrupted by concurrent changes (`NLM_F_DUMP_INTR`) are restarted this often.
const DUMP_ATTEMPTS: usize = 5;

impl NlSocket {
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
}

/// `RTM_GET*` message types are `RTM_BASE + 4k + 2`.
fn is_get(ty: u16) -> bool {
    ty >= 16 && (ty - 16) % 4 == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_types() {
        assert!(is_get(18) && is_get(22) && is_get(26) && is_get(30) && is_get(106));
        assert!(!is_get(24) && !is_get(25) && !is_get(104) && !is_get(16));
    }
}

//! Batched writes: many messages per `sendmsg`, one acknowledgement per buffer, and the
//! [`BatchReport`] that names each failed message by the index of its operation (see the
//! parent module for why a batch is framed this way).

use std::mem;

use super::frame::{NLM_F_ACK, NLMSG_ERROR, NLMSG_OVERRUN, messages, parse_error, push_message};
use super::{MAX_MESSAGE, NlSocket};
use crate::netlink::error::{NlError, OpError, OpFailure};

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

impl NlSocket {
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
}

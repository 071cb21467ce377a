//! Per-peer message and prefix counters, kept for the life of the configured peer (across
//! session resets), for status output and metrics.
//!
//! The peer task and the router bump them with relaxed atomics, so counting never takes a lock
//! or a message on the routing path; readers take a [`PeerCounters`] snapshot. Messages are
//! counted by walking the BGP headers of the bytes that go in and out (the session decodes
//! them; the driver only sees bytes), which costs a few instructions per message.

use crate::wire::{MessageType, Update};
use std::sync::atomic::{AtomicU64, Ordering};

/// What one peer exchanged since it was configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// BGP messages received (every type, every connection of the peer).
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    /// NLRI announced to us (IPv4 NLRI and MP_REACH_NLRI prefixes), before import policy.
    pub prefixes_in: u64,
    /// Prefixes the peer withdrew (withdrawn routes and MP_UNREACH_NLRI).
    pub withdrawals_in: u64,
    /// Prefixes announced to the peer.
    pub prefixes_out: u64,
    pub withdrawals_out: u64,
    /// How many times the session reached Established.
    pub established_transitions: u64,
}

/// The shared cells behind [`PeerCounters`].
#[derive(Debug, Default)]
pub(crate) struct CounterCells {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    updates_in: AtomicU64,
    updates_out: AtomicU64,
    prefixes_in: AtomicU64,
    withdrawals_in: AtomicU64,
    prefixes_out: AtomicU64,
    withdrawals_out: AtomicU64,
    established_transitions: AtomicU64,
}

fn bump(cell: &AtomicU64, n: usize) {
    if n > 0 {
        cell.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Prefixes an UPDATE announces and withdraws, over both encodings.
fn nlri_counts(u: &Update) -> (usize, usize) {
    let announced = u.nlri.len() + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len());
    let withdrawn = u.withdrawn.len() + u.mp_unreach.as_ref().map_or(0, |m| m.nlri.len());
    (announced, withdrawn)
}

impl CounterCells {
    pub fn snapshot(&self) -> PeerCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PeerCounters {
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            updates_in: get(&self.updates_in),
            updates_out: get(&self.updates_out),
            prefixes_in: get(&self.prefixes_in),
            withdrawals_in: get(&self.withdrawals_in),
            prefixes_out: get(&self.prefixes_out),
            withdrawals_out: get(&self.withdrawals_out),
            established_transitions: get(&self.established_transitions),
        }
    }

    pub fn received(&self, frames: Frames) {
        bump(&self.messages_in, frames.messages);
        bump(&self.updates_in, frames.updates);
    }

    pub fn sent(&self, frames: Frames) {
        bump(&self.messages_out, frames.messages);
        bump(&self.updates_out, frames.updates);
    }

    pub fn update_received(&self, u: &Update) {
        let (announced, withdrawn) = nlri_counts(u);
        bump(&self.prefixes_in, announced);
        bump(&self.withdrawals_in, withdrawn);
    }

    pub fn updates_sent(&self, updates: &[Update]) {
        for u in updates {
            let (announced, withdrawn) = nlri_counts(u);
            bump(&self.prefixes_out, announced);
            bump(&self.withdrawals_out, withdrawn);
        }
    }

    pub fn established(&self) {
        bump(&self.established_transitions, 1);
    }
}

/// Messages found in a run of bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Frames {
    pub messages: usize,
    pub updates: usize,
}

/// Marker, length and type: what is needed to see where a message ends and what it is.
const HEADER: usize = 19;

/// Finds message boundaries in one connection's byte stream, whatever the chunking.
#[derive(Debug, Default)]
pub(crate) struct FrameCounter {
    header: [u8; HEADER],
    have: usize,
    /// Body octets of the current message still to pass.
    skip: usize,
}

impl FrameCounter {
    /// Counts the messages whose header completes within `bytes`.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Frames {
        let mut frames = Frames::default();
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == HEADER {
                self.have = 0;
                let len = usize::from(u16::from_be_bytes([self.header[16], self.header[17]]));
                // A length below the header's is an error the session reports and closes the
                // connection for; nothing after it is read as messages anyway.
                self.skip = len.saturating_sub(HEADER);
                frames.messages += 1;
                if self.header[18] == MessageType::Update as u8 {
                    frames.updates += 1;
                }
            }
        }
        frames
    }

    /// Counts the messages of `bytes`, which hold whole messages (what the session sends).
    pub fn whole(bytes: &[u8]) -> Frames {
        FrameCounter::default().feed(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: usize) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((HEADER + body) as u16).to_be_bytes());
        m.push(kind);
        m.extend(std::iter::repeat_n(0u8, body));
        m
    }

    #[test]
    fn whole_messages_are_counted_by_type() {
        let mut bytes = message(2, 30);
        bytes.extend(message(4, 0));
        bytes.extend(message(2, 0));
        assert_eq!(
            FrameCounter::whole(&bytes),
            Frames {
                messages: 3,
                updates: 2
            }
        );
    }

    #[test]
    fn a_stream_cut_anywhere_counts_each_message_once() {
        let mut bytes = message(2, 100);
        bytes.extend(message(4, 0));
        bytes.extend(message(3, 21));
        for cut in [1, 5, 18, 19, 20, 7] {
            let mut fc = FrameCounter::default();
            let mut total = Frames::default();
            for chunk in bytes.chunks(cut) {
                let f = fc.feed(chunk);
                total.messages += f.messages;
                total.updates += f.updates;
            }
            assert_eq!(
                total,
                Frames {
                    messages: 3,
                    updates: 1
                },
                "chunks of {cut}"
            );
        }
    }
}

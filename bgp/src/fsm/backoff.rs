//! Idle hold with exponential backoff and jitter (RFC 4271 section 8.1.1,
//! DampPeerOscillations; section 10 for jitter), so that a broken peer is not hammered.

use std::time::Duration;

/// A small deterministic generator (xorshift64*): the state machine needs jitter but must not
/// read the clock or the OS, so the driver seeds it (e.g. from the peer address).
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        // Seeds often differ in a few low bits only (addresses, AS numbers): spread them with
        // splitmix64 so that neighbouring seeds give unrelated sequences (a plain `seed | 1`
        // made seeds 2n and 2n+1 identical). xorshift needs a non-zero state.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Jitter(if z == 0 { 1 } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `base` scaled by a factor drawn uniformly from 0.75..1.0 (RFC 4271 section 10).
    pub fn apply(&mut self, base: Duration) -> Duration {
        let factor = 0.75 + 0.25 * (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(factor)
    }
}

/// The idle hold time: doubles after each failure up to a ceiling, back to the start once a
/// session has stayed up long enough.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The delay before the next automatic start, and doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

//! Bounded retries of a lost compare-and-swap, with exponential backoff and full jitter.

use crate::IpamError;
use crate::allocator::IpamConfig;
use std::time::Duration;

/// Bounded retries with exponential backoff and full jitter.
pub(crate) struct Retry<'c> {
    config: &'c IpamConfig,
    attempt: u32,
    what: &'static str,
}

impl<'c> Retry<'c> {
    pub(crate) fn new(config: &'c IpamConfig, what: &'static str) -> Self {
        Retry {
            config,
            attempt: 0,
            what,
        }
    }

    /// Called after a lost compare-and-swap: waits, or gives up.
    pub(crate) async fn conflict(&mut self) -> Result<(), IpamError> {
        self.attempt += 1;
        if self.attempt >= self.config.max_attempts {
            return Err(IpamError::Contention {
                what: self.what.to_string(),
                attempts: self.attempt,
            });
        }
        // Full jitter: anywhere in [0, min * 2^(attempt-1)], capped.
        let exp = self
            .config
            .backoff_min
            .saturating_mul(1 << (self.attempt - 1).min(16))
            .min(self.config.backoff_max);
        let nanos = random_u64() % (exp.as_nanos() as u64 + 1);
        if nanos < 100_000 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_nanos(nanos)).await;
        }
        Ok(())
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

//! The three scenarios of issue 11, each run against one target at a time on a fresh process:
//! [`reflector`] (scenario 1, and scenario 3's churn on the same loaded reflector) and
//! [`mesh`] (scenario 2). [`watch`] holds the cap and stall rules they all wait under.

pub mod mesh;
pub mod reflector;
pub mod watch;

use crate::error::BenchError;
use crate::load::session::SessionErrors;
use crate::plan::Loopback;
use crate::targets::Running;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use watch::{Clock, Cut, Limits, Progress};

/// What every scenario run needs to know.
pub struct RunCtx {
    pub lo: Loopback,
    /// Scratch directories of the targets go under here.
    pub root: PathBuf,
    pub keep: bool,
    pub tortie_bin: PathBuf,
    pub limits: Limits,
    /// The monitors' time base.
    pub base: Instant,
}

/// Seconds between two instants (0 when `b` is not after `a`).
pub fn secs(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64()
}

/// Kibibytes to mebibytes.
pub fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Session set-ups in flight at once. BIRD listens with a backlog of 8 (`listen(fd, 8)` in its
/// sysdep/unix/io.c): more simultaneous SYNs than that are dropped and retried by TCP after
/// 1, 3, 7 s..., which would time the kernel's retransmissions instead of the target (a
/// 1,000-peer mesh took BIRD 22 s with 256 in flight, all of it in retransmit waits).
pub const IN_FLIGHT: usize = 8;

/// Runs session set-ups, [`IN_FLIGHT`] at a time, counting the Established ones under the run's
/// cap and stall rules; every one must succeed.
pub async fn connect_all<T, F>(
    what: &str,
    clock: &Clock,
    target: &Running,
    errors: &SessionErrors,
    setups: Vec<F>,
) -> Result<Vec<T>, Cut>
where
    T: Send + 'static,
    F: Future<Output = Result<T, BenchError>> + Send + 'static,
{
    let total = setups.len() as u64;
    let up = Arc::new(AtomicU64::new(0));
    let deadline = clock.deadline();
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let handles: Vec<_> = setups
        .into_iter()
        .map(|f| {
            let (up, errors, gate) = (up.clone(), errors.clone(), gate.clone());
            tokio::spawn(async move {
                // The gate is never closed, so a permit always comes.
                let _permit = gate.acquire_owned().await;
                match f.await {
                    Ok(t) => {
                        up.fetch_add(1, Ordering::Relaxed);
                        Some(t)
                    }
                    Err(e) => {
                        // At the cap the watcher reports how far it got; before it, an error
                        // is the run's failure.
                        if Instant::now() + Duration::from_millis(500) < deadline {
                            errors.push(e.to_string());
                        }
                        None
                    }
                }
            })
        })
        .collect();
    let waited = watch::until(
        what,
        clock,
        target,
        errors,
        Duration::from_millis(20),
        || {
            let n = up.load(Ordering::Relaxed);
            std::future::ready(Progress {
                value: n,
                done: n == total,
                text: format!("{n} of {total} sessions Established"),
            })
        },
    )
    .await;
    if let Err(cut) = waited {
        for h in &handles {
            h.abort();
        }
        return Err(cut);
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(Some(t)) => out.push(t),
            Ok(None) => return Err(Cut::failed(format!("{what}: a session set-up failed"))),
            Err(e) => return Err(Cut::failed(format!("{what}: a set-up task died: {e}"))),
        }
    }
    Ok(out)
}

//! Waiting for a count to reach its goal under the run's two rules: each target has a time cap
//! (past it the target "did not finish in T s", with how far it got, and the run goes on), and
//! a count that does not move for the stall limit (30 s) fails the run loudly. A session error
//! or a target that exits ends the wait at once, with the target's last log lines.

use crate::load::session::SessionErrors;
use crate::targets::Running;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The two limits of one target's run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub cap: Duration,
    pub stall: Duration,
}

/// Where one target's run stands against its cap.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub started: Instant,
    pub limits: Limits,
}

impl Clock {
    pub fn start(limits: Limits) -> Clock {
        Clock {
            started: Instant::now(),
            limits,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.started + self.limits.cap
    }
}

/// How a run ended short of its goal.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Cut {
    /// The time cap passed: the run goes on with the next target.
    #[serde(rename_all = "camelCase")]
    DidNotFinish { cap_secs: f64, progress: String },
    /// A count stopped moving: the whole run fails once the report is written.
    #[serde(rename_all = "camelCase")]
    Stalled { stall_secs: f64, progress: String },
    /// The target exited, refused the configuration, or a session broke.
    Failed { reason: String },
    /// Not attempted, because what it builds on was cut short (that row says why).
    NotRun { reason: String },
}

impl Cut {
    pub fn failed(reason: impl std::fmt::Display) -> Cut {
        Cut::Failed {
            reason: reason.to_string(),
        }
    }

    /// The report's wording.
    pub fn describe(&self) -> String {
        match self {
            Cut::DidNotFinish { cap_secs, progress } => {
                format!("did not finish in {cap_secs:.0} s ({progress})")
            }
            Cut::Stalled {
                stall_secs,
                progress,
            } => format!("STALLED: no progress for {stall_secs:.0} s ({progress})"),
            Cut::Failed { reason } => format!("FAILED: {reason}"),
            Cut::NotRun { reason } => format!("not run: {reason}"),
        }
    }

    /// Whether this makes the whole run fail (the cap alone does not).
    pub fn fails_run(&self) -> bool {
        !matches!(self, Cut::DidNotFinish { .. } | Cut::NotRun { .. })
    }
}

/// One look at a count.
pub struct Progress {
    pub value: u64,
    pub done: bool,
    /// "monitors hold 812345 of 1000000 prefixes", for a report of how far it got.
    pub text: String,
}

/// Polls `probe` every `poll` until it reports done, the cap passes, the count stalls, a session
/// fails or the target dies.
pub async fn until<F, Fut>(
    what: &str,
    clock: &Clock,
    target: &Running,
    errors: &SessionErrors,
    poll: Duration,
    mut probe: F,
) -> Result<(), Cut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Progress>,
{
    let mut last_value: Option<u64> = None;
    let mut last_move = Instant::now();
    let mut last_text;
    loop {
        if let Some(e) = errors.first() {
            return Err(Cut::failed(format!("{what}: {e}")));
        }
        if !target.alive() {
            return Err(Cut::failed(format!(
                "{} exited during {what}:\n{}",
                target.kind,
                target.log_tail(15)
            )));
        }
        let p = probe().await;
        if p.done {
            return Ok(());
        }
        let now = Instant::now();
        if last_value != Some(p.value) {
            last_value = Some(p.value);
            last_move = now;
        }
        last_text = p.text;
        if now >= clock.deadline() {
            return Err(Cut::DidNotFinish {
                cap_secs: clock.limits.cap.as_secs_f64(),
                progress: format!("{what}: {last_text}"),
            });
        }
        if now.duration_since(last_move) >= clock.limits.stall {
            return Err(Cut::Stalled {
                stall_secs: clock.limits.stall.as_secs_f64(),
                progress: format!("{what}: {last_text}"),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

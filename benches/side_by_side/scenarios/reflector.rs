//! Scenario 1, iBGP route reflection, and scenario 3, churn, on one target process.
//!
//! The target reflects for F feeders and M monitors, all its clients. The monitors connect
//! first, then the feeders; once every session is Established all feeders start sending at
//! once (so the first UPDATE follows the last Established by microseconds), and the clock
//! stops when the last monitor's count reaches F x P, at that monitor's last change. Each
//! monitor's table is then checked prefix by prefix. Churn follows on the loaded target: per
//! wave every feeder withdraws a different tenth of its prefixes, the monitors must drop exactly
//! those, then the feeders announce them again and the monitors must hold everything again;
//! both halves are timed. CPU is the target's utime + stime over each phase, memory its VmHWM.

use super::watch::{self, Clock, Cut, Progress};
use super::{RunCtx, connect_all, mib, secs};
use crate::error::BenchError;
use crate::load::feeder::{self, Feeder, FeederLoad};
use crate::load::monitor::{Expected, Monitor, Totals};
use crate::load::session::SessionErrors;
use crate::plan::{self, PrefixSpace};
use crate::targets::procstat::ProcSample;
use crate::targets::{Kind, Role, Running, Scratch, Spec};
use serde::Serialize;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The sizes of one reflector run.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sizes {
    pub feeders: u32,
    pub monitors: u32,
    pub per_feeder: u32,
    /// Churn waves (0: no scenario 3).
    pub waves: u32,
}

/// Scenario 1's figures for one target.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadFigures {
    /// From starting the target to every session Established.
    pub sessions_secs: f64,
    /// From the first feeder UPDATE to the monitors holding everything.
    pub first_update_to_all_held_secs: f64,
    /// From the last feeder session Established to the monitors holding everything.
    pub last_established_to_all_held_secs: f64,
    /// Target CPU (user + system) from the first UPDATE to the monitors holding everything.
    pub cpu_secs: f64,
    pub peak_rss_mib: f64,
    /// Prefixes per UPDATE the monitors received (announcing UPDATEs only).
    pub prefixes_per_update: f64,
    pub monitor_totals: Totals,
}

/// Scenario 3's figures for one target.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChurnFigures {
    pub waves: Vec<WaveTimes>,
    /// Sum of every wave's two halves.
    pub total_secs: f64,
    pub cpu_secs: f64,
    pub peak_rss_mib: f64,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveTimes {
    pub withdraw_secs: f64,
    pub reannounce_secs: f64,
}

/// One target's result: figures, or why there are none.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome<T> {
    pub target: Kind,
    pub figures: Option<T>,
    pub cut: Option<Cut>,
    /// Where a run that was cut short stood (scenario 1).
    pub partial: Option<Partial>,
}

/// Scenario 1's figures at the moment it was cut short.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Partial {
    pub elapsed_secs: f64,
    pub cpu_secs: f64,
    pub peak_rss_mib: f64,
    pub prefixes_per_update: f64,
    /// Prefixes held, summed over the monitors.
    pub held: u64,
}

impl<T> Outcome<T> {
    pub fn cut(target: Kind, cut: Cut) -> Outcome<T> {
        Outcome {
            target,
            figures: None,
            cut: Some(cut),
            partial: None,
        }
    }

    pub fn done(target: Kind, figures: T) -> Outcome<T> {
        Outcome {
            target,
            figures: Some(figures),
            cut: None,
            partial: None,
        }
    }
}

pub struct ReflectorResult {
    pub load: Outcome<LoadFigures>,
    pub churn: Option<Outcome<ChurnFigures>>,
}

/// Encodes every feeder's load (before any target starts, so no run pays for it).
pub fn build_loads(sizes: &Sizes) -> Result<(PrefixSpace, Vec<Arc<FeederLoad>>), BenchError> {
    let total = sizes
        .feeders
        .checked_mul(sizes.per_feeder)
        .ok_or_else(|| BenchError::Plan("feeders x prefixes overflows".into()))?;
    let space = PrefixSpace::new(total, 32)?;
    let loads = (0..sizes.feeders)
        .map(|i| FeederLoad::build(i, sizes.per_feeder, &space, sizes.waves).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((space, loads))
}

fn sample(target: &Running) -> Result<ProcSample, Cut> {
    target
        .sample()
        .map_err(|e| Cut::failed(format!("sampling {}: {e}", target.kind)))
}

/// Waits until the monitors' counts add up to `goal_each` each, then checks each table.
async fn converge(
    what: &str,
    clock: &Clock,
    target: &Running,
    errors: &SessionErrors,
    monitors: &[Monitor],
    expected: &Expected,
) -> Result<Instant, Cut> {
    let goal_each = expected.count();
    let goal = goal_each * monitors.len() as u64;
    watch::until(
        what,
        clock,
        target,
        errors,
        Duration::from_millis(10),
        || {
            let t = Totals::of(monitors);
            std::future::ready(Progress {
                value: t.held_sum,
                done: t.held_sum == goal && monitors.iter().all(|m| m.held() == goal_each),
                text: format!(
                    "monitors hold {} of {goal} prefixes in all (the least: {} of {goal_each})",
                    t.held_sum, t.held_min
                ),
            })
        },
    )
    .await?;
    for m in monitors {
        let bad = m
            .mismatches(expected.clone())
            .await
            .map_err(|e| Cut::failed(e.to_string()))?;
        if bad != 0 {
            return Err(Cut::failed(format!(
                "{what}: monitor {} has the right count but {bad} wrong prefixes",
                m.local
            )));
        }
    }
    Ok(monitors
        .iter()
        .map(Monitor::last_change)
        .max()
        .unwrap_or_else(Instant::now))
}

struct Sessions {
    feeders: Vec<Feeder>,
    monitors: Vec<Monitor>,
}

#[allow(clippy::too_many_arguments)]
async fn open_sessions(
    ctx: &RunCtx,
    clock: &Clock,
    target: &Running,
    errors: &SessionErrors,
    remote: SocketAddr,
    space: PrefixSpace,
    sizes: &Sizes,
    loads: &[Arc<FeederLoad>],
) -> Result<Sessions, Cut> {
    let deadline = clock.deadline();
    let mons = (0..sizes.monitors)
        .map(|i| {
            let (local, errors) = (ctx.lo.monitor(i), errors.clone());
            Monitor::connect(local, remote, space, ctx.base, deadline, errors)
        })
        .collect();
    let monitors = connect_all("monitor sessions", clock, target, errors, mons).await?;
    let feeds = loads
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (local, errors) = (ctx.lo.feeder(i as u32), errors.clone());
            Feeder::connect(local, remote, l.clone(), deadline, errors)
        })
        .collect();
    let feeders = connect_all("feeder sessions", clock, target, errors, feeds).await?;
    Ok(Sessions { feeders, monitors })
}

/// Runs scenario 1 (and 3 when `sizes.waves` > 0) against `kind`.
pub async fn run(
    ctx: &RunCtx,
    kind: Kind,
    sizes: &Sizes,
    space: PrefixSpace,
    loads: &[Arc<FeederLoad>],
) -> ReflectorResult {
    let cut_both = |cut: Cut| ReflectorResult {
        load: Outcome::cut(kind, cut.clone()),
        churn: (sizes.waves > 0).then(|| Outcome::cut(kind, cut)),
    };
    let scratch = match Scratch::new(&ctx.root, &format!("{kind}-reflector"), ctx.keep) {
        Ok(s) => s,
        Err(e) => return cut_both(Cut::failed(e)),
    };
    let addr = ctx.lo.target();
    let port = match plan::free_port(addr) {
        Ok(p) => p,
        Err(e) => return cut_both(Cut::failed(e)),
    };
    let mut peers: Vec<_> = (0..sizes.monitors).map(|i| ctx.lo.monitor(i)).collect();
    peers.extend((0..sizes.feeders).map(|i| ctx.lo.feeder(i)));
    let spec = Spec {
        kind,
        role: Role::Reflector,
        addr,
        port,
        peers,
        dir: scratch.path.clone(),
        tortie_bin: ctx.tortie_bin.clone(),
    };
    let clock = Clock::start(ctx.limits);
    let mut target = match Running::start(&spec) {
        Ok(t) => t,
        Err(e) => return cut_both(Cut::failed(e)),
    };
    if let Err(e) = target.wait_ready(clock.deadline()).await {
        return cut_both(Cut::failed(e));
    }
    let remote = SocketAddr::V4(SocketAddrV4::new(addr, port));
    let errors = SessionErrors::default();
    let result =
        match open_sessions(ctx, &clock, &target, &errors, remote, space, sizes, loads).await {
            Ok(s) => {
                let r = measure(&clock, &target, &errors, &s, sizes).await;
                // Sessions go before the target, so its exit is not reported as their failure.
                drop(s);
                r
            }
            Err(cut) => cut_both(cut),
        };
    target.stop();
    result
}

async fn measure(
    clock: &Clock,
    target: &Running,
    errors: &SessionErrors,
    s: &Sessions,
    sizes: &Sizes,
) -> ReflectorResult {
    let kind = target.kind;
    let load = load_phase(clock, target, errors, s, sizes).await;
    let churn = match (&load.cut, sizes.waves) {
        (_, 0) => None,
        (Some(cut), _) => Some(Outcome::cut(
            kind,
            Cut::NotRun {
                reason: match cut {
                    Cut::DidNotFinish { .. } => "scenario 1 did not finish".into(),
                    _ => "scenario 1 failed".into(),
                },
            },
        )),
        (None, waves) => Some(
            match churn_phase(clock, target, errors, s, sizes, waves).await {
                Ok(f) => Outcome::done(kind, f),
                Err(cut) => Outcome::cut(kind, cut),
            },
        ),
    };
    ReflectorResult { load, churn }
}

async fn load_phase(
    clock: &Clock,
    target: &Running,
    errors: &SessionErrors,
    s: &Sessions,
    sizes: &Sizes,
) -> Outcome<LoadFigures> {
    let kind = target.kind;
    let last_established = s
        .feeders
        .iter()
        .map(|f| f.established_at)
        .max()
        .unwrap_or_else(Instant::now);
    let before = match sample(target) {
        Ok(b) => b,
        Err(cut) => return Outcome::cut(kind, cut),
    };
    let first_update = Instant::now();
    let run = async {
        for f in &s.feeders {
            f.send(f.load.announce.clone())
                .map_err(|e| Cut::failed(e.to_string()))?;
        }
        let expected = Expected {
            feeders: sizes.feeders,
            per_feeder: sizes.per_feeder,
            absent: None,
        };
        converge(
            "the initial load",
            clock,
            target,
            errors,
            &s.monitors,
            &expected,
        )
        .await
    };
    let result = run.await;
    let totals = Totals::of(&s.monitors);
    let after = target.sample();
    match (result, after) {
        (Ok(held), Ok(after)) => Outcome {
            target: kind,
            figures: Some(LoadFigures {
                sessions_secs: secs(clock.started, last_established),
                first_update_to_all_held_secs: secs(first_update, held),
                last_established_to_all_held_secs: secs(last_established, held),
                cpu_secs: after.cpu_secs - before.cpu_secs,
                peak_rss_mib: mib(after.peak_rss_kb),
                prefixes_per_update: totals.prefixes_per_update(),
                monitor_totals: totals,
            }),
            cut: None,
            partial: None,
        },
        (Ok(_), Err(e)) => Outcome::cut(kind, Cut::failed(format!("sampling {kind}: {e}"))),
        (Err(cut), after) => Outcome {
            target: kind,
            figures: None,
            cut: Some(cut),
            // How far it got, while the target still runs.
            partial: after.ok().map(|after| Partial {
                elapsed_secs: secs(first_update, Instant::now()),
                cpu_secs: after.cpu_secs - before.cpu_secs,
                peak_rss_mib: mib(after.peak_rss_kb),
                prefixes_per_update: totals.prefixes_per_update(),
                held: totals.held_sum,
            }),
        },
    }
}

async fn churn_phase(
    clock: &Clock,
    target: &Running,
    errors: &SessionErrors,
    s: &Sessions,
    sizes: &Sizes,
    waves: u32,
) -> Result<ChurnFigures, Cut> {
    let before = sample(target)?;
    let mut out = ChurnFigures::default();
    for w in 0..waves {
        let wi = w as usize;
        let send = |pick: &dyn Fn(&FeederLoad) -> Option<bytes::Bytes>| -> Result<(), Cut> {
            for f in &s.feeders {
                let bytes = pick(&f.load).ok_or_else(|| {
                    Cut::failed(format!("feeder {}: no wave {w} encoded", f.local))
                })?;
                f.send(bytes).map_err(|e| Cut::failed(e.to_string()))?;
            }
            Ok(())
        };
        let mut expected = Expected {
            feeders: sizes.feeders,
            per_feeder: sizes.per_feeder,
            absent: Some(feeder::wave_slice(sizes.per_feeder, w)),
        };
        let t0 = Instant::now();
        send(&|l| l.waves.get(wi).map(|x| x.withdraw.clone()))?;
        let what = format!("churn wave {}: withdrawal", w + 1);
        let gone = converge(&what, clock, target, errors, &s.monitors, &expected).await?;
        expected.absent = None;
        let t1 = Instant::now();
        send(&|l| l.waves.get(wi).map(|x| x.reannounce.clone()))?;
        let what = format!("churn wave {}: re-announcement", w + 1);
        let back = converge(&what, clock, target, errors, &s.monitors, &expected).await?;
        let times = WaveTimes {
            withdraw_secs: secs(t0, gone),
            reannounce_secs: secs(t1, back),
        };
        out.total_secs += times.withdraw_secs + times.reannounce_secs;
        out.waves.push(times);
    }
    let after = sample(target)?;
    out.cpu_secs = after.cpu_secs - before.cpu_secs;
    out.peak_rss_mib = mib(after.peak_rss_kb);
    Ok(out)
}

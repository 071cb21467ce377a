//! The run's output: a JSON file with every figure, and markdown tables (printed, and written
//! next to the JSON) with each figure's ratio to BIRD's in the same run, the machine, the
//! versions, the load tool's own ceiling, and issue 11's targets for tortie marked met or
//! missed. A target that did not finish is a row saying so and how far it got.

use crate::error::BenchError;
use crate::load::sink::SelfCheck;
use crate::scenarios::mesh::MeshFigures;
use crate::scenarios::reflector::{ChurnFigures, LoadFigures, Outcome, Sizes};
use crate::targets::Kind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub load_average_start: String,
    pub load_average_end: String,
}

impl Machine {
    pub fn now() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let mem_kb: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: mem_kb / 1024.0 / 1024.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_average_start: load_average(),
            load_average_end: String::new(),
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshRow {
    pub peers: u32,
    #[serde(flatten)]
    pub outcome: Outcome<MeshFigures>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCheck {
    pub what: String,
    /// None: not measurable in this run (a target missing or cut short).
    pub met: Option<bool>,
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub command: String,
    pub mode: String,
    pub started_unix: u64,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    /// Which range each scenario's prefixes came from.
    pub prefix_ranges: BTreeMap<String, String>,
    pub self_check: Option<SelfCheck>,
    pub reflector_sizes: Option<Sizes>,
    pub scenario1: Vec<Outcome<LoadFigures>>,
    pub scenario2: Vec<MeshRow>,
    pub scenario3: Vec<Outcome<ChurnFigures>>,
    pub targets_check: Vec<TargetCheck>,
    /// The load tool's lowest margin over the fastest target (tool rate / target rate).
    pub load_tool_headroom: Option<f64>,
    pub warnings: Vec<String>,
}

fn bird<T>(rows: &[Outcome<T>]) -> Option<&T> {
    rows.iter()
        .find(|r| r.target == Kind::Bird)
        .and_then(|r| r.figures.as_ref())
}

fn ratio(v: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}x", v / b),
        _ => "-".into(),
    }
}

fn result_text<T>(o: &Outcome<T>) -> String {
    match &o.cut {
        None => "finished".into(),
        Some(c) => c.describe().replace('|', "/").replace('\n', " "),
    }
}

impl Report {
    /// Whether a target's run failed the whole run (a stall or a failure; the cap does not).
    pub fn failed(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut note = |name: &str, t: Kind, cut: &Option<crate::scenarios::watch::Cut>| {
            if let Some(c) = cut.as_ref().filter(|c| c.fails_run()) {
                out.push(format!("{name}, {t}: {}", c.describe()));
            }
        };
        for r in &self.scenario1 {
            note("scenario 1", r.target, &r.cut);
        }
        for r in &self.scenario2 {
            note(
                &format!("scenario 2 ({} peers)", r.peers),
                r.outcome.target,
                &r.outcome.cut,
            );
        }
        for r in &self.scenario3 {
            note("scenario 3", r.target, &r.cut);
        }
        out
    }

    /// The fastest target's delivery against the tool's own rates.
    pub fn assess_load_tool(&mut self) {
        let (Some(sc), Some(sizes)) = (self.self_check, self.reflector_sizes) else {
            return;
        };
        let total = f64::from(sizes.feeders) * f64::from(sizes.per_feeder);
        let Some(best) = self
            .scenario1
            .iter()
            .filter_map(|r| r.figures.as_ref())
            .map(|f| f.first_update_to_all_held_secs)
            .filter(|s| *s > 0.0)
            .reduce(f64::min)
        else {
            return;
        };
        let ingest = total / best;
        let delivery = total * f64::from(sizes.monitors) / best;
        let headroom =
            (sc.feeder_prefixes_per_sec / ingest).min(sc.monitor_prefixes_per_sec / delivery);
        self.load_tool_headroom = Some(headroom);
        if headroom < 2.0 {
            self.warnings.push(format!(
                "the load tool may be the bottleneck: its rates are only {headroom:.1}x the fastest target's"
            ));
        }
    }

    /// Issue 11's targets for tortie, against the other targets of this run.
    pub fn check_targets(&mut self) {
        let mut checks = Vec::new();
        let tortie1 = self.scenario1.iter().find(|r| r.target == Kind::Tortie);
        if let Some(t) = tortie1.and_then(|r| r.figures.as_ref()) {
            if let Some(b) = bird(&self.scenario1) {
                let c = |what: &str, v: f64, limit: f64, unit: &str| TargetCheck {
                    what: what.into(),
                    met: Some(v <= limit),
                    detail: format!("tortie {v:.2}{unit}, limit {limit:.2}{unit}"),
                };
                checks.push(c(
                    "scenario 1: last Established -> all held <= 0.5x BIRD",
                    t.last_established_to_all_held_secs,
                    0.5 * b.last_established_to_all_held_secs,
                    " s",
                ));
                checks.push(c(
                    "scenario 1: peak RSS <= 2x BIRD",
                    t.peak_rss_mib,
                    2.0 * b.peak_rss_mib,
                    " MiB",
                ));
                checks.push(c("scenario 1: CPU <= BIRD", t.cpu_secs, b.cpu_secs, " s"));
            }
            for other in [Kind::Gobgp, Kind::Frr] {
                let Some(o) = self.scenario1.iter().find(|r| r.target == other) else {
                    continue;
                };
                let (met, detail) = match (&o.figures, &o.partial) {
                    // Cut short: its figures would only have grown past where it stood.
                    (None, Some(p)) => (
                        t.last_established_to_all_held_secs < p.elapsed_secs
                            && t.peak_rss_mib < p.peak_rss_mib
                            && t.cpu_secs < p.cpu_secs,
                        format!(
                            "{other} {}; when cut: > {:.0} s, > {:.0} MiB, > {:.1} s CPU",
                            result_text(o),
                            p.elapsed_secs,
                            p.peak_rss_mib,
                            p.cpu_secs
                        ),
                    ),
                    (None, None) => (false, format!("{other} {}", result_text(o))),
                    (Some(f), _) => (
                        t.last_established_to_all_held_secs < f.last_established_to_all_held_secs
                            && t.peak_rss_mib < f.peak_rss_mib
                            && t.cpu_secs < f.cpu_secs,
                        format!(
                            "time {:.2} vs {:.2} s, RSS {:.0} vs {:.0} MiB, CPU {:.2} vs {:.2} s",
                            t.last_established_to_all_held_secs,
                            f.last_established_to_all_held_secs,
                            t.peak_rss_mib,
                            f.peak_rss_mib,
                            t.cpu_secs,
                            f.cpu_secs
                        ),
                    ),
                };
                checks.push(TargetCheck {
                    what: format!("scenario 1: beats {other} on time, RSS and CPU"),
                    met: Some(met),
                    detail,
                });
            }
        }
        if let Some(r) = self
            .scenario2
            .iter()
            .filter(|r| r.outcome.target == Kind::Tortie)
            .max_by_key(|r| r.peers)
        {
            let f = r.outcome.figures.as_ref();
            checks.push(TargetCheck {
                what: format!("scenario 2, {} peers: converged in under 10 s", r.peers),
                met: f.map(|f| f.converged_secs < 10.0),
                detail: f.map_or_else(
                    || result_text(&r.outcome),
                    |f| format!("{:.2} s", f.converged_secs),
                ),
            });
            checks.push(TargetCheck {
                what: format!("scenario 2, {} peers: RSS under 300 MB", r.peers),
                met: f.map(|f| f.peak_rss_mib * 1.048_576 < 300.0),
                detail: f.map_or_else(
                    || result_text(&r.outcome),
                    |f| format!("{:.0} MB", f.peak_rss_mib * 1.048_576),
                ),
            });
        }
        self.targets_check = checks;
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        if let (Some(z), Some(_)) = (self.reflector_sizes, self.scenario1.first()) {
            let _ = writeln!(
                s,
                "### Scenario 1: iBGP route reflector, {} feeders x {} prefixes -> target -> {} monitors\n",
                z.feeders, z.per_feeder, z.monitors
            );
            s.push_str("| target | result | sessions up (s) | first UPDATE -> all held (s) | last Established -> all held (s) | x BIRD | CPU (s) | x BIRD | peak RSS (MiB) | x BIRD | prefixes / UPDATE |\n");
            s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
            let b = bird(&self.scenario1);
            for r in &self.scenario1 {
                match &r.figures {
                    Some(f) => {
                        let _ = writeln!(
                            s,
                            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {} | {:.0} | {} | {:.0} |",
                            r.target,
                            result_text(r),
                            f.sessions_secs,
                            f.first_update_to_all_held_secs,
                            f.last_established_to_all_held_secs,
                            ratio(
                                f.last_established_to_all_held_secs,
                                b.map(|b| b.last_established_to_all_held_secs)
                            ),
                            f.cpu_secs,
                            ratio(f.cpu_secs, b.map(|b| b.cpu_secs)),
                            f.peak_rss_mib,
                            ratio(f.peak_rss_mib, b.map(|b| b.peak_rss_mib)),
                            f.prefixes_per_update
                        );
                    }
                    None => match &r.partial {
                        // Lower bounds: where it stood when it was cut short.
                        Some(p) => {
                            let _ = writeln!(
                                s,
                                "| {} | {} | | > {:.0} | > {:.0} | | > {:.1} | | > {:.0} | | {:.0} |",
                                r.target,
                                result_text(r),
                                p.elapsed_secs,
                                p.elapsed_secs,
                                p.cpu_secs,
                                p.peak_rss_mib,
                                p.prefixes_per_update
                            );
                        }
                        None => {
                            let _ = writeln!(
                                s,
                                "| {} | {} | | | | | | | | | |",
                                r.target,
                                result_text(r)
                            );
                        }
                    },
                }
            }
            s.push('\n');
        }
        if !self.scenario2.is_empty() {
            s.push_str("### Scenario 2: mesh scale, the target as one node of a full mesh of simulated nodes (one /26 each)\n\n");
            s.push_str("| target | peers | result | all Established (s) | all in Loc-RIB (s) | x BIRD | CPU (s) | x BIRD | peak RSS (MiB) | x BIRD |\n");
            s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
            for r in &self.scenario2 {
                let b = self
                    .scenario2
                    .iter()
                    .find(|x| x.peers == r.peers && x.outcome.target == Kind::Bird)
                    .and_then(|x| x.outcome.figures.as_ref());
                match &r.outcome.figures {
                    Some(f) => {
                        let _ = writeln!(
                            s,
                            "| {} | {} | {} | {:.2} | {:.2} | {} | {:.2} | {} | {:.0} | {} |",
                            r.outcome.target,
                            r.peers,
                            result_text(&r.outcome),
                            f.established_secs,
                            f.converged_secs,
                            ratio(f.converged_secs, b.map(|b| b.converged_secs)),
                            f.cpu_secs,
                            ratio(f.cpu_secs, b.map(|b| b.cpu_secs)),
                            f.peak_rss_mib,
                            ratio(f.peak_rss_mib, b.map(|b| b.peak_rss_mib))
                        );
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            "| {} | {} | {} | | | | | | | |",
                            r.outcome.target,
                            r.peers,
                            result_text(&r.outcome)
                        );
                    }
                }
            }
            s.push('\n');
        }
        if !self.scenario3.is_empty() {
            let waves = self.reflector_sizes.map_or(0, |z| z.waves);
            let _ = writeln!(
                s,
                "### Scenario 3: churn, {waves} waves each withdrawing then re-announcing 10% of every feeder's prefixes\n"
            );
            s.push_str("| target | result | withdrawal, mean (s) | re-announcement, mean (s) | total (s) | x BIRD | CPU (s) | x BIRD | peak RSS (MiB) |\n");
            s.push_str("|---|---|---|---|---|---|---|---|---|\n");
            let b = bird(&self.scenario3);
            for r in &self.scenario3 {
                match &r.figures {
                    Some(f) => {
                        let n = f.waves.len().max(1) as f64;
                        let w: f64 = f.waves.iter().map(|w| w.withdraw_secs).sum::<f64>() / n;
                        let a: f64 = f.waves.iter().map(|w| w.reannounce_secs).sum::<f64>() / n;
                        let _ = writeln!(
                            s,
                            "| {} | {} | {w:.3} | {a:.3} | {:.2} | {} | {:.2} | {} | {:.0} |",
                            r.target,
                            result_text(r),
                            f.total_secs,
                            ratio(f.total_secs, b.map(|b| b.total_secs)),
                            f.cpu_secs,
                            ratio(f.cpu_secs, b.map(|b| b.cpu_secs)),
                            f.peak_rss_mib
                        );
                    }
                    None => {
                        let _ = writeln!(s, "| {} | {} | | | | | | | |", r.target, result_text(r));
                    }
                }
            }
            s.push('\n');
        }
        if let Some(c) = &self.self_check {
            let _ = writeln!(
                s,
                "Load tool (same run, read-only sink): feeders send {:.2} M prefixes/s, monitors decode {:.2} M prefixes/s{}.\n",
                c.feeder_prefixes_per_sec / 1e6,
                c.monitor_prefixes_per_sec / 1e6,
                self.load_tool_headroom
                    .map(|h| format!("; {h:.1}x the fastest target's rates"))
                    .unwrap_or_default()
            );
        }
        if !self.targets_check.is_empty() {
            s.push_str("| tortie target (issue 11) | met | measured |\n|---|---|---|\n");
            for c in &self.targets_check {
                let met = match c.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "-",
                };
                let _ = writeln!(s, "| {} | {met} | {} |", c.what, c.detail);
            }
            s.push('\n');
        }
        for w in &self.warnings {
            let _ = writeln!(s, "**Warning:** {w}\n");
        }
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {} ({} CPUs, {:.0} GiB, Linux {}), load average {} at the start, {} at the end.",
            m.cpu, m.cpus, m.memory_gib, m.kernel, m.load_average_start, m.load_average_end
        );
        let v: Vec<String> = self
            .versions
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(s, "Versions: {}.", v.join("; "));
        let p: Vec<String> = self
            .prefix_ranges
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(s, "Prefixes from: {}.", p.join("; "));
        let _ = writeln!(s, "Command: `{}`", self.command);
        s
    }

    /// Writes `report.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        let fail = |path: &Path, reason: String| BenchError::Report {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e.to_string()))?;
        let json = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(&json, e.to_string()))?;
        std::fs::write(&json, text).map_err(|e| fail(&json, e.to_string()))?;
        let md = dir.join("report.md");
        std::fs::write(&md, self.markdown()).map_err(|e| fail(&md, e.to_string()))?;
        Ok(())
    }
}

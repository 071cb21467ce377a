//! tortie side by side with BIRD 2, GoBGP and FRR bgpd (issue 11), on the same machine in the
//! same run: route-reflector convergence, memory and CPU (scenario 1), mesh scale (scenario 2),
//! churn (scenario 3). A load tool written on tortie's codec opens the BGP sessions from
//! distinct 127/8 addresses; each target is started from a generated configuration, measured
//! through /proc and stopped by its pid. The output is markdown tables with every figure's
//! ratio to BIRD's, and a JSON file; see docs/BENCHMARKS.md.
//!
//! ```sh
//! cargo bench --bench side_by_side                      # full sizes, every target (minutes)
//! cargo bench --bench side_by_side -- --quick           # 10 x 10k, a 1,000-peer mesh
//! cargo bench --bench side_by_side -- --targets tortie,bird --scenarios 1
//! ```
//!
//! Under `cargo test` (no `--bench` argument) it is the CI smoke test: a quick scenario 1
//! against tortie and BIRD, failing unless both deliver every prefix to every monitor; no
//! timing is asserted. Needs root only for FRR's user switch; `bird`, `gobgpd` and
//! `/usr/lib/frr/bgpd` come from Debian (`tools/test.sh` installs them).

mod error;
mod load;
mod plan;
mod report;
mod scenarios;
mod targets;

use clap::Parser;
use error::BenchError;
use report::{Machine, MeshRow, Report};
use scenarios::reflector::{self, Sizes};
use scenarios::watch::Limits;
use scenarios::{RunCtx, mesh};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use targets::Kind;
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(
    name = "side_by_side",
    about = "tortie against BIRD, GoBGP and FRR: route reflection, mesh scale, churn"
)]
struct Cli {
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// CI sizes: 10 feeders x 10,000 prefixes, a 1,000-peer mesh, a 120 s cap.
    #[arg(long)]
    quick: bool,
    /// Scenarios to run: 1 (route reflector), 2 (mesh scale), 3 (churn, after 1's load).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    scenarios: Vec<u8>,
    /// Targets (tortie, bird, gobgp, frr); scenario 2 runs tortie and BIRD only.
    #[arg(long, value_delimiter = ',', value_parser = Kind::parse)]
    targets: Option<Vec<Kind>>,
    #[arg(long, default_value_t = 10)]
    feeders: u32,
    #[arg(long, default_value_t = 10)]
    monitors: u32,
    /// Prefixes per feeder (default 100,000; 10,000 with --quick).
    #[arg(long)]
    prefixes: Option<u32>,
    /// Mesh sizes (default 1000,5000; 1000 with --quick).
    #[arg(long, value_delimiter = ',')]
    peers: Option<Vec<u32>>,
    /// Churn waves (each a different tenth of every feeder's prefixes; at most 10).
    #[arg(long, default_value_t = 3)]
    waves: u32,
    /// Seconds each target run may take (default 300; 120 with --quick).
    #[arg(long)]
    cap: Option<u64>,
    /// Seconds a count may stand still before the run fails.
    #[arg(long, default_value_t = 30)]
    stall: u64,
    /// Where report.json and report.md go (default: target/side-by-side in the workspace).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the targets' scratch directories (configurations, logs).
    #[arg(long)]
    keep: bool,
    /// The tortie binary (default: the one cargo built with this bench).
    #[arg(long)]
    tortie_bin: Option<PathBuf>,
    /// A cargo bench name filter: the run is skipped unless "side_by_side" contains it.
    filter: Option<String>,
}

/// What one invocation runs.
struct Plan {
    mode: &'static str,
    scenarios: Vec<u8>,
    targets: Vec<Kind>,
    sizes: Sizes,
    peers: Vec<u32>,
    limits: Limits,
    out: Option<PathBuf>,
    keep: bool,
    tortie_bin: PathBuf,
    command: String,
}

fn default_tortie() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tortie"))
}

fn bench_plan(cli: Cli, command: String) -> Plan {
    let full = !cli.quick;
    let mut targets = cli.targets.unwrap_or_else(|| Kind::ALL.to_vec());
    targets.sort();
    targets.dedup();
    Plan {
        mode: if full { "full" } else { "quick" },
        scenarios: cli.scenarios,
        targets,
        sizes: Sizes {
            feeders: cli.feeders,
            monitors: cli.monitors,
            per_feeder: cli.prefixes.unwrap_or(if full { 100_000 } else { 10_000 }),
            waves: cli.waves,
        },
        peers: cli
            .peers
            .unwrap_or_else(|| if full { vec![1000, 5000] } else { vec![1000] }),
        limits: Limits {
            cap: Duration::from_secs(cli.cap.unwrap_or(if full { 300 } else { 120 })),
            stall: Duration::from_secs(cli.stall),
        },
        out: Some(cli.out.unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/side-by-side")
        })),
        keep: cli.keep,
        tortie_bin: cli.tortie_bin.unwrap_or_else(default_tortie),
        command,
    }
}

/// The CI smoke test: scenario 1, quick size, tortie and BIRD.
fn smoke_plan() -> Plan {
    Plan {
        mode: "smoke",
        scenarios: vec![1],
        targets: vec![Kind::Bird, Kind::Tortie],
        sizes: Sizes {
            feeders: 10,
            monitors: 10,
            per_feeder: 10_000,
            waves: 0,
        },
        peers: Vec::new(),
        limits: Limits {
            cap: Duration::from_secs(45),
            stall: Duration::from_secs(30),
        },
        out: None,
        keep: false,
        tortie_bin: default_tortie(),
        command: "cargo test --bench side_by_side".into(),
    }
}

fn validate(plan: &Plan) -> Result<(), BenchError> {
    let z = &plan.sizes;
    if z.feeders == 0 || z.monitors == 0 || z.per_feeder == 0 {
        return Err(BenchError::Plan(
            "--feeders, --monitors and --prefixes must be at least 1".into(),
        ));
    }
    if z.feeders > plan::MAX_CLIENTS || z.monitors > plan::MAX_CLIENTS {
        return Err(BenchError::Plan(format!(
            "at most {} feeders and {} monitors",
            plan::MAX_CLIENTS,
            plan::MAX_CLIENTS
        )));
    }
    if let Some(s) = plan.scenarios.iter().find(|s| !(1..=3).contains(*s)) {
        return Err(BenchError::Plan(format!("no scenario {s} (1, 2 or 3)")));
    }
    if let Some(p) = plan
        .peers
        .iter()
        .find(|p| **p == 0 || **p > plan::MAX_MESH_PEERS)
    {
        return Err(BenchError::Plan(format!(
            "a mesh of {p} peers: between 1 and {}",
            plan::MAX_MESH_PEERS
        )));
    }
    Ok(())
}

fn versions(plan: &Plan) -> std::collections::BTreeMap<String, String> {
    let mut v = std::collections::BTreeMap::new();
    let tortie = plan.tortie_bin.display().to_string();
    for k in &plan.targets {
        let (program, flag) = match k {
            Kind::Tortie => (tortie.as_str(), "--version"),
            Kind::Bird => ("bird", "--version"),
            Kind::Gobgp => ("gobgpd", "--version"),
            Kind::Frr => (targets::BGPD, "--version"),
        };
        v.insert(k.to_string(), targets::version(program, flag));
    }
    v
}

async fn run(plan: &Plan) -> Result<Report, BenchError> {
    validate(plan)?;
    let nofile = load::raise_nofile()?;
    info!(nofile, "open-file limit raised");
    let lo = plan::Loopback::for_this_process();
    let root = std::env::temp_dir().join(format!("tortie-bench-{}", std::process::id()));
    let ctx = RunCtx {
        lo,
        root: root.clone(),
        keep: plan.keep,
        tortie_bin: plan.tortie_bin.clone(),
        limits: plan.limits,
        base: tokio::time::Instant::now(),
    };
    let mut report = Report {
        command: plan.command.clone(),
        mode: plan.mode.into(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        machine: Machine::now(),
        versions: versions(plan),
        ..Report::default()
    };
    let reflect = plan.scenarios.contains(&1) || plan.scenarios.contains(&3);
    if reflect {
        let mut sizes = plan.sizes;
        if !plan.scenarios.contains(&3) {
            sizes.waves = 0;
        }
        info!(
            feeders = sizes.feeders,
            per_feeder = sizes.per_feeder,
            "encoding the feeders' load"
        );
        let (space, loads) = reflector::build_loads(&sizes)?;
        report
            .prefix_ranges
            .insert("scenarios 1 and 3 (/32)".into(), space.range().into());
        report.reflector_sizes = Some(sizes);
        let check = load::sink::run(lo, &loads, sizes.monitors, space, plan.limits.cap).await?;
        info!(
            feeders_mps = check.feeder_prefixes_per_sec / 1e6,
            monitors_mps = check.monitor_prefixes_per_sec / 1e6,
            "load tool against a read-only sink (M prefixes/s)"
        );
        report.self_check = Some(check);
        for &kind in &plan.targets {
            info!(target = %kind, "scenario 1{}", if sizes.waves > 0 { " and 3" } else { "" });
            let r = reflector::run(&ctx, kind, &sizes, space, &loads).await;
            log_outcome("scenario 1", &r.load);
            if plan.scenarios.contains(&1) {
                report.scenario1.push(r.load);
            }
            if let Some(c) = r.churn {
                log_outcome("scenario 3", &c);
                report.scenario3.push(c);
            }
        }
    }
    if plan.scenarios.contains(&2) {
        for &n in &plan.peers {
            let (space, loads) = mesh::build_loads(n)?;
            report
                .prefix_ranges
                .insert(format!("scenario 2, {n} peers (/26)"), space.range().into());
            for &kind in plan
                .targets
                .iter()
                .filter(|k| matches!(k, Kind::Bird | Kind::Tortie))
            {
                info!(target = %kind, peers = n, "scenario 2");
                let outcome = mesh::run(&ctx, kind, &loads).await;
                log_outcome("scenario 2", &outcome);
                report.scenario2.push(MeshRow { peers: n, outcome });
            }
        }
    }
    if !plan.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    report.machine.load_average_end = report::load_average();
    report.assess_load_tool();
    // A debug build's figures say nothing about the targets.
    if plan.mode != "smoke" {
        report.check_targets();
    }
    Ok(report)
}

fn log_outcome<T>(what: &str, o: &reflector::Outcome<T>) {
    match &o.cut {
        None => info!(target = %o.target, "{what}: finished"),
        Some(c) => warn!(target = %o.target, "{what}: {}", c.describe()),
    }
}

/// Checks that make the smoke test fail: both targets delivered everything, the JSON reads back.
fn smoke_verdict(report: &Report) -> Result<(), String> {
    for kind in [Kind::Bird, Kind::Tortie] {
        let row = report
            .scenario1
            .iter()
            .find(|r| r.target == kind)
            .ok_or_else(|| format!("no scenario 1 row for {kind}"))?;
        if let Some(c) = &row.cut {
            return Err(format!("{kind}: {}", c.describe()));
        }
        let f = row
            .figures
            .as_ref()
            .ok_or_else(|| format!("{kind}: no figures"))?;
        let goal = 10 * 10_000 * 10u64;
        if f.monitor_totals.held_sum != goal {
            return Err(format!(
                "{kind}: monitors hold {} prefixes, expected {goal}",
                f.monitor_totals.held_sum
            ));
        }
    }
    let dir = std::env::temp_dir().join(format!("tortie-bench-report-{}", std::process::id()));
    report.write(&dir).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(dir.join("report.json")).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let rows = v["scenario1"].as_array().map_or(0, Vec::len);
    if rows != 2 {
        return Err(format!(
            "report.json has {rows} scenario 1 rows, expected 2"
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    let default_level = if bench_mode { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let plan = if bench_mode {
        let cli = match Cli::try_parse_from(&args) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.print();
                return ExitCode::from(2);
            }
        };
        if cli
            .filter
            .as_deref()
            .is_some_and(|f| !"side_by_side".contains(f))
        {
            return ExitCode::SUCCESS;
        }
        let shown: Vec<&str> = args
            .iter()
            .skip(1)
            .filter(|a| *a != "--bench")
            .map(String::as_str)
            .collect();
        let command = if shown.is_empty() {
            "cargo bench --bench side_by_side".to_string()
        } else {
            format!("cargo bench --bench side_by_side -- {}", shown.join(" "))
        };
        bench_plan(cli, command)
    } else {
        // libtest's conventions, so `cargo test -- --list` and name filters behave.
        if args.iter().any(|a| a == "--list") {
            println!("side_by_side_smoke: test");
            return ExitCode::SUCCESS;
        }
        let name_filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
        if name_filter.is_some_and(|f| !"side_by_side_smoke".contains(f.as_str())) {
            println!("running 0 tests");
            return ExitCode::SUCCESS;
        }
        println!("running 1 test");
        smoke_plan()
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("side_by_side: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match rt.block_on(run(&plan)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("side_by_side: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.markdown());
    if let Some(dir) = &plan.out {
        match report.write(dir) {
            Ok(()) => println!("written: {0}/report.json, {0}/report.md", dir.display()),
            Err(e) => {
                eprintln!("side_by_side: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let failed = report.failed();
    if plan.mode == "smoke" {
        return match smoke_verdict(&report) {
            Ok(()) => {
                println!("test side_by_side_smoke ... ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("test side_by_side_smoke ... FAILED: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !failed.is_empty() {
        eprintln!("side_by_side: the run FAILED:");
        for f in &failed {
            eprintln!("  {f}");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

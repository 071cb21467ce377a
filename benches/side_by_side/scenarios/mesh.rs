//! Scenario 2, mesh scale: the target is one node of a full mesh whose N other nodes the load
//! tool simulates, each from its own 127/8 address, announcing one /26 (its pod block) and
//! End-of-RIB as soon as its session is up, as a Calico node starting next to a running
//! cluster. The clock starts with the first connection attempt; the figures are the time until
//! every session is Established and until the target's Loc-RIB holds all N blocks (asked every
//! 100 ms: tortie through its API, BIRD through `birdc show route count`). Handshakes are
//! paced as in every scenario ([`super::IN_FLIGHT`] at a time).

use super::reflector::Outcome;
use super::watch::{self, Clock, Cut, Progress};
use super::{RunCtx, connect_all, mib, secs};
use crate::error::BenchError;
use crate::load::feeder::{Feeder, FeederLoad};
use crate::load::session::SessionErrors;
use crate::plan::{self, PrefixSpace};
use crate::targets::{Kind, Role, Running, Scratch, Spec};
use serde::Serialize;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshFigures {
    pub peers: u32,
    /// From the first connection attempt to every session Established.
    pub established_secs: f64,
    /// From the first connection attempt to all N blocks in the target's Loc-RIB.
    pub converged_secs: f64,
    /// Target CPU over the same span.
    pub cpu_secs: f64,
    pub peak_rss_mib: f64,
    /// Target CPU before the first connection (reading its configuration).
    pub startup_cpu_secs: f64,
}

/// One /26 per simulated node, encoded before the target starts.
pub fn build_loads(peers: u32) -> Result<(PrefixSpace, Vec<Arc<FeederLoad>>), BenchError> {
    let space = PrefixSpace::new(peers, 26)?;
    let loads = (0..peers)
        .map(|i| FeederLoad::build(i, 1, &space, 0).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((space, loads))
}

pub async fn run(ctx: &RunCtx, kind: Kind, loads: &[Arc<FeederLoad>]) -> Outcome<MeshFigures> {
    match run_inner(ctx, kind, loads).await {
        Ok(f) => Outcome::done(kind, f),
        Err(cut) => Outcome::cut(kind, cut),
    }
}

async fn run_inner(
    ctx: &RunCtx,
    kind: Kind,
    loads: &[Arc<FeederLoad>],
) -> Result<MeshFigures, Cut> {
    let n = loads.len() as u32;
    if n > plan::MAX_MESH_PEERS {
        return Err(Cut::failed(format!(
            "{n} mesh peers: at most {}",
            plan::MAX_MESH_PEERS
        )));
    }
    let scratch =
        Scratch::new(&ctx.root, &format!("{kind}-mesh-{n}"), ctx.keep).map_err(Cut::failed)?;
    let addr = ctx.lo.target();
    let port = plan::free_port(addr).map_err(Cut::failed)?;
    let spec = Spec {
        kind,
        role: Role::MeshNode,
        addr,
        port,
        peers: (0..n).map(|i| ctx.lo.mesh_peer(i)).collect(),
        dir: scratch.path.clone(),
        tortie_bin: ctx.tortie_bin.clone(),
    };
    let clock = Clock::start(ctx.limits);
    let mut target = Running::start(&spec).map_err(Cut::failed)?;
    target
        .wait_ready(clock.deadline())
        .await
        .map_err(Cut::failed)?;
    let startup = target.sample().map_err(Cut::failed)?;
    let remote = SocketAddr::V4(SocketAddrV4::new(addr, port));
    let errors = SessionErrors::default();
    let deadline = clock.deadline();
    let start = Instant::now();
    let setups = loads
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (local, load, errors) = (ctx.lo.mesh_peer(i as u32), l.clone(), errors.clone());
            async move {
                let f = Feeder::connect(local, remote, load, deadline, errors).await?;
                f.send(f.load.announce.clone())?;
                Ok::<Feeder, BenchError>(f)
            }
        })
        .collect();
    let result = async {
        let nodes = connect_all("mesh sessions", &clock, &target, &errors, setups).await?;
        let established = nodes
            .iter()
            .map(|f| f.established_at)
            .max()
            .unwrap_or(start);
        let goal = u64::from(n);
        watch::until(
            "the Loc-RIB",
            &clock,
            &target,
            &errors,
            Duration::from_millis(100),
            || {
                let target = &target;
                async move {
                    match target.loc_rib_prefixes().await {
                        Ok(v) => Progress {
                            value: v,
                            done: v >= goal,
                            text: format!("{v} of {goal} blocks in the Loc-RIB"),
                        },
                        Err(e) => Progress {
                            value: u64::MAX,
                            done: false,
                            text: format!("Loc-RIB not readable: {e}"),
                        },
                    }
                }
            },
        )
        .await?;
        let converged = Instant::now();
        let after = target.sample().map_err(Cut::failed)?;
        drop(nodes);
        Ok::<MeshFigures, Cut>(MeshFigures {
            peers: n,
            established_secs: secs(start, established),
            converged_secs: secs(start, converged),
            cpu_secs: after.cpu_secs - startup.cpu_secs,
            peak_rss_mib: mib(after.peak_rss_kb),
            startup_cpu_secs: startup.cpu_secs,
        })
    }
    .await;
    target.stop();
    result
}

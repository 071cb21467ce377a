//! `tortie agent`: one node (or a dedicated route reflector) from Calico v3 resources.
//!
//! ```text
//!  datastore (embedded dir or etcd) ──resources──▶ Config ──plan──▶ Speaker (BGP sessions)
//!        │   └─ watched: peers added/removed/changed in place, pools to felix  │
//!        └──── IPAM blocks ──▶ origination (own blocks, borrowed /32s) ──▶ originate/withdraw
//!                                   └──▶ felix (blackholes)   speaker change stream ─┘
//!                                                                 ▼
//!                                             felix: kernel routes, tunl0 / vxlan.tortie
//! ```
//!
//! The configuration comes from the datastore (`--data-dir`, the default, or
//! `--etcd-endpoints`) and is followed while the agent runs; `--config FILE` instead runs from
//! fixed files (tests, and nodes without a datastore). A broken configuration stops the agent
//! before any session starts; a broken change at run time is logged and the agent keeps the
//! last good one. The agent marks itself alive in the datastore (an etcd lease, a heartbeat in
//! the embedded store).
//!
//! Start-up ordering: the dataplane writes nothing until the datastore has been read and the
//! initial BGP table is in (End-of-RIB from every peer, or `--initial-sync-timeout`). On SIGTERM
//! the agent closes its sessions without a NOTIFICATION and leaves its kernel routes: peers
//! that negotiated graceful restart keep its routes, the kernel keeps forwarding, and the next
//! start announces the restart (R bit) and resumes without a withdrawal. `--role
//! route-reflector` runs BGP only (no dataplane, no IPAM), for dedicated reflectors.

mod dataplane;
mod ipam_gc;
pub mod observe;
mod origination;
mod peer_sync;
mod plan;

pub use plan::{Plan, StartError, plan};

use crate::config::Config;
use crate::datastore::StoreArgs;
use crate::status_file;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tortie_bgp::speaker::{PeerSpec, Speaker, SpeakerEvent};
use tortie_ipam::store::Store;
use tracing::{error, info, warn};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataplane {
    /// BGP only: no kernel routes are programmed.
    None,
    /// Program this network namespace's kernel through felix (rtnetlink).
    Kernel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// A node: BGP, IPAM origination and (with `--dataplane kernel`) the dataplane.
    Node,
    /// A dedicated route reflector: BGP only. Its Node resource must have
    /// `routeReflectorClusterID`.
    RouteReflector,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// This node's name: the `metadata.name` of its Node resource (not needed with --flush).
    #[arg(long, required_unless_present = "flush", default_value = "")]
    pub(crate) node: String,
    /// Run from these YAML files of projectcalico.org/v3 resources instead of the datastore
    /// (repeatable; not followed for changes).
    #[arg(long = "config", value_name = "FILE")]
    pub(crate) configs: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[arg(long, value_enum, default_value = "kernel")]
    pub(crate) dataplane: Dataplane,
    #[arg(long, value_enum, default_value = "node")]
    pub(crate) role: Role,
    /// The device of the node's address (default: found from `spec.bgp.ipv4Address`).
    #[arg(long, value_name = "DEV")]
    pub(crate) underlay: Option<String>,
    /// The `rtm_protocol` number that marks every route tortie writes, and the only routes it
    /// ever reads back, changes or removes. 116 by default (no other router uses it by
    /// default: BIRD 12, FRR 186 and zebra 11, Calico's felix 80 and 3); 0-4 belong to the
    /// kernel and are refused.
    #[arg(long, value_name = "N", default_value_t = tortie_felix::netlink::TORTIE_PROTOCOL,
          value_parser = clap::value_parser!(u8).range(5..))]
    pub(crate) route_protocol: u8,
    /// Instead of running: remove everything the dataplane wrote to this node's kernel
    /// (routes of `--route-protocol`, VXLAN devices, NAT table) and exit. The same as
    /// `tortie flush`.
    #[arg(long)]
    pub(crate) flush: bool,
    /// Also collect IPAM garbage: release what nodes whose Node resource was deleted still
    /// hold (their pods' and tunnel addresses, then their blocks), as Calico's kube-controllers
    /// does. One or two agents of a cluster are enough (the route reflectors, say).
    #[arg(long)]
    pub(crate) ipam_gc: bool,
    /// How long an allocation of a deleted node, or an empty block, must stay so before
    /// `--ipam-gc` releases it (Calico's leak grace period).
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub(crate) ipam_gc_grace: u64,
    /// A prefix this node announces to its peers besides its IPAM blocks; repeatable.
    #[arg(long = "originate", value_name = "PREFIX")]
    pub(crate) originate: Vec<IpNet>,
    /// Where BGP passwords are: a BGPPeer's `password.secretKeyRef {name, key}` is read from
    /// `<DIR>/<name>/<key>` (a Kubernetes Secret mounted as files).
    #[arg(long, value_name = "DIR", default_value = "/etc/tortie/secrets")]
    pub(crate) secrets_dir: PathBuf,
    /// Hold time proposed to every peer, in seconds (0, or 3 and more).
    #[arg(long, value_name = "SECONDS", default_value_t = 90, value_parser = plan::parse_hold_time)]
    pub(crate) hold_time: u16,
    /// Seconds between connection attempts to a peer that does not answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub(crate) connect_retry: u64,
    /// Longest wait, in seconds, for the initial BGP table (End-of-RIB from every peer) before
    /// the dataplane writes anyway.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub(crate) initial_sync_timeout: u64,
    /// Write the sessions and the routes learned from each peer as JSON to this file whenever
    /// they change.
    #[arg(long, value_name = "FILE")]
    pub(crate) status_file: Option<PathBuf>,
    /// Where the agent keeps state across restarts. A marker here tells a restart from a first
    /// start: a restarted agent announces it (graceful restart R bit, RFC 4724) so its peers
    /// send their routes at once and keep its own meanwhile.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/tortie")]
    pub(crate) state_dir: PathBuf,
    /// The gRPC API's unix socket (mode 0600; its directory is created).
    #[arg(long, value_name = "PATH", default_value = "/run/tortie/tortie.sock")]
    pub(crate) api_socket: PathBuf,
    /// Also serve the API on this TCP address (read-only unless --api-allow-write).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) api_listen: Option<std::net::SocketAddr>,
    /// Allow calls that change the agent (disable a peer, refresh) over --api-listen.
    #[arg(long)]
    pub(crate) api_allow_write: bool,
    /// Serve Prometheus metrics, /readyz and /livez over HTTP on this address (off by default).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// On SIGTERM, close sessions with Cease / Administrative Shutdown (peers withdraw this
    /// node's routes at once) instead of the default graceful restart.
    #[arg(long)]
    pub(crate) withdraw_on_stop: bool,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    /// Set when the marker of an earlier run was found.
    #[arg(skip)]
    pub(crate) restarted: bool,
}

/// The marker that exists while an agent runs (and stays after a graceful-restart stop).
fn running_marker(args: &Args) -> PathBuf {
    args.state_dir.join("running")
}

fn mark_running(args: &Args) {
    let marker = running_marker(args);
    if let Err(e) = std::fs::create_dir_all(&args.state_dir)
        .and_then(|_| std::fs::write(&marker, std::process::id().to_string()))
    {
        warn!(dir = %args.state_dir.display(), error = %e, "cannot keep state; restarts will not be announced to peers");
    }
}

/// Where the configuration comes from.
enum Source {
    Files,
    /// The datastore, and a signal per change under its resources, watched from before the
    /// first read so that no change falls between the read and the watch; whether that watch
    /// is live.
    Store(
        Arc<dyn Store>,
        mpsc::UnboundedReceiver<()>,
        tokio::sync::watch::Receiver<bool>,
    ),
}

async fn load(args: &Args, source: &Source) -> Result<Config, String> {
    match source {
        Source::Files => Config::load(&args.configs)
            .map_err(|e| format!("configuration is invalid, not starting:\n{e}")),
        Source::Store(store, ..) => crate::datastore::load_config(&**store).await.map_err(|e| {
            format!(
                "configuration in {} is unusable: {e}",
                args.store.describe()
            )
        }),
    }
}

pub fn run(mut args: Args) -> ExitCode {
    if args.flush {
        return crate::flush_cmd::flush(args.route_protocol);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tortie agent: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    args.restarted = running_marker(&args).exists();
    runtime.block_on(async move {
        let source = if args.configs.is_empty() {
            let store = match args.store.open().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("tortie agent: {}: {e}", args.store.describe());
                    return ExitCode::from(2);
                }
            };
            match watch_resources(store.clone()).await {
                Ok((changes, live)) => Source::Store(store, changes, live),
                Err(e) => {
                    eprintln!("tortie agent: {}: {e}", args.store.describe());
                    return ExitCode::from(2);
                }
            }
        } else {
            Source::Files
        };
        let cfg = match load(&args, &source).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tortie agent: {e}");
                return ExitCode::from(2);
            }
        };
        for w in &cfg.warnings {
            warn!("{w}");
        }
        let plan = match checked_plan(&cfg, &args) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("tortie agent: {e}");
                return ExitCode::from(2);
            }
        };
        if args.restarted {
            info!("restarting: announcing a graceful restart to peers");
        }
        mark_running(&args);
        match serve(cfg, plan, args, source).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e}");
                eprintln!("tortie agent: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// The plan, with the role's own checks.
fn checked_plan(cfg: &Config, args: &Args) -> Result<Plan, StartError> {
    let plan = plan(cfg, args)?;
    if args.role == Role::RouteReflector && plan.speaker.cluster_id.is_none() {
        return Err(StartError::Role(format!(
            "--role route-reflector: Node {} has no spec.bgp.routeReflectorClusterID",
            args.node
        )));
    }
    Ok(plan)
}

/// The node's own addresses with their prefixes (felix's "same subnet").
fn node_addresses(cfg: &Config, node: &str) -> (Option<ipnet::Ipv4Net>, Option<ipnet::Ipv6Net>) {
    cfg.node(node)
        .ok()
        .and_then(|n| cfg.node_bgp(n))
        .map_or((None, None), |b| (b.ipv4, b.ipv6))
}

async fn serve(cfg: Config, plan: Plan, args: Args, mut source: Source) -> Result<(), StartError> {
    info!(node = %args.node, role = ?args.role, local_as = plan.speaker.local_as, router_id = %plan.speaker.router_id, peers = plan.peers.len(), "tortie agent starting");
    let is_node = args.role == Role::Node;
    let with_dataplane = is_node && args.dataplane == Dataplane::Kernel;

    let (store, mut config_changes, synced) = match std::mem::replace(&mut source, Source::Files) {
        Source::Store(s, changes, live) => {
            let (_, idle) = mpsc::unbounded_channel();
            source = Source::Store(s.clone(), idle, live.clone());
            (Some(s), Some(changes), live)
        }
        Source::Files => (None, None, tokio::sync::watch::channel(true).1),
    };
    let (observed, publish) = observe::channels(
        &args.node,
        cfg.clone(),
        store.clone(),
        with_dataplane,
        synced,
    );

    // The dataplane first (it only opens the kernel; it writes after the initial sync).
    let mut speaker_cfg = plan.speaker.clone();
    let dataplane = if with_dataplane {
        let (fib_tx, fib_rx) = mpsc::channel(64);
        speaker_cfg.fib = Some(fib_tx);
        let (v4, v6) = node_addresses(&cfg, &args.node);
        Some(
            dataplane::start(
                &args.node,
                v4,
                v6,
                dataplane::KernelOptions {
                    underlay: args.underlay.as_deref(),
                    repair_every: Duration::from_secs(60),
                    protocol: args.route_protocol,
                },
                dataplane::felix_pools(&cfg),
                fib_rx,
                dataplane::Publish {
                    fib: publish
                        .fib
                        .clone()
                        .ok_or_else(|| StartError::Dataplane("no FIB snapshot channel".into()))?,
                    events: publish.dataplane_events.clone(),
                },
            )
            .map_err(StartError::Dataplane)?,
        )
    } else {
        None
    };

    let (speaker, _router) = Speaker::start(speaker_cfg).await?;
    let mut events = speaker.subscribe();
    let api = crate::api::serve(
        args.api_socket.clone(),
        crate::api::ApiState {
            node: args.node.clone(),
            speaker: speaker.clone(),
            started: observed.started,
            observed: observed.clone(),
            tcp_listen: args.api_listen,
            allow_write: args.api_allow_write,
        },
    )
    .await
    .map_err(|e| StartError::Api(e.to_string()))?;
    let metrics = match args.metrics_listen {
        Some(addr) => Some(
            crate::metrics::serve(
                addr,
                crate::metrics::MetricsState {
                    speaker: speaker.clone(),
                    observed: observed.clone(),
                },
            )
            .await
            .map_err(|e| StartError::Metrics(e.to_string()))?,
        ),
        None => None,
    };

    let static_prefixes: BTreeSet<IpNet> = args.originate.iter().copied().collect();
    if !static_prefixes.is_empty() {
        speaker
            .originate(static_prefixes.iter().copied().collect())
            .await?;
    }
    if let Some(path) = &args.status_file {
        tokio::spawn(status_file::keep_writing(
            speaker.clone(),
            args.node.clone(),
            path.clone(),
        ));
    }

    // IPAM: this node's blocks and borrowed addresses.
    let mut share = match (&store, is_node) {
        (Some(s), true) => Some(
            origination::follow(s.clone(), &args.node)
                .await
                .map_err(StartError::Datastore)?,
        ),
        _ => None,
    };
    let mut no_export = dataplane::no_export_pools(&cfg);
    let mut services = service_prefixes(&cfg);
    let mut originated: BTreeSet<IpNet> = BTreeSet::new();
    let ipam_now = share.as_ref().map(|(rx, _)| rx.borrow().clone());
    sync_origination(
        &speaker,
        &to_originate(ipam_now.as_ref(), &no_export, &services),
        &mut originated,
        &static_prefixes,
    )
    .await?;
    if let Some(now) = &ipam_now {
        if let Some(dp) = &dataplane {
            let _ = dp
                .commands
                .send(dataplane::Command::Blocks(now.blocks.clone()));
        }
    }

    // The sessions start only now: this node's own routes are in the RIB before any
    // End-of-RIB is sent, so a peer holding them through a graceful restart never sees an
    // End-of-RIB without them (which would drop them for a moment).
    let mut running: BTreeMap<IpAddr, PeerSpec> = BTreeMap::new();
    for spec in plan.peers {
        speaker.add_peer(spec.clone()).await?;
        running.insert(spec.address, spec);
    }

    // Liveness in the datastore, and its garbage collection when asked for.
    if let Some(s) = &store {
        tokio::spawn(heartbeat(s.clone(), args.node.clone()));
        if args.ipam_gc {
            let grace = Duration::from_secs(args.ipam_gc_grace);
            info!(grace = ?grace, "IPAM GC of deleted nodes on");
            tokio::spawn(ipam_gc::run(s.clone(), grace));
        }
    } else if args.ipam_gc {
        warn!("--ipam-gc needs a datastore (--data-dir or --etcd-endpoints): not collecting");
    }

    // The initial table, then the dataplane may write.
    if let Some(dp) = &dataplane {
        wait_initial_table(
            &mut events,
            running.keys().copied().collect(),
            Duration::from_secs(args.initial_sync_timeout),
        )
        .await;
        let _ = dp.commands.send(dataplane::Command::Start);
    }

    let mut cfg = cfg;
    let signal = wait_for_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            Some(()) = recv_opt(&mut config_changes) => {
                // Let a burst of writes (an `apply -f` of many documents) settle.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(rx) = config_changes.as_mut() {
                    while rx.try_recv().is_ok() {}
                }
                let Source::Store(..) = &source else { continue };
                match load(&args, &source).await {
                    Ok(new) => {
                        let wanted = match checked_plan(&new, &args) {
                            Ok(p) => p,
                            Err(e) => {
                                error!(error = %e, "the changed configuration cannot be run; keeping the last good one");
                                continue;
                            }
                        };
                        warn_if_restart_needed(&plan.speaker, &wanted.speaker);
                        let changes = peer_sync::diff(&running, &wanted.peers);
                        info!(
                            added = changes.add.len(),
                            removed = changes.remove.len(),
                            reconnected = changes.replace.len(),
                            rerouted = changes.reroute.len(),
                            pools = new.ip_pools.len(),
                            "configuration changed"
                        );
                        if !changes.is_empty() {
                            peer_sync::apply(&speaker, &mut running, changes).await?;
                        }
                        if let Some(dp) = &dataplane {
                            let _ = dp.commands.send(dataplane::Command::Pools(dataplane::felix_pools(&new)));
                        }
                        no_export = dataplane::no_export_pools(&new);
                        services = service_prefixes(&new);
                        let ipam_now = share.as_ref().map(|(rx, _)| rx.borrow().clone());
                        sync_origination(&speaker, &to_originate(ipam_now.as_ref(), &no_export, &services), &mut originated, &static_prefixes).await?;
                        for w in &new.warnings {
                            warn!("{w}");
                        }
                        publish.config.send_replace(Arc::new(new.clone()));
                        cfg = new;
                    }
                    Err(e) => error!("{e}; keeping the last good configuration"),
                }
            }
            Some(now) = share_changed(&mut share) => {
                sync_origination(&speaker, &to_originate(Some(&now), &no_export, &services), &mut originated, &static_prefixes).await?;
                if let Some(dp) = &dataplane {
                    let _ = dp.commands.send(dataplane::Command::Blocks(now.blocks.clone()));
                }
            }
        }
    }
    drop(cfg);
    if args.withdraw_on_stop {
        info!("stopping: closing every session (Cease / Administrative Shutdown)");
        speaker
            .shutdown(Some("tortie agent stopping".into()))
            .await?;
        let _ = std::fs::remove_file(running_marker(&args));
    } else {
        // The marker stays: the next start announces a restart.
        info!("stopping for a restart: sessions dropped without NOTIFICATION, kernel routes kept");
        speaker.stop_for_restart().await?;
    }
    if let Some(dp) = dataplane {
        // Closing the command channel ends the task after its last write.
        drop(dp.commands);
        let _ = tokio::time::timeout(Duration::from_secs(5), dp.task).await;
    }
    api.stop().await;
    if let Some(m) = metrics {
        m.stop().await;
    }
    Ok(())
}

/// A changed speaker setting that a running speaker cannot take.
fn warn_if_restart_needed(
    running: &tortie_bgp::speaker::SpeakerConfig,
    wanted: &tortie_bgp::speaker::SpeakerConfig,
) {
    if running.local_as != wanted.local_as
        || running.router_id != wanted.router_id
        || running.cluster_id != wanted.cluster_id
        || running.listen != wanted.listen
    {
        warn!(
            "this node's AS, router id, cluster id or listen addresses changed: they take effect when the agent restarts"
        );
    }
}

async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn share_changed(
    share: &mut Option<(
        tokio::sync::watch::Receiver<origination::NodeShare>,
        tokio::task::JoinHandle<()>,
    )>,
) -> Option<origination::NodeShare> {
    match share {
        Some((rx, _)) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// What this node originates besides `--originate`: its IPAM share (outside the pools that
/// are not exported) and the service ranges.
fn to_originate(
    ipam: Option<&origination::NodeShare>,
    no_export: &[IpNet],
    services: &BTreeSet<IpNet>,
) -> BTreeSet<IpNet> {
    let mut w = ipam.map(|s| s.exported(no_export)).unwrap_or_default();
    w.extend(services.iter().copied());
    w
}

/// The service ranges every node announces: `serviceClusterIPs`, `serviceExternalIPs` and
/// `serviceLoadBalancerIPs` of the `default` BGPConfiguration, as Calico does (the ranges
/// themselves; kube-proxy on each node forwards what arrives).
fn service_prefixes(cfg: &Config) -> BTreeSet<IpNet> {
    cfg.bgp_configurations
        .get("default")
        .map(|c| {
            let spec = &c.resource.spec;
            spec.service_cluster_ips
                .iter()
                .chain(&spec.service_external_ips)
                .chain(&spec.service_load_balancer_ips)
                .map(|b| b.cidr.0)
                .collect()
        })
        .unwrap_or_default()
}

/// Originates what `wanted` adds and withdraws what it lost (static `--originate` prefixes
/// stay).
async fn sync_origination(
    speaker: &Speaker,
    wanted: &BTreeSet<IpNet>,
    originated: &mut BTreeSet<IpNet>,
    keep: &BTreeSet<IpNet>,
) -> Result<(), StartError> {
    let add: Vec<IpNet> = wanted.difference(originated).copied().collect();
    let gone: Vec<IpNet> = originated
        .difference(wanted)
        .filter(|p| !keep.contains(*p))
        .copied()
        .collect();
    if !add.is_empty() {
        info!(prefixes = ?add, "originating");
        speaker.originate(add).await?;
    }
    if !gone.is_empty() {
        info!(prefixes = ?gone, "withdrawing");
        speaker.withdraw(gone).await?;
    }
    *originated = wanted.clone();
    Ok(())
}

/// A signal per change under the resources prefix; the watch is renewed when it fails.
async fn watch_resources(
    store: Arc<dyn Store>,
) -> Result<
    (
        mpsc::UnboundedReceiver<()>,
        tokio::sync::watch::Receiver<bool>,
    ),
    String,
> {
    use futures::StreamExt;
    let prefix = crate::datastore::RESOURCES_PREFIX;
    let mut w = store.watch(prefix).await.map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (live_tx, live_rx) = tokio::sync::watch::channel(true);
    tokio::spawn(async move {
        loop {
            while let Some(ev) = w.next().await {
                match ev {
                    Ok(ev) => {
                        tracing::debug!(event = ?ev, "resource changed");
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "resource watch failed; watching again");
                        live_tx.send_replace(false);
                        break;
                    }
                }
            }
            w = loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                match store.watch(prefix).await {
                    Ok(w) => break w,
                    Err(e) => warn!(error = %e, "resource watch: store unavailable"),
                }
            };
            live_tx.send_replace(true);
            // Whatever changed while the watch was down is read now.
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok((rx, live_rx))
}

/// This node's liveness in the datastore, renewed every 10 s for 30 s.
async fn heartbeat(store: Arc<dyn Store>, node: String) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    loop {
        every.tick().await;
        if let Err(e) = store.heartbeat(&node, Duration::from_secs(30)).await {
            warn!(error = %e, "cannot renew this node's liveness");
        }
    }
}

/// Waits until every peer sent its End-of-RIB, or `limit`. A peer that is not Established
/// when the wait starts has nothing to send yet: it counts once it comes up and sends its
/// table, so a dead peer holds the dataplane for `limit` at most.
async fn wait_initial_table(
    events: &mut tokio::sync::broadcast::Receiver<SpeakerEvent>,
    peers: HashSet<IpAddr>,
    limit: Duration,
) {
    let start = Instant::now();
    let mut waiting = peers;
    while !waiting.is_empty() {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(SpeakerEvent::EndOfRib { peer, .. })) => {
                waiting.remove(&peer);
            }
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                warn!(
                    waiting = ?waiting,
                    "no End-of-RIB from these peers in time: the dataplane writes with what it has"
                );
                return;
            }
        }
    }
    info!(after = ?start.elapsed(), "initial BGP table in");
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

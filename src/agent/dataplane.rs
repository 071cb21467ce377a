//! The agent's dataplane task: felix driven by BGP's best routes, this node's blocks from IPAM
//! and the pools from the configuration.
//!
//! ```text
//!  speaker change stream ─┐
//!  IPAM share (blocks) ───┼─▶ Planner (pure, incremental) ──Changes──▶ Felix::apply_changes
//!  pools (config) ────────┘                                              (netlink batches)
//! ```
//!
//! Nothing is written to the kernel before [`Command::Start`]: the agent sends it once the
//! datastore is read and the initial BGP table is in (End-of-RIB from every peer, or a bounded
//! wait), so a restarting agent never removes a route only because it has not relearned it yet.
//! The first write is a full [`Felix::apply`] (dump, adopt what is right, write the rest); later
//! changes go through [`Felix::apply_changes`], one netlink message per changed route. A
//! repair pass ([`Felix::repair`]) runs every `repair_every` to put back what someone else
//! removed. Routes stay in the kernel when the agent stops.

use super::observe::{DataplaneEvent, FibEntry, FibNextHop, FibView};
use crate::config::{self, Config};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::{broadcast, watch};
use tortie_bgp::rib::RouteChange;
use tortie_felix::desired::{self, Inputs, LocalNode, Planner, Underlay, VxlanSettings};
use tortie_felix::netlink::monitor::{self, Monitor, MonitorConfig, MonitorEvent};
use tortie_felix::netlink::{Kernel, KernelConfig, Netns, NlError};
use tortie_felix::reconcile::{ApplyReport, Felix};
use tracing::{debug, info, warn};

/// What the agent tells the dataplane besides routes.
#[derive(Debug)]
pub enum Command {
    Pools(Vec<desired::Pool>),
    Blocks(BTreeSet<IpNet>),
    /// The initial state is known: write.
    Start,
}

/// The handle the agent keeps.
pub struct Dataplane {
    pub commands: mpsc::UnboundedSender<Command>,
    pub task: tokio::task::JoinHandle<()>,
}

/// The pools as felix sees them.
pub fn felix_pools(cfg: &Config) -> Vec<desired::Pool> {
    let mode = |m: config::EncapMode| match m {
        config::EncapMode::Always => desired::EncapMode::Always,
        config::EncapMode::CrossSubnet => desired::EncapMode::CrossSubnet,
        config::EncapMode::Never => desired::EncapMode::Never,
    };
    cfg.ip_pools
        .values()
        .filter_map(|p| {
            let spec = &p.resource.spec;
            Some(desired::Pool {
                cidr: spec.cidr.as_ref()?.0,
                ipip_mode: mode(spec.ipip_mode()),
                vxlan_mode: mode(spec.vxlan_mode()),
                nat_outgoing: spec.nat_outgoing.unwrap_or(false),
                disabled: spec.disabled.unwrap_or(false),
            })
        })
        .collect()
}

/// Pools whose blocks are not announced over BGP (`disableBGPExport`).
pub fn no_export_pools(cfg: &Config) -> Vec<IpNet> {
    cfg.ip_pools
        .values()
        .filter(|p| p.resource.spec.disable_bgp_export.unwrap_or(false))
        .filter_map(|p| p.resource.spec.cidr.as_ref().map(|c| c.0))
        .collect()
}

/// Finds the underlay: the named device, or the one holding the node's address.
fn underlay(
    kernel: &mut Kernel,
    name: Option<&str>,
    ipv4: Option<Ipv4Net>,
    ipv6: Option<Ipv6Net>,
) -> Result<Underlay, String> {
    let links = kernel.links().map_err(|e| format!("listing links: {e}"))?;
    let link = match name {
        Some(n) => links
            .into_iter()
            .find(|l| l.name == n)
            .ok_or_else(|| format!("the underlay device {n} does not exist"))?,
        None => {
            let mine: Vec<IpAddr> = ipv4
                .map(|n| IpAddr::V4(n.addr()))
                .into_iter()
                .chain(ipv6.map(|n| IpAddr::V6(n.addr())))
                .collect();
            let mut found = None;
            for l in links {
                let addrs = kernel
                    .addresses(l.index)
                    .map_err(|e| format!("listing addresses of {}: {e}", l.name))?;
                if addrs.iter().any(|a| mine.contains(&a.addr())) {
                    found = Some(l);
                    break;
                }
            }
            found.ok_or_else(|| {
                format!(
                    "no device holds this node's address ({}); name one with --underlay",
                    mine.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
        }
    };
    Ok(Underlay {
        name: link.name.clone(),
        index: Some(link.index),
        gateways_v4: default_gateways_v4(&link.name),
        gateways_v6: default_gateways_v6(&link.name),
        mtu: link.mtu,
    })
}

/// The IPv4 default route's gateways on `dev`, from `/proc/net/route` (this namespace's).
fn default_gateways_v4(dev: &str) -> Vec<Ipv4Addr> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Iface Destination Gateway Flags ... Mask
            if f.len() < 8 || f[0] != dev || f[1] != "00000000" || f[7] != "00000000" {
                return None;
            }
            let gw = u32::from_str_radix(f[2], 16).ok()?;
            // The file prints the address in host (little-endian) byte order.
            let gw = Ipv4Addr::from(gw.swap_bytes());
            (!gw.is_unspecified()).then_some(gw)
        })
        .collect()
}

/// The IPv6 default route's gateways on `dev`, from `/proc/net/ipv6_route`.
fn default_gateways_v6(dev: &str) -> Vec<Ipv6Addr> {
    let Ok(text) = std::fs::read_to_string("/proc/net/ipv6_route") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // dest plen src splen nexthop metric refcnt use flags dev
            if f.len() < 10 || f[9] != dev || f[1] != "00" || f[0].chars().any(|c| c != '0') {
                return None;
            }
            let gw = u128::from_str_radix(f[4], 16).ok()?;
            let gw = Ipv6Addr::from(gw);
            (!gw.is_unspecified()).then_some(gw)
        })
        .collect()
}

/// Where the dataplane publishes what it did.
pub struct Publish {
    pub fib: watch::Sender<FibView>,
    pub events: broadcast::Sender<DataplaneEvent>,
}

/// What felix believes the kernel holds, for readers.
fn fib_view(felix: &Felix, underlay: &Underlay, protocol: u8) -> FibView {
    let (underlay_mtu, underlay) = (underlay.mtu, underlay.name.as_str());
    let routes = felix
        .current()
        .map(|fib| {
            fib.routes
                .iter()
                .map(|(prefix, r)| FibEntry {
                    prefix: *prefix,
                    next_hops: match r {
                        desired::Route::Blackhole => None,
                        desired::Route::Unicast { nexthops, .. } => Some(
                            nexthops
                                .iter()
                                .map(|nh| FibNextHop {
                                    gateway: nh.gateway,
                                    device: nh.device.name(underlay).to_string(),
                                    encap: match nh.device {
                                        desired::Device::Underlay => "none",
                                        desired::Device::Tunl0 => "ipip",
                                        desired::Device::Vxlan | desired::Device::VxlanV6 => {
                                            "vxlan"
                                        }
                                    },
                                    onlink: nh.onlink,
                                })
                                .collect(),
                        ),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    FibView {
        routes,
        synced: true,
        protocol,
        underlay_mtu: Some(underlay_mtu),
        updated: Some(std::time::SystemTime::now()),
    }
}

/// How the dataplane uses the kernel.
pub struct KernelOptions<'a> {
    /// The underlay device (default: the one holding the node's address).
    pub underlay: Option<&'a str>,
    /// How often felix compares the kernel with what it wrote, and puts back what differs.
    pub repair_every: Duration,
    /// The `rtm_protocol` of every route tortie writes (`--route-protocol`).
    pub protocol: u8,
}

/// Opens the kernel of this network namespace and starts the task. Writes nothing.
pub fn start(
    node: &str,
    ipv4: Option<Ipv4Net>,
    ipv6: Option<Ipv6Net>,
    options: KernelOptions<'_>,
    pools: Vec<desired::Pool>,
    fib: mpsc::Receiver<Vec<RouteChange>>,
    publish: Publish,
) -> Result<Dataplane, String> {
    let config = KernelConfig {
        protocol: options.protocol,
        ..KernelConfig::default()
    };
    let mut kernel =
        Kernel::open(Netns::current(), config).map_err(|e| format!("opening rtnetlink: {e}"))?;
    let underlay = underlay(&mut kernel, options.underlay, ipv4, ipv6)?;
    info!(underlay = %underlay.name, mtu = underlay.mtu, gateways = ?underlay.gateways_v4, "dataplane: kernel routes through felix");
    let felix = Felix::new(kernel, underlay.name.clone(), None);
    let inputs = Inputs {
        node: LocalNode {
            name: node.to_string(),
            ipv4,
            ipv6,
            underlay,
        },
        pools,
        blocks: Vec::new(),
        routes: Vec::new(),
        vxlan: VxlanSettings::default(),
    };
    let planner = Planner::new(&inputs);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(
        felix,
        planner,
        rx,
        fib,
        (options.repair_every, options.protocol),
        publish,
    ));
    Ok(Dataplane { commands: tx, task })
}

fn log_report(what: &str, r: &ApplyReport) {
    for f in &r.failures {
        warn!(failure = %f, "dataplane: the kernel refused a change ({what})");
    }
    for p in &r.device_problems {
        warn!(problem = %p, "dataplane: tunnel device ({what})");
    }
}

fn take_routes(planner: &mut Planner, changes: Vec<RouteChange>) {
    for c in changes {
        match c.route {
            // This node's own prefixes come from IPAM (blocks), not from the RIB.
            // `priority` (a BGPFilter `setPriority` on import) is the kernel route's metric.
            Some(r) if !r.local && !r.next_hops.is_empty() => {
                planner.set_route(c.prefix, r.next_hops, r.priority)
            }
            _ => planner.remove_route(c.prefix),
        }
    }
}

fn take_command(planner: &mut Planner, c: Command, started: &mut bool) {
    match c {
        Command::Pools(p) => planner.set_pools(p),
        Command::Blocks(b) => planner.set_blocks(b),
        Command::Start => *started = true,
    }
}

/// How long after a sign of outside interference the repair runs: the events of one
/// interference (a script deleting many routes) end in one repair.
const EVENT_REPAIR_DELAY: Duration = Duration::from_secs(1);

/// Whether a kernel event means someone else changed what tortie keeps: a route of ours that is
/// still wanted deleted or replaced, one of our tunnel devices deleted or set down (the kernel
/// drops its routes without a route event), or events lost. Deletions of routes no longer
/// wanted are felix's own writes and are not.
fn interference(ev: &MonitorEvent, protocol: u8, desired: &desired::DesiredState) -> bool {
    match ev {
        MonitorEvent::Route(r) => {
            monitor::wants_repair(ev, protocol) && desired.fib.routes.contains_key(&r.prefix)
        }
        _ => {
            monitor::wants_repair(ev, protocol)
                || monitor::device_lost(ev, &[desired::TUNL0, desired::VXLAN_V4, desired::VXLAN_V6])
        }
    }
}

/// Whether an event may change what the underlay is (its MTU, its default gateways): a change
/// of the underlay device, or a default route added, changed or deleted.
fn underlay_event(ev: &MonitorEvent, underlay: &str) -> bool {
    match ev {
        MonitorEvent::Link(l) => l.name == underlay,
        MonitorEvent::Route(r) => r.prefix.prefix_len() == 0,
        MonitorEvent::Lost => true,
        _ => false,
    }
}

/// The next event of the monitor; never, without one.
async fn next_event(m: &mut Option<Monitor>) -> Result<MonitorEvent, NlError> {
    match m {
        Some(m) => m.next().await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut felix: Felix,
    mut planner: Planner,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut fib: mpsc::Receiver<Vec<RouteChange>>,
    (repair_every, protocol): (Duration, u8),
    publish: Publish,
) {
    let mut underlay = planner.inputs().node.underlay;
    let mut started = false;
    let mut synced = false;
    let mut repair = tokio::time::interval(repair_every);
    repair.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    repair.tick().await;
    // Event-driven repair on top of the periodic one: a route someone deletes comes back
    // within about a second.
    let mut kernel_events = match Monitor::open(&Netns::current(), &MonitorConfig::default()) {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(error = %e, "dataplane: no kernel route monitor; repairs are periodic only");
            None
        }
    };
    let mut repair_due: Option<tokio::time::Instant> = None;
    loop {
        let mut repair_now = false;
        let mut reread_underlay = false;
        tokio::select! {
            c = commands.recv() => match c {
                Some(c) => take_command(&mut planner, c, &mut started),
                None => return,
            },
            Some(changes) = fib.recv() => take_routes(&mut planner, changes),
            _ = repair.tick() => repair_now = synced,
            ev = next_event(&mut kernel_events) => match ev {
                Ok(ev) => {
                    reread_underlay = underlay_event(&ev, &underlay.name);
                    if synced && interference(&ev, protocol, planner.state()) {
                        debug!(event = ?ev, "dataplane: the kernel changed under tortie");
                        repair_due
                            .get_or_insert(tokio::time::Instant::now() + EVENT_REPAIR_DELAY);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "dataplane: kernel route monitor failed; repairs are periodic only");
                    kernel_events = None;
                }
            },
            _ = tokio::time::sleep_until(repair_due.unwrap_or_else(tokio::time::Instant::now)),
                if repair_due.is_some() => {
                repair_due = None;
                repair_now = synced;
            }
        }
        // Coalesce what else is queued: one write for a burst.
        while let Ok(c) = commands.try_recv() {
            take_command(&mut planner, c, &mut started);
        }
        while let Ok(changes) = fib.try_recv() {
            take_routes(&mut planner, changes);
        }
        if reread_underlay {
            // Read again as at start: the same device, its MTU and default gateways now.
            let node = planner.inputs().node;
            match self::underlay(
                felix.kernel(),
                Some(&node.underlay.name),
                node.ipv4,
                node.ipv6,
            ) {
                Ok(now) if now != node.underlay => {
                    info!(underlay = %now.name, mtu = now.mtu, gateways = ?now.gateways_v4, "dataplane: the underlay changed");
                    underlay = now.clone();
                    planner.set_node(LocalNode {
                        underlay: now,
                        ..node
                    });
                    // A full pass: tunnel devices take their MTU from the underlay.
                    repair_now = synced;
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "dataplane: cannot read the underlay again"),
            }
        }
        if !started {
            continue;
        }
        // A span per write pass: what the pass logs (refusals, tunnel problems, the first sync)
        // carries its kind. Left before the only await below.
        let pass = tracing::info_span!("dataplane_pass", pass = tracing::field::Empty);
        let in_pass = pass.enter();
        let t0 = std::time::Instant::now();
        let result = tokio::task::block_in_place(|| {
            if !synced || repair_now {
                planner.take_changes();
                let what = if synced { "repair" } else { "first sync" };
                let r = if synced {
                    felix.repair(planner.state())
                } else {
                    felix.apply(planner.state())
                };
                r.map(|r| (what, r))
            } else {
                let changes = planner.take_changes();
                if changes.is_empty() {
                    return Ok(("no change", ApplyReport::default()));
                }
                tracing::debug!(routes = ?changes.routes, "dataplane: applying changes");
                felix
                    .apply_changes(planner.state(), &changes)
                    .map(|r| ("change", r))
            }
        });
        match result {
            Ok((what, report)) => {
                pass.record("pass", what);
                if report.ops > 0 {
                    tracing::debug!(what, ops = report.ops, "dataplane: written");
                }
                if what != "no change" {
                    let view = fib_view(&felix, &underlay, protocol);
                    let _ = publish.events.send(DataplaneEvent {
                        what,
                        ops: report.ops,
                        failures: report.failures.len(),
                        took: t0.elapsed(),
                        routes: view.routes.len(),
                    });
                    publish.fib.send_replace(view);
                }
                if !synced {
                    info!(
                        ops = report.ops,
                        routes = planner.state().fib.routes.len(),
                        "dataplane: first sync written"
                    );
                    synced = true;
                }
                log_report(what, &report);
            }
            Err(e) => {
                // Lost track of the kernel: the next pass dumps it again.
                warn!(error = %e, "dataplane: writing failed; resyncing");
                synced = false;
                drop(in_pass);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

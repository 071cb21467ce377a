//! felix route-install benchmark (issue 5): 100k /26 routes via a gateway in a fresh network
//! namespace, installed by felix (plain gateway routes, and routes through one nexthop
//! object) and, in the same run, by `ip -batch` of the same routes; routes/s of each, the
//! ratio, and the time of one change against the full table.
//!
//! Then the full felix path, as the agent drives it: desired-state inputs with 100k remote /26
//! blocks of 500 remote nodes (host-gw, the nodes on the underlay's /22) → `desired::compute` →
//! `Felix::apply` on a fresh `Felix` (dump, diff, batched writes, NAT table), against `ip -batch`
//! of exactly the routes compute produced; and one changed best route against the 100k table,
//! with the netlink writes it took (must be 1): through compute + `Felix::apply` (the full
//! diff), and as the agent does it in the steady state, through `Planner::set_route` +
//! `Felix::apply_changes` (only the changed keys). For comparison, the same routes through one
//! nexthop object per remote node (netlink layer).
//!
//! `cargo bench --bench felix` (root; about 30 s). Under `cargo test` (no `--bench` argument)
//! it runs a 2,000-route smoke version. `FELIX_BENCH_ROUTES=N` overrides the size,
//! `FELIX_BENCH_REPS=N` the repetitions (median reported).
//!
//! The routes are 10.0.0.0/8 /26s (198.18.0.0/15 holds only 8,192 /26s) inside a namespace
//! whose only link is a veth to a peer namespace: nothing is ever sent anywhere.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use tortie_felix::desired::{
    self, BestRoute, EncapMode, Inputs, LocalNode, Planner, Pool, Underlay,
};
use tortie_felix::netlink::{
    Kernel, KernelConfig, KernelRoute, Netns, NexthopObject, NexthopOp, RouteOp, SocketConfig,
    TORTIE_PROTOCOL,
};
use tortie_felix::reconcile::Felix;

const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GW2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const NHID: u32 = 0x7400_0001;
const NHID2: u32 = 0x7400_0002;

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn prefix(i: u32) -> IpNet {
    IpNet::new(
        IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i * 64,
        )),
        26,
    )
    .expect("prefix")
}

fn count_ours(ns: &str) -> usize {
    let out = Command::new("ip")
        .args([
            "-n",
            ns,
            "route",
            "show",
            "proto",
            &TORTIE_PROTOCOL.to_string(),
        ])
        .output()
        .expect("ip route");
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: all-zero is a valid rusage; getrusage fills the one it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a live rusage.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (user + system) of this thread: felix's encoding plus the kernel's work inside
/// its sendmsg calls. Unlike wall time it does not count waiting for a busy CPU.
fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU time of the waited-for children (the `ip` processes).
fn children_cpu() -> Duration {
    rusage(libc::RUSAGE_CHILDREN)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    let n = env("FELIX_BENCH_ROUTES").unwrap_or(if bench { 100_000 } else { 2_000 });
    let reps = env("FELIX_BENCH_REPS").unwrap_or(if bench { 5 } else { 1 }) as usize;
    let changes = if bench { 2_001 } else { 21 };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("felix bench: needs root (network namespaces); skipped");
        return;
    }

    let ns = format!("tbench{}", std::process::id());
    let peer = format!("{ns}p");
    let _guard = Namespaces(vec![ns.clone(), peer.clone()]);
    sh(&["ip", "netns", "add", &ns]);
    sh(&["ip", "netns", "add", &peer]);
    sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    sh(&[
        "ip", "-n", &ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &peer,
    ]);
    // A /22: room for the 500 remote nodes of the full-path run (198.18.0.2 - 198.18.1.245).
    sh(&["ip", "-n", &ns, "addr", "add", "198.18.0.1/22", "dev", "v0"]);
    sh(&["ip", "-n", &ns, "link", "set", "v0", "up"]);
    sh(&[
        "ip",
        "-n",
        &peer,
        "addr",
        "add",
        "198.18.0.2/22",
        "dev",
        "v1",
    ]);
    sh(&["ip", "-n", &peer, "link", "set", "v1", "up"]);

    let netns = Netns::named(&ns).expect("netns");
    let mut k = Kernel::open(netns.clone(), KernelConfig::default()).expect("open netlink");
    let mut k_ack = Kernel::open(
        netns,
        KernelConfig {
            socket: SocketConfig {
                ack_every_message: true,
                ..SocketConfig::default()
            },
            ..KernelConfig::default()
        },
    )
    .expect("open netlink");
    let v0 = k.require_link("v0").expect("v0").index;

    // The same routes three ways.
    let gw_ops: Vec<RouteOp> = (0..n)
        .map(|i| RouteOp::Create(KernelRoute::via(prefix(i), IpAddr::V4(GW), v0)))
        .collect();
    let nh_ops: Vec<RouteOp> = (0..n)
        .map(|i| RouteOp::Create(KernelRoute::nexthop(prefix(i), NHID)))
        .collect();
    let mut batch = String::with_capacity(n as usize * 56);
    for i in 0..n {
        let _ = writeln!(
            batch,
            "route add {} via {GW} dev v0 proto {TORTIE_PROTOCOL}",
            prefix(i)
        );
    }
    let batch_file = std::env::temp_dir().join(format!("felix-bench-{}.batch", std::process::id()));
    std::fs::write(&batch_file, &batch).expect("batch file");

    let mut flush_times = Vec::new();
    let mut flush = |k: &mut Kernel| {
        let t = Instant::now();
        let r = k.flush().expect("flush");
        flush_times.push(r.ops as f64 / t.elapsed().as_secs_f64());
        assert!(r.is_ok(), "flush: {:?}", r.failures.first());
        assert_eq!(count_ours(&ns), 0);
    };

    let (mut ip_rate, mut gw_rate, mut nh_rate, mut ack_rate) = (vec![], vec![], vec![], vec![]);
    // The same as routes per CPU-second (user + system).
    let (mut ip_cpu, mut gw_cpu, mut nh_cpu) = (vec![], vec![], vec![]);
    let mut sendmsgs = 0;
    for rep in 0..reps {
        // ip -batch (the process start and file parsing included, as a user runs it).
        let (t, c) = (Instant::now(), children_cpu());
        sh(&[
            "ip",
            "-n",
            &ns,
            "-batch",
            batch_file.to_str().expect("path"),
        ]);
        ip_rate.push(f64::from(n) / t.elapsed().as_secs_f64());
        ip_cpu.push(f64::from(n) / (children_cpu() - c).as_secs_f64());
        assert_eq!(count_ours(&ns), n as usize);
        flush(&mut k);

        // felix, plain gateway routes.
        let (t, c) = (Instant::now(), thread_cpu());
        let r = k.apply_routes(&gw_ops).expect("apply");
        gw_rate.push(f64::from(n) / t.elapsed().as_secs_f64());
        gw_cpu.push(f64::from(n) / (thread_cpu() - c).as_secs_f64());
        assert!(r.is_ok(), "{:?}", r.failures.first());
        sendmsgs = r.sendmsg_calls;
        assert_eq!(count_ours(&ns), n as usize);
        flush(&mut k);

        // felix, routes through one nexthop object (created first, one message).
        let (t, c) = (Instant::now(), thread_cpu());
        k.replace_nexthop(&NexthopObject::gateway(NHID, IpAddr::V4(GW), v0, false))
            .expect("nexthop");
        let r = k.apply_routes(&nh_ops).expect("apply");
        nh_rate.push(f64::from(n) / t.elapsed().as_secs_f64());
        nh_cpu.push(f64::from(n) / (thread_cpu() - c).as_secs_f64());
        assert!(r.is_ok(), "{:?}", r.failures.first());
        assert_eq!(count_ours(&ns), n as usize);
        flush(&mut k);

        // felix, gateway routes with one ack per message (what "fewer ACKs" saves).
        if rep == 0 {
            let t = Instant::now();
            let r = k_ack.apply_routes(&gw_ops).expect("apply");
            ack_rate.push(f64::from(n) / t.elapsed().as_secs_f64());
            assert!(r.is_ok());
            flush(&mut k);
        }
    }
    let _ = std::fs::remove_file(&batch_file);

    // One change against the full table: replace one route (gateway mode), alternating gateways.
    assert!(k.apply_routes(&gw_ops).expect("apply").is_ok());
    let t = Instant::now();
    let dumped = k.dump_routes().expect("dump").len();
    let dump_time = t.elapsed();
    assert_eq!(dumped, n as usize);
    let target = prefix(n / 2);
    let mut one = Vec::with_capacity(changes);
    for i in 0..changes {
        let gw = if i % 2 == 0 { GW2 } else { GW };
        let r = KernelRoute::via(target, IpAddr::V4(gw), v0);
        let t = Instant::now();
        k.replace_route(&r).expect("replace");
        one.push(t.elapsed());
    }
    flush(&mut k);

    // nhid mode: one route re-pointed to another object, and one object re-pointed (which
    // moves every route through it).
    k.replace_nexthop(&NexthopObject::gateway(NHID, IpAddr::V4(GW), v0, false))
        .expect("nexthop");
    k.replace_nexthop(&NexthopObject::gateway(NHID2, IpAddr::V4(GW2), v0, false))
        .expect("nexthop");
    assert!(k.apply_routes(&nh_ops).expect("apply").is_ok());
    let mut one_nh = Vec::with_capacity(changes);
    for i in 0..changes {
        let r = KernelRoute::nexthop(target, if i % 2 == 0 { NHID2 } else { NHID });
        let t = Instant::now();
        k.replace_route(&r).expect("replace");
        one_nh.push(t.elapsed());
    }
    let mut node_move = Vec::new();
    for i in 0..(changes / 10).max(3) {
        let o = NexthopObject::gateway(
            NHID,
            IpAddr::V4(if i % 2 == 0 { GW2 } else { GW }),
            v0,
            false,
        );
        let t = Instant::now();
        let r = k.apply_nexthops(&[NexthopOp::Replace(o)]).expect("nexthop");
        node_move.push(t.elapsed());
        assert!(r.is_ok());
    }
    flush(&mut k);

    let ip_r = median(&mut ip_rate);
    let gw_r = median(&mut gw_rate);
    let nh_r = median(&mut nh_rate);
    let flush_r = median(&mut flush_times);
    let one_med = percentile(&mut one, 0.5);
    let one_p99 = percentile(&mut one, 0.99);
    let nh_med = percentile(&mut one_nh, 0.5);
    let move_med = percentile(&mut node_move, 0.5);
    println!(
        "felix route install: {n} IPv4 /26 routes via a gateway, median of {reps} runs ({})",
        if bench { "bench" } else { "smoke" }
    );
    let (ip_c, gw_c, nh_c) = (
        median(&mut ip_cpu),
        median(&mut gw_cpu),
        median(&mut nh_cpu),
    );
    println!(
        "                                     wall clock               per CPU-second (user+sys)"
    );
    let row = |name: &str, wall: f64, cpu: f64, note: &str| {
        println!(
            "  {name:<33}{wall:>9.0} routes/s {:>5.2}x  {cpu:>9.0} routes/s {:>5.2}x  {note}",
            wall / ip_r,
            cpu / ip_c
        );
    };
    row("ip -batch", ip_r, ip_c, "");
    row(
        "felix, gateway routes",
        gw_r,
        gw_c,
        &format!("({sendmsgs} sendmsg calls)"),
    );
    row("felix, routes via one nhid object", nh_r, nh_c, "");
    if let Some(a) = ack_rate.first() {
        println!(
            "  felix, gateway, ack per message  {:>9.0} routes/s {:>5.2}x  (one run)",
            a,
            a / ip_r
        );
    }
    println!(
        "  felix delete (flush)             {:>9.0} routes/s",
        flush_r
    );
    println!(
        "  felix dump of {n} routes: {:.1} ms",
        dump_time.as_secs_f64() * 1e3
    );
    println!("one change against {n} routes ({changes} samples):");
    println!(
        "  replace one gateway route          median {:>7.1} µs  p99 {:>7.1} µs",
        one_med.as_secs_f64() * 1e6,
        one_p99.as_secs_f64() * 1e6
    );
    println!(
        "  re-point one route to another nhid median {:>7.1} µs",
        nh_med.as_secs_f64() * 1e6
    );
    println!(
        "  replace the node's nexthop object  median {:>7.1} µs  (moves all {n} routes)",
        move_med.as_secs_f64() * 1e6
    );
    let best = gw_r.max(nh_r) / ip_r;
    println!(
        "targets: >= 1.25x ip -batch: {} ({best:.2}x best mode); single change < 1 ms: {}",
        if best >= 1.25 { "met" } else { "MISSED" },
        if one_med < Duration::from_millis(1) {
            "met"
        } else {
            "MISSED"
        }
    );

    drop(k);
    drop(k_ack);
    full_path(&ns, n, reps, if bench { 21 } else { 5 }, changes);
}

/// Remote nodes of the full-path run.
const NODES: u32 = 500;

/// Remote node `i`: 198.18.0.2 upwards, on the namespace's /22.
fn remote_node(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 2)) + i)
}

/// What the agent would hand felix: this node 198.18.0.1/22 on v0, one host-gw pool (10.0.0.0/8,
/// no encapsulation, no NAT), no block of its own, and `n` remote blocks spread over 500 nodes.
fn bench_inputs(n: u32) -> Inputs {
    Inputs {
        node: LocalNode {
            name: "bench".into(),
            ipv4: Some(Ipv4Net::new(Ipv4Addr::new(198, 18, 0, 1), 22).expect("prefix")),
            ipv6: None,
            underlay: Underlay {
                name: "v0".into(),
                index: None,
                gateways_v4: vec![],
                gateways_v6: vec![],
                mtu: 1500,
            },
        },
        pools: vec![Pool {
            cidr: "10.0.0.0/8".parse().expect("pool"),
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: false,
            disabled: false,
        }],
        blocks: vec![],
        routes: (0..n)
            .map(|i| BestRoute {
                prefix: prefix(i),
                next_hops: vec![IpAddr::V4(remote_node(i % NODES))],
                priority: None,
            })
            .collect(),
        vxlan: Default::default(),
    }
}

fn new_felix(ns: &str) -> Felix {
    let k = Kernel::open_named(ns).expect("open netlink");
    Felix::new(k, "v0", Some(ns.to_string()))
}

/// The full felix path against `ip -batch` of the same routes, and one change through it.
fn full_path(ns: &str, n: u32, reps: usize, changes: usize, planner_changes: usize) {
    let inputs = bench_inputs(n);
    let t = Instant::now();
    let desired = desired::compute(&inputs);
    let first_compute = t.elapsed();
    assert_eq!(desired.fib.routes.len(), n as usize);
    assert!(desired.problems.is_empty(), "{:?}", desired.problems);

    // `ip -batch` of exactly the routes compute produced.
    let mut batch = String::with_capacity(n as usize * 56);
    for (p, r) in &desired.fib.routes {
        let gw = r.nexthops()[0].gateway;
        let _ = writeln!(
            batch,
            "route add {p} via {gw} dev v0 proto {TORTIE_PROTOCOL}"
        );
    }
    let batch_file =
        std::env::temp_dir().join(format!("felix-bench-full-{}.batch", std::process::id()));
    std::fs::write(&batch_file, &batch).expect("batch file");

    let (mut ip_rate, mut felix_rate, mut apply_only) = (vec![], vec![], vec![]);
    let mut per_node_nh = vec![];
    let mut compute_times = vec![first_compute.as_secs_f64()];
    let mut writes = 0;
    for _ in 0..reps {
        let t = Instant::now();
        sh(&["ip", "-n", ns, "-batch", batch_file.to_str().expect("path")]);
        ip_rate.push(f64::from(n) / t.elapsed().as_secs_f64());
        assert_eq!(count_ours(ns), n as usize);
        new_felix(ns).flush().expect("flush");
        assert_eq!(count_ours(ns), 0);

        // A fresh felix each time, as a starting agent: compute, then apply (dump, diff, write).
        let t = Instant::now();
        let desired = desired::compute(&inputs);
        let computed = t.elapsed();
        let mut felix = new_felix(ns);
        let r = felix.apply(&desired).expect("apply");
        let total = t.elapsed();
        assert!(r.failures.is_empty(), "{:?}", r.failures.first());
        assert_eq!(r.ops, n as usize);
        writes = felix.writes();
        compute_times.push(computed.as_secs_f64());
        felix_rate.push(f64::from(n) / total.as_secs_f64());
        apply_only.push(f64::from(n) / (total - computed).as_secs_f64());
        assert_eq!(count_ours(ns), n as usize);
        felix.flush().expect("flush");

        // For comparison, what the netlink layer does with one nexthop object per remote node
        // (Felix::apply writes gateway routes): the kernel's fib_info hash leaves the gateway
        // out, so 500 gateways share one hash chain that every gateway route insert walks.
        let mut k = Kernel::open_named(ns).expect("open netlink");
        let v0 = k.require_link("v0").expect("v0").index;
        let t = Instant::now();
        let objects: Vec<NexthopOp> = (0..NODES)
            .map(|g| {
                NexthopOp::Replace(NexthopObject::gateway(
                    NHID + 16 + g,
                    IpAddr::V4(remote_node(g)),
                    v0,
                    false,
                ))
            })
            .collect();
        assert!(k.apply_nexthops(&objects).expect("nexthops").is_ok());
        let ops: Vec<RouteOp> = (0..n)
            .map(|i| RouteOp::Create(KernelRoute::nexthop(prefix(i), NHID + 16 + i % NODES)))
            .collect();
        assert!(k.apply_routes(&ops).expect("apply").is_ok());
        per_node_nh.push(f64::from(n) / t.elapsed().as_secs_f64());
        assert_eq!(count_ours(ns), n as usize);
        assert!(k.flush().expect("flush").is_ok());
    }
    let _ = std::fs::remove_file(&batch_file);

    // One change against the full table: block n/2 moves to another node and back, alternately.
    let mut felix = new_felix(ns);
    felix.apply(&desired).expect("apply");
    let mut inputs = inputs;
    let k = (n / 2) as usize;
    let (home, other) = (
        inputs.routes[k].next_hops[0],
        IpAddr::V4(remote_node((n / 2 + 1) % NODES)),
    );
    let (mut compute_one, mut apply_one, mut writes_one) = (vec![], vec![], vec![]);
    for i in 0..changes {
        inputs.routes[k].next_hops = vec![if i % 2 == 0 { other } else { home }];
        let t = Instant::now();
        let d = desired::compute(&inputs);
        compute_one.push(t.elapsed());
        let w = felix.writes();
        let t = Instant::now();
        let r = felix.apply(&d).expect("apply");
        apply_one.push(t.elapsed());
        writes_one.push(felix.writes() - w);
        assert_eq!(r.ops, 1, "{r:?}");
    }
    assert!(
        writes_one.iter().all(|&w| w == 1),
        "netlink writes per change: {writes_one:?}"
    );

    // The steady state: the same change through the incremental planner and apply_changes.
    let t = Instant::now();
    let mut planner = Planner::new(&inputs);
    let planner_new = t.elapsed();
    assert_eq!(planner.state(), &desired::compute(&inputs));
    let target = inputs.routes[k].prefix;
    let (mut plan_one, mut changes_one, mut total_one, mut pwrites) =
        (vec![], vec![], vec![], vec![]);
    for i in 0..planner_changes {
        let nh = if i % 2 == 0 { home } else { other };
        let w = felix.writes();
        let t = Instant::now();
        planner.set_route(target, [nh], None);
        let c = planner.take_changes();
        let planned = t.elapsed();
        let r = felix
            .apply_changes(planner.state(), &c)
            .expect("apply_changes");
        let total = t.elapsed();
        pwrites.push(felix.writes() - w);
        assert_eq!((r.ops, c.routes.len()), (1, 1), "{r:?} {c:?}");
        plan_one.push(planned);
        changes_one.push(total - planned);
        total_one.push(total);
    }
    assert!(
        pwrites.iter().all(|&w| w == 1),
        "netlink writes per change: {pwrites:?}"
    );
    // And the kernel holds what a full computation says.
    let mut check = new_felix(ns);
    let r = check
        .apply(&desired::compute(&planner.inputs()))
        .expect("apply");
    assert_eq!((r.ops, check.writes()), (0, 0), "{r:?}");
    felix.flush().expect("flush");

    let ip_r = median(&mut ip_rate);
    let f_r = median(&mut felix_rate);
    let a_r = median(&mut apply_only);
    let c = median(&mut compute_times);
    let nh_r = median(&mut per_node_nh);
    println!(
        "full felix path: {n} remote /26 blocks of {NODES} nodes (host-gw), inputs -> compute -> Felix::apply, median of {reps} runs"
    );
    println!("  ip -batch of the same routes          {ip_r:>9.0} routes/s");
    println!(
        "  felix, compute + apply               {f_r:>9.0} routes/s {:>5.2}x  ({writes} netlink writes)",
        f_r / ip_r
    );
    println!(
        "  felix, apply alone                   {a_r:>9.0} routes/s {:>5.2}x",
        a_r / ip_r
    );
    println!(
        "  (netlink layer, {NODES} per-node nhid objects {nh_r:>9.0} routes/s {:>5.2}x  not Felix::apply's way)",
        nh_r / ip_r
    );
    println!("  compute of {n} routes: {:.1} ms", c * 1e3);
    let (cm, am) = (
        percentile(&mut compute_one, 0.5),
        percentile(&mut apply_one, 0.5),
    );
    println!(
        "one changed best route against {n} routes ({changes} samples): compute median {:.1} ms, Felix::apply median {:.2} ms (p99 {:.2} ms), {} netlink write(s) each",
        cm.as_secs_f64() * 1e3,
        am.as_secs_f64() * 1e3,
        percentile(&mut apply_one, 0.99).as_secs_f64() * 1e3,
        writes_one[0]
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (tm, tp) = (
        percentile(&mut total_one, 0.5),
        percentile(&mut total_one, 0.99),
    );
    println!(
        "one changed best route, Planner::set_route + Felix::apply_changes ({planner_changes} samples): median {:.1} µs, p99 {:.1} µs (planner median {:.1} µs, apply_changes median {:.1} µs), {} netlink write(s) each; Planner::new of {n} routes {:.1} ms",
        us(tm),
        us(tp),
        us(percentile(&mut plan_one, 0.5)),
        us(percentile(&mut changes_one, 0.5)),
        pwrites[0],
        planner_new.as_secs_f64() * 1e3,
    );
    println!(
        "target: single change < 1 ms end to end (planner + apply_changes, p99): {}",
        if tp < Duration::from_millis(1) {
            "met"
        } else {
            "MISSED"
        }
    );
}

//! RIB throughput and memory: Adj-RIB-In insert plus the decision process for a million
//! routes from ten peers, the withdrawal of all of them, and the UPDATEs an RR client is sent.
//!
//! Run: `cargo bench --bench rib` (two to three minutes once built). Criterion reports each
//! case in routes/s; at the end a table gives, per case, the median and the best of the timed
//! runs, in million routes per second, the same by the CPU time of the thread (the figure to
//! trust on a busy machine: it leaves out the time spent waiting for a core), and the heap each
//! path costs, measured with a counting global allocator, against the targets of issue 4 (2 M
//! routes/s on one core, under 200 bytes per path). Filters select cases as usual
//! (`cargo bench --bench rib -- load/unique`); memory is measured when a `load` case runs. A case whose first run takes over three seconds with its setup is timed that
//! once instead of ten times. Under `cargo test --all-targets` (criterion's test mode) the
//! same code runs once on a table a hundred times smaller, to keep it compiling and working;
//! its figures mean nothing.
//!
//! The speaker is a route reflector (AS 64512, cluster 198.18.0.1) with ten peers:
//! - six iBGP route reflector clients (Calico nodes) announcing /26 blocks with their own
//!   address as next hop;
//! - two iBGP non-clients (the other reflectors of the mesh) sending reflected routes, with
//!   ORIGINATOR_ID and CLUSTER_LIST;
//! - two eBGP peers (top-of-rack routers, AS 65001 and 65002) announcing /24s with a two-AS
//!   path, MED and communities.
//!
//! Each peer sends 100,000 routes in UPDATEs of 500 prefixes sharing attributes, built with
//! the codec's types before anything is timed, and applied interleaved (one UPDATE of each
//! peer in turn), as a router task taking bursts from ten sessions would.
//! - `unique`: every peer announces its own 100,000 prefixes: 1,000,000 prefixes, one path
//!   each (the Adj-RIB-In insert, the decision process on a single path).
//! - `shared`: the ten peers announce the same 100,000 prefixes: ten paths per prefix, as a
//!   reflector sees. The attributes make the decision process go all the way: equal
//!   LOCAL_PREF, AS path length and ORIGIN, MED within each neighbouring AS, eBGP over iBGP,
//!   then the two eBGP paths form a multipath group ordered by router id.
//!
//! Cases, each on a fresh RIB whose eleven sessions are Established (the ten above, their
//! initial table walk not started yet, and one more RR client that announces nothing and has
//! had its End-of-RIB):
//! - `load`: every UPDATE applied (import, Loc-RIB insert, decision process, change queues).
//! - `withdraw`: on the loaded table whose changes the dataplane and the client have taken,
//!   UPDATEs withdrawing every route.
//! - `export`: on the loaded table, `run_export_pass` then `take_updates` for the listening RR
//!   client (4,096 prefixes a call, as the router task does) until it has nothing left; its
//!   figure is per prefix sent.
//! - `anchor`: the same-run anchor for `load`, on an empty `BTreeMap`: the same UPDATEs in
//!   the same order, one shared copy of each UPDATE's attributes and a path pushed per prefix,
//!   nothing else. `load` is reported as a multiple of its time, which machine load changes
//!   far less than the absolute rate.
//!
//! Memory: the live heap after the load minus before it (the UPDATEs are built before and
//! still alive after, so they cancel out), divided by the number of paths. `B/path` is the
//! table as it stays, once the dataplane has taken every change and the client every UPDATE;
//! `queued` is right after the load, with the change queues for the dataplane and the export
//! pass still full (a million-prefix burst not yet handed on); `peak` the most during the
//! load. The counting costs an atomic add per allocation, in the timed runs too.

use criterion::{BenchmarkId, Criterion, Throughput};
use ipnet::Ipv4Net;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tortie_bgp::rib::{PeerId, Rib, RibConfig, RibPeer, SessionInfo};
use tortie_bgp::wire::{AsPath, Attributes, Community, Ctx, Family, Nlri, Origin, Update};

// ---------------------------------------------------------------------------------------------
// A counting allocator: live bytes and the peak since the last reset.

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// The input.

const LOCAL_AS: u32 = 64512;
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEERS: usize = 10;
/// Routes per peer (a hundred times fewer in test mode).
const PER_PEER: usize = 100_000;
const PER_UPDATE: usize = 500;
/// Prefixes per `take_updates` call (the router task's batch).
const TAKE_BATCH: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    NonClient,
    Ebgp(u32),
}

const ROLES: [Role; PEERS] = [
    Role::Client,
    Role::Client,
    Role::Client,
    Role::NonClient,
    Role::Ebgp(65001),
    Role::Client,
    Role::Client,
    Role::NonClient,
    Role::Ebgp(65002),
    Role::Client,
];

fn peer_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 11 + i as u8)
}

/// The router id of peer `i`: not in address order, so the tie-break looks at it.
fn peer_id(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 100 - 7 * i as u8)
}

/// The listening RR client.
const LISTENER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 99);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// Each peer its own prefixes: one path per prefix.
    Unique,
    /// Every peer the same prefixes: ten paths per prefix.
    Shared,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Unique => "unique",
            Variant::Shared => "shared",
        }
    }
}

/// What peer `i` attaches to its routes (`n`: which of its UPDATEs, so attribute sets vary a
/// little between messages, as they do in a real table).
fn attributes(i: usize, n: usize, variant: Variant) -> Attributes {
    let origin_as = 65100 + (n % 50) as u32;
    let mut a = Attributes {
        origin: Some(Origin::Igp),
        next_hop: Some(peer_addr(i)),
        ..Attributes::default()
    };
    match ROLES[i] {
        Role::Client => {
            // A Calico node: its own blocks, no AS path; in the shared variant the routes it
            // learned from its own upstream (one AS, as long as the eBGP paths' after prepend
            // would not matter: the eBGP ones are two long).
            a.as_path = Some(match variant {
                Variant::Unique => AsPath::default(),
                Variant::Shared => AsPath::sequence(vec![64999, origin_as]),
            });
            a.local_pref = Some(100);
            a.communities = vec![Community::new(64512, 100 + i as u16)];
        }
        Role::NonClient => {
            // Reflected by another RR of the mesh from one of its clients.
            a.as_path = Some(match variant {
                Variant::Unique => AsPath::default(),
                Variant::Shared => AsPath::sequence(vec![64999, origin_as]),
            });
            a.local_pref = Some(100);
            a.originator_id = Some(Ipv4Addr::new(10, 1, 0, 1 + (n % 200) as u8));
            a.cluster_list = vec![Ipv4Addr::new(198, 18, 0, 2 + i as u8)];
            a.next_hop = Some(Ipv4Addr::new(10, 1, 0, 1 + (n % 200) as u8));
            a.communities = vec![Community::new(64512, 200)];
        }
        Role::Ebgp(asn) => {
            a.as_path = Some(AsPath::sequence(vec![asn, origin_as]));
            a.med = Some(10 * i as u32);
            a.communities = vec![Community::new(asn as u16, 1), Community::new(65535, 65281)];
        }
    }
    a
}

/// Prefix `k` of peer `i`.
fn prefix(i: usize, k: usize, per_peer: usize, variant: Variant) -> Ipv4Net {
    match variant {
        // Clients: /26 blocks from 100.64.0.0; the others /24s from 20.0.0.0; every peer its
        // own range.
        Variant::Unique => match ROLES[i] {
            Role::Client => {
                let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
                let g = (i * per_peer + k) as u32;
                Ipv4Net::new(Ipv4Addr::from(base + g * 64), 26).unwrap()
            }
            _ => {
                let base = u32::from(Ipv4Addr::new(20, 0, 0, 0));
                let g = (i * per_peer + k) as u32;
                Ipv4Net::new(Ipv4Addr::from(base + g * 256), 24).unwrap()
            }
        },
        // The same /24s for everyone, in an order that differs per peer (each peer's UPDATEs
        // carry its own slice of the table first).
        Variant::Shared => {
            let base = u32::from(Ipv4Addr::new(20, 0, 0, 0));
            let g = ((k + i * per_peer / PEERS) % per_peer) as u32;
            Ipv4Net::new(Ipv4Addr::from(base + g * 256), 24).unwrap()
        }
    }
}

struct Input {
    variant: Variant,
    per_peer: usize,
    /// Per peer, its UPDATEs.
    announce: Vec<Vec<Update>>,
    withdraw: Vec<Vec<Update>>,
}

impl Input {
    fn new(variant: Variant, per_peer: usize) -> Input {
        let mut announce = Vec::new();
        let mut withdraw = Vec::new();
        for i in 0..PEERS {
            let mut a = Vec::new();
            let mut w = Vec::new();
            for (n, start) in (0..per_peer).step_by(PER_UPDATE).enumerate() {
                let nlri: Vec<Nlri<Ipv4Net>> = (start..(start + PER_UPDATE).min(per_peer))
                    .map(|k| Nlri::new(prefix(i, k, per_peer, variant)))
                    .collect();
                w.push(Update {
                    withdrawn: nlri.clone(),
                    ..Update::default()
                });
                a.push(Update {
                    attrs: attributes(i, n, variant),
                    nlri,
                    ..Update::default()
                });
            }
            announce.push(a);
            withdraw.push(w);
        }
        Input {
            variant,
            per_peer,
            announce,
            withdraw,
        }
    }

    fn routes(&self) -> usize {
        PEERS * self.per_peer
    }

    fn prefixes(&self) -> usize {
        match self.variant {
            Variant::Unique => self.routes(),
            Variant::Shared => self.per_peer,
        }
    }
}

fn session(bgp_id: Ipv4Addr) -> SessionInfo {
    SessionInfo {
        bgp_id,
        families: vec![Family::Ipv4Unicast],
        tx: Ctx {
            as4: true,
            ..Ctx::default()
        },
        local_address: Some(IpAddr::V4(ROUTER_ID)),
        peer_graceful_restart: None,
        extended_next_hop: false,
    }
}

/// A route reflector with its eleven sessions up: the ten announcing peers (ids in
/// `ROLES` order) and the listener, which has had its (empty) table and End-of-RIB.
fn fresh_rib() -> (Rib, Vec<PeerId>, PeerId) {
    let mut cfg = RibConfig::new(LOCAL_AS, ROUTER_ID);
    cfg.cluster_id = Some(ROUTER_ID);
    let mut rib = Rib::new(cfg);
    let mut ids = Vec::new();
    for (i, role) in ROLES.iter().enumerate() {
        let asn = match role {
            Role::Ebgp(asn) => *asn,
            _ => LOCAL_AS,
        };
        let mut p = RibPeer::new(IpAddr::V4(peer_addr(i)), asn);
        p.rr_client = *role == Role::Client;
        let id = rib.add_peer(p);
        rib.peer_up(id, session(peer_id(i)));
        ids.push(id);
    }
    let mut p = RibPeer::new(IpAddr::V4(LISTENER_ADDR), LOCAL_AS);
    p.rr_client = true;
    let listener = rib.add_peer(p);
    rib.peer_up(listener, session(Ipv4Addr::new(192, 0, 2, 250)));
    while rib.has_updates(listener) {
        rib.take_updates(listener, TAKE_BATCH).unwrap();
    }
    (rib, ids, listener)
}

/// Applies one UPDATE of each peer in turn.
fn apply_all(rib: &mut Rib, ids: &[PeerId], updates: &[Vec<Update>]) {
    let rounds = updates.iter().map(Vec::len).max().unwrap_or(0);
    for n in 0..rounds {
        for (i, per_peer) in updates.iter().enumerate() {
            if let Some(u) = per_peer.get(n) {
                rib.apply_update(ids[i], u).unwrap();
            }
        }
    }
}

/// The anchor's table: prefix to its paths (peer, shared attributes).
type AnchorTable = BTreeMap<Ipv4Net, Vec<(usize, Arc<Attributes>)>>;

/// The same-run anchor of `load`: the least any RIB does with these UPDATEs, in the same
/// interleaved order: one shared copy of each UPDATE's attributes and every prefix's path
/// pushed into a plain `BTreeMap`. No policy, loop checks, decision process or change queues.
fn anchor_load(table: &mut AnchorTable, updates: &[Vec<Update>]) {
    let rounds = updates.iter().map(Vec::len).max().unwrap_or(0);
    for n in 0..rounds {
        for (i, per_peer) in updates.iter().enumerate() {
            if let Some(u) = per_peer.get(n) {
                let attrs = Arc::new(u.attrs.clone());
                for nlri in &u.nlri {
                    table
                        .entry(nlri.prefix)
                        .or_default()
                        .push((i, attrs.clone()));
                }
            }
        }
    }
}

/// The export pass and every UPDATE for the listener; returns the prefixes announced.
fn export_all(rib: &mut Rib, listener: PeerId) -> usize {
    rib.run_export_pass();
    let mut announced = 0;
    while rib.has_updates(listener) {
        for u in rib.take_updates(listener, TAKE_BATCH).unwrap() {
            announced += u.nlri.len();
        }
    }
    announced
}

fn loaded(input: &Input) -> (Rib, Vec<PeerId>, PeerId) {
    let (mut rib, ids, listener) = fresh_rib();
    apply_all(&mut rib, &ids, &input.announce);
    (rib, ids, listener)
}

/// Loaded, and the change queues drained: the dataplane took every change and the listener
/// every UPDATE, as the router task does between bursts.
fn settled(input: &Input) -> (Rib, Vec<PeerId>, PeerId) {
    let (mut rib, ids, listener) = loaded(input);
    while rib.fib_changes_pending() > 0 {
        drop(rib.take_fib_changes(8192));
    }
    assert_eq!(export_all(&mut rib, listener), input.prefixes());
    (rib, ids, listener)
}

// ---------------------------------------------------------------------------------------------
// Timing: criterion, with every timed run also kept here for the table at the end.

/// Per timed run: the case, the wall-clock time and the CPU time of the thread.
static TIMES: Mutex<Vec<(String, Duration, Duration)>> = Mutex::new(Vec::new());

fn record(case: &str, wall: Duration, cpu: Duration) {
    TIMES.lock().unwrap().push((case.to_string(), wall, cpu));
}

/// CPU time of this thread: on a shared machine, what the run cost one core, whatever else
/// ran beside it (wall-clock time also counts the time the thread waited for a core).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Times `run` on what `setup` makes, `iters` times; setup and the drop of what is left are
/// not timed.
fn timed<S>(
    case: &str,
    iters: u64,
    setup: &impl Fn() -> S,
    run: &mut impl FnMut(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut s = setup();
        let (t, c) = (Instant::now(), thread_cpu());
        run(&mut s);
        let (d, cpu) = (t.elapsed(), thread_cpu() - c);
        record(case, d, cpu);
        total += d;
        drop(black_box(s));
    }
    total
}

/// A run that takes longer than this with its setup is not repeated for criterion's ten
/// samples: the case is timed once (a RIB with a quadratic path would otherwise keep the bench
/// busy for many minutes).
const SLOW: Duration = Duration::from_secs(3);

/// Whether criterion's command line selects `id` (its positional filter, taken here as a
/// substring, which is what the usual filters amount to).
fn selected(id: &str) -> bool {
    // Options of criterion's command line that take a value.
    const WITH_VALUE: [&str; 14] = [
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--color",
        "--output-format",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filters = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if WITH_VALUE.contains(&a.as_str()) {
            i += 1;
        } else if !a.starts_with('-') {
            filters.push(a.clone());
        }
        i += 1;
    }
    filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
}

/// One case: a criterion bench of `run` on what `setup` makes, unless a first run (timed
/// too) shows it is too slow for that.
fn case<S>(
    g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    op: &str,
    variant: &str,
    setup: impl Fn() -> S,
    mut run: impl FnMut(&mut S),
) {
    let name = format!("{op}/{variant}");
    if !selected(&format!("rib/{name}")) {
        return;
    }
    // `--list` only names the benches.
    let listing = std::env::args().any(|a| a == "--list");
    // The first run, with its setup: what each of criterion's samples would cost.
    let t = Instant::now();
    if !listing {
        timed(&name, 1, &setup, &mut run);
    }
    let first = t.elapsed();
    if first > SLOW {
        println!(
            "rib/{name}: {:.1} s for one run and its setup, too slow for ten samples: timed \
             once (see the table)",
            first.as_secs_f64()
        );
        return;
    }
    g.bench_function(BenchmarkId::new(op, variant), |b| {
        b.iter_custom(|iters| timed(&name, iters, &setup, &mut run))
    });
}

fn benches(c: &mut Criterion, inputs: &[Input]) {
    for input in inputs {
        let v = input.variant.name();
        let mut g = c.benchmark_group("rib");
        g.throughput(Throughput::Elements(input.routes() as u64));
        case(&mut g, "anchor", v, AnchorTable::new, |t| {
            anchor_load(t, &input.announce);
            assert_eq!(t.len(), input.prefixes());
        });
        case(&mut g, "load", v, fresh_rib, |(rib, ids, _)| {
            apply_all(rib, ids, &input.announce)
        });
        case(
            &mut g,
            "withdraw",
            v,
            || settled(input),
            |(rib, ids, _)| apply_all(rib, ids, &input.withdraw),
        );
        g.throughput(Throughput::Elements(input.prefixes() as u64));
        case(
            &mut g,
            "export",
            v,
            || loaded(input),
            |(rib, _, listener)| {
                let n = export_all(rib, *listener);
                assert_eq!(n, input.prefixes());
            },
        );
        g.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Memory, and the table.

struct Memory {
    /// Bytes per path right after the load, change queues full.
    loaded: f64,
    /// Peak during the load, per path.
    peak: f64,
    /// Once the dataplane and the listener took everything.
    settled: f64,
}

fn memory(input: &Input) -> Memory {
    let (mut rib, ids, listener) = fresh_rib();
    let before = live();
    reset_peak();
    apply_all(&mut rib, &ids, &input.announce);
    let after = live();
    let peak = PEAK.load(Ordering::Relaxed);
    // Sanity: every route went in.
    let paths: usize = ids.iter().map(|&id| rib.peer_path_count(id) as usize).sum();
    assert_eq!(paths, input.routes());
    assert_eq!(rib.prefix_count(), input.prefixes());
    while rib.fib_changes_pending() > 0 {
        drop(rib.take_fib_changes(8192));
    }
    assert_eq!(export_all(&mut rib, listener), input.prefixes());
    let settled = live();
    let per = |bytes: usize| bytes.saturating_sub(before) as f64 / paths as f64;
    let m = Memory {
        loaded: per(after),
        peak: per(peak),
        settled: per(settled),
    };
    drop(rib);
    m
}

/// The median and the best of the timed runs of a case (wall clock), the median of their CPU
/// times, and how many there were.
fn times(case: &str) -> Option<(Duration, Duration, Duration, usize)> {
    let runs: Vec<(Duration, Duration)> = TIMES
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _, _)| c == case)
        .map(|(_, wall, cpu)| (*wall, *cpu))
        .collect();
    let mut wall: Vec<Duration> = runs.iter().map(|r| r.0).collect();
    let mut cpu: Vec<Duration> = runs.iter().map(|r| r.1).collect();
    wall.sort();
    cpu.sort();
    Some((
        *wall.get(wall.len() / 2)?,
        wall[0],
        cpu[cpu.len() / 2],
        wall.len(),
    ))
}

fn table(inputs: &[Input]) {
    println!();
    println!(
        "Targets (issue 4): load at 2 M routes/s or more on one core; under 200 bytes per path."
    );
    println!(
        "{:<16} {:>9} {:>5} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  verdict",
        "case",
        "routes",
        "runs",
        "median ms",
        "M/s",
        "best ms",
        "best M/s",
        "cpu M/s",
        "B/path",
        "queued",
        "peak"
    );
    for input in inputs {
        let v = input.variant.name();
        // Memory is measured with the load.
        let mem = times(&format!("load/{v}")).map(|_| memory(input));
        let anchor = times(&format!("anchor/{v}")).map(|t| t.0);
        for (op, n) in [
            ("anchor", input.routes()),
            ("load", input.routes()),
            ("withdraw", input.routes()),
            ("export", input.prefixes()),
        ] {
            let case = format!("{op}/{v}");
            let Some((median, best, cpu, runs)) = times(&case) else {
                continue;
            };
            let mps = |d: Duration| n as f64 / d.as_secs_f64() / 1e6;
            let vs_anchor = match anchor {
                Some(a) if op == "load" => format!(
                    ", {:.2}x the anchor's time",
                    median.as_secs_f64() / a.as_secs_f64()
                ),
                _ => String::new(),
            };
            let (mem_cols, verdict) = if let (true, Some(mem)) = (op == "load", &mem) {
                (
                    format!("{:>8.0} {:>8.0} {:>8.0}", mem.settled, mem.loaded, mem.peak),
                    format!(
                        "speed {}{vs_anchor}, memory {} ({} with the queues full)",
                        if mps(median) >= 2.0 { "ok" } else { "BELOW" },
                        if mem.settled < 200.0 { "ok" } else { "OVER" },
                        if mem.loaded < 200.0 { "ok" } else { "over" },
                    ),
                )
            } else {
                (format!("{:>8} {:>8} {:>8}", "", "", ""), String::new())
            };
            println!(
                "{:<16} {:>9} {:>5} {:>10.1} {:>8.2} {:>8.1} {:>8.2} {:>8.2} {mem_cols}  {verdict}",
                case,
                n,
                runs,
                median.as_secs_f64() * 1e3,
                mps(median),
                best.as_secs_f64() * 1e3,
                mps(best),
                mps(cpu),
            );
        }
    }
    println!("routes: per route (load, withdraw) or per prefix sent to the RR client (export).");
    println!("anchor: the same UPDATEs into a plain BTreeMap of prefix -> paths (same run).");
    println!("M/s: by wall-clock time; cpu M/s: by the CPU time of the thread (median), which");
    println!("other load on the machine barely changes.");
    println!("B/path: heap per path once the dataplane and the client took every change;");
    println!("queued: right after the load, change queues full; peak: the most during the load.");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // `cargo test --benches` runs this without `--bench` (criterion's test mode): a small
    // table, every case once.
    let test_mode = has("--test") || !has("--bench");
    let per_peer = if test_mode { PER_PEER / 100 } else { PER_PEER };
    let inputs = [
        Input::new(Variant::Unique, per_peer),
        Input::new(Variant::Shared, per_peer),
    ];
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
        .without_plots()
        .configure_from_args();
    benches(&mut c, &inputs);
    c.final_summary();
    if has("--list") || args.iter().any(|a| a.starts_with("--profile-time")) {
        return;
    }
    if test_mode {
        println!("(test mode: a table a hundred times smaller, an unoptimised build)");
    }
    table(&inputs);
}

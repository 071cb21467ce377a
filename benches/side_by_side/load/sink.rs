//! The load tool's own ceiling, measured before any target: the feeders send their whole load
//! to a sink that completes the OPEN exchange and then only reads, and monitors take in the
//! same table from a source that writes pre-encoded UPDATEs as fast as the socket takes them.
//! A target can look no faster than these two rates; the report compares them with the
//! fastest target so a run whose tool was the bottleneck says so.

use super::feeder::{Feeder, FeederLoad};
use super::monitor::{Expected, Monitor};
use super::session::{self, FrameReader, SessionErrors};
use crate::error::BenchError;
use crate::plan::{self, Loopback, PrefixSpace};
use bytes::{Bytes, BytesMut};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tortie_bgp::wire::{self, Message};

/// The two rates, in prefixes per second.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfCheck {
    pub feeders: u32,
    pub monitors: u32,
    pub prefixes: u64,
    /// Every feeder's whole load into the read-only sink.
    pub feeder_prefixes_per_sec: f64,
    /// The whole table into every monitor, decoded and checked.
    pub monitor_prefixes_per_sec: f64,
}

/// Completes the passive side of the OPEN exchange.
async fn handshake(
    reader: &mut FrameReader,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    id: Ipv4Addr,
) -> Result<(), String> {
    let frame = reader.next().await?.ok_or("closed before its OPEN")?;
    match wire::decode(&frame, &wire::Ctx::default()) {
        Ok(Message::Open(_)) => {}
        other => return Err(format!("expected an OPEN, got {other:?}")),
    }
    let mut out = session::encode(&Message::Open(session::our_open(plan::BENCH_AS, id)))?;
    out.extend(session::encode(&Message::Keepalive)?);
    w.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
    reader.set_ctx(session::ASSUMED_CTX);
    let frame = reader.next().await?.ok_or("closed before its KEEPALIVE")?;
    match session::message_type(&frame) {
        Some(4) => Ok(()),
        other => Err(format!("expected a KEEPALIVE, got type {other:?}")),
    }
}

pub async fn run(
    lo: Loopback,
    loads: &[Arc<FeederLoad>],
    monitors: u32,
    space: PrefixSpace,
    cap: Duration,
) -> Result<SelfCheck, BenchError> {
    let addr = lo.sink();
    let port = plan::free_port(addr)?;
    let listener = TcpListener::bind(SocketAddrV4::new(addr, port))
        .await
        .map_err(|e| BenchError::io(format!("sink listening on {addr}:{port}"), e))?;
    let remote = SocketAddr::V4(SocketAddrV4::new(addr, port));
    let received = Arc::new(AtomicU64::new(0));
    let errors = SessionErrors::default();
    // What the source writes to each monitor: every feeder's announcements.
    let mut table = BytesMut::new();
    for l in loads {
        table.extend_from_slice(&l.announce);
    }
    let table: Bytes = table.freeze();
    let monitor_addrs: HashSet<Ipv4Addr> = (0..monitors).map(|i| lo.monitor(i)).collect();
    let accept = {
        let (received, errors, table) = (received.clone(), errors.clone(), table.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let (received, errors, table) = (received.clone(), errors.clone(), table.clone());
                let is_monitor = matches!(peer.ip(), IpAddr::V4(a) if monitor_addrs.contains(&a));
                tokio::spawn(async move {
                    let (rd, mut wr) = stream.into_split();
                    let mut reader = FrameReader::new(rd);
                    if let Err(e) = handshake(&mut reader, &mut wr, addr).await {
                        return errors.push(format!("sink, from {peer}: {e}"));
                    }
                    if is_monitor {
                        if let Err(e) = wr.write_all(&table).await {
                            return errors.push(format!("source to {peer}: {e}"));
                        }
                    }
                    let count = |n: u64| {
                        received.fetch_add(n, Ordering::Relaxed);
                    };
                    // Held open: dropping the write half would end the session.
                    let _keep = wr;
                    if let Err(e) = reader.discard_all(count).await {
                        errors.push(format!("sink, from {peer}: {e}"));
                    }
                });
            }
        })
    };
    let deadline = Instant::now() + cap;
    let result = measure(
        lo, loads, monitors, space, remote, &received, &errors, deadline,
    )
    .await;
    accept.abort();
    result
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    lo: Loopback,
    loads: &[Arc<FeederLoad>],
    monitors: u32,
    space: PrefixSpace,
    remote: SocketAddr,
    received: &AtomicU64,
    errors: &SessionErrors,
    deadline: Instant,
) -> Result<SelfCheck, BenchError> {
    let fail = |reason: String| BenchError::target("load tool self-check", reason);
    let mut feeders = Vec::new();
    for (i, l) in loads.iter().enumerate() {
        let f = Feeder::connect(
            lo.feeder(i as u32),
            remote,
            l.clone(),
            deadline,
            errors.clone(),
        );
        feeders.push(f.await?);
    }
    // The handshakes' own octets are counted too; the goal is every octet of every load.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = received.load(Ordering::Relaxed);
    let goal: u64 = before + loads.iter().map(|l| l.announce.len() as u64).sum::<u64>();
    let start = Instant::now();
    for f in &feeders {
        f.send(f.load.announce.clone())?;
    }
    while received.load(Ordering::Relaxed) < goal {
        if let Some(e) = errors.first() {
            return Err(fail(e));
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "the sink read {} of {} octets before the deadline",
                received.load(Ordering::Relaxed) - before,
                goal - before
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let feeder_secs = start.elapsed().as_secs_f64();
    let prefixes: u64 = loads.iter().map(|l| u64::from(l.prefixes)).sum();
    drop(feeders);

    let base = Instant::now();
    let mut mons = Vec::new();
    for i in 0..monitors {
        let m = Monitor::connect(lo.monitor(i), remote, space, base, deadline, errors.clone());
        mons.push(m.await?);
    }
    let first = mons.iter().map(|m| m.established_at).min().unwrap_or(base);
    loop {
        if let Some(e) = errors.first() {
            return Err(fail(e));
        }
        let done = mons.iter().all(|m| m.held() >= prefixes);
        if done {
            break;
        }
        if Instant::now() > deadline {
            let least = mons.iter().map(Monitor::held).min().unwrap_or(0);
            return Err(fail(format!(
                "monitors held at least {least} of {prefixes} prefixes at the deadline"
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let last = mons.iter().map(Monitor::last_change).max().unwrap_or(first);
    let per_feeder = loads.first().map_or(0, |l| l.prefixes);
    for m in &mons {
        let expected = Expected {
            feeders: loads.len() as u32,
            per_feeder,
            absent: None,
        };
        let bad = m.mismatches(expected).await?;
        if bad != 0 {
            return Err(fail(format!(
                "monitor {} decoded a table with {bad} prefixes wrong",
                m.local
            )));
        }
    }
    let monitor_secs = last.duration_since(first).as_secs_f64().max(1e-6);
    Ok(SelfCheck {
        feeders: loads.len() as u32,
        monitors,
        prefixes,
        feeder_prefixes_per_sec: prefixes as f64 / feeder_secs.max(1e-6),
        monitor_prefixes_per_sec: (prefixes * u64::from(monitors)) as f64 / monitor_secs,
    })
}

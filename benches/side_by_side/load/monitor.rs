//! Monitors: route-reflector clients that announce nothing and decode every UPDATE the
//! target sends them with tortie's codec (RFC 7606 checks included), keeping a bitmap of the
//! run's prefixes they hold. They publish counters the watcher polls (held prefixes, UPDATEs,
//! prefixes per UPDATE) and the time of the last change, which is when a monitor came to hold
//! everything once its count reaches the goal; on request they check the bitmap against the
//! exact set they should hold, so a right count of wrong prefixes does not pass.

use super::session::{self, Params, SessionErrors};
use crate::error::BenchError;
use crate::plan::{self, PrefixSpace};
use bytes::Bytes;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tortie_bgp::wire::{self, Family, Message, MpNlri, Update};

/// Counters a monitor publishes; read with relaxed loads (each is exact on its own).
#[derive(Default)]
pub struct MonitorStats {
    pub held: AtomicU64,
    /// UPDATEs received, and those that announced at least one prefix.
    pub updates: AtomicU64,
    pub announce_updates: AtomicU64,
    /// Prefixes announced and withdrawn in them.
    pub announced: AtomicU64,
    pub withdrawn: AtomicU64,
    /// Announcements of prefixes already held (implicit replacements).
    pub duplicates: AtomicU64,
    /// Prefixes outside the run's space (the target invented or mangled them).
    pub unexpected: AtomicU64,
    /// UPDATEs with RFC 7606 faults.
    pub malformed: AtomicU64,
    /// Nanoseconds after the run's time base of the last change to `held`.
    pub last_change_ns: AtomicU64,
}

/// The exact set a monitor should hold: feeder `f`'s prefixes are `f * per_feeder ..`, and
/// `absent` (offsets within each feeder's block) is withdrawn.
#[derive(Clone, Debug)]
pub struct Expected {
    pub feeders: u32,
    pub per_feeder: u32,
    pub absent: Option<Range<u32>>,
}

impl Expected {
    pub fn count(&self) -> u64 {
        let gone = self.absent.as_ref().map_or(0, |r| r.len() as u64);
        u64::from(self.feeders) * (u64::from(self.per_feeder) - gone)
    }

    fn holds(&self, i: u32) -> bool {
        let Some(r) = &self.absent else { return true };
        let per = self.per_feeder.max(1);
        !r.contains(&(i % per))
    }
}

struct Verify {
    expected: Expected,
    reply: oneshot::Sender<u64>,
}

/// A monitor whose session is Established.
pub struct Monitor {
    pub local: Ipv4Addr,
    pub established_at: Instant,
    pub stats: Arc<MonitorStats>,
    base: Instant,
    verify: mpsc::UnboundedSender<Verify>,
    tasks: Vec<JoinHandle<()>>,
}

struct Table {
    space: PrefixSpace,
    bits: Vec<u64>,
    stats: Arc<MonitorStats>,
    base: Instant,
    first_fault: Option<String>,
    fault_reported: bool,
}

impl Table {
    fn touch(&self) {
        let ns = Instant::now().duration_since(self.base).as_nanos() as u64;
        self.stats.last_change_ns.store(ns, Ordering::Relaxed);
    }

    fn announce(&mut self, net: &ipnet::Ipv4Net) -> bool {
        let Some(i) = self.space.index(net) else {
            self.stats.unexpected.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        match self.bits.get_mut(w) {
            Some(word) if *word & b == 0 => {
                *word |= b;
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(_) => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                false
            }
            None => false,
        }
    }

    fn withdraw(&mut self, net: &ipnet::Ipv4Net) -> bool {
        let Some(i) = self.space.index(net) else {
            return false;
        };
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        match self.bits.get_mut(w) {
            Some(word) if *word & b != 0 => {
                *word &= !b;
                self.stats.held.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn apply(&mut self, u: &Update) {
        let s = self.stats.clone();
        s.updates.fetch_add(1, Ordering::Relaxed);
        if !u.errors.is_empty() {
            s.malformed.fetch_add(1, Ordering::Relaxed);
            if self.first_fault.is_none() {
                self.first_fault = u.errors.first().map(|e| e.to_string());
            }
        }
        let mut changed = false;
        let mut gone = 0u64;
        for n in &u.withdrawn {
            gone += 1;
            changed |= self.withdraw(&n.prefix);
        }
        if let Some(MpNlri::Ipv4(v)) = u.mp_unreach.as_ref().map(|m| &m.nlri) {
            for n in v {
                gone += 1;
                changed |= self.withdraw(&n.prefix);
            }
        }
        let mut reach: Vec<&ipnet::Ipv4Net> = u.nlri.iter().map(|n| &n.prefix).collect();
        if let Some(MpNlri::Ipv4(v)) = u.mp_reach.as_ref().map(|m| &m.nlri) {
            reach.extend(v.iter().map(|n| &n.prefix));
        }
        // RFC 7606 treat-as-withdraw: the prefixes are gone, not held.
        let as_withdraw = u.treat_as_withdraw();
        for p in &reach {
            changed |= if as_withdraw {
                self.withdraw(p)
            } else {
                self.announce(p)
            };
        }
        if !reach.is_empty() {
            s.announce_updates.fetch_add(1, Ordering::Relaxed);
            s.announced.fetch_add(reach.len() as u64, Ordering::Relaxed);
        }
        s.withdrawn.fetch_add(gone, Ordering::Relaxed);
        if changed {
            self.touch();
        }
    }

    /// One message from the target: `Ok(Some(_))` reports the first RFC 7606 fault, `Err`
    /// ends the session.
    fn on_frame(&mut self, frame: &[u8]) -> Result<Option<String>, String> {
        match session::classify(frame)? {
            Some(wire::MessageType::Update) => {}
            _ => return Ok(None),
        }
        match wire::decode(frame, &session::ASSUMED_CTX) {
            Ok(Message::Update(u)) => self.apply(&u),
            Ok(_) => return Ok(None),
            Err(e) => return Err(format!("UPDATE that resets the session: {e}")),
        }
        match &self.first_fault {
            Some(f) if !self.fault_reported => {
                self.fault_reported = true;
                Ok(Some(format!("UPDATE with an RFC 7606 fault: {f}")))
            }
            _ => Ok(None),
        }
    }

    fn mismatches(&self, e: &Expected) -> u64 {
        (0..self.space.count())
            .filter(|&i| {
                let has = self
                    .bits
                    .get((i / 64) as usize)
                    .is_some_and(|w| w & (1u64 << (i % 64)) != 0);
                has != e.holds(i)
            })
            .count() as u64
    }
}

impl Monitor {
    pub async fn connect(
        local: Ipv4Addr,
        remote: SocketAddr,
        space: PrefixSpace,
        base: Instant,
        deadline: Instant,
        errors: SessionErrors,
    ) -> Result<Monitor, BenchError> {
        let p = Params {
            local,
            remote,
            asn: plan::BENCH_AS,
        };
        let est = session::establish(&p, deadline).await?;
        let who = format!("monitor {local}");
        let (tx, rx) = mpsc::unbounded_channel();
        let writer =
            session::spawn_writer(est.writer, est.keepalive, rx, who.clone(), errors.clone());
        // A client with nothing to announce says so at once.
        let eor = wire::encode_to_vec(
            &Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
            &session::ASSUMED_CTX,
        )
        .map_err(|e| BenchError::Encode(e.to_string()))?;
        let _ = tx.send(session::Outgoing {
            bytes: Bytes::from(eor),
            done: None,
        });
        let stats = Arc::new(MonitorStats::default());
        let mut table = Table {
            space,
            bits: vec![0; space.count().div_ceil(64) as usize],
            stats: stats.clone(),
            base,
            first_fault: None,
            fault_reported: false,
        };
        let (vtx, mut vrx) = mpsc::unbounded_channel::<Verify>();
        let mut reader = est.reader;
        let reader_task = tokio::spawn(async move {
            // Keeps the writer (and its keepalives) alive as long as the reader runs.
            let _writer_queue = tx;
            loop {
                tokio::select! {
                    frame = reader.next() => {
                        let frame = match frame {
                            Ok(Some(f)) => f,
                            Ok(None) => {
                                return errors.push(format!("{who}: the target closed the session"));
                            }
                            Err(e) => return errors.push(format!("{who}: {e}")),
                        };
                        match table.on_frame(&frame) {
                            Ok(None) => {}
                            // An RFC 7606 fault is reported once; the session goes on.
                            Ok(Some(fault)) => errors.push(format!("{who}: {fault}")),
                            Err(e) => return errors.push(format!("{who}: {e}")),
                        }
                    }
                    v = vrx.recv() => {
                        let Some(v) = v else { return };
                        let _ = v.reply.send(table.mismatches(&v.expected));
                    }
                }
            }
        });
        Ok(Monitor {
            local,
            established_at: est.at,
            stats,
            base,
            verify: vtx,
            // The reader first: once aborted it cannot report the close the writer's end causes.
            tasks: vec![reader_task, writer],
        })
    }

    pub fn held(&self) -> u64 {
        self.stats.held.load(Ordering::Relaxed)
    }

    /// When `held` last changed.
    pub fn last_change(&self) -> Instant {
        self.base
            + std::time::Duration::from_nanos(self.stats.last_change_ns.load(Ordering::Relaxed))
    }

    /// How many of the run's prefixes are held that should not be, or missing.
    pub async fn mismatches(&self, expected: Expected) -> Result<u64, BenchError> {
        let (reply, rx) = oneshot::channel();
        let gone = || BenchError::Plan(format!("monitor {}: its reader has stopped", self.local));
        self.verify
            .send(Verify { expected, reply })
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Sums of every monitor's counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub held_min: u64,
    pub held_sum: u64,
    pub updates: u64,
    pub announce_updates: u64,
    pub announced: u64,
    pub withdrawn: u64,
    pub duplicates: u64,
    pub unexpected: u64,
    pub malformed: u64,
}

impl Totals {
    pub fn of(monitors: &[Monitor]) -> Totals {
        let mut t = Totals {
            held_min: u64::MAX,
            ..Totals::default()
        };
        for m in monitors {
            let s = &m.stats;
            let held = s.held.load(Ordering::Relaxed);
            t.held_min = t.held_min.min(held);
            t.held_sum += held;
            t.updates += s.updates.load(Ordering::Relaxed);
            t.announce_updates += s.announce_updates.load(Ordering::Relaxed);
            t.announced += s.announced.load(Ordering::Relaxed);
            t.withdrawn += s.withdrawn.load(Ordering::Relaxed);
            t.duplicates += s.duplicates.load(Ordering::Relaxed);
            t.unexpected += s.unexpected.load(Ordering::Relaxed);
            t.malformed += s.malformed.load(Ordering::Relaxed);
        }
        if monitors.is_empty() {
            t.held_min = 0;
        }
        t
    }

    /// Prefixes per announcing UPDATE, over every monitor.
    pub fn prefixes_per_update(&self) -> f64 {
        if self.announce_updates == 0 {
            0.0
        } else {
            self.announced as f64 / self.announce_updates as f64
        }
    }
}

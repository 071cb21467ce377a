//! Feeders: route-reflector clients that announce P unique prefixes each, later withdraw and
//! re-announce a tenth of them per churn wave, and read (and drop) whatever the target
//! reflects to them, as a client must or the target's sends to it would stall.
//!
//! Every message is encoded before any session opens, with the codec's own packer
//! (`wire::pack`), so the timed part is only the sending: full 4,096-octet UPDATEs sharing one
//! attribute set (ORIGIN IGP, empty AS_PATH, LOCAL_PREF 100, a next hop in 198.18.0.0/24),
//! then an End-of-RIB.

use super::session::{self, ASSUMED_CTX, Outgoing, Params, SessionErrors};
use crate::error::BenchError;
use crate::plan::{self, PrefixSpace};
use bytes::{Bytes, BytesMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tortie_bgp::wire::{self, AsPath, Attributes, Family, Message, Nlri, Origin, Update};

/// One churn wave of one feeder: a tenth of its prefixes withdrawn, then announced again.
pub struct Wave {
    pub withdraw: Bytes,
    pub reannounce: Bytes,
}

/// Everything one feeder will send, encoded.
pub struct FeederLoad {
    pub prefixes: u32,
    /// Every prefix, then End-of-RIB.
    pub announce: Bytes,
    pub waves: Vec<Wave>,
}

/// The part of each feeder's prefixes wave `w` withdraws (waves are tenths, `w` < 10).
pub fn wave_slice(per_feeder: u32, w: u32) -> Range<u32> {
    let tenth = |k: u32| (u64::from(per_feeder) * u64::from(k) / 10) as u32;
    tenth(w)..tenth(w + 1)
}

fn attrs(index: u32) -> Attributes {
    Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(plan::next_hop(index)),
        local_pref: Some(100),
        ..Attributes::default()
    }
}

fn encode_all(updates: &[Update], out: &mut BytesMut) -> Result<(), BenchError> {
    for u in updates {
        wire::encode(&Message::Update(u.clone()), &ASSUMED_CTX, out)
            .map_err(|e| BenchError::Encode(e.to_string()))?;
    }
    Ok(())
}

impl FeederLoad {
    /// Feeder `index` announces prefixes `index * per_feeder ..` of `space`.
    pub fn build(
        index: u32,
        per_feeder: u32,
        space: &PrefixSpace,
        waves: u32,
    ) -> Result<FeederLoad, BenchError> {
        if waves > 10 {
            return Err(BenchError::Plan(format!(
                "{waves} churn waves: at most 10 (each withdraws a different tenth)"
            )));
        }
        let first = index
            .checked_mul(per_feeder)
            .filter(|f| u64::from(*f) + u64::from(per_feeder) <= u64::from(space.count()))
            .ok_or_else(|| {
                BenchError::Plan(format!(
                    "feeder {index} x {per_feeder} prefixes is beyond the prefix space"
                ))
            })?;
        let nlri = |r: Range<u32>| -> Vec<Nlri<ipnet::Ipv4Net>> {
            r.map(|j| Nlri::new(space.prefix(first + j))).collect()
        };
        let a = attrs(index);
        let pack = |r: Range<u32>| {
            wire::pack::announce_v4(&a, &nlri(r), &ASSUMED_CTX)
                .map_err(|e| BenchError::Encode(e.to_string()))
        };
        let all = pack(0..per_feeder)?;
        let mut announce = BytesMut::new();
        encode_all(&all, &mut announce)?;
        encode_all(&[Update::end_of_rib(Family::Ipv4Unicast)], &mut announce)?;
        let mut out_waves = Vec::new();
        for w in 0..waves {
            let slice = wave_slice(per_feeder, w);
            let gone = wire::pack::withdraw_v4(&nlri(slice.clone()), &ASSUMED_CTX)
                .map_err(|e| BenchError::Encode(e.to_string()))?;
            let mut withdraw = BytesMut::new();
            encode_all(&gone, &mut withdraw)?;
            let mut reannounce = BytesMut::new();
            encode_all(&pack(slice)?, &mut reannounce)?;
            out_waves.push(Wave {
                withdraw: withdraw.freeze(),
                reannounce: reannounce.freeze(),
            });
        }
        Ok(FeederLoad {
            prefixes: per_feeder,
            announce: announce.freeze(),
            waves: out_waves,
        })
    }
}

/// A feeder whose session is Established.
pub struct Feeder {
    pub local: Ipv4Addr,
    pub established_at: Instant,
    pub load: Arc<FeederLoad>,
    tx: mpsc::UnboundedSender<Outgoing>,
    tasks: Vec<JoinHandle<()>>,
}

impl Feeder {
    pub async fn connect(
        local: Ipv4Addr,
        remote: SocketAddr,
        load: Arc<FeederLoad>,
        deadline: Instant,
        errors: SessionErrors,
    ) -> Result<Feeder, BenchError> {
        let p = Params {
            local,
            remote,
            asn: plan::BENCH_AS,
        };
        let est = session::establish(&p, deadline).await?;
        let who = format!("feeder {local}");
        let (tx, rx) = mpsc::unbounded_channel();
        let writer =
            session::spawn_writer(est.writer, est.keepalive, rx, who.clone(), errors.clone());
        let mut reader = est.reader;
        let reader_task = tokio::spawn(async move {
            loop {
                match reader.next().await {
                    Ok(Some(frame)) => {
                        if let Err(e) = session::classify(&frame) {
                            errors.push(format!("{who}: {e}"));
                            return;
                        }
                    }
                    Ok(None) => {
                        errors.push(format!("{who}: the target closed the session"));
                        return;
                    }
                    Err(e) => {
                        errors.push(format!("{who}: {e}"));
                        return;
                    }
                }
            }
        });
        Ok(Feeder {
            local,
            established_at: est.at,
            load,
            tx,
            // The reader first: once aborted it cannot report the close the writer's end causes.
            tasks: vec![reader_task, writer],
        })
    }

    /// Queues `bytes`; the receiver gets the time the last octet went to the kernel.
    pub fn send(&self, bytes: Bytes) -> Result<oneshot::Receiver<Instant>, BenchError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Outgoing {
                bytes,
                done: Some(done),
            })
            .map_err(|_| {
                BenchError::Plan(format!("feeder {}: its writer has stopped", self.local))
            })?;
        Ok(rx)
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

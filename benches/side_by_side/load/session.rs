//! One BGP session of the load tool, built on tortie's codec: connect from a chosen 127/8
//! address, exchange OPEN and KEEPALIVE, then split the socket into a frame reader and a writer
//! task that interleaves keepalives with whatever the feeder or monitor queues.
//!
//! The tool proposes IPv4 unicast, route refresh and 4-octet AS only: no extended messages, so
//! every target packs into the same 4,096-octet UPDATEs, and no ADD-PATH or graceful restart,
//! so what arrives is plain best-path reflection. Connection attempts are retried until the
//! deadline (a target may not listen yet, or, like GoBGP, turn a peer away for a few seconds
//! after a reset); a NOTIFICATION other than Cease ends the attempts at once, since retrying
//! an OPEN error only repeats it.

use crate::error::BenchError;
use bytes::{Bytes, BytesMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tortie_bgp::wire::{self, AfiSafi, Capability, Ctx, Family, Message, MessageType, Open};

/// Hold time proposed to every target (BIRD's default): keepalives stay rare next to the load.
pub const HOLD_TIME: u16 = 240;

/// One attempt's limit for connect plus the OPEN exchange.
const ATTEMPT: Duration = Duration::from_secs(10);

/// The context every pre-encoded message is built for; each session checks it negotiated it.
pub const ASSUMED_CTX: Ctx = Ctx {
    as4: true,
    add_path: wire::AddPath {
        ipv4_unicast: false,
        ipv6_unicast: false,
    },
    extended_message: false,
};

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub local: Ipv4Addr,
    pub remote: SocketAddr,
    pub asn: u32,
}

impl Params {
    fn err(&self, reason: impl Into<String>) -> BenchError {
        BenchError::Session {
            local: self.local,
            remote: self.remote,
            reason: reason.into(),
        }
    }
}

/// A session that reached Established.
pub struct Established {
    pub reader: FrameReader,
    pub writer: OwnedWriteHalf,
    pub keepalive: Option<Duration>,
    /// When the target's KEEPALIVE confirming our OPEN arrived.
    pub at: Instant,
}

/// Cuts BGP messages out of the byte stream.
pub struct FrameReader {
    half: OwnedReadHalf,
    buf: BytesMut,
    ctx: Ctx,
}

impl FrameReader {
    pub fn new(half: OwnedReadHalf) -> FrameReader {
        FrameReader {
            half,
            buf: BytesMut::with_capacity(64 * 1024),
            ctx: Ctx::default(),
        }
    }

    pub fn set_ctx(&mut self, ctx: Ctx) {
        self.ctx = ctx;
    }

    /// Reads and throws away whatever arrives until the peer closes, counting the octets.
    pub async fn discard_all(mut self, count: impl Fn(u64)) -> Result<(), String> {
        count(self.buf.len() as u64);
        let mut scratch = vec![0u8; 256 * 1024];
        loop {
            match self.half.read(&mut scratch).await {
                Ok(0) => return Ok(()),
                Ok(n) => count(n as u64),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// The next whole message, header included; `None` when the target closed the connection.
    pub async fn next(&mut self) -> Result<Option<BytesMut>, String> {
        loop {
            match wire::frame_len(&self.buf, &self.ctx) {
                Ok(Some(len)) => return Ok(Some(self.buf.split_to(len))),
                Ok(None) => {}
                Err(e) => return Err(format!("unframeable bytes from the target: {e}")),
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            match self.half.read_buf(&mut self.buf).await {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// The type octet of a whole message (checked by `frame_len` to exist).
pub fn message_type(frame: &[u8]) -> Option<u8> {
    frame.get(wire::HEADER_LEN - 1).copied()
}

/// A NOTIFICATION frame, described.
pub fn describe_notification(frame: &[u8]) -> String {
    match wire::decode(frame, &ASSUMED_CTX) {
        Ok(Message::Notification(n)) => format!("NOTIFICATION {}", n.describe()),
        Ok(other) => format!("unexpected {:?}", other.message_type()),
        Err(e) => format!("undecodable message: {e}"),
    }
}

pub fn encode(msg: &Message) -> Result<Vec<u8>, String> {
    wire::encode_to_vec(msg, &Ctx::default()).map_err(|e| format!("encoding {msg:?}: {e}"))
}

/// The OPEN the load tool (and the self-check's sink) sends.
pub fn our_open(asn: u32, id: Ipv4Addr) -> Open {
    Open::new(
        asn,
        HOLD_TIME,
        id,
        vec![
            Capability::Multiprotocol(AfiSafi {
                afi: Family::Ipv4Unicast.afi(),
                safi: Family::Ipv4Unicast.safi(),
            }),
            Capability::RouteRefresh,
            Capability::FourOctetAs { asn },
        ],
    )
}

enum Failure {
    Retry(String),
    Fatal(String),
}

async fn attempt(p: &Params) -> Result<Established, Failure> {
    let retry = |what: &str, e: std::io::Error| Failure::Retry(format!("{what}: {e}"));
    let sock = TcpSocket::new_v4().map_err(|e| retry("socket", e))?;
    sock.bind(SocketAddr::V4(SocketAddrV4::new(p.local, 0)))
        .map_err(|e| Failure::Fatal(format!("bind {}: {e}", p.local)))?;
    let stream = sock
        .connect(p.remote)
        .await
        .map_err(|e| retry("connect", e))?;
    stream.set_nodelay(true).map_err(|e| retry("nodelay", e))?;
    let (rd, mut wr) = stream.into_split();
    let mut reader = FrameReader::new(rd);
    let open_bytes = encode(&Message::Open(our_open(p.asn, p.local))).map_err(Failure::Fatal)?;
    wr.write_all(&open_bytes)
        .await
        .map_err(|e| retry("sending OPEN", e))?;
    let mut theirs: Option<Open> = None;
    loop {
        let frame = match reader.next().await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(Failure::Retry("closed during the OPEN exchange".into())),
            Err(e) => return Err(Failure::Retry(e)),
        };
        match wire::decode(&frame, &reader.ctx) {
            Ok(Message::Open(o)) if theirs.is_none() => {
                if o.asn() != p.asn {
                    return Err(Failure::Fatal(format!(
                        "the target sent AS {} in its OPEN, expected {}",
                        o.asn(),
                        p.asn
                    )));
                }
                let ka = encode(&Message::Keepalive).map_err(Failure::Fatal)?;
                wr.write_all(&ka)
                    .await
                    .map_err(|e| retry("sending KEEPALIVE", e))?;
                theirs = Some(o);
            }
            Ok(Message::Keepalive) => {
                let Some(o) = theirs else {
                    return Err(Failure::Fatal("KEEPALIVE before OPEN".into()));
                };
                let ctx = Ctx {
                    as4: o.four_octet_as().is_some(),
                    ..Ctx::default()
                };
                if ctx != ASSUMED_CTX {
                    return Err(Failure::Fatal(format!(
                        "negotiated {ctx:?}, the load is encoded for {ASSUMED_CTX:?} (4-octet AS)"
                    )));
                }
                reader.ctx = ctx;
                let hold = o.hold_time.min(HOLD_TIME);
                return Ok(Established {
                    reader,
                    writer: wr,
                    keepalive: (hold > 0).then(|| Duration::from_secs(u64::from(hold / 3).max(1))),
                    at: Instant::now(),
                });
            }
            Ok(Message::Notification(n)) => {
                let text = format!("NOTIFICATION {}", n.describe());
                return Err(if n.code == 6 {
                    Failure::Retry(text)
                } else {
                    Failure::Fatal(text)
                });
            }
            Ok(other) => {
                return Err(Failure::Fatal(format!(
                    "unexpected {:?} during the OPEN exchange",
                    other.message_type()
                )));
            }
            Err(e) => return Err(Failure::Fatal(format!("bad message from the target: {e}"))),
        }
    }
}

/// Connects and completes the OPEN exchange, retrying until `deadline`.
pub async fn establish(p: &Params, deadline: Instant) -> Result<Established, BenchError> {
    loop {
        let limit = deadline.min(Instant::now() + ATTEMPT);
        let res = tokio::time::timeout_at(limit, attempt(p)).await;
        let reason = match res {
            Ok(Ok(e)) => return Ok(e),
            Ok(Err(Failure::Fatal(r))) => return Err(p.err(r)),
            Ok(Err(Failure::Retry(r))) => r,
            Err(_) => format!("no Established within {ATTEMPT:?}"),
        };
        if Instant::now() + Duration::from_millis(100) >= deadline {
            return Err(p.err(format!("gave up at the deadline; last attempt: {reason}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Errors of running sessions, collected for the watcher (which fails the target's run).
#[derive(Clone, Default)]
pub struct SessionErrors(Arc<Mutex<Vec<String>>>);

impl SessionErrors {
    pub fn push(&self, e: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }

    pub fn first(&self) -> Option<String> {
        let v = self.0.lock().ok()?;
        let first = v.first()?.clone();
        Some(if v.len() > 1 {
            format!("{first} (and {} more)", v.len() - 1)
        } else {
            first
        })
    }
}

/// What a writer task is asked to send: a run of encoded messages, and whom to tell when the
/// last byte was handed to the kernel.
pub struct Outgoing {
    pub bytes: Bytes,
    pub done: Option<oneshot::Sender<Instant>>,
}

/// Sends queued bytes and a KEEPALIVE every `keepalive`; ends when the queue closes.
pub fn spawn_writer(
    mut w: OwnedWriteHalf,
    keepalive: Option<Duration>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    who: String,
    errors: SessionErrors,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ka = match encode(&Message::Keepalive) {
            Ok(k) => k,
            Err(e) => return errors.push(format!("{who}: {e}")),
        };
        let period = keepalive.unwrap_or(Duration::from_secs(3600));
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        loop {
            tokio::select! {
                out = rx.recv() => {
                    let Some(out) = out else { break };
                    if let Err(e) = w.write_all(&out.bytes).await {
                        errors.push(format!("{who}: write: {e}"));
                        break;
                    }
                    if let Some(done) = out.done {
                        let _ = done.send(Instant::now());
                    }
                }
                _ = tick.tick(), if keepalive.is_some() => {
                    if let Err(e) = w.write_all(&ka).await {
                        errors.push(format!("{who}: keepalive: {e}"));
                        break;
                    }
                }
            }
        }
    })
}

/// Whether a frame is an UPDATE, a KEEPALIVE, or something that ends the session.
pub fn classify(frame: &[u8]) -> Result<Option<MessageType>, String> {
    match message_type(frame) {
        Some(2) => Ok(Some(MessageType::Update)),
        Some(4) => Ok(Some(MessageType::Keepalive)),
        Some(5) => Ok(Some(MessageType::RouteRefresh)),
        Some(3) => Err(describe_notification(frame)),
        other => Err(format!(
            "unexpected message type {other:?} after Established"
        )),
    }
}

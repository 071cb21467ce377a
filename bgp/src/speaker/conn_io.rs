//! The byte pumps of one TCP connection: a reader task that hands chunks to the peer task
//! through a bounded channel (so a slow peer task stops reading, and TCP pushes back on the
//! peer), and a writer task fed without blocking the peer task, whose queue depth the peer task
//! watches to stop taking routes for a peer that does not read.

use crate::fsm::ConnId;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the connection tasks tell the peer task.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    Connected(ConnId, TcpStream),
    /// Why, and whether it timed out (which is how an MD5 mismatch shows).
    ConnectFailed(ConnId, String, bool),
    Data(ConnId, Bytes),
    Closed(ConnId, Option<String>),
}

/// Read size: large enough for a few full UPDATEs per wakeup.
const READ_CHUNK: usize = 64 * 1024;

/// The peer task's handle on one live connection.
pub(crate) struct ConnIo {
    writer: Option<mpsc::UnboundedSender<Bytes>>,
    queued: Arc<AtomicUsize>,
    reader: JoinHandle<()>,
    pub local: Option<std::net::SocketAddr>,
    /// Where this connection's incoming messages begin, for the peer's message counters.
    pub rx_frames: super::counters::FrameCounter,
}

impl ConnIo {
    pub fn start(id: ConnId, stream: TcpStream, events: mpsc::Sender<ConnEvent>) -> ConnIo {
        let local = stream.local_addr().ok();
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(write_loop(write, rx, queued.clone()));
        let reader = tokio::spawn(read_loop(id, read, events));
        ConnIo {
            writer: Some(tx),
            queued,
            reader,
            local,
            rx_frames: Default::default(),
        }
    }

    /// Queues bytes for writing; never blocks.
    pub fn send(&self, bytes: Bytes) {
        if let Some(w) = &self.writer {
            self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
            // A closed writer means the socket failed; the reader reports the close.
            let _ = w.send(bytes);
        }
    }

    /// Octets queued and not yet written to the socket.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Stops reading at once; the writer flushes what is queued (a NOTIFICATION, typically),
    /// then shuts the socket down.
    pub fn close(mut self) {
        self.reader.abort();
        self.writer.take();
    }
}

impl Drop for ConnIo {
    /// A peer task that goes away (aborted by [`super::Speaker::stop_for_restart`]) takes its
    /// reader with it; the writer ends with its channel and shuts the socket down.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn write_loop(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(b) = rx.recv().await {
        let len = b.len();
        let res = w.write_all(&b).await;
        queued.fetch_sub(len, Ordering::Relaxed);
        if res.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

async fn read_loop(id: ConnId, mut r: OwnedReadHalf, events: mpsc::Sender<ConnEvent>) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        match r.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = events.send(ConnEvent::Closed(id, None)).await;
                return;
            }
            Ok(_) => {
                if events
                    .send(ConnEvent::Data(id, buf.split().freeze()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = events
                    .send(ConnEvent::Closed(id, Some(e.to_string())))
                    .await;
                return;
            }
        }
    }
}

//! The HTTP/1.1 side (hyper): `/metrics`, `/readyz`, `/livez` for GET and HEAD.
//!
//! The address is meant for a scraper and the kubelet, but whoever reaches it is not trusted:
//! connections are capped ([`MAX_CONNECTIONS`]; more are closed at once), a request's headers
//! must arrive within [`HEADER_TIMEOUT`], a connection lives [`CONNECTION_LIFETIME`] at most,
//! and a request body is never read. Every connection is a task of the server's, aborted when
//! the server stops.

use super::Shared;
use super::exposition::{self, AgentInfo};
use super::readiness;
use super::snapshot::{self, Depth};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, error, warn};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Time for a request's headers to arrive (a new request's on a kept-alive connection too).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept-alive connection is closed after this; the scraper opens another.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Answers one request.
pub(crate) async fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            format!("{} is not served here: use GET or HEAD\n", req.method()),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let snap = snapshot::take(&shared.state, Depth::Scrape).await;
            let agent = AgentInfo {
                node: &shared.state.observed.node,
                started: shared.state.observed.started,
                uptime: shared.uptime(),
            };
            match exposition::render(&snap, &agent, &shared.passes) {
                Ok(body) => text(StatusCode::OK, exposition::CONTENT_TYPE, body),
                Err(e) => {
                    error!(error = %e, "metrics: the scrape could not be encoded");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        TEXT,
                        format!("the metrics could not be encoded: {e}\n"),
                    )
                }
            }
        }
        // The runtime answering is the liveness: a wedged agent answers nothing.
        "/livez" => text(StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" => {
            let snap = snapshot::take(&shared.state, Depth::Probe).await;
            let problems = readiness::not_ready(&readiness::Inputs {
                datastore_synced: snap.datastore_synced,
                dataplane_synced: snap.fib.as_ref().map(|f| f.synced),
                peers: &snap.peers,
            });
            let status = if problems.is_empty() {
                StatusCode::OK
            } else {
                debug!(problems = ?problems, "readyz: not ready");
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, TEXT, readiness::body(&problems))
        }
        other => text(
            StatusCode::NOT_FOUND,
            TEXT,
            format!("{other:.100} is not served here: try /metrics, /readyz or /livez\n"),
        ),
    }
}

/// Serves one accepted connection until it closes, or [`CONNECTION_LIFETIME`].
async fn connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, &req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "metrics: connection ended with an error"),
        Err(_) => debug!("metrics: connection closed after its lifetime"),
    }
}

/// Accepts until `stop` fires (or its sender is dropped); then the connections are aborted.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        warn!(%remote, max = MAX_CONNECTIONS, "metrics: too many connections; closing this one");
                        continue;
                    };
                    let shared = shared.clone();
                    conns.spawn(async move {
                        connection(stream, shared).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: pause rather than spin.
                    warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
    conns.shutdown().await;
}

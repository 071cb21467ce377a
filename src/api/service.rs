//! The `tortie.v1.Tortie` service: each call checked and handed to the module that answers it
//! (`peers`, `routes`, `fib`, `ipam`, `events`, `pod_address`).
//!
//! One instance serves the unix socket (writable) and, with `--api-listen`, another serves TCP
//! (writable only with `--api-allow-write`): whether a write call is allowed is a property of
//! the listener it came in on, so it is fixed when the service is built, not looked up per
//! request.

use super::{ApiState, convert, events, fib, ipam, peers, pod_address, routes};
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};
use tortie_bgp::speaker::SpeakerError;
use tortie_proto::v1::tortie_server::Tortie;
use tortie_proto::v1::{self};
use tracing::warn;

/// How long a call waits for the speaker's answer before it reports UNAVAILABLE: the router
/// answers between routing work, so a long wait means it is overloaded, and the client should
/// hear that rather than queue behind it.
pub const SPEAKER_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the speaker, bounded by [`SPEAKER_TIMEOUT`]; `call` names the request in errors.
pub async fn ask<T>(
    call: &str,
    fut: impl Future<Output = Result<T, SpeakerError>>,
) -> Result<T, Status> {
    match tokio::time::timeout(SPEAKER_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Status::unavailable(format!("BGP speaker: {e}"))),
        Err(_) => {
            warn!(call, timeout = ?SPEAKER_TIMEOUT, "the BGP speaker did not answer in time");
            Err(Status::unavailable(format!(
                "the BGP speaker did not answer within {} s",
                SPEAKER_TIMEOUT.as_secs()
            )))
        }
    }
}

pub struct Service {
    pub state: ApiState,
    /// Whether SetPeerEnabled and RefreshPeer are accepted on this listener.
    pub writable: bool,
    /// Uptime is measured on the monotonic clock from here; `started` is only reported.
    pub serving_since: Instant,
    /// How long the agent had been running when the API started.
    pub uptime_at_start: Duration,
    /// Turns true when the API stops: event streams end so the server can drain.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Service {
    fn check_writable(&self, call: &str) -> Result<(), Status> {
        if self.writable {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{call} changes the agent and this API listener is read-only: use the unix \
                 socket, or start the agent with --api-allow-write"
            )))
        }
    }
}

#[tonic::async_trait]
impl Tortie for Service {
    async fn get_status(
        &self,
        _request: Request<v1::GetStatusRequest>,
    ) -> Result<Response<v1::GetStatusResponse>, Status> {
        let uptime = self.uptime_at_start + self.serving_since.elapsed();
        Ok(Response::new(v1::GetStatusResponse {
            node: self.state.node.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            start_time: Some(convert::timestamp(self.state.started)),
            uptime: tortie_proto::prost_types::Duration::try_from(uptime).ok(),
            pid: std::process::id(),
        }))
    }

    async fn list_peers(
        &self,
        request: Request<v1::ListPeersRequest>,
    ) -> Result<Response<v1::ListPeersResponse>, Status> {
        peers::list(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_routes(
        &self,
        request: Request<v1::ListRoutesRequest>,
    ) -> Result<Response<v1::ListRoutesResponse>, Status> {
        routes::list(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_fib_routes(
        &self,
        request: Request<v1::ListFibRoutesRequest>,
    ) -> Result<Response<v1::ListFibRoutesResponse>, Status> {
        fib::list(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_ipam_usage(
        &self,
        _request: Request<v1::GetIpamUsageRequest>,
    ) -> Result<Response<v1::GetIpamUsageResponse>, Status> {
        ipam::usage_of(&self.state).await.map(Response::new)
    }

    async fn watch_events(
        &self,
        request: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<events::EventStream>, Status> {
        events::watch(&self.state, request.into_inner(), self.shutdown.clone()).map(Response::new)
    }

    async fn set_peer_enabled(
        &self,
        request: Request<v1::SetPeerEnabledRequest>,
    ) -> Result<Response<v1::SetPeerEnabledResponse>, Status> {
        self.check_writable("SetPeerEnabled")?;
        peers::set_enabled(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn refresh_peer(
        &self,
        request: Request<v1::RefreshPeerRequest>,
    ) -> Result<Response<v1::RefreshPeerResponse>, Status> {
        self.check_writable("RefreshPeer")?;
        peers::refresh(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn assign_pod_address(
        &self,
        request: Request<v1::AssignPodAddressRequest>,
    ) -> Result<Response<v1::AssignPodAddressResponse>, Status> {
        self.check_writable("AssignPodAddress")?;
        pod_address::assign(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn release_pod_address(
        &self,
        request: Request<v1::ReleasePodAddressRequest>,
    ) -> Result<Response<v1::ReleasePodAddressResponse>, Status> {
        self.check_writable("ReleasePodAddress")?;
        pod_address::release(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }
}

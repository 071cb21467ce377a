//! WatchEvents: peer, best-route and dataplane events as a server stream.
//!
//! The stream is pulled, not pushed: an event is taken from the agent's broadcast channels
//! only when gRPC asks for the next message, which HTTP/2 flow control stops doing for a
//! client that does not read. The channels are lossy, so such a client only falls behind; the
//! speaker and the dataplane, which send without waiting, never notice it. When the client
//! reads again it first gets a `lagged` event saying how much it missed.
//!
//! Best-route changes come from the speaker in batches (what the dataplane is given); a batch
//! is held by reference and handed out one prefix at a time.

use super::ApiState;
use crate::agent::observe::DataplaneEvent;
use futures::Stream;
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tonic::Status;
use tortie_bgp::rib::RouteChange;
use tortie_bgp::speaker::SpeakerEvent;
use tortie_proto::v1::{self, event::Event as Kind};

pub type EventStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send + 'static>>;

/// The open subscriptions of one client, and where it is in the current batch of changes.
struct Watcher {
    peers: Option<broadcast::Receiver<SpeakerEvent>>,
    routes: Option<broadcast::Receiver<Arc<[RouteChange]>>>,
    dataplane: Option<broadcast::Receiver<DataplaneEvent>>,
    batch: Option<(Arc<[RouteChange]>, usize)>,
    /// The API is stopping: end the stream so the server can drain.
    shutdown: watch::Receiver<bool>,
}

async fn recv<T: Clone>(rx: &mut Option<broadcast::Receiver<T>>) -> Result<T, RecvError> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

fn event(kind: Kind) -> v1::Event {
    v1::Event {
        time: Some(super::convert::timestamp(SystemTime::now())),
        event: Some(kind),
    }
}

fn lagged(kind: v1::EventKind, dropped: u64, what: &str) -> v1::Event {
    event(Kind::Lagged(v1::LaggedEvent {
        kind: kind as i32,
        dropped,
        message: format!("lagged: {dropped} {what} dropped"),
    }))
}

pub fn peer_event(ev: SpeakerEvent) -> Option<v1::Event> {
    use super::convert::{family, peer_state};
    Some(event(match ev {
        SpeakerEvent::State { peer, from, to } => Kind::PeerState(v1::PeerStateEvent {
            address: peer.to_string(),
            from: peer_state(from) as i32,
            to: peer_state(to) as i32,
        }),
        SpeakerEvent::Down { peer, reason } => Kind::PeerDown(v1::PeerDownEvent {
            address: peer.to_string(),
            reason,
        }),
        SpeakerEvent::EndOfRib { peer, family: f } => Kind::EndOfRib(v1::EndOfRibEvent {
            address: peer.to_string(),
            family: family(f) as i32,
        }),
        // One per UPDATE: the best-route events say what they changed.
        SpeakerEvent::Routes { .. } => return None,
    }))
}

pub fn route_event(c: &RouteChange) -> v1::Event {
    let (next_hops, local) = match &c.route {
        Some(r) => (
            r.next_hops.iter().map(ToString::to_string).collect(),
            r.local,
        ),
        None => (Vec::new(), false),
    };
    event(Kind::BestRoute(v1::BestRouteEvent {
        prefix: c.prefix.to_string(),
        next_hops,
        local,
        withdrawn: c.route.is_none(),
    }))
}

pub fn dataplane_event(d: &DataplaneEvent) -> v1::Event {
    event(Kind::Dataplane(v1::DataplaneEvent {
        what: d.what.to_string(),
        operations: d.ops as u64,
        failures: d.failures as u64,
        took: tortie_proto::prost_types::Duration::try_from(d.took).ok(),
        routes: d.routes as u64,
    }))
}

impl Watcher {
    /// The next event; `None` when every subscription closed or the API stops.
    async fn next(&mut self) -> Option<v1::Event> {
        loop {
            if let Some((batch, i)) = &mut self.batch {
                if let Some(c) = batch.get(*i) {
                    *i += 1;
                    return Some(route_event(c));
                }
                self.batch = None;
            }
            if *self.shutdown.borrow()
                || (self.peers.is_none() && self.routes.is_none() && self.dataplane.is_none())
            {
                return None;
            }
            tokio::select! {
                r = recv(&mut self.peers) => match r {
                    Ok(ev) => {
                        if let Some(e) = peer_event(ev) {
                            return Some(e);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        return Some(lagged(v1::EventKind::Peer, n, "peer events"));
                    }
                    Err(RecvError::Closed) => self.peers = None,
                },
                r = recv(&mut self.routes) => match r {
                    Ok(batch) => self.batch = Some((batch, 0)),
                    Err(RecvError::Lagged(n)) => {
                        return Some(lagged(
                            v1::EventKind::BestRoute,
                            n,
                            "batches of best-route changes (list the routes again)",
                        ));
                    }
                    Err(RecvError::Closed) => self.routes = None,
                },
                r = recv(&mut self.dataplane) => match r {
                    Ok(d) => return Some(dataplane_event(&d)),
                    Err(RecvError::Lagged(n)) => {
                        return Some(lagged(v1::EventKind::Dataplane, n, "dataplane events"));
                    }
                    Err(RecvError::Closed) => self.dataplane = None,
                },
                _ = self.shutdown.changed() => return None,
            }
        }
    }
}

/// The kinds a request asks for (all for none); an unknown kind is an error, since a client
/// that names one expects its events.
fn kinds(req: &v1::WatchEventsRequest) -> Result<HashSet<v1::EventKind>, Status> {
    let all = [
        v1::EventKind::Peer,
        v1::EventKind::BestRoute,
        v1::EventKind::Dataplane,
    ];
    if req.kinds.is_empty() {
        return Ok(all.into_iter().collect());
    }
    req.kinds
        .iter()
        .map(|&k| match v1::EventKind::try_from(k) {
            Ok(k) if k != v1::EventKind::Unspecified => Ok(k),
            _ => Err(Status::invalid_argument(format!(
                "kinds: {k} is not an event kind"
            ))),
        })
        .collect()
}

pub fn watch(
    state: &ApiState,
    req: v1::WatchEventsRequest,
    shutdown: watch::Receiver<bool>,
) -> Result<EventStream, Status> {
    let kinds = kinds(&req)?;
    // Subscribed now, before the first message is asked for: nothing that happens after the
    // call returns is missed.
    let watcher = Watcher {
        peers: kinds
            .contains(&v1::EventKind::Peer)
            .then(|| state.speaker.subscribe()),
        routes: kinds
            .contains(&v1::EventKind::BestRoute)
            .then(|| state.speaker.subscribe_best_routes()),
        dataplane: kinds
            .contains(&v1::EventKind::Dataplane)
            .then(|| state.observed.dataplane_events.subscribe()),
        batch: None,
        shutdown,
    };
    Ok(Box::pin(futures::stream::unfold(
        watcher,
        |mut w| async move { w.next().await.map(|e| (Ok(e), w)) },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use tortie_bgp::fsm::State;
    use tortie_bgp::rib::FibRoute;

    #[test]
    fn a_withdrawn_prefix_is_an_event_with_no_next_hop() {
        let e = route_event(&RouteChange {
            prefix: "198.19.0.64/26".parse().unwrap(),
            route: None,
        });
        let Some(Kind::BestRoute(b)) = e.event else {
            panic!("not a best-route event: {e:?}");
        };
        assert!(b.withdrawn && b.next_hops.is_empty());
    }

    #[test]
    fn a_changed_prefix_lists_its_next_hops() {
        let nh: IpAddr = "198.18.2.3".parse().unwrap();
        let e = route_event(&RouteChange {
            prefix: "198.19.0.64/26".parse().unwrap(),
            route: Some(FibRoute {
                next_hops: vec![nh],
                local: false,
                priority: None,
            }),
        });
        let Some(Kind::BestRoute(b)) = e.event else {
            panic!("not a best-route event: {e:?}");
        };
        assert_eq!(b.next_hops, vec!["198.18.2.3".to_string()]);
        assert!(!b.withdrawn);
    }

    #[test]
    fn per_update_notices_are_not_events() {
        let ev = SpeakerEvent::Routes {
            peer: "198.18.2.3".parse().unwrap(),
            update_count: 1,
        };
        assert_eq!(peer_event(ev), None);
        let ev = SpeakerEvent::State {
            peer: "198.18.2.3".parse().unwrap(),
            from: State::OpenConfirm,
            to: State::Established,
        };
        assert!(matches!(
            peer_event(ev).and_then(|e| e.event),
            Some(Kind::PeerState(_))
        ));
    }

    #[test]
    fn an_unknown_event_kind_is_refused_and_none_means_all() {
        let e = kinds(&v1::WatchEventsRequest { kinds: vec![42] }).err();
        assert_eq!(e.map(|s| s.code()), Some(tonic::Code::InvalidArgument));
        let all = kinds(&v1::WatchEventsRequest { kinds: vec![] }).unwrap_or_default();
        assert_eq!(all.len(), 3);
    }

    #[tokio::test]
    async fn a_watcher_that_fell_behind_is_told_how_much_it_missed() {
        let (tx, rx) = broadcast::channel(2);
        let (_stop, shutdown) = watch::channel(false);
        let mut w = Watcher {
            peers: None,
            routes: None,
            dataplane: Some(rx),
            batch: None,
            shutdown,
        };
        for ops in 0..5 {
            let _ = tx.send(DataplaneEvent {
                what: "change",
                ops,
                failures: 0,
                took: std::time::Duration::from_millis(1),
                routes: 1,
            });
        }
        let first = w.next().await.and_then(|e| e.event);
        let Some(Kind::Lagged(l)) = first else {
            panic!("expected a lagged event, got {first:?}");
        };
        assert_eq!(l.dropped, 3);
        assert_eq!(l.message, "lagged: 3 dataplane events dropped");
        let next = w.next().await.and_then(|e| e.event);
        assert!(
            matches!(next, Some(Kind::Dataplane(ref d)) if d.operations == 3),
            "{next:?}"
        );
    }
}

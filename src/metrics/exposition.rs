//! One scrape in the Prometheus text format (version 0.0.4): a registry built for the scrape
//! from a [`Snapshot`], plus the accumulated dataplane pass metrics.
//!
//! Values that the agent's owners keep (the speaker's per-peer counters, the FIB, IPAM) are
//! set from the snapshot when the scrape is built rather than mirrored into long-lived
//! metrics: a peer or a pool that goes away then leaves the output at once, and nothing has
//! to be kept in step with the speaker. Counters reset when their peer is configured again,
//! which Prometheus' `rate()` handles as any counter reset.

use super::dataplane_passes::PassMetrics;
use super::snapshot::Snapshot;
use prometheus::core::Collector;
use prometheus::{Encoder, Gauge, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tortie_bgp::fsm::State;
use tortie_bgp::speaker::PeerStatus;
use tracing::warn;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every session state, for the one-hot `tortie_bgp_session_state`.
const STATES: [State; 6] = [
    State::Idle,
    State::Connect,
    State::Active,
    State::OpenSent,
    State::OpenConfirm,
    State::Established,
];

/// The labels of every per-peer series.
const PEER_LABELS: [&str; 3] = ["peer", "name", "type"];

/// The agent itself.
pub struct AgentInfo<'a> {
    pub node: &'a str,
    pub started: SystemTime,
    pub uptime: Duration,
}

type Result<T> = std::result::Result<T, prometheus::Error>;

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn register<C: Collector + Clone + 'static>(r: &Registry, c: C) -> Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str, value: f64) -> Result<()> {
    let g = register(r, Gauge::new(name, help)?)?;
    g.set(value);
    Ok(())
}

fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec> {
    register(r, GaugeVec::new(Opts::new(name, help), labels)?)
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
    register(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn agent(r: &Registry, a: &AgentInfo<'_>) -> Result<()> {
    let info = gauges(
        r,
        "tortie_agent_info",
        "The agent: its node name and version (always 1).",
        &["node", "version"],
    )?;
    info.with_label_values(&[a.node, env!("CARGO_PKG_VERSION")])
        .set(1.0);
    gauge(
        r,
        "tortie_agent_start_time_seconds",
        "When the agent started, in seconds since the Unix epoch.",
        unix_seconds(a.started),
    )?;
    gauge(
        r,
        "tortie_agent_uptime_seconds",
        "How long the agent has been running.",
        a.uptime.as_secs_f64(),
    )
}

/// The per-peer families, in one place so that their names and help stay together.
struct PeerFamilies {
    up: GaugeVec,
    state: GaugeVec,
    enabled: GaugeVec,
    since: GaugeVec,
    received_routes: GaugeVec,
    accepted_routes: GaugeVec,
    advertised_routes: GaugeVec,
    counters: [(IntCounterVec, fn(&PeerStatus) -> u64); 9],
}

impl PeerFamilies {
    fn new(r: &Registry) -> Result<PeerFamilies> {
        let g = |name: &str, help: &str| gauges(r, name, help, &PEER_LABELS);
        let c = |name: &str, help: &str| counters(r, name, help, &PEER_LABELS);
        let mut state_labels = PEER_LABELS.to_vec();
        state_labels.push("state");
        Ok(PeerFamilies {
            up: g(
                "tortie_bgp_session_up",
                "1 when the BGP session with the peer is Established, else 0.",
            )?,
            state: gauges(
                r,
                "tortie_bgp_session_state",
                "The session's FSM state: 1 for the current state, 0 for the others.",
                &state_labels,
            )?,
            enabled: g(
                "tortie_bgp_session_enabled",
                "0 when an operator disabled the session (it stays Idle), else 1.",
            )?,
            since: g(
                "tortie_bgp_session_state_change_timestamp_seconds",
                "When the session's state last changed, in seconds since the Unix epoch.",
            )?,
            received_routes: g(
                "tortie_bgp_received_routes",
                "Paths the peer announced that stand now, before import policy.",
            )?,
            accepted_routes: g(
                "tortie_bgp_accepted_routes",
                "Paths of the peer held now after import policy (its Adj-RIB-In).",
            )?,
            advertised_routes: g(
                "tortie_bgp_advertised_routes",
                "Prefixes advertised to the peer now (its Adj-RIB-Out; 0 unless Established).",
            )?,
            counters: [
                (
                    c(
                        "tortie_bgp_messages_received_total",
                        "BGP messages received from the peer, every type.",
                    )?,
                    |p| p.counters.messages_in,
                ),
                (
                    c(
                        "tortie_bgp_messages_sent_total",
                        "BGP messages sent to the peer, every type.",
                    )?,
                    |p| p.counters.messages_out,
                ),
                (
                    c(
                        "tortie_bgp_updates_received_total",
                        "UPDATE messages received from the peer.",
                    )?,
                    |p| p.counters.updates_in,
                ),
                (
                    c(
                        "tortie_bgp_updates_sent_total",
                        "UPDATE messages sent to the peer.",
                    )?,
                    |p| p.counters.updates_out,
                ),
                (
                    c(
                        "tortie_bgp_prefixes_received_total",
                        "Prefixes the peer announced (NLRI, before import policy).",
                    )?,
                    |p| p.counters.prefixes_in,
                ),
                (
                    c(
                        "tortie_bgp_withdrawals_received_total",
                        "Prefixes the peer withdrew.",
                    )?,
                    |p| p.counters.withdrawals_in,
                ),
                (
                    c(
                        "tortie_bgp_prefixes_sent_total",
                        "Prefixes announced to the peer.",
                    )?,
                    |p| p.counters.prefixes_out,
                ),
                (
                    c(
                        "tortie_bgp_withdrawals_sent_total",
                        "Prefixes withdrawn from the peer.",
                    )?,
                    |p| p.counters.withdrawals_out,
                ),
                (
                    c(
                        "tortie_bgp_established_transitions_total",
                        "Times the session reached Established.",
                    )?,
                    |p| p.counters.established_transitions,
                ),
            ],
        })
    }

    fn set(&self, p: &PeerStatus) {
        let addr = p.address.to_string();
        let labels = [addr.as_str(), p.name.as_str(), p.kind.as_str()];
        self.up
            .with_label_values(&labels)
            .set(flag(p.state == State::Established));
        for s in STATES {
            let name = s.to_string();
            self.state
                .with_label_values(&[labels[0], labels[1], labels[2], name.as_str()])
                .set(flag(p.state == s));
        }
        self.enabled.with_label_values(&labels).set(flag(p.enabled));
        self.since
            .with_label_values(&labels)
            .set(unix_seconds(p.since));
        self.received_routes
            .with_label_values(&labels)
            .set(p.received as f64);
        self.accepted_routes
            .with_label_values(&labels)
            .set(p.accepted as f64);
        self.advertised_routes
            .with_label_values(&labels)
            .set(p.advertised as f64);
        for (family, value) in &self.counters {
            family.with_label_values(&labels).inc_by(value(p));
        }
    }
}

fn sources(r: &Registry, s: &Snapshot) -> Result<()> {
    let up = gauges(
        r,
        "tortie_metrics_source_up",
        "1 when this scrape read the source (bgp_peers, bgp_rib, ipam) in time, 0 when its series are missing from it.",
        &["source"],
    )?;
    let report = |source: &str, err: Option<&String>| {
        up.with_label_values(&[source]).set(flag(err.is_none()));
        if let Some(e) = err {
            warn!(error = %e, "metrics: a source is missing from this scrape");
        }
    };
    report("bgp_peers", s.peers.as_ref().err());
    if let Some(rib) = &s.rib {
        report("bgp_rib", rib.as_ref().err());
    }
    if let Some(ipam) = &s.ipam {
        report("ipam", ipam.as_ref().err());
    }
    Ok(())
}

fn bgp(r: &Registry, s: &Snapshot) -> Result<()> {
    let peers = PeerFamilies::new(r)?;
    if let Ok(list) = &s.peers {
        for p in list {
            peers.set(p);
        }
    }
    if let Some(Ok(sizes)) = &s.rib {
        let prefixes = gauges(
            r,
            "tortie_bgp_loc_rib_prefixes",
            "Prefixes in the Loc-RIB (with at least one path), by address family.",
            &["family"],
        )?;
        prefixes
            .with_label_values(&["ipv4"])
            .set(sizes.v4_prefixes as f64);
        prefixes
            .with_label_values(&["ipv6"])
            .set(sizes.v6_prefixes as f64);
        gauge(
            r,
            "tortie_bgp_loc_rib_paths",
            "Paths in the Loc-RIB: every peer's (after import policy) and this node's own.",
            sizes.paths as f64,
        )?;
    }
    Ok(())
}

fn dataplane(r: &Registry, s: &Snapshot) -> Result<()> {
    let Some(fib) = &s.fib else { return Ok(()) };
    gauge(
        r,
        "tortie_dataplane_synced",
        "1 once the dataplane has written its first sync to the kernel, else 0.",
        flag(fib.synced),
    )?;
    let routes = gauges(
        r,
        "tortie_dataplane_fib_routes",
        "Routes felix holds in the kernel, by address family and type (unicast, blackhole).",
        &["family", "type"],
    )?;
    for ((family, kind), n) in &fib.routes {
        routes.with_label_values(&[*family, *kind]).set(*n as f64);
    }
    if let Some(t) = fib.updated {
        gauge(
            r,
            "tortie_dataplane_last_write_timestamp_seconds",
            "When the dataplane last wrote (or checked) the kernel, in seconds since the Unix epoch.",
            unix_seconds(t),
        )?;
    }
    Ok(())
}

fn ipam(r: &Registry, s: &Snapshot) -> Result<()> {
    let Some(Ok(usage)) = &s.ipam else {
        return Ok(());
    };
    let g = |name: &str, help: &str| gauges(r, name, help, &["pool"]);
    let size = g("tortie_ipam_pool_addresses", "Addresses the IP pool spans.")?;
    let blocks = g(
        "tortie_ipam_blocks",
        "Blocks allocated in the pool, in the whole cluster.",
    )?;
    let node_blocks = g(
        "tortie_ipam_node_blocks",
        "Blocks of the pool affine to this node (confirmed).",
    )?;
    let in_use = g(
        "tortie_ipam_addresses_in_use",
        "Addresses in use in the pool's blocks, in the whole cluster.",
    )?;
    let node_in_use = g(
        "tortie_ipam_node_addresses_in_use",
        "Addresses in use in this node's blocks of the pool.",
    )?;
    for (pool, u) in &usage.pools {
        let l = [pool.as_str()];
        if u.size > 0.0 {
            size.with_label_values(&l).set(u.size);
        }
        blocks.with_label_values(&l).set(u.blocks as f64);
        node_blocks.with_label_values(&l).set(u.node_blocks as f64);
        in_use.with_label_values(&l).set(u.in_use as f64);
        node_in_use.with_label_values(&l).set(u.node_in_use as f64);
    }
    gauge(
        r,
        "tortie_ipam_unreadable_blocks",
        "Block documents in the datastore that did not decode (left out of the other IPAM metrics).",
        usage.unreadable as f64,
    )
}

/// The text of one scrape.
pub fn render(s: &Snapshot, a: &AgentInfo<'_>, passes: &PassMetrics) -> Result<String> {
    let r = Registry::new();
    agent(&r, a)?;
    gauge(
        &r,
        "tortie_datastore_synced",
        "1 when the datastore has been read and its watch is live (always 1 with --config files), else 0.",
        flag(s.datastore_synced),
    )?;
    sources(&r, s)?;
    bgp(&r, s)?;
    dataplane(&r, s)?;
    ipam(&r, s)?;
    // The pass metrics mean nothing on a node without a dataplane.
    if s.fib.is_some() {
        for c in passes.collectors() {
            r.register(c)?;
        }
    }
    let mut buf = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut buf)?;
    String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(format!("not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::ipam_usage::{IpamUsage, PoolUsage};
    use super::super::snapshot::fib_counts;
    use super::*;
    use std::collections::BTreeMap;
    use tortie_bgp::speaker::{PeerCounters, RibSizes};

    fn peer(addr: &str, state: State) -> PeerStatus {
        PeerStatus {
            name: "node-2".into(),
            kind: "node-to-node mesh".into(),
            address: addr.parse().unwrap(),
            port: 179,
            peer_as: 64512,
            state,
            since: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            last_error: None,
            negotiated: None,
            received: 6,
            accepted: 4,
            rr_client: false,
            advertised: 2,
            enabled: true,
            counters: PeerCounters {
                messages_in: 10,
                updates_in: 3,
                prefixes_in: 5,
                ..PeerCounters::default()
            },
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            peers: Ok(vec![peer("198.18.1.12", State::Established)]),
            rib: Some(Ok(RibSizes {
                v4_prefixes: 7,
                v6_prefixes: 0,
                paths: 9,
            })),
            fib: Some(fib_counts(&Default::default())),
            ipam: Some(Ok(IpamUsage {
                pools: BTreeMap::from([(
                    "pool-1".to_string(),
                    PoolUsage {
                        size: 65536.0,
                        blocks: 2,
                        node_blocks: 1,
                        in_use: 3,
                        node_in_use: 1,
                    },
                )]),
                unreadable: 0,
            })),
            datastore_synced: true,
        }
    }

    fn text(s: &Snapshot) -> String {
        let passes = PassMetrics::new(s.fib.is_some()).unwrap();
        render(
            s,
            &AgentInfo {
                node: "node-1",
                started: UNIX_EPOCH,
                uptime: Duration::from_secs(5),
            },
            &passes,
        )
        .unwrap()
    }

    fn line<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{text}"))
    }

    #[test]
    fn a_peer_gets_its_session_gauges_and_counters_under_its_labels() {
        let t = text(&snapshot());
        let labels = r#"{name="node-2",peer="198.18.1.12",type="node-to-node mesh"}"#;
        assert!(line(&t, &format!("tortie_bgp_session_up{labels}")).ends_with(" 1"));
        assert!(line(&t, &format!("tortie_bgp_prefixes_received_total{labels}")).ends_with(" 5"));
        assert!(line(&t, &format!("tortie_bgp_received_routes{labels}")).ends_with(" 6"));
        assert!(line(&t, &format!("tortie_bgp_accepted_routes{labels}")).ends_with(" 4"));
        assert!(line(&t, "# TYPE tortie_bgp_messages_received_total").ends_with("counter"));
    }

    #[test]
    fn the_state_gauge_is_one_for_the_current_state_only() {
        let t = text(&snapshot());
        let states: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("tortie_bgp_session_state{"))
            .collect();
        assert_eq!(states.len(), 6, "{t}");
        let on: Vec<&&str> = states.iter().filter(|l| l.ends_with(" 1")).collect();
        assert_eq!(on.len(), 1, "{states:?}");
        assert!(on[0].contains(r#"state="Established""#), "{on:?}");
    }

    #[test]
    fn a_source_that_failed_is_marked_down_and_its_series_left_out() {
        let mut s = snapshot();
        s.peers = Err("BGP peers: no answer within 2 s".into());
        s.ipam = Some(Err("IPAM blocks: store unavailable".into()));
        let t = text(&s);
        assert!(line(&t, r#"tortie_metrics_source_up{source="bgp_peers"}"#).ends_with(" 0"));
        assert!(line(&t, r#"tortie_metrics_source_up{source="ipam"}"#).ends_with(" 0"));
        assert!(line(&t, r#"tortie_metrics_source_up{source="bgp_rib"}"#).ends_with(" 1"));
        assert!(!t.contains("tortie_bgp_session_up{"), "{t}");
        assert!(!t.contains("tortie_ipam_blocks{"), "{t}");
    }

    #[test]
    fn rib_fib_ipam_and_agent_series_are_present() {
        let t = text(&snapshot());
        assert!(line(&t, r#"tortie_bgp_loc_rib_prefixes{family="ipv4"}"#).ends_with(" 7"));
        assert!(
            line(
                &t,
                r#"tortie_dataplane_fib_routes{family="ipv4",type="unicast"}"#
            )
            .ends_with(" 0")
        );
        assert!(line(&t, r#"tortie_ipam_blocks{pool="pool-1"}"#).ends_with(" 2"));
        assert!(line(&t, "tortie_agent_info{").contains(r#"node="node-1""#));
        assert!(line(&t, "tortie_datastore_synced").ends_with(" 1"));
        assert!(line(&t, "# TYPE tortie_dataplane_programming_seconds").ends_with("histogram"));
    }

    #[test]
    fn without_a_dataplane_or_datastore_their_series_are_absent() {
        let mut s = snapshot();
        s.fib = None;
        s.ipam = None;
        let t = text(&s);
        assert!(!t.contains("tortie_dataplane_"), "{t}");
        assert!(!t.contains("tortie_ipam_"), "{t}");
        assert!(!t.contains(r#"source="ipam""#), "{t}");
    }
}

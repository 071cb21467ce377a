//! Brings the speaker's peers in line with a new plan without touching sessions that did not
//! change: a new peer is added, a removed one is closed (Cease / Peer De-configured), a peer
//! whose routing alone changed (filters, next-hop mode, reflection) keeps its session and gets
//! its routes sent and requested again ([`Speaker::set_routing`], route refresh), and a peer
//! whose session parameters changed (AS, port, password, TTL, timers...) is closed and opened
//! again, which is the only way BGP can renegotiate them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use tortie_bgp::speaker::{PeerSpec, Speaker, SpeakerError};
use tracing::info;

/// What to do to go from `running` to `wanted`.
#[derive(Debug, Default, PartialEq)]
pub struct PeerChanges {
    pub add: Vec<PeerSpec>,
    pub remove: Vec<IpAddr>,
    /// Closed and added again.
    pub replace: Vec<PeerSpec>,
    pub reroute: Vec<PeerSpec>,
}

impl PeerChanges {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.replace.is_empty()
            && self.reroute.is_empty()
    }
}

/// The parts of a spec that need a new session when they change. The graceful-restart R bit
/// is left out: it only says whether this process restarted, and must not reset a session.
fn session_part(s: &PeerSpec) -> PeerSpec {
    let mut s = s.clone();
    if let Some(gr) = s.session.capabilities.graceful_restart.as_mut() {
        gr.restarting = false;
    }
    s.routing = Default::default();
    s
}

fn same_session(a: &PeerSpec, b: &PeerSpec) -> bool {
    let (a, b) = (session_part(a), session_part(b));
    a.name == b.name
        && a.kind == b.kind
        && a.port == b.port
        && a.session == b.session
        && a.local_address == b.local_address
        && a.md5 == b.md5
        && a.ttl == b.ttl
        && a.connect_timeout == b.connect_timeout
        && a.next_hop_self == b.next_hop_self
}

pub fn diff(running: &BTreeMap<IpAddr, PeerSpec>, wanted: &[PeerSpec]) -> PeerChanges {
    let mut c = PeerChanges::default();
    let wanted_by: BTreeMap<IpAddr, &PeerSpec> = wanted.iter().map(|s| (s.address, s)).collect();
    for addr in running.keys() {
        if !wanted_by.contains_key(addr) {
            c.remove.push(*addr);
        }
    }
    for (addr, w) in wanted_by {
        match running.get(&addr) {
            None => c.add.push(w.clone()),
            Some(r) if !same_session(r, w) => c.replace.push(w.clone()),
            Some(r) if r.routing != w.routing => c.reroute.push(w.clone()),
            Some(_) => {}
        }
    }
    c
}

/// Applies `changes` and records the result in `running`.
pub async fn apply(
    speaker: &Speaker,
    running: &mut BTreeMap<IpAddr, PeerSpec>,
    changes: PeerChanges,
) -> Result<(), SpeakerError> {
    for addr in changes.remove {
        info!(peer = %addr, "peer removed from the configuration: closing its session");
        speaker.remove_peer(addr).await?;
        running.remove(&addr);
    }
    for spec in changes.replace {
        info!(peer = %spec.address, "peer's session settings changed: reconnecting");
        speaker.remove_peer(spec.address).await?;
        speaker.add_peer(spec.clone()).await?;
        running.insert(spec.address, spec);
    }
    for spec in changes.reroute {
        info!(peer = %spec.address, "peer's routing changed: sending and asking for routes again");
        speaker
            .set_routing(spec.address, spec.routing.clone())
            .await?;
        running.insert(spec.address, spec);
    }
    for spec in changes.add {
        info!(peer = %spec.address, name = %spec.name, "new peer");
        speaker.add_peer(spec.clone()).await?;
        running.insert(spec.address, spec);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tortie_bgp::fsm::{GrConfig, PeerConfig};

    fn spec(addr: &str, peer_as: u32) -> PeerSpec {
        let mut session = PeerConfig::new(64512, peer_as, Ipv4Addr::new(198, 18, 1, 1));
        session.capabilities.graceful_restart = Some(GrConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: false,
        });
        PeerSpec::new(addr.parse().expect("test address"), session)
    }

    fn running(specs: &[PeerSpec]) -> BTreeMap<IpAddr, PeerSpec> {
        specs.iter().map(|s| (s.address, s.clone())).collect()
    }

    #[test]
    fn an_unchanged_plan_changes_nothing() {
        let a = spec("198.18.1.2", 64512);
        assert!(diff(&running(&[a.clone()]), &[a]).is_empty());
    }

    #[test]
    fn new_and_gone_peers_are_added_and_removed() {
        let a = spec("198.18.1.2", 64512);
        let b = spec("198.18.1.3", 64512);
        let c = diff(&running(&[a]), &[b.clone()]);
        assert_eq!(c.add, vec![b]);
        assert_eq!(
            c.remove,
            vec!["198.18.1.2".parse::<IpAddr>().expect("addr")]
        );
    }

    #[test]
    fn a_new_peer_as_reconnects_the_session() {
        let a = spec("198.18.1.2", 64512);
        let a2 = spec("198.18.1.2", 65001);
        let c = diff(&running(&[a]), &[a2.clone()]);
        assert_eq!(c.replace, vec![a2]);
        assert!(c.add.is_empty() && c.remove.is_empty() && c.reroute.is_empty());
    }

    #[test]
    fn a_filter_change_keeps_the_session_and_reroutes() {
        let a = spec("198.18.1.2", 64512);
        let mut a2 = a.clone();
        a2.routing.filters = vec![tortie_bgp::rib::policy::Filter::default()];
        let c = diff(&running(&[a]), &[a2.clone()]);
        assert_eq!(c.reroute, vec![a2]);
        assert!(c.replace.is_empty());
    }

    #[test]
    fn the_restart_bit_alone_does_not_reset_a_session() {
        let mut a = spec("198.18.1.2", 64512);
        if let Some(gr) = a.session.capabilities.graceful_restart.as_mut() {
            gr.restarting = true;
        }
        let b = spec("198.18.1.2", 64512);
        assert!(diff(&running(&[a]), &[b]).is_empty());
    }
}

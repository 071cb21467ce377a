//! ListPeers, SetPeerEnabled and RefreshPeer: the sessions, and the two things an operator
//! may do to one.
//!
//! A peer is named by its address or by its name (a node, a BGPPeer); a name that several
//! sessions share (a BGPPeer with a selector) is refused with the addresses to choose from.

use super::service::ask;
use super::{ApiState, convert};
use std::net::IpAddr;
use tonic::Status;
use tortie_bgp::fsm::State;
use tortie_bgp::speaker::PeerStatus;
use tortie_bgp::wire::Family;
use tortie_proto::v1;
use tracing::info;

/// The one peer `key` names among `peers`.
pub fn find<'a>(peers: &'a [PeerStatus], key: &str) -> Result<&'a PeerStatus, Status> {
    let key = key.trim();
    if key.is_empty() {
        return Err(Status::invalid_argument(
            "peer: empty (give an address or a name)",
        ));
    }
    let matches: Vec<&PeerStatus> = match key.parse::<IpAddr>() {
        Ok(addr) => peers.iter().filter(|p| p.address == addr).collect(),
        Err(_) => peers.iter().filter(|p| p.name == key).collect(),
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut known: Vec<String> = peers
                .iter()
                .map(|p| format!("{} ({})", p.address, p.name))
                .collect();
            known.sort();
            Err(Status::not_found(format!(
                "no peer {key:?}; peers: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )))
        }
        several => {
            let addrs: Vec<String> = several.iter().map(|p| p.address.to_string()).collect();
            Err(Status::invalid_argument(format!(
                "{key:?} names {} peers ({}): give the address",
                several.len(),
                addrs.join(", ")
            )))
        }
    }
}

pub async fn list(
    state: &ApiState,
    req: v1::ListPeersRequest,
) -> Result<v1::ListPeersResponse, Status> {
    let all = ask("ListPeers", state.speaker.peers()).await?;
    let peers = if req.peer.trim().is_empty() {
        all.iter().map(convert::peer).collect()
    } else {
        vec![convert::peer(find(&all, &req.peer)?)]
    };
    Ok(v1::ListPeersResponse {
        node: state.node.clone(),
        peers,
    })
}

pub async fn set_enabled(
    state: &ApiState,
    req: v1::SetPeerEnabledRequest,
) -> Result<v1::SetPeerEnabledResponse, Status> {
    let all = ask("SetPeerEnabled", state.speaker.peers()).await?;
    let peer = find(&all, &req.peer)?;
    let (address, was) = (peer.address, peer.enabled);
    let found = ask(
        "SetPeerEnabled",
        state.speaker.set_enabled(address, req.enabled),
    )
    .await?;
    if !found {
        // Removed by a configuration change between the two requests.
        return Err(Status::not_found(format!("peer {address} is gone")));
    }
    info!(peer = %address, enabled = req.enabled, "peer {} through the API", if req.enabled { "enabled" } else { "disabled" });
    Ok(v1::SetPeerEnabledResponse {
        address: address.to_string(),
        enabled: req.enabled,
        changed: was != req.enabled,
    })
}

/// The families to refresh: those asked for, each of which the session must have negotiated,
/// or all it negotiated.
fn refresh_families(
    asked: &[i32],
    negotiated: &[Family],
    address: IpAddr,
) -> Result<Vec<Family>, Status> {
    if asked.is_empty() {
        return Ok(negotiated.to_vec());
    }
    let mut out = Vec::new();
    for &f in asked {
        let family = match v1::AddressFamily::try_from(f) {
            Ok(v1::AddressFamily::Ipv4Unicast) => Family::Ipv4Unicast,
            Ok(v1::AddressFamily::Ipv6Unicast) => Family::Ipv6Unicast,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "families: {f} is not an address family tortie routes"
                )));
            }
        };
        if !negotiated.contains(&family) {
            return Err(Status::failed_precondition(format!(
                "the session with {address} did not negotiate {family:?}"
            )));
        }
        if !out.contains(&family) {
            out.push(family);
        }
    }
    Ok(out)
}

pub async fn refresh(
    state: &ApiState,
    req: v1::RefreshPeerRequest,
) -> Result<v1::RefreshPeerResponse, Status> {
    let all = ask("RefreshPeer", state.speaker.peers()).await?;
    let peer = find(&all, &req.peer)?;
    let address = peer.address;
    let negotiated = match (&peer.negotiated, peer.state) {
        (Some(n), State::Established) => n,
        _ => {
            return Err(Status::failed_precondition(format!(
                "the session with {address} is {} (ROUTE-REFRESH needs Established)",
                peer.state
            )));
        }
    };
    if !negotiated.route_refresh {
        return Err(Status::failed_precondition(format!(
            "{address} did not advertise the ROUTE-REFRESH capability"
        )));
    }
    let families = refresh_families(&req.families, &negotiated.families, address)?;
    for &f in &families {
        ask("RefreshPeer", state.speaker.request_refresh(address, f)).await?;
    }
    info!(peer = %address, ?families, "route refresh requested through the API");
    Ok(v1::RefreshPeerResponse {
        address: address.to_string(),
        families: families
            .into_iter()
            .map(|f| convert::family(f) as i32)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn peer(addr: &str, name: &str) -> PeerStatus {
        PeerStatus {
            name: name.into(),
            kind: "global".into(),
            address: addr.parse().unwrap(),
            port: 179,
            peer_as: 64512,
            state: State::Idle,
            since: SystemTime::UNIX_EPOCH,
            last_error: None,
            negotiated: None,
            received: 0,
            accepted: 0,
            rr_client: false,
            advertised: 0,
            enabled: true,
            counters: Default::default(),
        }
    }

    fn peers() -> Vec<PeerStatus> {
        vec![
            peer("198.18.1.2", "node2"),
            peer("198.18.2.3", "tor"),
            peer("198.18.2.4", "tor"),
        ]
    }

    #[test]
    fn a_peer_is_found_by_address_or_by_name() {
        let all = peers();
        assert_eq!(
            find(&all, "198.18.1.2").map(|p| p.name.as_str()).ok(),
            Some("node2")
        );
        assert_eq!(
            find(&all, "node2").map(|p| p.address.to_string()).ok(),
            Some("198.18.1.2".into())
        );
    }

    #[test]
    fn an_unknown_peer_is_not_found_and_the_known_ones_are_listed() {
        let e = find(&peers(), "node9")
            .err()
            .unwrap_or_else(|| Status::ok(""));
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(
            e.message().contains("198.18.1.2 (node2)"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn a_name_shared_by_several_sessions_asks_for_the_address() {
        let e = find(&peers(), "tor")
            .err()
            .unwrap_or_else(|| Status::ok(""));
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().contains("198.18.2.3, 198.18.2.4"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn refreshing_a_family_the_session_did_not_negotiate_is_refused() {
        let addr: IpAddr = "198.18.1.2".parse().unwrap();
        let asked = [v1::AddressFamily::Ipv6Unicast as i32];
        let e = refresh_families(&asked, &[Family::Ipv4Unicast], addr).err();
        assert_eq!(e.map(|s| s.code()), Some(tonic::Code::FailedPrecondition));
        assert_eq!(
            refresh_families(&[], &[Family::Ipv4Unicast], addr).ok(),
            Some(vec![Family::Ipv4Unicast])
        );
    }
}

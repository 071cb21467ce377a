//! What `/readyz` checks: the node is ready when the datastore is in sync, the dataplane (when
//! it runs) has written its first sync, and every configured session has left Idle or is
//! retrying after an error. Anything else is listed, one line each, in the 503 answer.
//!
//! A session that is connecting, waiting for its peer (Active) or up counts as ready: the
//! probe says whether this node does its part, not whether its peers are there (a node must
//! not be restarted because a neighbour is down). A session in Idle after an error is
//! retrying (the idle hold backs off) and counts too; Idle without an error means it never
//! started. A peer an operator disabled is left out.

use tortie_bgp::fsm::State;
use tortie_bgp::speaker::PeerStatus;

/// The inputs of the check.
pub struct Inputs<'a> {
    pub datastore_synced: bool,
    /// `None` when the agent runs no dataplane; else whether the first sync is written.
    pub dataplane_synced: Option<bool>,
    /// The speaker's peers, or why they could not be read.
    pub peers: &'a Result<Vec<PeerStatus>, String>,
}

/// What is not ready, one line each; empty when ready.
pub fn not_ready(i: &Inputs<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if !i.datastore_synced {
        out.push(
            "datastore: not in sync (not read yet, or its watch is down and being renewed)"
                .to_string(),
        );
    }
    if i.dataplane_synced == Some(false) {
        out.push(
            "dataplane: the first sync is not written yet (waiting for the initial BGP table, or writing failed)"
                .to_string(),
        );
    }
    match i.peers {
        Err(e) => out.push(format!("BGP: {e}")),
        Ok(peers) => {
            for p in peers {
                if p.enabled && p.state == State::Idle && p.last_error.is_none() {
                    out.push(format!(
                        "BGP peer {} ({}, {}): Idle, not started",
                        p.address, p.name, p.kind
                    ));
                }
            }
        }
    }
    out
}

/// The body of a `/readyz` answer.
pub fn body(problems: &[String]) -> String {
    if problems.is_empty() {
        return "ok\n".to_string();
    }
    let mut s = String::from("not ready:\n");
    for p in problems {
        s.push_str("- ");
        s.push_str(p);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::time::SystemTime;
    use tortie_bgp::speaker::PeerCounters;

    fn peer(addr: &str, state: State, last_error: Option<&str>, enabled: bool) -> PeerStatus {
        PeerStatus {
            name: format!("n-{addr}"),
            kind: "node-to-node mesh".into(),
            address: addr.parse::<IpAddr>().unwrap(),
            port: 179,
            peer_as: 64512,
            state,
            since: SystemTime::now(),
            last_error: last_error.map(str::to_string),
            negotiated: None,
            received: 0,
            accepted: 0,
            rr_client: false,
            advertised: 0,
            enabled,
            counters: PeerCounters::default(),
        }
    }

    fn check(datastore: bool, dataplane: Option<bool>, peers: Vec<PeerStatus>) -> Vec<String> {
        not_ready(&Inputs {
            datastore_synced: datastore,
            dataplane_synced: dataplane,
            peers: &Ok(peers),
        })
    }

    #[test]
    fn a_synced_node_with_sessions_up_or_trying_is_ready() {
        let peers = vec![
            peer("198.18.1.12", State::Established, None, true),
            peer("198.18.1.13", State::Active, None, true),
            peer("198.18.1.14", State::Connect, Some("refused"), true),
        ];
        assert_eq!(check(true, Some(true), peers), Vec::<String>::new());
    }

    #[test]
    fn a_datastore_out_of_sync_is_not_ready() {
        let p = check(false, Some(true), vec![]);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("datastore:"), "{p:?}");
    }

    #[test]
    fn a_dataplane_before_its_first_sync_is_not_ready_and_no_dataplane_is_no_condition() {
        let p = check(true, Some(false), vec![]);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("dataplane:"), "{p:?}");
        assert!(check(true, None, vec![]).is_empty());
    }

    #[test]
    fn an_idle_session_that_never_started_is_not_ready_but_one_retrying_is() {
        let p = check(
            true,
            None,
            vec![
                peer("198.18.1.12", State::Idle, None, true),
                peer("198.18.1.13", State::Idle, Some("hold timer expired"), true),
            ],
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("198.18.1.12"), "{p:?}");
    }

    #[test]
    fn a_peer_disabled_by_an_operator_does_not_count() {
        assert!(
            check(
                true,
                None,
                vec![peer("198.18.1.12", State::Idle, None, false)]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_speaker_that_does_not_answer_is_not_ready() {
        let p = not_ready(&Inputs {
            datastore_synced: true,
            dataplane_synced: None,
            peers: &Err("BGP peers: no answer within 2 s".into()),
        });
        assert_eq!(p, vec!["BGP: BGP peers: no answer within 2 s".to_string()]);
    }

    #[test]
    fn every_problem_is_listed_on_its_own_line() {
        let problems = check(
            false,
            Some(false),
            vec![peer("198.18.1.12", State::Idle, None, true)],
        );
        let b = body(&problems);
        assert!(b.starts_with("not ready:\n"), "{b}");
        assert_eq!(b.lines().filter(|l| l.starts_with("- ")).count(), 3, "{b}");
        assert_eq!(body(&[]), "ok\n");
    }
}

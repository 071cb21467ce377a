//! Bounded waits for a lab to work: every agent's expected sessions Established, then every pod
//! answering every other pod.
//!
//! A wait that runs out says exactly what is missing (which node, which session in which
//! state, which pod pairs) and shows the end of the log of the agent concerned, since that is
//! where the reason is. An agent that exits stops the wait at once.

use super::agents::{self, Session};
use super::icmp::{self, ProbePlan};
use super::process;
use super::report::{self, Matrix};
use super::state::{LabState, PodRecord};
use super::topology::Topology;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::Child;
use std::time::{Duration, Instant};

/// Source pods probed at once (one thread each).
const PARALLEL_SOURCES: usize = 16;
/// Log lines shown with a failure.
const LOG_LINES: usize = 15;

/// What is wrong with one node's sessions, or None when they are all up.
pub fn session_problem(
    t: &Topology,
    node: &str,
    got: &Result<Vec<Session>, String>,
) -> Option<String> {
    let plan = t.node(node)?;
    let list = match got {
        Ok(l) => l,
        Err(e) => return Some(format!("{node}: {e}")),
    };
    let mut problems = Vec::new();
    for want in t.expected_peers(plan) {
        let who = t.who_is(want);
        match list.iter().find(|s| s.address == want.to_string()) {
            None => problems.push(format!("no session to {want} ({who})")),
            Some(s) if !s.established() => {
                let mut p = format!("session to {want} ({who}) is {}", s.state);
                if let Some(e) = &s.last_error {
                    let _ = write!(p, " (last error: {e})");
                }
                problems.push(p);
            }
            Some(_) => {}
        }
    }
    (!problems.is_empty()).then(|| format!("{node}: {}", problems.join("; ")))
}

fn agent_log_tail(state: &LabState, node: &str) -> String {
    match state.agent(node) {
        Some(a) => format!(
            "last lines of {}:\n{}",
            a.log.display(),
            process::tail(&a.log, LOG_LINES)
        ),
        None => String::new(),
    }
}

/// Waits until every node's expected sessions are Established. `children` are the agents
/// started by this process (by node name), watched for an early exit.
pub fn sessions(
    t: &Topology,
    state: &LabState,
    children: &mut BTreeMap<String, Child>,
    deadline: Instant,
) -> Result<BTreeMap<String, Vec<Session>>, String> {
    let wanted: usize = t.nodes.iter().map(|n| t.expected_peers(n).len()).sum();
    let mut last_up = usize::MAX;
    loop {
        for (node, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the agent of {node} exited ({status}) before its sessions came up\n{}",
                    agent_log_tail(state, node)
                ));
            }
        }
        let mut all = BTreeMap::new();
        let mut problems = Vec::new();
        let mut up = 0;
        for n in &t.nodes {
            let got = state
                .agent(&n.name)
                .map_or_else(|| Err("no agent".to_string()), agents::sessions);
            if let Ok(list) = &got {
                up += t
                    .expected_peers(n)
                    .iter()
                    .filter(|a| {
                        list.iter()
                            .any(|s| s.address == a.to_string() && s.established())
                    })
                    .count();
            }
            if let Some(p) = session_problem(t, &n.name, &got) {
                problems.push((n.name.clone(), p));
            }
            all.insert(n.name.clone(), got.unwrap_or_default());
        }
        if up != last_up {
            report::line(&format!("  BGP sessions established: {up}/{wanted}"));
            last_up = up;
        }
        if problems.is_empty() {
            return Ok(all);
        }
        if Instant::now() >= deadline {
            let mut msg = String::from("BGP sessions did not all come up in time:\n");
            for (_, p) in &problems {
                let _ = writeln!(msg, "  {p}");
            }
            if let Some((node, _)) = problems.first() {
                msg.push_str(&agent_log_tail(state, node));
            }
            return Err(msg);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Probes, from each pod, the pods of `todo[from]`; fills `m` with the answers. A source
/// that cannot probe at all (its namespace is gone) answers nothing; why is returned.
fn probe_round(
    pods: &[PodRecord],
    todo: &[Vec<usize>],
    plan: ProbePlan,
    m: &mut Matrix,
) -> Vec<String> {
    let mut errors = Vec::new();
    let sources: Vec<usize> = (0..pods.len()).filter(|&i| !todo[i].is_empty()).collect();
    for chunk in sources.chunks(PARALLEL_SOURCES) {
        let results: Vec<(usize, Result<Vec<bool>, icmp::IcmpError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let targets: Vec<Ipv4Addr> = todo[i].iter().map(|&j| pods[j].address).collect();
                    let ns = pods[i].namespace.clone();
                    (i, s.spawn(move || icmp::probe(&ns, &targets, plan)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(i, h)| (i, h.join().unwrap_or_else(|_| Ok(Vec::new()))))
                .collect()
        });
        for (i, r) in results {
            match r {
                Ok(answers) => {
                    for (k, ok) in answers.into_iter().enumerate() {
                        if let Some(&j) = todo[i].get(k) {
                            m.ok[i][j] = m.ok[i][j] || ok;
                        }
                    }
                }
                Err(e) => errors.push(format!("{}: {e}", pods[i].name)),
            }
        }
    }
    errors
}

/// One full measurement (for `lab status`): every pair, a few attempts each, and the
/// problems of sources that could not probe.
pub fn measure(pods: &[PodRecord]) -> (Matrix, Vec<String>) {
    let mut m = Matrix::new(pods.iter().map(|p| p.name.clone()).collect());
    let todo: Vec<Vec<usize>> = (0..pods.len())
        .map(|i| (0..pods.len()).filter(|&j| j != i).collect())
        .collect();
    let plan = ProbePlan {
        attempts: 3,
        wait: Duration::from_millis(700),
    };
    let errors = probe_round(pods, &todo, plan, &mut m);
    (m, errors)
}

/// Probes the pairs that have not answered yet until all have, or the deadline.
pub fn reachability(
    t: &Topology,
    state: &LabState,
    deadline: Instant,
) -> Result<Matrix, (Matrix, String)> {
    let pods = &state.pods;
    let mut m = Matrix::new(pods.iter().map(|p| p.name.clone()).collect());
    let mut last = usize::MAX;
    let mut errors = Vec::new();
    let plan = ProbePlan {
        attempts: 1,
        wait: Duration::from_secs(1),
    };
    loop {
        let missing = m.missing();
        if m.answered() != last {
            report::line(&format!(
                "  pod pairs answering: {}/{}",
                m.answered(),
                m.pairs()
            ));
            last = m.answered();
        }
        if missing.is_empty() {
            return Ok(m);
        }
        if Instant::now() >= deadline {
            let mut msg = format!(
                "pods did not all reach each other in time ({} of {} pairs answer):\n",
                m.answered(),
                m.pairs()
            );
            for &(i, j) in missing.iter().take(10) {
                let _ = writeln!(
                    msg,
                    "  {} ({}) -> {} ({}): no answer",
                    pods[i].name, pods[i].address, pods[j].name, pods[j].address
                );
            }
            if missing.len() > 10 {
                let _ = writeln!(msg, "  ... and {} more", missing.len() - 10);
            }
            for e in &errors {
                let _ = writeln!(msg, "  {e}");
            }
            if let Some(&(i, _)) = missing.first() {
                let node = &pods[i].node;
                if t.node(node).is_some() {
                    msg.push_str(&agent_log_tail(state, node));
                }
            }
            return Err((m, msg));
        }
        let mut todo = vec![Vec::new(); pods.len()];
        for (i, j) in missing {
            todo[i].push(j);
        }
        errors = probe_round(pods, &todo, plan, &mut m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{Encap, LabSpec};

    fn topology() -> Topology {
        Topology::plan(&LabSpec {
            name: "tlab".into(),
            nodes: 3,
            pods_per_node: 0,
            encap: Encap::Vxlan,
            route_reflector: false,
            tor: None,
        })
        .unwrap()
    }

    fn session(address: &str, state: &str) -> Session {
        Session {
            name: String::new(),
            address: address.into(),
            state: state.into(),
            last_error: (state != "Established").then(|| "hold timer expired".into()),
        }
    }

    #[test]
    fn a_node_with_every_expected_session_established_has_no_problem() {
        let got = Ok(vec![
            session("198.18.2.12", "Established"),
            session("198.18.1.13", "Established"),
        ]);
        assert_eq!(session_problem(&topology(), "node1", &got), None);
    }

    #[test]
    fn a_missing_or_idle_session_is_named_with_its_peer_and_state() {
        let got = Ok(vec![session("198.18.2.12", "Active")]);
        let p = session_problem(&topology(), "node1", &got).unwrap();
        assert_eq!(
            p,
            "node1: session to 198.18.2.12 (node2) is Active (last error: hold timer expired); \
             no session to 198.18.1.13 (node3)"
        );
    }

    #[test]
    fn an_agent_whose_api_does_not_answer_is_reported_with_why() {
        let why = "no tortie agent is serving /run/tortie-lab/tlab/node2/api.sock";
        let p = session_problem(&topology(), "node2", &Err(why.into())).unwrap();
        assert_eq!(p, format!("node2: {why}"));
    }
}

//! What the lab prints: each node's sessions, the pod-to-pod reachability matrix, and the same
//! as JSON for scripts and tests (`lab status --json`).
//!
//! Kept apart from the waiting and probing so the layout is a pure function of the results
//! and can be tested as such.

use super::agents::Session;
use super::state::PodRecord;
use super::topology::Topology;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;

/// Writes to stdout. A closed stdout (`| head`) only ends the output: `print!` would panic.
pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// [`out`] with a newline.
pub fn line(text: &str) {
    out(&format!("{text}\n"));
}

/// Above this many pods the matrix is summarised instead of drawn.
pub const MATRIX_MAX_PODS: usize = 32;

/// Which pod reached which: `ok[from][to]`, the diagonal unused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    pub pods: Vec<String>,
    pub ok: Vec<Vec<bool>>,
}

impl Matrix {
    pub fn new(pods: Vec<String>) -> Matrix {
        let n = pods.len();
        Matrix {
            pods,
            ok: vec![vec![false; n]; n],
        }
    }

    /// The pairs (from, to) without an answer.
    pub fn missing(&self) -> Vec<(usize, usize)> {
        let n = self.pods.len();
        (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|&(i, j)| i != j && !self.ok[i][j])
            .collect()
    }

    pub fn pairs(&self) -> usize {
        let n = self.pods.len();
        n * n.saturating_sub(1)
    }

    pub fn answered(&self) -> usize {
        self.pairs() - self.missing().len()
    }

    pub fn all_ok(&self) -> bool {
        self.missing().is_empty()
    }

    /// Rows are sources, columns destinations: `ok`, `--` (no answer), `.` (itself).
    pub fn render(&self) -> String {
        let n = self.pods.len();
        if n == 0 {
            return "no pods\n".to_string();
        }
        if n > MATRIX_MAX_PODS {
            return self.summary();
        }
        let w = self.pods.iter().map(String::len).max().unwrap_or(0) + 2;
        let mut s = format!("{:w$}", "from \\ to");
        for p in &self.pods {
            let _ = write!(s, "{p:>w$}");
        }
        s.push('\n');
        for (i, from) in self.pods.iter().enumerate() {
            let _ = write!(s, "{from:w$}");
            for j in 0..n {
                let cell = if i == j {
                    "."
                } else if self.ok[i][j] {
                    "ok"
                } else {
                    "--"
                };
                let _ = write!(s, "{cell:>w$}");
            }
            s.push('\n');
        }
        s
    }

    fn summary(&self) -> String {
        let mut s = format!("{} of {} pod pairs answer\n", self.answered(), self.pairs());
        for (i, j) in self.missing().into_iter().take(20) {
            let _ = writeln!(s, "  {} -> {}: no answer", self.pods[i], self.pods[j]);
        }
        s
    }
}

/// A node's sessions as a small table.
pub fn render_sessions(
    t: &Topology,
    node: &str,
    sessions: &Result<Vec<Session>, String>,
) -> String {
    let mut s = format!("{node}:\n");
    match sessions {
        Err(e) => {
            let _ = writeln!(s, "  sessions unknown: {e}");
        }
        Ok(list) if list.is_empty() => s.push_str("  no BGP sessions\n"),
        Ok(list) => {
            for x in list {
                let who = x
                    .address
                    .parse::<Ipv4Addr>()
                    .map(|a| t.who_is(a))
                    .unwrap_or_else(|_| x.name.clone());
                let _ = write!(s, "  {:<16} {:<8} {}", x.address, who, x.state);
                if let Some(e) = x.last_error.as_ref().filter(|_| !x.established()) {
                    let _ = write!(s, " ({e})");
                }
                s.push('\n');
            }
        }
    }
    s
}

/// `lab status --json`.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    pub name: String,
    pub dir: String,
    pub spec: super::topology::LabSpec,
    pub router: RouterJson,
    pub nodes: Vec<NodeJson>,
    pub pods: Vec<PodRecord>,
    pub reachability: Vec<PairJson>,
    pub all_reachable: bool,
}

#[derive(Debug, Serialize)]
pub struct RouterJson {
    pub namespace: String,
    pub namespace_exists: bool,
    pub bird: Option<ProcessJson>,
}

#[derive(Debug, Serialize)]
pub struct ProcessJson {
    pub pid: i32,
    pub alive: bool,
}

#[derive(Debug, Serialize)]
pub struct NodeJson {
    pub name: String,
    pub namespace: String,
    pub namespace_exists: bool,
    pub address: Ipv4Addr,
    pub rack: super::topology::Rack,
    pub as_number: u32,
    pub agent: Option<ProcessJson>,
    pub sessions: Vec<SessionJson>,
    pub sessions_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SessionJson {
    pub peer: String,
    pub address: String,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct PairJson {
    pub from: String,
    pub to: String,
    pub ok: bool,
}

pub fn pairs_json(m: &Matrix) -> Vec<PairJson> {
    let mut out = Vec::new();
    for (i, from) in m.pods.iter().enumerate() {
        for (j, to) in m.pods.iter().enumerate() {
            if i != j {
                out.push(PairJson {
                    from: from.clone(),
                    to: to.clone(),
                    ok: m.ok[i][j],
                });
            }
        }
    }
    out
}

pub fn sessions_json(t: &Topology, list: &[Session]) -> Vec<SessionJson> {
    list.iter()
        .map(|x| SessionJson {
            peer: x
                .address
                .parse::<Ipv4Addr>()
                .map(|a| t.who_is(a))
                .unwrap_or_else(|_| x.name.clone()),
            address: x.address.clone(),
            state: x.state.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{Encap, LabSpec};

    fn matrix() -> Matrix {
        let mut m = Matrix::new(vec![
            "node1-pod1".into(),
            "node2-pod1".into(),
            "node3-pod1".into(),
        ]);
        for i in 0..3 {
            for j in 0..3 {
                m.ok[i][j] = i != j;
            }
        }
        m.ok[2][0] = false;
        m
    }

    #[test]
    fn the_matrix_shows_ok_and_dashes_with_pod_names_on_both_axes() {
        let text = matrix().render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("node1-pod1") && lines[0].contains("node3-pod1"));
        let row3: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(row3, ["node3-pod1", "--", "ok", "."]);
        let row1: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(row1, ["node1-pod1", ".", "ok", "ok"]);
    }

    #[test]
    fn missing_pairs_are_listed_from_source_to_destination() {
        let m = matrix();
        assert_eq!(m.missing(), [(2, 0)]);
        assert_eq!((m.answered(), m.pairs()), (5, 6));
        assert!(!m.all_ok());
    }

    #[test]
    fn a_large_matrix_is_summarised_with_its_failing_pairs() {
        let names: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
        let mut m = Matrix::new(names);
        for i in 0..40 {
            for j in 0..40 {
                m.ok[i][j] = true;
            }
        }
        m.ok[1][2] = false;
        let text = m.render();
        assert!(text.starts_with("1559 of 1560 pod pairs answer"), "{text}");
        assert!(text.contains("p1 -> p2: no answer"));
    }

    #[test]
    fn sessions_name_the_peer_node_and_show_the_error_of_a_session_that_is_down() {
        let t = Topology::plan(&LabSpec {
            name: "tlab".into(),
            nodes: 2,
            pods_per_node: 0,
            encap: Encap::Vxlan,
            route_reflector: false,
            tor: None,
        })
        .unwrap();
        let list = Ok(vec![Session {
            name: "node2".into(),
            address: "198.18.2.12".into(),
            state: "Active".into(),
            last_error: Some("connection refused".into()),
        }]);
        let text = render_sessions(&t, "node1", &list);
        assert_eq!(
            text,
            "node1:\n  198.18.2.12      node2    Active (connection refused)\n"
        );
    }
}

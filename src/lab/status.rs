//! `tortie lab status`: a running lab as it is now, measured rather than remembered.
//!
//! The topology comes from `lab.json`, but whether each process is alive, which sessions are
//! up and which pods reach each other are looked at afresh (process table, the agents' status
//! files, ICMP probes), so a lab that broke after `up` shows how. `--json` prints the same for
//! scripts and tests.

use super::agents;
use super::bird::{self, BirdFiles};
use super::netns;
use super::process;
use super::report::{self, NodeJson, ProcessJson, RouterJson, StatusJson};
use super::state::{self, LabState};
use super::wait;
use super::{LabError, StatusArgs, is_root};

pub fn run(args: StatusArgs) -> Result<(), LabError> {
    if !is_root() {
        return Err(LabError::NotRoot("status"));
    }
    let dir = state::lab_dir(&args.target.name, args.target.dir.as_deref());
    let st = LabState::load(&dir)?;
    let t = st.topology()?;
    let (matrix, probe_errors) = wait::measure(&st.pods);

    let bird = st.bird.as_ref().map(|b| ProcessJson {
        pid: b.pid,
        alive: process::is_ours(b),
    });
    let mut nodes = Vec::new();
    let mut sessions = Vec::new();
    for n in &t.nodes {
        let rec = st.agent(&n.name);
        let got = rec.map_or_else(|| Err("no agent recorded".to_string()), agents::sessions);
        nodes.push(NodeJson {
            name: n.name.clone(),
            namespace: n.namespace.clone(),
            namespace_exists: netns::exists(&n.namespace),
            address: n.address,
            rack: n.rack,
            as_number: n.as_number,
            agent: rec.and_then(|r| r.process.as_ref()).map(|p| ProcessJson {
                pid: p.pid,
                alive: process::is_ours(p),
            }),
            sessions: got
                .as_ref()
                .map(|l| report::sessions_json(&t, l))
                .unwrap_or_default(),
            sessions_error: got.as_ref().err().cloned(),
        });
        sessions.push(got);
    }

    if args.json {
        let out = StatusJson {
            name: st.spec.name.clone(),
            dir: dir.display().to_string(),
            spec: st.spec.clone(),
            router: RouterJson {
                namespace: t.router_namespace.clone(),
                namespace_exists: netns::exists(&t.router_namespace),
                bird,
            },
            nodes,
            pods: st.pods.clone(),
            all_reachable: matrix.all_ok() && probe_errors.is_empty(),
            reachability: report::pairs_json(&matrix),
        };
        let text = serde_json::to_string_pretty(&out)
            .map_err(|e| LabError::Preflight(format!("printing the status: {e}")))?;
        report::line(&text);
        return Ok(());
    }

    report::line(&format!(
        "lab {} ({}): {}",
        st.spec.name,
        dir.display(),
        st.spec.describe()
    ));
    let router_state = if netns::exists(&t.router_namespace) {
        ""
    } else {
        " (missing)"
    };
    let subnets: Vec<String> = t
        .racks()
        .iter()
        .map(|r| format!("{} on {}", r.subnet(), r.bridge()))
        .collect();
    report::out(&format!(
        "router {}{router_state}: {}",
        t.router_namespace,
        subnets.join(", ")
    ));
    if let Some(b) = &bird {
        report::out(&format!(
            "; BIRD pid {} {}",
            b.pid,
            if b.alive { "running" } else { "NOT RUNNING" }
        ));
    }
    report::line("");
    for n in &nodes {
        let agent = match &n.agent {
            Some(p) => format!(
                "agent pid {} {}",
                p.pid,
                if p.alive { "running" } else { "NOT RUNNING" }
            ),
            None => "no agent started".to_string(),
        };
        let ns = if n.namespace_exists {
            ""
        } else {
            " (namespace missing)"
        };
        report::line(&format!(
            "  {:<8} {:<16} rack {} AS {:<6} {}{ns}",
            n.name,
            format!("{}/24", n.address),
            n.rack.label(),
            n.as_number,
            agent
        ));
    }
    report::line("");
    for (n, got) in t.nodes.iter().zip(&sessions) {
        report::out(&report::render_sessions(&t, &n.name, got));
    }
    if st.bird.is_some() {
        if let Some(text) = bird::show_protocols(&BirdFiles::new(&dir)) {
            report::line(&format!("\nBIRD (router):\n{}", text.trim_end()));
        }
    }
    report::line("");
    for p in &st.pods {
        report::line(&format!(
            "  {:<14} {:<15} on {} (block {})",
            p.name, p.address, p.node, p.block
        ));
    }
    report::line("");
    report::out(&matrix.render());
    for e in &probe_errors {
        report::line(&format!("probe error: {e}"));
    }
    Ok(())
}

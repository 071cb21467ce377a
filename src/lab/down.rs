//! `tortie lab down`: stop a lab's processes, delete its namespaces, remove its directory.
//!
//! Idempotent and thorough: the processes recorded in `lab.json` are stopped by PID (SIGTERM,
//! then SIGKILL), then any process still inside one of the lab's namespaces whose command line
//! names the lab directory (one started by an `up` that died before recording it), then every
//! namespace the lab's naming scheme produces is deleted, whether `lab.json` lists it or not.
//! The directory is removed only if it holds a `lab.json`, so `--dir` pointing somewhere else
//! by mistake deletes nothing.

use super::netns;
use super::process::{self, Stopped};
use super::report;
use super::state::{self, LabState, ProcessRecord, StateError};
use super::topology::{self, is_lab_namespace};
use super::{LabError, Target, is_root};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// How long a daemon gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

pub fn run(target: &Target) -> Result<(), LabError> {
    if !is_root() {
        return Err(LabError::NotRoot("down"));
    }
    topology::check_name(&target.name)?;
    let dir = state::lab_dir(&target.name, target.dir.as_deref());
    let state = match LabState::load(&dir) {
        Ok(s) => Some(s),
        Err(StateError::Missing(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let name = state
        .as_ref()
        .map_or(target.name.clone(), |s| s.spec.name.clone());
    teardown(&name, &dir, state.as_ref(), true)
}

/// Removes everything of lab `name`; `verbose` prints what was done.
pub fn teardown(
    name: &str,
    dir: &Path,
    state: Option<&LabState>,
    verbose: bool,
) -> Result<(), LabError> {
    let say = |line: String| {
        if verbose {
            report::line(&line);
        }
    };
    let mut left = Vec::new();

    // 1. The processes lab.json knows.
    let mut recs: Vec<(String, ProcessRecord)> = Vec::new();
    if let Some(s) = state {
        if let Some(b) = &s.bird {
            recs.push(("BIRD".into(), b.clone()));
        }
        for a in &s.agents {
            if let Some(p) = &a.process {
                recs.push((format!("agent of {}", a.node), p.clone()));
            }
        }
    }
    let only: Vec<ProcessRecord> = recs.iter().map(|(_, r)| r.clone()).collect();
    for ((what, rec), outcome) in recs.iter().zip(process::stop_all(&only, GRACE)) {
        match outcome {
            Stopped::NotRunning => {}
            Stopped::Terminated => say(format!("stopped the {what} (pid {})", rec.pid)),
            Stopped::Killed => say(format!(
                "killed the {what} (pid {}) after {GRACE:?}",
                rec.pid
            )),
            Stopped::NotOurs(cmd) => say(format!(
                "pid {} of the {what} now belongs to another program ({}): left alone",
                rec.pid,
                cmd.join(" ")
            )),
            Stopped::Survived => {
                left.push(format!("the {what} (pid {}) survived SIGKILL", rec.pid))
            }
        }
    }

    // 2. The lab's namespaces: by name from the spec, and any others of its naming scheme.
    let mut namespaces: Vec<String> = Vec::new();
    if let Some(s) = state {
        if let Ok(t) = s.topology() {
            namespaces = t.namespaces();
        }
    }
    let known: BTreeSet<String> = namespaces.iter().cloned().collect();
    namespaces.extend(
        netns::list()
            .into_iter()
            .filter(|ns| is_lab_namespace(name, ns) && !known.contains(ns)),
    );
    // Pods first, router last: the reverse of creation.
    namespaces.reverse();

    // 3. Unrecorded processes in them that this lab started.
    let dir_text = dir.display().to_string();
    let mut strays = Vec::new();
    for ns in namespaces.iter().filter(|ns| netns::exists(ns)) {
        for pid in netns::pids(ns) {
            let cmd = process::cmdline(pid);
            if let Some(word) = cmd.iter().find(|a| a.starts_with(&dir_text)) {
                strays.push(ProcessRecord {
                    pid,
                    marker: word.clone(),
                });
            }
        }
    }
    for (rec, outcome) in strays.iter().zip(process::stop_all(&strays, GRACE)) {
        match outcome {
            Stopped::Survived => left.push(format!("pid {} survived SIGKILL", rec.pid)),
            Stopped::Terminated | Stopped::Killed => {
                say(format!("stopped unrecorded lab process {}", rec.pid))
            }
            _ => {}
        }
    }

    // 4. Delete the namespaces (their veths, bridges and routes go with them).
    let mut deleted = 0;
    for ns in &namespaces {
        match netns::delete(ns) {
            Ok(true) => deleted += 1,
            Ok(false) => {}
            Err(e) => left.push(e.to_string()),
        }
    }
    if deleted > 0 {
        say(format!("deleted {deleted} namespace(s) of lab {name}"));
    }

    // 5. The directory, only when it is a lab's.
    if dir.exists() {
        let is_lab = state::state_path(dir).exists();
        let empty = std::fs::read_dir(dir).is_ok_and(|mut r| r.next().is_none());
        if is_lab || empty {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => say(format!("removed {}", dir.display())),
                Err(e) => left.push(format!("{}: {e}", dir.display())),
            }
        } else {
            left.push(format!(
                "{} has no {} and was left alone",
                dir.display(),
                state::FILE_NAME
            ));
        }
    }
    let root = Path::new(state::DEFAULT_ROOT);
    if dir.parent() == Some(root) {
        // Only succeeds when no other lab is left there.
        let _ = std::fs::remove_dir(root);
    }

    if left.is_empty() {
        say(format!("lab {name} is down"));
        Ok(())
    } else {
        Err(LabError::Leftovers {
            name: name.to_string(),
            left: left.join("\n"),
        })
    }
}

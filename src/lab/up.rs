//! `tortie lab up`: build a lab, start its agents, and wait until it works.
//!
//! Everything that can be refused is checked before anything is created (root, the spec, an
//! existing lab, BIRD 2 for `--tor bird`, IPIP in the kernel for `--encap ipip`), so a refusal
//! leaves no trace. Then: the lab directory and `lab.json`, the Calico YAML loaded with the
//! real `tortie apply`, the namespaces, BIRD, the agents, the pods; `lab.json` is saved after
//! every process started. A failure while building tears the lab down again; a wait that runs
//! out leaves it running, for `lab status` and the agents' logs.

use super::agents;
use super::bird::{self, BirdFiles};
use super::down;
use super::netns;
use super::pods;
use super::report;
use super::resources;
use super::state::{self, LabState};
use super::topology::{self, Encap, LabSpec, Topology, is_lab_namespace};
use super::wait;
use super::{LabError, UpArgs, is_root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn run(args: UpArgs) -> Result<(), LabError> {
    if !is_root() {
        return Err(LabError::NotRoot("up"));
    }
    let spec = LabSpec {
        name: args.target.name.clone(),
        nodes: args.nodes,
        pods_per_node: args.pods,
        encap: args.encap,
        route_reflector: args.route_reflector,
        tor: args.tor,
    };
    let t = Topology::plan(&spec)?;
    let dir = state::lab_dir(&spec.name, args.target.dir.as_deref());
    let exe = std::env::current_exe()
        .map_err(|e| LabError::Preflight(format!("cannot find the tortie binary: {e}")))?;

    if args.replace {
        down::run(&args.target)?;
    }
    refuse_existing(&spec.name, &dir)?;
    let bird = preflight(&t, &dir)?;

    report::line(&format!("lab {}: {}", spec.name, spec.describe()));
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Io(dir.clone(), e))?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut st = LabState::new(spec.clone(), dir.clone(), exe.clone(), created);
    st.agents = t
        .nodes
        .iter()
        .map(|n| agents::record(&dir, &n.name))
        .collect();
    st.save()?;

    let mut children = BTreeMap::new();
    if let Err(e) = build(&t, &mut st, bird.as_deref(), &mut children) {
        report::line("setup failed: removing what was created");
        if let Err(d) = down::teardown(&spec.name, &dir, Some(&st), false) {
            eprintln!("tortie lab: {d}");
        }
        return Err(e);
    }

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let wait_err = |message: String| LabError::Wait {
        name: spec.name.clone(),
        message,
    };
    report::line("waiting for the BGP sessions");
    let sessions = wait::sessions(&t, &st, &mut children, deadline).map_err(wait_err)?;
    report::line("waiting for every pod to answer every other pod (ICMP echo)");
    let matrix = wait::reachability(&t, &st, deadline)
        .map_err(|(m, msg)| wait_err(format!("{msg}\n{}", m.render())))?;

    report::line("");
    for n in &t.nodes {
        let list = Ok(sessions.get(&n.name).cloned().unwrap_or_default());
        report::out(&report::render_sessions(&t, &n.name, &list));
    }
    report::line("");
    report::out(&matrix.render());
    report::line("");
    let target = name_and_dir_flags(&spec.name, args.target.dir.as_deref());
    report::line(&format!(
        "lab {} is up. `tortie lab status{target}` shows it again; `tortie lab down{target}` removes it.",
        spec.name
    ));
    Ok(())
}

/// `--name X [--dir D]` as the user has to repeat them for status and down.
fn name_and_dir_flags(name: &str, dir: Option<&Path>) -> String {
    let mut s = String::new();
    if name != topology::DEFAULT_NAME || dir.is_some() {
        s.push_str(&format!(" --name {name}"));
    }
    if let Some(d) = dir {
        s.push_str(&format!(" --dir {}", d.display()));
    }
    s
}

fn refuse_existing(name: &str, dir: &Path) -> Result<(), LabError> {
    let exists = |what: String| LabError::Exists {
        name: name.to_string(),
        what,
    };
    if state::state_path(dir).exists() {
        return Err(exists(format!(
            "{} exists",
            state::state_path(dir).display()
        )));
    }
    if let Some(ns) = netns::list()
        .into_iter()
        .find(|ns| is_lab_namespace(name, ns))
    {
        return Err(exists(format!("namespace {ns} exists")));
    }
    if std::fs::read_dir(dir).is_ok_and(|mut r| r.next().is_some()) {
        return Err(LabError::Preflight(format!(
            "{} exists and is not empty: choose another --dir (a lab never writes into a directory it did not create)",
            dir.display()
        )));
    }
    Ok(())
}

/// Checks everything that does not need the lab; returns BIRD's path for `--tor bird`.
fn preflight(t: &Topology, dir: &Path) -> Result<Option<PathBuf>, LabError> {
    if bird::on_path("ip").is_none() {
        return Err(LabError::Preflight(
            "iproute2's `ip` is not on PATH: apt-get install iproute2".into(),
        ));
    }
    for n in &t.nodes {
        agents::check_socket_path(&agents::record(dir, &n.name)).map_err(LabError::Preflight)?;
    }
    let bird = match t.spec.tor {
        Some(topology::Tor::Bird) => Some(bird::find()?),
        None => None,
    };
    if t.spec.encap == Encap::Ipip
        && !netns::ipip_available(&topology::probe_namespace(&t.spec.name))?
    {
        return Err(LabError::Preflight(
            "--encap ipip: this kernel has no IPIP support (no ipip module loaded, and creating an ipip device fails); use --encap vxlan".into(),
        ));
    }
    Ok(bird)
}

fn build(
    t: &Topology,
    st: &mut LabState,
    bird: Option<&Path>,
    children: &mut BTreeMap<String, Child>,
) -> Result<(), LabError> {
    let dir = st.dir.clone();
    let data = agents::data_dir(&dir);

    let yaml_path = dir.join("cluster.yaml");
    let yaml = resources::cluster_yaml(t)
        .map_err(|e| LabError::Preflight(format!("generating the configuration: {e}")))?;
    std::fs::write(&yaml_path, yaml).map_err(|e| LabError::Io(yaml_path.clone(), e))?;
    apply(&st.exe, &yaml_path, &data)?;
    report::line(&format!(
        "configuration: {} applied to {}",
        yaml_path.display(),
        data.display()
    ));

    build_underlay(t)?;
    report::line(&format!(
        "namespaces: {} and {} node(s), subnets {} and {}",
        t.router_namespace,
        t.nodes.len(),
        topology::Rack::A.subnet(),
        topology::Rack::B.subnet()
    ));

    if let Some(bird) = bird {
        let files = BirdFiles::new(&dir);
        let (child, rec) = bird::start(bird, t, &files)?;
        report::line(&format!(
            "BIRD (AS {}) in {} (pid {})",
            topology::TOR_AS,
            t.router_namespace,
            rec.pid
        ));
        st.bird = Some(rec);
        st.save()?;
        children.insert("router".into(), child);
    }

    for n in &t.nodes {
        let Some(rec) = st.agents.iter_mut().find(|a| a.node == n.name) else {
            continue;
        };
        let child = agents::start(&st.exe, &dir, n, rec)?;
        report::line(&format!(
            "agent of {} ({}, AS {}) started (pid {}), log {}",
            n.name,
            n.address,
            n.as_number,
            child.id(),
            rec.log.display()
        ));
        st.save()?;
        children.insert(n.name.clone(), child);
    }

    // Pods come from the real CNI plugin, run as a container runtime runs it.
    pods::install(&dir, &st.exe, t)?;
    // One line per pod while that stays readable.
    let each = t.pods.len() <= report::MATRIX_MAX_PODS;
    for plan in &t.pods {
        let node_ns = t
            .node(&plan.node)
            .map(|n| n.namespace.clone())
            .unwrap_or_default();
        let rec = pods::create(&dir, t, plan, &node_ns)?;
        st.pods.push(rec.clone());
        if each {
            report::line(&format!(
                "pod {} {} (block {}) on {}",
                rec.name, rec.address, rec.block, rec.node
            ));
        }
    }
    if !each {
        report::line(&format!("{} pods created", t.pods.len()));
    }
    st.save()?;
    Ok(())
}

/// Loads the configuration with the real CLI, as an operator would.
fn apply(exe: &Path, file: &Path, data: &Path) -> Result<(), LabError> {
    let out = Command::new(exe)
        .arg("apply")
        .arg("-f")
        .arg(file)
        .arg("--data-dir")
        .arg(data)
        .output()
        .map_err(|e| LabError::Io(exe.to_path_buf(), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::Apply {
        file: file.to_path_buf(),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// The router with its two bridges, and every node on its subnet.
fn build_underlay(t: &Topology) -> Result<(), LabError> {
    let r = &t.router_namespace;
    netns::add(r)?;
    // Set before any interface exists, so every interface takes the namespace's defaults.
    netns::sysctls(r, &forwarding_sysctls())?;
    let mut cmds = Vec::new();
    for rack in [topology::Rack::A, topology::Rack::B] {
        let br = rack.bridge();
        cmds.push(format!("link add {br} type bridge"));
        cmds.push(format!("addr add {}/24 dev {br}", rack.gateway()));
        cmds.push(format!("link set {br} up"));
    }
    netns::batch(r, &cmds)?;
    for n in &t.nodes {
        netns::add(&n.namespace)?;
        netns::sysctls(&n.namespace, &forwarding_sysctls())?;
        netns::ip(
            r,
            &[
                "link",
                "add",
                &n.router_port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &n.namespace,
            ],
        )?;
        netns::batch(
            r,
            &[format!(
                "link set {} master {} up",
                n.router_port,
                n.rack.bridge()
            )],
        )?;
        netns::batch(
            &n.namespace,
            &[
                format!("addr add {} dev eth0", n.cidr()),
                "link set eth0 up".to_string(),
                format!("route add default via {} dev eth0", n.gateway),
            ],
        )?;
    }
    Ok(())
}

/// Routers forward; reverse-path filtering is off because IPv4 settings of a new namespace
/// are copied from the host's, and a strict host setting would drop tunnelled replies.
fn forwarding_sysctls() -> Vec<(String, &'static str)> {
    vec![
        ("net.ipv4.ip_forward".to_string(), "1"),
        ("net.ipv4.conf.all.rp_filter".to_string(), "0"),
        ("net.ipv4.conf.default.rp_filter".to_string(), "0"),
    ]
}

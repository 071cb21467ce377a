//! `tortie lab up / status / down`: a virtual cluster of tortie nodes in network namespaces
//! on one machine, built from the same Calico resources, IPAM and agents a real cluster uses.
//!
//! A lab is a router namespace with two subnets (198.18.1.0/24 and 198.18.2.0/24, each a
//! bridge), nodes alternating between them, each running `tortie agent` with the kernel
//! dataplane, and pods (namespaces wired as Calico's CNI plugin wires them) with addresses
//! from 198.19.0.0/16. `up` returns once every session is Established and every pod answers
//! every other pod, leaving the lab running; `down` removes all of it. Nothing is created in
//! the host's own namespace except the lab directory, and only lab addresses are used.
//!
//! Modules: [`topology`] (names and addresses, pure), [`resources`] (the Calico YAML),
//! [`netns`], [`pods`], [`process`], [`agents`], [`bird`] (the optional ToR), [`icmp`]
//! (reachability probes), [`wait`], [`report`], [`state`] (`lab.json`), and the three commands
//! in [`up`], [`status`] and [`down`].

mod agents;
mod bird;
mod down;
mod icmp;
mod netns;
mod pods;
mod process;
mod report;
mod resources;
mod state;
mod status;
mod topology;
mod up;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use topology::{DEFAULT_NAME, Encap, Tor};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(clap::Subcommand, Debug)]
enum LabCommand {
    /// Build a lab and wait until every BGP session is up and every pod reaches every other.
    Up(UpArgs),
    /// Show a lab: its topology, agents, sessions and the pod reachability matrix.
    Status(StatusArgs),
    /// Stop a lab's processes and delete its namespaces and directory.
    Down(DownArgs),
}

/// Which lab.
#[derive(clap::Args, Debug, Clone)]
struct Target {
    /// The lab's name: the prefix of its namespaces.
    #[arg(long, default_value = DEFAULT_NAME)]
    name: String,
    /// The lab directory (default /run/tortie-lab/<name>).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct UpArgs {
    #[command(flatten)]
    target: Target,
    /// Number of nodes (1 to 200); they alternate between the two subnets.
    #[arg(long, default_value_t = 4)]
    nodes: u16,
    /// Pods per node (0 to 50).
    #[arg(long, default_value_t = 2)]
    pods: u16,
    /// Encapsulation between subnets (CrossSubnet mode); `none` needs `--tor bird`.
    #[arg(long, value_enum, default_value_t = Encap::Vxlan)]
    encap: Encap,
    /// node1 is a route reflector for the others (the mesh is turned off).
    #[arg(long)]
    route_reflector: bool,
    /// A top-of-rack router in the router namespace, peering with every node over eBGP.
    #[arg(long, value_enum)]
    tor: Option<Tor>,
    /// Seconds to wait for the sessions and the pods together.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    timeout: u64,
    /// Remove an existing lab of this name first.
    #[arg(long)]
    replace: bool,
}

#[derive(clap::Args, Debug)]
struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct DownArgs {
    #[command(flatten)]
    target: Target,
}

/// Why a lab command failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "tortie lab {0} must run as root: it creates network namespaces and starts agents in them (try sudo)"
    )]
    NotRoot(&'static str),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error(transparent)]
    Pod(#[from] pods::PodError),
    #[error(transparent)]
    Bird(#[from] bird::BirdError),
    #[error(transparent)]
    Spawn(#[from] process::SpawnError),
    #[error("{0}")]
    Preflight(String),
    #[error(
        "lab {name} already exists ({what}): `tortie lab down --name {name}` removes it, or add --replace"
    )]
    Exists { name: String, what: String },
    #[error("{path}: {err}", path = .0.display(), err = .1)]
    Io(PathBuf, std::io::Error),
    #[error("`tortie apply -f {file}` failed ({status}):\n{stderr}", file = .file.display())]
    Apply {
        file: PathBuf,
        status: String,
        stderr: String,
    },
    #[error(
        "{message}\nThe lab is left running for a look: `tortie lab status --name {name}`, then `tortie lab down --name {name}`."
    )]
    Wait { name: String, message: String },
    #[error("lab {name} was not removed completely:\n{left}")]
    Leftovers { name: String, left: String },
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a `tortie lab` command.
pub fn run(args: Args) -> ExitCode {
    let result = match args.command {
        LabCommand::Up(a) => up::run(a),
        LabCommand::Status(a) => status::run(a),
        LabCommand::Down(a) => down::run(&a.target).map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tortie lab: {e}");
            ExitCode::from(1)
        }
    }
}

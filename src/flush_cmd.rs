//! `tortie flush`: takes out of this network namespace's kernel everything tortie's dataplane
//! wrote, for a node that stops running tortie (the agent leaves its routes when it stops, so
//! that a restart loses no packet).
//!
//! What goes: routes and nexthop objects of tortie's route protocol, the VXLAN devices (with
//! their neighbour and FDB entries) and the natOutgoing table. Nothing of another protocol is
//! touched. Stop the agent first: a running one writes its routes again at its next repair.

use std::process::ExitCode;
use tortie_felix::netlink::{Kernel, KernelConfig, Netns, TORTIE_PROTOCOL};
use tortie_felix::reconcile::Felix;

#[derive(clap::Args)]
pub struct Args {
    /// The route protocol number the agent ran with (its `--route-protocol`).
    #[arg(long, value_name = "N", default_value_t = TORTIE_PROTOCOL,
          value_parser = clap::value_parser!(u8).range(5..))]
    route_protocol: u8,
}

pub fn run(args: Args) -> ExitCode {
    flush(args.route_protocol)
}

/// Flushes what tortie wrote with route protocol `protocol` (also `tortie agent --flush`).
pub fn flush(protocol: u8) -> ExitCode {
    let config = KernelConfig {
        protocol,
        ..KernelConfig::default()
    };
    let kernel = match Kernel::open(Netns::current(), config) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("tortie flush: opening rtnetlink: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Flushing looks up no underlay: the name is not used.
    match Felix::new(kernel, String::new(), None).flush() {
        Ok(()) => {
            println!("removed tortie's routes (protocol {protocol}), VXLAN devices and NAT table");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tortie flush: {e}");
            ExitCode::FAILURE
        }
    }
}

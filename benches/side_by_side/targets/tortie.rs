//! tortie: `tortie agent --dataplane none --config FILE`, the reflector as `--role
//! route-reflector` from Calico v3 resources as an operator writes them (a Node with a
//! `routeReflectorClusterID`, a Node per client labelled `bench-client`, a BGPPeer selecting
//! them), the mesh node as `--role node` with a Node per simulated peer and the mesh on. The
//! target's address sorts first, so the agent is the passive side towards every node, as in
//! Calico's template. Its API socket answers the Loc-RIB size (`ListRoutes`, count only).

use super::{Role, Spec};
use crate::error::BenchError;
use crate::plan::BENCH_AS;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

#[allow(dead_code)]
#[path = "../../../src/api/client.rs"]
mod api_client;

pub fn config(spec: &Spec) -> String {
    let a = spec.addr;
    let mesh = spec.role == Role::MeshNode;
    let mut y = String::new();
    let _ = writeln!(
        y,
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec: {{asNumber: {BENCH_AS}, listenPort: {}, bindMode: NodeIP, nodeToNodeMeshEnabled: {mesh}}}",
        spec.port
    );
    let rr = if mesh {
        String::new()
    } else {
        format!(", routeReflectorClusterID: {a}")
    };
    let _ = writeln!(
        y,
        "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: target}}\nspec: {{bgp: {{ipv4Address: {a}/32{rr}}}}}"
    );
    for p in &spec.peers {
        let name = p.to_string().replace('.', "-");
        let _ = writeln!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: peer-{name}, labels: {{bench-client: \"true\"}}}}\nspec: {{bgp: {{ipv4Address: {p}/32}}}}"
        );
    }
    if !mesh {
        y.push_str("---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: bench-clients}\nspec: {node: target, peerSelector: has(bench-client)}\n");
    }
    y
}

pub fn command(spec: &Spec, conf: &Path, api_socket: &Path) -> Command {
    let role = match spec.role {
        Role::Reflector => "route-reflector",
        Role::MeshNode => "node",
    };
    let mut c = Command::new(&spec.tortie_bin);
    c.args([
        "agent",
        "--node",
        "target",
        "--role",
        role,
        "--dataplane",
        "none",
    ])
    .arg("--config")
    .arg(conf)
    .arg("--state-dir")
    .arg(spec.dir.join("state"))
    .arg("--api-socket")
    .arg(api_socket)
    .args(["--log-level", "warn"])
    .env_remove("RUST_LOG");
    c
}

pub async fn loc_rib_prefixes(api_socket: &Path) -> Result<u64, BenchError> {
    let fail = |reason: String| BenchError::target("tortie", reason);
    let mut client = api_client::connect(api_socket)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let req = tortie_proto::v1::ListRoutesRequest {
        count_only: true,
        ..Default::default()
    };
    let reply = client
        .list_routes(req)
        .await
        .map_err(|e| fail(format!("ListRoutes: {}", e.message())))?
        .into_inner();
    let sizes = reply
        .sizes
        .ok_or_else(|| fail("ListRoutes answered without the RIB sizes".into()))?;
    Ok(sizes.ipv4_prefixes)
}

//! `tortie agent --status-file`: the sessions and learned routes as JSON, rewritten (atomically)
//! whenever they change. An interim window into the agent for tests and operators until the
//! gRPC API exists.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use tortie_bgp::speaker::Speaker;
use tracing::warn;

/// Above this many paths in the Loc-RIB the file lists no routes: each rewrite would walk the
/// table once per peer on the router task, every second (the API serves a large table a page
/// at a time).
const MAX_PATHS_LISTED: u64 = 10_000;

async fn snapshot(speaker: &Speaker, node: &str) -> Option<Value> {
    let peers = speaker.peers().await.ok()?;
    let list_routes = speaker
        .rib_sizes()
        .await
        .is_ok_and(|s| s.paths <= MAX_PATHS_LISTED);
    let mut list = Vec::new();
    for p in peers {
        let routes = if list_routes {
            speaker
                .adj_rib_in(p.address)
                .await
                .ok()
                .flatten()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let routes: Vec<Value> = routes
            .iter()
            .map(|r| {
                json!({
                    "prefix": r.prefix.to_string(),
                    "path_id": r.path_id,
                    "next_hop": r.next_hop.to_string(),
                    "as_path": r.attrs.as_path.as_ref().map(|a| a.to_string()).unwrap_or_default(),
                    "local_pref": r.attrs.local_pref,
                    "med": r.attrs.med,
                    "communities": r.attrs.communities.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        list.push(json!({
            "name": p.name,
            "kind": p.kind,
            "address": p.address.to_string(),
            "port": p.port,
            "peer_as": p.peer_as,
            "state": p.state.to_string(),
            "since": p.since.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "last_error": p.last_error,
            "received": p.received,
            "accepted": p.accepted,
            "advertised": p.advertised,
            "hold_time": p.negotiated.as_ref().map(|n| n.hold_time),
            "families": p.negotiated.as_ref().map(|n| n.families.iter().map(|f| f.to_string()).collect::<Vec<_>>()),
            "peer_hostname": p.negotiated.as_ref().and_then(|n| n.peer_hostname.clone()),
            "routes": if list_routes { json!(routes) } else { Value::Null },
        }));
    }
    Some(json!({ "node": node, "peers": list }))
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

pub async fn keep_writing(speaker: Speaker, node: String, path: PathBuf) {
    let mut events = speaker.subscribe();
    loop {
        if let Some(v) = snapshot(&speaker, &node).await {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            if let Err(e) = write_atomically(&path, &text) {
                warn!(path = %path.display(), error = %e, "cannot write the status file");
            }
        }
        // Wait for a change (or a second, which also refreshes "since"), then let a burst settle.
        let _ = tokio::time::timeout(Duration::from_secs(1), events.recv()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        while events.try_recv().is_ok() {}
    }
}

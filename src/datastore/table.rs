//! `tortie get`'s default output: a table with calicoctl's columns for each kind, read from
//! the stored documents (a field the document lacks shows as calicoctl shows it).

use serde_json::Value as Json;

use super::snapshot::StoredResource;
use crate::config::Kind;

/// The column headings of `kind`.
fn headings(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Node => &["NAME"],
        Kind::BgpConfiguration => &["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"],
        Kind::BgpPeer => &["NAME", "PEERIP", "NODE", "ASN"],
        Kind::BgpFilter => &["NAME", "NUMEXPORT", "NUMIMPORT"],
        Kind::IpPool => &["NAME", "CIDR", "SELECTOR"],
    }
}

/// A scalar field as text; `default` when absent or empty.
fn text(doc: &Json, pointer: &str, default: &str) -> String {
    match doc.pointer(pointer) {
        Some(Json::String(s)) if !s.is_empty() => s.clone(),
        Some(Json::Number(n)) => n.to_string(),
        Some(Json::Bool(b)) => b.to_string(),
        _ => default.to_string(),
    }
}

fn count(doc: &Json, pointers: &[&str]) -> String {
    pointers
        .iter()
        .map(|p| doc.pointer(p).and_then(Json::as_array).map_or(0, Vec::len))
        .sum::<usize>()
        .to_string()
}

fn row(r: &StoredResource) -> Vec<String> {
    let d = &r.document;
    let mut cells = vec![r.name.clone()];
    match r.kind {
        Kind::Node => {}
        Kind::BgpConfiguration => cells.extend([
            text(d, "/spec/logSeverityScreen", ""),
            text(d, "/spec/nodeToNodeMeshEnabled", "-"),
            text(d, "/spec/asNumber", "-"),
        ]),
        Kind::BgpPeer => {
            let node = match text(d, "/spec/node", "") {
                n if !n.is_empty() => n,
                _ => text(d, "/spec/nodeSelector", "(global)"),
            };
            cells.extend([
                text(d, "/spec/peerIP", ""),
                node,
                text(d, "/spec/asNumber", ""),
            ]);
        }
        Kind::BgpFilter => cells.extend([
            count(d, &["/spec/exportV4", "/spec/exportV6"]),
            count(d, &["/spec/importV4", "/spec/importV6"]),
        ]),
        Kind::IpPool => cells.extend([
            text(d, "/spec/cidr", ""),
            text(d, "/spec/nodeSelector", "all()"),
        ]),
    }
    cells
}

/// The table of `resources` (all of `kind`), columns padded to their widest cell.
pub fn render(kind: Kind, resources: &[StoredResource]) -> String {
    let mut rows: Vec<Vec<String>> = vec![headings(kind).iter().map(|h| h.to_string()).collect()];
    rows.extend(resources.iter().map(row));
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(c).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<width$}   "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kind: Kind, name: &str, document: Json) -> StoredResource {
        StoredResource {
            kind,
            name: name.into(),
            revision: 1,
            document,
        }
    }

    #[test]
    fn ip_pools_show_cidr_and_selector_with_calicoctls_default() {
        let pools = [
            stored(
                Kind::IpPool,
                "a",
                serde_json::json!({"spec": {"cidr": "198.19.0.0/17", "nodeSelector": "zone == 'a'"}}),
            ),
            stored(
                Kind::IpPool,
                "long-name",
                serde_json::json!({"spec": {"cidr": "198.19.128.0/17"}}),
            ),
        ];
        assert_eq!(
            render(Kind::IpPool, &pools),
            "NAME        CIDR              SELECTOR\n\
             a           198.19.0.0/17     zone == 'a'\n\
             long-name   198.19.128.0/17   all()\n"
        );
    }

    #[test]
    fn a_global_peer_shows_global_in_the_node_column() {
        let peers = [stored(
            Kind::BgpPeer,
            "tor",
            serde_json::json!({"spec": {"peerIP": "198.18.1.1", "asNumber": 65001}}),
        )];
        let table = render(Kind::BgpPeer, &peers);
        assert_eq!(
            table.lines().nth(1),
            Some("tor    198.18.1.1   (global)   65001")
        );
    }
}

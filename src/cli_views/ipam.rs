//! `tortie ipam`: IP pool and block usage, in the layout of `calicoctl ipam show
//! --show-blocks` (GROUPING, CIDR, IPS TOTAL, IPS IN USE, IPS FREE), with each block's node
//! and affinity state added.
//!
//! `--json` prints `{"node", "pools": [{"name", "cidr", "blockSize", "disabled", "size",
//! "blocks", "inUse", "free", "blockList": [BLOCK]}], "orphanBlocks": [BLOCK], "problems":
//! [text]}` with BLOCK `{"cidr", "node", "state", "size", "inUse", "free"}`; `size` of a pool is
//! a decimal string (an IPv6 pool exceeds 64 bits), `node` null for a block without affinity,
//! `state` one of `unaffine`, `pending`, `confirmed`, `pending-deletion`. `free` of a pool
//! counts the free addresses of its existing blocks.

use super::{ApiArgs, call_error, enum_or, json_text, with_percent};
use crate::status_cmd::{StatusError, printable, table};
use serde::Serialize;
use std::process::ExitCode;
use tortie_proto::v1;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockJson {
    pub cidr: String,
    pub node: Option<String>,
    pub state: &'static str,
    pub size: u64,
    pub in_use: u64,
    pub free: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolJson {
    pub name: String,
    pub cidr: String,
    pub block_size: u32,
    pub disabled: bool,
    pub size: String,
    pub blocks: u64,
    pub in_use: u64,
    pub free: u64,
    pub block_list: Vec<BlockJson>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IpamJson {
    pub node: String,
    pub pools: Vec<PoolJson>,
    pub orphan_blocks: Vec<BlockJson>,
    pub problems: Vec<String>,
}

fn state(s: i32) -> &'static str {
    match enum_or(s, v1::BlockState::Unspecified) {
        v1::BlockState::Unaffine => "unaffine",
        v1::BlockState::Pending => "pending",
        v1::BlockState::Confirmed => "confirmed",
        v1::BlockState::PendingDeletion => "pending-deletion",
        v1::BlockState::Unspecified => "unknown",
    }
}

fn block(b: v1::IpamBlock) -> BlockJson {
    BlockJson {
        cidr: printable(&b.cidr),
        node: b.node.as_deref().map(printable),
        state: state(b.state),
        size: b.size,
        in_use: b.in_use,
        free: b.free,
    }
}

pub fn from_reply(r: v1::GetIpamUsageResponse) -> Result<IpamJson, StatusError> {
    let mut pools = Vec::new();
    for p in r.pools {
        // The one number the client does arithmetic on: check it is one.
        if p.size.is_empty() || !p.size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(super::reply_error(
                "GetIpamUsage",
                format!("pool {:?}: size {:?} is not a number", p.name, p.size),
            ));
        }
        pools.push(PoolJson {
            name: printable(&p.name),
            cidr: printable(&p.cidr),
            block_size: p.block_size,
            disabled: p.disabled,
            size: p.size,
            blocks: p.blocks,
            in_use: p.in_use,
            free: p.free,
            block_list: p.block_list.into_iter().map(block).collect(),
        });
    }
    Ok(IpamJson {
        node: printable(&r.node),
        pools,
        orphan_blocks: r.orphan_blocks.into_iter().map(block).collect(),
        problems: r.problems.iter().map(|p| printable(p)).collect(),
    })
}

fn block_row(b: &BlockJson, grouping: &str) -> Vec<String> {
    let of = b.size as f64;
    vec![
        grouping.to_string(),
        b.cidr.clone(),
        b.size.to_string(),
        with_percent(b.in_use, of),
        with_percent(b.free, of),
        b.node.clone().unwrap_or_else(|| "-".into()),
        b.state.to_string(),
    ]
}

pub fn render(j: &IpamJson) -> String {
    let mut rows = Vec::new();
    for p in &j.pools {
        let total: f64 = p.size.parse().unwrap_or(f64::INFINITY);
        // calicoctl counts a pool's free addresses over the whole pool, not only its blocks.
        let free = p.size.parse::<u128>().map_or_else(
            |_| p.size.clone(),
            |s| {
                let f = s.saturating_sub(u128::from(p.in_use));
                if total.is_finite() && total > 0.0 {
                    format!("{f} ({:.0}%)", f as f64 * 100.0 / total)
                } else {
                    f.to_string()
                }
            },
        );
        rows.push(vec![
            if p.disabled {
                "IP Pool (disabled)".to_string()
            } else {
                "IP Pool".to_string()
            },
            p.cidr.clone(),
            p.size.clone(),
            with_percent(p.in_use, total),
            free,
            "-".into(),
            format!("{} block(s)", p.blocks),
        ]);
        rows.extend(p.block_list.iter().map(|b| block_row(b, "Block")));
    }
    rows.extend(
        j.orphan_blocks
            .iter()
            .map(|b| block_row(b, "Block (no pool)")),
    );
    let mut out = if rows.is_empty() {
        "No IP pools configured.\n".to_string()
    } else {
        table(
            &[
                "GROUPING",
                "CIDR",
                "IPS TOTAL",
                "IPS IN USE",
                "IPS FREE",
                "NODE",
                "STATE",
            ],
            &rows,
        )
    };
    for p in &j.problems {
        out.push_str(&format!("unreadable block: {p}\n"));
    }
    out
}

async fn ipam(args: &Args) -> Result<String, StatusError> {
    let mut client = args.api.connect().await?;
    let reply = client
        .get_ipam_usage(v1::GetIpamUsageRequest {})
        .await
        .map_err(call_error("GetIpamUsage"))?
        .into_inner();
    let j = from_reply(reply)?;
    if args.api.json {
        json_text(&j)
    } else {
        Ok(render(&j))
    }
}

pub fn run(args: Args) -> ExitCode {
    crate::status_cmd::run_printing("ipam", ipam(&args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> v1::GetIpamUsageResponse {
        v1::GetIpamUsageResponse {
            node: "node1".into(),
            pools: vec![v1::IpamPool {
                name: "default-ipv4-ippool".into(),
                cidr: "198.19.0.0/16".into(),
                block_size: 26,
                size: "65536".into(),
                blocks: 1,
                in_use: 2,
                free: 62,
                block_list: vec![v1::IpamBlock {
                    cidr: "198.19.0.0/26".into(),
                    node: Some("node1".into()),
                    state: v1::BlockState::Confirmed as i32,
                    size: 64,
                    in_use: 2,
                    free: 62,
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn pools_and_their_blocks_show_in_calicoctls_columns() {
        let text = render(&from_reply(reply()).unwrap_or_else(|e| panic!("{e}")));
        assert!(
            text.contains("| IP Pool  | 198.19.0.0/16 | 65536     | 2 (0%)     | 65534 (100%) | -     | 1 block(s) |"),
            "{text}"
        );
        assert!(
            text.contains("| Block    | 198.19.0.0/26 | 64        | 2 (3%)     | 62 (97%)     | node1 | confirmed  |"),
            "{text}"
        );
    }

    #[test]
    fn a_pool_size_that_is_not_a_number_is_a_malformed_reply() {
        let mut r = reply();
        r.pools[0].size = "lots".into();
        let e = from_reply(r)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("size \"lots\" is not a number"), "{e}");
    }

    #[test]
    fn the_json_names_block_states_in_words() {
        let j = from_reply(reply()).unwrap_or_else(|e| panic!("{e}"));
        let v = serde_json::to_value(&j).unwrap_or_default();
        assert_eq!(v["pools"][0]["blockList"][0]["state"], "confirmed");
        assert_eq!(v["pools"][0]["size"], "65536");
    }
}

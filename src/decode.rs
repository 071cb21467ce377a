//! `tortie decode`: a BGP message dissector. Each message becomes one line of JSON; a malformed
//! one becomes a JSON error naming the RFC 7606 action and, for a session reset, the
//! NOTIFICATION a BGP speaker would send.

use bytes::Bytes;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::process::ExitCode;
use tortie_bgp::wire::{self, AddPath, Ctx, DecodeError, Message};

#[derive(clap::Args)]
pub struct Args {
    /// The messages as hex (spaces, colons and a leading 0x are ignored); without it, raw
    /// bytes are read from stdin.
    #[arg(long, value_name = "HEX")]
    hex: Option<String>,
    /// Decode as if 4-octet AS numbers were negotiated (RFC 6793).
    #[arg(long)]
    as4: bool,
    /// Decode as if ADD-PATH receive were negotiated for IPv4 and IPv6 unicast (RFC 7911).
    #[arg(long)]
    add_path: bool,
    /// Allow messages up to 65535 octets (RFC 8654).
    #[arg(long)]
    extended_message: bool,
    /// Indent the JSON.
    #[arg(long)]
    pretty: bool,
}

/// Why the input could not be read; distinct from a malformed message.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("--hex: {0}")]
    Hex(#[from] hex::FromHexError),
    #[error("reading stdin: {0}")]
    Stdin(#[from] std::io::Error),
}

fn read_input(args: &Args) -> Result<Bytes, InputError> {
    match &args.hex {
        Some(text) => {
            let text = text.trim();
            let text = text.strip_prefix("0x").unwrap_or(text);
            let digits: String = text
                .chars()
                .filter(|c| !c.is_whitespace() && *c != ':')
                .collect();
            Ok(hex::decode(digits)?.into())
        }
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            Ok(buf.into())
        }
    }
}

fn error_json(err: &DecodeError, offset: usize) -> Value {
    json!({
        "error": err.reason.to_string(),
        "action": err.action,
        "code": err.code,
        "subcode": err.subcode,
        "data": hex::encode(&err.data),
        "offset": offset,
    })
}

/// The JSON line for one decoded message and whether it was valid.
fn message_json(msg: &Message, offset: usize) -> (Value, bool) {
    let body = serde_json::to_value(msg).unwrap_or_else(|e| json!({ "error": e.to_string() }));
    let worst = match msg {
        Message::Update(u) => u.errors.iter().max_by_key(|e| e.action),
        _ => None,
    };
    match worst {
        None => (body, true),
        Some(err) => {
            let mut v = error_json(err, offset);
            v["message"] = body;
            (v, false)
        }
    }
}

pub fn run(args: Args) -> ExitCode {
    let input = match read_input(&args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tortie decode: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = Ctx {
        as4: args.as4,
        add_path: if args.add_path {
            AddPath::ALL
        } else {
            AddPath::default()
        },
        extended_message: args.extended_message,
    };
    let mut lines = Vec::new();
    let mut ok = true;
    let mut offset = 0;
    while offset < input.len() {
        let rest = &input[offset..];
        let len = match wire::frame_len(rest, &ctx) {
            Ok(Some(len)) => len,
            Ok(None) => {
                ok = false;
                lines.push(json!({
                    "error": format!("truncated message: {} octets left at the end of the input", rest.len()),
                    "action": "session-reset",
                    "offset": offset,
                }));
                break;
            }
            Err(e) => {
                // The stream is out of sync: nothing after this point can be framed.
                ok = false;
                lines.push(error_json(&e, offset));
                break;
            }
        };
        let (line, valid) = match wire::decode(&rest[..len], &ctx) {
            Ok(msg) => message_json(&msg, offset),
            Err(e) => (error_json(&e, offset), false),
        };
        ok &= valid;
        lines.push(line);
        offset += len;
    }
    if input.is_empty() {
        eprintln!("tortie decode: no input");
        return ExitCode::from(2);
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        let text = if args.pretty {
            serde_json::to_string_pretty(&line)
        } else {
            serde_json::to_string(&line)
        };
        if writeln!(out, "{}", text.unwrap_or_default()).is_err() {
            return ExitCode::from(2);
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

//! `tortie decode` as a user runs it: hex or raw bytes in, one JSON line per message out, exit
//! status 1 with the RFC 7606 verdict on a malformed message.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn tortie(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tortie"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tortie runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("tortie exits")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

const KEEPALIVE: &str = "ffffffffffffffffffffffffffffffff001304";
/// UPDATE: ORIGIN IGP, AS_PATH 65001 (4-octet), NEXT_HOP 198.18.1.1, NLRI 198.19.0.64/26.
const UPDATE_AS4: &str = "ffffffffffffffffffffffffffffffff 0030 02 0000 0014 40010100 400206020100 00fde9 400304c6120101 1ac6130040";

#[test]
fn decodes_hex_into_one_json_line_per_message() {
    let out = tortie(
        &[
            "decode",
            "--as4",
            "--hex",
            &format!("{KEEPALIVE} {UPDATE_AS4}"),
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "KEEPALIVE");
    assert_eq!(lines[1]["type"], "UPDATE");
    assert_eq!(lines[1]["nlri"][0], "198.19.0.64/26");
    assert_eq!(lines[1]["attrs"]["next_hop"], "198.18.1.1");
    assert_eq!(lines[1]["attrs"]["as_path"][0]["asns"][0], 65001);
}

#[test]
fn decodes_raw_bytes_from_stdin() {
    let bytes = hex::decode(UPDATE_AS4.replace(' ', "")).unwrap();
    let out = tortie(&["decode", "--as4"], &bytes);
    assert!(out.status.success());
    assert_eq!(json_lines(&out)[0]["nlri"][0], "198.19.0.64/26");
}

#[test]
fn as4_flag_changes_how_as_path_is_read() {
    // Without --as4 the 4-octet AS_PATH is malformed as 2-octet: two ASNs claimed, one octet pair short.
    let out = tortie(&["decode", "--hex", UPDATE_AS4], b"");
    assert_eq!(out.status.code(), Some(1));
    let line = &json_lines(&out)[0];
    assert_eq!(line["action"], "treat-as-withdraw");
    assert_eq!(line["code"], 3);
    assert_eq!(line["subcode"], 11);
    assert_eq!(
        line["message"]["nlri"][0], "198.19.0.64/26",
        "the message is still shown"
    );
}

#[test]
fn add_path_flag_reads_path_identifiers() {
    // Withdrawn 198.19.0.0/26 with path id 5.
    let out = tortie(
        &[
            "decode",
            "--add-path",
            "--hex",
            "ffffffffffffffffffffffffffffffff 0020 02 0009 00000005 1a c6130000 0000",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = &json_lines(&out)[0];
    assert_eq!(line["withdrawn"][0]["prefix"], "198.19.0.0/26");
    assert_eq!(line["withdrawn"][0]["path_id"], 5);
}

#[test]
fn session_reset_errors_name_the_action_code_and_subcode() {
    let out = tortie(
        &["decode", "--hex", "ffffffffffffffffffffffffffffffff001309"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let line = &json_lines(&out)[0];
    assert_eq!(line["action"], "session-reset");
    assert_eq!(line["code"], 1);
    assert_eq!(line["subcode"], 3);
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("unknown message type 9")
    );
}

#[test]
fn attribute_discard_is_reported_with_exit_status_1() {
    // ATOMIC_AGGREGATE with a one-octet value.
    let hex = "ffffffffffffffffffffffffffffffff 0034 02 0000 0018 40010100 400206020100 00fde9 400304c6120101 40060101 1ac6130040";
    let out = tortie(&["decode", "--as4", "--hex", hex], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_lines(&out)[0]["action"], "attribute-discard");
}

#[test]
fn a_bad_message_in_the_middle_does_not_hide_the_ones_before_it() {
    let out = tortie(
        &["decode", "--hex", &format!("{KEEPALIVE}00{KEEPALIVE}")],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines[0]["type"], "KEEPALIVE");
    assert_eq!(lines[1]["action"], "session-reset");
    assert_eq!(
        lines[1]["subcode"], 1,
        "out of sync: connection not synchronized"
    );
    assert_eq!(lines[1]["offset"], 19);
}

#[test]
fn truncated_input_is_an_error() {
    let out = tortie(&["decode", "--hex", &KEEPALIVE[..30]], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_lines(&out)[0]["error"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );
}

#[test]
fn invalid_hex_is_a_usage_error_not_a_crash() {
    let out = tortie(&["decode", "--hex", "zz"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hex"));
}

#[test]
fn notification_shows_the_shutdown_communication() {
    let out = tortie(
        &[
            "decode",
            "--hex",
            "ffffffffffffffffffffffffffffffff 001a 03 06 02 04 626f6f6d",
        ],
        b"",
    );
    assert!(out.status.success());
    let line = &json_lines(&out)[0];
    assert_eq!(line["subcode_name"], "Administrative Shutdown");
    assert_eq!(line["communication"], "boom");
}

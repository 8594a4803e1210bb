//! How the `rdv` binary fails: exit status 1; with `--json` exactly one error object on stdout
//! and nothing on stderr, else one line on stderr (`client-api.md` §9). No server needed: a
//! keystore directory without an account is a client-side refusal.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

const RDV: &str = env!("CARGO_BIN_EXE_rdv");
const TOPIC: &str = "!aaaaaaaaaaaaaaaaaaaaaaaaaa:a.example";

fn rdv(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join(format!("rdv-failures-{}-none", std::process::id()));
    Command::new(RDV)
        .arg("--home")
        .arg(&home)
        .args(args)
        .env_remove("RDV_HOME")
        .output()
        .unwrap()
}

#[test]
fn json_failure_is_one_object_on_stdout() {
    let out = rdv(&["--json", "read", TOPIC]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "not_registered");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("rdv account register"),
        "{v}"
    );
}

#[test]
fn text_failure_is_one_line_on_stderr() {
    let out = rdv(&["read", TOPIC]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("rdv: error: "), "{stderr}");
}

#[test]
fn a_command_line_that_does_not_parse_is_a_usage_error() {
    let out = rdv(&["--json", "read", "!nope"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(v["code"], "usage");
    assert!(out.stderr.is_empty());
}

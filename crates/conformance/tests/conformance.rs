//! `rdv-conform` against real homeservers (real TLS on loopback): every check passes against a
//! fresh server set up as `federation-spec/conformance.md` says, and the runner fails, naming
//! the checks, against a server that accepts what it must refuse.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use rendezvous_testkit::TempDir;
use rendezvous_testkit::lying::{Answer, LyingHost};
use rendezvous_testkit::server::TestServer;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../federation-spec/vectors");

/// keys.json `server.seed`: the target signs with the vectors' Server Key.
fn vector_server_seed() -> Vec<u8> {
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{VECTORS}/keys.json")).unwrap())
            .unwrap();
    hex::decode(keys["server"]["seed"].as_str().unwrap()).unwrap()
}

/// A fresh homeserver named `a.example` with the vectors' Server Key in `data`.
fn target(data: &Path) -> TestServer {
    std::fs::create_dir_all(data).unwrap();
    let key = data.join("server.key");
    std::fs::write(&key, vector_server_seed()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    TestServer::start_with(data, "127.0.0.1:0".parse().unwrap(), |config| {
        config.server_name = "a.example".parse().unwrap();
        None
    })
}

/// Runs `rdv-conform`; its exit status and stdout lines.
fn conform(url: &str, fingerprint: &str, pin: &str) -> (Option<i32>, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_rdv-conform"))
        .args(["--url", url, "--fingerprint", fingerprint, "--pin", pin])
        .args(["--vectors", VECTORS])
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (out.status.code(), lines)
}

#[actix_rt::test]
async fn every_check_passes_against_the_reference_server() {
    let dir = TempDir::new("conform-ok");
    let server = target(&dir.join("server"));
    let pin = server.pin().await;
    let url = server.url.clone();
    let fp = server.fingerprint.clone();
    let (status, lines) = actix_rt::task::spawn_blocking(move || conform(&url, &fp, &pin))
        .await
        .unwrap();
    let failed: Vec<&String> = lines.iter().filter(|l| !l.starts_with("ok ")).collect();
    assert!(failed.is_empty(), "{lines:#?}");
    assert_eq!(status, Some(0), "{lines:#?}");
    // Every group of checks ran.
    for name in [
        "register_bad_signature",
        "register",
        "login",
        "prekeys_claim",
        "topic_keys_claim",
        "topic_create",
        "message_post",
        "entries_read",
        "checkpoint",
    ] {
        assert!(lines.contains(&format!("ok {name}")), "{name}: {lines:#?}");
    }
}

#[actix_rt::test]
async fn a_server_that_accepts_what_it_must_refuse_fails() {
    let dir = TempDir::new("conform-lying");
    let data = dir.join("server");
    let server = target(&data);
    let pin = server.pin().await;
    // In front of the real server, every refusal turned into `200 [1]`.
    let liar = LyingHost::start(&data, "a.example", &server.url, &server.trust());
    liar.after(|_, answer| {
        if answer.status >= 400 {
            *answer = Answer {
                status: 200,
                content_type: "application/cbor".into(),
                body: vec![0x81, 0x01],
            };
        }
    });
    let url = liar.url.clone();
    let fp = server.fingerprint.clone();
    let (status, lines) = actix_rt::task::spawn_blocking(move || conform(&url, &fp, &pin))
        .await
        .unwrap();
    assert_eq!(status, Some(1), "{lines:#?}");
    for name in [
        "register_bad_signature",
        "register_wrong_version",
        "login_bad_signature",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("FAIL {name}: accepted"))),
            "{name}: {lines:#?}"
        );
    }
    // What the real server answered is still checked as passing.
    assert!(lines.contains(&"ok register".to_owned()), "{lines:#?}");
}

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

/// The keystore at rest (`devices.md` §5.5, `client-api.md` §9): a keystore made with the
/// library, locked with `PASSPHRASE`; no server needed (`evidence export` reads only the
/// keystore).
mod passphrase {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};

    use rendezvous_client::Passphrase;
    use rendezvous_client::keystore::{Config, Keystore};
    use rendezvous_protocol::crypto::{DeviceKey, IdentityKey};

    use super::RDV;

    const PASSPHRASE: &str = "rdv failures passphrase";

    fn keystore(name: &str) -> PathBuf {
        let home = std::env::temp_dir().join(format!("rdv-failures-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let ks = Keystore::create(&home, &Passphrase::new(PASSPHRASE)).unwrap();
        ks.save_config(&Config {
            server_url: "https://127.0.0.1:1".into(),
            server_name: "a.example".into(),
            trust: format!("pin:sha256:{}", "0".repeat(64)),
            user: "@alice:a.example".into(),
            server_keys: BTreeMap::new(),
            server_rotations: BTreeMap::new(),
            inbox_seq: 0,
            refused_posts: Vec::new(),
        })
        .unwrap();
        ks.save_identity(&IdentityKey::generate()).unwrap();
        ks.save_device(&DeviceKey::generate()).unwrap();
        home
    }

    /// Every file under `dir` with its bytes and modification time.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            out.push((
                path.clone(),
                std::fs::read(&path).unwrap(),
                meta.modified().unwrap(),
            ));
        }
        out.sort();
        out
    }

    /// `rdv --json --home HOME ARGS` with no terminal (standard input is /dev/null) and
    /// `RDV_PASSPHRASE` set to `env`, or unset.
    fn rdv(home: &Path, env: Option<&str>, args: &[&str]) -> Output {
        let mut command = Command::new(RDV);
        command
            .arg("--json")
            .arg("--home")
            .arg(home)
            .args(args)
            .env_remove("RDV_HOME")
            .env_remove("RDV_PASSPHRASE")
            .stdin(Stdio::null());
        if let Some(value) = env {
            command.env("RDV_PASSPHRASE", value);
        }
        command.output().unwrap()
    }

    fn error_code(out: &Output) -> String {
        assert_ne!(out.status.code(), Some(0));
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        assert_eq!(v["type"], "error", "{v}");
        v["code"].as_str().unwrap().to_owned()
    }

    #[test]
    fn without_a_passphrase_or_a_terminal_a_keystore_command_is_refused() {
        let home = keystore("none");
        let before = snapshot(&home);
        let out = rdv(&home, None, &["evidence", "export"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(error_code(&out), "passphrase_required");
        assert!(String::from_utf8_lossy(&out.stdout).contains("RDV_PASSPHRASE"));
        assert_eq!(
            snapshot(&home),
            before,
            "a refused command changed the keystore"
        );
        let _ = std::fs::remove_dir_all(home);
    }

    #[test]
    fn a_wrong_passphrase_is_refused_and_changes_nothing() {
        let home = keystore("wrong");
        let before = snapshot(&home);
        let out = rdv(&home, Some("not the passphrase"), &["evidence", "export"]);
        assert_eq!(error_code(&out), "wrong_passphrase");
        let file = home.with_extension("wrong-file");
        std::fs::write(&file, "not the passphrase\n").unwrap();
        let out = rdv(
            &home,
            Some(PASSPHRASE),
            &[
                "--passphrase-file",
                file.to_str().unwrap(),
                "evidence",
                "export",
            ],
        );
        // The file comes first, even with the right passphrase in the environment.
        assert_eq!(error_code(&out), "wrong_passphrase");
        assert_eq!(snapshot(&home), before);
        let _ = std::fs::remove_dir_all(home);
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn the_passphrase_from_the_environment_or_a_file_opens_the_keystore() {
        let home = keystore("right");
        let out = rdv(&home, Some(PASSPHRASE), &["evidence", "export"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"no_evidence\""));
        let file = home.with_extension("right-file");
        for text in [
            format!("{PASSPHRASE}\n"),
            format!("{PASSPHRASE}\r\nsecond line\n"),
        ] {
            std::fs::write(&file, text).unwrap();
            let out = rdv(
                &home,
                None,
                &[
                    "--passphrase-file",
                    file.to_str().unwrap(),
                    "evidence",
                    "export",
                ],
            );
            assert_eq!(out.status.code(), Some(0), "{out:?}");
        }
        let _ = std::fs::remove_dir_all(home);
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn commands_that_need_no_keystore_need_no_passphrase() {
        let home = std::env::temp_dir().join(format!("rdv-failures-{}-nokeys", std::process::id()));
        for args in [["--help"], ["--version"]] {
            let out = rdv(&home, None, &args);
            assert_eq!(out.status.code(), Some(0), "{out:?}");
        }
        assert!(!home.exists());
    }

    #[test]
    fn an_empty_passphrase_creates_nothing() {
        let home = std::env::temp_dir().join(format!("rdv-failures-{}-empty", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let register = [
            "account",
            "register",
            "--server",
            "https://127.0.0.1:1",
            "--system-roots",
            "--pin",
            "0000",
            "--user",
            "@alice:a.example",
        ];
        let out = rdv(&home, Some(""), &register);
        assert_eq!(error_code(&out), "invalid_input");
        assert!(!home.exists());
        let out = rdv(&home, None, &register);
        assert_eq!(error_code(&out), "passphrase_required");
        assert!(!home.exists());
    }

    #[test]
    fn passphrase_change_locks_the_keystore_with_the_new_one() {
        let home = keystore("change");
        let before = snapshot(&home);
        // No new passphrase and no terminal: refused, nothing changed.
        let out = rdv(&home, Some(PASSPHRASE), &["passphrase", "change"]);
        assert_eq!(error_code(&out), "passphrase_required");
        assert_eq!(snapshot(&home), before);

        let new = home.with_extension("new-passphrase");
        std::fs::write(&new, "a new passphrase\n").unwrap();
        let change = [
            "passphrase",
            "change",
            "--new-passphrase-file",
            new.to_str().unwrap(),
        ];
        let out = rdv(&home, Some("not the passphrase"), &change);
        assert_eq!(error_code(&out), "wrong_passphrase");
        assert_eq!(snapshot(&home), before);
        let out = rdv(&home, Some(PASSPHRASE), &change);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"passphrase_changed\""));

        let out = rdv(&home, Some(PASSPHRASE), &["evidence", "export"]);
        assert_eq!(error_code(&out), "wrong_passphrase");
        let out = rdv(&home, Some("a new passphrase"), &["evidence", "export"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let _ = std::fs::remove_dir_all(home);
        let _ = std::fs::remove_file(new);
    }
}

//! The `rendezvous` binary as operators run it: a real process with a config file, the admin
//! commands against it, graceful shutdown on SIGTERM with exit status 0, and a restart that keeps
//! everything.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use rendezvous_client::Client;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::config::ServerConfig;
use rendezvous_testkit::process::{Launch, ServerProcess};
use rendezvous_testkit::server::uid;
use rendezvous_testkit::{TempDir, rendezvous_bin};

fn start(config: &Path) -> ServerProcess {
    Launch::new(rendezvous_bin!(), config).start()
}

fn admin(config: &Path, args: &[&str]) -> String {
    rendezvous_testkit::process::admin(rendezvous_bin!(), config, args)
}

#[actix_rt::test]
async fn operator_lifecycle_with_a_real_process() {
    let dir = TempDir::new("process");
    let config = dir.join("rendezvous.toml");
    ServerConfig::new("localhost", &dir.join("data"), [127, 0, 0, 1]).write(&config);
    let server = start(&config);
    assert_eq!(admin(&config, &["fingerprint"]), server.ready.fingerprint);
    let trust = server.trust();

    let mut alice = Client::register(
        &dir.join("alice"),
        &rendezvous_testkit::passphrase(),
        server.url(),
        trust.clone(),
        &admin(&config, &["pin"]),
        &uid("alice"),
    )
    .await
    .unwrap();
    let _bob = Client::register(
        &dir.join("bob"),
        &rendezvous_testkit::passphrase(),
        server.url(),
        trust.clone(),
        &admin(&config, &["pin"]),
        &uid("bob"),
    )
    .await
    .unwrap();
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    for i in 0..5 {
        alice
            .send(&topic, format!("before SIGTERM {i}").as_bytes())
            .await
            .unwrap();
    }
    let users: serde_json::Value = serde_json::from_str(&admin(&config, &["users"])).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);
    let devices: serde_json::Value =
        serde_json::from_str(&admin(&config, &["devices", "@alice:localhost"])).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 1);

    // Metrics count what happened, on the admin listener with the metrics token only.
    let data = dir.join("data");
    let token = std::fs::read_to_string(data.join("metrics.token")).unwrap();
    let (status, metrics) = admin_get(&server, "/metrics", Some(token.trim())).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("rendezvous_messages_appended_total 5"),
        "{metrics}"
    );
    assert_eq!(admin_get(&server, "/metrics", None).await.0, 401);
    // The metrics token opens nothing else of the admin endpoint.
    assert_eq!(
        admin_get(&server, "/admin/users", Some(token.trim()))
            .await
            .0,
        401
    );
    let on_client_api = rendezvous_client::http::Http::new(server.url(), &trust)
        .unwrap()
        .send(awc::http::Method::GET, "/metrics", None, None, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        on_client_api.to_string().contains("not_found"),
        "{on_client_api}"
    );

    server.terminate();
    let server = start(&config);
    let mut bob = Client::open(&dir.join("bob"), &rendezvous_testkit::passphrase()).unwrap();
    let report = bob.read(&topic).await.unwrap();
    let texts = rendezvous_testkit::raw::texts(&report);
    assert_eq!(
        texts,
        (0..5)
            .map(|i| format!("before SIGTERM {i}"))
            .collect::<Vec<_>>()
    );

    // A disabled user is locked out at once.
    admin(&config, &["disable", "@bob:localhost"]);
    let err = bob.read(&topic).await.unwrap_err();
    assert_eq!(
        err.code().map(|c| c.as_str()),
        Some("user_disabled"),
        "{err}"
    );
    admin(&config, &["enable", "@bob:localhost"]);
    assert!(bob.read(&topic).await.is_ok());
    server.terminate();
}

/// A GET on the admin listener: status and body.
async fn admin_get(server: &ServerProcess, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = awc::Client::default().get(format!("http://{}{path}", server.ready.admin));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let mut resp = req.send().await.unwrap();
    let body = resp.body().await.unwrap();
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// `rendezvous serve --config config`, expected to fail: its stderr.
fn refused(config: &Path) -> String {
    let out = std::process::Command::new(rendezvous_bin!())
        .args(["serve", "--config"])
        .arg(config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_second_server_on_the_same_data_directory_is_told_one_is_running() {
    let dir = TempDir::new("process-twice");
    let data = dir.join("data");
    let (first, second) = (dir.join("first.toml"), dir.join("second.toml"));
    ServerConfig::new("localhost", &data, [127, 0, 0, 1]).write(&first);
    ServerConfig::new("localhost", &data, [127, 0, 0, 1]).write(&second);
    let server = start(&first);
    let err = refused(&second);
    assert!(
        err.contains(&format!(
            "a server is already running on the data directory {} (process {})",
            data.display(),
            server.ready.pid
        )),
        "{err}"
    );
    server.terminate();
}

#[test]
fn a_port_in_use_is_named_with_the_key_that_sets_it() {
    let dir = TempDir::new("process-port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = ServerConfig::new("localhost", &dir.join("data"), [127, 0, 0, 1]);
    config.client_api.listen = addr;
    config.write(&dir.join("rendezvous.toml"));
    let err = refused(&dir.join("rendezvous.toml"));
    assert!(
        err.contains(&format!(
            "cannot listen on {addr}: the address is already in use"
        )),
        "{err}"
    );
    assert!(err.contains("[client_api] listen"), "{err}");
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let dir = TempDir::new("process-log");
    let config = dir.join("rendezvous.toml");
    ServerConfig::new("localhost", &dir.join("data"), [127, 0, 0, 1]).write(&config);
    let log = dir.join("server.log");
    let ready_file = dir.join("ready.json");
    let mut child = std::process::Command::new(rendezvous_bin!())
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--ready-file")
        .arg(&ready_file)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let ready = rendezvous_testkit::process::Ready::wait(
        &ready_file,
        &mut child,
        rendezvous_testkit::PATIENCE,
    )
    .unwrap();
    assert_eq!(ready.pid, child.id());
    rendezvous_testkit::process::signal(child.id(), "TERM");
    assert!(child.wait().unwrap().success());
    assert!(!ready_file.exists(), "a clean stop removes the ready file");
    let text = std::fs::read(&log).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("INFO"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
}

#[actix_rt::test]
async fn the_data_directory_is_private_whatever_it_was() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("private");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("admin.token"), "0123456789abcdef\n").unwrap();
    std::fs::set_permissions(
        data.join("admin.token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let config = dir.join("rendezvous.toml");
    ServerConfig::new("localhost", &data, [127, 0, 0, 1]).write(&config);
    let server = start(&config);
    server.wait_for("made private");
    admin(&config, &["pin"]);
    server.terminate();
    let mut stack = vec![data.clone()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
            files += 1;
        }
    }
    // Keys, tokens, certificates and the database's files.
    assert!(files >= 5, "{files} files");
}

//! The `rendezvous` binary as operators run it: a real process with a config file, the admin
//! commands against it, graceful shutdown on SIGTERM with exit status 0, and a restart that keeps
//! everything.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::server::{TempDir, uid};
use rendezvous_client::Client;
use rendezvous_client::tls::{Fingerprint, Trust};
use rendezvous_protocol::topic::{History, Role};

const BIN: &str = env!("CARGO_BIN_EXE_rendezvous");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    url: String,
    fingerprint: String,
}

fn start(config: &std::path::Path) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut url, mut fingerprint) = (None, None);
    while url.is_none() || fingerprint.is_none() {
        let line = lines.next().expect("server printed its addresses").unwrap();
        if let Some(u) = line.strip_prefix("client API: ") {
            url = Some(u.to_owned());
        }
        if let Some(f) = line.strip_prefix("TLS certificate fingerprint: ") {
            fingerprint = Some(f.to_owned());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url: url.unwrap(),
        fingerprint: fingerprint.unwrap(),
    }
}

fn admin(config: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["admin", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn terminate(mut server: Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "graceful shutdown exits 0, got {status}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[actix_rt::test]
async fn operator_lifecycle_with_a_real_process() {
    let dir = TempDir::new("process");
    let config = dir.join("rendezvous.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[client_api]\nlisten = \"127.0.0.1:{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            dir.join("data"),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let server = start(&config);
    assert_eq!(admin(&config, &["fingerprint"]), server.fingerprint);
    let trust = Trust::Pinned(server.fingerprint.parse::<Fingerprint>().unwrap());

    let mut alice = Client::register(
        &dir.join("alice"),
        &server.url,
        trust.clone(),
        &admin(&config, &["pin"]),
        &uid("alice"),
    )
    .await
    .unwrap();
    let _bob = Client::register(
        &dir.join("bob"),
        &server.url,
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

    // Metrics count what happened.
    let metrics = reqwest_like_get(&server.url, &trust, "/metrics").await;
    assert!(
        metrics.contains("rendezvous_messages_appended_total 5"),
        "{metrics}"
    );

    terminate(server);
    let server = start(&config);
    let mut bob = Client::open(&dir.join("bob")).unwrap();
    let report = bob.read(&topic).await.unwrap();
    let texts: Vec<String> = report
        .entries
        .iter()
        .filter_map(|e| match &e.content {
            rendezvous_client::EntryContent::Message { text, .. } => text.clone(),
            _ => None,
        })
        .collect();
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
    terminate(server);
}

async fn reqwest_like_get(base: &str, trust: &Trust, path: &str) -> String {
    let http = rendezvous_client::http::Http::new(base, trust).unwrap();
    let body = http
        .send(awc::http::Method::GET, path, None, None, 1 << 20)
        .await
        .unwrap();
    String::from_utf8(body).unwrap()
}

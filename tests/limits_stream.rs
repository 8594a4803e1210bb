//! `/v1/stream` quotas (`client-api.md` §7.1) against a real `rendezvous` process: a user holds
//! a bounded number of streams, a device's newest replaces its oldest, and streams that never
//! read are closed once they fall 2 MiB behind, so a hog cannot grow the server's memory with
//! what it refuses to take.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rendezvous_client::Client;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::config::ServerConfig;
use rendezvous_testkit::process::ServerProcess;
use rendezvous_testkit::server::uid;
use rendezvous_testkit::{TempDir, http1, raw, rendezvous_bin};

fn start(
    dir: &TempDir,
    configure: impl FnOnce(&mut ServerConfig),
) -> (ServerProcess, std::path::PathBuf) {
    rendezvous_testkit::process::start_configured(rendezvous_bin!(), dir, configure)
}

async fn user(dir: &TempDir, server: &ServerProcess, config: &Path, name: &str) -> Client {
    rendezvous_testkit::process::register(rendezvous_bin!(), dir, server, config, name).await
}

/// A stream opened by hand over TLS that never reads after the handshake: a hog.
fn hog(server: &ServerProcess, token: &str) -> http1::RawTls {
    let here = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut s = http1::raw_tls(server, here);
    let head = format!(
        "GET /v1/stream HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    assert!(http1::send(&mut s, head.as_bytes()));
    let mut status = [0u8; 12];
    s.read_exact(&mut status).unwrap();
    assert_eq!(
        &status[9..12],
        b"101",
        "{}",
        String::from_utf8_lossy(&status)
    );
    s
}

/// The server's resident memory, KiB.
fn rss_kib(server: &ServerProcess) -> u64 {
    http1::rss(server.child.id()) / 1024
}

#[actix_rt::test]
async fn a_user_holds_a_bounded_number_of_streams() {
    let dir = TempDir::new("streams");
    let (server, config) = start(&dir, |c| {
        c.limits.ws_per_user = Some(2);
        c.limits.ws_per_device = Some(5);
    });
    let alice = user(&dir, &server, &config, "alice").await;
    let (http, token) = raw::http(&server, &alice);
    let _one = http.stream(&token).await.unwrap();
    let _two = http.stream(&token).await.unwrap();
    let third = http
        .stream(&token)
        .await
        .expect_err("a third stream is refused");
    assert!(third.to_string().contains("403"), "{third}");
    // Not a WebSocket upgrade: 426 with the JSON body.
    let a = http
        .send(
            awc::http::Method::GET,
            "/v1/stream",
            None,
            Some(&token),
            4096,
        )
        .await
        .unwrap_err();
    assert!(a.to_string().contains("upgrade_required"), "{a}");
    server.terminate();
}

#[actix_rt::test]
async fn a_devices_newest_stream_replaces_its_oldest() {
    let dir = TempDir::new("replace");
    let (server, config) = start(&dir, |c| c.limits.ws_per_device = Some(1));
    let mut alice = user(&dir, &server, &config, "alice").await;
    let topic = alice.create_topic(&[], History::Shared).await.unwrap();
    let (http, token) = raw::http(&server, &alice);
    let mut old = http.stream(&token).await.unwrap();
    let mut new = http.stream(&token).await.unwrap();
    alice.send(&topic, b"to the newest").await.unwrap();
    let frame = actix_rt::time::timeout(Duration::from_secs(10), new.next_frame())
        .await
        .unwrap()
        .unwrap()
        .expect("the newest stream is open");
    assert_eq!(frame.topic, topic);
    // The oldest was closed: it ends without the frame.
    let ended = actix_rt::time::timeout(Duration::from_secs(10), old.next_frame())
        .await
        .unwrap();
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    server.terminate();
}

#[actix_rt::test]
async fn a_stream_outlives_the_body_deadline_and_may_ping() {
    let dir = TempDir::new("long");
    let (server, config) = start(&dir, |c| c.limits.body_timeout_secs = Some(1));
    let mut alice = user(&dir, &server, &config, "alice").await;
    let topic = alice.create_topic(&[], History::Shared).await.unwrap();
    let (http, token) = raw::http(&server, &alice);
    let mut stream = http.stream(&token).await.unwrap();
    // Far past a body's deadline, and with frames from the device: the stream stays open.
    for _ in 0..3 {
        actix_rt::time::sleep(Duration::from_millis(1200)).await;
        stream.ping(b"keep me").await.unwrap();
    }
    alice.send(&topic, b"hours later").await.unwrap();
    let frame = actix_rt::time::timeout(Duration::from_secs(10), stream.next_frame())
        .await
        .unwrap()
        .unwrap()
        .expect("the stream is still open");
    assert_eq!(frame.topic, topic);
    server.terminate();
}

#[actix_rt::test]
async fn streams_that_never_read_are_closed_and_memory_stays_bounded() {
    let dir = TempDir::new("hog");
    let (server, config) = start(&dir, |c| c.limits.ws_per_device = Some(10));
    let mut alice = user(&dir, &server, &config, "alice").await;
    let mut eve = user(&dir, &server, &config, "eve").await;
    let topic = alice
        .create_topic(&[(uid("eve"), Role::Reader)], History::Shared)
        .await
        .unwrap();
    let (http, token) = raw::http(&server, &eve);
    let hogs: Vec<_> = (0..10).map(|_| hog(&server, &token)).collect();
    assert_eq!(connections(&config), 10);
    let before = rss_kib(&server);
    let big = vec![b'x'; 60 * 1024];
    // 150 entries of 60 KB: 9 MB for each hog, 90 MB if they were copied per connection, and
    // far more than a hog's 2 MiB queue plus what the sockets' buffers take.
    for i in 0..150 {
        alice.send(&topic, &big).await.unwrap();
        // A sender replays what it has not read yet before each send: reading keeps it short.
        if i % 25 == 0 {
            let _ = alice.read(&topic).await.unwrap();
        }
    }
    let after = rss_kib(&server);
    let grown = after.saturating_sub(before) / 1024;
    eprintln!("RSS {} MiB -> {} MiB", before / 1024, after / 1024);
    // Every hog fell more than its queue behind and was dropped from the hub.
    assert_eq!(connections(&config), 0, "the hogs were not closed");
    assert!(grown < 48, "RSS grew by {grown} MiB");
    drop(hogs);
    // A device that reads still gets every new entry.
    let mut live = http.stream(&token).await.unwrap();
    alice.send(&topic, b"still live").await.unwrap();
    let frame = actix_rt::time::timeout(Duration::from_secs(10), live.next_frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.topic, topic);
    let _ = eve.read(&topic).await.unwrap();
    server.terminate();
}

/// Open streams, as `rendezvous admin status` counts them.
fn connections(config: &Path) -> u64 {
    let status =
        rendezvous_testkit::process::admin(rendezvous_bin!(), config, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    status["connections"].as_u64().unwrap()
}

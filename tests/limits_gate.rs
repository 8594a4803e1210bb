//! The gate in front of every client API endpoint (`client-api.md` §1.2–§1.3), tried as an
//! abusive client would against a real `rendezvous` process: bodies over each endpoint's cap are
//! refused before they are read, token endpoints read nothing without a token, slow bodies time
//! out, and floods get `429 rate_limited` with `Retry-After` while other callers go on.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rendezvous::limits::Rate;
use rendezvous_client::Client;
use rendezvous_protocol::topic::History;
use rendezvous_testkit::config::ServerConfig;
use rendezvous_testkit::http1::{answer, raw_tls, request};
use rendezvous_testkit::process::ServerProcess;
use rendezvous_testkit::server::uid;
use rendezvous_testkit::{TempDir, raw, rendezvous_bin};

const SPEC: &str = include_str!("../federation-spec/client-api.md");

const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

fn start(
    dir: &TempDir,
    configure: impl FnOnce(&mut ServerConfig),
) -> (ServerProcess, std::path::PathBuf) {
    rendezvous_testkit::process::start_configured(rendezvous_bin!(), dir, configure)
}

fn admin(config: &Path, args: &[&str]) -> String {
    rendezvous_testkit::process::admin(rendezvous_bin!(), config, args)
}

async fn user(dir: &TempDir, server: &ServerProcess, config: &Path, name: &str) -> Client {
    Client::register(
        &dir.join(name),
        &rendezvous_testkit::passphrase(),
        server.url(),
        server.trust(),
        &admin(config, &["pin"]),
        &uid(name),
    )
    .await
    .unwrap()
}

/// The §1.2 table: (method, path with its parameters filled in, needs a token, cap).
fn spec_caps() -> Vec<(String, String, bool, usize)> {
    let start = SPEC.find("### 1.2").unwrap();
    let end = start + SPEC[start..].find("### 1.3").unwrap();
    SPEC[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let (method, path) = cells[0].trim_matches('`').split_once(' ').unwrap();
            let path = path
                .replace("{user}", "%40bob%3Alocalhost")
                .replace("{topic}", "%21t1%3Alocalhost")
                .replace("{server}", "localhost")
                .replace("{id}", "0011223344556677");
            (
                method.to_owned(),
                path,
                cells[1] == "token",
                cells[2].parse().unwrap(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn every_endpoint_refuses_one_byte_over_its_cap_before_reading_it() {
    let dir = TempDir::new("caps");
    let (server, config) = start(&dir, |_| {});
    let alice = user(&dir, &server, &config, "alice").await;
    let (_, token) = raw::http(&server, &alice);
    let rows = spec_caps();
    assert!(rows.len() > 30, "{rows:?}");
    for (method, path, needs_token, cap) in rows {
        let over = vec![0xa5; cap + 1];
        if needs_token {
            // No token: refused before the body, whatever its size.
            let a = request(&server, HERE, &method, &path, None, over.clone()).await;
            assert_eq!(
                (a.status, a.code.as_str()),
                (401, "unauthorized"),
                "{method} {path}"
            );
        }
        let a = request(&server, HERE, &method, &path, Some(&token), over).await;
        assert_eq!(
            (a.status, a.code.as_str()),
            (413, "too_large"),
            "{method} {path} over {cap}"
        );
        if cap > 0 {
            // At the cap the body is read and judged by the endpoint's own rules.
            let a = request(&server, HERE, &method, &path, Some(&token), vec![0xa5; cap]).await;
            assert_ne!(a.status, 413, "{method} {path} at {cap}: {a:?}");
        }
    }
    // A create one byte over the change cap is 413, not 400.
    let a = request(
        &server,
        HERE,
        "POST",
        "/v1/topics",
        Some(&token),
        vec![0; 4 * 1024 * 1024 + 81],
    )
    .await;
    assert_eq!((a.status, a.code.as_str()), (413, "too_large"));
    server.terminate();
}

#[actix_rt::test]
async fn slow_bodies_time_out_and_token_endpoints_read_nothing_without_a_token() {
    let dir = TempDir::new("slow");
    let (server, _config) = start(&dir, |c| {
        c.limits.body_timeout_secs = Some(1);
        c.limits.body_min_rate = Some(1_000_000);
    });
    let (status, text) = tokio::task::spawn_blocking({
        let mut s = raw_tls(&server, HERE);
        move || {
            // Ten bytes of a thousand announced, then nothing.
            s.write_all(b"POST /v1/login/challenge HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/cbor\r\ncontent-length: 1000\r\n\r\n0123456789").unwrap();
            s.flush().unwrap();
            let started = Instant::now();
            let got = answer(&mut s);
            assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
            got
        }
    })
    .await
    .unwrap();
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("\"code\":\"timeout\""), "{text}");

    // A token endpoint answers 401 at once, without waiting for the 4 MiB it was promised.
    let (status, text) = tokio::task::spawn_blocking({
        let mut s = raw_tls(&server, HERE);
        move || {
            s.write_all(b"POST /v1/topics HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/cbor\r\ncontent-length: 4194000\r\n\r\n").unwrap();
            s.flush().unwrap();
            let started = Instant::now();
            let got = answer(&mut s);
            assert!(started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());
            got
        }
    })
    .await
    .unwrap();
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("\"code\":\"unauthorized\""), "{text}");
    server.terminate();
}

#[actix_rt::test]
async fn made_up_tokens_cost_their_address() {
    let dir = TempDir::new("guess");
    let (server, config) = start(&dir, |c| {
        c.limits.rate.any_ip = Rate::minute(60, 5);
    });
    let alice =
        rendezvous_testkit::process::register(rendezvous_bin!(), &dir, &server, &config, "alice")
            .await;
    let (_, token) = raw::http(&server, &alice);
    let mut statuses = Vec::new();
    for i in 0..12u64 {
        let token = format!("{i:064x}");
        let a = request(&server, OTHER, "GET", "/v1/sync", Some(&token), Vec::new()).await;
        statuses.push((a.status, a.code));
    }
    for (status, code) in &statuses[..5] {
        assert_eq!(
            (*status, code.as_str()),
            (401, "unauthorized"),
            "{statuses:?}"
        );
    }
    for (status, code) in &statuses[5..] {
        assert_eq!(
            (*status, code.as_str()),
            (429, "rate_limited"),
            "{statuses:?}"
        );
    }
    // A device with a real token, from the same address, is not refused for them: its
    // requests count under its user.
    let a = request(
        &server,
        OTHER,
        "GET",
        "/v1/topics",
        Some(&token),
        Vec::new(),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    server.terminate();
}

#[actix_rt::test]
async fn many_addresses_cannot_take_turns_at_one_device() {
    use rendezvous_protocol::api::{Body, ChallengeRequest};
    use rendezvous_protocol::crypto::DeviceKey;
    let dir = TempDir::new("turns");
    let (server, _config) = start(&dir, |c| {
        c.limits.rate.login_device = Rate::minute(10, 3);
    });
    let challenge = |key: &DeviceKey| {
        ChallengeRequest {
            user: uid("alice"),
            device_key: key.public().clone(),
        }
        .to_cbor()
    };
    let target = DeviceKey::generate();
    let mut answers = Vec::new();
    for i in 0..6u8 {
        // Each from its own address: the per-address class never fills.
        let from = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, 1 + i));
        let a = request(
            &server,
            from,
            "POST",
            "/v1/login/challenge",
            None,
            challenge(&target),
        )
        .await;
        answers.push((a.status, a.code));
    }
    // The device is not registered: within the burst the answer is the endpoint's own.
    for (status, code) in &answers[..3] {
        assert_eq!(
            (*status, code.as_str()),
            (401, "unauthorized"),
            "{answers:?}"
        );
    }
    for (status, code) in &answers[3..] {
        assert_eq!(
            (*status, code.as_str()),
            (429, "rate_limited"),
            "{answers:?}"
        );
    }
    // Another device key is not limited by this one's flood.
    let other = request(
        &server,
        HERE,
        "POST",
        "/v1/login/challenge",
        None,
        challenge(&DeviceKey::generate()),
    )
    .await;
    assert_ne!(other.status, 429, "{other:?}");
    server.terminate();
}

#[actix_rt::test]
async fn a_challenge_flood_gets_429_with_retry_after_and_admin_status_names_it() {
    let dir = TempDir::new("flood");
    let (server, config) = start(&dir, |c| {
        c.limits.rate.login_ip = Rate::minute(60, 5);
    });
    let mut refused = 0;
    for i in 0..20 {
        let a = request(
            &server,
            HERE,
            "POST",
            "/v1/login/challenge",
            None,
            vec![0x80],
        )
        .await;
        if i < 5 {
            // Within the burst the endpoint's own rules answer (an empty array is malformed).
            assert_ne!(a.status, 429, "request {i}: {a:?}");
        } else {
            assert_eq!(
                (a.status, a.code.as_str()),
                (429, "rate_limited"),
                "request {i}"
            );
            let wait = a.retry_after.expect("Retry-After");
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
            refused += 1;
        }
    }
    assert_eq!(refused, 15);
    // Another address is not limited by this one's flood.
    let a = request(
        &server,
        OTHER,
        "POST",
        "/v1/login/challenge",
        None,
        vec![0x80],
    )
    .await;
    assert_ne!(a.status, 429, "{a:?}");
    let status: serde_json::Value =
        serde_json::from_str(&admin(&config, &["status", "--json"])).unwrap();
    let limited = status["limits"]["limited"].as_array().unwrap();
    assert_eq!(limited.len(), 1, "{status}");
    assert_eq!(limited[0]["class"], "login_ip");
    assert_eq!(limited[0]["key"], "127.0.0.1");
    assert_eq!(limited[0]["refused"], 15);
    // And the metrics count them (on the admin listener, with the metrics token).
    let token = std::fs::read_to_string(dir.join("data").join("metrics.token")).unwrap();
    let mut resp = awc::Client::default()
        .get(format!("http://{}/metrics", server.ready.admin))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    let metrics = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    assert!(
        metrics.contains("rendezvous_limited_total{class=\"login_ip\",scope=\"ip\"} 15"),
        "{metrics}"
    );
    assert!(metrics.contains("rendezvous_storage_state 0"), "{metrics}");
    server.terminate();
}

#[actix_rt::test]
async fn topic_and_send_floods_get_429_and_other_users_go_on() {
    let dir = TempDir::new("sendflood");
    let (server, config) = start(&dir, |c| {
        c.limits.rate.topic_create = Rate::hour(30, 2);
        c.limits.rate.send = Rate::minute(1, 4);
    });
    let mut eve = user(&dir, &server, &config, "eve").await;
    let mut bob = user(&dir, &server, &config, "bob").await;
    // A create takes a `send` cell too: two creates leave eve two messages.
    let t1 = eve.create_topic(&[], History::Shared).await.unwrap();
    eve.create_topic(&[], History::Shared).await.unwrap();
    let third = eve.create_topic(&[], History::Shared).await.unwrap_err();
    assert_eq!(
        third.code().map(|c| c.as_str()),
        Some("rate_limited"),
        "{third}"
    );
    eve.send(&t1, b"one").await.unwrap();
    eve.send(&t1, b"two").await.unwrap();
    let flood = eve.send(&t1, b"three").await.unwrap_err();
    assert_eq!(
        flood.code().map(|c| c.as_str()),
        Some("rate_limited"),
        "{flood}"
    );
    // The refused message is not in the log.
    let texts = rendezvous_testkit::raw::texts(&eve.read(&t1).await.unwrap());
    assert_eq!(texts, ["one", "two"]);
    // Bob has cells of his own.
    let tb = bob.create_topic(&[], History::Shared).await.unwrap();
    bob.send(&tb, b"hello").await.unwrap();
    server.terminate();
}

//! Push and trust through a real homeserver: live WebSocket delivery in log order, content-free
//! wake-ups for devices that are not connected, and registration refusing a bad pin or an
//! impostor certificate.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use awc::http::Method;
use rendezvous_client::Client;
use rendezvous_client::tls::{Fingerprint, Trust};
use rendezvous_protocol::api::{Body, PushRegisterRequest};
use rendezvous_protocol::topic::{History, LogEntry, ParsedEntry, Role};
use rendezvous_testkit::server::{TestServer, register, uid};
use rendezvous_testkit::{TempDir, raw};

/// A request the push endpoint received: path and body.
type WakeUp = (String, Vec<u8>);

#[actix_rt::test]
async fn registration_refuses_a_used_pin_and_an_impostor_certificate() {
    let dir = TempDir::new("trust");
    let server = TestServer::start(&dir.join("server"));
    let pin = server.pin().await;
    Client::register(
        &dir.join("a"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &pin,
        &uid("alice"),
    )
    .await
    .unwrap();
    let err = Client::register(
        &dir.join("b"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &pin,
        &uid("bob"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code().map(|c| c.as_str()), Some("pin_invalid"), "{err}");
    let err = Client::register(
        &dir.join("c"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        "no-such-pin",
        &uid("carol"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code().map(|c| c.as_str()), Some("pin_invalid"), "{err}");
    // A client pinned to another certificate does not talk to this server at all.
    let wrong = Trust::Pinned(
        format!("sha256:{}", "ab".repeat(32))
            .parse::<Fingerprint>()
            .unwrap(),
    );
    let err = Client::register(
        &dir.join("d"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        wrong,
        &server.pin().await,
        &uid("dave"),
    )
    .await
    .unwrap_err();
    assert!(
        err.code().is_none(),
        "refused before any HTTP exchange: {err}"
    );
    assert!(
        err.to_string().to_lowercase().contains("certificate") || err.to_string().contains("TLS"),
        "{err}"
    );
}

#[actix_rt::test]
async fn connected_devices_get_entries_live_in_log_order() {
    let dir = TempDir::new("stream");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Reader)], History::Shared)
        .await
        .unwrap();
    let (http, token) = raw::http(&server, &bob);
    let mut stream = http.stream(&token).await.unwrap();
    for i in 0..5 {
        alice
            .send(&topic, format!("live {i}").as_bytes())
            .await
            .unwrap();
    }
    for want in 1..6u64 {
        let frame = actix_rt::time::timeout(Duration::from_secs(10), stream.next_frame())
            .await
            .expect("frame in time")
            .unwrap()
            .expect("stream open");
        assert_eq!(frame.topic, topic);
        assert_eq!(frame.index, want, "frames arrive in log order");
        let entry = LogEntry::from_wire(&frame.entry).unwrap();
        assert!(matches!(entry.parse().unwrap(), ParsedEntry::Message(_)));
    }
}

#[actix_rt::test]
async fn devices_away_get_an_empty_wake_up_and_nothing_else() {
    // A UnifiedPush-style endpoint on loopback that records what it is sent.
    let seen: Arc<Mutex<Vec<WakeUp>>> = Arc::default();
    let record = seen.clone();
    let endpoint = HttpServer::new(move || {
        let record = record.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let record = record.clone();
            async move {
                record
                    .lock()
                    .unwrap()
                    .push((req.uri().to_string(), body.to_vec()));
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let push_addr = endpoint.addrs()[0];
    let endpoint = endpoint.run();
    let endpoint_handle = endpoint.handle();
    actix_rt::spawn(endpoint);

    let dir = TempDir::new("wake");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    let (http, token) = raw::http(&server, &bob);
    let url = format!("http://{push_addr}/up/bob-device");
    let body = PushRegisterRequest { url: url.clone() }.to_cbor();
    http.send(Method::PUT, "/v1/push", Some(body), Some(&token), 1024)
        .await
        .unwrap();
    // A remote URL over plain HTTP is refused.
    let bad = PushRegisterRequest {
        url: "http://example.org/up".into(),
    }
    .to_cbor();
    let err = http
        .send(Method::PUT, "/v1/push", Some(bad), Some(&token), 1024)
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.as_str()), Some("invalid"));

    alice.send(&topic, b"secret words").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let got = seen.lock().unwrap().clone();
    assert!(!got.is_empty(), "no wake-up arrived");
    for (path, body) in &got {
        assert_eq!(path, "/up/bob-device");
        assert!(body.is_empty(), "a wake-up carries no content");
    }
    // Alice's own device, which registered no endpoint, was not woken; Bob's once per burst.
    assert!(got.len() <= 2, "{got:?}");
    endpoint_handle.stop(true).await;
}

//! Bad input from the network gets a status, a machine-readable code and a message, and changes
//! nothing.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use awc::http::Method;
use rendezvous_client::Client;
use rendezvous_client::http::encode_segment;
use rendezvous_protocol::api::{Body, RegisterRequest};
use rendezvous_protocol::certs::{DeviceCert, Registration};
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_protocol::wire::Signed;
use rendezvous_testkit::server::{TestServer, uid};
use rendezvous_testkit::{TempDir, raw};

/// Sends a request with an explicit content type; returns status and the JSON error code.
async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> (u16, String) {
    let fp: rendezvous_client::tls::Fingerprint = server.fingerprint.parse().unwrap();
    let tls =
        rendezvous_client::tls::client_config(&rendezvous_client::tls::Trust::Pinned(fp)).unwrap();
    let client = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(std::sync::Arc::new(tls)))
        .finish();
    let url = format!("{}{}", server.url, path);
    let mut req = client
        .request(method.parse::<Method>().unwrap(), &url)
        .insert_header(("content-type", content_type));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut resp = req.send_body(body).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(1 << 20).await.unwrap();
    let code = if status >= 400 {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "error body is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v["code"].as_str().unwrap().to_owned()
    } else {
        String::new()
    };
    (status, code)
}

fn registration(user: &UserId, pin: &str) -> (RegisterRequest, IdentityKey) {
    let ik = IdentityKey::generate();
    let dk = DeviceKey::generate();
    let reg = Signed::sign(Registration::new(user.clone(), ik.public().clone()), &ik);
    let cert = Signed::sign(DeviceCert::new(user.clone(), dk.public().clone(), 0), &ik);
    (
        RegisterRequest {
            pin: pin.to_owned(),
            registration: reg.signed_bytes().clone(),
            device_cert: cert.signed_bytes().clone(),
        },
        ik,
    )
}

#[actix_rt::test]
async fn malformed_oversize_and_unsigned_requests_get_their_codes() {
    let dir = TempDir::new("bad");
    let server = TestServer::start(&dir.join("server"));
    const CBOR: &str = "application/cbor";

    assert_eq!(
        send(
            &server,
            "POST",
            "/v1/register",
            CBOR,
            b"\xff\x00garbage".to_vec(),
            None
        )
        .await,
        (400, "malformed".into())
    );
    assert_eq!(
        send(
            &server,
            "POST",
            "/v1/register",
            "text/plain",
            b"hello".to_vec(),
            None
        )
        .await,
        (415, "unsupported_media_type".into())
    );
    assert_eq!(
        send(&server, "GET", "/v1/nothing/here", CBOR, vec![], None).await,
        (404, "not_found".into())
    );
    assert_eq!(
        send(&server, "GET", "/v1/devices", CBOR, vec![], None).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        send(&server, "GET", "/v1/devices", CBOR, vec![], Some("forged")).await,
        (401, "unauthorized".into())
    );

    // A registration whose signature does not verify, and one for another server's user.
    let pin = server.pin().await;
    let (mut bad, _) = registration(&uid("alice"), &pin);
    bad.registration.1.0[5] ^= 1;
    assert_eq!(
        send(&server, "POST", "/v1/register", CBOR, bad.to_cbor(), None).await,
        (400, "bad_signature".into())
    );
    let (foreign, _) = registration(&"@alice:elsewhere.example".parse().unwrap(), &pin);
    assert_eq!(
        send(
            &server,
            "POST",
            "/v1/register",
            CBOR,
            foreign.to_cbor(),
            None
        )
        .await,
        (400, "invalid".into())
    );
    // None of that used up the pin.
    let (good, _) = registration(&uid("alice"), &pin);
    assert_eq!(
        send(&server, "POST", "/v1/register", CBOR, good.to_cbor(), None)
            .await
            .0,
        200
    );
    let (again, _) = registration(&uid("alice"), &server.pin().await);
    assert_eq!(
        send(&server, "POST", "/v1/register", CBOR, again.to_cbor(), None).await,
        (409, "user_exists".into())
    );

    // Oversize bodies: a message over 64 KiB, a change over 4 MiB.
    let mut alice = Client::register(
        &dir.join("alice"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &server.pin().await,
        &uid("alice2"),
    )
    .await
    .unwrap();
    let _bob = Client::register(
        &dir.join("bob"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &server.pin().await,
        &uid("bob"),
    )
    .await
    .unwrap();
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    let (_, token) = raw::http(&server, &alice);
    let msgs = raw::messages_path(&topic);
    assert_eq!(
        send(
            &server,
            "POST",
            &msgs,
            CBOR,
            vec![0u8; 70 * 1024],
            Some(&token)
        )
        .await,
        (413, "too_large".into())
    );
    let changes = format!("/v1/topics/{}/changes", encode_segment(topic.as_str()));
    assert_eq!(
        send(
            &server,
            "POST",
            &changes,
            CBOR,
            vec![0u8; 5 * 1024 * 1024],
            Some(&token)
        )
        .await,
        (413, "too_large".into())
    );

    // A message with its signature broken, and one whose body is not a message.
    let mut forged = raw::message(&server, &alice, &topic, b"hello").await;
    let n = forged.len();
    forged[n - 1] ^= 1;
    assert_eq!(
        send(&server, "POST", &msgs, CBOR, forged, Some(&token)).await,
        (400, "bad_signature".into())
    );
    assert_eq!(
        send(&server, "POST", &msgs, CBOR, vec![0x80], Some(&token)).await,
        (400, "malformed".into())
    );
    // Signed over another log's root at its `seen` (a fork's branch): the server checks with its
    // own root and refuses it (protocol.md §6.4), and nothing is logged.
    let size = raw::state(&server, &alice, &topic).await.size();
    let mut other = raw::root(&server, &alice, &topic).await;
    other.0[0] ^= 1;
    let forked = raw::message_over(&server, &alice, &topic, b"other branch", other).await;
    assert_eq!(
        send(&server, "POST", &msgs, CBOR, forked, Some(&token)).await,
        (400, "bad_signature".into())
    );
    assert_eq!(raw::state(&server, &alice, &topic).await.size(), size);
    // A bad query string.
    let entries = format!(
        "/v1/topics/{}/entries?from=minus-one",
        encode_segment(topic.as_str())
    );
    assert_eq!(
        send(&server, "GET", &entries, CBOR, vec![], Some(&token)).await,
        (400, "malformed".into())
    );
    // A topic id that does not parse.
    assert_eq!(
        send(
            &server,
            "POST",
            "/v1/topics/not-a-topic/messages",
            CBOR,
            vec![0x80],
            Some(&token)
        )
        .await,
        (400, "malformed".into())
    );

    // Nothing of that reached the log.
    assert_eq!(raw::state(&server, &alice, &topic).await.size(), 1);
}

//! Federation queries (`federation-api.md` §5) between two real homeservers, `a.example` and
//! `b.example`, on mutual TLS on 127.0.0.1 with a test CA (`rendezvous_testkit::ca`): identities and
//! topic key claims of remote users go device → own homeserver (client API) → the user's
//! homeserver (federation), and the federation endpoints answer only authenticated, allowed peers
//! and only for their own users.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener};

use awc::http::Method;

use rendezvous::federation::client::{CLAIM_TOPIC_KEYS_PATH, ORIGIN_HEADER, check_claimed};
use rendezvous_client::Client;
use rendezvous_client::http::{Http, encode_segment};
use rendezvous_protocol::api::{
    Body, ClaimTopicKeysRequest, ClaimTopicKeysResponse, ClaimedKind, ErrorCode, IdentityResponse,
};
use rendezvous_protocol::certs::{Registration, TopicKeyCert};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::wire::Signed;
use rendezvous_testkit::ca::Ca;
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::{TempDir, TestServer};

fn uid(s: &str) -> UserId {
    s.parse().unwrap()
}

/// `a.example` and `b.example`, each finding the other through a discovery override; `b` denies
/// `d.example`.
fn pair(test: &str) -> Federation {
    Federation::in_process(test, &["a.example", "b.example"])
        .adjust(|name, c| {
            if name == "b.example" {
                c.federation.as_mut().unwrap().deny = vec!["d.example".into()];
            }
        })
        .start()
}

/// An HTTP client for `server`'s client API and `client`'s token.
fn http(server: &TestServer, client: &Client) -> (Http, String) {
    rendezvous_testkit::raw::http(server, client)
}

async fn claim(http: &Http, token: &str, users: &[UserId]) -> Result<ClaimTopicKeysResponse, u16> {
    let request = ClaimTopicKeysRequest {
        users: users.to_vec(),
    };
    http.call(
        Method::POST,
        "/v1/topic-keys/claim",
        Some(request.to_cbor()),
        Some(token),
    )
    .await
    .map_err(|e| e.code().map_or(0, |c| c.status()))
}

async fn claim_code(http: &Http, token: &str, users: &[UserId]) -> Option<ErrorCode> {
    let request = ClaimTopicKeysRequest {
        users: users.to_vec(),
    };
    http.call::<ClaimTopicKeysResponse>(
        Method::POST,
        "/v1/topic-keys/claim",
        Some(request.to_cbor()),
        Some(token),
    )
    .await
    .err()
    .and_then(|e| e.code())
}

/// A raw query to b's federation listener: `(status, body)`.
async fn query(
    peer: &awc::Client,
    origin: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, Vec<u8>) {
    let mut req = peer.request(method, format!("https://b.example:8448{path}"));
    if let Some(origin) = origin {
        req = req.insert_header((ORIGIN_HEADER, origin));
    }
    let mut resp = match body {
        Some(b) => req
            .insert_header(("Content-Type", "application/cbor"))
            .send_body(b)
            .await
            .unwrap(),
        None => req.send().await.unwrap(),
    };
    let body = resp.body().await.unwrap().to_vec();
    (resp.status().as_u16(), body)
}

fn json_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["code"].as_str().unwrap().to_owned()
}

fn identity_path(user: &UserId) -> String {
    format!(
        "/_rdv/federation/v1/users/{}/identity",
        encode_segment(user.as_str())
    )
}

fn claim_body(users: &[UserId]) -> Vec<u8> {
    ClaimTopicKeysRequest {
        users: users.to_vec(),
    }
    .to_cbor()
}

#[actix_rt::test]
async fn a_remote_users_identity_comes_through_the_home_server() {
    let pair = pair("fq-identity");
    let mut alice = pair.register("a.example", "alice").await;
    let mut bob = pair.register("b.example", "bob").await;
    let bob_ik = bob.keystore().identity().unwrap().public().clone();
    let (alice_id, bob_id) = (alice.user().clone(), bob.user().clone());

    // alice's device asks a.example, which asks b.example.
    assert_eq!(alice.identity_of(&bob_id).await.unwrap(), bob_ik);
    // bob's own server agrees, and b.example sees alice through a.example too.
    assert_eq!(bob.identity_of(&bob_id).await.unwrap(), bob_ik);
    assert_eq!(
        bob.identity_of(&alice_id).await.unwrap(),
        *alice.keystore().identity().unwrap().public()
    );
    // A user b.example does not have.
    let err = alice
        .identity_of(&uid("@nobody:b.example"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
}

#[actix_rt::test]
async fn remote_topic_keys_are_claimed_through_the_home_server_each_once() {
    let pair = pair("fq-claim");
    let alice = pair.register("a.example", "alice").await;
    let mut bob = pair.register("b.example", "bob").await;
    let carol = pair.register("b.example", "carol").await;
    let bob_ik = bob.keystore().identity().unwrap().public().clone();
    let before = bob.key_status().await.unwrap().topic_keys_left;
    let (a_http, token) = http(pair.server("a.example"), &alice);

    // bob, carol, and alice (local) in one request to a.example; then bob again.
    let asked = [
        bob.user().clone(),
        carol.user().clone(),
        alice.user().clone(),
    ];
    let first = claim(&a_http, &token, &asked).await.unwrap();
    assert_eq!(first.keys.len(), 3);
    let again = claim(&a_http, &token, &asked[..1]).await.unwrap();
    let remote = &asked[..2];
    let remote_keys: Vec<_> = first
        .keys
        .iter()
        .filter(|k| k.user.server() == "b.example".parse::<ServerName>().unwrap())
        .cloned()
        .collect();
    // What came through a.example checks as b.example's answer would.
    check_claimed(&"b.example".parse().unwrap(), remote, remote_keys).unwrap();
    let bob_certs: Vec<_> = first
        .keys
        .iter()
        .chain(&again.keys)
        .filter(|k| k.user == *bob.user())
        .map(|k| {
            assert_eq!(k.kind, ClaimedKind::OneTime);
            let reg = Signed::<Registration>::from_signed_bytes(k.registration.clone())
                .unwrap()
                .verify(&bob_ik)
                .unwrap();
            assert_eq!(reg.user, *bob.user());
            Signed::<TopicKeyCert>::from_signed_bytes(k.topic_key_cert.clone())
                .unwrap()
                .verify(&bob_ik)
                .unwrap()
                .signed_bytes()
                .clone()
        })
        .collect();
    assert_eq!(bob_certs.len(), 2);
    assert_ne!(bob_certs[0], bob_certs[1]);
    assert_eq!(
        bob.key_status().await.unwrap().topic_keys_left,
        before - 2,
        "b.example handed out two of bob's keys"
    );

    // Again: another key, never one handed out before.
    let second = claim(&a_http, &token, &[bob.user().clone()]).await.unwrap();
    assert_eq!(second.keys.len(), 1);
    assert!(!bob_certs.contains(&second.keys[0].topic_key_cert));
    assert_eq!(bob.key_status().await.unwrap().topic_keys_left, before - 3);

    // A user b.example does not have fails the claim with b's 404 not_found, like a local one
    // (issue 12: the claimer is told the user does not exist, not that no key is left).
    assert_eq!(
        claim_code(&a_http, &token, &[uid("@nobody:b.example")]).await,
        Some(ErrorCode::NotFound)
    );
}

#[actix_rt::test]
async fn peers_are_authenticated_and_answered_only_for_local_users() {
    let pair = pair("fq-peers");
    let mut bob = pair.register("b.example", "bob").await;
    let bob_ik = bob.keystore().identity().unwrap().public().clone();
    let get = Method::GET;
    let bob_path = identity_path(bob.user());

    // A denied peer with a valid certificate for its name: 403.
    let d = pair.peer_as("b.example", "d.example");
    let (status, body) = query(&d, Some("d.example"), get.clone(), &bob_path, None).await;
    assert_eq!((status, json_code(&body).as_str()), (403, "forbidden"));
    let (status, body) = query(
        &d,
        Some("d.example"),
        Method::POST,
        CLAIM_TOPIC_KEYS_PATH,
        Some(claim_body(&[bob.user().clone()])),
    )
    .await;
    assert_eq!((status, json_code(&body).as_str()), (403, "forbidden"));
    // A certificate for c.example claiming to be a.example: 401.
    let c = pair.peer_as("b.example", "c.example");
    let (status, body) = query(&c, Some("a.example"), get.clone(), &bob_path, None).await;
    assert_eq!((status, json_code(&body).as_str()), (401, "unauthorized"));
    // No origin named: 401.
    let a = pair.peer_as("b.example", "a.example");
    let (status, body) = query(&a, None, get.clone(), &bob_path, None).await;
    assert_eq!((status, json_code(&body).as_str()), (401, "unauthorized"));
    // Nothing was claimed by the refused requests.
    let before = bob.key_status().await.unwrap().topic_keys_left;

    // The genuine peer: bob's registration and nothing else (an exact `[1, registration]`).
    let (status, body) = query(&a, Some("a.example"), get.clone(), &bob_path, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer = IdentityResponse::from_cbor(&body).unwrap();
    let reg = Signed::<Registration>::from_signed_bytes(answer.registration)
        .unwrap()
        .verify(&bob_ik)
        .unwrap();
    assert_eq!(reg.user, *bob.user());

    // Users of other servers: not here.
    let alice = uid("@alice:a.example");
    let (status, body) = query(
        &a,
        Some("a.example"),
        get.clone(),
        &identity_path(&alice),
        None,
    )
    .await;
    assert_eq!((status, json_code(&body).as_str()), (404, "not_found"));
    let (status, body) = query(
        &a,
        Some("a.example"),
        Method::POST,
        CLAIM_TOPIC_KEYS_PATH,
        Some(claim_body(&[bob.user().clone(), alice])),
    )
    .await;
    assert_eq!((status, json_code(&body).as_str()), (400, "invalid"));
    // At most 100 users per claim.
    let many: Vec<UserId> = (0..101).map(|i| uid(&format!("@u{i}:b.example"))).collect();
    let (status, body) = query(
        &a,
        Some("a.example"),
        Method::POST,
        CLAIM_TOPIC_KEYS_PATH,
        Some(claim_body(&many)),
    )
    .await;
    assert_eq!((status, json_code(&body).as_str()), (400, "invalid"));
    assert_eq!(bob.key_status().await.unwrap().topic_keys_left, before);

    // A claim from the genuine peer.
    let (status, body) = query(
        &a,
        Some("a.example"),
        Method::POST,
        CLAIM_TOPIC_KEYS_PATH,
        Some(claim_body(&[bob.user().clone()])),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer = ClaimTopicKeysResponse::from_cbor(&body).unwrap();
    check_claimed(
        &"b.example".parse().unwrap(),
        &[bob.user().clone()],
        answer.keys,
    )
    .unwrap();
    assert_eq!(bob.key_status().await.unwrap().topic_keys_left, before - 1);

    // A user disabled by the operator is not found through federation.
    let token =
        std::fs::read_to_string(pair.server("b.example").data_dir.join("admin.token")).unwrap();
    let resp = awc::Client::default()
        .post(format!(
            "http://{}/admin/users/{}/disable",
            pair.server("b.example").admin,
            encode_segment(bob.user().as_str())
        ))
        .insert_header(("Authorization", format!("Bearer {}", token.trim())))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let (status, body) = query(&a, Some("a.example"), get, &bob_path, None).await;
    assert_eq!((status, json_code(&body).as_str()), (404, "not_found"));
}

#[actix_rt::test]
async fn an_unreachable_peer_makes_remote_queries_unavailable() {
    let mut pair = pair("fq-down");
    let mut alice = pair.register("a.example", "alice").await;
    let bob = pair.register("b.example", "bob").await;
    let bob_id = bob.user().clone();
    drop(bob);
    pair.stop("b.example");

    let err = alice.identity_of(&bob_id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable), "{err}");
    let (a_http, token) = http(pair.server("a.example"), &alice);
    let before = alice.key_status().await.unwrap().topic_keys_left;
    assert_eq!(
        claim_code(&a_http, &token, &[alice.user().clone(), bob_id]).await,
        Some(ErrorCode::Unavailable)
    );
    // The whole request failed: alice's own key was not claimed.
    assert_eq!(alice.key_status().await.unwrap().topic_keys_left, before);
    // Local claims still work.
    let local = claim(&a_http, &token, &[alice.user().clone()])
        .await
        .unwrap();
    assert_eq!(local.keys.len(), 1);
}

#[actix_rt::test]
async fn without_federation_remote_users_are_refused() {
    let dir = TempDir::new("fq-off");
    let server = TestServer::start(&dir.join("s"));
    let mut alice = rendezvous_testkit::server::register(&server, &dir, "alice").await;
    let err = alice.identity_of(&uid("@bob:b.example")).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Invalid), "{err}");
    let (http, token) = http(&server, &alice);
    assert_eq!(
        claim_code(&http, &token, &[uid("@bob:b.example")]).await,
        Some(ErrorCode::Invalid)
    );
}

/// A lying `b.example`: a TLS server with a genuine certificate for the name (from the
/// federation CA) that answers every identity query with another user's registration and every
/// claim with a key of a user on a third server. Queries without an origin get 401.
fn start_liar(ca: &Ca) -> (SocketAddr, actix_web::dev::ServerHandle) {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use rendezvous_protocol::api::ClaimedTopicKey;
    use rendezvous_protocol::crypto::{IdentityKey, Suite, TopicKey};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    fn signed_as(user: &str, ik: &IdentityKey) -> ClaimedTopicKey {
        let user = uid(user);
        let tk = TopicKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        ClaimedTopicKey {
            user: user.clone(),
            registration: Signed::sign(Registration::new(user.clone(), ik.public().clone()), ik)
                .signed_bytes()
                .clone(),
            topic_key_cert: Signed::sign(TopicKeyCert::new(user, tk.public(), 0), ik)
                .signed_bytes()
                .clone(),
            kind: rendezvous_protocol::api::ClaimedKind::OneTime,
        }
    }
    fn origin_named(req: &HttpRequest) -> bool {
        req.headers()
            .get(ORIGIN_HEADER)
            .and_then(|v| v.to_str().ok())
            == Some("a.example")
    }
    async fn identity(req: HttpRequest) -> HttpResponse {
        if !origin_named(&req) {
            return HttpResponse::Unauthorized().finish();
        }
        let mallory = signed_as("@mallory:b.example", &IdentityKey::generate());
        HttpResponse::Ok().body(
            IdentityResponse {
                registration: mallory.registration,
                proof: rendezvous_protocol::directory::DirectoryProof {
                    entry: Vec::new(),
                    index: 0,
                    checkpoint: String::new(),
                    inclusion: Vec::new(),
                    consistency: Vec::new(),
                },
            }
            .to_cbor(),
        )
    }
    async fn claim(req: HttpRequest) -> HttpResponse {
        if !origin_named(&req) {
            return HttpResponse::Unauthorized().finish();
        }
        let keys = vec![signed_as("@carol:c.example", &IdentityKey::generate())];
        HttpResponse::Ok().body(ClaimTopicKeysResponse { keys }.to_cbor())
    }

    let (cert, key) = ca.issue("b.example");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/_rdv/federation/v1/users/{user}/identity",
                web::get().to(identity),
            )
            .route(CLAIM_TOPIC_KEYS_PATH, web::post().to(claim))
    })
    .workers(1)
    .disable_signals()
    .listen_rustls_0_23(listener, tls)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (addr, handle)
}

#[actix_rt::test]
async fn a_lying_peer_is_caught_by_the_asking_server() {
    let mut fed = Federation::in_process("fq-liar", &["a.example"]).build();
    let (liar, liar_handle) = start_liar(&fed.ca);
    fed.configure("a.example", |c| {
        let overrides = &mut c.federation.as_mut().unwrap().overrides;
        overrides.insert("b.example".into(), liar.to_string());
    });
    fed.up("a.example");
    let a = fed.server("a.example");
    let mut alice = fed.register("a.example", "alice").await;

    // b.example answers for bob with mallory's (genuine, self-signed) registration.
    let err = alice.identity_of(&uid("@bob:b.example")).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadGateway), "{err}");
    // b.example hands out a key for a user of c.example.
    let (http, token) = http(a, &alice);
    assert_eq!(
        claim_code(&http, &token, &[uid("@bob:b.example")]).await,
        Some(ErrorCode::BadGateway)
    );
    liar_handle.stop(false).await;
}

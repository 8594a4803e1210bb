//! Outbound requests (issue 10; `client-api.md` §7.2, `federation-api.md` §7.1), against real
//! `rendezvous` processes with the outbound policy on (the test kit turns it off for every
//! other test, since all of them run on 127.0.0.0/8):
//!
//! - push URLs to loopback, private, numeric and `localhost` hosts, and names resolving to
//!   such addresses, are refused `400 invalid`;
//! - a wake-up follows no redirect: a `302` to another listener is the end of it;
//! - server names resolving to private or loopback addresses (A, SRV, one bad address among
//!   good ones, IP literals) are `403 forbidden` and never connected to;
//! - a rebinding DNS answer is checked at every connection;
//! - unreachable peers look alike to a device, whatever failed;
//! - outbound transactions obey `federation.deny`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use awc::http::Method;
use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::api::{
    Body, ClaimTopicKeysRequest, ErrorCode, IdentityResponse, PushRegisterRequest, encode_segment,
};
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::ca::Ca;
use rendezvous_testkit::config::{Push, ServerConfig};
use rendezvous_testkit::dns;
use rendezvous_testkit::federation::{Builder, Federation};
use rendezvous_testkit::ports::free_port;
use rendezvous_testkit::raw;
use rendezvous_testkit::{TempDir, rendezvous_bin, user_id};

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A listener that counts the connections made to it (and closes them).
struct Trap {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

fn trap() -> Trap {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    Trap { addr, hits }
}

impl Trap {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// `a.test` alone, its outbound policy as the default (refusing special addresses) unless
/// `adjust` says otherwise.
fn single(test: &str) -> Builder {
    Federation::processes(rendezvous_bin!(), test, &[("a.test", A)])
}

fn policy_on(c: &mut ServerConfig) {
    c.outbound.allow_private_targets = false;
}

/// `(status, code, message)` of a refused request.
fn refusal(e: &ClientError) -> (u16, ErrorCode, String) {
    match e {
        ClientError::Api {
            code,
            status,
            message,
            ..
        } => (*status, *code, message.clone()),
        other => panic!("not an API refusal: {other}"),
    }
}

async fn register_push(fed: &Federation, client: &Client, url: &str) -> Result<(), ClientError> {
    let (http, token) = raw::http(fed.process("a.test"), client);
    let body = PushRegisterRequest { url: url.into() }.to_cbor();
    http.send(Method::PUT, "/v1/push", Some(body), Some(&token), 1024)
        .await
        .map(|_| ())
}

/// `GET /v1/users/{user}/identity` as `client`'s device asks it.
async fn identity(fed: &Federation, client: &Client, user: &str) -> Result<(), ClientError> {
    let (http, token) = raw::http(fed.process("a.test"), client);
    let path = format!("/v1/users/{}/identity", encode_segment(user));
    http.call::<IdentityResponse>(Method::GET, &path, None, Some(&token))
        .await
        .map(|_| ())
}

#[actix_rt::test]
async fn push_urls_to_private_addresses_are_refused() {
    let trap = trap();
    let fed = single("ssrf-push")
        .records(vec![
            dns::a("private.test.", Ipv4Addr::new(10, 1, 2, 3)),
            dns::a("loop.test.", Ipv4Addr::LOCALHOST),
            dns::a("metadata.test.", Ipv4Addr::new(169, 254, 169, 254)),
            dns::a("mixed.test.", Ipv4Addr::new(203, 0, 114, 10)),
            dns::a("mixed.test.", Ipv4Addr::new(192, 168, 1, 1)),
            dns::a("public.test.", Ipv4Addr::new(203, 0, 114, 10)),
        ])
        .adjust(|_, c| {
            policy_on(c);
            c.push = Some(Push {
                allow_loopback_http: true,
                retry_for_secs: 5,
            });
        })
        .start();
    let bob = fed.register("a.test", "bob").await;
    let trapped = format!("http://{}/up", trap.addr);
    for url in [
        trapped.as_str(),
        "https://127.0.0.1/up",
        "https://10.0.0.1/up",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/up",
        "https://[::ffff:127.0.0.1]/up",
        "https://[fd00::1]/up",
        "https://2130706433/up",
        "https://0x7f.1/up",
        "https://0177.0.0.1/up",
        "https://localhost/up",
        "https://push.localhost/up",
        "https://private.test/up",
        "https://loop.test:9/up",
        "https://metadata.test/up",
        "https://mixed.test/up",
    ] {
        let e = register_push(&fed, &bob, url).await.unwrap_err();
        let (status, code, message) = refusal(&e);
        assert_eq!(
            (status, code),
            (400, ErrorCode::Invalid),
            "{url}: {message}"
        );
        assert!(message.contains("not a public address"), "{url}: {message}");
    }
    // Public addresses and names resolving to them are fine.
    register_push(&fed, &bob, "https://203.0.114.10/up")
        .await
        .unwrap();
    register_push(&fed, &bob, "https://public.test/up")
        .await
        .unwrap();
    assert_eq!(trap.hits(), 0);
}

/// An HTTPS wake-up endpoint for `push.test` (certificate from `ca`) that answers every request
/// `302` to `to`, counting the requests.
fn redirecting_endpoint(ca: &Ca, to: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = ca.issue("push.test");
    let chain = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let counted = counted.clone();
        App::new().default_service(web::to(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                HttpResponse::Found()
                    .insert_header(("Location", format!("http://{to}/stolen")))
                    .finish()
            }
        }))
    })
    .workers(1)
    .listen_rustls_0_23(listener, tls)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    (addr, hits)
}

#[actix_rt::test]
async fn wakeups_follow_no_redirect() {
    let dir = TempDir::new("ssrf-redirect-ca");
    let ca = Ca::new(dir.path(), "push-ca");
    let trap = trap();
    let (endpoint, hits) = redirecting_endpoint(&ca, trap.addr);
    // Loopback is admitted for this test: what is checked is the redirect.
    let fed = single("ssrf-redirect")
        .records(vec![dns::a("push.test.", Ipv4Addr::LOCALHOST)])
        .env("SSL_CERT_FILE", ca.ca_file().to_str().unwrap())
        .start();
    let mut alice = fed.register("a.test", "alice").await;
    let bob = fed.register("a.test", "bob").await;
    let topic = alice
        .create_topic(&[(user_id("bob", "a.test"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    // Registered after the create: the one message is the one wake-up.
    let url = format!("https://push.test:{}/up/bob", endpoint.port());
    register_push(&fed, &bob, &url).await.unwrap();
    alice.send(&topic, b"wake bob").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while hits.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the wake-up reached the endpoint"
    );
    // A retry would come after 1 s, then 2 s more.
    actix_rt::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a 3xx ends the wake-up for good"
    );
    assert_eq!(trap.hits(), 0, "the redirect was followed");
}

#[actix_rt::test]
async fn server_names_resolving_private_are_refused() {
    let trap = trap();
    let port = trap.addr.port();
    let fed = single("ssrf-names")
        .records(vec![
            dns::a("evil.test.", Ipv4Addr::LOCALHOST),
            dns::a("private.test.", Ipv4Addr::new(10, 0, 0, 7)),
            dns::srv("_rendezvous._tcp.srv.test.", 10, 0, port, "inner.test."),
            dns::a("inner.test.", Ipv4Addr::LOCALHOST),
            dns::a("mixed.test.", Ipv4Addr::new(203, 0, 114, 10)),
            dns::a("mixed.test.", Ipv4Addr::new(10, 0, 0, 8)),
        ])
        .adjust(|_, c| policy_on(c))
        .start();
    let alice = fed.register("a.test", "alice").await;
    let (http, token) = raw::http(fed.process("a.test"), &alice);
    let servers = [
        format!("evil.test:{port}"),
        "private.test".to_owned(),
        "srv.test".to_owned(),
        "mixed.test".to_owned(),
        format!("127.0.0.1:{port}"),
        "127.0.0.1:6379".to_owned(),
        "169.254.169.254".to_owned(),
    ];
    for server in &servers {
        let user = format!("@bob:{server}");
        let (status, code, message) = refusal(&identity(&fed, &alice, &user).await.unwrap_err());
        assert_eq!(
            (status, code),
            (403, ErrorCode::Forbidden),
            "{user}: {message}"
        );
        let claim = ClaimTopicKeysRequest {
            users: vec![user.parse().unwrap()],
        };
        let e = http
            .send(
                Method::POST,
                "/v1/topic-keys/claim",
                Some(claim.to_cbor()),
                Some(&token),
                1024,
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(&e).1, ErrorCode::Forbidden, "claim for {user}");
        let keys = format!("/v1/servers/{}/keys", encode_segment(server));
        let e = http
            .send(Method::GET, &keys, None, Some(&token), 1024)
            .await
            .unwrap_err();
        assert_eq!(refusal(&e).1, ErrorCode::Forbidden, "keys of {server}");
    }
    assert_eq!(trap.hits(), 0, "a refused server was connected to");
}

#[actix_rt::test]
async fn rebinding_answer_is_checked_on_every_connection() {
    let trap = trap();
    let port = trap.addr.port();
    // `rebind.test` answers an admitted address (a range the operator opened; nothing listens
    // there), then the trap's loopback address, in turn, with TTL 0.
    let fed = single("ssrf-rebind")
        .rebinding(
            "rebind.test.",
            vec![Ipv4Addr::new(10, 255, 255, 1), Ipv4Addr::LOCALHOST],
        )
        .adjust(|_, c| {
            policy_on(c);
            c.outbound.allow_cidrs = vec!["10.255.255.0/24".into()];
        })
        .start();
    let alice = fed.register("a.test", "alice").await;
    let user = format!("@bob:rebind.test:{port}");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, code, _) = refusal(&identity(&fed, &alice, &user).await.unwrap_err());
        seen.push((status, code));
    }
    assert!(
        seen.contains(&(403, ErrorCode::Forbidden)),
        "the loopback answer was refused: {seen:?}"
    );
    assert!(
        seen.contains(&(503, ErrorCode::Unavailable)),
        "the admitted answer was tried: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|s| *s == (403, ErrorCode::Forbidden) || *s == (503, ErrorCode::Unavailable)),
        "{seen:?}"
    );
    assert_eq!(trap.hits(), 0, "a rebinding answer was connected to");
}

/// A listener that answers every connection with `reply` (if any) and then holds it open for
/// `hold`.
fn fake_peer(reply: &'static [u8], hold: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.write_all(reply);
                std::thread::sleep(hold);
            });
        }
    });
    port
}

#[actix_rt::test]
async fn unreachable_peers_look_alike() {
    // The peers are fakes on loopback: admitted for this test (the test kit's default).
    let fed = single("ssrf-oracle").start();
    let alice = fed.register("a.test", "alice").await;
    let closed = free_port(Ipv4Addr::LOCALHOST);
    let not_tls = fake_peer(b"HTTP/1.1 400 Bad Request\r\n\r\n", Duration::ZERO);
    let silent = fake_peer(b"", Duration::from_secs(120));
    let servers = [
        format!("127.0.0.1:{closed}"),
        format!("127.0.0.1:{not_tls}"),
        format!("127.0.0.1:{silent}"),
        "nowhere.test".to_owned(),
    ];
    let mut answers = Vec::new();
    for server in &servers {
        let user = format!("@bob:{server}");
        let (status, code, message) = refusal(&identity(&fed, &alice, &user).await.unwrap_err());
        answers.push((status, code, message.replace(server.as_str(), "<server>")));
    }
    assert_eq!(answers[0].0, 503, "{answers:?}");
    assert_eq!(answers[0].1, ErrorCode::Unavailable, "{answers:?}");
    for a in &answers {
        assert_eq!(*a, answers[0], "every failure looks the same: {answers:?}");
    }
}

/// Sends `text`; the client's pooled connection to a restarted server may be stale once.
async fn send_after_restart(
    client: &mut Client,
    topic: &rendezvous_protocol::ids::TopicId,
    text: &[u8],
) {
    for _ in 0..3 {
        match client.send(topic, text).await {
            Ok(_) => return,
            Err(ClientError::Transport { .. }) => {
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("send: {e}"),
        }
    }
    panic!("the restarted server does not take the post");
}

#[actix_rt::test]
async fn outbound_transactions_obey_deny() {
    let mut fed = Federation::processes(
        rendezvous_bin!(),
        "ssrf-deny",
        &[("a.test", A), ("b.test", Ipv4Addr::new(127, 0, 0, 3))],
    )
    .start();
    let mut alice = fed.register("a.test", "alice").await;
    let bob = fed.register("b.test", "bob").await;
    let topic = alice
        .create_topic(&[(user_id("bob", "b.test"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"before the deny").await.unwrap();
    let mirrored = |n: usize| {
        let fed = &fed;
        let (bob, topic) = (&bob, &topic);
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let got = raw::entries(fed.process("b.test"), bob, topic).await.len();
                if got >= n || Instant::now() > deadline {
                    return got;
                }
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let before = raw::entries(fed.process("a.test"), &alice, &topic)
        .await
        .len();
    assert_eq!(mirrored(before).await, before, "b.test mirrors the topic");

    // An event queued while b.test is down, then b.test denied: it is dropped, not sent.
    fed.stop("b.test");
    alice.send(&topic, b"queued, then denied").await.unwrap();
    fed.stop("a.test");
    fed.configure("a.test", |c| {
        c.federation.as_mut().unwrap().deny = vec!["b.test".into()];
    });
    fed.up("a.test");
    fed.process("a.test")
        .wait_for("events refused for good; dropped");
    fed.up("b.test");
    // And an event for b.test after the deny is never queued.
    send_after_restart(&mut alice, &topic, b"after the deny").await;
    fed.process("a.test")
        .wait_for("event for a server the federation policy shuts out; dropped");
    let on_a = raw::entries(fed.process("a.test"), &alice, &topic)
        .await
        .len();
    assert_eq!(on_a, before + 2);
    actix_rt::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        raw::entries(fed.process("b.test"), &bob, &topic)
            .await
            .len(),
        before,
        "a denied server received events"
    );
}

//! The federation listener (`federation-api.md` §1, §2, §4) on real mutual TLS on 127.0.0.1:
//! a test CA (`rendezvous_testkit::ca`) issues certificates for `a.example`, `b.example`, `c.example`
//! and `d.example`; peers connect to 127.0.0.1 with the server name as SNI.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::LocalBoxFuture;

use rendezvous::config::Config;
use rendezvous::federation::inbound::{EventSink, Inbound, serve};
use rendezvous::federation::keys::{PeerKeys, PeerKeysError};
use rendezvous::federation::peer::{FederationTls, PeerPolicy};
use rendezvous::store::Store;
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::{
    Event, EventId, EventKind, ServerKeys, Transaction, VerifiedEvent,
};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::wire::{Signed, Verified};
use rendezvous_testkit::TempDir;
use rendezvous_testkit::ca::{Ca, peer_client};
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::transaction::{results, send, server_key};

fn json_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["code"].as_str().unwrap().to_owned()
}

fn name(s: &str) -> ServerName {
    s.parse().unwrap()
}

fn now() -> u64 {
    rendezvous::state::now()
}

/// Two real homeservers: `a.example` (the sender, whose keys `b.example` fetches from its
/// federation listener) and `b.example` (the receiver, denying `d.example`).
fn two_servers(test: &str) -> Federation {
    Federation::in_process(test, &["a.example", "b.example"])
        .adjust(|name, c| {
            if name == "b.example" {
                c.federation.as_mut().unwrap().deny = vec!["d.example".into()];
            }
        })
        .start()
}

/// Stops b and opens its store.
fn stop_b(servers: &mut Federation) -> Store {
    servers.stop("b.example");
    rendezvous_testkit::server::open_store_when_free(&servers.node("b.example").data_dir.join("db"))
}

fn event(
    from: &str,
    to: &str,
    payload: &[u8],
    key: &ServerKey,
) -> Verified<rendezvous_protocol::federation::Event> {
    let topic = TopicId::random(&name("a.example"));
    Event::sign(
        &name(from),
        &name(to),
        EventKind::TopicEntry,
        Some(&topic),
        payload.to_vec(),
        now(),
        key,
    )
}

fn txn(
    id: &str,
    from: &str,
    events: &[&Verified<rendezvous_protocol::federation::Event>],
) -> Transaction {
    rendezvous_testkit::transaction::transaction(id, from, "b.example", events)
}

fn id_of(e: &Verified<rendezvous_protocol::federation::Event>) -> EventId {
    Event::id(e.signed_bytes())
}

#[actix_rt::test]
async fn a_peer_transaction_is_applied_per_event_and_only_once() {
    let mut servers = two_servers("fed-apply");
    let a_key = server_key(&servers.node("a.example").data_dir);
    let client = servers.peer_as("b.example", "a.example");

    let e1 = event("a.example", "b.example", b"one", &a_key);
    let e2 = event("a.example", "b.example", b"two", &a_key);
    let forged = event("a.example", "b.example", b"forged", &ServerKey::generate());
    let misdirected = event("a.example", "c.example", b"for c", &a_key);
    let relayed = event("c.example", "b.example", b"from c", &a_key);
    let t1 = txn(
        "t-1",
        "a.example",
        &[&e1, &forged, &e2, &misdirected, &relayed],
    );
    let (status, body) = send(&client, "b.example", &t1).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let got = results(&body);
    // e1 and e2 pass the checks of §3.3 and reach the topic logic, which refuses their
    // payloads (not entry batches): a refusal of the event's own, after the transport's.
    let expected = vec![
        (id_of(&e1), 400, "malformed".to_owned()),
        (id_of(&forged), 400, "bad_signature".to_owned()),
        (id_of(&e2), 400, "malformed".to_owned()),
        (id_of(&misdirected), 400, "wrong_destination".to_owned()),
        (id_of(&relayed), 403, "wrong_origin".to_owned()),
    ];
    assert_eq!(got, expected);

    // The same transaction again: the stored answer, byte for byte.
    let (status, again) = send(&client, "b.example", &t1).await.unwrap();
    assert_eq!((status, &again), (200, &body));

    // A new transaction repeating a refused event: refused again (refusals are not applied).
    let e3 = event("a.example", "b.example", b"three", &a_key);
    let (status, body) = send(&client, "b.example", &txn("t-2", "a.example", &[&e1, &e3]))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        results(&body),
        vec![
            (id_of(&e1), 400, "malformed".to_owned()),
            (id_of(&e3), 400, "malformed".to_owned())
        ]
    );

    // The path and the body must name the same transaction; the destination must be b.
    let mut other_id = txn("t-3", "a.example", &[&e3]);
    let wire = other_id.to_wire();
    let mut resp = client
        .put("https://b.example:8448/_rdv/federation/v1/send/t-4")
        .insert_header(("Content-Type", "application/cbor"))
        .insert_header(("X-Rdv-Origin", "a.example"))
        .send_body(wire.clone())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(json_code(&resp.body().await.unwrap()), "invalid");
    let mut resp = client
        .put("https://b.example:8448/_rdv/federation/v1/send/t-3")
        .insert_header(("X-Rdv-Origin", "a.example"))
        .send_body(wire)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert_eq!(
        json_code(&resp.body().await.unwrap()),
        "unsupported_media_type"
    );
    other_id.destination = name("c.example");
    let (status, body) = send(&client, "b.example", &other_id).await.unwrap();
    assert_eq!((status, json_code(&body).as_str()), (400, "invalid"));
    drop(client);

    // What b keeps: the answer to t-1, and no event marked applied.
    let store = stop_b(&mut servers);
    for e in [&e1, &e2, &e3] {
        assert!(
            store
                .federation_applied(&name("a.example"), &id_of(e).0)
                .unwrap()
                .is_none()
        );
    }
    assert!(
        store
            .federation_txn(&name("a.example"), "t-1")
            .unwrap()
            .is_some()
    );
}

#[actix_rt::test]
async fn server_keys_are_served_signed_for_the_server_name() {
    let servers = two_servers("fed-keys");
    let client = servers.peer_as("b.example", "a.example");
    let mut resp = client
        .get("https://b.example:8448/_rdv/federation/v1/server-keys")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.body().await.unwrap();
    let b = name("b.example");
    let doc = ServerKeys::check(Signed::from_wire(&body).unwrap(), &b).unwrap();
    let b_key = server_key(&servers.node("b.example").data_dir);
    assert_eq!(doc.valid_at(now()), vec![b_key.public().clone()]);
    let newest = doc.keys.last().unwrap();
    assert!(newest.valid_until > now() + 6 * 24 * 3600);
    // Asked as another server: refused.
    assert!(ServerKeys::check(Signed::from_wire(&body).unwrap(), &name("a.example")).is_err());
}

#[actix_rt::test]
async fn peers_without_a_valid_certificate_for_their_name_are_refused() {
    let servers = two_servers("fed-refuse");
    let a_key = server_key(&servers.node("a.example").data_dir);
    let e = event("a.example", "b.example", b"x", &a_key);
    let t = txn("t-1", "a.example", &[&e]);

    // No client certificate: the handshake fails.
    let anonymous = peer_client(
        servers.node("b.example").federation,
        &servers.ca.ca_file(),
        None,
    );
    let err = send(&anonymous, "b.example", &t).await.unwrap_err();
    assert!(err.contains("CertificateRequired"), "{err}");

    // A certificate for a.example from another CA: the handshake fails.
    let rogue = Ca::new(servers.dir.path(), "rogue-ca");
    let rogue_cert = rogue.issue("a.example");
    let mut both_roots = std::fs::read(servers.ca.ca_file()).unwrap();
    both_roots.extend(std::fs::read(rogue.ca_file()).unwrap());
    let roots = servers.dir.join("both-roots.pem");
    std::fs::write(&roots, both_roots).unwrap();
    let impostor = peer_client(
        servers.node("b.example").federation,
        &roots,
        Some(&rogue_cert),
    );
    let err = send(&impostor, "b.example", &t).await.unwrap_err();
    assert!(err.contains("UnknownCA"), "{err}");

    // A valid certificate for c.example claiming to be a.example: 401.
    let c = servers.peer_as("b.example", "c.example");
    let (status, body) = send(&c, "b.example", &t).await.unwrap();
    assert_eq!((status, json_code(&body).as_str()), (401, "unauthorized"));

    // A denied peer with a valid certificate for its name: 403.
    let d = servers.peer_as("b.example", "d.example");
    let from_d = event("d.example", "b.example", b"x", &ServerKey::generate());
    let (status, body) = send(&d, "b.example", &txn("t-1", "d.example", &[&from_d]))
        .await
        .unwrap();
    assert_eq!((status, json_code(&body).as_str()), (403, "forbidden"));

    // The genuine peer gets through to the topic logic (which refuses the made-up payload).
    let a = servers.peer_as("b.example", "a.example");
    let (status, body) = send(&a, "b.example", &t).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        results(&body),
        vec![(id_of(&e), 400, "malformed".to_owned())]
    );
}

/// Counts what it applies.
struct CountingSink(Arc<AtomicUsize>);

impl EventSink for CountingSink {
    async fn apply(&self, _event: VerifiedEvent) -> Result<(), ErrorCode> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Scripted peer keys: the first call fails when `fail_first`, then `stale` unless a refresh is
/// asked, which gets `fresh`.
struct ScriptedKeys {
    fail_first: std::sync::atomic::AtomicBool,
    stale: Arc<ServerKeys>,
    fresh: Arc<ServerKeys>,
    refreshes: Arc<AtomicUsize>,
}

impl ScriptedKeys {
    fn fixed(doc: &ServerKeys) -> ScriptedKeys {
        ScriptedKeys {
            fail_first: false.into(),
            stale: Arc::new(doc.clone()),
            fresh: Arc::new(doc.clone()),
            refreshes: Arc::default(),
        }
    }
}

impl PeerKeys for ScriptedKeys {
    fn server_keys<'a>(
        &'a self,
        server: &'a ServerName,
        refresh: bool,
    ) -> LocalBoxFuture<'a, Result<Arc<ServerKeys>, PeerKeysError>> {
        let r = if self.fail_first.swap(false, Ordering::SeqCst) {
            Err(PeerKeysError::Unreachable {
                server: server.clone(),
                reason: "down".into(),
            })
        } else if refresh {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            Ok(self.fresh.clone())
        } else {
            Ok(self.stale.clone())
        };
        Box::pin(std::future::ready(r))
    }
}

/// `b.example`'s federation listener alone, served with `keys` and a counting sink.
struct Listener {
    _dir: TempDir,
    ca: Ca,
    addr: SocketAddr,
    applied: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
    running: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

impl Listener {
    fn start(test: &str, keys: ScriptedKeys) -> Listener {
        let dir = TempDir::new(test);
        let ca = Ca::new(dir.path(), "federation-ca");
        let (cert, key) = ca.issue("b.example");
        let mut config = Config {
            server_name: name("b.example"),
            data_dir: dir.join("b"),
            ..Config::default()
        };
        config.federation.enabled = true;
        config.federation.ca_file = Some(ca.ca_file());
        config.federation.tls_cert = Some(cert);
        config.federation.tls_key = Some(key);
        let (identity, store) = rendezvous::prepare(&config).unwrap();
        let tls = FederationTls::load(&config).unwrap();
        let applied = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let policy = PeerPolicy::from_config(&config.federation);
        let limits =
            rendezvous::limits::Limits::new(&config.limits.rate, &config.federation.limits)
                .unwrap();
        let state = actix_web::web::Data::new(rendezvous::state::AppState::new(
            config,
            Arc::new(identity),
            store,
            Arc::new(
                rendezvous::push::PushHub::new(
                    rendezvous::config::Limits::default().stream_quota(),
                    rendezvous::net::TargetResolver::new(&[], Default::default()).unwrap(),
                )
                .0,
            ),
            None,
            rendezvous::clock::Clock::system(),
            Arc::new(limits),
        ));
        let inbound =
            actix_web::web::Data::new(Inbound::new(policy, keys, CountingSink(applied.clone())));
        let server = serve(state, inbound, tls.server, listener, 2).unwrap();
        let handle = server.handle();
        let running = actix_rt::spawn(server);
        Listener {
            _dir: dir,
            ca,
            addr,
            applied,
            handle,
            running,
        }
    }

    fn client_as(&self, as_name: &str) -> awc::Client {
        peer_client(self.addr, &self.ca.ca_file(), Some(&self.ca.issue(as_name)))
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.running.await;
    }
}

/// The listener served with a counting sink: retries, duplicate events inside one transaction
/// and concurrent copies of a transaction apply each event once.
#[actix_rt::test]
async fn retries_and_duplicates_apply_nothing_twice() {
    let a_key = ServerKey::generate();
    let a_doc = ServerKeys::sign(name("a.example"), vec![], vec![], &a_key, 0, u64::MAX);
    let b = Listener::start("fed-once", ScriptedKeys::fixed(&a_doc));
    let count = b.applied.clone();
    let client = b.client_as("a.example");
    let e1 = event("a.example", "b.example", b"1", &a_key);
    let e2 = event("a.example", "b.example", b"2", &a_key);
    let t = txn("t-1", "a.example", &[&e1, &e1, &e2]);
    // Three concurrent copies of one transaction, then a retry, then another transaction.
    let (r1, r2, r3) = futures_util::future::join3(
        send(&client, "b.example", &t),
        send(&client, "b.example", &t),
        send(&client, "b.example", &t),
    )
    .await;
    let first = r1.unwrap();
    assert_eq!(first.0, 200);
    assert_eq!(r2.unwrap(), first);
    assert_eq!(r3.unwrap(), first);
    assert!(results(&first.1).iter().all(|(_, s, _)| *s == 200));
    assert_eq!(send(&client, "b.example", &t).await.unwrap(), first);
    let (status, _) = send(&client, "b.example", &txn("t-2", "a.example", &[&e2, &e1]))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(count.load(Ordering::SeqCst), 2);

    drop(client);
    b.stop().await;
}

/// Keys that cannot be had give `503 unavailable` and the answer is not kept, so the retry is
/// processed; an event signed with a key the cached document lacks makes the receiver fetch the
/// document again (rotation) and then verifies.
#[actix_rt::test]
async fn unavailable_keys_are_retried_and_rotated_keys_refetched() {
    let old = ServerKey::generate();
    let new = ServerKey::generate();
    let stale = ServerKeys::sign(name("a.example"), vec![], vec![], &old, 0, u64::MAX);
    let fresh = ServerKeys::sign(
        name("a.example"),
        vec![rendezvous_protocol::federation::ServerKeyEntry {
            key: old.public().clone(),
            valid_from: 0,
            valid_until: 1,
        }],
        vec![],
        &new,
        1,
        u64::MAX,
    );
    let refreshes = Arc::new(AtomicUsize::new(0));
    let b = Listener::start(
        "fed-rotate",
        ScriptedKeys {
            fail_first: true.into(),
            stale: Arc::new(stale.value().clone()),
            fresh: Arc::new(fresh.value().clone()),
            refreshes: refreshes.clone(),
        },
    );
    let client = b.client_as("a.example");
    let e = event("a.example", "b.example", b"after rotation", &new);
    let t = txn("t-1", "a.example", &[&e]);
    let (status, body) = send(&client, "b.example", &t).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        results(&body),
        vec![(id_of(&e), 503, "unavailable".to_owned())]
    );
    assert_eq!(b.applied.load(Ordering::SeqCst), 0);

    let (status, body) = send(&client, "b.example", &t).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(results(&body), vec![(id_of(&e), 200, String::new())]);
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(b.applied.load(Ordering::SeqCst), 1);

    // A forged event is refused after one refresh, not applied.
    let forged = event("a.example", "b.example", b"forged", &ServerKey::generate());
    let (_, body) = send(&client, "b.example", &txn("t-2", "a.example", &[&forged]))
        .await
        .unwrap();
    assert_eq!(
        results(&body),
        vec![(id_of(&forged), 400, "bad_signature".to_owned())]
    );
    assert_eq!(b.applied.load(Ordering::SeqCst), 1);
    drop(client);
    b.stop().await;
}

//! Outbound federation through a real homeserver: with `federation.enabled`, `server::run`
//! starts the outbound senders, which deliver events queued before the start to a peer (a small
//! mutual-TLS actix server on loopback, reached through `federation.overrides`) with the
//! configured federation certificate, and the queue is empty after a restart; a peer that
//! answers a whole transaction `429` with `Retry-After` is not sent it again before then.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rendezvous::clock::Clock;
use rendezvous::config::Config;
use rendezvous::{self as server, Listeners};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::{
    Event, EventKind, EventResult, Transaction, TransactionResponse,
};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_testkit::TempDir;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Transactions the peer received: `(txn_id, origin, number of events, client cert presented,
/// when)`.
type Received = Arc<Mutex<Vec<(String, String, usize, bool, Instant)>>>;

/// How the peer answers: this many whole transactions `429` with `Retry-After:` these
/// seconds, then every event `200`.
#[derive(Clone, Default)]
struct Script {
    refusals: Arc<AtomicUsize>,
    retry_after: u64,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn leaf(name: &str, ca: &CertifiedIssuer<'_, KeyPair>) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

#[derive(Clone)]
struct PeerCert(bool);

async fn send(
    req: HttpRequest,
    body: web::Bytes,
    seen: web::Data<Received>,
    script: web::Data<Script>,
) -> HttpResponse {
    let presented = req.conn_data::<PeerCert>().is_some_and(|c| c.0);
    let Ok((txn, _)) = Transaction::from_wire(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    seen.lock().unwrap().push((
        txn.txn_id.clone(),
        txn.origin.to_string(),
        txn.events.len(),
        presented,
        Instant::now(),
    ));
    let refuse = script
        .refusals
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", script.retry_after.to_string()))
            .content_type("application/json")
            .body(r#"{"code":"rate_limited","message":"slow down"}"#);
    }
    let results = txn
        .events
        .iter()
        .map(|e| EventResult {
            id: Event::id(e).0,
            status: 200,
            code: String::new(),
        })
        .collect();
    HttpResponse::Ok()
        .content_type("application/cbor")
        .body(TransactionResponse { results }.to_wire())
}

/// The peer b.example (requires a client certificate from `ca`) answering as `script` says,
/// a.example's server with three events for it queued before it starts, and how to stop both.
struct Pair {
    received: Received,
    watch: rendezvous::store::Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    ours: Option<std::thread::JoinHandle<Result<(), String>>>,
    peer_handle: actix_web::dev::ServerHandle,
    peer: Option<std::thread::JoinHandle<()>>,
    dir: TempDir,
}

impl Pair {
    fn start(name: &str, script: Script) -> Pair {
        // A private federation CA, as for a closed federation.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let ours = leaf("a.example", &ca);
        let theirs = leaf("b.example", &ca);
        let dir = TempDir::new(name);
        std::fs::write(dir.join("fed-cert.pem"), &ours.cert_pem).unwrap();
        std::fs::write(dir.join("fed-key.pem"), &ours.key_pem).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let received: Received = Arc::default();
        let (peer_addr, peer_handle, peer) = start_peer(&ca, &theirs, received.clone(), script);
        let mut config = our_config(&dir);
        config
            .federation
            .overrides
            .insert("b.example".into(), peer_addr.to_string());
        let (identity, store, listeners) = prepare(config.clone());
        let (a, b) = names();
        let key = ServerKey::generate();
        let topic = TopicId::random(&a);
        for i in 0..3u8 {
            let e = Event::sign(
                &a,
                &b,
                EventKind::TopicEntry,
                Some(&topic),
                vec![i],
                // Now: a queued event older than `federation.limits.queue_max_age_secs` is
                // dropped.
                rendezvous::state::now(),
                &key,
            );
            store.outbound_enqueue(&b, e.signed_bytes()).unwrap();
        }
        let watch = store.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let ours = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                server::run(
                    config,
                    identity,
                    store,
                    listeners,
                    Clock::system(),
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await
                .map_err(|e| e.to_string())
            })
        });
        Pair {
            received,
            watch,
            stop: Some(stop),
            ours: Some(ours),
            peer_handle,
            peer: Some(peer),
            dir,
        }
    }

    /// Waits until a's queue for b is empty (20 s at most).
    fn wait_delivered(&self) {
        let b = names().1;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.watch.outbound_len(&b).unwrap() > 0 {
            assert!(Instant::now() < deadline, "nothing delivered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops a's server, then the peer; a's data directory stays.
    fn stop(mut self) -> TempDir {
        self.stop.take().unwrap().send(()).unwrap();
        self.ours.take().unwrap().join().unwrap().unwrap();
        actix_web::rt::System::new().block_on(self.peer_handle.stop(false));
        self.peer.take().unwrap().join().unwrap();
        self.dir
    }
}

fn names() -> (ServerName, ServerName) {
    ("a.example".parse().unwrap(), "b.example".parse().unwrap())
}

/// a.example's configuration in `dir`, federating with its certificate there.
fn our_config(dir: &TempDir) -> Config {
    let mut config = Config {
        data_dir: dir.join("data"),
        server_name: "a.example".parse().unwrap(),
        ..Config::default()
    };
    config.limits.workers = 1;
    // The peer listens on loopback.
    config.outbound.allow_private_targets = true;
    config.federation.enabled = true;
    config.federation.tls_cert = Some(dir.join("fed-cert.pem"));
    config.federation.tls_key = Some(dir.join("fed-key.pem"));
    config.federation.ca_file = Some(dir.join("ca.pem"));
    config
}

fn prepare(
    config: Config,
) -> (
    rendezvous::identity::ServerIdentity,
    rendezvous::store::Store,
    Listeners,
) {
    let (identity, store) = server::prepare(&config).unwrap();
    let listeners = Listeners {
        client: TcpListener::bind("127.0.0.1:0").unwrap(),
        admin: TcpListener::bind("127.0.0.1:0").unwrap(),
        federation: Some(TcpListener::bind("127.0.0.1:0").unwrap()),
    };
    (identity, store, listeners)
}

/// The peer b.example on loopback: requires a client certificate from `ca`.
fn start_peer(
    ca: &CertifiedIssuer<'_, KeyPair>,
    theirs: &Leaf,
    received: Received,
    script: Script,
) -> (
    std::net::SocketAddr,
    actix_web::dev::ServerHandle,
    std::thread::JoinHandle<()>,
) {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let mut peer_tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![theirs.der.clone()], theirs.key.clone_key())
        .unwrap();
    peer_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let peer_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer_listener.local_addr().unwrap();
    let seen = web::Data::new(received);
    let script = web::Data::new(script);
    let (peer_stop_tx, peer_stop_rx) = std::sync::mpsc::channel();
    let peer = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(seen.clone())
                    .app_data(script.clone())
                    .route("/_rdv/federation/v1/send/{txn_id}", web::put().to(send))
            })
            .on_connect(|conn, ext| {
                use actix_tls::accept::rustls_0_23::TlsStream;
                if let Some(tls) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
                    ext.insert(PeerCert(tls.get_ref().1.peer_certificates().is_some()));
                }
            })
            .workers(1)
            .disable_signals()
            .listen_rustls_0_23(peer_listener, peer_tls)
            .unwrap()
            .run();
            peer_stop_tx.send(server.handle()).unwrap();
            server.await.unwrap();
        })
    });
    (peer_addr, peer_stop_rx.recv().unwrap(), peer)
}

#[test]
fn run_with_federation_delivers_queued_events() {
    let pair = Pair::start("outbound", Script::default());
    pair.wait_delivered();
    let received = pair.received.clone();
    let dir = pair.stop();

    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one transaction: {got:?}");
    let (txn_id, origin, events, presented, _) = &got[0];
    assert_eq!(
        (origin.as_str(), *events, *presented),
        ("a.example", 3, true)
    );
    assert!(!txn_id.is_empty());

    // After a restart nothing is left to send.
    let mut config = our_config(&dir);
    config.federation.enabled = false;
    let (_, store, _) = prepare(config);
    assert_eq!(store.outbound_len(&names().1).unwrap(), 0);
    assert!(store.outbound_destinations().unwrap().is_empty());
}

/// A peer that answers a whole transaction `429` with `Retry-After: 3` is not sent it again
/// for 3 s (`federation-api.md` §8), though the first backoff step is at most 2 s; then the
/// same transaction goes again.
#[test]
fn sender_honours_retry_after() {
    let script = Script {
        refusals: Arc::new(AtomicUsize::new(1)),
        retry_after: 3,
    };
    let pair = Pair::start("outbound-retry-after", script);
    pair.wait_delivered();
    let received = pair.received.clone();
    pair.stop();
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "refused once, then delivered: {got:?}");
    let waited = got[1].4.duration_since(got[0].4);
    assert!(waited >= Duration::from_secs(3), "retried after {waited:?}");
    assert_eq!(got[0].0, got[1].0, "the same transaction again");
}

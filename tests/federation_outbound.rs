//! Outbound federation through a real homeserver: with `federation.enabled`, `server::run`
//! starts the outbound senders, which deliver events queued before the start to a peer (a small
//! mutual-TLS actix server on loopback, reached through `federation.overrides`) with the
//! configured federation certificate, and the queue is empty after a restart.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Transactions the peer received: `(txn_id, origin, number of events, client cert presented)`.
type Received = Arc<Mutex<Vec<(String, String, usize, bool)>>>;

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

async fn send(req: HttpRequest, body: web::Bytes, seen: web::Data<Received>) -> HttpResponse {
    let presented = req.conn_data::<PeerCert>().is_some_and(|c| c.0);
    let Ok((txn, _)) = Transaction::from_wire(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    seen.lock().unwrap().push((
        txn.txn_id.clone(),
        txn.origin.to_string(),
        txn.events.len(),
        presented,
    ));
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

#[test]
fn run_with_federation_delivers_queued_events() {
    // A private federation CA, as for a closed federation.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let ours = leaf("a.example", &ca);
    let theirs = leaf("b.example", &ca);
    let dir = TempDir::new("outbound");
    std::fs::write(dir.join("fed-cert.pem"), &ours.cert_pem).unwrap();
    std::fs::write(dir.join("fed-key.pem"), &ours.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();

    // The peer, b.example: requires a client certificate from the CA.
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
    let received: Received = Arc::default();
    let seen = web::Data::new(received.clone());
    let (peer_stop_tx, peer_stop_rx) = std::sync::mpsc::channel();
    let peer = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(seen.clone())
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
    let peer_handle = peer_stop_rx.recv().unwrap();

    // Our server, a.example, with events for b.example queued before it starts.
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
        .federation
        .overrides
        .insert("b.example".into(), peer_addr.to_string());
    let a: ServerName = "a.example".parse().unwrap();
    let b: ServerName = "b.example".parse().unwrap();
    let start = |config: Config| {
        let (identity, store) = server::prepare(&config).unwrap();
        let listeners = Listeners {
            client: TcpListener::bind("127.0.0.1:0").unwrap(),
            admin: TcpListener::bind("127.0.0.1:0").unwrap(),
            federation: Some(TcpListener::bind("127.0.0.1:0").unwrap()),
        };
        (identity, store, listeners)
    };
    let (identity, store, listeners) = start(config.clone());
    let key = ServerKey::generate();
    let topic = TopicId::random(&a);
    for i in 0..3u8 {
        let e = Event::sign(
            &a,
            &b,
            EventKind::TopicEntry,
            Some(&topic),
            vec![i],
            // Now: a queued event older than `federation.limits.queue_max_age_secs` is dropped.
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

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while watch.outbound_len(&b).unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "nothing delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(watch);
    stop.send(()).unwrap();
    ours.join().unwrap().unwrap();

    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one transaction: {got:?}");
    let (txn_id, origin, events, presented) = &got[0];
    assert_eq!(
        (origin.as_str(), *events, *presented),
        ("a.example", 3, true)
    );
    assert!(!txn_id.is_empty());

    // After a restart nothing is left to send.
    let mut config = Config {
        data_dir: dir.join("data"),
        server_name: "a.example".parse().unwrap(),
        ..Config::default()
    };
    config.federation.enabled = false;
    let (_, store, _) = start(config);
    assert_eq!(store.outbound_len(&b).unwrap(), 0);
    assert!(store.outbound_destinations().unwrap().is_empty());

    actix_web::rt::System::new().block_on(peer_handle.stop(false));
    peer.join().unwrap();
}

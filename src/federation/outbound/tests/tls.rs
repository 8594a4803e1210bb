//! The awc transport over mutual TLS.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::*;
use rendezvous_protocol::federation::Event;

/// The client certificate the TLS handshake got, stored per connection.
#[derive(Clone)]
struct PeerCert(Option<CertificateDer<'static>>);

struct Pki {
    roots: RootCertStore,
    server: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

/// A federation client over `tls`, as the server's `Federation` owns one (the transport uses its
/// TLS configuration and its own resolver, not the client's).
fn peer_client(tls: rustls::ClientConfig) -> crate::federation::client::FederationClient {
    crate::federation::client::FederationClient::new(
        Arc::new(tls),
        crate::federation::keys::static_resolver(
            Default::default(),
            crate::net::OutboundPolicy::any(),
        ),
    )
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    };
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    Pki {
        server: leaf("b.example"),
        client: leaf("a.example"),
        roots,
    }
}

async fn send(req: HttpRequest, txn_id: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let cert = req.conn_data::<PeerCert>().and_then(|c| c.0.clone());
    if cert.is_none() {
        return HttpResponse::Unauthorized().finish();
    }
    let expected = req
        .app_data::<web::Data<CertificateDer<'static>>>()
        .unwrap();
    assert_eq!(
        cert.as_ref(),
        Some(&***expected),
        "the client's certificate"
    );
    let Ok((txn, _)) = Transaction::from_wire(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    assert_eq!(txn.txn_id, *txn_id);
    assert_eq!(req.connection_info().host(), "b.example");
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

#[actix_rt::test]
async fn awc_transport_puts_the_transaction_over_mutual_tls() {
    let pki = pki();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(pki.roots.clone()), provider.clone())
            .build()
            .unwrap();
    let mut server_tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server.0.clone(), pki.server.1.clone_key())
        .unwrap();
    server_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client_cert = web::Data::new(pki.client.0[0].clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(client_cert.clone())
            .route("/_rdv/federation/v1/send/{txn_id}", web::put().to(send))
    })
    .on_connect(|conn, ext| {
        use actix_tls::accept::rustls_0_23::TlsStream;
        if let Some(tls) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
            let (_, session) = tls.get_ref();
            let cert = session
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            ext.insert(PeerCert(cert));
        }
    })
    .workers(1)
    .disable_signals()
    .listen_rustls_0_23(listener, server_tls)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);

    let resolve: Resolve = Box::new(move |_: &ServerName| -> ResolveFuture {
        Box::pin(async move { Ok(vec![addr]) })
    });
    let tls = client_tls(
        pki.roots.clone(),
        pki.client.0.clone(),
        pki.client.1.clone_key(),
    )
    .unwrap();
    let transport = AwcTransport::new(&peer_client(tls), resolve);
    let evs = events(2);
    let txn = Transaction::new("txn-1".into(), a(), b(), evs.clone());
    let response = transport.send(&b(), &txn).await.unwrap();
    assert_eq!(
        response.results.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids(&evs)
    );
    assert!(response.results.iter().all(|r| r.status == 200));

    // Through the whole service, on real files, with a first endpoint where nothing
    // listens: the next one is tried (`federation-api.md` §7).
    let f = fixture();
    enqueue_all(&f.outbound, &evs).await;
    let tls = client_tls(
        pki.roots.clone(),
        pki.client.0.clone(),
        pki.client.1.clone_key(),
    )
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let resolve: Resolve = Box::new(move |_: &ServerName| -> ResolveFuture {
        Box::pin(async move { Ok(vec![closed, addr]) })
    });
    let transport = AwcTransport::new(&peer_client(tls), resolve);
    let Attempt::Answered { delivered, .. } = f.outbound.attempt(&transport, &b()).await.unwrap()
    else {
        panic!("not answered")
    };
    assert_eq!(delivered, vec![1, 2]);

    // A server certificate for another name is refused: the name checked is the
    // destination's, not the address's.
    let c: ServerName = "c.example".parse().unwrap();
    let txn = Transaction::new("txn-2".into(), a(), c.clone(), evs);
    assert!(matches!(
        transport.send(&c, &txn).await,
        Err(TransportError::Send { .. })
    ));
    // A client without a certificate is refused at the handshake.
    let no_cert = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(pki.roots.clone())
    .with_no_client_auth();
    let client = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(no_cert)))
        .finish();
    let refused = client
        .put("https://b.example/_rdv/federation/v1/send/x")
        .address(addr)
        .send_body(vec![0u8])
        .await;
    assert!(refused.is_err() || refused.is_ok_and(|r| r.status() == 401));
    handle.stop(false).await;
}

/// A destination that resolves to a refused address is not contacted, and the refusal is no
/// verdict: an error the queue retries with backoff, not one that drops its events.
#[actix_rt::test]
async fn a_refused_address_is_retried_not_refused_for_good() {
    let mut config = crate::config::Federation::default();
    config
        .overrides
        .insert("b.example".into(), "127.0.0.1:8448".into());
    let discovery = Arc::new(crate::federation::discovery::Discovery::new(&config).unwrap());
    let policy = crate::net::OutboundPolicy::from_config(&crate::config::Outbound::default());
    let resolve = discovery_resolver(discovery, policy);
    let b: ServerName = "b.example".parse().unwrap();
    let error = resolve(&b).await.unwrap_err();
    assert!(matches!(error, TransportError::Resolve { .. }), "{error:?}");
    assert_eq!(super::super::batch::refused_for_good(&error), None);
}

//! Federation fixtures: a test CA made with rcgen that issues certificates for server names,
//! HTTPS clients to a federation listener presenting such a certificate, and homeservers with
//! federation on. Peers connect to 127.0.0.1 with the server name as SNI.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_tls::connect::{Resolve, Resolver};
use futures_util::future::LocalBoxFuture;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::server::TestServer;
use rendezvous::config::Config;

/// A certificate authority that writes PEM files into a directory.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), issuer.pem()).unwrap();
        Ca { issuer, dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `name` (server and client use): `(cert.pem, key.pem)`.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// Connects every name to one address (the peer under test).
pub struct Fixed(pub SocketAddr);

impl Resolve for Fixed {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(std::future::ready(Ok(vec![self.0])))
    }
}

/// An HTTPS client to `addr` trusting `roots`, presenting `cert` (files) when given.
pub fn peer_client(
    addr: SocketAddr,
    roots: &Path,
    cert: Option<&(PathBuf, PathBuf)>,
) -> awc::Client {
    let mut store = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(roots).unwrap() {
        store.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    let config = match cert {
        Some((c, k)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(c)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_file(k).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = awc::Connector::new()
        .connector(actix_tls::connect::Connector::new(Resolver::custom(Fixed(addr))).service())
        .rustls_0_23(Arc::new(config));
    awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(10))
        .finish()
}

/// A homeserver named `server_name` with federation on, its certificate from `ca`.
pub fn start_federating(
    data_dir: &Path,
    server_name: &str,
    ca: &Ca,
    listener: TcpListener,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    let (cert, key) = ca.issue(server_name);
    TestServer::start_with(data_dir, "127.0.0.1:0".parse().unwrap(), move |c| {
        c.server_name = server_name.to_owned();
        c.federation.enabled = true;
        c.federation.listen = listener.local_addr().unwrap();
        c.federation.ca_file = Some(ca.ca_file());
        c.federation.tls_cert = Some(cert);
        c.federation.tls_key = Some(key);
        adjust(c);
        Some(listener)
    })
}

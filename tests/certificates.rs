//! The server's certificates as operators handle them, against the real `rendezvous` binary:
//! `federation-ca` and `federation-cert` write a CA, keys, CSRs and certificates; SIGHUP makes a
//! running server serve new certificate files on the client API and the federation listener,
//! and a bad file on SIGHUP changes nothing and stops nothing.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateSigningRequestParams, SanType};
use rendezvous::identity::fingerprint;
use rendezvous::tls::issue::{FederationCa, ServerCertificate};
use rendezvous_protocol::ids::ServerName;
use rendezvous_testkit::config::{self, ServerConfig};
use rendezvous_testkit::process::Launch;
use rendezvous_testkit::{TempDir, rendezvous_bin};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

const BIN: &str = env!("CARGO_BIN_EXE_rendezvous");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn cert_fingerprint(path: &Path) -> String {
    fingerprint(CertificateDer::from_pem_file(path).unwrap().as_ref())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether `cert_file` chains to `ca_file` and is valid for `name` (as a TLS server).
fn chains_to(cert_file: &Path, ca_file: &Path, name: &str) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca_file).unwrap())
        .unwrap();
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    verifier
        .verify_server_cert(
            &CertificateDer::from_pem_file(cert_file).unwrap(),
            &[],
            &rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
}

#[test]
fn federation_cert_and_ca_commands() {
    let dir = TempDir::new("cert-cmd");
    let out = |p: &str| dir.join(p).to_str().unwrap().to_owned();

    // A self-signed certificate with its CSR and a private key only the owner can read.
    let made = run(&["federation-cert", "--name", "a.example", "--out", &out("a")]);
    assert!(made.status.success(), "{made:?}");
    assert_eq!(mode(&dir.join("a/key.pem")), 0o600);
    let csr = std::fs::read_to_string(dir.join("a/csr.pem")).unwrap();
    let csr = CertificateSigningRequestParams::from_pem(&csr).unwrap();
    assert_eq!(
        csr.params.subject_alt_names,
        vec![SanType::DnsName("a.example".try_into().unwrap())]
    );
    let cert = CertificateDer::from_pem_file(dir.join("a/cert.pem")).unwrap();
    let name: ServerName = "a.example".parse().unwrap();
    assert!(rendezvous::federation::peer::certificate_names(
        &cert, &name
    ));
    assert!(chains_to(
        &dir.join("a/cert.pem"),
        &dir.join("a/cert.pem"),
        "a.example"
    ));

    // The key is never replaced by accident.
    let key = std::fs::read(dir.join("a/key.pem")).unwrap();
    let again = run(&["federation-cert", "--name", "a.example", "--out", &out("a")]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(dir.join("a/key.pem")).unwrap(), key);
    let forced = run(&[
        "federation-cert",
        "--name",
        "a.example",
        "--out",
        &out("a"),
        "--force",
    ]);
    assert!(forced.status.success());
    assert_ne!(std::fs::read(dir.join("a/key.pem")).unwrap(), key);

    // A private federation CA signs a certificate for b.example; a.example's self-signed one
    // does not chain to it.
    let ca = run(&["federation-ca", "--out", &out("ca")]);
    assert!(ca.status.success(), "{ca:?}");
    assert_eq!(mode(&dir.join("ca/ca.key")), 0o600);
    let signed = run(&[
        "federation-cert",
        "--name",
        "b.example",
        "--out",
        &out("b"),
        "--ca-cert",
        &out("ca/ca.pem"),
        "--ca-key",
        &out("ca/ca.key"),
    ]);
    assert!(signed.status.success(), "{signed:?}");
    assert!(chains_to(
        &dir.join("b/cert.pem"),
        &dir.join("ca/ca.pem"),
        "b.example"
    ));
    assert!(!chains_to(
        &dir.join("b/cert.pem"),
        &dir.join("ca/ca.pem"),
        "a.example"
    ));
    assert!(!chains_to(
        &dir.join("a/cert.pem"),
        &dir.join("ca/ca.pem"),
        "a.example"
    ));

    // Refused: a bad server name, a CA key without its certificate, a key that is not the CA's.
    assert!(
        !run(&["federation-cert", "--name", "A B", "--out", &out("x")])
            .status
            .success()
    );
    assert!(
        !run(&[
            "federation-cert",
            "--name",
            "c.example",
            "--out",
            &out("c"),
            "--ca-key",
            &out("ca/ca.key")
        ])
        .status
        .success()
    );
    assert!(
        !run(&[
            "federation-cert",
            "--name",
            "c.example",
            "--out",
            &out("c"),
            "--ca-cert",
            &out("ca/ca.pem"),
            "--ca-key",
            &out("a/key.pem")
        ])
        .status
        .success()
    );
    assert!(!dir.join("c/key.pem").exists());
}

/// Accepts any server certificate: the test only looks at which one is served.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The fingerprint of the certificate `addr` serves in a fresh handshake, presenting
/// `client_cert` (files) when given.
fn served(addr: SocketAddr, client_cert: Option<(&Path, &Path)>) -> String {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider())));
    let config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(cert).unwrap()],
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let mut conn =
        ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    fingerprint(conn.peer_certificates().unwrap()[0].as_ref())
}

/// Writes a new certificate for `localhost` signed by `ca` into `dir` (cert.pem, key.pem),
/// replacing what is there (each file atomically, as an ACME client does); returns its
/// fingerprint.
fn issue(ca: &FederationCa, dir: &Path) -> String {
    ServerCertificate::generate(&"localhost".parse().unwrap(), Some(ca), 30)
        .unwrap()
        .write(dir, true)
        .unwrap();
    cert_fingerprint(&dir.join("cert.pem"))
}

fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_serves_new_certificates_and_keeps_them_when_the_new_files_are_bad() {
    let dir = TempDir::new("cert-reload");
    let ca = FederationCa::generate("Test federation CA", 30).unwrap();
    ca.write(&dir.join("ca"), false).unwrap();
    let (api, fed, peer) = (dir.join("api"), dir.join("fed"), dir.join("peer"));
    let api_a = issue(&ca, &api);
    let fed_a = issue(&ca, &fed);
    issue(&ca, &peer);
    let peer_cert = (peer.join("cert.pem"), peer.join("key.pem"));
    let peer_cert = Some((peer_cert.0.as_path(), peer_cert.1.as_path()));

    let config = dir.join("rendezvous.toml");
    let mut settings = ServerConfig::new("localhost", &dir.join("data"), [127, 0, 0, 1]);
    settings.client_api.tls_cert = Some(api.join("cert.pem"));
    settings.client_api.tls_key = Some(api.join("key.pem"));
    settings.federation = Some(config::Federation {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: fed.join("cert.pem"),
        tls_key: fed.join("key.pem"),
        ca_file: dir.join("ca/ca.pem"),
        nameservers: vec!["127.0.0.1:9".parse().unwrap()],
        deny: Vec::new(),
        overrides: Default::default(),
        limits: rendezvous::limits::PeerRateConfig::unlimited(),
        directory_witness: Vec::new(),
        directory_witness_secs: None,
    });
    settings.write(&config);
    let server = Launch::new(rendezvous_bin!(), &config).start();
    let api_addr = server.ready.client_api;
    let fed_addr = server.ready.federation.unwrap();
    assert_eq!(served(api_addr, None), api_a);
    assert_eq!(served(fed_addr, peer_cert), fed_a);

    // New files, SIGHUP: the next handshakes get the new certificates, and the admin status
    // reports the new fingerprint.
    let api_b = issue(&ca, &api);
    let fed_b = issue(&ca, &fed);
    assert_ne!((&api_a, &fed_a), (&api_b, &fed_b));
    server.signal("HUP");
    server.wait_for(&format!("fingerprint={api_b}"));
    server.wait_for(&format!("fingerprint={fed_b}"));
    assert_eq!(served(api_addr, None), api_b);
    assert_eq!(served(fed_addr, peer_cert), fed_b);
    let admin = Command::new(BIN)
        .args(["admin", "--config"])
        .arg(&config)
        .arg("fingerprint")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(admin.stdout).unwrap().trim(), api_b);

    // Garbage, and a key that is not the certificate's: logged, the old certificates stay, the
    // server keeps running.
    replace(&api.join("cert.pem"), b"garbage");
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    replace(&fed.join("key.pem"), other.as_bytes());
    server.signal("HUP");
    server.wait_for("TLS certificate reload failed");
    server.wait_for("TLS certificate reload failed");
    assert_eq!(served(api_addr, None), api_b);
    assert_eq!(served(fed_addr, peer_cert), fed_b);

    // Still running, and SIGTERM still stops it cleanly.
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none());
    server.terminate();
}

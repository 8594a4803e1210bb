//! A test federation CA that issues certificates for server names (made with rcgen in this
//! process, or by the binary's own `federation-ca` and `federation-cert` commands), and HTTPS
//! clients to a federation listener presenting such a certificate. Peers connect to one
//! address with the server name as SNI.

use std::net::SocketAddr;
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

use crate::process::run_ok;

/// A certificate authority that writes PEM files into a directory.
pub struct Ca {
    issuer: Issuer,
    dir: PathBuf,
}

/// Who signs.
enum Issuer {
    /// rcgen, in this process.
    InProcess(Box<CertifiedIssuer<'static, KeyPair>>),
    /// `rendezvous federation-cert --ca-cert --ca-key`, with this binary.
    Binary(PathBuf),
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
        Ca {
            issuer: Issuer::InProcess(Box::new(issuer)),
            dir,
        }
    }

    /// A CA made by `bin federation-ca` in `dir/ca`, valid for two days; its certificates come
    /// from `bin federation-cert`, as an operator makes them.
    pub fn made_by(bin: &Path, dir: &Path) -> Ca {
        let dir = dir.join("ca");
        run_ok(
            bin,
            &[
                "federation-ca",
                "--out",
                dir.to_str().unwrap(),
                "--name",
                "Rendezvous test federation CA",
                "--days",
                "2",
            ],
        );
        Ca {
            issuer: Issuer::Binary(bin.to_owned()),
            dir,
        }
    }

    /// The CA certificate (`[federation] ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA's private key, when the binary made it.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// A certificate for `name` (server and client use): `(cert.pem, key.pem)`.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let issuer = match &self.issuer {
            Issuer::InProcess(issuer) => issuer,
            Issuer::Binary(bin) => return self.issue_with(bin, name),
        };
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        let stem = file_stem(name);
        let (c, k) = (
            self.dir.join(format!("{stem}.pem")),
            self.dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// `federation-cert --name name --out dir/name` signed by this CA.
    fn issue_with(&self, bin: &Path, name: &str) -> (PathBuf, PathBuf) {
        let out = self.dir.join(name);
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        run_ok(
            bin,
            &[
                "federation-cert",
                "--name",
                name,
                "--out",
                &path(&out),
                "--ca-cert",
                &path(&self.ca_file()),
                "--ca-key",
                &path(&self.ca_key()),
                "--days",
                "2",
                "--force",
            ],
        );
        (out.join("cert.pem"), out.join("key.pem"))
    }
}

/// The file name stem of `name`'s certificate and key: the name itself when `<name>.pem` fits a
/// file name (255 bytes), else `sha256-` and 32 hex characters of its SHA-256 (a server name
/// may be 255 characters, `protocol.md` §2.1).
fn file_stem(name: &str) -> String {
    use sha2::{Digest, Sha256};
    match name.len() + ".pem".len() <= 255 {
        true => name.to_owned(),
        false => format!("sha256-{}", hex::encode(&Sha256::digest(name)[..16])),
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

/// A client TLS configuration trusting the PEM `roots`, presenting `cert` (PEM certificate
/// and key files) when given.
pub fn client_config(roots: &Path, cert: Option<&(PathBuf, PathBuf)>) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(roots).unwrap() {
        store.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    match cert {
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
    }
}

/// An HTTPS client to `addr` trusting `roots`, presenting `cert` (files) when given.
pub fn peer_client(
    addr: SocketAddr,
    roots: &Path,
    cert: Option<&(PathBuf, PathBuf)>,
) -> awc::Client {
    let config = client_config(roots, cert);
    let connector = awc::Connector::new()
        .connector(actix_tls::connect::Connector::new(Resolver::custom(Fixed(addr))).service())
        .rustls_0_23(Arc::new(config));
    awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(10))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dir::TempDir;

    /// The longest host a server name may have (253) gets its certificate and key, for that
    /// name, beside short names' readable files.
    #[test]
    fn issues_for_the_longest_host() {
        let dir = TempDir::new("ca-long");
        let ca = Ca::new(dir.path(), "test ca");
        let host = rendezvous_protocol::ids::longest_host();
        assert_eq!(host.len(), 253);
        let (cert, key) = ca.issue(&host);
        let der = CertificateDer::from_pem_file(&cert).unwrap();
        assert!(der.windows(host.len()).any(|w| w == host.as_bytes()));
        PrivateKeyDer::from_pem_file(&key).unwrap();
        assert_eq!(ca.issue("a.example").0, ca.dir.join("a.example.pem"));
        assert_ne!(file_stem(&host), file_stem(&format!("{}e", &host[..252])));
    }
}

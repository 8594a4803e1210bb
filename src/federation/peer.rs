//! Who is on the other end of a federation connection (`federation-api.md` §1).
//!
//! The listener demands a client certificate that chains to the federation roots (checked in
//! the TLS handshake by rustls' `WebPkiClientVerifier`). Each connection's end-entity
//! certificate is kept as [`PeerCertificate`]; a request then names the server it claims to
//! come from (a transaction's `origin`), and [`authenticate`] checks that the certificate is
//! valid for that name and that the allow and deny lists let it in.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::{Config, Federation};
use crate::identity::IdentityError;
use crate::tls::ReloadableCert;
use rendezvous_protocol::ids::ServerName;

/// Why a peer was not let in (`federation-api.md` §1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The connection carries no client certificate.
    #[error("no client certificate on this connection")]
    NoCertificate,
    /// The client certificate is not valid for the server name the request claims.
    #[error("the client certificate is not valid for {claimed}")]
    NotCertifiedFor {
        /// The server name the request claims to come from.
        claimed: ServerName,
    },
    /// The allow and deny lists shut the peer out.
    #[error("{0} may not federate with this server")]
    Denied(ServerName),
}

/// The end-entity certificate a peer presented on this connection (connection data).
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub CertificateDer<'static>);

/// `HttpServer::on_connect` hook: keeps the peer's certificate with the connection.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        ext.insert(PeerCertificate(cert.clone().into_owned()));
    }
}

/// Whether `cert` (already chained to the roots by the handshake) names `server`'s host.
pub fn certificate_names(cert: &CertificateDer<'_>, server: &ServerName) -> bool {
    let Ok(name) = rustls_pki_types::ServerName::try_from(server.host()) else {
        return false;
    };
    let Ok(parsed) = rustls::server::ParsedCertificate::try_from(cert) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, &name).is_ok()
}

/// The allow and deny lists of peer server names (`[federation] allow`, `deny`).
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allow: Vec<ServerName>,
    deny: Vec<ServerName>,
}

impl PeerPolicy {
    /// The lists of the configuration (server names since the file was read).
    pub fn from_config(federation: &Federation) -> Self {
        PeerPolicy {
            allow: federation.allow.clone(),
            deny: federation.deny.clone(),
        }
    }

    /// Whether `peer` may talk to us: not denied, and allowed when an allow list is set.
    pub fn permits(&self, peer: &ServerName) -> bool {
        !self.deny.contains(peer) && (self.allow.is_empty() || self.allow.contains(peer))
    }
}

/// Checks that the connection's certificate is valid for `claimed` (else `401 unauthorized`) and
/// that the policy lets `claimed` in (else `403 forbidden`).
pub fn authenticate(
    cert: Option<&PeerCertificate>,
    claimed: &ServerName,
    policy: &PeerPolicy,
) -> Result<(), PeerError> {
    let cert = cert.ok_or(PeerError::NoCertificate)?;
    if !certificate_names(&cert.0, claimed) {
        return Err(PeerError::NotCertifiedFor {
            claimed: claimed.clone(),
        });
    }
    if !policy.permits(claimed) {
        return Err(PeerError::Denied(claimed.clone()));
    }
    Ok(())
}

/// The TLS configurations of federation: the listener's (client certificates required) and the
/// client's (presenting our certificate), both trusting the federation roots and both using
/// one reloadable certificate.
#[derive(Debug, Clone)]
pub struct FederationTls {
    /// For the federation listener.
    pub server: Arc<ServerConfig>,
    /// For connections to peers.
    pub client: Arc<ClientConfig>,
    /// The certificate both present, reloadable (SIGHUP).
    pub certificate: Arc<ReloadableCert>,
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> IdentityError {
    IdentityError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The certificate and key files federation uses: `[federation] tls_cert/tls_key`, else the
/// client API's, else the generated one in the data directory.
pub fn certificate_files(config: &Config) -> (PathBuf, PathBuf) {
    let f = &config.federation;
    let c = &config.client_api;
    match (&f.tls_cert, &f.tls_key, &c.tls_cert, &c.tls_key) {
        (Some(cert), Some(key), _, _) | (_, _, Some(cert), Some(key)) => {
            (cert.clone(), key.clone())
        }
        _ => (
            config.data_dir.join("tls").join("cert.pem"),
            config.data_dir.join("tls").join("key.pem"),
        ),
    }
}

/// The federation roots: `ca_file`, else the system's.
pub fn roots(federation: &Federation) -> Result<RootCertStore, IdentityError> {
    let mut roots = RootCertStore::empty();
    match &federation.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| invalid(path, e))? {
                roots
                    .add(cert.map_err(|e| invalid(path, e))?)
                    .map_err(|e| invalid(path, e))?;
            }
            if roots.is_empty() {
                return Err(invalid(path, "no certificate in file"));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}

impl FederationTls {
    /// Builds both configurations from the configuration's files.
    pub fn load(config: &Config) -> Result<FederationTls, IdentityError> {
        let (cert_path, key_path) = certificate_files(config);
        Self::with_certificate(
            config,
            Arc::new(ReloadableCert::load(&cert_path, &key_path)?),
        )
    }

    /// Builds both configurations around `certificate` (already loaded, e.g. shared with the
    /// client API when both use the same files), with the configuration's roots.
    pub fn with_certificate(
        config: &Config,
        certificate: Arc<ReloadableCert>,
    ) -> Result<FederationTls, IdentityError> {
        let cert_path = certificate.cert_path().to_owned();
        let roots = Arc::new(roots(&config.federation)?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let root_path = config.federation.ca_file.clone().unwrap_or_default();

        // federation-api.md §1: a client certificate chaining to the roots is mandatory.
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| invalid(&root_path, e))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&cert_path, e))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(certificate.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&cert_path, e))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(certificate.clone());
        Ok(FederationTls {
            server: Arc::new(server),
            client: Arc::new(client),
            certificate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_checks_the_san() {
        let ck = rcgen::generate_simple_self_signed(vec!["b.example".to_owned()]).unwrap();
        let der = ck.cert.der().clone();
        assert!(certificate_names(&der, &"b.example".parse().unwrap()));
        assert!(certificate_names(&der, &"b.example:8448".parse().unwrap()));
        assert!(!certificate_names(&der, &"c.example".parse().unwrap()));
        assert!(!certificate_names(
            &CertificateDer::from(vec![1, 2, 3]),
            &"b.example".parse().unwrap()
        ));
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let mut f = Federation::default();
        let (a, b): (ServerName, ServerName) =
            ("a.example".parse().unwrap(), "b.example".parse().unwrap());
        assert!(PeerPolicy::from_config(&f).permits(&a));
        f.deny = vec![a.clone()];
        assert!(!PeerPolicy::from_config(&f).permits(&a));
        assert!(PeerPolicy::from_config(&f).permits(&b));
        f.deny.clear();
        f.allow = vec![b.clone()];
        assert!(!PeerPolicy::from_config(&f).permits(&a));
        assert!(PeerPolicy::from_config(&f).permits(&b));
    }
}

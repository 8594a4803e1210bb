//! Certificates read from PEM files and swapped in place on SIGHUP, without a restart.
//!
//! A [`ReloadableCert`] is the rustls certificate resolver of a listener (`ResolvesServerCert`)
//! and of the outbound federation client (`ResolvesClientCert`): every handshake takes the
//! current `Arc<CertifiedKey>`, and [`ReloadableCert::reload`] replaces it when the files hold a
//! valid chain and matching key. New files that do not load leave the current certificate in
//! place, so an operator's mistake never takes the server down. Connections already open keep
//! the certificate they were made with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SignatureScheme, crypto::CryptoProvider};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::identity::{IdentityError, fingerprint};

/// A certificate chain with its key, as loaded, and the end-entity certificate's fingerprint.
struct Loaded {
    certified: Arc<CertifiedKey>,
    fingerprint: String,
}

/// A certificate chain and private key from two PEM files, reloadable while in use.
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

impl std::fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> IdentityError {
    IdentityError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads and checks a chain and key: at least one certificate, the first one parses, and the
/// key is one `provider` can sign with and belongs to that certificate.
fn load(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Loaded, IdentityError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| invalid(cert_path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(cert_path, e))?;
    let first = chain
        .first()
        .ok_or_else(|| invalid(cert_path, "no certificate in file"))?;
    rustls::server::ParsedCertificate::try_from(first).map_err(|e| invalid(cert_path, e))?;
    let fingerprint = fingerprint(first.as_ref());
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| invalid(key_path, e))?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        invalid(
            key_path,
            format!("{e} (is it the key of {}?)", cert_path.display()),
        )
    })?;
    Ok(Loaded {
        certified: Arc::new(certified),
        fingerprint,
    })
}

impl ReloadableCert {
    /// Loads `cert_path` (PEM chain, end-entity first) and `key_path` (PEM private key).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ReloadableCert, IdentityError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = load(cert_path, key_path, &provider)?;
        Ok(ReloadableCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(current),
        })
    }

    /// Reads the files again and, when they load, serves them from the next handshake on.
    /// Returns the new fingerprint; on error the current certificate stays.
    pub fn reload(&self) -> Result<String, IdentityError> {
        let loaded = load(&self.cert_path, &self.key_path, &self.provider)?;
        let fingerprint = loaded.fingerprint.clone();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(fingerprint)
    }

    /// `sha256:<hex>` of the end-entity certificate being served.
    pub fn fingerprint(&self) -> String {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .fingerprint
            .clone()
    }

    /// The certificate and key being served.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .certified
            .clone()
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Whether this reads exactly these files.
    pub fn reads(&self, cert_path: &Path, key_path: &Path) -> bool {
        self.cert_path == cert_path && self.key_path == key_path
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified_key())
    }
}

impl ResolvesClientCert for ReloadableCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The certificates a running server reloads on SIGHUP (each file pair once).
#[derive(Debug, Clone, Default)]
pub struct CertReloader {
    certs: Vec<Arc<ReloadableCert>>,
}

impl CertReloader {
    /// Adds `cert`, unless it is already there.
    pub fn add(&mut self, cert: &Arc<ReloadableCert>) {
        if !self.certs.iter().any(|c| Arc::ptr_eq(c, cert)) {
            self.certs.push(cert.clone());
        }
    }

    /// Reloads every certificate, logging the new fingerprint or why the old one stays.
    /// Returns whether all reloaded.
    pub fn reload_all(&self) -> bool {
        let mut all = true;
        for cert in &self.certs {
            match cert.reload() {
                Ok(fingerprint) => tracing::info!(
                    cert = %cert.cert_path.display(),
                    %fingerprint,
                    "reloaded TLS certificate"
                ),
                Err(e) => {
                    all = false;
                    tracing::error!(
                        %e,
                        fingerprint = %cert.fingerprint(),
                        "TLS certificate reload failed; keeping the current certificate"
                    );
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendezvous_protocol::crypto::sign::hex_string;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rdv-reload-{}",
            hex_string(&rendezvous_protocol::crypto::random_array::<8>())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes a new self-signed certificate for `name`; returns its fingerprint.
    fn write_cert(cert: &Path, key: &Path, name: &str) -> String {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        std::fs::write(cert, ck.cert.pem()).unwrap();
        std::fs::write(key, ck.signing_key.serialize_pem()).unwrap();
        fingerprint(ck.cert.der())
    }

    fn served(cert: &ReloadableCert) -> String {
        let ck = ResolvesClientCert::resolve(cert, &[], &[]).unwrap();
        fingerprint(ck.end_entity_cert().unwrap())
    }

    #[test]
    fn reload_swaps_good_files_and_keeps_the_old_on_bad_ones() {
        let dir = temp_dir();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        let a = write_cert(&c, &k, "a.example");
        let cert = ReloadableCert::load(&c, &k).unwrap();
        assert_eq!(cert.fingerprint(), a);
        assert_eq!(served(&cert), a);

        let b = write_cert(&c, &k, "a.example");
        assert_ne!(a, b);
        assert_eq!(cert.reload().unwrap(), b);
        assert_eq!((cert.fingerprint(), served(&cert)), (b.clone(), b.clone()));

        // Garbage, an empty chain, a key of another certificate, a missing file: all refused,
        // and B is still served.
        let other = rcgen::generate_simple_self_signed(vec!["x.example".to_owned()]).unwrap();
        let good_cert = std::fs::read(&c).unwrap();
        let good_key = std::fs::read(&k).unwrap();
        let other_key = other.signing_key.serialize_pem();
        let bad: [(&[u8], &[u8]); 3] = [
            (b"garbage", &good_key),
            (
                &good_cert,
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            (&good_cert, other_key.as_bytes()),
        ];
        for (cert_bytes, key_bytes) in bad {
            std::fs::write(&c, cert_bytes).unwrap();
            std::fs::write(&k, key_bytes).unwrap();
            assert!(cert.reload().is_err());
            assert_eq!((cert.fingerprint(), served(&cert)), (b.clone(), b.clone()));
        }
        std::fs::remove_file(&c).unwrap();
        let mut reloader = CertReloader::default();
        let shared = Arc::new(cert);
        reloader.add(&shared);
        reloader.add(&shared);
        assert_eq!(reloader.certs.len(), 1);
        assert!(!reloader.reload_all());
        assert_eq!(served(&shared), b);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

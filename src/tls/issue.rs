//! New certificates for a server name: what `rendezvous federation-cert` and
//! `rendezvous federation-ca` write.
//!
//! For a server name, a new ECDSA P-256 key with
//! - a certificate signing request (CSR) for a real CA or an ACME client: subject CN and
//!   `subjectAltName` DNS = the server name's host;
//! - a certificate for the same key, valid for the server name as TLS server **and** client
//!   (`federation-spec/federation-api.md` §1: peers authenticate each other with mutual TLS),
//!   self-signed, or signed by a private federation CA ([`FederationCa`]) for closed
//!   federations.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::identity::{IdentityError, write_private, write_public};
use rendezvous_protocol::ids::ServerName;

/// Why a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// rcgen refused the parameters or could not sign.
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The CA certificate or key given could not be read.
    #[error("{path}: {reason}")]
    InvalidCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A private key is already in the output directory (it may be in use).
    #[error("{0} exists; refusing to replace a private key (use --force)")]
    KeyExists(PathBuf),
    /// A validity period of zero days, or too long to represent.
    #[error("invalid validity of {0} days")]
    Validity(u32),
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] IdentityError),
}

/// Clock skew allowed for: certificates are valid from an hour before they are made.
const BACKDATE: Duration = Duration::hours(1);

fn validity(params: &mut CertificateParams, days: u32) -> Result<(), IssueError> {
    if days == 0 {
        return Err(IssueError::Validity(days));
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now
        .checked_add(Duration::days(i64::from(days)))
        .ok_or(IssueError::Validity(days))?;
    Ok(())
}

/// A new key with its CSR and certificate, as PEM text.
pub struct ServerCertificate {
    /// The private key (PKCS#8).
    pub key_pem: Zeroizing<String>,
    /// The certificate signing request for the server name.
    pub csr_pem: String,
    /// The certificate: self-signed, or signed by the CA given.
    pub cert_pem: String,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("csr_pem", &self.csr_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The file names [`ServerCertificate::write`] uses in its directory.
pub const KEY_FILE: &str = "key.pem";
/// See [`KEY_FILE`].
pub const CSR_FILE: &str = "csr.pem";
/// See [`KEY_FILE`].
pub const CERT_FILE: &str = "cert.pem";

impl ServerCertificate {
    /// A new key for `server`, its CSR, and a certificate valid for `days` days, signed by `ca`
    /// or else self-signed.
    pub fn generate(
        server: &ServerName,
        ca: Option<&FederationCa>,
        days: u32,
    ) -> Result<ServerCertificate, IssueError> {
        let host = server.host().to_owned();
        let key = KeyPair::generate()?;

        // The CSR carries only what CAs read: the subject and the name.
        let mut request = CertificateParams::new(vec![host.clone()])?;
        request.distinguished_name.push(DnType::CommonName, &host);
        let csr_pem = request.serialize_request(&key)?.pem()?;

        let mut params = CertificateParams::new(vec![host.clone()])?;
        params.distinguished_name.push(DnType::CommonName, &host);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, days)?;
        let cert = match ca {
            Some(ca) => {
                params.use_authority_key_identifier_extension = true;
                params.signed_by(&key, &ca.issuer)?
            }
            None => params.self_signed(&key)?,
        };
        Ok(ServerCertificate {
            key_pem: Zeroizing::new(key.serialize_pem()),
            csr_pem,
            cert_pem: cert.pem(),
        })
    }

    /// Writes `key.pem` (mode 0600), `csr.pem` and `cert.pem` into `dir`. An existing
    /// `key.pem` is replaced only with `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<(), IssueError> {
        let key = dir.join(KEY_FILE);
        if key.exists() && !force {
            return Err(IssueError::KeyExists(key));
        }
        write_private(&key, self.key_pem.as_bytes())?;
        write_public(&dir.join(CSR_FILE), self.csr_pem.as_bytes())?;
        write_public(&dir.join(CERT_FILE), self.cert_pem.as_bytes())?;
        Ok(())
    }
}

/// A private federation CA: the root that every server of a closed federation names in
/// `[federation] ca_file`, and that signs their certificates.
pub struct FederationCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for FederationCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationCa")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The file names [`FederationCa::write`] uses in its directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// See [`CA_CERT_FILE`].
pub const CA_KEY_FILE: &str = "ca.key";

impl FederationCa {
    /// A new CA named `name` (subject CN), valid for `days` days, that may sign end-entity
    /// certificates only (path length 0).
    pub fn generate(name: &str, days: u32) -> Result<FederationCa, IssueError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, days)?;
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(FederationCa {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }

    /// A CA from its certificate and key files (PEM), as [`FederationCa::write`] left them.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<FederationCa, IssueError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map(Zeroizing::new)
                .map_err(|e| IssueError::InvalidCa {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| IssueError::InvalidCa {
            path: key_path.to_owned(),
            reason: e.to_string(),
        })?;
        // The key must be the certificate's, or nothing it signs would chain (rustls' check).
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            IssueError::InvalidCa {
                path: cert_path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            IssueError::InvalidCa {
                path: key_path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        rustls::sign::CertifiedKey::from_der(
            vec![cert_der],
            key_der,
            &rustls::crypto::ring::default_provider(),
        )
        .map_err(|e| IssueError::InvalidCa {
            path: key_path.to_owned(),
            reason: format!("{e} (is it the key of {}?)", cert_path.display()),
        })?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| IssueError::InvalidCa {
                path: cert_path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(FederationCa {
            issuer,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// The CA certificate (what goes into every server's `ca_file`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes `ca.pem` and `ca.key` (mode 0600) into `dir`. An existing `ca.key` is replaced
    /// only with `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<(), IssueError> {
        let key = dir.join(CA_KEY_FILE);
        if key.exists() && !force {
            return Err(IssueError::KeyExists(key));
        }
        let key_pem = Zeroizing::new(self.issuer.key().serialize_pem());
        write_private(&key, key_pem.as_bytes())?;
        write_public(&dir.join(CA_CERT_FILE), self.cert_pem.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::federation::peer::{FederationTls, certificate_names};
    use rcgen::{CertificateSigningRequestParams, SanType};
    use rendezvous_protocol::crypto::sign::hex_string;
    use rustls::client::danger::ServerCertVerifier;
    use std::sync::Arc;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!(
            "rdv-issue-{}",
            hex_string(&rendezvous_protocol::crypto::random_array::<8>())
        ))
    }

    #[test]
    fn csr_names_the_server_and_the_certificate_is_for_server_and_client() {
        let name: ServerName = "a.example:8448".parse().unwrap();
        let made = ServerCertificate::generate(&name, None, 90).unwrap();
        let csr = CertificateSigningRequestParams::from_pem(&made.csr_pem).unwrap();
        assert_eq!(
            csr.params.subject_alt_names,
            vec![SanType::DnsName("a.example".try_into().unwrap())]
        );
        let cert = CertificateDer::from_pem_slice(made.cert_pem.as_bytes()).unwrap();
        assert!(certificate_names(&cert, &name));
        assert!(!certificate_names(&cert, &"b.example".parse().unwrap()));
        // The key is the certificate's: rustls accepts the pair.
        let dir = temp_dir();
        made.write(&dir, false).unwrap();
        crate::tls::ReloadableCert::load(&dir.join(CERT_FILE), &dir.join(KEY_FILE)).unwrap();
        // Written once; not replaced without force.
        assert!(matches!(
            made.write(&dir, false),
            Err(IssueError::KeyExists(_))
        ));
        made.write(&dir, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
            assert_eq!(mode(KEY_FILE) & 0o777, 0o600);
            assert_eq!(mode(CERT_FILE) & 0o777, 0o644);
        }
        assert!(ServerCertificate::generate(&name, None, 0).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Certificates issued by a CA reloaded from its files work for federation: each server's
    /// TLS configuration loads with the CA as root, and a self-signed one is not the CA's.
    #[test]
    fn a_federation_ca_signs_certificates_that_chain() {
        let dir = temp_dir();
        FederationCa::generate("Test federation CA", 365)
            .unwrap()
            .write(&dir.join("ca"), false)
            .unwrap();
        let ca = FederationCa::load(&dir.join("ca/ca.pem"), &dir.join("ca/ca.key")).unwrap();
        let name: ServerName = "b.example".parse().unwrap();
        ServerCertificate::generate(&name, Some(&ca), 30)
            .unwrap()
            .write(&dir.join("b"), false)
            .unwrap();

        let roots = {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_file(dir.join("ca/ca.pem")).unwrap())
                .unwrap();
            Arc::new(roots)
        };
        let verify = |cert_file: &Path| {
            let cert = CertificateDer::from_pem_file(cert_file).unwrap();
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .unwrap();
            verifier.verify_server_cert(
                &cert,
                &[],
                &rustls_pki_types::ServerName::try_from("b.example").unwrap(),
                &[],
                rustls_pki_types::UnixTime::now(),
            )
        };
        assert!(verify(&dir.join("b/cert.pem")).is_ok());
        ServerCertificate::generate(&name, None, 30)
            .unwrap()
            .write(&dir.join("self"), false)
            .unwrap();
        assert!(verify(&dir.join("self/cert.pem")).is_err());

        let mut config = Config {
            server_name: "b.example".parse().unwrap(),
            data_dir: dir.join("data"),
            ..Config::default()
        };
        config.federation.enabled = true;
        config.federation.ca_file = Some(dir.join("ca/ca.pem"));
        config.federation.tls_cert = Some(dir.join("b/cert.pem"));
        config.federation.tls_key = Some(dir.join("b/key.pem"));
        let tls = FederationTls::load(&config).unwrap();
        // One mutual-TLS client: the queries, the key fetches and the outbound transport of
        // the Federation built from it all use this one client configuration.
        let client_tls = tls.client.clone();
        let store = crate::store::Store::temporary().unwrap();
        actix_rt::System::new().block_on(async {
            let (federation, transport) = crate::federation::Federation::build(
                &config,
                &name,
                tls,
                &store,
                &crate::clock::Clock::system(),
            )
            .unwrap();
            assert!(Arc::ptr_eq(federation.client().tls(), &client_tls));
            assert!(Arc::ptr_eq(transport.tls(), &client_tls));
        });

        // A CA file that is not a certificate, or a key that is not the CA's, is refused.
        assert!(FederationCa::load(&dir.join("b/key.pem"), &dir.join("ca/ca.key")).is_err());
        assert!(FederationCa::load(&dir.join("ca/ca.pem"), &dir.join("b/key.pem")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

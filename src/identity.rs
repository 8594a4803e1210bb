//! The homeserver's own keys and certificate, kept in the data directory.
//!
//! | file | what | mode |
//! |---|---|---|
//! | `server.key` | Ed25519 Server Key seed (32 bytes); `server.key.next` while it rotates ([`rotation`]) | 0600 |
//! | `tls/cert.pem`, `tls/key.pem` | self-signed TLS certificate, generated when none is configured | 0600 |
//! | `admin.token` | bearer token of the admin endpoint (hex) | 0600 |
//! | `metrics.token` | bearer token of `GET /metrics` on the admin endpoint (hex): a scraper holds no admin rights | 0600 |
//!
//! Each is made on first start and reused afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::federation::peer::FederationTls;
use crate::tls::{CertReloader, ReloadableCert};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::ids::ServerName;

mod private;
pub mod rotation;

pub use private::make_private;

/// Why the server's identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key or certificate file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads a Server Key seed file (32 bytes).
pub fn load_server_key(path: &Path) -> Result<ServerKey, IdentityError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(io_err(path))?);
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| IdentityError::Invalid {
            path: path.to_owned(),
            reason: "expected a 32-byte Ed25519 seed".into(),
        })?;
    Ok(ServerKey::from_seed(&Zeroizing::new(seed)))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temporary file + rename) with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    write_with_mode(path, bytes, 0o600)
}

/// Writes `bytes` to `path` atomically (temporary file + rename) with mode 0644 (certificates,
/// requests: public).
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    write_with_mode(path, bytes, 0o644)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = path.with_extension("tmp");
    // A left-over temporary file would keep its old mode.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// A bearer token kept in `path` (0600), made on first use.
fn token_file(path: &Path, generated: &mut bool) -> Result<Zeroizing<String>, IdentityError> {
    if path.exists() {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_err(path))?);
        return Ok(Zeroizing::new(text.trim().to_owned()));
    }
    let token = Zeroizing::new(hex_string(
        &rendezvous_protocol::crypto::random_array::<32>(),
    ));
    write_private(path, token.as_bytes())?;
    *generated = true;
    Ok(token)
}

/// The server's keys, certificates and admin token.
pub struct ServerIdentity {
    /// The Ed25519 Server Key.
    pub server_key: ServerKey,
    /// TLS configuration of the client API (its certificate comes from `certificate`).
    pub tls: Arc<ServerConfig>,
    /// The client API's certificate, reloadable (SIGHUP).
    pub certificate: Arc<ReloadableCert>,
    /// Federation's TLS configurations when federation is enabled (set by
    /// [`crate::prepare`]; `run` loads them itself when this is `None`).
    pub federation: Option<FederationTls>,
    /// The admin bearer token.
    pub admin_token: Zeroizing<String>,
    /// The bearer token of `GET /metrics` (on the admin listener).
    pub metrics_token: Zeroizing<String>,
    /// Whether something was generated on this start (first start).
    pub generated: bool,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("server_key", &self.server_key.public())
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Loads the identity from `data_dir`, making what is missing. `tls_files` are a configured
    /// certificate chain and key; without them a self-signed certificate is used.
    pub fn load_or_create(
        data_dir: &Path,
        server_name: &ServerName,
        tls_files: Option<(&Path, &Path)>,
    ) -> Result<ServerIdentity, IdentityError> {
        std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
        let mut generated = false;

        let key_path = data_dir.join(rotation::SERVER_KEY);
        let server_key = if key_path.exists() {
            load_server_key(&key_path)?
        } else {
            let key = ServerKey::generate();
            write_private(&key_path, &key.seed()[..])?;
            generated = true;
            key
        };

        let admin_token = token_file(&data_dir.join("admin.token"), &mut generated)?;
        let metrics_token = token_file(&data_dir.join("metrics.token"), &mut generated)?;

        let (cert_path, tls_key_path) = match tls_files {
            Some((c, k)) => (c.to_owned(), k.to_owned()),
            None => {
                let c = data_dir.join("tls").join("cert.pem");
                let k = data_dir.join("tls").join("key.pem");
                if !c.exists() || !k.exists() {
                    let (cert_pem, key_pem) = self_signed(server_name)?;
                    write_private(&k, key_pem.as_bytes())?;
                    write_private(&c, cert_pem.as_bytes())?;
                    generated = true;
                }
                (c, k)
            }
        };
        let certificate = Arc::new(ReloadableCert::load(&cert_path, &tls_key_path)?);
        let tls = client_api_tls(certificate.clone())?;
        Ok(ServerIdentity {
            server_key,
            tls,
            certificate,
            federation: None,
            admin_token,
            metrics_token,
            generated,
        })
    }

    /// `sha256:<hex>` of the client API's end-entity certificate (what clients pin), as served
    /// now.
    pub fn fingerprint(&self) -> String {
        self.certificate.fingerprint()
    }

    /// The certificates to reload on SIGHUP: the client API's and federation's.
    pub fn reloader(&self) -> CertReloader {
        let mut reloader = CertReloader::default();
        reloader.add(&self.certificate);
        if let Some(federation) = &self.federation {
            reloader.add(&federation.certificate);
        }
        reloader
    }
}

/// A self-signed certificate for the server name (and loopback when it is `localhost`).
fn self_signed(server_name: &ServerName) -> Result<(String, String), IdentityError> {
    let mut names = vec![server_name.host().to_owned()];
    if server_name.host() == "localhost" {
        names.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
    }
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| IdentityError::Invalid {
        path: PathBuf::from("tls/cert.pem"),
        reason: e.to_string(),
    })?;
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem()))
}

/// `sha256:<hex>` of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex_string(&Sha256::digest(der)))
}

/// The client API's rustls configuration, serving `certificate` (no client certificates).
pub fn client_api_tls(
    certificate: Arc<ReloadableCert>,
) -> Result<Arc<ServerConfig>, IdentityError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IdentityError::Invalid {
            path: certificate.cert_path().to_owned(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused_with_private_modes() {
        let dir = std::env::temp_dir().join(format!(
            "rdv-identity-{}",
            hex_string(&rendezvous_protocol::crypto::random_array::<8>())
        ));
        let name: ServerName = "localhost".parse().unwrap();
        let first = ServerIdentity::load_or_create(&dir, &name, None).unwrap();
        assert!(first.generated);
        assert!(first.fingerprint().starts_with("sha256:") && first.fingerprint().len() == 71);
        let again = ServerIdentity::load_or_create(&dir, &name, None).unwrap();
        assert!(!again.generated);
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.server_key.public(), again.server_key.public());
        assert_eq!(*first.admin_token, *again.admin_token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["server.key", "admin.token", "tls/key.pem"] {
                let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        // A corrupt key file is an error, not a new key.
        std::fs::write(dir.join("server.key"), b"short").unwrap();
        assert!(ServerIdentity::load_or_create(&dir, &name, None).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! How the client trusts its homeserver's TLS certificate (`client-api.md` §1).
//!
//! Three modes, never "accept anything":
//! - [`Trust::SystemRoots`]: the operating system's roots (rustls-native-certs), WebPKI checks;
//! - [`Trust::CaFile`]: roots from a PEM file (a private CA), WebPKI checks;
//! - [`Trust::Pinned`]: the SHA-256 fingerprint of the server's end-entity certificate, which the
//!   server prints at first start (`sha256:<64 hex>`). The fingerprint is compared in constant
//!   time, and the handshake signatures are still verified with the ring provider's algorithms,
//!   so only the holder of the pinned certificate's private key gets through.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ClientError;

/// The SHA-256 fingerprint of a certificate's DER encoding, written `sha256:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(cert_der).into())
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &Fingerprint) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sha256:{}",
            rendezvous_protocol::crypto::sign::hex_string(&self.0)
        )
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadFingerprint(s.to_owned());
        let hex = s.trim().strip_prefix("sha256:").ok_or_else(bad)?;
        let bytes = decode_hex(hex).ok_or_else(bad)?;
        Ok(Fingerprint(bytes.try_into().map_err(|_| bad())?))
    }
}

/// Decodes hex text (either case); `None` if it is not hex of an even length.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    text.as_bytes()
        .chunks(2)
        .map(|p| match p {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's root certificates.
    SystemRoots,
    /// Root certificates from a PEM file.
    CaFile(PathBuf),
    /// The server's end-entity certificate, pinned by fingerprint.
    Pinned(Fingerprint),
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::SystemRoots => f.write_str("system-roots"),
            Trust::CaFile(p) => write!(f, "ca-file:{}", p.display()),
            Trust::Pinned(fp) => write!(f, "pin:{fp}"),
        }
    }
}

impl FromStr for Trust {
    type Err = ClientError;

    /// Parses the form [`Display`](fmt::Display) writes (as kept in the keystore).
    fn from_str(s: &str) -> Result<Self, ClientError> {
        if s == "system-roots" {
            Ok(Trust::SystemRoots)
        } else if let Some(path) = s.strip_prefix("ca-file:") {
            Ok(Trust::CaFile(PathBuf::from(path)))
        } else if let Some(fp) = s.strip_prefix("pin:") {
            Ok(Trust::Pinned(fp.parse()?))
        } else {
            Err(ClientError::Tls(format!("unknown trust mode {s:?}")))
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration for `trust` (ring provider, TLS 1.2 and 1.3).
pub fn client_config(trust: &Trust) -> Result<ClientConfig, ClientError> {
    client_config_checked(trust).map(|(config, _)| config)
}

/// What a pinned-fingerprint connection saw: the fingerprint of the last certificate the server
/// presented that did not match the pin, so that the error can show both.
#[derive(Debug, Clone)]
pub struct PinCheck {
    pinned: Fingerprint,
    presented: Arc<Mutex<Option<Fingerprint>>>,
}

impl PinCheck {
    fn new(pinned: Fingerprint) -> Self {
        PinCheck {
            pinned,
            presented: Arc::new(Mutex::new(None)),
        }
    }

    /// `(pinned, presented)` when the last handshake met another certificate than the pinned one.
    pub fn mismatch(&self) -> Option<(Fingerprint, Fingerprint)> {
        let presented = *self
            .presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        presented.map(|p| (self.pinned, p))
    }

    fn record(&self, presented: Option<Fingerprint>) {
        *self
            .presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = presented;
    }
}

/// [`client_config`], and for a pinned fingerprint the [`PinCheck`] its verifier reports to.
pub fn client_config_checked(
    trust: &Trust,
) -> Result<(ClientConfig, Option<PinCheck>), ClientError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut check = None;
    let config = match trust {
        Trust::SystemRoots => {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(ClientError::Tls(
                    "no usable system root certificates found".into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            let iter = CertificateDer::pem_file_iter(path).map_err(|e| {
                ClientError::Tls(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            for cert in iter {
                let cert = cert.map_err(|e| {
                    ClientError::Tls(format!("bad PEM in CA file {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    ClientError::Tls(format!("bad certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(ClientError::Tls(format!(
                    "no certificate in CA file {}",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Pinned(fp) => {
            let verifier = PinnedVerifier::new(*fp, &provider);
            check = Some(verifier.check.clone());
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok((config, check))
}

/// Accepts exactly the certificate with the pinned fingerprint, and verifies the handshake
/// signatures made with its key.
#[derive(Debug)]
pub struct PinnedVerifier {
    pinned: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
    check: PinCheck,
}

impl PinnedVerifier {
    /// A verifier for `pinned`, using `provider`'s signature algorithms.
    pub fn new(pinned: Fingerprint, provider: &CryptoProvider) -> Self {
        PinnedVerifier {
            pinned,
            algorithms: provider.signature_verification_algorithms,
            check: PinCheck::new(pinned),
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The pin is the trust anchor: name and validity period are the pinned certificate's,
        // whatever they say.
        let presented = Fingerprint::of(end_entity);
        if presented.matches(&self.pinned) {
            self.check.record(None);
            Ok(ServerCertVerified::assertion())
        } else {
            self.check.record(Some(presented));
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ClientConnection, ServerConfig, ServerConnection};

    fn cert() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (
            ck.cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der())),
        )
    }

    /// Serves a fixed certificate and key, without checking that they belong together (so a
    /// test can play a server that shows a certificate whose key it does not hold).
    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);

    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _hello: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    /// Runs a full in-memory handshake; returns the client's error, if any.
    fn handshake(
        client: ClientConfig,
        chain: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), rustls::Error> {
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
        let certified = rustls::sign::CertifiedKey::new(vec![chain], signing);
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
        let mut c =
            ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").unwrap())
                .unwrap();
        let mut s = ServerConnection::new(Arc::new(server)).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            if let Err(e) = s.process_new_packets() {
                // Flush the alert to the client so it reports its own view.
                let mut alert = Vec::new();
                let _ = s.write_tls(&mut alert);
                let _ = c.read_tls(&mut &alert[..]);
                c.process_new_packets()?;
                return Err(e);
            }
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish")
    }

    #[test]
    fn fingerprint_text_round_trip() {
        let fp = Fingerprint::of(b"certificate");
        let text = fp.to_string();
        assert!(text.starts_with("sha256:"));
        assert_eq!(text.len(), 7 + 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(
            text.to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<Fingerprint>()
                .unwrap(),
            fp
        );
        for bad in [
            "",
            "sha256:",
            "sha1:00",
            "sha256:zz",
            &text[..text.len() - 2],
            &text[7..],
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
        let trust = Trust::Pinned(fp);
        assert_eq!(trust.to_string().parse::<Trust>().unwrap(), trust);
        let ca = Trust::CaFile("/etc/ca.pem".into());
        assert_eq!(ca.to_string().parse::<Trust>().unwrap(), ca);
        assert_eq!("system-roots".parse::<Trust>().unwrap(), Trust::SystemRoots);
    }

    #[test]
    fn system_roots_do_not_trust_a_self_signed_certificate() {
        // Without any system roots, building the config fails clearly instead.
        match client_config(&Trust::SystemRoots) {
            Ok(config) => {
                let (der, key) = cert();
                assert!(handshake(config, der, key).is_err());
            }
            Err(e) => assert!(matches!(e, ClientError::Tls(_)), "{e}"),
        }
    }

    #[test]
    fn pinned_verifier_accepts_the_pinned_cert() {
        let (der, key) = cert();
        let config = client_config(&Trust::Pinned(Fingerprint::of(&der))).unwrap();
        handshake(config, der, key).unwrap();
    }

    #[test]
    fn pinned_verifier_refuses_another_cert() {
        let (pinned, _) = cert();
        let (other, other_key) = cert();
        let config = client_config(&Trust::Pinned(Fingerprint::of(&pinned))).unwrap();
        let err = handshake(config, other, other_key).unwrap_err();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );
    }

    #[test]
    fn a_refused_certificate_is_reported_with_its_fingerprint() {
        let (pinned, _) = cert();
        let (other, other_key) = cert();
        let (config, check) =
            client_config_checked(&Trust::Pinned(Fingerprint::of(&pinned))).unwrap();
        let check = check.unwrap();
        assert!(check.mismatch().is_none());
        assert!(handshake(config, other.clone(), other_key).is_err());
        assert_eq!(
            check.mismatch(),
            Some((Fingerprint::of(&pinned), Fingerprint::of(&other)))
        );
    }

    #[test]
    fn pinned_cert_with_wrong_key_fails_the_signature_check() {
        // The server presents the pinned certificate but holds another key: the handshake
        // signature must not verify.
        let (pinned, _) = cert();
        let (_, other_key) = cert();
        let config = client_config(&Trust::Pinned(Fingerprint::of(&pinned))).unwrap();
        assert!(handshake(config, pinned, other_key).is_err());
    }

    #[test]
    fn ca_file_trust() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("rdv-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        let config = client_config(&Trust::CaFile(path.clone())).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        handshake(config, leaf.der().clone(), key).unwrap();
        // A self-signed certificate not from the CA is refused.
        let (other, other_key) = cert();
        let config = client_config(&Trust::CaFile(path.clone())).unwrap();
        assert!(handshake(config, other, other_key).is_err());
        // A missing or empty file is a clear error.
        std::fs::write(&path, "").unwrap();
        assert!(matches!(
            client_config(&Trust::CaFile(path)),
            Err(ClientError::Tls(_))
        ));
        assert!(client_config(&Trust::CaFile(dir.join("missing.pem"))).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}

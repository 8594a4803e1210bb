//! How transactions reach a peer: the [`Transport`] the outbound queues send through, and
//! [`AwcTransport`], the real one (`PUT /_rdv/federation/v1/send/{txn_id}` over mutual TLS,
//! `federation-api.md` §1, §4).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::federation::client::{FederationClient, ORIGIN_HEADER, Timeouts};
use crate::federation::peer::PeerPolicy;
use crate::net::OutboundPolicy;
use rendezvous_protocol::federation::{Transaction, TransactionResponse};
use rendezvous_protocol::ids::ServerName;

/// Default federation port (`federation-api.md` §1, §7).
pub const DEFAULT_PORT: u16 = 8448;
/// Largest response body read from a peer (a [`TransactionResponse`] of 100 results is far
/// smaller; [`TransactionResponse::from_wire`] enforces the same bound).
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// How long one transaction may take, connection included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting to one endpoint (TCP and TLS) may take.
pub const SEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The limits of one transaction.
pub const SEND_TIMEOUTS: Timeouts = Timeouts {
    connect: SEND_CONNECT_TIMEOUT,
    request: SEND_TIMEOUT,
};

/// Why a transaction got no usable answer. Every variant means "try the same transaction
/// again later": the peer may or may not have applied it, and will deduplicate the retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The destination's address could not be found.
    #[error("resolving {destination}: {reason}")]
    Resolve {
        /// The destination.
        destination: String,
        /// What failed.
        reason: String,
    },
    /// Connecting, the TLS handshake, sending or reading failed, or it took too long.
    #[error("sending to {destination}: {reason}")]
    Send {
        /// The destination.
        destination: String,
        /// What failed.
        reason: String,
    },
    /// The peer refused the whole transaction with an HTTP status other than 200.
    #[error("{destination} answered HTTP {status}")]
    Status {
        /// The destination.
        destination: String,
        /// The HTTP status.
        status: u16,
        /// Its `Retry-After`, seconds (with `429` and `503`): no retry before.
        retry_after: Option<u64>,
    },
    /// The peer answered 200 with a body that is not a response to this transaction (does not
    /// decode, or not one result per event in order).
    #[error("{destination} sent an invalid response: {reason}")]
    BadResponse {
        /// The destination.
        destination: String,
        /// What is wrong with it.
        reason: String,
    },
    /// This server does not send to the destination: its allow and deny lists
    /// (`federation-api.md` §1). Its events are dropped, as refused for good.
    #[error("{destination} is not contacted: {reason}")]
    Forbidden {
        /// The destination.
        destination: String,
        /// Why.
        reason: String,
    },
    /// The client TLS configuration (certificate, key, roots) could not be built.
    #[error("client TLS configuration: {0}")]
    Tls(String),
}

/// Sends one transaction to one destination and returns the peer's per-event results.
///
/// Written as `-> impl Future` without a `Send` bound on purpose: the real transport uses awc,
/// whose client is single-threaded, so the outbound senders run as local tasks.
pub trait Transport {
    /// `PUT`s `txn` to `destination` and decodes the answer.
    fn send(
        &self,
        destination: &ServerName,
        txn: &Transaction,
    ) -> impl Future<Output = Result<TransactionResponse, TransportError>>;
}

/// A future returned by a [`Resolve`] callback: the addresses to try, in order (never empty).
pub type ResolveFuture = Pin<Box<dyn Future<Output = Result<Vec<SocketAddr>, TransportError>>>>;

/// Finds the socket addresses of a destination. Discovery (`federation-api.md` §7) plugs in
/// here; [`static_resolver`] is a stand-in without SRV lookups.
pub type Resolve = Box<dyn Fn(&ServerName) -> ResolveFuture>;

/// A resolver backed by DNS discovery (`federation-api.md` §7: overrides, explicit port, SRV,
/// then A/AAAA on 8448): every endpoint, in discovery's order, each checked against `policy`
/// (§7.1: one refused address refuses the destination). The TLS name stays the destination's
/// server name whatever address it resolves to.
pub fn discovery_resolver(
    discovery: Arc<crate::federation::discovery::Discovery>,
    policy: OutboundPolicy,
) -> Resolve {
    Box::new(move |destination: &ServerName| {
        let (discovery, policy) = (discovery.clone(), policy.clone());
        let destination = destination.clone();
        Box::pin(async move {
            let endpoints =
                discovery
                    .resolve(&destination)
                    .await
                    .map_err(|e| TransportError::Resolve {
                        destination: destination.to_string(),
                        reason: e.to_string(),
                    })?;
            let addrs: Vec<SocketAddr> = endpoints.into_iter().map(|e| e.addr).collect();
            if addrs.is_empty() {
                return Err(TransportError::Resolve {
                    destination: destination.to_string(),
                    reason: "no endpoint".into(),
                });
            }
            // A refused address is not a verdict on the destination: one wrong or spoofed DNS
            // answer must not drop its queue. It is retried with backoff like an unreachable
            // one (`federation-api.md` §8), never connected to.
            policy
                .check_all(&addrs)
                .map_err(|refusal| TransportError::Resolve {
                    destination: destination.to_string(),
                    reason: refusal.to_string(),
                })?;
            Ok(addrs)
        })
    })
}

/// A resolver from static overrides (`server name -> host:port`), else the name's own
/// `host:port`, else its host on port [`DEFAULT_PORT`], through the system resolver. It does
/// not look up SRV records.
pub fn static_resolver(overrides: BTreeMap<String, String>) -> Resolve {
    let overrides = Arc::new(overrides);
    Box::new(move |destination: &ServerName| {
        let target = match overrides.get(destination.as_str()) {
            Some(t) => t.clone(),
            None => match destination.port() {
                Some(_) => destination.as_str().to_owned(),
                None => format!("{}:{DEFAULT_PORT}", destination.host()),
            },
        };
        let name = destination.to_string();
        Box::pin(async move {
            let resolve_err = |reason: String| TransportError::Resolve {
                destination: name.clone(),
                reason,
            };
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target.as_str())
                .await
                .map_err(|e| resolve_err(e.to_string()))?
                .collect();
            match addrs.is_empty() {
                true => Err(resolve_err(format!("no address for {target}"))),
                false => Ok(addrs),
            }
        })
    })
}

/// A client TLS configuration that presents `chain`/`key` as the client certificate and
/// trusts `roots` for peers' server certificates.
pub fn client_tls(
    roots: RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TransportError::Tls(e.to_string()))
}

/// [`client_tls`] from PEM files; the roots are `ca_file`'s certificates, or the system's when
/// `None`.
pub fn load_client_tls(
    cert_pem: &Path,
    key_pem: &Path,
    ca_file: Option<&Path>,
) -> Result<rustls::ClientConfig, TransportError> {
    let tls_err = |path: &Path, e: String| TransportError::Tls(format!("{}: {e}", path.display()));
    let chain = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| tls_err(cert_pem, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert_pem, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| tls_err(key_pem, e.to_string()))?;
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| tls_err(ca, e.to_string()))? {
                let cert = cert.map_err(|e| tls_err(ca, e.to_string()))?;
                roots.add(cert).map_err(|e| tls_err(ca, e.to_string()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot parse is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
    }
    client_tls(roots, chain, key)
}

/// The real transport: the federation client's mutual-TLS awc client
/// ([`FederationClient::http`], [`SEND_TIMEOUTS`]), to the address a [`Resolve`] callback gives.
/// The URL, the `Host` header and the TLS server name are the destination's name, never the
/// resolved address (`federation-api.md` §7). Connections are pooled for the transport's life.
pub struct AwcTransport {
    client: awc::Client,
    tls: Arc<rustls::ClientConfig>,
    policy: PeerPolicy,
    resolve: Resolve,
    timeout: Duration,
}

impl std::fmt::Debug for AwcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwcTransport")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AwcTransport {
    /// A transport that sends with `client`'s mutual-TLS configuration and allow and deny
    /// lists (the server's one [`FederationClient`]) to the addresses `resolve` gives.
    pub fn new(client: &FederationClient, resolve: Resolve) -> AwcTransport {
        AwcTransport {
            client: client.http(SEND_TIMEOUTS, None),
            tls: client.tls().clone(),
            policy: client.policy().clone(),
            resolve,
            timeout: SEND_TIMEOUT,
        }
    }
}

impl AwcTransport {
    /// The mutual-TLS configuration it sends with (the federation client's).
    pub fn tls(&self) -> &Arc<rustls::ClientConfig> {
        &self.tls
    }
}

impl Transport for AwcTransport {
    async fn send(
        &self,
        destination: &ServerName,
        txn: &Transaction,
    ) -> Result<TransactionResponse, TransportError> {
        // §1: a server the allow and deny lists shut out is refused before any lookup.
        if !self.policy.permits(destination) {
            return Err(TransportError::Forbidden {
                destination: destination.to_string(),
                reason: "not allowed by this server's federation policy".into(),
            });
        }
        let addrs = (self.resolve)(destination).await?;
        let send_err = |reason: String| TransportError::Send {
            destination: destination.to_string(),
            reason,
        };
        // `federation-api.md` §4: the id is checked to be [A-Za-z0-9_-] by the receiver and
        // made so by us, so it needs no escaping in the path.
        let url = format!(
            "https://{}/_rdv/federation/v1/send/{}",
            destination.as_str(),
            txn.txn_id
        );
        // `federation-api.md` §7: the endpoints in order, the next one only when no connection
        // could be made to this one (once a request went out, the peer may have applied it).
        let mut res = None;
        let mut last_error = None;
        for addr in addrs {
            match self
                .client
                .put(&url)
                .address(addr)
                .timeout(self.timeout)
                .content_type("application/cbor")
                // federation-api.md §1.1: the origin in the head, so that the peer
                // authenticates and rate-limits it before reading the body.
                .insert_header((ORIGIN_HEADER, txn.origin.as_str()))
                .send_body(txn.to_wire())
                .await
            {
                Ok(r) => {
                    res = Some(r);
                    break;
                }
                Err(e @ awc::error::SendRequestError::Connect(_)) => last_error = Some(e),
                Err(e) => return Err(send_err(e.to_string())),
            }
        }
        let Some(mut res) = res else {
            return Err(send_err(
                last_error.map_or_else(|| "no address".to_owned(), |e| e.to_string()),
            ));
        };
        let status = res.status().as_u16();
        if status != 200 {
            let retry_after = res
                .headers()
                .get(awc::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return Err(TransportError::Status {
                destination: destination.to_string(),
                status,
                retry_after,
            });
        }
        let body = res
            .body()
            .limit(MAX_RESPONSE_LEN)
            .await
            .map_err(|e| send_err(e.to_string()))?;
        TransactionResponse::from_wire(&body).map_err(|e| TransportError::BadResponse {
            destination: destination.to_string(),
            reason: e.to_string(),
        })
    }
}

//! Queries to other homeservers (`federation-api.md` §5): a request/response client for the
//! federation API over mutual TLS, and the checks on what peers answer.
//!
//! [`FederationClient`] is built from our client certificate and the federation roots (an
//! `Arc<rustls::ClientConfig>`) and a [`PeerResolver`] for discovery (§7); the fetching of peers'
//! key documents ([`super::keys::HttpPeerKeys`]) goes through it too, and so do the outbound
//! transactions ([`super::outbound::AwcTransport`] is built on [`FederationClient::http`]): one
//! mutual-TLS configuration for every request this server makes to a peer, each use with its own
//! [`Timeouts`]. The URL's host is the server name's host, so the peer's certificate is
//! checked for the server name, never for the address it resolved to. awc's client is not
//! `Send`, so one is built per call; the [`FederationClient`] itself is cheap to clone and
//! shareable between actix workers.
//!
//! Every request carries the [`ORIGIN_HEADER`] naming this server: the peer checks that our
//! certificate is valid for that name and applies its allow and deny lists to it (§1, §5).
//!
//! What a peer answers is not trusted: [`FederationClient::identity`] checks that the
//! registration verifies under its own Identity Key and names the user asked for, and
//! [`FederationClient::claim_topic_keys`] checks every claimed key the same way, and that it is
//! for a user that was asked for, on the server asked.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_tls::connect::Resolver;

use super::keys::{DEFAULT_PORT, PeerResolver};
use crate::net::{FixedAddrs, NoLookup, ResolveError};
use rendezvous_protocol::api::{
    ApiErrorBody, ClaimTopicKeysRequest, ClaimTopicKeysResponse, ClaimedTopicKey, ErrorCode,
    IdentityResponse,
};
use rendezvous_protocol::certs::{Registration, TopicKeyCert};
use rendezvous_protocol::crypto::IdentityPublicKey;
use rendezvous_protocol::devices::topic_keys::verify_cert;
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::wire::{Signed, SignedBytes, WireError, decode_versioned, encode};

/// The request header naming the server a query comes from (`federation-api.md` §5). The
/// client certificate must be valid for it.
pub const ORIGIN_HEADER: &str = "X-Rdv-Origin";
/// Path of the identity query (`{user}` percent-encoded in between).
pub const USERS_PATH: &str = "/_rdv/federation/v1/users";
/// Path of the topic key claim.
pub const CLAIM_TOPIC_KEYS_PATH: &str = "/_rdv/federation/v1/topic-keys/claim";
/// Most users in one federation claim (`federation-api.md` §5).
pub const MAX_FEDERATION_CLAIMS: usize = 100;
/// Largest identity answer read from a peer (with its directory proof, `directory.md` §4).
pub const MAX_IDENTITY_ANSWER: usize = 16 * 1024;
/// Largest claim answer read from a peer (100 entries of at most ~2 KiB each).
pub const MAX_CLAIM_ANSWER: usize = 256 * 1024;
/// Largest error body read from a peer.
const MAX_ERROR_BODY: usize = 4 * 1024;
/// Time to set up a connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole query, connection included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

/// The time limits of one use of the federation client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To set up a connection (TCP and TLS).
    pub connect: Duration,
    /// For a whole request, connection included.
    pub request: Duration,
}

/// The limits of queries (§5) and key fetches.
pub const QUERY_TIMEOUTS: Timeouts = Timeouts {
    connect: CONNECT_TIMEOUT,
    request: QUERY_TIMEOUT,
};

/// Why a query to another server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No connection, TLS failure, timeout or a `5xx` answer: try later.
    #[error("{server} is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        server: ServerName,
        /// What went wrong.
        reason: String,
    },
    /// The peer answered `4xx`; its JSON `{code, message}` is kept.
    #[error("{server} refused the query ({status} {code}): {message}")]
    Refused {
        /// The peer.
        server: ServerName,
        /// The HTTP status.
        status: u16,
        /// The peer's machine-readable code (empty when its body was not our JSON).
        code: String,
        /// The peer's message.
        message: String,
    },
    /// This server does not contact the peer (`federation-api.md` §7.1): the allow and deny
    /// lists shut it out, or it resolves to an address the outbound policy refuses.
    #[error("{server} is not contacted: {reason}")]
    NotContacted {
        /// The peer.
        server: ServerName,
        /// Why.
        reason: String,
    },
    /// The answer does not decode or does not verify.
    #[error("{server} sent an invalid answer: {reason}")]
    Invalid {
        /// The peer.
        server: ServerName,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a registration from a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityCheckError {
    /// It does not decode.
    #[error("registration does not decode: {0}")]
    Malformed(#[from] WireError),
    /// It is not signed by the Identity Key it names.
    #[error("registration is not signed by its own identity key")]
    BadSignature,
    /// It is for another user.
    #[error("registration for {expected} names {got}")]
    WrongUser {
        /// The user asked for.
        expected: UserId,
        /// The user it names.
        got: UserId,
    },
}

/// A user's identity as their homeserver answered it, checked: the registration verifies under
/// the Identity Key it carries and names the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteIdentity {
    user: UserId,
    identity_key: IdentityPublicKey,
    registration: SignedBytes,
}

impl RemoteIdentity {
    /// Checks `registration` as `user`'s (`protocol.md` §3.5: self-signed by the Identity Key,
    /// naming the user).
    pub fn check(user: &UserId, registration: SignedBytes) -> Result<Self, IdentityCheckError> {
        let signed = Signed::<Registration>::from_signed_bytes(registration)?;
        let claimed = signed.decode_unverified()?;
        let verified = signed
            .verify(&claimed.identity_key)
            .map_err(|_| IdentityCheckError::BadSignature)?;
        if verified.user != *user {
            return Err(IdentityCheckError::WrongUser {
                expected: user.clone(),
                got: verified.user.clone(),
            });
        }
        Ok(RemoteIdentity {
            user: user.clone(),
            identity_key: verified.identity_key.clone(),
            registration: verified.signed_bytes().clone(),
        })
    }

    /// The user.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Their Identity Key (as their homeserver says: devices pin it on first sight).
    pub fn identity_key(&self) -> &IdentityPublicKey {
        &self.identity_key
    }

    /// The IK-signed registration, as it travels.
    pub fn registration(&self) -> &SignedBytes {
        &self.registration
    }
}

/// A request/response client for the federation API (`federation-api.md` §1, §5) over mutual
/// TLS. Cheap to clone; `Send + Sync`; the futures it returns are not `Send` (awc), so they are
/// awaited on the worker that made them, as actix handlers do.
#[derive(Clone)]
pub struct FederationClient {
    tls: Arc<rustls::ClientConfig>,
    resolve: PeerResolver,
    origin: Option<ServerName>,
    /// The allow and deny lists: a denied server is never contacted.
    policy: super::peer::PeerPolicy,
}

impl std::fmt::Debug for FederationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationClient")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl FederationClient {
    /// Queries with `tls` (our client certificate, the federation roots), finding peers with
    /// `resolve`. Peers refuse queries without an origin: set it with
    /// [`FederationClient::with_origin`].
    pub fn new(tls: Arc<rustls::ClientConfig>, resolve: PeerResolver) -> Self {
        FederationClient {
            tls,
            resolve,
            origin: None,
            policy: super::peer::PeerPolicy::default(),
        }
    }

    /// Contacts only the servers `policy` admits (`[federation] allow`/`deny`, §1): a denied
    /// server is refused here, before any DNS lookup or connection.
    pub fn with_policy(mut self, policy: super::peer::PeerPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The allow and deny lists it contacts peers under.
    pub fn policy(&self) -> &super::peer::PeerPolicy {
        &self.policy
    }

    /// Names this server in every request's [`ORIGIN_HEADER`] (our certificate must be valid
    /// for it).
    pub fn with_origin(mut self, origin: ServerName) -> Self {
        self.origin = Some(origin);
        self
    }

    /// An awc client over this server's mutual-TLS configuration (our client certificate, the
    /// federation roots) with `timeouts`: the one way this server's requests to peers are made.
    /// With `addrs` it connects only to those, in order (the name was resolved and checked
    /// before, §7.1); without, each request names its address (`ClientRequest::address`), a
    /// request without one connects nowhere, and connections are pooled for as long as the
    /// returned client lives. It never resolves a name and follows no redirect: a redirect's
    /// target would be an address nobody checked.
    pub fn http(&self, timeouts: Timeouts, addrs: Option<Vec<SocketAddr>>) -> awc::Client {
        let resolver = match addrs {
            Some(addrs) => Resolver::custom(FixedAddrs(addrs)),
            None => Resolver::custom(NoLookup),
        };
        let connector = awc::Connector::new()
            .connector(actix_tls::connect::Connector::new(resolver).service())
            .timeout(timeouts.connect)
            .rustls_0_23(self.tls.clone());
        awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .timeout(timeouts.request)
            .finish()
    }

    /// The mutual-TLS configuration every request uses.
    pub fn tls(&self) -> &Arc<rustls::ClientConfig> {
        &self.tls
    }

    /// `GET path_and_query` (starting with `/_rdv/federation/v1/`) on `server`; `Ok(body)` on
    /// 200 (CBOR, at most `limit` bytes).
    pub async fn get(
        &self,
        server: &ServerName,
        path_and_query: &str,
        limit: usize,
    ) -> Result<Vec<u8>, QueryError> {
        self.request(server, awc::http::Method::GET, path_and_query, None, limit)
            .await
    }

    /// `POST` a CBOR `body` to `path` on `server`; `Ok(body)` on 200 (at most `limit` bytes).
    pub async fn post(
        &self,
        server: &ServerName,
        path: &str,
        body: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<u8>, QueryError> {
        self.request(server, awc::http::Method::POST, path, Some(body), limit)
            .await
    }

    /// The user's IK-signed registration from their homeserver, checked: it verifies under its
    /// own Identity Key and names `user`.
    pub async fn identity(&self, user: &UserId) -> Result<RemoteIdentity, QueryError> {
        let server = user.server();
        let path = format!("{USERS_PATH}/{}/identity", encode_segment(user.as_str()));
        let body = self.get(&server, &path, MAX_IDENTITY_ANSWER).await?;
        let invalid = |reason: String| QueryError::Invalid {
            server: server.clone(),
            reason,
        };
        let answer: IdentityResponse =
            decode_versioned(&body, MAX_IDENTITY_ANSWER).map_err(|e| invalid(e.to_string()))?;
        RemoteIdentity::check(user, answer.registration).map_err(|e| invalid(e.to_string()))
    }

    /// Claims one topic key for each of `users` (all on `server`, at most
    /// [`MAX_FEDERATION_CLAIMS`]); a user with none left is missing from the answer. Every entry
    /// is checked with [`check_claimed`].
    pub async fn claim_topic_keys(
        &self,
        server: &ServerName,
        users: &[UserId],
    ) -> Result<Vec<ClaimedTopicKey>, QueryError> {
        if let Some(other) = users.iter().find(|u| u.server() != *server) {
            return Err(QueryError::Refused {
                server: server.clone(),
                status: 400,
                code: ErrorCode::Invalid.as_str().to_owned(),
                message: format!("{other} is not a user of {server} (not sent)"),
            });
        }
        let request = ClaimTopicKeysRequest {
            users: users.to_vec(),
        };
        let body = self
            .post(
                server,
                CLAIM_TOPIC_KEYS_PATH,
                encode(&request),
                MAX_CLAIM_ANSWER,
            )
            .await?;
        let answer: ClaimTopicKeysResponse =
            decode_versioned(&body, MAX_CLAIM_ANSWER).map_err(|e| QueryError::Invalid {
                server: server.clone(),
                reason: e.to_string(),
            })?;
        check_claimed(server, users, answer.keys)
    }

    async fn request(
        &self,
        server: &ServerName,
        method: awc::http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<u8>, QueryError> {
        if !self.policy.permits(server) {
            return Err(QueryError::NotContacted {
                server: server.clone(),
                reason: "not allowed by this server's federation policy".to_owned(),
            });
        }
        let unreachable = |reason: String| QueryError::Unreachable {
            server: server.clone(),
            reason,
        };
        // §7.1: every address discovery gives is checked before the first connection.
        let addrs = (self.resolve)(server.clone()).await.map_err(|e| match e {
            ResolveError::Refused(refusal) => QueryError::NotContacted {
                server: server.clone(),
                reason: refusal.to_string(),
            },
            e => unreachable(e.to_string()),
        })?;
        let client = self.http(QUERY_TIMEOUTS, Some(addrs));
        // federation-api.md §7: the URL's host is the server name's, so SNI and the
        // certificate check are for the name whatever address it resolved to.
        let url = format!(
            "https://{}:{}{path}",
            server.host(),
            server.port().unwrap_or(DEFAULT_PORT)
        );
        let mut req = client.request(method, url);
        if let Some(origin) = &self.origin {
            req = req.insert_header((ORIGIN_HEADER, origin.as_str()));
        }
        let sent = match body {
            Some(body) => req.content_type("application/cbor").send_body(body).await,
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        match status {
            200 => match resp.body().limit(limit).await {
                Ok(body) => Ok(body.to_vec()),
                Err(awc::error::PayloadError::Overflow) => Err(QueryError::Invalid {
                    server: server.clone(),
                    reason: format!("answer over {limit} bytes"),
                }),
                Err(e) => Err(unreachable(e.to_string())),
            },
            400..=499 => {
                let body = resp.body().limit(MAX_ERROR_BODY).await.unwrap_or_default();
                let (code, message) = match serde_json::from_slice::<ApiErrorBody>(&body) {
                    Ok(e) => (e.code, e.message),
                    Err(_) => (String::new(), format!("HTTP {status}")),
                };
                Err(QueryError::Refused {
                    server: server.clone(),
                    status,
                    code,
                    message,
                })
            }
            // directory.md §4: a binding not witnessed yet is worth telling apart (the asking
            // server witnesses and asks again); every other 5xx is "unreachable".
            503 => {
                let body = resp.body().limit(MAX_ERROR_BODY).await.unwrap_or_default();
                match serde_json::from_slice::<ApiErrorBody>(&body) {
                    Ok(e) if e.code == ErrorCode::DirectoryPending.as_str() => {
                        Err(QueryError::Refused {
                            server: server.clone(),
                            status,
                            code: e.code,
                            message: e.message,
                        })
                    }
                    _ => Err(unreachable(format!("HTTP {status}"))),
                }
            }
            500..=599 => Err(unreachable(format!("HTTP {status}"))),
            _ => Err(QueryError::Invalid {
                server: server.clone(),
                reason: format!("unexpected HTTP {status}"),
            }),
        }
    }
}

/// Checks a peer's claim answer for `users` on `server`: every entry is for a user that was
/// asked for, at most one per user (users are asked once each, `federation-api.md` §5), its
/// registration verifies under its own Identity Key and names the user, and its topic key
/// certificate is signed by that key and names the user. A lying peer cannot hand out keys for
/// users it does not host, nor several keys for one user. The `kind` of each entry is the
/// peer's word (0 or 1, anything else does not decode); it is passed on unchecked.
pub fn check_claimed(
    server: &ServerName,
    users: &[UserId],
    keys: Vec<ClaimedTopicKey>,
) -> Result<Vec<ClaimedTopicKey>, QueryError> {
    let invalid = |reason: String| QueryError::Invalid {
        server: server.clone(),
        reason,
    };
    let asked: HashSet<&UserId> = users.iter().collect();
    let mut answered: HashSet<&UserId> = HashSet::with_capacity(keys.len());
    for key in &keys {
        if !asked.contains(&key.user) {
            return Err(invalid(format!(
                "a topic key for {}, who was not asked for",
                key.user
            )));
        }
        if !answered.insert(&key.user) {
            return Err(invalid(format!("two topic keys for {}", key.user)));
        }
        let identity = RemoteIdentity::check(&key.user, key.registration.clone())
            .map_err(|e| invalid(e.to_string()))?;
        let cert = Signed::<TopicKeyCert>::from_signed_bytes(key.topic_key_cert.clone())
            .map_err(|e| invalid(format!("topic key certificate of {}: {e}", key.user)))?;
        verify_cert(cert, identity.identity_key(), &key.user)
            .map_err(|e| invalid(format!("topic key certificate of {}: {e}", key.user)))?;
    }
    Ok(keys)
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;

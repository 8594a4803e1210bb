//! Queries to other homeservers (`federation-api.md` §5): a request/response client for the
//! federation API over mutual TLS, and the checks on what peers answer.
//!
//! [`FederationClient`] is built from our client certificate and the federation roots (an
//! `Arc<rustls::ClientConfig>`) and a [`PeerResolver`] for discovery (§7); the fetching of peers'
//! key documents ([`super::keys::HttpPeerKeys`]) goes through it too. The URL's host is the server name's host, so the peer's certificate is
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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_tls::connect::{Resolve, Resolver};
use futures_util::future::LocalBoxFuture;

use super::keys::{DEFAULT_PORT, PeerResolver};
use crate::error::ApiError;
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
/// Largest identity answer read from a peer.
pub const MAX_IDENTITY_ANSWER: usize = 4 * 1024;
/// Largest claim answer read from a peer (100 entries of at most ~2 KiB each).
pub const MAX_CLAIM_ANSWER: usize = 256 * 1024;
/// Largest error body read from a peer.
const MAX_ERROR_BODY: usize = 4 * 1024;
/// Time to set up a connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole query, connection included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a query to another server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No connection, TLS failure, timeout or a `5xx` answer: try later.
    #[error("{server} is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// The peer answered `4xx`; its JSON `{code, message}` is kept.
    #[error("{server} refused the query ({status} {code}): {message}")]
    Refused {
        /// The peer.
        server: String,
        /// The HTTP status.
        status: u16,
        /// The peer's machine-readable code (empty when its body was not our JSON).
        code: String,
        /// The peer's message.
        message: String,
    },
    /// The answer does not decode or does not verify.
    #[error("{server} sent an invalid answer: {reason}")]
    Invalid {
        /// The peer.
        server: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<QueryError> for ApiError {
    /// How a failed query is told to a device (`client-api.md` §1.1): `unavailable` when the
    /// peer cannot be reached, the peer's own code when it refused (`not_found` stays
    /// `not_found`; a code we do not know becomes `invalid`), `bad_gateway` when it lied.
    fn from(e: QueryError) -> Self {
        let message = e.to_string();
        match e {
            QueryError::Unreachable { .. } => ApiError::new(ErrorCode::Unavailable, message),
            QueryError::Refused { status: 404, .. } => ApiError::new(ErrorCode::NotFound, message),
            QueryError::Refused { code, .. } => {
                let code = match ErrorCode::parse(&code) {
                    // The peer did not accept *this server*; a device seeing `unauthorized`
                    // would take its own token for bad.
                    Some(ErrorCode::Unauthorized) => ErrorCode::Forbidden,
                    // Our own request was fine for our client; a 5xx-like code in a 4xx is
                    // not one of the peer's documented answers.
                    Some(c) if (400..500).contains(&c.status()) => c,
                    _ => ErrorCode::Invalid,
                };
                ApiError::new(code, message)
            }
            QueryError::Invalid { .. } => ApiError::new(ErrorCode::BadGateway, message),
        }
    }
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

/// Fixed addresses for awc's connector (the name was resolved before connecting).
struct Fixed(Vec<SocketAddr>);

impl Resolve for Fixed {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
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

    /// Names this server in every request's [`ORIGIN_HEADER`] (our certificate must be valid
    /// for it).
    pub fn with_origin(mut self, origin: ServerName) -> Self {
        self.origin = Some(origin);
        self
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
            server: server.to_string(),
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
                server: server.to_string(),
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
                server: server.to_string(),
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
            return Err(QueryError::Refused {
                server: server.to_string(),
                status: 403,
                code: ErrorCode::Forbidden.as_str().to_owned(),
                message: format!("{server} is not allowed by this server's federation policy"),
            });
        }
        let unreachable = |reason: String| QueryError::Unreachable {
            server: server.to_string(),
            reason,
        };
        let addrs = (self.resolve)(server.clone()).await.map_err(unreachable)?;
        let connector = awc::Connector::new()
            .connector(actix_tls::connect::Connector::new(Resolver::custom(Fixed(addrs))).service())
            .timeout(CONNECT_TIMEOUT)
            .rustls_0_23(self.tls.clone());
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(QUERY_TIMEOUT)
            .finish();
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
                    server: server.to_string(),
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
                    server: server.to_string(),
                    status,
                    code,
                    message,
                })
            }
            500..=599 => Err(unreachable(format!("HTTP {status}"))),
            _ => Err(QueryError::Invalid {
                server: server.to_string(),
                reason: format!("unexpected HTTP {status}"),
            }),
        }
    }
}

/// Checks a peer's claim answer for `users` on `server`: every entry is for a user that was
/// asked for (no more entries per user than asked), its registration verifies under its own
/// Identity Key and names the user, and its topic key certificate is signed by that key and
/// names the user. A lying peer cannot hand out keys for users it does not host.
pub fn check_claimed(
    server: &ServerName,
    users: &[UserId],
    keys: Vec<ClaimedTopicKey>,
) -> Result<Vec<ClaimedTopicKey>, QueryError> {
    let invalid = |reason: String| QueryError::Invalid {
        server: server.to_string(),
        reason,
    };
    let mut asked: HashMap<&UserId, usize> = HashMap::new();
    for user in users {
        *asked.entry(user).or_default() += 1;
    }
    for key in &keys {
        match asked.get_mut(&key.user) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                return Err(invalid(format!(
                    "a topic key for {}, who was not asked for",
                    key.user
                )));
            }
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
fn encode_segment(s: &str) -> String {
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
mod tests {
    use super::*;
    use rendezvous_protocol::crypto::{IdentityKey, Suite, TopicKey};

    const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;

    /// A denied server is refused before any lookup or connection: a device cannot make this
    /// server reach out to a peer its operator shut out (e.g. through `/v1/servers/{s}/keys`).
    #[actix_rt::test]
    async fn denied_servers_are_never_contacted() {
        let lookups = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = lookups.clone();
        let resolve: PeerResolver = Arc::new(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(std::future::ready(Err("no DNS in this test".to_owned())))
        });
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let config = crate::config::Federation {
            deny: vec!["evil.example".into()],
            ..Default::default()
        };
        let client = FederationClient::new(Arc::new(tls), resolve)
            .with_policy(super::super::peer::PeerPolicy::from_config(&config));
        let denied = client
            .get(
                &"evil.example".parse().unwrap(),
                "/_rdv/federation/v1/server-keys",
                10,
            )
            .await;
        assert!(
            matches!(denied, Err(QueryError::Refused { status: 403, .. })),
            "{denied:?}"
        );
        assert_eq!(lookups.load(std::sync::atomic::Ordering::SeqCst), 0);
        let other = client
            .get(
                &"ok.example".parse().unwrap(),
                "/_rdv/federation/v1/server-keys",
                10,
            )
            .await;
        assert!(matches!(other, Err(QueryError::Unreachable { .. })));
        assert_eq!(lookups.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn user(s: &str) -> UserId {
        s.parse().unwrap()
    }

    fn registration(u: &UserId, ik: &IdentityKey) -> SignedBytes {
        Signed::sign(Registration::new(u.clone(), ik.public().clone()), ik)
            .signed_bytes()
            .clone()
    }

    fn claimed(u: &UserId, ik: &IdentityKey) -> ClaimedTopicKey {
        let tk = TopicKey::generate(SUITE);
        ClaimedTopicKey {
            user: u.clone(),
            registration: registration(u, ik),
            topic_key_cert: Signed::sign(TopicKeyCert::new(u.clone(), tk.public(), 0), ik)
                .signed_bytes()
                .clone(),
        }
    }

    #[test]
    fn a_registration_must_verify_and_name_the_user_asked_for() {
        let bob = user("@bob:b.example");
        let ik = IdentityKey::generate();
        let ok = RemoteIdentity::check(&bob, registration(&bob, &ik)).unwrap();
        assert_eq!(ok.user(), &bob);
        assert_eq!(ok.identity_key(), ik.public());
        assert_eq!(ok.registration(), &registration(&bob, &ik));

        // A genuine registration of another user (a lying server answering for bob).
        let mallory = user("@mallory:b.example");
        assert_eq!(
            RemoteIdentity::check(&bob, registration(&mallory, &ik)),
            Err(IdentityCheckError::WrongUser {
                expected: bob.clone(),
                got: mallory.clone()
            })
        );
        // Bob's name and key, signed by another key.
        let other = IdentityKey::generate();
        let mut forged = registration(&bob, &ik);
        forged.1 = registration(&bob, &other).1;
        assert_eq!(
            RemoteIdentity::check(&bob, forged),
            Err(IdentityCheckError::BadSignature)
        );
        // Bob's name with the server's key in it, self-signed by that key: verifies, but it is
        // not what the original says; devices pin the first key they see (client side).
        let swapped = registration(&bob, &other);
        assert_eq!(
            RemoteIdentity::check(&bob, swapped).unwrap().identity_key(),
            other.public()
        );
        // Garbage.
        assert!(matches!(
            RemoteIdentity::check(&bob, SignedBytes(vec![1, 2, 3], forged_sig(&ik))),
            Err(IdentityCheckError::Malformed(_) | IdentityCheckError::BadSignature)
        ));
    }

    fn forged_sig(ik: &IdentityKey) -> rendezvous_protocol::crypto::Signature {
        registration(&user("@x:b.example"), ik).1
    }

    #[test]
    fn claimed_keys_must_be_asked_for_and_verify() {
        let b: ServerName = "b.example".parse().unwrap();
        let (bob, carol) = (user("@bob:b.example"), user("@carol:b.example"));
        let (bob_ik, carol_ik) = (IdentityKey::generate(), IdentityKey::generate());
        let asked = [bob.clone(), carol.clone()];
        // A user without keys left is missing: fine.
        let got = check_claimed(&b, &asked, vec![claimed(&bob, &bob_ik)]).unwrap();
        assert_eq!(got.len(), 1);
        check_claimed(
            &b,
            &asked,
            vec![claimed(&bob, &bob_ik), claimed(&carol, &carol_ik)],
        )
        .unwrap();

        let refused = |keys: Vec<ClaimedTopicKey>| {
            matches!(
                check_claimed(&b, &asked, keys),
                Err(QueryError::Invalid { .. })
            )
        };
        // Two keys for one user asked once.
        assert!(refused(vec![
            claimed(&bob, &bob_ik),
            claimed(&bob, &bob_ik)
        ]));
        // A user not asked for, here one on another server.
        let alice = user("@alice:c.example");
        assert!(refused(vec![claimed(&alice, &IdentityKey::generate())]));
        // Bob's entry with carol's registration.
        let mut swapped = claimed(&bob, &bob_ik);
        swapped.registration = registration(&carol, &carol_ik);
        assert!(refused(vec![swapped]));
        // A topic key certificate signed by another key than the registration's.
        let mut wrong_signer = claimed(&bob, &bob_ik);
        wrong_signer.topic_key_cert = claimed(&bob, &carol_ik).topic_key_cert;
        assert!(refused(vec![wrong_signer]));
        // A certificate of carol's in bob's entry, both signed by one key.
        let shared = IdentityKey::generate();
        let mut other_user = claimed(&bob, &shared);
        other_user.topic_key_cert = claimed(&carol, &shared).topic_key_cert;
        assert!(refused(vec![other_user]));
        // Asked twice: two keys are fine.
        check_claimed(
            &b,
            &[bob.clone(), bob.clone()],
            vec![claimed(&bob, &bob_ik), claimed(&bob, &bob_ik)],
        )
        .unwrap();
    }

    #[test]
    fn query_errors_map_to_client_codes() {
        let api = |e: QueryError| ApiError::from(e).code;
        let s = || "b.example".to_owned();
        assert_eq!(
            api(QueryError::Unreachable {
                server: s(),
                reason: "down".into()
            }),
            ErrorCode::Unavailable
        );
        let refused = |status: u16, code: &str| QueryError::Refused {
            server: s(),
            status,
            code: code.into(),
            message: String::new(),
        };
        assert_eq!(api(refused(404, "not_found")), ErrorCode::NotFound);
        assert_eq!(api(refused(404, "")), ErrorCode::NotFound);
        assert_eq!(api(refused(400, "too_large")), ErrorCode::TooLarge);
        assert_eq!(api(refused(403, "forbidden")), ErrorCode::Forbidden);
        assert_eq!(api(refused(401, "unauthorized")), ErrorCode::Forbidden);
        assert_eq!(api(refused(400, "no_such_code")), ErrorCode::Invalid);
        assert_eq!(api(refused(400, "internal")), ErrorCode::Invalid);
        assert_eq!(
            api(QueryError::Invalid {
                server: s(),
                reason: "lies".into()
            }),
            ErrorCode::BadGateway
        );
    }

    #[test]
    fn the_client_is_shareable() {
        fn shareable<T: Clone + Send + Sync>() {}
        shareable::<FederationClient>();
        assert_eq!(encode_segment("@bob:b.example"), "%40bob%3Ab.example");
    }
}

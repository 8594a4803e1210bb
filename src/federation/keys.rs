//! Server key documents on the homeserver (`federation-api.md` §2): our own, served at
//! `GET /_rdv/federation/v1/server-keys`, and our peers', fetched over mutual TLS and cached.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::future::LocalBoxFuture;

use super::client::{FederationClient, QueryError};
use super::discovery::DiscoveryError;

use crate::net::{OutboundPolicy, ResolveError};

use crate::store::{Store, StoreError};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::{ServerKeyEntry, ServerKeys};
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::tlog::host_keys::MAX_HOST_KEYS;
use rendezvous_protocol::tlog::{KeyRotation, SignedRotation};
use rendezvous_protocol::wire::{Signed, Verified, decode, encode};
use serde_bytes::ByteBuf;

/// How long ahead of now our current key is announced as valid (peers cache at most this).
pub const KEY_VALIDITY_SECS: u64 = 7 * 24 * 3600;
/// Default federation port (`federation-api.md` §1).
pub const DEFAULT_PORT: u16 = 8448;
/// Path of the key document.
pub const SERVER_KEYS_PATH: &str = "/_rdv/federation/v1/server-keys";

/// `meta` key: `u64be` time our current Server Key was first announced.
const META_VALID_FROM: &str = "federation.key_valid_from";
/// `meta` key: CBOR list of retired [`ServerKeyEntry`]s, oldest first. A rotation moves the
/// current key here with `valid_until` = the rotation time, and starts a new `valid_from`.
const META_OLD_KEYS: &str = "federation.old_keys";

/// This server's key document, signed now: the retired keys kept in the store, then the current
/// key, valid from its first announcement until [`KEY_VALIDITY_SECS`] after `now`.
pub fn own_server_keys(
    store: &Store,
    server: &ServerName,
    key: &ServerKey,
    now: u64,
) -> Result<Verified<ServerKeys>, StoreError> {
    let valid_from = match store.meta(META_VALID_FROM)? {
        Some(v) => <[u8; 8]>::try_from(v.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt { table: "meta" })?,
        None => {
            store.set_meta(META_VALID_FROM, &now.to_be_bytes())?;
            now
        }
    };
    let old = retired_keys(store)?;
    Ok(ServerKeys::sign(
        server.clone(),
        old,
        store.rotations(server)?,
        key,
        valid_from,
        now.saturating_add(KEY_VALIDITY_SECS),
    ))
}

fn retired_keys(store: &Store) -> Result<Vec<ServerKeyEntry>, StoreError> {
    match store.meta(META_OLD_KEYS)? {
        Some(v) => decode(&v, v.len()).map_err(|_| StoreError::Corrupt { table: "meta" }),
        None => Ok(Vec::new()),
    }
}

/// Records the rotation of this server's key from `old` to `new` at `now`, in one store batch:
/// the statement signed by both keys, `old` retired with `valid_until` = `now + 1` (exclusive,
/// so valid through the second of the rotation; at least `valid_from + 1`), and `new`'s
/// `valid_from` = `now`. The caller puts `new` in place as `server.key` afterwards.
pub fn record_rotation(
    store: &Store,
    server: &ServerName,
    old: &ServerKey,
    new: &ServerKey,
    now: u64,
) -> Result<SignedRotation, StoreError> {
    let valid_from = match store.meta(META_VALID_FROM)? {
        Some(v) => <[u8; 8]>::try_from(v.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt { table: "meta" })?,
        None => now,
    };
    let mut old_keys = retired_keys(store)?;
    old_keys.push(ServerKeyEntry {
        key: old.public().clone(),
        valid_from,
        // Exclusive: the old key stays valid through the second of the rotation (events it
        // signed in that second, still queued, verify), and a period is never empty.
        valid_until: now.saturating_add(1).max(valid_from.saturating_add(1)),
    });
    let mut list = store.rotations(server)?;
    // A key document carries at most this many rotations, a chain that many keys
    // (`tag-log.md` §7.6): one more would make peers refuse the document.
    let limit = (MAX_HOST_KEYS - 1) as u64;
    if list.len() as u64 >= limit {
        return Err(StoreError::TooMany {
            limit,
            stored: list.len() as u64,
            adding: 1,
        });
    }
    let last = list.last().map_or(0, |r| r.rotation().time);
    let statement = KeyRotation::sign(server.as_str(), old, new, now.max(last));
    list.push(statement.clone());
    let wires: Vec<ByteBuf> = list.iter().map(|r| ByteBuf::from(r.to_wire())).collect();
    let started = now.max(last).to_be_bytes();
    store.set_metas(&[
        (META_OLD_KEYS, &encode(&old_keys)),
        (crate::store::META_ROTATIONS, &encode(&wires)),
        (META_VALID_FROM, &started),
    ])?;
    Ok(statement)
}

/// Why a peer's keys could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerKeysError {
    /// This server does not contact the peer: the allow and deny lists, or its addresses
    /// (`federation-api.md` §7.1).
    #[error("{server} is not contacted: {reason}")]
    Forbidden {
        /// The peer.
        server: ServerName,
        /// Why.
        reason: String,
    },
    /// The peer could not be reached or answered with an error.
    #[error("fetching {server}'s keys: {reason}")]
    Unreachable {
        /// The peer.
        server: ServerName,
        /// What went wrong.
        reason: String,
    },
    /// The document did not check (`ServerKeys::check`).
    #[error("{server}'s key document is invalid: {reason}")]
    Invalid {
        /// The peer.
        server: ServerName,
        /// What is wrong.
        reason: String,
    },
}

/// The source of peers' Server Keys.
pub trait PeerKeys: Send + Sync {
    /// `server`'s checked key document, cached or fetched. `refresh` asks for a fresh copy (a
    /// key may have rotated); implementations may rate-limit it.
    fn server_keys<'a>(
        &'a self,
        server: &'a ServerName,
        refresh: bool,
    ) -> LocalBoxFuture<'a, Result<Arc<ServerKeys>, PeerKeysError>>;

    /// When the document [`Self::server_keys`] holds for `server` was fetched (Unix seconds),
    /// if it keeps one: a signature made after it may be under a key rotated to since, which
    /// only a later fetch can show.
    fn fetched_at(&self, _server: &ServerName) -> Option<u64> {
        None
    }
}

/// A shared source serves the listener and the topic sink alike.
impl<T: PeerKeys + ?Sized> PeerKeys for Arc<T> {
    fn server_keys<'a>(
        &'a self,
        server: &'a ServerName,
        refresh: bool,
    ) -> LocalBoxFuture<'a, Result<Arc<ServerKeys>, PeerKeysError>> {
        (**self).server_keys(server, refresh)
    }

    fn fetched_at(&self, server: &ServerName) -> Option<u64> {
        (**self).fetched_at(server)
    }
}

/// Finds the socket addresses of a server name (discovery, `federation-api.md` §7), each
/// checked against the [`OutboundPolicy`] (§7.1).
pub type PeerResolver = Arc<
    dyn Fn(ServerName) -> LocalBoxFuture<'static, Result<Vec<SocketAddr>, ResolveError>>
        + Send
        + Sync,
>;

/// A resolver from static overrides (`[federation.overrides]`, name → `host:port`), falling back
/// to the system's resolver for the host on the name's port or 8448, its addresses checked
/// against `policy`. A stand-in for tests; the server resolves with [`discovery_resolver`].
pub fn static_resolver(
    overrides: BTreeMap<String, String>,
    policy: OutboundPolicy,
) -> PeerResolver {
    let overrides = Arc::new(overrides);
    Arc::new(move |server: ServerName| {
        let target = overrides.get(server.as_str()).cloned().unwrap_or_else(|| {
            format!(
                "{}:{}",
                server.host(),
                server.port().unwrap_or(DEFAULT_PORT)
            )
        });
        let policy = policy.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target.as_str())
                .await
                .map_err(|e| ResolveError::Failed {
                    name: target.clone(),
                    detail: e.to_string(),
                })?
                .collect();
            policy.check_all(&addrs)?;
            Ok(addrs)
        })
    })
}

/// A resolver backed by DNS discovery (`federation-api.md` §7), addresses in discovery's order,
/// every one checked against `policy` before the first connection (§7.1): one refused address
/// refuses the server.
pub fn discovery_resolver(
    discovery: Arc<crate::federation::discovery::Discovery>,
    policy: OutboundPolicy,
) -> PeerResolver {
    Arc::new(move |server: ServerName| {
        let (discovery, policy) = (discovery.clone(), policy.clone());
        Box::pin(async move {
            let addrs = discovery
                .resolve(&server)
                .await
                .map_err(|e| match e {
                    DiscoveryError::NotFound { name } => ResolveError::NotFound(name),
                    e => ResolveError::Failed {
                        name: server.to_string(),
                        detail: e.to_string(),
                    },
                })?
                .into_iter()
                .map(|e| e.addr)
                .collect::<Vec<_>>();
            policy.check_all(&addrs)?;
            Ok(addrs)
        })
    })
}

struct Cached {
    keys: Arc<ServerKeys>,
    fetched: u64,
    expires: u64,
}

/// Least time between two forced refreshes of one peer's keys, seconds.
pub const MIN_REFRESH_SECS: u64 = 2;
/// Largest key document accepted.
const MAX_DOCUMENT_LEN: usize = 64 * 1024;

/// [`PeerKeys`] over HTTPS: `GET https://<peer>/_rdv/federation/v1/server-keys` with our client
/// certificate, the peer's certificate checked for its name; cached until the newest key's
/// `valid_until` (at most [`KEY_VALIDITY_SECS`]).
pub struct HttpPeerKeys {
    client: FederationClient,
    now: Arc<dyn Fn() -> u64 + Send + Sync>,
    cache: Mutex<HashMap<ServerName, Cached>>,
}

impl std::fmt::Debug for HttpPeerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPeerKeys").finish_non_exhaustive()
    }
}

impl HttpPeerKeys {
    /// Fetches with `tls` (our client certificate, the federation roots), finding peers with
    /// `resolve`.
    pub fn new(tls: Arc<rustls::ClientConfig>, resolve: PeerResolver) -> Self {
        HttpPeerKeys {
            client: FederationClient::new(tls, resolve),
            now: Arc::new(crate::state::now),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches with `client` (shared with the server's queries: one mutual-TLS client, one
    /// discovery cache, one peer policy).
    pub fn with_client(client: FederationClient) -> Self {
        HttpPeerKeys {
            client,
            now: Arc::new(crate::state::now),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches only from servers `policy` admits.
    pub fn with_policy(mut self, policy: crate::federation::peer::PeerPolicy) -> Self {
        self.client = self.client.with_policy(policy);
        self
    }

    fn cached(&self, server: &ServerName) -> Option<(Arc<ServerKeys>, u64, u64)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(server)
            .map(|c| (c.keys.clone(), c.fetched, c.expires))
    }

    async fn fetch(&self, server: &ServerName) -> Result<Arc<ServerKeys>, PeerKeysError> {
        // federation-api.md §2: `server-keys` needs no origin, only a certificate that chains.
        let body = self
            .client
            .get(server, SERVER_KEYS_PATH, MAX_DOCUMENT_LEN)
            .await
            .map_err(|e| match e {
                QueryError::Invalid { server, reason } => PeerKeysError::Invalid { server, reason },
                QueryError::NotContacted { server, reason } => {
                    PeerKeysError::Forbidden { server, reason }
                }
                e => PeerKeysError::Unreachable {
                    server: server.clone(),
                    reason: e.to_string(),
                },
            })?;
        let invalid = |reason: String| PeerKeysError::Invalid {
            server: server.clone(),
            reason,
        };
        let signed = Signed::<ServerKeys>::from_wire(&body).map_err(|e| invalid(e.to_string()))?;
        // federation-api.md §2: names the server asked, signed by its newest key; the TLS
        // connection authenticated that name.
        let doc = ServerKeys::check(signed, server).map_err(|e| invalid(e.to_string()))?;
        let keys = Arc::new(doc.value().clone());
        let now = (self.now)();
        let newest_until = keys.keys.last().map_or(now, |k| k.valid_until);
        let expires = newest_until.min(now.saturating_add(KEY_VALIDITY_SECS));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            server.clone(),
            Cached {
                keys: keys.clone(),
                fetched: now,
                expires,
            },
        );
        Ok(keys)
    }
}

impl PeerKeys for HttpPeerKeys {
    fn fetched_at(&self, server: &ServerName) -> Option<u64> {
        self.cached(server).map(|(_, fetched, _)| fetched)
    }

    fn server_keys<'a>(
        &'a self,
        server: &'a ServerName,
        refresh: bool,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<ServerKeys>, PeerKeysError>> + 'a>> {
        Box::pin(async move {
            let now = (self.now)();
            if let Some((keys, fetched, expires)) = self.cached(server) {
                let fresh = now < expires;
                let recent = now < fetched.saturating_add(MIN_REFRESH_SECS);
                if (fresh && !refresh) || (refresh && recent) {
                    return Ok(keys);
                }
            }
            self.fetch(server).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_document_keeps_its_start_and_checks() {
        let store = Store::temporary().unwrap();
        let name: ServerName = "a.example".parse().unwrap();
        let key = ServerKey::generate();
        let first = own_server_keys(&store, &name, &key, 1000).unwrap();
        let later = own_server_keys(&store, &name, &key, 5000).unwrap();
        let back = ServerKeys::check(Signed::from_wire(&later.to_wire()).unwrap(), &name).unwrap();
        assert_eq!(first.keys[0].valid_from, 1000);
        assert_eq!(back.keys.len(), 1);
        assert_eq!(back.keys[0].valid_from, 1000);
        assert_eq!(back.keys[0].valid_until, 5000 + KEY_VALIDITY_SECS);
        assert_eq!(back.valid_at(2000), vec![key.public().clone()]);
        assert!(back.rotations.is_empty());
    }

    #[test]
    fn a_rotation_retires_the_old_key_and_chains_the_new_one() {
        let store = Store::temporary().unwrap();
        let name: ServerName = "a.example".parse().unwrap();
        let (k0, k1, k2) = (
            ServerKey::generate(),
            ServerKey::generate(),
            ServerKey::generate(),
        );
        own_server_keys(&store, &name, &k0, 1000).unwrap();
        record_rotation(&store, &name, &k0, &k1, 2000).unwrap();
        // Two rotations in one second still make a valid document.
        record_rotation(&store, &name, &k1, &k2, 2000).unwrap();
        let doc = own_server_keys(&store, &name, &k2, 3000).unwrap();
        let back = ServerKeys::check(Signed::from_wire(&doc.to_wire()).unwrap(), &name).unwrap();
        // Retired keys stay in the document, before the current one, for old events.
        assert_eq!(back.valid_at(1500), vec![k0.public().clone()]);
        assert_eq!(back.keys.last().unwrap().key, *k2.public());
        assert_eq!(back.keys.last().unwrap().valid_from, 2000);
        assert_eq!(back.rotations.len(), 2);
        // Whoever pinned k0 follows the chain to k2; whoever meets the document first pins
        // the chain back to k0.
        let mut pinned = rendezvous_protocol::tlog::HostKeys::new("a.example", k0.public().clone());
        assert!(pinned.learn(&back.rotations).unwrap());
        assert_eq!(pinned.current(), k2.public());
        assert_eq!(back.host_keys().unwrap(), pinned);
    }

    #[test]
    fn rotations_stop_where_a_key_document_would_be_refused() {
        let store = Store::temporary().unwrap();
        let name: ServerName = "a.example".parse().unwrap();
        let mut key = ServerKey::generate();
        for i in 0..MAX_HOST_KEYS - 1 {
            let next = ServerKey::generate();
            record_rotation(&store, &name, &key, &next, 1000 + i as u64).unwrap();
            key = next;
        }
        let refused = record_rotation(&store, &name, &key, &ServerKey::generate(), 5000);
        assert!(
            matches!(refused, Err(StoreError::TooMany { .. })),
            "{refused:?}"
        );
        // The document with the most rotations allowed still decodes and chains.
        let doc = own_server_keys(&store, &name, &key, 6000).unwrap();
        let back = ServerKeys::check(Signed::from_wire(&doc.to_wire()).unwrap(), &name).unwrap();
        assert_eq!(back.host_keys().unwrap().keys().count(), MAX_HOST_KEYS);
    }
}

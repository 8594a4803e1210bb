//! The state every handler gets (`web::Data<AppState>`), and the caller of an authenticated
//! request.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::directory::DirectoryLog;
use crate::error::ApiError;
use crate::federation::{Federation, FederationOff};
use crate::identity::ServerIdentity;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::push::PushHub;
use crate::store::Store;
use crate::topics::{Deliver, Publish, Relay, ServerSigner, TopicService};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::{DeviceId, ServerName, UserId};

use crate::clock::Clock;
pub use crate::clock::now;

/// Shared server state. No globals: everything a handler needs is here.
///
/// Built by [`AppState::new`]; the topic service, federation, metrics and the login cache are
/// reached through accessors.
pub struct AppState {
    /// Configuration.
    config: Config,
    /// This server's name.
    server_name: ServerName,
    /// Keys, certificate, admin token.
    identity: Arc<ServerIdentity>,
    /// Storage.
    store: Store,
    /// Connected devices and wake-ups.
    push: Arc<PushHub>,
    /// Prometheus metrics.
    metrics: Metrics,
    /// Recently checked tokens, so a busy device is not looked up in the store on every request.
    auth_cache: AuthCache,
    /// Every topic hosted or mirrored here, and the append path.
    topics: Arc<TopicService>,
    /// Federation (discovery, peer policy, mutual-TLS client, peer keys, outbound queues);
    /// `None` when `federation.enabled` is false.
    federation: Option<Arc<Federation>>,
    /// What checkpoints, cosignatures and federation events are dated and checked by.
    clock: Clock,
    /// Rate limits (kept across a rebuild of the state after a storage fault).
    limits: Arc<Limits>,
    /// This server's identity directory (`directory.md`).
    directory: Arc<DirectoryLog>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("server_name", &self.server_name)
            .field("federation", &self.federation.is_some())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state of server `config.server_name`: `federation` is `None` when it is off. The
    /// topic service is built here, reaching devices through `push` and other servers through
    /// `federation`.
    pub fn new(
        config: Config,
        identity: Arc<ServerIdentity>,
        store: Store,
        push: Arc<PushHub>,
        federation: Option<Arc<Federation>>,
        clock: Clock,
        limits: Arc<Limits>,
    ) -> Self {
        let server_name = config.server_name.clone();
        let relay = federation.clone().map(|f| f as Arc<dyn Relay>);
        let topics = Arc::new(TopicService::new(
            server_name.clone(),
            store.clone(),
            identity.clone(),
            push.clone(),
            relay,
            clock.clone(),
        ));
        let directory = Arc::new(DirectoryLog::new(store.clone(), server_name.clone()));
        AppState {
            directory,
            config,
            server_name,
            identity,
            store,
            push,
            metrics: Metrics::default(),
            auth_cache: AuthCache::default(),
            topics,
            federation,
            clock,
            limits,
        }
    }

    /// This server's identity directory.
    pub fn directory(&self) -> &Arc<DirectoryLog> {
        &self.directory
    }

    /// A local user's `identity-response` for a client holding a checkpoint of size `known`
    /// (`directory.md` §4): the one answer of the client endpoint and the federation query.
    pub async fn local_identity(
        &self,
        user: &rendezvous_protocol::ids::UserId,
        known: u64,
    ) -> crate::directory::DirectoryResult<rendezvous_protocol::api::IdentityResponse> {
        self.directory
            .identity(
                &self.identity().server_key,
                self.clock().now(),
                user,
                known,
                self.config().federation.directory_witness_secs,
            )
            .await
    }

    /// Rate limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Passes a store result on, noting a quota refusal of `user` for `GET /admin/status`.
    pub fn quota<T>(
        &self,
        user: &UserId,
        result: Result<T, crate::store::StoreError>,
    ) -> Result<T, crate::store::StoreError> {
        if let Err(crate::store::StoreError::Quota { quota, limit }) = &result {
            tracing::info!(%user, quota, limit, "quota reached");
            self.limits.quota_refused(quota, user.as_str());
        }
        result
    }

    /// Refuses a write while the data directory's file system is below
    /// `storage.min_free_bytes`, before the database meets a full disk (`architecture.md`
    /// §5.1): `503 unavailable`. Reads go on.
    pub fn refuse_writes_if_low_on_space(&self) -> Result<(), ApiError> {
        let min = self.config.storage.min_free_bytes;
        match self.store.free_bytes() {
            Some(free) if free < min => {
                tracing::warn!(free, min, "storage almost full: refusing writes");
                Err(ApiError::new(
                    rendezvous_protocol::api::ErrorCode::Unavailable,
                    "the server's storage is full; try again later",
                ))
            }
            _ => Ok(()),
        }
    }

    /// The clock the protocol's times are read from: checkpoints and their freshness,
    /// cosignatures, federation events (the machine's, unless a test moves it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The configuration the server started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This server's name.
    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }

    /// Keys, certificate, admin token.
    pub fn identity(&self) -> &Arc<ServerIdentity> {
        &self.identity
    }

    /// Storage.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Connected devices and wake-ups.
    pub fn push(&self) -> &Arc<PushHub> {
        &self.push
    }

    /// Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The topic service.
    pub fn topics(&self) -> &Arc<TopicService> {
        &self.topics
    }

    /// Federation, if it is enabled.
    pub fn federation(&self) -> Option<&Arc<Federation>> {
        self.federation.as_ref()
    }

    /// Federation, or [`FederationOff`] (answered `invalid` everywhere, `client-api.md` §1.1).
    pub fn federation_or_off(&self) -> Result<&Arc<Federation>, FederationOff> {
        self.federation.as_ref().ok_or(FederationOff)
    }
}

/// The topic service signs with the server's identity.
impl ServerSigner for ServerIdentity {
    fn server_key(&self) -> &ServerKey {
        &self.server_key
    }
}

/// Durable entries reach devices through the push hub.
impl Deliver for PushHub {
    fn deliver(&self, store: &Store, publish: &Publish) {
        self.publish(store, publish);
    }
}

/// Tokens checked in the last [`AUTH_CACHE_SECS`] seconds, by hash. Revoking a device or
/// disabling a user removes their entries at once, so the cache never outlives a lock-out.
///
/// A check that read the store before a revocation and finishes after it must not put its
/// now stale login back: every removal bumps the generation under the lock, and a check caches
/// its result only if the generation is the one it saw before it read the store.
#[derive(Debug, Default)]
pub struct AuthCache(Mutex<CacheInner>);

#[derive(Debug, Default)]
struct CacheInner {
    logins: HashMap<[u8; 32], CachedLogin>,
    generation: u64,
}

/// A checked token: who it is, when it expires, when it was checked.
type CachedLogin = (Caller, u64, Instant);

/// How long a checked token is trusted without looking at the store again.
pub const AUTH_CACHE_SECS: u64 = 30;
/// Most cached tokens (the cache is cleared when it would grow past this).
const AUTH_CACHE_MAX: usize = 100_000;

impl AuthCache {
    fn lock(&self) -> MutexGuard<'_, CacheInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the logins `gone` selects, and makes checks begun before this one not cache.
    fn forget(&self, gone: impl Fn(&Caller) -> bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.logins.retain(|_, (c, _, _)| !gone(c));
    }

    /// A cached login of `hash` checked less than [`AUTH_CACHE_SECS`] ago, and the generation
    /// to pass to [`AuthCache::insert`] if there is none.
    fn get(&self, hash: &[u8; 32], now: u64) -> Result<Caller, u64> {
        let inner = self.lock();
        match inner.logins.get(hash) {
            Some((caller, expires, checked))
                if *expires > now && checked.elapsed().as_secs() < AUTH_CACHE_SECS =>
            {
                Ok(caller.clone())
            }
            _ => Err(inner.generation),
        }
    }

    /// Caches a login checked against the store since `generation` was read, unless a removal
    /// happened meanwhile.
    fn insert(&self, hash: [u8; 32], login: CachedLogin, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.logins.len() >= AUTH_CACHE_MAX {
            inner.logins.clear();
        }
        inner.logins.insert(hash, login);
    }
}

impl AppState {
    /// Forgets cached logins of a device (it was revoked).
    pub fn forget_device(&self, user: &UserId, device: &DeviceId) {
        self.auth_cache
            .forget(|c| c.user == *user && c.device == *device);
    }

    /// Forgets cached logins of a user (disabled or enabled by the operator).
    pub fn forget_user(&self, user: &UserId) {
        self.auth_cache.forget(|c| c.user == *user);
    }
}

/// `SHA-256(token)`: the only form in which tokens are stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The authenticated device of a request (`Authorization: Bearer <token>`).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The gate (`api::gate`) authenticated token endpoints before their body was read.
        if let Some(caller) = req.extensions().get::<Caller>() {
            return ready(Ok(caller.clone()));
        }
        ready(authenticate(req))
    }
}

/// Why a device request was not authenticated (`client-api.md` §2): `unauthorized`, or
/// `user_disabled` for an account the operator disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing bearer token")]
    MissingToken,
    /// An `Authorization` header of another scheme.
    #[error("expected 'Authorization: Bearer <token>'")]
    NotBearer,
    /// A token this server never issued or already forgot.
    #[error("unknown token")]
    UnknownToken,
    /// A token past its expiry.
    #[error("token expired")]
    Expired,
    /// The token's device was removed from its account.
    #[error("device removed")]
    DeviceRemoved,
    /// The token's user is gone.
    #[error("unknown user")]
    UnknownUser,
    /// The operator disabled the account.
    #[error("account disabled by the operator")]
    Disabled,
}

/// The request's `Authorization: Bearer <token>`: the one place that reads it (device tokens,
/// the admin and metrics tokens, link pickup tokens).
pub(crate) fn bearer(req: &HttpRequest) -> Result<&str, AuthError> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::MissingToken)?
        .strip_prefix("Bearer ")
        .ok_or(AuthError::NotBearer)
}

/// Checks the request's bearer token (through the login cache).
pub(crate) fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let unauthorized = |e: AuthError| ApiError::from(e);
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("app state", "missing"))?;
    let token = bearer(req).map_err(unauthorized)?;
    let hash = token_hash(token);
    let now = now();
    let generation = match state.auth_cache.get(&hash, now) {
        Ok(caller) => return Ok(caller),
        Err(generation) => generation,
    };
    let (user, device, expires) = state
        .store()
        .token(hash)?
        .ok_or_else(|| unauthorized(AuthError::UnknownToken))?;
    if expires <= now {
        return Err(unauthorized(AuthError::Expired));
    }
    if !state.store().device_active(&user, device)? {
        return Err(unauthorized(AuthError::DeviceRemoved));
    }
    match state.store().user(&user)? {
        Some(record) if record.disabled => {
            return Err(AuthError::Disabled.into());
        }
        Some(_) => {}
        None => return Err(unauthorized(AuthError::UnknownUser)),
    }
    // Best effort: a store that cannot take this write (a storage fault) must not stop reads.
    if let Err(e) = state.store().touch_device(&user, device, now) {
        tracing::warn!(error = %e, "recording a device's last use");
    }
    let caller = Caller { user, device };
    state
        .auth_cache
        .insert(hash, (caller.clone(), expires, Instant::now()), generation);
    Ok(caller)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{AuthCache, Caller};
    use rendezvous_protocol::ids::DeviceId;

    fn caller(n: u8) -> Caller {
        Caller {
            user: "@alice:localhost".parse().unwrap(),
            device: DeviceId::from_bytes([n; 32]),
        }
    }

    #[test]
    fn a_check_that_straddles_a_revocation_caches_nothing() {
        let cache = AuthCache::default();
        let now = 1_000;
        let login = |n| (caller(n), now + 60, std::time::Instant::now());
        // An ordinary check caches.
        let generation = cache.get(&[1; 32], now).unwrap_err();
        cache.insert([1; 32], login(1), generation);
        assert_eq!(cache.get(&[1; 32], now).unwrap().device, caller(1).device);
        // A check reads the store, the device is revoked, then the check finishes.
        let generation = cache.get(&[2; 32], now).unwrap_err();
        cache.forget(|c| c.device == caller(2).device);
        cache.insert([2; 32], login(2), generation);
        assert!(
            cache.get(&[2; 32], now).is_err(),
            "the revoked login was cached"
        );
        // Removal takes cached logins at once.
        cache.forget(|c| c.device == caller(1).device);
        assert!(cache.get(&[1; 32], now).is_err());
    }
}

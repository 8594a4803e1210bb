//! The state every handler gets (`web::Data<AppState>`), and the caller of an authenticated
//! request.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::ApiError;
use crate::federation::client::FederationClient;
use crate::federation::keys::HttpPeerKeys;
use crate::federation::outbound::Outbound;
use crate::identity::ServerIdentity;
use crate::metrics::Metrics;
use crate::push::PushHub;
use crate::store::Store;
use crate::topics::{AppendContext, TopicHost};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::ids::{ServerName, UserId};

/// Shared server state. No globals: everything a handler needs is here.
pub struct AppState {
    /// Configuration.
    pub config: Config,
    /// This server's name.
    pub server_name: ServerName,
    /// Keys, certificate, admin token.
    pub identity: ServerIdentity,
    /// Storage.
    pub store: Store,
    /// Hosted topics.
    pub topics: TopicHost,
    /// Connected devices and wake-ups.
    pub push: Arc<PushHub>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Recently checked tokens, so a busy device is not looked up in the store on every request.
    pub auth_cache: AuthCache,
    /// Outbound federation queues; `None` when `federation.enabled` is false.
    pub outbound: Option<Arc<Outbound>>,
    /// Queries to other servers (`federation-api.md` §5); `None` when `federation.enabled` is
    /// false.
    pub federation: Option<Arc<FederationClient>>,
    /// Other servers' key documents (cached); `None` when `federation.enabled` is false.
    pub peer_keys: Option<Arc<HttpPeerKeys>>,
    /// Posts submitted to other servers' topics, awaiting their entries.
    pub submits: crate::federation::topics::SubmitWaiters,
}

/// Tokens checked in the last [`AUTH_CACHE_SECS`] seconds, by hash. Revoking a device or
/// disabling a user removes their entries at once, so the cache never outlives a lock-out.
#[derive(Debug, Default)]
pub struct AuthCache(Mutex<HashMap<[u8; 32], CachedLogin>>);

/// A checked token: who it is, when it expires, when it was checked.
type CachedLogin = (Caller, u64, Instant);

/// How long a checked token is trusted without looking at the store again.
pub const AUTH_CACHE_SECS: u64 = 30;
/// Most cached tokens (the cache is cleared when it would grow past this).
const AUTH_CACHE_MAX: usize = 100_000;

impl AuthCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], CachedLogin>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AppState {
    /// Forgets cached logins of a device (it was revoked).
    pub fn forget_device(&self, user: &UserId, device: &[u8; 32]) {
        self.auth_cache
            .lock()
            .retain(|_, (c, _, _)| !(c.user == *user && c.device == *device));
    }

    /// Forgets cached logins of a user (disabled or enabled by the operator).
    pub fn forget_user(&self, user: &UserId) {
        self.auth_cache
            .lock()
            .retain(|_, (c, _, _)| c.user != *user);
    }

    /// What an append needs.
    pub fn append_context(&self) -> AppendContext<'_> {
        AppendContext {
            store: &self.store,
            server_name: &self.server_name,
            server_key: &self.identity.server_key,
            now: now(),
            outbound: self.outbound.as_deref(),
            remote_identities: None,
        }
    }
}

/// Now, Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    /// The device's public key bytes.
    pub device: [u8; 32],
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let unauthorized = |m: &str| ApiError::new(ErrorCode::Unauthorized, m);
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("app state", "missing"))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("missing bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthorized("expected 'Authorization: Bearer <token>'"))?;
    let hash = token_hash(token);
    let now = now();
    if let Some((caller, expires, checked)) = state.auth_cache.lock().get(&hash).cloned()
        && expires > now
        && checked.elapsed().as_secs() < AUTH_CACHE_SECS
    {
        return Ok(caller);
    }
    let (user, device, expires) = state
        .store
        .token(hash)?
        .ok_or_else(|| unauthorized("unknown token"))?;
    if expires <= now {
        return Err(unauthorized("token expired"));
    }
    if !state.store.device_active(&user, device)? {
        return Err(unauthorized("device removed"));
    }
    match state.store.user(&user)? {
        Some(record) if record.disabled => {
            return Err(ApiError::new(
                ErrorCode::UserDisabled,
                "account disabled by the operator",
            ));
        }
        Some(_) => {}
        None => return Err(unauthorized("unknown user")),
    }
    state.store.touch_device(&user, device, now)?;
    let caller = Caller { user, device };
    let mut cache = state.auth_cache.lock();
    if cache.len() >= AUTH_CACHE_MAX {
        cache.clear();
    }
    cache.insert(hash, (caller.clone(), expires, Instant::now()));
    Ok(caller)
}

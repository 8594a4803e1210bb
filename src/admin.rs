//! The admin endpoint (`client-api.md` §8): loopback only, plain HTTP, bearer admin token.
//! `rendezvous admin …` talks to it.

mod table;

pub use table::status_table;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiResult;
use crate::state::{AppState, now};
use rendezvous_protocol::crypto::DevicePublicKey;
use rendezvous_protocol::ids::UserId;

/// Why an admin request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No bearer token, or not the admin token.
    #[error("admin token required")]
    Unauthorized,
    /// No such local user.
    #[error("no user {0}")]
    NoSuchUser(UserId),
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/pins", web::post().to(new_pin))
        .route("/admin/users", web::get().to(users))
        .route("/admin/users/{user}/disable", web::post().to(disable))
        .route("/admin/users/{user}/enable", web::post().to(enable))
        .route("/admin/users/{user}/devices", web::get().to(devices))
        .route("/admin/status", web::get().to(status))
        .route("/metrics", web::get().to(metrics));
}

fn authorize(req: &HttpRequest, state: &AppState) -> ApiResult<()> {
    match bearer_is(req, &state.identity().admin_token) {
        true => Ok(()),
        false => Err(AdminError::Unauthorized.into()),
    }
}

/// Whether the request's bearer token is `token`.
fn bearer_is(req: &HttpRequest, token: &str) -> bool {
    let given = crate::state::bearer(req).unwrap_or("");
    // Compare hashes so the comparison's time says nothing about the token's length either.
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(token.as_bytes());
    bool::from(a.ct_eq(&b))
}

/// `GET /metrics` (`client-api.md` §8): the metrics token, or the admin token.
async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let identity = state.identity();
    if !bearer_is(&req, &identity.metrics_token) && !bearer_is(&req, &identity.admin_token) {
        return Err(AdminError::Unauthorized.into());
    }
    state
        .metrics()
        .connections
        .set(state.push().connected() as i64);
    state
        .metrics()
        .wakeup_queue
        .set(state.push().pending_wakeups() as i64);
    for ((class, scope), total) in state.limits().refused_totals() {
        let labels = crate::metrics::LimitedLabels {
            class: class.to_owned(),
            scope: scope.to_owned(),
        };
        let counter = state.metrics().limited.get_or_create(&labels);
        counter
            .inner()
            .store(total, std::sync::atomic::Ordering::Relaxed);
    }
    let storage = match storage_status(&state)["state"].as_str() {
        Some("faulted") => 2,
        Some("low_space") => 1,
        _ => 0,
    };
    state.metrics().storage_state.set(storage);
    let evidence = state
        .store()
        .directory_witnesses()?
        .iter()
        .filter(|(_, r)| r.evidence.is_some())
        .count();
    state
        .metrics()
        .directory_evidence
        .set(i64::try_from(evidence).unwrap_or(i64::MAX));
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics().encode()))
}

/// A new pin: 12 characters of base32 (60 bits), in groups of four.
fn make_pin() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes = rendezvous_protocol::crypto::random_array::<12>();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[(b & 31) as usize] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

async fn new_pin(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    authorize(&req, &state)?;
    let pin = make_pin();
    let expires = now() + state.config().limits.pin_lifetime_secs;
    let hash: [u8; 32] = Sha256::digest(pin.as_bytes()).into();
    state.store().add_pin(hash, expires)?;
    state.store().sync().await?;
    tracing::info!("registration pin issued");
    Ok(HttpResponse::Ok().json(json!({ "pin": pin, "expires": expires })))
}

async fn users(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    authorize(&req, &state)?;
    let mut out = Vec::new();
    for (user, record) in state.store().users()? {
        let devices = state.store().devices(&user)?.len();
        out.push(json!({
            "user": user.as_str(),
            "disabled": record.disabled,
            "created": record.created,
            "devices": devices,
        }));
    }
    Ok(HttpResponse::Ok().json(out))
}

async fn set_disabled(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    disabled: bool,
) -> ApiResult<HttpResponse> {
    authorize(&req, &state)?;
    let user: UserId = crate::api::parse("user", &path)?;
    if !state.store().set_disabled(&user, disabled)? {
        return Err(AdminError::NoSuchUser(user).into());
    }
    state.store().sync().await?;
    state.forget_user(&user);
    tracing::info!(%user, disabled, "user updated by the operator");
    Ok(HttpResponse::Ok().json(json!({ "user": user.as_str(), "disabled": disabled })))
}

async fn disable(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    set_disabled(req, path, state, true).await
}

async fn enable(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    set_disabled(req, path, state, false).await
}

async fn devices(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    authorize(&req, &state)?;
    let user: UserId = crate::api::parse("user", &path)?;
    if state.store().user(&user)?.is_none() {
        return Err(AdminError::NoSuchUser(user).into());
    }
    let out: Vec<_> = state
        .store()
        .devices(&user)?
        .into_iter()
        .map(|d| {
            // The key id, as `rdv device list` shows it and `rdv device remove` takes it.
            let id = DevicePublicKey::from_slice(d.device_key.as_bytes())
                .ok()
                .map(|k| k.key_id().to_hex());
            json!({
                "id": id,
                "device_key": d.device_key.to_string(),
                "created": d.created,
                "last_seen": d.last_seen,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn status(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    authorize(&req, &state)?;
    Ok(HttpResponse::Ok().json(json!({
        "server_name": state.server_name().as_str(),
        "version": env!("CARGO_PKG_VERSION"),
        "users": state.store().users()?.len(),
        "topics": state.store().topics()?.len(),
        "connections": state.push().connected(),
        "tls_fingerprint": state.identity().fingerprint(),
        "federation": federation_status(&state)?,
        "limits": {
            "window_secs": crate::limits::WINDOW_SECS,
            "limited": state.limits().limited(),
        },
        "storage": storage_status(&state),
        "directory": directory_status(&state)?,
    })))
}

/// This server's directory size, and each peer whose directory it witnesses: the size
/// witnessed, when it last cosigned, and the kind of evidence held against it
/// (`directory.md` §5).
fn directory_status(state: &AppState) -> ApiResult<serde_json::Value> {
    let mut peers = Vec::new();
    for (peer, record) in state.store().directory_witnesses()? {
        let size = record.note.as_deref().and_then(|n| {
            rendezvous_protocol::tlog::SignedCheckpoint::parse(n.as_bytes())
                .ok()
                .map(|c| c.unverified_checkpoint().size.0)
        });
        let evidence = record.evidence.as_deref().map(|e| {
            rendezvous_protocol::tlog::Evidence::from_cbor(e)
                .map(|e| e.kind().to_owned())
                .unwrap_or_else(|_| "undecodable evidence".into())
        });
        peers.push(json!({
            "peer": peer.as_str(),
            "size": size,
            "last_cosigned": record.cosigned,
            "evidence": evidence,
        }));
    }
    Ok(json!({ "size": state.store().directory_size()?, "peers": peers }))
}

/// The store's state (`architecture.md` §5.1): `ok`, `low_space` (writes over 1 KiB refused)
/// or `faulted` (writes refused until the database is reopened).
fn storage_status(state: &AppState) -> serde_json::Value {
    let store = state.store();
    let free = store.free_bytes();
    let fault = store.fault();
    let condition = match (&fault, free) {
        (Some(_), _) => "faulted",
        (None, Some(free)) if free < state.config().storage.min_free_bytes => "low_space",
        _ => "ok",
    };
    json!({ "state": condition, "free_bytes": free, "last_error": fault })
}

/// Federation at a glance: each peer's queue and backoff, and the mirrors stopped by evidence
/// against their hosting server (`federation-api.md` §8, §9.4).
fn federation_status(state: &AppState) -> ApiResult<serde_json::Value> {
    let Some(outbound) = state.federation().map(|f| f.outbound()) else {
        return Ok(json!({ "enabled": false }));
    };
    let now_ms = crate::state::now().saturating_mul(1000);
    let mut peers = Vec::new();
    for server in state.store().outbound_destinations()? {
        let backoff = outbound.backoff(&server)?;
        peers.push(json!({
            "server": server.as_str(),
            "queued": outbound.pending(&server)?,
            "failed_attempts": backoff.attempts,
            "next_attempt_in_ms": backoff.next_attempt_ms.saturating_sub(now_ms),
        }));
    }
    let mut stopped = Vec::new();
    for (topic, evidence) in state.store().stopped_mirrors()? {
        let reason =
            rendezvous_protocol::federation::topic_events::MirrorEvidence::from_wire(&evidence)
                .map(|e| e.reason)
                .unwrap_or_else(|_| "undecodable evidence".into());
        stopped.push(
            json!({ "topic": topic.as_str(), "host": topic.server().as_str(), "reason": reason }),
        );
    }
    Ok(json!({ "enabled": true, "peers": peers, "stopped_mirrors": stopped }))
}

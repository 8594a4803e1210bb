//! Queries answered to other homeservers (`federation-api.md` §5): a user's identity and topic
//! key claims, for users of this server only. No device data is ever answered.
//!
//! A query names no origin in its body, so the requesting server names itself in the
//! [`ORIGIN_HEADER`]; the connection's client certificate must be valid for that name
//! (`401 unauthorized`) and the allow and deny lists must let it in (`403 forbidden`), as for a
//! transaction's `origin` (§1).

use actix_web::{HttpRequest, HttpResponse, web};

use super::client::{CLAIM_TOPIC_KEYS_PATH, MAX_FEDERATION_CLAIMS, ORIGIN_HEADER, USERS_PATH};
use super::inbound::{EventSink, Inbound};
use super::keys::PeerKeys;
use super::peer::{self, PeerCertificate, PeerError, PeerPolicy};
use crate::claims::{check_distinct, claim_local_topic_keys, claimable};
use crate::error::ApiResult;
use crate::http::{RequestError, cbor_body, cbor_response, parse};
use crate::state::AppState;
use rendezvous_protocol::api::{ClaimTopicKeysRequest, ClaimTopicKeysResponse, MAX_BODY};
use rendezvous_protocol::ids::{ServerName, UserId};

/// Why a query from another server (`federation-api.md` §5) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryRefusal {
    /// The request does not name its origin in [`ORIGIN_HEADER`].
    #[error("a query must name its origin in {ORIGIN_HEADER}")]
    MissingOrigin,
    /// [`ORIGIN_HEADER`] is not a server name.
    #[error(transparent)]
    BadOrigin(RequestError),
    /// The connection's certificate or the allow and deny lists refuse the origin.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// A claim for no user or for more than [`MAX_FEDERATION_CLAIMS`].
    #[error("claim for 1 to {max} users, not {got}")]
    ClaimCount {
        /// [`MAX_FEDERATION_CLAIMS`].
        max: usize,
        /// Users in the claim.
        got: usize,
    },
    /// A claim for a user of another server (the whole claim is refused).
    #[error("{user} is not a user of {server}")]
    ForeignUser {
        /// The user.
        user: UserId,
        /// This server.
        server: ServerName,
    },
    /// No such user here: another server's, unknown or disabled.
    #[error("no user {0} here")]
    NoSuchUser(UserId),
}

/// Routes of the queries, on the federation listener.
pub fn configure<K: PeerKeys + 'static, S: EventSink + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.route(
        &format!("{USERS_PATH}/{{user}}/identity"),
        web::get().to(identity::<K, S>),
    )
    .route(
        CLAIM_TOPIC_KEYS_PATH,
        web::post().to(claim_topic_keys::<K, S>),
    );
}

/// The server a query comes from: named in [`ORIGIN_HEADER`], the connection's certificate
/// valid for it, and let in by the allow and deny lists (`federation-api.md` §1, §5).
pub fn authenticate(req: &HttpRequest, policy: &PeerPolicy) -> Result<ServerName, QueryRefusal> {
    let header = req
        .headers()
        .get(ORIGIN_HEADER)
        .ok_or(QueryRefusal::MissingOrigin)?;
    let origin: ServerName = header
        .to_str()
        .map_err(|e| RequestError::BadValue {
            what: ORIGIN_HEADER.to_owned(),
            reason: e.to_string(),
        })
        .and_then(|v| parse(ORIGIN_HEADER, v))
        .map_err(QueryRefusal::BadOrigin)?;
    peer::authenticate(req.conn_data::<PeerCertificate>(), &origin, policy)?;
    Ok(origin)
}

/// `known` of an identity query (`directory.md` §4).
#[derive(serde::Deserialize)]
struct KnownQuery {
    #[serde(default)]
    known: u64,
}

/// `GET /_rdv/federation/v1/users/{user}/identity?known=m` (`federation-api.md` §5,
/// `directory.md` §4): the IK-signed registration of a user of this server with its directory
/// proof against the served checkpoint; `404 not_found` for anyone else, disabled users
/// included.
async fn identity<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<KnownQuery>,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    super::gate::query_origin(&req, inbound.policy(), state.limits())?;
    let user: UserId = parse("user", &path)?;
    if user.server() != *state.server_name() {
        return Err(QueryRefusal::NoSuchUser(user).into());
    }
    Ok(cbor_response(
        &state.local_identity(&user, query.known).await?,
    ))
}

/// `POST /_rdv/federation/v1/topic-keys/claim` (`federation-api.md` §5): one topic key per
/// user of this server, each user listed once, under the peer's `federation.limits.claim` (a
/// cell per user listed); a one-time key while the per-victim limit (`limits.rate.claim_victim`)
/// allows, else the user's last-resort key (`claims`); durable before the answer.
async fn claim_topic_keys<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    // federation-api.md §1.1: the origin before any body byte is read.
    let origin = authenticate(&req, inbound.policy())?;
    super::gate::check_length(&req, MAX_BODY)?;
    let body = super::gate::read_body(payload, MAX_BODY).await?;
    let r: ClaimTopicKeysRequest = cbor_body(&req, &body)?;
    if r.users.is_empty() || r.users.len() > MAX_FEDERATION_CLAIMS {
        return Err(QueryRefusal::ClaimCount {
            max: MAX_FEDERATION_CLAIMS,
            got: r.users.len(),
        }
        .into());
    }
    // Checked before anything is claimed: the request fails as a whole. One cell per user
    // listed from the peer's `federation.limits.claim` first.
    let limits = state.limits();
    let cost = u32::try_from(r.users.len()).unwrap_or(u32::MAX);
    limits.federation_claim.check(origin.as_str(), cost)?;
    check_distinct(&r.users)?;
    if let Some(other) = r.users.iter().find(|u| u.server() != *state.server_name()) {
        return Err(QueryRefusal::ForeignUser {
            user: other.clone(),
            server: state.server_name().clone(),
        }
        .into());
    }
    let users = match claimable(state.store(), r.users)? {
        Ok(users) => users,
        Err(user) => return Err(QueryRefusal::NoSuchUser(user).into()),
    };
    // The same per-victim limit as the client API's: peers and local claimers together.
    let keys = claim_local_topic_keys(state.store(), users, |user| {
        limits.claim_victim.check(user.as_str(), 1).is_ok()
    })?;
    state.store().sync().await?;
    tracing::debug!(%origin, claimed = keys.len(), "topic keys claimed through federation");
    Ok(cbor_response(&ClaimTopicKeysResponse { keys }))
}

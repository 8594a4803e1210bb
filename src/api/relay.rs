//! The device link relay (`client-api.md` §5, `devices.md`): the server passes a joining
//! device's request and the old device's sealed response, and sees neither key nor content.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_bytes::ByteBuf;

use super::{cbor_body, cbor_response};
use crate::error::ApiResult;
use crate::state::{AppState, Caller};
use rendezvous_protocol::api::{Empty, LinkMessage, LinkOpenRequest, LinkPickup};
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::devices::link::{LinkError, LinkRequest, LinkResponse};
use rendezvous_protocol::ids::{DeviceId, UserId};

/// A relay slot lives ten minutes (on the server's clock, `AppState::clock`).
const LINK_SECS: u64 = 600;

/// Why a link relay request (`client-api.md` §5) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The path's link id is not 16 lower-case hex characters.
    #[error("link id: 16 lower-case hex characters, not {0:?}")]
    BadLinkId(String),
    /// No open, unexpired slot has this id.
    #[error("no open link with this id")]
    NoOpenLink,
    /// The slot was opened by another device than the caller.
    #[error("this link was opened by another device")]
    OpenedByAnotherDevice,
    /// The joining device has not put its request yet.
    #[error("no request yet")]
    NoRequestYet,
    /// The old device has not put its response yet (or it was taken), or the pickup token is
    /// not the one given to the joining device.
    #[error("no response yet for this pickup token")]
    NoResponseYet,
    /// The relayed request or response does not decode.
    #[error(transparent)]
    Undecodable(#[from] LinkError),
    /// The relayed request or response names another link than the path.
    #[error("the {what} is for another link")]
    ForAnotherLink {
        /// `request` or `response`.
        what: &'static str,
    },
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/link", web::post().to(open))
        .route("/v1/link/{id}/request", web::post().to(put_request))
        .route("/v1/link/{id}/request", web::get().to(get_request))
        .route("/v1/link/{id}/response", web::post().to(put_response))
        .route("/v1/link/{id}/response", web::get().to(get_response));
}

fn link_id(text: &str) -> Result<[u8; 8], RelayError> {
    let bad = || RelayError::BadLinkId(text.chars().take(32).collect());
    if text.len() != 16 {
        return Err(bad());
    }
    let mut id = [0u8; 8];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).map_err(|_| bad())?;
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        id[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(id)
}

async fn open(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: LinkOpenRequest = cbor_body(&req, &body)?;
    let quota = state.config().limits.quota.link_slots_per_user;
    let t = state.clock().now();
    let opened = state.store().link_open(
        r.link_id,
        &caller.user,
        caller.device,
        t + LINK_SECS,
        t,
        quota,
    );
    state.quota(&caller.user, opened)?;
    state.store().sync().await?;
    Ok(cbor_response(&Empty::default()))
}

/// The opener of a slot, if it is open and not expired.
fn opener(state: &AppState, id: [u8; 8]) -> ApiResult<(UserId, DeviceId, Option<Vec<u8>>)> {
    Ok(state
        .store()
        .link_request(id, state.clock().now())?
        .ok_or(RelayError::NoOpenLink)?)
}

/// The slot's opener must be the caller.
fn check_opener(user: &UserId, device: &DeviceId, caller: &Caller) -> Result<(), RelayError> {
    match *user == caller.user && *device == caller.device {
        true => Ok(()),
        false => Err(RelayError::OpenedByAnotherDevice),
    }
}

async fn put_request(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = link_id(&path)?;
    let r: LinkMessage = cbor_body(&req, &body)?;
    let request = LinkRequest::from_wire(&r.body).map_err(RelayError::from)?;
    if request.link_id != id {
        return Err(RelayError::ForAnotherLink { what: "request" }.into());
    }
    let pickup = rendezvous_protocol::crypto::random_array::<32>();
    let hash = crate::state::token_hash(&hex_string(&pickup));
    let now = state.clock().now();
    state.store().link_put_request(id, &r.body, hash, now)?;
    state.store().sync().await?;
    Ok(cbor_response(&LinkPickup { pickup }))
}

async fn get_request(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = link_id(&path)?;
    let (user, device, request) = opener(&state, id)?;
    check_opener(&user, &device, &caller)?;
    let request = request.ok_or(RelayError::NoRequestYet)?;
    Ok(cbor_response(&LinkMessage {
        body: ByteBuf::from(request),
    }))
}

async fn put_response(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = link_id(&path)?;
    let r: LinkMessage = cbor_body(&req, &body)?;
    let (user, device, _) = opener(&state, id)?;
    check_opener(&user, &device, &caller)?;
    let response = LinkResponse::from_wire(&r.body).map_err(RelayError::from)?;
    if response.link_id != id {
        return Err(RelayError::ForAnotherLink { what: "response" }.into());
    }
    state
        .store()
        .link_put_response(id, &r.body, state.clock().now())?;
    state.store().sync().await?;
    Ok(cbor_response(&Empty::default()))
}

/// The response, for the device that put the request: its pickup token as bearer token. A
/// missing or wrong one is the same `404` as no response yet, and the slot stays.
async fn get_response(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = link_id(&path)?;
    let pickup = crate::state::bearer(&req).unwrap_or("");
    let hash = crate::state::token_hash(pickup);
    let response = state
        .store()
        .link_take_response(id, hash, state.clock().now())?
        .ok_or(RelayError::NoResponseYet)?;
    state.store().sync().await?;
    Ok(cbor_response(&LinkMessage {
        body: ByteBuf::from(response),
    }))
}

//! The device link relay (`client-api.md` §5, `devices.md`): the server passes a joining
//! device's request and the old device's sealed response, and sees neither key nor content.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_bytes::ByteBuf;

use super::{cbor_body, cbor_response};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Caller, now};
use rendezvous_protocol::api::{Empty, ErrorCode, LinkMessage, LinkOpenRequest};
use rendezvous_protocol::devices::link::{LinkRequest, LinkResponse};

/// A relay slot lives ten minutes.
const LINK_SECS: u64 = 600;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/link", web::post().to(open))
        .route("/v1/link/{id}/request", web::post().to(put_request))
        .route("/v1/link/{id}/request", web::get().to(get_request))
        .route("/v1/link/{id}/response", web::post().to(put_response))
        .route("/v1/link/{id}/response", web::get().to(get_response));
}

fn link_id(text: &str) -> ApiResult<[u8; 8]> {
    let bad = || {
        ApiError::new(
            ErrorCode::Malformed,
            "link id: 16 lower-case hex characters",
        )
    };
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
    state
        .store
        .link_open(r.link_id, &caller.user, caller.device, now() + LINK_SECS)?;
    state.store.sync().await?;
    Ok(cbor_response(&Empty::default()))
}

/// The opener of a slot, if it is open and not expired.
fn opener(
    state: &AppState,
    id: [u8; 8],
) -> ApiResult<(rendezvous_protocol::ids::UserId, [u8; 32], Option<Vec<u8>>)> {
    state
        .store
        .link_request(id)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no open link with this id"))
}

async fn put_request(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = link_id(&path)?;
    let r: LinkMessage = cbor_body(&req, &body)?;
    let request = LinkRequest::from_wire(&r.body)
        .map_err(|e| ApiError::new(ErrorCode::Malformed, e.to_string()))?;
    if request.link_id != id {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "the request is for another link",
        ));
    }
    state.store.link_put_request(id, &r.body)?;
    state.store.sync().await?;
    Ok(cbor_response(&Empty::default()))
}

async fn get_request(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = link_id(&path)?;
    let (user, device, request) = opener(&state, id)?;
    if user != caller.user || device != caller.device {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this link was opened by another device",
        ));
    }
    let request = request.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no request yet"))?;
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
    if user != caller.user || device != caller.device {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this link was opened by another device",
        ));
    }
    let response = LinkResponse::from_wire(&r.body)
        .map_err(|e| ApiError::new(ErrorCode::Malformed, e.to_string()))?;
    if response.link_id != id {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "the response is for another link",
        ));
    }
    state.store.link_put_response(id, &r.body)?;
    state.store.sync().await?;
    Ok(cbor_response(&Empty::default()))
}

async fn get_response(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = link_id(&path)?;
    let response = state
        .store
        .link_take_response(id)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no response yet"))?;
    state.store.sync().await?;
    Ok(cbor_response(&LinkMessage {
        body: ByteBuf::from(response),
    }))
}

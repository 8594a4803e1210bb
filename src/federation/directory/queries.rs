//! The directory queries this server answers its peers (`directory.md` §5.1): its newest
//! checkpoint, consistency proofs, and witnesses' cosignatures. Authenticated and rate-limited
//! as every query (`federation-api.md` §5); bodies `application/cbor`, at most 8 KiB.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::DIRECTORY_PATH;
use crate::error::ApiResult;
use crate::federation::inbound::{EventSink, Inbound};
use crate::federation::keys::PeerKeys;
use crate::http::{cbor_body, cbor_response};
use crate::state::AppState;
use rendezvous_protocol::api::{
    Body, DirectoryCheckpointResponse, DirectoryCosignatureRequest, Empty, ProofResponse,
};

/// Routes of the directory queries, on the federation listener.
pub fn configure<K: PeerKeys + 'static, S: EventSink + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.route(
        &format!("{DIRECTORY_PATH}/checkpoint"),
        web::get().to(checkpoint::<K, S>),
    )
    .route(
        &format!("{DIRECTORY_PATH}/consistency"),
        web::get().to(consistency::<K, S>),
    )
    .route(
        &format!("{DIRECTORY_PATH}/cosignature"),
        web::post().to(cosignature::<K, S>),
    );
}

/// `GET …/directory/checkpoint`: the newest checkpoint, signed afresh if the log grew.
async fn checkpoint<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    crate::federation::gate::query_origin(&req, inbound.policy(), state.limits())?;
    let directory = state.directory();
    let now = state.clock().now();
    let newest = directory.newest(&state.identity().server_key, now).await?;
    let (_, witnessed) = directory.served(&state.identity().server_key, now).await?;
    Ok(cbor_response(&DirectoryCheckpointResponse {
        checkpoint: newest.to_note().to_string(),
        witnessed,
    }))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: u64,
}

/// `GET …/directory/consistency?old&new`.
async fn consistency<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    query: web::Query<ConsistencyQuery>,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    crate::federation::gate::query_origin(&req, inbound.policy(), state.limits())?;
    let path = state
        .directory()
        .consistency(
            &state.identity().server_key,
            state.clock().now(),
            query.old,
            query.new,
        )
        .await?;
    Ok(cbor_response(&ProofResponse {
        path: path.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect(),
    }))
}

/// `POST …/directory/cosignature`: the asking server's cosignature of the newest or the
/// served checkpoint, verified under the keys of its key document (`federation-api.md` §2).
async fn cosignature<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    // federation-api.md §1.1: the origin before any body byte is read.
    let origin = crate::federation::gate::query_origin(&req, inbound.policy(), state.limits())?;
    let cap = DirectoryCosignatureRequest::MAX_LEN;
    crate::federation::gate::check_length(&req, cap)?;
    let body = crate::federation::gate::read_body(payload, cap).await?;
    let r: DirectoryCosignatureRequest = cbor_body(&req, &body)?;
    let doc = inbound.peer_keys().server_keys(&origin, false).await?;
    let keys: Vec<_> = doc.keys.iter().map(|k| k.key.clone()).collect();
    state
        .directory()
        .accept_cosignature(&r.note, &origin, &keys)
        .await?;
    tracing::debug!(%origin, "directory cosignature kept");
    Ok(cbor_response(&Empty::default()))
}

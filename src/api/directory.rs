//! The directory's client endpoints (`directory.md` §4, `client-api.md` §2): this server's
//! served checkpoint, its entries, and consistency and inclusion proofs. The identity lookup
//! that carries a directory proof is `accounts::identity`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::cbor_response;
use crate::error::ApiResult;
use crate::state::{AppState, Caller};
use rendezvous_protocol::api::{
    DirectoryCheckpointResponse, DirectoryEntriesResponse, ProofResponse,
};
use rendezvous_protocol::tlog::LogHash;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/directory/checkpoint", web::get().to(checkpoint))
        .route("/v1/directory/entries", web::get().to(entries))
        .route("/v1/directory/consistency", web::get().to(consistency))
        .route("/v1/directory/proof", web::get().to(inclusion));
}

/// `[1, served note, witnessed]`.
async fn checkpoint(_caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let key = &state.identity().server_key;
    let (served, witnessed) = state.directory().served(key, state.clock().now()).await?;
    Ok(cbor_response(&DirectoryCheckpointResponse {
        checkpoint: served.to_note().to_string(),
        witnessed: state.federation().is_some() && witnessed,
    }))
}

#[derive(Deserialize)]
struct EntriesQuery {
    #[serde(default)]
    from: u64,
    limit: Option<u64>,
}

async fn entries(
    query: web::Query<EntriesQuery>,
    _caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let key = &state.identity().server_key;
    let entries = state
        .directory()
        .entries(key, state.clock().now(), query.from, query.limit)
        .await?;
    Ok(cbor_response(&DirectoryEntriesResponse {
        first: query.from,
        entries: entries.into_iter().map(ByteBuf::from).collect(),
    }))
}

/// `old` and `new` of a consistency proof.
#[derive(Deserialize)]
pub(crate) struct ConsistencyQuery {
    pub(crate) old: u64,
    pub(crate) new: u64,
}

async fn consistency(
    query: web::Query<ConsistencyQuery>,
    _caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let key = &state.identity().server_key;
    let path = state
        .directory()
        .consistency(key, state.clock().now(), query.old, query.new)
        .await?;
    Ok(proof_response(&path))
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

async fn inclusion(
    query: web::Query<InclusionQuery>,
    _caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let key = &state.identity().server_key;
    let path = state
        .directory()
        .inclusion(key, state.clock().now(), query.index, query.size)
        .await?;
    Ok(proof_response(&path))
}

/// `[1, [* bstr .size 32]]`.
pub(crate) fn proof_response(path: &[LogHash]) -> HttpResponse {
    cbor_response(&ProofResponse {
        path: path.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect(),
    })
}

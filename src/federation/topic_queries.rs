//! Topic queries answered to participating servers (`federation-api.md` §5): backfill of a
//! hosted topic's entries and its current checkpoint. Only servers with a member in the topic
//! may ask. An adapter over the topic service: authenticate, call it, answer.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::inbound::{EventSink, Inbound};
use super::keys::PeerKeys;
use super::topics::TOPICS_PATH;
use crate::error::ApiResult;
use crate::http::{cbor_response, parse};
use crate::state::AppState;
use rendezvous_protocol::api::CheckpointResponse;
use rendezvous_protocol::ids::TopicId;

/// Routes of the topic queries, on the federation listener.
pub fn configure<K: PeerKeys + 'static, S: EventSink + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.route(
        &format!("{TOPICS_PATH}/{{topic}}/entries"),
        web::get().to(entries::<K, S>),
    )
    .route(
        &format!("{TOPICS_PATH}/{{topic}}/checkpoint"),
        web::get().to(checkpoint::<K, S>),
    );
}

#[derive(Deserialize)]
struct EntriesQuery {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

/// The topic of the path, hosted here, when the authenticated origin has a member in it.
fn participant_topic<K: PeerKeys, S: EventSink>(
    req: &HttpRequest,
    path: &str,
    state: &AppState,
    inbound: &Inbound<K, S>,
) -> ApiResult<TopicId> {
    let origin = super::gate::query_origin(req, inbound.policy(), state.limits())?;
    let topic: TopicId = parse("topic", path)?;
    state.topics().participant(&topic, &origin)?;
    Ok(topic)
}

/// `GET /_rdv/federation/v1/topics/{topic}/entries?from&limit`: durable entries from `from`
/// (at most `limit` ≤ 1000 and about 1 MiB) with the checkpoint of their end: a
/// `topic-entries-response`, the `topic.entry` payload's fields with the version in front.
async fn entries<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<EntriesQuery>,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    let topic = participant_topic(&req, &path, &state, &inbound)?;
    let batch = state.topics().backfill(&topic, query.from, query.limit)?;
    Ok(HttpResponse::Ok()
        .content_type("application/cbor")
        .body(batch.to_backfill_wire()))
}

/// `GET /_rdv/federation/v1/topics/{topic}/checkpoint`: the current checkpoint, fresh
/// (re-signed when due, `tag-log.md` §9.4), with the cosignatures kept for it.
async fn checkpoint<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    let topic = participant_topic(&req, &path, &state, &inbound)?;
    let topics = state.topics();
    let head = topics.fresh_checkpoint(&topic).await?;
    let checkpoint = topics.with_cosignatures(&topic, head);
    Ok(cbor_response(&CheckpointResponse { checkpoint }))
}

//! Topic queries answered to participating servers (`federation-api.md` §5): backfill of a
//! hosted topic's entries and its current checkpoint. Only servers with a member in the topic
//! may ask.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::inbound::{EventSink, Inbound};
use super::keys::PeerKeys;
use super::queries::authenticate;
use super::topics::TOPICS_PATH;
use crate::api::{cbor_response, parse};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use rendezvous_protocol::api::{CheckpointResponse, ErrorCode};
use rendezvous_protocol::federation::topic_events::{
    ENTRY_BATCH_BYTES, EntryBatch, MAX_ENTRIES_PER_EVENT,
};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::LeafIndex;

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

/// The topic, hosted here, and `origin` a server with a member in it.
fn participant_topic(state: &AppState, path: &str, origin: &ServerName) -> ApiResult<TopicId> {
    let topic: TopicId = parse("topic", path)?;
    let not_found = || ApiError::new(ErrorCode::NotFound, format!("{topic} is not hosted here"));
    if topic.server() != state.server_name {
        return Err(not_found());
    }
    let s = state.topics.state(&state.store, &topic)?;
    if !s.members().values().any(|m| m.user.server() == *origin) {
        return Err(ApiError::new(
            ErrorCode::NotParticipant,
            format!("{origin} has no member in {topic}"),
        ));
    }
    Ok(topic)
}

#[derive(Deserialize)]
struct EntriesQuery {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

/// `GET /_rdv/federation/v1/topics/{topic}/entries?from&limit`: durable entries from `from`
/// (at most `limit` ≤ 1000 and about 1 MiB), as a `topic.entry` payload with the checkpoint of
/// their end.
async fn entries<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<EntriesQuery>,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    let origin = authenticate(&req, inbound.policy())?;
    let topic = participant_topic(&state, &path, &origin)?;
    let size = state.topics.durable_size(&state.store, &topic)?;
    if query.from >= size {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("the log has {size} entries"),
        ));
    }
    let limit = query
        .limit
        .unwrap_or(MAX_ENTRIES_PER_EVENT)
        .clamp(1, MAX_ENTRIES_PER_EVENT);
    // Durable entries only: the checkpoint of their end vouches for them.
    let durable = usize::try_from(size - query.from).unwrap_or(usize::MAX);
    let batch: Vec<ByteBuf> = state
        .store
        .entries(&topic, query.from, limit.min(durable), ENTRY_BATCH_BYTES)?
        .into_iter()
        .map(|(_, entry)| ByteBuf::from(entry))
        .collect();
    let end = query.from + batch.len() as u64;
    let checkpoint = state
        .topics
        .checkpoint_at(&state.append_context(), &topic, end)?;
    Ok(HttpResponse::Ok().content_type("application/cbor").body(
        EntryBatch {
            first: LeafIndex(query.from),
            entries: batch,
            checkpoint,
        }
        .to_wire(),
    ))
}

/// `GET /_rdv/federation/v1/topics/{topic}/checkpoint`: the current checkpoint.
async fn checkpoint<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    let origin = authenticate(&req, inbound.policy())?;
    let topic = participant_topic(&state, &path, &origin)?;
    let checkpoint = crate::api::topics::with_cosignatures(
        &state,
        &topic,
        state.topics.checkpoint(&state.append_context(), &topic)?,
    );
    Ok(cbor_response(&CheckpointResponse { checkpoint }))
}

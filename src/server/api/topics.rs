//! Topics: create, change, post, read, proofs, cursors and sync (`client-api.md` §6).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::keys::LOW_WATER;
use super::{cbor_body, cbor_response, parse, require_cbor};
use crate::api::{
    AppendResponse, CheckpointResponse, CursorRequest, Empty, EntriesResponse, ErrorCode,
    IndexedEntry, ProofResponse, SyncItem, SyncResponse, TopicSummary, TopicsResponse,
};
use crate::ids::TopicId;
use crate::message::MAX_MESSAGE_LEN;
use crate::server::error::{ApiError, ApiResult};
use crate::server::state::{AppState, Caller};
use crate::server::store::TopicNodes;
use crate::server::topics::Appended;
use crate::tlog::{LeafIndex, Tree, TreeSize};
use crate::topic::{MAX_CHANGE_LEN, TopicState};
use crate::wire::{VERSION, WireError};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/topics", web::post().to(create))
        .route("/v1/topics", web::get().to(list))
        .route("/v1/topics/{topic}/changes", web::post().to(change))
        .route("/v1/topics/{topic}/messages", web::post().to(post))
        .route("/v1/topics/{topic}/entries", web::get().to(entries))
        .route("/v1/topics/{topic}/checkpoint", web::get().to(checkpoint))
        .route(
            "/v1/topics/{topic}/proof/inclusion",
            web::get().to(inclusion),
        )
        .route(
            "/v1/topics/{topic}/proof/consistency",
            web::get().to(consistency),
        )
        .route("/v1/topics/{topic}/cursor", web::put().to(set_cursor))
        .route("/v1/sync", web::get().to(sync));
}

fn check_len(body: &[u8], limit: usize) -> ApiResult<()> {
    if body.len() > limit {
        return Err(WireError::TooLarge {
            limit,
            got: body.len(),
        }
        .into());
    }
    Ok(())
}

/// After an append: wait for durability, publish what became durable (in log order), and
/// answer with a checkpoint of the durable log, which includes the entry.
async fn finish(
    state: &web::Data<AppState>,
    topic: &TopicId,
    appended: Appended,
) -> ApiResult<HttpResponse> {
    // The entry is already written: its durability, publication and checkpoint must not depend on
    // this request staying alive (actix drops a handler whose client hung up), so they run as
    // their own task and the handler only waits for the answer.
    let (state, topic) = (state.clone(), topic.clone());
    let done = actix_web::rt::spawn(async move {
        state.store.sync().await?;
        let (publish, checkpoint) =
            state
                .topics
                .durable(&state.append_context(), &topic, appended)?;
        state.push.publish(&state.store, &publish);
        Ok::<_, ApiError>(checkpoint)
    });
    let checkpoint = done
        .await
        .map_err(|e| ApiError::internal("append completion", e))??;
    Ok(cbor_response(&AppendResponse {
        version: VERSION,
        index: appended.index,
        checkpoint,
    }))
}

async fn create(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    require_cbor(&req)?;
    check_len(&body, MAX_CHANGE_LEN + 128)?;
    let (topic, appended) = state
        .topics
        .create(&state.append_context(), &body, &caller.user)?;
    state.metrics.changes.inc();
    state.metrics.topics_created.inc();
    finish(&state, &topic, appended).await
}

async fn change(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    require_cbor(&req)?;
    check_len(&body, MAX_CHANGE_LEN + 128)?;
    let topic: TopicId = parse("topic", &path)?;
    let appended = state
        .topics
        .change(&state.append_context(), &topic, &body, &caller.user)?;
    state.metrics.changes.inc();
    finish(&state, &topic, appended).await
}

async fn post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let started = std::time::Instant::now();
    require_cbor(&req)?;
    check_len(&body, MAX_MESSAGE_LEN)?;
    let topic: TopicId = parse("topic", &path)?;
    let appended = state
        .topics
        .message(&state.append_context(), &topic, &body, &caller.user)?;
    state.metrics.messages.inc();
    let response = finish(&state, &topic, appended).await;
    state
        .metrics
        .latency
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The topic's state, if the caller's user is a current member.
fn member_state(state: &AppState, topic: &TopicId, caller: &Caller) -> ApiResult<TopicState> {
    let s = state.topics.state(&state.store, topic)?;
    if s.member_of(&caller.user).is_none() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "not a member of this topic",
        ));
    }
    Ok(s)
}

async fn list(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut topics = Vec::new();
    for (topic, role) in state.store.user_topics(&caller.user)? {
        let s = state.topics.state(&state.store, &topic)?;
        topics.push(TopicSummary {
            topic,
            size: s.size(),
            role,
            epoch: s.epoch(),
        });
    }
    Ok(cbor_response(&TopicsResponse {
        version: VERSION,
        topics,
    }))
}

#[derive(Deserialize)]
struct EntriesQuery {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

async fn entries(
    path: web::Path<String>,
    query: web::Query<EntriesQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let topic: TopicId = parse("topic", &path)?;
    member_state(&state, &topic, &caller)?;
    let limit = query
        .limit
        .unwrap_or(100)
        .clamp(1, state.config.limits.max_entries_per_request);
    let entries = state
        .store
        .entries(&topic, query.from, limit)?
        .into_iter()
        .map(|(index, entry)| IndexedEntry {
            index,
            entry: ByteBuf::from(entry),
        })
        .collect();
    Ok(cbor_response(&EntriesResponse {
        version: VERSION,
        entries,
    }))
}

async fn checkpoint(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let topic: TopicId = parse("topic", &path)?;
    member_state(&state, &topic, &caller)?;
    let checkpoint = state.topics.checkpoint(&state.append_context(), &topic)?;
    Ok(cbor_response(&CheckpointResponse {
        version: VERSION,
        checkpoint,
    }))
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

fn open_tree<'a>(
    state: &'a AppState,
    topic: &'a TopicId,
    size: u64,
) -> ApiResult<Tree<TopicNodes<'a>>> {
    Tree::open(TopicNodes::new(&state.store, topic), TreeSize(size))
        .map_err(|e| ApiError::internal("tag log", e))
}

async fn inclusion(
    path: web::Path<String>,
    query: web::Query<InclusionQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let topic: TopicId = parse("topic", &path)?;
    let s = member_state(&state, &topic, &caller)?;
    if query.size > s.size() || query.index >= query.size {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "need index < size <= log size",
        ));
    }
    let tree = open_tree(&state, &topic, s.size())?;
    let proof = tree
        .inclusion_proof(LeafIndex(query.index), TreeSize(query.size))
        .map_err(|e| ApiError::internal("inclusion proof", e))?;
    Ok(proof_response(&proof.path))
}

fn proof_response(path: &[crate::tlog::LogHash]) -> HttpResponse {
    cbor_response(&ProofResponse {
        version: VERSION,
        path: path.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect(),
    })
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: u64,
}

async fn consistency(
    path: web::Path<String>,
    query: web::Query<ConsistencyQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let topic: TopicId = parse("topic", &path)?;
    let s = member_state(&state, &topic, &caller)?;
    if query.new > s.size() || query.old == 0 || query.old > query.new {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "need 0 < old <= new <= log size",
        ));
    }
    let tree = open_tree(&state, &topic, s.size())?;
    let proof = tree
        .consistency_proof(TreeSize(query.old), TreeSize(query.new))
        .map_err(|e| ApiError::internal("consistency proof", e))?;
    Ok(proof_response(&proof.path))
}

async fn set_cursor(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let topic: TopicId = parse("topic", &path)?;
    let r: CursorRequest = cbor_body(&req, &body)?;
    let s = member_state(&state, &topic, &caller)?;
    if r.index > s.size() {
        return Err(ApiError::new(ErrorCode::Invalid, "cursor beyond the log"));
    }
    state
        .store
        .set_cursor(&caller.user, caller.device, &topic, r.index)?;
    state.store.sync().await?;
    Ok(cbor_response(&Empty::default()))
}

async fn sync(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut topics = Vec::new();
    for (topic, _) in state.store.user_topics(&caller.user)? {
        let size = state.store.topic_size(&topic)?.unwrap_or(0);
        let cursor = state.store.cursor(&caller.user, caller.device, &topic)?;
        topics.push(SyncItem {
            topic,
            size,
            cursor,
        });
    }
    let refill = state.store.prekey_count(&caller.user, caller.device)? < LOW_WATER
        || state.store.topic_key_count(&caller.user)? < LOW_WATER;
    Ok(cbor_response(&SyncResponse {
        version: VERSION,
        topics,
        refill,
    }))
}

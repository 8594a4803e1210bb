//! Topics: create, change, post, read, proofs, cursors and sync (`client-api.md` §6).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::{RequestError, cbor_body, cbor_response, parse, require_cbor};
use crate::error::{ApiError, ApiResult};
use crate::federation::keys::{PeerKeys, own_server_keys};
use crate::state::{AppState, Caller, now};
use crate::store::TopicNodes;
use crate::topics::{Appended, NewEntry, Submitted};
use rendezvous_protocol::api::{
    AppendResponse, CheckpointResponse, CursorRequest, Empty, EntriesResponse, IndexedEntry,
    MAX_REFUSAL_BYTES, MAX_REFUSALS, MirrorRefusal, ProofResponse, SyncItem, SyncResponse,
    TopicSummary, TopicsResponse, WitnessesResponse,
};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::message::{MAX_MESSAGE_LEN, MessageIn};
use rendezvous_protocol::tlog::{LeafIndex, Tree, TreeSize};
use rendezvous_protocol::topic::{MAX_CHANGE_LEN, Role, TopicChange, TopicState};
use rendezvous_protocol::wire::{Signed, WireError};

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
        .route("/v1/topics/{topic}/witnesses", web::get().to(witnesses))
        .route("/v1/servers/{server}/keys", web::get().to(server_keys))
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

/// Waits for the appended entry to be durable and answers with its index and a checkpoint
/// that includes it.
async fn finish(state: &AppState, topic: &TopicId, appended: Appended) -> ApiResult<HttpResponse> {
    let checkpoint = state.topics().complete(topic, appended).await?;
    Ok(cbor_response(&AppendResponse {
        index: LeafIndex(appended.index),
        checkpoint,
    }))
}

/// Most entry bytes in one `entries` answer (always at least one entry, of at most
/// `MAX_CHANGE_LEN`): well under what devices accept (`EntriesResponse::MAX_LEN`).
const MAX_ENTRIES_BYTES: usize = 16 * 1024 * 1024;

/// A post or change to a topic hosted by another server (`federation-api.md` §9.3): answered
/// with the entry once it is back, or `202` while it is queued.
async fn submit_remote(
    state: &AppState,
    topic: &TopicId,
    entry: NewEntry,
    caller: &Caller,
) -> ApiResult<HttpResponse> {
    let submitted = state
        .topics()
        .submit_remote(topic, entry, &caller.user)
        .await?;
    match submitted {
        Submitted::Landed { index, checkpoint } => Ok(cbor_response(&AppendResponse {
            index: LeafIndex(index),
            checkpoint,
        })),
        Submitted::Queued => Ok(HttpResponse::Accepted()
            .content_type("application/cbor")
            .body(rendezvous_protocol::wire::encode(&Empty::default()))),
    }
}

async fn create(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    require_cbor(&req)?;
    check_len(&body, MAX_CHANGE_LEN + 128)?;
    let change = Signed::<TopicChange>::from_wire(&body)?;
    let quota = state.config().limits.quota.topics_per_user;
    let created = state.topics().create(change, &caller.user, quota).await;
    if let Err(crate::topics::TopicError::Store(e)) = &created {
        let _ = state.quota(&caller.user, Err::<(), _>(e.clone()));
    }
    let (topic, appended) = created?;
    state.metrics().changes.inc();
    state.metrics().topics_created.inc();
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
    let change = Signed::<TopicChange>::from_wire(&body)?;
    if topic.server() != *state.server_name() {
        return submit_remote(&state, &topic, NewEntry::Change(change), &caller).await;
    }
    let appended = state.topics().change(&topic, change, &caller.user).await?;
    state.metrics().changes.inc();
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
    let response = post_message(&req, &path, &body, &caller, &state).await;
    state
        .metrics()
        .latency
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn post_message(
    req: &HttpRequest,
    path: &str,
    body: &[u8],
    caller: &Caller,
    state: &web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    require_cbor(req)?;
    check_len(body, MAX_MESSAGE_LEN)?;
    let topic: TopicId = parse("topic", path)?;
    let msg = MessageIn::from_wire(body)?;
    if topic.server() != *state.server_name() {
        return submit_remote(state, &topic, NewEntry::Message(msg), caller).await;
    }
    let appended = state.topics().post(&topic, msg, &caller.user)?;
    state.metrics().messages.inc();
    finish(state, &topic, appended).await
}

/// The topic's state, if the caller's user is a current member.
fn member_state(state: &AppState, topic: &TopicId, caller: &Caller) -> ApiResult<TopicState> {
    Ok(state.topics().member_state(topic, &caller.user)?)
}

async fn list(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut topics = Vec::new();
    for (topic, role) in state.store().user_topics(&caller.user)? {
        let s = state.topics().state(&topic)?;
        topics.push(TopicSummary {
            topic,
            size: s.size(),
            role: Role::from_wire(role).map_err(|e| ApiError::internal("stored role", e))?,
            epoch: s.epoch(),
        });
    }
    Ok(cbor_response(&TopicsResponse { topics }))
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
        .clamp(1, state.config().limits.max_entries_per_request);
    let entries = state
        .store()
        .entries(&topic, query.from, limit, MAX_ENTRIES_BYTES)?
        .into_iter()
        .map(|(index, entry)| IndexedEntry {
            index: LeafIndex(index),
            entry: ByteBuf::from(entry),
        })
        .collect();
    Ok(cbor_response(&EntriesResponse { entries }))
}

async fn checkpoint(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let topic: TopicId = parse("topic", &path)?;
    member_state(&state, &topic, &caller)?;
    // Fresh (re-signed, or fetched from the hosting server) when due: `client-api.md` §6.
    let topics = state.topics();
    let head = topics.fresh_checkpoint(&topic).await?;
    let checkpoint = topics.with_cosignatures(&topic, head);
    Ok(cbor_response(&CheckpointResponse { checkpoint }))
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

/// The tag log of `topic` that `caller` may read, once the range asked for (`asked`) is within
/// it by `rule` (`fits` is given the log's size): the one check both proof endpoints share.
fn tree_for_proof<'a>(
    state: &'a AppState,
    topic: &'a TopicId,
    caller: &Caller,
    rule: &'static str,
    asked: String,
    fits: impl FnOnce(u64) -> bool,
) -> ApiResult<Tree<TopicNodes<'a>>> {
    let size = member_state(state, topic, caller)?.size().get();
    if !fits(size) {
        return Err(RequestError::OutOfRange { rule, asked, size }.into());
    }
    Tree::open(TopicNodes::new(state.store(), topic), TreeSize(size))
        .map_err(|e| ApiError::internal("tag log", e))
}

async fn inclusion(
    path: web::Path<String>,
    query: web::Query<InclusionQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let topic: TopicId = parse("topic", &path)?;
    let (index, size) = (query.index, query.size);
    let tree = tree_for_proof(
        &state,
        &topic,
        &caller,
        "need index < size <= log size",
        format!("index {index} of size {size}"),
        |log| size <= log && index < size,
    )?;
    let proof = tree
        .inclusion_proof(LeafIndex(query.index), TreeSize(query.size))
        .map_err(|e| ApiError::internal("inclusion proof", e))?;
    Ok(proof_response(&proof.path))
}

fn proof_response(path: &[rendezvous_protocol::tlog::LogHash]) -> HttpResponse {
    cbor_response(&ProofResponse {
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
    let (old, new) = (query.old, query.new);
    let tree = tree_for_proof(
        &state,
        &topic,
        &caller,
        "need 0 < old <= new <= log size",
        format!("old {old} and new {new}"),
        |log| new <= log && 0 < old && old <= new,
    )?;
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
    if r.index.get() > s.size().get() {
        return Err(RequestError::OutOfRange {
            rule: "the cursor must not pass the log's end",
            asked: format!("cursor {}", r.index),
            size: s.size().get(),
        }
        .into());
    }
    state
        .store()
        .set_cursor(&caller.user, caller.device, &topic, r.index.get())?;
    state.store().sync().await?;
    Ok(cbor_response(&Empty::default()))
}

async fn sync(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut topics = Vec::new();
    for (topic, _) in state.store().user_topics(&caller.user)? {
        let size = state.store().topic_size(&topic)?.unwrap_or(0);
        let cursor = state.store().cursor(&caller.user, caller.device, &topic)?;
        topics.push(SyncItem {
            topic,
            size: TreeSize(size),
            cursor: LeafIndex(cursor),
        });
    }
    let refill = super::keys::key_status_of(&state, &caller)?.refill;
    Ok(cbor_response(&SyncResponse { topics, refill }))
}

/// `GET /v1/topics/{topic}/witnesses`: the hosting server's head, this server's mirror head,
/// the cosignatures kept, and any evidence (`federation-api.md` §9.4), for `rdv verify`.
async fn witnesses(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let topic: TopicId = parse("topic", &path)?;
    member_state(&state, &topic, &caller)?;
    let w = state.topics().witnesses(&topic).await?;
    // directory.md §6.5: the entries this server's mirror refused for a wrong IK of one of
    // its users, newest kept when there are many, served in index order.
    let mut refusals: Vec<MirrorRefusal> = state
        .store()
        .mirror_refusals(&topic, MAX_REFUSALS, MAX_REFUSAL_BYTES)?
        .into_iter()
        .map(|r| MirrorRefusal {
            index: r.index,
            user: r.user,
            identity_key: r.identity_key,
            entry: ByteBuf::from(r.entry),
        })
        .collect();
    refusals.reverse();
    Ok(cbor_response(&WitnessesResponse {
        host: w.host,
        mirror: w.mirror,
        witnesses: w.witnesses,
        evidence: w.evidence.map(ByteBuf::from),
        refusals,
    }))
}

/// `GET /v1/servers/{server}/keys`: another server's key document, fetched over mutual TLS
/// and checked (`federation-api.md` §2), so that devices can check its checkpoints and
/// cosignatures; this server's own for its own name.
async fn server_keys(
    path: web::Path<String>,
    _caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let server: ServerName = parse("server", &path)?;
    let doc = if server == *state.server_name() {
        own_server_keys(
            state.store(),
            state.server_name(),
            &state.identity().server_key,
            now(),
        )?
        .value()
        .clone()
    } else {
        let keys = state.federation_or_off()?.peer_keys();
        keys.server_keys(&server, false).await?.as_ref().clone()
    };
    Ok(cbor_response(&doc))
}

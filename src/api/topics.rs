//! Topics: create, change, post, read, proofs, cursors and sync (`client-api.md` §6).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::keys::LOW_WATER;
use super::{cbor_body, cbor_response, parse, require_cbor};
use crate::error::{ApiError, ApiResult};
use crate::federation::keys::PeerKeys;
use crate::federation::topics::{Landed, remote_identities};
use crate::state::{AppState, Caller};
use crate::store::TopicNodes;
use crate::topics::Appended;
use rendezvous_protocol::api::{
    AppendResponse, Body, CheckpointResponse, CursorRequest, Empty, EntriesResponse, ErrorCode,
    IndexedEntry, ProofResponse, SyncItem, SyncResponse, TopicSummary, TopicsResponse,
    WitnessesResponse,
};
use rendezvous_protocol::federation::topic_events::Submit;
use rendezvous_protocol::federation::{Event, EventKind};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::message::MAX_MESSAGE_LEN;
use rendezvous_protocol::tlog::{CheckpointNote, LeafIndex, Tree, TreeSize};
use rendezvous_protocol::topic::{MAX_CHANGE_LEN, Role, TopicState};
use rendezvous_protocol::wire::WireError;

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

/// Checks and appends `body`, the creation of a topic (`topic` `None`) or a change of a topic
/// hosted here, by `caller`, once the Identity Keys of the members of other servers it adds
/// are fetched (`federation-api.md` §9.1). The client API and `topic.submit` both come here.
pub(crate) async fn append_change(
    state: &AppState,
    topic: Option<&TopicId>,
    body: &[u8],
    caller: &UserId,
) -> ApiResult<(TopicId, Appended)> {
    let remote = remote_identities(state, body).await?;
    let mut ctx = state.append_context();
    ctx.remote_identities = Some(&remote);
    match topic {
        None => state.topics.create(&ctx, body, caller),
        Some(topic) => Ok((
            topic.clone(),
            state.topics.change(&ctx, topic, body, caller)?,
        )),
    }
}

/// After an append: wait for durability, publish what became durable (in log order) and queue
/// it for other servers, and return a checkpoint of the durable log, which includes the entry.
///
/// The entry is already written: its durability, publication and checkpoint must not depend on
/// the request staying alive (actix drops a handler whose client hung up), so they run as their
/// own task and the caller only waits for the answer.
pub(crate) async fn complete(
    state: &web::Data<AppState>,
    topic: &TopicId,
    appended: Appended,
) -> ApiResult<CheckpointNote> {
    let (state, topic) = (state.clone(), topic.clone());
    let done = actix_web::rt::spawn(async move {
        state.store.sync().await?;
        let (publish, checkpoint) =
            state
                .topics
                .durable(&state.append_context(), &topic, appended)?;
        state.push.publish(&state.store, &publish);
        if publish.queued_for_peers {
            state.store.sync().await?;
        }
        Ok::<_, ApiError>(checkpoint)
    });
    done.await
        .map_err(|e| ApiError::internal("append completion", e))?
}

async fn finish(
    state: &web::Data<AppState>,
    topic: &TopicId,
    appended: Appended,
) -> ApiResult<HttpResponse> {
    let checkpoint = complete(state, topic, appended).await?;
    Ok(cbor_response(&AppendResponse {
        index: LeafIndex(appended.index),
        checkpoint,
    }))
}

/// Most entry bytes in one `entries` answer (always at least one entry, of at most
/// `MAX_CHANGE_LEN`): well under what devices accept (`EntriesResponse::MAX_LEN`).
const MAX_ENTRIES_BYTES: usize = 16 * 1024 * 1024;

/// How long a post to another server's topic waits for its entry to come back before the
/// device is answered `202 queued` (`federation-api.md` §9.3).
const SUBMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A post or change to a topic hosted by another server: checked against the mirror, queued
/// for the hosting server as `topic.submit`, then answered when its entry arrives (or `202`).
async fn submit_remote(
    state: &web::Data<AppState>,
    topic: &TopicId,
    body: &[u8],
    caller: &Caller,
    is_change: bool,
) -> ApiResult<HttpResponse> {
    let outbound = state.outbound.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Invalid,
            format!("{topic} is hosted elsewhere and federation is not enabled"),
        )
    })?;
    let (entry, leaf) = state.topics.precheck(
        &state.append_context(),
        topic,
        body,
        &caller.user,
        is_change,
    )?;
    let payload = Submit {
        submitter: caller.user.clone(),
        entry: ByteBuf::from(entry.to_wire()),
    }
    .to_wire();
    let event = Event::sign(
        &state.server_name,
        &topic.server(),
        EventKind::TopicSubmit,
        Some(topic),
        payload,
        crate::state::now(),
        &state.identity.server_key,
    );
    let landed = state
        .submits
        .wait(topic, leaf, Event::id(event.signed_bytes()));
    outbound
        .enqueue(&topic.server(), event.signed_bytes())
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
    match actix_web::rt::time::timeout(SUBMIT_WAIT, landed).await {
        Ok(Ok(Landed::At(index, checkpoint))) => Ok(cbor_response(&AppendResponse {
            index: LeafIndex(index),
            checkpoint,
        })),
        Ok(Ok(Landed::Refused(e))) => Err(e),
        _ => Ok(HttpResponse::Accepted()
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
    let (topic, appended) = append_change(&state, None, &body, &caller.user).await?;
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
    if topic.server() != state.server_name {
        return submit_remote(&state, &topic, &body, &caller, true).await;
    }
    let (_, appended) = append_change(&state, Some(&topic), &body, &caller.user).await?;
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
    let response = post_message(&req, &path, &body, &caller, &state).await;
    state
        .metrics
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
    if topic.server() != state.server_name {
        return submit_remote(state, &topic, body, caller, false).await;
    }
    let appended = state
        .topics
        .message(&state.append_context(), &topic, body, &caller.user)?;
    state.metrics.messages.inc();
    finish(state, &topic, appended).await
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
        .clamp(1, state.config.limits.max_entries_per_request);
    let entries = state
        .store
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
    let checkpoint = with_cosignatures(
        &state,
        &topic,
        state.topics.checkpoint(&state.append_context(), &topic)?,
    );
    Ok(cbor_response(&CheckpointResponse { checkpoint }))
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
    if query.size > s.size().get() || query.index >= query.size {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "need index < size <= log size",
        ));
    }
    let tree = open_tree(&state, &topic, s.size().get())?;
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
    let s = member_state(&state, &topic, &caller)?;
    if query.new > s.size().get() || query.old == 0 || query.old > query.new {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "need 0 < old <= new <= log size",
        ));
    }
    let tree = open_tree(&state, &topic, s.size().get())?;
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
        return Err(ApiError::new(ErrorCode::Invalid, "cursor beyond the log"));
    }
    state
        .store
        .set_cursor(&caller.user, caller.device, &topic, r.index.get())?;
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
            size: TreeSize(size),
            cursor: LeafIndex(cursor),
        });
    }
    let refill = state.store.prekey_count(&caller.user, caller.device)? < LOW_WATER
        || state.store.topic_key_count(&caller.user)? < LOW_WATER;
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
    let store = &state.store;
    let hosted_here = topic.server() == state.server_name;
    let (host, mirror) = if hosted_here {
        let head = state.topics.checkpoint(&state.append_context(), &topic)?;
        (Some(head), None)
    } else {
        (
            remote_head(&state, &topic).await,
            store
                .mirror_head(&topic)?
                .and_then(|n| CheckpointNote::parse(n).ok()),
        )
    };
    let witnesses = store
        .witness_notes(&topic)?
        .into_iter()
        .filter_map(|(_, note)| CheckpointNote::parse(note).ok())
        .collect();
    Ok(cbor_response(&WitnessesResponse {
        host,
        mirror,
        witnesses,
        evidence: store.mirror_evidence(&topic)?.map(ByteBuf::from),
    }))
}

/// The hosting server's current checkpoint of a topic hosted elsewhere, or `None` when it
/// cannot be had.
async fn remote_head(state: &AppState, topic: &TopicId) -> Option<CheckpointNote> {
    let client = state.federation.as_ref()?;
    let path = format!(
        "{}/{}/checkpoint",
        crate::federation::topics::TOPICS_PATH,
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    match client.get(&topic.server(), &path, 64 * 1024).await {
        Ok(body) => CheckpointResponse::from_cbor(&body)
            .map(|r| r.checkpoint)
            .map_err(|e| tracing::info!(%topic, %e, "hosting server's checkpoint"))
            .ok(),
        Err(e) => {
            tracing::info!(%topic, %e, "hosting server unreachable for its checkpoint");
            None
        }
    }
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
    let doc = if server == state.server_name {
        crate::federation::keys::own_server_keys(
            &state.store,
            &state.server_name,
            &state.identity.server_key,
            crate::state::now(),
        )?
        .value()
        .clone()
    } else {
        let keys = state
            .peer_keys
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::Invalid, "federation is not enabled"))?;
        keys.server_keys(&server, false)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?
            .as_ref()
            .clone()
    };
    Ok(cbor_response(&doc))
}

/// The checkpoint note with the cosignature lines of every participating server that cosigned
/// exactly this checkpoint (`federation-api.md` §9.4: heads are served with their
/// cosignatures). Lines were verified when their cosigned notes arrived.
pub(crate) fn with_cosignatures(
    state: &AppState,
    topic: &TopicId,
    note: CheckpointNote,
) -> CheckpointNote {
    let Ok(mut signed) = rendezvous_protocol::tlog::SignedCheckpoint::parse(note.as_bytes()) else {
        return note;
    };
    let Ok(witnesses) = state.store.witness_notes(topic) else {
        return note;
    };
    let mut merged = false;
    for (_, w) in witnesses {
        if let Ok(w) = rendezvous_protocol::tlog::SignedCheckpoint::parse(w.as_bytes()) {
            merged |= signed.merge_signatures(&w);
        }
    }
    match merged {
        true => signed.to_note(),
        false => note,
    }
}

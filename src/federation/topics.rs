//! Cross-server topics over federation (`federation-api.md` §9): the event sink that applies
//! `topic.entry`, `topic.submit` and `topic.cosignature` events, backfill from the hosting
//! server, cosigning, and the waiters of posts submitted to another server.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::web;
use tokio::sync::oneshot;

use super::inbound::EventSink;
use super::keys::PeerKeys;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now};
use crate::topics::{Appended, Mirrored, RemoteIdentities, host_checkpoint};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::federation::topic_events::{
    EntryBatch, Submit, cosignature_from_wire, cosignature_to_wire,
};
use rendezvous_protocol::federation::{Event, EventId, EventKind, VerifiedEvent};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::{CheckpointNote, Cosignature, LogHash, SignedCheckpoint};
use rendezvous_protocol::topic::{ENTRY_CHANGE, ENTRY_MESSAGE, LogEntry};

/// Path of the backfill query (`federation-api.md` §5): `{topic}/entries?from&limit`.
pub const TOPICS_PATH: &str = "/_rdv/federation/v1/topics";
/// Largest backfill answer accepted.
const MAX_BACKFILL_LEN: usize = rendezvous_protocol::federation::event::MAX_EVENT_LEN;
/// Most backfill pages fetched for one event.
const MAX_BACKFILL_PAGES: usize = 10_000;
/// Cosignatures of one topic are sent at most this often; the newest head is cosigned.
const COSIGN_DELAY: Duration = Duration::from_millis(300);

/// What became of a post submitted to another server.
#[derive(Debug)]
pub enum Landed {
    /// It is in the log at this index; the hosting server's checkpoint.
    At(u64, CheckpointNote),
    /// The hosting server refused it.
    Refused(ApiError),
}

type WaitKey = (TopicId, [u8; 32]);

/// Posts submitted to hosting servers whose devices wait for the outcome (`federation-api.md`
/// §9.3): by the entry's leaf hash (its arrival in the mirror), and by the submit event's id
/// (a refusal in the event's result).
#[derive(Debug, Default)]
pub struct SubmitWaiters {
    by_leaf: Mutex<HashMap<WaitKey, Vec<oneshot::Sender<Landed>>>>,
    by_event: Mutex<HashMap<EventId, WaitKey>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SubmitWaiters {
    /// Waits for the entry with `leaf` in `topic`, submitted as event `event`.
    pub fn wait(
        &self,
        topic: &TopicId,
        leaf: LogHash,
        event: EventId,
    ) -> oneshot::Receiver<Landed> {
        let (tx, rx) = oneshot::channel();
        let key = (topic.clone(), leaf.0);
        let mut by_leaf = locked(&self.by_leaf);
        // Forget waiters whose devices gave up.
        by_leaf.retain(|_, v| {
            v.retain(|s| !s.is_closed());
            !v.is_empty()
        });
        by_leaf.entry(key.clone()).or_default().push(tx);
        let mut by_event = locked(&self.by_event);
        by_event.retain(|_, k| by_leaf.contains_key(k));
        by_event.insert(event, key);
        rx
    }

    /// Entries with these leaves arrived in `topic`'s mirror, from index `first`.
    pub fn arrived(
        &self,
        topic: &TopicId,
        first: u64,
        leaves: &[LogHash],
        checkpoint: &CheckpointNote,
    ) {
        let mut by_leaf = locked(&self.by_leaf);
        if by_leaf.is_empty() {
            return;
        }
        for (i, leaf) in leaves.iter().enumerate() {
            if let Some(waiters) = by_leaf.remove(&(topic.clone(), leaf.0)) {
                for w in waiters {
                    let _ = w.send(Landed::At(first + i as u64, checkpoint.clone()));
                }
            }
        }
    }

    /// The hosting server refused the submit event `event` with `status` and `code`.
    pub fn refused(&self, event: &EventId, status: u16, code: &str) {
        let Some(key) = locked(&self.by_event).remove(event) else {
            return;
        };
        let error = match ErrorCode::parse(code) {
            Some(c) => ApiError::new(c, format!("the hosting server refused the post: {code}")),
            None => ApiError::new(
                ErrorCode::Invalid,
                format!("the hosting server refused the post: {status} {code}"),
            ),
        };
        if let Some(waiters) = locked(&self.by_leaf).remove(&key) {
            for w in waiters {
                let _ = w.send(Landed::Refused(error.clone()));
            }
        }
    }
}

/// Entries a transaction mirrored, published once the store is durable: (topic, last entry,
/// leaf hashes).
type Unsynced = Vec<(TopicId, Appended, Vec<LogHash>)>;

/// The event sink of a federating homeserver.
pub struct TopicSink<K> {
    state: web::Data<AppState>,
    keys: Arc<K>,
    cosigning: Arc<Mutex<HashSet<TopicId>>>,
    /// Per origin (whose transactions the inbound side applies one at a time): entries
    /// mirrored by its transaction in progress, published by [`EventSink::settle`] after the
    /// transaction's one sync instead of one sync per event.
    unsynced: Mutex<HashMap<ServerName, Unsynced>>,
}

impl<K> std::fmt::Debug for TopicSink<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSink").finish_non_exhaustive()
    }
}

impl<K: PeerKeys + 'static> TopicSink<K> {
    /// A sink applying events to `state`'s topics, with peers' keys from `keys`.
    pub fn new(state: web::Data<AppState>, keys: Arc<K>) -> Self {
        TopicSink {
            state,
            keys,
            cosigning: Arc::new(Mutex::new(HashSet::new())),
            unsynced: Mutex::new(HashMap::new()),
        }
    }

    async fn keys_of(&self, server: &ServerName) -> ApiResult<Vec<ServerPublicKey>> {
        let doc =
            self.keys.server_keys(server, false).await.map_err(|e| {
                ApiError::new(ErrorCode::Unavailable, format!("keys of {server}: {e}"))
            })?;
        Ok(doc.keys.iter().map(|k| k.key.clone()).collect())
    }

    async fn entry(&self, topic: &TopicId, origin: &ServerName, payload: &[u8]) -> ApiResult<()> {
        if topic.server() != *origin {
            return Err(ApiError::new(
                ErrorCode::NotHosting,
                format!("{origin} does not host {topic}"),
            ));
        }
        let batch = EntryBatch::from_wire(payload)?;
        let keys = self.keys_of(origin).await?;
        let mut applied = Unsynced::new();
        let result = apply_unsynced(&self.state, topic, &batch, &keys, &mut applied).await;
        locked(&self.unsynced)
            .entry(origin.clone())
            .or_default()
            .extend(applied);
        result?;
        self.schedule_cosign(topic);
        Ok(())
    }

    async fn submit(&self, topic: &TopicId, origin: &ServerName, payload: &[u8]) -> ApiResult<()> {
        let state = &self.state;
        if topic.server() != state.server_name {
            return Err(ApiError::new(
                ErrorCode::NotHosting,
                format!("{topic} is not hosted here"),
            ));
        }
        let submit = Submit::from_wire(payload)?;
        if submit.submitter.server() != *origin {
            return Err(ApiError::new(
                ErrorCode::WrongOrigin,
                format!("{} is not a user of {origin}", submit.submitter),
            ));
        }
        let entry = LogEntry::from_wire(&submit.entry)?;
        let appended = match entry.0 {
            ENTRY_MESSAGE => {
                state
                    .topics
                    .message(&state.append_context(), topic, &entry.1, &submit.submitter)?
            }
            ENTRY_CHANGE => {
                crate::api::topics::append_change(state, Some(topic), &entry.1, &submit.submitter)
                    .await?
                    .1
            }
            other => {
                return Err(ApiError::new(
                    ErrorCode::Malformed,
                    format!("unknown entry kind {other}"),
                ));
            }
        };
        crate::api::topics::complete(state, topic, appended).await?;
        Ok(())
    }

    async fn cosignature(
        &self,
        topic: &TopicId,
        origin: &ServerName,
        payload: &[u8],
    ) -> ApiResult<()> {
        let state = &self.state;
        let note = cosignature_from_wire(payload)?;
        let signed = SignedCheckpoint::parse(note.as_bytes())
            .map_err(|e| ApiError::new(ErrorCode::BadCheckpoint, e.to_string()))?;
        let cosigner_keys = self.keys_of(origin).await?;
        if !cosigner_keys
            .iter()
            .any(|k| signed.cosignature(k, origin.as_str()).is_ok())
        {
            return Err(ApiError::new(
                ErrorCode::BadSignature,
                format!("no valid cosignature of {origin}"),
            ));
        }
        let topic_state = state
            .topics
            .state(&state.store, topic)
            .map_err(|e| match e.code {
                ErrorCode::NotFound => ApiError::new(
                    ErrorCode::NotParticipant,
                    format!("{} does not take part in {topic}", state.server_name),
                ),
                _ => e,
            })?;
        if !topic_state
            .members()
            .values()
            .any(|m| m.user.server() == *origin)
        {
            return Err(ApiError::new(
                ErrorCode::NotParticipant,
                format!("{origin} has no member in {topic}"),
            ));
        }
        let host_keys = match topic.server() == state.server_name {
            true => vec![state.identity.server_key.public().clone()],
            false => self.keys_of(&topic.server()).await?,
        };
        let (_, _, c) = host_checkpoint(&note, topic, &host_keys)?;
        let ctx = state.append_context();
        if topic.server() == state.server_name {
            let root = state.topics.root_at(&state.store, topic, c.size)?;
            if root != Some(c.root) {
                return Err(ApiError::new(
                    ErrorCode::BadCheckpoint,
                    "the cosigned checkpoint is not of this server's log",
                ));
            }
        } else {
            // Evidence against the hosting server stops the mirror; the cosignature itself
            // was fine, so it is kept (and answered 200).
            if let Err(e) = state.topics.compare_witness(&ctx, topic, &note, &host_keys) {
                tracing::warn!(%topic, %origin, %e, "a witness's view contradicts this mirror");
            }
        }
        keep_newest_witness(state, topic, origin, &note, c.size.0)?;
        Ok(())
    }

    /// Cosigns the topic's newest mirrored head soon, at most once per [`COSIGN_DELAY`].
    fn schedule_cosign(&self, topic: &TopicId) {
        if !locked(&self.cosigning).insert(topic.clone()) {
            return;
        }
        let (state, topic, cosigning) = (self.state.clone(), topic.clone(), self.cosigning.clone());
        let keys = self.keys.clone();
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(COSIGN_DELAY).await;
            locked(&cosigning).remove(&topic);
            if let Err(e) = cosign(&state, &topic).await {
                tracing::warn!(%topic, %e, "cosigning the hosting server's checkpoint");
            }
            recheck_witnesses(&state, &topic, keys.as_ref()).await;
        });
    }
}

impl<K: PeerKeys + 'static> EventSink for TopicSink<K> {
    async fn apply(&self, event: VerifiedEvent) -> Result<(), (u16, String)> {
        let e = event.event.value();
        let Some(topic) = &e.topic else {
            return Err((400, ErrorCode::Malformed.as_str().to_owned()));
        };
        let result = match event.kind {
            EventKind::TopicEntry => self.entry(topic, &e.origin, &e.payload).await,
            EventKind::TopicSubmit => self.submit(topic, &e.origin, &e.payload).await,
            EventKind::TopicCosignature => self.cosignature(topic, &e.origin, &e.payload).await,
        };
        result.map_err(|err| {
            tracing::info!(origin = %e.origin, %topic, kind = ?event.kind, %err, "federation event refused");
            (err.code.status(), err.code.as_str().to_owned())
        })
    }

    async fn settle(&self, origin: &ServerName) {
        let applied = locked(&self.unsynced).remove(origin).unwrap_or_default();
        // The transaction's sync made them durable: every entry here was written before it (a
        // transaction that failed before its sync leaves its entries for the origin's next
        // one, which syncs first too).
        if let Err(e) = publish(&self.state, applied) {
            tracing::warn!(%origin, %e, "publishing mirrored entries");
        }
    }
}

/// Publishes durable mirrored entries (in order) to local devices and hands them to waiting
/// submitters.
fn publish(state: &web::Data<AppState>, applied: Unsynced) -> ApiResult<()> {
    for (topic, last, leaves) in applied {
        let (publish, note) = state
            .topics
            .durable(&state.append_context(), &topic, last)?;
        state.push.publish(&state.store, &publish);
        let first = (last.index + 1).saturating_sub(leaves.len() as u64);
        state.submits.arrived(&topic, first, &leaves, &note);
    }
    Ok(())
}

/// Applies a batch from the hosting server to the mirror, backfilling missing entries first.
/// What it mirrored goes into `applied`, published by [`publish`] once the inbound
/// transaction's sync made it durable ([`EventSink::settle`]).
async fn apply_unsynced(
    state: &web::Data<AppState>,
    topic: &TopicId,
    batch: &EntryBatch,
    host_keys: &[ServerPublicKey],
    applied: &mut Unsynced,
) -> ApiResult<()> {
    let mut pages = 0;
    loop {
        let outcome = state
            .topics
            .mirror(&state.append_context(), topic, batch, host_keys)?;
        match outcome {
            Mirrored::Unchanged => return Ok(()),
            Mirrored::Applied { last, leaves } => {
                applied.push((topic.clone(), last, leaves));
                return Ok(());
            }
            Mirrored::Gap { from } => {
                pages += 1;
                if pages > MAX_BACKFILL_PAGES {
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "backfill does not end",
                    ));
                }
                let page = backfill_page(state, topic, from).await?;
                if page.first != from {
                    return Err(ApiError::new(
                        ErrorCode::BadCheckpoint,
                        format!("backfill from {from} answered from {}", page.first),
                    ));
                }
                Box::pin(apply_unsynced(state, topic, &page, host_keys, applied)).await?;
            }
        }
    }
}

/// One page of entries from `from` on, from the topic's hosting server (`federation-api.md` §5).
async fn backfill_page(state: &AppState, topic: &TopicId, from: u64) -> ApiResult<EntryBatch> {
    let client = state
        .federation
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::Unavailable, "federation is not enabled"))?;
    let path = format!(
        "{TOPICS_PATH}/{}/entries?from={from}&limit=1000",
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    let body = client
        .get(&topic.server(), &path, MAX_BACKFILL_LEN)
        .await
        .map_err(ApiError::from)?;
    Ok(EntryBatch::from_wire(&body)?)
}

/// At start, tells peers that this server is up, so that what they queued for it while it was
/// down arrives at once instead of when their retry timers run out (`federation-api.md` §8):
/// every server it ever sent events to is asked for its key document, and each hosting server
/// of a topic it mirrors gets the cosignature of one of its topics' heads.
pub async fn announce_to_hosts(state: web::Data<AppState>) {
    // Every server we ever queued events for learns we are up by our asking for its keys
    // (which ends its backoff towards us if it holds events for us).
    if let (Some(keys), Ok(peers)) = (&state.peer_keys, state.store.outbound_peers()) {
        for peer in peers {
            if let Err(e) = keys.server_keys(&peer, true).await {
                tracing::info!(%peer, %e, "announcing this server to a peer");
            }
        }
    }
    let topics = match state.store.mirrored_topics() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(%e, "listing mirrored topics");
            return;
        }
    };
    let mut hosts = HashSet::new();
    for topic in topics {
        if hosts.insert(topic.server())
            && let Err(e) = cosign(&state, &topic).await
        {
            tracing::warn!(%topic, %e, "announcing this server to a hosting server");
        }
    }
}

/// Cosigns the mirror's head and sends it to the hosting server and every other participating
/// server (`federation-api.md` §9.4).
async fn cosign(state: &web::Data<AppState>, topic: &TopicId) -> ApiResult<()> {
    let Some(head) = state.store.mirror_head(topic)? else {
        return Ok(());
    };
    let mut signed = SignedCheckpoint::parse(head.as_bytes())
        .map_err(|e| ApiError::internal("stored mirror head", e))?;
    let own = &state.server_name;
    let cosignature = Cosignature::sign(
        &state.identity.server_key,
        own.as_str(),
        signed.unverified_checkpoint(),
        now(),
    )
    .map_err(|e| ApiError::internal("cosigning", e))?;
    signed
        .add_cosignature(&cosignature)
        .map_err(|e| ApiError::internal("cosigning", e))?;
    let note = signed.to_note();
    state.store.set_witness_note(topic, own, &note)?;
    let Some(outbound) = &state.outbound else {
        return Ok(());
    };
    let members = state.topics.state(&state.store, topic)?;
    let mut servers: Vec<ServerName> = members
        .members()
        .values()
        .map(|m| m.user.server())
        .chain(std::iter::once(topic.server()))
        .filter(|s| s != own)
        .collect();
    servers.sort();
    servers.dedup();
    let payload = cosignature_to_wire(&note);
    for server in servers {
        let event = Event::sign(
            own,
            &server,
            EventKind::TopicCosignature,
            Some(topic),
            payload.clone(),
            now(),
            &state.identity.server_key,
        );
        if let Err(e) = outbound.enqueue_unsynced(&server, event.signed_bytes()) {
            tracing::warn!(%topic, %server, %e, "queueing a cosignature");
        }
    }
    Ok(())
}

/// Compares the kept witness notes that were ahead of the mirror with its log now.
async fn recheck_witnesses<K: PeerKeys>(state: &web::Data<AppState>, topic: &TopicId, keys: &K) {
    let Ok(notes) = state.store.witness_notes(topic) else {
        return;
    };
    let Ok(doc) = keys.server_keys(&topic.server(), false).await else {
        return;
    };
    let host_keys: Vec<ServerPublicKey> = doc.keys.iter().map(|k| k.key.clone()).collect();
    for (server, note) in notes {
        if server == state.server_name {
            continue;
        }
        if let Err(e) =
            state
                .topics
                .compare_witness(&state.append_context(), topic, &note, &host_keys)
        {
            tracing::warn!(%topic, %server, %e, "a witness's view contradicts this mirror");
            return;
        }
    }
}

/// Keeps `server`'s cosigned note unless a larger one is kept.
fn keep_newest_witness(
    state: &AppState,
    topic: &TopicId,
    server: &ServerName,
    note: &str,
    size: u64,
) -> ApiResult<()> {
    if let Some(kept) = state.store.witness_note(topic, server)?
        && let Ok(kept) = SignedCheckpoint::parse(kept.as_bytes())
        && kept.unverified_checkpoint().size.0 > size
    {
        return Ok(());
    }
    state.store.set_witness_note(topic, server, note)?;
    Ok(())
}

/// Fetches the Identity Keys of the members of other servers that a change adds
/// (`federation-api.md` §9.1).
pub async fn remote_identities(state: &AppState, change: &[u8]) -> ApiResult<RemoteIdentities> {
    let users = crate::topics::remote_members_added(change, &state.server_name)?;
    let mut out = RemoteIdentities::new();
    if users.is_empty() {
        return Ok(out);
    }
    let client = state.federation.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Invalid,
            "a member is on another server; federation is not enabled",
        )
    })?;
    for user in users {
        let identity = client.identity(&user).await.map_err(ApiError::from)?;
        out.insert(user, identity.identity_key().clone());
    }
    Ok(out)
}

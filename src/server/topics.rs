//! Hosting topics: the hosting server's side of the topic state machine and the tag log.
//!
//! Each hosted topic is kept in memory as its [`TopicState`] and the [`Frontier`] of its tag log
//! (O(log n) hashes), loaded lazily from the store by replaying only its changes. An append
//! checks the entry with the shared state machine under the topic's lock, writes the entry, its
//! tag, its new log nodes and membership changes in one atomic store write, records it as pending,
//! and releases the lock; the answer waits for the group flush that makes it durable. Entries are
//! pushed to connected devices in log order, once durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::api::ErrorCode;
use crate::crypto::ServerKey;
use crate::ids::{ServerName, TopicId, UserId};
use crate::message::{Message, MessageIn, MessageTag};
use crate::server::error::{ApiError, ApiResult};
use crate::server::store::{Append, Store, TopicNodes};
use crate::tlog::{Checkpoint, Frontier, LogHash, SignedCheckpoint, Tree, TreeSize, leaf_hash};
use crate::topic::{Action, ChangeOutcome};
use crate::topic::{LogEntry, MemberSpec, TagSet, TopicChange, TopicState, log_origin};
use crate::wire::Signed;

/// One hosted topic in memory.
#[derive(Debug)]
pub struct HostedTopic {
    /// The state after the whole log.
    pub state: TopicState,
    /// The tag log's compact range.
    pub frontier: Frontier,
    /// Entries appended but not yet known durable: `index -> (entry, frontier after it)`.
    pending: BTreeMap<u64, (Vec<u8>, Frontier)>,
    /// The frontier of the longest prefix known durable (what checkpoints may vouch for).
    durable: Frontier,
    /// The last signed checkpoint note and its size (re-used until the durable size grows).
    signed: Option<(u64, String)>,
}

/// An accepted entry, not yet known durable.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    /// Its log index.
    pub index: u64,
}

/// Entries that became publishable, in log order, with the users to send them to.
#[derive(Debug)]
pub struct Publish {
    /// The topic.
    pub topic: TopicId,
    /// `(index, entry)` in order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Current members (user ids).
    pub members: Vec<UserId>,
}

/// All hosted topics.
#[derive(Debug, Default)]
pub struct TopicHost {
    topics: Mutex<HashMap<TopicId, Arc<Mutex<HostedTopic>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere while holding it; the data is still consistent
    // (every mutation is a single assignment after all checks), so go on with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tag lookups go to the store.
struct StoreTags<'a> {
    store: &'a Store,
    topic: &'a TopicId,
}

impl TagSet for StoreTags<'_> {
    fn contains(&self, tag: &MessageTag) -> bool {
        // A storage error counts as "seen": refusing a message is safe, accepting a replay is not.
        self.store
            .tag_index(self.topic, tag.0)
            .map_or(true, |i| i.is_some())
    }
}

impl TopicHost {
    /// The hosted topic, loaded from the store on first use.
    pub fn get(&self, store: &Store, topic: &TopicId) -> ApiResult<Arc<Mutex<HostedTopic>>> {
        if let Some(t) = lock(&self.topics).get(topic) {
            return Ok(t.clone());
        }
        let size = store
            .topic_size(topic)?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no topic {topic}")))?;
        let mut changes = Vec::new();
        for (index, bytes) in store.changes(topic)? {
            let entry = LogEntry::from_wire(&bytes).and_then(|e| e.parse());
            let signed = match entry {
                Ok(crate::topic::ParsedEntry::Change(signed)) => signed,
                Ok(_) => return Err(ApiError::internal("stored change", "is a message")),
                Err(e) => return Err(ApiError::internal("stored change does not decode", e)),
            };
            changes.push((index, signed));
        }
        let state = TopicState::restore(changes, size)
            .map_err(|e| ApiError::internal("stored topic does not replay", e))?;
        let tree = Tree::open(TopicNodes::new(store, topic), TreeSize(size))
            .map_err(|e| ApiError::internal("stored tag log does not open", e))?;
        let hosted = Arc::new(Mutex::new(HostedTopic {
            state,
            frontier: tree.frontier().clone(),
            pending: BTreeMap::new(),
            durable: tree.frontier().clone(),
            signed: None,
        }));
        Ok(lock(&self.topics)
            .entry(topic.clone())
            .or_insert(hosted)
            .clone())
    }

    /// Checks and appends a `create` change by `caller`.
    pub fn create(
        &self,
        ctx: &AppendContext<'_>,
        bytes: &[u8],
        caller: &UserId,
    ) -> ApiResult<(TopicId, Appended)> {
        let signed = Signed::<TopicChange>::from_wire(bytes)?;
        let draft = signed.decode_unverified()?;
        if draft.topic.server() != *ctx.server_name {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("topic {} is not hosted on {}", draft.topic, ctx.server_name),
            ));
        }
        let outcome = TopicState::create(signed)?;
        if let Action::Create { members, .. } = &outcome.change.action {
            if members.first().map(|m| &m.user) != Some(caller) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "the creator must be the caller",
                ));
            }
            check_identities(ctx, members)?;
        }
        let topic = outcome.next.topic().clone();
        let mut hosted = HostedTopic {
            state: outcome.next.clone(),
            frontier: Frontier::new(),
            pending: BTreeMap::new(),
            durable: Frontier::new(),
            signed: None,
        };
        let appended = append_change_entry(ctx, &topic, &mut hosted, None, &outcome)?;
        let mut map = lock(&self.topics);
        map.insert(topic.clone(), Arc::new(Mutex::new(hosted)));
        Ok((topic, appended))
    }

    /// Checks and appends a change by `caller`.
    pub fn change(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        bytes: &[u8],
        caller: &UserId,
    ) -> ApiResult<Appended> {
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        let signed = Signed::<TopicChange>::from_wire(bytes)?;
        let draft = signed.decode_unverified()?;
        let author = t
            .state
            .member(crate::topic::MemberIndex(draft.author))
            .ok_or_else(|| {
                ApiError::from(crate::topic::ChangeError::UnknownAuthor(draft.author))
            })?;
        if author.user != *caller {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "the author must be the caller",
            ));
        }
        let outcome = t.state.check_change(signed)?;
        if let Action::Add(members) = &outcome.change.action {
            check_identities(ctx, members)?;
        }
        let before = t.state.clone();
        append_change_entry(ctx, topic, &mut t, Some(&before), &outcome)
    }

    /// Checks and appends a message by `caller`.
    pub fn message(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        bytes: &[u8],
        caller: &UserId,
    ) -> ApiResult<Appended> {
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        let msg_in = MessageIn::from_wire(bytes)?;
        let sender = msg_in.header().sender;
        match t.state.member(crate::topic::MemberIndex(sender)) {
            Some(m) if m.user == *caller => {}
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "the sender must be the caller",
                ));
            }
            None => return Err(crate::message::MessageError::NotAMember(sender).into()),
        }
        let tags = StoreTags {
            store: ctx.store,
            topic,
        };
        let msg: Message = t.state.check_message(msg_in, &tags)?;
        let entry = LogEntry::message(&msg).to_wire();
        let index = t.state.size();
        let (frontier, nodes) = grown(&t.frontier, &msg.leaf_data())?;
        ctx.store.append(
            topic,
            Append {
                index,
                entry: entry.clone(),
                change: false,
                tag: Some(msg.tag().0),
                nodes,
                memberships: Vec::new(),
            },
        )?;
        t.state.append_message(&msg)?;
        t.pending.insert(index, (entry, frontier.clone()));
        t.frontier = frontier;
        Ok(Appended { index })
    }

    /// Called once `appended`'s writes are durable (the caller's `sync` returned). Every entry
    /// up to it was written before it, so it is durable too: they are published in log order,
    /// and the returned checkpoint — signed once per durable size, shared by every request the
    /// same flush answered — vouches for exactly the durable prefix, never for an entry a crash
    /// could still lose.
    pub fn durable(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        appended: Appended,
    ) -> ApiResult<(Publish, String)> {
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        let mut out = Publish {
            topic: topic.clone(),
            entries: Vec::new(),
            members: t.state.members().values().map(|m| m.user.clone()).collect(),
        };
        while let Some(entry) = t.pending.first_entry() {
            if *entry.key() > appended.index {
                break;
            }
            let (index, (bytes, frontier)) = entry.remove_entry();
            out.entries.push((index, bytes));
            t.durable = frontier;
        }
        let checkpoint = signed_checkpoint(ctx, topic, &mut t)?;
        Ok((out, checkpoint))
    }

    /// The signed checkpoint of the topic's durable log.
    pub fn checkpoint(&self, ctx: &AppendContext<'_>, topic: &TopicId) -> ApiResult<String> {
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        signed_checkpoint(ctx, topic, &mut t)
    }

    /// A snapshot of the topic's state.
    pub fn state(&self, store: &Store, topic: &TopicId) -> ApiResult<TopicState> {
        let hosted = self.get(store, topic)?;
        let t = lock(&hosted);
        Ok(t.state.clone())
    }
}

/// What an append needs from the server.
pub struct AppendContext<'a> {
    /// The store.
    pub store: &'a Store,
    /// This server's name.
    pub server_name: &'a ServerName,
    /// The key that signs checkpoints.
    pub server_key: &'a ServerKey,
    /// Now, Unix seconds.
    pub now: u64,
}

/// Every member added must be a local, registered, enabled user whose Identity Key is the one
/// in the member spec (federation will extend this to remote users).
fn check_identities(ctx: &AppendContext<'_>, members: &[MemberSpec]) -> ApiResult<()> {
    for m in members {
        if m.user.server() != *ctx.server_name {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("{} is on another server; federation is not enabled", m.user),
            ));
        }
        let record = ctx
            .store
            .user(&m.user)?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no user {}", m.user)))?;
        if record.identity_key()? != m.identity_key {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!(
                    "identity key given for {} is not the one registered",
                    m.user
                ),
            ));
        }
    }
    Ok(())
}

/// Log nodes completed by an append: `(level, index, hash)`.
type NewNodes = Vec<(u8, u64, [u8; 32])>;

fn grown(frontier: &Frontier, leaf: &[u8]) -> ApiResult<(Frontier, NewNodes)> {
    let mut f = frontier.clone();
    let mut nodes = Vec::with_capacity(2);
    f.append_leaf_hash(leaf_hash(leaf), |level, index, hash: LogHash| {
        nodes.push((level, index, hash.0))
    })
    .map_err(|e| ApiError::internal("tag log full", e))?;
    Ok((f, nodes))
}

fn append_change_entry(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &mut HostedTopic,
    before: Option<&TopicState>,
    outcome: &ChangeOutcome,
) -> ApiResult<Appended> {
    let entry = LogEntry::change(&outcome.change).to_wire();
    let index = before.map_or(0, |b| b.size());
    let (frontier, nodes) = grown(
        &t.frontier,
        &crate::topic::leaf_data_for_change(outcome.change.signed_bytes()),
    )?;
    let mut memberships = Vec::new();
    for m in outcome.next.members().values() {
        if m.user.server() == *ctx.server_name {
            memberships.push((m.user.clone(), Some(m.role.to_wire())));
        }
    }
    if let Some(before) = before {
        for m in before.members().values() {
            if outcome.next.member_of(&m.user).is_none() && m.user.server() == *ctx.server_name {
                memberships.push((m.user.clone(), None));
            }
        }
    }
    ctx.store.append(
        topic,
        Append {
            index,
            entry: entry.clone(),
            change: true,
            tag: None,
            nodes,
            memberships,
        },
    )?;
    t.state = outcome.next.clone();
    t.pending.insert(index, (entry, frontier.clone()));
    t.frontier = frontier;
    Ok(Appended { index })
}

/// The checkpoint of the durable prefix: the cached one while the durable size has not grown.
fn signed_checkpoint(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &mut HostedTopic,
) -> ApiResult<String> {
    let size = t.durable.size().0;
    if let Some((signed_size, note)) = &t.signed
        && *signed_size == size
    {
        return Ok(note.clone());
    }
    let note = sign_checkpoint(ctx, topic, &t.durable)?;
    t.signed = Some((size, note.clone()));
    Ok(note)
}

fn sign_checkpoint(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    frontier: &Frontier,
) -> ApiResult<String> {
    let cp = Checkpoint::new(
        &log_origin(topic),
        frontier.size(),
        frontier.root(),
        ctx.now,
    )
    .map_err(|e| ApiError::internal("checkpoint", e))?;
    let signed = SignedCheckpoint::sign(&cp, ctx.server_key, ctx.server_name.as_str())
        .map_err(|e| ApiError::internal("checkpoint", e))?;
    Ok(signed.to_note())
}

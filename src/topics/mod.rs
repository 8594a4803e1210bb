//! Hosting topics: the hosting server's side of the topic state machine and the tag log.
//!
//! Each hosted topic is kept in memory as its [`TopicState`] and the [`Frontier`] of its tag log
//! (O(log n) hashes), loaded lazily from the store by replaying only its changes. An append
//! checks the entry with the shared state machine under the topic's lock, writes the entry, its
//! tag, its new log nodes and membership changes in one atomic store write, records it as pending,
//! and releases the lock; the answer waits for the group flush that makes it durable. Entries are
//! pushed to connected devices in log order, once durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{ApiError, ApiResult};
use crate::federation::outbound::Outbound;
use crate::store::{Append, Store, TopicNodes};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::crypto::IdentityPublicKey;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::message::{Message, MessageIn, MessageTag};
use rendezvous_protocol::tlog::{
    Checkpoint, CheckpointNote, Frontier, LeafIndex, LogHash, SignedCheckpoint, Tree, TreeSize,
    leaf_hash,
};
use rendezvous_protocol::topic::{Action, ChangeOutcome};

mod mirror;
pub use mirror::{Mirrored, host_checkpoint};
use rendezvous_protocol::topic::{
    LogEntry, MemberSpec, TagSet, TopicChange, TopicState, log_origin,
};
use rendezvous_protocol::wire::Signed;

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
    signed: Option<(u64, CheckpointNote)>,
    /// Servers of members removed by entries not yet published: they are sent those entries
    /// (`federation-api.md` §9.1).
    removed_servers: BTreeSet<ServerName>,
    /// `Some` for a topic hosted by another server, which this server mirrors.
    mirror: Option<mirror::MirrorState>,
}

impl HostedTopic {
    fn new(state: TopicState, frontier: Frontier, mirror: Option<mirror::MirrorState>) -> Self {
        HostedTopic {
            state,
            durable: frontier.clone(),
            frontier,
            pending: BTreeMap::new(),
            signed: None,
            removed_servers: BTreeSet::new(),
            mirror,
        }
    }
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
    /// Entries were queued for other servers: flush before acknowledging, so that an
    /// acknowledged entry also reaches them after a crash (`federation-api.md` §9.2).
    pub queued_for_peers: bool,
}

/// All topics this server hosts or mirrors.
#[derive(Debug)]
pub struct TopicHost {
    server_name: ServerName,
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
    /// The topics of the server `server_name` (topics hosted elsewhere are mirrors).
    pub fn new(server_name: ServerName) -> Self {
        TopicHost {
            server_name,
            topics: Mutex::new(HashMap::new()),
        }
    }

    /// The hosted or mirrored topic, loaded from the store on first use.
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
                Ok(rendezvous_protocol::topic::ParsedEntry::Change(signed)) => signed,
                Ok(_) => return Err(ApiError::internal("stored change", "is a message")),
                Err(e) => return Err(ApiError::internal("stored change does not decode", e)),
            };
            changes.push((LeafIndex(index), signed));
        }
        let state = TopicState::restore(changes, TreeSize(size))
            .map_err(|e| ApiError::internal("stored topic does not replay", e))?;
        let tree = Tree::open(TopicNodes::new(store, topic), TreeSize(size))
            .map_err(|e| ApiError::internal("stored tag log does not open", e))?;
        let mirror = match topic.server() == self.server_name {
            true => None,
            false => Some(mirror::MirrorState::load(store, topic)?),
        };
        let hosted = Arc::new(Mutex::new(HostedTopic::new(
            state,
            tree.frontier().clone(),
            mirror,
        )));
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
            check_identities(ctx, members, false)?;
        }
        let topic = outcome.next.topic().clone();
        let mut hosted = HostedTopic::new(outcome.next.clone(), Frontier::new(), None);
        let appended = append_change_entry(ctx, &topic, &mut hosted, None, &outcome)?;
        let mut map = lock(&self.topics);
        map.insert(topic.clone(), Arc::new(Mutex::new(hosted)));
        Ok((topic, appended))
    }

    /// Checks and appends a change by `caller` to a topic hosted here.
    pub fn change(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        bytes: &[u8],
        caller: &UserId,
    ) -> ApiResult<Appended> {
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        hosted_here(&t, topic)?;
        let outcome = check_change_by(ctx, &t, bytes, caller, false)?;
        let before = t.state.clone();
        append_change_entry(ctx, topic, &mut t, Some(&before), &outcome)
    }

    /// Checks and appends a message by `caller` to a topic hosted here.
    pub fn message(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        bytes: &[u8],
        caller: &UserId,
    ) -> ApiResult<Appended> {
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        hosted_here(&t, topic)?;
        let msg = check_message_by(ctx, topic, &t, bytes, caller)?;
        append_message_entry(ctx, topic, &mut t, &msg)
    }

    /// Checks a message or change (`is_change`) by `caller` against the topic's current state
    /// without appending it: what a participating server does before submitting a post to the
    /// hosting server (`federation-api.md` §9.3). Returns the entry's leaf hash, by which its
    /// arrival in the log is recognised.
    pub fn precheck(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        bytes: &[u8],
        caller: &UserId,
        is_change: bool,
    ) -> ApiResult<(LogEntry, LogHash)> {
        let hosted = self.get(ctx.store, topic)?;
        let t = lock(&hosted);
        if let Some(m) = &t.mirror {
            m.not_stopped()?;
        }
        if is_change {
            let outcome = check_change_by(ctx, &t, bytes, caller, true)?;
            let signed = outcome.change.signed_bytes();
            Ok((
                LogEntry::change(&outcome.change),
                leaf_hash(&rendezvous_protocol::topic::leaf_data_for_change(signed)),
            ))
        } else {
            let msg = check_message_by(ctx, topic, &t, bytes, caller)?;
            Ok((LogEntry::message(&msg), leaf_hash(&msg.leaf_data())))
        }
    }

    /// Called once `appended`'s writes are durable (the caller's `sync` returned). Every entry
    /// up to it was written before it, so it is durable too: they are published in log order,
    /// and the returned checkpoint — signed once per durable size, shared by every request the
    /// same flush answered — vouches for exactly the durable prefix, never for an entry a crash
    /// could still lose. For a hosted topic with members on other servers, the entries are
    /// queued for those servers here, under the topic's lock, so that they leave in log order
    /// (`federation-api.md` §9.2). For a mirror, the checkpoint is the hosting server's.
    pub fn durable(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        appended: Appended,
    ) -> ApiResult<(Publish, CheckpointNote)> {
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        let mut out = Publish {
            topic: topic.clone(),
            entries: Vec::new(),
            members: t.state.members().values().map(|m| m.user.clone()).collect(),
            queued_for_peers: false,
        };
        let mut frontiers = Vec::new();
        while let Some(entry) = t.pending.first_entry() {
            if *entry.key() > appended.index {
                break;
            }
            let (index, (bytes, frontier)) = entry.remove_entry();
            out.entries.push((index, bytes));
            frontiers.push(frontier.clone());
            t.durable = frontier;
        }
        let checkpoint = signed_checkpoint(ctx, topic, &mut t)?;
        if t.mirror.is_none() && !out.entries.is_empty() {
            out.queued_for_peers =
                fan_out(ctx, topic, &mut t, &out.entries, &frontiers, &checkpoint);
        }
        Ok((out, checkpoint))
    }

    /// The signed checkpoint of the topic's durable log.
    pub fn checkpoint(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
    ) -> ApiResult<CheckpointNote> {
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        signed_checkpoint(ctx, topic, &mut t)
    }

    /// The size of the topic's durable log (what checkpoints may vouch for).
    pub fn durable_size(&self, store: &Store, topic: &TopicId) -> ApiResult<u64> {
        let hosted = self.get(store, topic)?;
        Ok(lock(&hosted).durable.size().0)
    }

    /// A signed checkpoint of the first `size` entries of a topic hosted here (backfill,
    /// `federation-api.md` §5); `size` must not exceed the durable log.
    pub fn checkpoint_at(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        size: u64,
    ) -> ApiResult<CheckpointNote> {
        if size == self.durable_size(ctx.store, topic)? {
            return self.checkpoint(ctx, topic);
        }
        let root = self
            .root_at(ctx.store, topic, TreeSize(size))?
            .ok_or_else(|| ApiError::new(ErrorCode::Invalid, "beyond the durable log"))?;
        sign_checkpoint_of(ctx, topic, TreeSize(size), root)
    }

    /// The root of the topic's tag log at `size`, if the durable log is that large.
    pub fn root_at(
        &self,
        store: &Store,
        topic: &TopicId,
        size: TreeSize,
    ) -> ApiResult<Option<LogHash>> {
        let hosted = self.get(store, topic)?;
        let durable = lock(&hosted).durable.size();
        if size > durable {
            return Ok(None);
        }
        let tree = Tree::open(TopicNodes::new(store, topic), durable)
            .map_err(|e| ApiError::internal("tag log", e))?;
        tree.root_at(size)
            .map(Some)
            .map_err(|e| ApiError::internal("tag log", e))
    }

    /// A snapshot of the topic's state.
    pub fn state(&self, store: &Store, topic: &TopicId) -> ApiResult<TopicState> {
        let hosted = self.get(store, topic)?;
        let t = lock(&hosted);
        Ok(t.state.clone())
    }
}

/// Identity Keys of users of other servers, fetched before an append that adds them.
pub type RemoteIdentities = HashMap<UserId, IdentityPublicKey>;

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
    /// Where entries for other servers are queued (`None` without federation).
    pub outbound: Option<&'a Outbound>,
    /// Identity Keys of the members on other servers that the append adds.
    pub remote_identities: Option<&'a RemoteIdentities>,
}

/// Every member added must have the Identity Key in the member spec: a user of this server
/// its registered, enabled one; a user of another server the one its homeserver gave
/// (`ctx.remote_identities`, fetched beforehand; `federation-api.md` §9.1). With `local_only`
/// (a mirror checking its hosting server's entries) only this server's users are checked: each
/// server vouches for its own users.
fn check_identities(
    ctx: &AppendContext<'_>,
    members: &[MemberSpec],
    local_only: bool,
) -> ApiResult<()> {
    for m in members {
        let registered = if m.user.server() == *ctx.server_name {
            let record = ctx
                .store
                .user(&m.user)?
                .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no user {}", m.user)))?;
            record.identity_key()?
        } else if local_only {
            continue;
        } else {
            match ctx.remote_identities.and_then(|ids| ids.get(&m.user)) {
                Some(ik) => ik.clone(),
                None => {
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        format!("the identity of {} could not be fetched", m.user),
                    ));
                }
            }
        };
        if registered != m.identity_key {
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

/// Users of other servers among the members a change adds (whose identities must be fetched
/// before the change is checked).
pub fn remote_members_added(bytes: &[u8], own: &ServerName) -> ApiResult<Vec<UserId>> {
    let draft = Signed::<TopicChange>::from_wire(bytes)?.decode_unverified()?;
    let members = match &draft.action {
        Action::Create { members, .. } | Action::Add(members) => members,
        _ => return Ok(Vec::new()),
    };
    Ok(members
        .iter()
        .filter(|m| m.user.server() != *own)
        .map(|m| m.user.clone())
        .collect())
}

/// Queues `topic.entry` events with the durable `entries` for every other server with a member,
/// and for the servers of members removed meanwhile (`federation-api.md` §9.1–§9.2); returns
/// whether anything was queued. Failures are logged: a participant that misses entries
/// backfills them when the next ones arrive.
fn fan_out(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &mut HostedTopic,
    entries: &[(u64, Vec<u8>)],
    frontiers: &[Frontier],
    checkpoint: &CheckpointNote,
) -> bool {
    let mut servers: BTreeSet<ServerName> = t
        .state
        .members()
        .values()
        .map(|m| m.user.server())
        .filter(|s| s != ctx.server_name)
        .collect();
    servers.extend(t.removed_servers.iter().cloned());
    if t.pending.is_empty() {
        t.removed_servers.clear();
    }
    let Some(outbound) = ctx.outbound else {
        return false;
    };
    if servers.is_empty() {
        return false;
    }
    let Some(&(first, _)) = entries.first() else {
        return false;
    };
    let mut queued = false;
    for (start, end) in rendezvous_protocol::federation::topic_events::batch_ranges(entries) {
        let from = usize::try_from(start - first).unwrap_or(usize::MAX);
        let to = usize::try_from(end - first).unwrap_or(usize::MAX);
        let (Some(batch), Some(frontier)) = (entries.get(from..to), frontiers.get(to - 1)) else {
            continue;
        };
        let note = if to == entries.len() {
            checkpoint.clone()
        } else {
            match sign_checkpoint(ctx, topic, frontier) {
                Ok(note) => note,
                Err(e) => {
                    tracing::error!(%topic, %e, "signing a checkpoint for fan-out");
                    return queued;
                }
            }
        };
        let payload = rendezvous_protocol::federation::topic_events::EntryBatch {
            first: LeafIndex(start),
            entries: batch
                .iter()
                .map(|(_, e)| serde_bytes::ByteBuf::from(e.clone()))
                .collect(),
            checkpoint: note,
        }
        .to_wire();
        for server in &servers {
            let event = rendezvous_protocol::federation::Event::sign(
                ctx.server_name,
                server,
                rendezvous_protocol::federation::EventKind::TopicEntry,
                Some(topic),
                payload.clone(),
                ctx.now,
                ctx.server_key,
            );
            match outbound.enqueue_unsynced(server, event.signed_bytes()) {
                Ok(_) => queued = true,
                Err(e) => {
                    tracing::error!(%topic, %server, %e, "queueing entries for a participating server")
                }
            }
        }
    }
    queued
}

/// Refuses appends through the host's paths to a topic hosted elsewhere.
fn hosted_here(t: &HostedTopic, topic: &TopicId) -> ApiResult<()> {
    match t.mirror {
        None => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorCode::NotHosting,
            format!("{topic} is hosted by {}", topic.server()),
        )),
    }
}

/// The topic rules for a change by `caller`: the author must be the caller, the change must
/// pass the state machine, and added members must have their registered Identity Keys.
fn check_change_by(
    ctx: &AppendContext<'_>,
    t: &HostedTopic,
    bytes: &[u8],
    caller: &UserId,
    local_only: bool,
) -> ApiResult<ChangeOutcome> {
    let signed = Signed::<TopicChange>::from_wire(bytes)?;
    let draft = signed.decode_unverified()?;
    let author = t.state.member(draft.author).ok_or_else(|| {
        ApiError::from(rendezvous_protocol::topic::ChangeError::UnknownAuthor(
            draft.author,
        ))
    })?;
    if author.user != *caller {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "the author must be the caller",
        ));
    }
    let outcome = t.state.check_change(signed)?;
    if let Action::Add(members) = &outcome.change.action {
        check_identities(ctx, members, local_only)?;
    }
    Ok(outcome)
}

/// The topic rules for a message by `caller`: the sender must be the caller, and the message
/// must pass the state machine (epoch, role, signature, tag not in the log).
fn check_message_by(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &HostedTopic,
    bytes: &[u8],
    caller: &UserId,
) -> ApiResult<Message> {
    let msg_in = MessageIn::from_wire(bytes)?;
    let sender = msg_in.header().sender;
    match t.state.member(sender) {
        Some(m) if m.user == *caller => {}
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "the sender must be the caller",
            ));
        }
        None => return Err(rendezvous_protocol::message::MessageError::NotAMember(sender).into()),
    }
    let tags = StoreTags {
        store: ctx.store,
        topic,
    };
    Ok(t.state.check_message(msg_in, &tags)?)
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

/// Writes a checked message as the topic's next entry and records it as pending.
fn append_message_entry(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &mut HostedTopic,
    msg: &Message,
) -> ApiResult<Appended> {
    let entry = LogEntry::message(msg).to_wire();
    let index = t.state.size().get();
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
    t.state.append_message(msg)?;
    t.pending.insert(index, (entry, frontier.clone()));
    t.frontier = frontier;
    Ok(Appended { index })
}

fn append_change_entry(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &mut HostedTopic,
    before: Option<&TopicState>,
    outcome: &ChangeOutcome,
) -> ApiResult<Appended> {
    let entry = LogEntry::change(&outcome.change).to_wire();
    let index = before.map_or(0, |b| b.size().get());
    let (frontier, nodes) = grown(
        &t.frontier,
        &rendezvous_protocol::topic::leaf_data_for_change(outcome.change.signed_bytes()),
    )?;
    let mut memberships = Vec::new();
    for m in outcome.next.members().values() {
        if m.user.server() == *ctx.server_name {
            memberships.push((m.user.clone(), Some(m.role.to_wire())));
        }
    }
    if let Some(before) = before {
        for m in before.members().values() {
            if outcome.next.member_of(&m.user).is_some() {
                continue;
            }
            match m.user.server() == *ctx.server_name {
                true => memberships.push((m.user.clone(), None)),
                // federation-api.md §9.1: a removed member's server is told of the removal.
                false => {
                    t.removed_servers.insert(m.user.server());
                }
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
) -> ApiResult<CheckpointNote> {
    if let Some(m) = &t.mirror {
        return m.checkpoint();
    }
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
) -> ApiResult<CheckpointNote> {
    sign_checkpoint_of(ctx, topic, frontier.size(), frontier.root())
}

fn sign_checkpoint_of(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    size: TreeSize,
    root: LogHash,
) -> ApiResult<CheckpointNote> {
    let cp = Checkpoint::new(&log_origin(topic), size, root, ctx.now)
        .map_err(|e| ApiError::internal("checkpoint", e))?;
    let signed = SignedCheckpoint::sign(&cp, ctx.server_key, ctx.server_name.as_str())
        .map_err(|e| ApiError::internal("checkpoint", e))?;
    Ok(signed.to_note())
}

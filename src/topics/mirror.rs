//! Mirroring topics hosted by other servers (`federation-api.md` §9.2, §9.4).
//!
//! A participating server applies the hosting server's `topic.entry` batches with the same
//! state machine and the same append code as a hosted topic, after checking that the batch's
//! entries give exactly the root of the hosting server's signed checkpoint. Checkpoints are
//! compared with [`LogView`], the one place where the tag-log rules (consistency, split views,
//! rollbacks) live; contradictions stop the mirror and are kept as evidence.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_bytes::ByteBuf;

use super::{
    AppendContext, Appended, HostedTopic, StoreTags, TopicHost, append_change_entry,
    append_message_entry, check_identities, grown, lock,
};
use crate::error::{ApiError, ApiResult};
use crate::store::{Store, TopicNodes};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::federation::topic_events::{EntryBatch, MirrorEvidence};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::message::{Message, MessageTag};
use rendezvous_protocol::tlog::{
    Checkpoint, CheckpointNote, ConsistencyProof, Frontier, LogHash, LogView, SignedCheckpoint,
    Tree, TreeSize, WitnessError, leaf_hash,
};
use rendezvous_protocol::topic::{
    Action, ChangeOutcome, LogEntry, ParsedEntry, TagSet, TopicState, leaf_data_for_change,
    log_origin,
};

/// A mirror's bookkeeping besides the topic's state and log.
#[derive(Debug, Default)]
pub(crate) struct MirrorState {
    /// The hosting server's latest verified checkpoint note.
    head: Option<String>,
    /// Evidence was found against the hosting server: the mirror takes no more entries.
    stopped: bool,
}

impl MirrorState {
    pub(super) fn load(store: &Store, topic: &TopicId) -> ApiResult<MirrorState> {
        Ok(MirrorState {
            head: store.mirror_head(topic)?,
            stopped: store.mirror_evidence(topic)?.is_some(),
        })
    }

    pub(super) fn not_stopped(&self) -> ApiResult<()> {
        match self.stopped {
            false => Ok(()),
            true => Err(ApiError::new(
                ErrorCode::SplitView,
                "the hosting server showed this server a log that contradicts another it \
                 signed; the evidence is kept and the topic's log is no longer followed",
            )),
        }
    }

    /// The hosting server's checkpoint that readers of the mirror get.
    pub(super) fn checkpoint(&self) -> ApiResult<CheckpointNote> {
        self.not_stopped()?;
        let head = self.head.clone().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                "no checkpoint from the hosting server yet",
            )
        })?;
        CheckpointNote::parse(head).map_err(|e| ApiError::internal("stored mirror head", e))
    }
}

/// What applying a `topic.entry` batch did.
#[derive(Debug)]
pub enum Mirrored {
    /// New entries were written (durable after the next flush; then publish up to `last`).
    Applied {
        /// The last entry written.
        last: Appended,
        /// The leaf hashes of the new entries, in order (to recognise submitted posts).
        leaves: Vec<LogHash>,
    },
    /// The mirror already had every entry; nothing changed.
    Unchanged,
    /// Entries from `from` on are missing: backfill them before this batch.
    Gap {
        /// The mirror's size.
        from: u64,
    },
}

/// An entry checked against the state before it, to be written.
enum Planned {
    Message(Message),
    Change(Box<PlannedChange>),
}

/// A change checked against the state before it (`None`: it creates the topic).
struct PlannedChange {
    before: Option<TopicState>,
    outcome: ChangeOutcome,
}

/// Tags of the store plus those earlier in the batch being checked.
struct BatchTags<'a> {
    store: StoreTags<'a>,
    batch: &'a HashSet<MessageTag>,
}

impl TagSet for BatchTags<'_> {
    fn contains(&self, tag: &MessageTag) -> bool {
        self.batch.contains(tag) || self.store.contains(tag)
    }
}

fn bad_checkpoint(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::BadCheckpoint, reason.to_string())
}

/// The key of `host` that signed `note`, and the verified checkpoint.
fn verify_host(
    note: &SignedCheckpoint,
    host_keys: &[ServerPublicKey],
    host: &ServerName,
) -> ApiResult<(ServerPublicKey, Checkpoint)> {
    for key in host_keys {
        if let Ok(c) = note.verify(key, host.as_str()) {
            return Ok((key.clone(), c.clone()));
        }
    }
    Err(bad_checkpoint(format!(
        "the checkpoint is not signed by a key of {host}"
    )))
}

/// Parses and verifies a note of the hosting server for `topic`.
pub fn host_checkpoint(
    note: &str,
    topic: &TopicId,
    host_keys: &[ServerPublicKey],
) -> ApiResult<(SignedCheckpoint, ServerPublicKey, Checkpoint)> {
    let signed = SignedCheckpoint::parse(note.as_bytes()).map_err(bad_checkpoint)?;
    let (key, c) = verify_host(&signed, host_keys, &topic.server())?;
    if c.origin != log_origin(topic) {
        return Err(bad_checkpoint(format!(
            "checkpoint of log {:?}, not of {topic}",
            c.origin
        )));
    }
    Ok((signed, key, c))
}

impl TopicHost {
    /// Applies a `topic.entry` batch from the topic's hosting server, whose current keys are
    /// `host_keys` (`federation-api.md` §9.2, checks 3–9). Nothing is written unless every new
    /// entry passes and the log they make has the checkpoint's root.
    pub fn mirror(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        batch: &EntryBatch,
        host_keys: &[ServerPublicKey],
    ) -> ApiResult<Mirrored> {
        if topic.server() == self.server_name {
            return Err(ApiError::new(
                ErrorCode::NotHosting,
                format!("{topic} is hosted here"),
            ));
        }
        let (note, key, c) = host_checkpoint(&batch.checkpoint, topic, host_keys)?;
        if c.size != batch.end() {
            return Err(bad_checkpoint(format!(
                "checkpoint of size {}, entries end at {}",
                c.size.0,
                batch.end()
            )));
        }
        let existing = match self.get(ctx.store, topic) {
            Ok(h) => Some(h),
            Err(e) if e.code == ErrorCode::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(hosted) = existing else {
            if batch.first != 0 {
                return Ok(Mirrored::Gap { from: 0 });
            }
            let (planned, frontier, after) =
                plan(ctx, topic, None, &Frontier::new(), &batch.entries)?;
            check_root(&frontier, &c)?;
            participates(ctx, None, &planned, &after)?;
            let Some(Planned::Change(create)) = planned.first() else {
                return Err(ApiError::internal("mirror", "planned log without creation"));
            };
            let create = &create.outcome;
            // In the map before anything is written, so that no reader loads a half-written
            // topic from the store; taken out again if the writes fail.
            let fresh = Arc::new(Mutex::new(HostedTopic::new(
                create.next.clone(),
                Frontier::new(),
                Some(MirrorState::default()),
            )));
            let mut t = lock(&fresh);
            {
                let mut map = lock(&self.topics);
                if map.contains_key(topic) {
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "the topic's mirror started meanwhile; try again",
                    ));
                }
                map.insert(topic.clone(), fresh.clone());
            }
            let written = write(ctx, topic, &mut t, planned, note, &key, None);
            if written.is_err() {
                lock(&self.topics).remove(topic);
            }
            return written;
        };

        let mut t = lock(&hosted);
        let Some(m) = &t.mirror else {
            return Err(ApiError::new(
                ErrorCode::NotHosting,
                format!("{topic} is hosted here"),
            ));
        };
        m.not_stopped()?;
        let held = m.head.clone();
        let size = t.state.size().get();
        let (first, end) = (batch.first.get(), batch.end().get());
        if first > size {
            return Ok(Mirrored::Gap { from: size });
        }
        // Entries the mirror has must be the same bytes (check 6).
        let overlap_end = end.min(size);
        for index in first..overlap_end {
            let stored = ctx.store.entry(topic, index)?;
            let offered = batch
                .entries
                .get(usize::try_from(index - first).unwrap_or(usize::MAX));
            if stored.as_deref() != offered.map(|b| b.as_slice()) {
                let reason = format!("entry {index} differs from the one the mirror holds");
                return Err(stop(
                    ctx,
                    topic,
                    &mut t,
                    held.as_deref(),
                    &batch.checkpoint,
                    &reason,
                ));
            }
        }
        if end <= size {
            // A repeat: the checkpoint must still agree with the mirror's log.
            if stored_root(ctx, topic, TreeSize(size), c.size)? != c.root {
                let reason = format!("checkpoint of size {} has another root", c.size.0);
                return Err(stop(
                    ctx,
                    topic,
                    &mut t,
                    held.as_deref(),
                    &batch.checkpoint,
                    &reason,
                ));
            }
            return Ok(Mirrored::Unchanged);
        }
        let skip = usize::try_from(size - first).unwrap_or(usize::MAX);
        let new = batch.entries.get(skip..).unwrap_or_default();
        let (planned, frontier, after) = plan(ctx, topic, Some(&t.state), &t.frontier, new)?;
        check_root(&frontier, &c)?;
        participates(ctx, Some(&t.state), &planned, &after)?;
        write(ctx, topic, &mut t, planned, note, &key, held.as_deref())
    }

    /// Compares another server's cosigned checkpoint of the hosting server with this mirror's
    /// log (`federation-api.md` §9.4). Returns `false` when it is larger than the mirror (kept
    /// for later by the caller); a contradiction stops the mirror and is an error.
    pub fn compare_witness(
        &self,
        ctx: &AppendContext<'_>,
        topic: &TopicId,
        note: &str,
        host_keys: &[ServerPublicKey],
    ) -> ApiResult<bool> {
        let (_, _, c) = host_checkpoint(note, topic, host_keys)?;
        let hosted = self.get(ctx.store, topic)?;
        let mut t = lock(&hosted);
        let Some(m) = &t.mirror else {
            return Ok(true);
        };
        m.not_stopped()?;
        let held = m.head.clone();
        let size = t.durable.size();
        if c.size > size {
            return Ok(false);
        }
        if stored_root(ctx, topic, size, c.size)? == c.root {
            return Ok(true);
        }
        let reason = format!(
            "another server was shown a log of size {} with a root this mirror's log does not have",
            c.size.0
        );
        Err(stop(ctx, topic, &mut t, held.as_deref(), note, &reason))
    }
}

/// The root at `at` of the topic's stored tag log of size `size`.
fn stored_root(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    size: TreeSize,
    at: TreeSize,
) -> ApiResult<LogHash> {
    Tree::open(TopicNodes::new(ctx.store, topic), size)
        .and_then(|tree| tree.root_at(at))
        .map_err(|e| ApiError::internal("mirror tag log", e))
}

/// Checks `entries` in order against the state after `start` (none: the first must create the
/// topic). Returns the planned writes, the tag log after them and the state after them.
fn plan(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    start: Option<&TopicState>,
    frontier: &Frontier,
    entries: &[ByteBuf],
) -> ApiResult<(Vec<Planned>, Frontier, TopicState)> {
    let mut state = start.cloned();
    let mut frontier = frontier.clone();
    let mut seen = HashSet::new();
    let mut planned = Vec::with_capacity(entries.len());
    for bytes in entries {
        let entry = LogEntry::from_wire(bytes)?.parse()?;
        match (entry, state.as_mut()) {
            (ParsedEntry::Change(signed), None) => {
                let outcome = TopicState::create(signed)?;
                if outcome.next.topic() != topic {
                    return Err(ApiError::new(
                        ErrorCode::Invalid,
                        "the creation names another topic",
                    ));
                }
                if let Action::Create { members, .. } = &outcome.change.action {
                    check_identities(ctx, members, true)?;
                }
                frontier = grown(
                    &frontier,
                    &leaf_data_for_change(outcome.change.signed_bytes()),
                )?
                .0;
                state = Some(outcome.next.clone());
                planned.push(Planned::Change(Box::new(PlannedChange {
                    before: None,
                    outcome,
                })));
            }
            (ParsedEntry::Message(_), None) => {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    "a topic's log starts with its creation",
                ));
            }
            (ParsedEntry::Change(signed), Some(st)) => {
                let outcome = st.check_change(signed)?;
                if let Action::Add(members) = &outcome.change.action {
                    check_identities(ctx, members, true)?;
                }
                frontier = grown(
                    &frontier,
                    &leaf_data_for_change(outcome.change.signed_bytes()),
                )?
                .0;
                let before = std::mem::replace(st, outcome.next.clone());
                planned.push(Planned::Change(Box::new(PlannedChange {
                    before: Some(before),
                    outcome,
                })));
            }
            (ParsedEntry::Message(msg_in), Some(st)) => {
                let tags = BatchTags {
                    store: StoreTags {
                        store: ctx.store,
                        topic,
                    },
                    batch: &seen,
                };
                let msg = st.check_message(msg_in, &tags)?;
                st.append_message(&msg)?;
                seen.insert(*msg.tag());
                frontier = grown(&frontier, &msg.leaf_data())?.0;
                planned.push(Planned::Message(msg));
            }
        }
    }
    let state = state.ok_or_else(|| ApiError::new(ErrorCode::Malformed, "no entries"))?;
    Ok((planned, frontier, state))
}

/// Check 8: the entries make the checkpoint's log.
fn check_root(frontier: &Frontier, c: &Checkpoint) -> ApiResult<()> {
    if frontier.size() != c.size || frontier.root() != c.root {
        return Err(bad_checkpoint(format!(
            "the entries do not make the log of the checkpoint of size {}",
            c.size.0
        )));
    }
    Ok(())
}

/// Check 9: a server keeps only topics its users are in (or were, until this batch).
fn participates(
    ctx: &AppendContext<'_>,
    before: Option<&TopicState>,
    planned: &[Planned],
    after: &TopicState,
) -> ApiResult<()> {
    let local = |s: &TopicState| {
        s.members()
            .values()
            .any(|m| m.user.server() == *ctx.server_name)
    };
    let removed_local = planned.iter().any(|p| match p {
        Planned::Change(c) => c.before.as_ref().is_some_and(local),
        Planned::Message(_) => false,
    });
    if local(after) || removed_local || before.is_some_and(local) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::NotParticipant,
        format!("{} has no member in this topic", ctx.server_name),
    ))
}

/// Writes planned entries (each one atomic store write), then advances the mirror's head.
fn write(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &mut HostedTopic,
    planned: Vec<Planned>,
    note: SignedCheckpoint,
    key: &ServerPublicKey,
    held: Option<&str>,
) -> ApiResult<Mirrored> {
    let mut leaves = Vec::with_capacity(planned.len());
    let mut last = None;
    for p in planned {
        let appended = match p {
            Planned::Message(msg) => {
                leaves.push(leaf_hash(&msg.leaf_data()));
                append_message_entry(ctx, topic, t, &msg)?
            }
            Planned::Change(c) => {
                leaves.push(leaf_hash(&leaf_data_for_change(
                    c.outcome.change.signed_bytes(),
                )));
                append_change_entry(ctx, topic, t, c.before.as_ref(), &c.outcome)?
            }
        };
        last = Some(appended);
    }
    let last = last.ok_or_else(|| ApiError::new(ErrorCode::Malformed, "no entries"))?;
    advance_head(ctx, topic, t, &note, key, held)?;
    Ok(Mirrored::Applied { last, leaves })
}

/// Offers the new checkpoint to the mirror's [`LogView`], with the consistency proof from the
/// mirror's own tree; evidence stops the mirror.
fn advance_head(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &mut HostedTopic,
    note: &SignedCheckpoint,
    key: &ServerPublicKey,
    held: Option<&str>,
) -> ApiResult<()> {
    let host = topic.server();
    let origin = log_origin(topic);
    let mut view = match held.map(|h| SignedCheckpoint::parse(h.as_bytes())) {
        Some(Ok(h)) => match LogView::resume(&origin, key.clone(), host.as_str(), h) {
            Ok(view) => view,
            // Signed by a retired key: start the view afresh from the new checkpoint.
            Err(_) => LogView::new(&origin, key.clone(), host.as_str()),
        },
        _ => LogView::new(&origin, key.clone(), host.as_str()),
    };
    let new_size = note.unverified_checkpoint().size;
    let old_size = view
        .latest()
        .map_or(TreeSize(0), |l| l.unverified_checkpoint().size);
    // From the empty tree, and between equal sizes, no proof is needed (`LogView::update`); a
    // smaller checkpoint is stale or a rollback whatever the proof.
    let proof = if old_size.0 == 0 || old_size >= new_size {
        ConsistencyProof {
            old: old_size,
            new: new_size,
            path: Vec::new(),
        }
    } else {
        let tree = Tree::open(TopicNodes::new(ctx.store, topic), t.frontier.size())
            .map_err(|e| ApiError::internal("mirror tag log", e))?;
        tree.consistency_proof(old_size, new_size)
            .map_err(|e| ApiError::internal("mirror consistency proof", e))?
    };
    match view.update(note.clone(), &proof) {
        Ok(_) => {}
        Err(WitnessError::Stale { .. }) => return Ok(()),
        Err(e) => {
            let reason = format!("checkpoint refused: {e}");
            let a = held.unwrap_or_default().to_owned();
            return Err(stop(ctx, topic, t, Some(&a), &note.to_note(), &reason));
        }
    }
    let text = note.to_note().into_string();
    ctx.store.set_mirror_head(topic, &text)?;
    if let Some(m) = &mut t.mirror {
        m.head = Some(text);
    }
    Ok(())
}

/// Keeps evidence against the hosting server and stops the mirror (`federation-api.md` §9.4);
/// returns the `split_view` error to answer with.
fn stop(
    ctx: &AppendContext<'_>,
    topic: &TopicId,
    t: &mut HostedTopic,
    held: Option<&str>,
    other: &str,
    reason: &str,
) -> ApiError {
    tracing::error!(%topic, host = %topic.server(), reason, "evidence against a hosting server; mirror stopped");
    let evidence = MirrorEvidence {
        reason: reason.to_owned(),
        a: held.unwrap_or_default().to_owned(),
        b: other.to_owned(),
    };
    if let Err(e) = ctx.store.set_mirror_evidence(topic, &evidence.to_wire()) {
        tracing::error!(%topic, %e, "storing evidence");
    }
    if let Some(m) = &mut t.mirror {
        m.stopped = true;
    }
    ApiError::new(ErrorCode::SplitView, reason.to_owned())
}

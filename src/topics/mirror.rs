//! Mirroring topics hosted by other servers (`federation-api.md` §9.2, §9.4).
//!
//! A participating server applies the hosting server's `topic.entry` batches with the same
//! state machine and the same append code as a hosted topic, after checking that the batch's
//! entries give exactly the root of the hosting server's signed checkpoint. Checkpoints are
//! compared with [`LogView`], the one place where the tag-log rules (consistency, split views,
//! rollbacks) live; contradictions stop the mirror and are kept as evidence.

use std::collections::HashSet;

use serde_bytes::ByteBuf;

use super::append::{Appended, LogRoots, StoreTags, shared};
use super::error::{TopicError, TopicResult};
use super::hosted::{Log, Mirror, Topic};
use super::lock;
use super::pinned::HostKeySet;
use super::service::TopicService;
use crate::store::TopicNodes;
use rendezvous_protocol::federation::topic_events::{EntryBatch, MirrorEvidence};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::message::{Message, MessageTag};
use rendezvous_protocol::tlog::{
    Checkpoint, ConsistencyProof, Evidence, Frontier, HostKeys, LogHash, LogView, RootAt, Roots,
    SignedCheckpoint, TlogError, Tree, TreeSize, WitnessError, leaf_hash,
};
use rendezvous_protocol::topic::{
    ChangeOutcome, LogEntry, ParsedEntry, TagSet, TagsUnavailable, TopicState,
    leaf_data_for_change, log_origin,
};

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
// Most planned entries are messages: moved, not boxed (one allocation each otherwise).
#[allow(clippy::large_enum_variant)]
enum Planned {
    Message(Message),
    Change(Box<PlannedChange>),
}

/// A change checked against the state before it (`None`: it creates the topic).
struct PlannedChange {
    before: Option<TopicState>,
    outcome: ChangeOutcome,
}

/// Checked entries, the tag log after them and the state after them.
struct Plan {
    entries: Vec<Planned>,
    frontier: Frontier,
    after: TopicState,
}

/// A verified checkpoint of the hosting server, with its note and the chain it was checked with.
pub(super) struct HostCheckpoint {
    pub(super) note: SignedCheckpoint,
    pub(super) keys: HostKeys,
    pub(super) checkpoint: Checkpoint,
    /// Why the key that signed it is evidence against the host (off the pinned chain, or out of
    /// its period), if it is.
    pub(super) key_changed: Option<String>,
}

/// Tags of the store plus those earlier in the batch being checked.
struct BatchTags<'a> {
    store: StoreTags<'a>,
    batch: &'a HashSet<MessageTag>,
}

impl TagSet for BatchTags<'_> {
    fn contains(&self, tag: &MessageTag) -> Result<bool, TagsUnavailable> {
        Ok(self.batch.contains(tag) || self.store.contains(tag)?)
    }
}

/// The mirror's own roots while it checks a batch (`protocol.md` §6.4): those within the batch
/// from the batch's [`Roots`] (32 bytes per entry of the batch), earlier ones from its stored log.
struct BatchRoots<'a> {
    stored: LogRoots<'a>,
    batch: &'a Roots,
}

impl RootAt for BatchRoots<'_> {
    fn root_at(&self, size: TreeSize) -> Result<LogHash, TlogError> {
        if size >= self.batch.start() {
            self.batch.root_at(size)
        } else {
            self.stored.root_at(size)
        }
    }
}

/// Parses and verifies a note of the hosting server for `topic`.
pub(super) fn host_checkpoint(
    note: &str,
    topic: &TopicId,
    keys: &HostKeySet,
) -> TopicResult<Checkpoint> {
    Ok(parse_host_checkpoint(note, topic, keys)?.checkpoint)
}

pub(super) fn parse_host_checkpoint(
    note: &str,
    topic: &TopicId,
    keys: &HostKeySet,
) -> TopicResult<HostCheckpoint> {
    let signed = SignedCheckpoint::parse(note.as_bytes()).map_err(TopicError::bad_checkpoint)?;
    let key_changed = keys.check(&signed, topic)?;
    let c = signed.unverified_checkpoint().clone();
    if c.origin != log_origin(topic) {
        return Err(TopicError::bad_checkpoint(format!(
            "checkpoint of log {:?}, not of {topic}",
            c.origin
        )));
    }
    Ok(HostCheckpoint {
        note: signed,
        keys: keys.chain.clone(),
        checkpoint: c,
        key_changed,
    })
}

impl TopicService {
    /// Applies a `topic.entry` batch from the topic's hosting server, whose keys are `keys`
    /// (`federation-api.md` §9.2, checks 3–9). Nothing is written unless every new entry
    /// passes and the log they make has the checkpoint's root.
    pub(super) fn mirror(
        &self,
        topic: &TopicId,
        batch: &EntryBatch,
        keys: &HostKeySet,
    ) -> TopicResult<Mirrored> {
        if topic.server() == self.server_name {
            return Err(TopicError::HostedHere {
                topic: topic.clone(),
            });
        }
        let host = parse_host_checkpoint(&batch.checkpoint, topic, keys)?;
        let c = &host.checkpoint;
        if c.size != batch.end() {
            return Err(TopicError::bad_checkpoint(format!(
                "checkpoint of size {}, entries end at {}",
                c.size.0,
                batch.end()
            )));
        }
        match self.get(topic) {
            Ok(t) => {
                let mut t = lock(&t);
                match &mut *t {
                    Topic::Mirror(m) => self.mirror_more(topic, m, batch, &host),
                    Topic::Hosted(_) => Err(TopicError::HostedHere {
                        topic: topic.clone(),
                    }),
                }
            }
            Err(TopicError::NoTopic { .. }) => self.mirror_first(topic, batch, &host),
            Err(e) => Err(e),
        }
    }

    /// The first batch of a topic this server does not mirror yet: it must start at the
    /// creation.
    fn mirror_first(
        &self,
        topic: &TopicId,
        batch: &EntryBatch,
        host: &HostCheckpoint,
    ) -> TopicResult<Mirrored> {
        if batch.first != 0 {
            return Ok(Mirrored::Gap { from: 0 });
        }
        let plan = self.plan(topic, None, &Frontier::new(), &batch.entries)?;
        check_root(&plan.frontier, &host.checkpoint)?;
        self.participates(None, &plan)?;
        self.mirror_quota(&topic.server())?;
        let Some(Planned::Change(create)) = plan.entries.first() else {
            return Err(TopicError::internal(
                "mirror",
                "planned log without creation",
            ));
        };
        // The create names a key of the chain the host's checkpoints are under, which is pinned
        // from here on (`tag-log.md` §7.5, §7.6): a log whose creator named another key, or
        // whose checkpoint is under a key off the chain, is not mirrored.
        let named = match &host.key_changed {
            Some(reason) => Err(TopicError::bad_checkpoint(reason.clone())),
            None => create
                .outcome
                .next
                .check_host_keys(&host.keys)
                .map_err(Into::into),
        };
        if let Err(e) = named {
            tracing::error!(%topic, %e, "refusing to mirror: the create names another host key");
            return Err(e);
        }
        let log = Log::new(create.outcome.next.clone(), Frontier::new());
        // In the map before anything is written, so that no reader loads a half-written
        // topic from the store; taken out again if the writes fail.
        let fresh = shared(Topic::Mirror(Mirror::new(log)));
        let mut t = lock(&fresh);
        self.insert_new(topic, fresh.clone())?;
        let Topic::Mirror(m) = &mut *t else {
            return Err(TopicError::internal("mirror", "a fresh mirror is hosted"));
        };
        let written = self.write(topic, m, plan.entries, host);
        match &written {
            Ok(_) => self.mirror_added(&topic.server()),
            Err(_) => self.forget(topic),
        }
        written
    }

    /// A batch for a mirror this server has: entries it holds must be the same bytes, new ones
    /// must pass and make the checkpoint's log.
    fn mirror_more(
        &self,
        topic: &TopicId,
        m: &mut Mirror,
        batch: &EntryBatch,
        host: &HostCheckpoint,
    ) -> TopicResult<Mirrored> {
        m.not_stopped()?;
        if let Some(reason) = &host.key_changed {
            return Err(self.stop(topic, m, &batch.checkpoint, reason));
        }
        let c = &host.checkpoint;
        let size = m.log.state.size().get();
        let (first, end) = (batch.first.get(), batch.end().get());
        if first > size {
            return Ok(Mirrored::Gap { from: size });
        }
        // Entries the mirror has must be the same bytes (check 6).
        let overlap_end = end.min(size);
        for index in first..overlap_end {
            let stored = self.store.entry(topic, index)?;
            let offered = batch
                .entries
                .get(usize::try_from(index - first).unwrap_or(usize::MAX));
            if stored.as_deref() != offered.map(|b| b.as_slice()) {
                let reason = format!("entry {index} differs from the one the mirror holds");
                return Err(self.stop(topic, m, &batch.checkpoint, &reason));
            }
        }
        if end <= size {
            // A repeat: the checkpoint must still agree with the mirror's log.
            if self.stored_root(topic, TreeSize(size), c.size)? != c.root {
                let reason = format!("checkpoint of size {} has another root", c.size.0);
                return Err(self.stop(topic, m, &batch.checkpoint, &reason));
            }
            return Ok(Mirrored::Unchanged);
        }
        let skip = usize::try_from(size - first).unwrap_or(usize::MAX);
        let new = batch.entries.get(skip..).unwrap_or_default();
        let plan = self.plan(topic, Some(&m.log.state), &m.log.frontier, new)?;
        check_root(&plan.frontier, c)?;
        self.participates(Some(&m.log.state), &plan)?;
        self.write(topic, m, plan.entries, host)
    }

    /// Compares another server's cosigned checkpoint of the hosting server with this mirror's
    /// log (`federation-api.md` §9.4). Returns `false` when it is larger than the mirror (kept
    /// for later by the caller); a contradiction stops the mirror and is an error.
    pub(super) fn compare_witness(
        &self,
        topic: &TopicId,
        note: &str,
        keys: &HostKeySet,
    ) -> TopicResult<bool> {
        let host = parse_host_checkpoint(note, topic, keys)?;
        if host.key_changed.is_some() {
            return Err(TopicError::bad_checkpoint(
                "the cosigned checkpoint is not under this topic's pinned keys",
            ));
        }
        let c = &host.checkpoint;
        let t = self.get(topic)?;
        let mut t = lock(&t);
        let Topic::Mirror(m) = &mut *t else {
            return Ok(true);
        };
        m.not_stopped()?;
        // tag-log.md §8.1: the two notes contradict each other by themselves (a larger one
        // signed earlier than a smaller one, in either order), whatever the sizes.
        if let Some(evidence) = head_contradiction(m, &host) {
            let reason = format!(
                "another server was shown a checkpoint that contradicts this mirror's head: {}",
                evidence.kind()
            );
            return Err(self.stop_with(topic, m, &evidence, &reason));
        }
        let size = m.log.durable.size();
        if c.size > size {
            return Ok(false);
        }
        if self.stored_root(topic, size, c.size)? == c.root {
            return Ok(true);
        }
        let reason = format!(
            "another server was shown a log of size {} with a root this mirror's log does not have",
            c.size.0
        );
        Err(self.stop(topic, m, note, &reason))
    }

    /// The root at `at` of the topic's stored tag log of size `size`.
    fn stored_root(&self, topic: &TopicId, size: TreeSize, at: TreeSize) -> TopicResult<LogHash> {
        Tree::open(TopicNodes::new(&self.store, topic), size)
            .and_then(|tree| tree.root_at(at))
            .map_err(|e| TopicError::internal("mirror tag log", e))
    }

    /// Checks `entries` in order against the state after `start` (none: the first must create
    /// the topic).
    fn plan(
        &self,
        topic: &TopicId,
        start: Option<&TopicState>,
        frontier: &Frontier,
        entries: &[ByteBuf],
    ) -> TopicResult<Plan> {
        let mut state = start.cloned();
        let mut roots = Roots::resume(frontier.clone());
        let mut seen = HashSet::new();
        let mut planned = Vec::with_capacity(entries.len());
        for bytes in entries {
            let entry = LogEntry::from_wire(bytes)?.parse()?;
            let (next, leaf) = match (entry, state.as_mut()) {
                (ParsedEntry::Change(signed), None) => {
                    let outcome = TopicState::create(signed)?;
                    if outcome.next.topic() != topic {
                        return Err(TopicError::CreationForAnotherTopic);
                    }
                    let members = outcome.change.action.introduced_members();
                    if !members.is_empty() {
                        let index = frontier.size().0 + planned.len() as u64;
                        self.check_mirrored_identities(topic, index, members, bytes)?;
                    }
                    state = Some(outcome.next.clone());
                    planned_change(None, outcome)
                }
                (ParsedEntry::Message(_), None) => return Err(TopicError::LogWithoutCreation),
                (ParsedEntry::Change(signed), Some(st)) => {
                    let outcome = st.check_change(signed, &roots.root())?;
                    let members = outcome.change.action.introduced_members();
                    if !members.is_empty() {
                        let index = frontier.size().0 + planned.len() as u64;
                        self.check_mirrored_identities(topic, index, members, bytes)?;
                    }
                    let before = std::mem::replace(st, outcome.next.clone());
                    planned_change(Some(before), outcome)
                }
                (ParsedEntry::Message(msg_in), Some(st)) => {
                    let tags = BatchTags {
                        store: StoreTags {
                            store: &self.store,
                            topic,
                        },
                        batch: &seen,
                    };
                    let own = BatchRoots {
                        stored: LogRoots {
                            store: &self.store,
                            topic,
                            frontier,
                        },
                        batch: &roots,
                    };
                    // A tag or root the store cannot read is `unavailable`: the host retries.
                    let msg = st.check_message(msg_in, &tags, &own)?;
                    st.append_message(&msg)?;
                    seen.insert(*msg.tag());
                    let leaf = msg.leaf_data();
                    (Planned::Message(msg), leaf)
                }
            };
            roots
                .append(&leaf)
                .map_err(|e| TopicError::internal("tag log full", e))?;
            planned.push(next);
        }
        let after = state.ok_or(TopicError::NoEntries)?;
        Ok(Plan {
            entries: planned,
            frontier: roots.frontier().clone(),
            after,
        })
    }

    /// Check 9: a server keeps only topics its users are in (or were, until this batch).
    fn participates(&self, before: Option<&TopicState>, plan: &Plan) -> TopicResult<()> {
        let local = |s: &TopicState| {
            s.members()
                .values()
                .any(|m| m.user.server() == self.server_name)
        };
        let removed_local = plan.entries.iter().any(|p| match p {
            Planned::Change(c) => c.before.as_ref().is_some_and(local),
            Planned::Message(_) => false,
        });
        if local(&plan.after) || removed_local || before.is_some_and(local) {
            return Ok(());
        }
        Err(TopicError::NoLocalMember {
            server: self.server_name.clone(),
        })
    }

    /// Writes planned entries (each one atomic store write), then advances the mirror's head.
    fn write(
        &self,
        topic: &TopicId,
        m: &mut Mirror,
        planned: Vec<Planned>,
        host: &HostCheckpoint,
    ) -> TopicResult<Mirrored> {
        let mut leaves = Vec::with_capacity(planned.len());
        let mut last = None;
        for p in planned {
            let appended = match p {
                Planned::Message(msg) => {
                    leaves.push(leaf_hash(&msg.leaf_data()));
                    self.append_message(topic, &mut m.log, &msg)?
                }
                Planned::Change(c) => {
                    leaves.push(leaf_hash(&leaf_data_for_change(
                        c.outcome.change.signed_bytes(),
                    )));
                    // A mirror tells no one of removals: the hosting server does.
                    let before = c.before.as_ref();
                    self.append_change(topic, &mut m.log, before, None, &c.outcome)?
                        .0
                }
            };
            last = Some(appended);
        }
        let last = last.ok_or(TopicError::NoEntries)?;
        self.advance_head(topic, m, &host.note, &host.keys)?;
        self.store.pin_mirror_host_keys(topic, &host.keys)?;
        Ok(Mirrored::Applied { last, leaves })
    }

    /// Offers the new checkpoint to the mirror's [`LogView`], with the consistency proof from
    /// the mirror's own tree; evidence stops the mirror.
    pub(super) fn advance_head(
        &self,
        topic: &TopicId,
        m: &mut Mirror,
        note: &SignedCheckpoint,
        keys: &HostKeys,
    ) -> TopicResult<()> {
        let origin = log_origin(topic);
        let mut view = match m
            .head
            .as_deref()
            .map(|h| SignedCheckpoint::parse(h.as_bytes()))
        {
            // The keys are the pinned chain (`HostKeySet`): a head that does not verify under it
            // is a fault of this server's store, never a fresh start.
            Some(Ok(h)) => LogView::resume_with(&origin, keys.clone(), h)
                .map_err(|e| TopicError::internal("stored mirror head", e))?,
            _ => LogView::with_keys(&origin, keys.clone()),
        };
        let new_size = note.unverified_checkpoint().size;
        let old_size = view
            .latest()
            .map_or(TreeSize(0), |l| l.unverified_checkpoint().size);
        // From the empty tree, and between equal sizes, no proof is needed (`LogView::update`);
        // a smaller checkpoint is stale or a rollback whatever the proof.
        let proof = if old_size.0 == 0 || old_size >= new_size {
            ConsistencyProof {
                old: old_size,
                new: new_size,
                path: Vec::new(),
            }
        } else {
            let tree = Tree::open(TopicNodes::new(&self.store, topic), m.log.frontier.size())
                .map_err(|e| TopicError::internal("mirror tag log", e))?;
            tree.consistency_proof(old_size, new_size)
                .map_err(|e| TopicError::internal("mirror consistency proof", e))?
        };
        match view.update(note.clone(), &proof) {
            Ok(_) => {}
            Err(WitnessError::Stale { .. }) => return Ok(()),
            Err(e) => {
                let reason = format!("checkpoint refused: {e}");
                return Err(self.stop(topic, m, &note.to_note(), &reason));
            }
        }
        let text = note.to_note();
        self.store.set_mirror_head(topic, &text)?;
        m.head = Some(text);
        Ok(())
    }

    /// Keeps evidence against the hosting server (the mirror's head against `other`) and stops
    /// the mirror (`federation-api.md` §9.4); returns the `split_view` error to answer with.
    pub(super) fn stop(
        &self,
        topic: &TopicId,
        m: &mut Mirror,
        other: &str,
        reason: &str,
    ) -> TopicError {
        let a = m.head.as_ref().map(|n| n.to_string()).unwrap_or_default();
        self.stop_notes(topic, m, a, other.to_owned(), reason)
    }

    /// [`Self::stop`] with tag-log evidence: its two notes are kept, in its order, so that the
    /// stored pair is the evidence a third party checks (`tag-log.md` §8.1).
    fn stop_with(
        &self,
        topic: &TopicId,
        m: &mut Mirror,
        evidence: &Evidence,
        reason: &str,
    ) -> TopicError {
        let (a, b) = evidence.notes();
        self.stop_notes(
            topic,
            m,
            a.to_note().to_string(),
            b.to_note().to_string(),
            reason,
        )
    }

    fn stop_notes(
        &self,
        topic: &TopicId,
        m: &mut Mirror,
        a: String,
        b: String,
        reason: &str,
    ) -> TopicError {
        tracing::error!(%topic, host = %topic.server(), reason, "evidence against a hosting server; mirror stopped");
        let evidence = MirrorEvidence {
            reason: reason.to_owned(),
            a,
            b,
        };
        if let Err(e) = self.store.set_mirror_evidence(topic, &evidence.to_wire()) {
            tracing::error!(%topic, %e, "storing evidence");
        }
        m.stopped = true;
        TopicError::SplitView {
            reason: reason.to_owned(),
        }
    }
}

/// What the mirror's head and another verified note of the hosting server show together
/// without a proof (`Evidence::between`); nothing when the head is signed by another key.
fn head_contradiction(m: &Mirror, host: &HostCheckpoint) -> Option<Evidence> {
    let head = SignedCheckpoint::parse(m.head.as_deref()?.as_bytes()).ok()?;
    // Under the chain (`tag-log.md` §7.6): a head signed before a rotation is compared too.
    host.keys.verify(&head).ok()?;
    Evidence::between(&head, &host.note)
}

/// A planned change and the leaf data it adds to the tag log.
fn planned_change(before: Option<TopicState>, outcome: ChangeOutcome) -> (Planned, Vec<u8>) {
    let leaf = leaf_data_for_change(outcome.change.signed_bytes()).to_vec();
    (
        Planned::Change(Box::new(PlannedChange { before, outcome })),
        leaf,
    )
}

/// Check 8: the entries make the checkpoint's log.
fn check_root(frontier: &Frontier, c: &Checkpoint) -> TopicResult<()> {
    if frontier.size() != c.size || frontier.root() != c.root {
        return Err(TopicError::bad_checkpoint(format!(
            "the entries do not make the log of the checkpoint of size {}",
            c.size.0
        )));
    }
    Ok(())
}

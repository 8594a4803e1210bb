//! The replay: a topic's log as this device checks it, step by step — the verified head
//! ([`Client::verified_head`]), where to resume ([`Client::resume`]), the entries
//! ([`Client::fetch_entries`]), each entry through the topic state machine and into this
//! device's keys ([`Client::apply`]), its inclusion in the head ([`Client::check_inclusion`]),
//! and for a full check the root recomputed from every leaf ([`RootCheck`]).

use std::collections::HashMap;

use super::apply::StoredKeys;
use super::checkpoint::Head;
use super::fetch::Fetched;
use super::inclusion::{Inclusion, RootCheck};
use super::roster::Roster;
use super::snapshot::Start;
use super::{EntryContent, EntryReport};
use crate::keystore::TopicRecord;
use crate::{Client, ClientError};
use rendezvous_protocol::crypto::TopicKey;
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::message::{Message, MessageError};
use rendezvous_protocol::tlog::{Checkpoint, LeafIndex, LogView};
use rendezvous_protocol::topic::{
    Applied, ChangeError, ENTRY_CHANGE, EntryError, EpochKeyring, LogEntry, MemberIndex, Replayer,
    TopicState, leaf_data,
};

/// The kind name of [`rendezvous_protocol::topic::EntryEvidence`].
pub(crate) const INVALID_ENTRY: &str = "invalid entry";

/// The topic as replayed by this device.
pub(crate) struct Replay {
    pub(crate) topic: TopicId,
    pub(crate) record: TopicRecord,
    pub(crate) state: Option<TopicState>,
    pub(crate) me: Option<MemberIndex>,
    pub(crate) my_key: Option<TopicKey>,
    pub(crate) keyring: EpochKeyring,
    pub(crate) entries: Vec<EntryReport>,
    pub(crate) missing: Vec<u64>,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) view: LogView,
    pub(crate) consistent_with: Option<u64>,
    pub(crate) root_matches: Option<bool>,
    /// Indices passed over by the replay: missing or refused (`Replayer::skipped`).
    pub(crate) skipped: Vec<u64>,
    /// Seconds since the head was signed, and whether that makes it stale.
    pub(crate) age: u64,
    pub(crate) stale: bool,
    /// The kind of evidence this device holds against the hosting server: the replay went
    /// only up to the head verified before it (`log_forked`).
    pub(crate) forked: Option<String>,
    /// The first entry that breaks a rule on a certain state although the signed log holds it
    /// (inclusion verified): evidence against the host (`tag-log.md` §8.4).
    pub(crate) signed_invalid: Option<u64>,
    /// Messages met before the change that handed this device their epoch's key (a member
    /// added to a shared topic gets the current key after the messages it protects): opened
    /// again once the whole log is replayed. `(position in entries, message, whether this user
    /// was a member when it was posted)`.
    pub(crate) deferred: Vec<(usize, Message, bool)>,
    /// Every change of the log so far with its index (signed wire form), for the snapshot.
    changes: Vec<(u64, Vec<u8>)>,
    /// The roster check's lookups of the members the fetched changes add (`directory.md`
    /// §6.4).
    pub(crate) roster: Roster,
    /// Added members that could not be checked now (`roster_unchecked`): no writes.
    pub(crate) unchecked: Vec<String>,
}

impl Replay {
    pub(crate) fn new(
        topic: &TopicId,
        record: TopicRecord,
        head: Head,
        missing: Vec<u64>,
        changes: Vec<(u64, Vec<u8>)>,
    ) -> Self {
        Replay {
            topic: topic.clone(),
            record,
            state: None,
            me: None,
            my_key: None,
            keyring: EpochKeyring::new(),
            entries: Vec::new(),
            missing,
            checkpoint: head.checkpoint,
            view: head.view,
            consistent_with: head.consistent_with,
            root_matches: None,
            skipped: Vec::new(),
            age: head.age,
            stale: head.stale,
            forked: None,
            signed_invalid: None,
            deferred: Vec::new(),
            changes,
            roster: Roster::default(),
            unchecked: Vec::new(),
        }
    }

    /// The replayed state, or an error when the log has no valid create.
    pub(crate) fn state(&self) -> Result<&TopicState, ClientError> {
        self.state.as_ref().ok_or_else(|| {
            ClientError::Misbehaved(format!("topic {} has no valid first entry", self.topic))
        })
    }

    /// The write gate (`tag-log.md` §9.4, `client-rules.md` C12): nothing is encrypted, posted
    /// or signed on a view that is not complete (every index below the head's size present and
    /// valid, the root recomputed from all leaves equal to the head's: C8, C5 (b)), fresh, free
    /// of evidence (C3), and whose added members were all checked (C7).
    pub(crate) fn gate(&self) -> Result<(), ClientError> {
        let topic = self.topic.to_string();
        super::roster::gate(&topic, &self.record.refused, &self.unchecked)?;
        if let Some(kind) = &self.forked {
            return Err(ClientError::LogForked {
                topic,
                kind: kind.clone(),
            });
        }
        let mut bad: Vec<u64> = self.missing.iter().chain(&self.skipped).copied().collect();
        bad.sort_unstable();
        bad.dedup();
        if !bad.is_empty() {
            return Err(ClientError::LogIncomplete {
                topic,
                indices: bad,
                reason: "entries are missing or fail a check".into(),
            });
        }
        if self.root_matches != Some(true) {
            return Err(ClientError::LogIncomplete {
                topic,
                indices: Vec::new(),
                reason: "the entries do not add up to the checkpoint's root".into(),
            });
        }
        if self.stale {
            return Err(ClientError::StaleHead {
                topic,
                age: self.age,
            });
        }
        Ok(())
    }

    /// This user's member index, or an error.
    pub(crate) fn me(&self, user: &UserId) -> Result<MemberIndex, ClientError> {
        self.me.ok_or_else(|| ClientError::NotAMember {
            topic: self.topic.to_string(),
            user: user.to_string(),
        })
    }

    /// This user's Topic Key, or an error.
    pub(crate) fn my_key(&self) -> Result<&TopicKey, ClientError> {
        self.my_key.as_ref().ok_or_else(|| ClientError::NoTopicKey {
            topic: self.topic.to_string(),
            key_id: self
                .state
                .as_ref()
                .zip(self.me)
                .and_then(|(s, m)| s.member(m))
                .map(|m| m.topic_key.key_id().to_hex())
                .unwrap_or_default(),
        })
    }

    /// Opens the messages whose key arrived later in the log (shared history).
    fn open_deferred(&mut self) {
        for (position, msg, member_then) in std::mem::take(&mut self.deferred) {
            let epoch = msg.header().epoch;
            let Some(report) = self.entries.get_mut(position) else {
                continue;
            };
            let opened = match self.keyring.epoch_keys(epoch) {
                // Posted before this user joined (protected history, or keys not shared):
                // unreadable by design, not a fault of anyone (`protocol.md` §7).
                None if !member_then => {
                    if let EntryContent::Message { by_design, .. } = &mut report.content {
                        *by_design = true;
                    }
                    continue;
                }
                None => Err(format!("no message key for epoch {epoch}")),
                Some(keys) => msg
                    .open(&self.topic, keys)
                    .map(|plain| String::from_utf8_lossy(&plain).into_owned())
                    .map_err(|e| e.to_string()),
            };
            match (opened, &mut report.content) {
                (Ok(plain), EntryContent::Message { text, .. }) => *text = Some(plain),
                (Err(problem), _) => report.problems.push(problem),
                (Ok(_), _) => {}
            }
        }
    }
}

impl Client {
    /// Replays a topic's log: checks the head, fetches the entries it covers (from the saved
    /// snapshot on, unless `full_root`), replays them at their log positions, checks the
    /// inclusion of the entries `inclusion` names, and recomputes the root from the snapshot's
    /// compact range and the new leaves. With evidence kept against the hosting server, only the
    /// head verified before is used (`forked`). Entry 0 must create this topic.
    pub(crate) async fn replay(
        &mut self,
        topic: &TopicId,
        inclusion: Inclusion,
        full_root: bool,
    ) -> Result<Replay, ClientError> {
        let record = self.keystore.topic(topic)?.unwrap_or(TopicRecord {
            topic: topic.to_string(),
            member: None,
            processed: 0,
            checkpoint: None,
            appends: Vec::new(),
            refused: Vec::new(),
        });
        let (head, forked) = self.head_or_held(topic, &record).await?;
        let size = head.checkpoint.size.0;
        let stored: StoredKeys = self.keystore.message_keys(topic)?.into_iter().collect();
        let Start {
            mut replayer,
            from,
            changes,
            frontier,
        } = self.resume(topic, full_root, size, record.processed)?;
        let (entries, missing) = self.fetch_entries(topic, from, size).await?;
        // Entries after the last complete snapshot are read again (one of them failed a check
        // before): each gets its inclusion proof again, so that one the server alters (whose
        // leaf then differs from the log's) is passed over with the log's own leaf hash instead
        // of shifting every later root.
        let inclusion = inclusion.starting_by(from);

        let mut replay = Replay::new(topic, record, head, missing, changes);
        replay.forked = forked;
        replay.roster = self.roster_lookups(&entries).await?;
        let refused_before = replay.record.refused.len();
        replay.entries.reserve(entries.len());
        self.resume_keys(&mut replay, &replayer, &stored)?;
        let mut root = Some(RootCheck::resume(frontier));
        self.replay_entries(
            &mut replay,
            &mut replayer,
            entries,
            &stored,
            inclusion,
            &mut root,
        )
        .await;
        replay.open_deferred();
        if replay.record.refused.len() > refused_before {
            // A refusal is kept for good, whatever the read does next (`directory.md` §6.4).
            self.keystore.save_topic(&replay.record)?;
        }
        if let Some(index) = replay.signed_invalid
            && replay.forked.is_none()
        {
            replay.forked = self.keep_entry_evidence(&replay, index).await?;
            if replay.forked.is_some()
                && let Some(report) = replay.entries.iter_mut().find(|e| e.index == index)
            {
                report.problems.push(
                    "the hosting server signed a log that holds this entry (evidence kept: `rdv evidence export`)".into(),
                );
            }
        }
        replay.state = replayer.state().cloned();
        // Entry 0 creates this topic and names the key every checkpoint of the log is under
        // (`tag-log.md` §9.2, §7.5; `client-rules.md` C4): another topic's log, or checkpoints
        // this device verified under another key (a substituted key document), are not this
        // topic's.
        if let Some(state) = &replay.state {
            let keys = self.hosting_server_keys(&topic.server()).await?;
            state.check_log_of(topic, &keys).map_err(|e| {
                ClientError::Misbehaved(format!("entry 0 of the log served for {topic}: {e}"))
            })?;
        }
        replay.skipped = replayer.skipped().iter().map(|i| i.get()).collect();
        replay.root_matches = root
            .as_ref()
            .and_then(|r| r.matches(size, &replay.checkpoint.root));
        // A change whose added members could not be checked is replayed again by the next
        // read: the snapshot does not move past it.
        let complete = replay.missing.is_empty()
            && replay.skipped.is_empty()
            && replay.unchecked.is_empty()
            && replay.root_matches == Some(true);
        if complete
            && !matches!(inclusion, Inclusion::Skip)
            && let Some(frontier) = root.as_ref().and_then(RootCheck::frontier)
        {
            let changes = std::mem::take(&mut replay.changes);
            self.save_snapshot(topic, &replayer, changes, frontier)?;
        }
        Ok(replay)
    }

    /// The verified head, or — when this device holds evidence against the hosting server, or
    /// finds it now — the head it verified before, with the kind of evidence.
    async fn head_or_held(
        &mut self,
        topic: &TopicId,
        record: &TopicRecord,
    ) -> Result<(Head, Option<String>), ClientError> {
        let kept = self.keystore.evidence(topic)?;
        let kept_kind = match kept.first() {
            Some(evidence) => Some(evidence.kind()),
            None => (!self.keystore.entry_evidence(topic)?.is_empty()).then_some(INVALID_ENTRY),
        };
        let forked = match kept_kind {
            Some(kind) => ClientError::LogForked {
                topic: topic.to_string(),
                kind: kind.to_owned(),
            },
            None => match self.verified_head(topic, record).await {
                Ok(head) => return Ok((head, None)),
                Err(e @ ClientError::LogForked { .. }) => e,
                Err(e) => return Err(e),
            },
        };
        let ClientError::LogForked { kind, .. } = &forked else {
            return Err(forked);
        };
        match self.held_head(topic, record).await? {
            Some(head) => Ok((head, Some(kind.clone()))),
            None => Err(forked),
        }
    }

    /// Pushes each fetched entry through the replayer, takes what it means for this device,
    /// checks its inclusion when asked and feeds the root check; the reports go to `replay`.
    async fn replay_entries(
        &mut self,
        replay: &mut Replay,
        replayer: &mut Replayer,
        entries: Fetched,
        stored: &StoredKeys,
        inclusion: Inclusion,
        root: &mut Option<RootCheck>,
    ) {
        // Leaves as this device computes them from what was served.
        let leaves: HashMap<u64, Vec<u8>> = entries
            .iter()
            .filter_map(|(i, e)| {
                e.as_ref()
                    .ok()
                    .and_then(|e| leaf_data(e).ok())
                    .map(|l| (*i, l))
            })
            .collect();
        let mut missing = replay.missing.clone().into_iter().peekable();
        for (index, entry) in entries {
            // Entries the server left out before this one are passed over, with their authentic
            // leaf hash when a neighbour's proof gives it, so later roots stay the log's.
            while let Some(j) = missing.next_if(|j| *j < index) {
                let hash = self
                    .sibling_leaf_hash(&replay.topic, j, &leaves, &replay.checkpoint)
                    .await;
                replayer.pass_over(LeafIndex(j), hash);
            }
            let raw_leaf = leaves.get(&index).cloned();
            let included = match &raw_leaf {
                Some(raw) if inclusion.covers(index) => Some(
                    self.check_inclusion(&replay.topic, index, raw, &replay.checkpoint)
                        .await,
                ),
                _ => None,
            };
            if raw_leaf.is_none() || matches!(included, Some(Err(_))) {
                // Malformed, or not in the log at this index (altered on the way or by the
                // server): not replayed; the log's own leaf goes into the roots if known.
                let hash = self
                    .sibling_leaf_hash(&replay.topic, index, &leaves, &replay.checkpoint)
                    .await;
                let mut report = match (entry, included) {
                    (Ok(_), Some(Err(e))) => EntryReport::invalid(
                        index,
                        format!("not the log's entry at this index: {e}"),
                    ),
                    (entry, _) => self.replay_entry(replay, replayer, index, entry, stored).0,
                };
                replayer.pass_over(LeafIndex(index), hash);
                if let Some(root) = root.as_mut() {
                    root.push(index, None);
                }
                report.problems.dedup();
                replay.entries.push(report);
                continue;
            }
            // For an entry that fails: whether the state it failed on is certain (no change can
            // be missing before it).
            let certain = replayer.uncertain_since().is_none();
            let (report, leaf) = self.replay_entry(replay, replayer, index, entry, stored);
            if leaf.is_none()
                && certain
                && matches!(included, Some(Ok(())))
                && replay.signed_invalid.is_none()
            {
                replay.signed_invalid = Some(index);
            }
            if let Some(root) = root.as_mut() {
                root.push(index, leaf.as_deref());
            }
            replay.entries.push(report);
        }
    }

    /// One entry through the topic state machine: its report, and its leaf data when it
    /// applied. Changes are kept (with their index) for the snapshot.
    fn replay_entry(
        &self,
        replay: &mut Replay,
        replayer: &mut Replayer,
        index: u64,
        entry: Result<LogEntry, String>,
        stored: &StoredKeys,
    ) -> (EntryReport, Option<Vec<u8>>) {
        let entry = match entry {
            Err(e) => {
                return (
                    EntryReport::invalid(index, format!("malformed entry: {e}")),
                    None,
                );
            }
            Ok(entry) => entry,
        };
        let before = (entry.0 == ENTRY_CHANGE)
            .then(|| replayer.state().cloned())
            .flatten();
        // The position comes from the log (`tag-log.md` §9.2, `client-rules.md` C6), whatever
        // was missing before.
        let uncertain = replayer.uncertain_since();
        match replayer.push_at(LeafIndex(index), &entry) {
            Err(e) => {
                let root_unknown = matches!(
                    &e,
                    EntryError::Message {
                        error: MessageError::RootUnknown { .. },
                        ..
                    } | EntryError::Change {
                        error: ChangeError::RootUnknown { .. },
                        ..
                    }
                );
                let problem = match uncertain {
                    // A change may be among the entries skipped: the rule it breaks may be one
                    // the missing change would have made it keep.
                    Some(since) => format!(
                        "{e} (cannot be checked for certain: entry {since} is missing or invalid, and the topic state after it is unknown)"
                    ),
                    None if root_unknown => format!(
                        "{e} (cannot be checked for certain: an entry before it is missing or altered)"
                    ),
                    None => e.to_string(),
                };
                (EntryReport::invalid(index, problem), None)
            }
            Ok((applied, leaf)) => {
                if let Applied::Change(outcome) = &applied {
                    replay.changes.push((
                        index,
                        rendezvous_protocol::wire::encode(outcome.change.signed_bytes()),
                    ));
                }
                let report = self.apply(replay, replayer, applied, before.as_ref(), index, stored);
                (report, Some(leaf))
            }
        }
    }
}

//! The replay: a topic's log as this device checks it, step by step — the verified head
//! ([`Client::verified_head`]), where to resume ([`Client::resume`]), the entries
//! ([`Client::fetch_entries`]), each entry through the topic state machine and into this
//! device's keys ([`Client::apply`]), its inclusion in the head ([`Client::check_inclusion`]),
//! and for a full check the root recomputed from every leaf ([`RootCheck`]).

use super::apply::StoredKeys;
use super::checkpoint::Head;
use super::fetch::Fetched;
use super::forkbind::{self, Unbound};
use super::inclusion::{Inclusion, RootCheck};
use super::snapshot::Start;
use super::{EntryContent, EntryReport};
use crate::keystore::TopicRecord;
use crate::{Client, ClientError};
use rendezvous_protocol::crypto::TopicKey;
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::message::Message;
use rendezvous_protocol::tlog::{Checkpoint, LogView};
use rendezvous_protocol::topic::{
    Applied, ENTRY_CHANGE, EpochKeyring, LogEntry, MemberIndex, Replayer, TopicState, UnboundEntry,
};

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
    /// Messages met before the change that handed this device their epoch's key (a member
    /// added to a shared topic gets the current key after the messages it protects): opened
    /// again once the whole log is replayed. `(position in entries, message)`.
    pub(crate) deferred: Vec<(usize, Message)>,
    /// Every change of the log so far with its index (signed wire form), for the snapshot.
    changes: Vec<(u64, Vec<u8>)>,
    /// Entries of the host's signed log whose signature fails under this device's own root at
    /// the size they bind (fork binding): evidence against the hosting server, verified
    /// (`tag-log.md` §8.1, `unbound_entry`).
    pub(crate) unbound: Vec<UnboundEntry>,
    /// Such failures noted during the replay, turned into evidence after it.
    pending_unbound: Vec<Unbound>,
}

impl Replay {
    fn new(
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
            deferred: Vec::new(),
            changes,
            unbound: Vec::new(),
            pending_unbound: Vec::new(),
        }
    }

    /// The replayed state, or an error when the log has no valid create.
    pub(crate) fn state(&self) -> Result<&TopicState, ClientError> {
        self.state.as_ref().ok_or_else(|| {
            ClientError::Misbehaved(format!("topic {} has no valid first entry", self.topic))
        })
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
        for (position, msg) in std::mem::take(&mut self.deferred) {
            let epoch = msg.header().epoch;
            let Some(report) = self.entries.get_mut(position) else {
                continue;
            };
            let opened = match self.keyring.epoch_keys(epoch) {
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
    /// snapshot on, unless `full_root`), replays them, checks the inclusion of the entries
    /// `inclusion` names, and with `full_root` recomputes the root from every leaf.
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
        });
        let head = self.verified_head(topic, &record).await?;
        let size = head.checkpoint.size.0;
        let stored: StoredKeys = self.keystore.message_keys(topic)?.into_iter().collect();
        let Start {
            mut replayer,
            from,
            changes,
        } = self.resume(topic, full_root, size, record.processed)?;
        let (entries, missing) = self.fetch_entries(topic, from, size).await?;

        let mut replay = Replay::new(topic, record, head, missing, changes);
        replay.entries.reserve(entries.len());
        self.resume_keys(&mut replay, &replayer, &stored)?;
        let mut root = full_root.then(|| RootCheck::new(from));
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
        self.keep_unbound(&mut replay).await;
        replay.state = replayer.state().cloned();
        if !matches!(inclusion, Inclusion::Skip) {
            let changes = std::mem::take(&mut replay.changes);
            self.save_snapshot(topic, &replayer, changes)?;
        }
        replay.root_matches = root.and_then(|r| r.matches(size, &replay.checkpoint.root));
        Ok(replay)
    }

    /// Turns the fork-binding failures noted during the replay into evidence, and says in each
    /// entry's report whether it was kept.
    async fn keep_unbound(&mut self, replay: &mut Replay) {
        let Some(head) = replay.view.latest().cloned() else {
            return;
        };
        for unbound in std::mem::take(&mut replay.pending_unbound) {
            let index = unbound.index();
            let note = match self
                .unbound_evidence(&replay.topic, &head, &replay.changes, unbound)
                .await
            {
                Ok(Some(evidence)) => {
                    replay.unbound.push(evidence);
                    "the hosting server's signed log holds this entry although its signature fails \
                     under the log's root at the size it binds (a fork, or an altered entry): \
                     evidence kept"
                        .to_owned()
                }
                Ok(None) => "no evidence of a fork could be made for it".to_owned(),
                Err(e) => format!("no evidence of a fork could be fetched for it: {e}"),
            };
            if let Some(report) = replay.entries.iter_mut().find(|r| r.index == index) {
                report.problems.push(note);
            }
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
        for (index, entry) in entries {
            let (mut report, leaf) = self.replay_entry(replay, replayer, index, entry, stored);
            if let Some(root) = root.as_mut() {
                root.push(index, leaf.as_deref());
            }
            if let Some(leaf) = &leaf
                && inclusion.covers(index)
                && let Err(e) = self
                    .check_inclusion(&replay.topic, index, leaf, &replay.checkpoint)
                    .await
            {
                report.problems.push(e.to_string());
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
        match replayer.push(&entry) {
            Err(e) => {
                if let Some(unbound) = forkbind::note(replayer, index, &entry, &e) {
                    replay.pending_unbound.push(unbound);
                }
                (EntryReport::invalid(index, e.to_string()), None)
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

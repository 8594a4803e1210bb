//! Reading a topic and checking its log (`protocol.md` §7–8, `tag-log.md` §9).
//!
//! A read fetches the hosting server's signed checkpoint, checks its signature with the hosting
//! server's key and its consistency with the last checkpoint this device verified
//! ([`LogView::update`] with a consistency proof), fetches the entries up to the checkpoint's
//! size, replays them with the topic state machine ([`Replayer`]: change rules, message
//! signatures, roles, epochs, replays), takes the Message Keys addressed to us from changes
//! ([`EpochKeyring::receive`]), opens messages (tag checked before decryption), and checks each
//! new entry's inclusion in the checkpoint's tree ([`check_in_log`]). Indices the server did not
//! return are reported as missing; every entry that fails a check is marked with the reason.
//!
//! The replay starts from index 0 on every read (the replayer's inputs are not kept between
//! runs): simple and always correct, at the cost of fetching the whole log. Inclusion proofs are
//! fetched only for entries not processed before, except by [`Client::verify`], which checks them
//! all and also recomputes the root from every leaf.

use std::collections::BTreeMap;

use awc::http::Method;

use super::http::encode_segment;
use super::keystore::TopicRecord;
use super::{Client, ClientError};
use rendezvous_protocol::api::{
    Body, CheckpointResponse, CursorRequest, EntriesResponse, ProofResponse, WitnessesResponse,
};
use rendezvous_protocol::crypto::{MessageKey, TopicKey};
use rendezvous_protocol::ids::{Epoch, TopicId};
use rendezvous_protocol::tlog::proof::parse_path;
use rendezvous_protocol::tlog::{
    Checkpoint, ConsistencyProof, Frontier, InclusionProof, LeafIndex, LogView, SignedCheckpoint,
    TreeSize,
};
use rendezvous_protocol::topic::{
    Action, Applied, EpochKeyring, LogEntry, MemberIndex, Replayer, TopicState, check_in_log,
    log_origin,
};
use rendezvous_protocol::wire::VERSION;

/// Entries per page (`client-api.md` §6: at most 500).
const PAGE: u64 = 500;

/// What one log entry turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryContent {
    /// A message.
    Message {
        /// The sender's user id (or `member N` if the sender is unknown).
        sender: String,
        /// The epoch it was sent in.
        epoch: u32,
        /// The plaintext (lossy UTF-8), when it could be opened.
        text: Option<String>,
    },
    /// A topic change.
    Change {
        /// The author's user id.
        author: String,
        /// What it did, e.g. `add @bob:a.example writer`.
        description: String,
        /// The epoch after it.
        epoch: u32,
    },
    /// An entry that could not be decoded or broke a rule.
    Invalid,
}

/// One entry as read, with every check that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryReport {
    /// Log index.
    pub index: u64,
    /// What it is.
    pub content: EntryContent,
    /// Failed checks (empty: the entry verified).
    pub problems: Vec<String>,
}

impl EntryReport {
    /// Whether every check passed.
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What [`Client::read`] found.
#[derive(Debug, Clone)]
pub struct ReadReport {
    /// The topic.
    pub topic: TopicId,
    /// The verified checkpoint's size.
    pub size: u64,
    /// Entries not shown before, in log order.
    pub entries: Vec<EntryReport>,
    /// Log indices below the checkpoint size that the server did not return.
    pub missing: Vec<u64>,
}

/// What [`Client::verify`] found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The topic.
    pub topic: TopicId,
    /// The verified checkpoint's size.
    pub size: u64,
    /// Its root (hex).
    pub root: String,
    /// The size of the earlier checkpoint it was shown consistent with (`None`: first seen).
    pub consistent_with: Option<u64>,
    /// Entries that failed a check.
    pub failed: Vec<EntryReport>,
    /// Log indices the server did not return.
    pub missing: Vec<u64>,
    /// Whether the root recomputed from all leaves equals the checkpoint's root (`None` when
    /// some leaf is unknown).
    pub root_matches: Option<bool>,
    /// The other views of the log: the hosting server's head, the mirror, cosignatures.
    pub witnesses: WitnessReport,
}

impl VerifyReport {
    /// Whether the whole log verified.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
            && self.missing.is_empty()
            && self.root_matches == Some(true)
            && self.witnesses.problems.is_empty()
    }
}

/// A proof between two checkpoints of the same size (not consulted by `LogView::update`).
fn empty_proof(size: TreeSize) -> ConsistencyProof {
    ConsistencyProof {
        old: size,
        new: size,
        path: Vec::new(),
    }
}

/// What `rdv verify` found comparing the views of a log (`federation-api.md` §9.4).
#[derive(Debug, Clone, Default)]
pub struct WitnessReport {
    /// The hosting server's current head's size, when it could be had.
    pub host_size: Option<u64>,
    /// Servers whose cosigned checkpoints agree with the verified log: `(server, size)`.
    pub cosigned: Vec<(String, u64)>,
    /// Contradictions: each one means some server was shown another log.
    pub problems: Vec<String>,
}

/// Which entries get an inclusion proof.
#[derive(Debug, Clone, Copy)]
pub(super) enum Inclusion {
    /// None (building a change or a message on the current state).
    Skip,
    /// Entries from this index on.
    From(u64),
}

/// The topic as replayed by this device.
pub(super) struct Replay {
    pub(super) topic: TopicId,
    pub(super) record: TopicRecord,
    pub(super) state: Option<TopicState>,
    pub(super) me: Option<MemberIndex>,
    pub(super) my_key: Option<TopicKey>,
    pub(super) keyring: EpochKeyring,
    pub(super) entries: Vec<EntryReport>,
    pub(super) missing: Vec<u64>,
    pub(super) checkpoint: Checkpoint,
    pub(super) view: LogView,
    pub(super) consistent_with: Option<u64>,
    pub(super) root_matches: Option<bool>,
    /// Messages met before the change that handed this device their epoch's key (a member
    /// added to a shared topic gets the current key after the messages it protects): opened
    /// again once the whole log is replayed. `(position in entries, message)`.
    pub(super) deferred: Vec<(usize, rendezvous_protocol::message::Message)>,
}

impl Replay {
    /// The replayed state, or an error when the log has no valid create.
    pub(super) fn state(&self) -> Result<&TopicState, ClientError> {
        self.state.as_ref().ok_or_else(|| {
            ClientError::Misbehaved(format!("topic {} has no valid first entry", self.topic))
        })
    }

    /// This user's member index, or an error.
    pub(super) fn me(
        &self,
        user: &rendezvous_protocol::ids::UserId,
    ) -> Result<MemberIndex, ClientError> {
        self.me.ok_or_else(|| ClientError::NotAMember {
            topic: self.topic.to_string(),
            user: user.to_string(),
        })
    }

    /// This user's Topic Key, or an error.
    pub(super) fn my_key(&self) -> Result<&TopicKey, ClientError> {
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
}

pub(super) fn topic_path(topic: &TopicId, rest: &str) -> String {
    format!("/v1/topics/{}{rest}", encode_segment(topic.as_str()))
}

fn describe(action: &Action, before: Option<&TopicState>, after: &TopicState) -> String {
    let name = |state: Option<&TopicState>, m: &MemberIndex| {
        state
            .and_then(|s| s.member(*m))
            .or_else(|| after.member(*m))
            .map_or_else(|| format!("member {}", m.0), |m| m.user.to_string())
    };
    let spec = |s: &rendezvous_protocol::topic::MemberSpec| {
        let role = s.role.name();
        format!("{} {role}", s.user)
    };
    match action {
        Action::Create { history, members } => format!(
            "create ({} history): {}",
            match history {
                rendezvous_protocol::topic::History::Shared => "shared",
                rendezvous_protocol::topic::History::Protected => "protected",
            },
            members.iter().map(spec).collect::<Vec<_>>().join(", ")
        ),
        Action::Add(specs) => format!(
            "add {}",
            specs.iter().map(spec).collect::<Vec<_>>().join(", ")
        ),
        Action::Remove(ms) => format!(
            "remove {}",
            ms.iter()
                .map(|m| name(before, m))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Action::SetRole(m, role) => format!("set role of {} to {}", name(before, m), role.name()),
        Action::Rekey => "rekey".into(),
    }
}

impl Client {
    /// Fetches and checks the checkpoint, fetches the entries it covers and replays them.
    pub(super) async fn replay(
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

        // The checkpoint: hosting server's signature, consistency with the last one seen.
        let host = topic.server();
        let key = self.hosting_server_key(&host).await?;
        let origin = log_origin(topic);
        let mut view = match &record.checkpoint {
            Some(note) => LogView::resume(
                &origin,
                key.clone(),
                host.as_str(),
                SignedCheckpoint::parse(note.as_bytes())?,
            )?,
            None => LogView::new(&origin, key.clone(), host.as_str()),
        };
        let held = view
            .latest()
            .map(|c| c.unverified_checkpoint().size.0)
            .unwrap_or(0);
        let answer: CheckpointResponse = self
            .authed(Method::GET, &topic_path(topic, "/checkpoint"), None)
            .await?;
        let signed = SignedCheckpoint::parse(answer.checkpoint.as_bytes())?;
        let checkpoint = signed.verify(&key, host.as_str())?.clone();
        let size = checkpoint.size.0;
        let path = if held > 0 && size > held {
            let answer: ProofResponse = self
                .authed(
                    Method::GET,
                    &topic_path(topic, &format!("/proof/consistency?old={held}&new={size}")),
                    None,
                )
                .await?;
            parse_path(&answer.path)
                .map_err(|e| ClientError::Misbehaved(format!("consistency proof: {e}")))?
        } else {
            Vec::new()
        };
        let proof = ConsistencyProof {
            old: TreeSize(held),
            new: TreeSize(size),
            path,
        };
        view.update(signed, &proof)?;
        let consistent_with = record.checkpoint.as_ref().map(|_| held);

        // Resume from the saved snapshot when there is one and this is not a full check: only
        // entries after it are fetched and checked; the state before comes from its changes.
        let stored_keys = self.keystore.message_keys(topic)?;
        let (mut replayer, start, mut changes) =
            match (full_root, self.keystore.log_snapshot(topic)?) {
                // Only up to what was shown: entries after `processed` must still be replayed to be
                // shown (a send replays without showing, and does not move the snapshot).
                (false, Some(snap))
                    if snap.size > 0 && snap.size <= size && snap.size <= record.processed =>
                {
                    let mut signed = Vec::with_capacity(snap.changes.len());
                    for (index, bytes) in &snap.changes {
                        let change =
                            LogEntry(rendezvous_protocol::topic::ENTRY_CHANGE, bytes.to_vec())
                                .parse()
                                .ok()
                                .and_then(|p| match p {
                                    rendezvous_protocol::topic::ParsedEntry::Change(c) => Some(c),
                                    rendezvous_protocol::topic::ParsedEntry::Message(_) => None,
                                })
                                .ok_or_else(|| {
                                    ClientError::corrupt(topic.as_str(), "log snapshot change")
                                })?;
                        signed.push((LeafIndex(*index), change));
                    }
                    let state = TopicState::restore(signed, TreeSize(snap.size)).map_err(|e| {
                        ClientError::corrupt(topic.as_str(), format!("log snapshot: {e}"))
                    })?;
                    let tags = snap
                        .tags
                        .iter()
                        .filter_map(|t| <[u8; 32]>::try_from(t.as_slice()).ok())
                        .map(rendezvous_protocol::message::MessageTag)
                        .collect();
                    let changes: Vec<(u64, Vec<u8>)> =
                        snap.changes.iter().map(|(i, b)| (*i, b.to_vec())).collect();
                    (Replayer::resume(state, tags), snap.size, changes)
                }
                _ => (Replayer::new(), 0, Vec::new()),
            };

        // The entries, and the indices the server left out.
        let (entries, missing) = self.fetch_entries(topic, start, size).await?;

        // The replay.
        let stored: BTreeMap<u32, MessageKey> = stored_keys.into_iter().collect();
        let mut replay = Replay {
            topic: topic.clone(),
            record,
            state: None,
            me: None,
            my_key: None,
            keyring: EpochKeyring::new(),
            entries: Vec::with_capacity(entries.len()),
            missing,
            checkpoint,
            view,
            consistent_with,
            root_matches: None,
            deferred: Vec::new(),
        };
        if let Some(state) = replayer.state() {
            // Resumed: this device's place in the topic and the keys it already holds.
            replay.me = state.member_of(&self.user);
            if let Some(me) = replay.me
                && let Some(member) = state.member(me)
            {
                replay.my_key = self
                    .keystore
                    .topic_key(&member.topic_key.key_id(), self.identity.public())?
                    .map(|(k, _)| k);
            }
            for (epoch, key) in &stored {
                if let Ok(copy) = MessageKey::from_slice(key.as_bytes()) {
                    let _ = replay.keyring.insert(state, Epoch(*epoch), copy);
                }
            }
        }
        let mut frontier = full_root.then(Frontier::new);
        let mut expected = start;
        for (index, entry) in entries {
            if index != expected {
                // A gap: the root can no longer be recomputed.
                frontier = None;
            }
            expected = index + 1;
            let before = match &entry {
                Ok(e) if e.0 == rendezvous_protocol::topic::ENTRY_CHANGE => {
                    replayer.state().cloned()
                }
                _ => None,
            };
            let (mut report, leaf) = match entry {
                Err(e) => (
                    EntryReport {
                        index,
                        content: EntryContent::Invalid,
                        problems: vec![format!("malformed entry: {e}")],
                    },
                    None,
                ),
                Ok(entry) => match replayer.push(&entry) {
                    Err(e) => (
                        EntryReport {
                            index,
                            content: EntryContent::Invalid,
                            problems: vec![e.to_string()],
                        },
                        None,
                    ),
                    Ok((applied, leaf)) => {
                        if let Applied::Change(outcome) = &applied {
                            changes.push((
                                index,
                                rendezvous_protocol::wire::encode(outcome.change.signed_bytes()),
                            ));
                        }
                        let report = self.apply(
                            &mut replay,
                            &replayer,
                            applied,
                            before.as_ref(),
                            index,
                            &stored,
                        );
                        (report, Some(leaf))
                    }
                },
            };
            match (&mut frontier, &leaf) {
                (Some(f), Some(l)) => {
                    if f.append(l).is_err() {
                        frontier = None;
                    }
                }
                _ => frontier = None,
            }
            if let (Inclusion::From(from), Some(leaf)) = (inclusion, &leaf)
                && index >= from
                && let Err(e) = self
                    .check_inclusion(topic, index, leaf, &replay.checkpoint)
                    .await
            {
                report.problems.push(e.to_string());
            }
            replay.entries.push(report);
        }
        // Messages whose key arrived later in the log (shared history): open them now.
        for (position, msg) in std::mem::take(&mut replay.deferred) {
            let epoch = msg.header().epoch;
            let Some(report) = replay.entries.get_mut(position) else {
                continue;
            };
            let opened = match replay.keyring.epoch_keys(epoch) {
                None => Err(format!("no message key for epoch {epoch}")),
                Some(keys) => msg
                    .open(topic, keys)
                    .map(|plain| String::from_utf8_lossy(&plain).into_owned())
                    .map_err(|e| e.to_string()),
            };
            match (opened, &mut report.content) {
                (Ok(plain), EntryContent::Message { text, .. }) => *text = Some(plain),
                (Err(problem), _) => report.problems.push(problem),
                (Ok(_), _) => {}
            }
        }
        replay.state = replayer.state().cloned();
        let shown = !matches!(inclusion, Inclusion::Skip);
        if let (true, Some(state)) = (shown, replayer.state()) {
            let snapshot = super::keystore::LogSnapshot {
                version: VERSION,
                size: state.size().get(),
                changes: changes
                    .into_iter()
                    .map(|(i, b)| (i, serde_bytes::ByteBuf::from(b)))
                    .collect(),
                tags: replayer
                    .tags()
                    .iter()
                    .map(|t| serde_bytes::ByteBuf::from(t.0.to_vec()))
                    .collect(),
            };
            self.keystore.save_log_snapshot(topic, &snapshot)?;
        }
        if let Some(f) = frontier
            && f.size().0 == size
        {
            replay.root_matches = Some(f.root() == replay.checkpoint.root);
        }
        Ok(replay)
    }

    /// Takes what an applied entry means for this device: keys from changes, plaintext of
    /// messages.
    fn apply(
        &self,
        replay: &mut Replay,
        replayer: &Replayer,
        applied: Applied,
        before: Option<&TopicState>,
        index: u64,
        stored: &BTreeMap<u32, MessageKey>,
    ) -> EntryReport {
        let topic = replay.topic.clone();
        let mut problems = Vec::new();
        let content = match applied {
            Applied::Change(outcome) => {
                let after = &outcome.next;
                let author = before
                    .and_then(|s| s.member(outcome.change.author))
                    .or_else(|| after.member(outcome.change.author))
                    .map_or_else(
                        || format!("member {}", outcome.change.author),
                        |m| m.user.to_string(),
                    );
                let specs: &[rendezvous_protocol::topic::MemberSpec] = match &outcome.change.action
                {
                    Action::Create { members, .. } => members,
                    Action::Add(specs) => specs,
                    _ => &[],
                };
                for spec in specs {
                    let hex =
                        rendezvous_protocol::crypto::sign::hex_string(spec.identity_key.as_bytes());
                    let pinned = if spec.user == self.user {
                        Some(rendezvous_protocol::crypto::sign::hex_string(
                            self.identity.public().as_bytes(),
                        ))
                    } else {
                        self.config.identities.get(spec.user.as_str()).cloned()
                    };
                    if pinned.is_some_and(|p| p != hex) {
                        problems.push(format!(
                            "identity key of {} is not the one this device knows",
                            spec.user
                        ));
                    }
                }
                replay.me = after.member_of(&self.user);
                if let Some(me) = replay.me {
                    let wanted = after.member(me).map(|m| m.topic_key.key_id());
                    let have = replay.my_key.as_ref().map(|k| k.public().key_id());
                    if wanted.is_some() && wanted != have {
                        replay.my_key = wanted.and_then(|id| {
                            self.keystore
                                .topic_key(&id, self.identity.public())
                                .ok()
                                .flatten()
                                .map(|(k, _)| k)
                        });
                    }
                    if let Some(key) = &replay.my_key {
                        match replay.keyring.receive(&outcome.change, after, me, key) {
                            Ok(epochs) => {
                                for epoch in epochs {
                                    if !stored.contains_key(&epoch.get())
                                        && let Some(mk) = replay.keyring.message_key(epoch)
                                        && let Err(e) =
                                            self.keystore.save_message_key(&topic, epoch.get(), mk)
                                    {
                                        problems.push(e.to_string());
                                    }
                                }
                            }
                            Err(e) => problems.push(format!("message key: {e}")),
                        }
                    }
                } else {
                    replay.my_key = None;
                }
                // Keys this device got another way (linking), checked against the key check.
                for (epoch, key) in stored {
                    if replay.keyring.message_key(Epoch(*epoch)).is_none()
                        && after.epoch_check(Epoch(*epoch)).is_some()
                        && let Ok(copy) = MessageKey::from_slice(key.as_bytes())
                        && let Err(e) = replay.keyring.insert(after, Epoch(*epoch), copy)
                    {
                        problems.push(format!("stored message key: {e}"));
                    }
                }
                EntryContent::Change {
                    author,
                    description: describe(&outcome.change.action, before, after),
                    epoch: outcome.change.epoch.get(),
                }
            }
            Applied::Message(msg) => {
                let header = msg.header();
                let sender = replayer
                    .state()
                    .and_then(|s| s.member(header.sender))
                    .map_or_else(
                        || format!("member {}", header.sender),
                        |m| m.user.to_string(),
                    );
                let text = match replay.keyring.epoch_keys(header.epoch) {
                    None => {
                        // Perhaps a later change hands this device the key: decided at the end.
                        replay.deferred.push((replay.entries.len(), msg.clone()));
                        None
                    }
                    Some(keys) => match msg.open(&topic, keys) {
                        Ok(plain) => Some(String::from_utf8_lossy(&plain).into_owned()),
                        Err(e) => {
                            problems.push(e.to_string());
                            None
                        }
                    },
                };
                EntryContent::Message {
                    sender,
                    epoch: header.epoch.get(),
                    text,
                }
            }
        };
        EntryReport {
            index,
            content,
            problems,
        }
    }

    /// Fetches entries `0..size` page by page. Returns each entry (or why it does not decode)
    /// with its index, and the indices the server did not return.
    async fn fetch_entries(
        &mut self,
        topic: &TopicId,
        from: u64,
        size: u64,
    ) -> Result<(Vec<(u64, Result<LogEntry, String>)>, Vec<u64>), ClientError> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        let mut next = from;
        while next < size {
            let limit = PAGE.min(size - next);
            let answer: EntriesResponse = self
                .authed(
                    Method::GET,
                    &topic_path(topic, &format!("/entries?from={next}&limit={limit}")),
                    None,
                )
                .await?;
            let mut progressed = false;
            for e in answer.entries {
                let index = e.index.get();
                if index < next || index >= size {
                    // Out of order, repeated or beyond the checkpoint: not ours to believe.
                    continue;
                }
                missing.extend(next..index);
                out.push((
                    index,
                    LogEntry::from_wire(&e.entry).map_err(|e| e.to_string()),
                ));
                next = index + 1;
                progressed = true;
            }
            if !progressed {
                missing.extend(next..size);
                break;
            }
        }
        Ok((out, missing))
    }

    async fn check_inclusion(
        &mut self,
        topic: &TopicId,
        index: u64,
        leaf: &[u8],
        checkpoint: &Checkpoint,
    ) -> Result<(), ClientError> {
        let size = checkpoint.size.0;
        let answer: ProofResponse = self
            .authed(
                Method::GET,
                &topic_path(
                    topic,
                    &format!("/proof/inclusion?index={index}&size={size}"),
                ),
                None,
            )
            .await?;
        let proof = InclusionProof {
            index: LeafIndex(index),
            size: TreeSize(size),
            path: parse_path(&answer.path)
                .map_err(|e| ClientError::Misbehaved(format!("inclusion proof: {e}")))?,
        };
        check_in_log(topic, leaf, &proof, checkpoint)?;
        Ok(())
    }

    /// Stores what a replay learned (member index, checkpoint, processed index) and moves the
    /// server-side cursor.
    pub(super) async fn remember(
        &mut self,
        replay: &Replay,
        processed: u64,
    ) -> Result<(), ClientError> {
        let mut record = replay.record.clone();
        record.member = replay.me.map(|m| m.0);
        record.checkpoint = replay.view.latest().map(|c| c.to_note().into_string());
        record.processed = record.processed.max(processed);
        self.keystore.save_topic(&record)?;
        let cursor = CursorRequest {
            index: LeafIndex(record.processed),
        };
        self.authed_raw(
            Method::PUT,
            &topic_path(&replay.topic, "/cursor"),
            Some(cursor.to_cbor()),
            1024,
        )
        .await?;
        Ok(())
    }

    /// Reads a topic: everything not shown before, verified (see the module docs).
    pub async fn read(&mut self, topic: &TopicId) -> Result<ReadReport, ClientError> {
        let from = self.keystore.topic(topic)?.map_or(0, |r| r.processed);
        let replay = self.replay(topic, Inclusion::From(from), false).await?;
        let size = replay.checkpoint.size.0;
        self.remember(&replay, size).await?;
        Ok(ReadReport {
            topic: topic.clone(),
            size,
            entries: replay
                .entries
                .iter()
                .filter(|e| e.index >= from)
                .cloned()
                .collect(),
            missing: replay.missing.clone(),
        })
    }

    /// Checks the whole log: full replay from 0, an inclusion proof for every entry, the root
    /// recomputed from every leaf, and consistency with the stored checkpoint.
    pub async fn verify(&mut self, topic: &TopicId) -> Result<VerifyReport, ClientError> {
        let replay = match self.replay(topic, Inclusion::From(0), true).await {
            Ok(replay) => replay,
            // This server stopped following the log: it holds evidence that the hosting
            // server signed contradicting logs. Report it with the evidence.
            Err(e) if e.code() == Some(rendezvous_protocol::api::ErrorCode::SplitView) => {
                let mut witnesses = self.check_witnesses(topic, None).await?;
                witnesses.problems.insert(0, e.to_string());
                return Ok(VerifyReport {
                    topic: topic.clone(),
                    size: 0,
                    root: String::new(),
                    consistent_with: None,
                    failed: Vec::new(),
                    missing: Vec::new(),
                    root_matches: None,
                    witnesses,
                });
            }
            Err(e) => return Err(e),
        };
        let processed = replay.record.processed;
        self.remember(&replay, processed).await?;
        Ok(VerifyReport {
            topic: topic.clone(),
            size: replay.checkpoint.size.0,
            root: replay.checkpoint.root.to_string(),
            consistent_with: replay.consistent_with,
            failed: replay
                .entries
                .iter()
                .filter(|e| !e.verified())
                .cloned()
                .collect(),
            missing: replay.missing.clone(),
            root_matches: replay.root_matches,
            witnesses: self.check_witnesses(topic, Some(&replay.view)).await?,
        })
    }

    /// Compares the verified head with the hosting server's current head, this server's
    /// mirror and every cosigned checkpoint (`client-api.md` §6 `witnesses`): equal sizes must
    /// have equal roots, a smaller checkpoint must be consistent with the verified head
    /// (proof from this server's log), and cosignatures must verify with their servers' keys.
    /// Without a verified head (the server stopped following the log), only signatures and
    /// the server's evidence are checked.
    async fn check_witnesses(
        &mut self,
        topic: &TopicId,
        view: Option<&LogView>,
    ) -> Result<WitnessReport, ClientError> {
        let head = view.and_then(|v| v.latest()).cloned();
        let answer: WitnessesResponse = self
            .authed(Method::GET, &topic_path(topic, "/witnesses"), None)
            .await?;
        let host = topic.server();
        let key = self.hosting_server_key(&host).await?;
        let mut report = WitnessReport::default();
        if let Some(evidence) = &answer.evidence {
            let reason =
                rendezvous_protocol::federation::topic_events::MirrorEvidence::from_wire(evidence)
                    .map(|e| e.reason)
                    .unwrap_or_else(|_| "undecodable evidence".into());
            report.problems.push(format!(
                "this server keeps evidence against {host}: {reason}"
            ));
        }
        let mut views: Vec<(String, String)> = Vec::new();
        if let Some(note) = &answer.host {
            views.push((format!("{host}'s current head"), note.to_string()));
        }
        if let Some(note) = &answer.mirror {
            views.push(("this server's mirror".into(), note.to_string()));
        }
        for note in &answer.witnesses {
            views.push(("a cosigned head".into(), note.to_string()));
        }
        for (what, note) in views {
            let signed = match SignedCheckpoint::parse(note.as_bytes()) {
                Ok(s) => s,
                Err(e) => {
                    report.problems.push(format!("{what} does not parse: {e}"));
                    continue;
                }
            };
            let c = match signed.verify(&key, host.as_str()) {
                Ok(c) => c.clone(),
                Err(e) => {
                    report.problems.push(format!("{what}: {e}"));
                    continue;
                }
            };
            if what.ends_with("current head") {
                report.host_size = Some(c.size.0);
            }
            if c.origin != log_origin(topic) {
                report
                    .problems
                    .push(format!("{what} is of log {:?}", c.origin));
                continue;
            }
            // The same rule as every other view of a log (`LogView::update`): equal sizes must
            // have equal roots, a smaller checkpoint must be consistent with the larger one.
            let agrees = match (&head, view) {
                (Some(head), Some(view)) => {
                    let h = head.unverified_checkpoint();
                    if c.size.0 == 0 || c.size > h.size {
                        // Empty, or ahead of this server's log: nothing to compare yet.
                        true
                    } else if c.size == h.size {
                        view.clone()
                            .update(signed.clone(), &empty_proof(c.size))
                            .is_ok()
                    } else {
                        let answer: ProofResponse = self
                            .authed(
                                Method::GET,
                                &topic_path(
                                    topic,
                                    &format!("/proof/consistency?old={}&new={}", c.size, h.size),
                                ),
                                None,
                            )
                            .await?;
                        let path = parse_path(&answer.path).map_err(|e| {
                            ClientError::Misbehaved(format!("consistency proof: {e}"))
                        })?;
                        let proof = ConsistencyProof {
                            old: c.size,
                            new: h.size,
                            path,
                        };
                        LogView::resume(&c.origin, key.clone(), host.as_str(), signed.clone())
                            .and_then(|mut older| older.update(head.clone(), &proof))
                            .is_ok()
                    }
                }
                _ => true,
            };
            if !agrees {
                report.problems.push(format!(
                    "split view: {what} (size {}, root {}) contradicts the log this device verified",
                    c.size, c.root
                ));
                continue;
            }
            for name in signed.signer_names() {
                if name == host.as_str() {
                    continue;
                }
                let Ok(server) = name.parse::<rendezvous_protocol::ids::ServerName>() else {
                    continue;
                };
                let cosigner = self.hosting_server_key(&server).await?;
                match signed.cosignature(&cosigner, name) {
                    Ok(_) => {
                        let entry = (name.to_owned(), c.size.0);
                        if !report.cosigned.contains(&entry) {
                            report.cosigned.push(entry);
                        }
                    }
                    Err(e) => report.problems.push(format!("cosignature of {name}: {e}")),
                }
            }
        }
        Ok(report)
    }
}

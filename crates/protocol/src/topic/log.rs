//! Log entries and their tag-log leaves (`federation-spec/protocol.md` §8.1).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::HashSet;

use super::{ChangeError, ChangeOutcome, LEAF_CHANGE, TopicChange, TopicState};
use crate::ids::TopicId;
use crate::message::{MAX_MESSAGE_LEN, Message, MessageIn};
use crate::message::{MessageError, MessageTag};
use crate::tlog::{Checkpoint, InclusionProof, LeafIndex, Roots, leaf_hash};
use crate::wire::{Signed, SignedBytes, Verified, WireError, decode, encode};

/// One entry of a topic's log as stored and served: `[1, message bytes]` or `[2, signed change]`
/// (the kinds are the leaf type bytes, [`super::LEAF_MESSAGE`] and [`super::LEAF_CHANGE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry(pub u8, #[serde(with = "serde_bytes")] pub Vec<u8>);

/// Entry kind: a message (the message leaf type byte).
pub const ENTRY_MESSAGE: u8 = super::LEAF_MESSAGE;
/// Entry kind: a change (the change leaf type byte).
pub const ENTRY_CHANGE: u8 = super::LEAF_CHANGE;

impl LogEntry {
    /// The entry for a message.
    pub fn message(msg: &Message) -> LogEntry {
        LogEntry(ENTRY_MESSAGE, msg.to_wire())
    }

    /// The entry for a change.
    pub fn change(change: &Verified<TopicChange>) -> LogEntry {
        LogEntry(ENTRY_CHANGE, encode(change.signed_bytes()))
    }

    /// Decodes an entry (its content is decoded by [`LogEntry::parse`]).
    pub fn from_wire(bytes: &[u8]) -> Result<LogEntry, WireError> {
        decode(bytes, super::MAX_CHANGE_LEN + 64)
    }

    /// The entry's wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(self)
    }

    /// Splits the entry into a message or a (not yet verified) change.
    pub fn parse(&self) -> Result<ParsedEntry, WireError> {
        match self.0 {
            ENTRY_MESSAGE => {
                if self.1.len() > MAX_MESSAGE_LEN {
                    return Err(WireError::TooLarge {
                        limit: MAX_MESSAGE_LEN,
                        got: self.1.len(),
                    });
                }
                MessageIn::from_wire(&self.1)
                    .map(ParsedEntry::Message)
                    .map_err(|e| match e {
                        crate::message::MessageError::Malformed(w) => w,
                        other => WireError::InvalidField {
                            field: "message",
                            reason: other.to_string(),
                        },
                    })
            }
            ENTRY_CHANGE => Signed::<TopicChange>::from_wire(&self.1).map(ParsedEntry::Change),
            other => Err(WireError::InvalidField {
                field: "entry kind",
                reason: format!("unknown entry kind {other}"),
            }),
        }
    }
}

/// A log entry split by kind.
#[derive(Debug)]
pub enum ParsedEntry {
    /// A message, not yet checked.
    Message(MessageIn),
    /// A change, not yet checked.
    Change(Signed<TopicChange>),
}

/// The leaf data of a change: `0x02 ‖ SHA-256(signed change)`.
pub fn leaf_data_for_change(signed: &SignedBytes) -> Vec<u8> {
    let mut out = Vec::with_capacity(33);
    out.push(LEAF_CHANGE);
    out.extend_from_slice(&Sha256::digest(encode(signed)));
    out
}

/// Why a log entry is invalid at its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The entry does not decode.
    #[error("entry {index}: {error}")]
    Malformed {
        /// Log position.
        index: LeafIndex,
        /// What is wrong.
        error: WireError,
    },
    /// A change that breaks a topic rule.
    #[error("entry {index}: {error}")]
    Change {
        /// Log position.
        index: LeafIndex,
        /// The rule broken.
        error: ChangeError,
    },
    /// A message that breaks a topic rule.
    #[error("entry {index}: {error}")]
    Message {
        /// Log position.
        index: LeafIndex,
        /// The rule broken.
        error: MessageError,
    },
}

/// What a valid entry was.
#[derive(Debug)]
pub enum Applied {
    /// A message, with its signature checked.
    Message(Message),
    /// A change, and the state after it.
    Change(Box<ChangeOutcome>),
}

/// Replays a topic's log entry by entry with the same rules as the hosting server, as a member
/// or mirror that validates a log does. Keeps every tag for replay detection, and the root of the
/// replayed log at every size ([`Roots`], 32 bytes per entry): message and change signatures are
/// checked against them (fork binding, `federation-spec/protocol.md` §6.4, §7.2).
#[derive(Debug, Default)]
pub struct Replayer {
    state: Option<TopicState>,
    tags: HashSet<MessageTag>,
    roots: Roots,
}

impl Replayer {
    /// A replayer at log position 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Goes on from a known state, the tags of every message before it and the roots of the log
    /// so far (a device resuming its check of a log where it stopped). `roots` must end at the
    /// state's size; messages whose `seen` is below [`Roots::start`] cannot be checked
    /// ([`MessageError::RootUnknown`]).
    pub fn resume(state: TopicState, tags: HashSet<MessageTag>, roots: Roots) -> Self {
        Replayer {
            state: Some(state),
            tags,
            roots,
        }
    }

    /// The roots of the log replayed so far (with a resumed replayer, from where it resumed).
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// Tags of every message applied so far.
    pub fn tags(&self) -> &HashSet<MessageTag> {
        &self.tags
    }

    /// The state after the entries so far (`None` before the create).
    pub fn state(&self) -> Option<&TopicState> {
        self.state.as_ref()
    }

    /// Checks and applies the next entry; returns what it was and its leaf data.
    pub fn push(&mut self, entry: &LogEntry) -> Result<(Applied, Vec<u8>), EntryError> {
        let index = self
            .state
            .as_ref()
            .map_or(LeafIndex(0), |s| s.size().next_index());
        let parsed = entry
            .parse()
            .map_err(|error| EntryError::Malformed { index, error })?;
        // The entry's leaf as the log holds it, whether or not the entry is valid: the roots
        // follow the log as served, so one bad entry does not make every later signature fail
        // (its leaf is checked against the log by inclusion, `tag-log.md` §9.1).
        let leaf = leaf_of(&parsed);
        let applied = self.apply(index, parsed);
        // A log of 2^64 entries cannot occur; the roots would then stop growing and later
        // signatures fail as `RootUnknown`.
        let _ = self.roots.append(&leaf);
        Ok((applied?, leaf))
    }

    /// Checks and applies a parsed entry at `index` (the roots are those before it).
    fn apply(&mut self, index: LeafIndex, parsed: ParsedEntry) -> Result<Applied, EntryError> {
        match (parsed, &mut self.state) {
            (ParsedEntry::Change(signed), None) => {
                let outcome = TopicState::create(signed)
                    .map_err(|error| EntryError::Change { index, error })?;
                self.state = Some(outcome.next.clone());
                Ok(Applied::Change(Box::new(outcome)))
            }
            (ParsedEntry::Message(_), None) => Err(EntryError::Change {
                index,
                error: ChangeError::CreateNotFirst,
            }),
            (ParsedEntry::Change(signed), Some(state)) => {
                let err = |error| EntryError::Change { index, error };
                // The root of the log before this entry, as served (its end: the entry's own
                // position in the log).
                let root = self.roots.root();
                let outcome = state.check_change(signed, &root).map_err(err)?;
                *state = outcome.next.clone();
                Ok(Applied::Change(Box::new(outcome)))
            }
            (ParsedEntry::Message(msg), Some(state)) => {
                let err = |error| EntryError::Message { index, error };
                let msg = state
                    .check_message(msg, &self.tags, &self.roots)
                    .map_err(err)?;
                state.append_message(&msg).map_err(err)?;
                self.tags.insert(*msg.tag());
                Ok(Applied::Message(msg))
            }
        }
    }
}

/// The leaf data of a decoded entry (`protocol.md` §8.1), valid or not.
fn leaf_of(parsed: &ParsedEntry) -> Vec<u8> {
    match parsed {
        ParsedEntry::Message(m) => {
            let header = m.header().to_bytes();
            let mut out = Vec::with_capacity(1 + header.len() + 32);
            out.push(super::LEAF_MESSAGE);
            out.extend_from_slice(&header);
            out.extend_from_slice(&m.tag().0);
            out
        }
        ParsedEntry::Change(c) => leaf_data_for_change(c.signed_bytes()),
    }
}

/// The origin line of a topic's tag-log checkpoints: `<hosting server>/topic/<26 characters>`.
pub fn log_origin(topic: &TopicId) -> String {
    format!("{}/topic/{}", topic.server(), topic.local())
}

/// Checks that the entry whose leaf data is `leaf` sits at `proof.index` of the log that the
/// (already signature-checked) `checkpoint` commits to. A message that fails is reported as
/// [`MessageError::NotInLog`]: the server served something its log does not contain.
pub fn check_in_log(
    topic: &TopicId,
    leaf: &[u8],
    proof: &InclusionProof,
    checkpoint: &Checkpoint,
) -> Result<(), MessageError> {
    if checkpoint.origin != log_origin(topic) || proof.size != checkpoint.size {
        return Err(MessageError::NotInLog);
    }
    proof
        .verify(&leaf_hash(leaf), &checkpoint.root)
        .map_err(|_| MessageError::NotInLog)
}

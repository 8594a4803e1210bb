//! Log entries and their tag-log leaves (`federation-spec/protocol.md` §8.1).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::HashSet;

use super::{ChangeError, ChangeOutcome, LEAF_CHANGE, TopicChange, TopicState};
use crate::ids::TopicId;
use crate::message::{MAX_MESSAGE_LEN, Message, MessageIn};
use crate::message::{MessageError, MessageTag};
use crate::tlog::{Checkpoint, InclusionProof, LeafIndex, Roots, leaf_hash};
use crate::wire::signed::SIGNED_OVERHEAD;
use crate::wire::{Signed, SignedBytes, Verified, WireError, decode, encode};

/// One entry of a topic's log as stored and served: `[1, message bytes]` or `[2, signed change]`
/// (the kinds are the leaf type bytes, [`super::LEAF_MESSAGE`] and [`super::LEAF_CHANGE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry(pub u8, #[serde(with = "serde_bytes")] pub Vec<u8>);

/// Largest encoded entry accepted (`federation-spec/protocol.md` §8.1): the largest signed
/// change any party accepts ([`super::MAX_CHANGE_LEN`] + [`SIGNED_OVERHEAD`]) in its `[2, bstr]`
/// framing (array head 1, kind 1, byte-string head 5 bytes).
pub const MAX_ENTRY_LEN: usize = super::MAX_CHANGE_LEN + SIGNED_OVERHEAD + 7;

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
        decode(bytes, MAX_ENTRY_LEN)
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

/// The leaf data of an entry, computed from its bytes alone (no check): what the tag log holds
/// for it (`federation-spec/protocol.md` §8.1).
pub fn leaf_data(entry: &LogEntry) -> Result<Vec<u8>, WireError> {
    Ok(leaf_of(&entry.parse()?))
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
    /// An entry at or before a position already taken.
    #[error("entry {index}: the next entry is at index {next} or later")]
    Position {
        /// The index given.
        index: LeafIndex,
        /// The first index still free.
        next: LeafIndex,
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
// A message (216 bytes) is moved, not boxed: every entry of a replay is one, and a box would be
// one allocation per message on the read and append paths.
#[allow(clippy::large_enum_variant)]
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
    /// The index after the last entry pushed (applied or not).
    next: LeafIndex,
    /// Indices passed over: missing or refused.
    skipped: Vec<LeafIndex>,
    /// The first skipped index not followed by an applied change.
    uncertain_since: Option<LeafIndex>,
    roots: Roots,
    /// Set once an index was passed over without its authentic leaf hash: the roots stop
    /// there, and signatures bound to a later size cannot be checked (`RootUnknown`).
    roots_stopped: bool,
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
        let next = state.size().next_index();
        Replayer {
            state: Some(state),
            tags,
            next,
            skipped: Vec::new(),
            uncertain_since: None,
            roots,
            roots_stopped: false,
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

    /// Checks and applies the next entry (at the position after the last one pushed, applied
    /// or not); returns what it was and its leaf data. A reader that may lack entries uses
    /// [`Self::push_at`] with the index the log gives.
    pub fn push(&mut self, entry: &LogEntry) -> Result<(Applied, Vec<u8>), EntryError> {
        self.push_at(self.next_index(), entry)
    }

    /// Checks and applies the entry at log index `index` (`tag-log.md` §9.2): the position comes
    /// from the log, not from how many entries were accepted. Indices between the last applied
    /// entry and `index` are skipped (missing, or refused): the state moves to `index` without
    /// them, and [`Self::skipped`] lists them. An index at or before an applied one is refused.
    pub fn push_at(
        &mut self,
        index: LeafIndex,
        entry: &LogEntry,
    ) -> Result<(Applied, Vec<u8>), EntryError> {
        let next = self.next_index();
        if index < next {
            return Err(EntryError::Position { index, next });
        }
        if index > next {
            // Entries the caller does not have: the roots cannot follow them.
            self.roots_stopped = true;
            self.skip(next..index);
        }
        if let Some(state) = &mut self.state {
            state.skip_to(index);
        }
        let result = self.apply_entry(index, entry);
        match &result {
            Err(_) => self.skip(index..LeafIndex(index.0.saturating_add(1))),
            // A change chains to the last applied one (`prev`): none was among the skipped.
            Ok((Applied::Change(_), _)) => self.uncertain_since = None,
            Ok(_) => {}
        }
        self.next = LeafIndex(index.0.saturating_add(1));
        result
    }

    /// Passes over the entry at `index` without applying it: missing from what was served, or
    /// served altered (its inclusion proof failed). `leaf_hash` is its authentic leaf hash when
    /// the caller has one (e.g. the level-0 sibling in a neighbour's verified inclusion proof,
    /// `tag-log.md` §9.2); without it the roots stop and signatures bound to a later size cannot
    /// be checked ([`MessageError::RootUnknown`]).
    pub fn pass_over(&mut self, index: LeafIndex, leaf_hash: Option<crate::tlog::LogHash>) {
        let next = self.next_index();
        if index < next {
            return;
        }
        if index > next {
            self.roots_stopped = true;
            self.skip(next..index);
        }
        match leaf_hash {
            Some(h) if !self.roots_stopped => {
                // A log of 2^64 entries cannot occur (see `apply_entry`).
                let _ = self.roots.append_leaf_hash(h);
            }
            _ => self.roots_stopped = true,
        }
        self.skip(index..LeafIndex(index.0.saturating_add(1)));
        if let Some(state) = &mut self.state {
            state.skip_to(LeafIndex(index.0.saturating_add(1)));
        }
        self.next = LeafIndex(index.0.saturating_add(1));
    }

    fn skip(&mut self, range: std::ops::Range<LeafIndex>) {
        self.uncertain_since = self.uncertain_since.or(Some(range.start));
        self.skipped
            .extend((range.start.0..range.end.0).map(LeafIndex));
    }

    /// The index the next entry is expected at.
    pub fn next_index(&self) -> LeafIndex {
        let applied = self
            .state
            .as_ref()
            .map_or(LeafIndex(0), |s| s.size().next_index());
        applied.max(self.next)
    }

    /// Indices passed over so far: missing from what was pushed, or refused. Until a later
    /// change applies (its `prev` chains to the last applied change, so no valid change was
    /// among them), the state after them is not known for certain (`tag-log.md` §9.2).
    pub fn skipped(&self) -> &[LeafIndex] {
        &self.skipped
    }

    /// The first skipped index since the last applied change: while `Some`, a valid change may
    /// be among the skipped entries, and entries checked against the state may fail only for
    /// that reason.
    pub fn uncertain_since(&self) -> Option<LeafIndex> {
        self.uncertain_since
    }

    fn apply_entry(
        &mut self,
        index: LeafIndex,
        entry: &LogEntry,
    ) -> Result<(Applied, Vec<u8>), EntryError> {
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
        if !self.roots_stopped {
            let _ = self.roots.append(&leaf);
        }
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
                // position in the log). Unknown when the roots stopped before it.
                if self.roots.size().0 != index.0 {
                    return Err(err(ChangeError::RootUnknown {
                        size: crate::tlog::TreeSize(index.0),
                        error: crate::tlog::TlogError::SizeOutOfRange {
                            size: index.0,
                            current: self.roots.size().0,
                        },
                    }));
                }
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
        ParsedEntry::Message(m) => m.leaf_data(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;

    /// A change as large as the signed-form limit lets through is a valid log entry, so a
    /// change the host accepts is never an entry mirrors and readers refuse.
    #[test]
    fn the_largest_signed_change_fits_an_entry() {
        let signed = encode(&(
            ByteBuf::from(vec![0u8; super::super::MAX_CHANGE_LEN]),
            ByteBuf::from(vec![0u8; 64]),
        ));
        assert!(signed.len() <= super::super::MAX_CHANGE_LEN + SIGNED_OVERHEAD);
        let entry = LogEntry(ENTRY_CHANGE, signed).to_wire();
        assert_eq!(entry.len(), super::super::MAX_CHANGE_LEN + 79);
        assert!(LogEntry::from_wire(&entry).is_ok());
        let mut too_long = LogEntry(ENTRY_CHANGE, vec![0; MAX_ENTRY_LEN]).to_wire();
        assert!(matches!(
            LogEntry::from_wire(&too_long),
            Err(WireError::TooLarge { .. })
        ));
        too_long.truncate(MAX_ENTRY_LEN);
        assert!(LogEntry::from_wire(&too_long).is_err());
    }
}

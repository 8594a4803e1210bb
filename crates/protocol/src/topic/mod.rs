//! The topic state machine (`federation-spec/protocol.md` §7): ONE implementation of the rules
//! that the hosting server enforces, mirrors check and members validate.
//!
//! A topic is an ordered log of entries. Entry 0 is the signed `create` change; every later
//! entry is either a message or another change (add, remove, set role, rekey), signed by an
//! admin's Topic Key. [`TopicState`] is the state after a prefix of the log; it decides whether
//! the next entry is valid *at that position*:
//!
//! - a change must name the hash of the previous change (`prev`), so a change built on an old
//!   roster is refused rather than applied to a new one;
//! - only admins change the topic; a topic always keeps at least one admin, and an admin cannot
//!   remove themselves (they would know the epoch key that is meant to exclude them);
//! - a message must be for the current epoch, from a member whose role may post (admin, writer;
//!   never a reader), with a tag never seen before in the log.
//!
//! Key distribution ([`plan`](TopicState), [`ChangeBuilder`] and [`keys`]) is part of the same rules: every change
//! carries exactly one sealed Message Key per member who must receive one, and nothing else.

mod builder;
mod change;
mod entry_evidence;
pub mod keys;
mod log;
mod state;

pub use builder::ChangeBuilder;
pub use change::{
    Action, ChangeHash, HistoryBox, HostKey, KeyBox, MAX_CHANGE_LEN, MemberSpec, TopicChange,
};
pub use entry_evidence::{EntryEvidence, EntryEvidenceError, MAX_ENTRY_EVIDENCE_SIZE, committed};
pub use keys::{EpochKeyring, KeyError};
pub use log::{
    Applied, ENTRY_CHANGE, ENTRY_MESSAGE, EntryError, LogEntry, MAX_ENTRY_LEN, ParsedEntry,
    Replayer, check_in_log, leaf_data, leaf_data_for_change, log_origin,
};
pub use state::{ChangeOutcome, Member, TagSet, TagsUnavailable, TopicState};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::ids::{Epoch, MemberIndex};
use crate::wire::WireError;

/// Leaf type byte of a message leaf: `0x01 ‖ header ‖ tag ‖ SHA-256(ciphertext) ‖ signature`.
pub const LEAF_MESSAGE: u8 = 1;
/// Leaf type byte of a change leaf: `0x02 ‖ SHA-256(signed change)`.
pub const LEAF_CHANGE: u8 = 2;
/// Most members a topic may have.
pub const MAX_MEMBERS: usize = 5000;

/// What a member may do. On the wire a small integer, the explicit discriminant
/// (`federation-spec/wire.cddl`, `role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    /// Reads, posts and changes the topic.
    Admin = 0,
    /// Reads and posts.
    Writer = 1,
    /// Reads only.
    Reader = 2,
}

impl Role {
    /// Wire value: admin 0, writer 1, reader 2.
    pub fn to_wire(self) -> u8 {
        self as u8
    }

    /// Parses the wire value.
    pub fn from_wire(v: u8) -> Result<Role, WireError> {
        match v {
            0 => Ok(Role::Admin),
            1 => Ok(Role::Writer),
            2 => Ok(Role::Reader),
            other => Err(WireError::InvalidField {
                field: "role",
                reason: format!("unknown role {other}"),
            }),
        }
    }

    /// Whether this role may post messages.
    pub fn can_post(self) -> bool {
        matches!(self, Role::Admin | Role::Writer)
    }

    /// Whether this role may change the topic.
    pub fn can_change(self) -> bool {
        self == Role::Admin
    }

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.to_wire())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Role::from_wire(u8::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Whether new members may read messages from before they joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum History {
    /// New members receive the current epoch's key (and, on request, older ones).
    Shared,
    /// Backward secrecy: every addition starts a new epoch; new members get no older key.
    Protected,
}

impl History {
    /// Wire value: shared 0, protected 1.
    pub fn to_wire(self) -> u8 {
        match self {
            History::Shared => 0,
            History::Protected => 1,
        }
    }

    /// Parses the wire value.
    pub fn from_wire(v: u8) -> Result<History, WireError> {
        match v {
            0 => Ok(History::Shared),
            1 => Ok(History::Protected),
            other => Err(WireError::InvalidField {
                field: "history",
                reason: format!("unknown history setting {other}"),
            }),
        }
    }
}

/// Why a topic change was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Not a well-formed change.
    #[error("malformed change: {0}")]
    Malformed(#[from] WireError),
    /// The create names another Server Key than the one the log is (to be) signed with.
    #[error("the create names host key {named}, but the log's checkpoints are under key {signing}")]
    WrongHostKey {
        /// The key hash the create names (first 8 bytes, hex).
        named: String,
        /// The hash of the key in use (first 8 bytes, hex).
        signing: String,
    },
    /// The author's Topic Key signature does not verify.
    #[error("bad signature on topic change")]
    BadSignature,
    /// The change is for another topic.
    #[error("change is for topic {got}, not {expected}")]
    WrongTopic {
        /// This topic.
        expected: String,
        /// The topic the change names.
        got: String,
    },
    /// A create that is malformed as a create.
    #[error("invalid create: {0}")]
    InvalidCreate(&'static str),
    /// A `create` anywhere but at log position 0, or another change at position 0.
    #[error("a create change must be the first entry of a topic, and only it")]
    CreateNotFirst,
    /// The change was built on another state of the topic (its `prev` is not the last change).
    #[error("stale change: built on another state of the topic")]
    StaleChange,
    /// The signature does not verify over this log's root at the change's position, and entries
    /// followed the last change: the author built it before some of them (a race: build it
    /// again), on another branch of the log, or did not sign it. On the wire `stale_change`.
    #[error(
        "stale change: its signature does not cover this log's root at position {position} (built before later entries, on another log, or not by its author)"
    )]
    StaleRoot {
        /// The change's position.
        position: crate::tlog::LeafIndex,
    },
    /// The verifier does not know its own log root at a change's position (a fault of the
    /// verifier's own log, never a verdict on the change).
    #[error("no own log root at size {size} to check the change with: {error}")]
    RootUnknown {
        /// The position.
        size: crate::tlog::TreeSize,
        /// Why the root is not known.
        error: crate::tlog::TlogError,
    },
    /// The author index names nobody in the topic.
    #[error("author {0} is not a member")]
    UnknownAuthor(MemberIndex),
    /// The author is a member but not an admin.
    #[error("author {author} is a {role}, only admins change a topic")]
    NotAdmin {
        /// The author's member index.
        author: MemberIndex,
        /// The author's role.
        role: &'static str,
    },
    /// A user being added is already a member.
    #[error("{0} is already a member")]
    AlreadyMember(String),
    /// A member index named by the change is not a current member.
    #[error("member {0} is not in the topic")]
    NotAMember(MemberIndex),
    /// A topic key certificate does not verify with the member's identity key, or names another user.
    #[error("topic key certificate of {user} is invalid: {reason}")]
    BadTopicKeyCert {
        /// The member being added.
        user: String,
        /// What is wrong.
        reason: String,
    },
    /// A Topic Key was already used in this topic (keys are single use).
    #[error("topic key already used in this topic")]
    TopicKeyReused,
    /// A move that names another user or another role than the author's, or that keeps the
    /// author's Topic Key.
    #[error("invalid move: {0}")]
    InvalidMove(&'static str),
    /// An admin tried to remove themselves.
    #[error("an admin cannot remove themselves")]
    SelfRemoval,
    /// The change would leave the topic without an admin.
    #[error("the topic must keep at least one admin")]
    LastAdmin,
    /// The change changes nothing (empty list, same role).
    #[error("the change changes nothing")]
    NoOp,
    /// The topic would exceed [`MAX_MEMBERS`].
    #[error("too many members: limit {limit}")]
    TooManyMembers {
        /// The limit.
        limit: usize,
    },
    /// The change names the wrong epoch.
    #[error("wrong epoch: expected {expected}, got {got}")]
    WrongEpoch {
        /// The epoch the rules require.
        expected: Epoch,
        /// The epoch named.
        got: Epoch,
    },
    /// A key check value is missing on a new epoch, or present when the epoch stays.
    #[error("key check value {0}")]
    KeyCheck(&'static str),
    /// The sealed Message Keys are not exactly one per member who must receive one.
    #[error("key boxes must go to members {expected:?}, got {got:?}")]
    WrongRecipients {
        /// Member indices that must receive a box, ascending.
        expected: Vec<MemberIndex>,
        /// Member indices that got one.
        got: Vec<MemberIndex>,
    },
    /// A box is sealed to a key other than the member's Topic Key.
    #[error("key box for member {0} is not sealed to its topic key")]
    BoxWrongKey(MemberIndex),
    /// History boxes in a protected topic, for an old member, a future epoch, or twice.
    #[error("history box not allowed: {0}")]
    HistoryBox(&'static str),
}

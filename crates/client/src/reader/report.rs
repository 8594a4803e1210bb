//! What reading and verifying a topic found: one [`EntryReport`] per entry, with every check that
//! failed, gathered into a [`ReadReport`] or a [`VerifyReport`].

use rendezvous_protocol::ids::TopicId;

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
        /// No plaintext by design: posted before this user joined (protected history, or
        /// older epochs' keys not shared). Not a problem.
        by_design: bool,
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

    /// An entry that could not be decoded or broke a rule.
    pub(super) fn invalid(index: u64, problem: String) -> Self {
        EntryReport {
            index,
            content: EntryContent::Invalid,
            problems: vec![problem],
        }
    }
}

/// What [`Client::read`](crate::Client::read) found.
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
    /// Seconds since the head was signed.
    pub age: u64,
    /// Whether that is more than `MAX_HEAD_AGE` (`stale`: writes are refused on it).
    pub stale: bool,
    /// The kind of evidence this device holds against the hosting server: the read went only
    /// up to the head verified before (`log_forked`).
    pub forked: Option<String>,
    /// Changes this device refused by the roster check (`directory.md` §6.4): nothing more is
    /// written to the topic (`topic_refused`).
    pub refused: Vec<crate::keystore::RosterRefusal>,
    /// Added members whose IK could not be checked now (`roster_unchecked`).
    pub unchecked: Vec<String>,
    /// Entries the homeserver's mirror refused for a wrong IK of one of its users
    /// (`directory.md` §6.5, `mirror_refused`).
    pub mirror_refused: Vec<MirrorRefusal>,
}

/// An entry the homeserver's mirror refused because a member spec for one of its users
/// carries another IK than the user's (`directory.md` §6.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRefusal {
    /// The entry's log index.
    pub index: u64,
    /// The user.
    pub user: String,
    /// The IK in the entry (hex).
    pub identity_key: String,
}

impl ReadReport {
    /// Whether the read reports a problem: an entry that fails a check, a missing entry, or
    /// evidence (`rdv read` then exits non-zero).
    pub fn has_problems(&self) -> bool {
        self.forked.is_some()
            || !self.refused.is_empty()
            || !self.unchecked.is_empty()
            || !self.missing.is_empty()
            || self.entries.iter().any(|e| !e.verified())
    }
}

/// What [`Client::verify`](crate::Client::verify) found.
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
    /// Seconds since the head was signed, and whether that makes it stale.
    pub age: u64,
    /// Whether the head is older than `MAX_HEAD_AGE`.
    pub stale: bool,
    /// Evidence this device keeps against the hosting server (its kinds, oldest first;
    /// `rdv evidence export` writes it).
    pub evidence: Vec<String>,
}

impl VerifyReport {
    /// Whether the whole log verified.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
            && self.missing.is_empty()
            && self.root_matches == Some(true)
            && self.witnesses.problems.is_empty()
            && self.evidence.is_empty()
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
    /// Names on cosignature lines whose key this device does not know (no key for the name,
    /// or a line under another key hash): neither support nor a contradiction.
    pub unknown_cosigners: Vec<String>,
    /// Entries the homeserver's mirror refused for a wrong IK of one of its users
    /// (`directory.md` §6.5).
    pub mirror_refused: Vec<MirrorRefusal>,
}

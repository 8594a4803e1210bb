//! The tag log: an RFC 9162 Merkle tree per topic, its proofs, signed tree heads and the mirror
//! logic that checks them (`federation-spec/tag-log.md`).
//!
//! One implementation serves the hosting server (which appends and proves), the homeserver mirrors
//! (which check consistency and cosign) and the clients (which verify inclusion and compare
//! views):
//!
//! - [`tree`]: the append-only tree over a pluggable [`tree::NodeStore`], and the store-free
//!   [`tree::Frontier`] (compact range) that mirrors keep.
//! - [`proof`]: inclusion and consistency proofs, verified exactly as RFC 9162 §2.1.3.2 and
//!   §2.1.4.2 say.
//! - [`checkpoint`]: signed tree heads in the C2SP `tlog-checkpoint` / `signed-note` formats.
//! - [`cosignature`]: witness cosignatures (C2SP `tlog-cosignature`).
//! - [`witness`]: a mirror's (or client's) view of one log.
//! - [`evidence`]: portable, checkable evidence of a log's misbehaviour.
//! - [`roots`]: a verifier's own roots at earlier sizes, which message and change signatures
//!   bind (fork binding).
//!
//! Hashing is RFC 9162 §2.1.1: `leaf = SHA-256(0x00 ‖ data)`, `node = SHA-256(0x01 ‖ left ‖
//! right)`, and the empty tree's root is `SHA-256("")`.

pub mod checkpoint;
pub mod cosignature;
pub mod evidence;
pub mod host_keys;
pub mod proof;
pub mod roots;
pub mod tree;
pub mod witness;

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointNote, SignedCheckpoint};
pub use cosignature::Cosignature;
pub use evidence::{Evidence, EvidenceError};
pub use host_keys::{HostKeyError, HostKeys, KeyRotation, RotationError, SignedRotation};
pub use proof::{ConsistencyProof, InclusionProof};
pub use roots::{CurrentRoot, RootAt, Roots};
pub use tree::{Frontier, MemoryNodeStore, NodeStore, Tree};
pub use witness::{LogView, Update, WitnessError};

/// A hosting server re-signs its head (same size and root, `time` now) when its newest
/// checkpoint of the log is older than this many seconds and a member asks for it, so that an
/// idle topic's head stays fresh (`tag-log.md` §4.2, `client-api.md` §6 `checkpoint`). A mirror
/// asks the hosting server for a fresh head when its own is older.
pub const HEAD_RESIGN_AFTER: u64 = 30;
/// A member treats a head older than this many seconds as **stale**: it writes nothing on it
/// (`stale_head`) and its reads say so (`tag-log.md` §9.4).
pub const MAX_HEAD_AGE: u64 = 120;
/// A head whose `time` is more than this many seconds ahead of the member's clock is refused.
pub const MAX_CLOCK_SKEW: u64 = 60;

/// How fresh a head signed at `time` is at `now` (Unix seconds, `tag-log.md` §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Signed at most [`MAX_HEAD_AGE`] seconds ago (or slightly ahead, within
    /// [`MAX_CLOCK_SKEW`]); `age` is `now − time`, 0 when ahead.
    Fresh {
        /// Seconds since it was signed.
        age: u64,
    },
    /// Signed more than [`MAX_HEAD_AGE`] seconds ago.
    Stale {
        /// Seconds since it was signed.
        age: u64,
    },
    /// Dated more than [`MAX_CLOCK_SKEW`] seconds after `now`.
    FromTheFuture {
        /// Seconds ahead.
        ahead: u64,
    },
}

impl Freshness {
    /// The freshness of a head signed at `time`, seen at `now`.
    pub fn of(time: u64, now: u64) -> Freshness {
        if time > now {
            let ahead = time - now;
            return match ahead > MAX_CLOCK_SKEW {
                true => Freshness::FromTheFuture { ahead },
                false => Freshness::Fresh { age: 0 },
            };
        }
        let age = now - time;
        match age > MAX_HEAD_AGE {
            true => Freshness::Stale { age },
            false => Freshness::Fresh { age },
        }
    }
}

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 hash in the log: a leaf hash, an interior node or a root.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogHash(pub [u8; 32]);

impl LogHash {
    /// The length of every hash in the log.
    pub const LEN: usize = 32;

    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<LogHash, TlogError> {
        bytes
            .try_into()
            .map(LogHash)
            .map_err(|_| TlogError::BadHashLength {
                expected: Self::LEN,
                got: bytes.len(),
            })
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for LogHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogHash({})", crate::crypto::sign::hex_string(&self.0))
    }
}

impl fmt::Display for LogHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::crypto::sign::hex_string(&self.0))
    }
}

/// The position of a leaf in a log, counted from 0. On the wire a plain integer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LeafIndex(pub u64);

/// The number of leaves in a log (or in an earlier version of it). On the wire a plain integer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TreeSize(pub u64);

impl LeafIndex {
    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The size of the log that ends with this leaf.
    pub fn size_after(self) -> TreeSize {
        TreeSize(self.0.saturating_add(1))
    }
}

impl TreeSize {
    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The index the next leaf appended to a log of this size gets.
    pub fn next_index(self) -> LeafIndex {
        LeafIndex(self.0)
    }
}

impl From<u64> for LeafIndex {
    fn from(n: u64) -> Self {
        LeafIndex(n)
    }
}

impl From<u64> for TreeSize {
    fn from(n: u64) -> Self {
        TreeSize(n)
    }
}

impl PartialEq<u64> for LeafIndex {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl PartialEq<u64> for TreeSize {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The hash of a leaf whose data is `data`: `SHA-256(0x00 ‖ data)` (RFC 9162 §2.1.1).
pub fn leaf_hash(data: &[u8]) -> LogHash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    LogHash(h.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)` (RFC 9162 §2.1.1).
pub fn node_hash(left: &LogHash, right: &LogHash) -> LogHash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left.0);
    h.update(right.0);
    LogHash(h.finalize().into())
}

/// The root of the empty tree: `SHA-256("")` (RFC 9162 §2.1.1).
pub fn empty_root() -> LogHash {
    LogHash(Sha256::digest([]).into())
}

/// Why a tree operation or a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogError {
    /// A hash that is not 32 bytes long.
    #[error("hash must be {expected} bytes, got {got}")]
    BadHashLength {
        /// Always 32.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A leaf index at or beyond the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The size of the tree it was asked in.
        size: u64,
    },
    /// A tree size larger than the tree has (or can have) grown.
    #[error("tree size {size} exceeds the current size {current}")]
    SizeOutOfRange {
        /// The size asked for.
        size: u64,
        /// The largest size available.
        current: u64,
    },
    /// A consistency proof whose old size is larger than its new size.
    #[error("old size {old} is larger than new size {new}")]
    OldLargerThanNew {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// A consistency proof from the empty tree: it proves nothing, and the vectors we follow
    /// (transparency-dev) treat it as an error. Protocols above may accept `old = 0` without a
    /// proof.
    #[error("a consistency proof from the empty tree proves nothing")]
    EmptyOldTree,
    /// A proof with the wrong number of hashes for its sizes.
    #[error("proof must have {expected} hashes, got {got}")]
    WrongProofLength {
        /// Length that the sizes imply.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The proof leads to a root other than the one expected.
    #[error("proof leads to root {got}, expected {expected}")]
    RootMismatch {
        /// The root the proof should reach.
        expected: LogHash,
        /// The root it reached.
        got: LogHash,
    },
    /// The node store lacks a hash that it must hold: the store is corrupt or was truncated.
    #[error("node store has no hash at level {level}, index {index}")]
    MissingNode {
        /// Level of the node (0 for leaves).
        level: u8,
        /// Index of the node in its level.
        index: u64,
    },
    /// A frontier must hold one hash per set bit of its size.
    #[error("frontier of this size has {expected} hashes, got {got}")]
    FrontierLength {
        /// `popcount(size)`.
        expected: usize,
        /// Hashes given.
        got: usize,
    },
    /// The tree cannot grow any further.
    #[error("the tree is full")]
    Full,
}

/// The largest power of two strictly smaller than `n` (`n >= 2`): the split point `k` of
/// RFC 9162 §2.1.1.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_bounds_are_inclusive_and_future_times_are_refused_past_the_skew() {
        let now = 1_000_000;
        assert_eq!(Freshness::of(now, now), Freshness::Fresh { age: 0 });
        assert_eq!(
            Freshness::of(now - MAX_HEAD_AGE, now),
            Freshness::Fresh { age: MAX_HEAD_AGE }
        );
        assert_eq!(
            Freshness::of(now - MAX_HEAD_AGE - 1, now),
            Freshness::Stale {
                age: MAX_HEAD_AGE + 1
            }
        );
        assert_eq!(
            Freshness::of(now + MAX_CLOCK_SKEW, now),
            Freshness::Fresh { age: 0 }
        );
        assert_eq!(
            Freshness::of(now + MAX_CLOCK_SKEW + 1, now),
            Freshness::FromTheFuture {
                ahead: MAX_CLOCK_SKEW + 1
            }
        );
        // An honest host re-signs well within the bound a member applies.
        const { assert!(HEAD_RESIGN_AFTER * 2 < MAX_HEAD_AGE) };
    }

    #[test]
    fn hashes_match_rfc_9162_definitions() {
        assert_eq!(
            empty_root().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // known-answers.json: root of the one-leaf tree over the empty input.
        assert_eq!(
            leaf_hash(b"").to_string(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_ne!(
            node_hash(&leaf_hash(b"a"), &leaf_hash(b"b")),
            node_hash(&leaf_hash(b"b"), &leaf_hash(b"a"))
        );
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn hash_parsing_and_debug() {
        assert_eq!(
            LogHash::from_slice(&[0; 31]),
            Err(TlogError::BadHashLength {
                expected: 32,
                got: 31
            })
        );
        let h = LogHash::from_slice(&[0xab; 32]).unwrap();
        assert!(format!("{h:?}").starts_with("LogHash(abab"));
    }
}

#[cfg(test)]
mod proptests;

//! This server's identity directory (`federation-spec/directory.md` §2–§4): the log of its
//! users' Identity Key bindings, its newest and served checkpoints, the witness cosignatures
//! it receives, and the proofs it answers lookups with.
//!
//! - [`log`]: the start-up backfill (§2.2), checkpoints (§2.3), the served checkpoint and
//!   cosignatures (§3);
//! - [`proofs`]: the answers of the client endpoints and of the identity lookup (§4).
//!
//! The entries, proofs and checks themselves are the shared rules of
//! `rendezvous_protocol::directory`. Witnessing other servers' directories is federation's
//! (`crate::federation::directory`).

pub mod log;
pub mod proofs;

pub use log::DirectoryLog;

use rendezvous_protocol::ids::UserId;

use crate::store::StoreError;

/// Why a directory request was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryServeError {
    /// Storage failed: never a protocol verdict (`503`/`500`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The user's entry is not in the served checkpoint yet (§4): try after the next witness
    /// round.
    #[error("the directory entry of {user} is not witnessed yet; try again in {retry_after} s")]
    Pending {
        /// The user.
        user: UserId,
        /// Seconds until the next witness round.
        retry_after: u64,
    },
    /// The client holds a larger checkpoint than the one served (§4).
    #[error("you hold a directory checkpoint of size {known}, larger than the {size} served")]
    Rollback {
        /// The size the client named.
        known: u64,
        /// The served checkpoint's size.
        size: u64,
    },
    /// No such local user (or a disabled one).
    #[error("no user {0} here")]
    NoSuchUser(UserId),
    /// A range outside the log (`400 invalid`).
    #[error("{rule}: asked {asked}, the newest checkpoint's size is {size}")]
    OutOfRange {
        /// The rule broken.
        rule: &'static str,
        /// What was asked.
        asked: String,
        /// The newest checkpoint's size.
        size: u64,
    },
    /// Entries from the newest checkpoint's size on (`404`).
    #[error("no directory entries from {from} on: the newest checkpoint's size is {size}")]
    BeyondLog {
        /// The index asked for.
        from: u64,
        /// The newest checkpoint's size.
        size: u64,
    },
    /// A cosigned note that is not of this server's newest or served checkpoint.
    #[error("not this server's newest or served directory checkpoint: {0}")]
    BadCheckpoint(String),
    /// The asking server's cosignature line does not verify under its keys.
    #[error("no cosignature of {0} on the note verifies under its keys")]
    BadSignature(String),
    /// The log or its signing failed in a way that is this server's fault (logged).
    #[error("directory log: {0}")]
    Internal(String),
}

/// A result of the directory layer.
pub type DirectoryResult<T> = Result<T, DirectoryServeError>;

fn internal(e: impl std::fmt::Display) -> DirectoryServeError {
    DirectoryServeError::Internal(e.to_string())
}

//! Messages (`federation-spec/protocol.md` §6): encrypted once for all members, tagged with the
//! epoch's Message Key, signed with the sender's Topic Key.
//!
//! ```text
//! header     = nonce(24) ‖ CBOR [1, epoch, sender member index, log size the sender saw]
//! enc_key, tag_key = HKDF-SHA256(MK, transcript("rdv/v1/epoch-keys", [topic, epoch]))
//! ciphertext = plaintext ⊕ XChaCha20(enc_key, nonce)
//! tag        = HMAC-SHA256(tag_key, transcript("rdv/v1/message-tag", [topic, header, ciphertext]))
//! signature  = Ed25519(TK, transcript("rdv/v1/message",
//!                      [topic, header, tag, SHA-256(ciphertext), root of the log at `seen`]))
//! wire       = CBOR [header: bstr, ciphertext: bstr, tag ‖ signature: bstr .size 96]
//! ```
//!
//! Encrypt-then-MAC with HMAC makes the tag committing: no member can produce one tag that opens
//! to two plaintexts. The signature covers the tag and a hash of the ciphertext, so the hosting
//! server checks the whole envelope without the Message Key. The root at `seen` is not sent: every
//! verifier supplies its own, so a message signed on another branch of a forked log fails. There is no per-device counter:
//! replay is caught by the tag, which is unique per message (random nonce) and logged.
//!
//! This module does the cryptography; *whether* a sender may post in an epoch at a log position
//! is the topic state machine's rule ([`crate::topic::TopicState::check_message`]).

mod envelope;

pub use envelope::{Message, MessageHeader, MessageIn, encrypt, encrypt_with};

use crate::ids::{Epoch, MemberIndex};
use crate::tlog::{LeafIndex, TreeSize};
use crate::wire::WireError;

/// Largest plaintext a message may carry (64 KiB).
pub const MAX_PLAINTEXT: usize = 64 * 1024;
/// Largest encoded message accepted.
pub const MAX_MESSAGE_LEN: usize = MAX_PLAINTEXT + 256;

/// A Message Tag: HMAC-SHA256 over the header and ciphertext with the epoch's tag key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageTag(pub [u8; 32]);

impl std::fmt::Debug for MessageTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MessageTag({})",
            crate::crypto::sign::hex_string(&self.0)
        )
    }
}

/// Why a message was refused. Every rule of the message path has its own variant, so servers
/// and clients report the same thing for the same fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not a well-formed message.
    #[error("malformed message: {0}")]
    Malformed(#[from] WireError),
    /// The plaintext is longer than [`MAX_PLAINTEXT`].
    #[error("plaintext too large: {got} bytes, limit {limit}")]
    TooLarge {
        /// Limit.
        limit: usize,
        /// Length given.
        got: usize,
    },
    /// The sender's Topic Key signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The Message Tag does not match: the ciphertext, header or topic was altered, or the key is wrong.
    #[error("bad message tag")]
    BadTag,
    /// The message names an epoch other than the topic's current one at its log position.
    #[error("wrong epoch: message is for epoch {got}, the topic is at epoch {current}")]
    WrongEpoch {
        /// Epoch named by the message.
        got: Epoch,
        /// The topic's epoch at the message's position.
        current: Epoch,
    },
    /// The reader holds no Message Key for the message's epoch (e.g. before it joined a protected topic).
    #[error("unknown epoch {0}: no message key for it")]
    UnknownEpoch(Epoch),
    /// The sender index names nobody who is a member at this position.
    #[error("sender {0} is not a member of the topic")]
    NotAMember(MemberIndex),
    /// The sender is a member whose role does not allow posting (a reader).
    #[error("sender {sender} may not post: role {role}")]
    NotAllowedToPost {
        /// The sender's member index.
        sender: MemberIndex,
        /// The sender's role.
        role: &'static str,
    },
    /// A message with the same tag is already in the log.
    #[error("replayed message: tag already in the log")]
    Replayed,
    /// The message claims to have seen more log entries than precede it.
    #[error("message claims log size {seen}, but it sits at position {position}")]
    SeenAhead {
        /// Size the sender claims to have seen.
        seen: TreeSize,
        /// The message's position in the log.
        position: LeafIndex,
    },
    /// The verifier does not know its own log root at the message's `seen` size (its log is
    /// incomplete there, or its store failed): the signature cannot be checked. A fault of the
    /// verifier, never a verdict on the message.
    #[error("no own log root at size {size} to check the signature with: {error}")]
    RootUnknown {
        /// The message's `seen`.
        size: TreeSize,
        /// Why the root is not known.
        error: crate::tlog::TlogError,
    },
    /// The verifier could not read its own record of the log's tags (a storage fault): no
    /// verdict on the message, which may be sent again.
    #[error("the log's tags could not be read; try again")]
    TagsUnavailable,
    /// The message is not in the topic's log (no valid inclusion proof).
    #[error("message is not in the topic log")]
    NotInLog,
}

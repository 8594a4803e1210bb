//! Signed tree heads in the C2SP formats: [`Checkpoint`] (c2sp.org/tlog-checkpoint), signed by
//! the hosting server as a signed note (c2sp.org/signed-note, Ed25519, type `0x01`). Witness
//! cosignature lines (type `0x04`) are in [`super::cosignature`].
//!
//! A checkpoint note looks like this:
//!
//! ```text
//! a.example/topic/0123456789abcdefghjkmnpqrs
//! 42
//! 5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328 (base64, 32 bytes)
//! time 1795000000
//!
//! — a.example <base64(key id ‖ Ed25519 signature)>
//! — b.example <base64(key id ‖ u64 time ‖ Ed25519 signature)>
//! ```
//!
//! The fourth line is our one checkpoint extension line: `time <unix seconds>`, the time at
//! which the hosting server signed the head (ASCII decimal, no leading zeros). It is required,
//! and no other extension line is accepted. It lets a third party order two heads, which
//! [`super::evidence::Evidence::Rollback`] relies on.
//!
//! These signatures are raw Ed25519 over the note formats' own bytes, not over our
//! `rdv/v1/…\0` transcripts. The formats are their own domain separation: a note body starts
//! with an origin that cannot contain a zero byte (no control characters at all), and a
//! cosigned message starts with `cosignature/v1\n`; a transcript always contains a zero byte
//! right after its `rdv/v1/` label. So no signature made here can be replayed as one of ours,
//! nor the reverse.
//!
//! This module holds the checkpoint body; [`note`] the signed note around it.

mod note;

pub use note::{CheckpointNote, SignedCheckpoint};
pub(super) use note::{NoteSignature, key_id};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{LogHash, TreeSize};
use crate::ids::{MAX_SERVER_NAME_LEN, TOPIC_ID_CHARS};

/// Largest signed note accepted, in bytes.
pub const MAX_NOTE_SIZE: usize = 4096;
/// Most signature lines accepted in one note (C2SP asks for at least 16).
pub const MAX_SIGNATURES: usize = 32;
/// Longest origin or key name accepted, in bytes: the longest origin of our logs, a topic
/// log's `<server name>/topic/<26 characters>` (`tag-log.md` §4.1) under a server name of
/// [`MAX_SERVER_NAME_LEN`]: 255 + 7 + 26 = 288. A directory's origin (`<server name>/directory`,
/// 265 at most) and a key name (a server name, 255 at most) are shorter. C2SP sets no limit.
pub const MAX_NAME_LEN: usize = MAX_SERVER_NAME_LEN + "/topic/".len() + TOPIC_ID_CHARS;

/// Signature type of an Ed25519 note signature (c2sp.org/signed-note).
pub(super) const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type of a timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature).
pub(super) const SIG_TYPE_COSIGNATURE: u8 = 0x04;
/// Start of a signature line: em dash, space (c2sp.org/signed-note).
pub(super) const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Our checkpoint extension line's keyword.
pub(super) const TIME_PREFIX: &str = "time ";
/// tlog-cosignature: timestamps must not exceed 2^63 - 1.
pub(super) const MAX_TIME: u64 = i64::MAX as u64;

/// Why a checkpoint, note or cosignature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note is larger than [`MAX_NOTE_SIZE`].
    #[error("note too large: {got} bytes, limit {limit}")]
    TooLarge {
        /// The limit.
        limit: usize,
        /// The size given.
        got: usize,
    },
    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("too many signature lines: {got}, limit {limit}")]
    TooManySignatures {
        /// The limit.
        limit: usize,
        /// The number given (or reached).
        got: usize,
    },
    /// The note is not UTF-8.
    #[error("note is not UTF-8")]
    NotUtf8,
    /// The note contains a control character other than newline (c2sp.org/signed-note).
    #[error("control character at byte {at}")]
    ControlCharacter {
        /// Byte offset.
        at: usize,
    },
    /// No blank line separates the text from the signatures, or there are no signatures.
    #[error("note has no signature block")]
    NoSignatureBlock,
    /// A signature line is malformed.
    #[error("malformed signature line {line}")]
    BadSignatureLine {
        /// 0-based index among the signature lines.
        line: usize,
    },
    /// An origin is empty, too long, or contains spaces or control characters.
    #[error("invalid origin")]
    InvalidOrigin,
    /// A key name is empty, too long, or contains spaces, control characters or `+`.
    #[error("invalid key name")]
    InvalidKeyName,
    /// The checkpoint body does not have exactly origin, size, root and time lines.
    #[error("checkpoint body must have {expected} lines, got {got}")]
    WrongLineCount {
        /// Lines required.
        expected: usize,
        /// Lines found.
        got: usize,
    },
    /// The size line is not a canonical decimal `u64`.
    #[error("invalid tree size line")]
    InvalidSize,
    /// The root line is not canonical base64 of 32 bytes.
    #[error("invalid root hash line")]
    InvalidRoot,
    /// The time line is not `time <canonical decimal ≤ 2^63-1>`.
    #[error("invalid time line")]
    InvalidTime,
    /// No signature line carries the expected key name and key id.
    #[error("no signature by key {key_name}")]
    MissingSignature {
        /// The key name looked for.
        key_name: String,
    },
    /// A signature by the expected key does not verify.
    #[error("signature by key {key_name} does not verify")]
    BadSignature {
        /// The key name whose signature failed.
        key_name: String,
    },
}

/// A tree head: the log's origin, size, root and the time it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, e.g. `a.example/topic/<26 chars>`: non-empty, no spaces or control
    /// characters.
    pub origin: String,
    /// Number of leaves.
    pub size: TreeSize,
    /// Root hash at that size.
    pub root: LogHash,
    /// Unix seconds at which the hosting server signed (our `time` extension line).
    pub time: u64,
}

impl Checkpoint {
    /// A checkpoint; checks the origin and the time range.
    pub fn new(
        origin: &str,
        size: TreeSize,
        root: LogHash,
        time: u64,
    ) -> Result<Self, CheckpointError> {
        check_origin(origin)?;
        if time > MAX_TIME {
            return Err(CheckpointError::InvalidTime);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            time,
        })
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\ntime <time>\n` (c2sp.org/tlog-checkpoint).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n{TIME_PREFIX}{}\n",
            self.origin,
            self.size.0,
            STANDARD.encode(self.root.0),
            self.time
        )
    }

    /// Parses a checkpoint body strictly: exactly four lines, canonical numbers and base64.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let text = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::WrongLineCount {
                expected: 4,
                got: 0,
            })?;
        let lines: Vec<&str> = text.split('\n').collect();
        let [origin, size, root, time] = lines[..] else {
            return Err(CheckpointError::WrongLineCount {
                expected: 4,
                got: lines.len(),
            });
        };
        check_origin(origin)?;
        // c2sp.org/tlog-checkpoint: the size is ASCII decimal without leading zeros.
        let size = parse_decimal(size).ok_or(CheckpointError::InvalidSize)?;
        // c2sp.org/tlog-checkpoint: the root is standard base64 of the RFC 9162 root hash.
        let root_bytes = decode_base64(root).ok_or(CheckpointError::InvalidRoot)?;
        let root = LogHash::from_slice(&root_bytes).map_err(|_| CheckpointError::InvalidRoot)?;
        let time = time
            .strip_prefix(TIME_PREFIX)
            .and_then(parse_decimal)
            .filter(|t| *t <= MAX_TIME)
            .ok_or(CheckpointError::InvalidTime)?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: TreeSize(size),
            root,
            time,
        })
    }
}

/// Checks an origin: non-empty, bounded, no whitespace or control characters.
pub fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if !is_plain_name(origin) {
        return Err(CheckpointError::InvalidOrigin);
    }
    Ok(())
}

/// Checks a key name (c2sp.org/signed-note): non-empty, no Unicode spaces, no `+`.
pub(super) fn check_key_name(name: &str) -> Result<(), CheckpointError> {
    if !is_plain_name(name) || name.contains('+') {
        return Err(CheckpointError::InvalidKeyName);
    }
    Ok(())
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A canonical ASCII decimal: digits only, no sign, no leading zeros (except `0`), fits `u64`.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Standard base64 (RFC 4648 §4) that must be canonical: padded, no stray bits.
pub(super) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(s).ok()?;
    (STANDARD.encode(&bytes) == s).then_some(bytes)
}

#[cfg(test)]
mod tests;

//! Log entries and their tag-log leaves (`federation-spec/protocol.md` §8.1).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{LEAF_CHANGE, TopicChange};
use crate::message::{MAX_MESSAGE_LEN, Message, MessageIn};
use crate::wire::{Signed, SignedBytes, Verified, WireError, decode, encode};

/// One entry of a topic's log as stored and served: `[0, message bytes]` or `[1, signed change]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry(pub u8, #[serde(with = "serde_bytes")] pub Vec<u8>);

/// Entry kind: a message.
pub const ENTRY_MESSAGE: u8 = 0;
/// Entry kind: a change.
pub const ENTRY_CHANGE: u8 = 1;

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

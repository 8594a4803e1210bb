//! The rules for a message as the next entry of a topic's log (`federation-spec/protocol.md`
//! §6.6, checks 5–10) and recording it.

use std::collections::HashSet;

use super::TopicState;
use crate::message::{Message, MessageError, MessageIn, MessageTag};
use crate::tlog::{LeafIndex, RootAt};

/// The tags already in a topic's log, for replay detection. The server keeps them in its store;
/// a client validating a log keeps a `HashSet`.
pub trait TagSet {
    /// Whether `tag` is already in the log, or [`TagsUnavailable`] when the verifier cannot
    /// read its own tags: then no verdict on the message may be given (neither "seen" nor
    /// "new").
    fn contains(&self, tag: &MessageTag) -> Result<bool, TagsUnavailable>;
}

/// The verifier's own record of tags could not be read (a storage fault): the check is not
/// done, and the message is neither accepted nor refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the verifier's tag record could not be read")]
pub struct TagsUnavailable;

impl TagSet for HashSet<MessageTag> {
    fn contains(&self, tag: &MessageTag) -> Result<bool, TagsUnavailable> {
        Ok(HashSet::contains(self, tag))
    }
}

impl TopicState {
    /// Checks a message as the next entry of the log: signature by the sender's Topic Key over
    /// the verifier's own root at the message's `seen` (from `roots`), sender a member who may
    /// post, current epoch, causality, and a tag not seen before.
    pub fn check_message(
        &self,
        msg: MessageIn,
        tags: &dyn TagSet,
        roots: &dyn RootAt,
    ) -> Result<Message, MessageError> {
        let header = msg.header().clone();
        let sender = self
            .members
            .get(&header.sender)
            .ok_or(MessageError::NotAMember(header.sender))?;
        if !sender.role.can_post() {
            return Err(MessageError::NotAllowedToPost {
                sender: header.sender,
                role: sender.role.name(),
            });
        }
        if header.epoch != self.epoch {
            return Err(MessageError::WrongEpoch {
                got: header.epoch,
                current: self.epoch,
            });
        }
        if header.seen > self.size {
            return Err(MessageError::SeenAhead {
                seen: header.seen,
                position: self.size.next_index(),
            });
        }
        let seen_root = roots
            .root_at(header.seen)
            .map_err(|error| MessageError::RootUnknown {
                size: header.seen,
                error,
            })?;
        let msg = msg.verify(&self.topic, &sender.topic_key.signing, &seen_root)?;
        if tags
            .contains(msg.tag())
            .map_err(|_| MessageError::TagsUnavailable)?
        {
            return Err(MessageError::Replayed);
        }
        Ok(msg)
    }

    /// Records that a message checked by [`Self::check_message`] was appended; returns its index.
    pub fn append_message(&mut self, msg: &Message) -> Result<LeafIndex, MessageError> {
        // Cheap re-checks so that a message checked against another state cannot be recorded.
        let sender = msg.header().sender;
        let member = self
            .members
            .get(&sender)
            .ok_or(MessageError::NotAMember(sender))?;
        if !member.role.can_post() {
            return Err(MessageError::NotAllowedToPost {
                sender,
                role: member.role.name(),
            });
        }
        if msg.header().epoch != self.epoch {
            return Err(MessageError::WrongEpoch {
                got: msg.header().epoch,
                current: self.epoch,
            });
        }
        let index = self.size.next_index();
        self.size = index.size_after();
        Ok(index)
    }
}

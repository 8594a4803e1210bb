//! What each replayed entry means for this device (`protocol.md` §7–8): from a change, its place
//! in the topic, its Topic Key and the Message Keys addressed to it (each added member's IK checked against its directory, `roster`);
//! from a message, its plaintext.

use std::collections::BTreeMap;

use super::describe::describe;
use super::replay::Replay;
use super::{EntryContent, EntryReport};
use crate::{Client, ClientError};
use rendezvous_protocol::crypto::MessageKey;
use rendezvous_protocol::ids::Epoch;
use rendezvous_protocol::message::Message;
use rendezvous_protocol::topic::{Applied, ChangeOutcome, MemberIndex, Replayer, TopicState};

/// Message Keys this device holds for a topic, by epoch.
pub(super) type StoredKeys = BTreeMap<u32, MessageKey>;

impl Client {
    /// Where a resumed replay starts: this device's place in the topic and the keys it already
    /// holds.
    pub(super) fn resume_keys(
        &self,
        replay: &mut Replay,
        replayer: &Replayer,
        stored: &StoredKeys,
    ) -> Result<(), ClientError> {
        let Some(state) = replayer.state() else {
            return Ok(());
        };
        replay.me = state.member_of(&self.user);
        if let Some(me) = replay.me
            && let Some(member) = state.member(me)
        {
            replay.my_key = self
                .keystore
                .topic_key(&member.topic_key.key_id(), self.identity.public())?
                .map(|(k, _)| k);
        }
        for (epoch, key) in stored {
            if let Ok(copy) = MessageKey::from_slice(key.as_bytes()) {
                let _ = replay.keyring.insert(state, Epoch(*epoch), copy);
            }
        }
        Ok(())
    }

    /// Takes what an applied entry means for this device: keys from changes, plaintext of
    /// messages.
    pub(super) fn apply(
        &self,
        replay: &mut Replay,
        replayer: &Replayer,
        applied: Applied,
        before: Option<&TopicState>,
        index: u64,
        stored: &StoredKeys,
    ) -> EntryReport {
        let mut problems = Vec::new();
        let content = match applied {
            Applied::Change(outcome) => {
                self.apply_change(replay, &outcome, before, index, stored, &mut problems)
            }
            Applied::Message(msg) => open_message(replay, replayer, msg, &mut problems),
        };
        EntryReport {
            index,
            content,
            problems,
        }
    }

    fn apply_change(
        &self,
        replay: &mut Replay,
        outcome: &ChangeOutcome,
        before: Option<&TopicState>,
        index: u64,
        stored: &StoredKeys,
        problems: &mut Vec<String>,
    ) -> EntryContent {
        let after = &outcome.next;
        let author = member_name(before, after, outcome.change.author);
        let specs = outcome.change.action.introduced_members();
        // `directory.md` §6.4: each added (or moved) member's IK is the one its directory
        // binds; this user's own, one this device holds or held (a rotation, §8).
        let own = replay.roster.own.clone();
        let members: Vec<_> = specs
            .iter()
            .map(|s| (s.user.clone(), s.identity_key.clone()))
            .collect();
        problems.extend(replay.roster.check(
            (&self.user, own.as_slice()),
            index,
            &members,
            &mut replay.record.refused,
            &mut replay.unchecked,
        ));
        replay.me = after.member_of(&self.user);
        match replay.me {
            Some(me) => {
                if self.follow_topic_key(replay, after, me)
                    && let Some(problem) = self.check_key_use(replay)
                {
                    // Refused (`protocol.md` §7.2): not used to open anything in this topic.
                    problems.push(problem);
                    replay.my_key = None;
                }
                self.take_message_keys(replay, outcome, me, stored, problems);
            }
            None => replay.my_key = None,
        }
        add_stored_keys(replay, after, stored, problems);
        EntryContent::Change {
            author,
            description: describe(&outcome.change.action, before, after),
            epoch: outcome.change.epoch.get(),
        }
    }

    /// Loads the private Topic Key of this device's membership when the change gave it another;
    /// whether it did.
    fn follow_topic_key(&self, replay: &mut Replay, after: &TopicState, me: MemberIndex) -> bool {
        let wanted = after.member(me).map(|m| m.topic_key.key_id());
        let have = replay.my_key.as_ref().map(|k| k.public().key_id());
        if wanted.is_some() && wanted != have {
            replay.my_key = wanted.and_then(|id| {
                self.keystore
                    .topic_key(&id, self.identity.public())
                    .ok()
                    .flatten()
                    .map(|(k, _)| k)
            });
            return replay.my_key.is_some();
        }
        false
    }

    /// `protocol.md` §7.2: this user's one-time Topic Key is used in one topic only (its
    /// homeserver hands each out once). Only keys this device marked one-time itself (made
    /// here, or delivered as inbox kind 1) are held to it: its own last-resort keys are exempt,
    /// and so are keys it cannot tell (received over a device link). Records the first topic
    /// each is seen in; a problem when it already serves another topic. `client-rules.md` C9.
    fn check_key_use(&self, replay: &Replay) -> Option<String> {
        let id = replay.my_key.as_ref()?.public().key_id();
        if !self.keystore.is_one_time(&id) {
            return None;
        }
        let topic = replay.topic.as_str();
        match self.keystore.topic_key_use(&id) {
            Ok(Some(first)) if first == topic => None,
            Ok(Some(first)) => Some(format!(
                "this device's one-time topic key {} is already used in topic {first}: the \
                 homeserver handed it out twice; refusing it here",
                id.to_hex()
            )),
            Ok(None) => match self.keystore.record_topic_key_use(&id, topic) {
                Ok(()) => None,
                Err(e) => Some(format!("recording the topic key's use: {e}")),
            },
            Err(e) => Some(format!("reading the topic key's use: {e}")),
        }
    }

    /// Opens the Message Keys the change addressed to this device and stores the new ones.
    /// A box that does not open or a key that fails its key check is not used and is reported
    /// as a problem of the change (`client-rules.md` C10).
    fn take_message_keys(
        &self,
        replay: &mut Replay,
        outcome: &ChangeOutcome,
        me: MemberIndex,
        stored: &StoredKeys,
        problems: &mut Vec<String>,
    ) {
        let Some(key) = &replay.my_key else {
            return;
        };
        match replay
            .keyring
            .receive(&outcome.change, &outcome.next, me, key)
        {
            Ok(epochs) => {
                for epoch in epochs {
                    if !stored.contains_key(&epoch.get())
                        && let Some(mk) = replay.keyring.message_key(epoch)
                        && let Err(e) =
                            self.keystore
                                .save_message_key(&replay.topic, epoch.get(), mk)
                    {
                        problems.push(e.to_string());
                    }
                }
            }
            Err(e) => problems.push(format!("message key: {e}")),
        }
    }
}

/// Keys this device got another way (linking), checked against the epochs' key checks.
fn add_stored_keys(
    replay: &mut Replay,
    after: &TopicState,
    stored: &StoredKeys,
    problems: &mut Vec<String>,
) {
    for (epoch, key) in stored {
        if replay.keyring.message_key(Epoch(*epoch)).is_none()
            && after.epoch_check(Epoch(*epoch)).is_some()
            && let Ok(copy) = MessageKey::from_slice(key.as_bytes())
            && let Err(e) = replay.keyring.insert(after, Epoch(*epoch), copy)
        {
            problems.push(format!("stored message key: {e}"));
        }
    }
}

/// A message's sender and plaintext; a message whose epoch key this device does not hold yet is
/// deferred (a later change may hand it over). The tag is checked before decryption
/// (`Message::open`, `client-rules.md` C11).
fn open_message(
    replay: &mut Replay,
    replayer: &Replayer,
    msg: Message,
    problems: &mut Vec<String>,
) -> EntryContent {
    let header = msg.header();
    let sender = replayer
        .state()
        .and_then(|s| s.member(header.sender))
        .map_or_else(
            || format!("member {}", header.sender),
            |m| m.user.to_string(),
        );
    let epoch = header.epoch.get();
    let text = match replay.keyring.epoch_keys(Epoch(epoch)) {
        None => {
            // Perhaps a later change hands this device the key: decided at the end.
            let member_then = replay.me.is_some();
            replay
                .deferred
                .push((replay.entries.len(), msg, member_then));
            None
        }
        Some(keys) => match msg.open(&replay.topic, keys) {
            Ok(plain) => Some(String::from_utf8_lossy(&plain).into_owned()),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
    };
    EntryContent::Message {
        sender,
        epoch,
        text,
        by_design: false,
    }
}

/// A member's user id, from the state before a change or after it (`member N` if neither knows).
pub(super) fn member_name(
    before: Option<&TopicState>,
    after: &TopicState,
    member: MemberIndex,
) -> String {
    before
        .and_then(|s| s.member(member))
        .or_else(|| after.member(member))
        .map_or_else(|| format!("member {}", member.0), |m| m.user.to_string())
}

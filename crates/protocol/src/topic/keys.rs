//! Key distribution for topic changes (`federation-spec/protocol.md` §7.3).
//!
//! [`build_change`] is what an admin runs: it derives the plan with the *same* rules that check a
//! change (`TopicState::plan`), makes a new Message Key when the plan starts an epoch, seals it
//! to exactly the members who must receive it, and signs. [`EpochKeyring`] is the member side:
//! it opens the boxes addressed to the member and accepts a key only if it matches the key check
//! value that the whole topic sees, so an admin cannot give different members different keys.

use std::collections::BTreeMap;

use super::change::{Action, HistoryBox, KeyBox, KeyCheck, PrevHash, TopicChange};
use super::state::{ChangeOutcome, TopicState};
use super::{ChangeError, History, MemberIndex};
use crate::crypto::hpke::{self, SealPurpose};
use crate::crypto::{CryptoError, EpochKeys, MessageKey, Randomness, TopicKey};
use crate::ids::TopicId;
use crate::wire::{Signed, VERSION, Verified};

/// Why a member could not take a key from a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The box addressed to the member does not open with its Topic Key.
    #[error("key box does not open: {0}")]
    Open(#[from] CryptoError),
    /// The unsealed key does not match the topic's key check value for that epoch.
    #[error("key for epoch {0} does not match the topic's key check value")]
    CheckMismatch(u32),
    /// No key check value is known for the epoch.
    #[error("no key check value for epoch {0}")]
    UnknownEpoch(u32),
}

/// The HPKE context of a Message Key box: topic id and epoch.
fn seal_context(topic: &TopicId, epoch: u32) -> [Vec<u8>; 2] {
    [
        topic.as_str().as_bytes().to_vec(),
        epoch.to_be_bytes().to_vec(),
    ]
}

/// Builds and signs a change by `author` (an admin; member 0 for a create).
///
/// - `state`: the topic's current state (`None` for a create, whose topic id is `topic`).
/// - `current_key`: the current epoch's Message Key; needed when adding to a shared topic.
/// - `history_keys`: older epochs' keys to hand new members of a shared topic.
///
/// Returns the signed change, its outcome (the state after it, already checked by the same
/// rules everyone applies) and the new epoch's Message Key when the change starts one.
#[allow(clippy::too_many_arguments)]
pub fn build_change(
    state: Option<&TopicState>,
    topic: &TopicId,
    author: MemberIndex,
    author_key: &TopicKey,
    action: Action,
    current_key: Option<&MessageKey>,
    history_keys: &[(u32, &MessageKey)],
    time: u64,
    rng: &mut Randomness<'_>,
) -> Result<(ChangeOutcome, Option<MessageKey>), ChangeError> {
    let empty;
    let base = match state {
        Some(s) => s,
        None => {
            empty = placeholder_for_create(topic, &action)?;
            &empty
        }
    };
    let plan = base.plan(author, &action)?;
    let (key, new_key) = if plan.new_epoch {
        (
            MessageKey::from_slice(&rng.array::<32>()).map_err(|_| ChangeError::NoOp)?,
            true,
        )
    } else {
        match current_key {
            Some(k) => (
                MessageKey::from_slice(k.as_bytes()).map_err(|_| ChangeError::NoOp)?,
                false,
            ),
            None if plan.recipients.is_empty() => (
                MessageKey::from_slice(&[0; 32]).map_err(|_| ChangeError::NoOp)?,
                false,
            ),
            None => {
                return Err(ChangeError::KeyCheck(
                    "the current epoch's key is needed to add members",
                ));
            }
        }
    };
    let epoch = plan.epoch_after;
    let ctx = seal_context(topic, epoch);
    let ctx_refs: [&[u8]; 2] = [&ctx[0], &ctx[1]];
    let mut boxes = Vec::with_capacity(plan.recipients.len());
    for m in &plan.recipients {
        let member = &plan.members_after[m];
        let sealed = hpke::seal(
            &member.topic_key.kem,
            SealPurpose::MessageKey,
            &ctx_refs,
            None,
            key.as_bytes(),
            rng,
        )
        .map_err(|_| ChangeError::BoxWrongKey(m.0))?;
        boxes.push(KeyBox {
            member: m.0,
            sealed,
        });
    }
    let mut history = Vec::new();
    if !history_keys.is_empty() {
        if base.history() == History::Protected {
            return Err(ChangeError::HistoryBox("the topic protects its history"));
        }
        for m in &plan.added {
            let member = &plan.members_after[m];
            for (old_epoch, old_key) in history_keys {
                let ctx = seal_context(topic, *old_epoch);
                let sealed = hpke::seal(
                    &member.topic_key.kem,
                    SealPurpose::MessageKey,
                    &[&ctx[0], &ctx[1]],
                    None,
                    old_key.as_bytes(),
                    rng,
                )
                .map_err(|_| ChangeError::BoxWrongKey(m.0))?;
                history.push(HistoryBox {
                    member: m.0,
                    epoch: *old_epoch,
                    sealed,
                });
            }
        }
    }
    let change = TopicChange {
        version: VERSION,
        topic: topic.clone(),
        prev: state.map(|s| PrevHash(s.last_change().0)),
        author: author.0,
        action,
        epoch,
        key_check: new_key.then(|| KeyCheck(key.key_check(topic, epoch))),
        boxes,
        history,
        time,
    };
    let signed = Signed::sign(change, author_key.signing()).unverified();
    let outcome = match state {
        Some(s) => s.check_change(signed)?,
        None => TopicState::create(signed)?,
    };
    Ok((outcome, new_key.then_some(key)))
}

/// An empty state to plan a create against (the create's own rules are applied by
/// [`TopicState::create`] when the built change is checked).
fn placeholder_for_create(topic: &TopicId, action: &Action) -> Result<TopicState, ChangeError> {
    if !matches!(action, Action::Create { .. }) {
        return Err(ChangeError::CreateNotFirst);
    }
    Ok(TopicState::empty(
        topic.clone(),
        match action {
            Action::Create { history, .. } => *history,
            _ => History::Shared,
        },
    ))
}

/// A member's Message Keys, by epoch, with the derived epoch keys ready for use.
#[derive(Default)]
pub struct EpochKeyring {
    keys: BTreeMap<u32, (MessageKey, EpochKeys)>,
}

impl std::fmt::Debug for EpochKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochKeyring")
            .field("epochs", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EpochKeyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the keys addressed to `me` from an accepted change. `after` is the state the change
    /// produced (its key check values are what every member sees).
    pub fn receive(
        &mut self,
        change: &Verified<TopicChange>,
        after: &TopicState,
        me: MemberIndex,
        my_key: &TopicKey,
    ) -> Result<Vec<u32>, KeyError> {
        let topic = after.topic();
        let mut got = Vec::new();
        if let Some(b) = change.boxes.iter().find(|b| b.member == me.0) {
            self.open_one(topic, after, change.epoch, &b.sealed, my_key)?;
            got.push(change.epoch);
        }
        for h in change.history.iter().filter(|h| h.member == me.0) {
            self.open_one(topic, after, h.epoch, &h.sealed, my_key)?;
            got.push(h.epoch);
        }
        Ok(got)
    }

    fn open_one(
        &mut self,
        topic: &TopicId,
        after: &TopicState,
        epoch: u32,
        sealed: &crate::crypto::SealedBox,
        my_key: &TopicKey,
    ) -> Result<(), KeyError> {
        let ctx = seal_context(topic, epoch);
        let bytes = hpke::open(
            my_key.kem(),
            sealed,
            SealPurpose::MessageKey,
            &[&ctx[0], &ctx[1]],
            None,
        )?;
        let key = MessageKey::from_slice(&bytes)?;
        let check = after
            .epoch_check(epoch)
            .ok_or(KeyError::UnknownEpoch(epoch))?;
        if !key.matches_check(topic, epoch, check) {
            return Err(KeyError::CheckMismatch(epoch));
        }
        let derived = key.epoch_keys(topic, epoch);
        self.keys.insert(epoch, (key, derived));
        Ok(())
    }

    /// Adds a key obtained another way (e.g. from a linked device), after checking it against the
    /// topic's key check value.
    pub fn insert(
        &mut self,
        state: &TopicState,
        epoch: u32,
        key: MessageKey,
    ) -> Result<(), KeyError> {
        let check = state
            .epoch_check(epoch)
            .ok_or(KeyError::UnknownEpoch(epoch))?;
        if !key.matches_check(state.topic(), epoch, check) {
            return Err(KeyError::CheckMismatch(epoch));
        }
        let derived = key.epoch_keys(state.topic(), epoch);
        self.keys.insert(epoch, (key, derived));
        Ok(())
    }

    /// The derived keys of `epoch`, if held.
    pub fn epoch_keys(&self, epoch: u32) -> Option<&EpochKeys> {
        self.keys.get(&epoch).map(|(_, k)| k)
    }

    /// The Message Key of `epoch`, if held.
    pub fn message_key(&self, epoch: u32) -> Option<&MessageKey> {
        self.keys.get(&epoch).map(|(k, _)| k)
    }

    /// Epochs held, ascending.
    pub fn epochs(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }
}

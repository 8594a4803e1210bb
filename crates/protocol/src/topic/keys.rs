//! Key distribution for topic changes (`federation-spec/protocol.md` §7.3).
//!
//! [`super::ChangeBuilder`] is what an admin runs: it derives the plan with the *same* rules that
//! check a change (`TopicState::plan`), makes a new Message Key when the plan starts an epoch,
//! seals it to exactly the members who must receive it, and signs. [`EpochKeyring`] is the member
//! side:
//! it opens the boxes addressed to the member and accepts a key only if it matches the key check
//! value that the whole topic sees, so an admin cannot give different members different keys.

use std::collections::BTreeMap;

use super::change::TopicChange;
use super::state::TopicState;
use super::{Epoch, MemberIndex};
use crate::crypto::hpke::{self, SealPurpose};
use crate::crypto::{CryptoError, EpochKeys, MessageKey, TopicKey};
use crate::ids::TopicId;
use crate::wire::Verified;

/// Why a member could not take a key from a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The box addressed to the member does not open with its Topic Key.
    #[error("key box does not open: {0}")]
    Open(#[from] CryptoError),
    /// The unsealed key does not match the topic's key check value for that epoch.
    #[error("key for epoch {0} does not match the topic's key check value")]
    CheckMismatch(Epoch),
    /// No key check value is known for the epoch.
    #[error("no key check value for epoch {0}")]
    UnknownEpoch(Epoch),
}

/// The HPKE context of a Message Key box: topic id and epoch.
pub(super) fn seal_context(topic: &TopicId, epoch: Epoch) -> [Vec<u8>; 2] {
    [
        topic.as_str().as_bytes().to_vec(),
        epoch.to_be_bytes().to_vec(),
    ]
}

/// A member's Message Keys, by epoch, with the derived epoch keys ready for use.
#[derive(Default)]
pub struct EpochKeyring {
    keys: BTreeMap<Epoch, (MessageKey, EpochKeys)>,
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
    ) -> Result<Vec<Epoch>, KeyError> {
        let topic = after.topic();
        let mut got = Vec::new();
        if let Some(b) = change.boxes.iter().find(|b| b.member == me) {
            self.open_one(topic, after, change.epoch, &b.sealed, my_key)?;
            got.push(change.epoch);
        }
        for h in change.history.iter().filter(|h| h.member == me) {
            self.open_one(topic, after, h.epoch, &h.sealed, my_key)?;
            got.push(h.epoch);
        }
        Ok(got)
    }

    fn open_one(
        &mut self,
        topic: &TopicId,
        after: &TopicState,
        epoch: Epoch,
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
        epoch: Epoch,
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
    pub fn epoch_keys(&self, epoch: Epoch) -> Option<&EpochKeys> {
        self.keys.get(&epoch).map(|(_, k)| k)
    }

    /// The Message Key of `epoch`, if held.
    pub fn message_key(&self, epoch: Epoch) -> Option<&MessageKey> {
        self.keys.get(&epoch).map(|(k, _)| k)
    }

    /// Epochs held, ascending.
    pub fn epochs(&self) -> impl Iterator<Item = Epoch> + '_ {
        self.keys.keys().copied()
    }
}

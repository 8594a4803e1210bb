//! Building a topic change as an admin (`federation-spec/protocol.md` §7.3).
//!
//! [`ChangeBuilder`] derives the plan with the *same* rules that check a change
//! (`TopicState::plan`), makes a new Message Key when the plan starts an epoch, seals it to
//! exactly the members who must receive it, signs, and checks the result as everyone will.
//!
//! ```text
//! ChangeBuilder::create(&topic, &creator_key, history, members, host_key) // entry 0
//! ChangeBuilder::new(&state, log_root, author, &author_key, action)   // every later change
//!     .current_key(Some(&key))      // needed to add members without a new epoch
//!     .history_keys(&[(epoch, &old_key)])  // older keys for new members of a shared topic
//!     .build(time, &mut rng)
//! ```

use super::change::{
    Action, HistoryBox, HostKey, KeyBox, KeyCheck, MemberSpec, PrevHash, TopicChange,
};
use super::keys::seal_context;
use super::state::{ChangeOutcome, Plan, TopicState};
use super::{ChangeError, Epoch, History, MemberIndex};
use crate::crypto::hpke::{self, SealPurpose};
use crate::crypto::{MessageKey, Randomness, TopicKey};
use crate::ids::TopicId;
use crate::tlog::{LogHash, empty_root};
use crate::wire::Signed;

/// Where a change goes: the first entry of a new topic, or the next one of a known state.
#[derive(Debug)]
enum Base<'a> {
    Create(Box<TopicState>),
    /// The state and the root of the log at its size, which the signature binds.
    Next(&'a TopicState, LogHash),
}

/// A topic change being built. The constructors take everything a change cannot do without
/// (where it goes, who signs, what it does); the setters add what only some changes need.
#[derive(Debug)]
#[must_use = "a change builder does nothing until `build` is called"]
pub struct ChangeBuilder<'a> {
    base: Base<'a>,
    author: MemberIndex,
    author_key: &'a TopicKey,
    action: Action,
    current_key: Option<&'a MessageKey>,
    history_keys: &'a [(Epoch, &'a MessageKey)],
}

impl<'a> ChangeBuilder<'a> {
    /// The `create` of a new topic `topic` (log position 0), authored by its creator, member 0,
    /// whose Topic Key is `creator_key`. `members` starts with the creator, who must be an admin;
    /// `host_key` names the hosting server's Server Key ([`HostKey::of`]).
    pub fn create(
        topic: &TopicId,
        creator_key: &'a TopicKey,
        history: History,
        members: Vec<MemberSpec>,
        host_key: HostKey,
    ) -> Self {
        ChangeBuilder {
            base: Base::Create(Box::new(TopicState::empty(
                topic.clone(),
                history,
                host_key,
            ))),
            author: MemberIndex::CREATOR,
            author_key: creator_key,
            action: Action::Create {
                history,
                members,
                host_key,
            },
            current_key: None,
            history_keys: &[],
        }
    }

    /// The next change of the topic at `state`, by the admin `author` whose Topic Key is
    /// `author_key`. `log_root` is the root of the (verified) log at `state`'s size: the change
    /// is signed over it and is valid only at that position (`federation-spec/protocol.md` §7.2).
    pub fn new(
        state: &'a TopicState,
        log_root: LogHash,
        author: MemberIndex,
        author_key: &'a TopicKey,
        action: Action,
    ) -> Self {
        ChangeBuilder {
            base: Base::Next(state, log_root),
            author,
            author_key,
            action,
            current_key: None,
            history_keys: &[],
        }
    }

    /// The current epoch's Message Key: needed when the change hands it to new members instead
    /// of starting an epoch (an add to a shared topic).
    pub fn current_key(mut self, key: Option<&'a MessageKey>) -> Self {
        self.current_key = key;
        self
    }

    /// Older epochs' keys to hand the members this change adds (shared topics only).
    pub fn history_keys(mut self, keys: &'a [(Epoch, &'a MessageKey)]) -> Self {
        self.history_keys = keys;
        self
    }

    /// Plans, seals and signs the change made at `time` (Unix seconds, informational).
    ///
    /// Returns its outcome (the state after it, already checked by the same rules everyone
    /// applies) and the new epoch's Message Key when the change starts one.
    pub fn build(
        self,
        time: u64,
        rng: &mut Randomness<'_>,
    ) -> Result<(ChangeOutcome, Option<MessageKey>), ChangeError> {
        let base = match &self.base {
            Base::Create(empty) => empty,
            Base::Next(state, _) => *state,
        };
        let topic = base.topic();
        let plan = base.plan(self.author, &self.action)?;
        let (key, new_key) = epoch_key(&plan, self.current_key, rng)?;
        let epoch = plan.epoch_after;
        let boxes = seal_boxes(topic, &plan, &key, rng)?;
        let history = if self.history_keys.is_empty() {
            Vec::new()
        } else if base.history() == History::Protected {
            return Err(ChangeError::HistoryBox("the topic protects its history"));
        } else {
            seal_history(topic, &plan, self.history_keys, rng)?
        };
        let change = TopicChange {
            topic: topic.clone(),
            prev: match self.base {
                Base::Create(_) => None,
                Base::Next(s, _) => Some(PrevHash(s.last_change().0)),
            },
            author: self.author,
            action: self.action,
            epoch,
            key_check: new_key.then(|| KeyCheck(key.key_check(topic, epoch))),
            boxes,
            history,
            time,
        };
        let root = match &self.base {
            Base::Create(_) => empty_root(),
            Base::Next(_, root) => *root,
        };
        let signed =
            Signed::sign_bound(change, self.author_key.signing(), root.as_bytes()).unverified();
        let outcome = match self.base {
            Base::Next(s, root) => s.check_change(signed, &root)?,
            Base::Create(_) => TopicState::create(signed)?,
        };
        Ok((outcome, new_key.then_some(key)))
    }
}

/// The Message Key the change seals: a fresh one when the plan starts an epoch, else the current
/// one (a zero placeholder when nobody receives it). The flag says whether it is new.
fn epoch_key(
    plan: &Plan,
    current_key: Option<&MessageKey>,
    rng: &mut Randomness<'_>,
) -> Result<(MessageKey, bool), ChangeError> {
    let copy = |bytes: &[u8]| MessageKey::from_slice(bytes).map_err(|_| ChangeError::NoOp);
    if plan.new_epoch {
        return Ok((copy(&rng.array::<32>())?, true));
    }
    match current_key {
        Some(k) => Ok((copy(k.as_bytes())?, false)),
        None if plan.recipients.is_empty() => Ok((copy(&[0; 32])?, false)),
        None => Err(ChangeError::KeyCheck(
            "the current epoch's key is needed to add members",
        )),
    }
}

/// One box of `key` per recipient of the plan, ascending member index.
fn seal_boxes(
    topic: &TopicId,
    plan: &Plan,
    key: &MessageKey,
    rng: &mut Randomness<'_>,
) -> Result<Vec<KeyBox>, ChangeError> {
    let ctx = seal_context(topic, plan.epoch_after);
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
        .map_err(|_| ChangeError::BoxWrongKey(*m))?;
        boxes.push(KeyBox { member: *m, sealed });
    }
    Ok(boxes)
}

/// One box per older epoch's key per member the plan adds.
fn seal_history(
    topic: &TopicId,
    plan: &Plan,
    history_keys: &[(Epoch, &MessageKey)],
    rng: &mut Randomness<'_>,
) -> Result<Vec<HistoryBox>, ChangeError> {
    let mut history = Vec::with_capacity(plan.added.len() * history_keys.len());
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
            .map_err(|_| ChangeError::BoxWrongKey(*m))?;
            history.push(HistoryBox {
                member: *m,
                epoch: *old_epoch,
                sealed,
            });
        }
    }
    Ok(history)
}

//! [`TopicState`]: the state after a prefix of a topic's log, and the rules for the next entry.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::change::{Action, ChangeHash, HostKey, MemberSpec, TopicChange};
use super::{ChangeError, Epoch, History, MAX_MEMBERS, MemberIndex, Role};
use crate::crypto::{IdentityPublicKey, KeyId, ServerPublicKey, TopicPublicKey};
use crate::ids::{TopicId, UserId};
use crate::tlog::{HostKeys, LeafIndex, LogHash, RootAt, TreeSize, empty_root};
use crate::wire::{Signed, Verified};

mod messages;
pub use messages::{TagSet, TagsUnavailable};

/// A member of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user: UserId,
    /// The user's Identity Key (it certified the Topic Key).
    pub identity_key: IdentityPublicKey,
    /// What the member may do.
    pub role: Role,
    /// The member's Topic Key for this topic.
    pub topic_key: TopicPublicKey,
    /// Log position of the change that added the member.
    pub joined_at: LeafIndex,
    /// The first epoch whose key the member received.
    pub joined_epoch: Epoch,
}

/// The state of a topic after the first [`TopicState::size`] log entries.
#[derive(Debug, Clone)]
pub struct TopicState {
    topic: TopicId,
    history: History,
    /// The hosting server's Server Key the create names.
    host_key: HostKey,
    members: BTreeMap<MemberIndex, Member>,
    by_user: HashMap<UserId, MemberIndex>,
    next_member: MemberIndex,
    epoch: Epoch,
    /// Key check value of every epoch so far (index = epoch).
    epoch_checks: Vec<[u8; 32]>,
    last_change: ChangeHash,
    /// Log position of the last change.
    last_change_at: LeafIndex,
    size: TreeSize,
    used_topic_keys: HashSet<KeyId>,
}

/// A change that is valid at the state's position, and the state after it.
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    /// The verified change.
    pub change: Verified<TopicChange>,
    /// The state after the change.
    pub next: TopicState,
}

/// What a change does to the roster and who must receive a key: derived by the same rules for
/// the admin who builds a change and for everyone who checks one.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) members_after: BTreeMap<MemberIndex, Member>,
    pub(crate) added: Vec<MemberIndex>,
    pub(crate) new_epoch: bool,
    pub(crate) epoch_after: Epoch,
    /// Members who get a box, ascending.
    pub(crate) recipients: Vec<MemberIndex>,
}

impl TopicState {
    /// The state before any entry; only used to plan a create.
    pub(crate) fn empty(topic: TopicId, history: History, host_key: HostKey) -> TopicState {
        TopicState {
            topic,
            history,
            host_key,
            members: BTreeMap::new(),
            by_user: HashMap::new(),
            next_member: MemberIndex::CREATOR,
            epoch: Epoch::ZERO,
            epoch_checks: Vec::new(),
            last_change: ChangeHash([0; 32]),
            last_change_at: LeafIndex(0),
            size: TreeSize(0),
            used_topic_keys: HashSet::new(),
        }
    }

    /// The hosting server's Server Key, as the create names it.
    pub fn host_key(&self) -> HostKey {
        self.host_key
    }

    /// Whether `key` is the key the create names: the one rule for the hosting server (its own
    /// key, before it accepts a create), a mirror (the key it pinned) and a member (the key it
    /// verifies checkpoints with), `federation-spec/protocol.md` §7.2.
    pub fn check_host_key(&self, key: &ServerPublicKey) -> Result<(), ChangeError> {
        let signing = HostKey::of(key);
        if signing == self.host_key {
            return Ok(());
        }
        Err(ChangeError::WrongHostKey {
            named: self.host_key.to_string(),
            signing: signing.to_string(),
        })
    }

    /// Whether the create names a key of the hosting server's chain `keys` (`tag-log.md`
    /// §7.6): the key it signed with when the topic was made, before or after later rotations.
    pub fn check_host_keys(&self, keys: &HostKeys) -> Result<(), ChangeError> {
        if keys.keys().any(|k| HostKey::of(k) == self.host_key) {
            return Ok(());
        }
        self.check_host_key(keys.current())
    }

    /// Whether this is the state of `topic`'s log under the hosting server's keys `keys`:
    /// entry 0 created `topic` and names a key of the chain (`federation-spec/tag-log.md` §9.2,
    /// §7.5, §7.6). The one check of a log's first entry for mirrors, readers and evidence.
    pub fn check_log_of(&self, topic: &TopicId, keys: &HostKeys) -> Result<(), ChangeError> {
        if self.topic != *topic {
            return Err(ChangeError::WrongTopic {
                expected: topic.to_string(),
                got: self.topic.to_string(),
            });
        }
        self.check_host_keys(keys)
    }

    /// Checks a `create` change (log position 0) and returns the topic's first state.
    pub fn create(signed: Signed<TopicChange>) -> Result<ChangeOutcome, ChangeError> {
        let draft = signed.decode_unverified()?;
        let Action::Create {
            history,
            members,
            host_key,
        } = &draft.action
        else {
            return Err(ChangeError::CreateNotFirst);
        };
        let empty = TopicState::empty(draft.topic.clone(), *history, *host_key);
        if draft.prev.is_some() || draft.author != MemberIndex::CREATOR {
            return Err(ChangeError::InvalidCreate(
                "a create has no prev and is authored by member 0",
            ));
        }
        let creator = members.first().ok_or(ChangeError::NoOp)?;
        if creator.role != Role::Admin {
            return Err(ChangeError::NotAdmin {
                author: MemberIndex::CREATOR,
                role: creator.role.name(),
            });
        }
        let creator_key = verify_member_spec(creator)?;
        // protocol.md §7.2: a change binds the root at its position; at 0, the empty log's.
        let change = signed
            .verify_bound(&creator_key.signing, empty_root().as_bytes())
            .map_err(signed_error)?;
        empty.finish(change)
    }

    /// Rebuilds the state of a log of `size` entries from its changes alone (`(index, change)`,
    /// ascending, the create at index 0). Every change is checked again, its signature with the
    /// caller's root at its index (`roots`); the messages between them are taken as already
    /// checked (the caller's own durable log), since messages change nothing but the size.
    pub fn restore(
        changes: impl IntoIterator<Item = (LeafIndex, Signed<TopicChange>)>,
        size: TreeSize,
        roots: &dyn RootAt,
    ) -> Result<TopicState, ChangeError> {
        let mut state: Option<TopicState> = None;
        for (index, change) in changes {
            state = Some(match state {
                None if index == LeafIndex(0) => TopicState::create(change)?.next,
                None => return Err(ChangeError::CreateNotFirst),
                Some(mut s) => {
                    if index < s.size.next_index() {
                        return Err(ChangeError::StaleChange);
                    }
                    s.size = TreeSize(index.0);
                    let root = roots
                        .root_at(s.size)
                        .map_err(|error| ChangeError::RootUnknown {
                            size: s.size,
                            error,
                        })?;
                    s.check_change(change, &root)?.next
                }
            });
        }
        let mut state = state.ok_or(ChangeError::CreateNotFirst)?;
        if size < state.size {
            return Err(ChangeError::StaleChange);
        }
        state.size = size;
        Ok(state)
    }

    /// Checks `signed` as the next entry of the log and returns the state after it. `root` is the
    /// verifier's own root of the log at this state's size (the change's position): the
    /// signature covers it (`federation-spec/protocol.md` §7.2).
    pub fn check_change(
        &self,
        signed: Signed<TopicChange>,
        root: &LogHash,
    ) -> Result<ChangeOutcome, ChangeError> {
        let draft = signed.decode_unverified()?;
        if draft.topic != self.topic {
            return Err(ChangeError::WrongTopic {
                expected: self.topic.to_string(),
                got: draft.topic.to_string(),
            });
        }
        if matches!(draft.action, Action::Create { .. }) {
            return Err(ChangeError::CreateNotFirst);
        }
        if draft.prev.map(|p| p.0) != Some(self.last_change.0) {
            return Err(ChangeError::StaleChange);
        }
        let author = self.author(draft.author, &draft.action)?;
        let change = signed
            .verify_bound(&author.topic_key.signing, root.as_bytes())
            .map_err(|e| match signed_error(e) {
                // Entries after the last change: the author may have built it before them.
                ChangeError::BadSignature if self.size > self.last_change_at.size_after() => {
                    ChangeError::StaleRoot {
                        position: self.size.next_index(),
                    }
                }
                other => other,
            })?;
        self.finish(change)
    }

    /// Applies the plan of a signature-checked change and checks its epoch and key boxes.
    fn finish(&self, change: Verified<TopicChange>) -> Result<ChangeOutcome, ChangeError> {
        let plan = self.plan(change.author, &change.action)?;
        if change.epoch != plan.epoch_after {
            return Err(ChangeError::WrongEpoch {
                expected: plan.epoch_after,
                got: change.epoch,
            });
        }
        match (plan.new_epoch, &change.key_check) {
            (true, None) => return Err(ChangeError::KeyCheck("missing on a new epoch")),
            (false, Some(_)) => {
                return Err(ChangeError::KeyCheck("present although the epoch stays"));
            }
            _ => {}
        }
        // Exactly one box per recipient, ascending, each sealed to the member's Topic Key.
        let got: Vec<MemberIndex> = change.boxes.iter().map(|b| b.member).collect();
        if got != plan.recipients {
            return Err(ChangeError::WrongRecipients {
                expected: plan.recipients,
                got,
            });
        }
        for b in &change.boxes {
            let member = plan
                .members_after
                .get(&b.member)
                .ok_or(ChangeError::NotAMember(b.member))?;
            if b.sealed.recipient != member.topic_key.kem.key_id()
                || b.sealed.suite != member.topic_key.kem.suite().id()
            {
                return Err(ChangeError::BoxWrongKey(b.member));
            }
        }
        self.check_history_boxes(&change, &plan)?;

        let mut next = self.clone();
        for m in &plan.added {
            if let Some(member) = plan.members_after.get(m) {
                next.by_user.insert(member.user.clone(), *m);
                next.used_topic_keys.insert(member.topic_key.key_id());
            }
        }
        if let Action::Move(_) = &change.action
            && let Some(member) = plan.members_after.get(&change.author)
        {
            next.used_topic_keys.insert(member.topic_key.key_id());
        }
        if let Action::Remove(list) = &change.action {
            for m in list {
                if let Some(member) = self.members.get(m) {
                    next.by_user.remove(&member.user);
                }
            }
        }
        next.next_member = plan
            .added
            .last()
            .map_or(self.next_member, |m| MemberIndex(m.0.saturating_add(1)));
        next.members = plan.members_after;
        next.epoch = plan.epoch_after;
        if let Some(check) = change.key_check {
            next.epoch_checks.push(check.0);
        }
        next.last_change = ChangeHash::of(change.signed_bytes());
        next.last_change_at = self.size.next_index();
        next.size = self.size.next_index().size_after();
        Ok(ChangeOutcome { change, next })
    }

    fn check_history_boxes(&self, change: &TopicChange, plan: &Plan) -> Result<(), ChangeError> {
        if change.history.is_empty() {
            return Ok(());
        }
        if self.history == History::Protected {
            return Err(ChangeError::HistoryBox("the topic protects its history"));
        }
        let mut seen = HashSet::new();
        for h in &change.history {
            let member = h.member;
            if !plan.added.contains(&member) {
                return Err(ChangeError::HistoryBox(
                    "recipient is not a member added by this change",
                ));
            }
            if h.epoch >= plan.epoch_after {
                return Err(ChangeError::HistoryBox("not an older epoch"));
            }
            if !seen.insert((h.member, h.epoch)) {
                return Err(ChangeError::HistoryBox("two boxes for one epoch"));
            }
            let key = &plan.members_after[&member].topic_key.kem;
            if h.sealed.recipient != key.key_id() || h.sealed.suite != key.suite().id() {
                return Err(ChangeError::BoxWrongKey(h.member));
            }
        }
        Ok(())
    }

    /// The roster after `action` by `author`, and who must receive the epoch key.
    pub(crate) fn plan(&self, author: MemberIndex, action: &Action) -> Result<Plan, ChangeError> {
        let is_create = matches!(action, Action::Create { .. });
        if !is_create {
            self.author(author, action)?;
        }
        let mut members = self.members.clone();
        let mut added = Vec::new();
        let new_epoch = match action {
            Action::Create { members: specs, .. } | Action::Add(specs) => {
                added = self.add_members(&mut members, specs, is_create)?;
                is_create || self.history == History::Protected
            }
            Action::Remove(list) => {
                if list.is_empty() {
                    return Err(ChangeError::NoOp);
                }
                for m in list {
                    if *m == author {
                        return Err(ChangeError::SelfRemoval);
                    }
                    if members.remove(m).is_none() {
                        return Err(ChangeError::NotAMember(*m));
                    }
                }
                true
            }
            Action::SetRole(m, role) => {
                let member = members.get_mut(m).ok_or(ChangeError::NotAMember(*m))?;
                if member.role == *role {
                    return Err(ChangeError::NoOp);
                }
                member.role = *role;
                false
            }
            Action::Rekey => true,
            Action::Move(spec) => {
                self.plan_move(&mut members, author, spec)?;
                true
            }
        };
        if !members.values().any(|m| m.role == Role::Admin) {
            return Err(ChangeError::LastAdmin);
        }
        let epoch_after = match (is_create, new_epoch) {
            (true, _) => Epoch::ZERO,
            (false, true) => self.epoch.next().ok_or(ChangeError::WrongEpoch {
                expected: self.epoch,
                got: self.epoch,
            })?,
            (false, false) => self.epoch,
        };
        let recipients = if new_epoch {
            members.keys().copied().collect()
        } else {
            added.clone()
        };
        Ok(Plan {
            members_after: members,
            added,
            new_epoch,
            epoch_after,
            recipients,
        })
    }

    /// Adds `specs` to `members` (the roster being planned) by the rules of an add or a create;
    /// returns the new members' indices, ascending.
    fn add_members(
        &self,
        members: &mut BTreeMap<MemberIndex, Member>,
        specs: &[MemberSpec],
        is_create: bool,
    ) -> Result<Vec<MemberIndex>, ChangeError> {
        let mut added = Vec::with_capacity(specs.len());
        if specs.is_empty() {
            return Err(ChangeError::NoOp);
        }
        if members.len() + specs.len() > MAX_MEMBERS {
            return Err(ChangeError::TooManyMembers { limit: MAX_MEMBERS });
        }
        let mut users = HashSet::new();
        let mut keys = HashSet::new();
        let epoch = if is_create {
            Epoch::ZERO
        } else {
            self.epoch_after_add()
        };
        for (i, spec) in specs.iter().enumerate() {
            if self.by_user.contains_key(&spec.user) || !users.insert(spec.user.clone()) {
                return Err(ChangeError::AlreadyMember(spec.user.to_string()));
            }
            let topic_key = verify_member_spec(spec)?;
            let id = topic_key.key_id();
            if self.used_topic_keys.contains(&id) || !keys.insert(id) {
                return Err(ChangeError::TopicKeyReused);
            }
            let index = u32::try_from(i)
                .ok()
                .and_then(|i| self.next_member.0.checked_add(i))
                .map(MemberIndex)
                .ok_or(ChangeError::TooManyMembers { limit: MAX_MEMBERS })?;
            members.insert(
                index,
                Member {
                    user: spec.user.clone(),
                    identity_key: spec.identity_key.clone(),
                    role: spec.role,
                    topic_key,
                    joined_at: self.size.next_index(),
                    joined_epoch: epoch,
                },
            );
            added.push(index);
        }
        Ok(added)
    }

    /// A move (`protocol.md` §7.2, rules 21–23): the author, whatever its role, binds itself to
    /// the spec's Identity Key and a Topic Key never used in the topic; it keeps its index,
    /// role, join position and join epoch, so its history stays its own.
    fn plan_move(
        &self,
        members: &mut BTreeMap<MemberIndex, Member>,
        author: MemberIndex,
        spec: &MemberSpec,
    ) -> Result<(), ChangeError> {
        let member = members
            .get_mut(&author)
            .ok_or(ChangeError::UnknownAuthor(author))?;
        if spec.user != member.user {
            return Err(ChangeError::InvalidMove("a member moves only itself"));
        }
        if spec.role != member.role {
            return Err(ChangeError::InvalidMove("a move keeps the member's role"));
        }
        let topic_key = verify_member_spec(spec)?;
        if self.used_topic_keys.contains(&topic_key.key_id()) {
            return Err(ChangeError::TopicKeyReused);
        }
        member.identity_key = spec.identity_key.clone();
        member.topic_key = topic_key;
        Ok(())
    }

    fn epoch_after_add(&self) -> Epoch {
        match self.history {
            History::Shared => self.epoch,
            History::Protected => Epoch(self.epoch.0.saturating_add(1)),
        }
    }

    /// The author of `action`: a current member, an admin unless the action is a move (any
    /// member moves itself, rule 6).
    fn author(&self, author: MemberIndex, action: &Action) -> Result<&Member, ChangeError> {
        let member = self
            .members
            .get(&author)
            .ok_or(ChangeError::UnknownAuthor(author))?;
        if !member.role.can_change() && !matches!(action, Action::Move(_)) {
            return Err(ChangeError::NotAdmin {
                author,
                role: member.role.name(),
            });
        }
        Ok(member)
    }

    /// Moves the state to log position `index` without the entries before it (a reader that
    /// lacks or refused them, `tag-log.md` §9.2): only the size changes, so the state is exact
    /// only if none of them was a change.
    pub fn skip_to(&mut self, index: LeafIndex) {
        if index.0 > self.size.0 {
            self.size = TreeSize(index.0);
        }
    }

    /// The topic.
    pub fn topic(&self) -> &TopicId {
        &self.topic
    }

    /// The history setting.
    pub fn history(&self) -> History {
        self.history
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Number of log entries this state covers (the position of the next entry).
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// Log position of the last change.
    pub fn last_change_at(&self) -> LeafIndex {
        self.last_change_at
    }

    /// Hash of the last change (the `prev` of the next change).
    pub fn last_change(&self) -> ChangeHash {
        self.last_change
    }

    /// Key check value of `epoch`, if the topic has reached it.
    pub fn epoch_check(&self, epoch: Epoch) -> Option<&[u8; 32]> {
        self.epoch_checks.get(usize::try_from(epoch.0).ok()?)
    }

    /// Current members by index.
    pub fn members(&self) -> &BTreeMap<MemberIndex, Member> {
        &self.members
    }

    /// A current member.
    pub fn member(&self, index: MemberIndex) -> Option<&Member> {
        self.members.get(&index)
    }

    /// The member index of `user`, if a current member.
    pub fn member_of(&self, user: &UserId) -> Option<MemberIndex> {
        self.by_user.get(user).copied()
    }

    /// The index the next added member will get.
    pub fn next_member(&self) -> MemberIndex {
        self.next_member
    }
}

/// Checks a member spec's topic key certificate: signed by the given Identity Key, for this user.
pub(crate) fn verify_member_spec(spec: &MemberSpec) -> Result<TopicPublicKey, ChangeError> {
    let bad = |reason: String| ChangeError::BadTopicKeyCert {
        user: spec.user.to_string(),
        reason,
    };
    let cert = spec
        .topic_key_cert
        .clone()
        .verify(&spec.identity_key)
        .map_err(|e| bad(e.to_string()))?;
    if cert.user != spec.user {
        return Err(bad(format!("certificate names {}", cert.user)));
    }
    cert.topic_key().map_err(|e| bad(e.to_string()))
}

fn signed_error(e: crate::wire::signed::SignedError) -> ChangeError {
    match e {
        crate::wire::signed::SignedError::BadSignature => ChangeError::BadSignature,
        crate::wire::signed::SignedError::Wire(w) => ChangeError::Malformed(w),
    }
}

//! The append path of a topic hosted here: a `create`, a change or a message by a caller,
//! checked with the shared state machine under the topic's lock, then written — the entry,
//! its tag, its new log nodes and the membership changes in one atomic store write — and
//! recorded as pending until the group flush makes it durable ([`super::durable`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::error::{TopicError, TopicResult};
use super::hosted::{Hosted, Log, Topic};
use super::service::TopicService;
use super::{RemoteIdentities, lock};
use crate::store::{Append, Store, TopicNodes};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::message::{Message, MessageError, MessageIn, MessageTag};
use rendezvous_protocol::tlog::{Frontier, LogHash, RootAt, TlogError, Tree, TreeSize, leaf_hash};
use rendezvous_protocol::topic::{
    Action, ChangeError, ChangeOutcome, LogEntry, MemberSpec, TagSet, TagsUnavailable, TopicChange,
    TopicState, leaf_data_for_change,
};
use rendezvous_protocol::wire::Signed;

/// An accepted entry, not yet known durable.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    /// Its log index.
    pub index: u64,
}

/// An entry as a device or a submitting server sends it: decoded, not yet checked.
#[derive(Debug)]
pub enum NewEntry {
    /// A signed topic change (`protocol.md` §5).
    Change(Signed<TopicChange>),
    /// A message (`protocol.md` §6).
    Message(MessageIn),
}

/// Tag lookups go to the store.
pub(super) struct StoreTags<'a> {
    pub(super) store: &'a Store,
    pub(super) topic: &'a TopicId,
}

impl TagSet for StoreTags<'_> {
    fn contains(&self, tag: &MessageTag) -> Result<bool, TagsUnavailable> {
        // A storage error is no verdict: neither "seen" (a client would drop a message that is
        // not in the log) nor "new" (a replay could get in). The request answers 503.
        match self.store.tag_index(self.topic, tag.0) {
            Ok(index) => Ok(index.is_some()),
            Err(e) => {
                tracing::error!(error = %e, topic = %self.topic, "reading a message tag");
                Err(TagsUnavailable)
            }
        }
    }
}

/// The server's own roots of a topic's tag log (`protocol.md` §6.4, §7.2): the current one from
/// the in-memory frontier, earlier ones from the stored nodes (every appended entry's nodes are
/// written with it, pending or durable).
pub(super) struct LogRoots<'a> {
    pub(super) store: &'a Store,
    pub(super) topic: &'a TopicId,
    pub(super) frontier: &'a Frontier,
}

impl RootAt for LogRoots<'_> {
    fn root_at(&self, size: TreeSize) -> Result<LogHash, TlogError> {
        if size == self.frontier.size() {
            return Ok(self.frontier.root());
        }
        // The empty log's root needs no stored node.
        if size.0 == 0 {
            return Ok(rendezvous_protocol::tlog::empty_root());
        }
        Tree::open(
            TopicNodes::new(self.store, self.topic),
            self.frontier.size(),
        )?
        .root_at(size)
    }
}

impl TopicService {
    /// Checks and appends `body`, the creation of a topic hosted here, by `caller`, once the
    /// Identity Keys of the members of other servers it adds are fetched (`federation-api.md`
    /// §9.1).
    pub async fn create(
        &self,
        signed: Signed<TopicChange>,
        caller: &UserId,
        max_created: u64,
    ) -> TopicResult<(TopicId, Appended)> {
        let remote = self.remote_identities(&signed).await?;
        let draft = signed.decode_unverified()?;
        if draft.topic.server() != self.server_name {
            return Err(TopicError::CreateElsewhere {
                topic: draft.topic,
                here: self.server_name.clone(),
            });
        }
        let outcome = TopicState::create(signed)?;
        // The create names the key this server signs the log with (`protocol.md` §7.2).
        outcome.next.check_host_key(self.server_key().public())?;
        if let Action::Create { members, .. } = &outcome.change.action {
            if members.first().map(|m| &m.user) != Some(caller) {
                return Err(TopicError::NotTheCaller { role: "creator" });
            }
            self.check_identities(members, Some(&remote))?;
        }
        let topic = outcome.next.topic().clone();
        let mut hosted = Hosted::new(Log::new(outcome.next.clone(), Frontier::new()));
        let creator = Some((caller.clone(), max_created));
        let appended = self.append_hosted_change(&topic, &mut hosted, None, creator, &outcome)?;
        self.put(&topic, Topic::Hosted(hosted));
        Ok((topic, appended))
    }

    /// Checks and appends a change by `caller` to a topic hosted here, once the Identity Keys
    /// of the members of other servers it adds are fetched.
    pub async fn change(
        &self,
        topic: &TopicId,
        change: Signed<TopicChange>,
        caller: &UserId,
    ) -> TopicResult<Appended> {
        let remote = self.remote_identities(&change).await?;
        let t = self.get(topic)?;
        let mut t = lock(&t);
        let hosted = t.hosted_mut(topic)?;
        let outcome = self.check_change_by(&hosted.log, change, caller, Some(&remote))?;
        let before = hosted.log.state.clone();
        self.append_hosted_change(topic, hosted, Some(&before), None, &outcome)
    }

    /// Checks and appends a message by `caller` to a topic hosted here.
    pub fn post(&self, topic: &TopicId, msg: MessageIn, caller: &UserId) -> TopicResult<Appended> {
        let t = self.get(topic)?;
        let mut t = lock(&t);
        let hosted = t.hosted_mut(topic)?;
        let msg = self.check_message_by(topic, &hosted.log, msg, caller)?;
        self.append_message(topic, &mut hosted.log, &msg)
    }

    /// Checks a message or change by `caller` against the topic's current state without
    /// appending it: what a participating server does before submitting a post to the
    /// hosting server. Returns the entry and its leaf hash.
    pub(super) fn precheck(
        &self,
        topic: &TopicId,
        entry: NewEntry,
        caller: &UserId,
    ) -> TopicResult<(LogEntry, LogHash)> {
        let t = self.get(topic)?;
        let t = lock(&t);
        if let Topic::Mirror(m) = &*t {
            m.not_stopped()?;
        }
        match entry {
            NewEntry::Change(change) => {
                let outcome = self.check_change_by(t.log(), change, caller, None)?;
                let signed = outcome.change.signed_bytes();
                Ok((
                    LogEntry::change(&outcome.change),
                    leaf_hash(&leaf_data_for_change(signed)),
                ))
            }
            NewEntry::Message(msg) => {
                let msg = self.check_message_by(topic, t.log(), msg, caller)?;
                Ok((LogEntry::message(&msg), leaf_hash(&msg.leaf_data())))
            }
        }
    }

    /// Fetches the Identity Keys of the members of other servers that a change adds
    /// (`federation-api.md` §9.1).
    async fn remote_identities(
        &self,
        change: &Signed<TopicChange>,
    ) -> TopicResult<RemoteIdentities> {
        let users = remote_members_added(change, &self.server_name)?;
        let mut out = RemoteIdentities::new();
        // Test hook: a colluding host asks nobody (`Store::identity_check_skips_for_tests`).
        #[cfg(any(test, feature = "test-hooks"))]
        if self.store.identity_checks_skipped_for_tests() {
            return Ok(out);
        }
        if users.is_empty() {
            return Ok(out);
        }
        let relay = self.relay(|| "a member is on another server".into())?;
        for user in users {
            let identity = relay.identity(&user).await?;
            out.insert(user, identity);
        }
        Ok(out)
    }

    /// Every member added must have the Identity Key in the member spec: a user of this
    /// server its registered, enabled one; a user of another server the one its homeserver
    /// gave (`remote`, fetched beforehand; `federation-api.md` §9.1). Without `remote` (a
    /// mirror checking its hosting server's entries, or a precheck before a submit) only this
    /// server's users are checked: each server vouches for its own users.
    pub(super) fn check_identities(
        &self,
        members: &[MemberSpec],
        remote: Option<&RemoteIdentities>,
    ) -> TopicResult<()> {
        // Test hook: a colluding host checks nothing (`Store::identity_check_skips_for_tests`).
        #[cfg(any(test, feature = "test-hooks"))]
        if self.store.identity_checks_skipped_for_tests() {
            return Ok(());
        }
        for m in members {
            let registered = if m.user.server() == self.server_name {
                let record = self
                    .store
                    .user(&m.user)?
                    .ok_or_else(|| TopicError::NoUser {
                        user: m.user.clone(),
                    })?;
                record.identity_key()?
            } else {
                let Some(remote) = remote else {
                    continue;
                };
                remote
                    .get(&m.user)
                    .cloned()
                    .ok_or_else(|| TopicError::IdentityUnfetched {
                        user: m.user.clone(),
                    })?
            };
            if registered != m.identity_key {
                return Err(TopicError::WrongIdentity {
                    user: m.user.clone(),
                });
            }
        }
        Ok(())
    }

    /// The topic rules for a change by `caller`: the author must be the caller, the change
    /// must pass the state machine, and added members must have their registered Identity
    /// Keys.
    fn check_change_by(
        &self,
        log: &Log,
        signed: Signed<TopicChange>,
        caller: &UserId,
        remote: Option<&RemoteIdentities>,
    ) -> TopicResult<ChangeOutcome> {
        let draft = signed.decode_unverified()?;
        let author = log
            .state
            .member(draft.author)
            .ok_or(ChangeError::UnknownAuthor(draft.author))?;
        if author.user != *caller {
            return Err(TopicError::NotTheCaller { role: "author" });
        }
        let outcome = log.state.check_change(signed, &log.frontier.root())?;
        // directory.md §6.4: every IK a change introduces (an add's, a move's).
        let introduced = outcome.change.action.introduced_members();
        if !introduced.is_empty() {
            self.check_identities(introduced, remote)?;
        }
        Ok(outcome)
    }

    /// The topic rules for a message by `caller`: the sender must be the caller, and the
    /// message must pass the state machine (epoch, role, signature, tag not in the log).
    fn check_message_by(
        &self,
        topic: &TopicId,
        log: &Log,
        msg_in: MessageIn,
        caller: &UserId,
    ) -> TopicResult<Message> {
        let sender = msg_in.header().sender;
        match log.state.member(sender) {
            Some(m) if m.user == *caller => {}
            Some(_) => return Err(TopicError::NotTheCaller { role: "sender" }),
            None => return Err(MessageError::NotAMember(sender).into()),
        }
        let tags = StoreTags {
            store: &self.store,
            topic,
        };
        let roots = LogRoots {
            store: &self.store,
            topic,
            frontier: &log.frontier,
        };
        // A tag or root the store cannot read is `unavailable`, never a verdict.
        Ok(log.state.check_message(msg_in, &tags, &roots)?)
    }

    /// Writes a checked message as the topic's next entry and records it as pending.
    pub(super) fn append_message(
        &self,
        topic: &TopicId,
        log: &mut Log,
        msg: &Message,
    ) -> TopicResult<Appended> {
        let entry = LogEntry::message(msg).to_wire();
        let index = log.state.size().get();
        let (frontier, nodes) = grown(&log.frontier, &msg.leaf_data())?;
        self.store.append(
            topic,
            Append {
                index,
                entry: entry.clone(),
                change: false,
                tag: Some(msg.tag().0),
                nodes,
                memberships: Vec::new(),
                created_by: None,
            },
        )?;
        log.state.append_message(msg)?;
        log.pend(index, entry, frontier);
        Ok(Appended { index })
    }

    /// Writes a hosted topic's checked change; the servers of removed members are told of it
    /// with the next fan-out (`federation-api.md` §9.1).
    fn append_hosted_change(
        &self,
        topic: &TopicId,
        hosted: &mut Hosted,
        before: Option<&TopicState>,
        created_by: Option<(UserId, u64)>,
        outcome: &ChangeOutcome,
    ) -> TopicResult<Appended> {
        let (appended, removed) =
            self.append_change(topic, &mut hosted.log, before, created_by, outcome)?;
        hosted.removed_servers.extend(removed);
        Ok(appended)
    }

    /// Writes a checked change as the topic's next entry (with the membership changes of this
    /// server's users, and a create counted against its creator's quota, `created_by`) and
    /// records it as pending. Returns it and the other servers whose members it removed.
    pub(super) fn append_change(
        &self,
        topic: &TopicId,
        log: &mut Log,
        before: Option<&TopicState>,
        created_by: Option<(UserId, u64)>,
        outcome: &ChangeOutcome,
    ) -> TopicResult<(Appended, BTreeSet<ServerName>)> {
        let entry = LogEntry::change(&outcome.change).to_wire();
        let index = before.map_or(0, |b| b.size().get());
        let (frontier, nodes) = grown(
            &log.frontier,
            &leaf_data_for_change(outcome.change.signed_bytes()),
        )?;
        let own = &self.server_name;
        let mut memberships = Vec::new();
        for m in outcome.next.members().values() {
            if m.user.server() == *own {
                memberships.push((m.user.clone(), Some(m.role.to_wire())));
            }
        }
        let mut removed = BTreeSet::new();
        for m in before.into_iter().flat_map(|b| b.members().values()) {
            if outcome.next.member_of(&m.user).is_some() {
                continue;
            }
            match m.user.server() == *own {
                true => memberships.push((m.user.clone(), None)),
                false => {
                    removed.insert(m.user.server());
                }
            }
        }
        self.store.append(
            topic,
            Append {
                index,
                entry: entry.clone(),
                change: true,
                tag: None,
                nodes,
                memberships,
                created_by,
            },
        )?;
        log.state = outcome.next.clone();
        log.pend(index, entry, frontier);
        Ok((Appended { index }, removed))
    }
}

/// A new topic in the map's shape.
pub(super) fn shared(t: Topic) -> Arc<Mutex<Topic>> {
    Arc::new(Mutex::new(t))
}

/// Users of other servers among the members a change adds (whose identities must be fetched
/// before the change is checked).
fn remote_members_added(
    change: &Signed<TopicChange>,
    own: &ServerName,
) -> TopicResult<Vec<UserId>> {
    let draft = change.decode_unverified()?;
    Ok(draft
        .action
        .introduced_members()
        .iter()
        .filter(|m| m.user.server() != *own)
        .map(|m| m.user.clone())
        .collect())
}

/// Log nodes completed by an append: `(level, index, hash)`.
type NewNodes = Vec<(u8, u64, [u8; 32])>;

/// The tag log after one more leaf, and the nodes that leaf completes.
pub(super) fn grown(frontier: &Frontier, leaf: &[u8]) -> TopicResult<(Frontier, NewNodes)> {
    let mut f = frontier.clone();
    let mut nodes = Vec::with_capacity(2);
    f.append_leaf_hash(leaf_hash(leaf), |level, index, hash: LogHash| {
        nodes.push((level, index, hash.0))
    })
    .map_err(|e| TopicError::internal("tag log full", e))?;
    Ok((f, nodes))
}

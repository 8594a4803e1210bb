//! Roster checks (`directory.md` §6.4, `client-rules.md` C7): every member a change adds
//! (create, add) must carry the IK its homeserver's directory binds. The lookups are made before the replay (async);
//! [`Roster::check`] then compares each added member spec with them while the change is
//! applied. A mismatch refuses the change on this device for good (`directory_mismatch`,
//! kept in the topic record: `topic_refused`); a member that cannot be checked now
//! (`roster_unchecked`) stops writes until a later read checks it.

use std::collections::HashMap;

use super::fetch::Fetched;
use crate::keystore::{ContactRecord, RosterRefusal};
use crate::{Client, ClientError};
use rendezvous_protocol::crypto::IdentityPublicKey;
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::topic::{ENTRY_CHANGE, MemberSpec, TopicChange};
use rendezvous_protocol::wire::Signed;

/// What the directory says of one added member.
#[derive(Debug, Clone)]
enum Lookup {
    /// The accepted binding (and the keys accepted before it).
    Bound(ContactRecord),
    /// No binding could be accepted now: why, with the code.
    Unchecked(String),
}

/// The roster check's lookups, by user.
#[derive(Debug, Clone, Default)]
pub(crate) struct Roster {
    lookups: HashMap<UserId, Lookup>,
    /// This user's own Identity Keys (`Client::own_identity_keys`), read once per replay.
    pub(crate) own: Vec<IdentityPublicKey>,
}

/// The members a change introduces (adds, or moves to a new IK), from its unverified wire
/// form (the replay verifies it).
fn added_members(entry: &rendezvous_protocol::topic::LogEntry) -> Vec<MemberSpec> {
    if entry.0 != ENTRY_CHANGE {
        return Vec::new();
    }
    let Ok(change) = Signed::<TopicChange>::from_wire(&entry.1).and_then(|s| s.decode_unverified())
    else {
        return Vec::new();
    };
    change.action.introduced_members().to_vec()
}

impl Client {
    /// The Identity Keys that are this user's own for a roster check: the current one and
    /// the ones this device rotated from (`directory.md` §6.4, §8).
    /// A keystore that cannot be read is an error, never a verdict on a change or an entry.
    pub(crate) fn own_identity_keys(&self) -> Result<Vec<IdentityPublicKey>, ClientError> {
        let mut keys = vec![self.identity.public().clone()];
        keys.extend(self.keystore.rotated_from()?);
        Ok(keys)
    }

    /// Looks up every member the fetched changes add that this device has no binding for
    /// with that key (`directory.md` §6.1); this user is checked against its own IK instead.
    pub(crate) async fn roster_lookups(
        &mut self,
        entries: &Fetched,
    ) -> Result<Roster, ClientError> {
        let mut roster = Roster {
            own: self.own_identity_keys()?,
            ..Roster::default()
        };
        for (_, entry) in entries {
            let Ok(entry) = entry else { continue };
            for spec in added_members(entry) {
                if spec.user == self.user || roster.lookups.contains_key(&spec.user) {
                    continue;
                }
                let lookup = self.roster_lookup(&spec.user, &spec.identity_key).await;
                roster.lookups.insert(spec.user, lookup);
            }
        }
        Ok(roster)
    }

    async fn roster_lookup(&mut self, user: &UserId, key: &IdentityPublicKey) -> Lookup {
        match self.keystore.contact(user) {
            Ok(Some(c)) if c.knows(key) && c.changed.is_none() => return Lookup::Bound(c),
            Ok(_) => {}
            Err(e) => return Lookup::Unchecked(format!("{} ({e})", e.error_code())),
        }
        let result = match self.lookup_identity(user).await {
            Ok(_) => self.keystore.contact(user),
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(c)) => Lookup::Bound(c),
            Ok(None) => Lookup::Unchecked("no binding kept".into()),
            Err(e) => Lookup::Unchecked(format!("{}: {e}", e.error_code())),
        }
    }
}

impl Roster {
    /// A roster with one accepted binding (tests).
    #[cfg(test)]
    pub(crate) fn with_binding(user: UserId, record: ContactRecord) -> Roster {
        Roster {
            lookups: HashMap::from([(user, Lookup::Bound(record))]),
            own: Vec::new(),
        }
    }

    /// Checks the member specs a change at `index` adds: problems for the entry's report,
    /// refusals kept for the topic, and members left unchecked.
    pub(crate) fn check(
        &self,
        me: (&UserId, &[IdentityPublicKey]),
        index: u64,
        members: &[(UserId, IdentityPublicKey)],
        refused: &mut Vec<RosterRefusal>,
        unchecked: &mut Vec<String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for (member, key) in members {
            let user = member.to_string();
            let known = if member == me.0 {
                Ok(me.1.contains(key))
            } else {
                match self.lookups.get(member) {
                    Some(Lookup::Bound(c)) => Ok(c.knows(key)),
                    Some(Lookup::Unchecked(why)) => Err(why.clone()),
                    None => Err("not looked up".to_owned()),
                }
            };
            match known {
                Ok(true) => {}
                Ok(false) => {
                    let reason = format!(
                        "directory_mismatch: the identity key of {user} in this change is not \
                         the one its homeserver's directory binds; this device refuses the change"
                    );
                    if !refused.iter().any(|r| r.index == index && r.user == user) {
                        refused.push(RosterRefusal {
                            index,
                            user: user.clone(),
                            reason: reason.clone(),
                        });
                    }
                    problems.push(reason);
                }
                Err(why) => {
                    unchecked.push(format!("{user}: {why}"));
                    problems.push(format!(
                        "roster_unchecked: the identity key of {user} could not be checked \
                         against its directory ({why})"
                    ));
                }
            }
        }
        problems
    }
}

/// The write gate's part of the roster check.
pub(crate) fn gate(
    topic: &impl std::fmt::Display,
    refused: &[RosterRefusal],
    unchecked: &[String],
) -> Result<(), ClientError> {
    if let Some(r) = refused.first() {
        return Err(ClientError::TopicRefused {
            topic: topic.to_string(),
            index: r.index,
            reason: r.reason.clone(),
        });
    }
    if !unchecked.is_empty() {
        return Err(ClientError::RosterUnchecked {
            topic: topic.to_string(),
            users: unchecked.join("; "),
        });
    }
    Ok(())
}

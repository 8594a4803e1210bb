//! A mirror's Identity Key refusals (`directory.md` §6.5): an entry whose member spec names
//! another IK for a user of this server than the user's, or a user this server does not have,
//! is refused, and the refusal is kept and served to the topic's local members (`GET
//! /v1/topics/{topic}/witnesses`), not only an error to the hosting server.

use super::error::{TopicError, TopicResult};
use super::service::TopicService;
use crate::store::MirrorRefusal;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::topic::MemberSpec;

impl TopicService {
    /// [`TopicService::check_identities`] of the members an entry of a mirrored topic adds;
    /// a [`TopicError::WrongIdentity`] or [`TopicError::NoUser`] (a member spec for a user of
    /// this server that does not exist: no key of its is the user's either) is kept as a
    /// refusal of entry `index` (`entry`: its bytes) before it is returned.
    pub(super) fn check_mirrored_identities(
        &self,
        topic: &TopicId,
        index: u64,
        members: &[MemberSpec],
        entry: &[u8],
    ) -> TopicResult<()> {
        let checked = self.check_identities(members, None);
        let (Err(TopicError::WrongIdentity { user }) | Err(TopicError::NoUser { user })) = &checked
        else {
            return checked;
        };
        if let Some(m) = members.iter().find(|m| m.user == *user) {
            tracing::warn!(%topic, index, %user, "mirror refused an entry: its member spec names another identity key for a user of this server, or a user it does not have");
            self.store.add_mirror_refusal(
                topic,
                &MirrorRefusal {
                    index,
                    user: user.clone(),
                    identity_key: m.identity_key.clone(),
                    entry: entry.to_vec(),
                },
            )?;
        }
        checked
    }
}

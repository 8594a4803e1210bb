//! A mirror's Identity Key refusals (`federation-spec/directory.md` §6.5): entries of a
//! mirrored topic refused because a member spec for a user of this server carried another IK
//! than the user's, kept for the topic's local members.
//!
//! | table | key | value |
//! |---|---|---|
//! | `mirrors` | `id(topic) ‖ 0x06 ‖ u64be(index) ‖ id(user)` | CBOR `[identity_key, entry]` |

use serde::{Deserialize, Serialize};

use super::keys::{Key, KeyReader};
use super::{OrBackend, Store, StoreError, decode_record, encode_record};
use rendezvous_protocol::crypto::IdentityPublicKey;
use rendezvous_protocol::ids::{TopicId, UserId};

const REFUSAL: u8 = 6;

/// One refused entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRefusal {
    /// The entry's index in the topic's log.
    pub index: u64,
    /// The local user the member spec is for.
    pub user: UserId,
    /// The IK the member spec named.
    pub identity_key: IdentityPublicKey,
    /// The entry's wire bytes.
    pub entry: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Stored(IdentityPublicKey, serde_bytes::ByteBuf);

fn prefix(topic: &TopicId) -> Vec<u8> {
    Key::new().id(topic.as_str()).u8(REFUSAL).build()
}

impl Store {
    /// Keeps a refusal (the same entry and user once).
    pub fn add_mirror_refusal(&self, topic: &TopicId, r: &MirrorRefusal) -> Result<(), StoreError> {
        let key = Key::new()
            .bytes(&prefix(topic))
            .u64(r.index)
            .id(r.user.as_str())
            .build();
        let value = encode_record(&Stored(
            r.identity_key.clone(),
            serde_bytes::ByteBuf::from(r.entry.clone()),
        ));
        self.t().mirrors.insert(key, value).or_backend()?;
        Ok(())
    }

    /// The refusals kept for `topic`, newest (highest index) first: at most `limit`, and no
    /// more than `max_bytes` of entries (but always the first).
    pub fn mirror_refusals(
        &self,
        topic: &TopicId,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<MirrorRefusal>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in self
            .t()
            .mirrors
            .scan_prefix(prefix(topic))
            .rev()
            .take(limit)
        {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, "mirrors");
            r.skip_id()?;
            r.array::<1>()?;
            let index = r.u64()?;
            let user: UserId = r.id()?;
            r.end()?;
            let Stored(identity_key, entry) = decode_record(&v, "mirrors")?;
            bytes = bytes.saturating_add(entry.len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(MirrorRefusal {
                index,
                user,
                identity_key,
                entry: entry.into_vec(),
            });
        }
        Ok(out)
    }
}

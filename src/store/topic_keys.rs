//! A user's topic key certificates, claimed by others to add the user to topics
//! (`federation-spec/client-api.md` §4).

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::keys::Key;
use super::users::user_key;
use super::{
    Counter, OrBackend, Store, StoreError, abort, decode_record, encode_record, in_tx, tx,
    tx_counter,
};
use rendezvous_protocol::crypto::KeyId;
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::wire::SignedBytes;

/// Most unclaimed topic keys stored per user.
pub const MAX_TOPIC_KEYS: u64 = 1000;

/// What [`Store::add_topic_keys`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicKeysAdded {
    /// Unclaimed one-time topic keys of the user now.
    pub left: u64,
    /// The key ids stored by this call, in request order: ids seen before are not among them
    /// (their deliveries must not be filed again, `client-api.md` §4).
    pub new: Vec<KeyId>,
}

/// `topic_keys` value: `[key id, topic key certificate]`.
#[derive(Serialize, Deserialize)]
struct StoredTopicKey(KeyId, SignedBytes);

impl Store {
    /// Stores topic key certificates of an existing user; returns how many unclaimed ones the
    /// user has now and which ids were new. Key ids seen before (claimed or not, one-time or
    /// last-resort) are skipped. Errors (nothing stored):
    /// [`StoreError::TooMany`] beyond [`MAX_TOPIC_KEYS`], [`StoreError::NotFound`] (no user).
    pub fn add_topic_keys(
        &self,
        user: &UserId,
        keys: Vec<(KeyId, SignedBytes)>,
    ) -> Result<TopicKeysAdded, StoreError> {
        let t = self.t();
        let _lock = self.user_lock(user);
        let ukey = user_key(user);
        let count_key = Counter::TopicKeyCount.key(user, None);
        let seq_key = Counter::TopicKeySeq.key(user, None);
        tx(
            (&t.users, &t.topic_keys, &t.topic_key_ids, &t.counters).transaction(
                |(tx_users, tx_keys, tx_ids, tx_counters)| {
                    if tx_users.get(ukey.as_slice())?.is_none() {
                        return abort(StoreError::NotFound);
                    }
                    let count = tx_counter(tx_counters, &count_key)?;
                    let mut seq = tx_counter(tx_counters, &seq_key)?;
                    let mut new = Vec::new();
                    for (id, cert) in &keys {
                        let id_key = Key::new().bytes(&ukey).bytes(&id.0).build();
                        if tx_ids.get(id_key.as_slice())?.is_some() {
                            continue;
                        }
                        // Marks the id seen, which also skips duplicates within this request.
                        tx_ids.insert(id_key, &[][..])?;
                        new.push((id, cert));
                    }
                    let adding = new.len() as u64;
                    if count + adding > MAX_TOPIC_KEYS {
                        return abort(StoreError::TooMany {
                            limit: MAX_TOPIC_KEYS,
                            stored: count,
                            adding,
                        });
                    }
                    let mut ids = Vec::with_capacity(new.len());
                    for (id, cert) in new {
                        seq += 1;
                        let k = Key::new().bytes(&ukey).u64(seq).build();
                        tx_keys.insert(k, encode_record(&StoredTopicKey(*id, cert.clone())))?;
                        ids.push(*id);
                    }
                    tx_counters.insert(count_key.as_slice(), &(count + adding).to_be_bytes())?;
                    tx_counters.insert(seq_key.as_slice(), &seq.to_be_bytes())?;
                    Ok(TopicKeysAdded {
                        left: count + adding,
                        new: ids,
                    })
                },
            ),
        )
    }

    /// Marks `id` seen for the user without storing a certificate: a Topic Key the user keeps
    /// for its own use in one topic (a move, `client-api.md` §4), never handed out, and never
    /// accepted again as a one-time or last-resort key. Errors (nothing stored):
    /// [`StoreError::Exists`] when the id was seen before, [`StoreError::NotFound`] (no user).
    pub fn mark_own_topic_key(&self, user: &UserId, id: KeyId) -> Result<(), StoreError> {
        let t = self.t();
        let _lock = self.user_lock(user);
        let ukey = user_key(user);
        let id_key = Key::new().bytes(&ukey).bytes(&id.0).build();
        tx(
            (&t.users, &t.topic_key_ids).transaction(|(tx_users, tx_ids)| {
                if tx_users.get(ukey.as_slice())?.is_none() {
                    return abort(StoreError::NotFound);
                }
                if tx_ids.get(id_key.as_slice())?.is_some() {
                    return abort(StoreError::Exists);
                }
                tx_ids.insert(id_key.as_slice(), &[][..])?;
                Ok(())
            }),
        )
    }

    /// Takes the user's oldest unclaimed topic key certificate (each is handed out once).
    pub fn claim_topic_key(&self, user: &UserId) -> Result<Option<SignedBytes>, StoreError> {
        let t = self.t();
        let _lock = self.user_lock(user);
        let Some(first) = t.topic_keys.scan_prefix(user_key(user)).next() else {
            return Ok(None);
        };
        let (k, _) = first.or_backend()?;
        let count_key = Counter::TopicKeyCount.key(user, None);
        tx(
            (&t.topic_keys, &t.counters).transaction(|(tx_keys, tx_counters)| {
                let Some(v) = tx_keys.remove(&k)? else {
                    return Ok(None);
                };
                let StoredTopicKey(_, cert) = in_tx(decode_record(&v, "topic_keys"))?;
                let count = tx_counter(tx_counters, &count_key)?;
                tx_counters.insert(count_key.as_slice(), &count.saturating_sub(1).to_be_bytes())?;
                Ok(Some(cert))
            }),
        )
    }

    /// Number of unclaimed topic keys of a user.
    pub fn topic_key_count(&self, user: &UserId) -> Result<u64, StoreError> {
        self.counter(&Counter::TopicKeyCount.key(user, None))
    }
}

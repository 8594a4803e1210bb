//! Each user's one last-resort topic key (`federation-spec/client-api.md` §4): handed out when
//! no one-time key can be, kept (never removed by a claim), replaced only by the user.

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::keys::Key;
use super::users::user_key;
use super::{OrBackend, Store, StoreError, abort, decode_record, encode_record, in_tx, tx};
use rendezvous_protocol::api::LastResortStatus;
use rendezvous_protocol::crypto::KeyId;
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::wire::SignedBytes;

/// `last_resort` value: `[key id, topic key certificate, served]`.
#[derive(Serialize, Deserialize)]
struct StoredLastResort(KeyId, SignedBytes, bool);

impl Store {
    /// Makes `cert` (key id `id`) the user's last-resort key, replacing the previous one, in one
    /// transaction. The id is marked seen in `topic_key_ids`, so it never becomes a one-time
    /// key. Errors (nothing stored): [`StoreError::Exists`] when the id was seen before for the
    /// user (as a one-time or a last-resort key), [`StoreError::NotFound`] (no user).
    pub fn set_last_resort_key(
        &self,
        user: &UserId,
        id: KeyId,
        cert: SignedBytes,
    ) -> Result<(), StoreError> {
        let t = self.t();
        let _lock = self.user_lock(user);
        let ukey = user_key(user);
        let id_key = Key::new().bytes(&ukey).bytes(&id.0).build();
        let value = encode_record(&StoredLastResort(id, cert, false));
        tx((&t.users, &t.topic_key_ids, &t.last_resort).transaction(
            |(tx_users, tx_ids, tx_last)| {
                if tx_users.get(ukey.as_slice())?.is_none() {
                    return abort(StoreError::NotFound);
                }
                if tx_ids.get(id_key.as_slice())?.is_some() {
                    return abort(StoreError::Exists);
                }
                tx_ids.insert(id_key.as_slice(), &[][..])?;
                tx_last.insert(ukey.as_slice(), value.as_slice())?;
                Ok(())
            },
        ))
    }

    /// Hands out the user's last-resort key certificate, if there is one: it stays, marked
    /// served (key status `last-resort` = 2).
    pub fn serve_last_resort_key(&self, user: &UserId) -> Result<Option<SignedBytes>, StoreError> {
        let t = self.t();
        let _lock = self.user_lock(user);
        let ukey = user_key(user);
        tx(t.last_resort.transaction(|tx_last| {
            let Some(v) = tx_last.get(ukey.as_slice())? else {
                return Ok(None);
            };
            let StoredLastResort(id, cert, served) = in_tx(decode_record(&v, "last_resort"))?;
            if !served {
                let marked = encode_record(&StoredLastResort(id, cert.clone(), true));
                tx_last.insert(ukey.as_slice(), marked)?;
            }
            Ok(Some(cert))
        }))
    }

    /// Whether the user has a last-resort key, and whether it was handed out.
    pub fn last_resort_status(&self, user: &UserId) -> Result<LastResortStatus, StoreError> {
        match self.t().last_resort.get(user_key(user)).or_backend()? {
            None => Ok(LastResortStatus::None),
            Some(v) => {
                let StoredLastResort(_, _, served) = decode_record(&v, "last_resort")?;
                Ok(if served {
                    LastResortStatus::Served
                } else {
                    LastResortStatus::Unused
                })
            }
        }
    }
}

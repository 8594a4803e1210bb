//! Login challenges and session tokens (`federation-spec/client-api.md` §3), and the lazy purge
//! of everything that expires.

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::keys::{Key, read_u64};
use super::{
    DeviceId, OrBackend, Store, StoreError, decode_record, encode_record, tx, user_device,
};
use rendezvous_protocol::ids::UserId;

/// `challenges` and `tokens` value: `[user, device, expires]`.
#[derive(Serialize, Deserialize)]
struct StoredGrant(UserId, DeviceId, u64);

impl Store {
    /// Records a login challenge for a device, valid until `expires`.
    pub fn put_challenge(
        &self,
        challenge: [u8; 32],
        user: &UserId,
        device_key: DeviceId,
        expires: u64,
    ) -> Result<(), StoreError> {
        let rec = encode_record(&StoredGrant(user.clone(), device_key, expires));
        self.t().challenges.insert(challenge, rec).or_backend()?;
        Ok(())
    }

    /// Takes a challenge (single use: it is removed). The caller checks the expiry.
    pub fn take_challenge(
        &self,
        challenge: [u8; 32],
    ) -> Result<Option<(UserId, DeviceId, u64)>, StoreError> {
        match self.t().challenges.remove(challenge).or_backend()? {
            Some(v) => {
                let StoredGrant(user, device, expires) = decode_record(&v, "challenges")?;
                Ok(Some((user, device, expires)))
            }
            None => Ok(None),
        }
    }

    /// Records a session token (by its hash) for a registered device.
    pub fn put_token(
        &self,
        token_hash: [u8; 32],
        user: &UserId,
        device_key: DeviceId,
        expires: u64,
    ) -> Result<(), StoreError> {
        let t = self.t();
        let _lock = self.device_lock(user, &device_key);
        self.require_device(user, &device_key)?;
        let rec = encode_record(&StoredGrant(user.clone(), device_key, expires));
        let index = Key::new()
            .bytes(&user_device(user, &device_key))
            .bytes(&token_hash)
            .build();
        tx(
            (&t.tokens, &t.device_tokens).transaction(|(tokens, device_tokens)| {
                tokens.insert(&token_hash[..], rec.as_slice())?;
                device_tokens.insert(index.as_slice(), &[][..])?;
                Ok(())
            }),
        )
    }

    /// The owner and expiry of a session token. The caller checks the expiry.
    pub fn token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<(UserId, DeviceId, u64)>, StoreError> {
        match self.t().tokens.get(token_hash).or_backend()? {
            Some(v) => {
                let StoredGrant(user, device, expires) = decode_record(&v, "tokens")?;
                Ok(Some((user, device, expires)))
            }
            None => Ok(None),
        }
    }

    /// Deletes pins, challenges, tokens and link slots whose expiry is `<= now`; returns how
    /// many items were deleted.
    pub fn purge_expired(&self, now: u64) -> Result<u64, StoreError> {
        let t = self.t();
        let mut removed = 0u64;
        for item in t.pins.iter() {
            let (k, v) = item.or_backend()?;
            if read_u64(&v, "pins")? <= now {
                t.pins.remove(k).or_backend()?;
                removed += 1;
            }
        }
        for item in t.challenges.iter() {
            let (k, v) = item.or_backend()?;
            let StoredGrant(_, _, expires) = decode_record(&v, "challenges")?;
            if expires <= now {
                t.challenges.remove(k).or_backend()?;
                removed += 1;
            }
        }
        for item in t.tokens.iter() {
            let (k, v) = item.or_backend()?;
            let StoredGrant(user, device, expires) = decode_record(&v, "tokens")?;
            if expires <= now {
                let index = Key::new()
                    .bytes(&user_device(&user, &device))
                    .bytes(&k)
                    .build();
                tx(
                    (&t.tokens, &t.device_tokens).transaction(|(tokens, device_tokens)| {
                        tokens.remove(&k)?;
                        device_tokens.remove(index.as_slice())?;
                        Ok(())
                    }),
                )?;
                removed += 1;
            }
        }
        for item in t.links.iter() {
            let (k, v) = item.or_backend()?;
            let slot = super::link::decode_link(&v)?;
            if slot.expires <= now {
                t.links.remove(k).or_backend()?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

//! One-time pre keys of devices (`federation-spec/client-api.md` §4).
//!
//! Each device has at most [`MAX_PREKEYS`] unclaimed pre keys, handed out oldest first and once
//! each. The owner of every pre key id is kept after the claim (so a delivery sealed to it can be
//! filed in the right inbox) until the device is revoked.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::keys::Key;
use super::{
    Counter, DeviceId, OrBackend, Store, StoreError, abort, decode_record, encode_record, in_tx,
    tx, tx_counter, user_device,
};
use rendezvous_protocol::crypto::KeyId;
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::wire::SignedBytes;

/// Most unclaimed pre keys stored per device.
pub const MAX_PREKEYS: u64 = 1000;

/// `prekeys` value: `[key id, signed pre key]`.
#[derive(Serialize, Deserialize)]
struct StoredPrekey(KeyId, SignedBytes);

/// `prekey_owners` value: `[user, device]`.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct StoredOwner(UserId, DeviceId);

impl Store {
    /// Stores pre keys of a registered device; returns how many unclaimed pre keys the device
    /// has now.
    ///
    /// A key id already stored for this device (claimed or not) is skipped, so a retried upload
    /// is harmless and a claimed pre key never comes back. Errors (nothing stored):
    /// [`StoreError::Exists`] if a key id belongs to another device, [`StoreError::TooMany`]
    /// beyond [`MAX_PREKEYS`], [`StoreError::NotFound`] / [`StoreError::DeviceRevoked`].
    pub fn add_prekeys(
        &self,
        user: &UserId,
        device_key: DeviceId,
        prekeys: Vec<(KeyId, SignedBytes)>,
    ) -> Result<u64, StoreError> {
        let t = self.t();
        let _lock = self.device_lock(user, &device_key);
        self.require_device(user, &device_key)?;
        let prefix = user_device(user, &device_key);
        let owner = encode_record(&StoredOwner(user.clone(), device_key));
        let count_key = Counter::PrekeyCount.key(user, Some(&device_key));
        let seq_key = Counter::PrekeySeq.key(user, Some(&device_key));
        tx(
            (&t.prekeys, &t.prekey_owners, &t.prekey_ids, &t.counters).transaction(
                |(tx_prekeys, tx_owners, tx_ids, tx_counters)| {
                    let count = tx_counter(tx_counters, &count_key)?;
                    let mut seq = tx_counter(tx_counters, &seq_key)?;
                    let mut seen = HashSet::new();
                    let mut new = Vec::new();
                    for (id, key) in &prekeys {
                        if !seen.insert(*id) {
                            continue;
                        }
                        match tx_owners.get(&id.0[..])? {
                            Some(v) if v.as_ref() == owner.as_slice() => {}
                            Some(_) => return abort(StoreError::Exists),
                            None => new.push((id, key)),
                        }
                    }
                    let adding = new.len() as u64;
                    if count + adding > MAX_PREKEYS {
                        return abort(StoreError::TooMany {
                            limit: MAX_PREKEYS,
                            stored: count,
                            adding,
                        });
                    }
                    for (id, key) in new {
                        seq += 1;
                        let k = Key::new().bytes(&prefix).u64(seq).build();
                        tx_prekeys.insert(k, encode_record(&StoredPrekey(*id, key.clone())))?;
                        tx_owners.insert(&id.0[..], owner.as_slice())?;
                        tx_ids.insert(Key::new().bytes(&prefix).bytes(&id.0).build(), &[][..])?;
                    }
                    tx_counters.insert(count_key.as_slice(), &(count + adding).to_be_bytes())?;
                    tx_counters.insert(seq_key.as_slice(), &seq.to_be_bytes())?;
                    Ok(count + adding)
                },
            ),
        )
    }

    /// Number of unclaimed pre keys of a device.
    pub fn prekey_count(&self, user: &UserId, device_key: DeviceId) -> Result<u64, StoreError> {
        self.counter(&Counter::PrekeyCount.key(user, Some(&device_key)))
    }

    /// Takes the device's oldest unclaimed pre key (each is handed out once).
    pub fn claim_prekey(
        &self,
        user: &UserId,
        device_key: DeviceId,
    ) -> Result<Option<(KeyId, SignedBytes)>, StoreError> {
        let t = self.t();
        // Claims of one device are serialized by its lock, so the oldest key found by the scan
        // is still there in the transaction.
        let _lock = self.device_lock(user, &device_key);
        let Some(first) = t.prekeys.scan_prefix(user_device(user, &device_key)).next() else {
            return Ok(None);
        };
        let (k, _) = first.or_backend()?;
        let count_key = Counter::PrekeyCount.key(user, Some(&device_key));
        tx(
            (&t.prekeys, &t.counters).transaction(|(tx_prekeys, tx_counters)| {
                let Some(v) = tx_prekeys.remove(&k)? else {
                    return Ok(None);
                };
                let StoredPrekey(id, key) = in_tx(decode_record(&v, "prekeys"))?;
                let count = tx_counter(tx_counters, &count_key)?;
                tx_counters.insert(count_key.as_slice(), &count.saturating_sub(1).to_be_bytes())?;
                Ok(Some((id, key)))
            }),
        )
    }

    /// The device a pre key id belongs to (kept after the claim, removed on revocation).
    pub fn prekey_owner(&self, id: KeyId) -> Result<Option<(UserId, DeviceId)>, StoreError> {
        match self.t().prekey_owners.get(id.0).or_backend()? {
            Some(v) => {
                let StoredOwner(user, device) = decode_record(&v, "prekey_owners")?;
                Ok(Some((user, device)))
            }
            None => Ok(None),
        }
    }
}

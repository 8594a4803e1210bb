//! A user's devices: certificates, last-seen times and revocation
//! (`federation-spec/client-api.md` §3).

use serde::{Deserialize, Serialize};
use sled::Transactional;

use serde_bytes::ByteBuf;

use super::inbox::StoredItem;
use super::keys::{Key, KeyReader};
use super::users::user_key;
use super::{
    Counter, DeviceId, OrBackend, Store, StoreError, abort, decode_record, encode_record, tx,
    tx_counter, user_device,
};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::wire::SignedBytes;

/// `last_seen` is rewritten only when it moved by at least this many seconds.
pub const LAST_SEEN_GRANULARITY: u64 = 60;

/// A registered (not revoked) device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device's Ed25519 public key.
    pub device_key: DeviceId,
    /// The IK-signed device certificate.
    pub cert: SignedBytes,
    /// When the device was added (Unix seconds).
    pub created: u64,
    /// When the device was last seen (Unix seconds, to [`LAST_SEEN_GRANULARITY`]).
    pub last_seen: u64,
}

/// How often [`Store::add_device_within`] scans and locks again when devices were added
/// between its scan and its locks.
const LOCK_ATTEMPTS: usize = 8;

/// An add endorsed by another device: the endorser, and the inbox item (`kind`, `body`) filed
/// for every other active device.
#[derive(Debug, Clone, Copy)]
pub struct Endorsed<'a> {
    /// The endorsing device, which must still be active.
    pub endorser: DeviceId,
    /// The inbox item kind.
    pub kind: u8,
    /// The inbox item body.
    pub body: &'a [u8],
}

/// `devices` value: `[cert, created, last_seen]`.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredDevice(pub(super) SignedBytes, pub(super) u64, pub(super) u64);

impl Store {
    /// Adds a device to an existing user.
    ///
    /// Errors: [`StoreError::NotFound`] (no such user), [`StoreError::DeviceExists`],
    /// [`StoreError::DeviceRevoked`] (a revoked key never comes back).
    pub fn add_device(
        &self,
        user: &UserId,
        device_key: DeviceId,
        cert: &SignedBytes,
        now: u64,
    ) -> Result<(), StoreError> {
        self.add_device_within(
            user,
            device_key,
            cert,
            now,
            crate::limits::MAX_DEVICES,
            None,
        )
    }

    /// [`Store::add_device`], refused [`StoreError::Quota`] when the user has `max_devices`
    /// active devices already. With `endorsed`, the endorser must still be an active device
    /// ([`StoreError::EndorserInactive`] otherwise) and the notice is filed, in the same
    /// transaction, in the inbox of every other active device (`client-api.md` §3).
    pub fn add_device_within(
        &self,
        user: &UserId,
        device_key: DeviceId,
        cert: &SignedBytes,
        now: u64,
        max_devices: u64,
        endorsed: Option<Endorsed<'_>>,
    ) -> Result<(), StoreError> {
        for _ in 0..LOCK_ATTEMPTS {
            let before = self.device_ids(user)?;
            // The user's lock keeps two adds from both passing the count; the devices' locks
            // keep their other writers (a revocation) out while their inboxes are written.
            let _locks = self.user_and_devices_lock(user, before.iter().chain([&device_key]));
            let others = self.device_ids(user)?;
            if others.iter().any(|d| !before.contains(d)) {
                // A device was added between the scan and the locks: lock it too.
                continue;
            }
            if others.len() as u64 >= max_devices {
                return Err(StoreError::Quota {
                    quota: "devices_per_user",
                    limit: max_devices,
                });
            }
            return self.insert_device(user, device_key, cert, now, &others, endorsed);
        }
        Err(StoreError::Backend(
            "devices kept changing while a device was added".into(),
        ))
    }

    /// The transaction of [`Store::add_device_within`]; the caller holds the locks of the user
    /// and of `others`, the user's active devices.
    fn insert_device(
        &self,
        user: &UserId,
        device_key: DeviceId,
        cert: &SignedBytes,
        now: u64,
        others: &[DeviceId],
        endorsed: Option<Endorsed<'_>>,
    ) -> Result<(), StoreError> {
        let t = self.t();
        let ukey = user_key(user);
        let dkey = user_device(user, &device_key);
        let rec = encode_record(&StoredDevice(cert.clone(), now, now));
        let notice = endorsed.map(|e| {
            let item = encode_record(&StoredItem(e.kind, ByteBuf::from(e.body.to_vec())));
            (user_device(user, &e.endorser), item)
        });
        let inboxes: Vec<_> = others
            .iter()
            .map(|d| (user_device(user, d), Counter::InboxSeq.key(user, Some(d))))
            .collect();
        tx(
            (&t.users, &t.devices, &t.revoked, &t.inbox, &t.counters).transaction(
                |(users, devices, revoked, inbox, counters)| {
                    if users.get(ukey.as_slice())?.is_none() {
                        return abort(StoreError::NotFound);
                    }
                    if revoked.get(dkey.as_slice())?.is_some() {
                        return abort(StoreError::DeviceRevoked);
                    }
                    if devices.get(dkey.as_slice())?.is_some() {
                        return abort(StoreError::DeviceExists);
                    }
                    if let Some((endorser, item)) = &notice {
                        if devices.get(endorser.as_slice())?.is_none() {
                            return abort(StoreError::EndorserInactive);
                        }
                        for (prefix, seq_key) in &inboxes {
                            let seq = tx_counter(counters, seq_key)? + 1;
                            inbox.insert(
                                Key::new().bytes(prefix).u64(seq).build(),
                                item.as_slice(),
                            )?;
                            counters.insert(seq_key.as_slice(), &seq.to_be_bytes())?;
                        }
                    }
                    devices.insert(dkey.as_slice(), rec.as_slice())?;
                    Ok(())
                },
            ),
        )
    }

    /// The user's active devices' keys.
    pub(super) fn device_ids(&self, user: &UserId) -> Result<Vec<DeviceId>, StoreError> {
        let mut out = Vec::new();
        for k in self.t().devices.scan_prefix(user_key(user)).keys() {
            let k = k.or_backend()?;
            let mut r = KeyReader::new(&k, "devices");
            r.skip_id()?;
            out.push(DeviceId::from_bytes(r.array::<32>()?));
            r.end()?;
        }
        Ok(out)
    }

    /// Every Device Key ever revoked for the user.
    pub fn revoked_devices(&self, user: &UserId) -> Result<Vec<DeviceId>, StoreError> {
        let mut out = Vec::new();
        for k in self.t().revoked.scan_prefix(user_key(user)).keys() {
            let k = k.or_backend()?;
            let mut r = KeyReader::new(&k, "revoked");
            r.skip_id()?;
            out.push(DeviceId::from_bytes(r.array::<32>()?));
            r.end()?;
        }
        Ok(out)
    }

    /// The user's registered devices, in device-key order.
    pub fn devices(&self, user: &UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.t().devices.scan_prefix(user_key(user)) {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, "devices");
            r.skip_id()?;
            let device_key = DeviceId::from_bytes(r.array::<32>()?);
            r.end()?;
            let StoredDevice(cert, created, last_seen) = decode_record(&v, "devices")?;
            out.push(DeviceRecord {
                device_key,
                cert,
                created,
                last_seen,
            });
        }
        Ok(out)
    }

    /// Records that the device was seen at `now`; writes only if `last_seen` moves by at least
    /// [`LAST_SEEN_GRANULARITY`]. A device that is not registered is left alone.
    pub fn touch_device(
        &self,
        user: &UserId,
        device_key: DeviceId,
        now: u64,
    ) -> Result<(), StoreError> {
        let dkey = user_device(user, &device_key);
        let devices = &self.t().devices;
        let Some(v) = devices.get(&dkey).or_backend()? else {
            return Ok(());
        };
        let mut rec: StoredDevice = decode_record(&v, "devices")?;
        if now.saturating_sub(rec.2) < LAST_SEEN_GRANULARITY {
            return Ok(());
        }
        rec.2 = now;
        // Swap only the value we read: a concurrent revocation (which removes the record) or
        // touch wins, and the record is never resurrected.
        let _ = devices
            .compare_and_swap(&dkey, Some(v), Some(encode_record(&rec)))
            .or_backend()?;
        Ok(())
    }

    /// Whether the device is registered and not revoked.
    pub fn device_active(&self, user: &UserId, device_key: DeviceId) -> Result<bool, StoreError> {
        self.t()
            .devices
            .contains_key(user_device(user, &device_key))
            .or_backend()
    }

    /// `Ok` if the device is registered; [`StoreError::DeviceRevoked`] or
    /// [`StoreError::NotFound`] otherwise. Callers hold the device's lock.
    pub(super) fn require_device(
        &self,
        user: &UserId,
        device_key: &DeviceId,
    ) -> Result<(), StoreError> {
        let dkey = user_device(user, device_key);
        if self.t().devices.contains_key(&dkey).or_backend()? {
            Ok(())
        } else if self.t().revoked.contains_key(&dkey).or_backend()? {
            Err(StoreError::DeviceRevoked)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Revokes a device key forever and, in the same transaction, deletes the device's tokens,
    /// unclaimed pre keys (and the routing of its claimed ones), inbox, cursors, push endpoint
    /// and counters. Returns whether the device was registered.
    pub fn revoke_device(&self, user: &UserId, device_key: DeviceId) -> Result<bool, StoreError> {
        let t = self.t();
        // Writers to this device's data hold the same lock and check that the device is
        // registered, so nothing is added between the scans below and the transaction.
        let _lock = self.device_lock(user, &device_key);
        let prefix = user_device(user, &device_key);
        let keys_of = |tree: &sled::Tree| -> Result<Vec<sled::IVec>, StoreError> {
            tree.scan_prefix(&prefix)
                .keys()
                .collect::<Result<Vec<_>, _>>()
                .or_backend()
        };
        let device_tokens = keys_of(&t.device_tokens)?;
        let prekeys = keys_of(&t.prekeys)?;
        let prekey_ids = keys_of(&t.prekey_ids)?;
        let inbox = keys_of(&t.inbox)?;
        let cursors = keys_of(&t.cursors)?;
        let counters = [Counter::PrekeyCount, Counter::PrekeySeq, Counter::InboxSeq]
            .map(|c| c.key(user, Some(&device_key)));
        let tail = |k: &sled::IVec, n: usize| -> Result<Vec<u8>, StoreError> {
            k.get(prefix.len()..)
                .filter(|rest| rest.len() == n)
                .map(<[u8]>::to_vec)
                .ok_or(StoreError::Corrupt { table: "index" })
        };
        let token_hashes = device_tokens
            .iter()
            .map(|k| tail(k, 32))
            .collect::<Result<Vec<_>, _>>()?;
        let key_ids = prekey_ids
            .iter()
            .map(|k| tail(k, 16))
            .collect::<Result<Vec<_>, _>>()?;

        tx((
            &t.devices,
            &t.revoked,
            &t.tokens,
            &t.device_tokens,
            &t.prekeys,
            &t.prekey_owners,
            &t.prekey_ids,
            &t.inbox,
            &t.cursors,
            &t.push,
            &t.counters,
        )
            .transaction(
                |(
                    tx_devices,
                    tx_revoked,
                    tx_tokens,
                    tx_device_tokens,
                    tx_prekeys,
                    tx_prekey_owners,
                    tx_prekey_ids,
                    tx_inbox,
                    tx_cursors,
                    tx_push,
                    tx_counters,
                )| {
                    let existed = tx_devices.remove(prefix.as_slice())?.is_some();
                    tx_revoked.insert(prefix.as_slice(), &[][..])?;
                    for (index_key, hash) in device_tokens.iter().zip(&token_hashes) {
                        tx_device_tokens.remove(index_key)?;
                        tx_tokens.remove(hash.as_slice())?;
                    }
                    for k in &prekeys {
                        tx_prekeys.remove(k)?;
                    }
                    for (index_key, id) in prekey_ids.iter().zip(&key_ids) {
                        tx_prekey_ids.remove(index_key)?;
                        tx_prekey_owners.remove(id.as_slice())?;
                    }
                    for k in &inbox {
                        tx_inbox.remove(k)?;
                    }
                    for k in &cursors {
                        tx_cursors.remove(k)?;
                    }
                    tx_push.remove(prefix.as_slice())?;
                    for k in &counters {
                        tx_counters.remove(k.as_slice())?;
                    }
                    Ok(existed)
                },
            ))
    }
}

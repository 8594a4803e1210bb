//! Registration pins and user accounts (`federation-spec/client-api.md` §2).

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::devices::StoredDevice;
use super::inbox::tx_inbox_push;
use super::keys::{Key, KeyReader, read_u64};
use super::{
    DeviceId, OrBackend, Store, StoreError, abort, decode_record, encode_record, in_tx, tx,
    user_device,
};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::wire::SignedBytes;

/// A local user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's IK-signed registration (`protocol.md` §3.5).
    pub registration: SignedBytes,
    /// Whether the operator disabled the account.
    pub disabled: bool,
    /// When the user registered (Unix seconds).
    pub created: u64,
}

impl UserRecord {
    /// The Identity Key of the stored registration (checked when the user registered).
    pub fn identity_key(
        &self,
    ) -> Result<rendezvous_protocol::crypto::IdentityPublicKey, StoreError> {
        rendezvous_protocol::wire::Signed::<rendezvous_protocol::certs::Registration>::from_signed_bytes(
            self.registration.clone(),
        )
        .and_then(|s| s.decode_unverified())
        .map(|r| r.identity_key)
        .map_err(|_| StoreError::Corrupt { table: "users" })
    }
}

/// `users` value: `[registration, disabled, created]`.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredUser(pub(super) SignedBytes, pub(super) bool, pub(super) u64);

impl StoredUser {
    fn record(self) -> UserRecord {
        UserRecord {
            registration: self.0,
            disabled: self.1,
            created: self.2,
        }
    }
}

/// The inbox items a rotation files (`client-api.md` §3): one of `kind` per other active device,
/// `(device, body)`.
#[derive(Debug, Clone, Copy)]
pub struct RotationNotices<'a> {
    /// The inbox item kind.
    pub kind: u8,
    /// Each device's item body.
    pub items: &'a [(DeviceId, Vec<u8>)],
}

pub(super) fn user_key(user: &UserId) -> Vec<u8> {
    Key::new().id(user.as_str()).build()
}

impl Store {
    /// Records a one-time registration pin (by its hash), valid until `expires` (Unix seconds,
    /// exclusive).
    pub fn add_pin(&self, pin_hash: [u8; 32], expires: u64) -> Result<(), StoreError> {
        self.t()
            .pins
            .insert(pin_hash, &expires.to_be_bytes())
            .or_backend()?;
        Ok(())
    }

    /// Registers `user` with its first device, consuming the pin, and appends `entry` (the
    /// user's kind 1 directory entry, `directory.md` §2.2) to the directory, all in one
    /// transaction.
    ///
    /// Fails with [`StoreError::PinInvalid`] if the pin is unknown, used or expired (`expires <=
    /// now`), and with [`StoreError::UserExists`] if the user exists; either way nothing is
    /// written and the pin is left as it was.
    // One argument per row written: a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn register_user(
        &self,
        pin_hash: [u8; 32],
        user: &UserId,
        registration: &SignedBytes,
        device_key: DeviceId,
        device_cert: &SignedBytes,
        entry: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        let t = self.t();
        let ukey = user_key(user);
        let dkey = user_device(user, &device_key);
        let urec = encode_record(&StoredUser(registration.clone(), false, now));
        let drec = encode_record(&StoredDevice(device_cert.clone(), now, now));
        tx(
            (&t.pins, &t.users, &t.devices, &t.revoked, &t.directory).transaction(
                |(pins, users, devices, revoked, directory)| {
                    let Some(expires) = pins.remove(&pin_hash[..])? else {
                        return abort(StoreError::PinInvalid);
                    };
                    if in_tx(read_u64(&expires, "pins"))? <= now {
                        return abort(StoreError::PinInvalid);
                    }
                    if users.get(ukey.as_slice())?.is_some() {
                        return abort(StoreError::UserExists);
                    }
                    if revoked.get(dkey.as_slice())?.is_some() {
                        return abort(StoreError::DeviceRevoked);
                    }
                    users.insert(ukey.as_slice(), urec.as_slice())?;
                    devices.insert(dkey.as_slice(), drec.as_slice())?;
                    // Test hook: the disk fails between the user's rows and the entry's.
                    #[cfg(any(test, feature = "test-hooks"))]
                    in_tx(self.injected_directory_fault())?;
                    super::directory::tx_append(directory, user, entry)?;
                    Ok(())
                },
            ),
        )
    }

    /// Rotates `user`'s Identity Key (`directory.md` §8): replaces the stored registration
    /// (which must still be `old`) with `registration`, the certificate of every active device
    /// with the one in `certs` (which must name exactly the active devices), and appends
    /// `entry` (the kind 2 directory entry), and files `notices` in the named devices' inboxes
    /// (each must be one of the active devices), in one transaction. Returns the entry's index.
    ///
    /// Fails with [`StoreError::NotFound`] if there is no such user and with
    /// [`StoreError::RotationStale`] if the registration or the device set is no longer the
    /// one given; either way nothing is written.
    pub fn rotate_identity(
        &self,
        user: &UserId,
        old: &SignedBytes,
        registration: &SignedBytes,
        certs: &[(DeviceId, SignedBytes)],
        entry: &[u8],
        notices: RotationNotices<'_>,
    ) -> Result<u64, StoreError> {
        let ids: Vec<DeviceId> = certs.iter().map(|(d, _)| *d).collect();
        // The user's lock keeps adds out, the devices' locks revocations: the device set read
        // below stays the set until the transaction ends.
        let _locks = self.user_and_devices_lock(user, ids.iter());
        let mut active = self.device_ids(user)?;
        let mut given = ids.clone();
        active.sort();
        given.sort();
        if active != given {
            return Err(StoreError::RotationStale);
        }
        if notices.items.iter().any(|(d, _)| !ids.contains(d)) {
            return Err(StoreError::RotationStale);
        }
        let t = self.t();
        let ukey = user_key(user);
        tx(
            (&t.users, &t.devices, &t.inbox, &t.counters, &t.directory).transaction(
                |(users, devices, inbox, counters, directory)| {
                    let Some(v) = users.get(ukey.as_slice())? else {
                        return abort(StoreError::NotFound);
                    };
                    let stored = in_tx(decode_record::<StoredUser>(&v, "users"))?;
                    if stored.0 != *old {
                        return abort(StoreError::RotationStale);
                    }
                    for (device, cert) in certs {
                        let dkey = user_device(user, device);
                        let Some(v) = devices.get(dkey.as_slice())? else {
                            return abort(StoreError::RotationStale);
                        };
                        let StoredDevice(_, created, last_seen) =
                            in_tx(decode_record::<StoredDevice>(&v, "devices"))?;
                        let rec = StoredDevice(cert.clone(), created, last_seen);
                        devices.insert(dkey.as_slice(), encode_record(&rec))?;
                    }
                    let new = StoredUser(registration.clone(), stored.1, stored.2);
                    users.insert(ukey.as_slice(), encode_record(&new))?;
                    for (device, body) in notices.items {
                        tx_inbox_push(inbox, counters, user, device, notices.kind, body)?;
                    }
                    // Test hook: the disk fails between the rotation's rows and the entry's.
                    #[cfg(any(test, feature = "test-hooks"))]
                    in_tx(self.injected_directory_fault())?;
                    super::directory::tx_append(directory, user, entry)
                },
            ),
        )
    }

    /// The user's record.
    pub fn user(&self, user: &UserId) -> Result<Option<UserRecord>, StoreError> {
        match self.t().users.get(user_key(user)).or_backend()? {
            Some(v) => Ok(Some(decode_record::<StoredUser>(&v, "users")?.record())),
            None => Ok(None),
        }
    }

    /// Every local user, in key order.
    pub fn users(&self) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.t().users.iter() {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, "users");
            let user = r.id::<UserId>()?;
            r.end()?;
            out.push((user, decode_record::<StoredUser>(&v, "users")?.record()));
        }
        Ok(out)
    }

    /// Disables or enables a user; returns whether the user exists.
    pub fn set_disabled(&self, user: &UserId, disabled: bool) -> Result<bool, StoreError> {
        let ukey = user_key(user);
        tx(self.t().users.transaction(|users| {
            let Some(v) = users.get(ukey.as_slice())? else {
                return Ok(false);
            };
            let mut rec = in_tx(decode_record::<StoredUser>(&v, "users"))?;
            if rec.1 != disabled {
                rec.1 = disabled;
                users.insert(ukey.as_slice(), encode_record(&rec))?;
            }
            Ok(true)
        }))
    }
}

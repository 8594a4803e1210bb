//! Making a batch of Topic Keys and sealing each to one pre key of every other device
//! (`federation-spec/devices.md` §3).

use std::collections::{BTreeMap, BTreeSet};

use super::delivery::{TopicKeyPlaintext, delivery_context};
use super::{ClaimedPreKey, Delivery, MAX_BATCH, TopicKeyError, TopicKeyUpload};
use crate::certs::TopicKeyCert;
use crate::crypto::hpke::{self, SealPurpose, Suite};
use crate::crypto::{DevicePublicKey, IdentityKey, KemPublicKey, Randomness, TopicKey};
use crate::devices::directory::{DeviceDirectory, MAX_DEVICES};
use crate::devices::{Secret32, encode_secret};
use crate::wire::signed::SignedError;
use crate::wire::{Signed, VERSION};

/// A batch of new Topic Keys: `uploads[i]` belongs to `keys[i]`.
#[derive(Debug)]
pub struct TopicKeyBatch {
    /// Certificates and deliveries, to upload to the homeserver.
    pub uploads: Vec<TopicKeyUpload>,
    /// The private Topic Keys, to keep in this device's keystore.
    pub keys: Vec<TopicKey>,
}

/// Makes `count` Topic Keys and seals each to one pre key of every other device of the user.
///
/// `claimed` is what the homeserver returned when asked for `count` pre keys of each other device.
/// Every entry is checked here, not trusted: the device certificate must hold in `directory`
/// (IK signature, this user, not revoked), the pre key must be signed by that certificate's Device
/// Key and name this user, and no pre key may appear twice. Every active device in `directory`
/// other than `own_device` must get exactly `count` pre keys, so the homeserver can neither add a
/// key of its own nor leave a device out.
pub fn make_batch(
    identity: &IdentityKey,
    directory: &DeviceDirectory,
    own_device: &DevicePublicKey,
    claimed: Vec<ClaimedPreKey>,
    count: usize,
    created: u64,
    rng: &mut Randomness<'_>,
) -> Result<TopicKeyBatch, TopicKeyError> {
    if identity.public() != directory.identity_key() {
        return Err(TopicKeyError::IdentityMismatch {
            expected: directory.identity_key().key_id(),
            got: identity.public().key_id(),
        });
    }
    if count == 0 || count > MAX_BATCH {
        return Err(TopicKeyError::BadCount {
            limit: MAX_BATCH,
            got: count,
        });
    }
    let user = directory.user();
    let per_device = check_claimed_exactly(directory, own_device, claimed, count)?;

    // All keys first, then the boxes: a Topic Key does not depend on how many devices there are.
    let suite = Suite::X25519Sha256ChaCha20Poly1305;
    let keys: Vec<TopicKey> = (0..count)
        .map(|_| TopicKey::generate_with(suite, rng))
        .collect();
    let mut uploads = Vec::with_capacity(count);
    for (i, key) in keys.iter().enumerate() {
        let cert = Signed::sign(
            TopicKeyCert::new(user.clone(), key.public(), created),
            identity,
        );
        let tk_id = key.public().key_id();
        let plaintext = encode_secret(&TopicKeyPlaintext {
            version: VERSION,
            suite: suite.id(),
            signing_seed: Secret32(key.signing().seed()),
            kem_secret: Secret32(key.kem().to_bytes()),
        })?;
        let mut deliveries = Vec::with_capacity(per_device.len());
        for (_, prekeys) in per_device.values() {
            // Each device's pre key `i` is used for Topic Key `i` only.
            let Some(prekey) = prekeys.get(i) else {
                continue;
            };
            let sealed = hpke::seal(
                prekey,
                SealPurpose::TopicKeyDelivery,
                &delivery_context(user, &tk_id),
                None,
                &plaintext,
                rng,
            )
            .map_err(TopicKeyError::Crypto)?;
            deliveries.push(Delivery {
                prekey_id: prekey.key_id(),
                sealed,
            });
        }
        uploads.push(TopicKeyUpload { cert, deliveries });
    }
    Ok(TopicKeyBatch { uploads, keys })
}

/// Checks every claimed pre key's chain ([`check_claimed`]) and that every active device in
/// `directory` other than `own_device` got exactly `count` of them (`devices.md` §3.1 step 2.5):
/// the homeserver can neither add a key of its own nor leave a device out.
#[allow(clippy::type_complexity)]
pub(crate) fn check_claimed_exactly(
    directory: &DeviceDirectory,
    own_device: &DevicePublicKey,
    claimed: Vec<ClaimedPreKey>,
    count: usize,
) -> Result<BTreeMap<[u8; 32], (DevicePublicKey, Vec<KemPublicKey>)>, TopicKeyError> {
    let per_device = check_claimed(directory, own_device, claimed)?;
    for device in directory.devices() {
        if device.device_key != *own_device
            && !per_device.contains_key(device.device_key.as_bytes())
        {
            return Err(TopicKeyError::MissingDevice {
                device: device.device_key.key_id(),
            });
        }
    }
    for (device, prekeys) in per_device.values() {
        if prekeys.len() != count {
            return Err(TopicKeyError::PreKeyCount {
                device: device.key_id(),
                expected: count,
                got: prekeys.len(),
            });
        }
    }

    Ok(per_device)
}

/// Checks every claimed pre key's chain; groups the pre keys by device.
#[allow(clippy::type_complexity)]
fn check_claimed(
    directory: &DeviceDirectory,
    own_device: &DevicePublicKey,
    claimed: Vec<ClaimedPreKey>,
) -> Result<BTreeMap<[u8; 32], (DevicePublicKey, Vec<KemPublicKey>)>, TopicKeyError> {
    let user = directory.user();
    let mut seen = BTreeSet::new();
    let mut per_device: BTreeMap<[u8; 32], (DevicePublicKey, Vec<KemPublicKey>)> = BTreeMap::new();
    for c in claimed {
        // IK → device certificate for this user, not revoked.
        let device = directory.check_cert(c.device_cert)?;
        let dk = &device.device_key;
        if dk == own_device {
            return Err(TopicKeyError::OwnDevice);
        }
        // DK → pre key for this user.
        let prekey = c.prekey.verify(dk).map_err(|e| match e {
            SignedError::BadSignature => TopicKeyError::PreKeySignature {
                device: dk.key_id(),
            },
            SignedError::Wire(w) => TopicKeyError::Malformed(w),
        })?;
        if prekey.user != *user {
            return Err(TopicKeyError::PreKeyWrongUser {
                expected: user.clone(),
                got: prekey.user.clone(),
            });
        }
        let kem = prekey.kem_public()?;
        if !seen.insert(kem.key_id()) {
            return Err(TopicKeyError::DuplicatePreKey {
                prekey: kem.key_id(),
            });
        }
        if !per_device.contains_key(dk.as_bytes()) && per_device.len() + 1 >= MAX_DEVICES {
            return Err(TopicKeyError::TooManyDevices {
                limit: MAX_DEVICES,
                got: per_device.len() + 2,
            });
        }
        per_device
            .entry(dk.to_bytes())
            .or_insert_with(|| (dk.clone(), Vec::new()))
            .1
            .push(kem);
    }
    Ok(per_device)
}

//! Delivering a rotated Identity Key to the user's other devices (`directory.md` §8,
//! `devices.md` §3.3).
//!
//! The device that rotates claims one Device Pre Key (DPK) of every other active device and
//! checks each exactly as a Topic Key batch does ([`make_identity_deliveries`]): the device
//! certificate holds under the *current* (old) Identity Key, the pre key is signed by that
//! device, every other active device gets exactly one, so the homeserver can neither add a key of
//! its own nor leave a device out. The new IK's seed is sealed to each with HPKE, purpose
//! [`SealPurpose::IdentityDelivery`], context `[user, new IK]`. The delivery travels as a
//! [`Delivery`] (`[1, prekey_id, sealed]`) with the signed rotation; the receiving device opens
//! it ([`open_identity_delivery`]) and checks that the key it got is the rotation's new key.

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::topic_keys::{ClaimedPreKey, Delivery, TopicKeyError, check_claimed_exactly};
use super::{DeviceDirectory, Secret32, encode_secret};
use crate::crypto::hpke::{self, SealPurpose};
use crate::crypto::{
    CryptoError, DevicePublicKey, IdentityKey, IdentityPublicKey, KemSecretKey, KeyId, Randomness,
};
use crate::directory::{IdentityRotation, SignedIdentityRotation};
use crate::ids::UserId;
use crate::wire::{VERSION, WireError, decode_versioned};

/// Length bound of the plaintext `[1, bstr32]`.
const PLAINTEXT_MAX_LEN: usize = 64;

/// Why identity deliveries could not be made, or one was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityDeliveryError {
    /// The claimed pre keys do not hold (a chain, a device left out, a key added or repeated).
    #[error("claimed pre keys refused: {0}")]
    PreKeys(#[from] TopicKeyError),
    /// The rotation does not verify.
    #[error("{0}")]
    Rotation(String),
    /// The rotation is not from the key the device set is certified under, or not to the key
    /// given.
    #[error("the rotation is from {got}, the device set's identity key is {expected}")]
    NotFromCurrentKey {
        /// The device set's IK id.
        expected: KeyId,
        /// The rotation's old key id.
        got: KeyId,
    },
    /// The new key given is not the rotation's new key.
    #[error("the rotation is to {expected}, the key given is {got}")]
    NotToNewKey {
        /// The rotation's new key id.
        expected: KeyId,
        /// The given key's id.
        got: KeyId,
    },
    /// The rotation names another user.
    #[error("the rotation is for {got}, expected {expected}")]
    WrongUser {
        /// The user expected.
        expected: UserId,
        /// The user named.
        got: UserId,
    },
    /// The delivery is addressed to another pre key.
    #[error("delivery is for pre key {got}, not {expected}")]
    WrongPreKey {
        /// This device's pre key.
        expected: KeyId,
        /// The pre key it names.
        got: KeyId,
    },
    /// The delivery did not open: another rotation, user or pre key, or tampering.
    #[error("identity delivery does not open")]
    OpenFailed,
    /// The delivered key is not the rotation's new key.
    #[error("delivered identity key {got} is not the rotation's new key {expected}")]
    KeyMismatch {
        /// The rotation's new key id.
        expected: KeyId,
        /// The delivered key's id.
        got: KeyId,
    },
    /// Bytes that are not a well-formed plaintext.
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    /// Sealing failed.
    #[error("crypto: {0}")]
    Crypto(CryptoError),
}

/// `[1, identity_seed]`: inside the delivery's box.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct IdentityPlaintext {
    version: u8,
    identity_seed: Secret32,
}

/// The HPKE context: the user and the new Identity Key.
fn context<'a>(user: &'a UserId, new: &'a IdentityPublicKey) -> [&'a [u8]; 2] {
    [user.as_str().as_bytes(), new.as_bytes()]
}

fn verified(rotation: &SignedIdentityRotation) -> Result<IdentityRotation, IdentityDeliveryError> {
    rotation
        .verify()
        .map_err(|e| IdentityDeliveryError::Rotation(e.to_string()))
}

/// Seals `new_identity` to one claimed pre key of every other active device of the user.
///
/// `directory` is the device set under the current (old) Identity Key, which `rotation` must
/// rotate from (for `directory`'s user) to `new_identity`. `claimed` is what the homeserver
/// returned for one pre key of each other device; it is checked as [`super::make_batch`] checks
/// a batch of one. Returns one [`Delivery`] per other device.
pub fn make_identity_deliveries(
    rotation: &SignedIdentityRotation,
    new_identity: &IdentityKey,
    directory: &DeviceDirectory,
    own_device: &DevicePublicKey,
    claimed: Vec<ClaimedPreKey>,
    rng: &mut Randomness<'_>,
) -> Result<Vec<Delivery>, IdentityDeliveryError> {
    let r = verified(rotation)?;
    let user = directory.user();
    if r.user != *user {
        return Err(IdentityDeliveryError::WrongUser {
            expected: user.clone(),
            got: r.user,
        });
    }
    if r.old_identity_key != *directory.identity_key() {
        return Err(IdentityDeliveryError::NotFromCurrentKey {
            expected: directory.identity_key().key_id(),
            got: r.old_identity_key.key_id(),
        });
    }
    if r.new_identity_key != *new_identity.public() {
        return Err(IdentityDeliveryError::NotToNewKey {
            expected: r.new_identity_key.key_id(),
            got: new_identity.public().key_id(),
        });
    }
    // devices.md §3.1 step 2, with n = 1.
    let per_device = check_claimed_exactly(directory, own_device, claimed, 1)?;
    let plaintext = encode_secret(&IdentityPlaintext {
        version: VERSION,
        identity_seed: Secret32(new_identity.seed()),
    })?;
    let mut out = Vec::with_capacity(per_device.len());
    for (_, prekeys) in per_device.values() {
        for prekey in prekeys {
            let sealed = hpke::seal(
                prekey,
                SealPurpose::IdentityDelivery,
                &context(user, new_identity.public()),
                None,
                &plaintext,
                rng,
            )
            .map_err(IdentityDeliveryError::Crypto)?;
            out.push(Delivery {
                prekey_id: prekey.key_id(),
                sealed,
            });
        }
    }
    Ok(out)
}

/// Opens an identity delivery with the private key of the pre key it was sealed to, and checks
/// that the key inside is `rotation`'s new key for `user`. The caller checks that the rotation is
/// from the key it holds (`directory.md` §8) before it replaces anything.
pub fn open_identity_delivery(
    prekey_secret: &KemSecretKey,
    user: &UserId,
    rotation: &SignedIdentityRotation,
    delivery: &Delivery,
) -> Result<IdentityKey, IdentityDeliveryError> {
    let r = verified(rotation)?;
    if r.user != *user {
        return Err(IdentityDeliveryError::WrongUser {
            expected: user.clone(),
            got: r.user,
        });
    }
    let prekey_id = prekey_secret.public().key_id();
    for got in [delivery.prekey_id, delivery.sealed.recipient] {
        if got != prekey_id {
            return Err(IdentityDeliveryError::WrongPreKey {
                expected: prekey_id,
                got,
            });
        }
    }
    let plaintext = hpke::open(
        prekey_secret,
        &delivery.sealed,
        SealPurpose::IdentityDelivery,
        &context(user, &r.new_identity_key),
        None,
    )
    .map_err(|_| IdentityDeliveryError::OpenFailed)?;
    let p: IdentityPlaintext = decode_versioned(&plaintext, PLAINTEXT_MAX_LEN)?;
    let key = IdentityKey::from_seed(&p.identity_seed.0);
    if *key.public() != r.new_identity_key {
        return Err(IdentityDeliveryError::KeyMismatch {
            expected: r.new_identity_key.key_id(),
            got: key.public().key_id(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests;

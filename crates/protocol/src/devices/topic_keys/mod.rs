//! Topic Key batches (`federation-spec/devices.md` §3).
//!
//! A device makes Topic Keys (TK) ahead of time so that topic creators can claim one per member
//! at once, even when all of the member's devices are offline. For each TK of a batch:
//!
//! - the Identity Key signs a [`TopicKeyCert`] (`[1, user, signing key, suite, kem key, created]`),
//!   which the homeserver hands to one topic creator or admin. It carries no device information.
//! - for every *other* device of the user, the private TK is sealed with HPKE to one Device Pre Key
//!   (DPK) of that device: one DPK per TK per device, purpose
//!   [`SealPurpose::TopicKeyDelivery`], context `[user, TK id]`. Binding the TK id means a
//!   delivery cannot be presented as the private key of another certificate.
//!
//! The DPKs come from the homeserver, which is not trusted with keys: the making device checks
//! each chain IK → device certificate for this user → DK-signed pre key for this user itself
//! ([`make_batch`]), and refuses anything else. The receiving device opens its delivery with the
//! DPK's private key and checks that the key it got is the certified one ([`open_delivery`]).
//!
//! [`batch`] makes the keys and their deliveries; [`delivery`] holds the wire forms the homeserver
//! stores and routes, and opens them on the receiving device.

mod batch;
mod delivery;

pub(crate) use batch::check_claimed_exactly;
pub use batch::{TopicKeyBatch, make_batch};
pub use delivery::{Delivery, TopicKeyUpload, open_delivery};

use crate::certs::{DeviceCert, PreKey, TopicKeyCert};
use crate::crypto::{CryptoError, IdentityPublicKey, KeyId};
use crate::ids::UserId;
use crate::wire::signed::SignedError;
use crate::wire::{Signed, Verified, WireError};

use super::directory::{DirectoryError, MAX_DEVICES};

/// The most Topic Keys made in one batch.
pub const MAX_BATCH: usize = 128;
/// Largest encoded [`Delivery`] accepted.
pub const DELIVERY_MAX_LEN: usize = 512;
/// Largest encoded [`TopicKeyUpload`] accepted: a certificate and one delivery per other device.
pub const UPLOAD_MAX_LEN: usize = 1024 + MAX_DEVICES * DELIVERY_MAX_LEN;
/// Length of the CBOR plaintext of a delivery (`[1, suite, bstr32, bstr32]`, suite < 24).
const PLAINTEXT_MAX_LEN: usize = 128;

/// Why a batch could not be made, or an upload or delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicKeyError {
    /// The Identity Key given is not the one the directory holds for the user.
    #[error("identity key {got} is not the user's identity key {expected}")]
    IdentityMismatch {
        /// The directory's Identity Key id.
        expected: KeyId,
        /// The id of the key given.
        got: KeyId,
    },
    /// The batch size is 0 or above [`MAX_BATCH`].
    #[error("batch of {got} topic keys; allowed 1..={limit}")]
    BadCount {
        /// [`MAX_BATCH`].
        limit: usize,
        /// Size asked for.
        got: usize,
    },
    /// A claimed pre key came with a device certificate that does not hold.
    #[error("device certificate refused: {0}")]
    DeviceCert(#[from] DirectoryError),
    /// A pre key was not signed by the Device Key its certificate names (for example a key the
    /// homeserver made itself).
    #[error("pre key not signed by device {device}")]
    PreKeySignature {
        /// The device the pre key claimed to come from.
        device: KeyId,
    },
    /// A pre key names another user.
    #[error("pre key is for {got}, expected {expected}")]
    PreKeyWrongUser {
        /// The user whose keys these should be.
        expected: UserId,
        /// The user the pre key names.
        got: UserId,
    },
    /// The same pre key was handed out twice.
    #[error("pre key {prekey} given more than once")]
    DuplicatePreKey {
        /// The repeated pre key.
        prekey: KeyId,
    },
    /// A pre key of the making device itself was handed out.
    #[error("pre key of the making device itself")]
    OwnDevice,
    /// An active device of the user got no pre keys, so it would not get the Topic Keys.
    #[error("no pre keys for device {device}")]
    MissingDevice {
        /// The device left out.
        device: KeyId,
    },
    /// A device got another number of pre keys than Topic Keys are made.
    #[error("device {device}: expected {expected} pre keys, got {got}")]
    PreKeyCount {
        /// The device.
        device: KeyId,
        /// The batch size.
        expected: usize,
        /// Pre keys given for it.
        got: usize,
    },
    /// More devices than [`MAX_DEVICES`].
    #[error("too many devices: limit {limit}, got {got}")]
    TooManyDevices {
        /// The limit.
        limit: usize,
        /// Devices given.
        got: usize,
    },
    /// A certificate names another user.
    #[error("topic key certificate is for {got}, expected {expected}")]
    WrongUser {
        /// The user expected.
        expected: UserId,
        /// The user named.
        got: UserId,
    },
    /// A delivery is addressed to another pre key.
    #[error("delivery is for pre key {got}, not {expected}")]
    WrongPreKey {
        /// The pre key it should be for.
        expected: KeyId,
        /// The pre key it names.
        got: KeyId,
    },
    /// A delivery did not open: wrong pre key, another Topic Key's certificate, or tampering.
    #[error("delivery does not open")]
    OpenFailed,
    /// The delivered key is not the certified one.
    #[error("delivered topic key {got} does not match the certificate's {expected}")]
    KeyMismatch {
        /// The certified Topic Key's id.
        expected: KeyId,
        /// The delivered key's id.
        got: KeyId,
    },
    /// The topic key certificate's signature does not verify with the user's Identity Key.
    #[error("topic key certificate not signed by the identity key")]
    BadSignature,
    /// Bytes that are not a well-formed object.
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    /// Sealing failed.
    #[error("crypto: {0}")]
    Crypto(CryptoError),
}

/// A pre key the homeserver handed out, with the certificate of the device it claims to be from.
#[derive(Debug, Clone)]
pub struct ClaimedPreKey {
    /// IK-signed certificate of the device.
    pub device_cert: Signed<DeviceCert>,
    /// DK-signed pre key.
    pub prekey: Signed<PreKey>,
}

/// Checks a topic key certificate against the user's Identity Key and user id.
pub fn verify_cert(
    cert: Signed<TopicKeyCert>,
    identity_key: &IdentityPublicKey,
    user: &UserId,
) -> Result<Verified<TopicKeyCert>, TopicKeyError> {
    let cert = cert.verify(identity_key).map_err(|e| match e {
        SignedError::BadSignature => TopicKeyError::BadSignature,
        SignedError::Wire(w) => TopicKeyError::Malformed(w),
    })?;
    check_user(user, &cert.user)?;
    Ok(cert)
}

fn check_user(expected: &UserId, got: &UserId) -> Result<(), TopicKeyError> {
    if expected != got {
        return Err(TopicKeyError::WrongUser {
            expected: expected.clone(),
            got: got.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

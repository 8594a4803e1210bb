//! Identity rotation statements (`directory.md` §8): a new Identity Key signed by the old one,
//! and by itself (proof of possession).

use serde::{Deserialize, Serialize};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::DirectoryError;
use crate::crypto::transcript::LABEL_IDENTITY_ROTATION;
use crate::crypto::{IdentityKey, IdentityPublicKey, Signature};
use crate::ids::UserId;
use crate::wire::{VERSION, check_version, decode, encode};

/// Largest encoded rotation payload.
const MAX_PAYLOAD: usize = 512;
/// Largest encoded signed rotation.
const MAX_SIGNED: usize = MAX_PAYLOAD + 160;

/// `[1, user, old_identity_key, new_identity_key, time]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct IdentityRotation {
    /// Format version (1).
    pub version: u8,
    /// The user whose key rotates.
    pub user: UserId,
    /// The key rotated from.
    pub old_identity_key: IdentityPublicKey,
    /// The key rotated to.
    pub new_identity_key: IdentityPublicKey,
    /// When (informational).
    pub time: u64,
}

/// `[payload, old signature, new signature]`, both over
/// `transcript("rdv/v1/identity-rotation", [payload])`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIdentityRotation(#[serde(with = "serde_bytes")] Vec<u8>, Signature, Signature);

#[cfg(test)]
impl SignedIdentityRotation {
    /// This rotation with the new key's signature replaced by the old key's (a test forgery).
    pub(crate) fn with_new_signature_copied(mut self) -> Self {
        self.2 = self.1;
        self
    }
}

impl SignedIdentityRotation {
    /// Signs the rotation of `user` from `old` to `new` at `time`.
    pub fn sign(user: &UserId, old: &IdentityKey, new: &IdentityKey, time: u64) -> Self {
        let payload = encode(&IdentityRotation {
            version: VERSION,
            user: user.clone(),
            old_identity_key: old.public().clone(),
            new_identity_key: new.public().clone(),
            time,
        });
        let a = old.sign(LABEL_IDENTITY_ROTATION, &[&payload]);
        let b = new.sign(LABEL_IDENTITY_ROTATION, &[&payload]);
        SignedIdentityRotation(payload, a, b)
    }

    /// Its wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes the wire form (canonical CBOR); [`Self::verify`] checks it.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, DirectoryError> {
        decode(bytes, MAX_SIGNED)
            .map_err(|e| DirectoryError::InvalidEntry(format!("identity rotation: {e}")))
    }

    /// Decodes the payload and checks both signatures: by the old key and by the new one.
    pub fn verify(&self) -> Result<IdentityRotation, DirectoryError> {
        let bad = |m: String| DirectoryError::InvalidEntry(format!("identity rotation: {m}"));
        let r: IdentityRotation = decode(&self.0, MAX_PAYLOAD).map_err(|e| bad(e.to_string()))?;
        check_version(r.version).map_err(|e| bad(e.to_string()))?;
        if r.old_identity_key == r.new_identity_key {
            return Err(bad("old and new key are the same".into()));
        }
        r.old_identity_key
            .verify(LABEL_IDENTITY_ROTATION, &[&self.0], &self.1)
            .map_err(|_| bad("the old key's signature does not verify".into()))?;
        r.new_identity_key
            .verify(LABEL_IDENTITY_ROTATION, &[&self.0], &self.2)
            .map_err(|_| bad("the new key's signature does not verify".into()))?;
        Ok(r)
    }
}

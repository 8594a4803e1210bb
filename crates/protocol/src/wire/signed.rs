//! Signed objects: a payload's exact bytes plus a signature over them.
//!
//! Wire form (`federation-spec/wire.cddl`, `signed`): `[payload: bstr, signature: bstr .size 64]`.
//! The signature is `Ed25519(key, transcript(T::LABEL, [payload]))`. An unverified [`Signed<T>`]
//! only becomes a [`Verified<T>`] through [`Signed::verify`]; only verified values reach storage
//! and the topic state machine.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{WireError, decode, decode_versioned, encode};
use crate::crypto::sign::{KeyRole, PublicSigningKey, SecretSigningKey};
use crate::crypto::{CryptoError, Signature};

/// Bytes of the signature and CBOR framing around a payload.
pub const SIGNED_OVERHEAD: usize = 80;

/// A type that travels signed.
pub trait SignedPayload: Serialize + DeserializeOwned {
    /// The domain-separation label of its signature.
    const LABEL: &'static str;
    /// Largest encoded payload accepted.
    const MAX_LEN: usize;
    /// The role of the key that signs it.
    type Signer: KeyRole;

    /// Checks that hold for the decoded value on its own (ranges, lengths, non-empty lists).
    fn validate(&self) -> Result<(), WireError> {
        Ok(())
    }
}

/// A payload and its signature, as they travel.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBytes(#[serde(with = "serde_bytes")] pub Vec<u8>, pub Signature);

impl fmt::Debug for SignedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedBytes({} bytes, {:?})", self.0.len(), self.1)
    }
}

/// Why a signed object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// The bytes are not a well-formed object.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The signature does not verify with the expected key.
    #[error("bad signature")]
    BadSignature,
}

impl From<CryptoError> for SignedError {
    fn from(_: CryptoError) -> Self {
        SignedError::BadSignature
    }
}

/// A signed object whose signature has not been checked yet.
pub struct Signed<T> {
    bytes: SignedBytes,
    _payload: PhantomData<T>,
}

impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Signed {
            bytes: self.bytes.clone(),
            _payload: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Signed<{}>({:?})",
            std::any::type_name::<T>(),
            self.bytes
        )
    }
}

impl<T: SignedPayload> Signed<T> {
    /// Signs `value` with `key`.
    pub fn sign(value: T, key: &SecretSigningKey<T::Signer>) -> Verified<T> {
        let payload = encode(&value);
        let signature = key.sign(T::LABEL, &[&payload]);
        Verified {
            value,
            bytes: SignedBytes(payload, signature),
        }
    }

    /// Signs `value` with `key` over its payload and `context`, bytes the signature covers but
    /// the object does not carry: `Ed25519(key, transcript(T::LABEL, [payload, context]))`
    /// (a topic change binds the log root at its position this way, `protocol.md` §7.2).
    pub fn sign_bound(value: T, key: &SecretSigningKey<T::Signer>, context: &[u8]) -> Verified<T> {
        let payload = encode(&value);
        let signature = key.sign(T::LABEL, &[&payload, context]);
        Verified {
            value,
            bytes: SignedBytes(payload, signature),
        }
    }

    /// Checks a signature made by [`Signed::sign_bound`] over the same `context`, then decodes
    /// and validates the payload.
    pub fn verify_bound(
        self,
        key: &PublicSigningKey<T::Signer>,
        context: &[u8],
    ) -> Result<Verified<T>, SignedError> {
        key.verify(T::LABEL, &[&self.bytes.0, context], &self.bytes.1)?;
        let value = self.decode_unverified()?;
        Ok(Verified {
            value,
            bytes: self.bytes,
        })
    }

    /// Decodes the wire form (payload not yet decoded, signature not yet checked).
    pub fn from_wire(bytes: &[u8]) -> Result<Self, WireError> {
        let signed: SignedBytes = decode(bytes, T::MAX_LEN + SIGNED_OVERHEAD)?;
        Self::from_signed_bytes(signed)
    }

    /// Wraps an already decoded [`SignedBytes`], checking the payload size.
    pub fn from_signed_bytes(bytes: SignedBytes) -> Result<Self, WireError> {
        if bytes.0.len() > T::MAX_LEN {
            return Err(WireError::TooLarge {
                limit: T::MAX_LEN,
                got: bytes.0.len(),
            });
        }
        Ok(Signed {
            bytes,
            _payload: PhantomData,
        })
    }

    /// Decodes the payload without checking the signature, to learn which key should have signed
    /// it. The result must not be trusted; call [`Signed::verify`] next.
    pub fn decode_unverified(&self) -> Result<T, WireError> {
        let value: T = decode_versioned(&self.bytes.0, T::MAX_LEN)?;
        value.validate()?;
        Ok(value)
    }

    /// Checks the signature with `key`, then decodes and validates the payload.
    pub fn verify(self, key: &PublicSigningKey<T::Signer>) -> Result<Verified<T>, SignedError> {
        key.verify(T::LABEL, &[&self.bytes.0], &self.bytes.1)?;
        let value = self.decode_unverified()?;
        Ok(Verified {
            value,
            bytes: self.bytes,
        })
    }

    /// The bytes as they travel.
    pub fn signed_bytes(&self) -> &SignedBytes {
        &self.bytes
    }
}

/// A signed object whose signature has been checked (or that we signed ourselves).
pub struct Verified<T> {
    value: T,
    bytes: SignedBytes,
}

impl<T: Clone> Clone for Verified<T> {
    fn clone(&self) -> Self {
        Verified {
            value: self.value.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Verified<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl<T> Verified<T> {
    /// The checked value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The exact signed bytes, to store or pass on.
    pub fn signed_bytes(&self) -> &SignedBytes {
        &self.bytes
    }

    /// The wire form `[payload, signature]`.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(&self.bytes)
    }

    /// Forgets the verification, e.g. to hand the object to someone who must check it again.
    pub fn unverified(&self) -> Signed<T> {
        Signed {
            bytes: self.bytes.clone(),
            _payload: PhantomData,
        }
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Serialize for Signed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.bytes.serialize(s)
    }
}

impl<'de, T: SignedPayload> Deserialize<'de> for Signed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = SignedBytes::deserialize(d)?;
        Signed::from_signed_bytes(bytes).map_err(serde::de::Error::custom)
    }
}

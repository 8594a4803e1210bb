//! Ed25519 keys, one type per role (`federation-spec/protocol.md` §3).
//!
//! [`SecretSigningKey<R>`] and [`PublicSigningKey<R>`] are generic over a role marker so that one
//! implementation serves every role while the compiler keeps the roles apart: an
//! [`IdentityKey`] cannot be used where a [`DeviceKey`] is expected. Signing always goes through
//! [`super::transcript::transcript`], and verification is strict (`verify_strict`: no small-order
//! keys, canonical `S` and `R`).

use std::fmt;
use std::marker::PhantomData;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::CryptoError;
use super::transcript::{LABEL_KEY_ID, transcript};

/// A role that an Ed25519 key plays; only used as a type parameter.
pub trait KeyRole: 'static {
    /// The role's name, used in `Debug` output and in key ids.
    const NAME: &'static str;
}

macro_rules! role {
    ($(#[$doc:meta] $t:ident = $name:literal),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $t {}
        impl KeyRole for $t { const NAME: &'static str = $name; }
    )*};
}
role! {
    /// The user's long-term Identity Key (IK).
    Identity = "identity",
    /// A device's Device Key (DK).
    Device = "device",
    /// The signing half of a per-topic Topic Key (TK).
    TopicSigning = "topic-signing",
    /// A homeserver's Server Key (SK).
    Server = "server",
}

/// The user's Identity Key (private).
pub type IdentityKey = SecretSigningKey<Identity>;
/// The public half of an Identity Key.
pub type IdentityPublicKey = PublicSigningKey<Identity>;
/// A Device Key (private).
pub type DeviceKey = SecretSigningKey<Device>;
/// The public half of a Device Key.
pub type DevicePublicKey = PublicSigningKey<Device>;
impl DevicePublicKey {
    /// The id its homeserver knows the device by: the key's 32 bytes
    /// (`federation-spec/protocol.md` §2.4).
    pub fn device_id(&self) -> crate::ids::DeviceId {
        crate::ids::DeviceId::from_bytes(self.to_bytes())
    }
}

/// A homeserver's Server Key (private).
pub type ServerKey = SecretSigningKey<Server>;
/// The public half of a Server Key.
pub type ServerPublicKey = PublicSigningKey<Server>;

/// A 16-byte key identifier: the first 16 bytes of
/// `SHA-256(transcript("rdv/v1/key-id", [role, public key bytes…]))`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// The id of a key with the given role name and public bytes.
    pub fn derive(role: &str, public_parts: &[&[u8]]) -> KeyId {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(public_parts.len() + 1);
        parts.push(role.as_bytes());
        parts.extend_from_slice(public_parts);
        let digest = Sha256::digest(transcript(LABEL_KEY_ID, &parts));
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        KeyId(id)
    }

    /// Parses 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<KeyId, CryptoError> {
        Ok(KeyId(fixed(bytes)?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex_string(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex_string(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(crate) fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], CryptoError> {
    bytes.try_into().map_err(|_| CryptoError::BadLength {
        expected: N,
        got: bytes.len(),
    })
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// Parses 64 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Signature, CryptoError> {
        Ok(Signature(fixed(bytes)?))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex_string(&self.0[..8]))
    }
}

/// A private Ed25519 key with role `R`. Zeroized on drop; `Debug` shows only the public key.
pub struct SecretSigningKey<R: KeyRole> {
    key: SigningKey,
    public: PublicSigningKey<R>,
}

impl<R: KeyRole> SecretSigningKey<R> {
    /// A new random key.
    pub fn generate() -> Self {
        Self::from_seed(&Zeroizing::new(super::random_array()))
    }

    /// The key whose 32-byte seed is `seed` (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let public = PublicSigningKey {
            key: key.verifying_key(),
            _role: PhantomData,
        };
        SecretSigningKey { key, public }
    }

    /// The 32-byte seed, for a keystore or a sealed transfer to the user's own device.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public key.
    pub fn public(&self) -> &PublicSigningKey<R> {
        &self.public
    }

    /// Signs `transcript(label, parts)`.
    pub fn sign(&self, label: &str, parts: &[&[u8]]) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.key.sign(&transcript(label, parts)).to_bytes())
    }

    /// Signs `message` as it is, without a transcript label.
    ///
    /// Only for externally defined formats that carry their own domain separation (C2SP signed
    /// notes and cosignatures, whose texts cannot begin with `rdv/v1/` nor contain a zero byte,
    /// so they never collide with a transcript). Everything of our own uses [`Self::sign`].
    pub(crate) fn sign_raw(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.key.sign(message).to_bytes())
    }
}

impl<R: KeyRole> fmt::Debug for SecretSigningKey<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSigningKey")
            .field("role", &R::NAME)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A public Ed25519 key with role `R`, already checked to be a valid point.
pub struct PublicSigningKey<R: KeyRole> {
    key: VerifyingKey,
    _role: PhantomData<R>,
}

impl<R: KeyRole> PublicSigningKey<R> {
    /// Parses 32 bytes (`federation-spec/protocol.md` §3.2): refused are bytes that are not a
    /// point, non-canonical encodings (y ≥ p, or x = 0 with the sign bit set: RFC 8032 §5.1.3
    /// decoding fails on them, `ed25519-dalek` alone would accept them) and points of small order.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: [u8; 32] = fixed(bytes)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| CryptoError::InvalidPublicKey)?;
        if key.to_edwards().compress().to_bytes() != bytes || key.is_weak() {
            return Err(CryptoError::InvalidPublicKey);
        }
        Ok(PublicSigningKey {
            key,
            _role: PhantomData,
        })
    }

    /// The 32 encoded bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The encoded bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// This key's id.
    pub fn key_id(&self) -> KeyId {
        KeyId::derive(R::NAME, &[self.key.as_bytes()])
    }

    /// Checks `signature` over `transcript(label, parts)` with `verify_strict`.
    pub fn verify(
        &self,
        label: &str,
        parts: &[&[u8]],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key
            .verify_strict(&transcript(label, parts), &sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    /// Checks a signature made with [`SecretSigningKey::sign_raw`] (`verify_strict`).
    pub(crate) fn verify_raw(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key
            .verify_strict(message, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }
}

impl<R: KeyRole> Clone for PublicSigningKey<R> {
    fn clone(&self) -> Self {
        PublicSigningKey {
            key: self.key,
            _role: PhantomData,
        }
    }
}

impl<R: KeyRole> PartialEq for PublicSigningKey<R> {
    fn eq(&self, other: &Self) -> bool {
        self.key.as_bytes() == other.key.as_bytes()
    }
}
impl<R: KeyRole> Eq for PublicSigningKey<R> {}

impl<R: KeyRole> std::hash::Hash for PublicSigningKey<R> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.as_bytes().hash(state)
    }
}

impl<R: KeyRole> fmt::Debug for PublicSigningKey<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", R::NAME, hex_string(self.key.as_bytes()))
    }
}

impl<R: KeyRole> Serialize for PublicSigningKey<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.key.as_bytes())
    }
}

impl<'de, R: KeyRole> Deserialize<'de> for PublicSigningKey<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Self::from_slice(&bytes).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Signature::from_slice(&bytes).map_err(serde::de::Error::custom)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        KeyId::from_slice(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::transcript::{LABEL_DEVICE_CERT, LABEL_MESSAGE};

    #[test]
    fn sign_verify_and_label_binding() {
        let ik = IdentityKey::generate();
        let sig = ik.sign(LABEL_DEVICE_CERT, &[b"payload"]);
        ik.public()
            .verify(LABEL_DEVICE_CERT, &[b"payload"], &sig)
            .unwrap();
        assert_eq!(
            ik.public().verify(LABEL_MESSAGE, &[b"payload"], &sig),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            ik.public().verify(LABEL_DEVICE_CERT, &[b"payloae"], &sig),
            Err(CryptoError::BadSignature)
        );
        let other = IdentityKey::generate();
        assert_eq!(
            other
                .public()
                .verify(LABEL_DEVICE_CERT, &[b"payload"], &sig),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn weak_and_malformed_keys_refused() {
        // The identity point (small order) encodes as 1 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            IdentityPublicKey::from_slice(&identity),
            Err(CryptoError::InvalidPublicKey)
        );
        assert!(matches!(
            IdentityPublicKey::from_slice(&[0u8; 31]),
            Err(CryptoError::BadLength { .. })
        ));
    }

    #[test]
    fn non_canonical_keys_refused() {
        // y = p + 3 (little-endian 0xf0, 0xff…, 0x7f) decodes to the point with y = 3, which is
        // on the curve and not of small order: only the canonical encoding (y = 3) is accepted.
        let mut y3 = [0u8; 32];
        y3[0] = 3;
        assert!(DevicePublicKey::from_slice(&y3).is_ok());
        let mut p_plus_3 = [0xffu8; 32];
        p_plus_3[0] = 0xf0;
        p_plus_3[31] = 0x7f;
        assert_eq!(
            DevicePublicKey::from_slice(&p_plus_3),
            Err(CryptoError::InvalidPublicKey)
        );
        // x = 0 with the sign bit set (y = 1, the identity): non-canonical and small order.
        let mut negative_zero = [0u8; 32];
        negative_zero[0] = 1;
        negative_zero[31] = 0x80;
        assert_eq!(
            DevicePublicKey::from_slice(&negative_zero),
            Err(CryptoError::InvalidPublicKey)
        );
        // A device key inside a CBOR payload is parsed the same way.
        let cbor = crate::wire::encode(&serde_bytes::ByteBuf::from(p_plus_3.to_vec()));
        assert!(crate::wire::decode::<DevicePublicKey>(&cbor, 64).is_err());
        let cbor = crate::wire::encode(&serde_bytes::ByteBuf::from(y3.to_vec()));
        assert!(crate::wire::decode::<DevicePublicKey>(&cbor, 64).is_ok());
    }

    #[test]
    fn debug_hides_secret() {
        let ik = IdentityKey::generate();
        let seed_hex = hex_string(&*ik.seed());
        let shown = format!("{ik:?}");
        assert!(!shown.contains(&seed_hex));
        assert!(shown.contains(&hex_string(ik.public().as_bytes())));
    }

    #[test]
    fn seed_round_trip_and_role_ids_differ() {
        let ik = IdentityKey::generate();
        let again = IdentityKey::from_seed(&ik.seed());
        assert_eq!(ik.public(), again.public());
        let dk = DeviceKey::from_seed(&ik.seed());
        assert_ne!(ik.public().key_id(), dk.public().key_id());
    }
}

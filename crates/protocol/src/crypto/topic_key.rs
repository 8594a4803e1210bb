//! Topic Keys (`federation-spec/protocol.md` §3.4): a fresh Ed25519 signing key and a fresh HPKE
//! key per topic, held by all devices of the user and certified by the Identity Key.
//!
//! The signing half signs the member's messages and (for admins) topic changes; Message Keys are
//! sealed to the KEM half. A new pair for every topic gives forward secrecy across topics: losing
//! one topic's key says nothing about another, and the Identity Key never decrypts anything.

use std::fmt;

use zeroize::Zeroizing;

use super::hpke::{KemPublicKey, KemSecretKey, Suite};
use super::sign::{KeyId, PublicSigningKey, SecretSigningKey, TopicSigning};
use super::{CryptoError, Randomness};

/// The public signing half of a Topic Key.
pub type TopicSigningPublicKey = PublicSigningKey<TopicSigning>;

/// A private Topic Key: signing key and KEM key.
pub struct TopicKey {
    signing: SecretSigningKey<TopicSigning>,
    kem: KemSecretKey,
    public: TopicPublicKey,
}

impl TopicKey {
    /// A new random Topic Key for `suite`.
    pub fn generate(suite: Suite) -> Self {
        Self::generate_with(suite, &mut Randomness::Os)
    }

    /// A new Topic Key from the given randomness (test vectors use a fixed one).
    pub fn generate_with(suite: Suite, rng: &mut Randomness<'_>) -> Self {
        let seed = Zeroizing::new(rng.array::<32>());
        let ikm = Zeroizing::new(rng.array::<32>());
        Self::from_parts(
            SecretSigningKey::from_seed(&seed),
            KemSecretKey::derive(suite, &ikm),
        )
    }

    /// Rebuilds a Topic Key from its two private halves.
    pub fn from_parts(signing: SecretSigningKey<TopicSigning>, kem: KemSecretKey) -> Self {
        let public = TopicPublicKey {
            signing: signing.public().clone(),
            kem: kem.public().clone(),
        };
        TopicKey {
            signing,
            kem,
            public,
        }
    }

    /// Rebuilds a Topic Key from the bytes kept in a keystore or sent to the user's own device.
    pub fn from_bytes(
        suite: Suite,
        signing_seed: &[u8],
        kem_secret: &[u8],
    ) -> Result<Self, CryptoError> {
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(super::sign::fixed(signing_seed)?);
        Ok(Self::from_parts(
            SecretSigningKey::from_seed(&seed),
            KemSecretKey::from_bytes(suite, kem_secret)?,
        ))
    }

    /// The signing half.
    pub fn signing(&self) -> &SecretSigningKey<TopicSigning> {
        &self.signing
    }

    /// The KEM half.
    pub fn kem(&self) -> &KemSecretKey {
        &self.kem
    }

    /// The public halves.
    pub fn public(&self) -> &TopicPublicKey {
        &self.public
    }
}

impl fmt::Debug for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The public halves of a Topic Key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPublicKey {
    /// Verifies the member's message and change signatures.
    pub signing: TopicSigningPublicKey,
    /// Message Keys are sealed to this key.
    pub kem: KemPublicKey,
}

impl TopicPublicKey {
    /// The Topic Key's id: `KeyId::derive("topic", [signing key, suite, kem key])`.
    pub fn key_id(&self) -> KeyId {
        KeyId::derive(
            "topic",
            &[
                self.signing.as_bytes(),
                &self.kem.suite().id().to_be_bytes(),
                self.kem.as_bytes(),
            ],
        )
    }
}

//! Cryptographic building blocks (`federation-spec/protocol.md` §3).
//!
//! Keys of different roles are different types ([`IdentityKey`], [`DeviceKey`], [`ServerKey`],
//! the signing half of a [`TopicKey`]), so that a device key can never be passed where an identity
//! key is expected. Every signature and MAC covers a domain-separation label (see [`transcript`]).
//! Secrets are zeroized on drop and never printed by `Debug`.

pub mod hpke;
pub mod message_key;
pub mod sign;
pub mod topic_key;
pub mod transcript;

pub use self::hpke::{KemPublicKey, KemSecretKey, SealPurpose, SealedBox, Suite};
pub use message_key::{EpochKeys, MessageKey};
pub use sign::{
    DeviceKey, DevicePublicKey, IdentityKey, IdentityPublicKey, KeyId, ServerKey, ServerPublicKey,
    Signature,
};
pub use topic_key::{TopicKey, TopicPublicKey, TopicSigningPublicKey};

/// Errors from the cryptographic layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// An Ed25519 signature did not verify (strict verification).
    #[error("bad signature")]
    BadSignature,
    /// Bytes that should be a public key are not a valid key.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// A sealed box names a suite that this implementation does not support.
    #[error("unsupported HPKE suite {0}")]
    UnsupportedSuite(u16),
    /// A sealed box was addressed to another key.
    #[error("sealed box is for key {expected}, not {got}")]
    WrongRecipient {
        /// The key id the caller opened with.
        expected: KeyId,
        /// The key id the box names.
        got: KeyId,
    },
    /// A sealed box did not open: wrong key, wrong context or tampered ciphertext.
    #[error("sealed box does not open")]
    OpenFailed,
    /// Bytes of the wrong length for a key or other fixed-size value.
    #[error("expected {expected} bytes, got {got}")]
    BadLength {
        /// Required length.
        expected: usize,
        /// Length given.
        got: usize,
    },
}

/// `N` bytes from the operating system's random number generator.
///
/// The OS generator failing is not something the process can recover from safely: going on
/// without randomness would produce predictable keys. This is the one place that aborts on it.
#[allow(clippy::expect_used)]
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("operating system random number generator failed");
    out
}

/// A seeded, deterministic random number generator for test vectors (ChaCha20 keystream).
///
/// Never use it for real keys: anyone who knows the seed knows every output.
pub struct VectorRng(chacha20::ChaCha20);

impl VectorRng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        use chacha20::cipher::KeyIvInit;
        VectorRng(chacha20::ChaCha20::new(&seed.into(), &[0u8; 12].into()))
    }

    /// `N` bytes of the stream.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    fn fill(&mut self, dst: &mut [u8]) {
        use chacha20::cipher::StreamCipher;
        dst.fill(0);
        self.0.apply_keystream(dst);
    }
}

impl getrandom::rand_core::TryRng for VectorRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(u32::from_le_bytes(self.array()))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(u64::from_le_bytes(self.array()))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.fill(dst);
        Ok(())
    }
}

impl getrandom::rand_core::TryCryptoRng for VectorRng {}

/// Where randomness comes from: the OS, or a [`VectorRng`] when making test vectors.
pub enum Randomness<'a> {
    /// The operating system's generator.
    Os,
    /// A deterministic generator (test vectors only).
    Fixed(&'a mut VectorRng),
}

impl Randomness<'_> {
    /// `N` random bytes.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        match self {
            Randomness::Os => random_array(),
            Randomness::Fixed(rng) => rng.array(),
        }
    }
}

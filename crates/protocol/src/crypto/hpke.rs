//! HPKE sealed boxes (RFC 9180), `federation-spec/protocol.md` §3.3.
//!
//! Every box names its [`Suite`], so a topic can move to a post-quantum hybrid suite later
//! without a format break, and the id of the key it is sealed to. The HPKE `info` binds the
//! purpose, suite, recipient key id and a purpose-specific context (topic and epoch for message
//! keys), so a box made for one purpose or topic cannot be replayed as another.

use std::fmt;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, PskBundle, Serializable};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use zeroize::Zeroizing;

use super::sign::{KeyId, fixed, hex_string};
use super::transcript::{LABEL_SEAL, transcript};
use super::{CryptoError, Randomness};

/// An HPKE cipher suite. Only suite 1 is defined in protocol version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Suite {
    /// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 (RFC 9180 ids 0x0020/0x0001/0x0003).
    X25519Sha256ChaCha20Poly1305 = 1,
}

impl Suite {
    /// The suite with this wire id.
    pub fn from_id(id: u16) -> Result<Suite, CryptoError> {
        match id {
            1 => Ok(Suite::X25519Sha256ChaCha20Poly1305),
            other => Err(CryptoError::UnsupportedSuite(other)),
        }
    }

    /// The wire id.
    pub fn id(self) -> u16 {
        self as u16
    }
}

/// What a sealed box carries; part of the HPKE `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SealPurpose {
    /// A topic epoch's Message Key, sealed to a member's Topic Key. Context: topic id, epoch.
    MessageKey = 1,
    /// A private Topic Key, sealed to a Device Pre Key of another device of the same user.
    /// Context: user id.
    TopicKeyDelivery = 2,
    /// The identity and keys handed to a newly linked device. Context: link id.
    DeviceLink = 3,
    /// A user's new Identity Key, sealed to a Device Pre Key of each other device of the user
    /// after a rotation (`directory.md` §8). Context: user id, the new key.
    IdentityDelivery = 4,
}

type X25519 = X25519HkdfSha256;

/// An HPKE public key (X25519 for suite 1).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KemPublicKey {
    suite: Suite,
    bytes: [u8; 32],
}

impl KemPublicKey {
    /// Parses a suite's public key bytes.
    ///
    /// Refused (`federation-spec/protocol.md` §3.6): encodings that are not
    /// canonical (bit 255 set, or u ≥ 2^255 − 19) and the five u-coordinates of small order, whose
    /// X25519 output is all zeros for every private key. The KEM (RFC 9180 §7.1.4) would only
    /// find the latter at seal time; refusing them at parse makes every party refuse the same
    /// certificate, not only the one that seals to it.
    pub fn from_slice(suite: Suite, bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: [u8; 32] = fixed(bytes)?;
        if !is_canonical_x25519(&bytes) || X25519_SMALL_ORDER.contains(&bytes) {
            return Err(CryptoError::InvalidPublicKey);
        }
        <X25519 as Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        Ok(KemPublicKey { suite, bytes })
    }

    /// The suite this key belongs to.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The encoded public key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// This key's id.
    pub fn key_id(&self) -> KeyId {
        KeyId::derive("kem", &[&self.suite.id().to_be_bytes(), &self.bytes])
    }

    fn hpke_key(&self) -> Result<<X25519 as Kem>::PublicKey, CryptoError> {
        <X25519 as Kem>::PublicKey::from_bytes(&self.bytes)
            .map_err(|_| CryptoError::InvalidPublicKey)
    }
}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kem{}:{}", self.suite.id(), hex_string(&self.bytes))
    }
}

/// The canonical little-endian encodings of the X25519 u-coordinates of small order (on the
/// curve and on its twist): 0, 1, the two points of order 8, and p − 1. A clamped scalar is a
/// multiple of 8, so X25519 of any private key with one of them is all zeros.
const X25519_SMALL_ORDER: [[u8; 32]; 5] = [
    [0; 32],
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    P_MINUS_ONE,
];

/// p − 1 = 2^255 − 20, little-endian.
const P_MINUS_ONE: [u8; 32] = {
    let mut v = [0xff; 32];
    v[0] = 0xec;
    v[31] = 0x7f;
    v
};

/// Whether `u` (little-endian) is below p = 2^255 − 19, i.e. bit 255 is clear and `u` is not one
/// of p … 2^255 − 1 (all bytes 0xff but the first ≥ 0xed and the last 0x7f).
fn is_canonical_x25519(u: &[u8; 32]) -> bool {
    if u[31] & 0x80 != 0 {
        return false;
    }
    let top_all_ones = u[31] == 0x7f && u[1..31].iter().all(|&b| b == 0xff);
    !(top_all_ones && u[0] >= 0xed)
}

/// An HPKE private key. Zeroized on drop; `Debug` shows only the public key.
pub struct KemSecretKey {
    bytes: Zeroizing<[u8; 32]>,
    public: KemPublicKey,
}

impl KemSecretKey {
    /// A new random key pair for `suite`.
    pub fn generate(suite: Suite) -> Self {
        Self::derive(suite, &Zeroizing::new(super::random_array::<32>()))
    }

    /// The key pair derived from 32 bytes of input keying material (RFC 9180 `DeriveKeyPair`).
    pub fn derive(suite: Suite, ikm: &[u8; 32]) -> Self {
        let (sk, pk) = X25519::derive_keypair(ikm);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&sk.to_bytes());
        let mut pk_bytes = [0u8; 32];
        pk_bytes.copy_from_slice(&pk.to_bytes());
        KemSecretKey {
            bytes,
            public: KemPublicKey {
                suite,
                bytes: pk_bytes,
            },
        }
    }

    /// Rebuilds a key from its private bytes (keystore, sealed transfer).
    pub fn from_bytes(suite: Suite, bytes: &[u8]) -> Result<Self, CryptoError> {
        let raw: Zeroizing<[u8; 32]> = Zeroizing::new(fixed(bytes)?);
        let sk = <X25519 as Kem>::PrivateKey::from_bytes(&raw[..])
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        let pk = X25519::sk_to_pk(&sk);
        let mut pk_bytes = [0u8; 32];
        pk_bytes.copy_from_slice(&pk.to_bytes());
        Ok(KemSecretKey {
            bytes: raw,
            public: KemPublicKey {
                suite,
                bytes: pk_bytes,
            },
        })
    }

    /// The private bytes, for a keystore or a sealed transfer to the user's own device.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.bytes.clone()
    }

    /// The public key.
    pub fn public(&self) -> &KemPublicKey {
        &self.public
    }
}

impl fmt::Debug for KemSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KemSecretKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A message sealed to one HPKE public key: `[suite, recipient, enc, ciphertext]`.
#[derive(Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct SealedBox {
    /// Suite id.
    pub suite: u16,
    /// Id of the recipient's public key.
    pub recipient: KeyId,
    /// The KEM encapsulation.
    #[serde(with = "serde_bytes")]
    pub enc: Vec<u8>,
    /// AEAD ciphertext with its tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedBox")
            .field("suite", &self.suite)
            .field("recipient", &self.recipient)
            .field("len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The HPKE `info` of a box: `transcript("rdv/v1/seal", [purpose, suite, recipient, context…])`.
fn info(purpose: SealPurpose, suite: Suite, recipient: &KeyId, context: &[&[u8]]) -> Vec<u8> {
    let purpose_byte = [purpose as u8];
    let suite_bytes = suite.id().to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![&purpose_byte, &suite_bytes, &recipient.0];
    parts.extend_from_slice(context);
    transcript(LABEL_SEAL, &parts)
}

/// Seals `plaintext` to `recipient` (base mode, or PSK mode when `psk` is given).
pub fn seal(
    recipient: &KemPublicKey,
    purpose: SealPurpose,
    context: &[&[u8]],
    psk: Option<(&[u8], &[u8])>,
    plaintext: &[u8],
    rng: &mut Randomness<'_>,
) -> Result<SealedBox, CryptoError> {
    let suite = recipient.suite;
    let key_id = recipient.key_id();
    let info = info(purpose, suite, &key_id, context);
    let pk = recipient.hpke_key()?;
    let mode = match psk {
        Some((psk, psk_id)) => {
            OpModeS::Psk(PskBundle::new(psk, psk_id).map_err(|_| CryptoError::OpenFailed)?)
        }
        None => OpModeS::Base,
    };
    let result = match rng {
        Randomness::Os => hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519>(
            &mode,
            &pk,
            &info,
            plaintext,
            b"",
            &mut getrandom::rand_core::UnwrapErr(getrandom::SysRng),
        ),
        Randomness::Fixed(rng) => {
            hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519>(
                &mode, &pk, &info, plaintext, b"", *rng,
            )
        }
    };
    let (enc, ciphertext) = result.map_err(|_| CryptoError::InvalidPublicKey)?;
    Ok(SealedBox {
        suite: suite.id(),
        recipient: key_id,
        enc: enc.to_bytes().to_vec(),
        ciphertext,
    })
}

/// Opens a box sealed with [`seal`]; the purpose, context and PSK must be the same.
pub fn open(
    secret: &KemSecretKey,
    sealed: &SealedBox,
    purpose: SealPurpose,
    context: &[&[u8]],
    psk: Option<(&[u8], &[u8])>,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let suite = Suite::from_id(sealed.suite)?;
    if suite != secret.public.suite {
        return Err(CryptoError::UnsupportedSuite(sealed.suite));
    }
    let key_id = secret.public.key_id();
    if sealed.recipient != key_id {
        return Err(CryptoError::WrongRecipient {
            expected: key_id,
            got: sealed.recipient,
        });
    }
    let info = info(purpose, suite, &key_id, context);
    let sk = <X25519 as Kem>::PrivateKey::from_bytes(&secret.bytes[..])
        .map_err(|_| CryptoError::OpenFailed)?;
    let enc = <X25519 as Kem>::EncappedKey::from_bytes(&sealed.enc)
        .map_err(|_| CryptoError::OpenFailed)?;
    let mode = match psk {
        Some((psk, psk_id)) => {
            OpModeR::Psk(PskBundle::new(psk, psk_id).map_err(|_| CryptoError::OpenFailed)?)
        }
        None => OpModeR::Base,
    };
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519>(
        &mode,
        &sk,
        &enc,
        &info,
        &sealed.ciphertext,
        b"",
    )
    .map(Zeroizing::new)
    .map_err(|_| CryptoError::OpenFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;

    #[test]
    fn seal_open_and_context_binding() {
        let sk = KemSecretKey::generate(SUITE);
        let b = seal(
            sk.public(),
            SealPurpose::MessageKey,
            &[b"topic", b"\0\0\0\x01"],
            None,
            b"secret",
            &mut Randomness::Os,
        )
        .unwrap();
        assert_eq!(
            &open(
                &sk,
                &b,
                SealPurpose::MessageKey,
                &[b"topic", b"\0\0\0\x01"],
                None
            )
            .unwrap()[..],
            b"secret"
        );
        // Another epoch, topic or purpose does not open.
        assert_eq!(
            open(
                &sk,
                &b,
                SealPurpose::MessageKey,
                &[b"topic", b"\0\0\0\x02"],
                None
            ),
            Err(CryptoError::OpenFailed)
        );
        assert_eq!(
            open(
                &sk,
                &b,
                SealPurpose::MessageKey,
                &[b"topix", b"\0\0\0\x01"],
                None
            ),
            Err(CryptoError::OpenFailed)
        );
        assert_eq!(
            open(
                &sk,
                &b,
                SealPurpose::DeviceLink,
                &[b"topic", b"\0\0\0\x01"],
                None
            ),
            Err(CryptoError::OpenFailed)
        );
        // Another key is told apart by id before any decryption.
        let other = KemSecretKey::generate(SUITE);
        assert!(matches!(
            open(
                &other,
                &b,
                SealPurpose::MessageKey,
                &[b"topic", b"\0\0\0\x01"],
                None
            ),
            Err(CryptoError::WrongRecipient { .. })
        ));
        // Tampering is caught.
        let mut t = b.clone();
        t.ciphertext[0] ^= 1;
        assert_eq!(
            open(
                &sk,
                &t,
                SealPurpose::MessageKey,
                &[b"topic", b"\0\0\0\x01"],
                None
            ),
            Err(CryptoError::OpenFailed)
        );
        let mut t = b.clone();
        t.suite = 2;
        assert_eq!(
            open(
                &sk,
                &t,
                SealPurpose::MessageKey,
                &[b"topic", b"\0\0\0\x01"],
                None
            ),
            Err(CryptoError::UnsupportedSuite(2))
        );
    }

    #[test]
    fn psk_mode_needs_the_psk() {
        let sk = KemSecretKey::generate(SUITE);
        let psk = [7u8; 32];
        let b = seal(
            sk.public(),
            SealPurpose::DeviceLink,
            &[b"l"],
            Some((&psk, b"id")),
            b"x",
            &mut Randomness::Os,
        )
        .unwrap();
        assert_eq!(
            &open(
                &sk,
                &b,
                SealPurpose::DeviceLink,
                &[b"l"],
                Some((&psk, b"id"))
            )
            .unwrap()[..],
            b"x"
        );
        assert_eq!(
            open(
                &sk,
                &b,
                SealPurpose::DeviceLink,
                &[b"l"],
                Some((&[8u8; 32], b"id"))
            ),
            Err(CryptoError::OpenFailed)
        );
        assert_eq!(
            open(&sk, &b, SealPurpose::DeviceLink, &[b"l"], None),
            Err(CryptoError::OpenFailed)
        );
    }

    #[test]
    fn small_order_and_non_canonical_x25519_keys_refused() {
        for bytes in X25519_SMALL_ORDER {
            assert_eq!(
                KemPublicKey::from_slice(SUITE, &bytes),
                Err(CryptoError::InvalidPublicKey),
                "{bytes:x?}"
            );
            // The KEM itself finds each of them only when sealing: the DH output is all zeros.
            let raw = KemPublicKey {
                suite: SUITE,
                bytes,
            };
            let sealed = seal(
                &raw,
                SealPurpose::MessageKey,
                &[],
                None,
                b"x",
                &mut Randomness::Os,
            );
            assert_eq!(sealed.unwrap_err(), CryptoError::InvalidPublicKey);
        }
        // Non-canonical: p and p + 1 (the other encodings of 0 and 1), bit 255 set.
        let mut p = P_MINUS_ONE;
        p[0] = 0xed;
        let mut p_plus_one = P_MINUS_ONE;
        p_plus_one[0] = 0xee;
        let good = *KemSecretKey::generate(SUITE)
            .public()
            .as_bytes()
            .first_chunk::<32>()
            .unwrap();
        let mut high_bit = good;
        high_bit[31] |= 0x80;
        for bytes in [p, p_plus_one, high_bit] {
            assert_eq!(
                KemPublicKey::from_slice(SUITE, &bytes),
                Err(CryptoError::InvalidPublicKey),
                "{bytes:x?}"
            );
        }
        // Just below p, and an ordinary key, are accepted.
        let mut below = P_MINUS_ONE;
        below[0] = 0xeb;
        assert!(KemPublicKey::from_slice(SUITE, &below).is_ok());
        assert!(KemPublicKey::from_slice(SUITE, &good).is_ok());
    }

    /// `protocol.md` §3.6: RFC 9180 Appendix A.1.1 prints `skRm` unclamped; its clamped form is
    /// the same key (same public key `pkRm`), and both are accepted.
    #[test]
    fn clamped_and_unclamped_secrets_are_one_key() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let sk_rm = hex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8");
        let pk_rm = hex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d");
        let mut clamped = sk_rm.clone();
        clamped[0] &= 248;
        clamped[31] &= 127;
        clamped[31] |= 64;
        assert_ne!(clamped, sk_rm);
        for secret in [&sk_rm, &clamped] {
            let key = KemSecretKey::from_bytes(SUITE, secret).unwrap();
            assert_eq!(key.public().as_bytes(), &pk_rm[..]);
        }
    }

    #[test]
    fn secret_round_trip() {
        let sk = KemSecretKey::generate(SUITE);
        let again = KemSecretKey::from_bytes(SUITE, &sk.to_bytes()[..]).unwrap();
        assert_eq!(sk.public(), again.public());
        assert!(!format!("{sk:?}").contains(&hex_string(&sk.to_bytes()[..])));
    }
}

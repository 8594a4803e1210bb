//! Linking a new device with a one-time link code (`federation-spec/devices.md` §4).
//!
//! The identity moves end-to-end from an existing device to a new one, through the homeserver
//! acting as an untrusted relay:
//!
//! 1. The existing device makes a [`LinkOffer`] and shows its [`LinkCode`]: an 8-byte link id
//!    (the relay's mailbox name), a 16-byte secret and a CRC-8, as 40 Crockford base32
//!    characters in groups of five.
//! 2. The new device makes its Device Key, parses the code ([`LinkJoiner::from_code`]), makes a
//!    fresh HPKE key and sends a [`LinkRequest`]: the link id, its HPKE public key, its Device Key
//!    and `proof = HMAC-SHA256(proof_key, transcript("rdv/v1/link-proof", [link id, suite, key,
//!    device key]))`,
//!    where `proof_key = HKDF-SHA256(secret, info = transcript("rdv/v1/link-proof-key", [link id]))`.
//! 3. The existing device checks the proof in constant time — so the relay cannot substitute a key
//!    of its own — endorses the new Device Key with its own, and seals the [`LinkPayload`] (user,
//!    Identity Key, the endorsement, Topic Keys, Message Keys) to
//!    the request's key with HPKE **PSK mode**:
//!    `psk = HKDF-SHA256(secret, info = transcript("rdv/v1/link-psk", [link id]))`, `psk_id = link
//!    id`, purpose [`SealPurpose::DeviceLink`], context `[link id]`. The PSK proves to the new
//!    device that the payload comes from whoever showed the code.
//! 4. The new device opens the [`LinkResponse`] ([`LinkJoiner::open`]) and checks the payload: the
//!    endorsement is for its Device Key and signed by the endorser it names, the Topic Key
//!    certificates verify with the Identity Key it received and each private key matches its
//!    certificate.
//!
//! The relay sees the link id, the new device's public key, the proof (an HMAC under a key derived
//! from 128 secret bits: no offline guessing) and ciphertext. An offer is used at most once: a
//! failed proof means someone who does not know the code is in the way, and the user starts over.
//!
//! This module holds the exchange (offer, joiner, request, response); [`payload`] holds what the
//! response carries.

mod payload;

pub use payload::{LinkPayload, LinkedMessageKey, LinkedTopicKey};

use std::fmt;

use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::link_code::{LINK_ID_LEN, LinkCode, LinkCodeError};
use super::topic_keys::TopicKeyError;
use crate::crypto::hpke::{self, SealPurpose, SealedBox, Suite};
use crate::crypto::message_key::HmacSha256;
use crate::crypto::sign::hex_string;
use crate::crypto::transcript::{
    LABEL_LINK_PROOF, LABEL_LINK_PROOF_KEY, LABEL_LINK_PSK, transcript,
};
use crate::crypto::{CryptoError, DevicePublicKey, KemPublicKey, KemSecretKey, Randomness};
use crate::devices::directory::{DirectoryError, verify_endorsement};
use crate::wire::{VERSION, WireError, decode_versioned, encode};

/// Largest encoded [`LinkPayload`].
pub const LINK_PAYLOAD_MAX_LEN: usize = 4 * 1024 * 1024;
/// Largest encoded [`LinkRequest`].
pub const LINK_REQUEST_MAX_LEN: usize = 256;
/// Largest encoded [`LinkResponse`]: the payload, the AEAD tag and the framing.
pub const LINK_RESPONSE_MAX_LEN: usize = LINK_PAYLOAD_MAX_LEN + 256;

/// Why a link step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The link code does not parse.
    #[error(transparent)]
    Code(#[from] LinkCodeError),
    /// A request or response for another link.
    #[error("message is for link {got}, expected {expected}")]
    WrongLink {
        /// This link's id (hex).
        expected: String,
        /// The link id named (hex).
        got: String,
    },
    /// The request's proof does not match: whoever sent it does not know the code, or the key was
    /// swapped on the way.
    #[error("link proof does not verify")]
    BadProof,
    /// The response does not open: not sealed to this device, not made with this code, or
    /// tampered with.
    #[error("link response does not open")]
    OpenFailed,
    /// The payload is larger than [`LINK_PAYLOAD_MAX_LEN`].
    #[error("link payload of {got} bytes, limit {limit}")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
        /// Encoded size.
        got: usize,
    },
    /// A Topic Key in the payload does not hold (certificate or key).
    #[error("topic key {index} of the payload: {error}")]
    TopicKey {
        /// Position in the payload.
        index: usize,
        /// What is wrong with it.
        error: TopicKeyError,
    },
    /// The payload's endorsement is not one for this device (`devices.md` §4.3 step 5).
    #[error("endorsement in the payload: {0}")]
    Endorsement(DirectoryError),
    /// Bytes that are not a well-formed object.
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    /// A key could not be used.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

/// `HKDF-SHA256(secret, info = transcript(label, [link id]))`, 32 bytes.
fn derive(code: &LinkCode, label: &str) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(None, &code.secret()[..]);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = hk.expand(&transcript(label, &[&code.link_id()]), &mut out[..]);
    out
}

/// The proof that the sender of `kem_key` and `device_key` knows this code.
fn proof(
    code: &LinkCode,
    kem_key: &KemPublicKey,
    device_key: &DevicePublicKey,
) -> Result<[u8; 32], LinkError> {
    let key = derive(code, LABEL_LINK_PROOF_KEY);
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(&key[..]).map_err(|_| LinkError::BadProof)?;
    mac.update(&transcript(
        LABEL_LINK_PROOF,
        &[
            &code.link_id(),
            &kem_key.suite().id().to_be_bytes(),
            kem_key.as_bytes(),
            device_key.as_bytes(),
        ],
    ));
    Ok(mac.finalize().into_bytes().into())
}

fn check_link(code: &LinkCode, got: &[u8; LINK_ID_LEN]) -> Result<(), LinkError> {
    if *got != code.link_id() {
        return Err(LinkError::WrongLink {
            expected: hex_string(&code.link_id()),
            got: hex_string(got),
        });
    }
    Ok(())
}

/// The existing device's side of a link: holds the code until one request is accepted.
pub struct LinkOffer {
    code: LinkCode,
}

impl LinkOffer {
    /// A new offer with a fresh random code.
    #[allow(clippy::new_without_default)] // a fresh secret is not a "default"
    pub fn new() -> Self {
        Self::new_with(&mut Randomness::Os)
    }

    /// A new offer from the given randomness (test vectors use a fixed one).
    pub fn new_with(rng: &mut Randomness<'_>) -> Self {
        LinkOffer {
            code: LinkCode::generate(rng),
        }
    }

    /// The code to show to the user.
    pub fn code(&self) -> &LinkCode {
        &self.code
    }

    /// The link id.
    pub fn link_id(&self) -> [u8; LINK_ID_LEN] {
        self.code.link_id()
    }

    /// Checks the request's proof (constant time) and seals `payload` to the request's key.
    ///
    /// The offer is used up either way: a request with a bad proof means someone without the
    /// code is in the way, and the user should start again with a new code.
    pub fn accept(
        self,
        request: &LinkRequest,
        payload: &LinkPayload,
    ) -> Result<LinkResponse, LinkError> {
        self.accept_with(request, payload, &mut Randomness::Os)
    }

    /// [`Self::accept`] with the given randomness.
    pub fn accept_with(
        self,
        request: &LinkRequest,
        payload: &LinkPayload,
        rng: &mut Randomness<'_>,
    ) -> Result<LinkResponse, LinkError> {
        check_link(&self.code, &request.link_id)?;
        let expected = proof(&self.code, &request.kem_key, &request.device_key)?;
        if !bool::from(expected.ct_eq(&request.proof)) {
            return Err(LinkError::BadProof);
        }
        let plaintext = payload.to_bytes()?;
        let psk = derive(&self.code, LABEL_LINK_PSK);
        let link_id = self.code.link_id();
        let sealed = hpke::seal(
            &request.kem_key,
            SealPurpose::DeviceLink,
            &[&link_id],
            Some((&psk[..], &link_id)),
            &plaintext,
            rng,
        )?;
        Ok(LinkResponse { link_id, sealed })
    }
}

impl fmt::Debug for LinkOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkOffer")
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

/// The new device's side of a link: the code it was given and its fresh HPKE key.
pub struct LinkJoiner {
    code: LinkCode,
    kem: KemSecretKey,
    request: LinkRequest,
}

impl LinkJoiner {
    /// Parses the typed code and makes the request to send through the relay, for the new
    /// device's Device Key `device_key` (which the existing device will endorse).
    pub fn from_code(text: &str, device_key: &DevicePublicKey) -> Result<Self, LinkError> {
        Self::from_code_with(text, device_key, &mut Randomness::Os)
    }

    /// [`Self::from_code`] with the given randomness (test vectors use a fixed one): the HPKE key
    /// is `DeriveKeyPair` of its first 32 bytes.
    pub fn from_code_with(
        text: &str,
        device_key: &DevicePublicKey,
        rng: &mut Randomness<'_>,
    ) -> Result<Self, LinkError> {
        let code = LinkCode::parse(text)?;
        let ikm = Zeroizing::new(rng.array::<32>());
        let kem = KemSecretKey::derive(Suite::X25519Sha256ChaCha20Poly1305, &ikm);
        let request = LinkRequest {
            link_id: code.link_id(),
            kem_key: kem.public().clone(),
            device_key: device_key.clone(),
            proof: proof(&code, kem.public(), device_key)?,
        };
        Ok(LinkJoiner { code, kem, request })
    }

    /// The request to send.
    pub fn request(&self) -> &LinkRequest {
        &self.request
    }

    /// Opens the response and checks the payload, its endorsement included.
    pub fn open(self, response: &LinkResponse) -> Result<LinkPayload, LinkError> {
        check_link(&self.code, &response.link_id)?;
        let psk = derive(&self.code, LABEL_LINK_PSK);
        let link_id = self.code.link_id();
        let plaintext = hpke::open(
            &self.kem,
            &response.sealed,
            SealPurpose::DeviceLink,
            &[&link_id],
            Some((&psk[..], &link_id)),
        )
        .map_err(|_| LinkError::OpenFailed)?;
        let payload = LinkPayload::from_bytes(&plaintext)?;
        verify_endorsement(
            payload.endorsement.clone(),
            &payload.user,
            &self.request.device_key,
        )
        .map_err(LinkError::Endorsement)?;
        Ok(payload)
    }
}

impl fmt::Debug for LinkJoiner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkJoiner")
            .field("code", &self.code)
            .field("kem", &self.kem)
            .finish_non_exhaustive()
    }
}

/// The new device's request, as the relay passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    /// The link it is for.
    pub link_id: [u8; LINK_ID_LEN],
    /// The new device's fresh HPKE key, to seal the payload to.
    pub kem_key: KemPublicKey,
    /// The new device's Device Key, for the existing device to endorse.
    pub device_key: DevicePublicKey,
    /// HMAC proving that whoever sent `kem_key` and `device_key` knows the code.
    pub proof: [u8; 32],
}

/// `[1, link_id, suite, kem_key, device_key, proof]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct LinkRequestWire {
    version: u8,
    #[serde(with = "crate::wire::fixed_bytes")]
    link_id: [u8; LINK_ID_LEN],
    suite: u16,
    kem_key: ByteBuf,
    device_key: DevicePublicKey,
    #[serde(with = "crate::wire::fixed_bytes")]
    proof: [u8; 32],
}

impl LinkRequest {
    /// The wire form `[1, link_id, suite, kem_key, device_key, proof]`.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(&LinkRequestWire {
            version: VERSION,
            link_id: self.link_id,
            suite: self.kem_key.suite().id(),
            kem_key: ByteBuf::from(self.kem_key.as_bytes().to_vec()),
            device_key: self.device_key.clone(),
            proof: self.proof,
        })
    }

    /// Decodes the wire form; the key must be a valid key of a known suite.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, LinkError> {
        let w: LinkRequestWire = decode_versioned(bytes, LINK_REQUEST_MAX_LEN)?;
        let suite = Suite::from_id(w.suite)?;
        Ok(LinkRequest {
            link_id: w.link_id,
            kem_key: KemPublicKey::from_slice(suite, &w.kem_key)?,
            device_key: w.device_key,
            proof: w.proof,
        })
    }
}

/// The existing device's answer, as the relay passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkResponse {
    /// The link it is for.
    pub link_id: [u8; LINK_ID_LEN],
    /// The [`LinkPayload`], sealed in PSK mode to the request's key.
    pub sealed: SealedBox,
}

/// `[1, link_id, sealed]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct LinkResponseWire {
    version: u8,
    #[serde(with = "crate::wire::fixed_bytes")]
    link_id: [u8; LINK_ID_LEN],
    sealed: SealedBox,
}

impl LinkResponse {
    /// The wire form `[1, link_id, sealed]`.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(&LinkResponseWire {
            version: VERSION,
            link_id: self.link_id,
            sealed: self.sealed.clone(),
        })
    }

    /// Decodes the wire form.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, LinkError> {
        let w: LinkResponseWire = decode_versioned(bytes, LINK_RESPONSE_MAX_LEN)?;
        Ok(LinkResponse {
            link_id: w.link_id,
            sealed: w.sealed,
        })
    }
}

#[cfg(test)]
mod tests;

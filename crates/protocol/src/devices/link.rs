//! Linking a new device with a one-time link code (`federation-spec/devices.md` §4).
//!
//! The identity moves end-to-end from an existing device to a new one, through the homeserver
//! acting as an untrusted relay:
//!
//! 1. The existing device makes a [`LinkOffer`] and shows its [`LinkCode`]: an 8-byte link id
//!    (the relay's mailbox name), a 16-byte secret and a CRC-8, as 40 Crockford base32
//!    characters in groups of five.
//! 2. The new device parses the code ([`LinkJoiner::from_code`]), makes a fresh HPKE key and sends
//!    a [`LinkRequest`]: the link id, its public key and
//!    `proof = HMAC-SHA256(proof_key, transcript("rdv/v1/link-proof", [link id, suite, key]))`,
//!    where `proof_key = HKDF-SHA256(secret, info = transcript("rdv/v1/link-proof-key", [link id]))`.
//! 3. The existing device checks the proof in constant time — so the relay cannot substitute a key
//!    of its own — and seals the [`LinkPayload`] (user, Identity Key, Topic Keys, Message Keys) to
//!    the request's key with HPKE **PSK mode**:
//!    `psk = HKDF-SHA256(secret, info = transcript("rdv/v1/link-psk", [link id]))`, `psk_id = link
//!    id`, purpose [`SealPurpose::DeviceLink`], context `[link id]`. The PSK proves to the new
//!    device that the payload comes from whoever showed the code.
//! 4. The new device opens the [`LinkResponse`] ([`LinkJoiner::open`]) and checks the payload: the
//!    Topic Key certificates verify with the Identity Key it received and each private key matches
//!    its certificate.
//!
//! The relay sees the link id, the new device's public key, the proof (an HMAC under a key derived
//! from 128 secret bits: no offline guessing) and ciphertext. An offer is used at most once: a
//! failed proof means someone who does not know the code is in the way, and the user starts over.

use std::fmt;

use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::link_code::{LINK_ID_LEN, LinkCode, LinkCodeError};
use super::topic_keys::{TopicKeyError, verify_cert};
use super::{Secret32, encode_secret};
use crate::certs::TopicKeyCert;
use crate::crypto::hpke::{self, SealPurpose, SealedBox, Suite};
use crate::crypto::message_key::HmacSha256;
use crate::crypto::sign::hex_string;
use crate::crypto::transcript::{
    LABEL_LINK_PROOF, LABEL_LINK_PROOF_KEY, LABEL_LINK_PSK, transcript,
};
use crate::crypto::{
    CryptoError, IdentityKey, KemPublicKey, KemSecretKey, MessageKey, Randomness, TopicKey,
};
use crate::ids::{TopicId, UserId};
use crate::wire::{Signed, SignedBytes, VERSION, Verified, WireError, decode_versioned, encode};

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

/// The proof that the sender of `kem_key` knows this code.
fn proof(code: &LinkCode, kem_key: &KemPublicKey) -> Result<[u8; 32], LinkError> {
    let key = derive(code, LABEL_LINK_PROOF_KEY);
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(&key[..]).map_err(|_| LinkError::BadProof)?;
    mac.update(&transcript(
        LABEL_LINK_PROOF,
        &[
            &code.link_id(),
            &kem_key.suite().id().to_be_bytes(),
            kem_key.as_bytes(),
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
        let expected = proof(&self.code, &request.kem_key)?;
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
    /// Parses the typed code and makes the request to send through the relay.
    pub fn from_code(text: &str) -> Result<Self, LinkError> {
        let code = LinkCode::parse(text)?;
        let kem = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let request = LinkRequest {
            link_id: code.link_id(),
            kem_key: kem.public().clone(),
            proof: proof(&code, kem.public())?,
        };
        Ok(LinkJoiner { code, kem, request })
    }

    /// The request to send.
    pub fn request(&self) -> &LinkRequest {
        &self.request
    }

    /// Opens the response and checks the payload.
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
        LinkPayload::from_bytes(&plaintext)
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
    /// HMAC proving that whoever sent `kem_key` knows the code.
    pub proof: [u8; 32],
}

/// `[1, link_id, suite, kem_key, proof]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct LinkRequestWire {
    version: u8,
    #[serde(with = "crate::wire::fixed_bytes")]
    link_id: [u8; LINK_ID_LEN],
    suite: u16,
    kem_key: ByteBuf,
    #[serde(with = "crate::wire::fixed_bytes")]
    proof: [u8; 32],
}

impl LinkRequest {
    /// The wire form `[1, link_id, suite, kem_key, proof]`.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(&LinkRequestWire {
            version: VERSION,
            link_id: self.link_id,
            suite: self.kem_key.suite().id(),
            kem_key: ByteBuf::from(self.kem_key.as_bytes().to_vec()),
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

/// A Topic Key handed to a new device: its certificate and private key.
#[derive(Debug)]
pub struct LinkedTopicKey {
    /// The IK-signed certificate.
    pub cert: Verified<TopicKeyCert>,
    /// The private Topic Key.
    pub key: TopicKey,
}

/// A topic epoch's Message Key handed to a new device.
#[derive(Debug)]
pub struct LinkedMessageKey {
    /// The topic.
    pub topic: TopicId,
    /// The epoch.
    pub epoch: u32,
    /// The key.
    pub key: MessageKey,
}

/// Everything a new device needs to act as the user: secrets are zeroized on drop (by the key
/// types) and `Debug` prints only public parts and counts.
pub struct LinkPayload {
    /// The user.
    pub user: UserId,
    /// The user's Identity Key.
    pub identity: IdentityKey,
    /// The user's Topic Keys in use and made ahead of time.
    pub topic_keys: Vec<LinkedTopicKey>,
    /// The Message Keys of the epochs the user can read.
    pub message_keys: Vec<LinkedMessageKey>,
}

/// `[1, user, identity_seed, [* [cert, signing_seed, kem_secret]], [* [topic, epoch, key]]]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct PayloadWire {
    version: u8,
    user: UserId,
    identity_seed: Secret32,
    topic_keys: Vec<TopicKeyEntry>,
    message_keys: Vec<MessageKeyEntry>,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct TopicKeyEntry {
    cert: SignedBytes,
    signing_seed: Secret32,
    kem_secret: Secret32,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct MessageKeyEntry {
    topic: TopicId,
    epoch: u32,
    key: Secret32,
}

impl LinkPayload {
    /// A payload with the identity only; push Topic Keys and Message Keys to the lists.
    pub fn new(user: UserId, identity: IdentityKey) -> Self {
        LinkPayload {
            user,
            identity,
            topic_keys: Vec::new(),
            message_keys: Vec::new(),
        }
    }

    /// The CBOR encoding, in a zeroized buffer. Refused above [`LINK_PAYLOAD_MAX_LEN`].
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, LinkError> {
        let wire = PayloadWire {
            version: VERSION,
            user: self.user.clone(),
            identity_seed: Secret32(self.identity.seed()),
            topic_keys: self
                .topic_keys
                .iter()
                .map(|t| TopicKeyEntry {
                    cert: t.cert.signed_bytes().clone(),
                    signing_seed: Secret32(t.key.signing().seed()),
                    kem_secret: Secret32(t.key.kem().to_bytes()),
                })
                .collect(),
            message_keys: self
                .message_keys
                .iter()
                .map(|m| MessageKeyEntry {
                    topic: m.topic.clone(),
                    epoch: m.epoch,
                    key: Secret32::new(m.key.as_bytes()),
                })
                .collect(),
        };
        let bytes = encode_secret(&wire)?;
        if bytes.len() > LINK_PAYLOAD_MAX_LEN {
            return Err(LinkError::PayloadTooLarge {
                limit: LINK_PAYLOAD_MAX_LEN,
                got: bytes.len(),
            });
        }
        Ok(bytes)
    }

    /// Decodes a payload and checks it: every Topic Key certificate verifies with the Identity Key
    /// in the payload and names its user, and every private Topic Key matches its certificate.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LinkError> {
        let w: PayloadWire = decode_versioned(bytes, LINK_PAYLOAD_MAX_LEN)?;
        let identity = IdentityKey::from_seed(&w.identity_seed.0);
        let mut topic_keys = Vec::with_capacity(w.topic_keys.len());
        for (index, t) in w.topic_keys.into_iter().enumerate() {
            let key = topic_key_entry(t, &identity, &w.user)
                .map_err(|error| LinkError::TopicKey { index, error })?;
            topic_keys.push(key);
        }
        let message_keys = w
            .message_keys
            .into_iter()
            .map(|m| {
                Ok(LinkedMessageKey {
                    topic: m.topic,
                    epoch: m.epoch,
                    key: MessageKey::from_slice(&m.key.0[..])?,
                })
            })
            .collect::<Result<Vec<_>, CryptoError>>()?;
        Ok(LinkPayload {
            user: w.user,
            identity,
            topic_keys,
            message_keys,
        })
    }
}

fn topic_key_entry(
    t: TopicKeyEntry,
    identity: &IdentityKey,
    user: &UserId,
) -> Result<LinkedTopicKey, TopicKeyError> {
    let cert = verify_cert(Signed::from_signed_bytes(t.cert)?, identity.public(), user)?;
    let certified = cert.topic_key()?;
    let suite = Suite::from_id(cert.suite).map_err(TopicKeyError::Crypto)?;
    let key = TopicKey::from_bytes(suite, &t.signing_seed.0[..], &t.kem_secret.0[..])
        .map_err(TopicKeyError::Crypto)?;
    if *key.public() != certified {
        return Err(TopicKeyError::KeyMismatch {
            expected: certified.key_id(),
            got: key.public().key_id(),
        });
    }
    Ok(LinkedTopicKey { cert, key })
}

impl fmt::Debug for LinkPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkPayload")
            .field("user", &self.user)
            .field("identity", self.identity.public())
            .field("topic_keys", &self.topic_keys.len())
            .field("message_keys", &self.message_keys.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::transcript::LABEL_MESSAGE;
    use crate::devices::link_code::{LINK_CODE_LEN, LINK_SECRET_LEN};

    const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;

    fn alice() -> UserId {
        "@alice:a.example".parse().unwrap()
    }

    fn payload(ik: &IdentityKey) -> LinkPayload {
        let mut p = LinkPayload::new(alice(), IdentityKey::from_seed(&ik.seed()));
        for created in 0..3 {
            let key = TopicKey::generate(SUITE);
            let cert = Signed::sign(TopicKeyCert::new(alice(), key.public(), created), ik);
            p.topic_keys.push(LinkedTopicKey { cert, key });
        }
        let server = "a.example".parse().unwrap();
        for epoch in 0..4 {
            p.message_keys.push(LinkedMessageKey {
                topic: TopicId::random(&server),
                epoch,
                key: MessageKey::generate(),
            });
        }
        p
    }

    /// What the relay does: pass the bytes on.
    fn relay_request(r: &LinkRequest) -> LinkRequest {
        LinkRequest::from_wire(&r.to_wire()).unwrap()
    }

    fn relay_response(r: &LinkResponse) -> LinkResponse {
        LinkResponse::from_wire(&r.to_wire()).unwrap()
    }

    #[test]
    fn full_round_trip_through_the_relay() {
        let ik = IdentityKey::generate();
        let sent = payload(&ik);
        let offer = LinkOffer::new();
        let text = offer.code().to_text();
        assert_eq!(text.len(), LINK_CODE_LEN);
        let joiner = LinkJoiner::from_code(&text).unwrap();
        assert_eq!(joiner.request().link_id, offer.link_id());
        let response = offer
            .accept(&relay_request(joiner.request()), &sent)
            .unwrap();
        let got = joiner.open(&relay_response(&response)).unwrap();

        assert_eq!(got.user, alice());
        assert_eq!(got.identity.public(), ik.public());
        assert_eq!(got.topic_keys.len(), 3);
        for (a, b) in sent.topic_keys.iter().zip(&got.topic_keys) {
            assert_eq!(a.cert.signed_bytes(), b.cert.signed_bytes());
            assert_eq!(a.key.public(), b.key.public());
            let sig = b.key.signing().sign(LABEL_MESSAGE, &[b"x"]);
            a.cert
                .topic_key()
                .unwrap()
                .signing
                .verify(LABEL_MESSAGE, &[b"x"], &sig)
                .unwrap();
            assert_eq!(a.key.kem().to_bytes(), b.key.kem().to_bytes());
        }
        assert_eq!(got.message_keys.len(), 4);
        for (a, b) in sent.message_keys.iter().zip(&got.message_keys) {
            assert_eq!(
                (&a.topic, a.epoch, a.key.as_bytes()),
                (&b.topic, b.epoch, b.key.as_bytes())
            );
        }
        // What the relay saw holds no secret: the link id, the joiner's key, the proof, a box.
        let seen = [joiner_wire_of(&text), response.to_wire()].concat();
        assert!(!seen.windows(32).any(|w| w == &ik.seed()[..]));
    }

    fn joiner_wire_of(text: &str) -> Vec<u8> {
        LinkJoiner::from_code(text).unwrap().request().to_wire()
    }

    #[test]
    fn a_relay_that_swaps_the_key_is_caught() {
        let ik = IdentityKey::generate();
        let offer = LinkOffer::new();
        let joiner = LinkJoiner::from_code(&offer.code().to_text()).unwrap();
        // The relay keeps the proof and puts in a key of its own.
        let relay_key = KemSecretKey::generate(SUITE);
        let mut swapped = relay_request(joiner.request());
        swapped.kem_key = relay_key.public().clone();
        assert_eq!(
            offer.accept(&swapped, &payload(&ik)).unwrap_err(),
            LinkError::BadProof
        );

        // Or changes the link id.
        let offer = LinkOffer::new();
        let joiner = LinkJoiner::from_code(&offer.code().to_text()).unwrap();
        let mut moved = relay_request(joiner.request());
        moved.link_id[0] ^= 1;
        assert!(matches!(
            offer.accept(&moved, &payload(&ik)),
            Err(LinkError::WrongLink { .. })
        ));

        // Or flips a bit of the proof.
        let offer = LinkOffer::new();
        let joiner = LinkJoiner::from_code(&offer.code().to_text()).unwrap();
        let mut bent = relay_request(joiner.request());
        bent.proof[31] ^= 1;
        assert_eq!(
            offer.accept(&bent, &payload(&ik)).unwrap_err(),
            LinkError::BadProof
        );
    }

    #[test]
    fn a_code_with_the_right_id_but_another_secret_fails_the_proof() {
        let ik = IdentityKey::generate();
        let offer = LinkOffer::new();
        let guess = LinkCode::from_parts(offer.link_id(), Zeroizing::new([0u8; LINK_SECRET_LEN]));
        let joiner = LinkJoiner::from_code(&guess.to_text()).unwrap();
        assert_eq!(
            offer.accept(joiner.request(), &payload(&ik)).unwrap_err(),
            LinkError::BadProof
        );
    }

    #[test]
    fn another_codes_joiner_is_refused() {
        let ik = IdentityKey::generate();
        let offer = LinkOffer::new();
        let joiner = LinkJoiner::from_code(&LinkOffer::new().code().to_text()).unwrap();
        assert!(matches!(
            offer.accept(joiner.request(), &payload(&ik)),
            Err(LinkError::WrongLink { .. })
        ));
    }

    #[test]
    fn responses_open_only_for_their_joiner_and_untouched() {
        let ik = IdentityKey::generate();
        let offer = LinkOffer::new();
        let text = offer.code().to_text();
        let joiner = LinkJoiner::from_code(&text).unwrap();
        // A second joiner with the same code (the relay's, or a second device of the user).
        let other = LinkJoiner::from_code(&text).unwrap();
        let response = offer.accept(joiner.request(), &payload(&ik)).unwrap();
        assert_eq!(other.open(&response).unwrap_err(), LinkError::OpenFailed);

        let joiner = || LinkJoiner::from_code(&text);
        let mut tampered = response.clone();
        tampered.sealed.ciphertext[10] ^= 1;
        let j = joiner().unwrap();
        assert_eq!(j.open(&tampered).unwrap_err(), LinkError::OpenFailed);
        let mut moved = response.clone();
        moved.link_id[7] ^= 1;
        assert!(matches!(
            joiner().unwrap().open(&moved),
            Err(LinkError::WrongLink { .. })
        ));
    }

    #[test]
    fn a_relay_cannot_make_a_response_without_the_code() {
        // The relay knows the joiner's key and link id, and seals its own payload: in base mode,
        // or in PSK mode with a PSK it guessed.
        let offer = LinkOffer::new();
        let text = offer.code().to_text();
        let joiner = LinkJoiner::from_code(&text).unwrap();
        let fake = payload(&IdentityKey::generate()).to_bytes().unwrap();
        let link_id = joiner.request().link_id;
        for psk in [None, Some(([5u8; 32], link_id))] {
            let sealed = hpke::seal(
                &joiner.request().kem_key,
                SealPurpose::DeviceLink,
                &[&link_id],
                psk.as_ref().map(|(k, id)| (&k[..], &id[..])),
                &fake,
                &mut Randomness::Os,
            )
            .unwrap();
            let j = LinkJoiner {
                code: LinkCode::parse(&text).unwrap(),
                kem: KemSecretKey::from_bytes(SUITE, &joiner.kem.to_bytes()[..]).unwrap(),
                request: joiner.request().clone(),
            };
            assert_eq!(
                j.open(&LinkResponse { link_id, sealed }).unwrap_err(),
                LinkError::OpenFailed
            );
        }
    }

    #[test]
    fn payload_contents_are_checked() {
        let ik = IdentityKey::generate();
        // A topic key certified by another identity key.
        let mut p = payload(&ik);
        let key = TopicKey::generate(SUITE);
        let cert = Signed::sign(
            TopicKeyCert::new(alice(), key.public(), 0),
            &IdentityKey::generate(),
        );
        p.topic_keys.push(LinkedTopicKey { cert, key });
        assert_eq!(
            LinkPayload::from_bytes(&p.to_bytes().unwrap()).unwrap_err(),
            LinkError::TopicKey {
                index: 3,
                error: TopicKeyError::BadSignature
            }
        );
        // A private key that is not the certified one.
        let mut p = payload(&ik);
        p.topic_keys[1].key = TopicKey::generate(SUITE);
        assert!(matches!(
            LinkPayload::from_bytes(&p.to_bytes().unwrap()),
            Err(LinkError::TopicKey {
                index: 1,
                error: TopicKeyError::KeyMismatch { .. }
            })
        ));
        // Another user's certificate under this identity.
        let mut p = payload(&ik);
        p.user = "@bob:a.example".parse().unwrap();
        assert!(matches!(
            LinkPayload::from_bytes(&p.to_bytes().unwrap()),
            Err(LinkError::TopicKey {
                index: 0,
                error: TopicKeyError::WrongUser { .. }
            })
        ));
        // Truncations never decode.
        let ok = payload(&ik).to_bytes().unwrap();
        assert!(LinkPayload::from_bytes(&ok).is_ok());
        for cut in (0..ok.len()).step_by(7) {
            assert!(LinkPayload::from_bytes(&ok[..cut]).is_err());
        }
    }

    #[test]
    fn oversized_payloads_are_refused_before_sealing() {
        let ik = IdentityKey::generate();
        let mut p = LinkPayload::new(alice(), IdentityKey::from_seed(&ik.seed()));
        let topic = TopicId::random(&"a.example".parse().unwrap());
        // About 80 bytes per entry: 60 000 entries is over 4 MiB.
        for epoch in 0..60_000 {
            p.message_keys.push(LinkedMessageKey {
                topic: topic.clone(),
                epoch,
                key: MessageKey::generate(),
            });
        }
        assert!(matches!(
            p.to_bytes(),
            Err(LinkError::PayloadTooLarge {
                limit: LINK_PAYLOAD_MAX_LEN,
                ..
            })
        ));
        let offer = LinkOffer::new();
        let joiner = LinkJoiner::from_code(&offer.code().to_text()).unwrap();
        assert!(matches!(
            offer.accept(joiner.request(), &p),
            Err(LinkError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn debug_shows_no_secrets() {
        let ik = IdentityKey::generate();
        let offer = LinkOffer::new();
        let text = offer.code().to_text();
        let secret_hex = hex_string(&offer.code().secret()[..]);
        let joiner = LinkJoiner::from_code(&text).unwrap();
        let kem_hex = hex_string(&joiner.kem.to_bytes()[..]);
        let p = payload(&ik);
        let mut secrets = vec![
            text.to_string(),
            text.replace('-', ""),
            secret_hex,
            kem_hex,
            hex_string(&ik.seed()[..]),
        ];
        for t in &p.topic_keys {
            secrets.push(hex_string(&t.key.signing().seed()[..]));
            secrets.push(hex_string(&t.key.kem().to_bytes()[..]));
        }
        for m in &p.message_keys {
            secrets.push(hex_string(m.key.as_bytes()));
        }
        let shown = format!(
            "{offer:?} {:?} {joiner:?} {p:?} {:?} {:?}",
            offer.code(),
            p.topic_keys,
            p.message_keys
        );
        for s in &secrets {
            assert!(!shown.contains(s.as_str()), "Debug shows a secret: {shown}");
        }
        // The public parts are there.
        assert!(shown.contains(&hex_string(&offer.link_id())));
        assert!(shown.contains(&hex_string(ik.public().as_bytes())));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_into_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = LinkRequest::from_wire(&bytes);
                let _ = LinkResponse::from_wire(&bytes);
                let _ = LinkPayload::from_bytes(&bytes);
            }

            #[test]
            fn mutated_requests_fail_the_proof(pos in 0usize..200, bit in 0u8..8) {
                let offer = LinkOffer::new();
                let joiner = LinkJoiner::from_code(&offer.code().to_text()).unwrap();
                let mut wire = joiner.request().to_wire();
                let pos = pos % wire.len();
                wire[pos] ^= 1 << bit;
                if let Some(r) = LinkRequest::from_wire(&wire).ok().filter(|r| r != joiner.request()) {
                    prop_assert!(offer.accept(&r, &LinkPayload::new(alice(), IdentityKey::generate())).is_err());
                }
            }
        }
    }
}

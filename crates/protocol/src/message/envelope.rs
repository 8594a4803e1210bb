//! The message envelope: encryption, tag, signature and their checks.

use chacha20::XChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use hmac::Mac;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{MAX_MESSAGE_LEN, MAX_PLAINTEXT, MessageError, MessageTag};
use crate::crypto::sign::{SecretSigningKey, TopicSigning};
use crate::crypto::transcript::{LABEL_MESSAGE, LABEL_MESSAGE_TAG, feed};
use crate::crypto::{EpochKeys, Randomness, Signature, TopicSigningPublicKey};
use crate::ids::{Epoch, MemberIndex, TopicId};
use crate::tlog::{LogHash, TreeSize};
use crate::wire::{
    VERSION, WireError, check_version, decode, decode_versioned, encode, fixed_bytes,
};

/// Largest encoded header accepted: the nonce and the CBOR fields.
const MAX_HEADER_LEN: usize = NONCE_LEN + 32;
/// XChaCha20 nonce length.
const NONCE_LEN: usize = 24;

/// A message header. On the wire: `nonce(24) ‖ CBOR [1, epoch, sender, seen]`: the nonce is
/// raw bytes in front of the versioned fields ([`HeaderWire`]), which saves its byte-string
/// framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// The topic epoch whose Message Key encrypted the message.
    pub epoch: Epoch,
    /// The sender's member index in the topic (not a device, not a user id: small and opaque).
    pub sender: MemberIndex,
    /// XChaCha20 nonce, random per message.
    pub nonce: [u8; 24],
    /// The log size the sender had seen when it posted (causality; catches withheld entries).
    pub seen: TreeSize,
}

/// The versioned CBOR part of the header: `[1, epoch, sender, seen]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct HeaderWire {
    version: u8,
    epoch: Epoch,
    sender: MemberIndex,
    seen: TreeSize,
}

impl MessageHeader {
    /// The header's bytes, as signed and tagged.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.nonce.to_vec();
        out.extend_from_slice(&encode(&HeaderWire {
            version: VERSION,
            epoch: self.epoch,
            sender: self.sender,
            seen: self.seen,
        }));
        out
    }

    /// Parses header bytes: length first, then the version, then the fields.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_HEADER_LEN {
            return Err(WireError::TooLarge {
                limit: MAX_HEADER_LEN,
                got: bytes.len(),
            });
        }
        if bytes.len() < NONCE_LEN {
            return Err(WireError::Malformed("header shorter than its nonce".into()));
        }
        let (nonce, fields) = bytes.split_at(NONCE_LEN);
        let f: HeaderWire = decode_versioned(fields, MAX_HEADER_LEN)?;
        check_version(f.version)?;
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        Ok(MessageHeader {
            epoch: f.epoch,
            sender: f.sender,
            nonce: n,
            seen: f.seen,
        })
    }
}

/// Wire form: `[header, ciphertext, tag ‖ signature]` (the last one 96 bytes).
#[derive(Serialize_tuple, Deserialize_tuple)]
struct MessageWire {
    #[serde(with = "serde_bytes")]
    header: Vec<u8>,
    #[serde(with = "serde_bytes")]
    ciphertext: Vec<u8>,
    #[serde(with = "fixed_bytes")]
    auth: [u8; 96],
}

/// A message as decoded from the network: well-formed, but nothing is verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIn {
    header: MessageHeader,
    header_bytes: Vec<u8>,
    ciphertext: Vec<u8>,
    /// `SHA-256(ciphertext)`, computed once: the signature and the leaf cover it.
    ciphertext_hash: [u8; 32],
    tag: MessageTag,
    signature: Signature,
}

impl MessageIn {
    /// Decodes a message: size limit first, then the header's version, then the rest.
    pub fn from_wire(bytes: &[u8]) -> Result<MessageIn, MessageError> {
        let wire: MessageWire = decode(bytes, MAX_MESSAGE_LEN)?;
        let header = MessageHeader::from_bytes(&wire.header)?;
        if wire.ciphertext.len() > MAX_PLAINTEXT {
            return Err(MessageError::TooLarge {
                limit: MAX_PLAINTEXT,
                got: wire.ciphertext.len(),
            });
        }
        Ok(MessageIn {
            header,
            header_bytes: wire.header,
            ciphertext_hash: Sha256::digest(&wire.ciphertext).into(),
            ciphertext: wire.ciphertext,
            tag: MessageTag(fixed_part(&wire.auth[..32])),
            signature: Signature(fixed_part(&wire.auth[32..])),
        })
    }

    /// The header (unverified).
    pub fn header(&self) -> &MessageHeader {
        &self.header
    }

    /// The data of the message's tag-log leaf, computed from the bytes alone, before any check
    /// (`federation-spec/protocol.md` §8.1): `0x01 ‖ header ‖ tag ‖ SHA-256(ciphertext) ‖
    /// signature`. It commits to everything the signature covers but the root at `seen`, so a
    /// signed log holding a message whose signature fails on the log's own root convicts its
    /// host (`tag-log.md` §8.4).
    pub fn leaf_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.header_bytes.len() + 32 + 32 + 64);
        out.push(crate::topic::LEAF_MESSAGE);
        out.extend_from_slice(&self.header_bytes);
        out.extend_from_slice(&self.tag.0);
        out.extend_from_slice(&self.ciphertext_hash);
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// The tag (unverified).
    pub fn tag(&self) -> &MessageTag {
        &self.tag
    }

    /// Checks the sender's signature over the envelope and `seen_root`, the verifier's own root
    /// of the log at the header's `seen` size (`federation-spec/protocol.md` §6.4: the root is
    /// not sent, so a message signed over another branch of the log fails here). The caller
    /// (the topic state machine) picks the key from the sender index, the root from its own log,
    /// and checks the sender's rights.
    pub fn verify(
        self,
        topic: &TopicId,
        sender_key: &TopicSigningPublicKey,
        seen_root: &LogHash,
    ) -> Result<Message, MessageError> {
        sender_key
            .verify(
                LABEL_MESSAGE,
                &[
                    topic.as_str().as_bytes(),
                    &self.header_bytes,
                    &self.tag.0,
                    &self.ciphertext_hash,
                    seen_root.as_bytes(),
                ],
                &self.signature,
            )
            .map_err(|_| MessageError::BadSignature)?;
        Ok(Message(self))
    }

    /// The signature (unverified).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

/// A message whose sender signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message(MessageIn);

impl Message {
    /// The header.
    pub fn header(&self) -> &MessageHeader {
        &self.0.header
    }

    /// The Message Tag.
    pub fn tag(&self) -> &MessageTag {
        &self.0.tag
    }

    /// The ciphertext length.
    pub fn ciphertext_len(&self) -> usize {
        self.0.ciphertext.len()
    }

    /// The sender's signature.
    pub fn signature(&self) -> &Signature {
        &self.0.signature
    }

    /// The wire form, byte for byte as it was signed.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut auth = [0u8; 96];
        auth[..32].copy_from_slice(&self.0.tag.0);
        auth[32..].copy_from_slice(&self.0.signature.0);
        encode(&MessageWire {
            header: self.0.header_bytes.clone(),
            ciphertext: self.0.ciphertext.clone(),
            auth,
        })
    }

    /// The data of the message's tag-log leaf ([`MessageIn::leaf_data`]).
    pub fn leaf_data(&self) -> Vec<u8> {
        self.0.leaf_data()
    }

    /// Checks the tag (constant time) and, only if it matches, decrypts.
    pub fn open(
        &self,
        topic: &TopicId,
        keys: &EpochKeys,
    ) -> Result<Zeroizing<Vec<u8>>, MessageError> {
        if keys.epoch() != self.0.header.epoch {
            return Err(MessageError::UnknownEpoch(self.0.header.epoch));
        }
        let expected = compute_tag(keys, topic, &self.0.header_bytes, &self.0.ciphertext);
        if !bool::from(expected.0.ct_eq(&self.0.tag.0)) {
            return Err(MessageError::BadTag);
        }
        let mut plaintext = Zeroizing::new(self.0.ciphertext.clone());
        apply_keystream(keys, &self.0.header.nonce, &mut plaintext);
        Ok(plaintext)
    }
}

/// Copies a slice whose length the caller fixed into an array.
fn fixed_part<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn compute_tag(keys: &EpochKeys, topic: &TopicId, header: &[u8], ciphertext: &[u8]) -> MessageTag {
    let mut mac = keys.tag_mac.clone();
    feed(
        LABEL_MESSAGE_TAG,
        &[topic.as_str().as_bytes(), header, ciphertext],
        |c| mac.update(c),
    );
    MessageTag(mac.finalize().into_bytes().into())
}

fn apply_keystream(keys: &EpochKeys, nonce: &[u8; 24], data: &mut [u8]) {
    let key: &[u8; 32] = &keys.enc_key;
    let mut cipher = XChaCha20::new(key.into(), nonce.into());
    cipher.apply_keystream(data);
}

/// Encrypts, tags and signs `plaintext` for the topic's current epoch. `seen` is the size of the
/// log the sender verified and `seen_root` its root there: the signature covers it
/// (`federation-spec/protocol.md` §6.4), the message does not carry it.
pub fn encrypt(
    topic: &TopicId,
    keys: &EpochKeys,
    sender: MemberIndex,
    sender_key: &SecretSigningKey<TopicSigning>,
    seen: TreeSize,
    seen_root: &LogHash,
    plaintext: &[u8],
) -> Result<Message, MessageError> {
    encrypt_with(
        topic,
        keys,
        sender,
        sender_key,
        (seen, seen_root),
        plaintext,
        &mut Randomness::Os,
    )
}

/// [`encrypt`] with explicit randomness (test vectors use a fixed one); `seen` is the size and
/// root of the log the sender verified.
pub fn encrypt_with(
    topic: &TopicId,
    keys: &EpochKeys,
    sender: MemberIndex,
    sender_key: &SecretSigningKey<TopicSigning>,
    (seen, seen_root): (TreeSize, &LogHash),
    plaintext: &[u8],
    rng: &mut Randomness<'_>,
) -> Result<Message, MessageError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(MessageError::TooLarge {
            limit: MAX_PLAINTEXT,
            got: plaintext.len(),
        });
    }
    let header = MessageHeader {
        epoch: keys.epoch(),
        sender,
        nonce: rng.array(),
        seen,
    };
    let header_bytes = header.to_bytes();
    let mut ciphertext = plaintext.to_vec();
    apply_keystream(keys, &header.nonce, &mut ciphertext);
    let tag = compute_tag(keys, topic, &header_bytes, &ciphertext);
    let ciphertext_hash: [u8; 32] = Sha256::digest(&ciphertext).into();
    let signature = sender_key.sign(
        LABEL_MESSAGE,
        &[
            topic.as_str().as_bytes(),
            &header_bytes,
            &tag.0,
            &ciphertext_hash,
            seen_root.as_bytes(),
        ],
    );
    Ok(Message(MessageIn {
        header,
        header_bytes,
        ciphertext,
        ciphertext_hash,
        tag,
        signature,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{MessageKey, Suite, TopicKey};

    /// A stand-in for the root of some log at `size`.
    fn root(size: u64) -> LogHash {
        crate::tlog::leaf_hash(&size.to_be_bytes())
    }

    fn setup() -> (TopicId, EpochKeys, TopicKey) {
        let topic = TopicId::random(&"a.example".parse().unwrap());
        let keys = MessageKey::generate().epoch_keys(&topic, Epoch(3));
        (
            topic,
            keys,
            TopicKey::generate(Suite::X25519Sha256ChaCha20Poly1305),
        )
    }

    #[test]
    fn round_trip() {
        let (topic, keys, tk) = setup();
        let msg = encrypt(
            &topic,
            &keys,
            MemberIndex(2),
            tk.signing(),
            TreeSize(10),
            &root(10),
            b"hello topic",
        )
        .unwrap();
        let wire = msg.to_wire();
        let back = MessageIn::from_wire(&wire)
            .unwrap()
            .verify(&topic, &tk.public().signing, &root(10))
            .unwrap();
        assert_eq!(back, msg);
        assert_eq!(&back.open(&topic, &keys).unwrap()[..], b"hello topic");
        assert_eq!(back.header().epoch, 3);
        assert_eq!(back.header().sender, 2);
        assert_eq!(back.header().seen, 10);
    }

    #[test]
    fn overhead_within_budget() {
        let (topic, keys, tk) = setup();
        // Epoch 3, sender 1000, seen 60 000: 136 bytes; small values: 132.
        let msg = encrypt(
            &topic,
            &keys,
            MemberIndex(1000),
            tk.signing(),
            TreeSize(60_000),
            &root(60_000),
            &[0u8; 100],
        )
        .unwrap();
        assert_eq!(msg.to_wire().len() - 100, 136);
        let msg = encrypt(
            &topic,
            &keys,
            MemberIndex(1),
            tk.signing(),
            TreeSize(10),
            &root(10),
            &[0u8; 100],
        )
        .unwrap();
        assert_eq!(msg.to_wire().len() - 100, 132);
    }

    #[test]
    fn each_alteration_is_caught() {
        let (topic, keys, tk) = setup();
        let msg = encrypt(
            &topic,
            &keys,
            MemberIndex(2),
            tk.signing(),
            TreeSize(10),
            &root(10),
            b"hello topic",
        )
        .unwrap();
        let wire = msg.to_wire();
        // Flip every byte in turn: the result must fail to decode, fail the signature, or fail the tag.
        for i in 0..wire.len() {
            let mut w = wire.clone();
            w[i] ^= 0x01;
            let outcome = MessageIn::from_wire(&w)
                .and_then(|m| m.verify(&topic, &tk.public().signing, &root(10)))
                .and_then(|m| m.open(&topic, &keys).map(|_| ()));
            assert!(outcome.is_err(), "flip at byte {i} went unnoticed");
        }
        // Another topic: the signature covers the topic id.
        let other = TopicId::random(&"a.example".parse().unwrap());
        assert_eq!(
            MessageIn::from_wire(&wire)
                .unwrap()
                .verify(&other, &tk.public().signing, &root(10)),
            Err(MessageError::BadSignature)
        );
    }

    #[test]
    fn signature_binds_the_root_at_seen() {
        let (topic, keys, tk) = setup();
        let msg = encrypt(
            &topic,
            &keys,
            MemberIndex(2),
            tk.signing(),
            TreeSize(10),
            &root(10),
            b"hello topic",
        )
        .unwrap();
        let wire = msg.to_wire();
        let check = |r: &LogHash| {
            MessageIn::from_wire(&wire)
                .unwrap()
                .verify(&topic, &tk.public().signing, r)
        };
        assert!(check(&root(10)).is_ok());
        // Another branch's root at the same size, or the root at another size: refused.
        assert_eq!(check(&root(11)), Err(MessageError::BadSignature));
        let mut other = root(10);
        other.0[31] ^= 1;
        assert_eq!(check(&other), Err(MessageError::BadSignature));
        // Nothing travels for it: the overhead is unchanged (see `overhead_within_budget`).
        assert_eq!(msg.to_wire().len() - 11, 131);
    }

    #[test]
    fn tag_checked_with_the_key() {
        let (topic, keys, tk) = setup();
        let msg = encrypt(
            &topic,
            &keys,
            MemberIndex(2),
            tk.signing(),
            TreeSize(10),
            &root(10),
            b"x",
        )
        .unwrap();
        let wrong = MessageKey::generate().epoch_keys(&topic, Epoch(3));
        assert_eq!(msg.open(&topic, &wrong), Err(MessageError::BadTag));
        let other_epoch = MessageKey::generate().epoch_keys(&topic, Epoch(4));
        assert_eq!(
            msg.open(&topic, &other_epoch),
            Err(MessageError::UnknownEpoch(Epoch(3)))
        );
    }

    #[test]
    fn oversize_refused() {
        let (topic, keys, tk) = setup();
        assert!(matches!(
            encrypt(
                &topic,
                &keys,
                MemberIndex(0),
                tk.signing(),
                TreeSize(0),
                &root(0),
                &vec![0; MAX_PLAINTEXT + 1]
            ),
            Err(MessageError::TooLarge { .. })
        ));
        assert!(
            encrypt(
                &topic,
                &keys,
                MemberIndex(0),
                tk.signing(),
                TreeSize(0),
                &root(0),
                &vec![0; MAX_PLAINTEXT]
            )
            .is_ok()
        );
    }
}

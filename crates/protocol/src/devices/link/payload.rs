//! The link payload: the identity, Topic Keys and Message Keys a new device receives
//! (`federation-spec/devices.md` §4).

use std::fmt;

use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use zeroize::Zeroizing;

use super::{LINK_PAYLOAD_MAX_LEN, LinkError};
use crate::certs::{DeviceEndorsement, TopicKeyCert};
use crate::crypto::hpke::Suite;
use crate::crypto::{CryptoError, IdentityKey, MessageKey, TopicKey};
use crate::devices::topic_keys::{TopicKeyError, verify_cert};
use crate::devices::{Secret32, encode_secret};
use crate::ids::{Epoch, TopicId, UserId};
use crate::wire::{Signed, SignedBytes, VERSION, Verified, decode_versioned};

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
    pub epoch: Epoch,
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
    /// The existing device's endorsement of the new device's Device Key (`devices.md` §2),
    /// checked by [`super::LinkJoiner::open`]; the new device sends it with its certificate.
    pub endorsement: Signed<DeviceEndorsement>,
    /// The user's Topic Keys in use and made ahead of time.
    pub topic_keys: Vec<LinkedTopicKey>,
    /// The Message Keys of the epochs the user can read.
    pub message_keys: Vec<LinkedMessageKey>,
}

/// `[1, user, identity_seed, endorsement, [* [cert, signing_seed, kem_secret]],
/// [* [topic, epoch, key]]]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct PayloadWire {
    version: u8,
    user: UserId,
    identity_seed: Secret32,
    endorsement: SignedBytes,
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
    epoch: Epoch,
    key: Secret32,
}

impl LinkPayload {
    /// A payload with the identity and the endorsement only; push Topic Keys and Message Keys to
    /// the lists.
    pub fn new(
        user: UserId,
        identity: IdentityKey,
        endorsement: Signed<DeviceEndorsement>,
    ) -> Self {
        LinkPayload {
            user,
            identity,
            endorsement,
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
            endorsement: self.endorsement.signed_bytes().clone(),
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
        let endorsement = Signed::from_signed_bytes(w.endorsement)?;
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
            endorsement,
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

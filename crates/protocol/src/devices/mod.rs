//! Multi-device key handling (`federation-spec/devices.md`).
//!
//! A user is one Identity Key (IK) and any number of devices. This module holds the pieces
//! of protocol that involve more than one device of the same user; the homeserver and the client
//! both build on them, so each rule is written once.
//!
//! - [`directory`]: a user's set of devices. The IK certifies every Device Key (DK) and revokes
//!   them; [`DeviceDirectory`] accepts only IK-signed certificates that name its user and never
//!   takes back a revoked key, and a new device only with an active device's endorsement. The homeserver keeps one per local user (to enforce), every device
//!   keeps one for its own user (to check what the homeserver tells it).
//! - [`topic_keys`]: Topic Keys made ahead of time. A device makes a batch of Topic Keys (TK); for
//!   each it uploads an IK-signed [`crate::certs::TopicKeyCert`] and, for every *other* device of
//!   the user, the private TK sealed with HPKE to one Device Pre Key (DPK) of that device. The
//!   making device checks the whole chain IK → device certificate → DK-signed pre key itself, so
//!   a homeserver cannot slip in a key of its own. The receiving device opens its delivery with the
//!   DPK's private key and checks that what it got is the certified key.
//! - [`identity_delivery`]: after an Identity Key rotation, the new IK sealed to one pre key of
//!   every other device, checked like a batch of one Topic Key (`directory.md` §8).
//! - [`link_code`]: the human-typable one-time code (link id, 128-bit secret, CRC-8 that catches
//!   every single typo), parsed strictly.
//! - [`link`]: adding a device. An existing device shows a one-time link code; the new device types
//!   it in and receives, end-to-end through the homeserver as an untrusted relay, the IK, the
//!   user's Topic Keys and the Message Keys it needs (HPKE PSK mode, the PSK derived from the
//!   code). The relay sees a random link id, the new device's fresh public key, a MAC and
//!   ciphertext.
//!
//! # Flows in brief
//!
//! ```text
//! new device D        homeserver            old device A
//!   ── link code typed by the user (shown by A) ──
//!   D makes its DK
//!   LinkRequest(DK) ───► relay ─────────────────► check proof (constant time), endorse DK
//!   open ◄────────────── relay ◄───────────────── LinkResponse (PSK-mode HPKE, endorsement in)
//!   the IK (now on D) signs D's DeviceCert; D registers it with A's endorsement and uploads
//!   DPKs; the homeserver tells A and the other devices (inbox kind 4).
//!
//! device A            homeserver                          devices B, C
//!   claim 1 DPK per TK per other device ◄── DPKs (DK-signed) uploaded earlier
//!   verify IK→DK→DPK chains; make TKs
//!   TopicKeyUpload{cert, deliveries} ──► keeps cert for topic creators,
//!                                        routes each delivery ─────► open_delivery
//! ```
//!
//! # Why nothing outside the homeserver learns how many devices a user has
//!
//! Device ids, device certificates, pre keys and deliveries stay between a user's devices and
//! their own homeserver. What leaves it — to other users, their devices and other homeservers —
//! is the IK, topic key certificates and what the Topic Key signs. A
//! [`crate::certs::TopicKeyCert`] is `[1, user, signing key, suite, kem key, created]`: no device
//! key, no device id, no count, and its size does not depend on the number of devices (the
//! deliveries travel separately, only to the user's own homeserver). All devices of a user share the
//! same Topic Key per topic, so messages and topic changes signed by any of them look the same,
//! and there is no per-device counter anywhere. A user's topic key certificate is byte for byte
//! what it would be with one device (tested in [`topic_keys`]).

pub mod directory;
pub mod identity_delivery;
pub mod link;
pub mod link_code;
pub mod topic_keys;

pub use directory::{DeviceDirectory, DirectoryError, MAX_DEVICES, verify_endorsement};
pub use identity_delivery::{
    IdentityDeliveryError, make_identity_deliveries, open_identity_delivery,
};
pub use link::{
    LinkError, LinkJoiner, LinkOffer, LinkPayload, LinkRequest, LinkResponse, LinkedMessageKey,
    LinkedTopicKey,
};
pub use link_code::{LinkCode, LinkCodeError};
pub use topic_keys::{
    ClaimedPreKey, Delivery, TopicKeyBatch, TopicKeyError, TopicKeyUpload, make_batch,
    open_delivery,
};

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use crate::wire::WireError;

/// 32 secret bytes as a CBOR byte string, zeroized on drop and never printed.
///
/// Decoding copies the bytes straight from the decoder into the zeroized array, so no
/// intermediate heap buffer holds them.
pub struct Secret32(pub Zeroizing<[u8; 32]>);

impl Secret32 {
    /// Copies `bytes` into a zeroized buffer.
    pub fn new(bytes: &[u8; 32]) -> Self {
        Secret32(Zeroizing::new(*bytes))
    }
}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(***)")
    }
}

impl Serialize for Secret32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0[..])
    }
}

impl<'de> Deserialize<'de> for Secret32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Secret32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string of 32 bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Secret32, E> {
                let mut out = Zeroizing::new([0u8; 32]);
                if v.len() != 32 {
                    return Err(E::invalid_length(v.len(), &self));
                }
                out.copy_from_slice(v);
                Ok(Secret32(out))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, mut v: Vec<u8>) -> Result<Secret32, E> {
                let out = self.visit_bytes(&v);
                v.zeroize();
                out
            }
        }
        d.deserialize_bytes(Visit)
    }
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes a value that holds secrets into a zeroized buffer of exactly the right size, so that
/// no reallocation leaves a copy of the secret behind in freed memory.
pub fn encode_secret<T: Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, WireError> {
    let malformed = |e: ciborium::ser::Error<std::io::Error>| WireError::Malformed(e.to_string());
    let mut counter = Counter(0);
    ciborium::ser::into_writer(value, &mut counter).map_err(malformed)?;
    let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
    ciborium::ser::into_writer(value, &mut *out).map_err(malformed)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_tuple::{Deserialize_tuple, Serialize_tuple};

    #[derive(Serialize_tuple, Deserialize_tuple)]
    struct Holder {
        version: u8,
        secret: Secret32,
    }

    #[test]
    fn secret32_round_trip_exact_size_and_hidden() {
        let h = Holder {
            version: 1,
            secret: Secret32::new(&[7u8; 32]),
        };
        let bytes = encode_secret(&h).unwrap();
        assert_eq!(bytes.len(), bytes.capacity());
        assert_eq!(&bytes[..], &crate::wire::encode(&h)[..]);
        let back: Holder = crate::wire::decode_versioned(&bytes, 100).unwrap();
        assert_eq!(*back.secret.0, [7u8; 32]);
        assert_eq!(format!("{:?}", back.secret), "Secret32(***)");
        // Wrong length is refused.
        let short = crate::wire::encode(&(1u8, serde_bytes::Bytes::new(&[1u8; 31])));
        assert!(crate::wire::decode_versioned::<Holder>(&short, 100).is_err());
    }
}

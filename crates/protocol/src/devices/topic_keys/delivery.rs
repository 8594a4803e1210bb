//! The wire forms of a Topic Key's way to the other devices: [`Delivery`] (one sealed private
//! key), [`TopicKeyUpload`] (a certificate and its deliveries), and the receiving side,
//! [`open_delivery`] (`federation-spec/devices.md` §3).

use std::collections::BTreeSet;

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{
    DELIVERY_MAX_LEN, PLAINTEXT_MAX_LEN, TopicKeyError, UPLOAD_MAX_LEN, check_user, verify_cert,
};
use crate::certs::TopicKeyCert;
use crate::crypto::hpke::{self, SealPurpose, SealedBox, Suite};
use crate::crypto::{IdentityPublicKey, KemSecretKey, KeyId, TopicKey, TopicPublicKey};
use crate::devices::MAX_DEVICES;
use crate::devices::Secret32;
use crate::ids::UserId;
use crate::wire::{Signed, SignedBytes, VERSION, Verified, WireError, decode_versioned, encode};

/// A private Topic Key sealed to one pre key of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The pre key it is sealed to; the homeserver routes the delivery to that key's device.
    pub prekey_id: KeyId,
    /// HPKE box of the Topic Key plaintext.
    pub sealed: SealedBox,
}

/// `[1, prekey_id, sealed]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct DeliveryWire {
    version: u8,
    prekey_id: KeyId,
    sealed: SealedBox,
}

impl Delivery {
    /// The wire form `[1, prekey_id, sealed]`.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(&self.wire())
    }

    /// Decodes the wire form; the box must name the same pre key.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, TopicKeyError> {
        Self::from_wire_struct(decode_versioned(bytes, DELIVERY_MAX_LEN)?)
    }

    fn wire(&self) -> DeliveryWire {
        DeliveryWire {
            version: VERSION,
            prekey_id: self.prekey_id,
            sealed: self.sealed.clone(),
        }
    }

    fn from_wire_struct(w: DeliveryWire) -> Result<Self, TopicKeyError> {
        if w.version != VERSION {
            return Err(WireError::UnsupportedVersion {
                expected: VERSION,
                got: u64::from(w.version),
            }
            .into());
        }
        if w.sealed.recipient != w.prekey_id {
            return Err(TopicKeyError::WrongPreKey {
                expected: w.prekey_id,
                got: w.sealed.recipient,
            });
        }
        Ok(Delivery {
            prekey_id: w.prekey_id,
            sealed: w.sealed,
        })
    }
}

/// What a device uploads to its homeserver for one Topic Key.
#[derive(Debug, Clone)]
pub struct TopicKeyUpload {
    /// The IK-signed certificate, handed out once to a topic creator or admin.
    pub cert: Verified<TopicKeyCert>,
    /// The private key for each other device; stays on the user's homeserver.
    pub deliveries: Vec<Delivery>,
}

/// `[1, cert, [* delivery]]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct UploadWire {
    version: u8,
    cert: SignedBytes,
    deliveries: Vec<DeliveryWire>,
}

impl TopicKeyUpload {
    /// The wire form `[1, cert, [* delivery]]`.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(&UploadWire {
            version: VERSION,
            cert: self.cert.signed_bytes().clone(),
            deliveries: self.deliveries.iter().map(Delivery::wire).collect(),
        })
    }

    /// Decodes an upload and checks it as the homeserver must: the certificate verifies with the
    /// user's Identity Key and names the user, at most one delivery per other device, no pre key
    /// twice, each box addressed to the pre key it claims.
    pub fn from_wire(
        bytes: &[u8],
        identity_key: &IdentityPublicKey,
        user: &UserId,
    ) -> Result<Self, TopicKeyError> {
        let w: UploadWire = decode_versioned(bytes, UPLOAD_MAX_LEN)?;
        let cert = verify_cert(Signed::from_signed_bytes(w.cert)?, identity_key, user)?;
        if w.deliveries.len() >= MAX_DEVICES {
            return Err(TopicKeyError::TooManyDevices {
                limit: MAX_DEVICES,
                got: w.deliveries.len() + 1,
            });
        }
        let mut seen = BTreeSet::new();
        let mut deliveries = Vec::with_capacity(w.deliveries.len());
        for d in w.deliveries {
            let d = Delivery::from_wire_struct(d)?;
            if !seen.insert(d.prekey_id) {
                return Err(TopicKeyError::DuplicatePreKey {
                    prekey: d.prekey_id,
                });
            }
            deliveries.push(d);
        }
        Ok(TopicKeyUpload { cert, deliveries })
    }
}

/// The Topic Key plaintext of a delivery: `[1, suite, signing seed, kem secret]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
pub(super) struct TopicKeyPlaintext {
    pub(super) version: u8,
    pub(super) suite: u16,
    pub(super) signing_seed: Secret32,
    pub(super) kem_secret: Secret32,
}

/// The HPKE context of a delivery: the user and the Topic Key's id.
pub(super) fn delivery_context<'a>(user: &'a UserId, tk_id: &'a KeyId) -> [&'a [u8]; 2] {
    [user.as_str().as_bytes(), &tk_id.0]
}

/// Opens a delivery with the private key of the pre key it was sealed to, and checks that the
/// Topic Key inside is the one `cert` certifies.
///
/// `cert` must have been verified with the user's Identity Key (see [`verify_cert`]); this checks
/// that it names `user`.
pub fn open_delivery(
    prekey_secret: &KemSecretKey,
    user: &UserId,
    delivery: &Delivery,
    cert: &Verified<TopicKeyCert>,
) -> Result<TopicKey, TopicKeyError> {
    check_user(user, &cert.user)?;
    let prekey_id = prekey_secret.public().key_id();
    for got in [delivery.prekey_id, delivery.sealed.recipient] {
        if got != prekey_id {
            return Err(TopicKeyError::WrongPreKey {
                expected: prekey_id,
                got,
            });
        }
    }
    let certified: TopicPublicKey = cert.topic_key()?;
    let tk_id = certified.key_id();
    let plaintext = hpke::open(
        prekey_secret,
        &delivery.sealed,
        SealPurpose::TopicKeyDelivery,
        &delivery_context(user, &tk_id),
        None,
    )
    .map_err(|_| TopicKeyError::OpenFailed)?;
    let p: TopicKeyPlaintext = decode_versioned(&plaintext, PLAINTEXT_MAX_LEN)?;
    if p.suite != cert.suite {
        return Err(WireError::InvalidField {
            field: "suite",
            reason: format!("expected {}, got {}", cert.suite, p.suite),
        }
        .into());
    }
    let suite = Suite::from_id(p.suite).map_err(TopicKeyError::Crypto)?;
    let key = TopicKey::from_bytes(suite, &p.signing_seed.0[..], &p.kem_secret.0[..])
        .map_err(TopicKeyError::Crypto)?;
    if *key.public() != certified {
        return Err(TopicKeyError::KeyMismatch {
            expected: tk_id,
            got: key.public().key_id(),
        });
    }
    Ok(key)
}

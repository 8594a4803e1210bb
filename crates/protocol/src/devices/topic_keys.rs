//! Topic Key batches (`federation-spec/devices.md` §3).
//!
//! A device makes Topic Keys (TK) ahead of time so that topic creators can claim one per member
//! at once, even when all of the member's devices are offline. For each TK of a batch:
//!
//! - the Identity Key signs a [`TopicKeyCert`] (`[1, user, signing key, suite, kem key, created]`),
//!   which the homeserver hands to one topic creator or admin. It carries no device information.
//! - for every *other* device of the user, the private TK is sealed with HPKE to one Device Pre Key
//!   (DPK) of that device: one DPK per TK per device, purpose
//!   [`SealPurpose::TopicKeyDelivery`], context `[user, TK id]`. Binding the TK id means a
//!   delivery cannot be presented as the private key of another certificate.
//!
//! The DPKs come from the homeserver, which is not trusted with keys: the making device checks
//! each chain IK → device certificate for this user → DK-signed pre key for this user itself
//! ([`make_batch`]), and refuses anything else. The receiving device opens its delivery with the
//! DPK's private key and checks that the key it got is the certified one ([`open_delivery`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::directory::{DeviceDirectory, DirectoryError, MAX_DEVICES};
use super::{Secret32, encode_secret};
use crate::certs::{DeviceCert, PreKey, TopicKeyCert};
use crate::crypto::hpke::{self, SealPurpose, SealedBox, Suite};
use crate::crypto::{
    CryptoError, DevicePublicKey, IdentityKey, IdentityPublicKey, KemPublicKey, KemSecretKey,
    KeyId, Randomness, TopicKey, TopicPublicKey,
};
use crate::ids::UserId;
use crate::wire::signed::SignedError;
use crate::wire::{Signed, SignedBytes, VERSION, Verified, WireError, decode_versioned, encode};

/// The most Topic Keys made in one batch.
pub const MAX_BATCH: usize = 128;
/// Largest encoded [`Delivery`] accepted.
pub const DELIVERY_MAX_LEN: usize = 512;
/// Largest encoded [`TopicKeyUpload`] accepted: a certificate and one delivery per other device.
pub const UPLOAD_MAX_LEN: usize = 1024 + MAX_DEVICES * DELIVERY_MAX_LEN;
/// Length of the CBOR plaintext of a delivery (`[1, suite, bstr32, bstr32]`, suite < 24).
const PLAINTEXT_MAX_LEN: usize = 128;

/// Why a batch could not be made, or an upload or delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicKeyError {
    /// The Identity Key given is not the one the directory holds for the user.
    #[error("identity key {got} is not the user's identity key {expected}")]
    IdentityMismatch {
        /// The directory's Identity Key id.
        expected: KeyId,
        /// The id of the key given.
        got: KeyId,
    },
    /// The batch size is 0 or above [`MAX_BATCH`].
    #[error("batch of {got} topic keys; allowed 1..={limit}")]
    BadCount {
        /// [`MAX_BATCH`].
        limit: usize,
        /// Size asked for.
        got: usize,
    },
    /// A claimed pre key came with a device certificate that does not hold.
    #[error("device certificate refused: {0}")]
    DeviceCert(#[from] DirectoryError),
    /// A pre key was not signed by the Device Key its certificate names (for example a key the
    /// homeserver made itself).
    #[error("pre key not signed by device {device}")]
    PreKeySignature {
        /// The device the pre key claimed to come from.
        device: KeyId,
    },
    /// A pre key names another user.
    #[error("pre key is for {got}, expected {expected}")]
    PreKeyWrongUser {
        /// The user whose keys these should be.
        expected: UserId,
        /// The user the pre key names.
        got: UserId,
    },
    /// The same pre key was handed out twice.
    #[error("pre key {prekey} given more than once")]
    DuplicatePreKey {
        /// The repeated pre key.
        prekey: KeyId,
    },
    /// A pre key of the making device itself was handed out.
    #[error("pre key of the making device itself")]
    OwnDevice,
    /// An active device of the user got no pre keys, so it would not get the Topic Keys.
    #[error("no pre keys for device {device}")]
    MissingDevice {
        /// The device left out.
        device: KeyId,
    },
    /// A device got another number of pre keys than Topic Keys are made.
    #[error("device {device}: expected {expected} pre keys, got {got}")]
    PreKeyCount {
        /// The device.
        device: KeyId,
        /// The batch size.
        expected: usize,
        /// Pre keys given for it.
        got: usize,
    },
    /// More devices than [`MAX_DEVICES`].
    #[error("too many devices: limit {limit}, got {got}")]
    TooManyDevices {
        /// The limit.
        limit: usize,
        /// Devices given.
        got: usize,
    },
    /// A certificate names another user.
    #[error("topic key certificate is for {got}, expected {expected}")]
    WrongUser {
        /// The user expected.
        expected: UserId,
        /// The user named.
        got: UserId,
    },
    /// A delivery is addressed to another pre key.
    #[error("delivery is for pre key {got}, not {expected}")]
    WrongPreKey {
        /// The pre key it should be for.
        expected: KeyId,
        /// The pre key it names.
        got: KeyId,
    },
    /// A delivery did not open: wrong pre key, another Topic Key's certificate, or tampering.
    #[error("delivery does not open")]
    OpenFailed,
    /// The delivered key is not the certified one.
    #[error("delivered topic key {got} does not match the certificate's {expected}")]
    KeyMismatch {
        /// The certified Topic Key's id.
        expected: KeyId,
        /// The delivered key's id.
        got: KeyId,
    },
    /// The topic key certificate's signature does not verify with the user's Identity Key.
    #[error("topic key certificate not signed by the identity key")]
    BadSignature,
    /// Bytes that are not a well-formed object.
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    /// Sealing failed.
    #[error("crypto: {0}")]
    Crypto(CryptoError),
}

/// A pre key the homeserver handed out, with the certificate of the device it claims to be from.
#[derive(Debug, Clone)]
pub struct ClaimedPreKey {
    /// IK-signed certificate of the device.
    pub device_cert: Signed<DeviceCert>,
    /// DK-signed pre key.
    pub prekey: Signed<PreKey>,
}

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

/// Checks a topic key certificate against the user's Identity Key and user id.
pub fn verify_cert(
    cert: Signed<TopicKeyCert>,
    identity_key: &IdentityPublicKey,
    user: &UserId,
) -> Result<Verified<TopicKeyCert>, TopicKeyError> {
    let cert = cert.verify(identity_key).map_err(|e| match e {
        SignedError::BadSignature => TopicKeyError::BadSignature,
        SignedError::Wire(w) => TopicKeyError::Malformed(w),
    })?;
    check_user(user, &cert.user)?;
    Ok(cert)
}

fn check_user(expected: &UserId, got: &UserId) -> Result<(), TopicKeyError> {
    if expected != got {
        return Err(TopicKeyError::WrongUser {
            expected: expected.clone(),
            got: got.clone(),
        });
    }
    Ok(())
}

/// A batch of new Topic Keys: `uploads[i]` belongs to `keys[i]`.
#[derive(Debug)]
pub struct TopicKeyBatch {
    /// Certificates and deliveries, to upload to the homeserver.
    pub uploads: Vec<TopicKeyUpload>,
    /// The private Topic Keys, to keep in this device's keystore.
    pub keys: Vec<TopicKey>,
}

/// The Topic Key plaintext of a delivery: `[1, suite, signing seed, kem secret]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct TopicKeyPlaintext {
    version: u8,
    suite: u16,
    signing_seed: Secret32,
    kem_secret: Secret32,
}

/// The HPKE context of a delivery: the user and the Topic Key's id.
fn delivery_context<'a>(user: &'a UserId, tk_id: &'a KeyId) -> [&'a [u8]; 2] {
    [user.as_str().as_bytes(), &tk_id.0]
}

/// Makes `count` Topic Keys and seals each to one pre key of every other device of the user.
///
/// `claimed` is what the homeserver returned when asked for `count` pre keys of each other device.
/// Every entry is checked here, not trusted: the device certificate must hold in `directory`
/// (IK signature, this user, not revoked), the pre key must be signed by that certificate's Device
/// Key and name this user, and no pre key may appear twice. Every active device in `directory`
/// other than `own_device` must get exactly `count` pre keys, so the homeserver can neither add a
/// key of its own nor leave a device out.
pub fn make_batch(
    identity: &IdentityKey,
    directory: &DeviceDirectory,
    own_device: &DevicePublicKey,
    claimed: Vec<ClaimedPreKey>,
    count: usize,
    created: u64,
    rng: &mut Randomness<'_>,
) -> Result<TopicKeyBatch, TopicKeyError> {
    if identity.public() != directory.identity_key() {
        return Err(TopicKeyError::IdentityMismatch {
            expected: directory.identity_key().key_id(),
            got: identity.public().key_id(),
        });
    }
    if count == 0 || count > MAX_BATCH {
        return Err(TopicKeyError::BadCount {
            limit: MAX_BATCH,
            got: count,
        });
    }
    let user = directory.user();
    let per_device = check_claimed(directory, own_device, claimed)?;
    for device in directory.devices() {
        if device.device_key != *own_device
            && !per_device.contains_key(device.device_key.as_bytes())
        {
            return Err(TopicKeyError::MissingDevice {
                device: device.device_key.key_id(),
            });
        }
    }
    for (device, prekeys) in per_device.values() {
        if prekeys.len() != count {
            return Err(TopicKeyError::PreKeyCount {
                device: device.key_id(),
                expected: count,
                got: prekeys.len(),
            });
        }
    }

    // All keys first, then the boxes: a Topic Key does not depend on how many devices there are.
    let suite = Suite::X25519Sha256ChaCha20Poly1305;
    let keys: Vec<TopicKey> = (0..count)
        .map(|_| TopicKey::generate_with(suite, rng))
        .collect();
    let mut uploads = Vec::with_capacity(count);
    for (i, key) in keys.iter().enumerate() {
        let cert = Signed::sign(
            TopicKeyCert::new(user.clone(), key.public(), created),
            identity,
        );
        let tk_id = key.public().key_id();
        let plaintext = encode_secret(&TopicKeyPlaintext {
            version: VERSION,
            suite: suite.id(),
            signing_seed: Secret32(key.signing().seed()),
            kem_secret: Secret32(key.kem().to_bytes()),
        })?;
        let mut deliveries = Vec::with_capacity(per_device.len());
        for (_, prekeys) in per_device.values() {
            // Each device's pre key `i` is used for Topic Key `i` only.
            let Some(prekey) = prekeys.get(i) else {
                continue;
            };
            let sealed = hpke::seal(
                prekey,
                SealPurpose::TopicKeyDelivery,
                &delivery_context(user, &tk_id),
                None,
                &plaintext,
                rng,
            )
            .map_err(TopicKeyError::Crypto)?;
            deliveries.push(Delivery {
                prekey_id: prekey.key_id(),
                sealed,
            });
        }
        uploads.push(TopicKeyUpload { cert, deliveries });
    }
    Ok(TopicKeyBatch { uploads, keys })
}

/// Checks every claimed pre key's chain; groups the pre keys by device.
#[allow(clippy::type_complexity)]
fn check_claimed(
    directory: &DeviceDirectory,
    own_device: &DevicePublicKey,
    claimed: Vec<ClaimedPreKey>,
) -> Result<BTreeMap<[u8; 32], (DevicePublicKey, Vec<KemPublicKey>)>, TopicKeyError> {
    let user = directory.user();
    let mut seen = BTreeSet::new();
    let mut per_device: BTreeMap<[u8; 32], (DevicePublicKey, Vec<KemPublicKey>)> = BTreeMap::new();
    for c in claimed {
        // IK → device certificate for this user, not revoked.
        let device = directory.check_cert(c.device_cert)?;
        let dk = &device.device_key;
        if dk == own_device {
            return Err(TopicKeyError::OwnDevice);
        }
        // DK → pre key for this user.
        let prekey = c.prekey.verify(dk).map_err(|e| match e {
            SignedError::BadSignature => TopicKeyError::PreKeySignature {
                device: dk.key_id(),
            },
            SignedError::Wire(w) => TopicKeyError::Malformed(w),
        })?;
        if prekey.user != *user {
            return Err(TopicKeyError::PreKeyWrongUser {
                expected: user.clone(),
                got: prekey.user.clone(),
            });
        }
        let kem = prekey.kem_public()?;
        if !seen.insert(kem.key_id()) {
            return Err(TopicKeyError::DuplicatePreKey {
                prekey: kem.key_id(),
            });
        }
        if !per_device.contains_key(dk.as_bytes()) && per_device.len() + 1 >= MAX_DEVICES {
            return Err(TopicKeyError::TooManyDevices {
                limit: MAX_DEVICES,
                got: per_device.len() + 2,
            });
        }
        per_device
            .entry(dk.to_bytes())
            .or_insert_with(|| (dk.clone(), Vec::new()))
            .1
            .push(kem);
    }
    Ok(per_device)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::transcript::LABEL_MESSAGE;
    use crate::crypto::{DeviceKey, VectorRng};

    const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;

    fn alice() -> UserId {
        "@alice:a.example".parse().unwrap()
    }

    struct Device {
        dk: DeviceKey,
        cert: Signed<DeviceCert>,
        prekeys: Vec<KemSecretKey>,
    }

    struct User {
        id: UserId,
        ik: IdentityKey,
        devices: Vec<Device>,
        directory: DeviceDirectory,
    }

    impl User {
        fn new(ik: IdentityKey, n_devices: usize, prekeys_each: usize) -> User {
            User::new_for(alice(), ik, n_devices, prekeys_each)
        }

        fn new_for(id: UserId, ik: IdentityKey, n_devices: usize, prekeys_each: usize) -> User {
            let mut directory = DeviceDirectory::new(id.clone(), ik.public().clone());
            let devices: Vec<Device> = (0..n_devices)
                .map(|_| {
                    let dk = DeviceKey::generate();
                    let cert =
                        Signed::sign(DeviceCert::new(id.clone(), dk.public().clone(), 1), &ik)
                            .unverified();
                    directory.add(cert.clone()).unwrap();
                    let prekeys = (0..prekeys_each)
                        .map(|_| KemSecretKey::generate(SUITE))
                        .collect();
                    Device { dk, cert, prekeys }
                })
                .collect();
            User {
                id,
                ik,
                devices,
                directory,
            }
        }

        /// What an honest homeserver returns: `count` pre keys of every device but `own`.
        fn claim(&self, own: usize, count: usize) -> Vec<ClaimedPreKey> {
            let mut out = Vec::new();
            for (i, d) in self.devices.iter().enumerate() {
                if i == own {
                    continue;
                }
                for pk in &d.prekeys[..count] {
                    out.push(ClaimedPreKey {
                        device_cert: d.cert.clone(),
                        prekey: Signed::sign(PreKey::new(self.id.clone(), pk.public()), &d.dk)
                            .unverified(),
                    });
                }
            }
            out
        }

        fn batch(
            &self,
            own: usize,
            claimed: Vec<ClaimedPreKey>,
            count: usize,
        ) -> Result<TopicKeyBatch, TopicKeyError> {
            make_batch(
                &self.ik,
                &self.directory,
                self.devices[own].dk.public(),
                claimed,
                count,
                7,
                &mut Randomness::Os,
            )
        }

        /// Device `d` finds and opens its delivery of upload `u`, as a device would: by pre key id.
        fn open(&self, d: usize, upload: &TopicKeyUpload) -> Result<TopicKey, TopicKeyError> {
            let dev = &self.devices[d];
            let delivery = upload
                .deliveries
                .iter()
                .find(|del| {
                    dev.prekeys
                        .iter()
                        .any(|p| p.public().key_id() == del.prekey_id)
                })
                .expect("a delivery for this device");
            let secret = dev
                .prekeys
                .iter()
                .find(|p| p.public().key_id() == delivery.prekey_id)
                .unwrap();
            open_delivery(secret, &self.id, delivery, &upload.cert)
        }
    }

    #[test]
    fn three_devices_share_each_topic_key() {
        let user = User::new(IdentityKey::generate(), 3, 2);
        let batch = user.batch(0, user.claim(0, 2), 2).unwrap();
        assert_eq!(batch.uploads.len(), 2);
        assert_eq!(batch.keys.len(), 2);
        let mut used = BTreeSet::new();
        for (upload, key) in batch.uploads.iter().zip(&batch.keys) {
            // One delivery per other device, each to a distinct pre key.
            assert_eq!(upload.deliveries.len(), 2);
            for d in &upload.deliveries {
                assert!(used.insert(d.prekey_id), "a pre key used twice");
            }
            // The certificate travels and verifies with the IK.
            let cert = verify_cert(
                Signed::<TopicKeyCert>::from_wire(&upload.cert.to_wire()).unwrap(),
                user.ik.public(),
                &user.id,
            )
            .unwrap();
            let certified = cert.topic_key().unwrap();
            assert_eq!(certified, *key.public());
            let from_b = user.open(1, upload).unwrap();
            let from_c = user.open(2, upload).unwrap();
            for tk in [key, &from_b, &from_c] {
                let sig = tk.signing().sign(LABEL_MESSAGE, &[b"hello"]);
                certified
                    .signing
                    .verify(LABEL_MESSAGE, &[b"hello"], &sig)
                    .unwrap();
                assert_eq!(tk.kem().to_bytes(), key.kem().to_bytes());
            }
            // The upload survives its wire form, as the homeserver checks it.
            let back =
                TopicKeyUpload::from_wire(&upload.to_wire(), user.ik.public(), &user.id).unwrap();
            assert_eq!(back.deliveries, upload.deliveries);
            assert_eq!(back.cert.signed_bytes(), upload.cert.signed_bytes());
        }
        assert_ne!(batch.keys[0].public(), batch.keys[1].public());
    }

    #[test]
    fn injected_prekeys_are_refused() {
        let user = User::new(IdentityKey::generate(), 3, 1);
        // The server signs a pre key of its own with a Device Key the IK never certified, and
        // presents it under device B's genuine certificate.
        let rogue_dk = DeviceKey::generate();
        let rogue_pk = KemSecretKey::generate(SUITE);
        let mut claimed = user.claim(0, 1);
        claimed[0].prekey =
            Signed::sign(PreKey::new(user.id.clone(), rogue_pk.public()), &rogue_dk).unverified();
        assert_eq!(
            user.batch(0, claimed, 1).unwrap_err(),
            TopicKeyError::PreKeySignature {
                device: user.devices[1].dk.public().key_id()
            }
        );
        // ... or under a device certificate it made up itself.
        let mut claimed = user.claim(0, 1);
        let forged_cert = Signed::sign(
            DeviceCert::new(user.id.clone(), rogue_dk.public().clone(), 1),
            &IdentityKey::generate(),
        );
        claimed[0] = ClaimedPreKey {
            device_cert: forged_cert.unverified(),
            prekey: Signed::sign(PreKey::new(user.id.clone(), rogue_pk.public()), &rogue_dk)
                .unverified(),
        };
        assert_eq!(
            user.batch(0, claimed, 1).unwrap_err(),
            TopicKeyError::DeviceCert(DirectoryError::BadSignature {
                user: user.id.clone()
            })
        );
    }

    #[test]
    fn other_users_keys_are_refused() {
        let user = User::new(IdentityKey::generate(), 2, 1);
        let bob: UserId = "@bob:b.example".parse().unwrap();
        // A pre key that device B signed for another user (e.g. replayed from elsewhere).
        let mut claimed = user.claim(0, 1);
        claimed[0].prekey = Signed::sign(
            PreKey::new(bob.clone(), user.devices[1].prekeys[0].public()),
            &user.devices[1].dk,
        )
        .unverified();
        assert_eq!(
            user.batch(0, claimed, 1).unwrap_err(),
            TopicKeyError::PreKeyWrongUser {
                expected: user.id.clone(),
                got: bob.clone()
            }
        );
        // A device certificate of Bob's (signed by Bob's IK) is not Alice's.
        let bob_user = User::new_for(bob.clone(), IdentityKey::generate(), 2, 1);
        let mut claimed = user.claim(0, 1);
        claimed.push(ClaimedPreKey {
            device_cert: bob_user.devices[1].cert.clone(),
            prekey: Signed::sign(
                PreKey::new(bob.clone(), bob_user.devices[1].prekeys[0].public()),
                &bob_user.devices[1].dk,
            )
            .unverified(),
        });
        assert!(matches!(
            user.batch(0, claimed, 1).unwrap_err(),
            TopicKeyError::DeviceCert(DirectoryError::BadSignature { .. })
        ));
        // Even signed by Alice's IK, a certificate naming Bob is refused.
        let mut claimed = user.claim(0, 1);
        let dk = DeviceKey::generate();
        claimed.push(ClaimedPreKey {
            device_cert: Signed::sign(
                DeviceCert::new(bob.clone(), dk.public().clone(), 1),
                &user.ik,
            )
            .unverified(),
            prekey: Signed::sign(
                PreKey::new(user.id.clone(), KemSecretKey::generate(SUITE).public()),
                &dk,
            )
            .unverified(),
        });
        assert_eq!(
            user.batch(0, claimed, 1).unwrap_err(),
            TopicKeyError::DeviceCert(DirectoryError::WrongUser {
                expected: user.id.clone(),
                got: bob
            })
        );
    }

    #[test]
    fn the_server_can_neither_drop_nor_reuse_nor_misroute() {
        let mut user = User::new(IdentityKey::generate(), 3, 2);
        // A device left out.
        let claimed: Vec<_> = user
            .claim(0, 1)
            .into_iter()
            .filter(|c| c.device_cert.signed_bytes() != user.devices[2].cert.signed_bytes())
            .collect();
        assert_eq!(
            user.batch(0, claimed, 1).unwrap_err(),
            TopicKeyError::MissingDevice {
                device: user.devices[2].dk.public().key_id()
            }
        );
        // The same pre key twice (once for each of two Topic Keys).
        let mut claimed = user.claim(0, 2);
        claimed[1] = claimed[0].clone();
        assert!(matches!(
            user.batch(0, claimed, 2).unwrap_err(),
            TopicKeyError::DuplicatePreKey { .. }
        ));
        // Too few pre keys for one device.
        let mut claimed = user.claim(0, 2);
        claimed.pop();
        assert!(matches!(
            user.batch(0, claimed, 2).unwrap_err(),
            TopicKeyError::PreKeyCount {
                expected: 2,
                got: 1,
                ..
            }
        ));
        // The making device's own pre keys.
        assert_eq!(
            user.batch(0, user.claim(1, 1), 1).unwrap_err(),
            TopicKeyError::OwnDevice
        );
        // A revoked device.
        let revoked = &user.devices[2];
        let claimed = user.claim(0, 1);
        let rev = Signed::sign(
            crate::certs::DeviceRevocation::new(user.id.clone(), revoked.dk.public().clone(), 2),
            &user.ik,
        );
        user.directory.revoke(rev.unverified()).unwrap();
        assert!(matches!(
            user.batch(0, claimed, 1).unwrap_err(),
            TopicKeyError::DeviceCert(DirectoryError::Revoked { .. })
        ));
        let claimed: Vec<_> = user.claim(0, 1).into_iter().take(1).collect();
        assert_eq!(
            user.batch(0, claimed, 1).unwrap().uploads[0]
                .deliveries
                .len(),
            1
        );
        // Bad sizes and a foreign identity key.
        assert!(matches!(
            user.batch(0, vec![], 0).unwrap_err(),
            TopicKeyError::BadCount { .. }
        ));
        let other_ik = IdentityKey::generate();
        assert!(matches!(
            make_batch(
                &other_ik,
                &user.directory,
                user.devices[0].dk.public(),
                vec![],
                1,
                0,
                &mut Randomness::Os
            ),
            Err(TopicKeyError::IdentityMismatch { .. })
        ));
    }

    #[test]
    fn deliveries_open_only_with_their_prekey_and_certificate() {
        let user = User::new(IdentityKey::generate(), 2, 2);
        let batch = user.batch(0, user.claim(0, 2), 2).unwrap();
        let (u0, u1) = (&batch.uploads[0], &batch.uploads[1]);
        let b = &user.devices[1];
        let (d0, d1) = (&u0.deliveries[0], &u1.deliveries[0]);
        let sk0 = b
            .prekeys
            .iter()
            .find(|p| p.public().key_id() == d0.prekey_id)
            .unwrap();
        let sk1 = b
            .prekeys
            .iter()
            .find(|p| p.public().key_id() == d1.prekey_id)
            .unwrap();
        assert!(open_delivery(sk0, &user.id, d0, &u0.cert).is_ok());
        // The wrong pre key.
        assert_eq!(
            open_delivery(sk1, &user.id, d0, &u0.cert).unwrap_err(),
            TopicKeyError::WrongPreKey {
                expected: sk1.public().key_id(),
                got: d0.prekey_id
            }
        );
        // Relabelled to claim the other pre key: the box still names the first.
        let relabelled = Delivery {
            prekey_id: d1.prekey_id,
            sealed: d0.sealed.clone(),
        };
        assert!(matches!(
            open_delivery(sk1, &user.id, &relabelled, &u0.cert),
            Err(TopicKeyError::WrongPreKey { .. })
        ));
        // Re-targeted at the other Topic Key's certificate: the context differs.
        assert_eq!(
            open_delivery(sk0, &user.id, d0, &u1.cert).unwrap_err(),
            TopicKeyError::OpenFailed
        );
        // Under another user id.
        let bob: UserId = "@bob:a.example".parse().unwrap();
        assert!(matches!(
            open_delivery(sk0, &bob, d0, &u0.cert),
            Err(TopicKeyError::WrongUser { .. })
        ));
        // Tampered.
        let mut t = d0.clone();
        t.sealed.ciphertext[3] ^= 0x40;
        assert_eq!(
            open_delivery(sk0, &user.id, &t, &u0.cert).unwrap_err(),
            TopicKeyError::OpenFailed
        );
    }

    #[test]
    fn a_delivery_of_the_wrong_key_is_caught() {
        // A device (or a bug) seals a key that is not the certified one, under the right context.
        let user = User::new(IdentityKey::generate(), 2, 1);
        let batch = user.batch(0, user.claim(0, 1), 1).unwrap();
        let upload = &batch.uploads[0];
        let other = TopicKey::generate(SUITE);
        let tk_id = upload.cert.topic_key().unwrap().key_id();
        let plaintext = encode_secret(&TopicKeyPlaintext {
            version: VERSION,
            suite: SUITE.id(),
            signing_seed: Secret32(other.signing().seed()),
            kem_secret: Secret32(other.kem().to_bytes()),
        })
        .unwrap();
        let pk = &user.devices[1].prekeys[0];
        let sealed = hpke::seal(
            pk.public(),
            SealPurpose::TopicKeyDelivery,
            &delivery_context(&user.id, &tk_id),
            None,
            &plaintext,
            &mut Randomness::Os,
        )
        .unwrap();
        let d = Delivery {
            prekey_id: pk.public().key_id(),
            sealed,
        };
        assert_eq!(
            open_delivery(pk, &user.id, &d, &upload.cert).unwrap_err(),
            TopicKeyError::KeyMismatch {
                expected: tk_id,
                got: other.public().key_id()
            }
        );
    }

    #[test]
    fn certificates_reveal_nothing_about_devices() {
        // Same IK and same randomness; one user has a single device, the other five.
        let seed = [9u8; 32];
        let ik_seed = [3u8; 32];
        let one = User::new(IdentityKey::from_seed(&ik_seed), 1, 0);
        let five = User::new(IdentityKey::from_seed(&ik_seed), 5, 3);
        let mut rng1 = VectorRng::from_seed(seed);
        let mut rng5 = VectorRng::from_seed(seed);
        let b1 = make_batch(
            &one.ik,
            &one.directory,
            one.devices[0].dk.public(),
            vec![],
            3,
            7,
            &mut Randomness::Fixed(&mut rng1),
        )
        .unwrap();
        let b5 = make_batch(
            &five.ik,
            &five.directory,
            five.devices[0].dk.public(),
            five.claim(0, 3),
            3,
            7,
            &mut Randomness::Fixed(&mut rng5),
        )
        .unwrap();
        for (u1, u5) in b1.uploads.iter().zip(&b5.uploads) {
            assert!(u1.deliveries.is_empty());
            assert_eq!(u5.deliveries.len(), 4);
            let wire = u5.cert.to_wire();
            assert_eq!(
                u1.cert.to_wire(),
                wire,
                "a topic key certificate depends on the devices"
            );
            for d in &five.devices {
                let dk = d.dk.public().as_bytes();
                assert!(!wire.windows(32).any(|w| w == dk));
            }
        }
    }

    #[test]
    fn malformed_uploads_and_deliveries() {
        let user = User::new(IdentityKey::generate(), 2, 1);
        let batch = user.batch(0, user.claim(0, 1), 1).unwrap();
        let upload = &batch.uploads[0];
        // Another user's IK, or another user id.
        assert_eq!(
            TopicKeyUpload::from_wire(
                &upload.to_wire(),
                IdentityKey::generate().public(),
                &user.id
            )
            .unwrap_err(),
            TopicKeyError::BadSignature
        );
        let bob: UserId = "@bob:a.example".parse().unwrap();
        assert!(matches!(
            TopicKeyUpload::from_wire(&upload.to_wire(), user.ik.public(), &bob),
            Err(TopicKeyError::WrongUser { .. })
        ));
        // A delivery whose box names another key than it claims.
        let mut d = upload.deliveries[0].clone();
        d.sealed.recipient = KeyId([0; 16]);
        assert!(matches!(
            Delivery::from_wire(&d.to_wire()),
            Err(TopicKeyError::WrongPreKey { .. })
        ));
        let ok = upload.deliveries[0].to_wire();
        assert_eq!(Delivery::from_wire(&ok).unwrap(), upload.deliveries[0]);
        for cut in 0..ok.len() {
            assert!(Delivery::from_wire(&ok[..cut]).is_err());
        }
        // Duplicate deliveries in one upload.
        let dup = TopicKeyUpload {
            cert: upload.cert.clone(),
            deliveries: vec![upload.deliveries[0].clone(), upload.deliveries[0].clone()],
        };
        assert!(matches!(
            TopicKeyUpload::from_wire(&dup.to_wire(), user.ik.public(), &user.id),
            Err(TopicKeyError::DuplicatePreKey { .. })
        ));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let ik = IdentityKey::from_seed(&[1; 32]);
                let _ = Delivery::from_wire(&bytes);
                let _ = TopicKeyUpload::from_wire(&bytes, ik.public(), &alice());
                let _ = decode_versioned::<TopicKeyPlaintext>(&bytes, PLAINTEXT_MAX_LEN);
            }

            #[test]
            fn mutated_deliveries_never_open(pos in 0usize..400, bit in 0u8..8) {
                let user = User::new(IdentityKey::from_seed(&[2; 32]), 2, 1);
                let batch = user.batch(0, user.claim(0, 1), 1).unwrap();
                let upload = &batch.uploads[0];
                let mut wire = upload.deliveries[0].to_wire();
                let pos = pos % wire.len();
                wire[pos] ^= 1 << bit;
                // The wire layer accepts some non-canonical framing (an array header that
                // declares more items than follow at the end of input decodes to the same
                // value); what must never happen is a delivery with another meaning opening.
                if let Some(d) = Delivery::from_wire(&wire).ok().filter(|d| *d != upload.deliveries[0]) {
                    let sk = &user.devices[1].prekeys[0];
                    prop_assert!(open_delivery(sk, &user.id, &d, &upload.cert).is_err());
                }
            }
        }
    }
}

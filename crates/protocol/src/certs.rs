//! Certificates (`federation-spec/protocol.md` §3.5): the signed statements that tie keys
//! together. Identity Key → device certificate and device revocation, and topic-key
//! certificates; Device Key → pre keys and endorsements of new devices. Each is a [`SignedPayload`] with its own label.

use serde_bytes::ByteBuf;
use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::crypto::hpke::{KemPublicKey, Suite};
use crate::crypto::sign::{Device, Identity};
use crate::crypto::transcript::{
    LABEL_DEVICE_CERT, LABEL_DEVICE_ENDORSEMENT, LABEL_DEVICE_REVOCATION, LABEL_PREKEY,
    LABEL_REGISTRATION, LABEL_TOPIC_KEY_CERT,
};
use crate::crypto::{
    DevicePublicKey, IdentityPublicKey, KeyId, TopicPublicKey, TopicSigningPublicKey,
};
use crate::ids::UserId;
use crate::wire::{SignedPayload, VERSION, WireError, check_version};

/// A user's registration: the Identity Key signs its own public key and user id
/// (proof of possession). `[1, user, identity_key]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The user being registered.
    pub user: UserId,
    /// The Identity Key that signs this.
    pub identity_key: IdentityPublicKey,
}

/// The wire form of [`Registration`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct RegistrationWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    identity_key: Cow<'a, IdentityPublicKey>,
}

impl Serialize for Registration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RegistrationWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            identity_key: Cow::Borrowed(&self.identity_key),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Registration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = RegistrationWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(Registration {
            user: w.user.into_owned(),
            identity_key: w.identity_key.into_owned(),
        })
    }
}

impl Registration {
    /// A registration of `user` with `identity_key`.
    pub fn new(user: UserId, identity_key: IdentityPublicKey) -> Self {
        Registration { user, identity_key }
    }
}

impl SignedPayload for Registration {
    const LABEL: &'static str = LABEL_REGISTRATION;
    const MAX_LEN: usize = 512;
    type Signer = Identity;
}

/// IK certifies a device's Device Key. `[1, user, device_key, created]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCert {
    /// The device's user.
    pub user: UserId,
    /// The device's public Device Key.
    pub device_key: DevicePublicKey,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// The wire form of [`DeviceCert`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct DeviceCertWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    device_key: Cow<'a, DevicePublicKey>,
    created: u64,
}

impl Serialize for DeviceCert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DeviceCertWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            device_key: Cow::Borrowed(&self.device_key),
            created: self.created,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DeviceCert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = DeviceCertWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(DeviceCert {
            user: w.user.into_owned(),
            device_key: w.device_key.into_owned(),
            created: w.created,
        })
    }
}

impl DeviceCert {
    /// A certificate for `device_key`.
    pub fn new(user: UserId, device_key: DevicePublicKey, created: u64) -> Self {
        DeviceCert {
            user,
            device_key,
            created,
        }
    }
}

impl SignedPayload for DeviceCert {
    const LABEL: &'static str = LABEL_DEVICE_CERT;
    const MAX_LEN: usize = 512;
    type Signer = Identity;
}

/// IK revokes a device. `[1, user, device_key, time]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRevocation {
    /// The device's user.
    pub user: UserId,
    /// The Device Key being revoked.
    pub device_key: DevicePublicKey,
    /// Revocation time, seconds since the Unix epoch.
    pub time: u64,
}

/// The wire form of [`DeviceRevocation`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct DeviceRevocationWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    device_key: Cow<'a, DevicePublicKey>,
    time: u64,
}

impl Serialize for DeviceRevocation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DeviceRevocationWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            device_key: Cow::Borrowed(&self.device_key),
            time: self.time,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DeviceRevocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = DeviceRevocationWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(DeviceRevocation {
            user: w.user.into_owned(),
            device_key: w.device_key.into_owned(),
            time: w.time,
        })
    }
}

impl DeviceRevocation {
    /// A revocation of `device_key`.
    pub fn new(user: UserId, device_key: DevicePublicKey, time: u64) -> Self {
        DeviceRevocation {
            user,
            device_key,
            time,
        }
    }
}

impl SignedPayload for DeviceRevocation {
    const LABEL: &'static str = LABEL_DEVICE_REVOCATION;
    const MAX_LEN: usize = 512;
    type Signer = Identity;
}

/// An active device vouches for a new one: `[1, user, new_device_key, endorser_device_key, time]`,
/// signed by the endorser's Device Key (`federation-spec/devices.md` §2). A homeserver adds a
/// device only with its IK certificate **and** an endorsement by another active device of the
/// user, so the Identity Key alone (which every linked device holds) adds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEndorsement {
    /// The user of both devices.
    pub user: UserId,
    /// The Device Key being added.
    pub new_device_key: DevicePublicKey,
    /// The Device Key that signs this: an active device of `user`.
    pub endorser: DevicePublicKey,
    /// Signing time, seconds since the Unix epoch.
    pub time: u64,
}

/// The wire form of [`DeviceEndorsement`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct DeviceEndorsementWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    new_device_key: Cow<'a, DevicePublicKey>,
    endorser: Cow<'a, DevicePublicKey>,
    time: u64,
}

impl Serialize for DeviceEndorsement {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DeviceEndorsementWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            new_device_key: Cow::Borrowed(&self.new_device_key),
            endorser: Cow::Borrowed(&self.endorser),
            time: self.time,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DeviceEndorsement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = DeviceEndorsementWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(DeviceEndorsement {
            user: w.user.into_owned(),
            new_device_key: w.new_device_key.into_owned(),
            endorser: w.endorser.into_owned(),
            time: w.time,
        })
    }
}

impl DeviceEndorsement {
    /// `endorser` vouches for `new_device_key`.
    pub fn new(
        user: UserId,
        new_device_key: DevicePublicKey,
        endorser: DevicePublicKey,
        time: u64,
    ) -> Self {
        DeviceEndorsement {
            user,
            new_device_key,
            endorser,
            time,
        }
    }
}

impl SignedPayload for DeviceEndorsement {
    const LABEL: &'static str = LABEL_DEVICE_ENDORSEMENT;
    const MAX_LEN: usize = 512;
    type Signer = Device;
}

/// DK signs a one-time Device Pre Key. `[1, user, suite, kem_key]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreKey {
    /// The device's user.
    pub user: UserId,
    /// HPKE suite of the key.
    pub suite: u16,
    /// HPKE public key.
    pub kem_key: ByteBuf,
}

/// The wire form of [`PreKey`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct PreKeyWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    suite: u16,
    kem_key: Cow<'a, ByteBuf>,
}

impl Serialize for PreKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PreKeyWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            suite: self.suite,
            kem_key: Cow::Borrowed(&self.kem_key),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PreKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = PreKeyWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(PreKey {
            user: w.user.into_owned(),
            suite: w.suite,
            kem_key: w.kem_key.into_owned(),
        })
    }
}

impl PreKey {
    /// A pre key certificate for `key`.
    pub fn new(user: UserId, key: &KemPublicKey) -> Self {
        PreKey {
            user,
            suite: key.suite().id(),
            kem_key: ByteBuf::from(key.as_bytes().to_vec()),
        }
    }

    /// The pre key as an HPKE public key.
    pub fn kem_public(&self) -> Result<KemPublicKey, WireError> {
        kem_key(self.suite, &self.kem_key, "kem_key")
    }

    /// The pre key's id.
    pub fn key_id(&self) -> Result<KeyId, WireError> {
        Ok(self.kem_public()?.key_id())
    }
}

fn kem_key(suite: u16, bytes: &[u8], field: &'static str) -> Result<KemPublicKey, WireError> {
    let suite = Suite::from_id(suite).map_err(|e| WireError::InvalidField {
        field: "suite",
        reason: e.to_string(),
    })?;
    KemPublicKey::from_slice(suite, bytes).map_err(|e| WireError::InvalidField {
        field,
        reason: e.to_string(),
    })
}

impl SignedPayload for PreKey {
    const LABEL: &'static str = LABEL_PREKEY;
    const MAX_LEN: usize = 512;
    type Signer = Device;

    fn validate(&self) -> Result<(), WireError> {
        self.kem_public().map(|_| ())
    }
}

/// IK certifies the public halves of a Topic Key. `[1, user, signing_key, suite, kem_key, created]`.
///
/// A topic key certificate names no topic and no device: Topic Keys are made ahead of time and
/// each is handed out once, to the creator or admin of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicKeyCert {
    /// The Topic Key's user.
    pub user: UserId,
    /// The signing half.
    pub signing_key: TopicSigningPublicKey,
    /// HPKE suite of the KEM half.
    pub suite: u16,
    /// The KEM half.
    pub kem_key: ByteBuf,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// The wire form of [`TopicKeyCert`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct TopicKeyCertWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    signing_key: Cow<'a, TopicSigningPublicKey>,
    suite: u16,
    kem_key: Cow<'a, ByteBuf>,
    created: u64,
}

impl Serialize for TopicKeyCert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TopicKeyCertWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            signing_key: Cow::Borrowed(&self.signing_key),
            suite: self.suite,
            kem_key: Cow::Borrowed(&self.kem_key),
            created: self.created,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TopicKeyCert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = TopicKeyCertWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(TopicKeyCert {
            user: w.user.into_owned(),
            signing_key: w.signing_key.into_owned(),
            suite: w.suite,
            kem_key: w.kem_key.into_owned(),
            created: w.created,
        })
    }
}

impl TopicKeyCert {
    /// A certificate for `key`.
    pub fn new(user: UserId, key: &TopicPublicKey, created: u64) -> Self {
        TopicKeyCert {
            user,
            signing_key: key.signing.clone(),
            suite: key.kem.suite().id(),
            kem_key: ByteBuf::from(key.kem.as_bytes().to_vec()),
            created,
        }
    }

    /// The certified public Topic Key.
    pub fn topic_key(&self) -> Result<TopicPublicKey, WireError> {
        Ok(TopicPublicKey {
            signing: self.signing_key.clone(),
            kem: kem_key(self.suite, &self.kem_key, "kem_key")?,
        })
    }
}

impl SignedPayload for TopicKeyCert {
    const LABEL: &'static str = LABEL_TOPIC_KEY_CERT;
    const MAX_LEN: usize = 512;
    type Signer = Identity;

    fn validate(&self) -> Result<(), WireError> {
        self.topic_key().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DeviceKey, IdentityKey, KemSecretKey, TopicKey};
    use crate::wire::Signed;
    use crate::wire::signed::SignedError;

    fn alice() -> UserId {
        "@alice:a.example".parse().unwrap()
    }

    #[test]
    fn device_cert_round_trip_and_wrong_key() {
        let ik = IdentityKey::generate();
        let dk = DeviceKey::generate();
        let cert = Signed::sign(DeviceCert::new(alice(), dk.public().clone(), 1), &ik);
        let wire = cert.to_wire();
        let back = Signed::<DeviceCert>::from_wire(&wire)
            .unwrap()
            .verify(ik.public())
            .unwrap();
        assert_eq!(back.device_key, *dk.public());
        let other = IdentityKey::generate();
        assert_eq!(
            Signed::<DeviceCert>::from_wire(&wire)
                .unwrap()
                .verify(other.public())
                .unwrap_err(),
            SignedError::BadSignature
        );
    }

    #[test]
    fn a_cert_cannot_pass_as_another_kind() {
        // Same signer role (IK), different labels: a device cert is not a revocation.
        let ik = IdentityKey::generate();
        let dk = DeviceKey::generate();
        let cert = Signed::sign(DeviceCert::new(alice(), dk.public().clone(), 1), &ik);
        let as_revocation = Signed::<DeviceRevocation>::from_wire(&cert.to_wire()).unwrap();
        assert_eq!(
            as_revocation.verify(ik.public()).unwrap_err(),
            SignedError::BadSignature
        );
    }

    #[test]
    fn prekey_and_topic_key_certs() {
        let dk = DeviceKey::generate();
        let pk = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let signed = Signed::sign(PreKey::new(alice(), pk.public()), &dk);
        let back = Signed::<PreKey>::from_wire(&signed.to_wire())
            .unwrap()
            .verify(dk.public())
            .unwrap();
        assert_eq!(back.key_id().unwrap(), pk.public().key_id());

        let ik = IdentityKey::generate();
        let tk = TopicKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let cert = Signed::sign(TopicKeyCert::new(alice(), tk.public(), 5), &ik);
        let back = Signed::<TopicKeyCert>::from_wire(&cert.to_wire())
            .unwrap()
            .verify(ik.public())
            .unwrap();
        assert_eq!(back.topic_key().unwrap(), *tk.public());
    }

    /// `protocol.md` §3.3: a KEM key of small order is refused wherever one is accepted.
    #[test]
    fn small_order_kem_keys_refused_in_pre_keys_and_topic_key_certs() {
        let low_order = serde_bytes::ByteBuf::from(vec![0u8; 32]);
        let dk = DeviceKey::generate();
        let pk = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let mut pre_key = PreKey::new(alice(), pk.public());
        pre_key.kem_key = low_order.clone();
        let signed = Signed::sign(pre_key, &dk);
        let err = Signed::<PreKey>::from_wire(&signed.to_wire())
            .unwrap()
            .verify(dk.public())
            .unwrap_err();
        assert!(matches!(
            err,
            SignedError::Wire(WireError::InvalidField {
                field: "kem_key",
                ..
            })
        ));

        let ik = IdentityKey::generate();
        let tk = TopicKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let mut cert = TopicKeyCert::new(alice(), tk.public(), 5);
        cert.kem_key = low_order;
        let signed = Signed::sign(cert, &ik);
        let err = Signed::<TopicKeyCert>::from_wire(&signed.to_wire())
            .unwrap()
            .verify(ik.public())
            .unwrap_err();
        assert!(matches!(
            err,
            SignedError::Wire(WireError::InvalidField {
                field: "kem_key",
                ..
            })
        ));
    }

    #[test]
    fn unknown_suite_refused_after_signature() {
        let ik = IdentityKey::generate();
        let tk = TopicKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let mut payload = TopicKeyCert::new(alice(), tk.public(), 5);
        payload.suite = 9;
        let cert = Signed::sign(payload, &ik);
        let err = Signed::<TopicKeyCert>::from_wire(&cert.to_wire())
            .unwrap()
            .verify(ik.public())
            .unwrap_err();
        assert!(matches!(
            err,
            SignedError::Wire(WireError::InvalidField { field: "suite", .. })
        ));
    }
}

//! Certificates (`federation-spec/protocol.md` §3.5): the signed statements that tie keys
//! together. Identity Key → device certificate and device revocation, and topic-key
//! certificates; Device Key → pre keys. Each is a [`SignedPayload`] with its own label.

use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::crypto::hpke::{KemPublicKey, Suite};
use crate::crypto::sign::{Device, Identity};
use crate::crypto::transcript::{
    LABEL_DEVICE_CERT, LABEL_DEVICE_REVOCATION, LABEL_PREKEY, LABEL_REGISTRATION,
    LABEL_TOPIC_KEY_CERT,
};
use crate::crypto::{
    DevicePublicKey, IdentityPublicKey, KeyId, TopicPublicKey, TopicSigningPublicKey,
};
use crate::ids::UserId;
use crate::wire::{SignedPayload, VERSION, WireError};

/// A user's registration: the Identity Key signs its own public key and user id
/// (proof of possession). `[1, user, identity_key]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct Registration {
    /// Always 1.
    pub version: u8,
    /// The user being registered.
    pub user: UserId,
    /// The Identity Key that signs this.
    pub identity_key: IdentityPublicKey,
}

impl Registration {
    /// A registration of `user` with `identity_key`.
    pub fn new(user: UserId, identity_key: IdentityPublicKey) -> Self {
        Registration {
            version: VERSION,
            user,
            identity_key,
        }
    }
}

impl SignedPayload for Registration {
    const LABEL: &'static str = LABEL_REGISTRATION;
    const MAX_LEN: usize = 512;
    type Signer = Identity;
}

/// IK certifies a device's Device Key. `[1, user, device_key, created]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct DeviceCert {
    /// Always 1.
    pub version: u8,
    /// The device's user.
    pub user: UserId,
    /// The device's public Device Key.
    pub device_key: DevicePublicKey,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

impl DeviceCert {
    /// A certificate for `device_key`.
    pub fn new(user: UserId, device_key: DevicePublicKey, created: u64) -> Self {
        DeviceCert {
            version: VERSION,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct DeviceRevocation {
    /// Always 1.
    pub version: u8,
    /// The device's user.
    pub user: UserId,
    /// The Device Key being revoked.
    pub device_key: DevicePublicKey,
    /// Revocation time, seconds since the Unix epoch.
    pub time: u64,
}

impl DeviceRevocation {
    /// A revocation of `device_key`.
    pub fn new(user: UserId, device_key: DevicePublicKey, time: u64) -> Self {
        DeviceRevocation {
            version: VERSION,
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

/// DK signs a one-time Device Pre Key. `[1, user, suite, kem_key]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct PreKey {
    /// Always 1.
    pub version: u8,
    /// The device's user.
    pub user: UserId,
    /// HPKE suite of the key.
    pub suite: u16,
    /// HPKE public key.
    pub kem_key: ByteBuf,
}

impl PreKey {
    /// A pre key certificate for `key`.
    pub fn new(user: UserId, key: &KemPublicKey) -> Self {
        PreKey {
            version: VERSION,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct TopicKeyCert {
    /// Always 1.
    pub version: u8,
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

impl TopicKeyCert {
    /// A certificate for `key`.
    pub fn new(user: UserId, key: &TopicPublicKey, created: u64) -> Self {
        TopicKeyCert {
            version: VERSION,
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

//! Tests of identity deliveries (`directory.md` §8).

use super::*;
use crate::certs::{DeviceCert, PreKey};
use crate::crypto::hpke::Suite;
use crate::crypto::{DeviceKey, KemSecretKey};
use crate::wire::Signed;

const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;

fn alice() -> UserId {
    "@alice:a.example".parse().unwrap()
}

struct Device {
    dk: DeviceKey,
    cert: Signed<DeviceCert>,
    prekey: KemSecretKey,
}

/// A user with `n` devices certified by `ik`, each with one pre key.
struct User {
    id: UserId,
    ik: IdentityKey,
    devices: Vec<Device>,
    directory: DeviceDirectory,
}

impl User {
    fn new(n: usize) -> User {
        let id = alice();
        let ik = IdentityKey::generate();
        let mut directory = DeviceDirectory::new(id.clone(), ik.public().clone());
        let devices = (0..n)
            .map(|_| {
                let dk = DeviceKey::generate();
                let cert = Signed::sign(DeviceCert::new(id.clone(), dk.public().clone(), 1), &ik)
                    .unverified();
                directory.add(cert.clone()).unwrap();
                Device {
                    dk,
                    cert,
                    prekey: KemSecretKey::generate(SUITE),
                }
            })
            .collect();
        User {
            id,
            ik,
            devices,
            directory,
        }
    }

    fn claimed(&self, d: &Device, prekey: &KemSecretKey) -> ClaimedPreKey {
        ClaimedPreKey {
            device_cert: d.cert.clone(),
            prekey: Signed::sign(PreKey::new(self.id.clone(), prekey.public()), &d.dk).unverified(),
        }
    }

    /// An honest homeserver's answer: one pre key of every device but `own`.
    fn claim(&self, own: usize) -> Vec<ClaimedPreKey> {
        (self.devices.iter().enumerate())
            .filter(|(i, _)| *i != own)
            .map(|(_, d)| self.claimed(d, &d.prekey))
            .collect()
    }

    fn deliver(
        &self,
        own: usize,
        rotation: &SignedIdentityRotation,
        new: &IdentityKey,
        claimed: Vec<ClaimedPreKey>,
    ) -> Result<Vec<Delivery>, IdentityDeliveryError> {
        make_identity_deliveries(
            rotation,
            new,
            &self.directory,
            self.devices[own].dk.public(),
            claimed,
            &mut Randomness::Os,
        )
    }

    /// The delivery addressed to device `d`'s pre key.
    fn for_device<'a>(&self, d: usize, deliveries: &'a [Delivery]) -> &'a Delivery {
        let id = self.devices[d].prekey.public().key_id();
        deliveries.iter().find(|x| x.prekey_id == id).unwrap()
    }
}

#[test]
fn every_other_device_opens_the_new_key() {
    let u = User::new(3);
    let new = IdentityKey::generate();
    let rotation = SignedIdentityRotation::sign(&u.id, &u.ik, &new, 5);
    let deliveries = u.deliver(0, &rotation, &new, u.claim(0)).unwrap();
    assert_eq!(deliveries.len(), 2);
    for d in 1..3 {
        let delivery = u.for_device(d, &deliveries);
        // The wire form round-trips (it travels as inbox item bytes).
        let delivery = Delivery::from_wire(&delivery.to_wire()).unwrap();
        let key =
            open_identity_delivery(&u.devices[d].prekey, &u.id, &rotation, &delivery).unwrap();
        assert_eq!(key.public(), new.public());
    }
}

#[test]
fn a_delivery_for_another_rotation_user_or_key_does_not_open() {
    let u = User::new(2);
    let new = IdentityKey::generate();
    let rotation = SignedIdentityRotation::sign(&u.id, &u.ik, &new, 5);
    let deliveries = u.deliver(0, &rotation, &new, u.claim(0)).unwrap();
    let delivery = u.for_device(1, &deliveries);
    let prekey = &u.devices[1].prekey;

    // Another rotation (to another new key) of the same user: the context differs.
    let other = IdentityKey::generate();
    let other_rotation = SignedIdentityRotation::sign(&u.id, &u.ik, &other, 5);
    assert_eq!(
        open_identity_delivery(prekey, &u.id, &other_rotation, delivery).unwrap_err(),
        IdentityDeliveryError::OpenFailed
    );
    // The same rotation presented for another user.
    let bob: UserId = "@bob:a.example".parse().unwrap();
    assert!(matches!(
        open_identity_delivery(prekey, &bob, &rotation, delivery),
        Err(IdentityDeliveryError::WrongUser { .. })
    ));
    // Another user's rotation to the same key, presented with this delivery.
    let bob_rotation = SignedIdentityRotation::sign(&bob, &u.ik, &new, 5);
    assert!(open_identity_delivery(prekey, &bob, &bob_rotation, delivery).is_err());
    // Another pre key.
    let stranger = KemSecretKey::generate(SUITE);
    assert!(matches!(
        open_identity_delivery(&stranger, &u.id, &rotation, delivery),
        Err(IdentityDeliveryError::WrongPreKey { .. })
    ));
    // A forged rotation (the new key's signature is not the new key's).
    let forged = rotation.clone().with_new_signature_copied();
    assert!(matches!(
        open_identity_delivery(prekey, &u.id, &forged, delivery),
        Err(IdentityDeliveryError::Rotation(_))
    ));
    // Tampering.
    let mut t = delivery.clone();
    t.sealed.ciphertext[0] ^= 1;
    assert_eq!(
        open_identity_delivery(prekey, &u.id, &rotation, &t).unwrap_err(),
        IdentityDeliveryError::OpenFailed
    );
    // A topic key delivery's purpose is another: a box sealed to the same pre key and context
    // under another purpose does not open.
    let boxed = hpke::seal(
        prekey.public(),
        SealPurpose::TopicKeyDelivery,
        &context(&u.id, new.public()),
        None,
        &encode_secret(&IdentityPlaintext {
            version: VERSION,
            identity_seed: Secret32(new.seed()),
        })
        .unwrap(),
        &mut Randomness::Os,
    )
    .unwrap();
    let d = Delivery {
        prekey_id: prekey.public().key_id(),
        sealed: boxed,
    };
    assert_eq!(
        open_identity_delivery(prekey, &u.id, &rotation, &d).unwrap_err(),
        IdentityDeliveryError::OpenFailed
    );
}

#[test]
fn a_delivery_of_another_key_is_caught() {
    // A box with the right purpose and context that holds another seed (only a device that
    // holds the IK could make one; the check keeps the keystore from ever holding a key that
    // is not the rotation's).
    let u = User::new(2);
    let new = IdentityKey::generate();
    let rotation = SignedIdentityRotation::sign(&u.id, &u.ik, &new, 5);
    let prekey = &u.devices[1].prekey;
    let wrong = IdentityKey::generate();
    let sealed = hpke::seal(
        prekey.public(),
        SealPurpose::IdentityDelivery,
        &context(&u.id, new.public()),
        None,
        &encode_secret(&IdentityPlaintext {
            version: VERSION,
            identity_seed: Secret32(wrong.seed()),
        })
        .unwrap(),
        &mut Randomness::Os,
    )
    .unwrap();
    let d = Delivery {
        prekey_id: prekey.public().key_id(),
        sealed,
    };
    assert!(matches!(
        open_identity_delivery(prekey, &u.id, &rotation, &d),
        Err(IdentityDeliveryError::KeyMismatch { .. })
    ));
}

#[test]
fn the_server_can_neither_add_a_key_nor_leave_a_device_out() {
    let u = User::new(3);
    let new = IdentityKey::generate();
    let rotation = SignedIdentityRotation::sign(&u.id, &u.ik, &new, 5);

    // A device left out.
    let mut claimed = u.claim(0);
    claimed.pop();
    assert!(matches!(
        u.deliver(0, &rotation, &new, claimed),
        Err(IdentityDeliveryError::PreKeys(
            TopicKeyError::MissingDevice { .. }
        ))
    ));
    // A pre key the server made itself, under a device's certificate.
    let mut claimed = u.claim(0);
    let fake = KemSecretKey::generate(SUITE);
    claimed[0].prekey = Signed::sign(
        PreKey::new(u.id.clone(), fake.public()),
        &DeviceKey::generate(),
    )
    .unverified();
    assert!(matches!(
        u.deliver(0, &rotation, &new, claimed),
        Err(IdentityDeliveryError::PreKeys(
            TopicKeyError::PreKeySignature { .. }
        ))
    ));
    // A device of the server's own, certified by another key.
    let mut claimed = u.claim(0);
    let stranger = DeviceKey::generate();
    let foreign = Signed::sign(
        DeviceCert::new(u.id.clone(), stranger.public().clone(), 1),
        &IdentityKey::generate(),
    )
    .unverified();
    claimed.push(ClaimedPreKey {
        device_cert: foreign,
        prekey: Signed::sign(PreKey::new(u.id.clone(), fake.public()), &stranger).unverified(),
    });
    assert!(matches!(
        u.deliver(0, &rotation, &new, claimed),
        Err(IdentityDeliveryError::PreKeys(TopicKeyError::DeviceCert(_)))
    ));
    // Two pre keys of one device.
    let mut claimed = u.claim(0);
    let extra = KemSecretKey::generate(SUITE);
    claimed.push(u.claimed(&u.devices[1], &extra));
    assert!(matches!(
        u.deliver(0, &rotation, &new, claimed),
        Err(IdentityDeliveryError::PreKeys(
            TopicKeyError::PreKeyCount { .. }
        ))
    ));
    // The rotating device's own pre key.
    let mut claimed = u.claim(0);
    claimed.push(u.claimed(&u.devices[0], &u.devices[0].prekey));
    assert!(matches!(
        u.deliver(0, &rotation, &new, claimed),
        Err(IdentityDeliveryError::PreKeys(TopicKeyError::OwnDevice))
    ));
}

#[test]
fn the_rotation_must_fit_the_device_set_and_the_key() {
    let u = User::new(2);
    let new = IdentityKey::generate();
    // Not from the key the device set is certified under.
    let stray = SignedIdentityRotation::sign(&u.id, &IdentityKey::generate(), &new, 5);
    assert!(matches!(
        u.deliver(0, &stray, &new, u.claim(0)),
        Err(IdentityDeliveryError::NotFromCurrentKey { .. })
    ));
    // To another key than the one sealed.
    let rotation = SignedIdentityRotation::sign(&u.id, &u.ik, &new, 5);
    assert!(matches!(
        u.deliver(0, &rotation, &IdentityKey::generate(), u.claim(0)),
        Err(IdentityDeliveryError::NotToNewKey { .. })
    ));
    // Another user's.
    let bob: UserId = "@bob:a.example".parse().unwrap();
    let theirs = SignedIdentityRotation::sign(&bob, &u.ik, &new, 5);
    assert!(matches!(
        u.deliver(0, &theirs, &new, u.claim(0)),
        Err(IdentityDeliveryError::WrongUser { .. })
    ));
    // A single device has nobody to deliver to.
    let alone = User::new(1);
    let r = SignedIdentityRotation::sign(&alone.id, &alone.ik, &new, 5);
    assert!(alone.deliver(0, &r, &new, Vec::new()).unwrap().is_empty());
}

//! Tests of Topic Key batches, uploads and deliveries.

use super::delivery::{TopicKeyPlaintext, delivery_context};
use super::*;
use std::collections::BTreeSet;

use crate::crypto::hpke::{self, SealPurpose, Suite};
use crate::crypto::transcript::LABEL_MESSAGE;
use crate::crypto::{DeviceKey, VectorRng};
use crate::crypto::{IdentityKey, KemSecretKey, Randomness, TopicKey};
use crate::devices::directory::DeviceDirectory;
use crate::devices::{Secret32, encode_secret};
use crate::wire::{VERSION, decode_versioned};

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
                let cert = Signed::sign(DeviceCert::new(id.clone(), dk.public().clone(), 1), &ik)
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

//! Identity rotation against a running server (`directory.md` §8, `client-api.md` §3): the
//! server replaces the registration and the device certificates and appends a kind 2 entry in
//! one transaction; contacts follow the rotation, verified ones are told the key changed; the
//! old key certifies nothing any more; a refused rotation changes nothing; the user's other
//! devices receive the new key through their inboxes (kind 5) and their self-monitoring
//! follows.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use awc::http::Method;
use rendezvous_client::http::Http;
use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::api::{
    AddDeviceRequest, Body, ClaimPreKeysResponse, DevicesResponse, Empty, ErrorCode,
    RotateIdentityRequest,
};
use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement, Registration};
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey};
use rendezvous_protocol::directory::{DirectoryEntry, EntryKind, SignedIdentityRotation};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::wire::{Signed, SignedBytes};
use rendezvous_testkit::TempDir;
use rendezvous_testkit::server::{TestServer, open_store_when_free, register, try_link, uid};

fn http(server: &TestServer) -> Http {
    Http::new(&server.url, &server.trust()).unwrap()
}

fn cert(ik: &IdentityKey, user: &UserId, dk: &DeviceKey) -> SignedBytes {
    Signed::sign(DeviceCert::new(user.clone(), dk.public().clone(), 1), ik)
        .signed_bytes()
        .clone()
}

/// A rotation request of `user` from `old` (the rotation's signer) to `new`, certifying
/// `devices`.
fn request(
    user: &UserId,
    old: &IdentityKey,
    new: &IdentityKey,
    devices: &[&DeviceKey],
) -> RotateIdentityRequest {
    let registration = Signed::sign(Registration::new(user.clone(), new.public().clone()), new);
    RotateIdentityRequest {
        rotation: SignedIdentityRotation::sign(user, old, new, 1).to_wire(),
        registration: registration.signed_bytes().clone(),
        device_certs: devices.iter().map(|d| cert(new, user, d)).collect(),
        deliveries: Vec::new(),
    }
}

async fn post(
    server: &TestServer,
    token: Option<&str>,
    request: &RotateIdentityRequest,
) -> Result<(), ClientError> {
    http(server)
        .send(
            Method::POST,
            "/v1/identity/rotate",
            Some(request.to_cbor()),
            token,
            1024,
        )
        .await
        .map(|_| ())
}

fn code(result: Result<(), ClientError>) -> Option<ErrorCode> {
    result.unwrap_err().code()
}

/// The server's directory entries, read from its store once it stopped.
fn entries(server: TestServer, dir: &TempDir) -> Vec<DirectoryEntry> {
    server.stop();
    let store = open_store_when_free(&dir.join("data").join("db"));
    (0..store.directory_size().unwrap())
        .map(|i| DirectoryEntry::decode(&store.directory_entry(i).unwrap().unwrap()).unwrap())
        .collect()
}

/// A lookup, retried while the rotation is not in the served checkpoint yet
/// (`directory_pending`: checkpoints are signed at most once a second).
async fn lookup(
    client: &mut Client,
    user: &UserId,
) -> Result<rendezvous_protocol::directory::Binding, ClientError> {
    for _ in 0..50 {
        match client.lookup_identity(user).await {
            Err(e) if e.code() == Some(ErrorCode::DirectoryPending) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            other => return other,
        }
    }
    panic!("the rotation never reached the served checkpoint");
}

#[actix_rt::test]
async fn contacts_follow_a_rotation_and_verified_ones_are_told() {
    let dir = TempDir::new("rotation-contacts");
    let server = TestServer::start(&dir.join("data"));
    let mut alice = register(&server, &dir, "alice").await;
    let mut bob = register(&server, &dir, "bob").await;
    let mut carol = register(&server, &dir, "carol").await;
    let old = alice.keystore().identity().unwrap();
    bob.lookup_identity(&uid("alice")).await.unwrap();
    carol.contact_code(&uid("alice"), true).await.unwrap();

    let new = alice.rotate_identity().await.unwrap();
    assert_ne!(new, *old.public());
    // The keystore holds the new key, and the client uses it.
    assert_eq!(*alice.keystore().identity().unwrap().public(), new);
    assert_eq!(alice.devices().await.unwrap().len(), 1);

    // An unverified contact follows the rotation (§6.1 step 6) and is told once.
    let binding = lookup(&mut bob, &uid("alice")).await.unwrap();
    assert_eq!(binding.identity_key, new);
    let contacts = bob.contacts().unwrap();
    assert_eq!(contacts[0].state, "rotated");
    let rotations = bob.take_rotations().unwrap();
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].user, "@alice:localhost");

    // A verified contact must verify again.
    let e = lookup(&mut carol, &uid("alice")).await.unwrap_err();
    assert!(e.to_string().contains("identity key"), "{e}");
    assert_eq!(e.error_code(), "identity_changed", "{e}");

    drop((alice, bob, carol));
    let entries = entries(server, &dir);
    let last = entries.last().unwrap();
    assert_eq!(last.kind, EntryKind::Rotation);
    assert_eq!(last.identity_key, new);
    last.check(&"localhost".parse::<ServerName>().unwrap())
        .unwrap();
    let rotation = last.rotation().unwrap();
    assert_eq!(rotation.old_identity_key, *old.public());
}

#[actix_rt::test]
async fn the_old_key_certifies_no_device_after_a_rotation() {
    let dir = TempDir::new("rotation-old-key");
    let server = TestServer::start(&dir.join("data"));
    let mut alice = register(&server, &dir, "alice").await;
    let old = alice.keystore().identity().unwrap();
    let dk = alice.keystore().device().unwrap();
    let user = uid("alice");
    alice.rotate_identity().await.unwrap();
    let new = alice.keystore().identity().unwrap();

    let added = DeviceKey::generate();
    let endorse = |k: &DeviceKey| {
        let e = DeviceEndorsement::new(user.clone(), k.public().clone(), dk.public().clone(), 2);
        Signed::sign(e, &dk).signed_bytes().clone()
    };
    let add = |ik: &IdentityKey, k: &DeviceKey| AddDeviceRequest {
        device_cert: cert(ik, &user, k),
        endorsement: Some(endorse(k)),
    };
    let send = |r: AddDeviceRequest| {
        let h = http(&server);
        async move {
            h.send(Method::POST, "/v1/devices", Some(r.to_cbor()), None, 1024)
                .await
                .map(|_| ())
        }
    };
    assert_eq!(
        code(send(add(&old, &added)).await),
        Some(ErrorCode::BadSignature)
    );
    send(add(&new, &added)).await.unwrap();
}

#[actix_rt::test]
async fn refused_rotations_change_nothing() {
    let dir = TempDir::new("rotation-refused");
    let server = TestServer::start(&dir.join("data"));
    let mut alice = register(&server, &dir, "alice").await;
    let ik = alice.keystore().identity().unwrap();
    let dk = alice.keystore().device().unwrap();
    let token = alice.keystore().token().unwrap().unwrap().to_string();
    let user = uid("alice");
    // A second active device, so that a request can leave one out.
    let second = DeviceKey::generate();
    let e = DeviceEndorsement::new(
        user.clone(),
        second.public().clone(),
        dk.public().clone(),
        2,
    );
    let add = AddDeviceRequest {
        device_cert: cert(&ik, &user, &second),
        endorsement: Some(Signed::sign(e, &dk).signed_bytes().clone()),
    };
    http(&server)
        .send(Method::POST, "/v1/devices", Some(add.to_cbor()), None, 1024)
        .await
        .unwrap();
    let keys = |d: Vec<rendezvous_client::DeviceEntry>| -> Vec<_> {
        d.into_iter().map(|d| d.device_key).collect()
    };
    let before = keys(alice.devices().await.unwrap());

    let new = IdentityKey::generate();
    let stranger = IdentityKey::generate();
    let refusals = [
        (
            "signed by a key that is not the current IK",
            Some(token.as_str()),
            request(&user, &stranger, &new, &[&dk, &second]),
            ErrorCode::Forbidden,
        ),
        (
            "a device's certificate missing",
            Some(token.as_str()),
            request(&user, &ik, &new, &[&dk]),
            ErrorCode::Invalid,
        ),
        (
            "no token",
            None,
            request(&user, &ik, &new, &[&dk, &second]),
            ErrorCode::Unauthorized,
        ),
    ];
    for (what, token, r, expected) in refusals {
        assert_eq!(
            code(post(&server, token, &r).await),
            Some(expected),
            "{what}"
        );
    }
    // Nothing changed: the old key still signs, the devices and their certificates stand.
    assert_eq!(*alice.keystore().identity().unwrap().public(), *ik.public());
    assert_eq!(keys(alice.devices().await.unwrap()), before);
    drop(alice);
    let entries = entries(server, &dir);
    assert!(entries.iter().all(|e| e.kind == EntryKind::Registration));
}

/// The whole request, for a check of the test's own helper: the right rotation passes.
#[actix_rt::test]
async fn a_well_formed_request_passes() {
    let dir = TempDir::new("rotation-raw");
    let server = TestServer::start(&dir.join("data"));
    let alice: Client = register(&server, &dir, "alice").await;
    let ik = alice.keystore().identity().unwrap();
    let dk = alice.keystore().device().unwrap();
    let r = request(&uid("alice"), &ik, &IdentityKey::generate(), &[&dk]);
    let token = alice.keystore().token().unwrap().unwrap();
    post(&server, Some(token.as_str()), &r).await.unwrap();
}

/// `alice` registered and a second device `phone` linked to her account.
async fn two_devices(server: &TestServer, dir: &TempDir) -> (Client, Client) {
    let mut a = register(server, dir, "alice").await;
    let (joined, offered) = try_link(server, dir, &mut a, "phone").await;
    offered.unwrap();
    let mut b = joined.unwrap();
    b.set_clock(server.clock.clone());
    (a, b)
}

/// A monitoring pass, repeated while the served checkpoint does not hold `size` entries yet.
async fn monitor_until(client: &mut Client, size: u64) -> rendezvous_client::MonitorSummary {
    for _ in 0..50 {
        let summary = client.monitor_directory().await.unwrap();
        if summary.size >= size {
            return summary;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the directory never reached {size} entries");
}

/// The raw `POST /v1/prekeys/claim` of `client`: one claimed pre key per other device.
async fn claim(server: &TestServer, client: &Client) -> ClaimPreKeysResponse {
    let token = client.keystore().token().unwrap().unwrap();
    let body = http(server)
        .send(
            Method::POST,
            "/v1/prekeys/claim",
            Some(Empty::default().to_cbor()),
            Some(token.as_str()),
            1 << 20,
        )
        .await
        .unwrap();
    ClaimPreKeysResponse::from_cbor(&body).unwrap()
}

#[actix_rt::test]
async fn the_other_device_receives_the_new_key_and_monitors_without_alarm() {
    let dir = TempDir::new("rotation-delivery");
    let server = TestServer::start(&dir.join("data"));
    let (mut a, mut b) = two_devices(&server, &dir).await;
    let old = a.keystore().identity().unwrap();
    assert_eq!(*b.keystore().identity().unwrap().public(), *old.public());
    monitor_until(&mut b, 1).await;

    let new = a.rotate_identity().await.unwrap();
    // The rotating device keeps the key it rotated from.
    assert_eq!(
        a.keystore().rotated_from().unwrap(),
        vec![old.public().clone()]
    );

    // Before its inbox is read, B's pass meets the kind 2 entry: pending, no alarm, and the
    // pass's state is not kept.
    let pending = monitor_until(&mut b, 2).await;
    assert!(pending.new_alarms.is_empty(), "{pending:?}");
    assert_eq!(pending.pending_rotations.len(), 1, "{pending:?}");
    assert!(b.directory_alarms().unwrap().is_empty());

    let report = b.sync_inbox().await.unwrap();
    assert_eq!(report.identity_rotations.len(), 1, "{report:?}");
    let notice = &report.identity_rotations[0];
    assert_eq!(notice.problem, None, "{notice:?}");
    assert_eq!(
        notice.to.as_deref(),
        Some(rendezvous_protocol::crypto::sign::hex_string(new.as_bytes()).as_str())
    );
    assert_eq!(*b.keystore().identity().unwrap().public(), new);
    assert_eq!(
        b.keystore().rotated_from().unwrap(),
        vec![old.public().clone()]
    );
    // Shown once: the next sync has nothing.
    assert!(b.sync_inbox().await.unwrap().identity_rotations.is_empty());

    // Both devices' self-monitoring: the kind 1 entry binds a rotated-from key, the kind 2
    // entry the new one; no alarm, nothing pending.
    for c in [&mut a, &mut b] {
        let summary = monitor_until(c, 2).await;
        assert!(summary.new_alarms.is_empty(), "{summary:?}");
        assert!(summary.pending_rotations.is_empty(), "{summary:?}");
        assert!(summary.invalid.is_empty(), "{summary:?}");
        assert!(c.directory_alarms().unwrap().is_empty());
    }

    // B's key is the one the server checks now: B's device list verifies under it, its Topic
    // Key certificates are accepted, and a device it links is certified by it.
    assert_eq!(b.devices().await.unwrap().len(), 2);
    assert_eq!(b.make_topic_keys(2).await.unwrap(), 2);
    let (laptop, offered) = try_link(&server, &dir, &mut b, "laptop").await;
    offered.unwrap();
    let laptop = laptop.unwrap();
    assert_eq!(*laptop.keystore().identity().unwrap().public(), new);
    assert_eq!(a.devices().await.unwrap().len(), 3);
}

#[actix_rt::test]
async fn a_rotation_that_leaves_out_a_device_or_adds_a_foreign_prekey_is_refused() {
    use rendezvous_protocol::crypto::{KemSecretKey, Randomness, SealPurpose, Suite, hpke};
    use rendezvous_protocol::devices::Delivery;
    let dir = TempDir::new("rotation-delivery-refused");
    let server = TestServer::start(&dir.join("data"));
    let (mut a, mut b) = two_devices(&server, &dir).await;
    let user = uid("alice");
    let ik = a.keystore().identity().unwrap();
    let dka = a.keystore().device().unwrap();
    let dkb = b.keystore().device().unwrap();
    let token = a.keystore().token().unwrap().unwrap().to_string();
    let new = IdentityKey::generate();
    let sealed_to = |key: &KemSecretKey| {
        let sealed = hpke::seal(
            key.public(),
            SealPurpose::IdentityDelivery,
            &[b"x"],
            None,
            b"not a key",
            &mut Randomness::Os,
        )
        .unwrap();
        let d = Delivery {
            prekey_id: key.public().key_id(),
            sealed,
        };
        serde_bytes::ByteBuf::from(d.to_wire())
    };
    let foreign = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
    let with = |deliveries: Vec<serde_bytes::ByteBuf>| {
        let mut r = request(&user, &ik, &new, &[&dka, &dkb]);
        r.deliveries = deliveries;
        r
    };
    let refusals = [
        ("the other device left out", with(Vec::new())),
        (
            "a pre key the server never saw",
            with(vec![sealed_to(&foreign)]),
        ),
        (
            "a foreign pre key besides",
            with(vec![sealed_to(&foreign), sealed_to(&foreign)]),
        ),
        (
            "not a delivery",
            with(vec![serde_bytes::ByteBuf::from(vec![0x80])]),
        ),
    ];
    for (what, r) in refusals {
        assert_eq!(
            code(post(&server, Some(&token), &r).await),
            Some(ErrorCode::Invalid),
            "{what}"
        );
    }
    // Nothing changed: B's inbox holds no rotation, B's device list still verifies under the
    // old key, the directory holds registrations only.
    assert!(b.sync_inbox().await.unwrap().identity_rotations.is_empty());
    assert_eq!(b.devices().await.unwrap().len(), 2);
    assert_eq!(*b.keystore().identity().unwrap().public(), *ik.public());
    // A rotation made by the client, with the delivery, passes afterwards.
    let rotated = a.rotate_identity().await.unwrap();
    let report = b.sync_inbox().await.unwrap();
    assert_eq!(report.identity_rotations[0].problem, None, "{report:?}");
    assert_eq!(*b.keystore().identity().unwrap().public(), rotated);
    drop((a, b));
    let entries = entries(server, &dir);
    let kinds: Vec<_> = entries.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EntryKind::Registration, EntryKind::Rotation]);
}

#[actix_rt::test]
async fn a_delivery_that_does_not_open_replaces_nothing() {
    use rendezvous_protocol::crypto::Randomness;
    use rendezvous_protocol::devices::{ClaimedPreKey, DeviceDirectory, make_identity_deliveries};
    let dir = TempDir::new("rotation-delivery-wrong");
    let server = TestServer::start(&dir.join("data"));
    let (mut a, mut b) = two_devices(&server, &dir).await;
    let user = uid("alice");
    let ik = a.keystore().identity().unwrap();
    let dka = a.keystore().device().unwrap();
    let dkb = b.keystore().device().unwrap();
    let token = a.keystore().token().unwrap().unwrap().to_string();
    // A delivery made, with B's real pre key, for another rotation (to another key) than the
    // one sent: the server cannot tell, B's device must.
    let (directory, _) = a.directory().await.unwrap();
    let claimed: Vec<ClaimedPreKey> = claim(&server, &a)
        .await
        .prekeys
        .into_iter()
        .map(|c| ClaimedPreKey {
            device_cert: Signed::from_signed_bytes(c.device_cert).unwrap(),
            prekey: Signed::from_signed_bytes(c.prekey).unwrap(),
        })
        .collect();
    let other = IdentityKey::generate();
    let other_rotation = SignedIdentityRotation::sign(&user, &ik, &other, 1);
    let deliveries = make_identity_deliveries(
        &other_rotation,
        &other,
        &directory,
        dka.public(),
        claimed,
        &mut Randomness::Os,
    )
    .unwrap();
    let new = IdentityKey::generate();
    let mut r = request(&user, &ik, &new, &[&dka, &dkb]);
    r.deliveries = deliveries
        .iter()
        .map(|d| serde_bytes::ByteBuf::from(d.to_wire()))
        .collect();
    post(&server, Some(&token), &r).await.unwrap();

    let report = b.sync_inbox().await.unwrap();
    assert_eq!(report.identity_rotations.len(), 1);
    let problem = report.identity_rotations[0].problem.clone().unwrap();
    assert!(problem.contains("does not open"), "{problem}");
    assert_eq!(*b.keystore().identity().unwrap().public(), *ik.public());
    assert!(b.keystore().rotated_from().unwrap().is_empty());

    // The next rotation, from the key B never received, with a delivery that opens: B holds
    // another key than the rotation's old one, so it applies nothing.
    let devices = DevicesResponse::from_cbor(
        &http(&server)
            .send(Method::GET, "/v1/devices", None, Some(&token), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    let mut directory = DeviceDirectory::new(user.clone(), new.public().clone());
    for d in devices.devices {
        directory
            .add(Signed::from_signed_bytes(d.device_cert).unwrap())
            .unwrap();
    }
    let claimed: Vec<ClaimedPreKey> = claim(&server, &a)
        .await
        .prekeys
        .into_iter()
        .map(|c| ClaimedPreKey {
            device_cert: Signed::from_signed_bytes(c.device_cert).unwrap(),
            prekey: Signed::from_signed_bytes(c.prekey).unwrap(),
        })
        .collect();
    let next = IdentityKey::generate();
    let rotation = SignedIdentityRotation::sign(&user, &new, &next, 2);
    let deliveries = make_identity_deliveries(
        &rotation,
        &next,
        &directory,
        dka.public(),
        claimed,
        &mut Randomness::Os,
    )
    .unwrap();
    let mut r = request(&user, &new, &next, &[&dka, &dkb]);
    r.rotation = rotation.to_wire();
    r.deliveries = deliveries
        .iter()
        .map(|d| serde_bytes::ByteBuf::from(d.to_wire()))
        .collect();
    post(&server, Some(&token), &r).await.unwrap();
    let report = b.sync_inbox().await.unwrap();
    let problem = report.identity_rotations[0].problem.clone().unwrap();
    assert!(problem.contains("not applied"), "{problem}");
    assert_eq!(*b.keystore().identity().unwrap().public(), *ik.public());
}

#[actix_rt::test]
async fn a_storage_fault_during_a_rotation_leaves_neither_the_rotation_nor_the_deliveries() {
    use std::sync::atomic::Ordering;
    let dir = TempDir::new("rotation-fault");
    let mut faults = None;
    let server = TestServer::start_inspecting(
        &dir.join("data"),
        "127.0.0.1:0".parse().unwrap(),
        rendezvous::clock::Clock::adjustable(),
        |_| None,
        |s| faults = Some(s.directory_write_faults_for_tests()),
    );
    let faults = faults.unwrap();
    let (mut a, mut b) = two_devices(&server, &dir).await;
    let old = a.keystore().identity().unwrap();
    faults.store(true, Ordering::SeqCst);
    let e = a.rotate_identity().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unavailable), "{e}");
    faults.store(false, Ordering::SeqCst);
    // Neither the client nor the server moved; B's inbox holds no rotation.
    assert_eq!(*a.keystore().identity().unwrap().public(), *old.public());
    assert!(a.keystore().rotated_from().unwrap().is_empty());
    assert_eq!(a.devices().await.unwrap().len(), 2);
    assert!(b.sync_inbox().await.unwrap().identity_rotations.is_empty());
    // And the rotation goes through once the disk works.
    let new = a.rotate_identity().await.unwrap();
    b.sync_inbox().await.unwrap();
    assert_eq!(*b.keystore().identity().unwrap().public(), new);
}

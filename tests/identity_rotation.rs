//! Identity rotation against a running server (`directory.md` §8, `client-api.md` §3.1): the
//! server replaces the registration and the device certificates and appends a kind 2 entry in
//! one transaction; contacts follow the rotation, verified ones are told the key changed; the
//! old key certifies nothing any more; a refused rotation changes nothing.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use awc::http::Method;
use rendezvous_client::http::Http;
use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::api::{AddDeviceRequest, Body, ErrorCode, RotateIdentityRequest};
use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement, Registration};
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey};
use rendezvous_protocol::directory::{DirectoryEntry, EntryKind, SignedIdentityRotation};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::wire::{Signed, SignedBytes};
use rendezvous_testkit::TempDir;
use rendezvous_testkit::server::{TestServer, open_store_when_free, register, uid};

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

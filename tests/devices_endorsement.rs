//! Adding and removing devices needs a device, not only the Identity Key (`devices.md` §2,
//! §5.4; `client-api.md` §3, §5), against a running server: a copied IK adds nothing, a removed
//! device that kept the IK stays out, a revocation needs a device's token, and the other devices
//! are told of every add.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use awc::http::Method;
use rendezvous_client::http::Http;
use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::api::{
    AddDeviceRequest, Body, ChallengeRequest, ChallengeResponse, ErrorCode, LoginRequest,
    LoginResponse, RevokeDeviceRequest,
};
use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement, DeviceRevocation};
use rendezvous_protocol::crypto::transcript::LABEL_DEVICE_LOGIN;
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::topic::History;
use rendezvous_protocol::wire::{Signed, Verified};
use rendezvous_testkit::TempDir;
use rendezvous_testkit::server::{TestServer, register, try_link, uid};

fn http(server: &TestServer) -> Http {
    Http::new(&server.url, &server.trust()).unwrap()
}

fn cert(ik: &IdentityKey, user: &UserId, dk: &DeviceKey) -> Verified<DeviceCert> {
    Signed::sign(DeviceCert::new(user.clone(), dk.public().clone(), 1), ik)
}

/// `by` endorses `new` for `user`, signed with `signer` (normally `by` itself).
fn endorsement(
    signer: &DeviceKey,
    by: &DeviceKey,
    user: &UserId,
    new: &DeviceKey,
) -> Verified<DeviceEndorsement> {
    let e = DeviceEndorsement::new(user.clone(), new.public().clone(), by.public().clone(), 2);
    Signed::sign(e, signer)
}

/// `POST /v1/devices` as a device that holds the IK would send it.
async fn add(
    server: &TestServer,
    cert: &Verified<DeviceCert>,
    endorsement: Option<&Verified<DeviceEndorsement>>,
) -> Result<(), ClientError> {
    let request = AddDeviceRequest {
        device_cert: cert.signed_bytes().clone(),
        endorsement: endorsement.map(|e| e.signed_bytes().clone()),
    };
    let body = Some(request.to_cbor());
    http(server)
        .send(Method::POST, "/v1/devices", body, None, 1024)
        .await
        .map(|_| ())
}

/// Logs in with a bare Device Key: the token.
async fn login(server: &TestServer, user: &UserId, dk: &DeviceKey) -> Result<String, ClientError> {
    let http = http(server);
    let request = ChallengeRequest {
        user: user.clone(),
        device_key: dk.public().clone(),
    };
    let challenge: ChallengeResponse = http
        .call(
            Method::POST,
            "/v1/login/challenge",
            Some(request.to_cbor()),
            None,
        )
        .await?;
    let parts: [&[u8]; 3] = [b"localhost", user.as_str().as_bytes(), &challenge.challenge];
    let request = LoginRequest {
        user: user.clone(),
        device_key: dk.public().clone(),
        challenge: challenge.challenge,
        signature: dk.sign(LABEL_DEVICE_LOGIN, &parts),
    };
    let answer: LoginResponse = http
        .call(Method::POST, "/v1/login", Some(request.to_cbor()), None)
        .await?;
    Ok(answer.token)
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> (Option<ErrorCode>, String) {
    let e = result.unwrap_err();
    (e.code(), e.to_string())
}

#[actix_rt::test]
async fn the_identity_key_alone_adds_no_device() {
    let dir = TempDir::new("endorse-ik-alone");
    let server = TestServer::start(&dir.join("data"));
    let mut alice = register(&server, &dir, "alice").await;
    let bob = register(&server, &dir, "bob").await;
    let ik = alice.keystore().identity().unwrap();
    let alice_dk = alice.keystore().device().unwrap();
    let bob_dk = bob.keystore().device().unwrap();
    let user = uid("alice");
    let new = DeviceKey::generate();
    let stranger = DeviceKey::generate();
    let c = cert(&ik, &user, &new);

    let refusals = [
        (None, ErrorCode::EndorsementRequired, "endorsement"),
        (
            Some(endorsement(&stranger, &stranger, &user, &new)),
            ErrorCode::Forbidden,
            "not a device of this user",
        ),
        (
            Some(endorsement(&bob_dk, &bob_dk, &user, &new)),
            ErrorCode::Forbidden,
            "not a device of this user",
        ),
        (
            Some(endorsement(&new, &new, &user, &new)),
            ErrorCode::Forbidden,
            "endorses itself",
        ),
        (
            Some(endorsement(&stranger, &alice_dk, &user, &new)),
            ErrorCode::BadSignature,
            "endorsement not signed",
        ),
        (
            Some(endorsement(&alice_dk, &alice_dk, &uid("bob"), &new)),
            ErrorCode::Invalid,
            "certificate is for",
        ),
        (
            Some(endorsement(&alice_dk, &alice_dk, &user, &stranger)),
            ErrorCode::Invalid,
            "endorsement is for device",
        ),
    ];
    for (e, expected, message) in refusals {
        let (got, text) = code(add(&server, &c, e.as_ref()).await);
        assert_eq!(got, Some(expected), "{text}");
        assert!(text.contains(message), "{text}");
        let (got, text) = code(login(&server, &user, &new).await);
        assert_eq!(got, Some(ErrorCode::Unauthorized), "{text}");
    }
    assert_eq!(
        alice.devices().await.unwrap().len(),
        1,
        "nothing was stored"
    );
    assert!(alice.sync_inbox().await.unwrap().devices_added.is_empty());

    // Endorsed by Alice's device, it is added, logs in, and Alice's device is told.
    add(
        &server,
        &c,
        Some(&endorsement(&alice_dk, &alice_dk, &user, &new)),
    )
    .await
    .unwrap();
    login(&server, &user, &new).await.unwrap();
    let report = alice.sync_inbox().await.unwrap();
    assert_eq!(report.devices_added.len(), 1);
    let notice = &report.devices_added[0];
    assert_eq!(notice.problem, None);
    assert_eq!(notice.device, Some(new.public().key_id().to_hex()));
    assert_eq!(notice.endorser, Some(alice_dk.public().key_id().to_hex()));
    server.stop();
}

#[actix_rt::test]
async fn a_removed_device_that_kept_the_identity_key_stays_out() {
    let dir = TempDir::new("endorse-removed");
    let server = TestServer::start(&dir.join("data"));
    let mut alice = register(&server, &dir, "alice").await;
    let topic = alice.create_topic(&[], History::Shared).await.unwrap();
    alice.send(&topic, b"before").await.unwrap();
    let (joined, offered) = try_link(&server, &dir, &mut alice, "phone").await;
    offered.unwrap();
    let mut phone = joined.unwrap();
    phone.read(&topic).await.unwrap();
    let phone_dk = phone.keystore().device().unwrap();
    alice
        .remove_device(&phone_dk.public().key_id().to_hex())
        .await
        .unwrap();
    alice.send(&topic, b"after").await.unwrap();

    // What the phone kept: the IK and its old Device Key.
    let ik = phone.keystore().identity().unwrap();
    let user = uid("alice");
    let fresh = DeviceKey::generate();
    let (got, text) = code(
        add(
            &server,
            &cert(&ik, &user, &fresh),
            Some(&endorsement(&phone_dk, &phone_dk, &user, &fresh)),
        )
        .await,
    );
    assert_eq!(got, Some(ErrorCode::Forbidden), "{text}");
    assert!(text.contains("revoked"), "{text}");
    let (got, _) = code(add(&server, &cert(&ik, &user, &fresh), None).await);
    assert_eq!(got, Some(ErrorCode::EndorsementRequired));
    let (got, _) = code(login(&server, &user, &fresh).await);
    assert_eq!(got, Some(ErrorCode::Unauthorized));
    // Nor does the old key come back, nor read the topic.
    let (got, _) = code(login(&server, &user, &phone_dk).await);
    assert_eq!(got, Some(ErrorCode::Unauthorized));
    let (got, text) = code(phone.read(&topic).await);
    assert_eq!(got, Some(ErrorCode::Unauthorized), "{text}");
    assert_eq!(alice.devices().await.unwrap().len(), 1);
    server.stop();
}

#[actix_rt::test]
async fn a_revocation_needs_a_token_of_the_users_device() {
    let dir = TempDir::new("endorse-revoke");
    let server = TestServer::start(&dir.join("data"));
    let mut alice = register(&server, &dir, "alice").await;
    let bob = register(&server, &dir, "bob").await;
    let (joined, offered) = try_link(&server, &dir, &mut alice, "phone").await;
    offered.unwrap();
    let mut phone = joined.unwrap();
    let phone_dk = phone.keystore().device().unwrap();
    let ik = alice.keystore().identity().unwrap();
    let revocation = Signed::sign(
        DeviceRevocation::new(uid("alice"), phone_dk.public().clone(), 3),
        &ik,
    );
    let body = RevokeDeviceRequest {
        revocation: revocation.signed_bytes().clone(),
    }
    .to_cbor();
    let revoke = |token: Option<String>| {
        let body = body.clone();
        let http = http(&server);
        async move {
            http.send(
                Method::POST,
                "/v1/devices/revoke",
                Some(body),
                token.as_deref(),
                1024,
            )
            .await
        }
    };
    let (got, text) = code(revoke(None).await);
    assert_eq!(got, Some(ErrorCode::Unauthorized), "{text}");
    let bob_token = bob.keystore().token().unwrap().unwrap().to_string();
    let (got, text) = code(revoke(Some(bob_token)).await);
    assert_eq!(got, Some(ErrorCode::Forbidden), "{text}");
    assert_eq!(
        phone.devices().await.unwrap().len(),
        2,
        "the phone still works"
    );

    // The phone may revoke itself with its own token.
    let phone_token = phone.keystore().token().unwrap().unwrap().to_string();
    revoke(Some(phone_token)).await.unwrap();
    assert_eq!(alice.devices().await.unwrap().len(), 1);
    let (got, _) = code(phone.devices().await);
    assert_eq!(got, Some(ErrorCode::Unauthorized));
    server.stop();
}

#[actix_rt::test]
async fn the_other_devices_are_told_who_endorsed_a_link() {
    let dir = TempDir::new("endorse-notice");
    let server = TestServer::start(&dir.join("data"));
    let mut alice = register(&server, &dir, "alice").await;
    let (joined, offered) = try_link(&server, &dir, &mut alice, "laptop").await;
    offered.unwrap();
    let mut laptop = joined.unwrap();
    let (joined, offered) = try_link(&server, &dir, &mut laptop, "tablet").await;
    offered.unwrap();
    let mut tablet = joined.unwrap();
    let id = |c: &Client| c.keystore().device().unwrap().public().key_id().to_hex();
    let (alice_id, laptop_id, tablet_id) = (id(&alice), id(&laptop), id(&tablet));

    let report = alice.sync_inbox().await.unwrap();
    let told: Vec<_> = report
        .devices_added
        .iter()
        .map(|d| {
            (
                d.device.clone().unwrap(),
                d.endorser.clone().unwrap(),
                d.problem.clone(),
            )
        })
        .collect();
    assert_eq!(
        told,
        vec![
            (laptop_id.clone(), alice_id.clone(), None),
            (tablet_id.clone(), laptop_id.clone(), None)
        ]
    );
    // Told once.
    assert!(alice.sync_inbox().await.unwrap().devices_added.is_empty());
    let report = laptop.sync_inbox().await.unwrap();
    assert_eq!(report.devices_added.len(), 1, "{:?}", report.devices_added);
    // The new device itself is not told of itself.
    assert!(tablet.sync_inbox().await.unwrap().devices_added.is_empty());

    // `device list` marks who endorsed whom, as each device learned it.
    let endorsed: Vec<_> = alice
        .devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.device_key.key_id().to_hex(), d.endorsed_by))
        .collect();
    assert!(endorsed.contains(&(tablet_id.clone(), Some(laptop_id.clone()))));
    assert!(endorsed.contains(&(laptop_id.clone(), Some(alice_id.clone()))));
    assert!(endorsed.contains(&(alice_id, None)));
    let on_tablet = tablet.devices().await.unwrap();
    let me = on_tablet.iter().find(|d| d.this_device).unwrap();
    assert_eq!(me.endorsed_by, Some(laptop_id));
    server.stop();
}

//! Quotas per user and device (`client-api.md` §1.4) against a running server: each is refused
//! `403 quota_exceeded` with nothing stored, other users go on, and `GET /admin/status` names
//! the refused user.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous::limits::QuotaConfig;
use rendezvous_client::Client;
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::TempDir;
use rendezvous_testkit::server::{TestServer, register, try_link, uid};

fn start(dir: &TempDir, quota: QuotaConfig) -> TestServer {
    TestServer::start_with(&dir.join("data"), "127.0.0.1:0".parse().unwrap(), |c| {
        c.limits.quota = quota;
        None
    })
}

/// The refusals `GET /admin/status` lists for `quota`: the users refused.
async fn refused(server: &TestServer, quota: &str) -> Vec<String> {
    let status = server.admin_status().await;
    status["limits"]["limited"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["scope"] == "quota" && row["class"] == quota)
        .map(|row| row["key"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_rt::test]
async fn topics_per_user_counts_creates_only() {
    let dir = TempDir::new("quota-topics");
    let quota = QuotaConfig {
        topics_per_user: 2,
        ..QuotaConfig::default()
    };
    let server = start(&dir, quota);
    let mut alice = register(&server, &dir, "alice").await;
    let mut bob = register(&server, &dir, "bob").await;
    alice.create_topic(&[], History::Shared).await.unwrap();
    alice.create_topic(&[], History::Shared).await.unwrap();
    let refused_create = alice.create_topic(&[], History::Shared).await.unwrap_err();
    assert_eq!(
        refused_create.code(),
        Some(ErrorCode::QuotaExceeded),
        "{refused_create}"
    );
    assert!(
        refused_create.to_string().contains("topics_per_user"),
        "{refused_create}"
    );
    assert_eq!(
        alice.topics().await.unwrap().len(),
        2,
        "nothing of the third was stored"
    );
    // Being added to other users' topics does not count; other users go on.
    for _ in 0..2 {
        bob.create_topic(&[(uid("alice"), Role::Writer)], History::Shared)
            .await
            .unwrap();
    }
    assert_eq!(alice.topics().await.unwrap().len(), 4);
    assert_eq!(
        refused(&server, "topics_per_user").await,
        vec![uid("alice").to_string()]
    );
    server.stop();
}

#[actix_rt::test]
async fn link_slots_are_capped_and_expire_on_access() {
    let dir = TempDir::new("quota-links");
    let server = start(&dir, QuotaConfig::default());
    let mut alice = register(&server, &dir, "alice").await;
    let first = alice.link_offer_start().await.unwrap();
    let _second = alice.link_offer_start().await.unwrap();
    let third = alice.link_offer_start().await.unwrap_err();
    assert_eq!(third.code(), Some(ErrorCode::QuotaExceeded), "{third}");
    assert_eq!(
        refused(&server, "link_slots_per_user").await,
        vec![uid("alice").to_string()]
    );
    // Ten minutes on, both slots are gone for every operation, purged or not.
    server.clock.advance(601);
    let joined = Client::link_join(
        &dir.join("late"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &first.code(),
    )
    .await
    .unwrap_err();
    assert_eq!(joined.code(), Some(ErrorCode::NotFound), "{joined}");
    // And the quota has room again: a fresh slot links a device.
    let (joined, offered) = try_link(&server, &dir, &mut alice, "phone").await;
    offered.unwrap();
    joined.unwrap();
    server.stop();
}

#[actix_rt::test]
async fn devices_per_user_is_enforced_at_the_server() {
    let dir = TempDir::new("quota-devices");
    let quota = QuotaConfig {
        devices_per_user: 2,
        ..QuotaConfig::default()
    };
    let server = start(&dir, quota);
    let mut alice = register(&server, &dir, "alice").await;
    let (joined, offered) = try_link(&server, &dir, &mut alice, "laptop").await;
    offered.unwrap();
    joined.unwrap();
    let (joined, _) = try_link(&server, &dir, &mut alice, "tablet").await;
    let refused_join = joined.unwrap_err();
    assert!(
        refused_join.to_string().contains("quota_exceeded")
            && refused_join.to_string().contains("devices_per_user"),
        "{refused_join}"
    );
    assert_eq!(
        alice.devices().await.unwrap().len(),
        2,
        "the third device was not added"
    );
    assert_eq!(
        refused(&server, "devices_per_user").await,
        vec![uid("alice").to_string()]
    );
    server.stop();
}

#[actix_rt::test]
async fn uploads_cannot_fill_a_devices_inbox_past_its_quota() {
    let dir = TempDir::new("quota-inbox");
    let quota = QuotaConfig {
        inbox_items_per_device: 10,
        ..QuotaConfig::default()
    };
    let server = start(&dir, quota);
    let mut alice = register(&server, &dir, "alice").await;
    let (joined, offered) = try_link(&server, &dir, &mut alice, "laptop").await;
    offered.unwrap();
    let mut laptop = joined.unwrap();
    laptop.sync_inbox().await.unwrap();
    let before = alice.key_status().await.unwrap().topic_keys_left;
    // Six deliveries to the laptop fit; six more would take its inbox to twelve.
    assert_eq!(alice.make_topic_keys(6).await.unwrap(), 6);
    let over = alice.make_topic_keys(6).await.unwrap_err();
    assert_eq!(over.code(), Some(ErrorCode::QuotaExceeded), "{over}");
    assert!(
        over.to_string().contains("inbox_items_per_device"),
        "{over}"
    );
    assert_eq!(
        alice.key_status().await.unwrap().topic_keys_left,
        before + 6,
        "nothing of the refused upload was stored"
    );
    assert_eq!(
        refused(&server, "inbox_items_per_device").await,
        vec![uid("alice").to_string()]
    );
    // The laptop takes its deliveries; there is room again.
    let report = laptop.sync_inbox().await.unwrap();
    let _ = report;
    assert_eq!(alice.make_topic_keys(6).await.unwrap(), 6);
    assert_eq!(
        alice.key_status().await.unwrap().topic_keys_left,
        before + 12
    );
    server.stop();
}

#[actix_rt::test]
async fn a_link_response_goes_only_to_the_device_that_asked_for_it() {
    use rendezvous_protocol::api::{Body, LinkMessage, LinkPickup};
    use rendezvous_protocol::crypto::sign::hex_string;
    use rendezvous_protocol::devices::link::{LinkJoiner, LinkResponse};
    use serde_bytes::ByteBuf;
    let dir = TempDir::new("pickup");
    let server = start(&dir, QuotaConfig::default());
    let mut alice = register(&server, &dir, "alice").await;
    let pending = alice.link_offer_start().await.unwrap();
    let code = pending.code().to_string();
    // The joining device, by hand: its request, and the pickup token it is given.
    let joiner = LinkJoiner::from_code(
        &code,
        rendezvous_protocol::crypto::DeviceKey::generate().public(),
    )
    .unwrap();
    let link_id = joiner.request().link_id;
    let http = rendezvous_client::http::Http::new(&server.url, &server.trust()).unwrap();
    let request = LinkMessage {
        body: ByteBuf::from(joiner.request().to_wire()),
    };
    let base = format!("/v1/link/{}", hex_string(&link_id));
    use awc::http::Method;
    let answer = http
        .send(
            awc::http::Method::POST,
            &format!("{base}/request"),
            Some(request.to_cbor()),
            None,
            1024,
        )
        .await
        .unwrap();
    let pickup = hex_string(&LinkPickup::from_cbor(&answer).unwrap().pickup);
    // The old device answers; the response waits in the slot.
    alice
        .link_offer_finish(pending, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    // Someone who learned the link id cannot take it, with no token or a made-up one, and
    // the slot stays.
    let response = format!("{base}/response");
    for token in [None, Some(hex_string(&[9u8; 32]))] {
        let e = http
            .send(Method::GET, &response, None, token.as_deref(), 1 << 23)
            .await;
        let e = e.err().map(|e| e.code());
        assert_eq!(
            e,
            Some(Some(ErrorCode::NotFound)),
            "the thief got the response"
        );
    }
    // The device that asked takes it, once.
    let bytes = http
        .send(Method::GET, &response, None, Some(&pickup), 1 << 23)
        .await
        .unwrap();
    let message = LinkMessage::from_cbor(&bytes).unwrap();
    let payload = joiner
        .open(&LinkResponse::from_wire(&message.body).unwrap())
        .unwrap();
    assert_eq!(payload.user, uid("alice"));
    let again = http
        .send(Method::GET, &response, None, Some(&pickup), 1 << 23)
        .await;
    assert_eq!(
        again.err().map(|e| e.code()),
        Some(Some(ErrorCode::NotFound))
    );
    server.stop();
}

/// The protocol's limit with the default quota (`devices_per_user` = 64): each of the 63 added
/// devices endorsed, the 65th refused naming the quota, and the list of 64 still served and
/// checked by the client.
#[actix_rt::test]
async fn the_sixty_fifth_device_is_refused_and_sixty_four_still_list() {
    use awc::http::Method;
    use rendezvous_protocol::api::{AddDeviceRequest, Body};
    use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement};
    use rendezvous_protocol::crypto::DeviceKey;
    use rendezvous_protocol::wire::Signed;

    let dir = TempDir::new("quota-64-devices");
    let server = start(&dir, QuotaConfig::default());
    assert_eq!(QuotaConfig::default().devices_per_user, 64);
    let mut alice = register(&server, &dir, "alice").await;
    let ik = alice.keystore().identity().unwrap();
    let dk = alice.keystore().device().unwrap();
    let http = rendezvous_client::http::Http::new(&server.url, &server.trust()).unwrap();
    let add = |new: DeviceKey| {
        let cert = Signed::sign(DeviceCert::new(uid("alice"), new.public().clone(), 1), &ik);
        let e = DeviceEndorsement::new(uid("alice"), new.public().clone(), dk.public().clone(), 1);
        let request = AddDeviceRequest {
            device_cert: cert.signed_bytes().clone(),
            endorsement: Some(Signed::sign(e, &dk).signed_bytes().clone()),
        };
        http.send(
            Method::POST,
            "/v1/devices",
            Some(request.to_cbor()),
            None,
            1024,
        )
    };
    for _ in 1..64 {
        add(DeviceKey::generate()).await.unwrap();
    }
    let refused_add = add(DeviceKey::generate()).await.unwrap_err();
    assert_eq!(
        refused_add.code(),
        Some(ErrorCode::QuotaExceeded),
        "{refused_add}"
    );
    assert!(
        refused_add.to_string().contains("devices_per_user"),
        "{refused_add}"
    );
    assert_eq!(alice.devices().await.unwrap().len(), 64);
    let report = alice.sync_inbox().await.unwrap();
    assert_eq!(report.devices_added.len(), 63);
    assert!(report.devices_added.iter().all(|d| d.problem.is_none()));
    assert_eq!(
        refused(&server, "devices_per_user").await,
        vec![uid("alice").to_string()]
    );
    server.stop();
}

//! A two-person conversation through a real homeserver.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_client::Client;
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::{TempDir, TestServer};

#[actix_rt::test]
async fn two_people_talk() {
    let dir = TempDir::new("smoke");
    let server = TestServer::start(&dir.join("server"));
    let alice_id: UserId = "@alice:localhost".parse().unwrap();
    let bob_id: UserId = "@bob:localhost".parse().unwrap();
    let mut alice = Client::register(
        &dir.join("alice"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &server.pin().await,
        &alice_id,
    )
    .await
    .unwrap();
    let mut bob = Client::register(
        &dir.join("bob"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &server.pin().await,
        &bob_id,
    )
    .await
    .unwrap();
    let topic = alice
        .create_topic(&[(bob_id.clone(), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"hi bob").await.unwrap();
    bob.send(&topic, b"hi alice").await.unwrap();
    let report = bob.read(&topic).await.unwrap();
    let texts = rendezvous_testkit::raw::texts(&report);
    assert_eq!(texts, vec!["hi bob".to_owned(), "hi alice".to_owned()]);
    assert!(
        report.entries.iter().all(|e| e.verified()),
        "{:?}",
        report.entries
    );
    assert!(report.missing.is_empty());
    let v = alice.verify(&topic).await.unwrap();
    assert!(v.ok(), "{v:?}");
}

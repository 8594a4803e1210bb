//! The longest server name `protocol.md` §2.1 allows (a host of 253 characters and a port: 255)
//! works end to end on one homeserver: registration and its directory entry, a topic it hosts
//! (checkpoints of origin `<name>/topic/<26>`, 288 bytes), the roster check's directory
//! lookups (origin `<name>/directory`), the client's per-topic and per-server files.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_client::Client;
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::{TempDir, TestServer};

#[actix_rt::test]
async fn the_longest_server_name_hosts_a_conversation() {
    let host = rendezvous_protocol::ids::longest_host();
    let name: ServerName = format!("{host}:9").parse().unwrap();
    assert_eq!(name.as_str().len(), 255);
    let dir = TempDir::new("long-names");
    let server = TestServer::start_with(&dir.join("server"), "127.0.0.1:0".parse().unwrap(), |c| {
        c.server_name = name.clone();
        None
    });
    let (_, mut alice) = register(&dir, &server, &name, "alice").await;
    let (bob_id, mut bob) = register(&dir, &server, &name, "bob").await;
    let topic = alice
        .create_topic(&[(bob_id.clone(), Role::Writer)], History::Shared)
        .await
        .unwrap();
    assert_eq!(topic.server(), name);
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
    let v = alice.verify(&topic).await.unwrap();
    assert!(v.ok(), "{v:?}");
}

async fn register(
    dir: &TempDir,
    server: &TestServer,
    name: &ServerName,
    who: &str,
) -> (UserId, Client) {
    let id: UserId = format!("@{who}:{name}").parse().unwrap();
    let client = Client::register(
        &dir.join(who),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &server.pin().await,
        &id,
    )
    .await
    .unwrap();
    (id, client)
}

//! The client enforces the tag log before it writes, and reads report problems at their true
//! positions (issue 9; `tag-log.md` §9.2, §9.4), against a real homeserver whose stored log is
//! edited while it is down (the `test-hooks` corruption hook): the honest server then serves a
//! log with a hole, exactly what a host dropping an entry from `/entries` does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_client::{Client, ClientError, EntryContent, ReadReport};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::HEAD_RESIGN_AFTER;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::TempDir;
use rendezvous_testkit::server::{TestServer, open_store_when_free, register, uid};

fn opened(report: &ReadReport) -> Vec<(u64, String)> {
    report
        .entries
        .iter()
        .filter_map(|e| match &e.content {
            EntryContent::Message { text: Some(t), .. } => Some((e.index, t.clone())),
            _ => None,
        })
        .collect()
}

/// Deletes stored entry `index` of `topic` while the server is down; returns it restarted.
async fn delete_entry(
    server: TestServer,
    dir: &TempDir,
    topic: &TopicId,
    index: u64,
) -> TestServer {
    let addr = server.addr;
    server.stop();
    {
        let store = open_store_when_free(&dir.join("server").join("db"));
        store.corrupt_entry_for_tests(topic, index, None).unwrap();
        store.sync().await.unwrap();
    }
    TestServer::start_on(&dir.join("server"), addr)
}

/// The log size as the server holds it (`GET /v1/topics`).
async fn size_of(client: &mut Client, topic: &TopicId) -> u64 {
    let topics = client.topics().await.unwrap();
    topics.iter().find(|t| &t.topic == topic).unwrap().size
}

/// The removal-drop attack of issue 9: the host serves the log without the "remove mallory"
/// change. Bob, who never saw the removal, must not encrypt under the old epoch (which mallory
/// holds): the send is refused `log_incomplete` naming the index, and nothing reaches the log.
#[actix_rt::test]
async fn a_send_on_a_log_without_the_removal_is_refused_and_nothing_is_encrypted() {
    let dir = TempDir::new("gate-removal");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let mut bob = register(&server, &dir, "bob").await;
    let _mallory = register(&server, &dir, "mallory").await;
    let topic = alice
        .create_topic(
            &[(uid("bob"), Role::Writer), (uid("mallory"), Role::Writer)],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"hello").await.unwrap();
    let removal = alice
        .remove_members(&topic, &[uid("mallory")])
        .await
        .unwrap();
    assert_eq!(removal, 2);
    let server = delete_entry(server, &dir, &topic, removal).await;

    let before = size_of(&mut bob, &topic).await;
    let err = bob
        .send(&topic, b"bob's secret, posted after mallory was removed")
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), "log_incomplete", "{err}");
    match &err {
        ClientError::LogIncomplete { indices, .. } => assert_eq!(indices, &vec![removal]),
        other => panic!("{other}"),
    }
    assert_eq!(
        size_of(&mut bob, &topic).await,
        before,
        "nothing was posted"
    );
    // No Message Key of a new epoch was made either: the change path is gated the same way.
    let err = bob.rekey(&topic).await.unwrap_err();
    assert!(
        ["log_incomplete", "not_admin"].contains(&err.error_code()),
        "{err}"
    );
    drop(server);
}

/// After one stored message is deleted, the reader reports it missing at its own index and
/// every later entry — including one posted after the deletion by a member whose verified
/// snapshot covers the hole — is verified at its true position (issue 9, item 8). The read
/// reports a problem, and the reader refuses to write on the incomplete view.
#[actix_rt::test]
async fn a_deleted_entry_is_reported_at_its_index_and_later_entries_keep_verifying() {
    let dir = TempDir::new("gate-positions");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let mut bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    for i in 0..4 {
        alice
            .send(&topic, format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    // Alice's verified snapshot covers the whole log before the deletion.
    let first = alice.read(&topic).await.unwrap();
    assert!(!first.has_problems(), "{first:?}");
    let server = delete_entry(server, &dir, &topic, 2).await;
    // She may still post: her view is complete (entries 0..5 were verified before).
    let later = alice.send(&topic, b"after the deletion").await.unwrap();
    assert_eq!(later, 5);

    let report = bob.read(&topic).await.unwrap();
    assert_eq!(report.missing, vec![2], "{report:?}");
    assert!(report.has_problems());
    let bad: Vec<u64> = report
        .entries
        .iter()
        .filter(|e| !e.verified())
        .map(|e| e.index)
        .collect();
    assert!(
        bad.is_empty(),
        "later entries must verify at their index: {report:?}"
    );
    assert_eq!(
        opened(&report),
        vec![
            (1, "m0".to_owned()),
            (3, "m2".to_owned()),
            (4, "m3".to_owned()),
            (5, "after the deletion".to_owned())
        ]
    );
    // The next read reports the hole again; writing on the view is refused.
    let again = bob.read(&topic).await.unwrap();
    assert_eq!(again.missing, vec![2]);
    let err = bob.send(&topic, b"on a hole").await.unwrap_err();
    assert_eq!(err.error_code(), "log_incomplete", "{err}");
    drop(server);
}

/// An idle topic's head does not go stale on an honest host: asked for its checkpoint after
/// `HEAD_RESIGN_AFTER`, the hosting server re-signs it (same size, time now). The server's
/// and alice's clock move forward instead of the test waiting.
#[actix_rt::test]
async fn an_idle_topics_head_is_re_signed_when_asked() {
    let dir = TempDir::new("gate-fresh");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let topic = alice.create_topic(&[], History::Shared).await.unwrap();
    alice.send(&topic, b"one").await.unwrap();
    let first = alice.read(&topic).await.unwrap();
    assert!(first.age <= 2 && !first.stale, "{first:?}");
    server.clock.advance(HEAD_RESIGN_AFTER + 2);
    let second = alice.read(&topic).await.unwrap();
    assert_eq!(second.size, first.size);
    assert!(second.age <= 2, "the head was not re-signed: {second:?}");
    // And the view accepted it as the same tree (same size, same root, fresher time).
    alice.send(&topic, b"two").await.unwrap();
    drop(server);
}

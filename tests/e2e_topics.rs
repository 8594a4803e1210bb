//! The seed's flows end to end through a real homeserver (issue 3, item 5): several users with
//! several devices, roles, removal, history settings, linked and removed devices, replay, restart,
//! a lying server, and bad input.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use rendezvous_client::Client;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::server::{TestServer, open_store_when_free, register, uid};
use rendezvous_testkit::{TempDir, raw};

/// Links a new device for `existing`'s user into keystore `dir/name`.
async fn link(server: &TestServer, dir: &TempDir, existing: &mut Client, name: &str) -> Client {
    let pending = existing.link_offer_start().await.unwrap();
    let code = pending.code().to_string();
    let (joined, offered) = futures_util::future::join(
        Client::link_join(
            &dir.join(name),
            &rendezvous_testkit::passphrase(),
            &server.url,
            server.trust(),
            &code,
        ),
        existing.link_offer_finish(pending, Duration::from_secs(20)),
    )
    .await;
    offered.unwrap();
    joined.unwrap()
}

/// Alice and Bob (a writer) in a new topic, with `count` messages from Alice.
async fn pair_with_messages(
    server: &TestServer,
    dir: &TempDir,
    history: History,
    prefix: &str,
    count: usize,
) -> (Client, Client, rendezvous_protocol::ids::TopicId) {
    let mut alice = register(server, dir, "alice").await;
    let bob = register(server, dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], history)
        .await
        .unwrap();
    for i in 0..count {
        alice
            .send(&topic, format!("{prefix}{i}").as_bytes())
            .await
            .unwrap();
    }
    (alice, bob, topic)
}

/// The stored bytes of entry `index`, one bit flipped inside its ciphertext, tag or signature.
fn altered(
    store: &rendezvous::store::Store,
    topic: &rendezvous_protocol::ids::TopicId,
    index: u64,
) -> Vec<u8> {
    let mut bytes = store.entry(topic, index).unwrap().unwrap();
    let n = bytes.len();
    // The signature's last byte (n − 110 fell inside the header of short messages). The leaf
    // covers it (protocol.md §8.1): the altered entry is not the log's, and the reader passes
    // over it with the log's own leaf hash from a neighbour's inclusion proof.
    bytes[n - 1] ^= 0x01;
    bytes
}

#[actix_rt::test]
async fn every_device_of_every_member_reads_every_message() {
    let dir = TempDir::new("devices");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let mut alice2 = link(&server, &dir, &mut alice, "alice2").await;
    let mut bob = register(&server, &dir, "bob").await;
    let mut bob2 = link(&server, &dir, &mut bob, "bob2").await;
    let mut bob3 = link(&server, &dir, &mut bob, "bob3").await;
    let mut carol = register(&server, &dir, "carol").await;

    let topic = alice
        .create_topic(
            &[(uid("bob"), Role::Writer), (uid("carol"), Role::Reader)],
            History::Shared,
        )
        .await
        .unwrap();
    alice2
        .send(&topic, b"from alice's second device")
        .await
        .unwrap();
    bob3.send(&topic, b"from bob's third device").await.unwrap();
    for device in [
        &mut alice,
        &mut alice2,
        &mut bob,
        &mut bob2,
        &mut bob3,
        &mut carol,
    ] {
        let report = device.read(&topic).await.unwrap();
        assert_eq!(
            raw::texts(&report),
            vec!["from alice's second device", "from bob's third device"],
            "{:?} read {:?}",
            device.user(),
            report.entries
        );
        assert!(
            report.entries.iter().all(|e| e.verified()),
            "{:?}",
            report.entries
        );
        assert!(report.missing.is_empty());
    }
    // Devices stay private: the topic log names users' keys, never devices.
    let state = raw::state(&server, &carol, &topic).await;
    assert_eq!(state.members().len(), 3);
}

#[actix_rt::test]
async fn a_readers_post_is_refused_by_client_and_server() {
    let dir = TempDir::new("reader");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let carol = register(&server, &dir, "carol").await;
    let topic = alice
        .create_topic(&[(uid("carol"), Role::Reader)], History::Shared)
        .await
        .unwrap();
    let mut carol = carol;
    assert!(
        carol.send(&topic, b"may I?").await.is_err(),
        "the client refuses"
    );
    // A modified client posts anyway: the server refuses with its own code.
    let body = raw::message(&server, &carol, &topic, b"may I?").await;
    let (http, token) = raw::http(&server, &carol);
    let (status, code) = raw::post(&http, Some(&token), &raw::messages_path(&topic), body).await;
    assert_eq!(
        (status, code.as_deref()),
        (409, Some("not_allowed_to_post"))
    );
    let s = raw::state(&server, &alice, &topic).await;
    assert_eq!(s.size(), 1, "the refused post changed nothing");
}

#[actix_rt::test]
async fn a_replayed_message_is_refused() {
    let dir = TempDir::new("replay");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    let body = raw::message(&server, &alice, &topic, b"once only").await;
    let (http, token) = raw::http(&server, &alice);
    assert_eq!(
        raw::post(
            &http,
            Some(&token),
            &raw::messages_path(&topic),
            body.clone()
        )
        .await
        .0,
        200
    );
    let (status, code) = raw::post(&http, Some(&token), &raw::messages_path(&topic), body).await;
    assert_eq!((status, code.as_deref()), (409, Some("replayed")));
}

#[actix_rt::test]
async fn a_removed_member_reads_nothing_posted_after_removal() {
    let dir = TempDir::new("removal");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let mut bob = register(&server, &dir, "bob").await;
    let mut carol = register(&server, &dir, "carol").await;
    let topic = alice
        .create_topic(
            &[(uid("bob"), Role::Writer), (uid("carol"), Role::Writer)],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"before").await.unwrap();
    assert_eq!(raw::texts(&bob.read(&topic).await.unwrap()), vec!["before"]);
    alice.remove_members(&topic, &[uid("bob")]).await.unwrap();
    alice.send(&topic, b"after bob left").await.unwrap();
    assert_eq!(
        raw::texts(&carol.read(&topic).await.unwrap()),
        vec!["before", "after bob left"]
    );
    // Bob gets nothing readable: the server refuses him the log, and even the raw ciphertext is
    // for an epoch whose key he never received.
    let report = bob.read(&topic).await;
    match report {
        Err(e) => assert_eq!(e.code().map(|c| c.as_str()), Some("forbidden"), "{e}"),
        Ok(r) => assert!(
            !raw::texts(&r).contains(&"after bob left".to_owned()),
            "{r:?}"
        ),
    }
    let epochs: Vec<u32> = bob
        .keystore()
        .message_keys(&topic)
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(
        epochs,
        vec![0],
        "bob holds no key of the epoch after his removal"
    );
    assert!(bob.send(&topic, b"still here?").await.is_err());
}

#[actix_rt::test]
async fn protected_topics_hide_old_messages_from_new_members_shared_ones_do_not() {
    let dir = TempDir::new("history");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let mut dave = register(&server, &dir, "dave").await;
    let mut erin = register(&server, &dir, "erin").await;
    let _bob = register(&server, &dir, "bob").await;

    let protected = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Protected)
        .await
        .unwrap();
    alice.send(&protected, b"old secret").await.unwrap();
    alice
        .add_members(&protected, &[(uid("dave"), Role::Writer)])
        .await
        .unwrap();
    alice.send(&protected, b"new").await.unwrap();
    let report = dave.read(&protected).await.unwrap();
    assert_eq!(
        raw::message_texts(&report),
        vec![None, Some("new".to_owned())],
        "{:?}",
        report.entries
    );

    let shared = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&shared, b"old news").await.unwrap();
    alice
        .add_members_without_history(&shared, &[(uid("erin"), Role::Reader)])
        .await
        .unwrap();
    alice.send(&shared, b"new").await.unwrap();
    let report = erin.read(&shared).await.unwrap();
    assert_eq!(
        raw::texts(&report),
        vec!["old news", "new"],
        "{:?}",
        report.entries
    );
}

#[actix_rt::test]
async fn a_new_linked_device_reads_existing_topics_and_a_removed_one_is_locked_out() {
    let dir = TempDir::new("link");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice
        .send(&topic, b"written before the new device")
        .await
        .unwrap();

    let mut phone = link(&server, &dir, &mut alice, "phone").await;
    assert_eq!(
        raw::texts(&phone.read(&topic).await.unwrap()),
        vec!["written before the new device"]
    );
    phone.send(&topic, b"from the phone").await.unwrap();

    // Alice removes the phone: at once, its token is dead and it cannot log in again.
    let phone_id = phone
        .keystore()
        .device()
        .unwrap()
        .public()
        .key_id()
        .to_hex();
    alice.remove_device(&phone_id).await.unwrap();
    let err = phone.read(&topic).await.unwrap_err();
    assert_eq!(
        err.code().map(|c| c.as_str()),
        Some("unauthorized"),
        "{err}"
    );
    let err = phone.login().await.unwrap_err();
    assert!(err.code().is_some(), "{err}");
    // Alice's own device goes on.
    assert_eq!(
        raw::texts(&alice.read(&topic).await.unwrap()),
        vec!["written before the new device", "from the phone"]
    );
}

#[actix_rt::test]
async fn a_restart_loses_nothing() {
    let dir = TempDir::new("restart");
    let server = TestServer::start(&dir.join("server"));
    let addr = server.addr;
    let mut alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    for i in 0..20 {
        alice
            .send(&topic, format!("message {i}").as_bytes())
            .await
            .unwrap();
    }
    server.stop();
    let server = TestServer::start_on(&dir.join("server"), addr);
    let mut bob = Client::open(&dir.join("bob"), &rendezvous_testkit::passphrase()).unwrap();
    let report = bob.read(&topic).await.unwrap();
    let want: Vec<String> = (0..20).map(|i| format!("message {i}")).collect();
    assert_eq!(raw::texts(&report), want);
    alice.send(&topic, b"after restart").await.unwrap();
    assert_eq!(
        raw::texts(&bob.read(&topic).await.unwrap()),
        vec!["after restart"]
    );
    assert!(alice.verify(&topic).await.unwrap().ok());
    drop(server);
}

#[actix_rt::test]
async fn a_lying_server_is_caught_by_read_and_verify() {
    let dir = TempDir::new("liar");
    let server = TestServer::start(&dir.join("server"));
    let addr = server.addr;
    let (_alice, mut bob, topic) = pair_with_messages(&server, &dir, History::Shared, "m", 6).await;
    assert!(bob.verify(&topic).await.unwrap().ok());
    server.stop();

    // While it is down, the operator (or an attacker on the disk) edits the log: entry 2's
    // ciphertext is altered, entries 3 and 4 are swapped, and entry 5 is dropped.
    {
        let store = open_store_when_free(&dir.join("server").join("db"));
        let e2 = altered(&store, &topic, 2);
        let e3 = store.entry(&topic, 3).unwrap().unwrap();
        let e4 = store.entry(&topic, 4).unwrap().unwrap();
        store.corrupt_entry_for_tests(&topic, 2, Some(e2)).unwrap();
        store.corrupt_entry_for_tests(&topic, 3, Some(e4)).unwrap();
        store.corrupt_entry_for_tests(&topic, 4, Some(e3)).unwrap();
        store.corrupt_entry_for_tests(&topic, 6, None).unwrap();
        store.sync().await.unwrap();
    }
    let server = TestServer::start_on(&dir.join("server"), addr);
    let report = bob.verify(&topic).await.unwrap();
    assert!(!report.ok(), "{report:?}");
    let failed: Vec<u64> = report.failed.iter().map(|e| e.index).collect();
    assert!(failed.contains(&2), "altered entry not flagged: {report:?}");
    assert!(
        failed.contains(&3) && failed.contains(&4),
        "reordered entries not flagged: {report:?}"
    );
    assert_eq!(
        report.missing,
        vec![6],
        "dropped entry not reported: {report:?}"
    );
    drop(server);
}

#[actix_rt::test]
async fn reads_resume_where_they_stopped_and_verify_still_checks_everything() {
    let dir = TempDir::new("resume");
    let server = TestServer::start(&dir.join("server"));
    let addr = server.addr;
    let (mut alice, mut bob, topic) =
        pair_with_messages(&server, &dir, History::Protected, "first ", 5).await;
    assert_eq!(raw::texts(&bob.read(&topic).await.unwrap()).len(), 5);
    // A rekey and more messages: bob resumes from his snapshot and still gets the new key.
    alice.rekey(&topic).await.unwrap();
    bob.send(&topic, b"after rekey").await.unwrap();
    assert_eq!(
        raw::texts(&bob.read(&topic).await.unwrap()),
        vec!["after rekey"]
    );
    // Alice verifies the log too: only a device whose verified view covers entry 2 may write
    // after it is altered (`tag-log.md` §9.4).
    assert!(!alice.read(&topic).await.unwrap().has_problems());
    server.stop();

    // Entry 2 is altered on disk. An incremental read never fetches it again...
    {
        let store = open_store_when_free(&dir.join("server").join("db"));
        store
            .corrupt_entry_for_tests(&topic, 2, Some(altered(&store, &topic, 2)))
            .unwrap();
        store.sync().await.unwrap();
    }
    let server = TestServer::start_on(&dir.join("server"), addr);
    alice.send(&topic, b"later").await.unwrap();
    let report = bob.read(&topic).await.unwrap();
    assert_eq!(raw::texts(&report), vec!["later"]);
    assert!(report.entries.iter().all(|e| e.verified()), "{report:?}");
    // ...but a full verify does, and flags it.
    let v = bob.verify(&topic).await.unwrap();
    assert!(v.failed.iter().any(|e| e.index == 2), "{v:?}");
    drop(server);
}

/// A stored message re-signed by its author's Topic Key over another log root at its `seen`
/// after the host logged it (what someone altering the store or the answer can make): its leaf
/// commits to the signature (`protocol.md` §8.1), so the served copy is not the log's entry at
/// its index. `verify` reports it and keeps no evidence: the host's signed log is intact. (A
/// host that logs such a message is convicted: `lying_host`'s `a_forked_post_that_crosses_is_caught`.)
#[actix_rt::test]
async fn a_message_re_signed_after_it_was_logged_is_not_the_logs_and_convicts_nobody() {
    use rendezvous_protocol::crypto::transcript::LABEL_MESSAGE;
    use rendezvous_protocol::message::MessageIn;
    use rendezvous_protocol::topic::{LogEntry, ParsedEntry};
    use serde_bytes::ByteBuf;
    use sha2::{Digest, Sha256};

    let dir = TempDir::new("forkbind");
    let server = TestServer::start(&dir.join("server"));
    let addr = server.addr;
    let (alice, mut bob, topic) = pair_with_messages(&server, &dir, History::Shared, "m", 3).await;
    assert!(bob.verify(&topic).await.unwrap().ok());
    let (_, tk, _, _) = raw::keys(&server, &alice, &topic).await;
    server.stop();

    // Entry 2 (alice's second message) re-signed by alice's Topic Key over another root at its
    // `seen`: header, ciphertext and tag stay as the host logged them, the leaf does not.
    {
        let store = open_store_when_free(&dir.join("server").join("db"));
        let mut bytes = store.entry(&topic, 2).unwrap().unwrap();
        let ParsedEntry::Message(msg) = LogEntry::from_wire(&bytes).unwrap().parse().unwrap()
        else {
            panic!("entry 2 is a message");
        };
        let wire = &LogEntry::from_wire(&bytes).unwrap().1;
        let (header, ciphertext, _): (ByteBuf, ByteBuf, ByteBuf) =
            rendezvous_protocol::wire::decode(wire, 1 << 20).unwrap();
        let other_root = [7u8; 32];
        let signature = tk.signing().sign(
            LABEL_MESSAGE,
            &[
                topic.as_str().as_bytes(),
                &header,
                &msg.tag().0,
                &Sha256::digest(&ciphertext),
                &other_root,
            ],
        );
        let n = bytes.len();
        bytes[n - 64..].copy_from_slice(&signature.0);
        assert!(MessageIn::from_wire(&LogEntry::from_wire(&bytes).unwrap().1).is_ok());
        store
            .corrupt_entry_for_tests(&topic, 2, Some(bytes))
            .unwrap();
        store.sync().await.unwrap();
    }
    let server = TestServer::start_on(&dir.join("server"), addr);
    let report = bob.verify(&topic).await.unwrap();
    assert!(!report.ok(), "{report:?}");
    assert!(report.failed.iter().any(|e| e.index == 2), "{report:?}");
    // Not the log's entry: it convicts nobody, and no evidence is kept.
    assert!(report.evidence.is_empty(), "{report:?}");
    assert!(bob.evidence(Some(&topic)).unwrap().is_empty());
    drop(server);
}

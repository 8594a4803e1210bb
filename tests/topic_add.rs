//! `rdv topic add` as its help says (issue 12): in a `shared` topic a new member reads the
//! messages from before it joined, older epochs included, unless the admin opts out with
//! `--no-history`; adding a user that does not exist says so, locally and through federation.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_client::cli::Output;

use rendezvous_protocol::api::{Body, ClaimTopicKeysRequest};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::cli::rdv;
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::server::{TestServer, register, uid};
use rendezvous_testkit::{TempDir, raw};

#[actix_rt::test]
async fn a_plain_add_to_a_shared_topic_shares_the_epochs_before_a_rekey_and_no_history_does_not() {
    let dir = TempDir::new("add-history");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    let mut carol = register(&server, &dir, "carol").await;
    let mut dave = register(&server, &dir, "dave").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"before the rekey").await.unwrap();
    alice.rekey(&topic).await.unwrap();
    alice.send(&topic, b"after the rekey").await.unwrap();
    drop(alice);

    let home = dir.join("alice");
    let t = topic.to_string();
    let (out, failed) = rdv(&home, &["topic", "add", &t, "@carol:localhost"]).await;
    assert_eq!(failed, None, "{out:?}");
    assert!(matches!(out[..], [Output::Changed { .. }]), "{out:?}");
    let (out, failed) = rdv(
        &home,
        &["topic", "add", &t, "@dave:localhost", "--no-history"],
    )
    .await;
    assert_eq!(failed, None, "{out:?}");

    // Carol, added plainly, holds epoch 0's key too and reads both messages.
    assert_eq!(
        raw::message_texts(&carol.read(&topic).await.unwrap()),
        vec![
            Some("before the rekey".to_owned()),
            Some("after the rekey".to_owned())
        ]
    );
    // Dave, added with --no-history, holds only the current epoch's key.
    assert_eq!(
        raw::message_texts(&dave.read(&topic).await.unwrap()),
        vec![None, Some("after the rekey".to_owned())]
    );
    let epochs: Vec<u32> = dave
        .keystore()
        .message_keys(&topic)
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(epochs, vec![1]);
}

#[actix_rt::test]
async fn adding_a_user_that_does_not_exist_says_so() {
    let dir = TempDir::new("add-nobody");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    let err = alice
        .add_members(&topic, &[(uid("nobody"), Role::Writer)])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.as_str()), Some("not_found"), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("@nobody:localhost") && message.contains("does not exist"),
        "{message}"
    );
    assert!(!message.contains("topic key"), "{message}");
    // The claim itself (a client that did not look the user up first): 404 not_found, not a
    // missing entry, and nothing is claimed for the others listed.
    let (http, token) = raw::http(&server, &alice);
    let claim = |users: Vec<UserId>| ClaimTopicKeysRequest { users }.to_cbor();
    let (status, code) = raw::post(
        &http,
        Some(&token),
        "/v1/topic-keys/claim",
        claim(vec![uid("bob"), uid("nobody")]),
    )
    .await;
    assert_eq!((status, code.as_deref()), (404, Some("not_found")));
    drop(alice);
    let home = dir.join("alice");
    let (out, failed) = rdv(
        &home,
        &["topic", "add", &topic.to_string(), "@nobody:localhost"],
    )
    .await;
    assert_eq!(failed, Some("not_found"), "{out:?}");
}

#[actix_rt::test]
async fn adding_a_remote_user_that_does_not_exist_says_so() {
    let fed = Federation::in_process("add-nobody-fed", &["a.example", "b.example"]).start();
    let mut alice = fed.register("a.example", "alice").await;
    let _bob = fed.register("b.example", "bob").await;
    let bob: UserId = "@bob:b.example".parse().unwrap();
    let topic = alice
        .create_topic(&[(bob, Role::Writer)], History::Shared)
        .await
        .unwrap();
    let nobody: UserId = "@nobody:b.example".parse().unwrap();
    // The claim through federation: b answers 404 not_found, a passes its code on.
    let (http, token) = raw::http(fed.server("a.example"), &alice);
    let body = ClaimTopicKeysRequest {
        users: vec![nobody.clone()],
    }
    .to_cbor();
    let (status, code) = raw::post(&http, Some(&token), "/v1/topic-keys/claim", body).await;
    assert_eq!((status, code.as_deref()), (404, Some("not_found")));
    let err = alice
        .add_members(&topic, &[(nobody.clone(), Role::Writer)])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.as_str()), Some("not_found"), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("@nobody:b.example") && message.contains("does not exist"),
        "{message}"
    );
    // A create naming them fails the same way.
    let err = alice
        .create_topic(&[(nobody, Role::Writer)], History::Shared)
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.as_str()), Some("not_found"), "{err}");
}

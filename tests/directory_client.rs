//! The client's side of the identity directory (`federation-spec/directory.md` §6, §7) against
//! a real server: self-monitoring catches a key the server logs for its own user and keeps
//! evidence a third party verifies; both sides of a verification code agree; a homeserver that
//! substitutes a contact's key, in the identity answer or in a topic key claim, is refused
//! `directory_mismatch` and nothing is kept. The lying proxy (`testkit::lying`) holds the
//! server's TLS key and rewrites answers.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_client::cli::Output;
use rendezvous_client::{AlarmEvidence, Client, ClientError};
use rendezvous_protocol::api::{Body, ClaimTopicKeysResponse, IdentityResponse};
use rendezvous_protocol::certs::{Registration, TopicKeyCert};
use rendezvous_protocol::crypto::{IdentityKey, Suite, TopicKey};
use rendezvous_protocol::directory::DirectoryEntry;
use rendezvous_protocol::tlog::HostKeys;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_protocol::wire::Signed;
use rendezvous_testkit::TempDir;
use rendezvous_testkit::cli::rdv;
use rendezvous_testkit::lying::{LyingHost, point_at};
use rendezvous_testkit::server::{TestServer, register, uid};
use rendezvous_testkit::transaction::server_key;

fn code(e: &ClientError) -> &'static str {
    e.error_code()
}

fn alarms(out: &[Output]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::DirectoryForeignKey { index, .. } => Some(*index),
            _ => None,
        })
        .collect()
}

/// Scenario (b): the server's test hook appends an entry binding alice to a key it made.
/// Alice's device raises `directory_foreign_key` on its next pass, keeps evidence that
/// verifies under the server's key alone (both notes signed by it, the entry included), and
/// shows the alarm on every command until `rdv directory ack`. Defence: `MonitorPass` in
/// `Client::monitor_directory`.
#[actix_rt::test]
async fn a_key_logged_for_a_user_raises_an_alarm_with_evidence_until_acknowledged() {
    let dir = TempDir::new("dirc-forged");
    let mut store = None;
    let server = TestServer::start_inspecting(
        &dir.join("data"),
        "127.0.0.1:0".parse().unwrap(),
        rendezvous::clock::Clock::adjustable(),
        |_| None,
        |s| store = Some(s.clone()),
    );
    let store = store.unwrap();
    let mut alice = register(&server, &dir, "alice").await;
    server.clock.advance(2);
    let clean = alice.monitor_directory().await.unwrap();
    assert_eq!((clean.size, clean.checked), (1, 1));
    assert!(clean.new_alarms.is_empty());

    let forged_ik = IdentityKey::generate();
    let forged = Signed::sign(
        Registration::new(uid("alice"), forged_ik.public().clone()),
        &forged_ik,
    );
    let entry = DirectoryEntry::registration(forged.signed_bytes(), 0).unwrap();
    store
        .forge_directory_entry_for_tests(&uid("alice"), &entry.to_bytes())
        .unwrap();
    server.clock.advance(2);
    let pass = alice.monitor_directory().await.unwrap();
    assert_eq!(pass.new_alarms, vec![1], "{pass:?}");
    assert_eq!(pass.checked, 1, "only the new entry is read");

    let kept = alice.directory_alarms().unwrap();
    assert_eq!(kept.len(), 1);
    let evidence = AlarmEvidence::from_cbor(&std::fs::read(&kept[0].evidence).unwrap()).unwrap();
    let keys = HostKeys::new("localhost", server_key(&server.data_dir).public().clone());
    evidence.verify(&keys).unwrap();
    assert_eq!(evidence.index, 1);
    assert_eq!(&evidence.entry().unwrap().identity_key, forged_ik.public());

    // Every command shows it, until acknowledged.
    let home = alice.keystore().dir().to_owned();
    let (out, failed) = rdv(&home, &["contact", "list"]).await;
    assert_eq!(failed, None);
    assert_eq!(alarms(&out), vec![1]);
    let (out, failed) = rdv(&home, &["directory", "check"]).await;
    assert_eq!(failed, Some("directory_foreign_key"));
    assert_eq!(alarms(&out), vec![1]);
    let (out, failed) = rdv(&home, &["directory", "ack", "1"]).await;
    assert_eq!(failed, None);
    assert!(out.contains(&Output::AlarmAcked { index: 1 }));
    let (out, failed) = rdv(&home, &["directory", "check"]).await;
    assert_eq!(failed, None, "{out:?}");
    assert!(alarms(&out).is_empty());
}

/// Scenario (e): `contact verify` gives the same code on both sides; `--confirm` marks the
/// contact verified for the key the code is for.
#[actix_rt::test]
async fn both_sides_of_a_verification_code_agree() {
    let dir = TempDir::new("dirc-code");
    let server = TestServer::start(&dir.join("data"));
    let mut alice = register(&server, &dir, "alice").await;
    let mut bob = register(&server, &dir, "bob").await;
    server.clock.advance(2);
    let from_alice = alice.contact_code(&uid("bob"), false).await.unwrap();
    let from_bob = bob.contact_code(&uid("alice"), false).await.unwrap();
    assert_eq!(from_alice.code, from_bob.code);
    assert_eq!(from_alice.code.len(), 60 + 11);
    assert!(from_alice.qr.starts_with("rdv-verify:1:"));
    let contacts = alice.contacts().unwrap();
    assert_eq!(contacts[0].state, "unverified");
    let home = alice.keystore().dir().to_owned();
    let (out, failed) = rdv(&home, &["contact", "verify", "--confirm", "@bob:localhost"]).await;
    assert_eq!(failed, None, "{out:?}");
    let (out, _) = rdv(&home, &["contact", "list"]).await;
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Contact { user, state, .. } if user == "@bob:localhost" && state == "verified")),
        "{out:?}"
    );
}

/// A homeserver (the proxy, with its TLS key) that rewrites `GET …/identity` answers for
/// `victim` to a registration under a key it made.
fn substitute_identity(liar: &LyingHost, victim: &'static str) -> IdentityKey {
    let forged = IdentityKey::generate();
    let seed = forged.seed();
    liar.after(move |req, answer| {
        if !(req.path.starts_with("/v1/users/") && req.path.ends_with("/identity")) {
            return;
        }
        if !req.path.contains(victim) || answer.status != 200 {
            return;
        }
        let mut r = IdentityResponse::from_cbor(&answer.body).unwrap();
        let ik = IdentityKey::from_seed(&seed);
        let user = format!("@{victim}:localhost").parse().unwrap();
        r.registration = Signed::sign(Registration::new(user, ik.public().clone()), &ik)
            .signed_bytes()
            .clone();
        answer.body = r.to_cbor();
    });
    forged
}

/// Scenario (a): a homeserver substitutes bob's IK in the identity answer (a registration under
/// a key it made, not the one its directory binds). Alice's lookup and topic creation are
/// refused `directory_mismatch`, and nothing is kept for bob. Defence: `check_lookup` in
/// `Client::lookup` (the registration must name the entry's IK).
#[actix_rt::test]
async fn a_substituted_identity_key_is_refused_and_nothing_is_kept() {
    let dir = TempDir::new("dirc-subst");
    let server = TestServer::start(&dir.join("data"));
    let alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    server.clock.advance(2);
    let home = alice.keystore().dir().to_owned();
    drop(alice);
    let liar = LyingHost::start(&server.data_dir, "localhost", &server.url, &server.trust());
    point_at(&home, &liar.url);
    substitute_identity(&liar, "bob");
    let mut alice = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    alice.set_clock(server.clock.clone());
    let e = alice.lookup_identity(&uid("bob")).await.unwrap_err();
    assert_eq!(code(&e), "directory_mismatch", "{e}");
    assert!(alice.keystore().contact(&uid("bob")).unwrap().is_none());
    let e = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "directory_mismatch", "{e}");
    assert!(alice.keystore().contact(&uid("bob")).unwrap().is_none());
    // The control: the same proxy, honest, passes the lookup.
    liar.after(|_, _| {});
    alice.lookup_identity(&uid("bob")).await.unwrap();
    liar.stop();
}

/// §6.1 (last paragraph): a topic key claim whose registration names another IK than the
/// directory's binding (a homeserver handing out a key it made with a certificate under it) is
/// refused `directory_mismatch` before any topic is created. Defence: `claim_members` compares
/// the claim with the accepted binding.
#[actix_rt::test]
async fn a_topic_key_claim_under_another_key_than_the_directorys_is_refused() {
    let dir = TempDir::new("dirc-claim");
    let server = TestServer::start(&dir.join("data"));
    let alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    server.clock.advance(2);
    let home = alice.keystore().dir().to_owned();
    drop(alice);
    let liar = LyingHost::start(&server.data_dir, "localhost", &server.url, &server.trust());
    point_at(&home, &liar.url);
    let forged = IdentityKey::generate();
    let seed = forged.seed();
    liar.after(move |req, answer| {
        if req.path != "/v1/topic-keys/claim" || answer.status != 200 {
            return;
        }
        let mut r = ClaimTopicKeysResponse::from_cbor(&answer.body).unwrap();
        let ik = IdentityKey::from_seed(&seed);
        for k in r.keys.iter_mut().filter(|k| k.user == uid("bob")) {
            let key = TopicKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
            k.registration = Signed::sign(Registration::new(uid("bob"), ik.public().clone()), &ik)
                .signed_bytes()
                .clone();
            k.topic_key_cert = Signed::sign(TopicKeyCert::new(uid("bob"), key.public(), 1), &ik)
                .signed_bytes()
                .clone();
        }
        answer.body = r.to_cbor();
    });
    let mut alice = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    alice.set_clock(server.clock.clone());
    let e = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "directory_mismatch", "{e}");
    liar.stop();
}

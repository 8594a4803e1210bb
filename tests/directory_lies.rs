//! Lies only the clients can catch (`federation-spec/directory.md` §1), told by real servers
//! with their test hooks (`src/store/corruption.rs`):
//!
//! - a lying admin on a colluding hosting server (`identity_check_skips_for_tests`) adds a
//!   "ghost" member under a key the admin holds: every honest member's client refuses the
//!   change (`directory_mismatch`), keeps the refusal and writes nothing more (`topic_refused`,
//!   §6.4), and the ghost's own homeserver's mirror refuses it and shows it (§6.5);
//! - a homeserver re-registers its user under a key it holds (`reregister_user_for_tests`, the
//!   entry logged and the registration replaced, so the lookup passes §6.1 steps 1–5): a
//!   contact that had the old key refuses the new one (`identity_changed`) until the user
//!   verifies again (verified) or accepts it (unverified), and the user's own device raises
//!   `directory_foreign_key` (§6.3, §7).
//!
//! A homeserver that substitutes a contact's key in a relayed answer (not logged) is
//! `a_substituted_identity_key_is_refused_and_nothing_is_kept` in `tests/directory_client.rs`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;

use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::certs::{Registration, TopicKeyCert};
use rendezvous_protocol::crypto::{IdentityKey, IdentityPublicKey, Randomness};
use rendezvous_protocol::directory::{DirectoryEntry, safety_code};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::{Action, ChangeBuilder, History, MemberSpec, Role};
use rendezvous_protocol::wire::{Signed, SignedBytes};
use rendezvous_testkit::TempDir;
use rendezvous_testkit::federation::{Federation, witnessing_pair};
use rendezvous_testkit::raw;
use rendezvous_testkit::server::{TestServer, register, uid};
use rendezvous_testkit::topic::SUITE;
use rendezvous_testkit::wait::read_until;

const A: &str = "a.example";
const B: &str = "b.example";

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

fn code(e: &ClientError) -> &'static str {
    e.error_code()
}

fn hex(key: &IdentityPublicKey) -> String {
    rendezvous_protocol::crypto::sign::hex_string(key.as_bytes())
}

/// A member spec for `user` under a key the test made (`ik`), with a Topic Key certified by it.
fn ghost_spec(user: &UserId, ik: &IdentityKey) -> MemberSpec {
    let tk = rendezvous_protocol::crypto::TopicKey::generate(SUITE);
    MemberSpec {
        user: user.clone(),
        identity_key: ik.public().clone(),
        role: Role::Writer,
        topic_key_cert: Signed::sign(TopicKeyCert::new(user.clone(), tk.public(), 0), ik)
            .unverified(),
    }
}

/// The Add of `spec` to `topic`, signed by `admin`'s member with its real Topic Key (from its
/// keystore) over the log as a serves it: what a lying admin's modified client posts.
async fn add_as(fed: &Federation, admin: &Client, topic: &TopicId, spec: MemberSpec) -> Vec<u8> {
    let a = fed.server(A);
    let s = raw::signing(a, admin, topic).await;
    let (outcome, _) = ChangeBuilder::new(&s.state, s.root, s.me, &s.tk, Action::Add(vec![spec]))
        .current_key(Some(&s.current))
        .build(rendezvous::state::now(), &mut Randomness::Os)
        .unwrap();
    outcome.change.to_wire()
}

/// Scenario: alice, admin of a topic hosted on a, lies; a colludes (its IK checks off). She
/// adds carol of b under a key she made. dave (a member on a) refuses the change by his
/// roster check: the read names carol with `directory_mismatch`, the refusal is kept, and his
/// next send is `topic_refused`. b, carol's homeserver and a participant (bob), refuses the
/// entry in its mirror and bob's read shows it (`mirror_refused`). Defences: `Roster::check`
/// and the write gate (`roster::gate`) in the client; `check_mirrored_identities` on b (its
/// server-level refusal is also
/// `a_mirrors_refusal_of_a_wrong_identity_key_is_kept_and_shown_to_the_members`).
#[actix_rt::test]
async fn a_ghost_member_added_through_a_colluding_host_is_refused_by_every_honest_member() {
    let fed = witnessing_pair("dirl-ghost", A, B);
    let mut alice = fed.register(A, "alice").await;
    let mut dave = fed.register(A, "dave").await;
    let mut bob = fed.register(B, "bob").await;
    let carol = fed.register(B, "carol").await;
    fed.clock.advance(2);
    let topic = alice
        .create_topic(
            &[(id("dave", A), Role::Writer), (id("bob", B), Role::Writer)],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"before the ghost").await.unwrap();
    for member in [&mut dave, &mut bob] {
        read_until(member, &topic, "read the first message", |r| r.size == 2).await;
    }

    let ghost = IdentityKey::generate();
    let carol_id = id("carol", B);
    let add = add_as(&fed, &alice, &topic, ghost_spec(&carol_id, &ghost)).await;
    let a = fed.server(A);
    let (http, token) = raw::http(a, &alice);
    let path = format!(
        "/v1/topics/{}/changes",
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    // The control: an honest host refuses it (the IK its peer gave for carol is another).
    let (status, refused) = raw::post(&http, Some(&token), &path, add.clone()).await;
    assert_ne!(status, 200, "{refused:?}");
    // a colludes: it appends the ghost.
    fed.store(A)
        .identity_check_skips_for_tests()
        .store(true, Ordering::SeqCst);
    assert_eq!(
        raw::post(&http, Some(&token), &path, add).await,
        (200, None)
    );

    // dave's read refuses the change, naming carol.
    let report = read_until(&mut dave, &topic, "refused the ghost", |r| r.size == 3).await;
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(
        (report.refused[0].index, report.refused[0].user.as_str()),
        (2, carol_id.as_str())
    );
    assert!(
        report.refused[0].reason.starts_with("directory_mismatch"),
        "{report:?}"
    );
    let entry = report.entries.iter().find(|e| e.index == 2).unwrap();
    assert!(
        entry
            .problems
            .iter()
            .any(|p| p.contains("directory_mismatch") && p.contains(carol_id.as_str())),
        "{entry:?}"
    );
    assert!(report.has_problems());
    // His client writes nothing more to the topic.
    let e = dave.send(&topic, b"to a ghost?").await.unwrap_err();
    assert_eq!(code(&e), "topic_refused", "{e}");
    // The refusal is kept: a device opened afresh still refuses, without reading again.
    let home = dave.keystore().dir().to_owned();
    drop(dave);
    let mut dave = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    dave.set_clock(fed.clock.clone());
    let e = dave.send(&topic, b"to a ghost?").await.unwrap_err();
    assert_eq!(code(&e), "topic_refused", "{e}");
    let again = dave.read(&topic).await.unwrap();
    assert_eq!(again.refused, report.refused);

    // carol's homeserver b refuses the entry in its mirror; bob, its member, is shown it.
    let report = read_until(&mut bob, &topic, "shown b's refusal", |r| {
        !r.mirror_refused.is_empty()
    })
    .await;
    assert_eq!(report.mirror_refused.len(), 1, "{report:?}");
    let r = &report.mirror_refused[0];
    assert_eq!(
        (r.index, r.user.as_str(), r.identity_key.as_str()),
        (2, carol_id.as_str(), hex(ghost.public()).as_str())
    );
    assert!(report.size < 3, "b mirrored the refused entry: {report:?}");
    drop(carol);
}

/// A registration of `user` under a fresh key, and its kind 1 directory entry: what a lying
/// server logs to re-register its user.
fn reregistration(user: &UserId) -> (IdentityKey, SignedBytes, Vec<u8>) {
    let ik = IdentityKey::generate();
    let registration = Signed::sign(Registration::new(user.clone(), ik.public().clone()), &ik);
    let entry = DirectoryEntry::registration(registration.signed_bytes(), 0).unwrap();
    (ik, registration.signed_bytes().clone(), entry.to_bytes())
}

/// One server whose store the test holds (for its hooks).
fn server(dir: &TempDir) -> (TestServer, rendezvous::store::Store) {
    let mut store = None;
    let server = TestServer::start_inspecting(
        &dir.join("data"),
        "127.0.0.1:0".parse().unwrap(),
        rendezvous::clock::Clock::adjustable(),
        |_| None,
        |s| store = Some(s.clone()),
    );
    (server, store.unwrap())
}

/// Scenario: alice verified bob's code; the server then re-registers bob under a key it holds
/// (logged, served with a matching registration). alice's lookup and a topic with bob are
/// `identity_changed`, `contact accept` does not take it, until alice confirms the new code
/// (`contact verify --confirm`). bob's own device raises `directory_foreign_key` for the
/// entry. Defences: §6.1 step 6 (`compare` in `check_lookup`, `verified`) and the client's
/// `changed_key`; the self-monitoring pass.
#[actix_rt::test]
async fn a_verified_contact_whose_key_the_server_replaces_is_refused_until_verified_again() {
    let dir = TempDir::new("dirl-verified");
    let (server, store) = server(&dir);
    let mut alice = register(&server, &dir, "alice").await;
    let mut bob = register(&server, &dir, "bob").await;
    server.clock.advance(2);
    let verified = alice.contact_code(&uid("bob"), true).await.unwrap();
    assert!(verified.verified);
    assert_eq!(alice.contacts().unwrap()[0].state, "verified");
    assert!(bob.monitor_directory().await.unwrap().new_alarms.is_empty());

    let (forged, registration, entry) = reregistration(&uid("bob"));
    let index = store
        .reregister_user_for_tests(&uid("bob"), &registration, &entry)
        .unwrap();
    assert_eq!(index, 2);
    server.clock.advance(2);

    // The lookup passes every check but the accepted binding's: identity_changed.
    let e = alice.lookup_identity(&uid("bob")).await.unwrap_err();
    assert_eq!(code(&e), "identity_changed", "{e}");
    let e = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "identity_changed", "{e}");
    let contact = &alice.contacts().unwrap()[0];
    assert_eq!(contact.state, "changed");
    assert_eq!(contact.changed_to, Some(hex(forged.public())));
    // A verified contact is not taken by `accept`: only a new verification does.
    let e = alice.accept_contact(&uid("bob")).await.unwrap_err();
    assert_eq!(code(&e), "identity_changed", "{e}");
    let e = alice.lookup_identity(&uid("bob")).await.unwrap_err();
    assert_eq!(code(&e), "identity_changed", "{e}");

    // The code shown is the new key's (another code than the one verified), and confirming
    // it takes the key.
    let shown = alice.contact_code(&uid("bob"), false).await.unwrap();
    assert_ne!(shown.code, verified.code);
    assert_eq!(
        shown.code,
        safety_code(
            (&uid("alice"), alice.keystore().identity().unwrap().public()),
            (&uid("bob"), forged.public())
        )
    );
    assert_eq!(
        code(&alice.lookup_identity(&uid("bob")).await.unwrap_err()),
        "identity_changed"
    );
    alice.contact_code(&uid("bob"), true).await.unwrap();
    let binding = alice.lookup_identity(&uid("bob")).await.unwrap();
    assert_eq!(&binding.identity_key, forged.public());
    assert_eq!(alice.contacts().unwrap()[0].state, "verified");

    // bob's device sees the entry it holds no key for.
    let pass = bob.monitor_directory().await.unwrap();
    assert_eq!(pass.new_alarms, vec![index], "{pass:?}");
}

/// Scenario: alice looked bob up (unverified); the server re-registers bob under a key it
/// holds. alice's lookup is `identity_changed` until she accepts the new key
/// (`contact accept`). Defence: §6.1 step 6 (`compare` in `check_lookup`).
#[actix_rt::test]
async fn an_unverified_contact_whose_key_the_server_replaces_is_refused_until_accepted() {
    let dir = TempDir::new("dirl-unverified");
    let (server, store) = server(&dir);
    let mut alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    server.clock.advance(2);
    alice.lookup_identity(&uid("bob")).await.unwrap();
    assert_eq!(alice.contacts().unwrap()[0].state, "unverified");

    let (forged, registration, entry) = reregistration(&uid("bob"));
    store
        .reregister_user_for_tests(&uid("bob"), &registration, &entry)
        .unwrap();
    server.clock.advance(2);
    let e = alice.lookup_identity(&uid("bob")).await.unwrap_err();
    assert_eq!(code(&e), "identity_changed", "{e}");
    // Refused on every use until accepted, not only once.
    let e = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "identity_changed", "{e}");
    assert_eq!(alice.contacts().unwrap()[0].state, "changed");

    let accepted = alice.accept_contact(&uid("bob")).await.unwrap();
    assert_eq!(accepted.state, "unverified");
    let binding = alice.lookup_identity(&uid("bob")).await.unwrap();
    assert_eq!(&binding.identity_key, forged.public());
}

/// Scenario: as above, but the ghost is a user b does not have (`@nobody:b.example`). dave's
/// roster check cannot look nobody up (b answers `not_found`, which proves nothing: the
/// directory is a log, without proofs of absence), so the change is `roster_unchecked` and
/// dave's client writes nothing to the topic (`roster_unchecked`), on every read. b's mirror
/// refuses the entry (no such user) and keeps and shows the refusal as for a wrong key.
/// Defences: `Roster::check` (a failed lookup leaves the member unchecked) and the write gate;
/// `check_mirrored_identities` on b.
#[actix_rt::test]
async fn a_ghost_of_a_user_that_does_not_exist_leaves_the_topic_unchecked_and_unwritable() {
    let fed = witnessing_pair("dirl-nobody", A, B);
    let mut alice = fed.register(A, "alice").await;
    let mut dave = fed.register(A, "dave").await;
    let mut bob = fed.register(B, "bob").await;
    fed.clock.advance(2);
    let topic = alice
        .create_topic(
            &[(id("dave", A), Role::Writer), (id("bob", B), Role::Writer)],
            History::Shared,
        )
        .await
        .unwrap();
    for member in [&mut dave, &mut bob] {
        read_until(member, &topic, "read the create", |r| r.size == 1).await;
    }
    let nobody = id("nobody", B);
    let ghost = IdentityKey::generate();
    let add = add_as(&fed, &alice, &topic, ghost_spec(&nobody, &ghost)).await;
    let (http, token) = raw::http(fed.server(A), &alice);
    let path = format!(
        "/v1/topics/{}/changes",
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    fed.store(A)
        .identity_check_skips_for_tests()
        .store(true, Ordering::SeqCst);
    assert_eq!(
        raw::post(&http, Some(&token), &path, add).await,
        (200, None)
    );

    let report = read_until(&mut dave, &topic, "read the ghost", |r| r.size == 2).await;
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(report.unchecked.len(), 1, "{report:?}");
    assert!(
        report.unchecked[0].starts_with(nobody.as_str()),
        "{report:?}"
    );
    let e = dave.send(&topic, b"to nobody?").await.unwrap_err();
    assert_eq!(code(&e), "roster_unchecked", "{e}");
    // Checked again on the next read, and still not writable.
    let again = dave.read(&topic).await.unwrap();
    assert_eq!(again.unchecked.len(), 1, "{again:?}");
    let e = dave.send(&topic, b"to nobody?").await.unwrap_err();
    assert_eq!(code(&e), "roster_unchecked", "{e}");

    let report = read_until(&mut bob, &topic, "shown b's refusal", |r| {
        !r.mirror_refused.is_empty()
    })
    .await;
    let r = &report.mirror_refused[0];
    assert_eq!(
        (r.index, r.user.as_str(), r.identity_key.as_str()),
        (1, nobody.as_str(), hex(ghost.public()).as_str())
    );
}

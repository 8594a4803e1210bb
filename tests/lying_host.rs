//! Issue 9, end to end: a lying hosting server against real `rendezvous serve` processes and
//! devices running the client library as `rdv` does. The liar is a TLS proxy holding the real
//! server's certificate and key (so the pinned fingerprint passes) and, where the attack needs
//! it, its Server Key (`rendezvous_testkit::lying`), or two copies of one hosting server sharing
//! its data directory and keys (`rendezvous_testkit::fork`). Each test names the party that
//! `tag-log.md` / `protocol.md` §9 say catches the lie and checks that it does, and each also
//! checks the honest behaviour next to the lie, so that the "caught" assertion cannot hold
//! without the lie.
//!
//! The protocol-level sibling, without servers, is `tests/lying_server.rs`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use rendezvous_client::cli::{Cli, Printer};
use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::api::{Body, CheckpointResponse, WitnessesResponse};
use rendezvous_protocol::clock::Clock;
use rendezvous_protocol::crypto::{ServerKey, ServerPublicKey};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::message::MessageIn;
use rendezvous_protocol::tlog::MAX_HEAD_AGE;
use rendezvous_protocol::tlog::{CheckpointNote, Cosignature, Evidence};
use rendezvous_protocol::topic::{ENTRY_MESSAGE, EntryEvidence, History, LogEntry, Role};
use rendezvous_protocol::wire::encode;
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::fork::{CopyKeys, HOST, Host, fork_federated, route};
use rendezvous_testkit::lying::{LyingHost, Rule, pin_server_key, point_at};
use rendezvous_testkit::ports::free_addr_on;
use rendezvous_testkit::{PATIENCE, raw, rendezvous_bin, user_id};

fn uid(name: &str) -> rendezvous_protocol::ids::UserId {
    user_id(name, HOST)
}

use rendezvous_testkit::raw::texts;

/// The code of an error, as `rdv --json` prints it.
fn code(e: &ClientError) -> &'static str {
    e.error_code()
}

/// The messages among `entries` (as devices sent them): their epochs.
fn message_epochs(entries: &[LogEntry]) -> Vec<u32> {
    entries
        .iter()
        .filter(|e| e.0 == ENTRY_MESSAGE)
        .map(|e| MessageIn::from_wire(&e.1).unwrap().header().epoch.get())
        .collect()
}

/// `rdv evidence export --topic T --out FILE` for the device whose keystore is `home`: each
/// CBOR item of the file verifies with the host's Server Key alone (`Evidence::verify`, or
/// `EntryEvidence::verify` for entry evidence), as a third party checks it. Their number.
async fn evidence_exported(home: &Path, topic: &TopicId, key: &ServerPublicKey) -> usize {
    let file = home.join("evidence.cbor");
    let passphrase = rendezvous_testkit::passphrase_file(home);
    let args = [
        "rdv",
        "--home",
        home.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
        "evidence",
        "export",
        "--topic",
        topic.as_str(),
        "--out",
        file.to_str().unwrap(),
    ];
    let cli = Cli::try_parse_from(args).unwrap();
    rendezvous_client::cli::run(cli, &mut Printer::new(true))
        .await
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let mut rest = bytes.as_slice();
    let mut count = 0;
    while !rest.is_empty() {
        let before = rest.len();
        let _: ciborium::Value = ciborium::from_reader(&mut rest).unwrap();
        let item = &bytes[bytes.len() - before..bytes.len() - rest.len()];
        // The file holds both kinds one after another (`tag-log.md` §8.2 and §8.4).
        match Evidence::from_cbor(item) {
            Ok(evidence) => evidence.verify(key, HOST).unwrap(),
            Err(_) => {
                let _ = EntryEvidence::from_cbor(item)
                    .unwrap()
                    .verify(topic, key, HOST)
                    .unwrap();
            }
        }
        count += 1;
    }
    count
}

/// `name`'s device, pointed at the lying host (same trust: the same certificate).
fn behind(host: &Host, name: &str, liar: &LyingHost) -> Client {
    point_at(&host.home(name), &liar.url);
    Client::open(&host.home(name), &rendezvous_testkit::passphrase()).unwrap()
}

/// A hosting server (a real process) with alice and bob registered, and a shared topic alice
/// created with bob as a writer.
async fn alice_and_bob(test: &str) -> (Host, Client, TopicId) {
    let host = Host::start(rendezvous_bin!(), test);
    let mut alice = host.register("alice").await;
    let _ = host.register("bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    (host, alice, topic)
}

/// The lying host in front of the hosting server.
fn liar(host: &Host) -> LyingHost {
    host.server.lying()
}

/// The honest proxy changes nothing: a member behind it reads, posts and verifies as if it
/// talked to the server (the control for every test below).
#[actix_rt::test]
async fn an_honest_proxy_is_invisible() {
    let (host, mut alice, topic) = alice_and_bob("lying-honest").await;
    alice.send(&topic, b"hello bob").await.unwrap();
    let proxy = liar(&host);
    let mut bob = behind(&host, "bob", &proxy);
    bob.send(&topic, b"hello alice").await.unwrap();
    let report = bob.read(&topic).await.unwrap();
    assert_eq!(texts(&report), ["hello bob", "hello alice"]);
    assert!(report.missing.is_empty());
    let verified = bob.verify(&topic).await.unwrap();
    assert!(verified.ok(), "{verified:?}");
    assert_eq!(verified.size, 3);
    // It saw and recorded what bob sent.
    assert_eq!(proxy.sent_entries(&topic).len(), 1);
    assert!(proxy.head(&topic).is_some());
}

/// The forged-log mode is the real server's log when the host forges nothing: a log built from
/// the real entries has the real root, and a member behind it reads, verifies and posts as if it
/// talked to the server (the control for the fork tests).
#[actix_rt::test]
async fn a_forged_copy_of_the_real_log_is_indistinguishable() {
    let (host, mut alice, topic) = alice_and_bob("lying-forged-honest").await;
    alice.send(&topic, b"one").await.unwrap();
    alice.send(&topic, b"two").await.unwrap();
    let proxy = liar(&host);
    let real = real_entries(&host, &alice, &topic).await;
    proxy.forge(&topic, &real);
    let real_state = raw::state(&host.server.process, &alice, &topic).await;
    let mut bob = behind(&host, "bob", &proxy);
    let report = bob.read(&topic).await.unwrap();
    assert_eq!(texts(&report), ["one", "two"]);
    let verified = bob.verify(&topic).await.unwrap();
    assert!(verified.ok(), "{verified:?}");
    assert_eq!(verified.size, real_state.size().get());
    let mut alice_view = alice.verify(&topic).await.unwrap();
    assert_eq!(
        verified.root, alice_view.root,
        "the forged tree is the real one"
    );
    // Bob's post goes into the forged log only.
    bob.send(&topic, b"three, forged").await.unwrap();
    assert_eq!(proxy.with_forged(&topic, |log| log.size()), 4);
    alice_view = alice.verify(&topic).await.unwrap();
    assert_eq!(alice_view.size, 3);
}

/// Issue 9 attack 1: the host drops the "remove mallory" change from bob's view. Bob's device
/// must refuse to encrypt under the old epoch (`log_incomplete`): no ciphertext that mallory's
/// old epoch key opens ever leaves it. Caught by: the writer's client (write gate).
#[actix_rt::test]
async fn a_dropped_removal_stops_the_writer() {
    let host = Host::start(rendezvous_bin!(), "lying-removal-drop");
    let mut alice = host.register("alice").await;
    let mut bob = host.register("bob").await;
    let _ = host.register("mallory").await;
    let topic = alice
        .create_topic(
            &[(uid("bob"), Role::Writer), (uid("mallory"), Role::Writer)],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"before the removal").await.unwrap();
    assert_eq!(
        texts(&bob.read(&topic).await.unwrap()),
        ["before the removal"]
    );
    let old_epoch = raw::state(&host.server.process, &alice, &topic)
        .await
        .epoch()
        .get();
    let removal = alice
        .remove_members(&topic, &[uid("mallory")])
        .await
        .unwrap();
    assert_eq!(removal, 2);

    let proxy = liar(&host);
    proxy.add(Rule::DropEntries(topic.clone(), BTreeSet::from([removal])));
    let mut bob = behind(&host, "bob", &proxy);
    let refused = bob
        .send(&topic, b"bob's secret, posted after mallory was removed")
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "log_incomplete", "{refused}");
    assert!(
        refused.to_string().contains('2'),
        "names the index: {refused}"
    );
    assert!(
        !message_epochs(&proxy.sent_entries(&topic)).contains(&old_epoch),
        "a ciphertext under mallory's epoch left bob's device"
    );

    // The same send without the lie goes out under the new epoch.
    proxy.honest();
    bob.send(&topic, b"bob's secret, posted after mallory was removed")
        .await
        .unwrap();
    let epochs = message_epochs(&proxy.sent_entries(&topic));
    assert_eq!(epochs.len(), 1);
    assert!(epochs[0] > old_epoch);
}

/// Issue 9 attack 2 (frozen view): the proxy, holding only the TLS key, keeps serving bob the
/// checkpoint it served him before alice posted. Bob's device refuses to write once the frozen
/// head is older than `MAX_HEAD_AGE` (`stale_head`). Caught by: the client (fresh heads). Bob's
/// clock moves forward instead of the test waiting; that an honest host re-signs an idle head,
/// so that a member talking to it is never stale, is `e2e_write_gate`'s
/// `an_idle_topics_head_is_re_signed_when_asked`.
#[actix_rt::test]
async fn a_frozen_view_goes_stale() {
    let (host, mut alice, topic) = alice_and_bob("lying-frozen").await;
    let proxy = liar(&host);
    let mut bob = behind(&host, "bob", &proxy);
    let clock = Clock::adjustable();
    bob.set_clock(clock.clone());
    bob.send(&topic, b"bob, before the freeze").await.unwrap();
    let _ = bob.read(&topic).await.unwrap();
    proxy.freeze(&topic);
    alice.send(&topic, b"alice, hidden from bob").await.unwrap();
    // Within the bound the frozen view is indistinguishable from an idle topic.
    assert!(bob.read(&topic).await.unwrap().entries.is_empty());

    clock.advance(MAX_HEAD_AGE + 5);
    let refused = bob
        .send(&topic, b"bob, on a frozen view")
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "stale_head", "{refused}");
    assert_eq!(
        proxy.sent_entries(&topic).len(),
        1,
        "nothing more left bob's device"
    );
    // Bob writes again once the proxy stops lying (and his clock is back on the host's time).
    clock.reset();
    proxy.honest();
    bob.send(&topic, b"bob, on a fresh view").await.unwrap();
}

/// The hosting server's entries (wire forms) as `client` is served them by `server`.
async fn real_entries(host: &Host, client: &Client, topic: &TopicId) -> Vec<Vec<u8>> {
    raw::entries(&host.server.process, client, topic).await
}

/// Issue 9 attack 2 (same-server fork): the host holds its Server Key and keeps alice on the
/// real log and bob on a branch it signs itself. Each side alone sees a consistent log (fork
/// consistency: this is all a log can give); the fork is caught as soon as one side's post that
/// depends on its own branch reaches the other: alice's second message signs the root of her
/// branch at `seen`, which bob's root at that size is not. Caught by: the reader (fork
/// binding), with the evidence kept: a message's leaf commits to its signature (`protocol.md`
/// §8.1), so the host's signed log holding it convicts the host (`tag-log.md` §8.4), checked
/// here with the host's key alone, as a third party would.
#[actix_rt::test]
async fn a_forked_post_that_crosses_is_caught() {
    let (host, mut alice, topic) = alice_and_bob("lying-fork").await;
    alice.send(&topic, b"before the fork").await.unwrap();
    let proxy = liar(&host);
    let mut bob = behind(&host, "bob", &proxy);
    assert_eq!(texts(&bob.read(&topic).await.unwrap()), ["before the fork"]);
    // The fork: from now on bob sees a log the host builds itself.
    proxy.forge(&topic, &real_entries(&host, &alice, &topic).await);
    alice.send(&topic, b"alice 1, on branch X").await.unwrap();
    alice.send(&topic, b"alice 2, after alice 1").await.unwrap();
    bob.send(&topic, b"bob 1, on branch Y").await.unwrap();
    let report = bob.read(&topic).await.unwrap();
    assert_eq!(
        texts(&report),
        ["bob 1, on branch Y"],
        "bob's branch alone is consistent"
    );
    assert!(bob.verify(&topic).await.unwrap().ok());

    // Alice's first post crosses: its `seen` (2) is before the fork, so it fits either branch
    // (an honest concurrent post looks the same). Her second one depends on branch X.
    let x = real_entries(&host, &alice, &topic).await;
    proxy.with_forged(&topic, |log| {
        log.push(LogEntry::from_wire(&x[2]).unwrap());
        log.push(LogEntry::from_wire(&x[3]).unwrap());
    });
    let caught = bob.read(&topic).await.unwrap();
    assert!(caught.forked.is_some(), "{caught:?}");
    let bad: Vec<u64> = caught
        .entries
        .iter()
        .filter(|e| !e.verified())
        .map(|e| e.index)
        .collect();
    assert_eq!(
        bad,
        [4],
        "alice 2 at index 4 fails on bob's branch: {caught:?}"
    );
    let verified = bob.verify(&topic).await;
    assert!(
        !matches!(&verified, Ok(v) if v.ok()),
        "bob's verify passes on a fork: {verified:?}"
    );
    // Bob's device refuses to write on a log it holds evidence against.
    let refused = bob.send(&topic, b"bob 2").await.unwrap_err();
    assert_eq!(code(&refused), "log_forked", "{refused}");
    let key = proxy.server_key().public().clone();
    assert_eq!(evidence_exported(&host.home("bob"), &topic, &key).await, 1);
}

/// Key substitution: bob's device holds another key for the host than the one it signs with (a
/// TLS-key holder answered bob's first key lookup, or a homeserver substituted a remote host's
/// key document), and a liar with the host's TLS key serves the topic's real entries under
/// checkpoints it signs with that key: they verify. Caught by: the reader at entry 0, whose
/// create, signed by the creator, names the host's real key (`tag-log.md` §7.5); bob writes
/// nothing.
#[actix_rt::test]
async fn a_substituted_host_key_is_caught_at_entry_0() {
    let (host, mut alice, topic) = alice_and_bob("lying-substituted-key").await;
    alice.send(&topic, b"hello").await.unwrap();
    let proxy = host.server.lying_with_own_key(&host.dir.join("liar"));
    proxy.forge(&topic, &real_entries(&host, &alice, &topic).await);
    pin_server_key(&host.home("bob"), HOST, proxy.server_key().public());
    let mut bob = behind(&host, "bob", &proxy);

    let refused = bob.read(&topic).await.unwrap_err();
    assert_eq!(code(&refused), "server_misbehaved", "{refused}");
    assert!(refused.to_string().contains("host key"), "{refused}");
    let refused = bob
        .send(&topic, b"bob, on a substituted key")
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "server_misbehaved", "{refused}");
    assert!(
        proxy.sent_entries(&topic).is_empty(),
        "nothing left bob's device"
    );
}

/// The hosting server refuses a create naming another key than its own (`wrong_host_key`,
/// `protocol.md` §7.2), so that no log it signs starts with a create members would refuse; the
/// same device creates once it has the right key.
#[actix_rt::test]
async fn a_create_naming_another_host_key_is_refused() {
    let host = Host::start(rendezvous_bin!(), "lying-create-key");
    let _ = host.register("alice").await;
    let home = host.home("alice");
    let real =
        rendezvous_client::keystore::Keystore::open(&home, &rendezvous_testkit::passphrase())
            .unwrap()
            .config()
            .unwrap()
            .server_key(HOST)
            .unwrap()
            .unwrap();
    pin_server_key(&home, HOST, ServerKey::generate().public());
    let mut alice = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    let refused = alice.create_topic(&[], History::Shared).await.unwrap_err();
    assert_eq!(code(&refused), "wrong_host_key", "{refused}");
    pin_server_key(&home, HOST, &real);
    let mut alice = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    let topic = alice.create_topic(&[], History::Shared).await.unwrap();
    alice.send(&topic, b"on the right key").await.unwrap();
    assert_eq!(
        texts(&alice.read(&topic).await.unwrap()),
        ["on the right key"]
    );
}

/// Fork binding makes a change valid only at its own position (`protocol.md` §7.2): a message
/// that lands between an admin's build and post makes the change `stale_change`, and the admin's
/// device builds it again on the new state. A real race: the proxy in front of alice lets bob post
/// (straight to the host) before it forwards alice's first change.
#[actix_rt::test]
async fn a_change_that_lost_its_position_to_a_message_is_built_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (host, _, topic) = alice_and_bob("lying-change-race").await;
    let proxy = liar(&host);
    let mut alice = behind(&host, "alice", &proxy);
    let raced = Arc::new(AtomicBool::new(false));
    let (home, t) = (host.home("bob"), topic.clone());
    proxy.before(move |req| {
        let is_change = req.method == "POST" && req.topic().is_some_and(|(_, w)| w == "changes");
        if is_change && !raced.swap(true, Ordering::SeqCst) {
            let (home, t) = (home.clone(), t.clone());
            std::thread::spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let mut bob = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
                    bob.send(&t, b"bob, between alice's build and post")
                        .await
                        .unwrap();
                })
            })
            .join()
            .unwrap();
        }
        None
    });
    let index = alice.rekey(&topic).await.unwrap();
    assert_eq!(index, 2, "built again after bob's message at 1");
    let posted = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.topic().is_some_and(|(_, w)| w == "changes"))
        .count();
    assert_eq!(posted, 2, "one stale attempt, one that landed");
    let report = alice.read(&topic).await.unwrap();
    assert_eq!(texts(&report), ["bob, between alice's build and post"]);
    assert!(report.entries.iter().all(|e| e.verified()), "{report:?}");
}

/// Issue 9 attack 4, reproduced as the issue did: two copies of one hosting server (same data
/// up to the fork, same Server Key and certificate), alice on copy 1 and bob on copy 2. Each
/// copy's log is one a real server validated. Caught by: bob's reader, once a change of alice's
/// made on her copy is delivered into his (fork binding: a change signs the root at its own
/// position), with the evidence kept (`tag-log.md` §8.4) and checkable with the host's key.
#[actix_rt::test]
async fn two_copies_of_a_host_are_caught_when_a_post_crosses() {
    let host = Host::start(rendezvous_bin!(), "lying-copies");
    let mut alice = host.register("alice").await;
    let mut bob = host.register("bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"before the fork").await.unwrap();
    assert_eq!(texts(&bob.read(&topic).await.unwrap()), ["before the fork"]);
    drop((alice, bob));
    let fork = host.fork();
    let mut alice = fork.point("alice", 0);
    let mut bob = fork.point("bob", 1);
    alice.send(&topic, b"alice 1, on copy 1").await.unwrap();
    alice.rekey(&topic).await.unwrap();
    bob.send(&topic, b"bob 1, on copy 2").await.unwrap();
    assert_eq!(
        texts(&bob.read(&topic).await.unwrap()),
        ["bob 1, on copy 2"],
        "each copy alone is a consistent log"
    );
    assert!(bob.verify(&topic).await.unwrap().ok());
    assert!(alice.verify(&topic).await.unwrap().ok());

    // Copy 2 learns alice's rekey (the host's key lets it sign any log): a lying host in front
    // of copy 2 serves copy 2's log with it appended.
    let x = raw::entries(&fork.copies[0].process, &alice, &topic).await;
    let proxy = fork.copies[1].lying();
    proxy.forge(
        &topic,
        &raw::entries(&fork.copies[1].process, &bob, &topic).await,
    );
    proxy.with_forged(&topic, |log| log.push(LogEntry::from_wire(&x[3]).unwrap()));
    point_at(&fork.dir.join("home-bob"), &proxy.url);
    let mut bob = Client::open(
        &fork.dir.join("home-bob"),
        &rendezvous_testkit::passphrase(),
    )
    .unwrap();
    let verified = bob.verify(&topic).await;
    assert!(
        !matches!(&verified, Ok(v) if v.ok()),
        "bob's verify passes with a post from the other copy: {verified:?}"
    );
    let refused = bob.send(&topic, b"bob 2").await.unwrap_err();
    assert_eq!(code(&refused), "log_forked", "{refused}");
    assert!(
        evidence_exported(
            &fork.dir.join("home-bob"),
            &topic,
            proxy.server_key().public()
        )
        .await
            > 0
    );
}

/// Issue 9 attack 6 (TLS key only): the proxy answers bob's requests about topic A with topic
/// B's log. B's checkpoints name B's origin, so the host's signature does not vouch for A.
/// Caught by: the reader (checkpoint origin).
#[actix_rt::test]
async fn another_topics_log_under_its_own_origin_is_refused() {
    let host = Host::start(rendezvous_bin!(), "lying-other-topic");
    let mut alice = host.register("alice").await;
    let _ = host.register("bob").await;
    let a = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    let b = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&b, b"said in b").await.unwrap();
    let proxy = liar(&host);
    proxy.add(Rule::ServeOtherTopic(a.clone(), b.clone()));
    let mut bob = behind(&host, "bob", &proxy);
    let refused = bob.read(&a).await.unwrap_err();
    assert!(
        [
            "server_misbehaved",
            "bad_checkpoint_note",
            "log_inconsistent"
        ]
        .contains(&code(&refused)),
        "{refused}"
    );
    proxy.honest();
    let report = bob.read(&a).await.unwrap();
    assert!(texts(&report).is_empty() && report.missing.is_empty());
}

/// Issue 9 attack 6 (Server Key): the host signs topic B's entries under topic A's origin and
/// serves them to a member that never read A. Every signature and proof checks out; only entry
/// 0 tells: it creates B, not A. Caught by: the reader (entry 0, `server_misbehaved`).
#[actix_rt::test]
async fn another_topics_log_signed_as_this_one_is_refused() {
    let host = Host::start(rendezvous_bin!(), "lying-other-log");
    let mut alice = host.register("alice").await;
    let _ = host.register("bob").await;
    let a = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    let b = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&b, b"said in b").await.unwrap();
    let proxy = liar(&host);
    proxy.forge(&a, &real_entries(&host, &alice, &b).await);
    let mut bob = behind(&host, "bob", &proxy);
    let refused = bob.read(&a).await.unwrap_err();
    assert_eq!(code(&refused), "server_misbehaved", "{refused}");
    let refused = bob.send(&a, b"into the wrong topic").await.unwrap_err();
    assert_eq!(code(&refused), "server_misbehaved", "{refused}");
    assert!(proxy.sent_entries(&a).is_empty());
    // The real log of A reads.
    proxy.honest();
    let report = bob.read(&a).await.unwrap();
    assert!(texts(&report).is_empty() && report.missing.is_empty());
}

/// Issue 9 attack 8: the host (or its storage) flips one byte of one stored message. The
/// reader reports that entry at its own index and still verifies, opens and shows every later
/// entry at its true position. Caught by: the reader, without being blinded.
#[actix_rt::test]
async fn one_bad_entry_does_not_blind_the_reader() {
    let (host, mut alice, topic) = alice_and_bob("lying-one-bad-entry").await;
    for i in 1..=5 {
        alice
            .send(&topic, format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    let proxy = liar(&host);
    let bad = 2u64;
    proxy.after(move |req, answer| {
        if req.topic().is_some_and(|(_, what)| what == "entries") && answer.status == 200 {
            flip_in_entry(&mut answer.body, bad);
        }
    });
    let mut bob = behind(&host, "bob", &proxy);
    let report = bob.read(&topic).await.unwrap();
    let problems: Vec<u64> = report
        .entries
        .iter()
        .filter(|e| !e.verified())
        .map(|e| e.index)
        .chain(report.missing.iter().copied())
        .collect();
    assert_eq!(problems, [bad], "{report:?}");
    assert_eq!(texts(&report), ["m1", "m3", "m4", "m5"], "{report:?}");
    // The proxy held only the TLS key: nothing here convicts the host, whose signed log is
    // intact (the altered copy is not the log's entry: its leaf covers the ciphertext).
    let key = proxy.server_key().public().clone();
    assert_eq!(evidence_exported(&host.home("bob"), &topic, &key).await, 0);
    // Posted after the tampering: still shown.
    alice.send(&topic, b"m6").await.unwrap();
    let later = bob.read(&topic).await.unwrap();
    assert_eq!(texts(&later), ["m6"], "{later:?}");
    // Honest, the same read shows the entry.
    proxy.honest();
    let verified = bob.verify(&topic).await.unwrap();
    assert!(verified.failed.is_empty(), "{verified:?}");
}

/// Flips a byte of the ciphertext of the entry at log index `index` in an `entries` answer.
fn flip_in_entry(body: &mut Vec<u8>, index: u64) {
    use rendezvous_protocol::api::EntriesResponse;
    let mut entries = EntriesResponse::from_cbor(body).unwrap();
    for e in &mut entries.entries {
        if e.index.0 == index {
            let mut entry = LogEntry::from_wire(&e.entry).unwrap();
            let last = entry.1.len() - 100;
            entry.1[last] ^= 1;
            e.entry = serde_bytes::ByteBuf::from(entry.to_wire());
        }
    }
    *body = encode(&entries);
}

/// Issue 9 attack 2 (append answers are proofs): the host swallows bob's post and answers it
/// with an append answer it signs itself, then never shows the entry. Caught by: bob's
/// client, which kept the answer's checkpoint; the next view without the entry contradicts a
/// checkpoint the host signed.
#[actix_rt::test]
async fn a_swallowed_post_is_evidence() {
    let (host, mut alice, topic) = alice_and_bob("lying-swallow").await;
    let proxy = liar(&host);
    proxy.add(Rule::Swallow(topic.clone()));
    let mut bob = behind(&host, "bob", &proxy);
    bob.send(&topic, b"swallowed").await.unwrap();
    assert_eq!(proxy.swallowed().len(), 1);
    // The real log goes on without it.
    alice
        .send(&topic, b"alice, at the swallowed index")
        .await
        .unwrap();
    proxy.honest();
    let caught = bob.read(&topic).await;
    let err = caught.as_ref().err().map(code);
    let verified = bob.verify(&topic).await;
    assert!(
        err == Some("log_forked") || !matches!(&verified, Ok(v) if v.ok()),
        "bob accepts a log without the entry the host acknowledged: {caught:?} {verified:?}"
    );
    let refused = bob.send(&topic, b"after").await.unwrap_err();
    assert_eq!(code(&refused), "log_forked", "{refused}");
    assert!(evidence_exported(&host.home("bob"), &topic, proxy.server_key().public()).await > 0);
}

/// Adds a cosignature line by a made-up witness (a valid line under a key nobody knows) to a
/// checkpoint note.
fn inject_line(note: &CheckpointNote) -> CheckpointNote {
    let mut signed = note.signed().unwrap();
    let cp = signed.unverified_checkpoint().clone();
    let fake = Cosignature::sign(&ServerKey::generate(), "made-up.example", &cp, cp.time).unwrap();
    signed.add_cosignature(&fake).unwrap();
    signed.to_note()
}

/// Issue 9 attack 5 (injected lines), as members see it: the host (or anyone on the path)
/// adds cosignature lines under made-up names to every checkpoint it serves. They prove
/// nothing and must not count as cosignatures; they must not make honest members' reads,
/// writes or `verify` fail either (that would let anyone blind a topic). Caught by: the
/// reader, which reports unknown cosigners instead of failing.
#[actix_rt::test]
async fn injected_cosignature_lines_neither_count_nor_blind() {
    let (host, mut alice, topic) = alice_and_bob("lying-injected-lines").await;
    alice.send(&topic, b"hello").await.unwrap();
    let proxy = liar(&host);
    proxy.after(|req, answer| {
        let Some((_, what)) = req.topic() else { return };
        if answer.status != 200 {
            return;
        }
        if what == "checkpoint" {
            let mut r = CheckpointResponse::from_cbor(&answer.body).unwrap();
            r.checkpoint = inject_line(&r.checkpoint);
            answer.body = encode(&r);
        } else if what == "witnesses" {
            let mut r = WitnessesResponse::from_cbor(&answer.body).unwrap();
            r.host = r.host.as_ref().map(inject_line);
            if let Some(host) = &r.host {
                r.witnesses.push(host.clone());
            }
            answer.body = encode(&r);
        }
    });
    let mut bob = behind(&host, "bob", &proxy);
    let report = bob.read(&topic).await.unwrap();
    assert_eq!(texts(&report), ["hello"]);
    bob.send(&topic, b"hello back").await.unwrap();
    let verified = bob.verify(&topic).await.unwrap();
    assert!(verified.failed.is_empty() && verified.missing.is_empty());
    assert_eq!(verified.root_matches, Some(true));
    assert!(
        verified
            .witnesses
            .cosigned
            .iter()
            .all(|(s, _)| s != "made-up.example"),
        "a made-up line counted as a cosignature: {verified:?}"
    );
    // ... and reported as what it is.
    assert!(
        verified
            .witnesses
            .unknown_cosigners
            .iter()
            .any(|s| s == "made-up.example"),
        "{verified:?}"
    );
    // The lines were there to be ignored.
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/witnesses"))
    );
}

/// Reads `topic` as `client` until `want` messages have been shown in all, or panics.
async fn read_until(client: &mut Client, topic: &TopicId, want: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < want {
        if let Ok(report) = client.read(topic).await {
            got.extend(texts(&report));
        }
        assert!(Instant::now() < deadline, "only {got:?} of {want} read");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// Whether `client`'s `verify` of `topic` fails (an error, or a report that is not ok)
/// within `PATIENCE`; what it said last.
async fn verify_fails(client: &mut Client, topic: &TopicId) -> (bool, String) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let verified = client.verify(topic).await;
        let failed = !matches!(&verified, Ok(v) if v.ok());
        if failed || Instant::now() > deadline {
            return (failed, format!("{verified:?}"));
        }
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Issue 9 attack 4 (unequal forks), end to end as the issue reproduced it: two copies of the
/// hosting server `a.test` (same data up to the fork, same Server Key and certificates); mirror
/// `c.test` talks to copy 1 and `b.test` to copy 2. C's branch gets two entries and is signed
/// first; b's gets one and is signed 3 s later. B then holds C's cosigned note of a larger log
/// signed earlier than its own smaller head: a rollback by `tag-log.md` §4.2's rule. Caught
/// by: b's mirror (evidence) and bob's `verify`, on the smaller side, not only c.
#[actix_rt::test]
async fn an_unequal_fork_is_caught_on_the_smaller_side() {
    let (mut fed, _alice, mut bob, mut carol, topic) = three_servers("lying-unequal").await;

    // The fork: copy 1 (the original) reaches c only, copy 2 reaches b only.
    let copy = fork_federated(
        &mut fed,
        "a.test",
        [&["b.test"], &["c.test"]],
        CopyKeys::Same,
    );
    route(&mut fed, "b.test", "a.test", copy.federation);
    carol.send(&topic, b"c 1, on copy 1").await.unwrap();
    carol.send(&topic, b"c 2, on copy 1").await.unwrap();
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    bob.send(&topic, b"b 1, on copy 2").await.unwrap();
    assert_eq!(read_until(&mut bob, &topic, 1).await, ["b 1, on copy 2"]);

    // The larger side sees a smaller head signed later (caught today already).
    let (caught, said) = verify_fails(&mut carol, &topic).await;
    assert!(caught, "carol's verify passes on a fork: {said}");
    // The smaller side: b holds c's larger, earlier note.
    let (caught, said) = verify_fails(&mut bob, &topic).await;
    assert!(
        caught,
        "bob's verify passes on the smaller side of a fork: {said}"
    );
    let refused = bob.send(&topic, b"b 2").await.unwrap_err();
    assert!(
        ["split_view", "log_forked"].contains(&code(&refused)),
        "{refused}"
    );
    drop(copy);
}

/// Runs `rdv --json ARGS` for the device whose keystore is `home`: every JSON line it would
/// print, and its error code if it fails.
async fn rdv_json(home: &Path, args: &[&str]) -> (Vec<String>, Option<&'static str>) {
    let (outputs, failed) = rendezvous_testkit::cli::rdv(home, args).await;
    let printer = Printer::new(true);
    let lines = outputs.iter().map(|o| printer.render(o)).collect();
    (lines, failed)
}

/// Issue 9 attack 7 (silent losses): a post that bob's server queued for the hosting server
/// (`202`, `queued`) and that the host refuses when it finally arrives (alice rekeyed
/// meanwhile, so its epoch is old). Today only the server's log says so. Caught by: bob's
/// devices, told through their inbox; `rdv` shows `post_refused`.
#[actix_rt::test]
async fn a_queued_post_refused_later_reaches_its_author() {
    let names = ["a.test", "b.test"];
    let mut fed = Federation::in_process("lying-refused", &names).start();
    let mut alice = fed.register("a.test", "alice").await;
    let mut bob = fed.register("b.test", "bob").await;
    let topic = alice
        .create_topic(&[(user_id("bob", "b.test"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"hello bob").await.unwrap();
    assert_eq!(read_until(&mut bob, &topic, 1).await, ["hello bob"]);

    // b cannot reach a for a while: bob's post is queued.
    let a = fed.node("a.test").federation;
    route(&mut fed, "b.test", "a.test", free_addr_on([127, 0, 0, 1]));
    let home = fed.dir.join("devices/bob@b.test");
    let mut bob = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    let queued = bob.send(&topic, b"queued, then refused").await.unwrap_err();
    assert_eq!(code(&queued), "queued", "{queued}");
    alice.rekey(&topic).await.unwrap();
    route(&mut fed, "b.test", "a.test", a);

    let deadline = Instant::now() + PATIENCE;
    loop {
        let (sync, sync_err) = rdv_json(&home, &["sync"]).await;
        let (read, read_err) = rdv_json(&home, &["read", topic.as_str()]).await;
        let told = sync.iter().chain(&read).any(|l| l.contains("post_refused"))
            || [sync_err, read_err].contains(&Some("post_refused"));
        if told {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob was never told his queued post was refused: {sync:?} {read:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    // It never entered the log.
    let report = alice.verify(&topic).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.size, 3, "create, hello, rekey");
}

/// Issue 9 attack 3 (per-peer Server Keys): the hosting server shows mirror b another Server
/// Key than the one it showed everyone when the topic was created (here: a copy of `a.test`
/// with a key of its own serves b), and signs b's branch with it. Caught by: b's mirror, which
/// refuses checkpoints under a key the topic does not name and keeps them as evidence
/// (`split_view` to its users), and bob's `verify`.
#[actix_rt::test]
async fn a_host_key_per_peer_is_caught() {
    let (mut fed, _alice, _bob, mut carol, topic) = three_servers("lying-per-peer-keys").await;

    let copy = fork_federated(
        &mut fed,
        "a.test",
        [&["b.test"], &["c.test"]],
        CopyKeys::Own,
    );
    route(&mut fed, "b.test", "a.test", copy.federation);
    let mut bob = Client::open(
        &fed.dir.join("devices/bob@b.test"),
        &rendezvous_testkit::passphrase(),
    )
    .unwrap();
    carol
        .send(&topic, b"c 1, under the topic's key")
        .await
        .unwrap();
    // Bob's post goes to the copy, which signs under its own key. Refusing it is not enough
    // (today bob's client refuses the checkpoint, `bad_checkpoint_note`, and b's mirror starts
    // a fresh view under the new key): b must keep the note as evidence and say so.
    let _ = bob.send(&topic, b"b 1, to a host with another key").await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let read = bob.read(&topic).await;
        let told = matches!(&read, Err(e) if ["split_view", "log_forked"].contains(&code(e)))
            || matches!(&read, Ok(r) if r.forked.is_some());
        if told {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob is not told that b was shown another host key: {read:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    let (caught, said) = verify_fails(&mut bob, &topic).await;
    assert!(caught, "{said}");
    drop(copy);
}

/// Three in-process federating servers `a.test` (the host), `b.test`, `c.test`, a user on each,
/// and a topic of alice's on `a.test` with bob and carol as writers, one message read by both.
async fn three_servers(test: &str) -> (Federation, Client, Client, Client, TopicId) {
    let names = ["a.test", "b.test", "c.test"];
    let fed = Federation::in_process(test, &names).start();
    let mut alice = fed.register("a.test", "alice").await;
    let mut bob = fed.register("b.test", "bob").await;
    let mut carol = fed.register("c.test", "carol").await;
    let topic = alice
        .create_topic(
            &[
                (user_id("bob", "b.test"), Role::Writer),
                (user_id("carol", "c.test"), Role::Writer),
            ],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"before the fork").await.unwrap();
    assert_eq!(read_until(&mut bob, &topic, 1).await, ["before the fork"]);
    assert_eq!(read_until(&mut carol, &topic, 1).await, ["before the fork"]);
    (fed, alice, bob, carol, topic)
}

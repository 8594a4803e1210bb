//! A lost or stolen device (`devices.md` §5.4, `directory.md` §8, `protocol.md` §7.2 move), on
//! two real federated homeservers: `rdv device remove --lost` removes the device, rotates the
//! Identity Key and moves every topic membership to it; the members follow, keep every message
//! and go on talking; the stolen keystore (passphrase and all) gets nothing new: the server
//! refuses its device and its old IK, and the old Topic Key opens nothing after the move.
//! And the thief's own move, signed with the stolen Topic Key and accepted by a colluding
//! host, is refused by every honest member's client (`directory_mismatch`).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rendezvous_client::Client;
use rendezvous_client::cli::{ChangeKind, Output};
use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::{IdentityKey, Randomness, TopicKey};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::{
    Action, ChangeBuilder, EpochKeyring, History, LogEntry, MemberIndex, MemberSpec, ParsedEntry,
    Replayer, Role,
};
use rendezvous_protocol::wire::Signed;
use rendezvous_testkit::cli::rdv;
use rendezvous_testkit::federation::{Federation, witnessing_pair};
use rendezvous_testkit::fork::copy_dir;
use rendezvous_testkit::raw;
use rendezvous_testkit::server::try_link;
use rendezvous_testkit::topic::SUITE;
use rendezvous_testkit::wait::read_until;

const A: &str = "a.example";
const B: &str = "b.example";

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

/// alice on a with a laptop and a phone, bob on b; a topic hosted on a with one message each
/// way, read by all three devices.
async fn setup(fed: &Federation) -> (Client, Client, Client, TopicId) {
    let mut laptop = fed.register(A, "alice").await;
    let mut bob = fed.register(B, "bob").await;
    let (phone, offered) = try_link(fed.server(A), &fed.dir, &mut laptop, "alice-phone").await;
    offered.unwrap();
    let mut phone = phone.unwrap();
    phone.set_clock(fed.clock.clone());
    fed.clock.advance(2);
    let topic = laptop
        .create_topic(&[(id("bob", B), Role::Writer)], History::Shared)
        .await
        .unwrap();
    laptop.send(&topic, b"before").await.unwrap();
    read_until(&mut bob, &topic, "read alice", |r| r.size == 2).await;
    bob.send(&topic, b"hello alice").await.unwrap();
    for device in [&mut laptop, &mut phone] {
        let r = read_until(device, &topic, "read bob", |r| r.size == 3).await;
        assert!(!r.has_problems(), "{r:?}");
    }
    (laptop, phone, bob, topic)
}

/// Scenario: alice's phone is stolen with its keystore and passphrase. From her laptop she
/// runs what `rdv device remove --lost` runs: remove, rotate, move. bob follows the move
/// (his roster check looks alice's new IK up in a's directory, through b); they go on
/// talking and alice still reads the messages from before. The stolen keystore opens, but its
/// device is refused, its IK adds no device, and its Topic Key opens nothing after the move.
#[actix_rt::test]
async fn a_lost_device_is_rotated_out_and_every_topic_moves_on() {
    let fed = witnessing_pair("lost-device", A, B);
    let (mut laptop, phone, mut bob, topic) = setup(&fed).await;
    // A second topic, hosted on b: its host checks alice's move against a's directory too.
    let on_b = bob
        .create_topic(&[(id("alice", A), Role::Writer)], History::Shared)
        .await
        .unwrap();
    read_until(&mut laptop, &on_b, "joined bob's topic", |r| r.size == 1).await;
    let stolen = fed.dir.join("thief");
    copy_dir(phone.keystore().dir(), &stolen);
    let phone_id = phone
        .keystore()
        .device()
        .unwrap()
        .public()
        .key_id()
        .to_hex();
    drop(phone);
    let old_ik = laptop.identity_key().clone();
    // alice's tablet stays hers: it must follow the rotation and the move.
    let (tablet, offered) = try_link(fed.server(A), &fed.dir, &mut laptop, "alice-tablet").await;
    offered.unwrap();
    let mut tablet = tablet.unwrap();
    tablet.set_clock(fed.clock.clone());
    read_until(&mut tablet, &topic, "read on the tablet", |r| r.size == 3).await;

    // `rdv device remove --lost`, as the user runs it on the laptop.
    let home = laptop.keystore().dir().to_owned();
    drop(laptop);
    let (out, failed) = rdv(&home, &["device", "remove", &phone_id, "--lost"]).await;
    assert_eq!(failed, None, "{out:?}");
    let mut laptop = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    laptop.set_clock(fed.clock.clone());
    let new_ik = laptop.identity_key().clone();
    assert_ne!(new_ik, old_ik);
    let hex = rendezvous_protocol::crypto::sign::hex_string;
    assert_eq!(
        out[..2],
        [
            Output::DeviceRemoved {
                id: phone_id.clone()
            },
            Output::IdentityRotated {
                user: id("alice", A).to_string(),
                from: hex(old_ik.as_bytes()),
                to: hex(new_ik.as_bytes()),
            },
        ]
    );
    let mut moved: Vec<(String, u64)> = out[2..]
        .iter()
        .map(|o| match o {
            Output::Changed {
                topic,
                index,
                change: ChangeKind::Moved,
            } => (topic.clone(), *index),
            other => panic!("not a move: {other:?}"),
        })
        .collect();
    moved.sort();
    let mut want = vec![(topic.to_string(), 3), (on_b.to_string(), 1)];
    want.sort();
    assert_eq!(moved, want, "both topics moved, whoever hosts them");
    assert_eq!(
        laptop.devices().await.unwrap().len(),
        2,
        "the laptop and the tablet"
    );

    // The move is in a's log: alice's member binds the new IK and a new Topic Key.
    let state = raw::state(fed.server(A), &laptop, &topic).await;
    let alice = state.member(MemberIndex(0)).unwrap();
    assert_eq!(alice.identity_key, new_ik);
    assert_eq!(alice.role, Role::Admin);
    assert_eq!(state.epoch().get(), 1);

    // bob checks the move against a's directory (pending until b witnessed the rotation) and
    // follows it; alice's contact record says so.
    let r = read_until(&mut bob, &topic, "checked the move", |r| {
        r.size == 4 && !r.has_problems()
    })
    .await;
    assert!(r.refused.is_empty(), "{r:?}");
    let contact = bob
        .contacts()
        .unwrap()
        .into_iter()
        .find(|c| c.user == id("alice", A).as_str())
        .unwrap();
    assert_eq!(contact.state, "rotated", "{contact:?}");

    let r = read_until(&mut bob, &on_b, "checked the move on b", |r| {
        r.size == 2 && !r.has_problems()
    })
    .await;
    assert!(r.refused.is_empty(), "{r:?}");

    // They go on talking, in the new epoch; alice's laptop still reads the old messages.
    laptop.send(&topic, b"after").await.unwrap();
    let r = read_until(&mut bob, &topic, "read after", |r| r.size == 5).await;
    assert_eq!(raw::texts(&r), ["after"]);
    bob.send(&topic, b"welcome back").await.unwrap();
    let r = read_until(&mut laptop, &topic, "read bob again", |r| r.size == 6).await;
    assert!(!r.has_problems(), "{r:?}");
    assert_eq!(raw::texts(&r), ["after", "welcome back"]);
    drop(laptop);
    let mut fresh = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    fresh.set_clock(fed.clock.clone());
    let all = fresh.verify(&topic).await.unwrap();
    assert!(all.ok(), "{all:?}");
    // Self-monitoring reads the kind 1 entry (the old key, rotated from) and the kind 2 entry
    // (the new one): no alarm. The directory is witnessed every second; wait for the rotation.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = fresh.monitor_directory().await.unwrap();
        assert!(summary.new_alarms.is_empty(), "{summary:?}");
        // a's directory: alice's registration (0) and her rotation (1).
        if summary.size >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the rotation was never served");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }

    // The tablet takes the new IK and the move's Topic Key from its inbox, reads on and
    // writes under the new key; self-monitoring on it raises no alarm either.
    let report = tablet.sync_inbox().await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(*tablet.identity_key(), new_ik);
    let r = read_until(&mut tablet, &topic, "read on after the move", |r| {
        r.size == 6
    })
    .await;
    assert!(!r.has_problems(), "{r:?}");
    assert_eq!(raw::texts(&r), ["after", "welcome back"]);
    tablet.send(&topic, b"from the tablet").await.unwrap();
    let r = read_until(&mut bob, &topic, "read the tablet", |r| r.size == 7).await;
    assert_eq!(raw::texts(&r), ["welcome back", "from the tablet"]);
    let summary = tablet.monitor_directory().await.unwrap();
    assert!(summary.new_alarms.is_empty(), "{summary:?}");

    // The thief opens the stolen keystore: the device is refused by the server.
    let mut thief = Client::open(&stolen, &rendezvous_testkit::passphrase()).unwrap();
    thief.set_clock(fed.clock.clone());
    assert_eq!(*thief.identity_key(), old_ik);
    let e = thief.read(&topic).await.unwrap_err();
    assert!(
        matches!(
            e.error_code(),
            "device_revoked" | "unauthorized" | "login_refused"
        ),
        "{e}"
    );
    // Its Topic Key opens nothing after the move: the new epoch's box for alice is sealed to
    // the new key only. The log replayed up to the move gives alice's Topic Key before it and
    // the root the move is bound to.
    let entries = raw::entries(fed.server(A), &fresh, &topic).await;
    let mut before = Replayer::new();
    for e in &entries[..3] {
        before.push(&LogEntry::from_wire(e).unwrap()).unwrap();
    }
    let old_member = before
        .state()
        .unwrap()
        .member(MemberIndex(0))
        .unwrap()
        .clone();
    assert_eq!(old_member.identity_key, old_ik);
    let (old_tk, _) = thief
        .keystore()
        .topic_key(&old_member.topic_key.key_id(), &old_ik)
        .unwrap()
        .expect("the stolen keystore holds alice's old Topic Key");
    let ParsedEntry::Change(signed) = LogEntry::from_wire(&entries[3]).unwrap().parse().unwrap()
    else {
        panic!("entry 3 is the move");
    };
    let outcome = before
        .state()
        .unwrap()
        .check_change(signed, &before.roots().root())
        .unwrap();
    assert!(matches!(outcome.change.action, Action::Move(_)));
    let mut keyring = EpochKeyring::new();
    assert!(
        keyring
            .receive(&outcome.change, &outcome.next, MemberIndex(0), &old_tk)
            .is_err(),
        "the stolen Topic Key opened the epoch after the move"
    );
}

/// Scenario: the thief moves first. With the stolen phone still active (its token, alice's
/// Topic Key), it signs a move of alice to an IK of its own. An honest host refuses it (not
/// alice's registered key); a colluding host (its identity checks off) appends it. bob's
/// client and alice's laptop both refuse the change (`directory_mismatch`, alice's directory
/// binds her real key) and write nothing more to the topic.
#[actix_rt::test]
async fn a_thiefs_move_through_a_colluding_host_is_refused_by_every_member() {
    let fed = witnessing_pair("lost-thief-move", A, B);
    let (mut laptop, thief, mut bob, topic) = setup(&fed).await;
    let a = fed.server(A);
    let state = raw::state(a, &thief, &topic).await;
    let root = raw::root(a, &thief, &topic).await;
    let (me, tk, _, _) = raw::keys(a, &thief, &topic).await;
    let fake = IdentityKey::generate();
    let new_tk = TopicKey::generate(SUITE);
    let alice = id("alice", A);
    let spec = MemberSpec {
        user: alice.clone(),
        identity_key: fake.public().clone(),
        role: Role::Admin,
        topic_key_cert: Signed::sign(TopicKeyCert::new(alice.clone(), new_tk.public(), 0), &fake)
            .unverified(),
    };
    let (outcome, _) = ChangeBuilder::new(
        &state,
        root,
        MemberIndex(me),
        &tk,
        Action::Move(Box::new(spec)),
    )
    .build(rendezvous::state::now(), &mut Randomness::Os)
    .unwrap();
    let wire = outcome.change.to_wire();
    let (http, token) = raw::http(a, &thief);
    let path = format!(
        "/v1/topics/{}/changes",
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    // The control: an honest host refuses it.
    let (status, refused) = raw::post(&http, Some(&token), &path, wire.clone()).await;
    assert_ne!(status, 200, "{refused:?}");
    fed.store(A)
        .identity_check_skips_for_tests()
        .store(true, Ordering::SeqCst);
    assert_eq!(
        raw::post(&http, Some(&token), &path, wire).await,
        (200, None)
    );

    for (who, member) in [("bob", &mut bob), ("alice's laptop", &mut laptop)] {
        let r = read_until(member, &topic, "refused the move", |r| r.size == 4).await;
        assert_eq!(r.refused.len(), 1, "{who}: {r:?}");
        assert_eq!(
            (r.refused[0].index, r.refused[0].user.as_str()),
            (3, alice.as_str()),
            "{who}"
        );
        assert!(
            r.refused[0].reason.starts_with("directory_mismatch"),
            "{who}: {r:?}"
        );
        let e = member.send(&topic, b"anyone?").await.unwrap_err();
        assert_eq!(e.error_code(), "topic_refused", "{who}: {e}");
    }
}

//! Witnessing across servers (`federation-api.md` §9.4, `tag-log.md` §7–§8) against a lying
//! hosting server: the test loads a.example's Server Key (and, to send as a cosigner, c's) from
//! the data directories and signs what a lying host would, then checks what b's mirror keeps.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rendezvous_client::{Client, EntryContent};
use rendezvous_protocol::api::{ErrorCode, WitnessesResponse, encode_segment};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::EventKind;
use rendezvous_protocol::federation::topic_events::{MirrorEvidence, cosignature_to_wire};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::tlog::{
    Checkpoint, CheckpointNote, Cosignature, Evidence, SignedCheckpoint, TreeSize, leaf_hash,
};
use rendezvous_protocol::topic::{History, Role, log_origin};
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::raw;
use rendezvous_testkit::transaction::{self, server_key};

const NAMES: [&str; 3] = ["a.example", "b.example", "c.example"];

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

/// A topic on a with bob (b) and carol (c), one message read by both.
async fn topic_on_a(fed: &Federation) -> (Client, Client, Client, TopicId) {
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let mut carol = fed.register("c.example", "carol").await;
    let topic = alice
        .create_topic(
            &[
                (id("bob", "b.example"), Role::Writer),
                (id("carol", "c.example"), Role::Writer),
            ],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"shared by all").await.unwrap();
    for member in [&mut bob, &mut carol] {
        until_read(member, &topic).await;
    }
    // Let the honest cosignatures of the mirrors land first.
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    (alice, bob, carol, topic)
}

async fn until_read(member: &mut Client, topic: &TopicId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = member.read(topic).await
            && r.entries
                .iter()
                .any(|e| matches!(&e.content, EntryContent::Message { text: Some(_), .. }))
        {
            return;
        }
        assert!(Instant::now() < deadline, "message never read");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `member`'s server's `witnesses` answer.
async fn witnesses(
    fed: &Federation,
    server: &str,
    member: &Client,
    topic: &TopicId,
) -> WitnessesResponse {
    let (http, token) = raw::http(fed.server(server), member);
    let path = format!("/v1/topics/{}/witnesses", encode_segment(topic.as_str()));
    http.call(awc::http::Method::GET, &path, None, Some(&token))
        .await
        .unwrap()
}

/// Sends `note` to b as c's `topic.cosignature`, signed with c's key; the event's status.
async fn cosignature_to_b(
    fed: &Federation,
    topic: &TopicId,
    note: &CheckpointNote,
) -> (u16, String) {
    let c_key = server_key(&fed.server("c.example").data_dir);
    let event = transaction::event(
        "c.example",
        "b.example",
        EventKind::TopicCosignature,
        topic,
        cosignature_to_wire(note),
        &c_key,
    );
    let txn = transaction::transaction(
        &transaction::fresh_id(),
        "c.example",
        "b.example",
        &[&event],
    );
    let (status, body) =
        transaction::send(&fed.peer_as("b.example", "c.example"), "b.example", &txn)
            .await
            .unwrap();
    assert_eq!(status, 200);
    let (_, status, code) = transaction::results(&body).remove(0);
    (status, code)
}

/// `note` cosigned by c (key `c_key`) now.
fn cosigned_by_c(note: &SignedCheckpoint, c_key: &ServerKey) -> SignedCheckpoint {
    let co = Cosignature::sign(
        c_key,
        "c.example",
        note.unverified_checkpoint(),
        rendezvous::state::now(),
    )
    .unwrap();
    let mut note = note.clone();
    note.add_cosignature(&co).unwrap();
    note
}

async fn until_split_view(member: &mut Client, topic: &TopicId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match member.read(topic).await {
            Err(e) if e.code() == Some(ErrorCode::SplitView) => return,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no split view reported: {other:?}"
                );
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Issue 9, attack 4: the host shows c a branch two entries ahead, signed first, and b a
/// smaller head signed later. b holds the smaller one; c's cosigned larger head, signed
/// earlier, is a rollback by time: b stops its mirror, keeps the two notes as evidence that
/// verifies for anyone, serves it through `witnesses`, and still has it after a restart.
#[actix_rt::test]
async fn an_unequal_fork_is_caught_on_the_smaller_side_and_survives_a_restart() {
    let mut fed = Federation::in_process("fed-unequal-fork", &NAMES).start();
    let (_alice, mut bob, _carol, topic) = topic_on_a(&fed).await;
    let a_key = server_key(&fed.server("a.example").data_dir);
    let c_key = server_key(&fed.server("c.example").data_dir);

    let w = witnesses(&fed, "b.example", &bob, &topic).await;
    let held = SignedCheckpoint::parse(w.mirror.unwrap().as_bytes()).unwrap();
    let h = held.unverified_checkpoint().clone();
    // c's branch: two entries more than b holds, signed one second before b's head.
    let larger = Checkpoint::new(
        &log_origin(&topic),
        TreeSize(h.size.0 + 2),
        leaf_hash(b"c's branch"),
        h.time - 1,
    )
    .unwrap();
    let larger = SignedCheckpoint::sign(&larger, &a_key, "a.example").unwrap();
    let (status, code) =
        cosignature_to_b(&fed, &topic, &cosigned_by_c(&larger, &c_key).to_note()).await;
    assert_eq!(
        (status, code.as_str()),
        (200, ""),
        "the cosignature itself is fine"
    );
    until_split_view(&mut bob, &topic).await;

    let check = |w: WitnessesResponse| {
        let e = MirrorEvidence::from_wire(&w.evidence.expect("b keeps evidence")).unwrap();
        assert!(e.reason.contains("rollback"), "{}", e.reason);
        let a = SignedCheckpoint::parse(e.a.as_bytes()).unwrap();
        let b = SignedCheckpoint::parse(e.b.as_bytes()).unwrap();
        assert_eq!(
            a.unverified_checkpoint().size.0,
            h.size.0 + 2,
            "larger first"
        );
        assert_eq!(b.unverified_checkpoint(), &h);
        // A third party holding a's key checks it from the two notes alone.
        Evidence::Rollback { old: a, new: b }
            .verify(a_key.public(), "a.example")
            .unwrap();
    };
    check(witnesses(&fed, "b.example", &bob, &topic).await);
    let report = bob.verify(&topic).await.unwrap();
    assert!(!report.ok(), "{report:?}");

    fed.stop("b.example");
    fed.up("b.example");
    until_split_view(&mut bob, &topic).await;
    check(witnesses(&fed, "b.example", &bob, &topic).await);
}

/// Issue 9, attack 5: a cosigned note with a made-up cosigner's line and a garbage line under
/// c's own name (before c's real line) is stored and served with the host's and c's verified
/// lines only; bob's `rdv verify` still passes and counts c.
#[actix_rt::test]
async fn injected_cosignature_lines_are_dropped() {
    let fed = Federation::in_process("fed-injected-lines", &NAMES).start();
    let (_alice, mut bob, _carol, topic) = topic_on_a(&fed).await;
    let c_key = server_key(&fed.server("c.example").data_dir);
    let w = witnesses(&fed, "b.example", &bob, &topic).await;
    let head = SignedCheckpoint::parse(w.mirror.unwrap().as_bytes()).unwrap();
    let cosigned = cosigned_by_c(&head, &c_key).to_note().to_string();
    let real = cosigned.lines().last().unwrap().to_owned();
    let b64 = real.rsplit(' ').next().unwrap();
    let mut garbage = b64.to_owned().into_bytes();
    garbage[40] = if garbage[40] == b'A' { b'B' } else { b'A' };
    let garbage = String::from_utf8(garbage).unwrap();
    let host_line = cosigned.lines().rev().nth(1).unwrap();
    let body_end = cosigned.find("\n\n").unwrap() + 2;
    let injected = format!(
        "{}{host_line}\n\u{2014} c.example {garbage}\n\u{2014} evil.example {b64}\n{real}\n",
        &cosigned[..body_end]
    );
    let injected = CheckpointNote::parse(injected).unwrap();
    assert_eq!(
        cosignature_to_b(&fed, &topic, &injected).await,
        (200, String::new())
    );

    let w = witnesses(&fed, "b.example", &bob, &topic).await;
    let from_c: Vec<_> = w
        .witnesses
        .iter()
        .filter(|n| n.contains("\u{2014} c.example "))
        .collect();
    assert_eq!(from_c.len(), 1);
    assert!(!from_c[0].contains("evil.example"), "{}", from_c[0]);
    assert!(!from_c[0].contains(&garbage), "{}", from_c[0]);
    assert_eq!(from_c[0].matches('\u{2014}').count(), 2, "{}", from_c[0]);
    for note in &w.witnesses {
        assert!(!note.contains("evil.example"), "{note}");
    }
    let report = bob.verify(&topic).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(
        report
            .witnesses
            .cosigned
            .iter()
            .any(|(s, _)| s == "c.example"),
        "{report:?}"
    );
    let _ = bob.read(&topic).await.unwrap();
}

/// Issue 9, attack 7: bob's post is answered `202 queued` while a is down; before b can
/// deliver it, a removes bob, so a refuses the submit when it arrives. The refusal reaches
/// bob's device as an inbox item (and `rdv sync` would fail with `post_refused`), not only a
/// log line on b.
#[actix_rt::test]
async fn a_queued_post_the_host_refuses_later_reaches_the_authors_inbox() {
    let mut fed = Federation::in_process("fed-refused-later", &NAMES).start();
    let (mut alice, mut bob, _carol, topic) = topic_on_a(&fed).await;
    fed.stop("a.example");
    let queued = bob.send(&topic, b"queued while a is down").await;
    assert_eq!(
        queued.as_ref().err().map(|e| e.error_code()),
        Some("queued"),
        "{queued:?}"
    );
    fed.stop("b.example");
    fed.up("a.example");
    alice
        .remove_members(&topic, &[id("bob", "b.example")])
        .await
        .unwrap();
    fed.up("b.example");

    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        bob.sync_inbox().await.unwrap();
        let refused = bob.take_refused_posts().unwrap();
        if !refused.is_empty() {
            break refused;
        }
        assert!(
            Instant::now() < deadline,
            "the refusal never reached bob's inbox"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].topic, topic.as_str());
    assert_eq!(refused[0].entry, "message");
    assert!(refused[0].status >= 400, "{refused:?}");
    assert!(!refused[0].code.is_empty());
    // Shown once.
    assert!(bob.take_refused_posts().unwrap().is_empty());
}

/// Issue 9, attack 3: a host that gives c another Server Key signs c's head with it; when b
/// receives c's cosignature of that note, it is not dropped with a 400: b keeps it with its
/// own pinned head as an alarm, served by `witnesses`, and bob's `rdv verify` fails on it.
#[actix_rt::test]
async fn a_note_under_another_host_key_is_kept_and_served() {
    let fed = Federation::in_process("fed-other-key", &NAMES).start();
    let (_alice, mut bob, _carol, topic) = topic_on_a(&fed).await;
    let a_key = server_key(&fed.server("a.example").data_dir);
    let c_key = server_key(&fed.server("c.example").data_dir);
    let w = witnesses(&fed, "b.example", &bob, &topic).await;
    let held = SignedCheckpoint::parse(w.mirror.unwrap().as_bytes()).unwrap();
    let other_key = ServerKey::generate();
    let c = held.unverified_checkpoint().clone();
    let per_peer = SignedCheckpoint::sign(&c, &other_key, "a.example").unwrap();
    let note = cosigned_by_c(&per_peer, &c_key).to_note();
    assert_eq!(
        cosignature_to_b(&fed, &topic, &note).await,
        (200, String::new())
    );

    let w = witnesses(&fed, "b.example", &bob, &topic).await;
    let alarm = MirrorEvidence::from_wire(&w.evidence.expect("b keeps the alarm")).unwrap();
    assert!(alarm.reason.contains("pinned key"), "{}", alarm.reason);
    let pinned = SignedCheckpoint::parse(alarm.a.as_bytes()).unwrap();
    pinned.verify(a_key.public(), "a.example").unwrap();
    let foreign = SignedCheckpoint::parse(alarm.b.as_bytes()).unwrap();
    // The host's line verifies only under the other key; c's cosignature vouches for it.
    assert!(foreign.verify(a_key.public(), "a.example").is_err());
    foreign.verify(other_key.public(), "a.example").unwrap();
    foreign.cosignature(c_key.public(), "c.example").unwrap();
    let report = bob.verify(&topic).await.unwrap();
    assert!(!report.ok(), "{report:?}");
    assert!(
        report
            .witnesses
            .problems
            .iter()
            .any(|p| p.contains("pinned key")),
        "{report:?}"
    );
    // The mirror still follows a under the pinned key.
    bob.read(&topic).await.unwrap();
}

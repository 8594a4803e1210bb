//! Cross-server topics (`federation-api.md` §9) between three in-process homeservers that
//! federate over real mutual TLS with certificates from a test CA: a topic hosted on a.example
//! with members on b.example and c.example.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::raw;
use rendezvous_testkit::transaction::{self, server_key};

const NAMES: [&str; 3] = ["a.example", "b.example", "c.example"];

/// Three federating servers on fixed loopback ports, so that they can be stopped and started.
fn federation(test: &str) -> Federation {
    Federation::in_process(test, &NAMES).start()
}

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

/// Reads `topic` as `client` until `want` texts have been read in all (across reads), or
/// panics after 30 s. Returns every text read, in order.
async fn read_until(client: &mut Client, topic: &TopicId, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    loop {
        match client.read(topic).await {
            Ok(report) => got.extend(raw::texts(&report)),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
            }
            Err(e) => panic!("read: {e}"),
        }
        if got.len() >= want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {got:?} read of {want} messages"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn a_topic_hosted_on_a_reaches_members_on_b_and_c() {
    let mut fed = federation("fed-topics");
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let mut dave = fed.register("b.example", "dave").await;
    let mut carol = fed.register("c.example", "carol").await;

    // Alice (a) creates a topic with Bob and Dave (b) as writers and Carol (c) as a reader:
    // a fetches their identities and topic keys through federation.
    let topic = alice
        .create_topic(
            &[
                (id("bob", "b.example"), Role::Writer),
                (id("dave", "b.example"), Role::Writer),
                (id("carol", "c.example"), Role::Reader),
            ],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"hello from a").await.unwrap();

    // Every member reads it from their own server's mirror.
    for reader in [&mut bob, &mut dave, &mut carol] {
        assert_eq!(read_until(reader, &topic, 1).await, vec!["hello from a"]);
    }

    // Bob posts through b, which submits to a; the entry comes back before b answers.
    let index = bob.send(&topic, b"hello from b").await.unwrap();
    assert_eq!(index, 2);
    assert_eq!(
        read_until(&mut alice, &topic, 2).await,
        vec!["hello from a", "hello from b"]
    );
    assert_eq!(
        read_until(&mut carol, &topic, 1).await,
        vec!["hello from b"]
    );

    // Carol is a reader: her client refuses, and a modified client is refused by c's check
    // against its mirror (a would refuse too, with the same state machine).
    assert!(carol.send(&topic, b"may I?").await.is_err());
    let c = fed.server("c.example");
    let body = raw::message(c, &carol, &topic, b"may I?").await;
    let (http, token) = raw::http(c, &carol);
    let (status, code) = raw::post(&http, Some(&token), &raw::messages_path(&topic), body).await;
    assert_eq!(
        (status, code.as_deref()),
        (409, Some("not_allowed_to_post"))
    );

    // Removing Dave rekeys for the rest; b learns of it, Dave is locked out there.
    alice
        .remove_members(&topic, &[id("dave", "b.example")])
        .await
        .unwrap();
    alice.send(&topic, b"after dave left").await.unwrap();
    assert_eq!(
        read_until(&mut bob, &topic, 2).await,
        vec!["hello from b", "after dave left"]
    );
    assert_eq!(
        read_until(&mut carol, &topic, 1).await,
        vec!["after dave left"]
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match dave.read(&topic).await {
            Err(e) if e.code() == Some(rendezvous_protocol::api::ErrorCode::Forbidden) => break,
            other => {
                assert!(Instant::now() < deadline, "dave still reads: {other:?}");
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // `rdv verify` on b and c: one log, cosigned by the mirrors.
    for member in [&mut bob, &mut carol, &mut alice] {
        let report = member.verify(&topic).await.unwrap();
        assert!(report.ok(), "{report:?}");
        assert!(report.witnesses.problems.is_empty());
    }

    // a serves its head with the mirrors' cosignatures of it (once they have cosigned it).
    let a = fed.server("a.example");
    let (http, token) = raw::http(a, &alice);
    let path = format!(
        "/v1/topics/{}/checkpoint",
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let head: rendezvous_protocol::api::CheckpointResponse = http
            .call(awc::http::Method::GET, &path, None, Some(&token))
            .await
            .unwrap();
        if head.checkpoint.contains("\u{2014} b.example ")
            && head.checkpoint.contains("\u{2014} c.example ")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "head never cosigned: {}",
            head.checkpoint
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }

    // b is down while alice writes; it catches up when it is back, nothing lost or doubled.
    fed.stop("b.example");
    for i in 0..5 {
        alice
            .send(&topic, format!("while b was down {i}").as_bytes())
            .await
            .unwrap();
    }
    // The operator of a sees the entries waiting for b.
    let status = fed.server("a.example").admin_status().await;
    let to_b = status["federation"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["server"] == "b.example")
        .cloned()
        .unwrap();
    assert!(
        to_b["queued"].as_u64().unwrap() > 0 || to_b["failed_attempts"].as_u64().unwrap() > 0,
        "{status}"
    );
    fed.up("b.example");
    let got = read_until(&mut bob, &topic, 5).await;
    assert_eq!(
        got,
        (0..5)
            .map(|i| format!("while b was down {i}"))
            .collect::<Vec<_>>()
    );

    // a is down: bob's post is queued at b (202), b still serves what it has, and the post lands
    // when a is back.
    fed.stop("a.example");
    match bob.send(&topic, b"queued while a was down").await {
        Err(ClientError::Queued { host, .. }) => assert_eq!(host, "a.example"),
        other => panic!("expected the post to be queued: {other:?}"),
    }
    let size_on_b = bob.read(&topic).await.unwrap().size;
    assert!(size_on_b >= 9);
    fed.up("a.example");
    assert_eq!(
        read_until(&mut carol, &topic, 6)
            .await
            .last()
            .map(String::as_str),
        Some("queued while a was down")
    );
    assert_eq!(
        read_until(&mut alice, &topic, 7)
            .await
            .last()
            .map(String::as_str),
        Some("queued while a was down")
    );
    // The whole log, with the post that waited in b's queue, verifies on a.
    let all = alice.verify(&topic).await.unwrap();
    assert!(all.ok(), "{all:?}");
}

/// a's log of `topic` as alice reads it: the entries, replayed, and the tag log they make.
async fn log_on_a(
    fed: &Federation,
    alice: &Client,
    topic: &TopicId,
) -> (
    Vec<serde_bytes::ByteBuf>,
    rendezvous_protocol::topic::Replayer,
    rendezvous_protocol::tlog::Frontier,
) {
    use rendezvous_protocol::topic::LogEntry;
    let (http, token) = raw::http(fed.server("a.example"), alice);
    let path = format!(
        "/v1/topics/{}/entries?from=0&limit=500",
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    let entries: rendezvous_protocol::api::EntriesResponse = http
        .call(awc::http::Method::GET, &path, None, Some(&token))
        .await
        .unwrap();
    let mut replayer = rendezvous_protocol::topic::Replayer::new();
    let mut frontier = rendezvous_protocol::tlog::Frontier::new();
    let wires = entries
        .entries
        .iter()
        .map(|e| {
            let (_, leaf) = replayer
                .push(&LogEntry::from_wire(&e.entry).unwrap())
                .unwrap();
            frontier.append(&leaf).unwrap();
            serde_bytes::ByteBuf::from(e.entry.to_vec())
        })
        .collect();
    (wires, replayer, frontier)
}

/// Waits until `member`'s server answers its checkpoint with `split_view`.
async fn until_split_view(member: &mut Client, topic: &TopicId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match member.read(topic).await {
            Err(e) if e.code() == Some(rendezvous_protocol::api::ErrorCode::SplitView) => return,
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

/// A hosting server that shows c one log and b another (here: the test, holding a's keys,
/// sends c an entry a never logged, then a logs another at that index) is caught by c's mirror,
/// by b through c's cosignature, and by `rdv verify` on both; a's own log still verifies.
#[actix_rt::test]
async fn a_split_view_is_caught_by_the_mirrors_and_by_verify() {
    use rendezvous_protocol::federation::topic_events::EntryBatch;
    use rendezvous_protocol::federation::{Event, EventKind, Transaction};
    use rendezvous_protocol::tlog::{Checkpoint, LeafIndex, SignedCheckpoint};
    use rendezvous_protocol::topic::{LogEntry, log_origin};

    let fed = federation("fed-split");
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
    assert_eq!(read_until(&mut bob, &topic, 1).await, vec!["shared by all"]);
    assert_eq!(
        read_until(&mut carol, &topic, 1).await,
        vec!["shared by all"]
    );

    // The log as a has it, replayed for its leaves.
    let a = fed.server("a.example");
    let (_, mut replayer, mut frontier) = log_on_a(&fed, &alice, &topic).await;
    let n = frontier.size().0;

    // A message by alice that a never logs, at index n, with a checkpoint a's key signs.
    let forged_msg = raw::message(a, &alice, &topic, b"only c sees this").await;
    let forged_entry = LogEntry(rendezvous_protocol::topic::ENTRY_MESSAGE, forged_msg);
    let (_, leaf) = replayer.push(&forged_entry).unwrap();
    frontier.append(&leaf).unwrap();
    let a_key = server_key(&a.data_dir);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let checkpoint =
        Checkpoint::new(&log_origin(&topic), frontier.size(), frontier.root(), now).unwrap();
    let note = SignedCheckpoint::sign(&checkpoint, &a_key, "a.example")
        .unwrap()
        .to_note();
    let payload = EntryBatch {
        first: LeafIndex(n),
        entries: vec![serde_bytes::ByteBuf::from(forged_entry.to_wire())],
        checkpoint: note,
    }
    .to_wire();
    let (a_name, c_name) = ("a.example".parse().unwrap(), "c.example".parse().unwrap());
    let event = Event::sign(
        &a_name,
        &c_name,
        EventKind::TopicEntry,
        Some(&topic),
        payload,
        now,
        &a_key,
    );
    let txn = Transaction::new(
        "forged-1".into(),
        a_name.clone(),
        c_name.clone(),
        vec![event.signed_bytes().clone()],
    );
    let as_a = fed.peer_as("c.example", "a.example");
    let (status, body) = transaction::send(&as_a, "c.example", &txn).await.unwrap();
    assert_eq!(status, 200);
    let results = rendezvous_protocol::federation::TransactionResponse::from_wire(&body)
        .unwrap()
        .results;
    assert_eq!(
        results[0].status, 200,
        "c takes the forged entry: {results:?}"
    );
    assert_eq!(
        read_until(&mut carol, &topic, 1).await,
        vec!["only c sees this"]
    );

    // a logs another entry at index n; b gets it; c finds it contradicts what a signed before.
    alice.send(&topic, b"what b sees").await.unwrap();
    until_split_view(&mut carol, &topic).await;
    // b learns of c's view through c's cosignature of the forged head.
    until_split_view(&mut bob, &topic).await;
    // c's operator sees the stopped mirror and why.
    let status = fed.server("c.example").admin_status().await;
    let stopped = status["federation"]["stopped_mirrors"].as_array().unwrap();
    assert_eq!(stopped.len(), 1, "{status}");
    assert_eq!(stopped[0]["topic"], topic.as_str());
    assert_eq!(stopped[0]["host"], "a.example");

    for member in [&mut bob, &mut carol] {
        let report = member.verify(&topic).await.unwrap();
        assert!(!report.ok());
        assert!(
            report
                .witnesses
                .problems
                .iter()
                .any(|p| p.contains("evidence")),
            "{:?}",
            report.witnesses.problems
        );
    }
    // The evidence proves it to anyone: two checkpoints of one size, both signed by a.
    let c = fed.server("c.example");
    let (http, token) = raw::http(c, &carol);
    let path = format!(
        "/v1/topics/{}/witnesses",
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    let w: rendezvous_protocol::api::WitnessesResponse = http
        .call(awc::http::Method::GET, &path, None, Some(&token))
        .await
        .unwrap();
    let evidence = rendezvous_protocol::federation::topic_events::MirrorEvidence::from_wire(
        &w.evidence.expect("c keeps evidence"),
    )
    .unwrap();
    let a_public = a_key.public().clone();
    let held = SignedCheckpoint::parse(evidence.a.as_bytes()).unwrap();
    let other = SignedCheckpoint::parse(evidence.b.as_bytes()).unwrap();
    let (held, other) = (
        held.verify(&a_public, "a.example").unwrap(),
        other.verify(&a_public, "a.example").unwrap(),
    );
    assert_eq!(held.size, other.size);
    assert_ne!(held.root, other.root);
    let report = alice.verify(&topic).await.unwrap();
    assert!(report.ok(), "a's own log is whole: {report:?}");
}

/// Sends `events` (kind, topic, payload) from `from` to `to` as `from`, signed with `key`, over
/// mutual TLS with `from`'s certificate; returns each event's `(status, code)`.
async fn send_events(
    fed: &Federation,
    from: &str,
    to: &str,
    key: &rendezvous_protocol::crypto::ServerKey,
    events: Vec<(
        rendezvous_protocol::federation::EventKind,
        &TopicId,
        Vec<u8>,
    )>,
) -> Vec<(u16, String)> {
    use rendezvous_protocol::federation::{Event, Transaction, TransactionResponse};
    let (origin, destination) = (from.parse().unwrap(), to.parse().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = events
        .into_iter()
        .map(|(kind, topic, payload)| {
            Event::sign(&origin, &destination, kind, Some(topic), payload, now, key)
                .signed_bytes()
                .clone()
        })
        .collect();
    let txn = Transaction::new(transaction::fresh_id(), origin, destination, signed);
    let client = fed.peer_as(to, from);
    let (status, body) = transaction::send(&client, to, &txn).await.unwrap();
    assert_eq!(status, 200);
    TransactionResponse::from_wire(&body)
        .unwrap()
        .results
        .into_iter()
        .map(|r| (r.status, r.code))
        .collect()
}

/// A mirror checks each entry's signature with its own root at the entry's `seen`
/// (`protocol.md` §6.4): an entry batch, signed by the host, carrying a message signed over
/// another branch's root is refused, and the mirror keeps its log.
#[actix_rt::test]
async fn a_mirror_refuses_a_message_signed_over_another_root() {
    use rendezvous_protocol::topic::{ENTRY_MESSAGE, LogEntry};

    let fed = federation("fed-forkbind");
    let mut alice = fed.register("a.example", "alice").await;
    let mut carol = fed.register("c.example", "carol").await;
    let topic = alice
        .create_topic(&[(id("carol", "c.example"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"one log").await.unwrap();
    assert_eq!(read_until(&mut carol, &topic, 1).await, vec!["one log"]);

    let a = fed.server("a.example");
    let (_, _, mut frontier) = log_on_a(&fed, &alice, &topic).await;
    let n = frontier.size().0;
    let mut other = frontier.root();
    other.0[5] ^= 1;
    let forked = raw::message_over(a, &alice, &topic, b"from another branch", other).await;
    let entry = LogEntry(ENTRY_MESSAGE, forked);
    // The leaf as the protocol's one rule computes it (`protocol.md` §8.1), so that the
    // checkpoint a signs does hold the entry and only its signature is wrong.
    let results = a_appends_for_c(&fed, &topic, &mut frontier, &entry).await;
    assert_eq!(results, vec![(400, "bad_signature".to_string())]);
    // c kept its log as it was: the entry was not mirrored.
    let c = fed.server("c.example");
    assert_eq!(raw::state(c, &carol, &topic).await.size().get(), n);
}

/// a, lying: appends `entry` to its log `frontier` (its leaf as `topic::leaf_data` computes it),
/// signs the checkpoint with a's real key and sends c the `topic.entry` batch. c's answers.
async fn a_appends_for_c(
    fed: &Federation,
    topic: &TopicId,
    frontier: &mut rendezvous_protocol::tlog::Frontier,
    entry: &rendezvous_protocol::topic::LogEntry,
) -> Vec<(u16, String)> {
    use rendezvous_protocol::federation::EventKind;
    use rendezvous_protocol::federation::topic_events::EntryBatch;
    use rendezvous_protocol::tlog::{Checkpoint, LeafIndex, SignedCheckpoint};
    use rendezvous_protocol::topic::{leaf_data, log_origin};
    let first = LeafIndex(frontier.size().0);
    frontier.append(&leaf_data(entry).unwrap()).unwrap();
    let a_key = server_key(&fed.server("a.example").data_dir);
    let now = rendezvous_protocol::clock::unix_now();
    let checkpoint =
        Checkpoint::new(&log_origin(topic), frontier.size(), frontier.root(), now).unwrap();
    let note = SignedCheckpoint::sign(&checkpoint, &a_key, "a.example")
        .unwrap()
        .to_note();
    let payload = EntryBatch {
        first,
        entries: vec![serde_bytes::ByteBuf::from(entry.to_wire())],
        checkpoint: note,
    }
    .to_wire();
    send_events(
        fed,
        "a.example",
        "c.example",
        &a_key,
        vec![(EventKind::TopicEntry, topic, payload)],
    )
    .await
}

/// Every topic event a peer could forge or misdirect is refused with its code, and changes
/// nothing (`federation-api.md` §9.2–§9.4).
#[actix_rt::test]
async fn forged_and_misdirected_topic_events_are_refused() {
    use rendezvous_protocol::federation::EventKind;
    use rendezvous_protocol::federation::topic_events::{EntryBatch, Submit, cosignature_to_wire};
    use rendezvous_protocol::tlog::{Checkpoint, CheckpointNote, LeafIndex, SignedCheckpoint};
    use rendezvous_protocol::topic::{LogEntry, log_origin};

    let fed = federation("fed-forged");
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let mut carol = fed.register("c.example", "carol").await;
    // A topic of a and b only: c takes no part in it.
    let topic = alice
        .create_topic(&[(id("bob", "b.example"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"for a and b").await.unwrap();
    assert_eq!(read_until(&mut bob, &topic, 1).await, vec!["for a and b"]);

    let keys = |name: &str| server_key(&fed.server(name).data_dir);
    let (a_key, b_key, c_key) = (keys("a.example"), keys("b.example"), keys("c.example"));
    // a's log and a checkpoint of it, as a would sign it.
    let (wires, _, frontier) = log_on_a(&fed, &alice, &topic).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |key: &rendezvous_protocol::crypto::ServerKey, size, root| {
        let c = Checkpoint::new(&log_origin(&topic), size, root, now).unwrap();
        SignedCheckpoint::sign(&c, key, "a.example")
            .unwrap()
            .to_note()
    };
    let batch = |checkpoint: CheckpointNote| {
        EntryBatch {
            first: LeafIndex(0),
            entries: wires.clone(),
            checkpoint,
        }
        .to_wire()
    };
    let good = sign(&a_key, frontier.size(), frontier.root());

    // To c, which has no member in the topic: a's genuine entries are refused, kept nowhere.
    let got = send_events(
        &fed,
        "a.example",
        "c.example",
        &a_key,
        vec![(EventKind::TopicEntry, &topic, batch(good.clone()))],
    )
    .await;
    assert_eq!(got, vec![(403, "not_participant".to_owned())]);
    let refused = carol.read(&topic).await.unwrap_err();
    assert!(
        matches!(
            refused.code(),
            Some(
                rendezvous_protocol::api::ErrorCode::NotFound
                    | rendezvous_protocol::api::ErrorCode::Forbidden
            )
        ),
        "{refused}"
    );

    // To b: entries from a server that does not host the topic; checkpoints signed by another
    // key, of another size, or of another root.
    let mut other_root = frontier.clone();
    other_root.append(b"not in the log").unwrap();
    let got = send_events(
        &fed,
        "c.example",
        "b.example",
        &c_key,
        vec![(EventKind::TopicEntry, &topic, batch(good.clone()))],
    )
    .await;
    assert_eq!(got, vec![(403, "not_hosting".to_owned())]);
    // A checkpoint under an unknown key, signed after b last fetched a's key document, is
    // "try later" while b may not fetch the document again yet (`federation-api.md` §2: one
    // forced refresh per `MIN_REFRESH_SECS`): a sender retries a 503, and so does this test.
    let mut got = Vec::new();
    for _ in 0..3 {
        got = send_events(
            &fed,
            "a.example",
            "b.example",
            &a_key,
            vec![
                (
                    EventKind::TopicEntry,
                    &topic,
                    batch(sign(&c_key, frontier.size(), frontier.root())),
                ),
                (
                    EventKind::TopicEntry,
                    &topic,
                    batch(sign(&a_key, other_root.size(), other_root.root())),
                ),
                // The genuine batch again: b has it all already.
                (EventKind::TopicEntry, &topic, batch(good.clone())),
            ],
        )
        .await;
        if got.first() != Some(&(503, "unavailable".to_owned())) {
            break;
        }
        let wait = rendezvous::federation::keys::MIN_REFRESH_SECS + 1;
        actix_rt::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    assert_eq!(
        got,
        vec![
            (400, "bad_checkpoint".to_owned()),
            (400, "bad_checkpoint".to_owned()),
            (200, String::new()),
        ]
    );
    // b's mirror is unharmed.
    alice.send(&topic, b"still fine").await.unwrap();
    assert_eq!(read_until(&mut bob, &topic, 1).await, vec!["still fine"]);

    // A submit naming a user of another server than the sender's.
    let msg = raw::message(fed.server("b.example"), &bob, &topic, b"as someone else").await;
    let submit = Submit {
        submitter: id("bob", "b.example"),
        entry: serde_bytes::ByteBuf::from(
            LogEntry(rendezvous_protocol::topic::ENTRY_MESSAGE, msg).to_wire(),
        ),
    }
    .to_wire();
    let got = send_events(
        &fed,
        "c.example",
        "a.example",
        &c_key,
        vec![(EventKind::TopicSubmit, &topic, submit)],
    )
    .await;
    assert_eq!(got, vec![(403, "wrong_origin".to_owned())]);

    // A cosignature from a server with no member in the topic.
    let mut cosigned = SignedCheckpoint::parse(good.as_bytes()).unwrap();
    let cosig = rendezvous_protocol::tlog::Cosignature::sign(
        &c_key,
        "c.example",
        cosigned.unverified_checkpoint(),
        now,
    )
    .unwrap();
    cosigned.add_cosignature(&cosig).unwrap();
    let got = send_events(
        &fed,
        "c.example",
        "a.example",
        &c_key,
        vec![(
            EventKind::TopicCosignature,
            &topic,
            cosignature_to_wire(&cosigned.to_note()),
        )],
    )
    .await;
    assert_eq!(got, vec![(403, "not_participant".to_owned())]);
    // b's own cosignature, but of a checkpoint of a log a never had.
    let mut fake =
        SignedCheckpoint::parse(sign(&a_key, other_root.size(), other_root.root()).as_bytes())
            .unwrap();
    let cosig = rendezvous_protocol::tlog::Cosignature::sign(
        &b_key,
        "b.example",
        fake.unverified_checkpoint(),
        now,
    )
    .unwrap();
    fake.add_cosignature(&cosig).unwrap();
    let got = send_events(
        &fed,
        "b.example",
        "a.example",
        &b_key,
        vec![(
            EventKind::TopicCosignature,
            &topic,
            cosignature_to_wire(&fake.to_note()),
        )],
    )
    .await;
    assert_eq!(got, vec![(400, "bad_checkpoint".to_owned())]);

    // Backfill is for participants only.
    let client = fed.peer_as("a.example", "c.example");
    let resp = client
        .get(format!(
            "https://a.example:8448/_rdv/federation/v1/topics/{}/entries?from=0",
            rendezvous_protocol::api::encode_segment(topic.as_str())
        ))
        .insert_header(("X-Rdv-Origin", "c.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // Last, a checkpoint signed with a's key for a size b holds but another root: that is a's
    // key signing two logs, so b keeps the evidence and stops following the topic.
    let got = send_events(
        &fed,
        "a.example",
        "b.example",
        &a_key,
        vec![(
            EventKind::TopicEntry,
            &topic,
            batch(sign(&a_key, frontier.size(), other_root.root())),
        )],
    )
    .await;
    assert_eq!(got, vec![(409, "split_view".to_owned())]);
    until_split_view(&mut bob, &topic).await;
}

/// A member of a server that took no part so far is added to a topic with history: the server
/// gets the entries from the addition on and backfills everything before from the hosting
/// server (`federation-api.md` §5, §9.2); with shared history the new member reads it all.
#[actix_rt::test]
async fn a_server_joining_later_backfills_the_log() {
    let fed = federation("fed-backfill");
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let mut carol = fed.register("c.example", "carol").await;
    let topic = alice
        .create_topic(&[(id("bob", "b.example"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    for i in 0..30 {
        alice
            .send(&topic, format!("before carol {i}").as_bytes())
            .await
            .unwrap();
    }
    bob.send(&topic, b"bob before carol").await.unwrap();
    alice
        .add_members(&topic, &[(id("carol", "c.example"), Role::Writer)])
        .await
        .unwrap();
    alice.send(&topic, b"welcome carol").await.unwrap();
    let mut want: Vec<String> = (0..30).map(|i| format!("before carol {i}")).collect();
    want.push("bob before carol".into());
    want.push("welcome carol".into());
    assert_eq!(read_until(&mut carol, &topic, want.len()).await, want);
    let report = carol.verify(&topic).await.unwrap();
    assert!(report.ok(), "{report:?}");
    carol.send(&topic, b"thanks").await.unwrap();
    let on_b = read_until(&mut bob, &topic, want.len() + 1).await;
    assert_eq!(on_b[on_b.len() - 2..], ["welcome carol", "thanks"]);
}

/// A host that signs a log whose create names another Server Key than the one its checkpoints
/// are under (`tag-log.md` §7.5) is not mirrored: c refuses the first batch `wrong_host_key` and
/// holds nothing. The create is a genuine one of alice's, made while her device held another key
/// for a (a lying host in front of a recorded it; a itself refused it); a's real key signs the
/// checkpoint over it, as a lying a would.
#[actix_rt::test]
async fn a_log_whose_create_names_another_host_key_is_not_mirrored() {
    use rendezvous_protocol::tlog::Frontier;
    use rendezvous_protocol::topic::{ENTRY_CHANGE, LogEntry, ParsedEntry};
    use rendezvous_testkit::lying::{LyingHost, pin_server_key, point_at};

    let fed = federation("fed-create-key");
    let _ = fed.register("a.example", "alice").await;
    let mut carol = fed.register("c.example", "carol").await;
    let a = fed.server("a.example");
    let proxy = LyingHost::start(&a.data_dir, "a.example", &a.url, &a.trust());
    let home = fed.dir.join("devices/alice@a.example");
    point_at(&home, &proxy.url);
    let other = rendezvous_protocol::crypto::ServerKey::generate();
    pin_server_key(&home, "a.example", other.public());
    // The lying host also cosigns carol's directory checkpoint as a.example under the key the
    // device holds, so that alice's lookup of carol (`directory.md` §6.1) passes.
    let cosigner = rendezvous_protocol::crypto::ServerKey::from_seed(&other.seed());
    proxy.after(move |req, answer| {
        use rendezvous_protocol::api::{Body, IdentityResponse};
        use rendezvous_protocol::tlog::{Cosignature, SignedCheckpoint};
        if !req.path.ends_with("/identity") || answer.status != 200 {
            return;
        }
        let mut r = IdentityResponse::from_cbor(&answer.body).unwrap();
        let mut note = SignedCheckpoint::parse(r.proof.checkpoint.as_bytes()).unwrap();
        let c = note.unverified_checkpoint().clone();
        let co = Cosignature::sign(&cosigner, "a.example", &c, c.time).unwrap();
        note.add_cosignature(&co).unwrap();
        r.proof.checkpoint = note.to_note().into_string();
        answer.body = r.to_cbor();
    });
    let mut alice = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    let refused = alice
        .create_topic(&[(id("carol", "c.example"), Role::Writer)], History::Shared)
        .await
        .unwrap_err();
    assert_eq!(refused.error_code(), "wrong_host_key", "{refused}");
    let create = proxy
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/v1/topics")
        .expect("alice posted her create")
        .body;
    let entry = LogEntry(ENTRY_CHANGE, create);
    let ParsedEntry::Change(signed) = entry.parse().unwrap() else {
        panic!("a create is a change");
    };
    let topic = signed.decode_unverified().unwrap().topic;

    let results = a_appends_for_c(&fed, &topic, &mut Frontier::new(), &entry).await;
    assert_eq!(results, vec![(409, "wrong_host_key".to_string())]);
    let held = carol.read(&topic).await;
    assert!(held.is_err(), "c mirrors nothing of it: {held:?}");
}

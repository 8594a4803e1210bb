//! Per-peer limits of federation (`federation-api.md` §1.1), tried as a hostile peer would
//! against real homeservers federating over mutual TLS with a test CA: a `send` without its
//! origin in the head reads no body, floods get `429` with `Retry-After` while honest peers go
//! on, full queues refuse submits and keep one cosignature per topic, bookkeeping tables are
//! purged (and events too old to be remembered refused), and a host cannot make us mirror
//! unbounded topics.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rendezvous::limits::Rate;
use rendezvous::store::Store;
use rendezvous_client::{Client, ClientError, EntryContent};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::{Event, EventKind};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::topic::{History, MemberSpec, Role};
use rendezvous_protocol::wire::Verified;
use rendezvous_testkit::ca::client_config;
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::transaction::{fresh_id, results, send_as, server_key, transaction};

fn name(s: &str) -> ServerName {
    s.parse().unwrap()
}

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

fn json_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(body)));
    v["code"].as_str().unwrap().to_owned()
}

/// An event from `from` to b.example with a made-up payload (b's topic logic refuses it
/// `malformed` once every federation check passed), signed at `time`.
fn event_at(from: &str, payload: &[u8], key: &ServerKey, time: u64) -> Verified<Event> {
    Event::sign(
        &name(from),
        &name("b.example"),
        EventKind::TopicEntry,
        Some(&TopicId::random(&name("a.example"))),
        payload.to_vec(),
        time,
        key,
    )
}

fn event(from: &str, payload: &[u8], key: &ServerKey) -> Verified<Event> {
    event_at(from, payload, key, rendezvous::state::now())
}

/// Where and as whom a raw connection to b's federation listener goes.
struct Peer {
    roots: std::path::PathBuf,
    cert: (std::path::PathBuf, std::path::PathBuf),
    addr: std::net::SocketAddr,
}

impl Peer {
    fn to_b(fed: &Federation, as_name: &str) -> Peer {
        let cert = match as_name {
            "a.example" | "b.example" => fed.node(as_name).certificate.clone(),
            other => fed.ca.issue(other),
        };
        Peer {
            roots: fed.ca.ca_file(),
            cert,
            addr: fed.node("b.example").federation,
        }
    }

    /// Sends `head` (a request head announcing a body), then nothing: the answer, and how
    /// long it took.
    fn head_only(&self, head: &str) -> ((u16, String), Duration) {
        let tls = client_config(&self.roots, Some(&self.cert));
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sni = rustls_pki_types::ServerName::try_from("b.example").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(tls), sni).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(head.as_bytes()).unwrap();
        s.flush().unwrap();
        let started = Instant::now();
        let got = rendezvous_testkit::http1::answer(&mut s);
        (got, started.elapsed())
    }
}

#[actix_rt::test]
async fn send_without_origin_header_reads_no_body() {
    let fed = Federation::in_process("fedlim-head", &["a.example", "b.example"])
        .adjust(|n, c| {
            if n == "b.example" {
                c.federation.as_mut().unwrap().deny = vec!["d.example".into()];
            }
        })
        .start();
    let head = |origin: Option<&str>| {
        let origin = origin.map_or(String::new(), |o| format!("x-rdv-origin: {o}\r\n"));
        format!(
            "PUT /_rdv/federation/v1/send/t1 HTTP/1.1\r\nhost: b.example\r\ncontent-type: application/cbor\r\n{origin}content-length: 16000000\r\n\r\n"
        )
    };
    let cases = [
        // No origin in the head.
        ("a.example", None, 401, "unauthorized"),
        // An origin the certificate is not valid for.
        ("c.example", Some("a.example"), 401, "unauthorized"),
        // A denied peer with a valid certificate for its name.
        ("d.example", Some("d.example"), 403, "forbidden"),
    ];
    for (as_name, origin, status, code) in cases {
        let peer = Peer::to_b(&fed, as_name);
        let head = head(origin);
        let ((got, text), took) = tokio::task::spawn_blocking(move || peer.head_only(&head))
            .await
            .unwrap();
        // Answered at once, with 16 MB announced and none sent: the body was never waited for.
        assert_eq!(got, status, "{as_name} {origin:?}: {text}");
        assert!(text.contains(&format!("\"code\":\"{code}\"")), "{text}");
        assert!(took < Duration::from_secs(2), "{as_name}: {took:?}");
    }
}

fn limits_of_b(
    change: impl Fn(&mut rendezvous::limits::PeerRateConfig) + 'static,
) -> impl Fn(&str, &mut rendezvous_testkit::config::ServerConfig) + 'static {
    move |n, c| {
        if n == "b.example" {
            change(&mut c.federation.as_mut().unwrap().limits);
        }
    }
}

#[actix_rt::test]
async fn peer_transaction_flood_gets_429_and_honest_peers_go_on() {
    let fed = Federation::in_process("fedlim-flood", &["a.example", "b.example", "c.example"])
        .adjust(limits_of_b(|l| {
            l.txn = Rate::minute(60, 5);
            l.txn_kib = Rate::minute(16384, 16384);
        }))
        .start();
    let c_key = server_key(&fed.node("c.example").data_dir);
    let a_key = server_key(&fed.node("a.example").data_dir);
    let c = fed.peer_as("b.example", "c.example");
    let a = fed.peer_as("b.example", "a.example");
    let from = |who: &str, key: &ServerKey, payload: &[u8]| {
        transaction(&fresh_id(), who, "b.example", &[&event(who, payload, key)])
    };
    for i in 0..12 {
        let t = from("c.example", &c_key, b"flood");
        let (status, retry, body) = send_as(&c, "b.example", Some("c.example"), &t)
            .await
            .unwrap();
        if i < 5 {
            assert_eq!(status, 200, "transaction {i}");
        } else {
            assert_eq!(
                (status, json_code(&body).as_str()),
                (429, "rate_limited"),
                "{i}"
            );
            let wait = retry.expect("Retry-After");
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
        }
    }
    // The honest peer has cells of its own.
    let (status, _, body) = send_as(
        &a,
        "b.example",
        Some("a.example"),
        &from("a.example", &a_key, b"hi"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(results(&body)[0].2, "malformed");
    // After its Retry-After the flooder passes again.
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = send_as(
        &c,
        "b.example",
        Some("c.example"),
        &from("c.example", &c_key, b"later"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);

    // Bytes: two 9 MiB transactions in a minute are one too many for a 16 MiB burst.
    let big: Vec<Verified<Event>> = (0..3u8)
        .map(|i| event("a.example", &vec![i; 3 << 20], &a_key))
        .collect();
    let big: Vec<&Verified<Event>> = big.iter().collect();
    let t = transaction(&fresh_id(), "a.example", "b.example", &big);
    let (status, _, _) = send_as(&a, "b.example", Some("a.example"), &t)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let t = transaction(&fresh_id(), "a.example", "b.example", &big);
    let (status, retry, body) = send_as(&a, "b.example", Some("a.example"), &t)
        .await
        .unwrap();
    assert_eq!((status, json_code(&body).as_str()), (429, "rate_limited"));
    assert!(retry.is_some_and(|s| s >= 1));
}

/// Reads `topic` as `client` until `want` message texts arrived in all, or panics after 30 s.
async fn read_until(client: &mut Client, topic: &TopicId, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    loop {
        if let Ok(report) = client.read(topic).await {
            got += report
                .entries
                .iter()
                .filter(|e| matches!(e.content, EntryContent::Message { .. }))
                .count();
        }
        if got >= want {
            return;
        }
        assert!(Instant::now() < deadline, "only {got} of {want} messages");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

fn open_store(fed: &Federation, server: &str) -> Store {
    rendezvous_testkit::server::open_store_when_free(&fed.node(server).data_dir.join("db"))
}

#[actix_rt::test]
async fn full_queue_refuses_submits_and_coalesces_cosignatures() {
    let mut fed = Federation::in_process("fedlim-queue", &["a.example", "b.example", "c.example"])
        .adjust(limits_of_b(|l| l.queue_events = 3))
        .start();
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let _carol = fed.register("c.example", "carol").await;
    let topic = alice
        .create_topic(
            &[
                (id("bob", "b.example"), Role::Writer),
                (id("carol", "c.example"), Role::Reader),
            ],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"m0").await.unwrap();
    read_until(&mut bob, &topic, 1).await;
    // c is down: every head b mirrors is cosigned for c too, and queued.
    fed.stop("c.example");
    for i in 1..=5 {
        alice
            .send(&topic, format!("m{i}").as_bytes())
            .await
            .unwrap();
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    }
    read_until(&mut bob, &topic, 5).await;
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    // The host is down: bob's posts are queued for it, until b's queue for a is full.
    fed.stop("a.example");
    let mut refused = None;
    for i in 0..4 {
        match bob.send(&topic, format!("q{i}").as_bytes()).await {
            Err(ClientError::Queued { .. }) => {}
            Err(e) => {
                refused = Some((i, e.code().map(|c| c.as_str().to_owned())));
                break;
            }
            Ok(index) => panic!("q{i} landed at {index} with its host down"),
        }
    }
    let (at, code) = refused.expect("a full queue refuses a submit");
    assert_eq!(code.as_deref(), Some("unavailable"), "refused at q{at}");
    fed.stop("b.example");
    let store = open_store(&fed, "b.example");
    // Five cosignatures for c: the first, in flight (its retries must carry it), and the
    // newest; three submits for a.
    assert_eq!(store.outbound_len(&name("c.example")).unwrap(), 2);
    assert_eq!(store.outbound_len(&name("a.example")).unwrap(), 3);
}

#[actix_rt::test]
async fn federation_tables_are_purged_and_old_events_refused() {
    let mut fed = Federation::in_process("fedlim-purge", &["a.example", "b.example"])
        .adjust(limits_of_b(|l| {
            l.txn_memory = 3;
            l.txn_retention_secs = 3600;
            l.applied_retention_secs = 7200;
        }))
        .start();
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let topic = alice
        .create_topic(&[(id("bob", "b.example"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"one").await.unwrap();
    read_until(&mut bob, &topic, 1).await;
    let a_key = server_key(&fed.node("a.example").data_dir);
    let a = fed.peer_as("b.example", "a.example");
    for _ in 0..6 {
        let t = transaction(
            &fresh_id(),
            "a.example",
            "b.example",
            &[&event("a.example", b"x", &a_key)],
        );
        let (status, _, _) = send_as(&a, "b.example", Some("a.example"), &t)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    drop(a);
    fed.stop("b.example");
    let (answers, applied) = open_store(&fed, "b.example")
        .federation_bookkeeping(&name("a.example"))
        .unwrap();
    assert_eq!(answers, 3, "txn_memory");
    assert!(
        applied >= 2,
        "the topic's entries from a were applied: {applied}"
    );

    // Two hours later b starts again: it purges at start.
    fed.clock.advance(7201);
    fed.up("b.example");
    let a = fed.peer_as("b.example", "a.example");
    // An event signed two hours ago is too old to be remembered: refused, whatever it says.
    let old = event_at("a.example", b"x", &a_key, rendezvous::state::now());
    let t = transaction(&fresh_id(), "a.example", "b.example", &[&old]);
    let (status, _, body) = send_as(&a, "b.example", Some("a.example"), &t)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(results(&body)[0].1, 400);
    assert_eq!(results(&body)[0].2, "invalid");
    drop(a);
    fed.stop("b.example");
    let (answers, applied) = open_store(&fed, "b.example")
        .federation_bookkeeping(&name("a.example"))
        .unwrap();
    assert_eq!((answers, applied), (1, 0), "purged but the last answer");
}

#[actix_rt::test]
async fn host_cannot_make_us_mirror_unbounded_topics() {
    let mut fed = Federation::in_process("fedlim-mirrors", &["a.example", "b.example"])
        .adjust(limits_of_b(|l| l.mirrored_topics_per_peer = 1))
        .start();
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let members = [(id("bob", "b.example"), Role::Writer)];
    let t1 = alice.create_topic(&members, History::Shared).await.unwrap();
    alice.send(&t1, b"one").await.unwrap();
    read_until(&mut bob, &t1, 1).await;
    let t2 = alice.create_topic(&members, History::Shared).await.unwrap();
    alice.send(&t2, b"two").await.unwrap();
    // b never mirrors the second topic...
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        assert!(
            bob.read(&t2).await.is_err(),
            "b mirrors a second topic of a"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    // ...because it refused it, not because it has not arrived: a's queue for b is empty.
    alice.send(&t1, b"still").await.unwrap();
    read_until(&mut bob, &t1, 1).await;
    fed.stop("a.example");
    let store = open_store(&fed, "a.example");
    assert_eq!(store.outbound_len(&name("b.example")).unwrap(), 0);
}

/// `count` member servers that exist nowhere: every peer's overrides send them to a port where
/// nothing listens.
fn fake_servers(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("fake{i}.example")).collect()
}

/// Reads `topic` as `client` until a change arrived, or panics after 30 s.
async fn read_until_change(client: &mut Client, topic: &TopicId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(report) = client.read(topic).await
            && report
                .entries
                .iter()
                .any(|e| matches!(e.content, EntryContent::Change { .. }))
        {
            return;
        }
        assert!(Instant::now() < deadline, "no change arrived");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A user of `server` with a fresh identity key and topic key, and its member spec.
fn made_up(user: &str, server: &str, role: Role) -> (rendezvous_testkit::topic::User, MemberSpec) {
    let mut u = rendezvous_testkit::topic::User::new(user);
    u.id = id(user, server);
    let spec = u.spec(role);
    (u, spec)
}

/// `bob`'s member spec from a topic key claimed for him (as alice, through a).
async fn claimed_spec(fed: &Federation, alice: &Client, bob: &UserId) -> MemberSpec {
    use rendezvous_protocol::api::{Body, ClaimTopicKeysRequest, ClaimTopicKeysResponse};
    use rendezvous_protocol::certs::Registration;
    use rendezvous_protocol::wire::Signed;
    let (http, token) = rendezvous_testkit::raw::http(fed.server("a.example"), alice);
    let request = ClaimTopicKeysRequest {
        users: vec![bob.clone()],
    };
    let answer: ClaimTopicKeysResponse = http
        .call(
            awc::http::Method::POST,
            "/v1/topic-keys/claim",
            Some(request.to_cbor()),
            Some(&token),
        )
        .await
        .unwrap();
    let key = answer.keys.into_iter().next().unwrap();
    let registration = Signed::<Registration>::from_signed_bytes(key.registration)
        .unwrap()
        .decode_unverified()
        .unwrap();
    MemberSpec {
        user: bob.clone(),
        identity_key: registration.identity_key,
        role: Role::Writer,
        topic_key_cert: Signed::from_signed_bytes(key.topic_key_cert).unwrap(),
    }
}

/// a, hostile: sends b the create of a topic it hosts (`members`, created by `creator`), as
/// one `topic.entry` under a checkpoint signed with a's real Server Key. b's result.
async fn a_creates_on_b(
    fed: &Federation,
    creator: &rendezvous_testkit::topic::User,
    members: Vec<MemberSpec>,
) -> (TopicId, String) {
    use rendezvous_protocol::crypto::Randomness;
    use rendezvous_protocol::federation::topic_events::EntryBatch;
    use rendezvous_protocol::tlog::{Checkpoint, Frontier, LeafIndex, SignedCheckpoint};
    use rendezvous_protocol::topic::{ChangeBuilder, HostKey, LogEntry, leaf_data, log_origin};
    let a_key = server_key(&fed.node("a.example").data_dir);
    let topic = TopicId::random(&name("a.example"));
    let now = rendezvous::state::now();
    let (outcome, _) = ChangeBuilder::create(
        &topic,
        &creator.tk,
        History::Shared,
        members,
        HostKey::of(a_key.public()),
    )
    .build(now, &mut Randomness::Os)
    .unwrap();
    let entry = LogEntry::change(&outcome.change);
    let mut frontier = Frontier::new();
    frontier.append(&leaf_data(&entry).unwrap()).unwrap();
    let checkpoint =
        Checkpoint::new(&log_origin(&topic), frontier.size(), frontier.root(), now).unwrap();
    let note = SignedCheckpoint::sign(&checkpoint, &a_key, "a.example")
        .unwrap()
        .to_note();
    let payload = EntryBatch {
        first: LeafIndex(0),
        entries: vec![serde_bytes::ByteBuf::from(entry.to_wire())],
        checkpoint: note,
    }
    .to_wire();
    let event = Event::sign(
        &name("a.example"),
        &name("b.example"),
        EventKind::TopicEntry,
        Some(&topic),
        payload,
        now,
        &a_key,
    );
    let t = transaction(&fresh_id(), "a.example", "b.example", &[&event]);
    let a = fed.peer_as("b.example", "a.example");
    let (status, _, body) = send_as(&a, "b.example", Some("a.example"), &t)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let code = results(&body)[0].2.clone();
    (topic, code)
}

/// A hosting server that names 200 member servers that exist nowhere costs a participant the
/// host's row and at most `cosign_fanout` more per cosigning round, not one per server.
#[actix_rt::test]
async fn fake_member_servers_cost_bounded_queue_rows() {
    let fakes = fake_servers(200);
    let unreachable = fakes.clone();
    let mut fed = Federation::in_process("fedlim-fanout", &["a.example", "b.example"])
        .adjust(move |n, c| {
            let fed = c.federation.as_mut().unwrap();
            for fake in &unreachable {
                fed.overrides.insert(fake.clone(), "127.0.0.1:1".into());
            }
            if n == "b.example" {
                fed.limits.cosign_fanout = 8;
            }
        })
        .start();
    let alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let (creator, admin) = made_up("mallory", "a.example", Role::Admin);
    let mut members = vec![
        admin,
        claimed_spec(&fed, &alice, &id("bob", "b.example")).await,
    ];
    members.extend(fakes.iter().map(|s| made_up("mallory", s, Role::Reader).1));
    let (topic, code) = a_creates_on_b(&fed, &creator, members).await;
    assert_eq!(code, "", "b mirrors the topic");
    read_until_change(&mut bob, &topic).await;
    // One head on b, one cosigning round (300 ms later), its rows queued.
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    fed.stop("b.example");
    let store = open_store(&fed, "b.example");
    let queued: usize = fakes
        .iter()
        .map(|s| store.outbound_len(&name(s)).unwrap())
        .sum();
    // The hosting server (up: delivered, or one row) and at most `cosign_fanout` others.
    assert!(
        (1..=8).contains(&queued),
        "{queued} cosignatures queued for fake servers"
    );
    assert!(store.outbound_len(&name("a.example")).unwrap() <= 1);
}

/// A submit queued for a host that stays unreachable longer than `queue_max_age_secs` is
/// dropped, its transaction in flight given up, and the author's devices told: the kind-2
/// inbox item (`503 unavailable`) reports a refused post.
#[actix_rt::test]
async fn old_queued_submit_is_reported_refused() {
    let mut fed = Federation::in_process("fedlim-age", &["a.example", "b.example"])
        .adjust(limits_of_b(|l| l.queue_max_age_secs = 60))
        .start();
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let topic = alice
        .create_topic(&[(id("bob", "b.example"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"m0").await.unwrap();
    read_until(&mut bob, &topic, 1).await;
    fed.stop("a.example");
    match bob.send(&topic, b"late").await {
        Err(ClientError::Queued { .. }) => {}
        other => panic!("with its host down a post is queued: {other:?}"),
    }
    // b tries, fails, and keeps the submit in flight; a minute later it is too old.
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    assert!(bob.sync_inbox().await.is_ok());
    assert!(
        bob.take_refused_posts().unwrap().is_empty(),
        "refused early"
    );
    fed.clock.advance(61);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        bob.sync_inbox().await.unwrap();
        let refused = bob.take_refused_posts().unwrap();
        if !refused.is_empty() {
            break refused;
        }
        assert!(Instant::now() < deadline, "no refused post reported");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(refused.len(), 1, "{refused:?}");
    let post = &refused[0];
    assert_eq!(
        (
            post.topic.as_str(),
            post.entry.as_str(),
            post.status,
            post.code.as_str()
        ),
        (topic.to_string().as_str(), "message", 503, "unavailable")
    );
    fed.stop("b.example");
    let store = open_store(&fed, "b.example");
    assert_eq!(store.outbound_len(&name("a.example")).unwrap(), 0);
}

/// `GET path` on b's federation listener as the peer `client` is, naming `origin`: the
/// status and `Retry-After`.
async fn query(client: &awc::Client, origin: &str, path: &str) -> (u16, Option<u64>) {
    let mut resp = client
        .get(format!("https://b.example:8448{path}"))
        .insert_header(("X-Rdv-Origin", origin))
        .send()
        .await
        .unwrap();
    let _ = resp.body().limit(1 << 20).await;
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (resp.status().as_u16(), retry)
}

/// Identity, entries and checkpoint queries share one `query` class per peer: over it a peer
/// gets `429` with `Retry-After`, while another peer's queries go on.
#[actix_rt::test]
async fn peer_query_flood_gets_429_and_other_peers_go_on() {
    use rendezvous_client::http::encode_segment;
    let fed = Federation::in_process("fedlim-query", &["a.example", "b.example", "c.example"])
        .adjust(limits_of_b(|l| l.query = Rate::hour(60, 4)))
        .start();
    let mut bob = fed.register("b.example", "bob").await;
    let _carol = fed.register("c.example", "carol").await;
    let topic = bob
        .create_topic(&[(id("carol", "c.example"), Role::Reader)], History::Shared)
        .await
        .unwrap();
    let topic = encode_segment(&topic.to_string());
    let identity = format!(
        "/_rdv/federation/v1/users/{}/identity",
        encode_segment("@bob:b.example")
    );
    let entries = format!("/_rdv/federation/v1/topics/{topic}/entries?from=0&limit=10");
    let checkpoint = format!("/_rdv/federation/v1/topics/{topic}/checkpoint");
    let c = fed.peer_as("b.example", "c.example");
    // The burst: c's own lookups of b's topic may have spent some of it already, so the
    // first answers are 200 until the class is spent.
    let mut passed = 0;
    for path in [&identity, &entries, &checkpoint, &identity] {
        let (status, _) = query(&c, "c.example", path).await;
        match status {
            200 => passed += 1,
            429 => {}
            other => panic!("{path}: {other}"),
        }
    }
    assert!(passed >= 1, "the burst lets queries through");
    for path in [&identity, &entries, &checkpoint] {
        let (status, retry) = query(&c, "c.example", path).await;
        assert_eq!(status, 429, "{path}");
        assert!(
            retry.is_some_and(|s| s >= 1),
            "{path}: Retry-After {retry:?}"
        );
    }
    // Another peer has cells of its own.
    let a = fed.peer_as("b.example", "a.example");
    assert_eq!(query(&a, "a.example", &identity).await.0, 200);
}

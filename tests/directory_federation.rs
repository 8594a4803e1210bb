//! Federating servers witness each other's identity directories (`federation-spec/directory.md`
//! §4, §5): each cosigns the other's checkpoints every round, a remote lookup is relayed only
//! once it verifies against the relaying server's view and carries its fresh cosignature, a
//! binding is served only once witnessed, and a homeserver that forks its directory (the
//! store's test hook) is caught by its witness, which keeps the evidence and stops.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use awc::http::Method;
use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::api::{
    Body, DirectoryCheckpointResponse, DirectoryCosignatureRequest, ErrorCode, IdentityResponse,
    encode_segment,
};
use rendezvous_protocol::crypto::{ServerKey, ServerPublicKey};
use rendezvous_protocol::directory::{LookupCheck, check_lookup, directory_origin};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::tlog::{
    Checkpoint, Cosignature, Evidence, HostKeys, LogView, SignedCheckpoint, TreeSize,
};
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::raw;
use rendezvous_testkit::server::TestServer;
use rendezvous_testkit::transaction::server_key;

const A: &str = "a.example";
const B: &str = "b.example";

/// a and b, each witnessing the other every `secs`.
fn pair(test: &str, secs: u64) -> Federation {
    rendezvous_testkit::federation::witnessing_pair_every(test, A, B, secs)
}

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

fn key_of(fed: &Federation, server: &str) -> ServerKey {
    server_key(&fed.node(server).data_dir)
}

async fn get<T: Body>(server: &TestServer, client: &Client, path: &str) -> Result<T, ClientError> {
    let (http, token) = raw::http(server, client);
    http.call(Method::GET, path, None, Some(&token)).await
}

fn code(e: ClientError) -> (u16, ErrorCode) {
    match e {
        ClientError::Api { code, status, .. } => (status, code),
        e => panic!("not a refusal: {e}"),
    }
}

/// `server`'s served directory checkpoint, as `client` (its user) gets it.
async fn served(fed: &Federation, server: &str, client: &Client) -> SignedCheckpoint {
    let r: DirectoryCheckpointResponse =
        get(fed.server(server), client, "/v1/directory/checkpoint")
            .await
            .unwrap();
    let signed = SignedCheckpoint::parse(r.checkpoint.as_bytes()).unwrap();
    signed.verify(key_of(fed, server).public(), server).unwrap();
    signed
}

/// Waits until `server`'s served checkpoint carries `witness`'s verifying cosignature over a
/// checkpoint of at least `size`.
async fn until_cosigned(fed: &Federation, server: &str, client: &Client, witness: &str, size: u64) {
    let key = key_of(fed, witness);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let note = served(fed, server, client).await;
        if note.unverified_checkpoint().size.0 >= size
            && note.cosignature(key.public(), witness).is_ok()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{witness} never cosigned {server}'s directory: {}",
            note.to_note()
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

fn identity_path(user: &UserId, known: u64) -> String {
    format!(
        "/v1/users/{}/identity?known={known}",
        encode_segment(user.as_str())
    )
}

fn b_view(fed: &Federation) -> LogView {
    LogView::with_keys(
        &directory_origin(&B.parse().unwrap()),
        HostKeys::new(B, key_of(fed, B).public().clone()),
    )
}

#[actix_rt::test]
async fn each_server_witnesses_the_other_and_relays_only_what_verifies() {
    let fed = pair("dir-witness", 1);
    let alice = fed.register(A, "alice").await;
    let bob = fed.register(B, "bob").await;
    fed.clock.advance(2);
    until_cosigned(&fed, B, &bob, A, 1).await;
    until_cosigned(&fed, A, &alice, B, 1).await;
    let r: DirectoryCheckpointResponse = get(fed.server(B), &bob, "/v1/directory/checkpoint")
        .await
        .unwrap();
    assert!(
        r.witnessed,
        "b's directory says it is witnessed once a cosigned it"
    );

    // alice looks bob up through a: the answer passes check_lookup, a's cosignature required.
    let a_key: ServerPublicKey = key_of(&fed, A).public().clone();
    let witnesses = [(A.to_owned(), a_key)];
    let check = LookupCheck {
        user: &id("bob", B),
        witnesses: &witnesses,
        witness_required: true,
        accepted: None,
        verified: false,
    };
    let answer: IdentityResponse = get(fed.server(A), &alice, &identity_path(&id("bob", B), 0))
        .await
        .unwrap();
    let mut view = b_view(&fed);
    let checked = check_lookup(&mut view, &answer.registration, &answer.proof, &check).unwrap();
    assert_eq!(checked.witnessed_by, vec![A.to_owned()]);
    let bob_ik = bob.keystore().identity().unwrap().public().clone();
    assert_eq!(checked.outcome.binding().identity_key, bob_ik);

    // The same answer without a's line is unwitnessed for alice's client.
    let mut stripped = answer.proof.clone();
    stripped.checkpoint = SignedCheckpoint::parse(answer.proof.checkpoint.as_bytes())
        .unwrap()
        .lines_of(B)
        .to_note()
        .to_string();
    let e = check_lookup(&mut b_view(&fed), &answer.registration, &stripped, &check).unwrap_err();
    assert_eq!(e.code(), "directory_unwitnessed");
}

#[actix_rt::test]
async fn a_binding_is_served_once_a_witness_saw_it() {
    // Rounds far apart: only the on-demand witnessing of a lookup moves b's served checkpoint.
    let fed = pair("dir-pending", 3600);
    let alice = fed.register(A, "alice").await;
    let _bob = fed.register(B, "bob").await;
    fed.clock.advance(2);
    // The first lookup through a witnesses b (its cosignature makes b's newest the served one).
    let _: IdentityResponse = get(fed.server(A), &alice, &identity_path(&id("bob", B), 0))
        .await
        .unwrap();
    let carol = fed.register(B, "carol").await;
    fed.clock.advance(2);
    // b has a witness now: carol is not served before one saw her entry.
    let e = get::<IdentityResponse>(fed.server(B), &carol, &identity_path(&id("carol", B), 0))
        .await
        .unwrap_err();
    assert_eq!(code(e), (503, ErrorCode::DirectoryPending));
    // A lookup through a witnesses b on demand, then gets carol's binding.
    let answer: IdentityResponse = get(fed.server(A), &alice, &identity_path(&id("carol", B), 0))
        .await
        .unwrap();
    assert_eq!(answer.proof.index, 1);
    let _: IdentityResponse = get(fed.server(B), &carol, &identity_path(&id("carol", B), 0))
        .await
        .unwrap();
}

/// `POST …/directory/cosignature` to b as a.
async fn post_cosignature(fed: &Federation, note: String) -> (u16, String) {
    let client = fed.peer_as(B, A);
    let body = DirectoryCosignatureRequest { note }.to_cbor();
    let mut resp = client
        .post("https://b.example:8448/_rdv/federation/v1/directory/cosignature")
        .insert_header(("X-Rdv-Origin", A))
        .insert_header(("Content-Type", "application/cbor"))
        .send_body(body)
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .map(|v| v["code"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (resp.status().as_u16(), code)
}

#[actix_rt::test]
async fn a_cosignature_must_be_the_witnesses_over_a_checkpoint_of_the_log() {
    let fed = pair("dir-cosig", 3600);
    let bob = fed.register(B, "bob").await;
    fed.clock.advance(2);
    // b's own line only (a may have cosigned it already at start).
    let newest = served(&fed, B, &bob).await.lines_of(B);
    let c = newest.unverified_checkpoint().clone();
    // A line under another key than a's: bad_signature.
    let mut forged = newest.clone();
    let stranger = ServerKey::generate();
    forged
        .add_cosignature(&Cosignature::sign(&stranger, A, &c, fed.clock.now()).unwrap())
        .unwrap();
    assert_eq!(
        post_cosignature(&fed, forged.to_note().to_string()).await,
        (400, "bad_signature".into())
    );
    // a's genuine line over a checkpoint b never signed: bad_checkpoint.
    let other = Checkpoint::new(&c.origin, TreeSize(c.size.0 + 5), c.root, c.time).unwrap();
    let mut unknown = SignedCheckpoint::sign(&other, &stranger, B).unwrap();
    unknown
        .add_cosignature(&Cosignature::sign(&key_of(&fed, A), A, &other, fed.clock.now()).unwrap())
        .unwrap();
    assert_eq!(
        post_cosignature(&fed, unknown.to_note().to_string()).await,
        (400, "bad_checkpoint".into())
    );
    // A genuine one is kept, and served.
    let mut genuine = newest.clone();
    genuine
        .add_cosignature(&Cosignature::sign(&key_of(&fed, A), A, &c, fed.clock.now()).unwrap())
        .unwrap();
    assert_eq!(
        post_cosignature(&fed, genuine.to_note().to_string()).await,
        (200, String::new())
    );
    let note = served(&fed, B, &bob).await;
    note.cosignature(key_of(&fed, A).public(), A).unwrap();
}

#[actix_rt::test]
async fn a_split_directory_is_caught_by_the_cosigning_witness() {
    let fed = pair("dir-split", 1);
    let alice = fed.register(A, "alice").await;
    let bob = fed.register(B, "bob").await;
    let _dave = fed.register(B, "dave").await;
    fed.clock.advance(2);
    until_cosigned(&fed, B, &bob, A, 2).await;
    let _: IdentityResponse = get(fed.server(A), &alice, &identity_path(&id("bob", B), 0))
        .await
        .unwrap();

    // b forks its directory: entry 1 rewritten, the tree recomputed (hook b), then goes on.
    let store = fed.store(B);
    let forged = {
        let mut e = rendezvous_protocol::directory::DirectoryEntry::decode(
            &store.directory_entry(1).unwrap().unwrap(),
        )
        .unwrap();
        e.time += 1;
        e.to_bytes()
    };
    store.fork_directory_for_tests(1, &forged).unwrap();
    fed.clock.advance(2);

    // a's next round finds it: evidence kept, verifiable under b's key, shown, counted.
    let deadline = Instant::now() + Duration::from_secs(20);
    let evidence = loop {
        if let Some(e) = fed
            .store(A)
            .directory_witness(&B.parse().unwrap())
            .unwrap()
            .evidence
        {
            break Evidence::from_cbor(&e).unwrap();
        }
        assert!(Instant::now() < deadline, "a never caught b's fork");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        evidence.kind(),
        Evidence::SplitView {
            a: evidence.notes().0.clone(),
            b: evidence.notes().1.clone()
        }
        .kind()
    );
    evidence
        .verify_with(&HostKeys::new(B, key_of(&fed, B).public().clone()))
        .unwrap();
    let status = fed.server(A).admin_status().await;
    let peer = &status["directory"]["peers"][0];
    assert_eq!(peer["peer"], B, "{status}");
    assert_eq!(peer["evidence"], evidence.kind(), "{status}");
    let table = rendezvous::admin::status_table(&status);
    assert!(
        table.contains("directories witnessed") && table.contains(evidence.kind()),
        "{table}"
    );
    let token = std::fs::read_to_string(fed.node(A).data_dir.join("admin.token")).unwrap();
    let mut resp = awc::Client::default()
        .get(format!("http://{}/metrics", fed.server(A).admin))
        .insert_header(("Authorization", format!("Bearer {}", token.trim())))
        .send()
        .await
        .unwrap();
    let metrics = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    assert!(
        metrics.contains("rendezvous_directory_evidence 1"),
        "{metrics}"
    );

    // b's directory goes on on the fork; a never cosigns it again, and relays none of it.
    let _erin = fed.register(B, "erin").await;
    fed.clock.advance(2);
    actix_rt::time::sleep(Duration::from_millis(2500)).await;
    let note = served(&fed, B, &bob).await;
    assert!(
        note.cosignature(key_of(&fed, A).public(), A).is_err(),
        "{}",
        note.to_note()
    );
    let e = get::<IdentityResponse>(fed.server(A), &alice, &identity_path(&id("bob", B), 0))
        .await
        .unwrap_err();
    assert_eq!(code(e), (502, ErrorCode::DirectoryForked));
    // Nor can alice add bob to a topic: a checks his key against the same view.
    let mut alice = alice;
    let e = alice
        .create_topic(
            &[(id("bob", B), rendezvous_protocol::topic::Role::Writer)],
            rendezvous_protocol::topic::History::Shared,
        )
        .await
        .err()
        .map(|e| e.error_code());
    assert_eq!(e, Some("directory_forked"));
}

#[actix_rt::test]
async fn a_lookup_answer_that_does_not_verify_is_not_relayed() {
    use rendezvous_protocol::certs::Registration;
    use rendezvous_protocol::crypto::IdentityKey;
    use rendezvous_protocol::directory::DirectoryEntry;
    use rendezvous_protocol::wire::Signed;

    let fed = pair("dir-unverified", 3600);
    let alice = fed.register(A, "alice").await;
    let _bob = fed.register(B, "bob").await;
    fed.clock.advance(2);
    let _: IdentityResponse = get(fed.server(A), &alice, &identity_path(&id("bob", B), 0))
        .await
        .unwrap();
    // b logs a forged key for bob (hook a): bob's last entry now binds another key than the
    // registration b serves with it.
    let forged_ik = IdentityKey::generate();
    let forged = Signed::sign(
        Registration::new(id("bob", B), forged_ik.public().clone()),
        &forged_ik,
    );
    let entry = DirectoryEntry::registration(forged.signed_bytes(), 0).unwrap();
    fed.store(B)
        .forge_directory_entry_for_tests(&id("bob", B), &entry.to_bytes())
        .unwrap();
    // A lookup of a newer user makes a witness b's grown log (on demand), which b then serves.
    let _dave = fed.register(B, "dave").await;
    fed.clock.advance(2);
    let _: IdentityResponse = get(fed.server(A), &alice, &identity_path(&id("dave", B), 0))
        .await
        .unwrap();
    let e = get::<IdentityResponse>(fed.server(A), &alice, &identity_path(&id("bob", B), 0))
        .await
        .unwrap_err();
    let message = e.to_string();
    assert_eq!(code(e), (502, ErrorCode::BadGateway));
    assert!(
        message.contains("registration served is not for the key"),
        "{message}"
    );
}

/// A checkpoint of `topic`'s log at its size, signed with a's key.
fn a_checkpoint(
    fed: &Federation,
    topic: &rendezvous_testkit::topic::Topic,
) -> rendezvous_protocol::tlog::CheckpointNote {
    let c = Checkpoint::new(
        &rendezvous_protocol::topic::log_origin(&topic.id),
        topic.state.size(),
        topic.roots.root(),
        rendezvous::state::now(),
    )
    .unwrap();
    SignedCheckpoint::sign(&c, &key_of(fed, A), A)
        .unwrap()
        .to_note()
}

/// a (the test, holding a's Server Key) sends b one `topic.entry` event: the status of its
/// result.
async fn entry_to_b(
    fed: &Federation,
    topic: &rendezvous_testkit::topic::Topic,
    first: u64,
    entry: &[u8],
) -> (u16, String) {
    use rendezvous_protocol::federation::EventKind;
    use rendezvous_protocol::federation::topic_events::EntryBatch;
    let payload = EntryBatch {
        first: rendezvous_protocol::tlog::LeafIndex(first),
        entries: vec![serde_bytes::ByteBuf::from(entry.to_vec())],
        checkpoint: a_checkpoint(fed, topic),
    }
    .to_wire();
    let event = rendezvous_testkit::transaction::event(
        A,
        B,
        EventKind::TopicEntry,
        &topic.id,
        payload,
        &key_of(fed, A),
    );
    let txn = rendezvous_testkit::transaction::transaction(
        &rendezvous_testkit::transaction::fresh_id(),
        A,
        B,
        &[&event],
    );
    let (status, body) = rendezvous_testkit::transaction::send(&fed.peer_as(B, A), B, &txn)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, status, code) = rendezvous_testkit::transaction::results(&body).remove(0);
    (status, code)
}

#[actix_rt::test]
async fn a_mirrors_refusal_of_a_wrong_identity_key_is_kept_and_shown_to_the_members() {
    use rendezvous_protocol::crypto::{IdentityKey, Randomness, TopicKey};
    use rendezvous_protocol::topic::{
        Action, ChangeBuilder, EpochKeyring, History, HostKey, LogEntry, Role, leaf_data_for_change,
    };
    use rendezvous_testkit::topic::{SUITE, Topic, User};

    let fed = pair("dir-refusal", 3600);
    let bob_client = fed.register(B, "bob").await;
    let _carol_client = fed.register(B, "carol").await;
    // A topic "hosted by a" (the test signs as a) with bob, under bob's real Identity Key.
    let user = |id: UserId, ik: IdentityKey| User {
        id,
        ik,
        tk: TopicKey::generate(SUITE),
        keys: EpochKeyring::new(),
    };
    let mut alice = user(id("alice", A), IdentityKey::generate());
    let mut bob = user(id("bob", B), bob_client.keystore().identity().unwrap());
    let topic_id = rendezvous_protocol::ids::TopicId::random(&A.parse().unwrap());
    let (outcome, _) = ChangeBuilder::create(
        &topic_id,
        &alice.tk,
        History::Shared,
        vec![alice.spec(Role::Admin), bob.spec(Role::Writer)],
        HostKey::of(key_of(&fed, A).public()),
    )
    .build(0, &mut Randomness::Os)
    .unwrap();
    let mut roots = rendezvous_protocol::tlog::Roots::new();
    roots
        .append(&leaf_data_for_change(outcome.change.signed_bytes()))
        .unwrap();
    let mut topic = Topic {
        id: topic_id.clone(),
        state: outcome.next.clone(),
        tags: Default::default(),
        create: Some(outcome.change.unverified()),
        roots,
    };
    topic.deliver(&mut [&mut alice, &mut bob], &outcome);
    let create = LogEntry::change(&outcome.change).to_wire();
    assert_eq!(
        entry_to_b(&fed, &topic, 0, &create).await,
        (200, String::new())
    );

    // a adds carol of b under a key that is not carol's: b's mirror refuses it, and keeps it.
    let mut ghost = user(id("carol", B), IdentityKey::generate());
    let ghost_ik = ghost.ik.public().clone();
    let spec = ghost.spec(Role::Writer);
    let added = topic.change(
        &mut [&mut alice, &mut bob, &mut ghost],
        0,
        Action::Add(vec![spec]),
    );
    let add = LogEntry::change(&added.change).to_wire();
    assert_eq!(
        entry_to_b(&fed, &topic, 1, &add).await,
        (400, "invalid".into())
    );

    // bob, a member, is shown the refusal: the entry, its index, the user and the key in it.
    let w: rendezvous_protocol::api::WitnessesResponse = get(
        fed.server(B),
        &bob_client,
        &format!("/v1/topics/{}/witnesses", encode_segment(topic_id.as_str())),
    )
    .await
    .unwrap();
    assert_eq!(w.refusals.len(), 1, "{:?}", w.refusals);
    let r = &w.refusals[0];
    assert_eq!(
        (r.index, &r.user, &r.identity_key),
        (1, &id("carol", B), &ghost_ik)
    );
    assert_eq!(r.entry.as_ref(), add.as_slice());
}

//! A homeserver that answers a lookup of its user with an older checkpoint than the one a
//! relaying peer already witnessed (`directory.md` §4, §5, `tag-log.md` §8.1), told by a real
//! `b.example` whose served checkpoint the test replaces with one it signs with b's own Server
//! Key (what a lying b does): a checkpoint that is not a prefix of the witnessed one is
//! `inconsistent`, one smaller yet signed later is a `rollback`; either way the relay `a`
//! keeps the evidence (verifiable under b's key), answers `directory_forked`, and relays
//! nothing of b's directory any more.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::directory::directory_origin;
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::tlog::{
    Checkpoint, Evidence, HostKeys, LogHash, SignedCheckpoint, TreeSize, leaf_hash,
};
use rendezvous_testkit::federation::{Federation, witnessing_pair_every};
use rendezvous_testkit::transaction::server_key;

const A: &str = "a.example";
const B: &str = "b.example";

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

fn code(e: ClientError) -> Option<ErrorCode> {
    e.code()
}

/// a and b witnessing each other only at start (rounds an hour apart), b with carol and dave;
/// alice on a looks dave up, so a's witness view of b's directory is at size 2. Returns the
/// federation, the checkpoint a holds of b, and erin (a user of a who never looked b up, so
/// her lookups say `known=0`).
async fn witnessed(test: &str) -> (Federation, SignedCheckpoint, Client) {
    let fed = witnessing_pair_every(test, A, B, 3600);
    let mut alice = fed.register(A, "alice").await;
    let erin = fed.register(A, "erin").await;
    let _carol = fed.register(B, "carol").await;
    let _dave = fed.register(B, "dave").await;
    fed.clock.advance(2);
    // a witnesses b on demand (b answers pending until a cosigned a checkpoint with dave).
    alice.lookup_identity(&id("dave", B)).await.unwrap();
    let b: ServerName = B.parse().unwrap();
    let held = fed.store(A).directory_witness(&b).unwrap();
    assert!(held.evidence.is_none());
    let latest = SignedCheckpoint::parse(held.note.unwrap().as_bytes()).unwrap();
    assert_eq!(latest.unverified_checkpoint().size, TreeSize(2));
    (fed, latest, erin)
}

/// What a lying b serves from now on: a checkpoint of its directory at size 1 with `root` and
/// `time`, signed with b's own key.
fn serve_forged(fed: &Federation, root: LogHash, time: u64) -> SignedCheckpoint {
    let b: ServerName = B.parse().unwrap();
    let checkpoint = Checkpoint::new(&directory_origin(&b), TreeSize(1), root, time).unwrap();
    let key = server_key(&fed.node(B).data_dir);
    let forged = SignedCheckpoint::sign(&checkpoint, &key, B).unwrap();
    let store = fed.store(B);
    let newest = store.directory_newest().unwrap().unwrap();
    store
        .set_directory_notes(&newest, Some(&forged.to_note()))
        .unwrap();
    forged
}

/// The evidence a keeps against b, checked under b's key.
fn evidence_against_b(fed: &Federation) -> Evidence {
    let b: ServerName = B.parse().unwrap();
    let cbor = fed
        .store(A)
        .directory_witness(&b)
        .unwrap()
        .evidence
        .expect("a kept evidence against b");
    let evidence = Evidence::from_cbor(&cbor).unwrap();
    let key = server_key(&fed.node(B).data_dir);
    evidence
        .verify_with(&HostKeys::new(B, key.public().clone()))
        .unwrap();
    evidence
}

#[actix_rt::test]
async fn an_older_checkpoint_that_is_not_a_prefix_of_the_witnessed_one_is_kept_as_evidence() {
    let (fed, latest, mut erin) = witnessed("dirrelay-inconsistent").await;
    // Older than the one a holds (not a rollback), but over another log: its root is not the
    // root of b's first entry.
    let time = latest.unverified_checkpoint().time - 1;
    serve_forged(&fed, LogHash([7; 32]), time);

    let e = erin.lookup_identity(&id("carol", B)).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::DirectoryForked));
    let evidence = evidence_against_b(&fed);
    assert_eq!(evidence.kind(), "inconsistent");
    // From then on a relays nothing of b's directory, whatever b answers.
    let e = erin.lookup_identity(&id("dave", B)).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::DirectoryForked));
}

#[actix_rt::test]
async fn a_smaller_checkpoint_signed_later_is_kept_as_a_rollback() {
    let (fed, latest, mut erin) = witnessed("dirrelay-rollback").await;
    // b's real log at size 1 (its first entry alone), but dated after the checkpoint of size
    // 2 that a witnessed: b went back on it.
    let first = fed.store(B).directory_entry(0).unwrap().unwrap();
    let time = latest.unverified_checkpoint().time + 10;
    serve_forged(&fed, leaf_hash(&first), time);

    let e = erin.lookup_identity(&id("carol", B)).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::DirectoryForked));
    assert_eq!(evidence_against_b(&fed).kind(), "rollback");
}

//! A deliberately corrupt hosting server (akd's `PublishCorruption` idea): every lie it can tell
//! about a topic's log must be caught by members and mirrors with the shared modules.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::message::{MessageError, MessageIn};
use rendezvous_protocol::tlog::{
    Checkpoint, ConsistencyProof, Evidence, LeafIndex, LogHash, LogView, MemoryNodeStore, RootAt,
    SignedCheckpoint, Tree, TreeSize, WitnessError,
};
use rendezvous_protocol::topic::{History, Role, check_in_log, log_origin};
use rendezvous_testkit::topic::{Topic, User, read};

const HOST: &str = "a.example";

/// The hosting server's view: a topic, its tag log and its key.
struct Host {
    topic: Topic,
    tree: Tree<MemoryNodeStore>,
    key: ServerKey,
    messages: Vec<(u64, Vec<u8>)>,
}

impl Host {
    fn checkpoint(&self, tree: &Tree<MemoryNodeStore>, time: u64) -> SignedCheckpoint {
        let cp =
            Checkpoint::new(&log_origin(&self.topic.id), tree.size(), tree.root(), time).unwrap();
        SignedCheckpoint::sign(&cp, &self.key, HOST).unwrap()
    }

    fn post(&mut self, wire: Vec<u8>) -> u64 {
        let msg = self.topic.post(&wire).unwrap();
        let index = self.tree.append(&msg.leaf_data()).unwrap().0;
        self.messages.push((index, wire));
        index
    }
}

fn setup() -> (User, User, Host) {
    let mut a = User::new("alice");
    let mut b = User::new("bob");
    let topic = Topic::create(
        &mut [&mut a, &mut b],
        &[Role::Admin, Role::Writer],
        History::Shared,
    );
    let mut tree = Tree::new(MemoryNodeStore::new());
    // Leaf 0: the create change.
    tree.append(&[2u8; 33]).unwrap();
    let mut host = Host {
        topic,
        tree,
        key: ServerKey::generate(),
        messages: Vec::new(),
    };
    for i in 0..6u8 {
        let sender = if i % 2 == 0 { &a } else { &b };
        let wire = host.topic.compose(sender, &[b'm', b'0' + i]);
        host.post(wire);
    }
    (a, b, host)
}

/// The root of the honest log at the `seen` of the message `wire` (what its signature binds).
fn seen_root(host: &Host, wire: &[u8]) -> LogHash {
    let seen = MessageIn::from_wire(wire).unwrap().header().seen;
    host.topic.roots.root_at(seen).unwrap()
}

/// What a member does with one served message: verify, open, and check it is in the log.
fn member_reads(
    host: &Host,
    reader: &User,
    index: u64,
    wire: &[u8],
    checkpoint: &SignedCheckpoint,
    tree: &Tree<MemoryNodeStore>,
) -> Result<Vec<u8>, MessageError> {
    let cp = checkpoint.verify(host.key.public(), HOST).unwrap().clone();
    let msg = host
        .topic
        .state
        .member(MessageIn::from_wire(wire)?.header().sender)
        .map(|m| m.topic_key.signing.clone())
        .ok_or(MessageError::NotAMember(
            rendezvous_protocol::topic::MemberIndex(0),
        ))
        .and_then(|k| {
            MessageIn::from_wire(wire)?.verify(&host.topic.id, &k, &seen_root(host, wire))
        })?;
    let proof = tree
        .inclusion_proof(LeafIndex(index), cp.size)
        .map_err(|_| MessageError::NotInLog)?;
    check_in_log(&host.topic.id, &msg.leaf_data(), &proof, &cp)?;
    read(&host.topic, reader, &msg)
}

#[test]
fn an_honest_log_verifies() {
    let (_, b, host) = setup();
    let cp = host.checkpoint(&host.tree, 100);
    for (index, wire) in &host.messages {
        assert!(member_reads(&host, &b, *index, wire, &cp, &host.tree).is_ok());
    }
}

#[test]
fn a_message_served_at_another_index_or_outside_the_log_is_caught() {
    let (_, b, host) = setup();
    let cp = host.checkpoint(&host.tree, 100);
    // The server claims message 1 is at index 2.
    let (_, wire) = &host.messages[0];
    assert_eq!(
        member_reads(&host, &b, 2, wire, &cp, &host.tree).unwrap_err(),
        MessageError::NotInLog
    );
    // The server serves a validly signed message that it never logged (e.g. withheld from others).
    let extra = host.topic.compose(&b, b"never logged");
    assert_eq!(
        member_reads(&host, &b, 3, &extra, &cp, &host.tree).unwrap_err(),
        MessageError::NotInLog
    );
    // A checkpoint for another topic's log does not vouch for this one.
    let foreign = Checkpoint::new(
        "a.example/topic/aaaaaaaaaaaaaaaaaaaaaaaaaa",
        host.tree.size(),
        host.tree.root(),
        1,
    )
    .unwrap();
    let proof = host
        .tree
        .inclusion_proof(LeafIndex(1), host.tree.size())
        .unwrap();
    let msg = MessageIn::from_wire(&host.messages[0].1)
        .unwrap()
        .verify(
            &host.topic.id,
            &host
                .topic
                .state
                .member(rendezvous_protocol::topic::MemberIndex(0))
                .unwrap()
                .topic_key
                .signing,
            &seen_root(&host, &host.messages[0].1),
        )
        .unwrap();
    assert_eq!(
        check_in_log(&host.topic.id, &msg.leaf_data(), &proof, &foreign),
        Err(MessageError::NotInLog)
    );
}

#[test]
fn an_altered_ciphertext_is_caught() {
    let (_, b, host) = setup();
    let cp = host.checkpoint(&host.tree, 100);
    let (index, wire) = &host.messages[1];
    let mut altered = wire.clone();
    let n = altered.len();
    altered[n - 100] ^= 0x40; // inside the ciphertext, tag or signature
    assert!(member_reads(&host, &b, *index, &altered, &cp, &host.tree).is_err());
}

#[test]
fn a_dropped_message_shows_as_a_gap_and_a_rewritten_history_as_a_fork() {
    let (_, _, host) = setup();
    // Mirror B has seen the honest log at size 4.
    let mut mirror = LogView::new(&log_origin(&host.topic.id), host.key.public().clone(), HOST);
    let early = host.tree.root_at(TreeSize(4)).unwrap();
    let early_cp = SignedCheckpoint::sign(
        &Checkpoint::new(&log_origin(&host.topic.id), TreeSize(4), early, 10).unwrap(),
        &host.key,
        HOST,
    )
    .unwrap();
    mirror
        .update(
            early_cp,
            &ConsistencyProof {
                old: TreeSize(0),
                new: TreeSize(4),
                path: vec![],
            },
        )
        .unwrap();

    // The server rewrites history: it drops message at index 2 and re-logs the rest.
    let mut forked = Tree::new(MemoryNodeStore::new());
    forked.append(&[2u8; 33]).unwrap();
    for (i, (_, wire)) in host.messages.iter().enumerate() {
        if i == 1 {
            continue;
        }
        let leaf = MessageIn::from_wire(wire).unwrap();
        let sender = host
            .topic
            .state
            .member(leaf.header().sender)
            .unwrap()
            .topic_key
            .signing
            .clone();
        forked
            .append(
                &leaf
                    .verify(&host.topic.id, &sender, &seen_root(&host, wire))
                    .unwrap()
                    .leaf_data(),
            )
            .unwrap();
    }
    let forked_cp = host.checkpoint(&forked, 20);
    // The lie needs a consistency proof from 4; the forked tree's own proof does not match the
    // root the mirror holds.
    let proof = forked
        .consistency_proof(TreeSize(4), forked.size())
        .unwrap();
    match mirror.update(forked_cp, &proof) {
        Err(WitnessError::Misbehaviour(evidence)) => {
            assert!(matches!(*evidence, Evidence::Inconsistent { .. }));
            // The evidence stands on its own for a third party.
            let bytes = evidence.to_cbor();
            let back = Evidence::from_cbor(&bytes).unwrap();
            back.verify(host.key.public(), HOST).unwrap();
        }
        other => panic!("fork not caught: {other:?}"),
    }
    assert!(mirror.is_compromised());

    // Two heads of the same size with different roots: a split view.
    let mut mirror = LogView::new(&log_origin(&host.topic.id), host.key.public().clone(), HOST);
    let honest = host.checkpoint(&host.tree, 30);
    mirror
        .update(
            honest,
            &ConsistencyProof {
                old: TreeSize(0),
                new: host.tree.size(),
                path: vec![],
            },
        )
        .unwrap();
    let mut same_size = Tree::new(MemoryNodeStore::new());
    for i in 0..host.tree.size().0 {
        same_size.append(&[i as u8; 40]).unwrap();
    }
    let split = host.checkpoint(&same_size, 31);
    let err = mirror
        .update(
            split,
            &ConsistencyProof {
                old: host.tree.size(),
                new: host.tree.size(),
                path: vec![],
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, WitnessError::Misbehaviour(e) if matches!(*e, Evidence::SplitView { .. }))
    );
}

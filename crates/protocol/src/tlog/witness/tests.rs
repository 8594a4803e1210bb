//! `LogView` tests (`federation-spec/tag-log.md` §7): honest growth, and each contradiction.

use super::*;
use crate::tlog::{Checkpoint, LogHash, MemoryNodeStore, Tree, leaf_hash};

pub(crate) const ORIGIN: &str = "a.example/topic/0123456789abcdefghjkmnpqrs";
pub(crate) const LOG: &str = "a.example";

pub(crate) struct Log {
    pub(crate) key: ServerKey,
    pub(crate) tree: Tree<MemoryNodeStore>,
    pub(crate) time: u64,
}

impl Log {
    pub(crate) fn new() -> Self {
        Log {
            key: ServerKey::generate(),
            tree: Tree::new(MemoryNodeStore::new()),
            time: 1_000,
        }
    }
    pub(crate) fn grow(&mut self, n: u32) {
        for _ in 0..n {
            let i = self.tree.size().0;
            self.tree.append(&i.to_be_bytes()).unwrap();
        }
    }
    pub(crate) fn head(&mut self) -> SignedCheckpoint {
        self.time += 1;
        let c = Checkpoint::new(ORIGIN, self.tree.size(), self.tree.root(), self.time).unwrap();
        SignedCheckpoint::sign(&c, &self.key, LOG).unwrap()
    }
    pub(crate) fn signed(&self, size: u64, root: LogHash, time: u64) -> SignedCheckpoint {
        let c = Checkpoint::new(ORIGIN, TreeSize(size), root, time).unwrap();
        SignedCheckpoint::sign(&c, &self.key, LOG).unwrap()
    }
    pub(crate) fn proof(&self, old: u64) -> ConsistencyProof {
        let new = self.tree.size();
        if old == 0 {
            return ConsistencyProof {
                old: TreeSize(0),
                new,
                path: vec![],
            };
        }
        self.tree.consistency_proof(TreeSize(old), new).unwrap()
    }
}

fn view(log: &Log) -> LogView {
    LogView::new(ORIGIN, log.key.public().clone(), LOG)
}

fn round_trip(e: &Evidence) -> Evidence {
    let back = Evidence::from_cbor(&e.to_cbor()).unwrap();
    assert_eq!(&back, e);
    back
}

#[test]
fn honest_growth_is_cosigned() {
    let mut log = Log::new();
    let mut v = view(&log);
    let witness = ServerKey::generate();
    assert_eq!(
        v.cosign(&witness, "b.example", 1),
        Err(WitnessError::NoCheckpoint)
    );
    let head = log.head();
    assert_eq!(
        v.update(head, &log.proof(0)).unwrap(),
        Update::First { size: TreeSize(0) }
    );
    for step in [1u32, 1, 2, 5, 8, 13, 1] {
        let old = log.tree.size().0;
        log.grow(step);
        let head = log.head();
        let u = v.update(head.clone(), &log.proof(old)).unwrap();
        assert_eq!(
            u,
            Update::Advanced {
                old: TreeSize(old),
                new: log.tree.size()
            }
        );
        let co = v.cosign(&witness, "b.example", 2_000).unwrap();
        let mut cosigned = head;
        cosigned.add_cosignature(&co).unwrap();
        let parsed = SignedCheckpoint::parse(cosigned.to_note().as_bytes()).unwrap();
        parsed.verify(log.key.public(), LOG).unwrap();
        parsed.cosignature(witness.public(), "b.example").unwrap();
    }
    let same = log.head();
    let size = log.tree.size().0;
    assert_eq!(v.update(same, &log.proof(size)).unwrap(), Update::Unchanged);
    // A replayed older head is stale, not evidence.
    let old = log.signed(3, log.tree.root_at(TreeSize(3)).unwrap(), 5);
    assert!(matches!(
        v.update(old, &log.proof(0)),
        Err(WitnessError::Stale { .. })
    ));
    assert!(!v.is_compromised());
    // A mirror restarts from its stored checkpoint and carries on.
    let stored = SignedCheckpoint::parse(v.latest().unwrap().to_note().as_bytes()).unwrap();
    let mut resumed = LogView::resume(ORIGIN, log.key.public().clone(), LOG, stored).unwrap();
    let old = log.tree.size().0;
    log.grow(3);
    let u = resumed.update(log.head(), &log.proof(old)).unwrap();
    assert!(matches!(u, Update::Advanced { .. }));
    let other = ServerKey::generate();
    let stored = v.latest().unwrap().clone();
    assert!(LogView::resume(ORIGIN, other.public().clone(), LOG, stored).is_err());
}

#[test]
fn a_resumed_view_with_stored_evidence_comes_back_compromised() {
    let mut log = Log::new();
    log.grow(5);
    let mut v = view(&log);
    let head = log.head();
    v.update(head.clone(), &log.proof(0)).unwrap();
    let fork = log.signed(5, leaf_hash(b"fork"), log.time + 1);
    let Err(WitnessError::Misbehaviour(e)) = v.update(fork, &log.proof(5)) else {
        panic!("split view not caught");
    };
    let stored = Evidence::from_cbor(&e.to_cbor()).unwrap();
    let mut resumed = LogView::resume(ORIGIN, log.key.public().clone(), LOG, head).unwrap();
    resumed.restore_evidence(stored.clone()).unwrap();
    assert!(resumed.is_compromised());
    assert_eq!(resumed.evidence(), Some(&*e));
    log.grow(1);
    assert_eq!(
        resumed.update(log.head(), &log.proof(5)),
        Err(WitnessError::Compromised)
    );
    // Evidence of another key proves nothing about this log.
    let mut other = LogView::new(ORIGIN, ServerKey::generate().public().clone(), LOG);
    assert_eq!(
        other.restore_evidence(stored),
        Err(WitnessError::NoContradiction)
    );
    assert!(!other.is_compromised());
}

#[test]
fn unsigned_or_foreign_checkpoints_are_refused_without_evidence() {
    let mut log = Log::new();
    let mut v = view(&log);
    log.grow(3);
    let imposter = ServerKey::generate();
    let c = Checkpoint::new(ORIGIN, TreeSize(3), log.tree.root(), 5).unwrap();
    let forged = SignedCheckpoint::sign(&c, &imposter, LOG).unwrap();
    assert!(matches!(
        v.update(forged, &log.proof(0)),
        Err(WitnessError::Checkpoint(_))
    ));
    let c = Checkpoint::new("a.example/topic/other", TreeSize(3), log.tree.root(), 5).unwrap();
    let other = SignedCheckpoint::sign(&c, &log.key, LOG).unwrap();
    assert!(matches!(
        v.update(other, &log.proof(0)),
        Err(WitnessError::WrongOrigin { .. })
    ));
    let head = log.head();
    let bad_sizes = ConsistencyProof {
        old: TreeSize(1),
        new: TreeSize(3),
        path: vec![],
    };
    assert!(matches!(
        v.update(head, &bad_sizes),
        Err(WitnessError::ProofSizes { .. })
    ));
    assert!(!v.is_compromised());
}

#[test]
fn split_view_is_caught() {
    let mut log = Log::new();
    let mut v = view(&log);
    log.grow(5);
    v.update(log.head(), &log.proof(0)).unwrap();
    let fork = log.signed(5, leaf_hash(b"fork"), log.time + 1);
    let Err(WitnessError::Misbehaviour(e)) = v.update(fork, &log.proof(5)) else {
        panic!("split view not caught");
    };
    assert!(matches!(*e, Evidence::SplitView { .. }));
    assert_eq!(
        WitnessError::Misbehaviour(e.clone()).to_string(),
        "log misbehaved: split view"
    );
    e.verify(log.key.public(), LOG).unwrap();
    round_trip(&e).verify(log.key.public(), LOG).unwrap();
    assert_eq!(v.evidence(), Some(&*e));
    assert_eq!(e.origin(), ORIGIN);
    // Compromised: even an honest update is refused now.
    log.grow(1);
    assert_eq!(
        v.update(log.head(), &log.proof(5)),
        Err(WitnessError::Compromised)
    );
    assert_eq!(
        v.cosign(&ServerKey::generate(), "b.example", 1),
        Err(WitnessError::Compromised)
    );
}

#[test]
fn rollback_is_caught() {
    let mut log = Log::new();
    let mut v = view(&log);
    log.grow(7);
    v.update(log.head(), &log.proof(0)).unwrap();
    let back = log.signed(4, log.tree.root_at(TreeSize(4)).unwrap(), log.time + 10);
    let Err(WitnessError::Misbehaviour(e)) = v.update(back, &log.proof(0)) else {
        panic!("rollback not caught");
    };
    assert!(matches!(*e, Evidence::Rollback { .. }));
    round_trip(&e).verify(log.key.public(), LOG).unwrap();
    assert!(v.is_compromised());
}

#[test]
fn a_larger_head_signed_earlier_than_the_held_one_is_a_rollback() {
    // The unequal fork of issue 9: this view holds the smaller branch's head, signed later
    // than the other branch's larger head it is shown afterwards.
    let mut log = Log::new();
    log.grow(7);
    let larger = log.signed(7, log.tree.root(), 100);
    let smaller = log.signed(5, log.tree.root_at(TreeSize(5)).unwrap(), 103);
    let first = |size| ConsistencyProof {
        old: TreeSize(0),
        new: TreeSize(size),
        path: vec![],
    };
    let mut v = view(&log);
    v.update(smaller.clone(), &first(5)).unwrap();
    let proof = log
        .tree
        .consistency_proof(TreeSize(5), TreeSize(7))
        .unwrap();
    let Err(WitnessError::Misbehaviour(e)) = v.update(larger.clone(), &proof) else {
        panic!("rollback not caught on the smaller side");
    };
    let Evidence::Rollback { old, new } = &*e else {
        panic!("not a rollback: {e:?}");
    };
    assert_eq!((old, new), (&larger, &smaller));
    round_trip(&e).verify(log.key.public(), LOG).unwrap();
    assert!(v.is_compromised());
    // The other order of arrival finds the same contradiction.
    let mut w = view(&log);
    w.update(larger.clone(), &first(7)).unwrap();
    let Err(WitnessError::Misbehaviour(f)) = w.update(smaller.clone(), &first(5)) else {
        panic!("rollback not caught on the larger side");
    };
    assert_eq!(f, e);
    // Evidence holding the two in the other order verifies as well.
    let swapped = Evidence::Rollback {
        old: smaller.clone(),
        new: larger.clone(),
    };
    swapped.verify(log.key.public(), LOG).unwrap();
    // A larger head signed in the same second as the smaller one held is honest growth.
    let mut u = view(&log);
    u.update(
        log.signed(5, log.tree.root_at(TreeSize(5)).unwrap(), 100),
        &first(5),
    )
    .unwrap();
    assert!(matches!(
        u.update(larger, &proof),
        Ok(Update::Advanced { .. })
    ));
}

#[test]
fn an_older_head_signed_in_the_same_second_is_stale_not_a_rollback() {
    // Heads are signed per append with second resolution: sizes 4 and 7 can share a time,
    // and a mirror that receives them out of order must not convict an honest log.
    let mut log = Log::new();
    let mut v = view(&log);
    log.grow(7);
    v.update(log.head(), &log.proof(0)).unwrap();
    let same_second = log.signed(4, log.tree.root_at(TreeSize(4)).unwrap(), log.time);
    assert!(matches!(
        v.update(same_second, &log.proof(0)),
        Err(WitnessError::Stale { .. })
    ));
    assert!(!v.is_compromised());
}

#[test]
fn bad_proof_is_caught() {
    let mut log = Log::new();
    let mut v = view(&log);
    log.grow(6);
    v.update(log.head(), &log.proof(0)).unwrap();
    // The log rewrites history: a new tree of 9 leaves that does not extend the first 6.
    let mut fork = Tree::new(MemoryNodeStore::new());
    for i in 0u64..9 {
        fork.append(&(i + 100).to_be_bytes()).unwrap();
    }
    let head = log.signed(9, fork.root(), log.time + 1);
    let proof = fork.consistency_proof(TreeSize(6), TreeSize(9)).unwrap();
    let Err(WitnessError::Misbehaviour(e)) = v.update(head, &proof) else {
        panic!("inconsistency not caught");
    };
    assert!(matches!(*e, Evidence::Inconsistent { .. }));
    round_trip(&e).verify(log.key.public(), LOG).unwrap();
}

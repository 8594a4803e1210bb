//! A mirror's view of one log (`federation-spec/tag-log.md` §7).
//!
//! The homeserver's mirror and the clients use the same [`LogView`]: it keeps the latest
//! checkpoint it verified for one origin, accepts a new one only with a valid signature and a
//! consistency proof from the one it holds, and can then cosign it. When the hosting server
//! contradicts itself, the view keeps [`Evidence`] that anyone holding the server's public key
//! can check from scratch ([`Evidence::verify`]), and refuses every further update.

use super::TreeSize;
use super::checkpoint::{CheckpointError, SignedCheckpoint};
use super::cosignature::Cosignature;
use super::evidence::Evidence;
use super::proof::ConsistencyProof;
use crate::crypto::{ServerKey, ServerPublicKey};

/// Why a [`LogView`] refused a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The checkpoint is malformed or not signed by the hosting server.
    #[error("checkpoint refused: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint is for another log.
    #[error("checkpoint is for origin {got:?}, expected {expected:?}")]
    WrongOrigin {
        /// The view's origin.
        expected: String,
        /// The checkpoint's origin.
        got: String,
    },
    /// The proof is not between the held size and the new size.
    #[error("proof is for sizes {got_old}..{got_new}, expected {expected_old}..{expected_new}")]
    ProofSizes {
        /// Size held by the view.
        expected_old: u64,
        /// Size of the new checkpoint.
        expected_new: u64,
        /// The proof's old size.
        got_old: u64,
        /// The proof's new size.
        got_new: u64,
    },
    /// A smaller, older checkpoint than the one held: a replay, not a contradiction.
    #[error(
        "stale checkpoint: size {got} at time {got_time}, holding size {held} at time {held_time}"
    )]
    Stale {
        /// Size held.
        held: u64,
        /// Time of the held checkpoint.
        held_time: u64,
        /// Size offered.
        got: u64,
        /// Time of the offered checkpoint.
        got_time: u64,
    },
    /// The log contradicted itself; the evidence is kept in the view as well.
    #[error("log misbehaved: {}", .0.kind())]
    Misbehaviour(Box<Evidence>),
    /// The view already holds evidence against this log and accepts nothing more from it.
    #[error("log is compromised; no further updates accepted")]
    Compromised,
    /// There is no checkpoint to cosign yet.
    #[error("no checkpoint verified yet")]
    NoCheckpoint,
    /// Evidence offered to [`LogView::restore_evidence`] does not verify.
    #[error("the evidence does not show a contradiction of this log")]
    NoContradiction,
}

/// What an accepted update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// First checkpoint accepted (trust on first use of the given key).
    First {
        /// Its size.
        size: TreeSize,
    },
    /// The log grew consistently.
    Advanced {
        /// The size held before.
        old: TreeSize,
        /// The size held now.
        new: TreeSize,
    },
    /// Same size and root as held (possibly a later time).
    Unchanged,
}

/// A mirror's (or client's) view of one log: the latest verified checkpoint, or evidence that
/// the log cannot be trusted.
#[derive(Debug, Clone)]
pub struct LogView {
    origin: String,
    key: ServerPublicKey,
    key_name: String,
    latest: Option<SignedCheckpoint>,
    evidence: Option<Evidence>,
}

impl LogView {
    /// A view of the log `origin`, whose checkpoints the hosting server signs with `key` under
    /// `key_name`. It holds no checkpoint yet.
    pub fn new(origin: &str, key: ServerPublicKey, key_name: &str) -> Self {
        LogView {
            origin: origin.to_owned(),
            key,
            key_name: key_name.to_owned(),
            latest: None,
            evidence: None,
        }
    }

    /// Resumes a view from a checkpoint stored earlier (e.g. by a mirror across restarts); the
    /// checkpoint's signature and origin are checked again.
    pub fn resume(
        origin: &str,
        key: ServerPublicKey,
        key_name: &str,
        latest: SignedCheckpoint,
    ) -> Result<Self, WitnessError> {
        let mut view = LogView::new(origin, key, key_name);
        let size = latest.verify(&view.key, &view.key_name)?.size;
        let empty = ConsistencyProof {
            old: TreeSize(0),
            new: size,
            path: Vec::new(),
        };
        view.update(latest, &empty)?;
        Ok(view)
    }

    /// Restores evidence found before (e.g. stored by a mirror or a client across restarts):
    /// the view comes back compromised. The evidence is checked again with the view's key and
    /// must be about the view's origin; a view that already holds evidence keeps its own.
    pub fn restore_evidence(&mut self, evidence: Evidence) -> Result<(), WitnessError> {
        evidence
            .verify(&self.key, &self.key_name)
            .map_err(|_| WitnessError::NoContradiction)?;
        if evidence.origin() != self.origin {
            return Err(WitnessError::WrongOrigin {
                expected: self.origin.clone(),
                got: evidence.origin().to_owned(),
            });
        }
        if self.evidence.is_none() {
            self.evidence = Some(evidence);
        }
        Ok(())
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The latest verified checkpoint.
    pub fn latest(&self) -> Option<&SignedCheckpoint> {
        self.latest.as_ref()
    }

    /// The evidence found against the log, if any. A view with evidence is compromised.
    pub fn evidence(&self) -> Option<&Evidence> {
        self.evidence.as_ref()
    }

    /// Whether the view found evidence and refuses further updates.
    pub fn is_compromised(&self) -> bool {
        self.evidence.is_some()
    }

    /// Offers a new checkpoint with the consistency proof from the held checkpoint's size to
    /// its size.
    ///
    /// With no checkpoint held, or when the held one is of the empty tree, the proof must be
    /// from size 0 and empty (as in the C2SP tlog-witness protocol). With equal sizes the proof
    /// is not consulted: equal roots are [`Update::Unchanged`], different roots a split view.
    pub fn update(
        &mut self,
        new: SignedCheckpoint,
        proof: &ConsistencyProof,
    ) -> Result<Update, WitnessError> {
        if self.evidence.is_some() {
            return Err(WitnessError::Compromised);
        }
        let c = new.verify(&self.key, &self.key_name)?.clone();
        if c.origin != self.origin {
            return Err(WitnessError::WrongOrigin {
                expected: self.origin.clone(),
                got: c.origin,
            });
        }
        let Some(held) = self.latest.take() else {
            check_proof_sizes(proof, 0, c.size.0, true)?;
            self.latest = Some(new);
            return Ok(Update::First { size: c.size });
        };
        // Both signatures were verified when accepted; the held one is trusted.
        let h = held.unverified_checkpoint().clone();
        self.latest = Some(held);
        if c.size < h.size {
            if c.time <= h.time {
                return Err(WitnessError::Stale {
                    held: h.size.0,
                    held_time: h.time,
                    got: c.size.0,
                    got_time: c.time,
                });
            }
            return Err(self.found(|old| Evidence::Rollback { old, new }));
        }
        if c.size == h.size {
            if c.root != h.root {
                return Err(self.found(|a| Evidence::SplitView { a, b: new }));
            }
            if c.time > h.time {
                self.latest = Some(new);
            }
            return Ok(Update::Unchanged);
        }
        if c.time < h.time {
            // tag-log.md §7.2 step 8: larger yet signed strictly earlier than the smaller one
            // held — the log went back after signing `new`, whichever came to us first.
            return Err(self.found(|held| Evidence::Rollback {
                old: new,
                new: held,
            }));
        }
        if h.size.0 == 0 {
            // Every tree is consistent with the empty tree (C2SP tlog-witness, `old 0`).
            check_proof_sizes(proof, 0, c.size.0, true)?;
        } else {
            check_proof_sizes(proof, h.size.0, c.size.0, false)?;
            // RFC 9162 §2.1.4.2
            if proof.verify(&h.root, &c.root).is_err() {
                let proof = proof.clone();
                return Err(self.found(|old| Evidence::Inconsistent { old, new, proof }));
            }
        }
        self.latest = Some(new);
        Ok(Update::Advanced {
            old: h.size,
            new: c.size,
        })
    }

    /// Cosigns the latest checkpoint with the mirror's key, as witness `witness_name`, at `time`.
    pub fn cosign(
        &self,
        key: &ServerKey,
        witness_name: &str,
        time: u64,
    ) -> Result<Cosignature, WitnessError> {
        if self.evidence.is_some() {
            return Err(WitnessError::Compromised);
        }
        let latest = self.latest.as_ref().ok_or(WitnessError::NoCheckpoint)?;
        Ok(Cosignature::sign(
            key,
            witness_name,
            latest.unverified_checkpoint(),
            time,
        )?)
    }

    /// Records evidence built from the held checkpoint and returns the error that carries it.
    fn found(&mut self, make: impl FnOnce(SignedCheckpoint) -> Evidence) -> WitnessError {
        let Some(held) = self.latest.clone() else {
            return WitnessError::NoCheckpoint;
        };
        let evidence = make(held);
        self.evidence = Some(evidence.clone());
        WitnessError::Misbehaviour(Box::new(evidence))
    }
}

fn check_proof_sizes(
    proof: &ConsistencyProof,
    old: u64,
    new: u64,
    must_be_empty: bool,
) -> Result<(), WitnessError> {
    if proof.old.0 != old || proof.new.0 != new || (must_be_empty && !proof.path.is_empty()) {
        return Err(WitnessError::ProofSizes {
            expected_old: old,
            expected_new: new,
            got_old: proof.old.0,
            got_new: proof.new.0,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
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
}

//! Portable evidence that a log's hosting server contradicted itself (`federation-spec/tag-log.md` §8).
//!
//! [`Evidence`] holds the log's own signed checkpoints (and, for an inconsistency, the proof it
//! gave), so anyone with the hosting server's public key can check it from scratch with
//! [`Evidence::verify`]. It travels and is stored as CBOR ([`Evidence::to_cbor`]).
//!
//! Strength of the evidence: a [`Evidence::SplitView`] and a [`Evidence::Rollback`] consist of
//! the log's own signatures only, so they cannot be forged without its key. An
//! [`Evidence::Inconsistent`] also carries the consistency proof that failed; proofs are not
//! signed, so it shows that the log *gave* a failing proof (or that whoever presents it does);
//! an honest log refutes it by producing a valid proof between the two signed heads.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::checkpoint::{CheckpointError, MAX_NOTE_SIZE, SignedCheckpoint};
use super::host_keys::{HostKeyError, HostKeys};
use super::proof::{ConsistencyProof, parse_path};
use super::{TlogError, TreeSize};
use crate::crypto::ServerPublicKey;
use crate::wire::{VERSION, WireError, decode_versioned, encode};

/// Largest encoded [`Evidence`] accepted.
pub const MAX_EVIDENCE_SIZE: usize = 2 * MAX_NOTE_SIZE + 64 * 34 + 64;
/// Most hashes in a proof carried by evidence (a proof in a tree of `2^63` leaves has 64).
const MAX_PROOF_HASHES: usize = 65;

/// Why [`Evidence`] does not show misbehaviour, or could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// A checkpoint in it is malformed or not signed by the given key.
    #[error("checkpoint in evidence: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A key of the hosting server signed a checkpoint in it outside the key's period.
    #[error("checkpoint in evidence: {0}")]
    KeyOutOfPeriod(String),
    /// The two checkpoints are for different logs.
    #[error("checkpoints have different origins")]
    DifferentOrigins,
    /// The checkpoints (and proof) do not contradict each other.
    #[error("no contradiction: {0}")]
    NoContradiction(&'static str),
    /// The bytes are not valid encoded evidence.
    #[error("evidence encoding: {0}")]
    Wire(#[from] WireError),
}

/// Proof that the hosting server signed contradictory checkpoints for one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Two checkpoints of the same size with different roots.
    SplitView {
        /// One checkpoint.
        a: SignedCheckpoint,
        /// The other, of the same size and a different root.
        b: SignedCheckpoint,
    },
    /// A checkpoint and a later, larger one, and the consistency proof the log gave between
    /// them, which fails.
    Inconsistent {
        /// The earlier checkpoint.
        old: SignedCheckpoint,
        /// The larger checkpoint.
        new: SignedCheckpoint,
        /// The failing proof from `old` to `new`.
        proof: ConsistencyProof,
    },
    /// A checkpoint signed strictly later than another, yet smaller: the log went back.
    /// [`Evidence::verify`] accepts the two in either order; [`LogView`](super::LogView)
    /// puts the larger first.
    Rollback {
        /// The larger, earlier checkpoint.
        old: SignedCheckpoint,
        /// The smaller checkpoint, signed strictly after `old`.
        new: SignedCheckpoint,
    },
}

const KIND_SPLIT_VIEW: u8 = 1;
const KIND_INCONSISTENT: u8 = 2;
const KIND_ROLLBACK: u8 = 3;

/// Wire form: `[version, kind, note a, note b, proof old, proof new, [proof hashes]]`.
#[derive(Serialize, Deserialize)]
struct EvidenceWire(u8, u8, ByteBuf, ByteBuf, u64, u64, Vec<ByteBuf>);

impl Evidence {
    /// Checks from scratch that this evidence shows misbehaviour by the log whose key is `key`
    /// and key name `key_name`.
    pub fn verify(&self, key: &ServerPublicKey, key_name: &str) -> Result<(), EvidenceError> {
        self.verify_with(&HostKeys::new(key_name, key.clone()))
    }

    /// [`Self::verify`] for a hosting server whose key rotated: each checkpoint must verify
    /// under the key of `keys` for its time (`tag-log.md` §7.6).
    pub fn verify_with(&self, keys: &HostKeys) -> Result<(), EvidenceError> {
        let (a, b) = self.checkpoints();
        let verify = |note| {
            keys.verify(note).map_err(|e| match e {
                HostKeyError::Checkpoint(e) => EvidenceError::Checkpoint(e),
                e @ HostKeyError::OutOfPeriod { .. } => {
                    EvidenceError::KeyOutOfPeriod(e.to_string())
                }
            })
        };
        let (a, b) = (verify(a)?, verify(b)?);
        if a.origin != b.origin {
            return Err(EvidenceError::DifferentOrigins);
        }
        match self {
            Evidence::SplitView { .. } => {
                if a.size != b.size {
                    return Err(EvidenceError::NoContradiction("sizes differ"));
                }
                if a.root == b.root {
                    return Err(EvidenceError::NoContradiction("roots are equal"));
                }
            }
            Evidence::Inconsistent { proof, .. } => {
                if a.size.0 == 0 || a.size >= b.size {
                    return Err(EvidenceError::NoContradiction(
                        "sizes do not grow from a non-empty tree",
                    ));
                }
                if proof.old != a.size || proof.new != b.size {
                    return Err(EvidenceError::NoContradiction("proof is for other sizes"));
                }
                // RFC 9162 §2.1.4.2
                if proof.verify(&a.root, &b.root).is_ok() {
                    return Err(EvidenceError::NoContradiction("proof verifies"));
                }
            }
            Evidence::Rollback { .. } => {
                // tag-log.md §8.1: in either order, the larger one signed strictly earlier.
                let (larger, smaller) = match a.size.cmp(&b.size) {
                    std::cmp::Ordering::Greater => (a, b),
                    std::cmp::Ordering::Less => (b, a),
                    std::cmp::Ordering::Equal => {
                        return Err(EvidenceError::NoContradiction("sizes are equal"));
                    }
                };
                if smaller.time <= larger.time {
                    return Err(EvidenceError::NoContradiction(
                        "smaller checkpoint is not later",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The contradiction two checkpoints of one log show by themselves, without a proof:
    /// equal sizes with different roots ([`Evidence::SplitView`]), or the larger one signed
    /// strictly earlier than the smaller one ([`Evidence::Rollback`], larger first), whichever
    /// was seen first (`federation-spec/tag-log.md` §8.1). Both notes must have been verified
    /// with the log's key by the caller; `None` for other origins or no contradiction.
    pub fn between(a: &SignedCheckpoint, b: &SignedCheckpoint) -> Option<Evidence> {
        let (x, y) = (a.unverified_checkpoint(), b.unverified_checkpoint());
        if x.origin != y.origin {
            return None;
        }
        match x.size.cmp(&y.size) {
            std::cmp::Ordering::Equal if x.root != y.root => Some(Evidence::SplitView {
                a: a.clone(),
                b: b.clone(),
            }),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => (x.time < y.time).then(|| Evidence::Rollback {
                old: a.clone(),
                new: b.clone(),
            }),
            std::cmp::Ordering::Less => (y.time < x.time).then(|| Evidence::Rollback {
                old: b.clone(),
                new: a.clone(),
            }),
        }
    }

    /// The two signed notes, in the order of the wire form (§8.2).
    pub fn notes(&self) -> (&SignedCheckpoint, &SignedCheckpoint) {
        self.checkpoints()
    }

    /// A short name of the kind of misbehaviour: `split view`, `inconsistent` or `rollback`.
    pub fn kind(&self) -> &'static str {
        match self {
            Evidence::SplitView { .. } => "split view",
            Evidence::Inconsistent { .. } => "inconsistent",
            Evidence::Rollback { .. } => "rollback",
        }
    }

    /// The origin named by the (first) checkpoint, unverified.
    pub fn origin(&self) -> &str {
        &self.checkpoints().0.unverified_checkpoint().origin
    }

    fn checkpoints(&self) -> (&SignedCheckpoint, &SignedCheckpoint) {
        match self {
            Evidence::SplitView { a, b } => (a, b),
            Evidence::Inconsistent { old, new, .. } | Evidence::Rollback { old, new } => (old, new),
        }
    }

    /// CBOR encoding, to store and to send.
    pub fn to_cbor(&self) -> Vec<u8> {
        let (a, b) = self.checkpoints();
        let (kind, old, new, path) = match self {
            Evidence::SplitView { .. } => (KIND_SPLIT_VIEW, 0, 0, Vec::new()),
            Evidence::Rollback { .. } => (KIND_ROLLBACK, 0, 0, Vec::new()),
            Evidence::Inconsistent { proof, .. } => (
                KIND_INCONSISTENT,
                proof.old.0,
                proof.new.0,
                proof
                    .path
                    .iter()
                    .map(|h| ByteBuf::from(h.0.to_vec()))
                    .collect(),
            ),
        };
        encode(&EvidenceWire(
            VERSION,
            kind,
            ByteBuf::from(a.to_note().into_bytes()),
            ByteBuf::from(b.to_note().into_bytes()),
            old,
            new,
            path,
        ))
    }

    /// Decodes evidence (not yet verified: call [`Evidence::verify`]).
    pub fn from_cbor(bytes: &[u8]) -> Result<Evidence, EvidenceError> {
        let EvidenceWire(_, kind, a, b, old, new, path) =
            decode_versioned(bytes, MAX_EVIDENCE_SIZE)?;
        let invalid = |field, reason: &str| {
            EvidenceError::Wire(WireError::InvalidField {
                field,
                reason: reason.to_owned(),
            })
        };
        let a = SignedCheckpoint::parse(&a)?;
        let b = SignedCheckpoint::parse(&b)?;
        let no_proof = old == 0 && new == 0 && path.is_empty();
        match kind {
            KIND_SPLIT_VIEW if no_proof => Ok(Evidence::SplitView { a, b }),
            KIND_ROLLBACK if no_proof => Ok(Evidence::Rollback { old: a, new: b }),
            KIND_SPLIT_VIEW | KIND_ROLLBACK => Err(invalid("proof", "must be empty")),
            KIND_INCONSISTENT => {
                if path.len() > MAX_PROOF_HASHES {
                    return Err(invalid("proof", "too many hashes"));
                }
                let path =
                    parse_path(&path).map_err(|e: TlogError| invalid("proof", &e.to_string()))?;
                Ok(Evidence::Inconsistent {
                    old: a,
                    new: b,
                    proof: ConsistencyProof {
                        old: TreeSize(old),
                        new: TreeSize(new),
                        path,
                    },
                })
            }
            _ => Err(invalid("kind", "unknown evidence kind")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ServerKey;
    use crate::tlog::witness::tests::{LOG, Log, ORIGIN};
    use crate::tlog::{Checkpoint, leaf_hash};

    #[test]
    fn forged_evidence_is_rejected() {
        let mut log = Log::new();
        log.grow(6);
        let a = log.head();
        let key = log.key.public().clone();
        // Not signed by the log's key.
        let imposter = ServerKey::generate();
        let c = Checkpoint::new(ORIGIN, TreeSize(6), leaf_hash(b"fork"), 9).unwrap();
        let forged = SignedCheckpoint::sign(&c, &imposter, LOG).unwrap();
        let e = Evidence::SplitView {
            a: a.clone(),
            b: forged,
        };
        assert!(matches!(
            e.verify(&key, LOG),
            Err(EvidenceError::Checkpoint(_))
        ));
        // Two equal roots.
        let again = log.head();
        let e = Evidence::SplitView {
            a: a.clone(),
            b: again.clone(),
        };
        assert!(matches!(
            e.verify(&key, LOG),
            Err(EvidenceError::NoContradiction(_))
        ));
        // Different sizes are no split view.
        log.grow(2);
        let b = log.head();
        assert!(
            Evidence::SplitView {
                a: a.clone(),
                b: b.clone()
            }
            .verify(&key, LOG)
            .is_err()
        );
        // A valid proof is no inconsistency.
        let proof = log
            .tree
            .consistency_proof(TreeSize(6), TreeSize(8))
            .unwrap();
        let e = Evidence::Inconsistent {
            old: a.clone(),
            new: b.clone(),
            proof: proof.clone(),
        };
        assert!(matches!(
            e.verify(&key, LOG),
            Err(EvidenceError::NoContradiction("proof verifies"))
        ));
        // A proof for other sizes proves nothing.
        let other = log
            .tree
            .consistency_proof(TreeSize(5), TreeSize(8))
            .unwrap();
        let e = Evidence::Inconsistent {
            old: a.clone(),
            new: b.clone(),
            proof: other,
        };
        assert!(e.verify(&key, LOG).is_err());
        // A smaller head signed *earlier* is normal growth, not a rollback.
        let e = Evidence::Rollback {
            old: b.clone(),
            new: a.clone(),
        };
        assert!(matches!(
            e.verify(&key, LOG),
            Err(EvidenceError::NoContradiction(_))
        ));
        // ... in either order.
        let e = Evidence::Rollback {
            old: a.clone(),
            new: b.clone(),
        };
        assert!(matches!(
            e.verify(&key, LOG),
            Err(EvidenceError::NoContradiction(_))
        ));
        // Equal sizes are no rollback, whatever the times.
        let later = log.signed(8, log.tree.root(), log.time + 5);
        let e = Evidence::Rollback {
            old: b.clone(),
            new: later,
        };
        assert!(matches!(
            e.verify(&key, LOG),
            Err(EvidenceError::NoContradiction("sizes are equal"))
        ));
        // Different origins.
        let c = Checkpoint::new("a.example/topic/other", TreeSize(6), leaf_hash(b"x"), 5).unwrap();
        let foreign = SignedCheckpoint::sign(&c, &log.key, LOG).unwrap();
        let e = Evidence::SplitView { a, b: foreign };
        assert_eq!(e.verify(&key, LOG), Err(EvidenceError::DifferentOrigins));
    }

    #[test]
    fn two_notes_show_a_contradiction_by_themselves() {
        let mut log = Log::new();
        log.grow(6);
        let root6 = log.tree.root();
        let six = log.signed(6, root6, 50);
        let four = log.signed(4, log.tree.root_at(TreeSize(4)).unwrap(), 51);
        let key = log.key.public().clone();
        for (a, b) in [(&six, &four), (&four, &six)] {
            let e = Evidence::between(a, b).unwrap();
            assert_eq!(e.notes(), (&six, &four), "larger first");
            e.verify(&key, LOG).unwrap();
        }
        // Same second, or the smaller one earlier: honest.
        let four_same = log.signed(4, log.tree.root_at(TreeSize(4)).unwrap(), 50);
        assert_eq!(Evidence::between(&six, &four_same), None);
        assert_eq!(Evidence::between(&four_same, &six), None);
        let fork = log.signed(6, leaf_hash(b"fork"), 10);
        let e = Evidence::between(&six, &fork).unwrap();
        assert!(matches!(e, Evidence::SplitView { .. }));
        e.verify(&key, LOG).unwrap();
        assert_eq!(Evidence::between(&six, &log.signed(6, root6, 99)), None);
    }

    #[test]
    fn evidence_decoding_errors() {
        assert!(Evidence::from_cbor(&[]).is_err());
        assert!(Evidence::from_cbor(&vec![0u8; MAX_EVIDENCE_SIZE + 1]).is_err());
        let mut log = Log::new();
        log.grow(2);
        let a = log.head();
        let note = ByteBuf::from(a.to_note().into_bytes());
        let wire = |kind, old, new, path| {
            encode(&EvidenceWire(
                VERSION,
                kind,
                note.clone(),
                note.clone(),
                old,
                new,
                path,
            ))
        };
        assert!(Evidence::from_cbor(&wire(9, 0, 0, vec![])).is_err());
        assert!(Evidence::from_cbor(&wire(KIND_SPLIT_VIEW, 1, 2, vec![])).is_err());
        assert!(
            Evidence::from_cbor(&wire(
                KIND_INCONSISTENT,
                1,
                2,
                vec![ByteBuf::from(vec![0; 31])]
            ))
            .is_err()
        );
        assert!(
            Evidence::from_cbor(&wire(
                KIND_INCONSISTENT,
                1,
                2,
                vec![ByteBuf::from(vec![0; 32]); 66]
            ))
            .is_err()
        );
        Evidence::from_cbor(&wire(KIND_SPLIT_VIEW, 0, 0, vec![])).unwrap();
        let mut v2 = wire(KIND_SPLIT_VIEW, 0, 0, vec![]);
        v2[1] = 2;
        assert!(matches!(
            Evidence::from_cbor(&v2),
            Err(EvidenceError::Wire(WireError::UnsupportedVersion { .. }))
        ));
    }
}

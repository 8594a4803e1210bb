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
use super::host_keys::{HostKeyError, HostKeys, RotationError, SignedRotation};
use super::proof::ConsistencyProof;
use crate::crypto::{ServerKey, ServerPublicKey};

/// Why a [`LogView`] refused a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The checkpoint is malformed or not signed by the hosting server.
    #[error("checkpoint refused: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A key of the hosting server signed the checkpoint outside its period (a retired key
    /// after its rotation, `tag-log.md` §7.6).
    #[error("checkpoint refused: {0}")]
    KeyOutOfPeriod(String),
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

/// The hosting server's signature on `note`, by the key of `keys` for its time.
fn verify<'a>(
    keys: &HostKeys,
    note: &'a SignedCheckpoint,
) -> Result<&'a super::Checkpoint, WitnessError> {
    keys.verify(note).map_err(|e| match e {
        HostKeyError::Checkpoint(e) => WitnessError::Checkpoint(e),
        e @ HostKeyError::OutOfPeriod { .. } => WitnessError::KeyOutOfPeriod(e.to_string()),
    })
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
    keys: HostKeys,
    latest: Option<SignedCheckpoint>,
    evidence: Option<Evidence>,
}

impl LogView {
    /// A view of the log `origin`, whose checkpoints the hosting server signs with `key` under
    /// `key_name`. It holds no checkpoint yet.
    pub fn new(origin: &str, key: ServerPublicKey, key_name: &str) -> Self {
        LogView::with_keys(origin, HostKeys::new(key_name, key))
    }

    /// A view of the log `origin`, whose checkpoints the hosting server signs with the keys of
    /// `keys`, each in its period (`tag-log.md` §7.6).
    pub fn with_keys(origin: &str, keys: HostKeys) -> Self {
        LogView {
            origin: origin.to_owned(),
            keys,
            latest: None,
            evidence: None,
        }
    }

    /// The hosting server's keys this view checks checkpoints with.
    pub fn keys(&self) -> &HostKeys {
        &self.keys
    }

    /// Follows the hosting server's key rotations in `statements` ([`HostKeys::learn`]):
    /// `Ok(true)` when the view now knows a key it did not.
    pub fn learn_keys(&mut self, statements: &[SignedRotation]) -> Result<bool, RotationError> {
        self.keys.learn(statements)
    }

    /// Resumes a view from a checkpoint stored earlier (e.g. by a mirror across restarts); the
    /// checkpoint's signature and origin are checked again.
    pub fn resume(
        origin: &str,
        key: ServerPublicKey,
        key_name: &str,
        latest: SignedCheckpoint,
    ) -> Result<Self, WitnessError> {
        LogView::resume_with(origin, HostKeys::new(key_name, key), latest)
    }

    /// [`Self::resume`] with the keys of a chain.
    pub fn resume_with(
        origin: &str,
        keys: HostKeys,
        latest: SignedCheckpoint,
    ) -> Result<Self, WitnessError> {
        let mut view = LogView::with_keys(origin, keys);
        let size = verify(&view.keys, &latest)?.size;
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
            .verify_with(&self.keys)
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
        let c = verify(&self.keys, &new)?.clone();
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
pub(crate) mod tests;

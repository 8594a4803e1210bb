//! Evidence that a hosting server signed a log holding an entry that breaks a topic rule at its
//! position (`federation-spec/tag-log.md` §8.4): the signed checkpoint, every entry up to and
//! including the bad one, and the log's consistency proof from there to the checkpoint. Anyone
//! with the hosting server's key checks it from scratch by replaying the entries. The host runs
//! the same rules on every append, so a log it signed with such an entry is its own doing — a
//! forged entry, or (with signatures covering the root at `seen`) a post from another branch of
//! a fork.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::log::{EntryError, LogEntry, Replayer, leaf_data, log_origin};
use crate::crypto::ServerPublicKey;
use crate::ids::TopicId;
use crate::tlog::{
    CheckpointError, ConsistencyProof, Frontier, LogHash, SignedCheckpoint, TreeSize,
};
use crate::wire::{WireError, decode, encode};

/// Largest encoded entry evidence accepted (a log prefix of up to this many bytes).
pub const MAX_ENTRY_EVIDENCE_SIZE: usize = 64 * 1024 * 1024;

/// Why entry evidence does not show what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryEvidenceError {
    /// The checkpoint does not parse or verify with the hosting server's key, or is of another
    /// log.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The entries do not add up to the checkpoint (root or consistency proof).
    #[error("the entries are not the first ones of the checkpoint's log: {0}")]
    NotInLog(String),
    /// An entry before the last is invalid already (the evidence should name that one), or the
    /// last one is valid: nothing is shown.
    #[error("no invalid entry at the end: {0}")]
    NoContradiction(String),
    /// The encoding.
    #[error("entry evidence encoding: {0}")]
    Wire(#[from] WireError),
}

/// Whether a rule `error` fails on what the entry's leaf commits to (`protocol.md` §8.1), so
/// that a signed tree holding the leaf convicts its host. A change's leaf is the hash of the
/// whole signed change: every failure counts. A message's leaf is `0x01 ‖ header ‖ tag`: its
/// ciphertext and signature are not in it, so only failures of the header and tag count
/// (sender, role, epoch, `seen`, a replayed tag), never a bad signature or tag (anyone on the
/// way could have altered those bytes).
pub fn committed(error: &EntryError) -> bool {
    use crate::message::MessageError as M;
    match error {
        // A verifier that lacks its own root cannot judge the change (a fault of its own log).
        EntryError::Change { error, .. } => {
            !matches!(error, super::ChangeError::RootUnknown { .. })
        }
        EntryError::Message { error, .. } => matches!(
            error,
            M::WrongEpoch { .. }
                | M::NotAMember(_)
                | M::NotAllowedToPost { .. }
                | M::Replayed
                | M::SeenAhead { .. }
        ),
        EntryError::Malformed { .. } | EntryError::Position { .. } => false,
    }
}

/// A signed log whose last given entry breaks a rule at its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryEvidence {
    /// The hosting server's checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// Entries `0 ..= i` of its log; entry `i` is the invalid one.
    pub entries: Vec<LogEntry>,
    /// The log's consistency proof from size `i + 1` to the checkpoint's size (empty when
    /// equal).
    pub proof: Vec<LogHash>,
}

/// `[1, note, [* log entry], [* proof hash]]`.
#[derive(Serialize, Deserialize)]
struct Wire(u8, ByteBuf, Vec<ByteBuf>, Vec<ByteBuf>);

impl EntryEvidence {
    /// Checks from scratch that the hosting server (`key`, `key_name`) signed a log of `topic`
    /// whose entry `entries.len() − 1` breaks a rule, the ones before it all valid. Returns the
    /// rule it breaks.
    pub fn verify(
        &self,
        topic: &TopicId,
        key: &ServerPublicKey,
        key_name: &str,
    ) -> Result<EntryError, EntryEvidenceError> {
        let c = self
            .checkpoint
            .verify(key, key_name)
            .map_err(|e: CheckpointError| EntryEvidenceError::Checkpoint(e.to_string()))?;
        if c.origin != log_origin(topic) {
            return Err(EntryEvidenceError::Checkpoint(format!(
                "of log {:?}, not of {topic}",
                c.origin
            )));
        }
        let Some((last, before)) = self.entries.split_last() else {
            return Err(EntryEvidenceError::NoContradiction("no entry".into()));
        };
        let mut frontier = Frontier::new();
        for entry in &self.entries {
            let leaf = leaf_data(entry).map_err(|e| EntryEvidenceError::NotInLog(e.to_string()))?;
            frontier
                .append(&leaf)
                .map_err(|e| EntryEvidenceError::NotInLog(e.to_string()))?;
        }
        let m = frontier.size();
        let in_log = match m == c.size {
            true => frontier.root() == c.root,
            false => ConsistencyProof {
                old: m,
                new: c.size,
                path: self.proof.clone(),
            }
            .verify(&frontier.root(), &c.root)
            .is_ok(),
        };
        if m > c.size || !in_log {
            return Err(EntryEvidenceError::NotInLog(format!(
                "{} entries do not extend to the checkpoint of size {}",
                m, c.size
            )));
        }
        let mut replayer = Replayer::new();
        for entry in before {
            replayer
                .push(entry)
                .map_err(|e| EntryEvidenceError::NoContradiction(e.to_string()))?;
        }
        let creates = |r: &Replayer| r.state().map(|s| s.topic() == topic);
        if creates(&replayer) == Some(false) {
            return Err(EntryEvidenceError::NoContradiction(
                "entry 0 creates another topic: the evidence should end there".into(),
            ));
        }
        match replayer.push(last) {
            // Entry 0 of this log must create this topic (`tag-log.md` §9.2).
            Ok(_) if creates(&replayer) == Some(false) => Ok(EntryError::Change {
                index: crate::tlog::LeafIndex(0),
                error: super::ChangeError::WrongTopic {
                    expected: topic.to_string(),
                    got: replayer
                        .state()
                        .map(|s| s.topic().to_string())
                        .unwrap_or_default(),
                },
            }),
            Ok(_) => Err(EntryEvidenceError::NoContradiction(
                "the last entry is valid".into(),
            )),
            Err(e) if committed(&e) => Ok(e),
            Err(e) => Err(EntryEvidenceError::NoContradiction(format!(
                "{e}: the leaf does not commit to what fails, so anyone could have altered it"
            ))),
        }
    }

    /// The CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        encode(&Wire(
            1,
            ByteBuf::from(self.checkpoint.to_note().into_bytes()),
            self.entries
                .iter()
                .map(|e| ByteBuf::from(e.to_wire()))
                .collect(),
            self.proof
                .iter()
                .map(|h| ByteBuf::from(h.as_bytes().to_vec()))
                .collect(),
        ))
    }

    /// Decodes (size limit first, version checked); does not verify.
    pub fn from_cbor(bytes: &[u8]) -> Result<EntryEvidence, EntryEvidenceError> {
        let wire: Wire = decode(bytes, MAX_ENTRY_EVIDENCE_SIZE)?;
        if wire.0 != 1 {
            return Err(WireError::InvalidField {
                field: "version",
                reason: format!("expected 1, got {}", wire.0),
            }
            .into());
        }
        let checkpoint = SignedCheckpoint::parse(&wire.1)
            .map_err(|e| EntryEvidenceError::Checkpoint(e.to_string()))?;
        let entries = wire
            .2
            .iter()
            .map(|e| LogEntry::from_wire(e))
            .collect::<Result<Vec<_>, _>>()?;
        if wire.3.len() > 64 {
            return Err(WireError::InvalidField {
                field: "proof",
                reason: "more than 64 hashes".into(),
            }
            .into());
        }
        let proof = wire
            .3
            .iter()
            .map(|h| {
                LogHash::from_slice(h).map_err(|e| WireError::InvalidField {
                    field: "proof hash",
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EntryEvidence {
            checkpoint,
            entries,
            proof,
        })
    }

    /// The size of the log prefix the evidence holds.
    pub fn prefix(&self) -> TreeSize {
        TreeSize(self.entries.len() as u64)
    }
}

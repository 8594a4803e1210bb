//! The evidence of a self-monitoring alarm (`directory.md` §6.3):
//! `[1, held note, new note, entry index, entry, inclusion proof]` — two checkpoints signed by
//! the server, the entry and its inclusion proof at the new note's size, which show anyone
//! with the server's key that it bound another key to the user.

use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use rendezvous_protocol::directory::{DirectoryEntry, MAX_ENTRY_SIZE};
use rendezvous_protocol::tlog::{
    HostKeys, InclusionProof, LeafIndex, LogHash, SignedCheckpoint, leaf_hash,
};
use rendezvous_protocol::wire::{VERSION, WireError, decode_versioned, encode};

/// Largest alarm evidence read back.
const MAX_ALARM: usize = 64 * 1024;

/// An alarm's evidence, as kept in `directory/<server>/alarm-<index>.cbor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct AlarmEvidence {
    /// Always 1.
    pub version: u8,
    /// The checkpoint this device held before the pass (the new one on a first pass).
    pub held: String,
    /// The checkpoint the pass ended at.
    pub new: String,
    /// The entry's leaf index.
    pub index: u64,
    /// The entry (leaf data).
    pub entry: ByteBuf,
    /// Its inclusion proof at the new note's size (empty if the server refused it).
    pub inclusion: Vec<ByteBuf>,
}

impl AlarmEvidence {
    /// The evidence of an alarm at `index`.
    pub fn new(held: &str, new: &str, index: u64, entry: &[u8], inclusion: &[LogHash]) -> Self {
        AlarmEvidence {
            version: VERSION,
            held: held.to_owned(),
            new: new.to_owned(),
            index,
            entry: ByteBuf::from(entry.to_vec()),
            inclusion: inclusion
                .iter()
                .map(|h| ByteBuf::from(h.0.to_vec()))
                .collect(),
        }
    }

    /// Its CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes the CBOR.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, WireError> {
        decode_versioned(bytes, MAX_ALARM)
    }

    /// The entry.
    pub fn entry(&self) -> Result<DirectoryEntry, String> {
        if self.entry.len() > MAX_ENTRY_SIZE {
            return Err("entry too large".into());
        }
        DirectoryEntry::decode(&self.entry).map_err(|e| e.to_string())
    }

    /// What a third party checks (`directory.md` §6.3): both notes verify under the server's
    /// `keys`, and the entry is included in the new note's tree at `index`.
    pub fn verify(&self, keys: &HostKeys) -> Result<(), String> {
        for note in [&self.held, &self.new] {
            let signed = SignedCheckpoint::parse(note.as_bytes()).map_err(|e| e.to_string())?;
            keys.verify(&signed).map_err(|e| e.to_string())?;
        }
        let new = SignedCheckpoint::parse(self.new.as_bytes()).map_err(|e| e.to_string())?;
        let checkpoint = new.unverified_checkpoint();
        let path = self
            .inclusion
            .iter()
            .map(|h| LogHash::from_slice(h).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        InclusionProof {
            index: LeafIndex(self.index),
            size: checkpoint.size,
            path,
        }
        .verify(&leaf_hash(&self.entry), &checkpoint.root)
        .map_err(|e| e.to_string())
    }
}

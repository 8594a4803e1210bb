//! Payloads of the cross-server topic events (`federation-api.md` §3.2, §9).
//!
//! ```text
//! topic.entry        = [first, [1*1000 bstr .cbor log-entry], checkpoint note]
//! topic.submit       = [submitter user, bstr .cbor log-entry]
//! topic.cosignature  = checkpoint note with the cosigner's line
//! backfill answer    = [1, first, [1*1000 bstr .cbor log-entry], checkpoint note]
//! ```
//!
//! Decoding checks only the shape; the topic rules, checkpoint signatures and log consistency
//! are checked by the receiver with the shared state machine and tag-log code.

use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::limits::{
    MAX_BACKFILL_LEN, MAX_COSIGNATURE_PAYLOAD_LEN, MAX_ENTRY_PAYLOAD_LEN, MAX_SUBMIT_PAYLOAD_LEN,
};
use crate::ids::UserId;
use crate::tlog::{CheckpointNote, LeafIndex, TreeSize};
use crate::wire::{VERSION, WireError, check_version, decode, decode_versioned, encode};

/// Most entries in one `topic.entry` event.
pub const MAX_ENTRIES_PER_EVENT: usize = 1000;
/// Entries are grouped into one `topic.entry` event up to this many bytes (a larger entry
/// travels alone).
pub const ENTRY_BATCH_BYTES: usize = 1024 * 1024;

/// `topic.entry`: consecutive log entries and the hosting server's checkpoint after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct EntryBatch {
    /// Log index of the first entry.
    pub first: LeafIndex,
    /// Encoded log entries (`LogEntry::to_wire`), in log order.
    pub entries: Vec<ByteBuf>,
    /// The hosting server's signed checkpoint note of size `first + entries.len()`.
    pub checkpoint: CheckpointNote,
}

impl EntryBatch {
    /// Encodes the payload.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a payload: at most [`MAX_ENTRY_PAYLOAD_LEN`] bytes, 1 to
    /// [`MAX_ENTRIES_PER_EVENT`] entries.
    pub fn from_wire(bytes: &[u8]) -> Result<EntryBatch, WireError> {
        decode::<EntryBatch>(bytes, MAX_ENTRY_PAYLOAD_LEN)?.checked()
    }

    /// Encodes the answer to a backfill query (`topic-entries-response`, `federation-api.md`
    /// §5): the payload's fields with the version in front, as every answer has it.
    pub fn to_backfill_wire(&self) -> Vec<u8> {
        encode(&BackfillWire {
            version: VERSION,
            first: self.first,
            entries: self.entries.clone(),
            checkpoint: self.checkpoint.clone(),
        })
    }

    /// Decodes the answer to a backfill query: size ([`MAX_BACKFILL_LEN`]), version first, then
    /// as [`from_wire`].
    ///
    /// [`from_wire`]: EntryBatch::from_wire
    pub fn from_backfill_wire(bytes: &[u8]) -> Result<EntryBatch, WireError> {
        let w: BackfillWire = decode_versioned(bytes, MAX_BACKFILL_LEN)?;
        check_version(w.version)?;
        EntryBatch {
            first: w.first,
            entries: w.entries,
            checkpoint: w.checkpoint,
        }
        .checked()
    }

    /// 1 to [`MAX_ENTRIES_PER_EVENT`] entries, whose indices do not overflow.
    fn checked(self) -> Result<EntryBatch, WireError> {
        let batch = self;
        if batch.entries.is_empty() || batch.entries.len() > MAX_ENTRIES_PER_EVENT {
            return Err(WireError::InvalidField {
                field: "entries",
                reason: format!("1 to {MAX_ENTRIES_PER_EVENT} entries"),
            });
        }
        if batch
            .first
            .0
            .checked_add(batch.entries.len() as u64)
            .is_none()
        {
            return Err(WireError::InvalidField {
                field: "first",
                reason: "index overflows".into(),
            });
        }
        Ok(batch)
    }

    /// The log size after the batch.
    pub fn end(&self) -> TreeSize {
        TreeSize(self.first.0.saturating_add(self.entries.len() as u64))
    }
}

/// The wire form of a backfill answer: an [`EntryBatch`] with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct BackfillWire {
    version: u8,
    first: LeafIndex,
    entries: Vec<ByteBuf>,
    checkpoint: CheckpointNote,
}

/// Splits `(index, entry)` pairs (consecutive, in order) into batches of at most
/// [`ENTRY_BATCH_BYTES`] bytes and [`MAX_ENTRIES_PER_EVENT`] entries; returns the index ranges
/// `(first, end)`. The positions are the server's own, as its storage keeps them.
pub fn batch_ranges(entries: &[(u64, Vec<u8>)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    // The batch being filled: (first index, bytes, count).
    let mut open: Option<(u64, usize, u64)> = None;
    for (index, entry) in entries {
        if let Some((first, bytes, count)) = open {
            if bytes + entry.len() <= ENTRY_BATCH_BYTES && count < MAX_ENTRIES_PER_EVENT as u64 {
                open = Some((first, bytes + entry.len(), count + 1));
                continue;
            }
            out.push((first, first + count));
        }
        open = Some((*index, entry.len(), 1));
    }
    if let Some((first, _, count)) = open {
        out.push((first, first + count));
    }
    out
}

/// `topic.submit`: a remote member's message or signed change, for the hosting server to check
/// and append as if its user had posted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct Submit {
    /// The member who posted it (a user of the event's origin).
    pub submitter: UserId,
    /// The encoded log entry (`LogEntry::to_wire`).
    pub entry: ByteBuf,
}

impl Submit {
    /// Encodes the payload.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a payload of at most [`MAX_SUBMIT_PAYLOAD_LEN`] bytes.
    pub fn from_wire(bytes: &[u8]) -> Result<Submit, WireError> {
        decode(bytes, MAX_SUBMIT_PAYLOAD_LEN)
    }
}

/// Encodes a `topic.cosignature` payload (a cosigned checkpoint note).
pub fn cosignature_to_wire(note: &str) -> Vec<u8> {
    encode(&note)
}

/// Decodes a `topic.cosignature` payload: a well-formed note, signatures not yet checked.
pub fn cosignature_from_wire(bytes: &[u8]) -> Result<CheckpointNote, WireError> {
    decode(bytes, MAX_COSIGNATURE_PAYLOAD_LEN)
}

/// Evidence kept with a stopped mirror: why, and two checkpoint notes signed by the hosting
/// server that cannot both be true (`federation-api.md` §9.4). When they have one size, their
/// different roots prove it to anyone; otherwise the mirror's log is the witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct MirrorEvidence {
    /// What the mirror saw.
    pub reason: String,
    /// The checkpoint note the mirror held (or the one its log proves); empty when it held
    /// none, which is why this stays text rather than a [`CheckpointNote`].
    pub a: String,
    /// The contradicting checkpoint note.
    pub b: String,
}

impl MirrorEvidence {
    /// Encodes the evidence.
    pub fn to_wire(&self) -> Vec<u8> {
        crate::wire::encode(self)
    }

    /// Decodes stored evidence.
    pub fn from_wire(bytes: &[u8]) -> Result<MirrorEvidence, crate::wire::WireError> {
        crate::wire::decode(bytes, 64 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_by_size_and_keep_order() {
        let small: Vec<(u64, Vec<u8>)> = (5..10).map(|i| (i, vec![0u8; 100])).collect();
        assert_eq!(batch_ranges(&small), vec![(5, 10)]);
        let big = vec![
            (0, vec![0u8; 600 * 1024]),
            (1, vec![0u8; 600 * 1024]),
            (2, vec![0u8; 2 * 1024 * 1024]),
            (3, vec![0u8; 10]),
        ];
        assert_eq!(batch_ranges(&big), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        let many: Vec<(u64, Vec<u8>)> = (0..2500).map(|i| (i, vec![1u8])).collect();
        assert_eq!(
            batch_ranges(&many),
            vec![(0, 1000), (1000, 2000), (2000, 2500)]
        );
        assert!(batch_ranges(&[]).is_empty());
    }

    fn note() -> CheckpointNote {
        let key = crate::crypto::ServerKey::from_seed(&[7; 32]);
        let c = crate::tlog::Checkpoint::new(
            "a.example/topic/x",
            TreeSize(5),
            crate::tlog::empty_root(),
            1,
        )
        .unwrap();
        crate::tlog::SignedCheckpoint::sign(&c, &key, "a.example")
            .unwrap()
            .to_note()
    }

    #[test]
    fn entry_batches_round_trip_and_refuse_bad_shapes() {
        let b = EntryBatch {
            first: LeafIndex(3),
            entries: vec![ByteBuf::from(vec![1, 2]), ByteBuf::from(vec![3])],
            checkpoint: note(),
        };
        assert_eq!(EntryBatch::from_wire(&b.to_wire()).unwrap(), b);
        assert_eq!(b.end(), TreeSize(5));
        // A note that does not parse is refused with the payload.
        let bad = crate::wire::encode(&(3u64, Vec::<ByteBuf>::new(), "note"));
        assert!(EntryBatch::from_wire(&bad).is_err());
        let empty = EntryBatch {
            entries: vec![],
            ..b.clone()
        };
        assert!(EntryBatch::from_wire(&empty.to_wire()).is_err());
        let overflow = EntryBatch {
            first: LeafIndex(u64::MAX),
            ..b
        };
        assert!(EntryBatch::from_wire(&overflow.to_wire()).is_err());
    }

    #[test]
    fn backfill_answers_carry_the_version_first() {
        let b = EntryBatch {
            first: LeafIndex(3),
            entries: vec![ByteBuf::from(vec![1, 2])],
            checkpoint: note(),
        };
        let wire = b.to_backfill_wire();
        // [1, first, entries, checkpoint]: an array of 4 whose first element is the version.
        assert_eq!(&wire[..2], &[0x84, 0x01]);
        assert_eq!(EntryBatch::from_backfill_wire(&wire).unwrap(), b);
        // The event payload (no version) is not a backfill answer, nor the reverse.
        assert!(EntryBatch::from_backfill_wire(&b.to_wire()).is_err());
        assert!(EntryBatch::from_wire(&wire).is_err());
        let mut v2 = wire.clone();
        v2[1] = 0x02;
        assert!(matches!(
            EntryBatch::from_backfill_wire(&v2),
            Err(WireError::UnsupportedVersion { .. })
        ));
        let empty = EntryBatch {
            entries: vec![],
            ..b
        };
        assert!(EntryBatch::from_backfill_wire(&empty.to_backfill_wire()).is_err());
    }
}

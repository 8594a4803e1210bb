//! A topic log the lying host builds itself and signs with the hosting server's own Server Key:
//! how a host that holds its key forks (`tag-log.md` §4: fork consistency is all a log gives
//! against it). Checkpoints, entries and both kinds of proof come from this log, computed with
//! the protocol's own [`Tree`], so every answer is one the honest server could have given.

use rendezvous_protocol::api::{
    AppendResponse, CheckpointResponse, Empty, EntriesResponse, IndexedEntry, ProofResponse,
    WitnessesResponse,
};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{
    Checkpoint, LeafIndex, LogHash, MemoryNodeStore, SignedCheckpoint, Tree, TreeSize,
};
use rendezvous_protocol::topic::{ENTRY_CHANGE, ENTRY_MESSAGE, LogEntry, log_origin};
use serde_bytes::ByteBuf;

use super::Answer;

/// The tag-log leaf data of a log entry as served (`protocol.md` §8.1), computed from its bytes
/// alone by the protocol's one rule; `None` for bytes that are no entry.
pub fn leaf_data(entry: &LogEntry) -> Option<Vec<u8>> {
    rendezvous_protocol::topic::leaf_data(entry).ok()
}

/// One forged log of one topic: its entries and their tree.
pub struct ForgedLog {
    /// The topic whose origin the checkpoints name (the one members asked for).
    pub topic: TopicId,
    entries: Vec<LogEntry>,
    tree: Tree<MemoryNodeStore>,
    /// Seconds added to now in the checkpoints' `time` (negative: signed in the past).
    pub time_offset: i64,
}

impl ForgedLog {
    /// The log of `entries` (wire forms of log entries, in order) under `topic`'s origin.
    pub fn new(topic: &TopicId, entries: &[Vec<u8>]) -> ForgedLog {
        let mut log = ForgedLog {
            topic: topic.clone(),
            entries: Vec::new(),
            tree: Tree::new(MemoryNodeStore::new()),
            time_offset: 0,
        };
        for e in entries {
            log.push(LogEntry::from_wire(e).expect("a log entry"));
        }
        log
    }

    /// Appends an entry; its index.
    pub fn push(&mut self, entry: LogEntry) -> u64 {
        let leaf = leaf_data(&entry).expect("an entry with a leaf");
        let index = self.tree.append(&leaf).unwrap().0;
        self.entries.push(entry);
        index
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.tree.size().0
    }

    /// The root at `size` entries.
    pub fn root_at(&self, size: u64) -> LogHash {
        self.tree.root_at(TreeSize(size)).unwrap()
    }

    /// The wire forms of the entries.
    pub fn entries(&self) -> Vec<Vec<u8>> {
        self.entries.iter().map(LogEntry::to_wire).collect()
    }

    /// The head, signed now (plus the offset) with `key` as `key_name`.
    pub fn checkpoint(&self, key: &ServerKey, key_name: &str) -> SignedCheckpoint {
        let time = crate::lying::unix_now().saturating_add_signed(self.time_offset);
        let cp = Checkpoint::new(
            &log_origin(&self.topic),
            self.tree.size(),
            self.tree.root(),
            time,
        )
        .unwrap();
        SignedCheckpoint::sign(&cp, key, key_name).unwrap()
    }

    /// Answers a client API request about this topic (`what` is the path after the topic id),
    /// as the hosting server would from this log; `None` for what the log does not answer
    /// (cursors, key documents…), which the host forwards.
    pub fn answer(
        &mut self,
        method: &str,
        what: &str,
        query: &str,
        body: &[u8],
        key: &ServerKey,
        key_name: &str,
    ) -> Option<Answer> {
        let q = |name: &str| query_param(query, name);
        match (method, what) {
            ("GET", "checkpoint") => Some(Answer::cbor(&CheckpointResponse {
                checkpoint: self.checkpoint(key, key_name).to_note(),
            })),
            ("GET", "witnesses") => Some(Answer::cbor(&WitnessesResponse {
                host: Some(self.checkpoint(key, key_name).to_note()),
                mirror: None,
                witnesses: Vec::new(),
                evidence: None,
                refusals: Vec::new(),
            })),
            ("GET", "entries") => {
                let from = q("from").unwrap_or(0);
                let limit = q("limit").unwrap_or(100).min(500);
                Some(Answer::cbor(&self.entries_from(from, limit)))
            }
            ("GET", "proof/inclusion") => {
                let (index, size) = (q("index")?, q("size")?);
                if index >= size || size > self.size() {
                    return Some(Answer::error(400, "invalid_request"));
                }
                let p = self
                    .tree
                    .inclusion_proof(LeafIndex(index), TreeSize(size))
                    .ok()?;
                Some(proof(&p.path))
            }
            ("GET", "proof/consistency") => {
                let (old, new) = (q("old")?, q("new")?);
                if old > new || new > self.size() {
                    return Some(Answer::error(400, "invalid_request"));
                }
                let p = self
                    .tree
                    .consistency_proof(TreeSize(old), TreeSize(new))
                    .ok()?;
                Some(proof(&p.path))
            }
            // Read positions within the forged log (the real one may be shorter).
            ("PUT", "cursor") => Some(Answer::cbor(&Empty::default())),
            ("POST", "messages") | ("POST", "changes") => {
                let kind = if what == "messages" {
                    ENTRY_MESSAGE
                } else {
                    ENTRY_CHANGE
                };
                let entry = LogEntry(kind, body.to_vec());
                if leaf_data(&entry).is_none() {
                    return Some(Answer::error(400, "malformed"));
                }
                let index = self.push(entry);
                Some(Answer::cbor(&AppendResponse {
                    index: LeafIndex(index),
                    checkpoint: self.checkpoint(key, key_name).to_note(),
                }))
            }
            _ => None,
        }
    }

    fn entries_from(&self, from: u64, limit: u64) -> EntriesResponse {
        let entries = self
            .entries
            .iter()
            .enumerate()
            .skip(usize::try_from(from).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(0))
            .map(|(i, e)| IndexedEntry {
                index: LeafIndex(i as u64),
                entry: ByteBuf::from(e.to_wire()),
            })
            .collect();
        EntriesResponse { entries }
    }
}

fn proof(path: &[LogHash]) -> Answer {
    Answer::cbor(&ProofResponse {
        path: path.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect(),
    })
}

/// `name=<u64>` from a query string.
pub fn query_param(query: &str, name: &str) -> Option<u64> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.parse().ok()).flatten()
    })
}

//! This server's identity directory (`federation-spec/directory.md` §2, §3) and its witness
//! views of its peers' directories (§5), in one table.
//!
//! | table | key | value |
//! |---|---|---|
//! | `directory` | `0x01 ‖ u64be(index)` | entry bytes (a `directory-entry`, leaf data) |
//! | `directory` | `0x04 ‖ level ‖ u64be(index)` | 32-byte tree node |
//! | `directory` | `0x05` | `u64be` log size |
//! | `directory` | `0x06` | the newest checkpoint note (with the cosignature lines received for it) |
//! | `directory` | `0x07` | the served checkpoint note (the newest one a witness cosigned, with its lines) |
//! | `directory` | `0x08 ‖ id(user) ‖ u64be(index)` | empty: the user's entries |
//! | `directory` | `0x10 ‖ id(peer)` | the peer's directory checkpoint note this server witnessed last |
//! | `directory` | `0x11 ‖ id(peer)` | the peer's keys pinned for its directory (`HostKeys::to_wire`) |
//! | `directory` | `0x12 ‖ id(peer)` | evidence against the peer's directory (`Evidence::to_cbor`); the first stays |
//! | `directory` | `0x13 ‖ id(peer)` | `u64be` when this server last cosigned the peer's directory |
//!
//! An entry is written with its nodes, its user index and the new size in one transaction:
//! with the user's creation for a registration ([`Store::register_user`]).

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::keys::{Key, KeyReader, read_u64};
use super::{OrBackend, Store, StoreError, in_tx, tx};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::tlog::{Frontier, LogHash, TreeSize, leaf_hash};

const ENTRY: u8 = 0x01;
const NODE: u8 = 0x04;
const SIZE: u8 = 0x05;
const NEWEST: u8 = 0x06;
const SERVED: u8 = 0x07;
const USER: u8 = 0x08;
const WITNESS_NOTE: u8 = 0x10;
const WITNESS_KEYS: u8 = 0x11;
const WITNESS_EVIDENCE: u8 = 0x12;
const WITNESS_COSIGNED: u8 = 0x13;

const TABLE: &str = "directory";

pub(super) fn entry_key(index: u64) -> Vec<u8> {
    Key::new().u8(ENTRY).u64(index).build()
}

pub(super) fn node_key(level: u8, index: u64) -> Vec<u8> {
    Key::new().u8(NODE).u8(level).u64(index).build()
}

fn user_prefix(user: &UserId) -> Vec<u8> {
    Key::new().u8(USER).id(user.as_str()).build()
}

fn peer_key(what: u8, peer: &ServerName) -> Vec<u8> {
    Key::new().u8(what).id(peer.as_str()).build()
}

/// What this server keeps about its view of one peer's directory (§5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryWitnessRecord {
    /// The peer's checkpoint note witnessed last.
    pub note: Option<String>,
    /// The peer's keys pinned for its directory (`HostKeys::to_wire`).
    pub keys: Option<Vec<u8>>,
    /// Evidence against the peer's directory (`Evidence::to_cbor`).
    pub evidence: Option<Vec<u8>>,
    /// When this server last cosigned the peer's directory (Unix seconds).
    pub cosigned: Option<u64>,
}

/// Appends `entry` for `user` inside a transaction on the `directory` table: its nodes (from
/// the frontier the stored nodes give), the user's index and the new size. Returns its index.
pub(super) fn tx_append(
    dir: &TransactionalTree,
    user: &UserId,
    entry: &[u8],
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    let corrupt = || ConflictableTransactionError::Abort(StoreError::Corrupt { table: TABLE });
    let size = match dir.get([SIZE])? {
        Some(v) => in_tx(read_u64(&v, TABLE))?,
        None => 0,
    };
    let mut hashes = Vec::with_capacity(size.count_ones() as usize);
    let mut start = 0u64;
    for level in (0u8..64).rev() {
        if size >> level & 1 == 1 {
            let v = dir
                .get(node_key(level, start >> level))?
                .ok_or_else(corrupt)?;
            hashes.push(LogHash::from_slice(&v).map_err(|_| corrupt())?);
            start += 1 << level;
        }
    }
    let mut frontier = Frontier::from_parts(TreeSize(size), hashes).map_err(|_| corrupt())?;
    let mut nodes = Vec::new();
    frontier
        .append_leaf_hash(leaf_hash(entry), |level, index, hash| {
            nodes.push((level, index, hash))
        })
        .map_err(|_| corrupt())?;
    dir.insert(entry_key(size), entry)?;
    for (level, index, hash) in nodes {
        dir.insert(node_key(level, index), &hash.0[..])?;
    }
    let user_key = Key::new().bytes(&user_prefix(user)).u64(size).build();
    dir.insert(user_key, &[][..])?;
    dir.insert(&[SIZE][..], &(size + 1).to_be_bytes()[..])?;
    Ok(size)
}

impl Store {
    /// Appends one entry for `user` to this server's directory on its own (the start-up
    /// backfill of a store from before the directory, `directory.md` §2.2). Returns its index.
    pub fn directory_append(&self, user: &UserId, entry: &[u8]) -> Result<u64, StoreError> {
        tx(self
            .t()
            .directory
            .transaction(|dir| tx_append(dir, user, entry)))
    }

    /// The directory's size (entries appended).
    pub fn directory_size(&self) -> Result<u64, StoreError> {
        match self.t().directory.get([SIZE]).or_backend()? {
            Some(v) => read_u64(&v, TABLE),
            None => Ok(0),
        }
    }

    /// Entry `index` of the directory.
    pub fn directory_entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.t().directory.get(entry_key(index)).or_backend()?;
        Ok(v.map(|v| v.to_vec()))
    }

    /// Up to `limit` entries from `from` on, below `below`, at most `max_bytes` of them (but
    /// always the first).
    pub fn directory_entries(
        &self,
        from: u64,
        below: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        if from >= below {
            return Ok(out);
        }
        for item in self
            .t()
            .directory
            .range(entry_key(from)..entry_key(below))
            .take(limit)
        {
            let (_, v) = item.or_backend()?;
            bytes = bytes.saturating_add(v.len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(v.to_vec());
        }
        Ok(out)
    }

    /// The index of `user`'s last entry below `below`, if any.
    pub fn directory_user_entry(
        &self,
        user: &UserId,
        below: u64,
    ) -> Result<Option<u64>, StoreError> {
        let prefix = user_prefix(user);
        let start = Key::new().bytes(&prefix).u64(0).build();
        let end = Key::new().bytes(&prefix).u64(below).build();
        match self.t().directory.range(start..end).next_back() {
            Some(item) => {
                let (k, _) = item.or_backend()?;
                let mut r = KeyReader::new(&k, TABLE);
                r.array::<1>()?;
                r.skip_id()?;
                let index = r.u64()?;
                r.end()?;
                Ok(Some(index))
            }
            None => Ok(None),
        }
    }

    /// The directory's tree node at `(level, index)`.
    pub(super) fn directory_node(
        &self,
        level: u8,
        index: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        match self
            .t()
            .directory
            .get(node_key(level, index))
            .or_backend()?
        {
            Some(v) => v
                .as_ref()
                .try_into()
                .map(Some)
                .map_err(|_| StoreError::Corrupt { table: TABLE }),
            None => Ok(None),
        }
    }

    fn directory_text(&self, key: &[u8]) -> Result<Option<String>, StoreError> {
        match self.t().directory.get(key).or_backend()? {
            Some(v) => String::from_utf8(v.to_vec())
                .map(Some)
                .map_err(|_| StoreError::Corrupt { table: TABLE }),
            None => Ok(None),
        }
    }

    /// The newest checkpoint note of this server's directory (§2.3), with its lines.
    pub fn directory_newest(&self) -> Result<Option<String>, StoreError> {
        self.directory_text(&[NEWEST])
    }

    /// The served checkpoint note (§3), if a witness cosigned one.
    pub fn directory_served(&self) -> Result<Option<String>, StoreError> {
        self.directory_text(&[SERVED])
    }

    /// Records the newest and (when `Some`) the served checkpoint notes, together.
    pub fn set_directory_notes(
        &self,
        newest: &str,
        served: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(&[NEWEST][..], newest.as_bytes());
        if let Some(served) = served {
            batch.insert(&[SERVED][..], served.as_bytes());
        }
        self.t().directory.apply_batch(batch).or_backend()
    }

    /// What this server keeps about `peer`'s directory.
    pub fn directory_witness(
        &self,
        peer: &ServerName,
    ) -> Result<DirectoryWitnessRecord, StoreError> {
        let d = &self.t().directory;
        let get = |what| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(d.get(peer_key(what, peer))
                .or_backend()?
                .map(|v| v.to_vec()))
        };
        let note = match get(WITNESS_NOTE)? {
            Some(v) => {
                Some(String::from_utf8(v).map_err(|_| StoreError::Corrupt { table: TABLE })?)
            }
            None => None,
        };
        let cosigned = match get(WITNESS_COSIGNED)? {
            Some(v) => Some(read_u64(&v, TABLE)?),
            None => None,
        };
        Ok(DirectoryWitnessRecord {
            note,
            keys: get(WITNESS_KEYS)?,
            evidence: get(WITNESS_EVIDENCE)?,
            cosigned,
        })
    }

    /// Records the view of `peer`'s directory: the note witnessed and the keys pinned, and
    /// when `cosigned` is set, when this server cosigned it.
    pub fn set_directory_witness(
        &self,
        peer: &ServerName,
        note: &str,
        keys: &[u8],
        cosigned: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(peer_key(WITNESS_NOTE, peer), note.as_bytes());
        batch.insert(peer_key(WITNESS_KEYS, peer), keys);
        if let Some(time) = cosigned {
            batch.insert(peer_key(WITNESS_COSIGNED, peer), &time.to_be_bytes()[..]);
        }
        self.t().directory.apply_batch(batch).or_backend()
    }

    /// Keeps evidence against `peer`'s directory; the first evidence stays.
    pub fn set_directory_evidence(
        &self,
        peer: &ServerName,
        evidence: &[u8],
    ) -> Result<(), StoreError> {
        let _ = self
            .t()
            .directory
            .compare_and_swap(
                peer_key(WITNESS_EVIDENCE, peer),
                None as Option<&[u8]>,
                Some(evidence),
            )
            .or_backend()?;
        Ok(())
    }

    /// Every peer whose directory this server witnessed, with what it keeps of it.
    pub fn directory_witnesses(
        &self,
    ) -> Result<Vec<(ServerName, DirectoryWitnessRecord)>, StoreError> {
        let mut peers = Vec::new();
        for item in self.t().directory.scan_prefix([WITNESS_NOTE]) {
            let (k, _) = item.or_backend()?;
            let mut r = KeyReader::new(&k, TABLE);
            r.array::<1>()?;
            peers.push(r.id::<ServerName>()?);
        }
        let mut out = Vec::with_capacity(peers.len());
        for peer in peers {
            let record = self.directory_witness(&peer)?;
            out.push((peer, record));
        }
        Ok(out)
    }
}

//! Bodies of the directory endpoints (`directory.md` §4, §5.1). Consistency and inclusion
//! proofs travel as [`super::ProofResponse`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::Body;
use crate::wire::{VERSION, check_version};

/// `[1, note, witnessed]`: `GET /v1/directory/checkpoint` (client API) and the federation query
/// of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryCheckpointResponse {
    /// The checkpoint note (served checkpoint for clients, newest for witnesses).
    pub checkpoint: String,
    /// Whether federation is enabled on the server and a witness has cosigned its directory
    /// (`directory.md` §4): clients then require a witness cosignature (§6.1 step 2).
    pub witnessed: bool,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct CheckpointWire {
    version: u8,
    checkpoint: String,
    witnessed: bool,
}

impl Serialize for DirectoryCheckpointResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CheckpointWire {
            version: VERSION,
            checkpoint: self.checkpoint.clone(),
            witnessed: self.witnessed,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DirectoryCheckpointResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = CheckpointWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(DirectoryCheckpointResponse {
            checkpoint: w.checkpoint,
            witnessed: w.witnessed,
        })
    }
}

impl Body for DirectoryCheckpointResponse {
    const MAX_LEN: usize = 8 * 1024;
}

/// `[1, first, [* entry]]`: `GET /v1/directory/entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntriesResponse {
    /// Index of the first entry.
    pub first: u64,
    /// Entries (leaf data), consecutive.
    pub entries: Vec<ByteBuf>,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct EntriesWire {
    version: u8,
    first: u64,
    entries: Vec<ByteBuf>,
}

impl Serialize for DirectoryEntriesResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EntriesWire {
            version: VERSION,
            first: self.first,
            entries: self.entries.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DirectoryEntriesResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = EntriesWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        if w.entries.len() > crate::directory::MAX_ENTRIES_PAGE {
            return Err(serde::de::Error::custom("more entries than a page holds"));
        }
        Ok(DirectoryEntriesResponse {
            first: w.first,
            entries: w.entries,
        })
    }
}

impl Body for DirectoryEntriesResponse {
    const MAX_LEN: usize = crate::directory::MAX_ENTRIES_PAGE_BYTES + 64 * 1024;
}

/// `[1, cosigned note]`: `POST /_rdv/federation/v1/directory/cosignature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryCosignatureRequest {
    /// The asked server's checkpoint note with the asking server's cosignature line.
    pub note: String,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct CosignatureWire {
    version: u8,
    note: String,
}

impl Serialize for DirectoryCosignatureRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CosignatureWire {
            version: VERSION,
            note: self.note.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DirectoryCosignatureRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = CosignatureWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(DirectoryCosignatureRequest { note: w.note })
    }
}

impl Body for DirectoryCosignatureRequest {
    const MAX_LEN: usize = 8 * 1024;
}

//! Topic bodies: appends, topic lists, log entries, checkpoints and proofs, sync and the stream
//! (`federation-spec/client-api.md` §6).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::ids::{Epoch, TopicId};
use crate::tlog::{CheckpointNote, LeafIndex, TreeSize};
use crate::topic::Role;
use crate::wire::{VERSION, WireError, check_version};

use super::Body;

/// `[1, index, checkpoint]`: the answer to an accepted topic change or message.
#[derive(Debug, Clone)]
pub struct AppendResponse {
    /// The entry's log index.
    pub index: LeafIndex,
    /// The signed checkpoint note of the log including the entry (`tag-log.md`).
    pub checkpoint: CheckpointNote,
}

/// The wire form of [`AppendResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct AppendResponseWire<'a> {
    version: u8,
    index: LeafIndex,
    checkpoint: Cow<'a, CheckpointNote>,
}

impl Serialize for AppendResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AppendResponseWire {
            version: VERSION,
            index: self.index,
            checkpoint: Cow::Borrowed(&self.checkpoint),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for AppendResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = AppendResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(AppendResponse {
            index: w.index,
            checkpoint: w.checkpoint.into_owned(),
        })
    }
}

/// `[topic, size, role, epoch]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct TopicSummary {
    /// The topic.
    pub topic: TopicId,
    /// Log size.
    pub size: TreeSize,
    /// The caller's role.
    pub role: Role,
    /// Current epoch.
    pub epoch: Epoch,
}

/// `[1, [* topic-summary]]`.
#[derive(Debug, Clone)]
pub struct TopicsResponse {
    /// The user's topics.
    pub topics: Vec<TopicSummary>,
}

/// The wire form of [`TopicsResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct TopicsResponseWire<'a> {
    version: u8,
    topics: Cow<'a, [TopicSummary]>,
}

impl Serialize for TopicsResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TopicsResponseWire {
            version: VERSION,
            topics: Cow::Borrowed(&self.topics),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TopicsResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = TopicsResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(TopicsResponse {
            topics: w.topics.into_owned(),
        })
    }
}

/// `[index, log_entry]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct IndexedEntry {
    /// Log index.
    pub index: LeafIndex,
    /// The entry's wire form (`protocol.md` §8.1).
    pub entry: ByteBuf,
}

/// `[1, [* indexed-entry]]`.
#[derive(Debug, Clone)]
pub struct EntriesResponse {
    /// Consecutive entries from the requested index.
    pub entries: Vec<IndexedEntry>,
}

/// The wire form of [`EntriesResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct EntriesResponseWire<'a> {
    version: u8,
    entries: Cow<'a, [IndexedEntry]>,
}

impl Serialize for EntriesResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EntriesResponseWire {
            version: VERSION,
            entries: Cow::Borrowed(&self.entries),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for EntriesResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = EntriesResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(EntriesResponse {
            entries: w.entries.into_owned(),
        })
    }
}

impl Body for EntriesResponse {
    const MAX_LEN: usize = 64 * 1024 * 1024;
}

/// `[1, checkpoint]`.
#[derive(Debug, Clone)]
pub struct CheckpointResponse {
    /// Signed checkpoint note.
    pub checkpoint: CheckpointNote,
}

/// The wire form of [`CheckpointResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct CheckpointResponseWire<'a> {
    version: u8,
    checkpoint: Cow<'a, CheckpointNote>,
}

impl Serialize for CheckpointResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CheckpointResponseWire {
            version: VERSION,
            checkpoint: Cow::Borrowed(&self.checkpoint),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for CheckpointResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = CheckpointResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(CheckpointResponse {
            checkpoint: w.checkpoint.into_owned(),
        })
    }
}

/// `[1, host head / null, mirror head / null, [* cosigned note], evidence / null, refusals]`:
/// what a server knows of a topic's log beyond its own entries (`client-api.md` §6
/// `witnesses`, `federation-api.md` §9.4, `directory.md` §6.5). `refusals` is left out when
/// empty (its canonical form: servers from before it send 5 elements).
#[derive(Debug, Clone)]
pub struct WitnessesResponse {
    /// The hosting server's current checkpoint note (fetched live for a topic hosted
    /// elsewhere; `None` when the hosting server cannot be reached).
    pub host: Option<CheckpointNote>,
    /// This server's mirror head (the hosting server's checkpoint it verified), for a topic
    /// hosted elsewhere.
    pub mirror: Option<CheckpointNote>,
    /// Cosigned checkpoint notes of participating servers (the newest of each).
    pub witnesses: Vec<CheckpointNote>,
    /// Evidence that the hosting server showed contradicting logs (`[reason, note, note]`).
    pub evidence: Option<ByteBuf>,
    /// Entries this server's mirror refused because a member spec for one of its users
    /// carries another IK than the user's (`directory.md` §6.5).
    pub refusals: Vec<IkRefusal>,
}

/// `[index, user, identity_key, entry]`: an entry a mirror refused for a wrong IK of one of
/// its users (`directory.md` §6.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct IkRefusal {
    /// The entry's log index.
    pub index: u64,
    /// The user whose IK is wrong.
    pub user: crate::ids::UserId,
    /// The IK in the entry.
    pub identity_key: crate::crypto::IdentityPublicKey,
    /// The refused entry (its wire form).
    pub entry: ByteBuf,
}

/// Most refusals decoded from one answer.
const MAX_REFUSALS: usize = 1000;

/// The wire form of [`WitnessesResponse`] without refusals, with the version in front.
#[derive(Serialize_tuple)]
struct WitnessesResponseWire<'a> {
    version: u8,
    host: &'a Option<CheckpointNote>,
    mirror: &'a Option<CheckpointNote>,
    witnesses: &'a [CheckpointNote],
    evidence: &'a Option<ByteBuf>,
}

/// The wire form of [`WitnessesResponse`] with refusals.
#[derive(Serialize_tuple)]
struct WitnessesRefusalsWire<'a> {
    version: u8,
    host: &'a Option<CheckpointNote>,
    mirror: &'a Option<CheckpointNote>,
    witnesses: &'a [CheckpointNote],
    evidence: &'a Option<ByteBuf>,
    refusals: &'a [IkRefusal],
}

impl Serialize for WitnessesResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.refusals.is_empty() {
            return WitnessesResponseWire {
                version: VERSION,
                host: &self.host,
                mirror: &self.mirror,
                witnesses: &self.witnesses,
                evidence: &self.evidence,
            }
            .serialize(s);
        }
        WitnessesRefusalsWire {
            version: VERSION,
            host: &self.host,
            mirror: &self.mirror,
            witnesses: &self.witnesses,
            evidence: &self.evidence,
            refusals: &self.refusals,
        }
        .serialize(s)
    }
}

/// Decodes 5 elements (servers from before `refusals`) or 6.
struct WitnessesVisitor;

impl<'de> serde::de::Visitor<'de> for WitnessesVisitor {
    type Value = WitnessesResponse;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[1, host, mirror, [* note], evidence, ? refusals]")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let missing = |n: usize| A::Error::invalid_length(n, &self);
        let version: u8 = seq.next_element()?.ok_or_else(|| missing(0))?;
        check_version(version).map_err(A::Error::custom)?;
        let host = seq.next_element()?.ok_or_else(|| missing(1))?;
        let mirror = seq.next_element()?.ok_or_else(|| missing(2))?;
        let witnesses = seq.next_element()?.ok_or_else(|| missing(3))?;
        let evidence = seq.next_element()?.ok_or_else(|| missing(4))?;
        let refusals: Vec<IkRefusal> = seq.next_element()?.unwrap_or_default();
        if refusals.len() > MAX_REFUSALS {
            return Err(A::Error::custom("too many refusals"));
        }
        if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(A::Error::custom("trailing elements"));
        }
        Ok(WitnessesResponse {
            host,
            mirror,
            witnesses,
            evidence,
            refusals,
        })
    }
}

impl<'de> Deserialize<'de> for WitnessesResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(WitnessesVisitor)
    }
}

/// `[1, server, [+ [key, valid_from, valid_until]]]`: another server's key document, fetched
/// and checked by the caller's homeserver over mutual TLS (`client-api.md` §6).
pub type ServerKeysResponse = crate::federation::ServerKeys;

impl Body for crate::federation::ServerKeys {}

/// `[1, [* hash]]`.
#[derive(Debug, Clone)]
pub struct ProofResponse {
    /// Proof hashes, 32 bytes each.
    pub path: Vec<ByteBuf>,
}

/// The wire form of [`ProofResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct ProofResponseWire<'a> {
    version: u8,
    path: Cow<'a, [ByteBuf]>,
}

impl Serialize for ProofResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProofResponseWire {
            version: VERSION,
            path: Cow::Borrowed(&self.path),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ProofResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ProofResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(ProofResponse {
            path: w.path.into_owned(),
        })
    }
}

/// `[1, index]`.
#[derive(Debug, Clone)]
pub struct CursorRequest {
    /// Processed up to this index (exclusive).
    pub index: LeafIndex,
}

/// The wire form of [`CursorRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct CursorRequestWire {
    version: u8,
    index: LeafIndex,
}

impl Serialize for CursorRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CursorRequestWire {
            version: VERSION,
            index: self.index,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for CursorRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = CursorRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(CursorRequest { index: w.index })
    }
}

/// `[topic, size, cursor]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct SyncItem {
    /// The topic.
    pub topic: TopicId,
    /// Its log size.
    pub size: TreeSize,
    /// This device's cursor: the index of the next entry it has not processed.
    pub cursor: LeafIndex,
}

/// `[1, [* sync-item], refill]`.
#[derive(Debug, Clone)]
pub struct SyncResponse {
    /// The user's topics.
    pub topics: Vec<SyncItem>,
    /// Whether this device should upload pre keys or topic keys.
    pub refill: bool,
}

/// The wire form of [`SyncResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct SyncResponseWire<'a> {
    version: u8,
    topics: Cow<'a, [SyncItem]>,
    refill: bool,
}

impl Serialize for SyncResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SyncResponseWire {
            version: VERSION,
            topics: Cow::Borrowed(&self.topics),
            refill: self.refill,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SyncResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = SyncResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(SyncResponse {
            topics: w.topics.into_owned(),
            refill: w.refill,
        })
    }
}

/// `[topic, index, log_entry]`: one WebSocket frame.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct StreamFrame {
    /// The topic.
    pub topic: TopicId,
    /// Log index.
    pub index: LeafIndex,
    /// The entry's wire form.
    pub entry: ByteBuf,
}

impl Body for StreamFrame {
    const MAX_LEN: usize = 8 * 1024 * 1024;

    fn from_cbor(bytes: &[u8]) -> Result<Self, WireError> {
        crate::wire::decode(bytes, Self::MAX_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::IdentityKey;

    /// `refusals` is the last field; an answer of a server from before it (5 elements)
    /// decodes with none, and more than 6 elements is refused.
    #[test]
    fn witnesses_answers_with_and_without_refusals() {
        let refusal = IkRefusal {
            index: 3,
            user: "@bob:b.example".parse().unwrap(),
            identity_key: IdentityKey::generate().public().clone(),
            entry: ByteBuf::from(vec![1, 2, 3]),
        };
        let answer = WitnessesResponse {
            host: None,
            mirror: None,
            witnesses: Vec::new(),
            evidence: None,
            refusals: vec![refusal.clone()],
        };
        let back = WitnessesResponse::from_cbor(&answer.to_cbor()).unwrap();
        assert_eq!(back.refusals, vec![refusal]);
        let old = crate::wire::encode(&(1u8, (), (), Vec::<String>::new(), ()));
        assert!(
            WitnessesResponse::from_cbor(&old)
                .unwrap()
                .refusals
                .is_empty()
        );
        let empty = crate::wire::encode(&(1u8, (), (), Vec::<String>::new(), (), [(); 0]));
        assert!(
            WitnessesResponse::from_cbor(&empty).is_err(),
            "empty refusals are left out"
        );
        let longer = crate::wire::encode(&(1u8, (), (), Vec::<String>::new(), (), [(); 0], 7u8));
        assert!(WitnessesResponse::from_cbor(&longer).is_err());
    }
}

//! Cross-server topics (`federation-spec/federation-api.md` §9): a participating server's view
//! of a topic hosted elsewhere, the evidence against a hosting server, and the cosigned
//! checkpoints (witness statements) received from other servers.
//!
//! | table | key | value |
//! |---|---|---|
//! | `mirrors` | `id(topic) ‖ 0x01` | the hosting server's latest verified checkpoint note |
//! | `mirrors` | `id(topic) ‖ 0x02` | evidence against the hosting server (`MirrorEvidence::to_wire`: reason and two notes; for a split view or rollback the two notes are `Evidence::notes`, in order) |
//! | `mirrors` | `id(topic) ‖ 0x03 ‖ id(server)` | the newest cosigned note from `server` |
//! | `mirrors` | `id(topic) ‖ 0x04` | the hosting server's keys pinned for the topic: `HostKeys::to_wire` (32 bytes: one key, as pinned before rotations) |
//! | `mirrors` | `id(topic) ‖ 0x05` | an alarm that does not stop the mirror: a cosigned note of the hosting server under another key (`MirrorEvidence::to_wire`) |

use super::keys::Key;
use super::{OrBackend, Store, StoreError};
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::HostKeys;

const HEAD: u8 = 1;
const EVIDENCE: u8 = 2;
const WITNESS: u8 = 3;
const HOST_KEY: u8 = 4;
const ALARM: u8 = 5;

fn key(topic: &TopicId, what: u8) -> Vec<u8> {
    Key::new().id(topic.as_str()).u8(what).build()
}

fn witness_key(topic: &TopicId, server: &ServerName) -> Vec<u8> {
    Key::new()
        .id(topic.as_str())
        .u8(WITNESS)
        .id(server.as_str())
        .build()
}

fn text(v: sled::IVec, table: &'static str) -> Result<String, StoreError> {
    String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt { table })
}

impl Store {
    /// The hosting server's latest checkpoint note that this mirror verified.
    pub fn mirror_head(&self, topic: &TopicId) -> Result<Option<String>, StoreError> {
        match self.t().mirrors.get(key(topic, HEAD)).or_backend()? {
            Some(v) => text(v, "mirrors").map(Some),
            None => Ok(None),
        }
    }

    /// Records the latest verified checkpoint note of a mirrored topic.
    pub fn set_mirror_head(&self, topic: &TopicId, note: &str) -> Result<(), StoreError> {
        self.t()
            .mirrors
            .insert(key(topic, HEAD), note.as_bytes())
            .or_backend()?;
        Ok(())
    }

    /// Evidence found against the topic's hosting server (encoded), if any.
    pub fn mirror_evidence(&self, topic: &TopicId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .t()
            .mirrors
            .get(key(topic, EVIDENCE))
            .or_backend()?
            .map(|v| v.to_vec()))
    }

    /// Keeps evidence against the topic's hosting server; the first evidence stays.
    pub fn set_mirror_evidence(&self, topic: &TopicId, evidence: &[u8]) -> Result<(), StoreError> {
        let _ = self
            .t()
            .mirrors
            .compare_and_swap(key(topic, EVIDENCE), None as Option<&[u8]>, Some(evidence))
            .or_backend()?;
        Ok(())
    }

    /// The hosting server's keys pinned for a mirrored topic (`tag-log.md` §7.5, §7.6): the
    /// chain it signs the topic's checkpoints with, grown only by rotations both keys signed.
    pub fn mirror_host_keys(&self, topic: &TopicId) -> Result<Option<HostKeys>, StoreError> {
        let corrupt = || StoreError::Corrupt { table: "mirrors" };
        match self.t().mirrors.get(key(topic, HOST_KEY)).or_backend()? {
            // One key, as pinned before rotations existed.
            Some(v) if v.len() == 32 => ServerPublicKey::from_slice(&v)
                .map(|k| Some(HostKeys::new(topic.server().as_str(), k)))
                .map_err(|_| corrupt()),
            Some(v) => HostKeys::from_wire(&v)
                .ok()
                .filter(|k| k.name() == topic.server().as_str())
                .map(Some)
                .ok_or_else(corrupt),
            None => Ok(None),
        }
    }

    /// Pins `keys` for a mirrored topic: when none are pinned, or when `keys` holds every key
    /// pinned before (the chain grew); a chain that drops a pinned key is not stored.
    pub fn pin_mirror_host_keys(&self, topic: &TopicId, keys: &HostKeys) -> Result<(), StoreError> {
        if let Some(held) = self.mirror_host_keys(topic)?
            && (held == *keys || !held.keys().all(|k| keys.contains(k)))
        {
            return Ok(());
        }
        self.t()
            .mirrors
            .insert(key(topic, HOST_KEY), keys.to_wire())
            .or_backend()?;
        Ok(())
    }

    /// The first alarm raised for a mirrored topic (encoded), if any.
    pub fn mirror_alarm(&self, topic: &TopicId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .t()
            .mirrors
            .get(key(topic, ALARM))
            .or_backend()?
            .map(|v| v.to_vec()))
    }

    /// Keeps an alarm for a mirrored topic; the first one stays.
    pub fn set_mirror_alarm(&self, topic: &TopicId, alarm: &[u8]) -> Result<(), StoreError> {
        let _ = self
            .t()
            .mirrors
            .compare_and_swap(key(topic, ALARM), None as Option<&[u8]>, Some(alarm))
            .or_backend()?;
        Ok(())
    }

    /// The newest cosigned checkpoint note received from `server` for `topic`.
    pub fn witness_note(
        &self,
        topic: &TopicId,
        server: &ServerName,
    ) -> Result<Option<String>, StoreError> {
        match self
            .t()
            .mirrors
            .get(witness_key(topic, server))
            .or_backend()?
        {
            Some(v) => text(v, "mirrors").map(Some),
            None => Ok(None),
        }
    }

    /// Keeps `server`'s cosigned checkpoint note for `topic` (the caller checked that it is
    /// newer than the one kept).
    pub fn set_witness_note(
        &self,
        topic: &TopicId,
        server: &ServerName,
        note: &str,
    ) -> Result<(), StoreError> {
        self.t()
            .mirrors
            .insert(witness_key(topic, server), note.as_bytes())
            .or_backend()?;
        Ok(())
    }

    /// Every cosigned note kept for `topic`: `(server, note)`.
    pub fn witness_notes(&self, topic: &TopicId) -> Result<Vec<(ServerName, String)>, StoreError> {
        let prefix = Key::new().id(topic.as_str()).u8(WITNESS).build();
        let mut out = Vec::new();
        for item in self.t().mirrors.scan_prefix(&prefix) {
            let (k, v) = item.or_backend()?;
            let mut r = super::keys::KeyReader::new(&k, "mirrors");
            r.skip_id()?;
            r.array::<1>()?;
            let server: ServerName = r.id()?;
            out.push((server, text(v, "mirrors")?));
        }
        Ok(out)
    }

    /// Every mirrored topic stopped by evidence: `(topic, encoded evidence)`.
    pub fn stopped_mirrors(&self) -> Result<Vec<(TopicId, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.t().mirrors.iter() {
            let (k, v) = item.or_backend()?;
            let mut r = super::keys::KeyReader::new(&k, "mirrors");
            let topic: TopicId = r.id()?;
            if r.array::<1>()? == [EVIDENCE] {
                out.push((topic, v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Every mirrored topic with a verified head.
    pub fn mirrored_topics(&self) -> Result<Vec<TopicId>, StoreError> {
        let mut out = Vec::new();
        for item in self.t().mirrors.iter() {
            let (k, _) = item.or_backend()?;
            let mut r = super::keys::KeyReader::new(&k, "mirrors");
            let topic: TopicId = r.id()?;
            if r.array::<1>()? == [HEAD] {
                out.push(topic);
            }
        }
        Ok(out)
    }
}

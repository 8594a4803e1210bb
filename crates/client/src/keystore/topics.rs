//! Per-topic files: `topics/<id>/` with the topic id, the topic record, the log snapshot and the
//! Message Keys of each epoch. `<id>` is the first 16 bytes of SHA-256(topic id) in hex, as for
//! contacts: a topic id is up to 283 characters, and its hex (the folder name of older
//! keystores) went over a file name's 255 bytes from a host name of about 100. An older
//! keystore's folder is moved to its new name the first time the topic is read or written, or
//! the topics are listed; its Message Keys are sealed again under their new path.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::files::{list_dir, make_dir, read_optional, write_atomic};
use super::{Keystore, LogSnapshot, MAX_LOG_SNAPSHOT, TOPIC_LOG, TOPIC_STATE, TOPICS, TopicRecord};
use crate::ClientError;
use crate::tls::decode_hex;
use rendezvous_protocol::crypto::MessageKey;
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::Evidence;
use rendezvous_protocol::topic::EntryEvidence;
use rendezvous_protocol::wire::decode_versioned;

/// File name prefixes of the evidence a device keeps per topic (`tag-log.md` §9.4).
const EVIDENCE: &str = "evidence-";
const ENTRY_EVIDENCE: &str = "entry-evidence-";
/// The file in each topic's folder that holds its topic id (the folder name is only its hash).
pub(super) const TOPIC_ID: &str = "topic";

/// The folder name of `topic`: 32 hex characters of its SHA-256.
fn dir_name(topic: &TopicId) -> String {
    hex_string(&Sha256::digest(topic.as_str().as_bytes())[..16])
}

/// The folder name older keystores gave `topic`: its id in hex.
fn old_dir_name(topic: &TopicId) -> String {
    hex_string(topic.as_str().as_bytes())
}

/// Whether `name` is a Message Key file, `epoch-<n>.key` (sealed under its path).
fn is_message_key(name: &str) -> bool {
    name.strip_prefix("epoch-")
        .and_then(|n| n.strip_suffix(".key"))
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

impl Keystore {
    /// The folder of `topic`'s files, whether it exists or not (no older folder is moved).
    pub(super) fn topic_dir(&self, topic: &TopicId) -> PathBuf {
        self.dir.join(TOPICS).join(dir_name(topic))
    }

    /// The folder of `topic`'s files, to read: an older keystore's folder moved into it first.
    fn topic_dir_read(&self, topic: &TopicId) -> Result<PathBuf, ClientError> {
        self.migrate_topic_dir(topic)?;
        Ok(self.topic_dir(topic))
    }

    /// The folder of `topic`'s files, to write: created with its [`TOPIC_ID`] file if missing.
    fn topic_dir_write(&self, topic: &TopicId) -> Result<PathBuf, ClientError> {
        let dir = self.topic_dir_read(topic)?;
        make_dir(&self.dir.join(TOPICS))?;
        make_dir(&dir)?;
        let id = dir.join(TOPIC_ID);
        if read_optional(&id)?.as_deref().map(Vec::as_slice) != Some(topic.as_str().as_bytes()) {
            write_atomic(&id, topic.as_str().as_bytes())?;
        }
        Ok(dir)
    }

    /// Moves an older keystore's `topics/<hex topic id>/` to `topics/<id>/`: the Message Keys
    /// opened under their old path and sealed under the new one, the other files renamed.
    /// Done again from where it stopped if interrupted (the old folder goes last).
    fn migrate_topic_dir(&self, topic: &TopicId) -> Result<(), ClientError> {
        let old = self.dir.join(TOPICS).join(old_dir_name(topic));
        // An id whose hex is too long for a file name has no older folder: `is_dir` is false.
        if !old.is_dir() {
            return Ok(());
        }
        let new = self.topic_dir(topic);
        make_dir(&new)?;
        write_atomic(&new.join(TOPIC_ID), topic.as_str().as_bytes())?;
        for name in list_dir(&old)? {
            let (from, to) = (old.join(&name), new.join(&name));
            if is_message_key(&name) {
                if let Some(key) = self.read_secret(&from)? {
                    self.write_secret(&to, &key)?;
                }
                fs::remove_file(&from).map_err(|e| ClientError::io(&from, e))?;
            } else {
                fs::rename(&from, &to).map_err(|e| ClientError::io(&from, e))?;
            }
        }
        // Only leftover temporary files remain.
        fs::remove_dir_all(&old).map_err(|e| ClientError::io(&old, e))
    }

    /// What this device knows about `topic`, if anything.
    pub fn topic(&self, topic: &TopicId) -> Result<Option<TopicRecord>, ClientError> {
        let path = self.topic_dir_read(topic)?.join(TOPIC_STATE);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let record: TopicRecord =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::corrupt(&path, e))?;
        if record.topic != topic.as_str() {
            return Err(ClientError::corrupt(&path, "record is for another topic"));
        }
        Ok(Some(record))
    }

    /// Stores what this device knows about a topic.
    pub fn save_topic(&self, record: &TopicRecord) -> Result<(), ClientError> {
        let topic: TopicId = record
            .topic
            .parse()
            .map_err(|e| ClientError::InvalidInput(format!("topic id: {e}")))?;
        let dir = self.topic_dir_write(&topic)?;
        let json = serde_json::to_vec_pretty(record).map_err(|e| ClientError::corrupt(&dir, e))?;
        write_atomic(&dir.join(TOPIC_STATE), &json)
    }

    /// The saved log snapshot of `topic`, if any.
    pub fn log_snapshot(&self, topic: &TopicId) -> Result<Option<LogSnapshot>, ClientError> {
        let path = self.topic_dir_read(topic)?.join(TOPIC_LOG);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        decode_versioned(&bytes, MAX_LOG_SNAPSHOT)
            .map(Some)
            .map_err(|e| ClientError::corrupt(&path, e))
    }

    /// Saves the log snapshot of `topic` (atomically).
    pub fn save_log_snapshot(
        &self,
        topic: &TopicId,
        snapshot: &LogSnapshot,
    ) -> Result<(), ClientError> {
        let dir = self.topic_dir_write(topic)?;
        write_atomic(
            &dir.join(TOPIC_LOG),
            &rendezvous_protocol::wire::encode(snapshot),
        )
    }

    /// Keeps evidence against `topic`'s hosting server (`tag-log.md` §8.2 CBOR) in
    /// `evidence-<n>.cbor`, unless the same evidence is kept already.
    pub fn save_evidence(&self, topic: &TopicId, evidence: &Evidence) -> Result<(), ClientError> {
        let kept = self.evidence(topic)?;
        self.save_numbered(topic, EVIDENCE, &kept, evidence, Evidence::to_cbor)
    }

    /// The evidence kept against `topic`'s hosting server, oldest first.
    pub fn evidence(&self, topic: &TopicId) -> Result<Vec<Evidence>, ClientError> {
        self.numbered(topic, EVIDENCE, |b| {
            Evidence::from_cbor(b).map_err(|e| e.to_string())
        })
    }

    /// Keeps evidence that `topic`'s hosting server signed a log with an invalid entry
    /// (`tag-log.md` §8.4 CBOR) in `entry-evidence-<n>.cbor`, unless kept already.
    pub fn save_entry_evidence(
        &self,
        topic: &TopicId,
        evidence: &EntryEvidence,
    ) -> Result<(), ClientError> {
        let kept = self.entry_evidence(topic)?;
        self.save_numbered(
            topic,
            ENTRY_EVIDENCE,
            &kept,
            evidence,
            EntryEvidence::to_cbor,
        )
    }

    /// The invalid-entry evidence kept against `topic`'s hosting server, oldest first.
    pub fn entry_evidence(&self, topic: &TopicId) -> Result<Vec<EntryEvidence>, ClientError> {
        self.numbered(topic, ENTRY_EVIDENCE, |b| {
            EntryEvidence::from_cbor(b).map_err(|e| e.to_string())
        })
    }

    /// Writes `item` as `<prefix><n>.cbor` in `topic`'s folder (`n` = how many are `kept`),
    /// unless it is kept already.
    fn save_numbered<T: PartialEq>(
        &self,
        topic: &TopicId,
        prefix: &str,
        kept: &[T],
        item: &T,
        to_cbor: impl Fn(&T) -> Vec<u8>,
    ) -> Result<(), ClientError> {
        if kept.contains(item) {
            return Ok(());
        }
        let dir = self.topic_dir_write(topic)?;
        write_atomic(
            &dir.join(format!("{prefix}{}.cbor", kept.len())),
            &to_cbor(item),
        )
    }

    /// Every `<prefix><n>.cbor` in `topic`'s folder, decoded, in the order of `n`.
    fn numbered<T>(
        &self,
        topic: &TopicId,
        prefix: &str,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Vec<T>, ClientError> {
        let dir = self.topic_dir_read(topic)?;
        let mut found = Vec::new();
        for name in list_dir(&dir)? {
            let Some(n) = name
                .strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(".cbor"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let path = dir.join(&name);
            let Some(bytes) = read_optional(&path)? else {
                continue;
            };
            let item = decode(&bytes).map_err(|e| ClientError::corrupt(&path, e))?;
            found.push((n, item));
        }
        found.sort_by_key(|(n, _)| *n);
        Ok(found.into_iter().map(|(_, e)| e).collect())
    }

    /// Topics this device has a folder of, by topic id; an older keystore's folders are moved
    /// to their new names on the way.
    pub fn topics(&self) -> Result<Vec<TopicId>, ClientError> {
        let mut out = Vec::new();
        for name in self.list(TOPICS)? {
            let topic = match self.topic_of_dir(&name)? {
                Some(topic) => topic,
                None => {
                    let Some(topic) = decode_hex(&name)
                        .and_then(|b| String::from_utf8(b).ok())
                        .and_then(|text| text.parse::<TopicId>().ok())
                    else {
                        continue;
                    };
                    self.migrate_topic_dir(&topic)?;
                    topic
                }
            };
            if !out.contains(&topic) {
                out.push(topic);
            }
        }
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(out)
    }

    /// The topic whose folder is `topics/<name>`, read from its [`TOPIC_ID`] file: `None` when
    /// there is none (an older keystore's folder, or not a topic's).
    fn topic_of_dir(&self, name: &str) -> Result<Option<TopicId>, ClientError> {
        let path = self.dir.join(TOPICS).join(name).join(TOPIC_ID);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let topic: TopicId = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| ClientError::corrupt(&path, "not a topic id"))?;
        if dir_name(&topic) != name {
            return Err(ClientError::corrupt(&path, "names another topic"));
        }
        Ok(Some(topic))
    }

    /// Stores the Message Key of `epoch` of `topic`.
    pub fn save_message_key(
        &self,
        topic: &TopicId,
        epoch: u32,
        key: &MessageKey,
    ) -> Result<(), ClientError> {
        let dir = self.topic_dir_write(topic)?;
        self.write_secret(&dir.join(format!("epoch-{epoch}.key")), key.as_bytes())
    }

    /// All Message Keys held for `topic`, by epoch.
    pub fn message_keys(&self, topic: &TopicId) -> Result<Vec<(u32, MessageKey)>, ClientError> {
        let dir = self.topic_dir_read(topic)?;
        let mut out = Vec::new();
        for name in list_dir(&dir)? {
            let Some(epoch) = name
                .strip_prefix("epoch-")
                .and_then(|n| n.strip_suffix(".key"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = dir.join(&name);
            let bytes = self.read_32(&path)?;
            let key =
                MessageKey::from_slice(&bytes[..]).map_err(|e| ClientError::corrupt(&path, e))?;
            out.push((epoch, key));
        }
        out.sort_by_key(|(e, _)| *e);
        Ok(out)
    }
}

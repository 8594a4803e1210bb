//! Per-server directory files (`directory.md` §6): `directory/<server>/` with the view's
//! checkpoint note, the evidence against that server's directory, the bindings this device
//! accepted for its users (and what it knows of them as contacts, §7), and for the homeserver
//! the self-monitoring state and alarms (§6.3). None of them is secret: plain JSON, CBOR and
//! text, written atomically like every keystore file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Keystore;
use super::files::{list_dir, make_dir, read_optional, write_atomic};
use crate::ClientError;
use crate::tls::decode_hex;
use rendezvous_protocol::crypto::IdentityPublicKey;
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::directory::Binding;
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::tlog::{Evidence, Frontier, LogHash, TreeSize};

const DIRECTORY: &str = "directory";
const VIEW: &str = "view";
const STATE: &str = "state.json";
const EVIDENCE: &str = "evidence-";
const ALARM: &str = "alarm-";

/// What a device keeps of one server's directory besides the view (`directory/<server>/
/// state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryRecord {
    /// Sticky: a verifying witness cosignature was seen on this server's directory once
    /// (`directory.md` §6.1 step 2): one is required from then on.
    #[serde(default)]
    pub witness_seen: bool,
    /// What the server said last in `GET /v1/directory/checkpoint` (homeserver only).
    #[serde(default)]
    pub federated: bool,
    /// Whether `federated` was learned (it is asked before the first lookup of a user of the
    /// homeserver).
    #[serde(default)]
    pub federated_known: bool,
    /// Self-monitoring (homeserver only): entries below this index were checked.
    #[serde(default)]
    pub monitor_next: u64,
    /// The log's frontier at `monitor_next` (hex hashes, left to right).
    #[serde(default)]
    pub monitor_frontier: Vec<String>,
    /// When the last monitoring pass ended (Unix seconds, device clock).
    #[serde(default)]
    pub monitored_at: u64,
    /// Alarms acknowledged with `rdv directory ack` (entry indices).
    #[serde(default)]
    pub acked: Vec<u64>,
}

impl DirectoryRecord {
    /// The stored frontier.
    pub fn frontier(&self) -> Result<Frontier, ClientError> {
        let hashes = self
            .monitor_frontier
            .iter()
            .map(|h| {
                decode_hex(h)
                    .and_then(|b| LogHash::from_slice(&b).ok())
                    .ok_or_else(|| ClientError::corrupt(STATE, "frontier hash"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Frontier::from_parts(TreeSize(self.monitor_next), hashes)
            .map_err(|e| ClientError::corrupt(STATE, format!("frontier: {e}")))
    }

    /// Keeps `frontier` (at its size) as where the next pass starts.
    pub fn set_frontier(&mut self, frontier: &Frontier) {
        self.monitor_next = frontier.size().0;
        self.monitor_frontier = frontier.hashes().iter().map(|h| hex_string(&h.0)).collect();
    }
}

/// A binding (`directory.md` §6) as stored: IK in hex, entry index, checkpoint size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBinding {
    /// The Identity Key, hex.
    pub identity_key: String,
    /// The entry's index.
    pub index: u64,
    /// The checkpoint size it was accepted at.
    pub size: u64,
}

impl StoredBinding {
    /// Of a checked binding.
    pub fn of(b: &Binding) -> Self {
        StoredBinding {
            identity_key: hex_string(b.identity_key.as_bytes()),
            index: b.index,
            size: b.size,
        }
    }

    /// The binding.
    pub fn binding(&self) -> Result<Binding, ClientError> {
        Ok(Binding {
            identity_key: parse_key(&self.identity_key)?,
            index: self.index,
            size: self.size,
        })
    }
}

/// What this device knows of one user of a server (`directory/<server>/contacts/`, by
/// user id): the accepted binding and the contact state of `directory.md` §7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecord {
    /// The accepted binding.
    pub accepted: StoredBinding,
    /// The IK (hex) the user verified with a verification code, if any.
    #[serde(default)]
    pub verified: Option<String>,
    /// The IK (hex) the accepted one was last rotated from (`identity_rotated`).
    #[serde(default)]
    pub rotated_from: Option<String>,
    /// A different key the directory binds now, refused (`identity_changed`) until accepted
    /// (`rdv contact accept`) or verified.
    #[serde(default)]
    pub changed: Option<StoredBinding>,
    /// Every IK (hex) accepted for the user before the current one: a topic change made
    /// while one of them was the binding still names it.
    #[serde(default)]
    pub earlier: Vec<String>,
    /// A rotation was followed and not yet shown (`identity_rotated`, shown once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotation_unshown: bool,
}

/// A contact's state (`directory.md` §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    /// Accepted from the directory, not verified.
    Unverified,
    /// Verified for the accepted IK.
    Verified,
    /// The directory binds another key, refused until accepted or re-verified.
    Changed,
    /// The accepted key came by a rotation signed by the one before.
    Rotated,
}

impl ContactState {
    /// Its name in `rdv contact list`.
    pub fn name(self) -> &'static str {
        match self {
            ContactState::Unverified => "unverified",
            ContactState::Verified => "verified",
            ContactState::Changed => "changed",
            ContactState::Rotated => "rotated",
        }
    }
}

impl ContactRecord {
    /// A new contact with `binding` accepted.
    pub fn new(binding: &Binding) -> Self {
        ContactRecord {
            accepted: StoredBinding::of(binding),
            verified: None,
            rotated_from: None,
            changed: None,
            earlier: Vec::new(),
            rotation_unshown: false,
        }
    }

    /// Whether the user verified the accepted key.
    pub fn is_verified(&self) -> bool {
        self.verified.as_deref() == Some(self.accepted.identity_key.as_str())
    }

    /// The state shown by `rdv contact list`.
    pub fn state(&self) -> ContactState {
        if self.changed.is_some() {
            ContactState::Changed
        } else if self.is_verified() {
            ContactState::Verified
        } else if self.rotated_from.is_some() {
            ContactState::Rotated
        } else {
            ContactState::Unverified
        }
    }

    /// Accepts `binding` in place of the current one (same key: a later entry or size).
    pub fn accept(&mut self, binding: &Binding) {
        let new = StoredBinding::of(binding);
        if new.identity_key != self.accepted.identity_key
            && !self.earlier.contains(&self.accepted.identity_key)
        {
            self.earlier.push(self.accepted.identity_key.clone());
        }
        self.accepted = new;
        self.changed = None;
    }

    /// Whether `key` is the accepted key or one accepted before it.
    pub fn knows(&self, key: &IdentityPublicKey) -> bool {
        let hex = hex_string(key.as_bytes());
        self.accepted.identity_key == hex || self.earlier.contains(&hex)
    }
}

fn parse_key(hex: &str) -> Result<IdentityPublicKey, ClientError> {
    decode_hex(hex)
        .and_then(|b| IdentityPublicKey::from_slice(&b).ok())
        .ok_or_else(|| ClientError::corrupt("contact record", "identity key"))
}

impl Keystore {
    pub(super) fn directory_dir(&self, server: &ServerName) -> PathBuf {
        self.dir.join(DIRECTORY).join(server.as_str())
    }

    pub(super) fn make_directory_dir(&self, server: &ServerName) -> Result<PathBuf, ClientError> {
        make_dir(&self.dir.join(DIRECTORY))?;
        let dir = self.directory_dir(server);
        make_dir(&dir)?;
        Ok(dir)
    }

    /// The checkpoint note of this device's view of `server`'s directory, if any.
    pub fn directory_note(&self, server: &ServerName) -> Result<Option<String>, ClientError> {
        let path = self.directory_dir(server).join(VIEW);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|e| ClientError::corrupt(&path, e))
    }

    /// Keeps the view's checkpoint note.
    pub fn save_directory_note(&self, server: &ServerName, note: &str) -> Result<(), ClientError> {
        let dir = self.make_directory_dir(server)?;
        write_atomic(&dir.join(VIEW), note.as_bytes())
    }

    /// The evidence kept against `server`'s directory, oldest first.
    pub fn directory_evidence(&self, server: &ServerName) -> Result<Vec<Evidence>, ClientError> {
        let mut out = Vec::new();
        for (_, path, bytes) in self.numbered_files(server, EVIDENCE)? {
            out.push(Evidence::from_cbor(&bytes).map_err(|e| ClientError::corrupt(&path, e))?);
        }
        Ok(out)
    }

    /// Keeps evidence against `server`'s directory (`evidence-<n>.cbor`), unless kept already.
    pub fn save_directory_evidence(
        &self,
        server: &ServerName,
        evidence: &Evidence,
    ) -> Result<(), ClientError> {
        let kept = self.directory_evidence(server)?;
        if kept.contains(evidence) {
            return Ok(());
        }
        let dir = self.make_directory_dir(server)?;
        write_atomic(
            &dir.join(format!("{EVIDENCE}{}.cbor", kept.len())),
            &evidence.to_cbor(),
        )
    }

    /// The directory record of `server` (default when none is kept).
    pub fn directory_record(&self, server: &ServerName) -> Result<DirectoryRecord, ClientError> {
        let path = self.directory_dir(server).join(STATE);
        match read_optional(&path)? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| ClientError::corrupt(&path, e))
            }
            None => Ok(DirectoryRecord::default()),
        }
    }

    /// Stores the directory record of `server`.
    pub fn save_directory_record(
        &self,
        server: &ServerName,
        record: &DirectoryRecord,
    ) -> Result<(), ClientError> {
        let dir = self.make_directory_dir(server)?;
        let json = serde_json::to_vec_pretty(record).map_err(|e| ClientError::corrupt(&dir, e))?;
        write_atomic(&dir.join(STATE), &json)
    }

    /// Servers this device keeps a directory folder for.
    pub fn directory_servers(&self) -> Result<Vec<ServerName>, ClientError> {
        Ok(list_dir(&self.dir.join(DIRECTORY))?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect())
    }

    /// Keeps the evidence of a self-monitoring alarm (`alarm-<index>.cbor`).
    pub fn save_directory_alarm(
        &self,
        server: &ServerName,
        index: u64,
        cbor: &[u8],
    ) -> Result<(), ClientError> {
        let dir = self.make_directory_dir(server)?;
        write_atomic(&dir.join(format!("{ALARM}{index}.cbor")), cbor)
    }

    /// The alarms kept for `server`: `(entry index, path, evidence CBOR)`, by index.
    pub fn directory_alarms(
        &self,
        server: &ServerName,
    ) -> Result<Vec<(u64, PathBuf, Vec<u8>)>, ClientError> {
        self.numbered_files(server, ALARM)
    }

    fn numbered_files(
        &self,
        server: &ServerName,
        prefix: &str,
    ) -> Result<Vec<(u64, PathBuf, Vec<u8>)>, ClientError> {
        let dir = self.directory_dir(server);
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
            if let Some(bytes) = read_optional(&path)? {
                found.push((n, path, bytes.to_vec()));
            }
        }
        found.sort_by_key(|(n, _, _)| *n);
        Ok(found)
    }
}

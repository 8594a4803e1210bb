//! The identity directory (`federation-spec/directory.md`): each homeserver's append-only log of
//! its users' Identity Key bindings, and the checks that the server, its witnesses and every
//! client make on it — one implementation for all of them.
//!
//! - [`DirectoryEntry`]: a leaf of the log (§2.1) and its rules;
//! - [`lookup`]: the proof that comes with another user's IK and [`lookup::check_lookup`] (§6.1);
//! - [`monitor`]: the self-monitoring pass over new entries (§6.3);
//! - [`safety`]: verification codes (§7);
//! - [`rotation`]: identity rotation statements (§8).

pub mod lookup;
pub mod monitor;
pub mod rotation;
pub mod safety;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use std::borrow::Cow;

use crate::certs::Registration;
use crate::crypto::IdentityPublicKey;
use crate::ids::{ServerName, UserId};
use crate::tlog::{LogHash, leaf_hash};
use crate::wire::{Signed, VERSION, WireError, check_version, decode, encode};

pub use lookup::{
    Binding, Checked, DirectoryProof, LookupCheck, LookupOutcome, check_lookup, update_view,
};
pub use monitor::{Alarm, MonitorPass, MonitorReport, MonitorState, monitor};
pub use rotation::{IdentityRotation, SignedIdentityRotation};
pub use safety::{qr_payload, safety_code, safety_fingerprint};

/// Largest encoded directory entry (§2.1).
pub const MAX_ENTRY_SIZE: usize = 2048;
/// Most entries in one page of `GET /v1/directory/entries` (§4).
pub const MAX_ENTRIES_PAGE: usize = 1000;
/// Bytes of entries in one page, at most (§4).
pub const MAX_ENTRIES_PAGE_BYTES: usize = 1024 * 1024;
/// A device monitors its own directory at most this often, in seconds (§6.3).
pub const MONITOR_EVERY: u64 = 60;
/// The newest witness cosignature older than this many seconds makes a monitoring pass
/// report the directory as stale (§6.3).
pub const MONITOR_MAX_AGE: u64 = 3600;
/// Witness cosignature lines a server keeps on its served checkpoint (§3).
pub const MAX_WITNESS_LINES: usize = 31;

/// The origin of `server`'s directory log: `<server>/directory` (§2).
pub fn directory_origin(server: &ServerName) -> String {
    format!("{}/directory", server.as_str())
}

/// What an entry records (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A registration (kind 1): the statement is the user's signed registration.
    Registration,
    /// An identity rotation (kind 2): the statement is a signed identity rotation.
    Rotation,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::Registration => 1,
            EntryKind::Rotation => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self, WireError> {
        match code {
            1 => Ok(EntryKind::Registration),
            2 => Ok(EntryKind::Rotation),
            _ => Err(WireError::InvalidField {
                field: "kind",
                reason: format!("unknown directory entry kind {code}"),
            }),
        }
    }
}

/// One leaf of a directory log: `[1, user, identity_key, kind, statement, time]` (§2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The user bound.
    pub user: UserId,
    /// The Identity Key bound to `user` from this entry on.
    pub identity_key: IdentityPublicKey,
    /// Registration or rotation.
    pub kind: EntryKind,
    /// The signed statement's wire bytes (registration or rotation).
    pub statement: Vec<u8>,
    /// When the server appended it (informational).
    pub time: u64,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct EntryWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    identity_key: Cow<'a, IdentityPublicKey>,
    kind: u8,
    statement: serde_bytes::ByteBuf,
    time: u64,
}

impl Serialize for DirectoryEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EntryWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            identity_key: Cow::Borrowed(&self.identity_key),
            kind: self.kind.code(),
            statement: serde_bytes::ByteBuf::from(self.statement.clone()),
            time: self.time,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DirectoryEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = EntryWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(DirectoryEntry {
            user: w.user.into_owned(),
            identity_key: w.identity_key.into_owned(),
            kind: EntryKind::from_code(w.kind).map_err(serde::de::Error::custom)?,
            statement: w.statement.into_vec(),
            time: w.time,
        })
    }
}

/// Why a directory entry, proof or view was refused; [`DirectoryError::code`] is the
/// machine-readable code of `directory.md` §6.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// An entry breaks a rule of §2.1.
    #[error("invalid directory entry: {0}")]
    InvalidEntry(String),
    /// The proof does not show that the server's directory binds this IK to the user.
    #[error("the directory does not bind this identity key to {user}: {reason}")]
    Mismatch {
        /// The user looked up.
        user: String,
        /// What failed.
        reason: String,
    },
    /// No witness cosignature the rule asks for verifies on the checkpoint.
    #[error("the directory checkpoint of {server} carries no verifying cosignature of {wanted}")]
    Unwitnessed {
        /// The directory's server.
        server: String,
        /// Whose cosignature was needed.
        wanted: String,
    },
    /// The directory contradicted a checkpoint held before; evidence was kept.
    #[error("the directory of {server} contradicts itself ({kind}); evidence kept")]
    Forked {
        /// The directory's server.
        server: String,
        /// The evidence kind.
        kind: String,
    },
    /// The server answered with an older checkpoint or entry than one accepted before.
    #[error("the directory of {server} went back: {reason}")]
    Rollback {
        /// The directory's server.
        server: String,
        /// What went back.
        reason: String,
    },
    /// The checkpoint does not verify (signature, origin, format).
    #[error("directory checkpoint of {server} refused: {reason}")]
    BadCheckpoint {
        /// The directory's server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The user's IK changed without a rotation signed by the accepted key, or a verified
    /// contact's IK changed at all.
    #[error(
        "the identity key of {user} changed ({how}); refusing it until you accept or re-verify it"
    )]
    IdentityChanged {
        /// The user.
        user: String,
        /// How it changed.
        how: String,
    },
    /// The entries served do not rebuild the checkpoint's root.
    #[error("the directory entries served by {server} are not the log its checkpoint signs")]
    EntriesMismatch {
        /// The directory's server.
        server: String,
    },
}

impl DirectoryError {
    /// The machine-readable code (`directory.md` §6, `client-api.md` §9).
    pub fn code(&self) -> &'static str {
        match self {
            DirectoryError::InvalidEntry(_) => "directory_invalid_entry",
            DirectoryError::Mismatch { .. } => "directory_mismatch",
            DirectoryError::Unwitnessed { .. } => "directory_unwitnessed",
            DirectoryError::Forked { .. } => "directory_forked",
            DirectoryError::Rollback { .. } => "directory_rollback",
            DirectoryError::BadCheckpoint { .. } => "directory_bad_checkpoint",
            DirectoryError::IdentityChanged { .. } => "identity_changed",
            DirectoryError::EntriesMismatch { .. } => "directory_entries_mismatch",
        }
    }
}

impl DirectoryEntry {
    /// A kind 1 entry for a verified registration's wire bytes.
    pub fn registration(
        registration: &crate::wire::SignedBytes,
        time: u64,
    ) -> Result<DirectoryEntry, DirectoryError> {
        let bytes = encode(registration);
        let signed = Signed::<Registration>::from_wire(&bytes)
            .map_err(|e| DirectoryError::InvalidEntry(format!("registration: {e}")))?;
        let claimed = signed
            .decode_unverified()
            .map_err(|e| DirectoryError::InvalidEntry(format!("registration: {e}")))?;
        let entry = DirectoryEntry {
            user: claimed.user,
            identity_key: claimed.identity_key,
            kind: EntryKind::Registration,
            statement: bytes,
            time,
        };
        Ok(entry)
    }

    /// The entry's leaf data: its canonical CBOR.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Its RFC 9162 leaf hash.
    pub fn leaf_hash(&self) -> LogHash {
        leaf_hash(&self.to_bytes())
    }

    /// Decodes leaf data (canonical CBOR, at most [`MAX_ENTRY_SIZE`]) without checking the
    /// rules; [`DirectoryEntry::check`] does.
    pub fn decode(bytes: &[u8]) -> Result<DirectoryEntry, DirectoryError> {
        if bytes.len() > MAX_ENTRY_SIZE {
            return Err(DirectoryError::InvalidEntry(format!(
                "{} bytes, more than {MAX_ENTRY_SIZE}",
                bytes.len()
            )));
        }
        decode(bytes, MAX_ENTRY_SIZE).map_err(|e| DirectoryError::InvalidEntry(e.to_string()))
    }

    /// Checks the rules of §2.1 for an entry of `server`'s directory: the statement verifies
    /// under the entry's key (kind 1) or is a rotation to it (kind 2), and names the user.
    pub fn check(&self, server: &ServerName) -> Result<(), DirectoryError> {
        let bad = |m: String| Err(DirectoryError::InvalidEntry(format!("{}: {m}", self.user)));
        if self.user.server() != *server {
            return bad(format!("not a user of {server}"));
        }
        if self.to_bytes().len() > MAX_ENTRY_SIZE {
            return bad(format!("larger than {MAX_ENTRY_SIZE} bytes"));
        }
        match self.kind {
            EntryKind::Registration => {
                let signed = Signed::<Registration>::from_wire(&self.statement)
                    .map_err(|e| DirectoryError::InvalidEntry(format!("registration: {e}")))?;
                let r = signed.verify(&self.identity_key).map_err(|e| {
                    DirectoryError::InvalidEntry(format!(
                        "registration of {} does not verify under the entry's key: {e}",
                        self.user
                    ))
                })?;
                if r.user != self.user || r.identity_key != self.identity_key {
                    return bad("the registration names another user or key".into());
                }
            }
            EntryKind::Rotation => {
                let r = SignedIdentityRotation::from_wire(&self.statement)?.verify()?;
                if r.user != self.user || r.new_identity_key != self.identity_key {
                    return bad("the rotation names another user or key".into());
                }
            }
        }
        Ok(())
    }

    /// The rotation statement of a kind 2 entry (checked by [`DirectoryEntry::check`]).
    pub fn rotation(&self) -> Option<IdentityRotation> {
        match self.kind {
            EntryKind::Rotation => SignedIdentityRotation::from_wire(&self.statement)
                .and_then(|s| s.verify())
                .ok(),
            EntryKind::Registration => None,
        }
    }
}

#[cfg(test)]
mod tests;

//! What the keystore's JSON and CBOR files hold: the device's settings, what it knows of each
//! topic, and the log snapshot it resumes checking from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::CONFIG;
use crate::ClientError;
use crate::tls::{Trust, decode_hex};
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::tlog::SignedRotation;

/// What a device keeps of a topic's log to go on checking it where it stopped
/// (`topics/<id>/log.cbor`): every change with its index, to rebuild the topic state with
/// [`rendezvous_protocol::topic::TopicState::restore`], every message tag, to catch a replayed message,
/// and the log's root at every size with the frontier, which message and change signatures are
/// checked against (fork binding, `protocol.md` §6.4): 32 bytes per entry.
/// `[1, size, [* [index, signed change]], [* tag], [* frontier hash], roots: 32·(size + 1) bytes]`.
/// Saved only when every covered entry was present and valid and the root recomputed from them
/// matched the head.
#[derive(Debug, Clone, Default, Serialize_tuple, Deserialize_tuple)]
pub struct LogSnapshot {
    /// Always 1.
    pub version: u8,
    /// Entries covered (the position of the next entry).
    pub size: u64,
    /// `(index, signed change wire form)`, ascending.
    pub changes: Vec<(u64, serde_bytes::ByteBuf)>,
    /// Tags of all messages in the covered entries.
    pub tags: Vec<serde_bytes::ByteBuf>,
    /// The tag log's compact range at `size` (RFC 9162 subtree roots, left to right), built
    /// from the covered entries' leaves and equal to a verified checkpoint's root: a later check
    /// appends the new leaves to it and compares with the new head's root.
    pub frontier: Vec<serde_bytes::ByteBuf>,
    /// The root at every size `0 ..= size`, concatenated.
    pub roots: serde_bytes::ByteBuf,
}

/// The device's settings (`config.json`). Nothing secret, kept 0600 all the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Base URL of the homeserver, `https://host[:port]`.
    pub server_url: String,
    /// The homeserver's name (the server part of user and topic ids).
    pub server_name: String,
    /// How the server's TLS certificate is checked (see [`Trust`]'s text form).
    pub trust: String,
    /// This device's user.
    pub user: String,
    /// Signing keys (hex) of servers whose checkpoints we check, by server name; the homeserver's
    /// is learned at registration over the verified TLS channel.
    #[serde(default)]
    pub server_keys: BTreeMap<String, String>,
    /// Key rotations (hex of each signed statement, `tag-log.md` §7.6) this device verified
    /// for a server, by server name: with the key in `server_keys` they make the chain of keys
    /// the server signs checkpoints with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server_rotations: BTreeMap<String, Vec<String>>,
    /// Highest inbox sequence number processed and acknowledged.
    #[serde(default)]
    pub inbox_seq: u64,
    /// Posts the hosting server refused after they were queued, from the inbox, not yet shown
    /// (`rdv sync` shows them once).
    #[serde(default)]
    pub refused_posts: Vec<RefusedPost>,
}

/// A post answered `202 queued` that the hosting server then refused (inbox item kind 2,
/// `client-api.md` §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedPost {
    /// The topic.
    pub topic: String,
    /// `message` or `change`.
    pub entry: String,
    /// The hosting server's status.
    pub status: u16,
    /// The hosting server's code.
    pub code: String,
}

impl Config {
    /// The parsed trust mode.
    pub fn trust(&self) -> Result<Trust, ClientError> {
        self.trust.parse()
    }

    /// The parsed user id.
    pub fn user(&self) -> Result<UserId, ClientError> {
        self.user
            .parse()
            .map_err(|e| ClientError::corrupt(CONFIG, format!("user: {e}")))
    }

    /// The parsed server name.
    pub fn server_name(&self) -> Result<ServerName, ClientError> {
        self.server_name
            .parse()
            .map_err(|e| ClientError::corrupt(CONFIG, format!("server_name: {e}")))
    }

    /// The key rotations of `server` this device verified (`tag-log.md` §7.6), oldest first;
    /// each is checked again.
    pub fn server_rotations(&self, server: &str) -> Result<Vec<SignedRotation>, ClientError> {
        self.server_rotations
            .get(server)
            .into_iter()
            .flatten()
            .map(|hex| {
                let bytes = decode_hex(hex)
                    .ok_or_else(|| ClientError::corrupt(CONFIG, "rotation is not hex"))?;
                SignedRotation::from_wire(&bytes, server)
                    .map_err(|e| ClientError::corrupt(CONFIG, format!("rotation of {server}: {e}")))
            })
            .collect()
    }

    /// The signing key of `server`, if known.
    pub fn server_key(&self, server: &str) -> Result<Option<ServerPublicKey>, ClientError> {
        let Some(hex) = self.server_keys.get(server) else {
            return Ok(None);
        };
        let bytes =
            decode_hex(hex).ok_or_else(|| ClientError::corrupt(CONFIG, "server key is not hex"))?;
        ServerPublicKey::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::corrupt(CONFIG, format!("server key: {e}")))
    }
}

/// What this device knows about one topic (`topics/<id>/state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// The topic id.
    pub topic: String,
    /// This user's member index, once known.
    pub member: Option<u32>,
    /// Log entries processed and shown, from 0 (exclusive end).
    pub processed: u64,
    /// The last checkpoint note whose signature and consistency were verified (the newest
    /// head of this device's view of the log, `tag-log.md` §9.4).
    pub checkpoint: Option<String>,
    /// The newest append answers (`[index, checkpoint note]`): each checkpoint was checked to
    /// include this device's entry at that index and to be consistent with the view.
    #[serde(default)]
    pub appends: Vec<(u64, String)>,
    /// Changes this device refused because an added member's IK is not the one the member's
    /// directory binds (`directory.md` §6.4): kept for good, nothing more is written to the
    /// topic (`topic_refused`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RosterRefusal>,
}

/// A topic change refused by the roster check (`directory.md` §6.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterRefusal {
    /// The change's log index.
    pub index: u64,
    /// The member whose IK is refused.
    pub user: String,
    /// Why (with its code).
    pub reason: String,
}

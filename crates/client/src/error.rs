//! The client's error type: one enum, one clear line per failure.
//!
//! Errors the homeserver reports (`client-api.md` §1.1, JSON `{"code", "message"}`) become
//! [`ClientError::Api`] carrying the machine-readable [`ErrorCode`]; everything the client finds
//! wrong itself (a certificate that does not verify, a log that does not add up) has its own
//! variant with the protocol module's error inside.

use std::path::PathBuf;

use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::devices::{DirectoryError, LinkError, TopicKeyError};
use rendezvous_protocol::message::MessageError;
use rendezvous_protocol::tlog::{CheckpointError, WitnessError};
use rendezvous_protocol::topic::{ChangeError, EntryError, KeyError};
use rendezvous_protocol::wire::WireError;

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A keystore file could not be read or written.
    #[error("keystore {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A keystore file exists but does not hold what it should.
    #[error("keystore {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The keystore directory holds no account yet.
    #[error("no account in {0}: run `rdv account register` or `rdv device join` first")]
    NotRegistered(PathBuf),
    /// The keystore directory already holds an account.
    #[error("{0} already holds an account; use another --home")]
    AlreadyRegistered(PathBuf),
    /// A fingerprint that is not `sha256:<64 hex digits>`.
    #[error("bad certificate fingerprint {0:?}: expected sha256:<64 hex digits>")]
    BadFingerprint(String),
    /// The TLS configuration could not be built (no roots, unreadable CA file).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A server URL that is not `https://host[:port]`.
    #[error("bad server URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}: {reason}")]
    Transport {
        /// The request URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The server refused the request with a documented error code.
    #[error("server refused {what} ({status} {}): {message}", code.as_str())]
    Api {
        /// What was asked (method and path).
        what: String,
        /// The machine-readable code.
        code: ErrorCode,
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The server answered with an error status but no documented error body.
    #[error("server answered {what} with status {status}: {body}")]
    UnexpectedStatus {
        /// What was asked.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, as text.
        body: String,
    },
    /// A body from the server does not decode.
    #[error("malformed answer to {what}: {error}")]
    Malformed {
        /// What was asked.
        what: String,
        /// Why it does not decode.
        error: WireError,
    },
    /// The post was accepted by this server and queued for the topic's hosting server, which
    /// did not answer in time; it appears in the log when that server takes it
    /// (`federation-api.md` §9.3).
    #[error("queued for {host}: the post will appear in {topic} when {host} takes it")]
    Queued {
        /// The topic.
        topic: String,
        /// Its hosting server.
        host: String,
    },
    /// The server's answer decodes but contradicts what was asked or what is known.
    #[error("server misbehaved: {0}")]
    Misbehaved(String),
    /// A device certificate or revocation does not hold.
    #[error("device set: {0}")]
    Directory(#[from] DirectoryError),
    /// A topic key batch or delivery does not hold.
    #[error("topic key: {0}")]
    TopicKey(#[from] TopicKeyError),
    /// Device linking failed.
    #[error("device link: {0}")]
    Link(#[from] LinkError),
    /// A topic change could not be built or does not hold.
    #[error("topic change: {0}")]
    Change(#[from] ChangeError),
    /// A log entry breaks a topic rule.
    #[error("topic log: {0}")]
    Entry(#[from] EntryError),
    /// A message could not be made or opened.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// A Message Key could not be taken from a change.
    #[error("message key: {0}")]
    Key(#[from] KeyError),
    /// A signed checkpoint does not parse or verify.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A new checkpoint is not consistent with the last one seen, or evidence was found.
    #[error("log consistency: {0}")]
    Witness(#[from] WitnessError),
    /// The user is not a member of the topic (or the topic is unknown here).
    #[error("{user} is not a member of {topic}")]
    NotAMember {
        /// The topic.
        topic: String,
        /// The user.
        user: String,
    },
    /// This device holds no private Topic Key for its membership in a topic.
    #[error("no topic key for {topic} on this device (key {key_id})")]
    NoTopicKey {
        /// The topic.
        topic: String,
        /// The Topic Key id (hex).
        key_id: String,
    },
    /// This device holds no Message Key for an epoch it needs.
    #[error("no message key for {topic} epoch {epoch} on this device")]
    NoMessageKey {
        /// The topic.
        topic: String,
        /// The epoch.
        epoch: u32,
    },
    /// A user had no Topic Key left to claim.
    #[error("no topic key left for {0}: they must bring a device online to refill")]
    NoTopicKeyLeft(String),
    /// The signing key of a hosting server is not known, so its checkpoints cannot be checked.
    #[error("signing key of server {0} is unknown; cannot check its log")]
    ServerKeyUnknown(String),
    /// A command-line argument or input is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
}

impl ClientError {
    /// The server's error code, when the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClientError::Io {
            path: path.into(),
            source,
        }
    }

    /// A corrupt keystore file.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        ClientError::Corrupt {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

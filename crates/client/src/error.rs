//! The client's error type: one enum, one clear line per failure, in the user's words.
//!
//! Errors the homeserver reports (`client-api.md` §1.1, JSON `{"code", "message"}`) become
//! [`ClientError::Api`] carrying the machine-readable [`ErrorCode`]; everything the client finds
//! wrong itself (a certificate that does not verify, a log that does not add up) has its own
//! variant with the protocol module's error inside. Each message says what happened and, where
//! there is something to do about it, what to do; requests are named by what they were for
//! ("fetch the checkpoint of !abc:a.example"), never by their percent-encoded path.
//!
//! [`ClientError::error_code`] gives every error a stable machine-readable code: the server's
//! code when the server refused, else one of [`CLIENT_CODES`] (`client-api.md` §9, `rdv`'s JSON
//! output).

use std::path::PathBuf;

use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::devices::{
    DirectoryError, IdentityDeliveryError, LinkError, TopicKeyError,
};
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
    /// The keystore is locked and no passphrase was given (`--passphrase-file`, `RDV_PASSPHRASE`,
    /// or a terminal to ask on): nothing was opened or changed.
    #[error(
        "the keystore {home} is locked and no passphrase was given: {why}; give --passphrase-file FILE or set RDV_PASSPHRASE. Nothing was opened or changed"
    )]
    PassphraseRequired {
        /// The keystore directory.
        home: PathBuf,
        /// Why none could be had (no terminal to ask on, unreadable file).
        why: String,
    },
    /// The passphrase does not unlock the keystore (the header's key check does not open).
    #[error("wrong passphrase for the keystore {0}: nothing was opened or changed")]
    WrongPassphrase(PathBuf),
    /// The keystore was written by an older rdv that kept its secrets unencrypted.
    #[error(
        "{0} holds a keystore written by an older rdv, with its keys unencrypted; this rdv does not open it. To move the account to an encrypted keystore: with the older rdv run `rdv --home {0} device link`, here run the `rdv --home NEW device join …` it shows, then delete {0}"
    )]
    PlaintextKeystore(PathBuf),
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
    #[error(
        "cannot reach the server at {server} to {what}: {reason} (is it running, and is the server URL right?)"
    )]
    Transport {
        /// The server's base URL.
        server: String,
        /// What the request was for (see [`crate::http::operation`]).
        what: String,
        /// The transport error.
        reason: String,
    },
    /// The server's TLS certificate is not the one this device pins.
    #[error(
        "the server at {server} presented a TLS certificate with fingerprint {presented}, but this device pins {pinned}: check that the server URL is right and that the fingerprint is the one the server printed at its first start (`rendezvous admin fingerprint` on the server shows it)"
    )]
    PinMismatch {
        /// The server's base URL.
        server: String,
        /// The pinned fingerprint.
        pinned: String,
        /// The fingerprint of the certificate the server presented.
        presented: String,
    },
    /// The server refused the request with a documented error code.
    #[error("the server refused to {what}: {message} ({}){}", code.as_str(), hint(*code))]
    Api {
        /// What the request was for (see [`crate::http::operation`]).
        what: String,
        /// The machine-readable code.
        code: ErrorCode,
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// This device is no longer in its account: the server knows no active device with its key
    /// (it was removed from another device).
    #[error(
        "this device is no longer in {user}'s account (it was removed from another device): to use it again, run `rdv device link` on a device still in the account and the `rdv device join` command it shows here, with a new --home directory"
    )]
    DeviceRemoved {
        /// The account's user.
        user: String,
    },
    /// The server answered with an error status but no documented error body.
    #[error("could not {what}: the server answered with HTTP status {status} ({body})")]
    UnexpectedStatus {
        /// What the request was for.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, as text.
        body: String,
    },
    /// A body from the server does not decode.
    #[error("the server sent a malformed {what}: {error}")]
    Malformed {
        /// What it sent (`reply when asked to …` for a whole answer).
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
    /// Identity deliveries could not be made, or one does not open (`directory.md` §8).
    #[error("identity delivery: {0}")]
    IdentityDelivery(#[from] IdentityDeliveryError),
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
    /// The user's homeserver knows no such user (or it is disabled): it answered a lookup or a
    /// claim naming them `404 not_found`. Its code is the server's, `not_found`.
    #[error("{0} does not exist: their homeserver has no such user (check the spelling)")]
    NoSuchUser(String),
    /// Another device of the account has no pre keys left, so no Topic Key can be sealed to it.
    #[error(
        "another device of this account has no pre keys left, so no topic keys can be made for it: bring that device online and run `rdv sync` there"
    )]
    NoPreKeysLeft,
    /// The signing key of a hosting server is not known, so its checkpoints cannot be checked.
    #[error("signing key of server {0} is unknown; cannot check its log")]
    ServerKeyUnknown(String),
    /// No device of the account has a key id starting with what was given.
    #[error(
        "no device of this account has a key id starting with {0} (`rdv device list` shows them)"
    )]
    NoSuchDevice(String),
    /// Several devices' key ids start with what was given.
    #[error("{0} matches several devices; give more of the key id (`rdv device list` shows them)")]
    AmbiguousDevice(String),
    /// A device cannot remove itself.
    #[error("this is the current device; remove it from another device of the account")]
    RemovingThisDevice,
    /// Nobody answered a device link in time.
    #[error("{0}; start again with a new code")]
    LinkTimedOut(String),
    /// The user's role in the topic does not allow posting.
    #[error("{user} is a reader of {topic} and may not post")]
    MayNotPost {
        /// The topic.
        topic: String,
        /// The user.
        user: String,
    },
    /// The view of a topic's log is not complete and verified, so nothing is written on it
    /// (`tag-log.md` §9.4): an entry is missing or fails a check.
    #[error(
        "the log of {topic} is not complete and verified ({reason}{}): nothing was encrypted or sent; `rdv read` shows the problem",
        indices_text(indices)
    )]
    LogIncomplete {
        /// The topic.
        topic: String,
        /// The indices of the entries missing or failing a check (empty: the entries do not add
        /// up to the head's root).
        indices: Vec<u64>,
        /// What is wrong.
        reason: String,
    },
    /// The head of a topic's log is older than `MAX_HEAD_AGE`: the server may be showing an old
    /// view, so nothing is written on it.
    #[error(
        "the newest checkpoint of {topic} was signed {age} s ago (more than {max} s): the server may be hiding newer entries; nothing was encrypted or sent",
        max = rendezvous_protocol::tlog::MAX_HEAD_AGE
    )]
    StaleHead {
        /// The topic.
        topic: String,
        /// Seconds since the head was signed.
        age: u64,
    },
    /// This device holds evidence that the topic's hosting server contradicted itself.
    #[error(
        "the hosting server of {topic} signed contradicting logs ({kind}); the evidence is kept on this device (`rdv evidence export --topic {topic}`) and nothing more is written to or accepted from this log"
    )]
    LogForked {
        /// The topic.
        topic: String,
        /// The kind of evidence (`split view`, `inconsistent`, `rollback`).
        kind: String,
    },
    /// `rdv verify` found that a topic's log does not verify (the report says why).
    #[error("the log of {0} does not verify")]
    LogDoesNotVerify(String),
    /// A command-line argument or input is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// The hosting server refused posts that had been answered `202 queued` (the inbox told
    /// this device; the message lists them).
    #[error("the hosting server refused queued posts: {0}")]
    PostRefused(String),
    /// A user's Identity Key could not be accepted from its homeserver's directory
    /// (`directory.md` §6.1); the code is the directory's ([`IDENTITY_CODES`]).
    #[error("identity directory: {0}")]
    Identity(#[from] rendezvous_protocol::directory::DirectoryError),
    /// After an identity rotation, some topic memberships could not be moved to the new key
    /// now (`rdv topic move` moves each later).
    #[error(
        "the identity key was rotated, but these topics still have your old key: {topics}; run `rdv topic move TOPIC` for each later"
    )]
    TopicsNotMoved {
        /// Each topic with why it was not moved.
        topics: String,
    },
    /// `topic move` of a membership already under the current Identity Key.
    #[error("your membership of {0} is already under your current identity key")]
    AlreadyMoved(String),
    /// This device refused a change of the topic: an added member's IK is not the one the
    /// member's directory binds (`directory.md` §6.4). Nothing more is written to the topic.
    #[error(
        "this device refused change {index} of {topic}: {reason}; nothing more is written to this topic (`rdv read` shows the change)"
    )]
    TopicRefused {
        /// The topic.
        topic: String,
        /// The refused change's index.
        index: u64,
        /// Why (names the member).
        reason: String,
    },
    /// An added member's IK could not be checked against its directory now
    /// (`directory.md` §6.4): nothing is written to the topic until it is.
    #[error(
        "the identity keys of members added to {topic} could not be checked yet ({users}): nothing was encrypted or sent; try again later"
    )]
    RosterUnchecked {
        /// The topic.
        topic: String,
        /// The members not checked and why.
        users: String,
    },
    /// Self-monitoring found entries of the homeserver's directory that bind this user to a
    /// key no device of it holds (`directory.md` §6.3).
    #[error(
        "the directory of {server} binds this user to an identity key this device does not hold (entries {indices}): someone may be impersonating you; the evidence is kept (`rdv directory check`), `rdv directory ack INDEX` silences an alarm"
    )]
    ForeignKey {
        /// The homeserver.
        server: String,
        /// The entry indices.
        indices: String,
    },
}

/// The machine-readable codes of [`ClientError::Identity`]: the identity directory's own
/// ([`rendezvous_protocol::directory::DirectoryError::code`], `client-api.md` §9).
pub const IDENTITY_CODES: &[&str] = &[
    "directory_invalid_entry",
    "directory_mismatch",
    "directory_unwitnessed",
    "directory_forked",
    "directory_rollback",
    "directory_bad_checkpoint",
    "identity_changed",
    "directory_entries_mismatch",
];

/// The machine-readable codes of errors the client finds itself (`client-api.md` §9); a refusal
/// by the server carries the server's own code (§1.1) instead. None of them is a server code.
pub const CLIENT_CODES: &[&str] = &[
    "keystore_io",
    "keystore_corrupt",
    "not_registered",
    "already_registered",
    "passphrase_required",
    "wrong_passphrase",
    "plaintext_keystore",
    "bad_fingerprint",
    "tls_setup",
    "bad_url",
    "unreachable",
    "fingerprint_mismatch",
    "unexpected_status",
    "malformed_answer",
    "queued",
    "server_misbehaved",
    "bad_device_set",
    "bad_topic_key",
    "bad_identity_delivery",
    "link_failed",
    "bad_change",
    "bad_log_entry",
    "bad_message",
    "bad_message_key",
    "bad_checkpoint_note",
    "log_inconsistent",
    "not_in_topic",
    "no_topic_key",
    "no_message_key",
    "no_topic_key_left",
    "no_pre_keys_left",
    "server_key_unknown",
    "no_such_device",
    "ambiguous_device",
    "removing_this_device",
    "link_timed_out",
    "may_not_post",
    "log_does_not_verify",
    "invalid_input",
    "log_incomplete",
    "stale_head",
    "log_forked",
    "post_refused",
    "topic_refused",
    "roster_unchecked",
    "topics_not_moved",
    "already_moved",
    "directory_foreign_key",
];

/// `: entries 2, 5` for a message, or nothing.
fn indices_text(indices: &[u64]) -> String {
    if indices.is_empty() {
        return String::new();
    }
    let list: Vec<String> = indices.iter().map(u64::to_string).collect();
    format!(": entries {}", list.join(", "))
}

/// What to do about a refusal, for the codes where the user can do something.
fn hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::PinInvalid => {
            "; ask the server's operator for a new pin (`rendezvous admin pin`)"
        }
        ErrorCode::UserDisabled => {
            "; the server's operator disabled this account (`rendezvous admin enable` undoes it)"
        }
        ErrorCode::UserExists => "; choose another user name",
        ErrorCode::StaleChange => "; the topic changed meanwhile: run the command again",
        ErrorCode::NotAdmin => "; only an admin of the topic can change it",
        ErrorCode::RateLimited => "; wait a little and try again",
        ErrorCode::Unavailable => "; the server is shutting down or busy: try again later",
        ErrorCode::Internal => "; the server's log says more",
        ErrorCode::SplitView => "; `rdv verify` shows the evidence",
        ErrorCode::DirectoryPending => {
            "; the user's directory entry is not witnessed yet: try again in a few seconds"
        }
        _ => "",
    }
}

impl ClientError {
    /// The server's error code, when the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            ClientError::DeviceRemoved { .. } => Some(ErrorCode::Unauthorized),
            ClientError::NoSuchUser(_) => Some(ErrorCode::NotFound),
            _ => None,
        }
    }

    /// The stable machine-readable code of this error: the server's code when the server
    /// refused ([`Self::code`]), else the client's own, one of [`CLIENT_CODES`].
    pub fn error_code(&self) -> &'static str {
        match self {
            ClientError::Api { code, .. } => code.as_str(),
            ClientError::DeviceRemoved { .. } => ErrorCode::Unauthorized.as_str(),
            ClientError::NoSuchUser(_) => ErrorCode::NotFound.as_str(),
            ClientError::Io { .. } => "keystore_io",
            ClientError::Corrupt { .. } => "keystore_corrupt",
            ClientError::NotRegistered(_) => "not_registered",
            ClientError::AlreadyRegistered(_) => "already_registered",
            ClientError::PassphraseRequired { .. } => "passphrase_required",
            ClientError::WrongPassphrase(_) => "wrong_passphrase",
            ClientError::PlaintextKeystore(_) => "plaintext_keystore",
            ClientError::BadFingerprint(_) => "bad_fingerprint",
            ClientError::Tls(_) => "tls_setup",
            ClientError::BadUrl { .. } => "bad_url",
            ClientError::Transport { .. } => "unreachable",
            ClientError::PinMismatch { .. } => "fingerprint_mismatch",
            ClientError::UnexpectedStatus { .. } => "unexpected_status",
            ClientError::Malformed { .. } => "malformed_answer",
            ClientError::Queued { .. } => "queued",
            ClientError::Misbehaved(_) => "server_misbehaved",
            ClientError::Directory(_) => "bad_device_set",
            ClientError::TopicKey(_) => "bad_topic_key",
            ClientError::IdentityDelivery(_) => "bad_identity_delivery",
            ClientError::Link(_) => "link_failed",
            ClientError::Change(_) => "bad_change",
            ClientError::Entry(_) => "bad_log_entry",
            ClientError::Message(_) => "bad_message",
            ClientError::Key(_) => "bad_message_key",
            ClientError::Checkpoint(_) => "bad_checkpoint_note",
            ClientError::Witness(_) => "log_inconsistent",
            ClientError::NotAMember { .. } => "not_in_topic",
            ClientError::NoTopicKey { .. } => "no_topic_key",
            ClientError::NoMessageKey { .. } => "no_message_key",
            ClientError::NoTopicKeyLeft(_) => "no_topic_key_left",
            ClientError::NoPreKeysLeft => "no_pre_keys_left",
            ClientError::ServerKeyUnknown(_) => "server_key_unknown",
            ClientError::NoSuchDevice(_) => "no_such_device",
            ClientError::AmbiguousDevice(_) => "ambiguous_device",
            ClientError::RemovingThisDevice => "removing_this_device",
            ClientError::LinkTimedOut(_) => "link_timed_out",
            ClientError::MayNotPost { .. } => "may_not_post",
            ClientError::LogDoesNotVerify(_) => "log_does_not_verify",
            ClientError::InvalidInput(_) => "invalid_input",
            ClientError::LogIncomplete { .. } => "log_incomplete",
            ClientError::StaleHead { .. } => "stale_head",
            ClientError::LogForked { .. } => "log_forked",
            ClientError::PostRefused(_) => "post_refused",
            ClientError::TopicRefused { .. } => "topic_refused",
            ClientError::RosterUnchecked { .. } => "roster_unchecked",
            ClientError::TopicsNotMoved { .. } => "topics_not_moved",
            ClientError::AlreadyMoved(_) => "already_moved",
            ClientError::ForeignKey { .. } => "directory_foreign_key",
            ClientError::Identity(e) => e.code(),
        }
    }

    /// Whether the error says only that something could not be reached or answered now
    /// (transport, `unavailable`, `directory_pending`, rate limits, a peer's bad answer): a
    /// check that fails so is left to later, not taken as a lie (`directory.md` §6.3, §6.4).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientError::Transport { .. } | ClientError::UnexpectedStatus { .. }
        ) || matches!(
            self.code(),
            Some(
                ErrorCode::Unavailable
                    | ErrorCode::DirectoryPending
                    | ErrorCode::RateLimited
                    | ErrorCode::Timeout
                    | ErrorCode::BadGateway
                    | ErrorCode::DirectoryForked
                    | ErrorCode::Internal
            )
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code `error_code` returns for a client-side error is listed in [`CLIENT_CODES`]
    /// (and so documented in `client-api.md` §9), and every listed code is returned.
    #[test]
    fn every_client_code_is_listed_and_documented() {
        let source = include_str!("error.rs");
        let body = source
            .split("pub fn error_code")
            .nth(1)
            .and_then(|s| s.split("\n    }\n").next())
            .unwrap();
        let returned: Vec<&str> = body
            .split("=> \"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        let mut sorted = returned.clone();
        assert!(CLIENT_CODES.iter().all(|c| !IDENTITY_CODES.contains(c)));
        sorted.sort_unstable();
        let mut listed = CLIENT_CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(sorted, listed);
        let spec = include_str!("../../../federation-spec/client-api.md");
        for code in CLIENT_CODES.iter().chain(IDENTITY_CODES) {
            assert!(
                spec.contains(&format!("| `{code}` |")),
                "{code} not in client-api.md §9"
            );
        }
    }
}

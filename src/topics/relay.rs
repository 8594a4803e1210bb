//! What the topic service needs from federation, as a narrow interface: queueing events for
//! other servers, and the few queries a participating or hosting server makes
//! (`federation-api.md` §5, §9). `crate::federation::Federation` implements it; the topic
//! service never sees the transport, so the dependency points one way.

use futures_util::future::LocalBoxFuture;

use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::crypto::{IdentityPublicKey, ServerPublicKey};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::tlog::{CheckpointNote, HostKeys};
use rendezvous_protocol::wire::SignedBytes;

/// A query to or a queue for another server failed, as the federation layer tells it: the
/// code a device or peer is answered, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RelayError {
    /// The code to answer with.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

impl RelayError {
    /// The peer could not be reached or the queue could not take the event: try later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        RelayError {
            code: ErrorCode::Unavailable,
            message: message.into(),
        }
    }
}

/// Federation as the topic service sees it. The futures are not `Send` (the HTTP client is
/// per thread); they are awaited on the worker that made them.
pub trait Relay: Send + Sync {
    /// Queues a signed event for `server` without waiting for durability: the caller syncs the
    /// store before acknowledging anything that depends on it. Events leave in queue order.
    fn queue(&self, server: &ServerName, event: &SignedBytes) -> Result<(), RelayError>;

    /// Whether `server` is worth a cosignature: not in a backoff that reached its cap
    /// (`federation-api.md` §8, §9.4).
    fn reachable(&self, server: &ServerName) -> bool {
        let _ = server;
        true
    }

    /// Other participating servers one cosignature goes to besides the hosting server
    /// (`federation.limits.cosign_fanout`).
    fn cosign_fanout(&self) -> usize {
        usize::MAX
    }

    /// Most topics of one hosting server mirrored here
    /// (`federation.limits.mirrored_topics_per_peer`).
    fn mirrors_per_host(&self) -> u64 {
        u64::MAX
    }

    /// Queues a signed event for `server`; durable when this returns.
    fn send<'a>(
        &'a self,
        server: &'a ServerName,
        event: &'a SignedBytes,
    ) -> LocalBoxFuture<'a, Result<(), RelayError>>;

    /// The Identity Key of `user`, a user of another server, from their homeserver (checked).
    fn identity<'a>(
        &'a self,
        user: &'a UserId,
    ) -> LocalBoxFuture<'a, Result<IdentityPublicKey, RelayError>>;

    /// The current keys of `server` (cached).
    fn server_keys<'a>(
        &'a self,
        server: &'a ServerName,
    ) -> LocalBoxFuture<'a, Result<Vec<ServerPublicKey>, RelayError>>;

    /// The chain of `server`'s checkpoint keys its key document shows: its newest key and the
    /// rotations back from it (`tag-log.md` §7.6), and when that document was fetched (Unix
    /// seconds, if known). `refresh` asks for a fresh document (a key may have rotated; the
    /// federation layer limits how often, and then answers with the one it holds).
    fn key_chain<'a>(
        &'a self,
        server: &'a ServerName,
        refresh: bool,
    ) -> LocalBoxFuture<'a, Result<(HostKeys, Option<u64>), RelayError>>;

    /// One page of `topic`'s entries from `from` on, from its hosting server: a
    /// `topic-entries-response` (`federation-api.md` §5), not yet decoded.
    fn entries<'a>(
        &'a self,
        topic: &'a TopicId,
        from: u64,
    ) -> LocalBoxFuture<'a, Result<Vec<u8>, RelayError>>;

    /// The hosting server's current checkpoint of `topic`, or `None` when it cannot be had.
    fn head<'a>(&'a self, topic: &'a TopicId) -> LocalBoxFuture<'a, Option<CheckpointNote>>;
}

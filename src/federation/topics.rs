//! Cross-server topics over federation (`federation-api.md` §9), the federation side of the
//! topic service: the event sink that hands `topic.entry`, `topic.submit` and
//! `topic.cosignature` events to [`TopicService`], and [`Relay`] — what the topic service
//! needs from federation — implemented over the outbound queues, the query client and the
//! peer keys.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::Federation;
use super::client::QueryError;
use super::inbound::EventSink;
use super::keys::PeerKeys;
use crate::error::ApiError;
use crate::topics::{Relay, RelayError, TopicService};
use rendezvous_protocol::api::{Body, CheckpointResponse, ErrorCode, encode_segment};
use rendezvous_protocol::crypto::{IdentityPublicKey, ServerPublicKey};
use rendezvous_protocol::federation::limits::MAX_BACKFILL_LEN;
use rendezvous_protocol::federation::{EventKind, VerifiedEvent};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::tlog::{CheckpointNote, HostKeys};
use rendezvous_protocol::wire::SignedBytes;

/// Path of the topic queries (`federation-api.md` §5): `{topic}/entries?from&limit` and
/// `{topic}/checkpoint`.
pub const TOPICS_PATH: &str = "/_rdv/federation/v1/topics";
/// Largest checkpoint answer accepted.
const MAX_CHECKPOINT_LEN: usize = 64 * 1024;

/// The event sink of a federating homeserver: topic events go to the topic service.
pub struct TopicSink {
    topics: Arc<TopicService>,
}

impl std::fmt::Debug for TopicSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSink").finish_non_exhaustive()
    }
}

impl TopicSink {
    /// A sink applying events to `topics`.
    pub fn new(topics: Arc<TopicService>) -> Self {
        TopicSink { topics }
    }
}

impl EventSink for TopicSink {
    async fn apply(&self, event: VerifiedEvent) -> Result<(), ErrorCode> {
        let e = event.event.value();
        let Some(topic) = &e.topic else {
            return Err(ErrorCode::Malformed);
        };
        let (topics, origin, payload) = (&self.topics, &e.origin, &e.payload);
        let result = match event.kind {
            EventKind::TopicEntry => topics.apply_entries(topic, origin, payload).await,
            EventKind::TopicSubmit => topics.apply_submit(topic, origin, payload).await,
            EventKind::TopicCosignature => topics.apply_cosignature(topic, origin, payload).await,
        };
        result.map_err(|err| {
            tracing::info!(origin = %e.origin, %topic, kind = ?event.kind, %err, "federation event refused");
            ApiError::from(err).code
        })
    }

    async fn settle(&self, origin: &ServerName) {
        self.topics.settle(origin);
    }
}

/// A failed query as the topic service passes it on: the code a device would be answered.
fn query_failed(e: QueryError) -> RelayError {
    let e = ApiError::from(e);
    RelayError {
        code: e.code,
        message: e.message,
    }
}

impl Relay for Federation {
    fn reachable(&self, server: &ServerName) -> bool {
        // federation-api.md §9.4: not a destination failing for over an hour.
        self.outbound().backoff(server).is_ok_and(|b| {
            super::outbound::backoff_ceiling(b.attempts) < super::outbound::BACKOFF_CAP
        })
    }

    fn cosign_fanout(&self) -> usize {
        self.limits.cosign_fanout
    }

    fn mirrors_per_host(&self) -> u64 {
        self.limits.mirrored_topics_per_peer
    }

    fn queue(&self, server: &ServerName, event: &SignedBytes) -> Result<(), RelayError> {
        self.outbound()
            .enqueue_unsynced(server, event)
            .map(|_| ())
            .map_err(|e| RelayError::unavailable(e.to_string()))
    }

    fn send<'a>(
        &'a self,
        server: &'a ServerName,
        event: &'a SignedBytes,
    ) -> LocalBoxFuture<'a, Result<(), RelayError>> {
        Box::pin(async move {
            self.outbound()
                .enqueue(server, event)
                .await
                .map(|_| ())
                .map_err(|e| RelayError::unavailable(e.to_string()))
        })
    }

    fn identity<'a>(
        &'a self,
        user: &'a UserId,
    ) -> LocalBoxFuture<'a, Result<IdentityPublicKey, RelayError>> {
        Box::pin(async move {
            // directory.md §6.4: a member's IK is the one its homeserver's directory binds,
            // checked against this server's witness view, as the client API's relay does.
            let witness = self
                .witness()
                .ok_or_else(|| RelayError::unavailable("the directory witness is not running"))?;
            let checked = witness.lookup(user, 0).await.map_err(|e| {
                let e = ApiError::from(e);
                RelayError {
                    code: e.code,
                    message: e.message,
                }
            })?;
            Ok(checked.identity.identity_key().clone())
        })
    }

    fn server_keys<'a>(
        &'a self,
        server: &'a ServerName,
    ) -> LocalBoxFuture<'a, Result<Vec<ServerPublicKey>, RelayError>> {
        Box::pin(async move {
            let doc = self
                .peer_keys()
                .server_keys(server, false)
                .await
                .map_err(|e| RelayError::unavailable(format!("keys of {server}: {e}")))?;
            Ok(doc.keys.iter().map(|k| k.key.clone()).collect())
        })
    }

    fn key_chain<'a>(
        &'a self,
        server: &'a ServerName,
        refresh: bool,
    ) -> LocalBoxFuture<'a, Result<(HostKeys, Option<u64>), RelayError>> {
        Box::pin(async move {
            let doc = self
                .peer_keys()
                .server_keys(server, refresh)
                .await
                .map_err(|e| RelayError::unavailable(format!("keys of {server}: {e}")))?;
            let chain = doc
                .host_keys()
                .map_err(|e| RelayError::unavailable(format!("key rotations of {server}: {e}")))?;
            Ok((chain, self.peer_keys().fetched_at(server)))
        })
    }

    fn entries<'a>(
        &'a self,
        topic: &'a TopicId,
        from: u64,
    ) -> LocalBoxFuture<'a, Result<Vec<u8>, RelayError>> {
        Box::pin(async move {
            let path = format!(
                "{TOPICS_PATH}/{}/entries?from={from}&limit=1000",
                encode_segment(topic.as_str())
            );
            self.client()
                .get(&topic.server(), &path, MAX_BACKFILL_LEN)
                .await
                .map_err(query_failed)
        })
    }

    fn head<'a>(&'a self, topic: &'a TopicId) -> LocalBoxFuture<'a, Option<CheckpointNote>> {
        Box::pin(async move {
            let path = format!(
                "{TOPICS_PATH}/{}/checkpoint",
                encode_segment(topic.as_str())
            );
            match self
                .client()
                .get(&topic.server(), &path, MAX_CHECKPOINT_LEN)
                .await
            {
                Ok(body) => CheckpointResponse::from_cbor(&body)
                    .map(|r| r.checkpoint)
                    .map_err(|e| tracing::info!(%topic, %e, "hosting server's checkpoint"))
                    .ok(),
                Err(e) => {
                    tracing::info!(%topic, %e, "hosting server unreachable for its checkpoint");
                    None
                }
            }
        })
    }
}

//! Bounded queues (`federation-api.md` §8): a destination's queue holds at most
//! `queue_events` events and `queue_bytes` bytes, none older than `queue_max_age_secs`, and at
//! most one `topic.cosignature` per topic (a newer one replaces it).

use super::{Outbound, OutboundError};
use crate::store::QueueBounds;
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::federation::{Event, EventKind};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::wire::{Signed, SignedBytes};

/// What bounds every destination's queue (`[federation.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Events and bytes.
    pub size: QueueBounds,
    /// Oldest event kept, seconds.
    pub max_age_secs: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            size: QueueBounds::NONE,
            max_age_secs: u64::MAX,
        }
    }
}

/// The event's `kind`, `topic` and `time`, for our own events (signed by this server).
fn describe(event: &SignedBytes) -> Option<(EventKind, Option<TopicId>, u64)> {
    let e = Signed::<Event>::from_signed_bytes(event.clone())
        .ok()?
        .decode_unverified()
        .ok()?;
    Some((EventKind::from_wire(e.kind).ok()?, e.topic, e.time))
}

impl Outbound {
    /// Queues `event` within the bounds: a cosignature takes the place of the topic's queued
    /// one; at the bound nothing is queued and [`OutboundError::QueueFull`] says so.
    pub(super) fn enqueue_bounded(
        &self,
        destination: &ServerName,
        event: &SignedBytes,
    ) -> Result<u64, OutboundError> {
        let described = describe(event);
        let replaces = match &described {
            Some((EventKind::TopicCosignature, topic, _)) => topic.as_ref(),
            _ => None,
        };
        match self
            .store
            .outbound_enqueue_bounded(destination, event, self.limits.size, replaces)?
        {
            Some(seq) => Ok(seq),
            None => {
                let kind = described.map(|(k, _, _)| k);
                tracing::warn!(%destination, ?kind, "outbound queue full; event not queued");
                Err(OutboundError::QueueFull {
                    destination: destination.to_string(),
                })
            }
        }
    }

    /// Drops the events at the head of `destination`'s queue older than `queue_max_age_secs`;
    /// a dropped submit is told to the refusal hook as `503 unavailable` (its author's devices
    /// get the kind-2 inbox item, `federation-api.md` §9.3). A transaction in flight that holds
    /// such an event is given up first (a peer down that long keeps it in flight): its younger
    /// events go again under a new id, which the receiver deduplicates by event id (§8).
    pub(super) fn drop_aged(&self, destination: &ServerName) -> Result<usize, OutboundError> {
        let now = self.clock.now_ms() / 1000;
        let oldest = now.saturating_sub(self.limits.max_age_secs);
        let aged = |event: &SignedBytes| describe(event).is_some_and(|(_, _, time)| time < oldest);
        if let Some(in_flight) = self.store.outbound_in_flight(destination)? {
            let events = self.store.outbound_events(destination, &in_flight.seqs)?;
            if events.iter().any(|(_, e)| aged(e)) {
                tracing::warn!(%destination, txn_id = %in_flight.txn_id, "transaction in flight holds events too old; given up");
                self.store.outbound_finish(destination, &[])?;
            }
        }
        let gone = self.store.outbound_drop_head(destination, aged)?;
        if gone.is_empty() {
            return Ok(0);
        }
        tracing::warn!(%destination, dropped = gone.len(), "queued events too old; dropped");
        if let Some(hook) = self.refusal_hook() {
            for event in &gone {
                hook(
                    event,
                    ErrorCode::Unavailable.status(),
                    ErrorCode::Unavailable.as_str(),
                );
            }
        }
        Ok(gone.len())
    }
}

//! Fan-out: a hosted topic's durable entries go to every other server with a member, and to
//! the servers of members removed meanwhile, as `topic.entry` events (`federation-api.md`
//! §9.1–§9.2), queued through the [`super::Relay`] under the topic's lock so that they leave
//! in log order.

use std::collections::BTreeSet;

use serde_bytes::ByteBuf;

use super::durable::still_pending;
use super::hosted::{Durable, Hosted};
use super::service::TopicService;
use rendezvous_protocol::federation::topic_events::{EntryBatch, batch_ranges};
use rendezvous_protocol::federation::{Event, EventKind};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::{CheckpointNote, LeafIndex};

impl TopicService {
    /// Queues `topic.entry` events with the durable entries for every other server with a
    /// member, and for the servers of members removed meanwhile; returns whether anything was
    /// queued. Failures are logged: a participant that misses entries backfills them when the
    /// next ones arrive.
    pub(super) fn fan_out(
        &self,
        topic: &TopicId,
        hosted: &mut Hosted,
        durable: &Durable,
        checkpoint: &CheckpointNote,
    ) -> bool {
        let servers = self.fan_out_servers(hosted);
        let Some(relay) = self.relay_if_on() else {
            return false;
        };
        let entries = &durable.entries;
        let (Some(&(first, _)), false) = (entries.first(), servers.is_empty()) else {
            return false;
        };
        let mut queued = false;
        for (start, end) in batch_ranges(entries) {
            let from = usize::try_from(start - first).unwrap_or(usize::MAX);
            let to = usize::try_from(end - first).unwrap_or(usize::MAX);
            let (Some(batch), Some(frontier)) =
                (entries.get(from..to), durable.frontiers.get(to - 1))
            else {
                continue;
            };
            // The last batch ends at the durable size: its checkpoint is the one just signed.
            let note = match to == entries.len() {
                true => checkpoint.clone(),
                false => match self.sign_checkpoint(topic, frontier) {
                    Ok(note) => note,
                    Err(e) => {
                        tracing::error!(%topic, %e, "signing a checkpoint for fan-out");
                        return queued;
                    }
                },
            };
            let payload = EntryBatch {
                first: LeafIndex(start),
                entries: batch
                    .iter()
                    .map(|(_, e)| ByteBuf::from(e.clone()))
                    .collect(),
                checkpoint: note,
            }
            .to_wire();
            for server in &servers {
                let event = Event::sign(
                    &self.server_name,
                    server,
                    EventKind::TopicEntry,
                    Some(topic),
                    payload.clone(),
                    self.clock.now(),
                    self.server_key(),
                );
                match relay.queue(server, event.signed_bytes()) {
                    Ok(()) => queued = true,
                    Err(e) => {
                        tracing::error!(%topic, %server, %e, "queueing entries for a participating server")
                    }
                }
            }
        }
        queued
    }

    /// The other servers with a member, and those of members removed by entries published
    /// now (forgotten once nothing is pending).
    fn fan_out_servers(&self, hosted: &mut Hosted) -> BTreeSet<ServerName> {
        let mut servers: BTreeSet<ServerName> = hosted
            .log
            .state
            .members()
            .values()
            .map(|m| m.user.server())
            .filter(|s| *s != self.server_name)
            .collect();
        servers.extend(hosted.removed_servers.iter().cloned());
        if !still_pending(hosted) {
            hosted.removed_servers.clear();
        }
        servers
    }
}

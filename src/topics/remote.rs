//! Topics across servers (`federation-api.md` §9): the hosting server's `topic.entry` batches
//! applied to mirrors (with backfill of what is missing), posts submitted to the hosting
//! server (`topic.submit`) from either end, and what a device sees of a topic's witnesses.

use std::sync::Arc;
use std::time::Duration;

use serde_bytes::ByteBuf;

use super::append::{Appended, NewEntry};
use super::error::{TopicError, TopicResult};
use super::mirror::Mirrored;
use super::pinned::HostKeySet;
use super::service::TopicService;
use super::waiters::Landed;
use super::{Unsynced, lock};
use rendezvous_protocol::federation::topic_events::{
    ENTRY_BATCH_BYTES, EntryBatch, MAX_ENTRIES_PER_EVENT, Submit,
};
use rendezvous_protocol::federation::{Event, EventKind};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::message::MessageIn;
use rendezvous_protocol::tlog::{CheckpointNote, LeafIndex, SignedCheckpoint};
use rendezvous_protocol::topic::{ENTRY_CHANGE, ENTRY_MESSAGE, LogEntry, TopicChange};
use rendezvous_protocol::wire::Signed;

/// Most backfill pages fetched for one event.
const MAX_BACKFILL_PAGES: usize = 10_000;

/// How long a post to another server's topic waits for its entry to come back before the
/// device is answered `202 queued` (`federation-api.md` §9.3).
const SUBMIT_WAIT: Duration = Duration::from_secs(10);

/// What became of a post to a topic hosted elsewhere, as the device is answered.
#[derive(Debug)]
pub enum Submitted {
    /// Its entry came back: at this index, with the hosting server's checkpoint.
    Landed {
        /// The log index.
        index: u64,
        /// The hosting server's checkpoint.
        checkpoint: CheckpointNote,
    },
    /// Queued for the hosting server; the entry did not come back in time (`202`).
    Queued,
}

/// What a device sees of a topic's witnesses (`federation-api.md` §9.4).
#[derive(Debug)]
pub struct Witnesses {
    /// The hosting server's head (`None` when it cannot be had).
    pub host: Option<CheckpointNote>,
    /// This server's mirror head (topics hosted elsewhere).
    pub mirror: Option<CheckpointNote>,
    /// The cosigned notes kept.
    pub witnesses: Vec<CheckpointNote>,
    /// Evidence against the hosting server, if any.
    pub evidence: Option<Vec<u8>>,
}

impl TopicService {
    /// A post or change by `caller` to a topic hosted by another server: checked against the
    /// mirror, queued for the hosting server as `topic.submit`, then answered when its entry
    /// arrives (or [`Submitted::Queued`]).
    pub async fn submit_remote(
        &self,
        topic: &TopicId,
        entry: NewEntry,
        caller: &UserId,
    ) -> TopicResult<Submitted> {
        let relay = self.relay(|| format!("{topic} is hosted elsewhere"))?;
        let (entry, leaf) = self.precheck(topic, entry, caller)?;
        let payload = Submit {
            submitter: caller.clone(),
            entry: ByteBuf::from(entry.to_wire()),
        }
        .to_wire();
        let host = topic.server();
        let event = Event::sign(
            &self.server_name,
            &host,
            EventKind::TopicSubmit,
            Some(topic),
            payload,
            self.clock.now(),
            self.server_key(),
        );
        let landed = self
            .waiters
            .wait(topic, leaf, Event::id(event.signed_bytes()));
        relay.send(&host, event.signed_bytes()).await?;
        match actix_web::rt::time::timeout(SUBMIT_WAIT, landed).await {
            Ok(Ok(Landed::At(index, checkpoint))) => Ok(Submitted::Landed { index, checkpoint }),
            Ok(Ok(Landed::Refused(e))) => Err(e),
            _ => Ok(Submitted::Queued),
        }
    }

    /// A `topic.submit` event from `origin` for a topic hosted here: appended as if the
    /// submitter had posted it here, answered once durable.
    pub async fn apply_submit(
        self: &Arc<Self>,
        topic: &TopicId,
        origin: &ServerName,
        payload: &[u8],
    ) -> TopicResult<()> {
        if topic.server() != self.server_name {
            return Err(TopicError::SubmitElsewhere {
                topic: topic.clone(),
            });
        }
        let submit = Submit::from_wire(payload)?;
        if submit.submitter.server() != *origin {
            return Err(TopicError::WrongOrigin {
                submitter: submit.submitter,
                origin: origin.clone(),
            });
        }
        let entry = LogEntry::from_wire(&submit.entry)?;
        let appended = match entry.0 {
            ENTRY_MESSAGE => {
                let msg = MessageIn::from_wire(&entry.1)?;
                self.post(topic, msg, &submit.submitter)?
            }
            ENTRY_CHANGE => {
                let change = Signed::<TopicChange>::from_wire(&entry.1)?;
                self.change(topic, change, &submit.submitter).await?
            }
            kind => return Err(TopicError::UnknownEntryKind { kind }),
        };
        self.complete(topic, appended).await?;
        Ok(())
    }

    /// A `topic.entry` event from `origin`, the topic's hosting server: applied to the mirror
    /// (backfilling first what is missing), published once the inbound transaction's sync made
    /// it durable ([`TopicService::settle`]), and its head cosigned soon.
    pub async fn apply_entries(
        self: &Arc<Self>,
        topic: &TopicId,
        origin: &ServerName,
        payload: &[u8],
    ) -> TopicResult<()> {
        if topic.server() != *origin {
            return Err(TopicError::NotTheHost {
                origin: origin.clone(),
                topic: topic.clone(),
            });
        }
        let batch = EntryBatch::from_wire(payload)?;
        let note = SignedCheckpoint::parse(batch.checkpoint.as_bytes()).ok();
        let keys = self.host_key_set(topic, note.as_ref()).await?;
        let mut applied = Unsynced::new();
        let result = self
            .apply_unsynced(topic, &batch, &keys, &mut applied)
            .await;
        lock(&self.unsynced)
            .entry(origin.clone())
            .or_default()
            .extend(applied);
        result?;
        self.schedule_cosign(topic);
        Ok(())
    }

    /// Called after the store is synced at the end of each transaction from `origin`: every
    /// entry its events mirrored was written before that sync (a transaction that failed
    /// before its sync leaves its entries for the origin's next one, which syncs first too), so
    /// they are published now.
    pub fn settle(&self, origin: &ServerName) {
        let applied = lock(&self.unsynced).remove(origin).unwrap_or_default();
        if let Err(e) = self.publish_mirrored(applied) {
            tracing::warn!(%origin, %e, "publishing mirrored entries");
        }
    }

    /// Publishes durable mirrored entries (in order) to local devices and hands them to
    /// waiting submitters.
    fn publish_mirrored(&self, applied: Unsynced) -> TopicResult<()> {
        for (topic, last, leaves) in applied {
            let (publish, note) = self.durable(&topic, last)?;
            self.deliver.deliver(&self.store, &publish);
            let first = (last.index + 1).saturating_sub(leaves.len() as u64);
            self.waiters.arrived(&topic, first, &leaves, &note);
        }
        Ok(())
    }

    /// Applies a batch from the hosting server to the mirror, backfilling missing entries
    /// first. What it mirrored goes into `applied`.
    async fn apply_unsynced(
        &self,
        topic: &TopicId,
        batch: &EntryBatch,
        host_keys: &HostKeySet,
        applied: &mut Unsynced,
    ) -> TopicResult<()> {
        let mut pages = 0;
        loop {
            match self.mirror(topic, batch, host_keys)? {
                Mirrored::Unchanged => return Ok(()),
                Mirrored::Applied { last, leaves } => {
                    applied.push((topic.clone(), last, leaves));
                    return Ok(());
                }
                Mirrored::Gap { from } => {
                    pages += 1;
                    if pages > MAX_BACKFILL_PAGES {
                        return Err(TopicError::EndlessBackfill);
                    }
                    let page = self.backfill_page(topic, from).await?;
                    if page.first.get() != from {
                        return Err(TopicError::BackfillMismatch {
                            from,
                            got: page.first.get(),
                        });
                    }
                    Box::pin(self.apply_unsynced(topic, &page, host_keys, applied)).await?;
                }
            }
        }
    }

    /// One page of entries from `from` on, from the topic's hosting server.
    async fn backfill_page(&self, topic: &TopicId, from: u64) -> TopicResult<EntryBatch> {
        let relay = self.relay(|| "backfill".into())?;
        let body = relay.entries(topic, from).await?;
        Ok(EntryBatch::from_backfill_wire(&body)?)
    }

    /// Durable entries of a topic hosted here from `from` (at most `limit`, clamped to
    /// 1..=1000, and about 1 MiB), as a `topic.entry` payload with the checkpoint of their end
    /// (`federation-api.md` §5).
    pub fn backfill(
        &self,
        topic: &TopicId,
        from: u64,
        limit: Option<usize>,
    ) -> TopicResult<EntryBatch> {
        let size = self.durable_size(topic)?;
        if from >= size {
            return Err(TopicError::BeyondLog { size });
        }
        let limit = limit
            .unwrap_or(MAX_ENTRIES_PER_EVENT)
            .clamp(1, MAX_ENTRIES_PER_EVENT);
        // Durable entries only: the checkpoint of their end vouches for them.
        let durable = usize::try_from(size - from).unwrap_or(usize::MAX);
        let entries: Vec<ByteBuf> = self
            .store
            .entries(topic, from, limit.min(durable), ENTRY_BATCH_BYTES)?
            .into_iter()
            .map(|(_, entry)| ByteBuf::from(entry))
            .collect();
        let end = from + entries.len() as u64;
        Ok(EntryBatch {
            first: LeafIndex(from),
            checkpoint: self.checkpoint_at(topic, end)?,
            entries,
        })
    }

    /// The hosting server's head, this server's mirror head, the cosignatures kept, and any
    /// evidence (`federation-api.md` §9.4), for `rdv verify`.
    pub async fn witnesses(&self, topic: &TopicId) -> TopicResult<Witnesses> {
        let (host, mirror) = match topic.server() == self.server_name {
            true => (Some(self.checkpoint(topic)?), None),
            false => {
                let head = match self.relay_if_on() {
                    Some(relay) => relay.head(topic).await,
                    None => None,
                };
                let mirror = self.store.mirror_head(topic)?;
                (head, mirror.map(stored_note).transpose()?)
            }
        };
        let witnesses = self.store.witness_notes(topic)?;
        Ok(Witnesses {
            host,
            mirror,
            witnesses: witnesses
                .into_iter()
                .map(|(_, note)| stored_note(note))
                .collect::<TopicResult<_>>()?,
            evidence: match self.store.mirror_evidence(topic)? {
                Some(evidence) => Some(evidence),
                None => self.store.mirror_alarm(topic)?,
            },
        })
    }
}

/// Entries a transaction mirrored, published once the store is durable.
pub(super) type UnsyncedEntry = (TopicId, Appended, Vec<rendezvous_protocol::tlog::LogHash>);

/// A note this server verified before storing it: one that no longer parses is a storage fault
/// (`internal`), never silently left out of what devices compare.
fn stored_note(note: String) -> TopicResult<CheckpointNote> {
    CheckpointNote::parse(note).map_err(|e| TopicError::internal("stored checkpoint note", e))
}

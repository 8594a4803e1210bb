//! Durability and its ordering: after an append's writes are flushed, the entries up to it
//! are durable; they are taken out of the pending ones in log order (step 1), the durable
//! prefix gets its checkpoint (step 2), a hosted topic's new entries are queued for the other
//! servers with members (step 3, [`super::fanout`]), and they are delivered to devices.

use std::sync::Arc;

use super::Publish;
use super::append::Appended;
use super::error::{TopicError, TopicResult};
use super::hosted::{Hosted, Topic};
use super::lock;
use super::service::TopicService;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{
    Checkpoint, CheckpointNote, Frontier, LogHash, SignedCheckpoint, TreeSize,
};
use rendezvous_protocol::topic::log_origin;

impl TopicService {
    /// After an append: waits for durability, publishes what became durable (in log order)
    /// and queues it for other servers, and returns a checkpoint of the durable log, which
    /// includes the entry.
    ///
    /// The entry is already written: its durability, publication and checkpoint must not
    /// depend on the request staying alive (actix drops a handler whose client hung up), so
    /// they run as their own task and the caller only waits for the answer.
    pub async fn complete(
        self: &Arc<Self>,
        topic: &TopicId,
        appended: Appended,
    ) -> TopicResult<CheckpointNote> {
        let (service, topic) = (self.clone(), topic.clone());
        let done = actix_web::rt::spawn(async move {
            service.store.sync().await?;
            let (publish, checkpoint) = service.durable(&topic, appended)?;
            service.deliver.deliver(&service.store, &publish);
            if publish.queued_for_peers {
                service.store.sync().await?;
            }
            Ok::<_, TopicError>(checkpoint)
        });
        done.await
            .map_err(|e| TopicError::internal("append completion", e))?
    }

    /// Called once `appended`'s writes are durable (the caller's `sync` returned). Every entry
    /// up to it was written before it, so it is durable too: they are published in log order,
    /// and the returned checkpoint — signed once per durable size, shared by every request the
    /// same flush answered — vouches for exactly the durable prefix, never for an entry a crash
    /// could still lose. For a hosted topic with members on other servers, the entries are
    /// queued for those servers here, under the topic's lock, so that they leave in log order
    /// (`federation-api.md` §9.2). For a mirror, the checkpoint is the hosting server's.
    pub(super) fn durable(
        &self,
        topic: &TopicId,
        appended: Appended,
    ) -> TopicResult<(Publish, CheckpointNote)> {
        let t = self.get(topic)?;
        let mut t = lock(&t);
        let members = t.log().state.members().values();
        let members = members.map(|m| m.user.clone()).collect();
        let durable = t.log_mut().take_durable(appended.index);
        let checkpoint = self.durable_checkpoint(topic, &mut t)?;
        let queued_for_peers = match &mut *t {
            Topic::Hosted(hosted) if !durable.entries.is_empty() => {
                self.fan_out(topic, hosted, &durable, &checkpoint)
            }
            _ => false,
        };
        let publish = Publish {
            topic: topic.clone(),
            entries: durable.entries,
            members,
            queued_for_peers,
        };
        Ok((publish, checkpoint))
    }

    /// The checkpoint of the topic's durable log: signed here for a hosted topic, the hosting
    /// server's for a mirror.
    pub fn checkpoint(&self, topic: &TopicId) -> TopicResult<CheckpointNote> {
        let t = self.get(topic)?;
        let mut t = lock(&t);
        self.durable_checkpoint(topic, &mut t)
    }

    /// A signed checkpoint of the first `size` entries of a topic hosted here (backfill,
    /// `federation-api.md` §5); `size` must not exceed the durable log.
    pub fn checkpoint_at(&self, topic: &TopicId, size: u64) -> TopicResult<CheckpointNote> {
        let durable = self.durable_size(topic)?;
        if size == durable {
            return self.checkpoint(topic);
        }
        let root = self
            .root_at(topic, TreeSize(size))?
            .ok_or(TopicError::BeyondDurable { size, durable })?;
        self.sign_checkpoint_of(topic, TreeSize(size), root)
    }

    /// The checkpoint of the durable prefix: the cached one while the durable size has not
    /// grown.
    pub(super) fn durable_checkpoint(
        &self,
        topic: &TopicId,
        t: &mut Topic,
    ) -> TopicResult<CheckpointNote> {
        let hosted = match t {
            Topic::Mirror(m) => return m.checkpoint(),
            Topic::Hosted(h) => h,
        };
        let size = hosted.log.durable.size().0;
        if let Some((signed_size, note)) = &hosted.signed
            && *signed_size == size
        {
            return Ok(note.clone());
        }
        let note = self.sign_checkpoint(topic, &hosted.log.durable)?;
        hosted.signed = Some((size, note.clone()));
        Ok(note)
    }

    /// This server's checkpoint of `topic`'s log at `frontier`.
    pub(super) fn sign_checkpoint(
        &self,
        topic: &TopicId,
        frontier: &Frontier,
    ) -> TopicResult<CheckpointNote> {
        self.sign_checkpoint_of(topic, frontier.size(), frontier.root())
    }

    fn sign_checkpoint_of(
        &self,
        topic: &TopicId,
        size: TreeSize,
        root: LogHash,
    ) -> TopicResult<CheckpointNote> {
        let cp = Checkpoint::new(&log_origin(topic), size, root, self.clock.now())
            .map_err(|e| TopicError::internal("checkpoint", e))?;
        let signed = SignedCheckpoint::sign(&cp, self.server_key(), self.server_name.as_str())
            .map_err(|e| TopicError::internal("checkpoint", e))?;
        Ok(signed.to_note())
    }
}

/// Whether a hosted topic still has entries waiting for durability.
pub(super) fn still_pending(hosted: &Hosted) -> bool {
    hosted.log.has_pending()
}

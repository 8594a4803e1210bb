//! Posts the hosting server refused after they were queued (`federation-api.md` §9.3): the
//! device still waiting is answered; otherwise (it was answered `202 queued`, or this server
//! restarted meanwhile) every device of the author gets an inbox item
//! ([`INBOX_POST_REFUSED`], `client-api.md` §5), so that no refusal is only a log line.

use super::error::{TopicError, TopicResult};
use super::service::TopicService;
use rendezvous_protocol::api::{INBOX_POST_REFUSED, PostRefusedItem};
use rendezvous_protocol::federation::topic_events::Submit;
use rendezvous_protocol::federation::{Event, EventKind};
use rendezvous_protocol::wire::{Signed, SignedBytes};

impl TopicService {
    /// The hosting server refused `event` (one this server sent) for good with `status` and
    /// `code`. A refused `topic.submit` is told to its waiting device, or filed in the inbox of
    /// every device of its author; other events are only logged by the outbound queue.
    pub fn submit_refused(&self, event: &SignedBytes, status: u16, code: &str) {
        if self.waiters.refused(&Event::id(event), status, code) {
            return;
        }
        if let Err(e) = self.file_refusal(event, status, code) {
            tracing::error!(%e, status, code, "telling an author that the host refused a queued post");
        }
    }

    fn file_refusal(&self, event: &SignedBytes, status: u16, code: &str) -> TopicResult<()> {
        // Our own event, from our own outbound queue: signed by this server's key.
        let verified = Signed::<Event>::from_signed_bytes(event.clone())
            .map_err(|e| TopicError::internal("refused event", e))?
            .verify(self.server_key().public())
            .map_err(|e| TopicError::internal("refused event", e))?;
        let event = verified.value().clone();
        if EventKind::from_wire(event.kind).ok() != Some(EventKind::TopicSubmit) {
            return Ok(());
        }
        let Some(topic) = event.topic else {
            return Ok(());
        };
        let submit = Submit::from_wire(&event.payload)
            .map_err(|e| TopicError::internal("refused submit", e))?;
        tracing::warn!(%topic, author = %submit.submitter, status, code, "the hosting server refused a queued post; its author's devices are told");
        let item = PostRefusedItem {
            topic,
            status,
            code: code.to_owned(),
            entry: submit.entry,
        }
        .to_wire();
        for device in self.store.devices(&submit.submitter)? {
            self.store.inbox_push(
                &submit.submitter,
                device.device_key,
                INBOX_POST_REFUSED,
                &item,
            )?;
        }
        Ok(())
    }
}

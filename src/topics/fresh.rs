//! Fresh heads (`client-api.md` §6 `checkpoint`, `tag-log.md` §9.4): a member refuses to write on
//! a head older than `MAX_HEAD_AGE`, so an idle topic's head must not go stale while its hosting
//! server is honest. The hosting server re-signs its head (same size and root, `time` now) when
//! its newest signature is older than [`HEAD_RESIGN_AFTER`]; a mirror asks the hosting server
//! for a fresh head when its own is older, and serves what it holds when the host cannot be
//! reached.

use super::error::TopicResult;
use super::hosted::Topic;
use super::lock;
use super::mirror::parse_host_checkpoint;
use super::service::TopicService;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{CheckpointNote, HEAD_RESIGN_AFTER, SignedCheckpoint};

/// Whether a head signed at `time` is due for a fresh signature at `now`: older than
/// [`HEAD_RESIGN_AFTER`]. A re-signed head has `time = now`, so one topic gets at most one new
/// signature per [`HEAD_RESIGN_AFTER`] seconds however often it is asked (and never two in one
/// second).
pub(super) fn due(time: u64, now: u64) -> bool {
    now.saturating_sub(time) > HEAD_RESIGN_AFTER
}

/// The `time` of a checkpoint note (`None`: it does not parse, which the caller handles as due).
fn note_time(note: &CheckpointNote) -> Option<u64> {
    note.signed().ok().map(|s| s.unverified_checkpoint().time)
}

impl TopicService {
    /// The topic's head for a member who asks for it (`GET /v1/topics/{topic}/checkpoint`): as
    /// [`Self::checkpoint`], but fresh. Hosted here: re-signed when due and kept as the new head.
    /// Mirrored: when the held head is due, the hosting server's current head is fetched and
    /// offered to the mirror's view (same size only: a larger one waits for its entries); when
    /// the host cannot be reached or answers something else, the held head is served.
    pub async fn fresh_checkpoint(&self, topic: &TopicId) -> TopicResult<CheckpointNote> {
        if topic.server() == self.server_name {
            return self.resigned_checkpoint(topic);
        }
        let held = self.checkpoint(topic)?;
        if note_time(&held).is_some_and(|t| !due(t, self.clock.now()))
            || !self.claim_refresh(topic)?
        {
            return Ok(held);
        }
        let Some(relay) = self.relay_if_on() else {
            return Ok(held);
        };
        let Some(fetched) = relay.head(topic).await else {
            return Ok(held);
        };
        let signed = SignedCheckpoint::parse(fetched.as_str().as_bytes()).ok();
        let Ok(keys) = self.host_key_set(topic, signed.as_ref()).await else {
            return Ok(held);
        };
        let Ok(host) = parse_host_checkpoint(fetched.as_str(), topic, &keys) else {
            tracing::warn!(%topic, "the hosting server's fresh head does not verify; serving the held one");
            return Ok(held);
        };
        let t = self.get(topic)?;
        let mut t = lock(&t);
        let Topic::Mirror(m) = &mut *t else {
            return Ok(held);
        };
        let held_size = m
            .head
            .as_ref()
            .and_then(|h| h.signed().ok())
            .map(|s| s.unverified_checkpoint().size);
        if let Some(reason) = &host.key_changed {
            return Err(self.stop(topic, m, fetched.as_str(), reason));
        }
        if held_size == Some(host.checkpoint.size) {
            // Same size: a fresher signature over the same tree, or a split view (evidence,
            // the mirror stops and this answers `split_view`).
            self.advance_head(topic, m, &host.note, &host.keys)?;
        }
        m.checkpoint()
    }

    /// Whether this request may ask the hosting server for a fresh head now: one query per
    /// topic per [`HEAD_RESIGN_AFTER`], so members asking often (or a host that does not answer)
    /// cannot make this server query the host once per request.
    fn claim_refresh(&self, topic: &TopicId) -> TopicResult<bool> {
        let t = self.get(topic)?;
        let mut t = lock(&t);
        let Topic::Mirror(m) = &mut *t else {
            return Ok(false);
        };
        let now = self.clock.now();
        if !due(m.refreshed_at, now) {
            return Ok(false);
        }
        m.refreshed_at = now;
        Ok(true)
    }

    /// A hosted topic's head, re-signed when due.
    fn resigned_checkpoint(&self, topic: &TopicId) -> TopicResult<CheckpointNote> {
        let t = self.get(topic)?;
        let mut t = lock(&t);
        let head = self.durable_checkpoint(topic, &mut t)?;
        let Topic::Hosted(hosted) = &mut *t else {
            return Ok(head);
        };
        let now = self.clock.now();
        if note_time(&head).is_some_and(|time| !due(time, now)) {
            return Ok(head);
        }
        let durable = &hosted.log.durable;
        let note = self.sign_checkpoint(topic, durable)?;
        hosted.signed = Some((durable.size().0, note.clone()));
        Ok(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_re_signed_only_once_older_than_the_bound() {
        let t = 1_000_000;
        assert!(!due(t, t));
        assert!(!due(t, t + HEAD_RESIGN_AFTER));
        assert!(due(t, t + HEAD_RESIGN_AFTER + 1));
        // A head from the future (a clock that went back) is not re-signed: its time must not
        // go back either.
        assert!(!due(t + 10, t));
    }
}

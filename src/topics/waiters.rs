//! The waiters of posts submitted to other servers' topics (`federation-api.md` §9.3): a
//! device that posts to a topic hosted elsewhere is answered when the entry comes back in the
//! mirror, or when the hosting server refuses the submit event.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::error::TopicError;
use super::lock;
use rendezvous_protocol::federation::EventId;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{CheckpointNote, LogHash};

/// What became of a post submitted to another server.
#[derive(Debug)]
pub enum Landed {
    /// It is in the log at this index; the hosting server's checkpoint.
    At(u64, CheckpointNote),
    /// The hosting server refused it.
    Refused(TopicError),
}

type WaitKey = (TopicId, [u8; 32]);

/// Devices waiting for their submitted posts: by the entry's leaf hash (its arrival in the
/// mirror), and by the submit event's id (a refusal in the event's result).
#[derive(Debug, Default)]
pub(super) struct SubmitWaiters {
    by_leaf: Mutex<HashMap<WaitKey, Vec<oneshot::Sender<Landed>>>>,
    by_event: Mutex<HashMap<EventId, WaitKey>>,
}

impl SubmitWaiters {
    /// Waits for the entry with `leaf` in `topic`, submitted as event `event`.
    pub(super) fn wait(
        &self,
        topic: &TopicId,
        leaf: LogHash,
        event: EventId,
    ) -> oneshot::Receiver<Landed> {
        let (tx, rx) = oneshot::channel();
        let key = (topic.clone(), leaf.0);
        let mut by_leaf = lock(&self.by_leaf);
        // Forget waiters whose devices gave up.
        by_leaf.retain(|_, v| {
            v.retain(|s| !s.is_closed());
            !v.is_empty()
        });
        by_leaf.entry(key.clone()).or_default().push(tx);
        let mut by_event = lock(&self.by_event);
        by_event.retain(|_, k| by_leaf.contains_key(k));
        by_event.insert(event, key);
        rx
    }

    /// Entries with these leaves arrived in `topic`'s mirror, from index `first`.
    pub(super) fn arrived(
        &self,
        topic: &TopicId,
        first: u64,
        leaves: &[LogHash],
        checkpoint: &CheckpointNote,
    ) {
        let mut by_leaf = lock(&self.by_leaf);
        if by_leaf.is_empty() {
            return;
        }
        for (i, leaf) in leaves.iter().enumerate() {
            if let Some(waiters) = by_leaf.remove(&(topic.clone(), leaf.0)) {
                for w in waiters {
                    let _ = w.send(Landed::At(first + i as u64, checkpoint.clone()));
                }
            }
        }
    }

    /// The hosting server refused the submit event `event` with `status` and `code`; whether
    /// a device was still waiting to be told.
    pub(super) fn refused(&self, event: &EventId, status: u16, code: &str) -> bool {
        let Some(key) = lock(&self.by_event).remove(event) else {
            return false;
        };
        let mut told = false;
        if let Some(waiters) = lock(&self.by_leaf).remove(&key) {
            for w in waiters {
                told |= w
                    .send(Landed::Refused(TopicError::HostRefused {
                        status,
                        code: code.to_owned(),
                    }))
                    .is_ok();
            }
        }
        told
    }
}

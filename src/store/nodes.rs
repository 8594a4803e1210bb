//! [`TopicNodes`]: a topic's tag-log nodes as a [`NodeStore`], with buffered writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Store;
use super::keys::Key;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{LogHash, NodeStore};

/// The tag-log tree nodes of one topic, read from the store; writes are buffered in memory.
///
/// Appending to a [`rendezvous_protocol::tlog::Tree`] over a `TopicNodes` records the new nodes here;
/// [`TopicNodes::take_pending`] hands them over for [`super::Append::nodes`], so that they are
/// written in the same transaction as the entry. If that append fails, the tree's frontier is
/// ahead of the store: drop the tree and reopen it with [`rendezvous_protocol::tlog::Tree::open`].
pub struct TopicNodes<'a> {
    store: &'a Store,
    prefix: Vec<u8>,
    pending: Mutex<BTreeMap<(u8, u64), [u8; 32]>>,
}

impl std::fmt::Debug for TopicNodes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicNodes").finish_non_exhaustive()
    }
}

impl<'a> TopicNodes<'a> {
    /// The nodes of `topic`.
    pub fn new(store: &'a Store, topic: &TopicId) -> Self {
        TopicNodes {
            store,
            prefix: Key::new().id(topic.as_str()).build(),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes the buffered writes, in `(level, index)` order.
    pub fn take_pending(&self) -> Vec<(u8, u64, [u8; 32])> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *pending)
            .into_iter()
            .map(|((level, index), hash)| (level, index, hash))
            .collect()
    }
}

impl NodeStore for TopicNodes<'_> {
    fn get(&self, level: u8, index: u64) -> Option<LogHash> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hash) = pending.get(&(level, index)) {
            return Some(LogHash(*hash));
        }
        drop(pending);
        // A read error shows up as a missing node, which the tree reports.
        self.store
            .node_at(&self.prefix, level, index)
            .ok()
            .flatten()
            .map(LogHash)
    }

    fn put(&mut self, level: u8, index: u64, hash: LogHash) {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        pending.insert((level, index), hash.0);
    }
}

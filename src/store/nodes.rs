//! [`LogNodes`]: the tree nodes of one log kept here (a topic's tag log, or this server's
//! directory, `directory.md` §2) as a [`NodeStore`], with buffered writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Store;
use super::keys::Key;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{LogHash, NodeStore};

/// Which table a log's nodes are in, and under which key prefix.
#[derive(Debug, Clone)]
pub(super) enum NodeTree {
    /// The `log` table, under `id(topic)`.
    Topic(Vec<u8>),
    /// The `directory` table (one log: no prefix).
    Directory,
}

/// The tree nodes of one log, read from the store; writes are buffered in memory.
///
/// Appending to a [`rendezvous_protocol::tlog::Tree`] over a `LogNodes` records the new nodes
/// here; [`LogNodes::take_pending`] hands them over for [`super::Append::nodes`], so that they
/// are written in the same transaction as the entry. If that append fails, the tree's frontier
/// is ahead of the store: drop the tree and reopen it with
/// [`rendezvous_protocol::tlog::Tree::open`]. The directory's nodes are written by the store
/// itself with each entry (`Store::register_user`); its trees are only read.
pub struct LogNodes<'a> {
    store: &'a Store,
    tree: NodeTree,
    pending: Mutex<BTreeMap<(u8, u64), [u8; 32]>>,
}

/// A topic's tag-log nodes.
pub type TopicNodes<'a> = LogNodes<'a>;

impl std::fmt::Debug for LogNodes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogNodes").finish_non_exhaustive()
    }
}

impl<'a> LogNodes<'a> {
    /// The nodes of `topic`'s tag log.
    pub fn new(store: &'a Store, topic: &TopicId) -> Self {
        LogNodes::of(
            store,
            NodeTree::Topic(Key::new().id(topic.as_str()).build()),
        )
    }

    /// The nodes of this server's directory log (`directory.md` §2).
    pub fn directory(store: &'a Store) -> Self {
        LogNodes::of(store, NodeTree::Directory)
    }

    fn of(store: &'a Store, tree: NodeTree) -> Self {
        LogNodes {
            store,
            tree,
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

impl NodeStore for LogNodes<'_> {
    fn get(&self, level: u8, index: u64) -> Option<LogHash> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hash) = pending.get(&(level, index)) {
            return Some(LogHash(*hash));
        }
        drop(pending);
        // A read error shows up as a missing node, which the tree reports.
        let node = match &self.tree {
            NodeTree::Topic(prefix) => self.store.node_at(prefix, level, index),
            NodeTree::Directory => self.store.directory_node(level, index),
        };
        node.ok().flatten().map(LogHash)
    }

    fn put(&mut self, level: u8, index: u64, hash: LogHash) {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        pending.insert((level, index), hash.0);
    }
}

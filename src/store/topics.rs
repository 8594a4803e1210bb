//! Topic logs: entries, the copy of change entries, message tags, tag-log nodes, sizes and
//! memberships, all written by one atomic [`Store::append`].
//!
//! They share ONE sled tree, `log`, each kind of record under its own leading byte, so that an
//! append is a single-tree `apply_batch` (atomic) instead of a multi-tree transaction: sled's
//! transactions take a process-wide lock, and the profile at load showed appends of every topic
//! queueing on it. The checks an append needs (its index is the log's size, its tag is new) read
//! the same tree first; the caller serializes appends per topic (the hosting server holds the
//! topic's lock across check and append), so nothing can slip in between.

use super::keys::{Key, KeyReader, read_u64};
use super::users::user_key;
use super::{OrBackend, Store, StoreError};
use rendezvous_protocol::ids::{TopicId, UserId};

/// Leading bytes of the record kinds in the `log` tree.
const ENTRY: u8 = 1;
const CHANGE: u8 = 2;
const TAG: u8 = 3;
const NODE: u8 = 4;
const SIZE: u8 = 5;
const MEMBERSHIP: u8 = 6;
const CREATED: u8 = 7;

/// Everything one log entry writes, applied atomically by [`Store::append`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Append {
    /// The entry's index: must equal the log's current size.
    pub index: u64,
    /// The log entry's bytes.
    pub entry: Vec<u8>,
    /// Whether the entry is a change (copied into the change table for state replay).
    pub change: bool,
    /// The message tag, which must not be in the log yet.
    pub tag: Option<[u8; 32]>,
    /// Tag-log nodes written by this append: `(level, index, hash)` (see [`super::TopicNodes`]).
    pub nodes: Vec<(u8, u64, [u8; 32])>,
    /// Membership updates of local users: `Some(role)` sets, `None` removes.
    pub memberships: Vec<(UserId, Option<u8>)>,
    /// For a create by a local user: the creator, counted against at most this many topics
    /// created (`limits.quota.topics_per_user`).
    pub created_by: Option<(UserId, u64)>,
}

fn topic_key(topic: &TopicId) -> Vec<u8> {
    Key::new().id(topic.as_str()).build()
}

fn size_key(topic: &TopicId) -> Vec<u8> {
    Key::new().u8(SIZE).id(topic.as_str()).build()
}

pub(super) fn index_key(kind: u8, topic: &TopicId, index: u64) -> Vec<u8> {
    Key::new().u8(kind).id(topic.as_str()).u64(index).build()
}

pub(super) fn entry_key(topic: &TopicId, index: u64) -> Vec<u8> {
    index_key(ENTRY, topic, index)
}

fn tag_key(topic: &TopicId, tag: &[u8; 32]) -> Vec<u8> {
    Key::new().u8(TAG).id(topic.as_str()).bytes(tag).build()
}

pub(super) fn node_key(topic_prefix: &[u8], level: u8, index: u64) -> Vec<u8> {
    Key::new()
        .u8(NODE)
        .bytes(topic_prefix)
        .u8(level)
        .u64(index)
        .build()
}

/// `CREATED ‖ id(user)`: the topics a local user created here.
fn created_prefix(user: &UserId) -> Vec<u8> {
    Key::new().u8(CREATED).bytes(&user_key(user)).build()
}

fn membership_key(user: &UserId, topic: &TopicId) -> Vec<u8> {
    Key::new()
        .u8(MEMBERSHIP)
        .bytes(&user_key(user))
        .id(topic.as_str())
        .build()
}

impl Store {
    /// Appends an entry to a topic's log, atomically with its change copy, tag, tree nodes,
    /// membership updates and the new size.
    ///
    /// Errors (nothing written): [`StoreError::Conflict`] if `index` is not the log's size,
    /// [`StoreError::Replayed`] if the tag is in the log already.
    pub fn append(&self, topic: &TopicId, append: Append) -> Result<(), StoreError> {
        let log = &self.t().log;
        // A creator's count and its new topic are written under the creator's lock.
        let _creator = append
            .created_by
            .as_ref()
            .map(|(user, _)| self.user_lock(user));
        if let Some((user, limit)) = &append.created_by {
            let created = log.scan_prefix(created_prefix(user)).count() as u64;
            if created >= *limit {
                return Err(StoreError::Quota {
                    quota: "topics_per_user",
                    limit: *limit,
                });
            }
        }
        let size_key = size_key(topic);
        let size = match log.get(&size_key).or_backend()? {
            Some(v) => read_u64(&v, "sizes")?,
            None => 0,
        };
        if append.index != size {
            return Err(StoreError::Conflict {
                expected: size,
                got: append.index,
            });
        }
        let mut batch = sled::Batch::default();
        let index_bytes = append.index.to_be_bytes();
        if let Some(tag) = &append.tag {
            let key = tag_key(topic, tag);
            if let Some(v) = log.get(&key).or_backend()? {
                return Err(StoreError::Replayed {
                    index: read_u64(&v, "tags")?,
                });
            }
            batch.insert(key, &index_bytes[..]);
        }
        batch.insert(entry_key(topic, append.index), append.entry.as_slice());
        if append.change {
            batch.insert(
                index_key(CHANGE, topic, append.index),
                append.entry.as_slice(),
            );
        }
        let prefix = topic_key(topic);
        for (level, index, hash) in &append.nodes {
            batch.insert(node_key(&prefix, *level, *index), &hash[..]);
        }
        for (user, role) in &append.memberships {
            let key = membership_key(user, topic);
            match role {
                Some(role) => batch.insert(key, &[*role][..]),
                None => batch.remove(key),
            }
        }
        if let Some((user, _)) = &append.created_by {
            let key = Key::new()
                .bytes(&created_prefix(user))
                .id(topic.as_str())
                .build();
            batch.insert(key, &[][..]);
        }
        batch.insert(size_key, &(size + 1).to_be_bytes()[..]);
        log.apply_batch(batch).or_backend()
    }

    /// Every topic with a log here, with its size.
    pub fn topics(&self) -> Result<Vec<(TopicId, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.t().log.scan_prefix([SIZE]) {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, "sizes");
            r.array::<1>()?;
            let topic = r.id::<TopicId>()?;
            r.end()?;
            out.push((topic, read_u64(&v, "sizes")?));
        }
        Ok(out)
    }

    /// A topic's log size, if the topic has a log here.
    pub fn topic_size(&self, topic: &TopicId) -> Result<Option<u64>, StoreError> {
        match self.t().log.get(size_key(topic)).or_backend()? {
            Some(v) => Ok(Some(read_u64(&v, "sizes")?)),
            None => Ok(None),
        }
    }

    /// The entry at `index`.
    pub fn entry(&self, topic: &TopicId, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.t().log.get(entry_key(topic, index)).or_backend()?;
        Ok(v.map(|v| v.to_vec()))
    }

    /// Up to `limit` entries from index `from` on, in order, at most `max_bytes` of them (but
    /// at least the first).
    pub fn entries(
        &self,
        topic: &TopicId,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let range = index_key(ENTRY, topic, from)..=index_key(ENTRY, topic, u64::MAX);
        self.indexed(range, limit, max_bytes, "entries")
    }

    /// Every change entry of the topic, in log order (to rebuild its state).
    pub fn changes(&self, topic: &TopicId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let range = index_key(CHANGE, topic, 0)..=index_key(CHANGE, topic, u64::MAX);
        self.indexed(range, usize::MAX, usize::MAX, "changes")
    }

    /// Entries of `range` in order: at most `limit`, and no more than `max_bytes` of them in
    /// all (but always the first one), so that a request's answer stays bounded whatever the
    /// entries' sizes.
    fn indexed(
        &self,
        range: std::ops::RangeInclusive<Vec<u8>>,
        limit: usize,
        max_bytes: usize,
        table: &'static str,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in self.t().log.range(range).take(limit) {
            let (k, v) = item.or_backend()?;
            bytes = bytes.saturating_add(v.len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            let mut r = KeyReader::new(&k, table);
            r.array::<1>()?;
            r.skip_id()?;
            let index = r.u64()?;
            r.end()?;
            out.push((index, v.to_vec()));
        }
        Ok(out)
    }

    /// The index of the entry that carries `tag`.
    pub fn tag_index(&self, topic: &TopicId, tag: [u8; 32]) -> Result<Option<u64>, StoreError> {
        #[cfg(any(test, feature = "test-hooks"))]
        self.injected_read_fault()?;
        match self.t().log.get(tag_key(topic, &tag)).or_backend()? {
            Some(v) => Ok(Some(read_u64(&v, "tags")?)),
            None => Ok(None),
        }
    }

    /// The tag-log node at `(level, index)`.
    pub fn node(
        &self,
        topic: &TopicId,
        level: u8,
        index: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        self.node_at(&topic_key(topic), level, index)
    }

    pub(super) fn node_at(
        &self,
        topic_prefix: &[u8],
        level: u8,
        index: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        match self
            .t()
            .log
            .get(node_key(topic_prefix, level, index))
            .or_backend()?
        {
            Some(v) => v
                .as_ref()
                .try_into()
                .map(Some)
                .map_err(|_| StoreError::Corrupt { table: "nodes" }),
            None => Ok(None),
        }
    }

    /// The topics a local user is a member of, with the user's role.
    pub fn user_topics(&self, user: &UserId) -> Result<Vec<(TopicId, u8)>, StoreError> {
        let mut out = Vec::new();
        let prefix = Key::new().u8(MEMBERSHIP).bytes(&user_key(user)).build();
        for item in self.t().log.scan_prefix(prefix) {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, "memberships");
            r.array::<1>()?;
            r.skip_id()?;
            let topic = r.id::<TopicId>()?;
            r.end()?;
            let [role] = v.as_ref() else {
                return Err(StoreError::Corrupt {
                    table: "memberships",
                });
            };
            out.push((topic, *role));
        }
        Ok(out)
    }
}

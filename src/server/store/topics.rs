//! Topic logs: entries, the copy of change entries, message tags, tag-log nodes, sizes and
//! memberships, all written by one atomic [`Store::append`].

use sled::Transactional;

use super::keys::{Key, KeyReader, read_u64};
use super::users::user_key;
use super::{OrBackend, Store, StoreError, abort, in_tx, tx};
use crate::ids::{TopicId, UserId};

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
}

fn topic_key(topic: &TopicId) -> Vec<u8> {
    Key::new().id(topic.as_str()).build()
}

fn index_key(topic: &TopicId, index: u64) -> Vec<u8> {
    Key::new().id(topic.as_str()).u64(index).build()
}

pub(super) fn node_key(topic_prefix: &[u8], level: u8, index: u64) -> Vec<u8> {
    Key::new().bytes(topic_prefix).u8(level).u64(index).build()
}

impl Store {
    /// Appends an entry to a topic's log, atomically with its change copy, tag, tree nodes,
    /// membership updates and the new size.
    ///
    /// Errors (nothing written): [`StoreError::Conflict`] if `index` is not the log's size,
    /// [`StoreError::Replayed`] if the tag is in the log already.
    pub fn append(&self, topic: &TopicId, append: Append) -> Result<(), StoreError> {
        let t = self.t();
        let size_key = topic_key(topic);
        let entry_key = index_key(topic, append.index);
        let tag_key = append
            .tag
            .map(|tag| Key::new().id(topic.as_str()).bytes(&tag).build());
        let nodes: Vec<(Vec<u8>, [u8; 32])> = append
            .nodes
            .iter()
            .map(|(level, index, hash)| (node_key(&size_key, *level, *index), *hash))
            .collect();
        let memberships: Vec<(Vec<u8>, Option<u8>)> = append
            .memberships
            .iter()
            .map(|(user, role)| {
                (
                    Key::new().bytes(&user_key(user)).id(topic.as_str()).build(),
                    *role,
                )
            })
            .collect();
        let index_bytes = append.index.to_be_bytes();
        tx((
            &t.sizes,
            &t.tags,
            &t.entries,
            &t.changes,
            &t.nodes,
            &t.memberships,
        )
            .transaction(
                |(tx_sizes, tx_tags, tx_entries, tx_changes, tx_nodes, tx_memberships)| {
                    let size = match tx_sizes.get(size_key.as_slice())? {
                        Some(v) => in_tx(read_u64(&v, "sizes"))?,
                        None => 0,
                    };
                    if append.index != size {
                        return abort(StoreError::Conflict {
                            expected: size,
                            got: append.index,
                        });
                    }
                    if let Some(tag_key) = &tag_key {
                        if let Some(v) = tx_tags.get(tag_key.as_slice())? {
                            let index = in_tx(read_u64(&v, "tags"))?;
                            return abort(StoreError::Replayed { index });
                        }
                        tx_tags.insert(tag_key.as_slice(), &index_bytes[..])?;
                    }
                    tx_entries.insert(entry_key.as_slice(), append.entry.as_slice())?;
                    if append.change {
                        tx_changes.insert(entry_key.as_slice(), append.entry.as_slice())?;
                    }
                    for (k, hash) in &nodes {
                        tx_nodes.insert(k.as_slice(), &hash[..])?;
                    }
                    for (k, role) in &memberships {
                        match role {
                            Some(role) => tx_memberships.insert(k.as_slice(), &[*role][..])?,
                            None => tx_memberships.remove(k.as_slice())?,
                        };
                    }
                    tx_sizes.insert(size_key.as_slice(), &(size + 1).to_be_bytes()[..])?;
                    Ok(())
                },
            ))
    }

    /// Every topic with a log here, with its size.
    pub fn topics(&self) -> Result<Vec<(TopicId, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.t().sizes.iter() {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, "sizes");
            let topic = r.id::<TopicId>()?;
            r.end()?;
            out.push((topic, read_u64(&v, "sizes")?));
        }
        Ok(out)
    }

    /// A topic's log size, if the topic has a log here.
    pub fn topic_size(&self, topic: &TopicId) -> Result<Option<u64>, StoreError> {
        match self.t().sizes.get(topic_key(topic)).or_backend()? {
            Some(v) => Ok(Some(read_u64(&v, "sizes")?)),
            None => Ok(None),
        }
    }

    /// The entry at `index`.
    pub fn entry(&self, topic: &TopicId, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.t().entries.get(index_key(topic, index)).or_backend()?;
        Ok(v.map(|v| v.to_vec()))
    }

    /// Up to `limit` entries from index `from` on, in order.
    pub fn entries(
        &self,
        topic: &TopicId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let range = index_key(topic, from)..=index_key(topic, u64::MAX);
        self.indexed(&self.t().entries, range, limit, "entries")
    }

    /// Every change entry of the topic, in log order (to rebuild its state).
    pub fn changes(&self, topic: &TopicId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let range = index_key(topic, 0)..=index_key(topic, u64::MAX);
        self.indexed(&self.t().changes, range, usize::MAX, "changes")
    }

    fn indexed(
        &self,
        tree: &sled::Tree,
        range: std::ops::RangeInclusive<Vec<u8>>,
        limit: usize,
        table: &'static str,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in tree.range(range).take(limit) {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, table);
            r.skip_id()?;
            let index = r.u64()?;
            r.end()?;
            out.push((index, v.to_vec()));
        }
        Ok(out)
    }

    /// The index of the entry that carries `tag`.
    pub fn tag_index(&self, topic: &TopicId, tag: [u8; 32]) -> Result<Option<u64>, StoreError> {
        let key = Key::new().id(topic.as_str()).bytes(&tag).build();
        match self.t().tags.get(key).or_backend()? {
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
            .nodes
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
        for item in self.t().memberships.scan_prefix(user_key(user)) {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, "memberships");
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

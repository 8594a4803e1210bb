//! The test-only corruption hook: tests play a lying hosting server by editing its log while the
//! server is stopped, and check that clients catch every lie (`read`, `verify`). Nothing in the
//! server calls it.

use super::{OrBackend, Store, StoreError};
use rendezvous_protocol::ids::TopicId;

impl Store {
    /// Replaces (`Some`) or deletes (`None`) the stored bytes of log entry `index` of `topic`,
    /// leaving the tag log, tags and size as they are: exactly what a corrupt server would serve.
    #[doc(hidden)]
    pub fn corrupt_entry_for_tests(
        &self,
        topic: &TopicId,
        index: u64,
        replacement: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let key = super::topics::entry_key(topic, index);
        match replacement {
            Some(bytes) => self.t().log.insert(key, bytes).or_backend().map(|_| ()),
            None => self.t().log.remove(key).or_backend().map(|_| ()),
        }
    }

    /// A switch that makes this store's message-tag reads fail (`true`) as a failing disk's
    /// would, or work again; holding it does not hold the store.
    #[doc(hidden)]
    pub fn tag_read_faults_for_tests(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.inner.fail_tag_reads.clone()
    }

    /// The injected read fault, if [`Store::fail_tag_reads_for_tests`] turned it on.
    pub(super) fn injected_read_fault(&self) -> Result<(), StoreError> {
        match self
            .inner
            .fail_tag_reads
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            true => Err(StoreError::Backend("injected read fault".into())),
            false => Ok(()),
        }
    }
}

impl Store {
    /// A switch that makes directory appends fail (`true`) as a failing disk's would, inside
    /// the registration's transaction after the user's rows were written.
    #[doc(hidden)]
    pub fn directory_write_faults_for_tests(
        &self,
    ) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.inner.fail_directory_writes.clone()
    }

    pub(super) fn injected_directory_fault(&self) -> Result<(), StoreError> {
        match self
            .inner
            .fail_directory_writes
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            true => Err(StoreError::Backend("injected directory write fault".into())),
            false => Ok(()),
        }
    }

    /// A lying homeserver logs a forged key (`directory.md` §1): appends `entry` (any bytes,
    /// e.g. a kind 1 entry for an existing user with a fresh IK) to the directory, as the
    /// server's own appends do.
    #[doc(hidden)]
    pub fn forge_directory_entry_for_tests(
        &self,
        user: &rendezvous_protocol::ids::UserId,
        entry: &[u8],
    ) -> Result<u64, StoreError> {
        self.directory_append(user, entry)
    }

    /// A split directory: rewrites entry `index`'s bytes and recomputes every tree node, so
    /// that the server serves another log of the same size; the newest and served checkpoints
    /// are forgotten, so that the next one asked for is signed over the forked log. Appends
    /// go on on the fork.
    #[doc(hidden)]
    pub fn fork_directory_for_tests(&self, index: u64, bytes: &[u8]) -> Result<(), StoreError> {
        use rendezvous_protocol::tlog::{Frontier, leaf_hash};
        let d = &self.t().directory;
        let size = self.directory_size()?;
        let mut frontier = Frontier::new();
        let mut batch = sled::Batch::default();
        for i in 0..size {
            let entry = match i == index {
                true => bytes.to_vec(),
                false => self
                    .directory_entry(i)?
                    .ok_or(StoreError::Corrupt { table: "directory" })?,
            };
            let mut nodes = Vec::new();
            frontier
                .append_leaf_hash(leaf_hash(&entry), |l, n, h| nodes.push((l, n, h)))
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            for (level, n, hash) in nodes {
                batch.insert(super::directory::node_key(level, n), &hash.0[..]);
            }
            if i == index {
                batch.insert(super::directory::entry_key(i), bytes);
            }
        }
        batch.remove(&[0x06u8][..]);
        batch.remove(&[0x07u8][..]);
        d.apply_batch(batch).or_backend()
    }
}

//! The test-only corruption hooks: tests play a lying hosting server by editing its log while the
//! server is stopped, a lying directory by appending or forking entries, a colluding host by
//! turning its Identity Key checks off, and check that clients catch every lie (`read`,
//! `verify`, lookups, self-monitoring). Nothing in the server calls them; they exist only with
//! the `test-hooks` feature.

use sled::Transactional;

use super::users::{StoredUser, user_key};
use super::{OrBackend, Store, StoreError, abort, decode_record, encode_record, in_tx, tx};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::wire::SignedBytes;

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
    /// the registration's (or an identity rotation's) transaction after the user's rows were
    /// written.
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
        user: &UserId,
        entry: &[u8],
    ) -> Result<u64, StoreError> {
        self.directory_append(user, entry)
    }

    /// A lying homeserver re-registers its user under a key it holds (`directory.md` §1, the
    /// last row): replaces the user's stored registration with `registration` and appends
    /// `entry` (its kind 1 entry) to the directory, in one transaction, as a registration
    /// does. Lookups of the user then pass `directory.md` §6.1 steps 1–5 with the new key;
    /// only step 6 (the contact's accepted binding) and the user's own self-monitoring see
    /// it. The user's devices are left as they are. Returns the entry's index.
    #[doc(hidden)]
    pub fn reregister_user_for_tests(
        &self,
        user: &UserId,
        registration: &SignedBytes,
        entry: &[u8],
    ) -> Result<u64, StoreError> {
        let t = self.t();
        let ukey = user_key(user);
        tx((&t.users, &t.directory).transaction(|(users, directory)| {
            let Some(v) = users.get(ukey.as_slice())? else {
                return abort(StoreError::Corrupt { table: "users" });
            };
            let old = in_tx(decode_record::<StoredUser>(&v, "users"))?;
            let new = StoredUser(registration.clone(), old.1, old.2);
            users.insert(ukey.as_slice(), encode_record(&new))?;
            super::directory::tx_append(directory, user, entry)
        }))
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

impl Store {
    /// A colluding hosting server (`directory.md` §1, the ghost member): a switch that makes
    /// this server check no Identity Key in the member specs of the changes it hosts or
    /// mirrors (`true`), neither its own users' registered ones nor other servers' users'
    /// (which it then does not fetch either: `federation-api.md` §9.1, §9.2), so that only the
    /// members' clients and the other servers' mirrors can catch a ghost (§6.4, §6.5).
    #[doc(hidden)]
    pub fn identity_check_skips_for_tests(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.inner.skip_identity_checks.clone()
    }

    /// Whether [`Store::identity_check_skips_for_tests`] turned the checks off.
    #[doc(hidden)]
    pub fn identity_checks_skipped_for_tests(&self) -> bool {
        self.inner
            .skip_identity_checks
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

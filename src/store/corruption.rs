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

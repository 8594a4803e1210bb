//! When the backend fails (`architecture.md` §5.1): telling a fault, the free space left, and
//! reopening the database once the fault is gone.
//!
//! sled keeps an I/O error (out of space, a failed write) as a global error: every later write
//! and flush fails until the database is opened again, and what it holds in memory may include
//! writes that never became durable. So the server does not retry on the open handle: it drops
//! every handle, reopens the directory (sled recovers its last durable state), and rebuilds
//! whatever it keeps in memory from it (`crate::run`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{OrBackend, Store, StoreError};

/// How often [`Store::free_bytes`] asks the file system.
const FREE_SPACE_EVERY: Duration = Duration::from_secs(1);

/// How long [`Store::reopen`] waits for the other handles of the old database to go.
const HANDLES_PATIENCE: Duration = Duration::from_secs(30);

impl Store {
    /// Whether the backend still takes writes: no flush of this handle failed, and a flush
    /// succeeds now (it fails at once while sled holds a global error, and costs nothing when
    /// nothing is dirty). A failure here is kept like a failed [`Store::sync`].
    pub fn probe(&self) -> Result<(), StoreError> {
        let commit = &self.inner.commit;
        if let Some(fault) = commit.fault() {
            return Err(StoreError::Backend(fault));
        }
        self.inner
            .db
            .flush()
            .or_backend()
            .map(|_| ())
            .inspect_err(|e| {
                commit.set_fault(&e.to_string());
            })
    }

    /// The first failure of this handle's flushes, if one failed (the database is then
    /// refusing writes until it is reopened).
    pub fn fault(&self) -> Option<String> {
        self.inner.commit.fault()
    }

    /// The database directory (`None` for a temporary store).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Bytes free for this process on the file system holding the database (`None` for a
    /// temporary store, or where the system does not say), measured at most once a second.
    pub fn free_bytes(&self) -> Option<u64> {
        let mut cached = self.inner.free.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, free)) = *cached
            && at.elapsed() < FREE_SPACE_EVERY
        {
            return Some(free);
        }
        let free = free_bytes(self.path()?)?;
        *cached = Some((std::time::Instant::now(), free));
        Some(free)
    }

    /// Drops this handle, waits until no other handle of the database is left, and opens it
    /// again: sled recovers its last durable state, so every write that was acknowledged (made
    /// durable by [`Store::sync`]) is there, and nothing that was not.
    pub async fn reopen(self) -> Result<Store, StoreError> {
        let path: PathBuf = self
            .path()
            .ok_or_else(|| StoreError::Backend("a temporary store cannot be reopened".into()))?
            .to_owned();
        let weak = std::sync::Arc::downgrade(&self.inner);
        drop(self);
        let deadline = tokio::time::Instant::now() + HANDLES_PATIENCE;
        while weak.strong_count() > 0 {
            if tokio::time::Instant::now() > deadline {
                return Err(StoreError::Backend(format!(
                    "{} handles of the failed database are still held",
                    weak.strong_count()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // sled's own threads may hold the file lock a moment longer.
        let mut last = None;
        for _ in 0..100 {
            match Store::open(&path) {
                Ok(store) => return Ok(store),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(last.unwrap_or_else(|| StoreError::Backend("reopen".into())))
    }
}

/// Free bytes for unprivileged writers on the file system of `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

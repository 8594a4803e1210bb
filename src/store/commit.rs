//! Group commit: many concurrent callers of [`Store::sync`] share one flush.
//!
//! A caller needs a flush that *started after* its call (so that it covers every write the
//! caller made before). Flushes are numbered; a caller that arrives while flush `n` runs waits for
//! flush `n + 1`, which starts as soon as `n` ends and covers everyone who queued meanwhile. The
//! first waiter that finds no flush running starts the next one; the flush itself runs on a
//! blocking thread that finishes it even if every caller's future is dropped.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::{Store, StoreError};

/// Flush bookkeeping, broadcast to waiters through a watch channel.
#[derive(Debug, Clone, Default)]
struct FlushState {
    /// Number of the last flush started.
    started: u64,
    /// Number of the last flush finished (successfully or not).
    finished: u64,
    /// Number of the last flush that succeeded.
    durable: u64,
    /// Whether a flush is running now.
    running: bool,
    /// The last flush error, for callers whose flush failed.
    error: Option<String>,
}

/// The shared group-commit state of one database.
pub(super) struct GroupCommit {
    state: watch::Sender<FlushState>,
    flushes: AtomicU64,
    /// sled's log file, fsynced after each flush (`None` for a temporary store).
    ///
    /// On Linux, sled 0.34 `flush` ends with `sync_file_range`, which neither flushes the
    /// drive's write cache nor persists the file's size or other metadata, so its writes may not
    /// survive a power loss. `fdatasync` on the same file after the flush does both.
    log_file: Option<File>,
    /// sled's `blobs/` directory: values too large for the log (over about 128 KiB: large topic
    /// changes) are written there as files that sled never fsyncs, so the flush does.
    blob_dir: Option<std::path::PathBuf>,
    /// Blob files modified before this instant are known synced.
    blobs_synced_until: std::sync::Mutex<std::time::SystemTime>,
    /// The first flush failure. Once a flush failed, sled's log may have a hole that its
    /// recovery stops at, so no later flush of this handle counts as durable: every later
    /// [`Store::sync`] fails until the database is reopened (`health.rs`).
    fault: std::sync::Mutex<Option<String>>,
}

/// How long a flush waits for more writers before it starts.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

enum Step {
    Done(Result<(), StoreError>),
    Lead(u64),
    Wait,
}

impl GroupCommit {
    pub(super) fn new(log_file: Option<File>, blob_dir: Option<std::path::PathBuf>) -> Self {
        GroupCommit {
            state: watch::Sender::new(FlushState::default()),
            flushes: AtomicU64::new(0),
            log_file,
            blob_dir,
            blobs_synced_until: std::sync::Mutex::new(std::time::UNIX_EPOCH),
            fault: std::sync::Mutex::new(None),
        }
    }

    /// The first flush failure of this handle, if any.
    pub(super) fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a failure; the first one stays.
    pub(super) fn set_fault(&self, error: &str) {
        let mut fault = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        if fault.is_none() {
            *fault = Some(error.to_owned());
        }
    }

    /// fsyncs blob files written since the last flush, then the directory (for their names).
    fn sync_blobs(&self) -> Result<(), String> {
        let Some(dir) = &self.blob_dir else {
            return Ok(());
        };
        let started = std::time::SystemTime::now();
        let since = *self
            .blobs_synced_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let synced_any = fsync_modified_since(dir, since)?;
        if synced_any {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("fsync {}: {e}", dir.display()))?;
        }
        *self
            .blobs_synced_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = started;
        Ok(())
    }
}

impl Store {
    /// Returns once every write made before the call is durable on disk.
    ///
    /// Concurrent callers share flushes: at most one flush runs at a time, and everyone who
    /// called while it ran is served by the next one.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let commit = &self.inner.commit;
        let mut rx = commit.state.subscribe();
        // The first flush that may serve us is the next one to start.
        let target = commit.state.borrow().started + 1;
        loop {
            let mut step = Step::Wait;
            commit.state.send_if_modified(|s| {
                if s.finished >= target {
                    step = Step::Done(if s.durable >= target {
                        Ok(())
                    } else {
                        Err(StoreError::Backend(
                            s.error.clone().unwrap_or_else(|| "flush failed".into()),
                        ))
                    });
                    false
                } else if !s.running {
                    s.running = true;
                    s.started += 1;
                    step = Step::Lead(s.started);
                    true
                } else {
                    false
                }
            });
            match step {
                Step::Done(r) => return r,
                Step::Lead(n) => self.start_flush(n),
                Step::Wait => {}
            }
            rx.wait_for(|s| s.finished >= target || !s.running)
                .await
                .map_err(|_| StoreError::Backend("group commit closed".into()))?;
        }
    }

    /// Number of flushes performed by [`Store::sync`] since the store was opened.
    pub fn flushes(&self) -> u64 {
        self.inner.commit.flushes.load(Ordering::Relaxed)
    }

    /// Runs flush `n` on a blocking thread and publishes its outcome.
    fn start_flush(&self, n: u64) {
        let db = self.inner.db.clone();
        let commit = self.inner.commit.clone();
        let job = move || {
            // Let writers that arrive within a moment join this flush: under load this trades a
            // millisecond of latency for many fewer flushes (each costs several thread handoffs
            // inside sled and an fdatasync). A lone writer pays the millisecond too, next to the
            // fdatasync it waits for anyway.
            std::thread::sleep(GATHER);
            let result = match commit.fault() {
                Some(fault) => Err(format!("an earlier flush failed: {fault}")),
                None => Ok(()),
            };
            let result = result
                .and_then(|_| db.flush().map_err(|e| e.to_string()))
                // Blobs first: a log record must never be durable before the blob it names.
                .and_then(|_| commit.sync_blobs())
                .and_then(|_| match &commit.log_file {
                    Some(f) => f.sync_data().map_err(|e| e.to_string()),
                    None => Ok(()),
                });
            // Release the database before the end of the flush is published: a caller may drop
            // its store and reopen the same path as soon as `sync` returns.
            drop(db);
            commit.flushes.fetch_add(1, Ordering::Relaxed);
            commit.state.send_modify(|s| {
                s.running = false;
                s.finished = n;
                match result {
                    Ok(_) => s.durable = n,
                    Err(e) => {
                        commit.set_fault(&e);
                        s.error = Some(e);
                    }
                }
            });
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(job);
            }
            Err(_) => {
                std::thread::spawn(job);
            }
        }
    }
}

/// Fsyncs every file of `dir` modified since `since` (a second of slack); whether it synced any.
/// sled removes blobs it no longer needs meanwhile: a file gone between the listing and its
/// fsync needs no fsync, and is no failure.
fn fsync_modified_since(
    dir: &std::path::Path,
    since: std::time::SystemTime,
) -> Result<bool, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    let mut synced_any = false;
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let modified = match entry.metadata().and_then(|m| m.modified()) {
            Ok(modified) => modified,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(format!("stat {}: {e}", entry.path().display())),
        };
        // A second of slack covers coarse file-system timestamps.
        if modified + std::time::Duration::from_secs(1) >= since {
            match File::open(entry.path()).and_then(|f| f.sync_all()) {
                Ok(()) => synced_any = true,
                Err(e) if gone(&e) => {}
                Err(e) => return Err(format!("fsync {}: {e}", entry.path().display())),
            }
        }
    }
    Ok(synced_any)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::fsync_modified_since;

    /// Files created and removed while the directory is synced (as sled does with its blobs)
    /// never fail the sync.
    #[test]
    fn files_removed_during_the_sync_are_no_failure() {
        let dir = crate::store::tests::TempDir::new();
        let path = dir.path().to_owned();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let f = path.join(format!("{}", n % 400));
                    let _ = std::fs::write(&f, b"blob");
                    if n % 2 == 1 {
                        let _ = std::fs::remove_file(path.join(format!("{}", (n + 200) % 400)));
                    }
                    n += 1;
                }
            })
        };
        while std::fs::read_dir(&path).map_or(0, Iterator::count) < 100 {
            std::thread::yield_now();
        }
        let since = std::time::UNIX_EPOCH;
        let results: Vec<_> = (0..60)
            .map(|_| fsync_modified_since(&path, since))
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = churn.join();
        assert!(
            results.iter().all(Result::is_ok),
            "{:?}",
            results.iter().find(|r| r.is_err())
        );
        assert!(
            results.iter().any(|r| r == &Ok(true)),
            "some files were synced"
        );
    }
}

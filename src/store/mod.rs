//! The homeserver's storage: one embedded sled database behind a narrow, typed interface.
//!
//! No sled type leaves this module: callers see [`Store`], plain records and [`StoreError`].
//! Writes are applied at once and become durable with [`Store::sync`], which groups the flushes
//! of many concurrent callers into one (`federation-spec/architecture.md` §5: a write is acknowledged only after it is
//! durable). Operations that touch several tables run in one sled transaction, so a crash
//! leaves either all of their writes or none.
//!
//! # Tables
//!
//! Key layouts use the field encodings of `keys`: `id(x)` is `u16be(len) ‖ utf-8`, integers are
//! `u64be`, device keys and hashes are raw 32 bytes, key ids raw 16 bytes. Values marked CBOR are
//! encoded with [`rendezvous_protocol::wire::encode`]; the others are raw.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | utf-8 name | bytes |
//! | `pins` | pin hash | `u64be` expiry |
//! | `users` | `id(user)` | CBOR `[registration, disabled, created]` |
//! | `devices` | `id(user) ‖ device` | CBOR `[cert, created, last_seen]` |
//! | `revoked` | `id(user) ‖ device` | empty |
//! | `challenges` | challenge | CBOR `[user, device, expires]` |
//! | `tokens` | token hash | CBOR `[user, device, expires]` |
//! | `device_tokens` | `id(user) ‖ device ‖ token hash` | empty |
//! | `prekeys` | `id(user) ‖ device ‖ u64be(seq)` | CBOR `[key id, signed pre key]` |
//! | `prekey_owners` | key id | CBOR `[user, device]` |
//! | `prekey_ids` | `id(user) ‖ device ‖ key id` | empty |
//! | `topic_keys` | `id(user) ‖ u64be(seq)` | CBOR `[key id, topic key cert]` |
//! | `topic_key_ids` | `id(user) ‖ key id` | empty |
//! | `last_resort` | `id(user)` | CBOR `[key id, topic key cert, served]` (see `last_resort.rs`) |
//! | `counters` | `kind ‖ id(user) [‖ device]` | `u64be` |
//! | `inbox` | `id(user) ‖ device ‖ u64be(seq)` | CBOR `[kind, body]` |
//! | `links` | link id (8 bytes) | CBOR `[user, device, expires, request?, response?]` |
//! | `log` (entries) | `0x01 ‖ id(topic) ‖ u64be(index)` | log entry bytes |
//! | `log` (changes) | `0x02 ‖ id(topic) ‖ u64be(index)` | change entry bytes (copy of the entry) |
//! | `log` (tags) | `0x03 ‖ id(topic) ‖ tag` | `u64be` index |
//! | `log` (nodes) | `0x04 ‖ id(topic) ‖ level ‖ u64be(index)` | 32-byte hash |
//! | `log` (sizes) | `0x05 ‖ id(topic)` | `u64be` log size |
//! | `log` (memberships) | `0x06 ‖ id(user) ‖ id(topic)` | role byte |
//! | `cursors` | `id(user) ‖ device ‖ id(topic)` | `u64be` index |
//! | `push` | `id(user) ‖ device` | utf-8 URL |
//! | `outbound`, `outbound_state` | see `store/outbound.rs` | |
//! | `fed_txns`, `fed_applied`, `fed_applied_by_time` | see `federation.rs` | |
//! | `mirrors` | see `mirrors.rs` | |
//! | `directory` | see `directory.rs` | |

mod commit;
#[cfg(any(test, feature = "test-hooks"))]
mod corruption;
mod cursors;
mod devices;
mod directory;
mod error;
mod federation;
mod health;
mod inbox;
mod keys;
mod last_resort;
mod link;
mod login;
mod meta;
mod mirrors;
mod nodes;
mod outbound;
mod prekeys;
mod push;
mod refusals;
mod topic_keys;
mod topics;
mod users;

#[cfg(test)]
mod tests;

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionResult};

pub use devices::{DeviceRecord, Endorsed, LAST_SEEN_GRANULARITY};
pub use directory::DirectoryWitnessRecord;
pub use error::StoreError;
pub use federation::FederationRetention;
pub use health::free_bytes;
pub use meta::META_ROTATIONS;
pub use nodes::{LogNodes, TopicNodes};
pub use outbound::{OutboundBackoff, OutboundInFlight, QueueBounds};
pub use prekeys::MAX_PREKEYS;
pub use refusals::MirrorRefusal;
pub use topic_keys::{MAX_TOPIC_KEYS, TopicKeysAdded};
pub use topics::Append;
pub use users::{RotationNotices, UserRecord};

use commit::GroupCommit;
use keys::Key;
use rendezvous_protocol::ids::{DeviceId, UserId};

/// Number of striped locks that serialize writes to one device's data against its revocation.
const LOCK_STRIPES: usize = 64;

/// The homeserver's database. Cheap to clone (one shared handle); `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// The database directory (`None` for a temporary store).
    path: Option<std::path::PathBuf>,
    /// The last free-space measurement of its file system (`health.rs`).
    free: Mutex<Option<(std::time::Instant, u64)>>,
    /// Test hook: tag reads fail as a failing disk's would (`corruption.rs`).
    #[cfg(any(test, feature = "test-hooks"))]
    fail_tag_reads: Arc<std::sync::atomic::AtomicBool>,
    /// Test hook: directory appends fail as a failing disk's would (`corruption.rs`).
    #[cfg(any(test, feature = "test-hooks"))]
    fail_directory_writes: Arc<std::sync::atomic::AtomicBool>,
    /// Test hook: the server checks no Identity Key in a member spec, a colluding host's
    /// (`corruption.rs`).
    #[cfg(any(test, feature = "test-hooks"))]
    skip_identity_checks: Arc<std::sync::atomic::AtomicBool>,
    t: Tables,
    /// Writes to a device's data (tokens, pre keys, inbox, cursors, push endpoint) and its
    /// revocation take the device's stripe, so that a revocation's scan-then-delete cannot miss
    /// an item written concurrently.
    locks: [Mutex<()>; LOCK_STRIPES],
    commit: Arc<GroupCommit>,
}

struct Tables {
    meta: sled::Tree,
    pins: sled::Tree,
    users: sled::Tree,
    devices: sled::Tree,
    revoked: sled::Tree,
    challenges: sled::Tree,
    tokens: sled::Tree,
    device_tokens: sled::Tree,
    prekeys: sled::Tree,
    prekey_owners: sled::Tree,
    prekey_ids: sled::Tree,
    topic_keys: sled::Tree,
    topic_key_ids: sled::Tree,
    /// Each user's last-resort topic key (see `last_resort.rs`).
    last_resort: sled::Tree,
    counters: sled::Tree,
    inbox: sled::Tree,
    links: sled::Tree,
    /// Topic logs: entries, changes, tags, nodes, sizes, memberships (see `topics.rs`).
    log: sled::Tree,
    cursors: sled::Tree,
    push: sled::Tree,
    outbound: outbound::OutboundTables,
    fed_txns: sled::Tree,
    fed_applied: sled::Tree,
    /// `fed_applied` by time, for purging (see `federation.rs`).
    fed_applied_by_time: sled::Tree,
    /// Mirrored topics' heads, evidence and witness notes (see `mirrors.rs`).
    mirrors: sled::Tree,
    /// This server's directory log and its witness views of peers' (see `directory.rs`).
    directory: sled::Tree,
}

impl Tables {
    fn open(db: &sled::Db) -> Result<Tables, StoreError> {
        let t = |name: &str| db.open_tree(name).or_backend();
        Ok(Tables {
            meta: t("meta")?,
            pins: t("pins")?,
            users: t("users")?,
            devices: t("devices")?,
            revoked: t("revoked")?,
            challenges: t("challenges")?,
            tokens: t("tokens")?,
            device_tokens: t("device_tokens")?,
            prekeys: t("prekeys")?,
            prekey_owners: t("prekey_owners")?,
            prekey_ids: t("prekey_ids")?,
            topic_keys: t("topic_keys")?,
            topic_key_ids: t("topic_key_ids")?,
            last_resort: t("last_resort")?,
            counters: t("counters")?,
            inbox: t("inbox")?,
            links: t("links")?,
            log: t("log")?,
            cursors: t("cursors")?,
            push: t("push")?,
            outbound: outbound::OutboundTables::open(db)?,
            fed_txns: t("fed_txns")?,
            fed_applied: t("fed_applied")?,
            fed_applied_by_time: t("fed_applied_by_time")?,
            mirrors: t("mirrors")?,
            directory: t("directory")?,
        })
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("flushes", &self.flushes())
            .finish_non_exhaustive()
    }
}

/// sled's page cache, bytes.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the database in the directory `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Throughput mode: writes are made durable by our group commit, not by sled's layout
        // choices. The page cache is capped so that memory stays bounded (sled's default is 1 GiB).
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| open_error(path, e))?;
        // sled 0.34 keeps its log in `<path>/db`; see `GroupCommit::log_file`.
        let log_file = File::open(path.join("db"))
            .map_err(|e| StoreError::Backend(format!("opening the log to fsync it: {e}")))?;
        Self::with_db(db, Some(path), Some(log_file), Some(path.join("blobs")))
    }

    /// A database in a temporary location, removed when the last handle is dropped (tests).
    /// Its [`Store::sync`] flushes but does not fsync.
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open().or_backend()?;
        Self::with_db(db, None, None, None)
    }

    fn with_db(
        db: sled::Db,
        path: Option<&Path>,
        log_file: Option<File>,
        blob_dir: Option<std::path::PathBuf>,
    ) -> Result<Store, StoreError> {
        let t = Tables::open(&db)?;
        let locks = std::array::from_fn(|_| Mutex::new(()));
        let store = Store {
            inner: Arc::new(Inner {
                db,
                path: path.map(Path::to_owned),
                free: Mutex::new(None),
                #[cfg(any(test, feature = "test-hooks"))]
                fail_tag_reads: Arc::default(),
                #[cfg(any(test, feature = "test-hooks"))]
                fail_directory_writes: Arc::default(),
                #[cfg(any(test, feature = "test-hooks"))]
                skip_identity_checks: Arc::default(),
                t,
                locks,
                commit: Arc::new(GroupCommit::new(log_file, blob_dir)),
            }),
        };
        // Rows of before the `fed_applied_by_time` index, once.
        store.backfill_applied_index()?;
        Ok(store)
    }

    fn t(&self) -> &Tables {
        &self.inner.t
    }

    /// The stripe lock of one device's data.
    fn device_lock(&self, user: &UserId, device: &DeviceId) -> MutexGuard<'_, ()> {
        self.stripe(|h| {
            user.as_str().hash(h);
            device.hash(h);
        })
    }

    /// The stripe lock of one user's own data (topic keys).
    fn user_lock(&self, user: &UserId) -> MutexGuard<'_, ()> {
        self.stripe(|h| user.as_str().hash(h))
    }

    /// The user's stripe lock and those of `devices`, each stripe once, taken in stripe order
    /// so that no two callers deadlock.
    fn user_and_devices_lock<'a>(
        &self,
        user: &UserId,
        devices: impl IntoIterator<Item = &'a DeviceId>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes = std::collections::BTreeSet::new();
        stripes.insert(stripe_of(|h| user.as_str().hash(h)));
        for device in devices {
            stripes.insert(stripe_of(|h| {
                user.as_str().hash(h);
                device.hash(h);
            }));
        }
        stripes.into_iter().map(|i| self.lock_stripe(i)).collect()
    }

    fn stripe(&self, feed: impl FnOnce(&mut DefaultHasher)) -> MutexGuard<'_, ()> {
        self.lock_stripe(stripe_of(feed))
    }

    fn lock_stripe(&self, i: usize) -> MutexGuard<'_, ()> {
        // A poisoned stripe only means another thread panicked while holding it; the data it
        // guards lives in sled, whose writes are atomic, so it is safe to go on.
        self.inner.locks[i % LOCK_STRIPES]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The stripe a key falls on.
fn stripe_of(feed: impl FnOnce(&mut DefaultHasher)) -> usize {
    let mut h = DefaultHasher::new();
    feed(&mut h);
    (h.finish() % LOCK_STRIPES as u64) as usize
}

/// `id(user) ‖ device`: the prefix of every per-device table.
fn user_device(user: &UserId, device: &DeviceId) -> Vec<u8> {
    Key::new()
        .id(user.as_str())
        .bytes(device.as_bytes())
        .build()
}

/// Why [`Store::open`] failed. sled 0.34 reports a database locked by another process as an
/// I/O error whose text is all that is left of the cause ("could not acquire lock on …:
/// WouldBlock", `sled::Config::open`): say what that means for an operator instead, naming the
/// process that holds the lock when the system says (Linux `/proc/locks`).
fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match &e {
        sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock") => {
            let data_dir = path.parent().unwrap_or(path);
            let holder = lock_holder(&path.join("db"))
                .map(|pid| format!(" (process {pid})"))
                .unwrap_or_default();
            StoreError::Backend(format!(
                "a server is already running on the data directory {}{holder}: its database {} \
                 is locked; stop that server first, or give this one another data_dir",
                data_dir.display(),
                path.display()
            ))
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// The process holding a lock on `file`, from `/proc/locks` (`1: FLOCK ADVISORY WRITE <pid>
/// <major>:<minor>:<inode> 0 EOF`), matched by inode; `None` where that is not available.
#[cfg(unix)]
fn lock_holder(file: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(file).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let pid = fields.get(4)?.parse().ok()?;
        let ino: u64 = fields.get(5)?.rsplit(':').next()?.parse().ok()?;
        (ino == inode).then_some(pid)
    })
}

#[cfg(not(unix))]
fn lock_holder(_file: &Path) -> Option<u32> {
    None
}

/// Maps sled's errors to [`StoreError::Backend`], keeping sled's types inside this module.
trait OrBackend<T> {
    fn or_backend(self) -> Result<T, StoreError>;
}

impl<T> OrBackend<T> for sled::Result<T> {
    fn or_backend(self) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Backend(e.to_string()))
    }
}

/// The outcome of a transaction: an abort carries our error, a storage fault becomes `Backend`.
fn tx<T>(r: TransactionResult<T, StoreError>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Backend(e.to_string()),
    })
}

/// Aborts a transaction with `e`.
fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Makes a store error usable with `?` inside a transaction closure.
fn in_tx<T>(r: Result<T, StoreError>) -> Result<T, ConflictableTransactionError<StoreError>> {
    r.map_err(ConflictableTransactionError::Abort)
}

/// Encodes a record value.
fn encode_record<T: Serialize>(value: &T) -> Vec<u8> {
    rendezvous_protocol::wire::encode(value)
}

/// Decodes a record this store wrote.
fn decode_record<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    table: &'static str,
) -> Result<T, StoreError> {
    rendezvous_protocol::wire::decode(bytes, bytes.len()).map_err(|_| StoreError::Corrupt { table })
}

/// Per-owner counters in the `counters` table; the kind is the key's first byte.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Counter {
    /// Unclaimed pre keys of a device.
    PrekeyCount = 1,
    /// Last pre key sequence number of a device.
    PrekeySeq = 2,
    /// Last inbox sequence number of a device.
    InboxSeq = 3,
    /// Unclaimed topic keys of a user.
    TopicKeyCount = 4,
    /// Last topic key sequence number of a user.
    TopicKeySeq = 5,
}

impl Counter {
    /// `kind ‖ id(user) [‖ device]`.
    fn key(self, user: &UserId, device: Option<&DeviceId>) -> Vec<u8> {
        let k = Key::new().u8(self as u8).id(user.as_str());
        match device {
            Some(d) => k.bytes(d.as_bytes()).build(),
            None => k.build(),
        }
    }
}

/// Reads a counter inside a transaction (absent is 0).
fn tx_counter(
    tree: &sled::transaction::TransactionalTree,
    key: &[u8],
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    match tree.get(key)? {
        Some(v) => in_tx(keys::read_u64(&v, "counters")),
        None => Ok(0),
    }
}

impl Store {
    /// Reads a counter (absent is 0).
    fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.t().counters.get(key).or_backend()? {
            Some(v) => keys::read_u64(&v, "counters"),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
impl Store {
    /// Opens the store again after the previous instance in this process was dropped. sled's
    /// own background threads release the database lock a moment after the last handle goes,
    /// so a reopen within the same process retries briefly (a restarted process never races
    /// with them).
    pub(crate) fn reopen_for_tests(dir: &Path) -> Store {
        for _ in 0..250 {
            match Store::open(dir) {
                Ok(store) => return store,
                Err(e) if e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
        panic!("the previous store never released its lock")
    }
}

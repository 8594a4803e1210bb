//! Store tests, on real files in a temporary directory.

mod accounts;
mod device_data;
mod durability;
mod keys;
mod topics;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use rendezvous_protocol::crypto::{KeyId, Signature};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{LeafIndex, LogHash, Tree, TreeSize, leaf_hash};
use rendezvous_protocol::wire::SignedBytes;

/// A directory removed when dropped.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "rdv-store-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn open() -> (TempDir, Store) {
    let dir = TempDir::new();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

pub(super) fn user(name: &str) -> UserId {
    format!("@{name}:a.example").parse().unwrap()
}

pub(super) fn topic(c: char) -> TopicId {
    format!("!{}:a.example", c.to_string().repeat(26))
        .parse()
        .unwrap()
}

/// The device whose key bytes are all `n`.
pub(super) fn dev(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 32])
}

pub(super) fn signed(tag: u8) -> SignedBytes {
    SignedBytes(vec![tag; 40], Signature([tag; 64]))
}

pub(super) const NOW: u64 = 1_000_000;

/// A store with `@alice` registered with device `[1; 32]`.
pub(super) fn with_alice() -> (TempDir, Store, UserId) {
    let (dir, store) = open();
    let alice = user("alice");
    store.add_pin([7; 32], NOW + 100).unwrap();
    store
        .register_user(
            [7; 32],
            &alice,
            &signed(1),
            dev(1),
            &signed(2),
            b"entry",
            NOW,
        )
        .unwrap();
    (dir, store, alice)
}

#[test]
fn meta_round_trip() {
    let (_dir, store) = open();
    assert_eq!(store.meta("k").unwrap(), None);
    store.set_meta("k", b"v1").unwrap();
    store.set_meta("k", b"v2").unwrap();
    assert_eq!(store.meta("k").unwrap(), Some(b"v2".to_vec()));
}

#[test]
fn temporary_store_works() {
    let store = Store::temporary().unwrap();
    store.set_meta("a", b"b").unwrap();
    assert_eq!(store.meta("a").unwrap(), Some(b"b".to_vec()));
}

#[test]
fn store_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Store>();
}

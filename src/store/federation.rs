//! Inbound federation (`federation-spec/federation-api.md` §4): which transactions and events
//! have been processed, so that a retry applies nothing twice — kept bounded (§1.1): at most
//! `txn_memory` answers per origin, none older than `txn_retention_secs`, and applied event ids
//! for `applied_retention_secs` (older events are refused, so a purged id cannot apply twice).
//!
//! | table | key | value |
//! |---|---|---|
//! | `fed_txns` | `id(origin) ‖ id(txn id)` | `0xff ‖ u64be(time stored) ‖` transaction response bytes |
//! | `fed_applied` | `id(origin) ‖ event id` | `u64be` time applied |
//! | `fed_applied_by_time` | `u64be(time applied) ‖ id(origin) ‖ event id` | empty |
//!
//! A `fed_txns` value without the `0xff` tag (a response is CBOR, whose first byte is never
//! `0xff`) was stored before times were kept: it counts as stored at time 0. `fed_applied`
//! rows written before `fed_applied_by_time` existed are indexed once, when the store opens
//! ([`META_APPLIED_INDEXED`] marks it done), so that they are purged too.

use super::keys::{Key, read_u64};
use super::{OrBackend, Store, StoreError, tx};
use rendezvous_protocol::ids::ServerName;
use sled::Transactional;

/// `meta` key: present once every `fed_applied` row has its `fed_applied_by_time` entry.
pub const META_APPLIED_INDEXED: &str = "federation.applied_indexed";

/// First byte of a `fed_txns` value that carries its time.
const TIMED: u8 = 0xff;

fn txn_key(origin: &ServerName, txn_id: &str) -> Vec<u8> {
    Key::new().id(origin.as_str()).id(txn_id).build()
}

fn event_key(origin: &ServerName, id: &[u8; 32]) -> Vec<u8> {
    Key::new().id(origin.as_str()).bytes(id).build()
}

/// A stored answer: when it was stored and the response.
fn split_answer(v: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    match v.split_first() {
        Some((&TIMED, rest)) => {
            let time = read_u64(rest.get(..8).unwrap_or_default(), "fed_txns")?;
            Ok((time, rest.get(8..).unwrap_or_default()))
        }
        _ => Ok((0, v)),
    }
}

/// How long stored answers and applied ids are kept, and how many answers per origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FederationRetention {
    /// Most answers kept per origin.
    pub txn_memory: usize,
    /// Answers older than this go, seconds.
    pub txn_secs: u64,
    /// Applied event ids older than this go, seconds.
    pub applied_secs: u64,
}

impl Store {
    /// The stored response to transaction `txn_id` from `origin`, if it was processed.
    pub fn federation_txn(
        &self,
        origin: &ServerName,
        txn_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self
            .t()
            .fed_txns
            .get(txn_key(origin, txn_id))
            .or_backend()?;
        v.map(|v| split_answer(&v).map(|(_, r)| r.to_vec()))
            .transpose()
    }

    /// Records the response to transaction `txn_id` from `origin` at `now`, then forgets the
    /// origin's answers beyond `retention.txn_memory` (oldest first) and those older than
    /// `retention.txn_secs`.
    pub fn set_federation_txn(
        &self,
        origin: &ServerName,
        txn_id: &str,
        response: &[u8],
        now: u64,
        retention: FederationRetention,
    ) -> Result<(), StoreError> {
        let fed_txns = &self.t().fed_txns;
        let mut value = Vec::with_capacity(9 + response.len());
        value.push(TIMED);
        value.extend_from_slice(&now.to_be_bytes());
        value.extend_from_slice(response);
        let key = txn_key(origin, txn_id);
        fed_txns.insert(key.as_slice(), value).or_backend()?;
        let mut kept = Vec::new();
        let mut batch = sled::Batch::default();
        for item in fed_txns.scan_prefix(Key::new().id(origin.as_str()).build()) {
            let (k, v) = item.or_backend()?;
            let (time, _) = split_answer(&v)?;
            match time.saturating_add(retention.txn_secs) <= now && k.as_ref() != key {
                true => batch.remove(k),
                false => kept.push((time, k)),
            }
        }
        // The newest stay; the one just stored is the newest.
        kept.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| (a.1 != key).cmp(&(b.1 != key))));
        for (_, k) in kept.into_iter().skip(retention.txn_memory.max(1)) {
            batch.remove(k);
        }
        fed_txns.apply_batch(batch).or_backend()?;
        Ok(())
    }

    /// When the event `id` from `origin` was applied, if it was.
    pub fn federation_applied(
        &self,
        origin: &ServerName,
        id: &[u8; 32],
    ) -> Result<Option<u64>, StoreError> {
        match self
            .t()
            .fed_applied
            .get(event_key(origin, id))
            .or_backend()?
        {
            Some(v) => read_u64(&v, "fed_applied").map(Some),
            None => Ok(None),
        }
    }

    /// Records that the event `id` from `origin` was applied at `time`.
    pub fn mark_federation_applied(
        &self,
        origin: &ServerName,
        id: &[u8; 32],
        time: u64,
    ) -> Result<(), StoreError> {
        let t = self.t();
        let key = event_key(origin, id);
        let by_time = Key::new().u64(time).bytes(&key).build();
        tx(
            (&t.fed_applied, &t.fed_applied_by_time).transaction(|(applied, index)| {
                applied.insert(key.as_slice(), &time.to_be_bytes())?;
                index.insert(by_time.as_slice(), &[])?;
                Ok(())
            }),
        )
    }

    /// Gives every `fed_applied` row its `fed_applied_by_time` entry, once (rows of a database
    /// written before the index existed would never be purged); returns how many rows were
    /// indexed. Idempotent: interrupted, it is done again at the next open.
    pub(super) fn backfill_applied_index(&self) -> Result<u64, StoreError> {
        if self.meta(META_APPLIED_INDEXED)?.is_some() {
            return Ok(0);
        }
        let t = self.t();
        let mut batch = sled::Batch::default();
        let mut n = 0u64;
        for item in t.fed_applied.iter() {
            let (k, v) = item.or_backend()?;
            let time = read_u64(&v, "fed_applied")?;
            batch.insert(Key::new().u64(time).bytes(&k).build(), &[][..]);
            n += 1;
        }
        t.fed_applied_by_time.apply_batch(batch).or_backend()?;
        self.set_meta(META_APPLIED_INDEXED, &[1])?;
        Ok(n)
    }

    /// How many transaction answers and applied event ids are kept for `origin`.
    pub fn federation_bookkeeping(
        &self,
        origin: &ServerName,
    ) -> Result<(usize, usize), StoreError> {
        let prefix = Key::new().id(origin.as_str()).build();
        let count = |tree: &sled::Tree| -> Result<usize, StoreError> {
            let mut n = 0;
            for k in tree.scan_prefix(&prefix).keys() {
                k.or_backend()?;
                n += 1;
            }
            Ok(n)
        };
        Ok((count(&self.t().fed_txns)?, count(&self.t().fed_applied)?))
    }

    /// Forgets answers older than `retention.txn_secs` and applied ids older than
    /// `retention.applied_secs` (`federation-api.md` §1.1); returns how many went.
    pub fn purge_federation(
        &self,
        now: u64,
        retention: FederationRetention,
    ) -> Result<u64, StoreError> {
        let t = self.t();
        let mut removed = 0u64;
        let mut batch = sled::Batch::default();
        for item in t.fed_txns.iter() {
            let (k, v) = item.or_backend()?;
            if split_answer(&v)?.0.saturating_add(retention.txn_secs) <= now {
                batch.remove(k);
                removed += 1;
            }
        }
        t.fed_txns.apply_batch(batch).or_backend()?;
        // The index is in time order: only what goes is read.
        let before = now.saturating_sub(retention.applied_secs);
        let end = Key::new().u64(before).build();
        for item in t.fed_applied_by_time.range(..end) {
            let (k, _) = item.or_backend()?;
            let event = k.get(8..).unwrap_or_default();
            let (index, applied) = (&t.fed_applied_by_time, &t.fed_applied);
            tx((index, applied).transaction(|(index, applied)| {
                index.remove(k.as_ref())?;
                applied.remove(event)?;
                Ok(())
            }))?;
            removed += 1;
        }
        Ok(removed)
    }
}

impl Store {
    /// Every server whose federation transactions this server keeps answers for (its inbound
    /// peers), in key order.
    pub fn federation_origins(&self) -> Result<Vec<ServerName>, StoreError> {
        let mut out: Vec<ServerName> = Vec::new();
        let txns = &self.t().fed_txns;
        let mut from: Vec<u8> = Vec::new();
        // One seek per origin, not one step per stored transaction: past an origin's keys is
        // the successor of its key prefix.
        while let Some(item) = txns.range(from.as_slice()..).next() {
            let (k, _) = item.or_backend()?;
            let mut r = super::keys::KeyReader::new(&k, "fed_txns");
            let origin: ServerName = r.id()?;
            match prefix_successor(&Key::new().id(origin.as_str()).build()) {
                Some(next) => from = next,
                None => {
                    out.push(origin);
                    break;
                }
            }
            out.push(origin);
        }
        Ok(out)
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: there is none,
/// the prefix is all `0xff`).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xff {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::tests::open;
    use super::*;

    fn name(s: &str) -> ServerName {
        s.parse().unwrap()
    }

    const KEEP: FederationRetention = FederationRetention {
        txn_memory: 3,
        txn_secs: 100,
        applied_secs: 1000,
    };

    #[test]
    fn answers_are_bounded_per_origin_and_by_age() {
        let (_dir, store) = open();
        let (a, b) = (name("a.example"), name("b.example"));
        store
            .set_federation_txn(&b, "b1", b"\x80", 1, KEEP)
            .unwrap();
        for i in 0..5u64 {
            store
                .set_federation_txn(&a, &format!("t{i}"), &[0x81, i as u8], 10 + i, KEEP)
                .unwrap();
        }
        // The three newest of a stay, b's is untouched by a's writes.
        for i in 0..5u64 {
            let kept = store.federation_txn(&a, &format!("t{i}")).unwrap();
            assert_eq!(kept.is_some(), i >= 2, "t{i}");
        }
        assert_eq!(store.federation_txn(&a, "t4").unwrap(), Some(vec![0x81, 4]));
        assert!(store.federation_txn(&b, "b1").unwrap().is_some());
        // An untimed answer (stored before times were kept) is served and counts as old.
        store
            .t()
            .fed_txns
            .insert(txn_key(&b, "old"), &[0x80][..])
            .unwrap();
        assert_eq!(store.federation_txn(&b, "old").unwrap(), Some(vec![0x80]));
        assert_eq!(store.purge_federation(101, KEEP).unwrap(), 2);
        assert!(store.federation_txn(&b, "b1").unwrap().is_none());
        assert!(store.federation_txn(&a, "t4").unwrap().is_some());
        assert_eq!(store.purge_federation(1000, KEEP).unwrap(), 3);
    }

    #[test]
    fn origins_are_listed_once_each_in_key_order() {
        let (_dir, store) = open();
        assert!(store.federation_origins().unwrap().is_empty());
        // Names whose keys share prefixes ("a.example" is a prefix of "a.example.org").
        let names = ["b.example", "a.example.org", "a.example", "c.example"];
        for (n, origin) in names.iter().enumerate() {
            for i in 0..3 {
                store
                    .set_federation_txn(
                        &name(origin),
                        &format!("t{i}"),
                        b"\x80",
                        1 + n as u64,
                        KEEP,
                    )
                    .unwrap();
            }
        }
        let mut expected: Vec<ServerName> = names.iter().map(|n| name(n)).collect();
        expected.sort_by_key(|n| Key::new().id(n.as_str()).build());
        assert_eq!(store.federation_origins().unwrap(), expected);
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
    }

    #[test]
    fn applied_ids_are_purged_by_age() {
        let (_dir, store) = open();
        let a = name("a.example");
        store.mark_federation_applied(&a, &[1; 32], 10).unwrap();
        store.mark_federation_applied(&a, &[2; 32], 500).unwrap();
        assert_eq!(store.purge_federation(1009, KEEP).unwrap(), 0);
        assert_eq!(store.purge_federation(1011, KEEP).unwrap(), 1);
        assert_eq!(store.federation_applied(&a, &[1; 32]).unwrap(), None);
        assert_eq!(store.federation_applied(&a, &[2; 32]).unwrap(), Some(500));
        assert_eq!(store.purge_federation(2000, KEEP).unwrap(), 1);
        assert_eq!(store.federation_applied(&a, &[2; 32]).unwrap(), None);
    }

    #[test]
    fn applied_ids_of_before_the_index_are_indexed_once_and_purged() {
        let (dir, store) = open();
        let a = name("a.example");
        store.mark_federation_applied(&a, &[1; 32], 10).unwrap();
        // Two rows as a server before the index wrote them: no index entry, no flag.
        for (id, time) in [([2u8; 32], 20u64), ([3; 32], 5000)] {
            store
                .t()
                .fed_applied
                .insert(event_key(&a, &id), &time.to_be_bytes())
                .unwrap();
        }
        store.t().meta.remove(META_APPLIED_INDEXED).unwrap();
        assert_eq!(store.purge_federation(2000, KEEP).unwrap(), 1);
        assert_eq!(store.federation_applied(&a, &[2; 32]).unwrap(), Some(20));
        drop(store);
        // Opening the store indexes them; the old one is purged, the new one kept.
        let store = loop {
            match Store::open(dir.path()) {
                Ok(store) => break store,
                Err(e) if e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        };
        assert!(store.meta(META_APPLIED_INDEXED).unwrap().is_some());
        assert_eq!(store.backfill_applied_index().unwrap(), 0, "once");
        assert_eq!(store.purge_federation(2000, KEEP).unwrap(), 1);
        assert_eq!(store.federation_applied(&a, &[2; 32]).unwrap(), None);
        assert_eq!(store.federation_applied(&a, &[3; 32]).unwrap(), Some(5000));
        assert_eq!(store.purge_federation(7000, KEEP).unwrap(), 1);
        assert_eq!(store.federation_bookkeeping(&a).unwrap(), (0, 0));
    }
}

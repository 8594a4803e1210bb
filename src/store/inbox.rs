//! Per-device inboxes: items filed for one device, fetched and acknowledged by sequence number
//! (`federation-spec/client-api.md` §5).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::keys::{Key, KeyReader};
use super::{
    Counter, DeviceId, OrBackend, Store, StoreError, decode_record, encode_record, tx, tx_counter,
    user_device,
};
use rendezvous_protocol::ids::UserId;

/// `inbox` value: `[kind, body]`.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredItem(pub(super) u8, pub(super) ByteBuf);

/// Files an item in `device`'s inbox inside a transaction over the `inbox` and `counters`
/// trees (the caller holds the device's lock): the next sequence number, returned.
pub(super) fn tx_inbox_push(
    inbox: &TransactionalTree,
    counters: &TransactionalTree,
    user: &UserId,
    device: &DeviceId,
    kind: u8,
    body: &[u8],
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    let seq_key = Counter::InboxSeq.key(user, Some(device));
    let seq = tx_counter(counters, &seq_key)? + 1;
    let value = encode_record(&StoredItem(kind, ByteBuf::from(body.to_vec())));
    let key = Key::new()
        .bytes(&user_device(user, device))
        .u64(seq)
        .build();
    inbox.insert(key, value.as_slice())?;
    counters.insert(seq_key.as_slice(), &seq.to_be_bytes())?;
    Ok(seq)
}

impl Store {
    /// Files an item for a registered device; returns its sequence number (from 1, increasing
    /// per device, never reused).
    pub fn inbox_push(
        &self,
        user: &UserId,
        device_key: DeviceId,
        kind: u8,
        body: &[u8],
    ) -> Result<u64, StoreError> {
        let t = self.t();
        let _lock = self.device_lock(user, &device_key);
        self.require_device(user, &device_key)?;
        tx(
            (&t.inbox, &t.counters).transaction(|(tx_inbox, tx_counters)| {
                tx_inbox_push(tx_inbox, tx_counters, user, &device_key, kind, body)
            }),
        )
    }

    /// Up to `limit` items with a sequence number above `after`, in order: `(seq, kind, body)`.
    pub fn inbox(
        &self,
        user: &UserId,
        device_key: DeviceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u8, Vec<u8>)>, StoreError> {
        let prefix = user_device(user, &device_key);
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let lo = Key::new().bytes(&prefix).u64(start).build();
        let hi = Key::new().bytes(&prefix).u64(u64::MAX).build();
        let mut out = Vec::new();
        for item in self.t().inbox.range(lo..=hi).take(limit) {
            let (k, v) = item.or_backend()?;
            let seq = KeyReader::new(k.get(prefix.len()..).unwrap_or_default(), "inbox").u64()?;
            let StoredItem(kind, body) = decode_record(&v, "inbox")?;
            out.push((seq, kind, body.into_vec()));
        }
        Ok(out)
    }

    /// What the device's unacknowledged inbox holds: `(items, bytes)` (bodies' lengths).
    pub fn inbox_usage(
        &self,
        user: &UserId,
        device_key: DeviceId,
    ) -> Result<(u64, u64), StoreError> {
        let prefix = user_device(user, &device_key);
        let (mut items, mut bytes) = (0u64, 0u64);
        for item in self.t().inbox.scan_prefix(&prefix) {
            let (_, v) = item.or_backend()?;
            items += 1;
            bytes += v.len() as u64;
        }
        Ok((items, bytes))
    }

    /// Deletes the device's items up to and including `up_to`; returns how many were deleted.
    pub fn inbox_ack(
        &self,
        user: &UserId,
        device_key: DeviceId,
        up_to: u64,
    ) -> Result<u64, StoreError> {
        let prefix = user_device(user, &device_key);
        let lo = Key::new().bytes(&prefix).u64(0).build();
        let hi = Key::new().bytes(&prefix).u64(up_to).build();
        let inbox = &self.t().inbox;
        let mut batch = sled::Batch::default();
        let mut n = 0u64;
        for k in inbox.range(lo..=hi).keys() {
            batch.remove(k.or_backend()?);
            n += 1;
        }
        inbox.apply_batch(batch).or_backend()?;
        Ok(n)
    }
}

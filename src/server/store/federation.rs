//! Inbound federation (`federation-spec/federation-api.md` §4): which transactions and events
//! have been processed, so that a retry applies nothing twice, and the events received so far.
//!
//! | table | key | value |
//! |---|---|---|
//! | `fed_txns` | `id(origin) ‖ id(txn id)` | transaction response bytes |
//! | `fed_applied` | `id(origin) ‖ event id` | `u64be` time applied |
//! | `fed_received` | `id(origin) ‖ event id` | signed event wire bytes |

use super::keys::{Key, KeyReader, read_u64};
use super::{OrBackend, Store, StoreError};
use crate::ids::ServerName;

/// A received event: its id and signed wire form.
pub type ReceivedEvent = ([u8; 32], Vec<u8>);

fn txn_key(origin: &ServerName, txn_id: &str) -> Vec<u8> {
    Key::new().id(origin.as_str()).id(txn_id).build()
}

fn event_key(origin: &ServerName, id: &[u8; 32]) -> Vec<u8> {
    Key::new().id(origin.as_str()).bytes(id).build()
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
        Ok(v.map(|v| v.to_vec()))
    }

    /// Records the response to transaction `txn_id` from `origin`.
    pub fn set_federation_txn(
        &self,
        origin: &ServerName,
        txn_id: &str,
        response: &[u8],
    ) -> Result<(), StoreError> {
        self.t()
            .fed_txns
            .insert(txn_key(origin, txn_id), response)
            .or_backend()?;
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
        self.t()
            .fed_applied
            .insert(event_key(origin, id), &time.to_be_bytes())
            .or_backend()?;
        Ok(())
    }

    /// Keeps a received event (its signed wire form). Storing the same event again is a no-op.
    pub fn put_federation_event(
        &self,
        origin: &ServerName,
        id: &[u8; 32],
        wire: &[u8],
    ) -> Result<(), StoreError> {
        self.t()
            .fed_received
            .insert(event_key(origin, id), wire)
            .or_backend()?;
        Ok(())
    }

    /// The events received from `origin`: `(event id, signed wire form)`, by id.
    pub fn federation_events(&self, origin: &ServerName) -> Result<Vec<ReceivedEvent>, StoreError> {
        let prefix = Key::new().id(origin.as_str()).build();
        let mut out = Vec::new();
        for item in self.t().fed_received.scan_prefix(&prefix) {
            let (k, v) = item.or_backend()?;
            let mut r = KeyReader::new(&k, "fed_received");
            r.skip_id()?;
            let id = r.array::<32>()?;
            r.end()?;
            out.push((id, v.to_vec()));
        }
        Ok(out)
    }
}

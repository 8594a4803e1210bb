//! Inbound federation (`federation-spec/federation-api.md` §4): which transactions and events
//! have been processed, so that a retry applies nothing twice.
//!
//! | table | key | value |
//! |---|---|---|
//! | `fed_txns` | `id(origin) ‖ id(txn id)` | transaction response bytes |
//! | `fed_applied` | `id(origin) ‖ event id` | `u64be` time applied |

use super::keys::{Key, read_u64};
use super::{OrBackend, Store, StoreError};
use rendezvous_protocol::ids::ServerName;

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
}

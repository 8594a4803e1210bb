//! Server metadata: small named values (server key, schema version, admin settings).

use super::{OrBackend, Store, StoreError};

impl Store {
    /// The value stored under `key`.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.t().meta.get(key.as_bytes()).or_backend()?;
        Ok(v.map(|v| v.to_vec()))
    }

    /// Stores `value` under `key`, replacing any earlier value.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.t().meta.insert(key.as_bytes(), value).or_backend()?;
        Ok(())
    }

    /// Stores every `(key, value)` at once (one sled batch: all or none).
    pub fn set_metas(&self, values: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in values {
            batch.insert(key.as_bytes(), *value);
        }
        self.t().meta.apply_batch(batch).or_backend()?;
        Ok(())
    }
}

//! Server metadata: small named values (server key, schema version, admin settings).

use serde_bytes::ByteBuf;

use super::{OrBackend, Store, StoreError};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::tlog::{HostKeys, SignedRotation};
use rendezvous_protocol::wire::decode;

/// `meta` key: CBOR list of this server's signed key rotations (`tag-log.md` §7.6, each as
/// bytes), oldest first.
pub const META_ROTATIONS: &str = "federation.rotations";

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

    /// This server's Server Key rotations (`tag-log.md` §7.6), oldest first.
    pub fn rotations(&self, server: &ServerName) -> Result<Vec<SignedRotation>, StoreError> {
        let corrupt = || StoreError::Corrupt { table: "meta" };
        let Some(v) = self.meta(META_ROTATIONS)? else {
            return Ok(Vec::new());
        };
        let list: Vec<ByteBuf> = decode(&v, v.len()).map_err(|_| corrupt())?;
        list.iter()
            .map(|r| SignedRotation::from_wire(r, server.as_str()).map_err(|_| corrupt()))
            .collect()
    }

    /// The chain of this server's checkpoint keys: its current `key` and the rotations back
    /// from it.
    pub fn own_host_keys(
        &self,
        server: &ServerName,
        key: &ServerKey,
    ) -> Result<HostKeys, StoreError> {
        let mut chain = HostKeys::new(server.as_str(), key.public().clone());
        chain
            .learn(&self.rotations(server)?)
            .map_err(|_| StoreError::Corrupt { table: "meta" })?;
        Ok(chain)
    }
}

//! `devices-seen.json`: which device endorsed which, as this device learned it (the link that
//! made it, and the `device added` notices of its inbox, `client-api.md` §5). Plaintext: key ids
//! only, no secret.

use std::collections::BTreeMap;

use super::Keystore;
use super::files::{read_optional, write_atomic};
use crate::ClientError;

const DEVICES_SEEN: &str = "devices-seen.json";

impl Keystore {
    /// The endorsements this device knows: device key id (hex) → endorser's key id (hex).
    pub fn devices_seen(&self) -> Result<BTreeMap<String, String>, ClientError> {
        let path = self.dir.join(DEVICES_SEEN);
        match read_optional(&path)? {
            None => Ok(BTreeMap::new()),
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| ClientError::corrupt(&path, e))
            }
        }
    }

    /// Records that `endorser` endorsed `device` (both key ids in hex).
    pub fn record_device_seen(&self, device: &str, endorser: &str) -> Result<(), ClientError> {
        let mut seen = self.devices_seen()?;
        seen.insert(device.to_owned(), endorser.to_owned());
        let path = self.dir.join(DEVICES_SEEN);
        let json = serde_json::to_vec_pretty(&seen).map_err(|e| ClientError::corrupt(&path, e))?;
        write_atomic(&path, &json)
    }
}

//! `rotated-from.json`: the public halves of the Identity Keys this device held before a
//! rotation (`directory.md` §6.3 step 3, §8), newest last, at most [`MAX_ROTATED_FROM`]. The
//! self-monitor accepts directory entries that bind one of them. Plaintext: public keys only.

use super::Keystore;
use super::files::{read_optional, write_atomic};
use crate::ClientError;
use crate::tls::decode_hex;
use rendezvous_protocol::crypto::IdentityPublicKey;
use rendezvous_protocol::crypto::sign::hex_string;

const ROTATED_FROM: &str = "rotated-from.json";

/// The most rotated-from keys kept; the oldest is dropped beyond it (its entries are long
/// checked by then: a pass reads each entry once).
pub const MAX_ROTATED_FROM: usize = 64;

impl Keystore {
    /// The Identity Keys this device rotated from, oldest first.
    pub fn rotated_from(&self) -> Result<Vec<IdentityPublicKey>, ClientError> {
        let path = self.dir.join(ROTATED_FROM);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(Vec::new());
        };
        let hex: Vec<String> =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::corrupt(&path, e))?;
        hex.iter()
            .map(|h| {
                let raw = decode_hex(h).ok_or_else(|| ClientError::corrupt(&path, "not hex"))?;
                IdentityPublicKey::from_slice(&raw).map_err(|e| ClientError::corrupt(&path, e))
            })
            .collect()
    }

    /// Records that this device rotated from `key` (kept once; the oldest beyond
    /// [`MAX_ROTATED_FROM`] is dropped).
    pub fn record_rotated_from(&self, key: &IdentityPublicKey) -> Result<(), ClientError> {
        let mut keys = self.rotated_from()?;
        if !keys.contains(key) {
            keys.push(key.clone());
        }
        let skip = keys.len().saturating_sub(MAX_ROTATED_FROM);
        let hex: Vec<String> = keys[skip..]
            .iter()
            .map(|k| hex_string(k.as_bytes()))
            .collect();
        let path = self.dir.join(ROTATED_FROM);
        let json = serde_json::to_vec_pretty(&hex).map_err(|e| ClientError::corrupt(&path, e))?;
        write_atomic(&path, &json)
    }
}

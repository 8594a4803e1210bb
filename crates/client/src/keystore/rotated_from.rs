//! `rotated-from`: the public halves of the Identity Keys this device's user rotated away from,
//! oldest first (`directory.md` §6.3 step 3, §6.4, §8). Sealed like a secret file, so that the
//! list the self-monitor and the roster check trust cannot be edited on disk unnoticed.

use super::Keystore;
use crate::ClientError;
use rendezvous_protocol::crypto::IdentityPublicKey;
use rendezvous_protocol::wire::{decode, encode};

const ROTATED_FROM: &str = "rotated-from";

/// Most rotated-from keys kept; past it the oldest is forgotten (its entries in the directory
/// then raise `directory_foreign_key` on a device that never saw them, and its Topic Keys'
/// certificates no longer load).
pub const MAX_ROTATED_FROM: usize = 64;

impl Keystore {
    /// The Identity Keys this user rotated from, oldest first.
    pub fn rotated_from(&self) -> Result<Vec<IdentityPublicKey>, ClientError> {
        let path = self.dir.join(ROTATED_FROM);
        let Some(bytes) = self.read_secret(&path)? else {
            return Ok(Vec::new());
        };
        let keys: Vec<serde_bytes::ByteBuf> = decode(&bytes, 64 * (MAX_ROTATED_FROM + 1))
            .map_err(|e| ClientError::corrupt(&path, e))?;
        keys.iter()
            .map(|k| {
                IdentityPublicKey::from_slice(k)
                    .map_err(|_| ClientError::corrupt(&path, "not an identity key"))
            })
            .collect()
    }

    /// Adds `key` to the rotated-from keys (once; the oldest dropped past
    /// [`MAX_ROTATED_FROM`]).
    pub fn record_rotated_from(&self, key: &IdentityPublicKey) -> Result<(), ClientError> {
        let mut keys = self.rotated_from()?;
        if keys.contains(key) {
            return Ok(());
        }
        keys.push(key.clone());
        if keys.len() > MAX_ROTATED_FROM {
            keys.remove(0);
        }
        let wire: Vec<serde_bytes::ByteBuf> = keys
            .iter()
            .map(|k| serde_bytes::ByteBuf::from(k.as_bytes().to_vec()))
            .collect();
        self.write_secret(&self.dir.join(ROTATED_FROM), &encode(&wire))
    }
}

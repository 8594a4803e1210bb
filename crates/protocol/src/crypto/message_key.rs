//! Message Keys and the per-epoch keys derived from them (`federation-spec/protocol.md` §5.2).
//!
//! A Message Key (MK) is 32 random bytes per topic epoch. From it, HKDF-SHA256 derives
//! `enc_key ‖ tag_key` (64 bytes) with `info = transcript("rdv/v1/epoch-keys", [topic, epoch])`;
//! the key check value `HMAC-SHA256(MK, transcript("rdv/v1/epoch-key-check", [topic, epoch]))`
//! published in the topic change lets every member confirm that the key they unsealed is the one
//! the admin committed to.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::CryptoError;
use super::sign::fixed;
use super::transcript::{LABEL_EPOCH_KEY_CHECK, LABEL_EPOCH_KEYS, transcript};
use crate::ids::{Epoch, TopicId};

/// HMAC-SHA256.
pub type HmacSha256 = Hmac<Sha256>;

/// A topic epoch's Message Key.
pub struct MessageKey(Zeroizing<[u8; 32]>);

impl MessageKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        MessageKey(Zeroizing::new(super::random_array()))
    }

    /// A key from its bytes (after unsealing).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        Ok(MessageKey(Zeroizing::new(fixed(bytes)?)))
    }

    /// The key bytes (for sealing to a member).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key check value that a topic change publishes for this key.
    pub fn key_check(&self, topic: &TopicId, epoch: Epoch) -> [u8; 32] {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0[..])
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(&transcript(
            LABEL_EPOCH_KEY_CHECK,
            &[topic.as_str().as_bytes(), &epoch.to_be_bytes()],
        ));
        mac.finalize().into_bytes().into()
    }

    /// Whether `check` is this key's check value (constant time).
    pub fn matches_check(&self, topic: &TopicId, epoch: Epoch, check: &[u8; 32]) -> bool {
        self.key_check(topic, epoch).ct_eq(check).into()
    }

    /// Derives the epoch's encryption and tag keys.
    pub fn epoch_keys(&self, topic: &TopicId, epoch: Epoch) -> EpochKeys {
        let hk = hkdf::Hkdf::<Sha256>::new(None, &self.0[..]);
        let mut okm = Zeroizing::new([0u8; 64]);
        // 64 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
        let _ = hk.expand(
            &transcript(
                LABEL_EPOCH_KEYS,
                &[topic.as_str().as_bytes(), &epoch.to_be_bytes()],
            ),
            &mut okm[..],
        );
        let mut enc_key = Zeroizing::new([0u8; 32]);
        enc_key.copy_from_slice(&okm[..32]);
        let tag_mac = <HmacSha256 as KeyInit>::new_from_slice(&okm[32..])
            .unwrap_or_else(|_| unreachable_hmac());
        EpochKeys {
            epoch,
            enc_key,
            tag_mac,
        }
    }
}

/// HMAC accepts keys of any length; this is never reached.
#[allow(clippy::panic)]
fn unreachable_hmac() -> HmacSha256 {
    panic!("HMAC-SHA256 accepts keys of every length")
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageKey(***)")
    }
}

/// The keys of one epoch: XChaCha20 key and the keyed HMAC for Message Tags.
pub struct EpochKeys {
    epoch: Epoch,
    pub(crate) enc_key: Zeroizing<[u8; 32]>,
    /// HMAC already keyed with `tag_key`; cloned for each message.
    pub(crate) tag_mac: HmacSha256,
}

impl EpochKeys {
    /// The epoch these keys belong to.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
}

impl fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKeys")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_topic_and_epoch() {
        let server = "a.example".parse().unwrap();
        let t1 = TopicId::random(&server);
        let t2 = TopicId::random(&server);
        let mk = MessageKey::generate();
        let a = mk.epoch_keys(&t1, Epoch(0));
        let b = mk.epoch_keys(&t1, Epoch(1));
        let c = mk.epoch_keys(&t2, Epoch(0));
        assert_ne!(*a.enc_key, *b.enc_key);
        assert_ne!(*a.enc_key, *c.enc_key);
        let check = mk.key_check(&t1, Epoch(0));
        assert!(mk.matches_check(&t1, Epoch(0), &check));
        assert!(!mk.matches_check(&t1, Epoch(1), &check));
        assert!(!MessageKey::generate().matches_check(&t1, Epoch(0), &check));
        assert_eq!(format!("{mk:?}"), "MessageKey(***)");
    }
}

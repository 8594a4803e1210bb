//! Key stock: pre keys, one-time Topic Keys and the last-resort Topic Key, made here and
//! uploaded, refilled when the server asks (`client-api.md` §4, `devices.md` §3).

use awc::http::Method;
use serde_bytes::ByteBuf;

use crate::{Client, ClientError, PREKEY_STOCK, TOPIC_KEY_STOCK};
use rendezvous_protocol::api::{
    Body, ClaimPreKeysResponse, CountResponse, Empty, KeyStatusResponse, LastResortStatus,
    UploadLastResortRequest, UploadOwnTopicKeyRequest, UploadPreKeysRequest,
    UploadTopicKeysRequest,
};
use rendezvous_protocol::certs::PreKey;
use rendezvous_protocol::crypto::{KemSecretKey, Randomness, Suite};
use rendezvous_protocol::devices::{ClaimedPreKey, TopicKeyBatch, make_batch};
use rendezvous_protocol::wire::Signed;

use super::KeyStatus;

/// Most pre keys per upload request (`client-api.md` §4).
const PREKEYS_PER_REQUEST: usize = 200;
/// Topic key uploads per request (well inside the 4 MiB limit).
const TOPIC_KEYS_PER_REQUEST: usize = 50;

impl Client {
    /// Makes `count` pre keys, keeps their private halves and uploads the DK-signed public halves.
    pub async fn upload_prekeys(&mut self, count: usize) -> Result<u64, ClientError> {
        let mut stored = 0;
        let mut left = count;
        while left > 0 {
            let n = left.min(PREKEYS_PER_REQUEST);
            let mut prekeys = Vec::with_capacity(n);
            for _ in 0..n {
                let secret = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
                self.keystore.save_prekey(&secret)?;
                let signed = Signed::sign(
                    PreKey::new(self.user.clone(), secret.public()),
                    &self.device,
                );
                prekeys.push(signed.signed_bytes().clone());
            }
            let request = UploadPreKeysRequest { prekeys };
            let answer: CountResponse = self
                .authed(Method::POST, "/v1/prekeys", Some(request.to_cbor()))
                .await?;
            stored = answer.count;
            left -= n;
        }
        Ok(stored)
    }

    /// `GET /v1/keys/status`.
    pub async fn key_status(&mut self) -> Result<KeyStatus, ClientError> {
        let s: KeyStatusResponse = self.authed(Method::GET, "/v1/keys/status", None).await?;
        Ok(KeyStatus {
            prekeys_left: s.prekeys_left,
            topic_keys_left: s.topic_keys_left,
            refill: s.refill,
            last_resort: s.last_resort,
        })
    }

    /// Tops pre keys and topic keys up to their stock levels when the server asks for it
    /// (or always, with `force`), and uploads a new last-resort key when the server has none
    /// unused (none yet, or the one it holds was handed out). Returns the status before the
    /// refill.
    pub async fn refill(&mut self, force: bool) -> Result<KeyStatus, ClientError> {
        let status = self.key_status().await?;
        if !(status.refill || force) {
            return Ok(status);
        }
        let prekeys =
            PREKEY_STOCK.saturating_sub(usize::try_from(status.prekeys_left).unwrap_or(usize::MAX));
        if prekeys > 0 {
            self.upload_prekeys(prekeys).await?;
        }
        let topic_keys = TOPIC_KEY_STOCK
            .saturating_sub(usize::try_from(status.topic_keys_left).unwrap_or(usize::MAX));
        if topic_keys > 0 {
            self.make_topic_keys(topic_keys).await?;
        }
        if status.last_resort != LastResortStatus::Unused {
            self.upload_last_resort().await?;
        }
        Ok(status)
    }

    /// Makes a new last-resort Topic Key, delivers it to every other device as
    /// [`Self::make_topic_keys`] does, marks it in the keystore as this user's last-resort key
    /// and uploads it (`PUT /v1/topic-keys/last-resort`), replacing the server's previous one.
    /// The private halves of earlier last-resort keys stay in the keystore: topics joined with
    /// them still use them.
    pub async fn upload_last_resort(&mut self) -> Result<(), ClientError> {
        let batch = self.topic_key_batch(1).await?;
        let (Some(key), Some(upload)) = (batch.keys.first(), batch.uploads.first()) else {
            return Err(ClientError::NoPreKeysLeft);
        };
        self.keystore.save_topic_key(key, &upload.cert)?;
        self.keystore.mark_last_resort(&key.public().key_id())?;
        let request = UploadLastResortRequest {
            upload: ByteBuf::from(upload.to_wire()),
        };
        let _: Empty = self
            .authed(
                Method::PUT,
                "/v1/topic-keys/last-resort",
                Some(request.to_cbor()),
            )
            .await?;
        Ok(())
    }

    /// Makes a Topic Key for this user's own use in one topic (a move, `protocol.md` §7.2),
    /// delivers it to every other device as [`Self::make_topic_keys`] does, keeps it as a
    /// one-time key and registers it (`POST /v1/topic-keys/own`: never handed out). Returns
    /// its certificate, signed by the current Identity Key.
    pub(crate) async fn make_own_topic_key(
        &mut self,
    ) -> Result<
        rendezvous_protocol::wire::Verified<rendezvous_protocol::certs::TopicKeyCert>,
        ClientError,
    > {
        let batch = self.topic_key_batch(1).await?;
        let (Some(key), Some(upload)) = (batch.keys.first(), batch.uploads.first()) else {
            return Err(ClientError::NoPreKeysLeft);
        };
        self.keystore.save_topic_key(key, &upload.cert)?;
        self.keystore.mark_one_time(&key.public().key_id())?;
        let request = UploadOwnTopicKeyRequest {
            upload: ByteBuf::from(upload.to_wire()),
        };
        let _: Empty = self
            .authed(Method::POST, "/v1/topic-keys/own", Some(request.to_cbor()))
            .await?;
        Ok(upload.cert.clone())
    }

    /// Makes up to `count` Topic Keys, seals each to one pre key of every other device of the
    /// user (`devices.md` §3.1) and uploads certificates and deliveries. Each claim returns one
    /// pre key per other device, so a batch of n keys takes n claims; if a device runs out, the
    /// batch shrinks to the complete rounds. Returns how many keys were made.
    pub async fn make_topic_keys(&mut self, count: usize) -> Result<usize, ClientError> {
        let batch = self.topic_key_batch(count).await?;
        for (key, upload) in batch.keys.iter().zip(&batch.uploads) {
            self.keystore.save_topic_key(key, &upload.cert)?;
            self.keystore.mark_one_time(&key.public().key_id())?;
        }
        for chunk in batch.uploads.chunks(TOPIC_KEYS_PER_REQUEST) {
            let request = UploadTopicKeysRequest {
                uploads: chunk.iter().map(|u| ByteBuf::from(u.to_wire())).collect(),
            };
            let _: CountResponse = self
                .authed(Method::POST, "/v1/topic-keys", Some(request.to_cbor()))
                .await?;
        }
        Ok(batch.keys.len())
    }

    /// Up to `count` new Topic Keys with their certificates and deliveries, one pre key of
    /// every other device claimed per key.
    async fn topic_key_batch(&mut self, count: usize) -> Result<TopicKeyBatch, ClientError> {
        let count = count.min(rendezvous_protocol::devices::topic_keys::MAX_BATCH);
        let (directory, _) = self.directory().await?;
        let others = directory.len().saturating_sub(1);
        let mut claimed = Vec::new();
        let mut rounds = count;
        if others > 0 {
            rounds = 0;
            for _ in 0..count {
                let round = self.claim_prekey_round().await?;
                if round.len() < others {
                    break;
                }
                claimed.extend(round);
                rounds += 1;
            }
        }
        if rounds == 0 {
            return Err(ClientError::NoPreKeysLeft);
        }
        Ok(make_batch(
            &self.identity,
            &directory,
            self.device.public(),
            claimed,
            rounds,
            self.now(),
            &mut Randomness::Os,
        )?)
    }
}

impl Client {
    /// One pre key of every other device of the user (`POST /v1/prekeys/claim`), decoded; the
    /// caller checks them against its device directory (`make_batch`,
    /// `make_identity_deliveries`).
    pub(super) async fn claim_prekey_round(&mut self) -> Result<Vec<ClaimedPreKey>, ClientError> {
        let answer: ClaimPreKeysResponse = self
            .authed(
                Method::POST,
                "/v1/prekeys/claim",
                Some(Empty::default().to_cbor()),
            )
            .await?;
        answer.prekeys.into_iter().map(claimed_prekey).collect()
    }
}

pub(super) fn claimed_prekey(
    c: rendezvous_protocol::api::ClaimedPreKeyBody,
) -> Result<ClaimedPreKey, ClientError> {
    let malformed = |error| ClientError::Malformed {
        what: "claimed pre key".into(),
        error,
    };
    Ok(ClaimedPreKey {
        device_cert: Signed::from_signed_bytes(c.device_cert).map_err(malformed)?,
        prekey: Signed::from_signed_bytes(c.prekey).map_err(malformed)?,
    })
}

//! The hosting server's Server Key pinned per mirrored topic (`tag-log.md` §7.5): a mirror
//! follows one topic's log under one key. A checkpoint of the hosting server under another key
//! — a key document that changed, or a host that gives each peer its own key (issue 9, attack
//! 3) — is not a reason to start a fresh view: it is kept as evidence with the pinned head,
//! raised at error, served by `witnesses`, and stops the mirror, until key rotation
//! statements exist (`tag-log.md` §11).

use super::error::{TopicError, TopicResult};
use super::hosted::Mirror;
use super::service::TopicService;
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::federation::topic_events::MirrorEvidence;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{Cosignature, SignedCheckpoint};

/// Short form of a key, for reasons and logs: the first 8 bytes, hex.
fn short(key: &[u8; 32]) -> String {
    key.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl TopicService {
    /// Checks that `key`, which verified a checkpoint of `topic`'s hosting server, is the key
    /// pinned for the topic; pins it when none is and the mirror's head (if any) verifies
    /// under it. `Some(reason)` when it is another key: evidence, for the caller to keep.
    pub(super) fn host_key_changed(
        &self,
        topic: &TopicId,
        m: &Mirror,
        key: &ServerPublicKey,
    ) -> TopicResult<Option<String>> {
        let host = topic.server();
        match self.store.mirror_host_key(topic)? {
            Some(pinned) if pinned == *key.as_bytes() => Ok(None),
            Some(pinned) => Ok(Some(format!(
                "{host} signed a checkpoint under key {}…, but this topic's pinned key is {}… and no rotation statement was given",
                short(key.as_bytes()),
                short(&pinned)
            ))),
            None => {
                // A mirror from before keys were pinned: its head says which key it followed.
                if let Some(head) = m.head.as_deref()
                    && let Ok(head) = SignedCheckpoint::parse(head.as_bytes())
                    && head.verify(key, host.as_str()).is_err()
                {
                    return Ok(Some(format!(
                        "{host} signed a checkpoint under key {}…, not under the key of the head this mirror holds",
                        short(key.as_bytes())
                    )));
                }
                self.store.pin_mirror_host_key(topic, key.as_bytes())?;
                Ok(None)
            }
        }
    }

    /// The hosting server's key to check a cosigned note of a mirrored topic with: the pinned
    /// one. A note with a line of the hosting server's name that does not verify under it —
    /// signed under another key, as a host giving each peer its own key does — is kept as an
    /// alarm (the hosting server's lines and the cosigner's verified line), logged at error and
    /// served by `witnesses`: `Ok(None)`, answered 200. Without a pinned key, the first of
    /// `host_keys` that verifies.
    pub(super) fn note_host_key(
        &self,
        topic: &TopicId,
        signed: &SignedCheckpoint,
        cosignature: &Cosignature,
        host_keys: &[ServerPublicKey],
    ) -> TopicResult<Option<ServerPublicKey>> {
        let host = topic.server();
        let Some(pinned) = self.store.mirror_host_key(topic)? else {
            return verify_host_key(signed, host_keys, topic).map(Some);
        };
        let key = ServerPublicKey::from_slice(&pinned)
            .map_err(|e| TopicError::internal("pinned host key", e))?;
        if signed.verify(&key, host.as_str()).is_ok() {
            return Ok(Some(key));
        }
        if !signed.signer_names().contains(&host.as_str()) {
            return Err(TopicError::bad_checkpoint(format!(
                "the checkpoint carries no signature of {host}"
            )));
        }
        let mut kept = signed.lines_of(host.as_str());
        kept.add_cosignature(cosignature)
            .map_err(TopicError::bad_checkpoint)?;
        let reason = format!(
            "{} cosigned a checkpoint of {host} that does not verify under this topic's pinned key {}…: {host} may show other servers another key",
            cosignature.witness,
            short(&pinned)
        );
        tracing::error!(%topic, %host, cosigner = %cosignature.witness, reason, "alarm: a checkpoint of the hosting server under another key");
        let alarm = MirrorEvidence {
            reason,
            a: self.store.mirror_head(topic)?.unwrap_or_default(),
            b: kept.to_note().to_string(),
        };
        self.store.set_mirror_alarm(topic, &alarm.to_wire())?;
        Ok(None)
    }
}

/// The key among `host_keys` that signed `note` as the topic's hosting server.
pub(super) fn verify_host_key(
    note: &SignedCheckpoint,
    host_keys: &[ServerPublicKey],
    topic: &TopicId,
) -> TopicResult<ServerPublicKey> {
    let host = topic.server();
    host_keys
        .iter()
        .find(|k| note.verify(k, host.as_str()).is_ok())
        .cloned()
        .ok_or_else(|| {
            TopicError::bad_checkpoint(format!("the checkpoint is not signed by a key of {host}"))
        })
}

//! The hosting server's keys pinned per mirrored topic (`tag-log.md` §7.5, §7.6): a mirror
//! follows one topic's log under one chain of keys, which grows only by rotation statements
//! signed by both the old and the new key. A checkpoint of the hosting server under a key off
//! the chain — a key document that changed without a rotation, or a host that gives each peer
//! its own key (issue 9, attack 3) — or under a retired key after its rotation is not a reason
//! to start a fresh view: it is kept as evidence with the pinned head, raised at error, served
//! by `witnesses`, and stops the mirror.

use super::error::{TopicError, TopicResult};
use super::relay::RelayError;
use super::service::TopicService;
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::federation::topic_events::MirrorEvidence;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{Cosignature, HostKeyError, HostKeys, SignedCheckpoint};

/// Short form of a key, for reasons and logs: the first 8 bytes, hex.
fn short(key: &[u8; 32]) -> String {
    key.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The hosting server's keys a mirror checks one topic's checkpoints with.
#[derive(Debug, Clone)]
pub(super) struct HostKeySet {
    /// The chain pinned for the topic (grown by the rotations the host showed), or, for a topic
    /// not pinned yet, the chain of the host's key document.
    pub(super) chain: HostKeys,
    /// Keys of the host's document off the chain: a checkpoint under one is evidence.
    others: Vec<ServerPublicKey>,
}

impl HostKeySet {
    /// One key and nothing else (a note already checked under it).
    pub(super) fn of(chain: HostKeys) -> Self {
        HostKeySet {
            chain,
            others: Vec::new(),
        }
    }

    /// `None` when a key of the chain signed `note` in its period; the reason it is evidence
    /// against the host when a key of the chain signed it out of its period, or a key of the
    /// host's document off the chain signed it; an error when no key of the host's did.
    pub(super) fn check(
        &self,
        note: &SignedCheckpoint,
        topic: &TopicId,
    ) -> TopicResult<Option<String>> {
        let host = topic.server();
        match self.chain.verify_by(note) {
            Ok(_) => Ok(None),
            Err(e @ HostKeyError::OutOfPeriod { .. }) => Ok(Some(format!("{host}'s {e}"))),
            Err(HostKeyError::Checkpoint(e)) => {
                let Some(key) = self
                    .others
                    .iter()
                    .find(|k| note.verify(k, host.as_str()).is_ok())
                else {
                    return Err(TopicError::bad_checkpoint(format!(
                        "the checkpoint is not signed by a key of {host}: {e}"
                    )));
                };
                Ok(Some(format!(
                    "{host} signed a checkpoint under key {}…, but this topic's pinned key is {}… and no rotation statement leads to it",
                    short(key.as_bytes()),
                    short(self.chain.current().as_bytes())
                )))
            }
        }
    }
}

impl TopicService {
    /// The keys to check a checkpoint `note` of `topic`'s hosting server with: the chain
    /// pinned for the topic, or the chain of the host's key document when none is. A note that
    /// the pinned chain does not verify makes the mirror fetch the host's document again and
    /// follow its rotations from the pinned chain (both keys of each signed it); the grown
    /// chain is pinned. Two rotations out of one key are an alarm, kept, and the chain stays.
    pub(super) async fn host_key_set(
        &self,
        topic: &TopicId,
        note: Option<&SignedCheckpoint>,
    ) -> TopicResult<HostKeySet> {
        let relay = self.relay(|| "checking the hosting server's keys".into())?;
        let host = topic.server();
        let Some(mut chain) = self.store.mirror_host_keys(topic)? else {
            let (chain, _) = relay.key_chain(&host, false).await?;
            return Ok(HostKeySet::of(chain));
        };
        let unknown = |chain: &HostKeys| {
            note.is_some_and(|n| matches!(chain.verify(n), Err(HostKeyError::Checkpoint(_))))
        };
        let stale = unknown(&chain);
        let (offered, fetched_at) = relay.key_chain(&host, stale).await?;
        if stale {
            match chain.learn(offered.rotations()) {
                Ok(true) => {
                    tracing::info!(%topic, %host, key = %short(chain.current().as_bytes()), "following the hosting server's key rotation");
                    self.store.pin_mirror_host_keys(topic, &chain)?;
                }
                Ok(false) => {}
                Err(e) => {
                    let reason = format!(
                        "{host}'s key rotations do not continue this topic's pinned keys: {e}"
                    );
                    tracing::error!(%topic, %host, reason, "alarm: the hosting server's key rotations");
                    let alarm = MirrorEvidence {
                        reason,
                        a: self.store.mirror_head(topic)?.unwrap_or_default(),
                        b: note.map(|n| n.to_note().to_string()).unwrap_or_default(),
                    };
                    self.store.set_mirror_alarm(topic, &alarm.to_wire())?;
                }
            }
        }
        let others: Vec<ServerPublicKey> = offered
            .keys()
            .filter(|k| !chain.contains(k))
            .cloned()
            .collect();
        let signed_by_other =
            |n: &SignedCheckpoint| others.iter().any(|k| n.verify(k, host.as_str()).is_ok());
        let after_fetch =
            |n: &SignedCheckpoint| fetched_at.is_some_and(|f| n.unverified_checkpoint().time > f);
        if unknown(&chain) && note.is_some_and(|n| after_fetch(n) && !signed_by_other(n)) {
            // Signed after the host's document was fetched, which could not be fetched again
            // yet: the host may have rotated since. Try later rather than refuse
            // (`federation-api.md` §2).
            return Err(TopicError::Relay(RelayError::unavailable(format!(
                "{host}'s checkpoint is under a key this server does not know yet; its key document is fetched again shortly"
            ))));
        }
        Ok(HostKeySet { chain, others })
    }

    /// The hosting server's key to check a cosigned note of a mirrored topic with: the key of
    /// the pinned chain that signed it. A note with a line of the hosting server's name that
    /// does not verify under the chain — signed under another key, as a host giving each peer
    /// its own key does — is kept as an alarm (the hosting server's lines and the cosigner's
    /// verified line), logged at error and served by `witnesses`: `Ok(None)`, answered 200.
    pub(super) fn note_host_key(
        &self,
        topic: &TopicId,
        signed: &SignedCheckpoint,
        cosignature: &Cosignature,
        keys: &HostKeySet,
    ) -> TopicResult<Option<ServerPublicKey>> {
        let host = topic.server();
        if let Ok((key, _)) = keys.chain.verify_by(signed) {
            return Ok(Some(key.clone()));
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
            short(keys.chain.current().as_bytes())
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

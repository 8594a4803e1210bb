//! Cosigning (`federation-api.md` §9.4): a participating server cosigns its mirror's head and
//! sends it to the hosting server and every other participating server; cosignatures that
//! arrive are checked against this server's log (hosted) or mirror, kept, and served with the
//! heads.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::error::{TopicError, TopicResult};
use super::lock;
use super::mirror::host_checkpoint;
use super::pinned::HostKeySet;
use super::service::TopicService;
use rendezvous_protocol::federation::topic_events::{cosignature_from_wire, cosignature_to_wire};
use rendezvous_protocol::federation::{Event, EventKind};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::{CheckpointNote, Cosignature, HostKeys, SignedCheckpoint};

/// Cosignatures of one topic are sent at most this often; the newest head is cosigned.
const COSIGN_DELAY: Duration = Duration::from_millis(300);

impl TopicService {
    /// The checkpoint note with the cosignature lines of every participating server that
    /// cosigned exactly this checkpoint (`federation-api.md` §9.4: heads are served with their
    /// cosignatures). Lines were verified when their cosigned notes arrived.
    pub fn with_cosignatures(&self, topic: &TopicId, note: CheckpointNote) -> CheckpointNote {
        let Ok(mut signed) = SignedCheckpoint::parse(note.as_bytes()) else {
            return note;
        };
        let Ok(witnesses) = self.store.witness_notes(topic) else {
            return note;
        };
        let mut merged = false;
        for (server, w) in witnesses {
            // Only the cosigner's own line: notes are stored with verified lines only, and one
            // stored before that cannot slip in other names either.
            if let Ok(w) = SignedCheckpoint::parse(w.as_bytes()) {
                merged |= signed.merge_signatures(&w.lines_of(server.as_str()));
            }
        }
        match merged {
            true => signed.to_note(),
            false => note,
        }
    }

    /// The topic's current checkpoint with the cosignatures kept for it.
    pub fn cosigned_checkpoint(&self, topic: &TopicId) -> TopicResult<CheckpointNote> {
        Ok(self.with_cosignatures(topic, self.checkpoint(topic)?))
    }

    /// A `topic.cosignature` event from `origin`: its cosignature must verify, `origin` must
    /// have a member, and the cosigned checkpoint must be of this server's log (hosted) or is
    /// compared with the mirror; then it is kept unless a larger one is.
    pub async fn apply_cosignature(
        &self,
        topic: &TopicId,
        origin: &ServerName,
        payload: &[u8],
    ) -> TopicResult<()> {
        let note = cosignature_from_wire(payload)?;
        let signed =
            SignedCheckpoint::parse(note.as_bytes()).map_err(TopicError::bad_checkpoint)?;
        let relay = self.relay(|| "cosignatures".into())?;
        let cosigner_keys = relay.server_keys(origin).await?;
        let Some((cosigner, cosignature)) = cosigner_keys.iter().find_map(|k| {
            signed
                .cosignature(k, origin.as_str())
                .ok()
                .map(|co| (k, co))
        }) else {
            return Err(TopicError::NoCosignature {
                server: origin.clone(),
            });
        };
        let state = self.state(topic).map_err(|e| match e {
            TopicError::NoTopic { .. } => TopicError::NotTakingPart {
                server: self.server_name.clone(),
                topic: topic.clone(),
            },
            e => e,
        })?;
        if !state.members().values().any(|m| m.user.server() == *origin) {
            return Err(TopicError::NoMember {
                server: origin.clone(),
                topic: topic.clone(),
            });
        }
        let hosted_here = topic.server() == self.server_name;
        let host_key = match hosted_here {
            // Its own notes under any key of its chain, each in its period (`tag-log.md` §7.6):
            // a cosignature of a checkpoint signed before a rotation is still of this log.
            true => {
                let chain = self
                    .store
                    .own_host_keys(&self.server_name, self.server_key())?;
                let (key, _) = chain
                    .verify_by(&signed)
                    .map_err(|e| TopicError::bad_checkpoint(e.to_string()))?;
                key.clone()
            }
            // tag-log.md §7.5: a mirror checks against the topic's pinned keys (following the
            // host's rotations, §7.6); a note under another key is an alarm, kept, not a 400.
            false => {
                let keys = self.host_key_set(topic, Some(&signed)).await?;
                match self.note_host_key(topic, &signed, &cosignature, &keys)? {
                    Some(key) => key,
                    None => return Ok(()),
                }
            }
        };
        // federation-api.md §9.4: only the host's line and the sender's verified cosignature
        // are kept; any other line is dropped before the note is stored or served.
        let kept = signed
            .verified_only(
                (&host_key, topic.server().as_str()),
                (cosigner, origin.as_str()),
            )
            .map_err(TopicError::bad_checkpoint)?;
        let note = kept.to_note();
        let one = HostKeySet::of(HostKeys::new(topic.server().as_str(), host_key));
        let c = host_checkpoint(&note, topic, &one)?;
        if hosted_here {
            if self.root_at(topic, c.size)? != Some(c.root) {
                return Err(TopicError::bad_checkpoint(
                    "the cosigned checkpoint is not of this server's log",
                ));
            }
        } else if let Err(e) = self.compare_witness(topic, &note, &one) {
            // Evidence against the hosting server stops the mirror; the cosignature itself
            // was fine, so it is kept (and answered 200).
            tracing::warn!(%topic, %origin, %e, "a witness's view contradicts this mirror");
        }
        self.keep_newest_witness(topic, origin, &note, c.size.0)
    }

    /// Cosigns the topic's newest mirrored head soon, at most once per [`COSIGN_DELAY`].
    pub(super) fn schedule_cosign(self: &Arc<Self>, topic: &TopicId) {
        if !lock(&self.cosigning).insert(topic.clone()) {
            return;
        }
        let (service, topic) = (self.clone(), topic.clone());
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(COSIGN_DELAY).await;
            lock(&service.cosigning).remove(&topic);
            if let Err(e) = service.cosign(&topic) {
                tracing::warn!(%topic, %e, "cosigning the hosting server's checkpoint");
            }
            service.recheck_witnesses(&topic).await;
        });
    }

    /// Cosigns the head of one mirrored topic per hosting server, so that each hosting server
    /// hears that this server is up (`federation-api.md` §8).
    pub async fn announce_to_hosts(&self) {
        let topics = match self.store.mirrored_topics() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%e, "listing mirrored topics");
                return;
            }
        };
        let mut hosts = HashSet::new();
        for topic in topics {
            if hosts.insert(topic.server())
                && let Err(e) = self.cosign(&topic)
            {
                tracing::warn!(%topic, %e, "announcing this server to a hosting server");
            }
        }
    }

    /// Cosigns the mirror's head and sends it to the hosting server and every other
    /// participating server.
    fn cosign(&self, topic: &TopicId) -> TopicResult<()> {
        let Some(head) = self.store.mirror_head(topic)? else {
            return Ok(());
        };
        let mut signed = SignedCheckpoint::parse(head.as_bytes())
            .map_err(|e| TopicError::internal("stored mirror head", e))?;
        let own = &self.server_name;
        let cosignature = Cosignature::sign(
            self.server_key(),
            own.as_str(),
            signed.unverified_checkpoint(),
            self.clock.now(),
        )
        .map_err(|e| TopicError::internal("cosigning", e))?;
        signed
            .add_cosignature(&cosignature)
            .map_err(|e| TopicError::internal("cosigning", e))?;
        let note = signed.to_note();
        self.store.set_witness_note(topic, own, &note)?;
        let Some(relay) = self.relay_if_on() else {
            return Ok(());
        };
        let servers = self.cosignature_destinations(topic, relay)?;
        let payload = cosignature_to_wire(&note);
        for server in servers {
            let event = Event::sign(
                own,
                &server,
                EventKind::TopicCosignature,
                Some(topic),
                payload.clone(),
                self.clock.now(),
                self.server_key(),
            );
            if let Err(e) = relay.queue(&server, event.signed_bytes()) {
                tracing::warn!(%topic, %server, %e, "queueing a cosignature");
            }
        }
        Ok(())
    }

    /// Where one cosignature goes (`federation-api.md` §9.4): the hosting server, and at most
    /// `cosign_fanout` other participating servers drawn at random among those not failing for
    /// over an hour; random each round, so gossip still reaches them all.
    fn cosignature_destinations(
        &self,
        topic: &TopicId,
        relay: &dyn super::Relay,
    ) -> TopicResult<Vec<ServerName>> {
        let own = &self.server_name;
        let host = topic.server();
        let members = self.state(topic)?;
        let mut others: Vec<ServerName> = members
            .members()
            .values()
            .map(|m| m.user.server())
            .filter(|s| s != own && *s != host)
            .collect();
        others.sort();
        others.dedup();
        others.retain(|s| relay.reachable(s));
        // A partial Fisher–Yates shuffle: the first `fanout` are a uniform sample.
        let fanout = relay.cosign_fanout().min(others.len());
        for i in 0..fanout {
            let span = (others.len() - i) as u64;
            let j = i + usize::try_from(getrandom::u64().unwrap_or(0) % span).unwrap_or(0);
            others.swap(i, j);
        }
        others.truncate(fanout);
        if host != *own {
            others.insert(0, host);
        }
        Ok(others)
    }

    /// Compares the kept witness notes that were ahead of the mirror with its log now.
    async fn recheck_witnesses(&self, topic: &TopicId) {
        let Ok(notes) = self.store.witness_notes(topic) else {
            return;
        };
        // The pinned keys when there are (tag-log.md §7.5), else the key document's.
        let Ok(host_keys) = self.host_key_set(topic, None).await else {
            return;
        };
        for (server, note) in notes {
            if server == self.server_name {
                continue;
            }
            if let Err(e) = self.compare_witness(topic, &note, &host_keys) {
                tracing::warn!(%topic, %server, %e, "a witness's view contradicts this mirror");
                return;
            }
        }
    }

    /// Keeps `server`'s cosigned note unless a larger one is kept.
    fn keep_newest_witness(
        &self,
        topic: &TopicId,
        server: &ServerName,
        note: &str,
        size: u64,
    ) -> TopicResult<()> {
        if let Some(kept) = self.store.witness_note(topic, server)?
            && let Ok(kept) = SignedCheckpoint::parse(kept.as_bytes())
            && kept.unverified_checkpoint().size.0 > size
        {
            return Ok(());
        }
        self.store.set_witness_note(topic, server, note)?;
        Ok(())
    }
}

//! The signed head of a topic's log: the hosting server's checkpoint, its signature checked with
//! that server's key, its consistency with the last checkpoint this device verified
//! (`tag-log.md` §9, RFC 9162 §2.1.4) and its age (§9.4). Every read and every write starts here.

use awc::http::Method;

use super::topic_path;
use crate::keystore::TopicRecord;
use crate::{Client, ClientError};
use rendezvous_protocol::api::{CheckpointResponse, ProofResponse};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::proof::parse_path;
use rendezvous_protocol::tlog::{
    Checkpoint, ConsistencyProof, Freshness, LogHash, LogView, SignedCheckpoint, TreeSize,
    WitnessError,
};
use rendezvous_protocol::topic::log_origin;

/// A verified head: signed by the hosting server and consistent with what this device saw.
pub(crate) struct Head {
    /// The view of the log, moved to the new checkpoint.
    pub(crate) view: LogView,
    /// The view's newest checkpoint.
    pub(crate) checkpoint: Checkpoint,
    /// The size of the stored checkpoint it was shown consistent with (`None`: first seen).
    pub(crate) consistent_with: Option<u64>,
    /// Seconds since the view's newest checkpoint was signed (0 if slightly ahead).
    pub(crate) age: u64,
    /// Whether that is more than `MAX_HEAD_AGE`.
    pub(crate) stale: bool,
}

impl Head {
    /// The head of `view` (which holds a checkpoint), its age at `now`.
    fn of(view: LogView, consistent_with: Option<u64>, now: u64) -> Result<Head, ClientError> {
        let checkpoint = view
            .latest()
            .map(|s| s.unverified_checkpoint().clone())
            .ok_or(ClientError::Witness(WitnessError::NoCheckpoint))?;
        let (age, stale) = match Freshness::of(checkpoint.time, now) {
            Freshness::Fresh { age } => (age, false),
            Freshness::Stale { age } => (age, true),
            Freshness::FromTheFuture { .. } => (0, false),
        };
        Ok(Head {
            view,
            checkpoint,
            consistent_with,
            age,
            stale,
        })
    }
}

impl Client {
    /// The view of `topic`'s log as `record` keeps it (`None` held: a view with no checkpoint).
    pub(crate) async fn held_view(
        &mut self,
        topic: &TopicId,
        record: &TopicRecord,
    ) -> Result<LogView, ClientError> {
        let keys = self.hosting_server_keys(&topic.server()).await?;
        let origin = log_origin(topic);
        Ok(match &record.checkpoint {
            Some(note) => {
                LogView::resume_with(&origin, keys, SignedCheckpoint::parse(note.as_bytes())?)?
            }
            None => LogView::with_keys(&origin, keys),
        })
    }

    /// The head this device verified last, without asking the server (a view that holds
    /// evidence follows the log no further: reads show what was verified before).
    pub(crate) async fn held_head(
        &mut self,
        topic: &TopicId,
        record: &TopicRecord,
    ) -> Result<Option<Head>, ClientError> {
        let view = self.held_view(topic, record).await?;
        match view.latest() {
            None => Ok(None),
            Some(_) => Head::of(view, None, self.now()).map(Some),
        }
    }

    /// Fetches the topic's checkpoint and checks it: the hosting server's signature, a time not
    /// more than `MAX_CLOCK_SKEW` ahead (`server_misbehaved`), and a consistency proof from the
    /// checkpoint in `record` (the last one verified) to it. Evidence is kept in the keystore
    /// and answered `log_forked`. Enforces `client-rules.md` C1 (signature under the host's
    /// key chain), C2 (time) and C3 (consistency with the persisted view).
    pub(crate) async fn verified_head(
        &mut self,
        topic: &TopicId,
        record: &TopicRecord,
    ) -> Result<Head, ClientError> {
        let answer: CheckpointResponse = self
            .authed(Method::GET, &topic_path(topic, "/checkpoint"), None)
            .await?;
        let signed = SignedCheckpoint::parse(answer.checkpoint.as_bytes())?;
        // Verified first: a checkpoint under a key the host rotated to is followed
        // (`tag-log.md` §7.6) before the held view is made with the chain.
        self.verify_host_note(&topic.server(), &signed).await?;
        let checkpoint = signed.unverified_checkpoint().clone();
        let mut view = self.held_view(topic, record).await?;
        let held = view
            .latest()
            .map(|c| c.unverified_checkpoint().size.0)
            .unwrap_or(0);
        not_from_the_future(&checkpoint, self.now())?;
        let size = checkpoint.size.0;
        let path = if held > 0 && size > held {
            self.consistency_path(topic, held, size).await?
        } else {
            Vec::new()
        };
        let proof = ConsistencyProof {
            old: TreeSize(held),
            new: TreeSize(size),
            path,
        };
        self.offer(topic, &mut view, signed, &proof)?;
        Head::of(view, record.checkpoint.as_ref().map(|_| held), self.now())
    }

    /// Offers a verified checkpoint to `view` ([`LogView::update`]); evidence is kept in the
    /// keystore and answered `log_forked`.
    pub(crate) fn offer(
        &self,
        topic: &TopicId,
        view: &mut LogView,
        signed: SignedCheckpoint,
        proof: &ConsistencyProof,
    ) -> Result<(), ClientError> {
        match view.update(signed, proof) {
            Ok(_) => Ok(()),
            Err(WitnessError::Misbehaviour(evidence)) => Err(self.forked(topic, &evidence)),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps `evidence` against `topic`'s hosting server; the `log_forked` error to answer with
    /// (a keystore fault instead when it cannot be kept: evidence is never dropped silently).
    /// `client-rules.md` C3.
    pub(crate) fn forked(
        &self,
        topic: &TopicId,
        evidence: &rendezvous_protocol::tlog::Evidence,
    ) -> ClientError {
        if let Err(e) = self.keystore.save_evidence(topic, evidence) {
            return e;
        }
        ClientError::LogForked {
            topic: topic.to_string(),
            kind: evidence.kind().to_owned(),
        }
    }

    /// The server's consistency proof between log sizes `old` and `new` of `topic`.
    pub(crate) async fn consistency_path(
        &mut self,
        topic: &TopicId,
        old: u64,
        new: u64,
    ) -> Result<Vec<LogHash>, ClientError> {
        let answer: ProofResponse = self
            .authed(
                Method::GET,
                &topic_path(topic, &format!("/proof/consistency?old={old}&new={new}")),
                None,
            )
            .await?;
        parse_path(&answer.path)
            .map_err(|e| ClientError::Misbehaved(format!("consistency proof: {e}")))
    }
}

/// Refuses a checkpoint dated more than `MAX_CLOCK_SKEW` after this device's clock
/// (`tag-log.md` §9.4): an honest host signs with its own clock, which is not that far ahead.
/// `client-rules.md` C2.
pub(crate) fn not_from_the_future(c: &Checkpoint, now: u64) -> Result<(), ClientError> {
    match Freshness::of(c.time, now) {
        Freshness::FromTheFuture { ahead } => Err(ClientError::Misbehaved(format!(
            "checkpoint of size {} is dated {ahead} s in the future (more than {} s ahead of this device's clock)",
            c.size,
            rendezvous_protocol::tlog::MAX_CLOCK_SKEW
        ))),
        _ => Ok(()),
    }
}

//! The signed head of a topic's log: the hosting server's checkpoint, its signature checked with
//! that server's key, and its consistency with the last checkpoint this device verified
//! (`tag-log.md` §9, RFC 9162 §2.1.4). Every read and every write starts here.

use awc::http::Method;

use super::topic_path;
use crate::keystore::TopicRecord;
use crate::{Client, ClientError};
use rendezvous_protocol::api::{CheckpointResponse, ProofResponse};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::proof::parse_path;
use rendezvous_protocol::tlog::{
    Checkpoint, ConsistencyProof, LogHash, LogView, SignedCheckpoint, TreeSize,
};
use rendezvous_protocol::topic::log_origin;

/// A verified head: signed by the hosting server and consistent with what this device saw.
pub(crate) struct Head {
    /// The view of the log, moved to the new checkpoint.
    pub(crate) view: LogView,
    /// The new checkpoint.
    pub(crate) checkpoint: Checkpoint,
    /// The size of the stored checkpoint it was shown consistent with (`None`: first seen).
    pub(crate) consistent_with: Option<u64>,
}

impl Client {
    /// Fetches the topic's checkpoint and checks it: the hosting server's signature, and a
    /// consistency proof from the checkpoint in `record` (the last one verified) to it.
    pub(crate) async fn verified_head(
        &mut self,
        topic: &TopicId,
        record: &TopicRecord,
    ) -> Result<Head, ClientError> {
        let host = topic.server();
        let key = self.hosting_server_key(&host).await?;
        let origin = log_origin(topic);
        let mut view = match &record.checkpoint {
            Some(note) => LogView::resume(
                &origin,
                key.clone(),
                host.as_str(),
                SignedCheckpoint::parse(note.as_bytes())?,
            )?,
            None => LogView::new(&origin, key.clone(), host.as_str()),
        };
        let held = view
            .latest()
            .map(|c| c.unverified_checkpoint().size.0)
            .unwrap_or(0);
        let answer: CheckpointResponse = self
            .authed(Method::GET, &topic_path(topic, "/checkpoint"), None)
            .await?;
        let signed = SignedCheckpoint::parse(answer.checkpoint.as_bytes())?;
        let checkpoint = signed.verify(&key, host.as_str())?.clone();
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
        view.update(signed, &proof)?;
        Ok(Head {
            view,
            checkpoint,
            consistent_with: record.checkpoint.as_ref().map(|_| held),
        })
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

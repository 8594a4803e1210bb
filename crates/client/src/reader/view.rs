//! Append answers are proofs (`tag-log.md` §9.4): the checkpoint the hosting server answers a
//! post with must include the new entry at the answered index, and it joins this device's view
//! of the log like any head: consistent with the newest checkpoint held (whichever is larger),
//! kept in the keystore. A later head without the entry is then inconsistent with a checkpoint
//! the device holds: evidence.

use super::checkpoint::not_from_the_future;
use crate::keystore::TopicRecord;
use crate::{Client, ClientError};
use rendezvous_protocol::api::AppendResponse;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{ConsistencyProof, Evidence, SignedCheckpoint, TreeSize};
use rendezvous_protocol::topic::log_origin;

/// How many append answers a topic's record keeps.
const KEPT_APPENDS: usize = 16;

impl Client {
    /// Checks an append answer for the entry whose leaf data is `leaf`: the checkpoint is
    /// signed by the hosting server, for this topic's log, not from the future, covers the
    /// answered index, and includes the entry there (inclusion proof); then it joins the
    /// persisted view ([`Self::join_view`]) and is kept with the index. `client-rules.md` C13.
    pub(crate) async fn check_append(
        &mut self,
        topic: &TopicId,
        answer: &AppendResponse,
        leaf: &[u8],
    ) -> Result<(), ClientError> {
        let host = topic.server();
        let signed = SignedCheckpoint::parse(answer.checkpoint.as_bytes())?;
        self.verify_host_note(&host, &signed).await?;
        let c = signed.unverified_checkpoint().clone();
        let index = answer.index.get();
        if c.origin != log_origin(topic) || c.size.0 <= index {
            return Err(ClientError::Misbehaved(format!(
                "append answer's checkpoint (origin {}, size {}) does not cover index {index}",
                c.origin, c.size
            )));
        }
        not_from_the_future(&c, self.now())?;
        self.check_inclusion(topic, index, leaf, &c)
            .await
            .map_err(|e| {
                ClientError::Misbehaved(format!(
                    "the append answer's checkpoint (size {}) does not include the entry at index {index}: {e}",
                    c.size
                ))
            })?;
        let mut record = self.keystore.topic(topic)?.unwrap_or_else(|| TopicRecord {
            topic: topic.to_string(),
            member: None,
            processed: 0,
            checkpoint: None,
            appends: Vec::new(),
            refused: Vec::new(),
        });
        self.join_view(topic, &mut record, signed.clone()).await?;
        record.appends.push((index, signed.to_note().into_string()));
        let excess = record.appends.len().saturating_sub(KEPT_APPENDS);
        record.appends.drain(..excess);
        self.keystore.save_topic(&record)
    }

    /// Adds a verified checkpoint to the view `record` keeps: a larger one advances it (with
    /// the log's consistency proof), an equal one must have the same root, a smaller one must be
    /// consistent with the held one (proof from its size) and not signed later (a rollback).
    /// Evidence is kept and answered `log_forked`.
    pub(crate) async fn join_view(
        &mut self,
        topic: &TopicId,
        record: &mut TopicRecord,
        signed: SignedCheckpoint,
    ) -> Result<(), ClientError> {
        let mut view = self.held_view(topic, record).await?;
        let c = signed.unverified_checkpoint().clone();
        let Some(held) = view.latest().cloned() else {
            let proof = empty(TreeSize(0), c.size);
            self.offer(topic, &mut view, signed, &proof)?;
            record.checkpoint = view.latest().map(|l| l.to_note().into_string());
            return Ok(());
        };
        let h = held.unverified_checkpoint().clone();
        if c.size >= h.size {
            let path = match h.size.0 > 0 && c.size > h.size {
                true => self.consistency_path(topic, h.size.0, c.size.0).await?,
                false => Vec::new(),
            };
            let proof = ConsistencyProof {
                old: h.size,
                new: c.size,
                path,
            };
            self.offer(topic, &mut view, signed, &proof)?;
            record.checkpoint = view.latest().map(|l| l.to_note().into_string());
            return Ok(());
        }
        // Smaller than the held head: the log may not have shrunk since (`tag-log.md` §4.2, the
        // one rule: `Evidence::between`), and the held head must extend it.
        if let Some(evidence) = Evidence::between(&held, &signed) {
            return Err(self.forked(topic, &evidence));
        }
        if c.size.0 == 0 {
            return Ok(());
        }
        let proof = ConsistencyProof {
            old: c.size,
            new: h.size,
            path: self.consistency_path(topic, c.size.0, h.size.0).await?,
        };
        if proof.verify(&c.root, &h.root).is_err() {
            return Err(self.forked(
                topic,
                &Evidence::Inconsistent {
                    old: signed,
                    new: held,
                    proof,
                },
            ));
        }
        Ok(())
    }
}

/// A proof with no hashes between two sizes (`LogView::update` needs none from the empty tree
/// or between equal sizes).
fn empty(old: TreeSize, new: TreeSize) -> ConsistencyProof {
    ConsistencyProof {
        old,
        new,
        path: Vec::new(),
    }
}

//! Inclusion of entries in the verified checkpoint's tree (RFC 9162 §2.1.3): a proof per entry
//! from the server, and for a full check the root recomputed from every leaf.

use awc::http::Method;

use std::collections::HashMap;

use super::topic_path;
use crate::{Client, ClientError};
use rendezvous_protocol::api::ProofResponse;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::proof::parse_path;
use rendezvous_protocol::tlog::{
    Checkpoint, Frontier, InclusionProof, LeafIndex, LogHash, TreeSize,
};
use rendezvous_protocol::topic::check_in_log;

/// Which entries get an inclusion proof.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Inclusion {
    /// None: building a change or a message on the current state, where the root recomputed
    /// from the snapshot's compact range and the new leaves must equal the head's root instead
    /// (the write gate, [`super::Replay::gate`]).
    Skip,
    /// Entries from this index on.
    From(u64),
}

impl Inclusion {
    /// Whether the entry at `index` gets a proof.
    pub(crate) fn covers(self, index: u64) -> bool {
        matches!(self, Inclusion::From(from) if index >= from)
    }

    /// Proofs from `index` on at the latest ([`Inclusion::Skip`] stays as it is).
    pub(crate) fn starting_by(self, index: u64) -> Self {
        match self {
            Inclusion::From(from) => Inclusion::From(from.min(index)),
            Inclusion::Skip => Inclusion::Skip,
        }
    }
}

/// The root recomputed from every leaf in order; given up at the first gap or unknown leaf
/// (`client-rules.md` C5 (b)).
pub(super) struct RootCheck {
    frontier: Option<Frontier>,
    expected: u64,
}

impl RootCheck {
    /// A check that goes on from `frontier` (the compact range of the first
    /// `frontier.size()` leaves, from a verified snapshot; empty to check from index 0).
    pub(super) fn resume(frontier: Frontier) -> Self {
        RootCheck {
            expected: frontier.size().0,
            frontier: Some(frontier),
        }
    }

    /// The compact range so far (`None` once given up).
    pub(super) fn frontier(&self) -> Option<&Frontier> {
        self.frontier.as_ref()
    }

    /// Adds the entry at `index`: its leaf, or `None` when the entry did not decode.
    pub(super) fn push(&mut self, index: u64, leaf: Option<&[u8]>) {
        if index != self.expected {
            // A gap: the root can no longer be recomputed.
            self.frontier = None;
        }
        self.expected = index + 1;
        match (&mut self.frontier, leaf) {
            (Some(f), Some(l)) => {
                if f.append(l).is_err() {
                    self.frontier = None;
                }
            }
            _ => self.frontier = None,
        }
    }

    /// Whether the recomputed root of a tree of `size` leaves is `root` (`None`: not every leaf
    /// was known).
    pub(super) fn matches(&self, size: u64, root: &LogHash) -> Option<bool> {
        self.frontier
            .as_ref()
            .filter(|f| f.size().0 == size)
            .map(|f| f.root() == *root)
    }
}

impl Client {
    /// Checks that the entry at `index` with leaf data `leaf` is in `checkpoint`'s tree, with
    /// the server's inclusion proof (`client-rules.md` C5 (a): the leaf data is the one this
    /// device computed).
    pub(crate) async fn check_inclusion(
        &mut self,
        topic: &TopicId,
        index: u64,
        leaf: &[u8],
        checkpoint: &Checkpoint,
    ) -> Result<(), ClientError> {
        let proof = self.inclusion_proof(topic, index, checkpoint).await?;
        check_in_log(topic, leaf, &proof, checkpoint)?;
        Ok(())
    }

    /// The server's inclusion proof for `index` in `checkpoint`'s tree (not checked).
    async fn inclusion_proof(
        &mut self,
        topic: &TopicId,
        index: u64,
        checkpoint: &Checkpoint,
    ) -> Result<InclusionProof, ClientError> {
        let size = checkpoint.size.0;
        let answer: ProofResponse = self
            .authed(
                Method::GET,
                &topic_path(
                    topic,
                    &format!("/proof/inclusion?index={index}&size={size}"),
                ),
                None,
            )
            .await?;
        Ok(InclusionProof {
            index: LeafIndex(index),
            size: TreeSize(size),
            path: parse_path(&answer.path)
                .map_err(|e| ClientError::Misbehaved(format!("inclusion proof: {e}")))?,
        })
    }

    /// The authentic leaf hash of the entry at `index` that this device lacks (missing,
    /// malformed or served altered), so that its roots keep following the log (`tag-log.md`
    /// §9.2): the level-0 sibling in its neighbour's inclusion proof, once that proof verifies
    /// against the head with the neighbour's own leaf (`leaves`, computed by this device).
    /// `None` when the neighbour is past the end, missing too, or its proof fails.
    pub(crate) async fn sibling_leaf_hash(
        &mut self,
        topic: &TopicId,
        index: u64,
        leaves: &HashMap<u64, Vec<u8>>,
        checkpoint: &Checkpoint,
    ) -> Option<LogHash> {
        let neighbour = index ^ 1;
        if neighbour >= checkpoint.size.0 {
            return None;
        }
        let leaf = leaves.get(&neighbour)?;
        let proof = self
            .inclusion_proof(topic, neighbour, checkpoint)
            .await
            .ok()?;
        check_in_log(topic, leaf, &proof, checkpoint).ok()?;
        proof.path.first().copied()
    }
}

//! The views of peers' directories and the witness rounds (`directory.md` §5).

use rendezvous_protocol::api::{
    Body, DirectoryCheckpointResponse, DirectoryCosignatureRequest, ProofResponse,
};
use rendezvous_protocol::directory::{directory_origin, update_view};
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::tlog::{HostKeys, LogHash, LogView, SignedCheckpoint};
use rendezvous_protocol::wire::encode;

use super::{
    DIRECTORY_PATH, DirectoryWitness, MAX_CHECKPOINT_ANSWER, MAX_PROOF_ANSWER, WitnessError,
};
use crate::directory::log::add_line_keeping_newest;
use crate::federation::keys::PeerKeys;

/// A view loaded for witnessing, with the keys it checks with.
pub(super) struct HeldView {
    pub(super) view: LogView,
}

impl HeldView {
    /// The size of the checkpoint held (0 for none).
    pub(super) fn size(&self) -> u64 {
        self.view
            .latest()
            .map_or(0, |l| l.unverified_checkpoint().size.0)
    }
}

impl DirectoryWitness {
    /// Witnesses every peer once (§5 steps 1–4); failures are logged and retried next round.
    pub async fn round(&self) {
        let peers = match self.peers() {
            Ok(peers) => peers,
            Err(e) => {
                tracing::warn!(%e, "directory witness: listing peers");
                return;
            }
        };
        for peer in peers {
            match self.witness(&peer).await {
                Ok(size) => tracing::debug!(%peer, size, "witnessed a peer's directory"),
                Err(WitnessError::Forked { .. }) => {}
                Err(e @ WitnessError::Stale { .. }) => tracing::info!(%peer, %e, "skipped"),
                Err(e) => tracing::info!(%peer, %e, "witnessing a peer's directory"),
            }
        }
    }

    /// Runs [`Self::round`] every `federation.directory_witness_secs`.
    pub async fn run(self: std::sync::Arc<Self>) {
        let mut every = actix_web::rt::time::interval(self.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.round().await;
        }
    }

    /// One witnessing of `peer`: fetch its checkpoint, follow it, cosign it. Returns the size
    /// witnessed.
    pub async fn witness(&self, peer: &ServerName) -> Result<u64, WitnessError> {
        let lock = self.lock_of(peer);
        let _guard = lock.lock().await;
        let mut held = self.load(peer, None).await?;
        let path = format!("{DIRECTORY_PATH}/checkpoint");
        let body = self.client.get(peer, &path, MAX_CHECKPOINT_ANSWER).await?;
        let answer =
            DirectoryCheckpointResponse::from_cbor(&body).map_err(|e| unverified(peer, e))?;
        let note = SignedCheckpoint::parse(answer.checkpoint.as_bytes())
            .map_err(|e| unverified(peer, e))?;
        self.advance(peer, &mut held, &note).await?;
        self.cosign(peer, &held).await?;
        Ok(held.size())
    }

    /// The held view of `peer`'s directory (under its lock): the pinned keys grown by the
    /// rotations of its key document, the checkpoint witnessed last, the evidence if any
    /// (then [`WitnessError::Forked`]). `note`, when given, is one the peer signed that the
    /// pinned keys may not know yet (its key document is then fetched again).
    pub(super) async fn load(
        &self,
        peer: &ServerName,
        note: Option<&SignedCheckpoint>,
    ) -> Result<HeldView, WitnessError> {
        let record = self.store.directory_witness(peer)?;
        if let Some(evidence) = &record.evidence {
            let kind = rendezvous_protocol::tlog::Evidence::from_cbor(evidence)
                .map(|e| e.kind().to_owned())
                .unwrap_or_else(|_| "evidence".into());
            return Err(WitnessError::Forked {
                server: peer.clone(),
                kind,
            });
        }
        let pinned = match &record.keys {
            Some(wire) => Some(
                HostKeys::from_wire(wire)
                    .map_err(|_| crate::store::StoreError::Corrupt { table: "directory" })?,
            ),
            None => None,
        };
        let unknown = |keys: &HostKeys| note.is_some_and(|n| keys.verify(n).is_err());
        let refresh = pinned.as_ref().is_some_and(unknown);
        let doc = self.peer_keys.server_keys(peer, refresh).await?;
        let offered = doc.host_keys().map_err(|e| unverified(peer, e))?;
        let keys = match pinned {
            Some(mut keys) => {
                if let Err(e) = keys.learn(offered.rotations()) {
                    tracing::warn!(%peer, %e, "a peer's key rotations do not continue its pinned directory keys");
                }
                keys
            }
            None => offered,
        };
        let origin = directory_origin(peer);
        let view = match &record.note {
            Some(note) => {
                let latest = SignedCheckpoint::parse(note.as_bytes())
                    .map_err(|_| crate::store::StoreError::Corrupt { table: "directory" })?;
                LogView::resume_with(&origin, keys, latest).map_err(|e| {
                    WitnessError::Internal(format!("resuming the view of {peer}: {e}"))
                })?
            }
            None => LogView::with_keys(&origin, keys),
        };
        Ok(HeldView { view })
    }

    /// Brings the held view to `note` (§5 steps 2–3): a consistency proof from the held size
    /// when it is larger, then `update_view` (the clients' rule). A contradiction is kept as
    /// evidence for good; the view is persisted.
    pub(super) async fn advance(
        &self,
        peer: &ServerName,
        held: &mut HeldView,
        note: &SignedCheckpoint,
    ) -> Result<(), WitnessError> {
        let new = note.unverified_checkpoint().size.0;
        let old = held.size();
        let proof = match old > 0 && new > old {
            true => self.consistency(peer, old, new).await?,
            false => Vec::new(),
        };
        let text = note.to_note().to_string();
        match update_view(&mut held.view, &text, &proof, &[], false) {
            Ok(_) => {}
            Err(e) => {
                if let Some(evidence) = held.view.evidence().cloned() {
                    self.keep_evidence(peer, &evidence).await?;
                    return Err(WitnessError::Forked {
                        server: peer.clone(),
                        kind: evidence.kind().to_owned(),
                    });
                }
                return Err(match e {
                    rendezvous_protocol::directory::DirectoryError::Rollback { reason, .. } => {
                        WitnessError::Stale {
                            server: peer.clone(),
                            reason,
                        }
                    }
                    e => unverified(peer, e),
                });
            }
        }
        self.persist(peer, held, None)?;
        Ok(())
    }

    /// `GET …/directory/consistency?old&new` of `peer`.
    pub(super) async fn consistency(
        &self,
        peer: &ServerName,
        old: u64,
        new: u64,
    ) -> Result<Vec<LogHash>, WitnessError> {
        let path = format!("{DIRECTORY_PATH}/consistency?old={old}&new={new}");
        let body = self.client.get(peer, &path, MAX_PROOF_ANSWER).await?;
        let answer = ProofResponse::from_cbor(&body).map_err(|e| unverified(peer, e))?;
        answer
            .path
            .iter()
            .map(|h| LogHash::from_slice(h).map_err(|e| unverified(peer, e)))
            .collect()
    }

    /// §5 step 4: cosigns the view's checkpoint (this server's name and Server Key, time
    /// now) and sends it to `peer`; records when.
    pub(super) async fn cosign(
        &self,
        peer: &ServerName,
        held: &HeldView,
    ) -> Result<(), WitnessError> {
        let now = self.clock.now();
        let cosignature = held
            .view
            .cosign(&self.identity.server_key, self.name.as_str(), now)
            .map_err(|e| WitnessError::Internal(e.to_string()))?;
        let mut note = held
            .view
            .latest()
            .ok_or_else(|| WitnessError::Internal("no checkpoint to cosign".into()))?
            .clone();
        add_line_keeping_newest(&mut note, &cosignature, peer.as_str())
            .map_err(|e| WitnessError::Internal(e.to_string()))?;
        let request = DirectoryCosignatureRequest {
            note: note.to_note().to_string(),
        };
        let path = format!("{DIRECTORY_PATH}/cosignature");
        self.client
            .post(peer, &path, encode(&request), MAX_CHECKPOINT_ANSWER)
            .await?;
        self.persist(peer, held, Some(now))?;
        Ok(())
    }

    /// Writes the view (its checkpoint and keys), and when this server cosigned it.
    fn persist(
        &self,
        peer: &ServerName,
        held: &HeldView,
        cosigned: Option<u64>,
    ) -> Result<(), WitnessError> {
        let Some(latest) = held.view.latest() else {
            return Ok(());
        };
        // Only the peer's own lines: cosignatures of others are not this server's to keep.
        let own = latest.lines_of(peer.as_str()).to_note().to_string();
        self.store
            .set_directory_witness(peer, &own, &held.view.keys().to_wire(), cosigned)?;
        Ok(())
    }

    /// Keeps evidence against `peer`'s directory, durably, and says so at error (§5).
    pub(super) async fn keep_evidence(
        &self,
        peer: &ServerName,
        evidence: &rendezvous_protocol::tlog::Evidence,
    ) -> Result<(), WitnessError> {
        tracing::error!(%peer, kind = evidence.kind(), "a peer's directory contradicts itself: evidence kept, no more cosignatures for it");
        self.store
            .set_directory_evidence(peer, &evidence.to_cbor())?;
        self.store.sync().await?;
        Ok(())
    }
}

/// A peer's answer that does not verify, with the check that failed.
pub(super) fn unverified(peer: &ServerName, e: impl std::fmt::Display) -> WitnessError {
    WitnessError::Unverified {
        server: peer.clone(),
        check: e.to_string(),
    }
}

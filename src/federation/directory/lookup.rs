//! A remote user's identity, checked against this server's view of the user's homeserver's
//! directory (`directory.md` §4, §6.1 steps 1–5) and cosigned by this server: what the client
//! API relays, and what the topic service checks members' Identity Keys with.

use rendezvous_protocol::api::IdentityResponse;
use rendezvous_protocol::directory::{LookupCheck, check_lookup, directory_origin};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::tlog::{
    ConsistencyProof, Cosignature, Evidence, LogView, SignedCheckpoint, TreeSize,
};
use rendezvous_protocol::wire::decode_versioned;

use super::witness::unverified;
use super::{DirectoryWitness, WitnessError};
use crate::directory::log::add_line_keeping_newest;
use crate::federation::client::{
    MAX_IDENTITY_ANSWER, QueryError, RemoteIdentity, USERS_PATH, encode_segment,
};
use rendezvous_protocol::api::ErrorCode;

/// A remote user's identity that passed the directory check.
#[derive(Debug, Clone)]
pub struct CheckedIdentity {
    /// The registration, checked (it verifies under its IK and names the user).
    pub identity: RemoteIdentity,
    /// The answer to pass on: the homeserver's, with this server's fresh cosignature line on
    /// its checkpoint.
    pub answer: IdentityResponse,
}

impl DirectoryWitness {
    /// `user`'s identity from their homeserver (passing `known` on), checked with
    /// `check_lookup` against this server's view of that server's directory, which is
    /// witnessed first when the answer's checkpoint is newer than it (§5.1 steps 2–4).
    pub async fn lookup(&self, user: &UserId, known: u64) -> Result<CheckedIdentity, WitnessError> {
        let server = user.server();
        let path = format!(
            "{USERS_PATH}/{}/identity?known={known}",
            encode_segment(user.as_str())
        );
        let body = self.query_witnessing(&server, &path).await?;
        let mut answer: IdentityResponse =
            decode_versioned(&body, MAX_IDENTITY_ANSWER).map_err(|e| unverified(&server, e))?;
        let identity = RemoteIdentity::check(user, answer.registration.clone())
            .map_err(|e| unverified(&server, format!("registration: {e}")))?;
        let note = SignedCheckpoint::parse(answer.proof.checkpoint.as_bytes())
            .map_err(|e| unverified(&server, format!("checkpoint: {e}")))?;
        let mut view = self.view_at(user, &note).await?;
        let check = LookupCheck {
            user,
            witnesses: &[],
            witness_required: false,
            accepted: None,
            verified: false,
        };
        check_lookup(&mut view, &answer.registration, &answer.proof, &check)
            .map_err(|e| unverified(&server, e))?;
        // This server's own line, fresh: it saw this checkpoint consistent with its view now.
        let mut cosigned = note.clone();
        let own = Cosignature::sign(
            &self.identity.server_key,
            self.name.as_str(),
            note.unverified_checkpoint(),
            self.clock.now(),
        )
        .map_err(|e| WitnessError::Internal(e.to_string()))?;
        add_line_keeping_newest(&mut cosigned, &own, server.as_str())
            .map_err(|e| WitnessError::Internal(e.to_string()))?;
        answer.proof.checkpoint = cosigned.to_note().to_string();
        Ok(CheckedIdentity { identity, answer })
    }

    /// The identity query `path` to `server`; while it answers `directory_pending` (the user's
    /// entry is not in a witnessed checkpoint yet), this server witnesses `server`'s newest
    /// checkpoint on demand (§5.1 steps 1–4: its cosignature makes that checkpoint the served
    /// one) and asks again, at most twice, the second time in the next second (a checkpoint is
    /// signed at most once a second, §2.3).
    async fn query_witnessing(
        &self,
        server: &rendezvous_protocol::ids::ServerName,
        path: &str,
    ) -> Result<Vec<u8>, WitnessError> {
        let pending = |e: &QueryError| matches!(e, QueryError::Refused { code, .. } if code == ErrorCode::DirectoryPending.as_str());
        let mut attempt = 0;
        loop {
            match self.client.get(server, path, MAX_IDENTITY_ANSWER).await {
                Err(e) if pending(&e) && attempt < 2 => {
                    if attempt == 1 {
                        actix_web::rt::time::sleep(std::time::Duration::from_millis(1100)).await;
                    }
                    attempt += 1;
                    self.witness(server).await?;
                }
                answer => return Ok(answer?),
            }
        }
    }

    /// A view of `user`'s server's directory at exactly `note`'s checkpoint, consistent with
    /// this server's witness view: the witness view itself, advanced (and cosigned, §4) when
    /// `note` is newer; or, for an older `note`, a view of it once a consistency proof from it
    /// to the held checkpoint verifies.
    async fn view_at(
        &self,
        user: &UserId,
        note: &SignedCheckpoint,
    ) -> Result<LogView, WitnessError> {
        let server = user.server();
        let lock = self.lock_of(&server);
        let _guard = lock.lock().await;
        let mut held = self.load(&server, Some(note)).await?;
        let c = note.unverified_checkpoint();
        let size = held.size();
        if c.size.0 >= size {
            self.advance(&server, &mut held, note).await?;
            if c.size.0 > size
                && let Err(e) = self.cosign(&server, &held).await
            {
                tracing::info!(%server, %e, "cosigning a peer's directory on demand");
            }
            return Ok(held.view);
        }
        let keys = held.view.keys().clone();
        let view = LogView::resume_with(&directory_origin(&server), keys, note.clone())
            .map_err(|e| unverified(&server, format!("checkpoint: {e}")))?;
        let Some(latest) = held.view.latest().cloned() else {
            return Err(WitnessError::Internal(
                "a held view without a checkpoint".into(),
            ));
        };
        // tag-log.md §8.1: smaller yet signed later than the checkpoint witnessed is a rollback.
        if let Some(evidence) = Evidence::between(&latest, note) {
            return Err(self.found(&server, evidence).await);
        }
        let path = self.consistency(&server, c.size.0, size).await?;
        let proof = ConsistencyProof {
            old: c.size,
            new: TreeSize(size),
            path,
        };
        // RFC 9162 §2.1.4.2: the older checkpoint must be a prefix of the one witnessed.
        if c.size.0 > 0
            && proof
                .verify(&c.root, &latest.unverified_checkpoint().root)
                .is_err()
        {
            let evidence = Evidence::Inconsistent {
                old: note.clone(),
                new: latest,
                proof,
            };
            return Err(self.found(&server, evidence).await);
        }
        Ok(view)
    }

    /// Keeps `evidence` against `server`'s directory (§5) and returns the error that says so; a
    /// storage fault keeping it is told as such.
    async fn found(
        &self,
        server: &rendezvous_protocol::ids::ServerName,
        evidence: Evidence,
    ) -> WitnessError {
        match self.keep_evidence(server, &evidence).await {
            Ok(()) => WitnessError::Forked {
                server: server.clone(),
                kind: evidence.kind().to_owned(),
            },
            Err(e) => e,
        }
    }
}

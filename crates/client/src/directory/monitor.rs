//! Self-monitoring (`directory.md` §6.3): the device reads every entry its homeserver appended
//! to its directory since the last pass, rebuilds the root ([`MonitorPass`]), and keeps an
//! alarm with evidence for every entry that binds its user to a key it does not hold.

use awc::http::Method;

use super::AlarmEvidence;
use crate::{Client, ClientError};
use rendezvous_protocol::api::{
    DirectoryCheckpointResponse, DirectoryEntriesResponse, ProofResponse,
};
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::directory::{
    MAX_ENTRIES_PAGE, MONITOR_EVERY, MONITOR_MAX_AGE, MonitorPass, MonitorState, update_view,
};
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::tlog::{LogHash, SignedCheckpoint};

/// An alarm not yet acknowledged (`directory_foreign_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryAlarm {
    /// The homeserver.
    pub server: String,
    /// The entry's index.
    pub index: u64,
    /// The key it binds to this user (hex).
    pub identity_key: String,
    /// Where its evidence is kept.
    pub evidence: String,
}

/// What a monitoring pass found.
#[derive(Debug, Clone, Default)]
pub struct MonitorSummary {
    /// The homeserver.
    pub server: String,
    /// The checkpoint's size the pass ended at.
    pub size: u64,
    /// Entries read in this pass.
    pub checked: u64,
    /// Witnesses whose cosignature verified on the checkpoint.
    pub witnessed_by: Vec<String>,
    /// Seconds since the newest witness cosignature, when there is one.
    pub witness_age: Option<u64>,
    /// Whether that is more than `MONITOR_MAX_AGE` (`directory_stale`).
    pub stale: bool,
    /// Entries that break a rule (`directory_invalid_entry`): `(index, why)`.
    pub invalid: Vec<(u64, String)>,
    /// New alarms of this pass.
    pub new_alarms: Vec<u64>,
    /// Rotations of this user by another device whose new key this device has not received
    /// yet (`directory.md` §6.3 step 3): `(index, new key hex)`. While there is one, the pass's
    /// state is not kept: the next pass reads those entries again.
    pub pending_rotations: Vec<(u64, String)>,
}

impl Client {
    /// Runs a monitoring pass if the last one is older than `MONITOR_EVERY` (recorded in the
    /// keystore): `None` when none was due.
    pub async fn monitor_if_due(&mut self) -> Result<Option<MonitorSummary>, ClientError> {
        let record = self.keystore.directory_record(&self.server)?;
        if self.now() < record.monitored_at.saturating_add(MONITOR_EVERY) {
            return Ok(None);
        }
        self.monitor_directory().await.map(Some)
    }

    /// One self-monitoring pass over the homeserver's directory (`directory.md` §6.3).
    pub async fn monitor_directory(&mut self) -> Result<MonitorSummary, ClientError> {
        let server = self.server.clone();
        let mut view = self.directory_view(&server).await?;
        let held = view.latest().map(|l| l.to_note().into_string());
        let answer: DirectoryCheckpointResponse = self
            .authed(Method::GET, "/v1/directory/checkpoint", None)
            .await?;
        let mut record = self.keystore.directory_record(&server)?;
        record.federated = answer.witnessed;
        record.federated_known = true;
        self.keystore.save_directory_record(&server, &record)?;
        let note = answer.checkpoint;
        let consistency = self.directory_consistency(&view, &note).await?;
        let (witnesses, required) = self.directory_witnesses(&server, &note).await?;
        let result = update_view(&mut view, &note, &consistency, &witnesses, required);
        self.save_directory_view(&server, &view)?;
        let (signed, witnessed_by) = result?;
        self.note_witnessed(&server, &witnessed_by)?;
        let checkpoint = signed.unverified_checkpoint().clone();
        let mut record = self.keystore.directory_record(&server)?;
        let state = MonitorState {
            next: record.monitor_next,
            frontier: record.frontier()?,
        };
        // directory.md §6.3 step 3: the current IK and the ones this device rotated from.
        let keys = self.own_identity_keys()?;
        let user = self.user.clone();
        let mut pass = MonitorPass::start(&state, &user, &keys);
        while pass.next() < checkpoint.size.0 {
            let next = pass.next();
            let limit = (checkpoint.size.0 - next).min(MAX_ENTRIES_PAGE as u64);
            let page: DirectoryEntriesResponse = self
                .authed(
                    Method::GET,
                    &format!("/v1/directory/entries?from={next}&limit={limit}"),
                    None,
                )
                .await?;
            let entries: Vec<Vec<u8>> = page.entries.into_iter().map(|e| e.into_vec()).collect();
            if entries.is_empty() {
                break;
            }
            pass.feed(page.first, &entries)?;
        }
        let (state, report) = pass.finish(&checkpoint)?;
        let new_note = signed.to_note().into_string();
        for alarm in &report.alarms {
            let proof = self
                .directory_proof(alarm.index, checkpoint.size.0)
                .await
                .unwrap_or_default();
            let held = held.as_deref().unwrap_or(&new_note);
            let evidence = AlarmEvidence::new(held, &new_note, alarm.index, &alarm.entry, &proof);
            self.keystore
                .save_directory_alarm(&server, alarm.index, &evidence.to_cbor())?;
        }
        // A rotation whose key is still in the inbox: read its entry again next time, when
        // the key (`rdv sync`) has arrived.
        if report.pending_rotations.is_empty() {
            record.set_frontier(&state.frontier);
            record.monitored_at = self.now();
            self.keystore.save_directory_record(&server, &record)?;
        }
        let witness_age = newest_cosignature(&signed, &witnesses, &witnessed_by)
            .map(|t| self.now().saturating_sub(t));
        Ok(MonitorSummary {
            server: server.to_string(),
            size: checkpoint.size.0,
            checked: report.checked,
            witnessed_by,
            witness_age,
            stale: witness_age.is_some_and(|a| a > MONITOR_MAX_AGE),
            invalid: report.invalid,
            new_alarms: report.alarms.iter().map(|a| a.index).collect(),
            pending_rotations: report
                .pending_rotations
                .iter()
                .map(|(i, k)| {
                    (
                        *i,
                        rendezvous_protocol::crypto::sign::hex_string(k.as_bytes()),
                    )
                })
                .collect(),
        })
    }

    /// The consistency proof from the held checkpoint's size to `note`'s (empty when there is
    /// nothing to prove: no held checkpoint, the same size, or a smaller one).
    async fn directory_consistency(
        &mut self,
        view: &rendezvous_protocol::tlog::LogView,
        note: &str,
    ) -> Result<Vec<LogHash>, ClientError> {
        let held = view
            .latest()
            .map_or(0, |l| l.unverified_checkpoint().size.0);
        let new = SignedCheckpoint::parse(note.as_bytes())
            .map(|s| s.unverified_checkpoint().size.0)
            .map_err(ClientError::Checkpoint)?;
        if held == 0 || new <= held {
            return Ok(Vec::new());
        }
        let proof: ProofResponse = self
            .authed(
                Method::GET,
                &format!("/v1/directory/consistency?old={held}&new={new}"),
                None,
            )
            .await?;
        to_hashes(proof)
    }

    /// The inclusion proof of entry `index` at `size` (`GET /v1/directory/proof`).
    async fn directory_proof(
        &mut self,
        index: u64,
        size: u64,
    ) -> Result<Vec<LogHash>, ClientError> {
        let proof: ProofResponse = self
            .authed(
                Method::GET,
                &format!("/v1/directory/proof?index={index}&size={size}"),
                None,
            )
            .await?;
        to_hashes(proof)
    }

    /// The alarms kept for the homeserver's directory and not acknowledged.
    pub fn directory_alarms(&self) -> Result<Vec<DirectoryAlarm>, ClientError> {
        let server = self.server.clone();
        let record = self.keystore.directory_record(&server)?;
        let mut out = Vec::new();
        for (index, path, bytes) in self.keystore.directory_alarms(&server)? {
            if record.acked.contains(&index) {
                continue;
            }
            let evidence =
                AlarmEvidence::from_cbor(&bytes).map_err(|e| ClientError::corrupt(&path, e))?;
            let identity_key = evidence
                .entry()
                .map(|e| rendezvous_protocol::crypto::sign::hex_string(e.identity_key.as_bytes()))
                .unwrap_or_default();
            out.push(DirectoryAlarm {
                server: server.to_string(),
                index,
                identity_key,
                evidence: path.display().to_string(),
            });
        }
        Ok(out)
    }

    /// Acknowledges the alarm of entry `index` (`rdv directory ack`): it is no longer shown.
    pub fn ack_directory_alarm(&self, index: u64) -> Result<(), ClientError> {
        let server: ServerName = self.server.clone();
        if !self
            .keystore
            .directory_alarms(&server)?
            .iter()
            .any(|(i, _, _)| *i == index)
        {
            return Err(ClientError::InvalidInput(format!(
                "no directory alarm for entry {index} (`rdv directory check` lists them)"
            )));
        }
        let mut record = self.keystore.directory_record(&server)?;
        if !record.acked.contains(&index) {
            record.acked.push(index);
            self.keystore.save_directory_record(&server, &record)?;
        }
        Ok(())
    }
}

fn to_hashes(proof: ProofResponse) -> Result<Vec<LogHash>, ClientError> {
    proof
        .path
        .iter()
        .map(|h| {
            LogHash::from_slice(h)
                .map_err(|e| ClientError::Misbehaved(format!("directory proof hash: {e}")))
        })
        .collect()
}

/// The time of the newest verifying cosignature of the witnesses that cosigned.
fn newest_cosignature(
    signed: &SignedCheckpoint,
    witnesses: &[(String, ServerPublicKey)],
    witnessed_by: &[String],
) -> Option<u64> {
    witnesses
        .iter()
        .filter(|(name, _)| witnessed_by.contains(name))
        .filter_map(|(name, key)| signed.cosignature(key, name).ok())
        .map(|c| c.time)
        .max()
}

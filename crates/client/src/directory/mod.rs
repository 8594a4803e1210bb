//! The client's side of the identity directory (`federation-spec/directory.md` §6, §7): per
//! server, a view of its directory log, the bindings accepted for its users, and for the
//! homeserver the self-monitoring state. Every rule is the protocol's
//! ([`rendezvous_protocol::directory`]: `check_lookup`, `update_view`, `MonitorPass`,
//! `safety_code`); this module fetches, persists and reports.
//!
//! - `lookup`: accepting another user's IK (§6.1), and the roster check's lookups (§6.4);
//! - `monitor`: self-monitoring of the homeserver's directory (§6.3) and its alarms;
//! - `contacts`: verification codes and contact states (§7).
//!
//! The keystore files are described in [`crate::keystore`] (`directory/<server>/…`).

mod alarm;
mod contacts;
mod lookup;
mod monitor;

#[cfg(test)]
mod tests;

pub use alarm::AlarmEvidence;
pub use contacts::{Contact, SafetyCode};
pub use lookup::Rotation;
pub use monitor::{DirectoryAlarm, MonitorSummary};

use awc::http::Method;

use crate::{Client, ClientError};
use rendezvous_protocol::api::DirectoryCheckpointResponse;
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::directory::directory_origin;
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::tlog::{LogView, SignedCheckpoint};

impl Client {
    /// This device's view of `server`'s directory (`directory.md` §6.2): the held checkpoint
    /// and any evidence, checked again with the server's keys (the homeserver's from the
    /// config, another's as followed from its key document). A held note that no known key
    /// signed makes the device follow the server's rotations once.
    pub(crate) async fn directory_view(
        &mut self,
        server: &ServerName,
    ) -> Result<LogView, ClientError> {
        let origin = directory_origin(server);
        let keys = self.hosting_server_keys(server).await?;
        let note = self.keystore.directory_note(server)?;
        let mut view = match &note {
            None => LogView::with_keys(&origin, keys),
            Some(note) => {
                let signed = SignedCheckpoint::parse(note.as_bytes())
                    .map_err(|e| ClientError::corrupt(format!("directory/{server}/view"), e))?;
                match LogView::resume_with(&origin, keys, signed.clone()) {
                    Ok(view) => view,
                    Err(_) => {
                        let keys = self.follow_rotations(server).await?;
                        LogView::resume_with(&origin, keys, signed).map_err(|e| {
                            ClientError::corrupt(format!("directory/{server}/view"), e)
                        })?
                    }
                }
            }
        };
        if let Some(evidence) = self.keystore.directory_evidence(server)?.into_iter().next() {
            view.restore_evidence(evidence).map_err(|e| {
                ClientError::corrupt(format!("directory/{server}/evidence-0.cbor"), e)
            })?;
        }
        Ok(view)
    }

    /// Keeps the view's checkpoint and any evidence it found.
    pub(crate) fn save_directory_view(
        &self,
        server: &ServerName,
        view: &LogView,
    ) -> Result<(), ClientError> {
        if let Some(latest) = view.latest() {
            self.keystore
                .save_directory_note(server, latest.to_note().as_str())?;
        }
        if let Some(evidence) = view.evidence() {
            self.keystore.save_directory_evidence(server, evidence)?;
        }
        Ok(())
    }

    /// The witnesses whose cosignature counts on `server`'s directory checkpoint `note`, and
    /// whether one is required (`directory.md` §6.1 step 2): for another server, this
    /// device's homeserver, always; for the homeserver, the cosigners named on the note whose
    /// keys the homeserver gives (`GET /v1/servers/{name}/keys`), required when the server
    /// says it is witnessed or a witness was seen before.
    pub(crate) async fn directory_witnesses(
        &mut self,
        server: &ServerName,
        note: &str,
    ) -> Result<(Vec<(String, ServerPublicKey)>, bool), ClientError> {
        if *server != self.server {
            let home = self.server.clone();
            let keys = self.hosting_server_keys(&home).await?;
            return Ok((vec![(home.to_string(), keys.current().clone())], true));
        }
        let mut record = self.keystore.directory_record(server)?;
        if !record.federated_known {
            // Whether a witness is required depends on what the server says of itself.
            let answer: DirectoryCheckpointResponse = self
                .authed(Method::GET, "/v1/directory/checkpoint", None)
                .await?;
            record = self.keystore.directory_record(server)?;
            record.federated = answer.witnessed;
            record.federated_known = true;
            self.keystore.save_directory_record(server, &record)?;
        }
        let mut witnesses = Vec::new();
        if let Ok(signed) = SignedCheckpoint::parse(note.as_bytes()) {
            let names: Vec<String> = signed
                .signer_names()
                .into_iter()
                .filter(|n| *n != server.as_str())
                .map(str::to_owned)
                .collect();
            for name in names {
                let Ok(witness) = name.parse::<ServerName>() else {
                    continue;
                };
                // A cosigner whose key cannot be learned is not counted (nor a failure).
                if let Ok(keys) = self.hosting_server_keys(&witness).await
                    && !witnesses.iter().any(|(n, _)| *n == name)
                {
                    witnesses.push((name, keys.current().clone()));
                }
            }
        }
        Ok((witnesses, record.federated || record.witness_seen))
    }

    /// Marks that a witness cosignature verified on `server`'s directory (sticky).
    pub(crate) fn note_witnessed(
        &self,
        server: &ServerName,
        witnessed_by: &[String],
    ) -> Result<(), ClientError> {
        if witnessed_by.is_empty() {
            return Ok(());
        }
        let mut record = self.keystore.directory_record(server)?;
        if !record.witness_seen {
            record.witness_seen = true;
            self.keystore.save_directory_record(server, &record)?;
        }
        Ok(())
    }
}

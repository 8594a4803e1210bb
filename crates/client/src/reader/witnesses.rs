//! The other views of a topic's log (`client-api.md` §6 `witnesses`, `federation-api.md` §9.4):
//! the hosting server's current head, this server's mirror and every cosigned checkpoint, each
//! compared with the head this device verified. Any contradiction means some server was shown
//! another log.

use awc::http::Method;

use super::{WitnessReport, topic_path};
use crate::{Client, ClientError};
use rendezvous_protocol::api::WitnessesResponse;
use rendezvous_protocol::crypto::ServerPublicKey;
use rendezvous_protocol::federation::topic_events::MirrorEvidence;
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::{
    Checkpoint, ConsistencyProof, LogView, SignedCheckpoint, TreeSize,
};
use rendezvous_protocol::topic::log_origin;

/// A proof between two checkpoints of the same size (not consulted by `LogView::update`).
fn empty_proof(size: TreeSize) -> ConsistencyProof {
    ConsistencyProof {
        old: size,
        new: size,
        path: Vec::new(),
    }
}

impl Client {
    /// Compares the verified head with the hosting server's current head, this server's
    /// mirror and every cosigned checkpoint: equal sizes must have equal roots, a smaller
    /// checkpoint must be consistent with the verified head (proof from this server's log),
    /// and cosignatures must verify with their servers' keys. Without a verified head (the
    /// server stopped following the log), only signatures and the server's evidence are checked.
    pub(crate) async fn check_witnesses(
        &mut self,
        topic: &TopicId,
        view: Option<&LogView>,
    ) -> Result<WitnessReport, ClientError> {
        let answer: WitnessesResponse = self
            .authed(Method::GET, &topic_path(topic, "/witnesses"), None)
            .await?;
        let host = topic.server();
        let key = self.hosting_server_key(&host).await?;
        let mut report = WitnessReport::default();
        if let Some(evidence) = &answer.evidence {
            let reason = MirrorEvidence::from_wire(evidence)
                .map(|e| e.reason)
                .unwrap_or_else(|_| "undecodable evidence".into());
            report.problems.push(format!(
                "this server keeps evidence against {host}: {reason}"
            ));
        }
        for (what, note) in views(&host, &answer) {
            self.check_view(topic, &key, view, &what, &note, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Checks one view of the log (`what` says which) against the verified head in `view`.
    async fn check_view(
        &mut self,
        topic: &TopicId,
        key: &ServerPublicKey,
        view: Option<&LogView>,
        what: &str,
        note: &str,
        report: &mut WitnessReport,
    ) -> Result<(), ClientError> {
        let host = topic.server();
        let signed = match SignedCheckpoint::parse(note.as_bytes()) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(format!("{what} does not parse: {e}"));
                return Ok(());
            }
        };
        let c = match signed.verify(key, host.as_str()) {
            Ok(c) => c.clone(),
            Err(e) => {
                report.problems.push(format!("{what}: {e}"));
                return Ok(());
            }
        };
        if what.ends_with("current head") {
            report.host_size = Some(c.size.0);
        }
        if c.origin != log_origin(topic) {
            report
                .problems
                .push(format!("{what} is of log {:?}", c.origin));
            return Ok(());
        }
        if let Some(view) = view
            && !self.agrees(topic, key, view, &signed, &c).await?
        {
            report.problems.push(format!(
                "split view: {what} (size {}, root {}) contradicts the log this device verified",
                c.size, c.root
            ));
            return Ok(());
        }
        self.check_cosignatures(&host, &signed, &c, report).await
    }

    /// The same rule as every other view of a log (`LogView::update`): equal sizes must have
    /// equal roots, a smaller checkpoint must be consistent with the larger one.
    async fn agrees(
        &mut self,
        topic: &TopicId,
        key: &ServerPublicKey,
        view: &LogView,
        signed: &SignedCheckpoint,
        c: &Checkpoint,
    ) -> Result<bool, ClientError> {
        let Some(head) = view.latest().cloned() else {
            return Ok(true);
        };
        let h = head.unverified_checkpoint();
        if c.size.0 == 0 || c.size > h.size {
            // Empty, or ahead of this server's log: nothing to compare yet.
            return Ok(true);
        }
        if c.size == h.size {
            return Ok(view
                .clone()
                .update(signed.clone(), &empty_proof(c.size))
                .is_ok());
        }
        let new = h.size;
        let path = self.consistency_path(topic, c.size.0, new.0).await?;
        let proof = ConsistencyProof {
            old: c.size,
            new,
            path,
        };
        let host = topic.server();
        Ok(
            LogView::resume(&c.origin, key.clone(), host.as_str(), signed.clone())
                .and_then(|mut older| older.update(head, &proof))
                .is_ok(),
        )
    }

    /// Checks every cosignature on a view with its server's key; agreeing cosigners are noted.
    async fn check_cosignatures(
        &mut self,
        host: &ServerName,
        signed: &SignedCheckpoint,
        c: &Checkpoint,
        report: &mut WitnessReport,
    ) -> Result<(), ClientError> {
        for name in signed.signer_names() {
            if name == host.as_str() {
                continue;
            }
            let Ok(server) = name.parse::<ServerName>() else {
                continue;
            };
            let cosigner = self.hosting_server_key(&server).await?;
            match signed.cosignature(&cosigner, name) {
                Ok(_) => {
                    let entry = (name.to_owned(), c.size.0);
                    if !report.cosigned.contains(&entry) {
                        report.cosigned.push(entry);
                    }
                }
                Err(e) => report.problems.push(format!("cosignature of {name}: {e}")),
            }
        }
        Ok(())
    }
}

/// The views the server returned, each with what it is: `(what, checkpoint note)`.
fn views(host: &ServerName, answer: &WitnessesResponse) -> Vec<(String, String)> {
    let mut views = Vec::new();
    if let Some(note) = &answer.host {
        views.push((format!("{host}'s current head"), note.to_string()));
    }
    if let Some(note) = &answer.mirror {
        views.push(("this server's mirror".into(), note.to_string()));
    }
    for note in &answer.witnesses {
        views.push(("a cosigned head".into(), note.to_string()));
    }
    views
}

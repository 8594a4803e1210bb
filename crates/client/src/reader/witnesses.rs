//! The other views of a topic's log (`client-api.md` §6 `witnesses`, `federation-api.md` §9.4):
//! the hosting server's current head, this server's mirror and every cosigned checkpoint, each
//! compared with the head this device verified. Any contradiction means some server was shown
//! another log.

use awc::http::Method;

use super::report::MirrorRefusal;
use super::{WitnessReport, topic_path};
use crate::{Client, ClientError};
use rendezvous_protocol::api::WitnessesResponse;
use rendezvous_protocol::federation::topic_events::MirrorEvidence;
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::{
    Checkpoint, CheckpointError, ConsistencyProof, Evidence, LogView, SignedCheckpoint, TreeSize,
};
use rendezvous_protocol::tlog::{HostKeyError, HostKeys};
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
    /// and cosignatures must verify with their servers' keys (`client-rules.md` C14). Without a verified head (the
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
        let mut keys = self.hosting_server_keys(&host).await?;
        let unknown_key = |note: &str| {
            SignedCheckpoint::parse(note.as_bytes())
                .is_ok_and(|s| matches!(keys.verify(&s), Err(HostKeyError::Checkpoint(_))))
        };
        if views(&host, &answer)
            .iter()
            .any(|(_, note)| unknown_key(note))
        {
            // A view under a key this device does not hold yet: the host may have rotated
            // (`tag-log.md` §7.6).
            keys = self.follow_rotations(&host).await?;
        }
        let mut report = WitnessReport {
            mirror_refused: mirror_refusals(&answer),
            ..WitnessReport::default()
        };
        if let Some(evidence) = &answer.evidence {
            let reason = MirrorEvidence::from_wire(evidence)
                .map(|e| e.reason)
                .unwrap_or_else(|_| "undecodable evidence".into());
            report.problems.push(format!(
                "this server keeps evidence against {host}: {reason}"
            ));
        }
        for (what, note) in views(&host, &answer) {
            self.check_view(topic, &keys, view, &what, &note, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// The entries the homeserver's mirror refused for a wrong IK of one of its users
    /// (`directory.md` §6.5), for a read: a failure to ask is not the read's (`rdv verify`
    /// asks again and reports it).
    pub(crate) async fn mirror_refusals(&mut self, topic: &TopicId) -> Vec<MirrorRefusal> {
        if topic.server() == self.server {
            // Hosted here: this server mirrors nothing of it.
            return Vec::new();
        }
        match self
            .authed::<WitnessesResponse>(Method::GET, &topic_path(topic, "/witnesses"), None)
            .await
        {
            Ok(answer) => mirror_refusals(&answer),
            Err(_) => Vec::new(),
        }
    }

    /// Checks one view of the log (`what` says which) against the verified head in `view`.
    async fn check_view(
        &mut self,
        topic: &TopicId,
        keys: &HostKeys,
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
        let c = match keys.verify(&signed) {
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
        let agreement = match view {
            Some(view) => self.agrees(topic, keys, view, &signed, &c).await?,
            None => Agreement::Agrees,
        };
        match agreement {
            Agreement::Contradicts(kind) => {
                report.problems.push(format!(
                    "{kind}: {what} (size {}, root {}, time {}) contradicts the log this device verified",
                    c.size, c.root, c.time
                ));
                Ok(())
            }
            // A larger head says nothing about the smaller log verified here: its cosigners
            // are not counted as support (tag-log.md §7.2), only their signatures checked.
            Agreement::Ahead => {
                let mut ignored = WitnessReport::default();
                self.check_cosignatures(&host, &signed, &c, &mut ignored)
                    .await?;
                report.problems.append(&mut ignored.problems);
                Ok(())
            }
            Agreement::Agrees => self.check_cosignatures(&host, &signed, &c, report).await,
        }
    }

    /// The same rule as every other view of a log (`LogView::update`): equal sizes must have
    /// equal roots, a smaller checkpoint must be consistent with the larger one, and a larger
    /// one signed earlier than a smaller one is a rollback, whichever is held here.
    async fn agrees(
        &mut self,
        topic: &TopicId,
        keys: &HostKeys,
        view: &LogView,
        signed: &SignedCheckpoint,
        c: &Checkpoint,
    ) -> Result<Agreement, ClientError> {
        let Some(head) = view.latest().cloned() else {
            return Ok(Agreement::Agrees);
        };
        // Both notes are verified with the hosting server's key (the view's and `check_view`).
        if let Some(evidence) = Evidence::between(&head, signed) {
            return Ok(Agreement::Contradicts(evidence.kind()));
        }
        let h = head.unverified_checkpoint();
        if c.size > h.size {
            // Ahead of the verified log: no proof to compare it with yet.
            return Ok(Agreement::Ahead);
        }
        if c.size.0 == 0 {
            return Ok(Agreement::Agrees);
        }
        if c.size == h.size {
            return Ok(agreement(
                view.clone()
                    .update(signed.clone(), &empty_proof(c.size))
                    .is_ok(),
            ));
        }
        let new = h.size;
        let path = self.consistency_path(topic, c.size.0, new.0).await?;
        let proof = ConsistencyProof {
            old: c.size,
            new,
            path,
        };
        Ok(agreement(
            LogView::resume_with(&c.origin, keys.clone(), signed.clone())
                .and_then(|mut older| older.update(head, &proof))
                .is_ok(),
        ))
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
            // A name without a known key is an unknown cosigner: neither support nor a
            // failure (C2SP: lines of unknown keys are ignored).
            let unknown = |report: &mut WitnessReport| {
                if !report.unknown_cosigners.iter().any(|n| n == name) {
                    report.unknown_cosigners.push(name.to_owned());
                }
            };
            let Ok(server) = name.parse::<ServerName>() else {
                unknown(report);
                continue;
            };
            let Some(cosigner) = known_key(self.hosting_server_keys(&server).await)? else {
                unknown(report);
                continue;
            };
            // Any key of the cosigner's chain: a cosignature carries its own time.
            let line = cosigner
                .keys()
                .map(|k| signed.cosignature(k, name))
                .find(|r| !matches!(r, Err(CheckpointError::MissingSignature { .. })))
                .unwrap_or(Err(CheckpointError::MissingSignature {
                    key_name: name.to_owned(),
                }));
            match line {
                Ok(_) => {
                    let entry = (name.to_owned(), c.size.0);
                    if !report.cosigned.contains(&entry) {
                        report.cosigned.push(entry);
                    }
                }
                // A line under another key hash of that name: an unknown key, not a lie.
                Err(CheckpointError::MissingSignature { .. }) => unknown(report),
                Err(e) => report.problems.push(format!("cosignature of {name}: {e}")),
            }
        }
        Ok(())
    }
}

/// How a view of the log compares with the head this device verified.
enum Agreement {
    /// The same log (or nothing to compare).
    Agrees,
    /// Larger than the verified head and not contradicting it by its time.
    Ahead,
    /// A contradiction of this kind (`Evidence::kind`, or `split view`).
    Contradicts(&'static str),
}

fn agreement(agrees: bool) -> Agreement {
    match agrees {
        true => Agreement::Agrees,
        false => Agreement::Contradicts("split view"),
    }
}

/// A cosigner's key, or `None` when no key is known for that name (its homeserver cannot
/// give one); local faults (keystore) are still errors.
fn known_key(key: Result<HostKeys, ClientError>) -> Result<Option<HostKeys>, ClientError> {
    match key {
        Ok(k) => Ok(Some(k)),
        Err(e @ (ClientError::Io { .. } | ClientError::Corrupt { .. })) => Err(e),
        Err(_) => Ok(None),
    }
}

/// The views the server returned, each with what it is: `(what, checkpoint note)`.
fn mirror_refusals(answer: &WitnessesResponse) -> Vec<MirrorRefusal> {
    answer
        .refusals
        .iter()
        .map(|r| MirrorRefusal {
            index: r.index,
            user: r.user.to_string(),
            identity_key: rendezvous_protocol::crypto::sign::hex_string(r.identity_key.as_bytes()),
        })
        .collect()
}

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

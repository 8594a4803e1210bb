//! Reading a topic and checking its log (`protocol.md` §7–8, `tag-log.md` §9). The rules a
//! client must follow are `federation-spec/client-rules.md` C1–C14; each function that enforces
//! one names it.
//!
//! A read is a replay (`replay`) made of separate checks, each its own function so that writes
//! (`send`, `change` in `topics`) can call the same ones:
//! - the head (`checkpoint`): the hosting server's signed checkpoint, its signature checked with
//!   the hosting server's key and its consistency with the last checkpoint this device verified
//!   ([`LogView::update`](rendezvous_protocol::tlog::LogView::update) with a consistency proof);
//! - the entries (`fetch`) up to the checkpoint's size, from where the saved snapshot stops
//!   (`snapshot`); indices the server did not return are reported as missing;
//! - the replay with the topic state machine
//!   ([`Replayer`](rendezvous_protocol::topic::Replayer): change rules, message signatures,
//!   roles, epochs, replays), and what each entry means for this device (`apply`): the Message
//!   Keys addressed to it ([`EpochKeyring::receive`](rendezvous_protocol::topic::EpochKeyring::receive)),
//!   messages opened (tag checked before decryption);
//! - each new entry's inclusion in the checkpoint's tree (`inclusion`,
//!   [`check_in_log`](rendezvous_protocol::topic::check_in_log)), and for [`Client::verify`] the
//!   root recomputed from every leaf and the other views of the log (`witnesses`).
//!
//! Every entry that fails a check is marked with the reason. Inclusion proofs are fetched only
//! for entries not processed before, except by [`Client::verify`], which checks them all and
//! replays the whole log from index 0.

mod apply;
mod checkpoint;
mod describe;
mod entry_evidence;
mod fetch;
mod inclusion;
mod replay;
mod report;
mod roster;
mod snapshot;
mod view;
mod witnesses;

#[cfg(test)]
mod tests;

use awc::http::Method;

use super::http::encode_segment;
use super::{Client, ClientError};
use rendezvous_protocol::api::{Body, CursorRequest, ErrorCode};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::LeafIndex;

pub(crate) use inclusion::Inclusion;
pub(crate) use replay::Replay;
pub use report::{
    EntryContent, EntryReport, MirrorRefusal, ReadReport, VerifyReport, WitnessReport,
};
#[cfg(test)]
pub(crate) use roster::Roster;
pub(crate) use roster::gate as roster_gate;

/// The path of a topic's resource `rest` (`client-api.md` §6).
pub(crate) fn topic_path(topic: &TopicId, rest: &str) -> String {
    format!("/v1/topics/{}{rest}", encode_segment(topic.as_str()))
}

impl Client {
    /// Stores what a replay learned (member index, checkpoint, processed index) and moves the
    /// server-side cursor.
    pub(crate) async fn remember(
        &mut self,
        replay: &Replay,
        processed: u64,
    ) -> Result<(), ClientError> {
        let mut record = replay.record.clone();
        record.member = replay.me.map(|m| m.0);
        record.checkpoint = replay.view.latest().map(|c| c.to_note().into_string());
        record.processed = record.processed.max(processed);
        self.keystore.save_topic(&record)?;
        let cursor = CursorRequest {
            index: LeafIndex(record.processed),
        };
        self.authed_raw(
            Method::PUT,
            &topic_path(&replay.topic, "/cursor"),
            Some(cursor.to_cbor()),
            1024,
        )
        .await?;
        Ok(())
    }

    /// Reads a topic: everything not shown before, verified (see the module docs), and again
    /// every earlier entry that still fails a check (each read re-checks the entries after the
    /// last complete snapshot, and the new head's consistency with the held one covers the
    /// rest). With evidence against the hosting server, only what the head verified before
    /// covers is read, and [`ReadReport::forked`] says so.
    pub async fn read(&mut self, topic: &TopicId) -> Result<ReadReport, ClientError> {
        let from = self.keystore.topic(topic)?.map_or(0, |r| r.processed);
        let replay = self.replay(topic, Inclusion::From(from), false).await?;
        let size = replay.checkpoint.size.0;
        self.remember(&replay, size).await?;
        Ok(ReadReport {
            topic: topic.clone(),
            size,
            entries: replay
                .entries
                .iter()
                .filter(|e| e.index >= from || !e.verified())
                .cloned()
                .collect(),
            missing: replay.missing.clone(),
            age: replay.age,
            stale: replay.stale,
            forked: replay.forked.clone(),
            refused: replay.record.refused.clone(),
            unchecked: replay.unchecked.clone(),
            mirror_refused: self.mirror_refusals(topic).await,
        })
    }

    /// Checks the whole log: full replay from 0, an inclusion proof for every entry, the root
    /// recomputed from every leaf, and consistency with the stored checkpoint.
    pub async fn verify(&mut self, topic: &TopicId) -> Result<VerifyReport, ClientError> {
        let replay = match self.replay(topic, Inclusion::From(0), true).await {
            Ok(replay) => replay,
            // This server stopped following the log: it holds evidence that the hosting
            // server signed contradicting logs. Report it with the evidence.
            Err(e) if e.code() == Some(ErrorCode::SplitView) => {
                let mut witnesses = self.check_witnesses(topic, None).await?;
                witnesses.problems.insert(0, e.to_string());
                return Ok(VerifyReport {
                    topic: topic.clone(),
                    size: 0,
                    root: String::new(),
                    consistent_with: None,
                    failed: Vec::new(),
                    missing: Vec::new(),
                    root_matches: None,
                    witnesses,
                    age: 0,
                    stale: false,
                    evidence: self.evidence_kinds(topic)?,
                });
            }
            Err(e) => return Err(e),
        };
        let processed = replay.record.processed;
        self.remember(&replay, processed).await?;
        Ok(VerifyReport {
            topic: topic.clone(),
            size: replay.checkpoint.size.0,
            root: replay.checkpoint.root.to_string(),
            consistent_with: replay.consistent_with,
            failed: replay
                .entries
                .iter()
                .filter(|e| !e.verified())
                .cloned()
                .collect(),
            missing: replay.missing.clone(),
            root_matches: replay.root_matches,
            witnesses: self.check_witnesses(topic, Some(&replay.view)).await?,
            age: replay.age,
            stale: replay.stale,
            evidence: self.evidence_kinds(topic)?,
        })
    }

    /// The kinds of evidence kept against `topic`'s hosting server, oldest first.
    fn evidence_kinds(&self, topic: &TopicId) -> Result<Vec<String>, ClientError> {
        let mut kinds: Vec<String> = self
            .keystore
            .evidence(topic)?
            .iter()
            .map(|e| e.kind().to_owned())
            .collect();
        for _ in self.keystore.entry_evidence(topic)? {
            kinds.push(replay::INVALID_ENTRY.to_owned());
        }
        Ok(kinds)
    }

    /// The evidence kept against hosting servers, for `rdv evidence export`: of `topic`, or of
    /// every topic this device has a record of; `(topic, kind, CBOR)` — `tag-log.md` §8.2
    /// `evidence` items first, then §8.4 `entry-evidence` items (kind `invalid entry`).
    pub fn evidence(
        &self,
        topic: Option<&TopicId>,
    ) -> Result<Vec<(TopicId, String, Vec<u8>)>, ClientError> {
        let topics = match topic {
            Some(t) => vec![t.clone()],
            None => self.keystore.topics()?,
        };
        let mut out = Vec::new();
        for t in topics {
            for e in self.keystore.evidence(&t)? {
                out.push((t.clone(), e.kind().to_owned(), e.to_cbor()));
            }
            for e in self.keystore.entry_evidence(&t)? {
                out.push((t.clone(), replay::INVALID_ENTRY.to_owned(), e.to_cbor()));
            }
        }
        Ok(out)
    }
}

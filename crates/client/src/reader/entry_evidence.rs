//! Evidence of an invalid entry in a signed log (`tag-log.md` §8.4): when a replay finds an
//! entry that breaks a rule on a state it is certain of, although the head the hosting server
//! signed holds it (its inclusion proof verifies), the device fetches the log's prefix up to it
//! and the consistency proof from there to the head, checks the evidence as a third party
//! would, and keeps it.

use super::replay::{INVALID_ENTRY, Replay};
use crate::{Client, ClientError};
use rendezvous_protocol::topic::EntryEvidence;

impl Client {
    /// Builds, checks and keeps the evidence for the invalid entry at `index` of `replay`'s
    /// head. `Some(kind)` when kept; `None` when the server does not give what the evidence
    /// needs (the entry stays reported as a problem). Only a keystore fault is an error.
    pub(super) async fn keep_entry_evidence(
        &mut self,
        replay: &Replay,
        index: u64,
    ) -> Result<Option<String>, ClientError> {
        let topic = &replay.topic;
        let Some(checkpoint) = replay.view.latest().cloned() else {
            return Ok(None);
        };
        let size = replay.checkpoint.size.0;
        let Ok((fetched, missing)) = self.fetch_entries(topic, 0, index + 1).await else {
            return Ok(None);
        };
        if !missing.is_empty() {
            return Ok(None);
        }
        let Ok(entries) = fetched
            .into_iter()
            .map(|(_, e)| e)
            .collect::<Result<Vec<_>, _>>()
        else {
            return Ok(None);
        };
        let proof = match index + 1 < size {
            true => match self.consistency_path(topic, index + 1, size).await {
                Ok(path) => path,
                Err(_) => return Ok(None),
            },
            false => Vec::new(),
        };
        let evidence = EntryEvidence {
            checkpoint,
            entries,
            proof,
        };
        let host = topic.server();
        let keys = self.hosting_server_keys(&host).await?;
        if evidence.verify_with(topic, &keys).is_err() {
            return Ok(None);
        }
        self.keystore.save_entry_evidence(topic, &evidence)?;
        Ok(Some(INVALID_ENTRY.to_owned()))
    }
}

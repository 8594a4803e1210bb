//! Fetching a topic's log entries page by page (`client-api.md` §6), noting the indices the
//! server left out.

use awc::http::Method;

use super::topic_path;
use crate::{Client, ClientError};
use rendezvous_protocol::api::EntriesResponse;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::topic::LogEntry;

/// Entries per page (`client-api.md` §6: at most 500).
const PAGE: u64 = 500;

/// Entries as fetched: each with its index, decoded or with why it does not decode.
pub(crate) type Fetched = Vec<(u64, Result<LogEntry, String>)>;

impl Client {
    /// Fetches entries `from..size` page by page. Returns each entry (or why it does not decode)
    /// with its index, and the indices the server did not return: missing entries
    /// (`client-rules.md` C8), reported by index.
    pub(crate) async fn fetch_entries(
        &mut self,
        topic: &TopicId,
        from: u64,
        size: u64,
    ) -> Result<(Fetched, Vec<u64>), ClientError> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        let mut next = from;
        while next < size {
            let limit = PAGE.min(size - next);
            let answer: EntriesResponse = self
                .authed(
                    Method::GET,
                    &topic_path(topic, &format!("/entries?from={next}&limit={limit}")),
                    None,
                )
                .await?;
            let mut progressed = false;
            for e in answer.entries {
                let index = e.index.get();
                if index < next || index >= size {
                    // Out of order, repeated or beyond the checkpoint: not ours to believe.
                    continue;
                }
                missing.extend(next..index);
                out.push((
                    index,
                    LogEntry::from_wire(&e.entry).map_err(|e| e.to_string()),
                ));
                next = index + 1;
                progressed = true;
            }
            if !progressed {
                missing.extend(next..size);
                break;
            }
        }
        Ok((out, missing))
    }
}

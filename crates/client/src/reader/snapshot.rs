//! Resuming a replay where this device stopped: the log snapshot (`keystore` `log.cbor`) keeps
//! every change with its index, to rebuild the topic state, and every message tag, to catch a
//! replayed message; only entries after it are fetched and checked.

use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::message::MessageTag;
use rendezvous_protocol::tlog::{Frontier, LeafIndex, LogHash, Roots, TreeSize};
use rendezvous_protocol::topic::{ENTRY_CHANGE, LogEntry, ParsedEntry, Replayer, TopicState};
use rendezvous_protocol::wire::VERSION;

use crate::keystore::LogSnapshot;
use crate::{Client, ClientError};

/// Where a replay starts: the replayer (fresh or resumed), the first index to fetch, and the
/// changes before it (`(index, signed change wire form)`).
pub(super) struct Start {
    pub(super) replayer: Replayer,
    pub(super) from: u64,
    pub(super) changes: Vec<(u64, Vec<u8>)>,
    /// The tag log's compact range of the first `from` leaves.
    pub(super) frontier: Frontier,
}

impl Client {
    /// Resumes from the saved snapshot when there is one and this is not a full check (`full`),
    /// else starts from index 0. Only up to what was shown (`processed`): entries after it must
    /// still be replayed to be shown (a send replays without showing, and does not move the
    /// snapshot); and never past the verified checkpoint's `size`.
    pub(super) fn resume(
        &self,
        topic: &TopicId,
        full: bool,
        size: u64,
        processed: u64,
    ) -> Result<Start, ClientError> {
        let fresh = || Start {
            replayer: Replayer::new(),
            from: 0,
            changes: Vec::new(),
            frontier: Frontier::new(),
        };
        if full {
            return Ok(fresh());
        }
        // The snapshot only saves work: one that does not decode (an older format, without
        // the compact range) is not used, and the replay checks everything from index 0.
        let snapshot = match self.keystore.log_snapshot(topic) {
            Err(ClientError::Corrupt { .. }) => None,
            other => other?,
        };
        match snapshot {
            Some(snap) if snap.size > 0 && snap.size <= size && snap.size <= processed => {
                restore(topic, &snap)
            }
            _ => Ok(fresh()),
        }
    }

    /// Saves what the replay reached as the topic's snapshot: `frontier` must be the compact
    /// range of the replayed leaves, its root checked against the head.
    pub(super) fn save_snapshot(
        &self,
        topic: &TopicId,
        replayer: &Replayer,
        changes: Vec<(u64, Vec<u8>)>,
        frontier: &Frontier,
    ) -> Result<(), ClientError> {
        let Some(state) = replayer.state() else {
            return Ok(());
        };
        if frontier.size() != state.size() {
            return Ok(());
        }
        let snapshot = LogSnapshot {
            version: VERSION,
            size: state.size().get(),
            changes: changes
                .into_iter()
                .map(|(i, b)| (i, serde_bytes::ByteBuf::from(b)))
                .collect(),
            tags: replayer
                .tags()
                .iter()
                .map(|t| serde_bytes::ByteBuf::from(t.0.to_vec()))
                .collect(),
            frontier: frontier
                .hashes()
                .iter()
                .map(|h| serde_bytes::ByteBuf::from(h.as_bytes().to_vec()))
                .collect(),
            roots: serde_bytes::ByteBuf::from(
                replayer
                    .roots()
                    .all()
                    .iter()
                    .flat_map(|h| h.0)
                    .collect::<Vec<u8>>(),
            ),
        };
        // Roots from size 0 only: a replayer resumed without them cannot be saved as a snapshot;
        // and they must be those of the leaves whose root was checked against the head.
        if replayer.roots().start() != TreeSize(0)
            || replayer.roots().size() != state.size()
            || replayer.roots().root() != frontier.root()
        {
            return Ok(());
        }
        self.keystore.save_log_snapshot(topic, &snapshot)
    }
}

/// The replayer as the snapshot left it: the state rebuilt from its changes, its tags.
fn restore(topic: &TopicId, snap: &LogSnapshot) -> Result<Start, ClientError> {
    let mut signed = Vec::with_capacity(snap.changes.len());
    for (index, bytes) in &snap.changes {
        let change = LogEntry(ENTRY_CHANGE, bytes.to_vec())
            .parse()
            .ok()
            .and_then(|p| match p {
                ParsedEntry::Change(c) => Some(c),
                ParsedEntry::Message(_) => None,
            })
            .ok_or_else(|| ClientError::corrupt(topic.as_str(), "log snapshot change"))?;
        signed.push((LeafIndex(*index), change));
    }
    let corrupt =
        |what: String| ClientError::corrupt(topic.as_str(), format!("log snapshot: {what}"));
    let hash = |b: &[u8]| LogHash::from_slice(b).map_err(|e| corrupt(e.to_string()));
    let frontier = snap
        .frontier
        .iter()
        .map(|h| hash(h))
        .collect::<Result<Vec<_>, _>>()?;
    let frontier =
        Frontier::from_parts(TreeSize(snap.size), frontier).map_err(|e| corrupt(e.to_string()))?;
    let all = snap
        .roots
        .chunks(32)
        .map(hash)
        .collect::<Result<Vec<_>, _>>()?;
    let roots_frontier = frontier.clone();
    let roots = Roots::from_roots(frontier, all).map_err(|e| corrupt(e.to_string()))?;
    let state = TopicState::restore(signed, TreeSize(snap.size), &roots)
        .map_err(|e| corrupt(e.to_string()))?;
    let tags = snap
        .tags
        .iter()
        .filter_map(|t| <[u8; 32]>::try_from(t.as_slice()).ok())
        .map(MessageTag)
        .collect();
    Ok(Start {
        replayer: Replayer::resume(state, tags, roots),
        from: snap.size,
        changes: snap.changes.iter().map(|(i, b)| (*i, b.to_vec())).collect(),
        frontier: roots_frontier,
    })
}

//! A topic in memory: its state after the whole log, its tag log's compact range, and the
//! entries appended but not yet known durable. A topic is [`Topic::Hosted`] by this server or
//! a [`Topic::Mirror`] of another server's log, loaded lazily from the store by replaying only
//! its changes.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{TopicError, TopicResult};
use crate::store::{Store, TopicNodes};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::{CheckpointNote, Frontier, LeafIndex, Tree, TreeSize};
use rendezvous_protocol::topic::{LogEntry, ParsedEntry, TopicState};

/// The log part every topic has, hosted or mirrored.
#[derive(Debug)]
pub(crate) struct Log {
    /// The state after the whole log.
    pub(crate) state: TopicState,
    /// The tag log's compact range.
    pub(crate) frontier: Frontier,
    /// Entries appended but not yet known durable: `index -> (entry, frontier after it)`.
    pending: BTreeMap<u64, (Vec<u8>, Frontier)>,
    /// The frontier of the longest prefix known durable (what checkpoints may vouch for).
    pub(crate) durable: Frontier,
}

/// Entries taken out of the pending ones because they are durable now, in log order.
#[derive(Debug, Default)]
pub(crate) struct Durable {
    /// `(index, entry)`.
    pub(crate) entries: Vec<(u64, Vec<u8>)>,
    /// The tag log after each of them.
    pub(crate) frontiers: Vec<Frontier>,
}

impl Log {
    pub(crate) fn new(state: TopicState, frontier: Frontier) -> Self {
        Log {
            state,
            durable: frontier.clone(),
            frontier,
            pending: BTreeMap::new(),
        }
    }

    /// Records a written entry as pending, its log grown to `frontier`.
    pub(crate) fn pend(&mut self, index: u64, entry: Vec<u8>, frontier: Frontier) {
        self.pending.insert(index, (entry, frontier.clone()));
        self.frontier = frontier;
    }

    /// Takes the pending entries up to `index` (durable now, since every one was written
    /// before it), in log order, and advances the durable prefix past them.
    pub(crate) fn take_durable(&mut self, index: u64) -> Durable {
        let mut out = Durable::default();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > index {
                break;
            }
            let (index, (bytes, frontier)) = entry.remove_entry();
            out.entries.push((index, bytes));
            out.frontiers.push(frontier.clone());
            self.durable = frontier;
        }
        out
    }

    /// Whether entries wait for durability.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// A topic this server hosts.
#[derive(Debug)]
pub(crate) struct Hosted {
    pub(crate) log: Log,
    /// The last signed checkpoint note and its size (re-used until the durable size grows).
    pub(crate) signed: Option<(u64, CheckpointNote)>,
    /// Servers of members removed by entries not yet published: they are sent those entries
    /// (`federation-api.md` §9.1).
    pub(crate) removed_servers: BTreeSet<ServerName>,
}

/// A topic another server hosts, which this server mirrors (`federation-api.md` §9.2).
#[derive(Debug)]
pub(crate) struct Mirror {
    pub(crate) log: Log,
    /// The hosting server's latest verified checkpoint note.
    pub(crate) head: Option<CheckpointNote>,
    /// Evidence was found against the hosting server: the mirror takes no more entries.
    pub(crate) stopped: bool,
    /// When this mirror last asked the hosting server for a fresh head (Unix seconds): at most
    /// once per `HEAD_RESIGN_AFTER`, however often members ask (`fresh.rs`).
    pub(crate) refreshed_at: u64,
}

/// One topic in memory.
#[derive(Debug)]
pub(crate) enum Topic {
    /// Hosted by this server.
    Hosted(Hosted),
    /// Hosted elsewhere, mirrored here.
    Mirror(Mirror),
}

impl Hosted {
    pub(crate) fn new(log: Log) -> Self {
        Hosted {
            log,
            signed: None,
            removed_servers: BTreeSet::new(),
        }
    }
}

impl Mirror {
    pub(crate) fn new(log: Log) -> Self {
        Mirror {
            log,
            head: None,
            stopped: false,
            refreshed_at: 0,
        }
    }

    /// Refuses anything once evidence stopped the mirror.
    pub(crate) fn not_stopped(&self) -> TopicResult<()> {
        match self.stopped {
            false => Ok(()),
            true => Err(TopicError::MirrorStopped),
        }
    }

    /// The hosting server's checkpoint that readers of the mirror get.
    pub(crate) fn checkpoint(&self) -> TopicResult<CheckpointNote> {
        self.not_stopped()?;
        self.head.clone().ok_or(TopicError::NoHostCheckpoint)
    }
}

impl Topic {
    pub(crate) fn log(&self) -> &Log {
        match self {
            Topic::Hosted(h) => &h.log,
            Topic::Mirror(m) => &m.log,
        }
    }

    pub(crate) fn log_mut(&mut self) -> &mut Log {
        match self {
            Topic::Hosted(h) => &mut h.log,
            Topic::Mirror(m) => &mut m.log,
        }
    }

    /// The hosted topic, or `not_hosting` for a mirror (appends through the host's paths).
    pub(crate) fn hosted_mut(&mut self, topic: &TopicId) -> TopicResult<&mut Hosted> {
        match self {
            Topic::Hosted(h) => Ok(h),
            Topic::Mirror(_) => Err(TopicError::HostedElsewhere {
                topic: topic.clone(),
            }),
        }
    }

    /// Loads `topic` from the store: its changes replayed, its tag log opened; a mirror's head
    /// and whether evidence stopped it. `own` is this server's name.
    pub(crate) fn load(store: &Store, topic: &TopicId, own: &ServerName) -> TopicResult<Topic> {
        let size = store
            .topic_size(topic)?
            .ok_or_else(|| TopicError::NoTopic {
                topic: topic.clone(),
            })?;
        let mut changes = Vec::new();
        for (index, bytes) in store.changes(topic)? {
            let entry = LogEntry::from_wire(&bytes).and_then(|e| e.parse());
            let signed = match entry {
                Ok(ParsedEntry::Change(signed)) => signed,
                Ok(_) => return Err(TopicError::internal("stored change", "is a message")),
                Err(e) => return Err(TopicError::internal("stored change does not decode", e)),
            };
            changes.push((LeafIndex(index), signed));
        }
        let tree = Tree::open(TopicNodes::new(store, topic), TreeSize(size))
            .map_err(|e| TopicError::internal("stored tag log does not open", e))?;
        // Each change's signature is checked again with the stored root at its index.
        let state = TopicState::restore(changes, TreeSize(size), &tree)
            .map_err(|e| TopicError::internal("stored topic does not replay", e))?;
        let log = Log::new(state, tree.frontier().clone());
        Ok(match topic.server() == *own {
            true => Topic::Hosted(Hosted::new(log)),
            false => Topic::Mirror(Mirror {
                log,
                head: match store.mirror_head(topic)? {
                    Some(note) => Some(CheckpointNote::parse(note).map_err(|e| {
                        TopicError::internal("stored mirror head does not parse", e)
                    })?),
                    None => None,
                },
                stopped: store.mirror_evidence(topic)?.is_some(),
                refreshed_at: 0,
            }),
        })
    }
}

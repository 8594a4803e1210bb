//! Fork-binding failures met while replaying (`protocol.md` §6.4, §7.2; `tag-log.md` §8.1,
//! `unbound_entry`): an entry of the host's signed log whose signature does not verify under
//! this device's own root at the size it binds. The replay notes each one ([`Unbound`]) and, after
//! the entries, turns it into [`UnboundEntry`] evidence that a third party checks with the
//! hosting server's key alone: the checkpoint, the entry's inclusion proof and a consistency proof
//! from the bound size, fetched from the server, and the author's certificate from the changes
//! replayed so far. Evidence is kept only once it verifies.

use super::topic_path;
use crate::{Client, ClientError};
use rendezvous_protocol::api::ProofResponse;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::message::MessageError;
use rendezvous_protocol::tlog::proof::parse_path;
use rendezvous_protocol::tlog::{LeafIndex, LogHash, RootAt, SignedCheckpoint, TreeSize};
use rendezvous_protocol::topic::{
    Action, ChangeError, ENTRY_CHANGE, EntryError, LogEntry, ParsedEntry, Replayer, Signer,
    UnboundEntry,
};

/// A failure noted during the replay: the entry, where it binds, the root there, and the author's
/// Topic Key id at that position.
pub(crate) struct Unbound {
    index: u64,
    entry: LogEntry,
    bound: TreeSize,
    root: LogHash,
    author_key: rendezvous_protocol::crypto::KeyId,
}

/// If `error` is a signature failure of the entry at `index` (a message's or a change's), what
/// the evidence needs from the replayer's state before the entry.
pub(crate) fn note(
    replayer: &Replayer,
    index: u64,
    entry: &LogEntry,
    error: &EntryError,
) -> Option<Unbound> {
    let fork_bound = matches!(
        error,
        EntryError::Message {
            error: MessageError::BadSignature,
            ..
        } | EntryError::Change {
            error: ChangeError::BadSignature | ChangeError::StaleRoot { .. },
            ..
        }
    );
    let state = replayer.state()?;
    // The replayer's roots follow the log as served, the failed entry included: only when they
    // end right after it are they this device's roots below it.
    if !fork_bound || replayer.roots().size().get() != index + 1 {
        return None;
    }
    let (bound, author) = match entry.parse().ok()? {
        ParsedEntry::Message(m) => (m.header().seen, m.header().sender),
        ParsedEntry::Change(c) => (TreeSize(index), c.decode_unverified().ok()?.author),
    };
    let root = replayer.roots().root_at(bound).ok()?;
    let author_key = state.member(author)?.topic_key.key_id();
    Some(Unbound {
        index,
        entry: entry.clone(),
        bound,
        root,
        author_key,
    })
}

impl Unbound {
    /// The entry's index.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }
}

impl Client {
    /// The evidence for `unbound` under the head `head`, or `None` when it does not verify (e.g.
    /// this device's own roots were wrong). `changes` are the replayed changes
    /// (`(index, signed change wire form)`), where the author's certificate is found.
    pub(crate) async fn unbound_evidence(
        &mut self,
        topic: &TopicId,
        head: &SignedCheckpoint,
        changes: &[(u64, Vec<u8>)],
        unbound: Unbound,
    ) -> Result<Option<UnboundEntry>, ClientError> {
        let Some(signer) = signer(changes, &unbound.author_key) else {
            return Ok(None);
        };
        let size = head.unverified_checkpoint().size.get();
        let inclusion = self
            .proof_path(
                topic,
                &format!("/proof/inclusion?index={}&size={size}", unbound.index),
            )
            .await?;
        let bound = unbound.bound.get();
        let consistency = if bound == 0 || bound == size {
            Vec::new()
        } else {
            self.consistency_path(topic, bound, size).await?
        };
        let evidence = UnboundEntry {
            topic: topic.clone(),
            checkpoint: head.clone(),
            index: LeafIndex(unbound.index),
            entry: unbound.entry,
            inclusion,
            bound_root: unbound.root,
            consistency,
            signer,
            signed_root: None,
        };
        let host = topic.server();
        let key = self.hosting_server_key(&host).await?;
        Ok(evidence
            .verify(&key, host.as_str())
            .is_ok()
            .then_some(evidence))
    }

    /// A proof's hashes from the server (`client-api.md` §6).
    async fn proof_path(
        &mut self,
        topic: &TopicId,
        rest: &str,
    ) -> Result<Vec<LogHash>, ClientError> {
        let answer: ProofResponse = self
            .authed(awc::http::Method::GET, &topic_path(topic, rest), None)
            .await?;
        parse_path(&answer.path).map_err(|e| ClientError::Misbehaved(format!("proof: {e}")))
    }
}

/// The identity and certificate of the member whose Topic Key has id `key`, from the change that
/// added it.
fn signer(changes: &[(u64, Vec<u8>)], key: &rendezvous_protocol::crypto::KeyId) -> Option<Signer> {
    changes.iter().find_map(|(_, bytes)| {
        let change = LogEntry(ENTRY_CHANGE, bytes.clone()).parse().ok()?;
        let ParsedEntry::Change(signed) = change else {
            return None;
        };
        let specs = match signed.decode_unverified().ok()?.action {
            Action::Create { members, .. } | Action::Add(members) => members,
            _ => return None,
        };
        specs.iter().find_map(|spec| {
            let tk = spec
                .topic_key_cert
                .decode_unverified()
                .ok()?
                .topic_key()
                .ok()?;
            (tk.key_id() == *key).then(|| Signer::of(spec))
        })
    })
}

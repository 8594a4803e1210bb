//! Evidence that a hosting server signed a log holding an entry that breaks a topic rule at its
//! position (`federation-spec/tag-log.md` §8.4): the signed checkpoint, every entry up to and
//! including the bad one, and the log's consistency proof from there to the checkpoint. Anyone
//! with the hosting server's key checks it from scratch by replaying the entries. The host runs
//! the same rules on every append, so a log it signed with such an entry is its own doing — a
//! forged entry, or (with signatures covering the root at `seen`) a post from another branch of
//! a fork.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::log::{EntryError, LogEntry, Replayer, leaf_data, log_origin};
use crate::crypto::ServerPublicKey;
use crate::ids::TopicId;
use crate::tlog::HostKeys;
use crate::tlog::{ConsistencyProof, Frontier, LogHash, SignedCheckpoint, TreeSize};
use crate::wire::{WireError, decode, encode};

/// Largest encoded entry evidence accepted (a log prefix of up to this many bytes).
pub const MAX_ENTRY_EVIDENCE_SIZE: usize = 64 * 1024 * 1024;

/// Why entry evidence does not show what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryEvidenceError {
    /// The checkpoint does not parse or verify with the hosting server's key, or is of another
    /// log.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The entries do not add up to the checkpoint (root or consistency proof).
    #[error("the entries are not the first ones of the checkpoint's log: {0}")]
    NotInLog(String),
    /// An entry before the last is invalid already (the evidence should name that one), or the
    /// last one is valid: nothing is shown.
    #[error("no invalid entry at the end: {0}")]
    NoContradiction(String),
    /// The encoding.
    #[error("entry evidence encoding: {0}")]
    Wire(#[from] WireError),
}

/// Whether a rule `error` fails on what the entry's leaf commits to (`protocol.md` §8.1), so
/// that a signed tree holding the leaf convicts its host. A change's leaf is the hash of the
/// whole signed change, a message's leaf `0x01 ‖ header ‖ tag ‖ SHA-256(ciphertext) ‖
/// signature`: everything a message's checks 5–10 read but the verifier's own root at `seen`,
/// which the replay of the entries before it computes. So every failure of checks 5–10 counts,
/// a bad signature too (what a post from another branch of a fork shows, `protocol.md` §6.4);
/// not `RootUnknown` (the verifier's own log is incomplete), bytes that are no entry, nor the
/// tag (it needs the Message Key, and the replay does not check it).
pub fn committed(error: &EntryError) -> bool {
    use crate::message::MessageError as M;
    match error {
        // A verifier that lacks its own root cannot judge the entry (a fault of its own log).
        EntryError::Change { error, .. } => {
            !matches!(error, super::ChangeError::RootUnknown { .. })
        }
        EntryError::Message { error, .. } => matches!(
            error,
            M::BadSignature
                | M::WrongEpoch { .. }
                | M::NotAMember(_)
                | M::NotAllowedToPost { .. }
                | M::Replayed
                | M::SeenAhead { .. }
        ),
        EntryError::Malformed { .. } | EntryError::Position { .. } => false,
    }
}

/// A signed log whose last given entry breaks a rule at its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryEvidence {
    /// The hosting server's checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// Entries `0 ..= i` of its log; entry `i` is the invalid one.
    pub entries: Vec<LogEntry>,
    /// The log's consistency proof from size `i + 1` to the checkpoint's size (empty when
    /// equal).
    pub proof: Vec<LogHash>,
}

/// `[1, note, [* log entry], [* proof hash]]`.
#[derive(Serialize, Deserialize)]
struct Wire(u8, ByteBuf, Vec<ByteBuf>, Vec<ByteBuf>);

impl EntryEvidence {
    /// Checks from scratch that the hosting server (`key`, `key_name`) signed a log of `topic`
    /// whose entry `entries.len() − 1` breaks a rule, the ones before it all valid. Returns the
    /// rule it breaks.
    pub fn verify(
        &self,
        topic: &TopicId,
        key: &ServerPublicKey,
        key_name: &str,
    ) -> Result<EntryError, EntryEvidenceError> {
        self.verify_with(topic, &HostKeys::new(key_name, key.clone()))
    }

    /// [`Self::verify`] for a hosting server whose key rotated (`tag-log.md` §7.6): the
    /// checkpoint verifies under the key of `keys` for its time, and the create names a key of
    /// the chain.
    pub fn verify_with(
        &self,
        topic: &TopicId,
        keys: &HostKeys,
    ) -> Result<EntryError, EntryEvidenceError> {
        let c = keys
            .verify(&self.checkpoint)
            .map_err(|e| EntryEvidenceError::Checkpoint(e.to_string()))?;
        if c.origin != log_origin(topic) {
            return Err(EntryEvidenceError::Checkpoint(format!(
                "of log {:?}, not of {topic}",
                c.origin
            )));
        }
        let Some((last, before)) = self.entries.split_last() else {
            return Err(EntryEvidenceError::NoContradiction("no entry".into()));
        };
        let mut frontier = Frontier::new();
        for entry in &self.entries {
            let leaf = leaf_data(entry).map_err(|e| EntryEvidenceError::NotInLog(e.to_string()))?;
            frontier
                .append(&leaf)
                .map_err(|e| EntryEvidenceError::NotInLog(e.to_string()))?;
        }
        let m = frontier.size();
        let in_log = match m == c.size {
            true => frontier.root() == c.root,
            false => ConsistencyProof {
                old: m,
                new: c.size,
                path: self.proof.clone(),
            }
            .verify(&frontier.root(), &c.root)
            .is_ok(),
        };
        if m > c.size || !in_log {
            return Err(EntryEvidenceError::NotInLog(format!(
                "{} entries do not extend to the checkpoint of size {}",
                m, c.size
            )));
        }
        let mut replayer = Replayer::new();
        for entry in before {
            replayer
                .push(entry)
                .map_err(|e| EntryEvidenceError::NoContradiction(e.to_string()))?;
        }
        // Entry 0 must create this topic, naming the key that signed the checkpoint (`tag-log.md`
        // §9.2, §7.5): a log that breaks that ends at entry 0, which is then the broken rule.
        let entry_0 = |r: &Replayer| r.state().map(|s| s.check_log_of(topic, keys));
        if matches!(entry_0(&replayer), Some(Err(_))) {
            return Err(EntryEvidenceError::NoContradiction(
                "entry 0 creates another topic or names another host key: the evidence should end there".into(),
            ));
        }
        match replayer.push(last) {
            Ok(_) if let Some(Err(error)) = entry_0(&replayer) => Ok(EntryError::Change {
                index: crate::tlog::LeafIndex(0),
                error,
            }),
            Ok(_) => Err(EntryEvidenceError::NoContradiction(
                "the last entry is valid".into(),
            )),
            Err(e) if committed(&e) => Ok(e),
            Err(e) => Err(EntryEvidenceError::NoContradiction(format!(
                "{e}: the leaf does not commit to what fails, so anyone could have altered it"
            ))),
        }
    }

    /// The CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        encode(&Wire(
            1,
            ByteBuf::from(self.checkpoint.to_note().into_bytes()),
            self.entries
                .iter()
                .map(|e| ByteBuf::from(e.to_wire()))
                .collect(),
            self.proof
                .iter()
                .map(|h| ByteBuf::from(h.as_bytes().to_vec()))
                .collect(),
        ))
    }

    /// Decodes (size limit first, version checked); does not verify.
    pub fn from_cbor(bytes: &[u8]) -> Result<EntryEvidence, EntryEvidenceError> {
        let wire: Wire = decode(bytes, MAX_ENTRY_EVIDENCE_SIZE)?;
        if wire.0 != 1 {
            return Err(WireError::InvalidField {
                field: "version",
                reason: format!("expected 1, got {}", wire.0),
            }
            .into());
        }
        let checkpoint = SignedCheckpoint::parse(&wire.1)
            .map_err(|e| EntryEvidenceError::Checkpoint(e.to_string()))?;
        let entries = wire
            .2
            .iter()
            .map(|e| LogEntry::from_wire(e))
            .collect::<Result<Vec<_>, _>>()?;
        if wire.3.len() > 64 {
            return Err(WireError::InvalidField {
                field: "proof",
                reason: "more than 64 hashes".into(),
            }
            .into());
        }
        let proof = wire
            .3
            .iter()
            .map(|h| {
                LogHash::from_slice(h).map_err(|e| WireError::InvalidField {
                    field: "proof hash",
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EntryEvidence {
            checkpoint,
            entries,
            proof,
        })
    }

    /// The size of the log prefix the evidence holds.
    pub fn prefix(&self) -> TreeSize {
        TreeSize(self.entries.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::TopicKeyCert;
    use crate::crypto::{IdentityKey, Randomness, ServerKey, Suite, TopicKey};
    use crate::ids::{Epoch, MemberIndex, UserId};
    use crate::message::{MessageError, encrypt};
    use crate::tlog::{Checkpoint, LeafIndex, MemoryNodeStore, RootAt, Roots, Tree};
    use crate::topic::{ChangeBuilder, History, HostKey, MemberSpec, Role, leaf_data_for_change};
    use crate::wire::Signed;

    const HOST: &str = "a.example";

    fn member(name: &str, role: Role) -> (MemberSpec, TopicKey) {
        let user: UserId = format!("@{name}:a.example").parse().unwrap();
        let ik = IdentityKey::generate();
        let tk = TopicKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let cert = Signed::sign(TopicKeyCert::new(user.clone(), tk.public(), 0), &ik).unverified();
        let spec = MemberSpec {
            user,
            identity_key: ik.public().clone(),
            role,
            topic_key_cert: cert,
        };
        (spec, tk)
    }

    /// A host's log that forked after the create: branch X (`x`) holds alice's message at 1, the
    /// branch bob was shown (Y) another one. Bob's message, signed on Y, is then put into X at 2.
    struct Fork {
        topic: TopicId,
        key: ServerKey,
        x: Tree<MemoryNodeStore>,
        entries: Vec<LogEntry>,
    }

    fn fork() -> Fork {
        let topic = TopicId::random(&HOST.parse().unwrap());
        let (a_spec, a_tk) = member("alice", Role::Admin);
        let (b_spec, b_tk) = member("bob", Role::Writer);
        let key = ServerKey::generate();
        let (created, mk) = ChangeBuilder::create(
            &topic,
            &a_tk,
            History::Shared,
            vec![a_spec, b_spec],
            HostKey::of(key.public()),
        )
        .build(0, &mut Randomness::Os)
        .unwrap();
        let keys = mk.unwrap().epoch_keys(&topic, Epoch(0));
        let mut x = Tree::new(MemoryNodeStore::new());
        let mut y = Roots::new();
        let leaf0 = leaf_data_for_change(created.change.signed_bytes());
        x.append(&leaf0).unwrap();
        y.append(&leaf0).unwrap();
        let post = |sender: u32, tk: &TopicKey, seen: u64, root: &LogHash, text: &[u8]| {
            encrypt(
                &topic,
                &keys,
                MemberIndex(sender),
                tk.signing(),
                TreeSize(seen),
                root,
                text,
            )
            .unwrap()
        };
        let on_x = post(0, &a_tk, 1, &x.root(), b"x");
        x.append(&on_x.leaf_data()).unwrap();
        let on_y = post(0, &a_tk, 1, &y.root_at(TreeSize(1)).unwrap(), b"y");
        y.append(&on_y.leaf_data()).unwrap();
        // Bob saw Y (size 2) and signs over Y's root; the host appends it to X anyway.
        let bob = post(1, &b_tk, 2, &y.root_at(TreeSize(2)).unwrap(), b"b");
        x.append(&bob.leaf_data()).unwrap();
        Fork {
            topic,
            key,
            x,
            entries: vec![
                LogEntry::change(&created.change),
                LogEntry::message(&on_x),
                LogEntry::message(&bob),
            ],
        }
    }

    impl Fork {
        /// The host's checkpoint of X and entries `0 ..= last` with the proof to it.
        fn evidence(&self, last: usize) -> EntryEvidence {
            let n = self.x.size();
            let c = Checkpoint::new(&log_origin(&self.topic), n, self.x.root(), 7).unwrap();
            let upto = TreeSize(last as u64 + 1);
            EntryEvidence {
                checkpoint: SignedCheckpoint::sign(&c, &self.key, HOST).unwrap(),
                entries: self.entries[..=last].to_vec(),
                proof: match upto == n {
                    true => Vec::new(),
                    false => self.x.consistency_proof(upto, n).unwrap().path,
                },
            }
        }
    }

    #[test]
    fn a_reader_of_one_branch_refuses_the_other_branchs_message() {
        let f = fork();
        let mut r = Replayer::new();
        r.push(&f.entries[0]).unwrap();
        r.push(&f.entries[1]).unwrap();
        assert_eq!(
            r.roots().root_at(TreeSize(2)).unwrap(),
            f.x.root_at(TreeSize(2)).unwrap()
        );
        assert!(matches!(
            r.push(&f.entries[2]).unwrap_err(),
            EntryError::Message {
                index: LeafIndex(2),
                error: MessageError::BadSignature
            }
        ));
    }

    /// The message leaf commits to the signature (`protocol.md` §8.1), so a signed log holding a
    /// post from another branch convicts its host with its key alone.
    #[test]
    fn a_signed_log_holding_the_other_branchs_message_is_evidence() {
        let f = fork();
        let e = f.evidence(2);
        let back = EntryEvidence::from_cbor(&e.to_cbor()).unwrap();
        let public = f.key.public();
        assert!(matches!(
            back.verify(&f.topic, public, HOST),
            Ok(EntryError::Message {
                error: MessageError::BadSignature,
                ..
            })
        ));
        // Nothing before it is invalid.
        assert!(matches!(
            f.evidence(1).verify(&f.topic, public, HOST),
            Err(EntryEvidenceError::NoContradiction(_))
        ));
        // Under another key, or for another topic, it shows nothing.
        assert!(matches!(
            e.verify(&f.topic, ServerKey::generate().public(), HOST),
            Err(EntryEvidenceError::Checkpoint(_))
        ));
        let other = TopicId::random(&HOST.parse().unwrap());
        assert!(e.verify(&other, public, HOST).is_err());
    }

    /// Anyone can alter a message's signature on the way, but then its leaf is not the one the
    /// host signed: the altered copy is not in the log and convicts nobody.
    #[test]
    fn an_altered_signature_is_not_in_the_log_and_convicts_nobody() {
        let f = fork();
        let mut e = f.evidence(1);
        let mut wire = e.entries[1].1.clone();
        let n = wire.len();
        wire[n - 1] ^= 1;
        e.entries[1] = LogEntry(e.entries[1].0, wire);
        assert!(matches!(
            e.verify(&f.topic, f.key.public(), HOST),
            Err(EntryEvidenceError::NotInLog(_))
        ));
    }
}

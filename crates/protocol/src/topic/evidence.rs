//! Evidence that the hosting server accepted into its own signed log an entry whose signature
//! does not verify under its own log root (`federation-spec/tag-log.md` §8, kind
//! `unbound_entry`): the fork binding of `protocol.md` §6.4 and §7.2, caught in the host's log.
//!
//! A message signature covers the root at its `seen`, a change signature the root at its own
//! position. An entry signed on another branch of a forked log fails under this branch's root;
//! the hosting server checks every entry with its own root before appending it, so such an entry
//! in its signed log means the host broke its own rule — most often because it showed the author
//! a different tree than the one it signed.
//!
//! [`UnboundEntry`] holds the host's signed checkpoint, the entry with its inclusion proof, the
//! host's root at the bound size with a consistency proof to the checkpoint, the author's member
//! spec (Identity Key and Topic Key certificate) and, when known, the root the author did sign
//! over. [`UnboundEntry::verify`] checks it with the host's key alone.
//!
//! Strength (`tag-log.md` §8.3): a **change** with the author's root is conclusive — the leaf
//! commits to the signed change, and a signature valid over another root cannot verify over the
//! host's. Without that root it rests on the signer spec being the author's at that position
//! (which the log's changes before it show). A **message** leaf commits to header and tag, not to
//! the signature: the host refutes such evidence by producing the message it accepted, whose
//! signature verifies under its root (then the author signed twice, or the presenter altered it).

use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::log::{LogEntry, ParsedEntry, check_in_log, leaf_data_for_change, log_origin};
use super::{MAX_CHANGE_LEN, MemberSpec};
use crate::certs::TopicKeyCert;
use crate::crypto::{IdentityPublicKey, ServerPublicKey, TopicPublicKey};
use crate::ids::TopicId;
use crate::tlog::checkpoint::MAX_NOTE_SIZE;
use crate::tlog::proof::parse_path;
use crate::tlog::{
    ConsistencyProof, InclusionProof, LeafIndex, LogHash, SignedCheckpoint, TreeSize, empty_root,
};
use crate::wire::Signed;
use crate::wire::{VERSION, WireError, decode_versioned, encode};

/// Evidence kind number of [`UnboundEntry`] in the numbering of `tag-log.md` §8.2.
pub const KIND_UNBOUND_ENTRY: u8 = 4;
/// Largest encoded [`UnboundEntry`] accepted: a change of [`MAX_CHANGE_LEN`], a note, two proofs
/// of 65 hashes and a member spec.
pub const MAX_UNBOUND_ENTRY_SIZE: usize = MAX_CHANGE_LEN + MAX_NOTE_SIZE + 2 * 65 * 34 + 8192;
/// Most hashes in a proof carried by the evidence.
const MAX_PROOF_HASHES: usize = 65;

/// Why an [`UnboundEntry`] shows no misbehaviour, or could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnboundError {
    /// The checkpoint is malformed or not signed by the given key.
    #[error("checkpoint in evidence: {0}")]
    Checkpoint(#[from] crate::tlog::CheckpointError),
    /// The checkpoint is not for the named topic's log.
    #[error("checkpoint is for another log")]
    WrongOrigin,
    /// The entry is not at its index under the checkpoint.
    #[error("entry is not in the checkpoint's log at its index")]
    NotInLog,
    /// The root given is not the host's root at the bound size.
    #[error("the root given is not the log's root at size {0}: {1}")]
    NotTheRoot(TreeSize, String),
    /// The member spec does not hold a valid Topic Key certificate.
    #[error("signer: {0}")]
    Signer(String),
    /// Nothing contradicts: the entry's signature verifies under the host's root.
    #[error("no contradiction: {0}")]
    NoContradiction(&'static str),
    /// The bytes are not valid encoded evidence.
    #[error("evidence encoding: {0}")]
    Wire(#[from] WireError),
}

/// An entry of the host's signed log whose signature fails under the host's own root at the size
/// it binds (`tag-log.md` §8.1, `unbound_entry`).
#[derive(Debug, Clone)]
pub struct UnboundEntry {
    /// The topic.
    pub topic: TopicId,
    /// The hosting server's signed checkpoint that includes the entry.
    pub checkpoint: SignedCheckpoint,
    /// The entry's index.
    pub index: LeafIndex,
    /// The entry, as the log serves it.
    pub entry: LogEntry,
    /// Inclusion proof of the entry's leaf at `index` in the checkpoint's tree.
    pub inclusion: Vec<LogHash>,
    /// The host's root at the bound size (a message's `seen`, a change's own index).
    pub bound_root: LogHash,
    /// Consistency proof from the bound size to the checkpoint's size (empty when the bound size
    /// is 0 or the checkpoint's size).
    pub consistency: Vec<LogHash>,
    /// The author: its Identity Key and Topic Key certificate, as the change that added it
    /// carried them.
    pub signer: Signer,
    /// The root the author signed over, when the finder knows it (e.g. the other branch's root
    /// at that size): the signature must verify under it.
    pub signed_root: Option<LogHash>,
}

/// Wire form: `[1, 4, topic, note, index, entry, [* inclusion hash], bound root,
/// [* consistency hash], signer member spec]`.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct UnboundWire {
    version: u8,
    kind: u8,
    topic: TopicId,
    note: ByteBuf,
    index: u64,
    entry: ByteBuf,
    inclusion: Vec<ByteBuf>,
    bound_root: ByteBuf,
    consistency: Vec<ByteBuf>,
    signer: Signer,
    signed_root: Option<ByteBuf>,
}

/// Who signed the entry: `[identity key, topic key certificate]` (the certificate names the user).
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct Signer {
    /// The author's Identity Key.
    pub identity_key: IdentityPublicKey,
    /// The author's Topic Key, certified by the Identity Key.
    pub topic_key_cert: Signed<TopicKeyCert>,
}

impl Signer {
    /// The identity and certificate of a member spec (its role plays no part in the evidence).
    pub fn of(spec: &MemberSpec) -> Signer {
        Signer {
            identity_key: spec.identity_key.clone(),
            topic_key_cert: spec.topic_key_cert.clone(),
        }
    }

    /// The certified Topic Key.
    fn topic_key(&self) -> Result<TopicPublicKey, UnboundError> {
        let bad = |e: String| UnboundError::Signer(e);
        let cert = self
            .topic_key_cert
            .clone()
            .verify(&self.identity_key)
            .map_err(|e| bad(e.to_string()))?;
        cert.topic_key().map_err(|e| bad(e.to_string()))
    }
}

impl UnboundEntry {
    /// The log size whose root the entry's signature binds: a message's `seen`, a change's own
    /// index (`protocol.md` §6.4, §7.2).
    pub fn bound_size(&self) -> Result<TreeSize, UnboundError> {
        match self.entry.parse()? {
            ParsedEntry::Message(m) => Ok(m.header().seen),
            ParsedEntry::Change(_) => Ok(TreeSize(self.index.0)),
        }
    }

    /// Checks from scratch, with the hosting server's key `key` and key name `key_name` only,
    /// that the host's signed log contains this entry and that its signature, with the signer's
    /// Topic Key, fails under the host's own root at the bound size.
    pub fn verify(&self, key: &ServerPublicKey, key_name: &str) -> Result<(), UnboundError> {
        let c = self.checkpoint.verify(key, key_name)?.clone();
        if c.origin != log_origin(&self.topic) {
            return Err(UnboundError::WrongOrigin);
        }
        // 1. The entry is in the host's log at its index (tag-log.md §9.1).
        let parsed = self.entry.parse()?;
        let leaf = match &parsed {
            ParsedEntry::Message(m) => [
                &[super::LEAF_MESSAGE][..],
                &m.header().to_bytes(),
                &m.tag().0,
            ]
            .concat(),
            ParsedEntry::Change(s) => leaf_data_for_change(s.signed_bytes()),
        };
        let proof = InclusionProof {
            index: self.index,
            size: c.size,
            path: self.inclusion.clone(),
        };
        check_in_log(&self.topic, &leaf, &proof, &c).map_err(|_| UnboundError::NotInLog)?;
        // 2. `bound_root` is the host's own root at the bound size.
        let bound = self.bound_size()?;
        if bound.0 > self.index.0 {
            return Err(UnboundError::NoContradiction(
                "seen is beyond the entry's index (a SeenAhead entry, not a fork binding)",
            ));
        }
        self.check_root(bound, &c.root, c.size)?;
        // 3. The signature fails with the signer's Topic Key under that root.
        let tk = self.signer.topic_key()?;
        let verifies = |root: &LogHash| match &parsed {
            ParsedEntry::Message(m) => m.clone().verify(&self.topic, &tk.signing, root).is_ok(),
            ParsedEntry::Change(s) => s.clone().verify_bound(&tk.signing, root.as_bytes()).is_ok(),
        };
        if verifies(&self.bound_root) {
            return Err(UnboundError::NoContradiction(
                "the signature verifies under the host's root",
            ));
        }
        // 4. If given, the root the author signed over: the signature is the author's, over a
        // root the host's log does not have at that size.
        if let Some(signed) = &self.signed_root
            && !verifies(signed)
        {
            return Err(UnboundError::NoContradiction(
                "the signature does not verify under the root given as the author's",
            ));
        }
        Ok(())
    }

    fn check_root(
        &self,
        bound: TreeSize,
        root: &LogHash,
        size: TreeSize,
    ) -> Result<(), UnboundError> {
        let not = |why: &str| UnboundError::NotTheRoot(bound, why.to_owned());
        if bound.0 == 0 || bound == size {
            let expected = if bound.0 == 0 { empty_root() } else { *root };
            if !self.consistency.is_empty() {
                return Err(not("no proof is needed at this size"));
            }
            return match self.bound_root == expected {
                true => Ok(()),
                false => Err(not("root differs")),
            };
        }
        // RFC 9162 §2.1.4.2
        ConsistencyProof {
            old: bound,
            new: size,
            path: self.consistency.clone(),
        }
        .verify(&self.bound_root, root)
        .map_err(|e| not(&e.to_string()))
    }

    /// CBOR encoding, to store and to send.
    pub fn to_cbor(&self) -> Vec<u8> {
        let hashes = |p: &[LogHash]| p.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect();
        encode(&UnboundWire {
            version: VERSION,
            kind: KIND_UNBOUND_ENTRY,
            topic: self.topic.clone(),
            note: ByteBuf::from(self.checkpoint.to_note().into_bytes()),
            index: self.index.0,
            entry: ByteBuf::from(self.entry.to_wire()),
            inclusion: hashes(&self.inclusion),
            bound_root: ByteBuf::from(self.bound_root.0.to_vec()),
            consistency: hashes(&self.consistency),
            signer: self.signer.clone(),
            signed_root: self.signed_root.map(|r| ByteBuf::from(r.0.to_vec())),
        })
    }

    /// Decodes the evidence (not yet verified: call [`UnboundEntry::verify`]).
    pub fn from_cbor(bytes: &[u8]) -> Result<UnboundEntry, UnboundError> {
        let w: UnboundWire = decode_versioned(bytes, MAX_UNBOUND_ENTRY_SIZE)?;
        let invalid =
            |field, reason: String| UnboundError::Wire(WireError::InvalidField { field, reason });
        if w.kind != KIND_UNBOUND_ENTRY {
            return Err(invalid(
                "kind",
                format!("kind {} is not unbound_entry", w.kind),
            ));
        }
        if w.inclusion.len() > MAX_PROOF_HASHES || w.consistency.len() > MAX_PROOF_HASHES {
            return Err(invalid("proof", "too many hashes".into()));
        }
        let path = |p: &[ByteBuf]| parse_path(p).map_err(|e| invalid("proof", e.to_string()));
        Ok(UnboundEntry {
            checkpoint: SignedCheckpoint::parse(&w.note)?,
            index: LeafIndex(w.index),
            entry: LogEntry::from_wire(&w.entry)?,
            inclusion: path(&w.inclusion)?,
            bound_root: LogHash::from_slice(&w.bound_root)
                .map_err(|e| invalid("bound root", e.to_string()))?,
            consistency: path(&w.consistency)?,
            signer: w.signer,
            signed_root: w
                .signed_root
                .map(|r| LogHash::from_slice(&r))
                .transpose()
                .map_err(|e| invalid("signed root", e.to_string()))?,
            topic: w.topic,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::TopicKeyCert;
    use crate::crypto::{IdentityKey, MessageKey, Randomness, ServerKey, Suite, TopicKey};
    use crate::ids::{Epoch, UserId};
    use crate::message::encrypt;
    use crate::tlog::{Checkpoint, MemoryNodeStore, RootAt, Roots, Tree};
    use crate::topic::{
        Action, ChangeBuilder, EntryError, History, MemberIndex, Replayer, Role, TopicState,
    };
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
    /// branch bob was shown (`y`) another one. Bob's message, signed on Y, is then put into X at 2.
    struct Fork {
        topic: TopicId,
        key: ServerKey,
        x: Tree<MemoryNodeStore>,
        entries: Vec<LogEntry>,
        specs: [MemberSpec; 2],
        /// Y's root at 2, which bob signed over.
        y_root: LogHash,
    }

    fn fork() -> Fork {
        let topic = TopicId::random(&HOST.parse().unwrap());
        let (a_spec, a_tk) = member("alice", Role::Admin);
        let (b_spec, b_tk) = member("bob", Role::Writer);
        let (created, mk) = ChangeBuilder::create(
            &topic,
            &a_tk,
            History::Shared,
            vec![a_spec.clone(), b_spec.clone()],
        )
        .build(0, &mut Randomness::Os)
        .unwrap();
        let keys = mk.unwrap().epoch_keys(&topic, Epoch(0));
        let create = LogEntry::change(&created.change);
        let mut x = Tree::new(MemoryNodeStore::new());
        let mut y = Roots::new();
        let leaf0 = leaf_data_for_change(created.change.signed_bytes());
        x.append(&leaf0).unwrap();
        y.append(&leaf0).unwrap();
        let on_x = encrypt(
            &topic,
            &keys,
            MemberIndex(0),
            a_tk.signing(),
            TreeSize(1),
            &x.root(),
            b"x",
        )
        .unwrap();
        x.append(&on_x.leaf_data()).unwrap();
        let on_y = encrypt(
            &topic,
            &keys,
            MemberIndex(0),
            a_tk.signing(),
            TreeSize(1),
            &y.root(),
            b"y",
        )
        .unwrap();
        y.append(&on_y.leaf_data()).unwrap();
        // Bob saw Y (size 2) and signs over Y's root; the host appends it to X anyway.
        let bob_root = y.root();
        let bob = encrypt(
            &topic,
            &keys,
            MemberIndex(1),
            b_tk.signing(),
            TreeSize(2),
            &y.root(),
            b"b",
        )
        .unwrap();
        x.append(&bob.leaf_data()).unwrap();
        let _ = created.next;
        Fork {
            topic,
            key: ServerKey::generate(),
            x,
            entries: vec![create, LogEntry::message(&on_x), LogEntry::message(&bob)],
            specs: [a_spec, b_spec],
            y_root: bob_root,
        }
    }

    impl Fork {
        fn evidence(&self, index: u64, signer: usize) -> UnboundEntry {
            let n = self.x.size();
            let c = Checkpoint::new(&log_origin(&self.topic), n, self.x.root(), 7).unwrap();
            let bound = match self.entries[index as usize].parse().unwrap() {
                ParsedEntry::Message(m) => m.header().seen,
                ParsedEntry::Change(_) => TreeSize(index),
            };
            UnboundEntry {
                topic: self.topic.clone(),
                checkpoint: SignedCheckpoint::sign(&c, &self.key, HOST).unwrap(),
                index: LeafIndex(index),
                entry: self.entries[index as usize].clone(),
                inclusion: self.x.inclusion_proof(LeafIndex(index), n).unwrap().path,
                bound_root: self.x.root_at(bound).unwrap(),
                consistency: match bound {
                    b if b.0 == 0 || b == n => Vec::new(),
                    b => self.x.consistency_proof(b, n).unwrap().path,
                },
                signer: Signer::of(&self.specs[signer]),
                signed_root: None,
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
                error: crate::message::MessageError::BadSignature
            }
        ));
    }

    #[test]
    fn unbound_entry_evidence_verifies_with_the_host_key_alone() {
        let f = fork();
        let e = f.evidence(2, 1);
        e.verify(f.key.public(), HOST).unwrap();
        // It travels as CBOR and verifies again after decoding.
        let back = UnboundEntry::from_cbor(&e.to_cbor()).unwrap();
        back.verify(f.key.public(), HOST).unwrap();
        assert_eq!(back.to_cbor(), e.to_cbor());
        assert_eq!(back.bound_size().unwrap(), TreeSize(2));
    }

    #[test]
    fn mutated_or_false_unbound_entry_evidence_fails() {
        let f = fork();
        let good = f.evidence(2, 1);
        // Another key, another key name.
        assert!(matches!(
            good.verify(ServerKey::generate().public(), HOST),
            Err(UnboundError::Checkpoint(_))
        ));
        assert!(good.verify(f.key.public(), "b.example").is_err());
        // The root of the other branch (the one the signature does verify under) is not the host's.
        let mut e = good.clone();
        e.bound_root.0[0] ^= 1;
        assert!(matches!(
            e.verify(f.key.public(), HOST),
            Err(UnboundError::NotTheRoot(..))
        ));
        // A wrong inclusion proof, another index.
        let mut e = good.clone();
        e.inclusion[0].0[0] ^= 1;
        assert_eq!(
            e.verify(f.key.public(), HOST).unwrap_err(),
            UnboundError::NotInLog
        );
        let mut e = good.clone();
        e.index = LeafIndex(1);
        assert_eq!(
            e.verify(f.key.public(), HOST).unwrap_err(),
            UnboundError::NotInLog
        );
        // A consistency proof altered.
        let mut e = good.clone();
        e.consistency[0].0[0] ^= 1;
        assert!(matches!(
            e.verify(f.key.public(), HOST),
            Err(UnboundError::NotTheRoot(..))
        ));
        // An honest entry is no evidence.
        assert!(matches!(
            f.evidence(1, 0).verify(f.key.public(), HOST),
            Err(UnboundError::NoContradiction(_))
        ));
        // A signer spec whose certificate does not verify.
        let mut e = good.clone();
        e.signer.identity_key = IdentityKey::generate().public().clone();
        assert!(matches!(
            e.verify(f.key.public(), HOST),
            Err(UnboundError::Signer(_))
        ));
        // A root the signature does not verify under is not the author's.
        let mut e = good.clone();
        e.signed_root = Some(f.x.root());
        assert!(matches!(
            e.verify(f.key.public(), HOST),
            Err(UnboundError::NoContradiction(_))
        ));
        // Another member named as the signer: the signature is not theirs over the author's root.
        let mut e = good.clone();
        e.signed_root = Some(f.y_root);
        e.signer = Signer::of(&f.specs[0]);
        assert!(matches!(
            e.verify(f.key.public(), HOST),
            Err(UnboundError::NoContradiction(_))
        ));
        // With the author's root every single flipped byte of the encoding fails to decode or to
        // verify (without it a message's signature bytes are not committed by its leaf: §8.3).
        let mut good = good;
        good.signed_root = Some(f.y_root);
        good.verify(f.key.public(), HOST).unwrap();
        let cbor = good.to_cbor();
        for i in 0..cbor.len() {
            let mut b = cbor.clone();
            b[i] ^= 0x01;
            let ok = UnboundEntry::from_cbor(&b).and_then(|e| e.verify(f.key.public(), HOST));
            assert!(ok.is_err(), "flip at byte {i} still verifies");
        }
    }

    #[test]
    fn a_change_signed_on_another_branch_is_evidence_too() {
        let topic = TopicId::random(&HOST.parse().unwrap());
        let (a_spec, a_tk) = member("alice", Role::Admin);
        let (created, _) =
            ChangeBuilder::create(&topic, &a_tk, History::Shared, vec![a_spec.clone()])
                .build(0, &mut Randomness::Os)
                .unwrap();
        let mut x = Tree::new(MemoryNodeStore::new());
        x.append(&leaf_data_for_change(created.change.signed_bytes()))
            .unwrap();
        let y_root = crate::tlog::leaf_hash(b"the branch alice was shown");
        let (rekey, _) =
            ChangeBuilder::new(&created.next, y_root, MemberIndex(0), &a_tk, Action::Rekey)
                .build(1, &mut Randomness::Os)
                .unwrap();
        let entry = LogEntry::change(&rekey.change);
        // On X the rekey does not verify (position 1, X's root).
        let state: &TopicState = &created.next;
        assert_eq!(
            state
                .check_change(rekey.change.unverified(), &x.root())
                .unwrap_err(),
            crate::topic::ChangeError::BadSignature
        );
        x.append(&leaf_data_for_change(rekey.change.signed_bytes()))
            .unwrap();
        let key = ServerKey::generate();
        let c = Checkpoint::new(&log_origin(&topic), x.size(), x.root(), 3).unwrap();
        let e = UnboundEntry {
            topic,
            checkpoint: SignedCheckpoint::sign(&c, &key, HOST).unwrap(),
            index: LeafIndex(1),
            entry,
            inclusion: x.inclusion_proof(LeafIndex(1), x.size()).unwrap().path,
            bound_root: x.root_at(TreeSize(1)).unwrap(),
            consistency: x.consistency_proof(TreeSize(1), x.size()).unwrap().path,
            signer: Signer::of(&a_spec),
            signed_root: Some(y_root),
        };
        e.verify(key.public(), HOST).unwrap();
        let back = UnboundEntry::from_cbor(&e.to_cbor()).unwrap();
        back.verify(key.public(), HOST).unwrap();
        let _ = MessageKey::generate();
    }
}

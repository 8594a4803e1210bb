//! The proof that comes with another user's Identity Key, and the check every client makes
//! before it uses that key (`directory.md` §4, §6.1).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{DirectoryEntry, DirectoryError, EntryKind, directory_origin};
use crate::certs::Registration;
use crate::crypto::{IdentityPublicKey, ServerPublicKey};
use crate::ids::UserId;
use crate::tlog::{
    ConsistencyProof, InclusionProof, LeafIndex, LogHash, LogView, SignedCheckpoint, TreeSize,
    WitnessError, leaf_hash,
};
use crate::wire::{Signed, SignedBytes};

/// `[entry, index, checkpoint, inclusion, consistency]` (`directory.md` §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryProof {
    /// The user's last directory entry (leaf data).
    pub entry: Vec<u8>,
    /// Its leaf index.
    pub index: u64,
    /// The checkpoint note of the user's server, with witness cosignatures.
    pub checkpoint: String,
    /// Inclusion proof of `index` at the checkpoint's size.
    pub inclusion: Vec<LogHash>,
    /// Consistency proof from the size the client named (`known`) to the checkpoint's size.
    pub consistency: Vec<LogHash>,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct ProofWire {
    entry: ByteBuf,
    index: u64,
    checkpoint: String,
    inclusion: Vec<ByteBuf>,
    consistency: Vec<ByteBuf>,
}

/// Most hashes in one proof path (a tree of 2^63 leaves needs 63; consistency at most 2·63).
const MAX_PATH: usize = 128;

fn hashes_to_wire(path: &[LogHash]) -> Vec<ByteBuf> {
    path.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect()
}

fn hashes_from_wire<E: serde::de::Error>(path: Vec<ByteBuf>) -> Result<Vec<LogHash>, E> {
    if path.len() > MAX_PATH {
        return Err(E::custom(format!("proof of {} hashes", path.len())));
    }
    path.iter()
        .map(|h| LogHash::from_slice(h).map_err(E::custom))
        .collect()
}

impl Serialize for DirectoryProof {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProofWire {
            entry: ByteBuf::from(self.entry.clone()),
            index: self.index,
            checkpoint: self.checkpoint.clone(),
            inclusion: hashes_to_wire(&self.inclusion),
            consistency: hashes_to_wire(&self.consistency),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DirectoryProof {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ProofWire::deserialize(d)?;
        Ok(DirectoryProof {
            entry: w.entry.into_vec(),
            index: w.index,
            checkpoint: w.checkpoint,
            inclusion: hashes_from_wire(w.inclusion)?,
            consistency: hashes_from_wire(w.consistency)?,
        })
    }
}

/// A binding a client accepted for a user (`directory.md` §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Identity Key.
    pub identity_key: IdentityPublicKey,
    /// The index of the directory entry that bound it.
    pub index: u64,
    /// The size of the checkpoint it was accepted at.
    pub size: u64,
}

/// What the client knows when it checks a lookup.
#[derive(Debug, Clone)]
pub struct LookupCheck<'a> {
    /// The user looked up.
    pub user: &'a UserId,
    /// Witnesses whose cosignature counts, by key name and key.
    pub witnesses: &'a [(String, ServerPublicKey)],
    /// Whether at least one of them must have cosigned (§6.1 step 2).
    pub witness_required: bool,
    /// The binding accepted for the user before, if any.
    pub accepted: Option<&'a Binding>,
    /// Whether the user verified this contact's key (§7): any change is then refused.
    pub verified: bool,
}

/// What an accepted lookup means for the user's binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    /// The first binding accepted for the user.
    First(Binding),
    /// The same key as accepted before (possibly at a later entry or size).
    Same(Binding),
    /// A rotation signed by the accepted key, followed (`identity_rotated`).
    Rotated {
        /// The key rotated from.
        from: IdentityPublicKey,
        /// The binding now.
        to: Binding,
    },
}

impl LookupOutcome {
    /// The binding accepted now.
    pub fn binding(&self) -> &Binding {
        match self {
            LookupOutcome::First(b) | LookupOutcome::Same(b) => b,
            LookupOutcome::Rotated { to, .. } => to,
        }
    }
}

/// A lookup that passed: the outcome and the witnesses whose cosignature verified.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The binding's outcome.
    pub outcome: LookupOutcome,
    /// Witnesses (other than the log's server) whose cosignature verified.
    pub witnessed_by: Vec<String>,
}

/// Maps a view's refusal to the directory's codes (§6.1 step 3).
pub fn view_error(server: &str, e: WitnessError) -> DirectoryError {
    match e {
        WitnessError::Misbehaviour(evidence) => DirectoryError::Forked {
            server: server.to_owned(),
            kind: evidence.kind().to_owned(),
        },
        WitnessError::Compromised => DirectoryError::Forked {
            server: server.to_owned(),
            kind: "evidence held".into(),
        },
        e @ WitnessError::Stale { .. } => DirectoryError::Rollback {
            server: server.to_owned(),
            reason: e.to_string(),
        },
        e => DirectoryError::BadCheckpoint {
            server: server.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// Verifies a note and updates `view` with it (§6.1 steps 1–3): signature and origin, the
/// witnesses of `witnesses` whose cosignature verifies (one required when `witness_required`),
/// consistency with the held checkpoint. Returns the note and the witnesses that cosigned.
pub fn update_view(
    view: &mut LogView,
    note: &str,
    consistency: &[LogHash],
    witnesses: &[(String, ServerPublicKey)],
    witness_required: bool,
) -> Result<(SignedCheckpoint, Vec<String>), DirectoryError> {
    let server = view
        .origin()
        .strip_suffix("/directory")
        .unwrap_or(view.origin())
        .to_owned();
    let bad = |reason: String| DirectoryError::BadCheckpoint {
        server: server.clone(),
        reason,
    };
    let signed = SignedCheckpoint::parse(note.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let checkpoint = view
        .keys()
        .verify(&signed)
        .map_err(|e| bad(e.to_string()))?
        .clone();
    let witnessed_by: Vec<String> = witnesses
        .iter()
        .filter(|(name, _)| *name != server)
        .filter(|(name, key)| signed.cosignature(key, name).is_ok())
        .map(|(name, _)| name.clone())
        .collect();
    if witness_required && witnessed_by.is_empty() {
        let names: Vec<&str> = witnesses
            .iter()
            .filter(|(n, _)| *n != server)
            .map(|(n, _)| n.as_str())
            .collect();
        return Err(DirectoryError::Unwitnessed {
            server: server.clone(),
            wanted: if names.is_empty() {
                "any witness".into()
            } else {
                names.join(" or ")
            },
        });
    }
    let held = view
        .latest()
        .map(|l| l.unverified_checkpoint().size)
        .unwrap_or(TreeSize(0));
    let proof = ConsistencyProof {
        old: if checkpoint.size < held {
            checkpoint.size
        } else {
            held
        },
        new: checkpoint.size,
        path: consistency.to_vec(),
    };
    view.update(signed.clone(), &proof)
        .map_err(|e| view_error(&server, e))?;
    Ok((signed, witnessed_by))
}

/// The check of §6.1 on `registration` and `proof` for `check.user`, with the client's view of
/// the user's server's directory (created by the caller with that server's keys). The view is
/// updated (and may hold evidence) even when a later step fails; persist it either way.
pub fn check_lookup(
    view: &mut LogView,
    registration: &SignedBytes,
    proof: &DirectoryProof,
    check: &LookupCheck<'_>,
) -> Result<Checked, DirectoryError> {
    let user = check.user;
    let server = user.server();
    if view.origin() != directory_origin(&server) {
        return Err(DirectoryError::BadCheckpoint {
            server: server.to_string(),
            reason: format!("the view is of {}", view.origin()),
        });
    }
    let (signed, witnessed_by) = update_view(
        view,
        &proof.checkpoint,
        &proof.consistency,
        check.witnesses,
        check.witness_required,
    )?;
    let size = signed.unverified_checkpoint().size;
    let root = signed.unverified_checkpoint().root;
    let mismatch = |reason: String| DirectoryError::Mismatch {
        user: user.to_string(),
        reason,
    };
    let entry = DirectoryEntry::decode(&proof.entry)?;
    entry.check(&server)?;
    if entry.user != *user {
        return Err(mismatch(format!("the entry is for {}", entry.user)));
    }
    let inclusion = InclusionProof {
        index: LeafIndex(proof.index),
        size,
        path: proof.inclusion.clone(),
    };
    inclusion
        .verify(&leaf_hash(&proof.entry), &root)
        .map_err(|e| mismatch(format!("entry {} is not in the log: {e}", proof.index)))?;
    let r = Signed::<Registration>::from_signed_bytes(registration.clone())
        .and_then(|s| s.decode_unverified())
        .map_err(|e| mismatch(format!("registration: {e}")))?;
    if r.user != *user || r.identity_key != entry.identity_key {
        return Err(mismatch(
            "the registration served is not for the key the directory binds".into(),
        ));
    }
    let binding = Binding {
        identity_key: entry.identity_key.clone(),
        index: proof.index,
        size: size.0,
    };
    let outcome = compare(check, &entry, binding)?;
    Ok(Checked {
        outcome,
        witnessed_by,
    })
}

/// §6.1 step 6: the new binding against the one accepted before.
fn compare(
    check: &LookupCheck<'_>,
    entry: &DirectoryEntry,
    binding: Binding,
) -> Result<LookupOutcome, DirectoryError> {
    let user = check.user.to_string();
    let Some(accepted) = check.accepted else {
        return Ok(LookupOutcome::First(binding));
    };
    if binding.index < accepted.index {
        return Err(DirectoryError::Rollback {
            server: check.user.server().to_string(),
            reason: format!(
                "served entry {} for {user}, after entry {} was accepted",
                binding.index, accepted.index
            ),
        });
    }
    if binding.identity_key == accepted.identity_key {
        return Ok(LookupOutcome::Same(binding));
    }
    let rotated_from_accepted = entry.kind == EntryKind::Rotation
        && entry
            .rotation()
            .is_some_and(|r| r.old_identity_key == accepted.identity_key);
    if check.verified {
        return Err(DirectoryError::IdentityChanged {
            user,
            how: if rotated_from_accepted {
                "rotated since you verified it".into()
            } else {
                "a different key since you verified it".into()
            },
        });
    }
    if rotated_from_accepted {
        return Ok(LookupOutcome::Rotated {
            from: accepted.identity_key.clone(),
            to: binding,
        });
    }
    Err(DirectoryError::IdentityChanged {
        user,
        how: "a new key not signed by the one accepted before".into(),
    })
}

//! The keys a hosting server signs its checkpoints with, across rotations
//! (`federation-spec/tag-log.md` §7.6).
//!
//! A rotation is a statement signed by **both** the old and the new Server Key:
//!
//! ```text
//! rotation        = [1, server, old: bstr .size 32, new: bstr .size 32, time]
//! signed-rotation = [rotation bytes, Ed25519(old, t), Ed25519(new, t)]
//!                   t = transcript("rdv/v1/key-rotation", [rotation bytes])
//! ```
//!
//! [`HostKeys`] is a chain `k0 → k1 → … → kn` of one server's keys, each step a verified
//! rotation. Key `ki` signs checkpoints whose `time` lies in its period, from the rotation that
//! introduced it to the one that retired it (both inclusive). The chain only grows by
//! statements of keys it already trusts ([`HostKeys::learn`]): forward, by the old key's
//! signature; backward, by the new key's. Two different statements out of (or into) one key are
//! an equivocation, refused.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use crate::crypto::sign::Signature;
use crate::crypto::transcript::LABEL_KEY_ROTATION;
use crate::crypto::{ServerKey, ServerPublicKey};
use crate::wire::{VERSION, WireError, check_version, decode, decode_versioned, encode};

/// Largest encoded rotation payload (a server name is at most 255 bytes).
const MAX_ROTATION_LEN: usize = 400;
/// Largest encoded signed rotation.
pub const MAX_SIGNED_ROTATION_LEN: usize = MAX_ROTATION_LEN + 2 * 66 + 8;
/// Most keys in one chain (and most rotations a key document carries, plus one).
pub const MAX_HOST_KEYS: usize = 16;

/// Why a rotation or a chain of keys was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// Not a well-formed statement.
    #[error("rotation statement: {0}")]
    Wire(#[from] WireError),
    /// The statement is for another server.
    #[error("rotation statement of {got}, expected {expected}")]
    WrongServer {
        /// The server asked for.
        expected: String,
        /// The server named.
        got: String,
    },
    /// One of the two signatures does not verify, or old and new are the same key.
    #[error("rotation statement is not signed by both its old and its new key")]
    BadSignature,
    /// Two different statements out of, or into, one key: the server endorsed two keys.
    #[error("{server} signed two different rotations of key {key}…")]
    Equivocation {
        /// The server.
        server: String,
        /// The key both statements start (or end) at, first 8 bytes hex.
        key: String,
        /// One statement.
        a: Box<SignedRotation>,
        /// The other.
        b: Box<SignedRotation>,
    },
    /// A rotation older than the one before it, a key met twice, or too many keys.
    #[error("rotation chain: {0}")]
    Chain(&'static str),
}

/// `[1, server, old key, new key, time]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// The server (the checkpoints' key name).
    pub server: String,
    /// The key retired.
    pub old: ServerPublicKey,
    /// Its successor.
    pub new: ServerPublicKey,
    /// When `new` took over (Unix seconds).
    pub time: u64,
}

#[derive(Serialize, Deserialize)]
struct RotationWire(u8, String, ByteBuf, ByteBuf, u64);

#[derive(Serialize, Deserialize)]
struct SignedWire(ByteBuf, ByteBuf, ByteBuf);

/// A rotation statement as it travels; [`SignedRotation::verify`] checks both signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRotation {
    payload: Vec<u8>,
    old_signature: Signature,
    new_signature: Signature,
    rotation: KeyRotation,
}

impl KeyRotation {
    /// The statement `old` makes that `new` succeeds it at `time`, signed by both.
    pub fn sign(server: &str, old: &ServerKey, new: &ServerKey, time: u64) -> SignedRotation {
        let payload = encode(&RotationWire(
            VERSION,
            server.to_owned(),
            ByteBuf::from(old.public().to_bytes().to_vec()),
            ByteBuf::from(new.public().to_bytes().to_vec()),
            time,
        ));
        SignedRotation {
            old_signature: old.sign(LABEL_KEY_ROTATION, &[&payload]),
            new_signature: new.sign(LABEL_KEY_ROTATION, &[&payload]),
            rotation: KeyRotation {
                server: server.to_owned(),
                old: old.public().clone(),
                new: new.public().clone(),
                time,
            },
            payload,
        }
    }
}

fn short(key: &ServerPublicKey) -> String {
    key.as_bytes()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl SignedRotation {
    /// Decodes a statement (canonical CBOR, version 1, at most [`MAX_SIGNED_ROTATION_LEN`]
    /// bytes) and checks both signatures. It says nothing about whether `old` is trusted.
    pub fn from_wire(bytes: &[u8], server: &str) -> Result<SignedRotation, RotationError> {
        let SignedWire(payload, old_sig, new_sig) = decode(bytes, MAX_SIGNED_ROTATION_LEN)?;
        let RotationWire(version, named, old, new, time) =
            decode_versioned(&payload, MAX_ROTATION_LEN)?;
        check_version(version)?;
        if named != server {
            return Err(RotationError::WrongServer {
                expected: server.to_owned(),
                got: named,
            });
        }
        let key = |field: &'static str, b: &[u8]| {
            ServerPublicKey::from_slice(b).map_err(|_| WireError::InvalidField {
                field,
                reason: "not an Ed25519 public key".into(),
            })
        };
        let sig = |field: &'static str, b: &[u8]| {
            Signature::from_slice(b).map_err(|_| WireError::InvalidField {
                field,
                reason: "not 64 bytes".into(),
            })
        };
        let rotation = KeyRotation {
            server: named,
            old: key("old", &old)?,
            new: key("new", &new)?,
            time,
        };
        let signed = SignedRotation {
            payload: payload.into_vec(),
            old_signature: sig("old-signature", &old_sig)?,
            new_signature: sig("new-signature", &new_sig)?,
            rotation,
        };
        let r = &signed.rotation;
        if r.old == r.new
            || r.old
                .verify(
                    LABEL_KEY_ROTATION,
                    &[&signed.payload],
                    &signed.old_signature,
                )
                .is_err()
            || r.new
                .verify(
                    LABEL_KEY_ROTATION,
                    &[&signed.payload],
                    &signed.new_signature,
                )
                .is_err()
        {
            return Err(RotationError::BadSignature);
        }
        Ok(signed)
    }

    /// The wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(&SignedWire(
            ByteBuf::from(self.payload.clone()),
            ByteBuf::from(self.old_signature.0.to_vec()),
            ByteBuf::from(self.new_signature.0.to_vec()),
        ))
    }

    /// The statement (both signatures checked when it was decoded or made).
    pub fn rotation(&self) -> &KeyRotation {
        &self.rotation
    }
}

/// A chain of one server's checkpoint keys, oldest first, each step a verified rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeys {
    name: String,
    anchor: ServerPublicKey,
    rotations: Vec<SignedRotation>,
}

/// Why a checkpoint does not verify under a [`HostKeys`] chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    /// No key of the chain signed it.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A key of the chain signed it outside that key's period: a retired key used after its
    /// rotation, or a new key dated before it.
    #[error(
        "checkpoint of time {time} is signed by key {key}…, whose period is {from:?}..={until:?}"
    )]
    OutOfPeriod {
        /// The checkpoint's time.
        time: u64,
        /// The key, first 8 bytes hex.
        key: String,
        /// The key's first time, `None` for the oldest key.
        from: Option<u64>,
        /// The key's last time, `None` for the newest key.
        until: Option<u64>,
    },
}

impl HostKeys {
    /// The chain of one key: `key` signs `name`'s checkpoints at any time.
    pub fn new(name: &str, key: ServerPublicKey) -> HostKeys {
        HostKeys {
            name: name.to_owned(),
            anchor: key,
            rotations: Vec::new(),
        }
    }

    /// The key name (the server) the keys sign checkpoints under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest key: the one the server signs with now.
    pub fn current(&self) -> &ServerPublicKey {
        self.rotations
            .last()
            .map_or(&self.anchor, |r| &r.rotation.new)
    }

    /// The oldest key of the chain.
    pub fn anchor(&self) -> &ServerPublicKey {
        &self.anchor
    }

    /// The rotations, oldest first.
    pub fn rotations(&self) -> &[SignedRotation] {
        &self.rotations
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &ServerPublicKey> {
        std::iter::once(&self.anchor).chain(self.rotations.iter().map(|r| &r.rotation.new))
    }

    /// Whether `key` is a key of the chain.
    pub fn contains(&self, key: &ServerPublicKey) -> bool {
        self.keys().any(|k| k == key)
    }

    /// Key `i`'s period: from the rotation that introduced it to the one that retired it.
    fn period(&self, i: usize) -> (Option<u64>, Option<u64>) {
        let from = i.checked_sub(1).map(|j| self.rotations[j].rotation.time);
        let until = self.rotations.get(i).map(|r| r.rotation.time);
        (from, until)
    }

    /// Verifies the hosting server's signature on `note` with the key of the chain that made
    /// it, and that the checkpoint's time lies in that key's period.
    pub fn verify<'a>(&self, note: &'a SignedCheckpoint) -> Result<&'a Checkpoint, HostKeyError> {
        self.verify_by(note).map(|(_, c)| c)
    }

    /// [`Self::verify`], also returning the key that signed.
    pub fn verify_by<'a, 'b>(
        &'a self,
        note: &'b SignedCheckpoint,
    ) -> Result<(&'a ServerPublicKey, &'b Checkpoint), HostKeyError> {
        let keys: Vec<&ServerPublicKey> = self.keys().collect();
        for (i, key) in keys.iter().enumerate().rev() {
            let Ok(c) = note.verify(key, &self.name) else {
                continue;
            };
            let (from, until) = self.period(i);
            if from.is_some_and(|f| c.time < f) || until.is_some_and(|u| c.time > u) {
                return Err(HostKeyError::OutOfPeriod {
                    time: c.time,
                    key: short(key),
                    from,
                    until,
                });
            }
            return Ok((key, c));
        }
        Err(note.verify(self.current(), &self.name).err().map_or(
            HostKeyError::Checkpoint(CheckpointError::MissingSignature {
                key_name: self.name.clone(),
            }),
            HostKeyError::Checkpoint,
        ))
    }

    /// Extends the chain with `statements` (each already decoded and verified for this
    /// server): forward while one starts at the newest key, backward while one ends at the
    /// oldest. Statements about other keys are ignored. `Ok(true)` when the chain grew.
    /// Refused, leaving the chain as it was: two different statements out of or into a key of
    /// the chain (an equivocation), times that go back, a key met twice, more than
    /// [`MAX_HOST_KEYS`] keys.
    pub fn learn(&mut self, statements: &[SignedRotation]) -> Result<bool, RotationError> {
        let mut next = self.clone();
        loop {
            let forward = next.one_way(statements, true)?;
            let backward = next.one_way(statements, false)?;
            if !forward && !backward {
                break;
            }
        }
        next.check_statements(statements)?;
        let grew = next.rotations.len() != self.rotations.len();
        *self = next;
        Ok(grew)
    }

    /// One step forward (from the newest key) or backward (into the oldest).
    fn one_way(
        &mut self,
        statements: &[SignedRotation],
        forward: bool,
    ) -> Result<bool, RotationError> {
        let end = if forward {
            self.current().clone()
        } else {
            self.anchor.clone()
        };
        let mut found: Option<&SignedRotation> = None;
        for s in statements {
            let r = &s.rotation;
            if r.server != self.name || (if forward { &r.old } else { &r.new }) != &end {
                continue;
            }
            match found {
                Some(f) if f != s => return Err(self.equivocation(&end, f, s)),
                _ => found = Some(s),
            }
        }
        let Some(s) = found else {
            return Ok(false);
        };
        let r = &s.rotation;
        let other = if forward { &r.new } else { &r.old };
        if self.contains(other) {
            return Err(RotationError::Chain("a key comes back"));
        }
        if self.rotations.len() + 2 > MAX_HOST_KEYS {
            return Err(RotationError::Chain("too many keys"));
        }
        if forward {
            if self
                .rotations
                .last()
                .is_some_and(|l| l.rotation.time > r.time)
            {
                return Err(RotationError::Chain(
                    "a rotation older than the one before it",
                ));
            }
            self.rotations.push(s.clone());
        } else {
            if self
                .rotations
                .first()
                .is_some_and(|f| f.rotation.time < r.time)
            {
                return Err(RotationError::Chain(
                    "a rotation older than the one before it",
                ));
            }
            self.rotations.insert(0, s.clone());
            self.anchor = r.old.clone();
        }
        Ok(true)
    }

    /// No statement names a key of the chain on one side and a key off the chain's path on the
    /// other: the server endorsed two successors (or predecessors) of one key.
    fn check_statements(&self, statements: &[SignedRotation]) -> Result<(), RotationError> {
        for s in statements.iter().filter(|s| s.rotation.server == self.name) {
            for (i, held) in self.rotations.iter().enumerate() {
                let (h, r) = (&held.rotation, &s.rotation);
                if (h.old == r.old || h.new == r.new) && held != s {
                    let key = if h.old == r.old { &h.old } else { &h.new };
                    return Err(self.equivocation(key, &self.rotations[i], s));
                }
            }
        }
        Ok(())
    }

    fn equivocation(
        &self,
        key: &ServerPublicKey,
        a: &SignedRotation,
        b: &SignedRotation,
    ) -> RotationError {
        RotationError::Equivocation {
            server: self.name.clone(),
            key: short(key),
            a: Box::new(a.clone()),
            b: Box::new(b.clone()),
        }
    }

    /// Persisted form: `[1, name, anchor key, [* signed-rotation]]`.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(&HostKeysWire(
            VERSION,
            self.name.clone(),
            ByteBuf::from(self.anchor.to_bytes().to_vec()),
            self.rotations
                .iter()
                .map(|r| ByteBuf::from(r.to_wire()))
                .collect(),
        ))
    }

    /// Reads what [`Self::to_wire`] wrote: every rotation is checked again and must continue
    /// the chain from its anchor.
    pub fn from_wire(bytes: &[u8]) -> Result<HostKeys, RotationError> {
        let limit = 512 + MAX_HOST_KEYS * (MAX_SIGNED_ROTATION_LEN + 4);
        let HostKeysWire(version, name, anchor, rotations) = decode_versioned(bytes, limit)?;
        check_version(version)?;
        let anchor = ServerPublicKey::from_slice(&anchor).map_err(|_| WireError::InvalidField {
            field: "anchor",
            reason: "not an Ed25519 public key".into(),
        })?;
        let statements = rotations
            .iter()
            .map(|r| SignedRotation::from_wire(r, &name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = HostKeys::new(&name, anchor);
        for s in &statements {
            if s.rotation.old != *keys.current() {
                return Err(RotationError::Chain(
                    "a stored rotation does not continue the chain",
                ));
            }
            keys.learn(std::slice::from_ref(s))?;
        }
        Ok(keys)
    }
}

#[derive(Serialize, Deserialize)]
struct HostKeysWire(u8, String, ByteBuf, Vec<ByteBuf>);

#[cfg(test)]
mod tests;

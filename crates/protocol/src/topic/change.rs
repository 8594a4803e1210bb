//! The topic change object (`federation-spec/wire.cddl`, `topic-change`).

use std::borrow::Cow;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use sha2::{Digest, Sha256};

use super::{Epoch, History, MAX_MEMBERS, MemberIndex, Role};
use crate::certs::TopicKeyCert;
use crate::crypto::sign::TopicSigning;
use crate::crypto::transcript::LABEL_TOPIC_CHANGE;
use crate::crypto::{IdentityPublicKey, SealedBox, ServerPublicKey};
use crate::ids::{TopicId, UserId};
use crate::wire::{
    Signed, SignedBytes, SignedPayload, VERSION, WireError, check_version, encode, fixed_bytes,
};

/// Largest encoded change accepted (a create for [`MAX_MEMBERS`] members fits).
pub const MAX_CHANGE_LEN: usize = 4 * 1024 * 1024;

/// The hash that identifies a change: SHA-256 of its signed wire form `[payload, signature]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChangeHash(pub [u8; 32]);

impl ChangeHash {
    /// The hash of a signed change.
    pub fn of(signed: &SignedBytes) -> ChangeHash {
        ChangeHash(Sha256::digest(encode(signed)).into())
    }
}

impl std::fmt::Debug for ChangeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChangeHash({})",
            crate::crypto::sign::hex_string(&self.0)
        )
    }
}

/// A member being added: `[user, identity_key, role, topic_key_cert]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct MemberSpec {
    /// The user.
    pub user: UserId,
    /// The user's Identity Key, which must have signed the topic key certificate.
    pub identity_key: IdentityPublicKey,
    /// What the member may do.
    pub role: Role,
    /// The user's Topic Key for this topic, certified by the Identity Key.
    pub topic_key_cert: Signed<TopicKeyCert>,
}

/// A Message Key sealed to one member: `[member, box]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct KeyBox {
    /// Recipient member index.
    pub member: MemberIndex,
    /// The epoch's Message Key sealed to the member's Topic Key.
    pub sealed: SealedBox,
}

/// An older epoch's Message Key for a new member of a shared topic: `[member, epoch, box]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct HistoryBox {
    /// Recipient member index (a member added by this change).
    pub member: MemberIndex,
    /// The older epoch.
    pub epoch: Epoch,
    /// That epoch's Message Key sealed to the member's Topic Key.
    pub sealed: SealedBox,
}

/// What a change does.
#[derive(Debug, Clone)]
pub enum Action {
    /// `[0, history, [+ member-spec], host-key]`: the first entry; member 0 is the creator and
    /// an admin.
    Create {
        /// History setting, fixed for the topic's life.
        history: History,
        /// All initial members, creator first.
        members: Vec<MemberSpec>,
        /// The hosting server's Server Key, which signs every checkpoint of the log.
        host_key: HostKey,
    },
    /// `[1, [+ member-spec]]`.
    Add(Vec<MemberSpec>),
    /// `[2, [+ member]]`.
    Remove(Vec<MemberIndex>),
    /// `[3, member, role]`.
    SetRole(MemberIndex, Role),
    /// `[4]`: a new epoch for the same members.
    Rekey,
    /// `[5, member-spec]`: the author moves itself to a new Identity Key and Topic Key (after
    /// an identity rotation, `directory.md` §8); any role, same role, a new epoch.
    Move(Box<MemberSpec>),
}

impl Action {
    /// The action's name (for logs and errors).
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Add(_) => "add",
            Action::Remove(_) => "remove",
            Action::SetRole(..) => "set-role",
            Action::Rekey => "rekey",
            Action::Move(_) => "move",
        }
    }

    /// The member specs whose Identity Keys this change introduces into the roster: a
    /// create's and an add's members, a move's new binding. The one list that the hosting
    /// server, mirrors and members' clients check against the users' directories
    /// (`directory.md` §6.4).
    pub fn introduced_members(&self) -> &[MemberSpec] {
        match self {
            Action::Create { members, .. } | Action::Add(members) => members,
            Action::Move(spec) => std::slice::from_ref(spec.as_ref()),
            Action::Remove(_) | Action::SetRole(..) | Action::Rekey => &[],
        }
    }
}

/// A topic change, signed by its author's Topic Key. On the wire ([`TopicChangeWire`]):
/// `[1, topic, prev, author, action, epoch, key_check, boxes, history, time]`.
///
/// Admins build one with [`super::ChangeBuilder`]; everyone else gets one by verifying a
/// [`Signed`] change.
#[derive(Debug, Clone)]
pub struct TopicChange {
    /// The topic.
    pub topic: TopicId,
    /// Hash of the previous change (`null` for create).
    pub prev: Option<PrevHash>,
    /// The author's member index (0 for create).
    pub author: MemberIndex,
    /// What the change does.
    pub action: Action,
    /// The topic's epoch after the change.
    pub epoch: Epoch,
    /// `HMAC(MK, …)` of the new epoch's key when the change starts one, else `null`.
    pub key_check: Option<KeyCheck>,
    /// Sealed Message Keys, one per recipient, ascending member index.
    pub boxes: Vec<KeyBox>,
    /// Older epochs' keys for new members of a shared topic.
    pub history: Vec<HistoryBox>,
    /// Time of the change, seconds since the Unix epoch (informational).
    pub time: u64,
}

/// The wire form of a [`TopicChange`], with the version in front (`federation-spec/wire.cddl`,
/// `topic-change`). Borrows the lists when encoding, owns them when decoded.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct TopicChangeWire<'a> {
    version: u8,
    topic: Cow<'a, TopicId>,
    prev: Option<PrevHash>,
    author: MemberIndex,
    action: Cow<'a, Action>,
    epoch: Epoch,
    key_check: Option<KeyCheck>,
    boxes: Cow<'a, [KeyBox]>,
    history: Cow<'a, [HistoryBox]>,
    time: u64,
}

impl Serialize for TopicChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TopicChangeWire {
            version: VERSION,
            topic: Cow::Borrowed(&self.topic),
            prev: self.prev,
            author: self.author,
            action: Cow::Borrowed(&self.action),
            epoch: self.epoch,
            key_check: self.key_check,
            boxes: Cow::Borrowed(&self.boxes),
            history: Cow::Borrowed(&self.history),
            time: self.time,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TopicChange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = TopicChangeWire::deserialize(d)?;
        check_version(w.version).map_err(de::Error::custom)?;
        Ok(TopicChange {
            topic: w.topic.into_owned(),
            prev: w.prev,
            author: w.author,
            action: w.action.into_owned(),
            epoch: w.epoch,
            key_check: w.key_check,
            boxes: w.boxes.into_owned(),
            history: w.history.into_owned(),
            time: w.time,
        })
    }
}

/// A 32-byte previous-change hash on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrevHash(#[serde(with = "fixed_bytes")] pub [u8; 32]);

/// The hosting server's Server Key as a create names it: `SHA-256(key)` of its 32 bytes
/// (`federation-spec/protocol.md` §7.2). Every checkpoint of the topic's log is under that key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostKey(#[serde(with = "fixed_bytes")] pub [u8; 32]);

impl HostKey {
    /// The hash of `key`.
    pub fn of(key: &ServerPublicKey) -> HostKey {
        HostKey(Sha256::digest(key.as_bytes()).into())
    }
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({self})")
    }
}

/// The first 8 bytes, hex (enough to tell keys apart in a message).
impl std::fmt::Display for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// A 32-byte key check value on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCheck(#[serde(with = "fixed_bytes")] pub [u8; 32]);

impl SignedPayload for TopicChange {
    const LABEL: &'static str = LABEL_TOPIC_CHANGE;
    const MAX_LEN: usize = MAX_CHANGE_LEN;
    type Signer = TopicSigning;

    fn validate(&self) -> Result<(), WireError> {
        let members = match &self.action {
            Action::Create { members, .. } | Action::Add(members) => members.len(),
            Action::Remove(list) => list.len(),
            _ => 0,
        };
        if members > MAX_MEMBERS
            || self.boxes.len() > MAX_MEMBERS
            || self.history.len() > 64 * MAX_MEMBERS
        {
            return Err(WireError::InvalidField {
                field: "action",
                reason: format!(
                    "more than {MAX_MEMBERS} members, key boxes, or 64 history boxes per member"
                ),
            });
        }
        Ok(())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = match self {
            Action::Create { .. } => 4,
            Action::SetRole(..) => 3,
            Action::Add(_) | Action::Remove(_) | Action::Move(_) => 2,
            Action::Rekey => 1,
        };
        let mut seq = s.serialize_seq(Some(len))?;
        match self {
            Action::Create {
                history,
                members,
                host_key,
            } => {
                seq.serialize_element(&0u8)?;
                seq.serialize_element(&history.to_wire())?;
                seq.serialize_element(members)?;
                seq.serialize_element(host_key)?;
            }
            Action::Add(members) => {
                seq.serialize_element(&1u8)?;
                seq.serialize_element(members)?;
            }
            Action::Remove(list) => {
                seq.serialize_element(&2u8)?;
                seq.serialize_element(list)?;
            }
            Action::SetRole(member, role) => {
                seq.serialize_element(&3u8)?;
                seq.serialize_element(member)?;
                seq.serialize_element(role)?;
            }
            Action::Rekey => seq.serialize_element(&4u8)?,
            Action::Move(spec) => {
                seq.serialize_element(&5u8)?;
                seq.serialize_element(spec)?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ActionVisitor;
        impl<'de> Visitor<'de> for ActionVisitor {
            type Value = Action;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an action array [kind, …]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Action, A::Error> {
                fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
                    seq: &mut A,
                    i: usize,
                ) -> Result<T, A::Error> {
                    seq.next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &"a complete action"))
                }
                let kind: u8 = next(&mut seq, 0)?;
                let action = match kind {
                    0 => {
                        let history =
                            History::from_wire(next(&mut seq, 1)?).map_err(de::Error::custom)?;
                        Action::Create {
                            history,
                            members: next(&mut seq, 2)?,
                            host_key: next(&mut seq, 3)?,
                        }
                    }
                    1 => Action::Add(next(&mut seq, 1)?),
                    2 => Action::Remove(next(&mut seq, 1)?),
                    3 => Action::SetRole(next(&mut seq, 1)?, next(&mut seq, 2)?),
                    4 => Action::Rekey,
                    5 => Action::Move(Box::new(next(&mut seq, 1)?)),
                    other => return Err(de::Error::custom(format!("unknown action kind {other}"))),
                };
                Ok(action)
            }
        }
        d.deserialize_seq(ActionVisitor)
    }
}

//! Key bodies: Device Pre Keys and Topic Keys, uploaded ahead of time and claimed once
//! (`federation-spec/client-api.md` §5).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::ids::UserId;
use crate::wire::{SignedBytes, VERSION, check_version};

/// `[1, [+ signed_prekey]]`.
#[derive(Debug, Clone)]
pub struct UploadPreKeysRequest {
    /// DK-signed pre keys of the calling device.
    pub prekeys: Vec<SignedBytes>,
}

/// The wire form of [`UploadPreKeysRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct UploadPreKeysRequestWire<'a> {
    version: u8,
    prekeys: Cow<'a, [SignedBytes]>,
}

impl Serialize for UploadPreKeysRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        UploadPreKeysRequestWire {
            version: VERSION,
            prekeys: Cow::Borrowed(&self.prekeys),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for UploadPreKeysRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = UploadPreKeysRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(UploadPreKeysRequest {
            prekeys: w.prekeys.into_owned(),
        })
    }
}

/// `[device_cert, signed_prekey]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ClaimedPreKeyBody {
    /// IK-signed certificate of the device the pre key belongs to.
    pub device_cert: SignedBytes,
    /// DK-signed pre key.
    pub prekey: SignedBytes,
}

/// `[1, [* claimed-prekey]]`.
#[derive(Debug, Clone)]
pub struct ClaimPreKeysResponse {
    /// One pre key per other device of the user.
    pub prekeys: Vec<ClaimedPreKeyBody>,
}

/// The wire form of [`ClaimPreKeysResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct ClaimPreKeysResponseWire<'a> {
    version: u8,
    prekeys: Cow<'a, [ClaimedPreKeyBody]>,
}

impl Serialize for ClaimPreKeysResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ClaimPreKeysResponseWire {
            version: VERSION,
            prekeys: Cow::Borrowed(&self.prekeys),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ClaimPreKeysResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ClaimPreKeysResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(ClaimPreKeysResponse {
            prekeys: w.prekeys.into_owned(),
        })
    }
}

/// `[1, [+ bstr .cbor topic-key-upload]]`.
#[derive(Debug, Clone)]
pub struct UploadTopicKeysRequest {
    /// Each a `TopicKeyUpload` wire form (`devices.md`).
    pub uploads: Vec<ByteBuf>,
}

/// The wire form of [`UploadTopicKeysRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct UploadTopicKeysRequestWire<'a> {
    version: u8,
    uploads: Cow<'a, [ByteBuf]>,
}

impl Serialize for UploadTopicKeysRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        UploadTopicKeysRequestWire {
            version: VERSION,
            uploads: Cow::Borrowed(&self.uploads),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for UploadTopicKeysRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = UploadTopicKeysRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(UploadTopicKeysRequest {
            uploads: w.uploads.into_owned(),
        })
    }
}

/// `[1, [+ user]]`.
#[derive(Debug, Clone)]
pub struct ClaimTopicKeysRequest {
    /// Users whose topic key certificates are wanted.
    pub users: Vec<UserId>,
}

/// The wire form of [`ClaimTopicKeysRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct ClaimTopicKeysRequestWire<'a> {
    version: u8,
    users: Cow<'a, [UserId]>,
}

impl Serialize for ClaimTopicKeysRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ClaimTopicKeysRequestWire {
            version: VERSION,
            users: Cow::Borrowed(&self.users),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ClaimTopicKeysRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ClaimTopicKeysRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(ClaimTopicKeysRequest {
            users: w.users.into_owned(),
        })
    }
}

/// `[user, registration, topic_key_cert, kind]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ClaimedTopicKey {
    /// The user.
    pub user: UserId,
    /// The user's IK-signed registration (carries the Identity Key).
    pub registration: SignedBytes,
    /// IK-signed topic key certificate.
    pub topic_key_cert: SignedBytes,
    /// Which of the user's keys it is: the server's word, not signed (`client-api.md` §4).
    pub kind: ClaimedKind,
}

/// Which kind of topic key a claim handed out (`client-api.md` §4): wire 0 or 1, any other
/// value does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimedKind {
    /// A one-time key, removed from the server as it was handed out (0).
    OneTime,
    /// The user's last-resort key, kept and handed out again until the user replaces it (1).
    LastResort,
}

impl ClaimedKind {
    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            ClaimedKind::OneTime => 0,
            ClaimedKind::LastResort => 1,
        }
    }

    /// From the wire value.
    pub fn from_wire(v: u8) -> Result<ClaimedKind, String> {
        match v {
            0 => Ok(ClaimedKind::OneTime),
            1 => Ok(ClaimedKind::LastResort),
            other => Err(format!("claimed topic key kind {other}: 0 or 1 expected")),
        }
    }
}

impl Serialize for ClaimedKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.to_wire())
    }
}

impl<'de> Deserialize<'de> for ClaimedKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ClaimedKind::from_wire(u8::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// `[1, [* claimed-topic-key]]`.
#[derive(Debug, Clone)]
pub struct ClaimTopicKeysResponse {
    /// One per user that had a key left (a one-time key or the last-resort key).
    pub keys: Vec<ClaimedTopicKey>,
}

/// The wire form of [`ClaimTopicKeysResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct ClaimTopicKeysResponseWire<'a> {
    version: u8,
    keys: Cow<'a, [ClaimedTopicKey]>,
}

impl Serialize for ClaimTopicKeysResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ClaimTopicKeysResponseWire {
            version: VERSION,
            keys: Cow::Borrowed(&self.keys),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ClaimTopicKeysResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ClaimTopicKeysResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(ClaimTopicKeysResponse {
            keys: w.keys.into_owned(),
        })
    }
}

/// `[1, bstr .cbor topic-key-upload]`: body of `PUT /v1/topic-keys/last-resort`.
#[derive(Debug, Clone)]
pub struct UploadLastResortRequest {
    /// A `TopicKeyUpload` wire form (`devices.md`), as one item of [`UploadTopicKeysRequest`].
    pub upload: ByteBuf,
}

/// `POST /v1/topic-keys/own`: `[1, upload]`, the same wire form as a last-resort upload.
pub type UploadOwnTopicKeyRequest = UploadLastResortRequest;

/// The wire form of [`UploadLastResortRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct UploadLastResortRequestWire<'a> {
    version: u8,
    upload: Cow<'a, ByteBuf>,
}

impl Serialize for UploadLastResortRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        UploadLastResortRequestWire {
            version: VERSION,
            upload: Cow::Borrowed(&self.upload),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for UploadLastResortRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = UploadLastResortRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(UploadLastResortRequest {
            upload: w.upload.into_owned(),
        })
    }
}

/// The user's last-resort topic key as key status reports it (`client-api.md` §4): wire 0, 1
/// or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LastResortStatus {
    /// None uploaded (0).
    None,
    /// Uploaded and not handed out yet (1).
    Unused,
    /// Handed out at least once: the user should replace it (2).
    Served,
}

impl LastResortStatus {
    /// `none`, `unused`, `served` (as `rdv account status` prints it).
    pub fn name(self) -> &'static str {
        match self {
            LastResortStatus::None => "none",
            LastResortStatus::Unused => "unused",
            LastResortStatus::Served => "served",
        }
    }

    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            LastResortStatus::None => 0,
            LastResortStatus::Unused => 1,
            LastResortStatus::Served => 2,
        }
    }

    /// From the wire value.
    pub fn from_wire(v: u8) -> Result<LastResortStatus, String> {
        match v {
            0 => Ok(LastResortStatus::None),
            1 => Ok(LastResortStatus::Unused),
            2 => Ok(LastResortStatus::Served),
            other => Err(format!("last-resort status {other}: 0, 1 or 2 expected")),
        }
    }
}

impl Serialize for LastResortStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.to_wire())
    }
}

impl<'de> Deserialize<'de> for LastResortStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LastResortStatus::from_wire(u8::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// `[1, prekeys_left, topic_keys_left, refill, last_resort]`.
#[derive(Debug, Clone)]
pub struct KeyStatusResponse {
    /// Pre keys left for the calling device.
    pub prekeys_left: u64,
    /// One-time topic keys left for the user (the last-resort key not counted).
    pub topic_keys_left: u64,
    /// Whether the device should upload more (or a new last-resort key).
    pub refill: bool,
    /// The user's last-resort topic key.
    pub last_resort: LastResortStatus,
}

/// The wire form of [`KeyStatusResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct KeyStatusResponseWire {
    version: u8,
    prekeys_left: u64,
    topic_keys_left: u64,
    refill: bool,
    last_resort: LastResortStatus,
}

impl Serialize for KeyStatusResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        KeyStatusResponseWire {
            version: VERSION,
            prekeys_left: self.prekeys_left,
            topic_keys_left: self.topic_keys_left,
            refill: self.refill,
            last_resort: self.last_resort,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeyStatusResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = KeyStatusResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(KeyStatusResponse {
            prekeys_left: w.prekeys_left,
            topic_keys_left: w.topic_keys_left,
            refill: w.refill,
            last_resort: w.last_resort,
        })
    }
}

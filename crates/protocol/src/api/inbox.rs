//! Bodies between a user's own devices: the inbox of topic key deliveries, the device-link relay
//! and push registration (`federation-spec/client-api.md` §5, §7).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::wire::{SignedBytes, VERSION, check_version, fixed_bytes};

/// Inbox item kind: a topic key delivery `[topic_key_cert, delivery]`.
pub const INBOX_TOPIC_KEY: u8 = 1;

/// Inbox item kind: a last-resort topic key delivery, body as [`INBOX_TOPIC_KEY`]'s
/// (`client-api.md` §4 `PUT /v1/topic-keys/last-resort`): the server's word that the uploading
/// device made the key as its user's last-resort key.
pub const INBOX_LAST_RESORT_KEY: u8 = 3;

/// Inbox item kind: a device was added to the user's account, body [`DeviceAddedItem`]
/// (`client-api.md` §3, §5): filed by the server for every other active device, atomically
/// with the add.
pub const INBOX_DEVICE_ADDED: u8 = 4;

/// Largest [`DeviceAddedItem`] body accepted.
pub const DEVICE_ADDED_MAX_LEN: usize = 2048;

/// `[device_cert, endorsement]`: body of an [`INBOX_DEVICE_ADDED`] item, as the new device posted
/// them. The receiving device checks both itself (`devices.md` §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct DeviceAddedItem {
    /// The IK-signed certificate of the new device.
    pub device_cert: SignedBytes,
    /// The endorsing device's DK-signed endorsement.
    pub endorsement: SignedBytes,
}

impl DeviceAddedItem {
    /// Encodes the item body.
    pub fn to_wire(&self) -> Vec<u8> {
        crate::wire::encode(self)
    }

    /// Decodes an item body.
    pub fn from_wire(bytes: &[u8]) -> Result<DeviceAddedItem, crate::wire::WireError> {
        crate::wire::decode(bytes, DEVICE_ADDED_MAX_LEN)
    }
}

/// Inbox item kind: the user's Identity Key was rotated by another device, body
/// [`IdentityRotatedItem`] (`client-api.md` §3, §5; `directory.md` §8): filed by the server for
/// every other active device, in the rotation's transaction.
pub const INBOX_IDENTITY_ROTATED: u8 = 5;

/// Largest [`IdentityRotatedItem`] body accepted: a signed rotation and one delivery.
pub const IDENTITY_ROTATED_MAX_LEN: usize = 2048;

/// `[rotation, delivery]`: body of an [`INBOX_IDENTITY_ROTATED`] item — the signed rotation's
/// wire bytes and the new key's delivery to this device (`Delivery` wire bytes), as the rotating
/// device posted them. The receiving device checks both itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct IdentityRotatedItem {
    /// `SignedIdentityRotation` wire bytes.
    pub rotation: ByteBuf,
    /// `Delivery` wire bytes, sealed to one of this device's pre keys.
    pub delivery: ByteBuf,
}

impl IdentityRotatedItem {
    /// Encodes the item body.
    pub fn to_wire(&self) -> Vec<u8> {
        crate::wire::encode(self)
    }

    /// Decodes an item body.
    pub fn from_wire(bytes: &[u8]) -> Result<IdentityRotatedItem, crate::wire::WireError> {
        crate::wire::decode(bytes, IDENTITY_ROTATED_MAX_LEN)
    }
}

/// Inbox item kind: a post the hosting server refused after it was answered `202 queued`
/// (`federation-api.md` §9.3), body [`PostRefusedItem`].
pub const INBOX_POST_REFUSED: u8 = 2;

/// Largest [`PostRefusedItem`] body accepted (the entry is at most an event's payload).
pub const POST_REFUSED_MAX_LEN: usize = crate::federation::event::MAX_EVENT_LEN;

/// `[topic, status, code, entry]`: body of an [`INBOX_POST_REFUSED`] item — the topic, the
/// hosting server's status and code for the refused `topic.submit`, and the log entry
/// (`log-entry` wire form) as it was submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct PostRefusedItem {
    /// The topic posted to.
    pub topic: crate::ids::TopicId,
    /// The hosting server's per-event status.
    pub status: u16,
    /// The hosting server's error code.
    pub code: String,
    /// The refused entry, as submitted.
    pub entry: ByteBuf,
}

impl PostRefusedItem {
    /// Encodes the item body.
    pub fn to_wire(&self) -> Vec<u8> {
        crate::wire::encode(self)
    }

    /// Decodes an item body.
    pub fn from_wire(bytes: &[u8]) -> Result<PostRefusedItem, crate::wire::WireError> {
        crate::wire::decode(bytes, POST_REFUSED_MAX_LEN)
    }
}

/// `[seq, kind, body]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct InboxItem {
    /// Sequence number, increasing per device.
    pub seq: u64,
    /// Item kind.
    pub kind: u8,
    /// Kind-specific body.
    pub body: ByteBuf,
}

/// `[topic_key_cert, bstr .cbor delivery]`: body of an [`INBOX_TOPIC_KEY`] item.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct TopicKeyDeliveryItem {
    /// The IK-signed certificate of the delivered key.
    pub topic_key_cert: SignedBytes,
    /// The delivery wire form (`devices.md`).
    pub delivery: ByteBuf,
}

/// `[1, [* inbox-item]]`.
#[derive(Debug, Clone)]
pub struct InboxResponse {
    /// Items after the requested sequence number, ascending.
    pub items: Vec<InboxItem>,
}

/// The wire form of [`InboxResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct InboxResponseWire<'a> {
    version: u8,
    items: Cow<'a, [InboxItem]>,
}

impl Serialize for InboxResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        InboxResponseWire {
            version: VERSION,
            items: Cow::Borrowed(&self.items),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for InboxResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = InboxResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(InboxResponse {
            items: w.items.into_owned(),
        })
    }
}

/// `[1, up_to]`.
#[derive(Debug, Clone)]
pub struct AckRequest {
    /// Delete items up to and including this sequence number.
    pub up_to: u64,
}

/// The wire form of [`AckRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct AckRequestWire {
    version: u8,
    up_to: u64,
}

impl Serialize for AckRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AckRequestWire {
            version: VERSION,
            up_to: self.up_to,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for AckRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = AckRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(AckRequest { up_to: w.up_to })
    }
}

/// `[1, link_id]`.
#[derive(Debug, Clone)]
pub struct LinkOpenRequest {
    /// The link id from the link code.
    pub link_id: [u8; 8],
}

/// The wire form of [`LinkOpenRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct LinkOpenRequestWire {
    version: u8,
    #[serde(with = "fixed_bytes")]
    link_id: [u8; 8],
}

impl Serialize for LinkOpenRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LinkOpenRequestWire {
            version: VERSION,
            link_id: self.link_id,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LinkOpenRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = LinkOpenRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(LinkOpenRequest { link_id: w.link_id })
    }
}

/// `[1, pickup]`: the answer to a joining device's link request; `pickup` (32 random bytes,
/// hex in `Authorization: Bearer`) is what fetching the response takes, so that nobody else who
/// learns the link id can take the response away.
#[derive(Debug, Clone)]
pub struct LinkPickup {
    /// The pickup token.
    pub pickup: [u8; 32],
}

/// The wire form of [`LinkPickup`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct LinkPickupWire {
    version: u8,
    #[serde(with = "fixed_bytes")]
    pickup: [u8; 32],
}

impl Serialize for LinkPickup {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LinkPickupWire {
            version: VERSION,
            pickup: self.pickup,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LinkPickup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = LinkPickupWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(LinkPickup { pickup: w.pickup })
    }
}

/// `[1, bstr .cbor link-request / link-response]`.
#[derive(Debug, Clone)]
pub struct LinkMessage {
    /// The link request or response wire form (`devices.md`).
    pub body: ByteBuf,
}

/// The wire form of [`LinkMessage`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct LinkMessageWire<'a> {
    version: u8,
    body: Cow<'a, ByteBuf>,
}

impl Serialize for LinkMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LinkMessageWire {
            version: VERSION,
            body: Cow::Borrowed(&self.body),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LinkMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = LinkMessageWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(LinkMessage {
            body: w.body.into_owned(),
        })
    }
}

/// `[1, url]`.
#[derive(Debug, Clone)]
pub struct PushRegisterRequest {
    /// HTTPS wake-up endpoint.
    pub url: String,
}

/// The wire form of [`PushRegisterRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct PushRegisterRequestWire<'a> {
    version: u8,
    url: Cow<'a, str>,
}

impl Serialize for PushRegisterRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PushRegisterRequestWire {
            version: VERSION,
            url: Cow::Borrowed(&self.url),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PushRegisterRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = PushRegisterRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(PushRegisterRequest {
            url: w.url.into_owned(),
        })
    }
}

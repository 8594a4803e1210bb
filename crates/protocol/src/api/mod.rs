//! Client–server API bodies (`federation-spec/client-api.md`, `client-api.cddl`).
//!
//! One definition of every request and response body, used by the homeserver's handlers and by
//! the client library, so the two cannot drift apart. Every body is a CBOR array whose first
//! element is the version; nested protocol objects travel as byte strings holding their own
//! canonical wire form (`bstr .cbor …`), decoded and verified by their own modules.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::wire::{VERSION, WireError, check_version, decode_versioned, encode};

mod accounts;
mod directory;
mod errors;
mod inbox;
mod keys;
mod topics;

pub use accounts::{
    AddDeviceRequest, ChallengeRequest, ChallengeResponse, DeviceInfo, DevicesResponse,
    IdentityResponse, LoginRequest, LoginResponse, RegisterRequest, RegisterResponse,
    RevokeDeviceRequest, RotateIdentityRequest,
};
pub use directory::{
    DirectoryCheckpointResponse, DirectoryCosignatureRequest, DirectoryEntriesResponse,
};
pub use errors::{ApiErrorBody, ErrorCode, UnknownErrorCode};
pub use inbox::{
    AckRequest, DEVICE_ADDED_MAX_LEN, DeviceAddedItem, IDENTITY_ROTATED_MAX_LEN,
    INBOX_DEVICE_ADDED, INBOX_IDENTITY_ROTATED, INBOX_LAST_RESORT_KEY, INBOX_POST_REFUSED,
    INBOX_TOPIC_KEY, IdentityRotatedItem, InboxItem, InboxResponse, LinkMessage, LinkOpenRequest,
    LinkPickup, PostRefusedItem, PushRegisterRequest, TopicKeyDeliveryItem,
};
pub use keys::{
    ClaimPreKeysResponse, ClaimTopicKeysRequest, ClaimTopicKeysResponse, ClaimedKind,
    ClaimedPreKeyBody, ClaimedTopicKey, KeyStatusResponse, LastResortStatus,
    UploadLastResortRequest, UploadOwnTopicKeyRequest, UploadPreKeysRequest,
    UploadTopicKeysRequest,
};
pub use topics::{
    AppendResponse, CheckpointResponse, CursorRequest, EntriesResponse, IndexedEntry,
    MAX_REFUSAL_BYTES, MAX_REFUSALS, MirrorRefusal, ProofResponse, ServerKeysResponse, StreamFrame,
    SyncItem, SyncResponse, TopicSummary, TopicsResponse, WitnessesResponse,
};

/// Largest body of any request except topic changes and messages.
pub const MAX_BODY: usize = 64 * 1024;

/// A body type of the API: encode with [`Body::to_cbor`], decode with [`Body::from_cbor`].
pub trait Body: Serialize + for<'de> Deserialize<'de> {
    /// Largest accepted encoding.
    const MAX_LEN: usize = MAX_BODY;

    /// The canonical CBOR encoding.
    fn to_cbor(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a body: size first, version next, canonical form last.
    fn from_cbor(bytes: &[u8]) -> Result<Self, WireError> {
        decode_versioned(bytes, Self::MAX_LEN)
    }
}

macro_rules! bodies {
    ($($t:ident),* $(,)?) => { $(impl Body for $t {})* };
}

/// `[1, count]`.
#[derive(Debug, Clone)]
pub struct CountResponse {
    /// How many items.
    pub count: u64,
}

/// The wire form of [`CountResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct CountResponseWire {
    version: u8,
    count: u64,
}

impl Serialize for CountResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CountResponseWire {
            version: VERSION,
            count: self.count,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for CountResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = CountResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(CountResponse { count: w.count })
    }
}
/// `[1]`: a body with nothing but the version.
#[derive(Debug, Clone, Copy, Default)]
pub struct Empty {}

/// The wire form of [`Empty`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct EmptyWire {
    version: u8,
}

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EmptyWire { version: VERSION }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w: EmptyWire = Deserialize::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(Empty {})
    }
}

bodies!(
    RegisterRequest,
    RegisterResponse,
    IdentityResponse,
    AddDeviceRequest,
    RevokeDeviceRequest,
    RotateIdentityRequest,
    DevicesResponse,
    ChallengeRequest,
    ChallengeResponse,
    LoginRequest,
    LoginResponse,
    UploadPreKeysRequest,
    CountResponse,
    Empty,
    ClaimPreKeysResponse,
    ClaimTopicKeysRequest,
    ClaimTopicKeysResponse,
    KeyStatusResponse,
    InboxResponse,
    AckRequest,
    LinkOpenRequest,
    LinkPickup,
    AppendResponse,
    TopicsResponse,
    CheckpointResponse,
    ProofResponse,
    CursorRequest,
    SyncResponse,
    PushRegisterRequest,
);

/// Witnesses with the mirror's refusals (`directory.md` §6.5): at most [`MAX_REFUSALS`], whose
/// entries a server serves up to [`MAX_REFUSAL_BYTES`] of.
impl Body for WitnessesResponse {
    const MAX_LEN: usize = MAX_BODY + MAX_REFUSAL_BYTES + 64 * 1024;
}

/// A link response carries a whole `link-payload` (`devices.md` §6: at most 4 MiB + 256 B).
impl Body for LinkMessage {
    const MAX_LEN: usize = 4 * 1024 * 1024 + 1024;
}

/// An inbox item's body has no version of its own: the item kind names its form.
impl Body for TopicKeyDeliveryItem {
    fn from_cbor(bytes: &[u8]) -> Result<Self, WireError> {
        crate::wire::decode(bytes, Self::MAX_LEN)
    }
}

impl Body for UploadTopicKeysRequest {
    const MAX_LEN: usize = 4 * 1024 * 1024;
}

/// One upload: a certificate and a delivery per other device (`UPLOAD_MAX_LEN`), in
/// `[1, bstr]`: one byte of array head, one of version, three of byte-string head (33 797).
impl Body for UploadLastResortRequest {
    const MAX_LEN: usize = crate::devices::topic_keys::UPLOAD_MAX_LEN + 5;
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

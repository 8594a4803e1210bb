//! Client–server API bodies (`federation-spec/client-api.md`, `client-api.cddl`).
//!
//! One definition of every request and response body, used by the homeserver's handlers and by
//! the client library, so the two cannot drift apart. Every body is a CBOR array whose first
//! element is the version; nested protocol objects travel as byte strings holding their own
//! canonical wire form (`bstr .cbor …`), decoded and verified by their own modules.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::crypto::{DevicePublicKey, Signature};
use crate::ids::{TopicId, UserId};
use crate::wire::{SignedBytes, VERSION, WireError, decode_versioned, encode, fixed_bytes};

mod errors;
pub use errors::{ApiErrorBody, ErrorCode, UnknownErrorCode};

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

/// `[1, pin, registration, device_cert]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct RegisterRequest {
    /// 1.
    pub version: u8,
    /// One-time registration pin from the operator.
    pub pin: String,
    /// IK-signed registration.
    pub registration: SignedBytes,
    /// IK-signed certificate of the first device.
    pub device_cert: SignedBytes,
}

/// `[1, user]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct RegisterResponse {
    /// 1.
    pub version: u8,
    /// The registered user.
    pub user: UserId,
}

/// `[1, registration]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct IdentityResponse {
    /// 1.
    pub version: u8,
    /// The user's IK-signed registration.
    pub registration: SignedBytes,
}

/// `[1, device_cert]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct AddDeviceRequest {
    /// 1.
    pub version: u8,
    /// IK-signed device certificate.
    pub device_cert: SignedBytes,
}

/// `[1, revocation]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct RevokeDeviceRequest {
    /// 1.
    pub version: u8,
    /// IK-signed revocation.
    pub revocation: SignedBytes,
}

/// `[device_cert, created, last_seen]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct DeviceInfo {
    /// IK-signed device certificate.
    pub device_cert: SignedBytes,
    /// When the server registered the device (Unix seconds).
    pub created: u64,
    /// Last authenticated request (Unix seconds, minute resolution).
    pub last_seen: u64,
}

/// `[1, [* device-info]]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct DevicesResponse {
    /// 1.
    pub version: u8,
    /// The user's active devices.
    pub devices: Vec<DeviceInfo>,
}

/// `[1, user, device_key]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ChallengeRequest {
    /// 1.
    pub version: u8,
    /// The user logging in.
    pub user: UserId,
    /// The device's public key.
    pub device_key: DevicePublicKey,
}

/// `[1, challenge, expires]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ChallengeResponse {
    /// 1.
    pub version: u8,
    /// 32 random bytes to sign.
    #[serde(with = "fixed_bytes")]
    pub challenge: [u8; 32],
    /// Expiry (Unix seconds).
    pub expires: u64,
}

/// `[1, user, device_key, challenge, signature]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct LoginRequest {
    /// 1.
    pub version: u8,
    /// The user.
    pub user: UserId,
    /// The device's public key.
    pub device_key: DevicePublicKey,
    /// The challenge being answered.
    #[serde(with = "fixed_bytes")]
    pub challenge: [u8; 32],
    /// `Ed25519(DK, transcript("rdv/v1/device-login", [server, user, challenge]))`.
    pub signature: Signature,
}

/// `[1, token, expires]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct LoginResponse {
    /// 1.
    pub version: u8,
    /// Bearer token.
    pub token: String,
    /// Expiry (Unix seconds).
    pub expires: u64,
}

/// `[1, [+ signed_prekey]]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct UploadPreKeysRequest {
    /// 1.
    pub version: u8,
    /// DK-signed pre keys of the calling device.
    pub prekeys: Vec<SignedBytes>,
}

/// `[1, count]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct CountResponse {
    /// 1.
    pub version: u8,
    /// How many items.
    pub count: u64,
}

/// `[1]`: a body with nothing but the version.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct Empty {
    /// 1.
    pub version: u8,
}

impl Default for Empty {
    fn default() -> Self {
        Empty { version: VERSION }
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
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ClaimPreKeysResponse {
    /// 1.
    pub version: u8,
    /// One pre key per other device of the user.
    pub prekeys: Vec<ClaimedPreKeyBody>,
}

/// `[1, [+ bstr .cbor topic-key-upload]]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct UploadTopicKeysRequest {
    /// 1.
    pub version: u8,
    /// Each a `TopicKeyUpload` wire form (`devices.md`).
    pub uploads: Vec<ByteBuf>,
}

/// `[1, [+ user]]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ClaimTopicKeysRequest {
    /// 1.
    pub version: u8,
    /// Users whose topic key certificates are wanted.
    pub users: Vec<UserId>,
}

/// `[user, registration, topic_key_cert]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ClaimedTopicKey {
    /// The user.
    pub user: UserId,
    /// The user's IK-signed registration (carries the Identity Key).
    pub registration: SignedBytes,
    /// IK-signed topic key certificate, handed out once.
    pub topic_key_cert: SignedBytes,
}

/// `[1, [* claimed-topic-key]]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ClaimTopicKeysResponse {
    /// 1.
    pub version: u8,
    /// One per user that had a key left.
    pub keys: Vec<ClaimedTopicKey>,
}

/// `[1, prekeys_left, topic_keys_left, refill]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct KeyStatusResponse {
    /// 1.
    pub version: u8,
    /// Pre keys left for the calling device.
    pub prekeys_left: u64,
    /// Topic keys left for the user.
    pub topic_keys_left: u64,
    /// Whether the device should upload more.
    pub refill: bool,
}

/// Inbox item kind: a topic key delivery `[topic_key_cert, delivery]`.
pub const INBOX_TOPIC_KEY: u8 = 1;

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
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct InboxResponse {
    /// 1.
    pub version: u8,
    /// Items after the requested sequence number, ascending.
    pub items: Vec<InboxItem>,
}

/// `[1, up_to]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct AckRequest {
    /// 1.
    pub version: u8,
    /// Delete items up to and including this sequence number.
    pub up_to: u64,
}

/// `[1, link_id]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct LinkOpenRequest {
    /// 1.
    pub version: u8,
    /// The link id from the link code.
    #[serde(with = "fixed_bytes")]
    pub link_id: [u8; 8],
}

/// `[1, bstr .cbor link-request / link-response]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct LinkMessage {
    /// 1.
    pub version: u8,
    /// The link request or response wire form (`devices.md`).
    pub body: ByteBuf,
}

/// `[1, index, checkpoint]`: the answer to an accepted topic change or message.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct AppendResponse {
    /// 1.
    pub version: u8,
    /// The entry's log index.
    pub index: u64,
    /// The signed checkpoint note of the log including the entry (`tag-log.md`).
    pub checkpoint: String,
}

/// `[topic, size, role, epoch]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct TopicSummary {
    /// The topic.
    pub topic: TopicId,
    /// Log size.
    pub size: u64,
    /// The caller's role (wire value).
    pub role: u8,
    /// Current epoch.
    pub epoch: u32,
}

/// `[1, [* topic-summary]]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct TopicsResponse {
    /// 1.
    pub version: u8,
    /// The user's topics.
    pub topics: Vec<TopicSummary>,
}

/// `[index, log_entry]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct IndexedEntry {
    /// Log index.
    pub index: u64,
    /// The entry's wire form (`protocol.md` §8.1).
    pub entry: ByteBuf,
}

/// `[1, [* indexed-entry]]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct EntriesResponse {
    /// 1.
    pub version: u8,
    /// Consecutive entries from the requested index.
    pub entries: Vec<IndexedEntry>,
}

impl Body for EntriesResponse {
    const MAX_LEN: usize = 64 * 1024 * 1024;
}

/// `[1, checkpoint]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct CheckpointResponse {
    /// 1.
    pub version: u8,
    /// Signed checkpoint note text.
    pub checkpoint: String,
}

/// `[1, host head / null, mirror head / null, [* cosigned note], evidence / null]`: what a
/// server knows of a topic's log beyond its own entries (`client-api.md` §6 `witnesses`,
/// `federation-api.md` §9.4).
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct WitnessesResponse {
    /// 1.
    pub version: u8,
    /// The hosting server's current checkpoint note (fetched live for a topic hosted
    /// elsewhere; `None` when the hosting server cannot be reached).
    pub host: Option<String>,
    /// This server's mirror head (the hosting server's checkpoint it verified), for a topic
    /// hosted elsewhere.
    pub mirror: Option<String>,
    /// Cosigned checkpoint notes of participating servers (the newest of each).
    pub witnesses: Vec<String>,
    /// Evidence that the hosting server showed contradicting logs (`[reason, note, note]`).
    pub evidence: Option<ByteBuf>,
}

/// `[1, server, [+ [key, valid_from, valid_until]]]`: another server's key document, fetched
/// and checked by the caller's homeserver over mutual TLS (`client-api.md` §6).
pub type ServerKeysResponse = crate::federation::ServerKeys;

impl Body for crate::federation::ServerKeys {}

/// `[1, [* hash]]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct ProofResponse {
    /// 1.
    pub version: u8,
    /// Proof hashes, 32 bytes each.
    pub path: Vec<ByteBuf>,
}

/// `[1, index]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct CursorRequest {
    /// 1.
    pub version: u8,
    /// Processed up to this index (exclusive).
    pub index: u64,
}

/// `[topic, size, cursor]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct SyncItem {
    /// The topic.
    pub topic: TopicId,
    /// Its log size.
    pub size: u64,
    /// This device's cursor.
    pub cursor: u64,
}

/// `[1, [* sync-item], refill]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct SyncResponse {
    /// 1.
    pub version: u8,
    /// The user's topics.
    pub topics: Vec<SyncItem>,
    /// Whether this device should upload pre keys or topic keys.
    pub refill: bool,
}

/// `[topic, index, log_entry]`: one WebSocket frame.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct StreamFrame {
    /// The topic.
    pub topic: TopicId,
    /// Log index.
    pub index: u64,
    /// The entry's wire form.
    pub entry: ByteBuf,
}

impl Body for StreamFrame {
    const MAX_LEN: usize = 8 * 1024 * 1024;

    fn from_cbor(bytes: &[u8]) -> Result<Self, WireError> {
        crate::wire::decode(bytes, Self::MAX_LEN)
    }
}

/// `[1, url]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct PushRegisterRequest {
    /// 1.
    pub version: u8,
    /// HTTPS wake-up endpoint.
    pub url: String,
}

bodies!(
    WitnessesResponse,
    RegisterRequest,
    RegisterResponse,
    IdentityResponse,
    AddDeviceRequest,
    RevokeDeviceRequest,
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
    LinkMessage,
    AppendResponse,
    TopicsResponse,
    CheckpointResponse,
    ProofResponse,
    CursorRequest,
    SyncResponse,
    PushRegisterRequest,
);

/// An inbox item's body has no version of its own: the item kind names its form.
impl Body for TopicKeyDeliveryItem {
    fn from_cbor(bytes: &[u8]) -> Result<Self, WireError> {
        crate::wire::decode(bytes, Self::MAX_LEN)
    }
}

impl Body for UploadTopicKeysRequest {
    const MAX_LEN: usize = 4 * 1024 * 1024;
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

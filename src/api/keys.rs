//! Pre keys, topic keys and the device inbox (`client-api.md` §4–5); topic keys of remote users
//! are claimed through federation (`federation-api.md` §5).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::accounts::identity_key;
use super::{cbor_body, cbor_response};
use crate::claims::{check_distinct, check_servers, claim_local_topic_keys, claimable};
use crate::error::{ApiError, ApiResult};
use crate::federation::client::{FederationClient, MAX_FEDERATION_CLAIMS};
use crate::state::{AppState, Caller};
use crate::store::StoreError;
use rendezvous_protocol::api::{
    AckRequest, ClaimPreKeysResponse, ClaimTopicKeysRequest, ClaimTopicKeysResponse,
    ClaimedPreKeyBody, CountResponse, Empty, INBOX_LAST_RESORT_KEY, INBOX_TOPIC_KEY, InboxItem,
    InboxResponse, KeyStatusResponse, LastResortStatus, TopicKeyDeliveryItem,
    UploadLastResortRequest, UploadOwnTopicKeyRequest, UploadPreKeysRequest,
    UploadTopicKeysRequest,
};
use rendezvous_protocol::certs::PreKey;
use rendezvous_protocol::crypto::{DevicePublicKey, IdentityPublicKey, KeyId};
use rendezvous_protocol::devices::topic_keys::{TopicKeyError, TopicKeyUpload};
use rendezvous_protocol::ids::{DeviceId, ServerName, UserId};
use rendezvous_protocol::wire::{Signed, SignedBytes};

/// Below this many pre keys or topic keys, devices are told to refill.
pub(crate) const LOW_WATER: u64 = 20;
/// Most pre keys in one upload.
const MAX_PREKEYS_PER_UPLOAD: usize = 200;
/// Most users in one topic key claim.
const MAX_CLAIMS: usize = 1000;
/// Most inbox items per request.
const INBOX_PAGE: usize = 500;
/// Most topic keys in one upload.
const MAX_TOPIC_KEYS_PER_UPLOAD: usize = 200;

/// Why a key or inbox request (`client-api.md` §4–5) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    /// An upload or claim with no item, or with more than allowed.
    #[error("{what}: 1 to {max} per request, not {got}")]
    Count {
        /// What is counted (`pre keys`, `topic keys`, `users`).
        what: &'static str,
        /// The most one request may hold.
        max: usize,
        /// How many it held.
        got: usize,
    },
    /// The caller's own device key does not decode (a store fault; logged, not sent).
    #[error("the caller's device key: {0}")]
    CallerDeviceKey(String),
    /// A pre key signed for another user than the caller.
    #[error("a pre key names {got}, not {expected}")]
    PreKeyForAnotherUser {
        /// The caller.
        expected: UserId,
        /// The user the pre key names.
        got: UserId,
    },
    /// A topic key upload does not decode or check.
    #[error(transparent)]
    TopicKeyUpload(#[from] TopicKeyError),
    /// A delivery addressed to a pre key this server does not know.
    #[error("unknown pre key {0}")]
    UnknownPreKey(KeyId),
    /// A delivery addressed to a pre key of no other active device of the caller.
    #[error("a delivery is addressed to a pre key of no other device of yours")]
    DeliveryNotToOwnDevice,
    /// A last-resort or own key whose id the user uploaded before (as any kind of key).
    #[error("topic key {0} was uploaded before: a last-resort or own key must be new")]
    KnownTopicKey(KeyId),
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/prekeys", web::post().to(upload_prekeys))
        .route("/v1/prekeys/claim", web::post().to(claim_prekeys))
        .route("/v1/topic-keys", web::post().to(upload_topic_keys))
        .route(
            "/v1/topic-keys/last-resort",
            web::put().to(upload_last_resort),
        )
        .route("/v1/topic-keys/own", web::post().to(upload_own_topic_key))
        .route("/v1/topic-keys/claim", web::post().to(claim_topic_keys))
        .route("/v1/keys/status", web::get().to(key_status))
        .route("/v1/inbox", web::get().to(inbox))
        .route("/v1/inbox/ack", web::post().to(inbox_ack));
}

async fn upload_prekeys(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: UploadPreKeysRequest = cbor_body(&req, &body)?;
    if r.prekeys.is_empty() || r.prekeys.len() > MAX_PREKEYS_PER_UPLOAD {
        return Err(KeysError::Count {
            what: "pre keys",
            max: MAX_PREKEYS_PER_UPLOAD,
            got: r.prekeys.len(),
        }
        .into());
    }
    let dk = DevicePublicKey::from_slice(caller.device.as_bytes())
        .map_err(|e| KeysError::CallerDeviceKey(e.to_string()))?;
    let mut keys = Vec::with_capacity(r.prekeys.len());
    for signed in r.prekeys {
        let prekey = Signed::<PreKey>::from_signed_bytes(signed.clone())?.verify(&dk)?;
        if prekey.user != caller.user {
            return Err(KeysError::PreKeyForAnotherUser {
                expected: caller.user.clone(),
                got: prekey.user.clone(),
            }
            .into());
        }
        keys.push((prekey.key_id()?, signed));
    }
    let count = state
        .store()
        .add_prekeys(&caller.user, caller.device, keys)?;
    state.store().sync().await?;
    Ok(cbor_response(&CountResponse { count }))
}

async fn claim_prekeys(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let _: Empty = cbor_body(&req, &body)?;
    let mut prekeys = Vec::new();
    for device in state.store().devices(&caller.user)? {
        if device.device_key == caller.device {
            continue;
        }
        if let Some((_, prekey)) = state
            .store()
            .claim_prekey(&caller.user, device.device_key)?
        {
            prekeys.push(ClaimedPreKeyBody {
                device_cert: device.cert,
                prekey,
            });
        }
    }
    state.store().sync().await?;
    Ok(cbor_response(&ClaimPreKeysResponse { prekeys }))
}

async fn upload_topic_keys(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: UploadTopicKeysRequest = cbor_body(&req, &body)?;
    if r.uploads.is_empty() || r.uploads.len() > MAX_TOPIC_KEYS_PER_UPLOAD {
        return Err(KeysError::Count {
            what: "topic keys",
            max: MAX_TOPIC_KEYS_PER_UPLOAD,
            got: r.uploads.len(),
        }
        .into());
    }
    let ik = identity_key(&state, &caller.user)?;
    let mut certs = Vec::with_capacity(r.uploads.len());
    let mut deliveries = Vec::new();
    for bytes in &r.uploads {
        let upload = checked_upload(&state, &caller, &ik, bytes)?;
        certs.push((upload.id, upload.cert));
        deliveries.push((upload.id, upload.deliveries));
    }
    let items: Vec<_> = deliveries.iter().flat_map(|(_, items)| items).collect();
    state.quota(&caller.user, inbox_room(&state, &caller.user, &items))?;
    let added = state.store().add_topic_keys(&caller.user, certs)?;
    // A certificate seen before files nothing: re-uploading known keys cannot fill the other
    // devices' inboxes (`client-api.md` §4).
    for (id, items) in deliveries {
        if added.new.contains(&id) {
            file_deliveries(&state, &caller, INBOX_TOPIC_KEY, items)?;
        }
    }
    state.store().sync().await?;
    Ok(cbor_response(&CountResponse { count: added.left }))
}

/// `PUT /v1/topic-keys/last-resort` (`client-api.md` §4): the user's new last-resort key,
/// checked as one item of `POST /v1/topic-keys`, with a key id never seen for the user; it
/// replaces the previous one and its deliveries are filed as inbox kind 3.
async fn upload_last_resort(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: UploadLastResortRequest = cbor_body(&req, &body)?;
    single_upload(
        &state,
        &caller,
        &r.upload,
        INBOX_LAST_RESORT_KEY,
        |id, cert| state.store().set_last_resort_key(&caller.user, id, cert),
    )
    .await
}

/// `POST /v1/topic-keys/own` (`client-api.md` §4): a Topic Key the user made for its own use in
/// one topic (a move after an identity rotation, `protocol.md` §7.2): checked as one item of
/// `POST /v1/topic-keys`, with a key id never seen for the user; it is never handed out, and
/// its deliveries are filed as inbox kind 1 (a one-time key: the other devices hold it to the
/// one topic it is first used in).
async fn upload_own_topic_key(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: UploadOwnTopicKeyRequest = cbor_body(&req, &body)?;
    single_upload(&state, &caller, &r.upload, INBOX_TOPIC_KEY, |id, _| {
        state.store().mark_own_topic_key(&caller.user, id)
    })
    .await
}

/// One upload of a key id never seen for the user: checked as an item of `POST
/// /v1/topic-keys`, kept by `keep` (which answers [`StoreError::Exists`] for a seen id), its
/// deliveries filed as inbox items of `kind`.
async fn single_upload(
    state: &AppState,
    caller: &Caller,
    bytes: &[u8],
    kind: u8,
    keep: impl FnOnce(KeyId, SignedBytes) -> Result<(), StoreError>,
) -> ApiResult<HttpResponse> {
    let ik = identity_key(state, &caller.user)?;
    let upload = checked_upload(state, caller, &ik, bytes)?;
    let items: Vec<_> = upload.deliveries.iter().collect();
    state.quota(&caller.user, inbox_room(state, &caller.user, &items))?;
    keep(upload.id, upload.cert).map_err(|e| match e {
        StoreError::Exists => KeysError::KnownTopicKey(upload.id).into(),
        e => ApiError::from(e),
    })?;
    file_deliveries(state, caller, kind, upload.deliveries)?;
    state.store().sync().await?;
    Ok(cbor_response(&Empty::default()))
}

/// One topic key upload, checked: its id, its certificate, and its deliveries as inbox item
/// bodies for the devices they are addressed to.
struct CheckedUpload {
    id: KeyId,
    cert: SignedBytes,
    deliveries: Vec<(DeviceId, Vec<u8>)>,
}

/// Checks a `topic-key-upload` of the caller (`TopicKeyUpload::from_wire`: the certificate is
/// signed by the user's Identity Key and names the user) and routes its deliveries by pre key:
/// each must belong to another active device of the same user.
fn checked_upload(
    state: &AppState,
    caller: &Caller,
    ik: &IdentityPublicKey,
    bytes: &[u8],
) -> ApiResult<CheckedUpload> {
    let upload = TopicKeyUpload::from_wire(bytes, ik, &caller.user).map_err(KeysError::from)?;
    let id = upload.cert.topic_key()?.key_id();
    let cert = upload.cert.signed_bytes().clone();
    let mut deliveries = Vec::with_capacity(upload.deliveries.len());
    for d in &upload.deliveries {
        let device = own_delivery_device(state, caller, d.prekey_id)?;
        let item = TopicKeyDeliveryItem {
            topic_key_cert: cert.clone(),
            delivery: ByteBuf::from(d.to_wire()),
        };
        deliveries.push((device, rendezvous_protocol::api::Body::to_cbor(&item)));
    }
    Ok(CheckedUpload {
        id,
        cert,
        deliveries,
    })
}

/// The device a delivery sealed to `prekey` goes to: one of the caller's user's other active
/// devices, else the delivery is refused (`client-api.md` §3, §4). The one routing rule of
/// topic key and identity deliveries.
pub(super) fn own_delivery_device(
    state: &AppState,
    caller: &Caller,
    prekey: KeyId,
) -> ApiResult<DeviceId> {
    let (owner, device) = state
        .store()
        .prekey_owner(prekey)?
        .ok_or(KeysError::UnknownPreKey(prekey))?;
    if owner != caller.user
        || device == caller.device
        || !state.store().device_active(&owner, device)?
    {
        return Err(KeysError::DeliveryNotToOwnDevice.into());
    }
    Ok(device)
}

/// Whether each device's inbox has room for the items addressed to it under
/// `limits.quota.inbox_items_per_device` and `inbox_bytes_per_device` (checked before anything
/// of the upload is stored; two concurrent uploads of one user may pass it together, so an
/// inbox may exceed the quota by one upload).
fn inbox_room(
    state: &AppState,
    user: &UserId,
    items: &[&(DeviceId, Vec<u8>)],
) -> Result<(), StoreError> {
    let quota = state.config().limits.quota;
    let mut adding: BTreeMap<DeviceId, (u64, u64)> = BTreeMap::new();
    for (device, item) in items {
        let a = adding.entry(*device).or_default();
        a.0 += 1;
        a.1 += item.len() as u64;
    }
    for (device, (n, bytes)) in adding {
        let (held, held_bytes) = state.store().inbox_usage(user, device)?;
        if held + n > quota.inbox_items_per_device {
            return Err(StoreError::Quota {
                quota: "inbox_items_per_device",
                limit: quota.inbox_items_per_device,
            });
        }
        if held_bytes + bytes > quota.inbox_bytes_per_device {
            return Err(StoreError::Quota {
                quota: "inbox_bytes_per_device",
                limit: quota.inbox_bytes_per_device,
            });
        }
    }
    Ok(())
}

/// Files deliveries of one topic key in the caller's other devices' inboxes.
fn file_deliveries(
    state: &AppState,
    caller: &Caller,
    kind: u8,
    items: Vec<(DeviceId, Vec<u8>)>,
) -> ApiResult<()> {
    for (device, item) in items {
        state
            .store()
            .inbox_push(&caller.user, device, kind, &item)?;
    }
    Ok(())
}

/// `POST /v1/topic-keys/claim` (`client-api.md` §4): local users from the store, remote users
/// through federation (`federation-api.md` §5), grouped by server. Refused before anything is
/// claimed: the caller's claim rate (`limits.rate.claim`, a cell per user listed), a user listed
/// twice, more than [`MAX_CLAIM_SERVERS`](crate::claims::MAX_CLAIM_SERVERS) other servers, the
/// caller's `limits.rate.remote` (a cell per other server). A one-time key of a local user is
/// handed out only while `limits.rate.claim_victim` gives a cell for that user. A remote
/// server that cannot be reached fails the whole request with `503 unavailable`; it is checked
/// before any local key is claimed, but keys already claimed on other remote servers are used
/// up.
async fn claim_topic_keys(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: ClaimTopicKeysRequest = cbor_body(&req, &body)?;
    if r.users.is_empty() || r.users.len() > MAX_CLAIMS {
        return Err(KeysError::Count {
            what: "users in a claim",
            max: MAX_CLAIMS,
            got: r.users.len(),
        }
        .into());
    }
    // One cell per user listed, duplicates included (`limits.rate.claim`), before anything else.
    let limits = state.limits();
    limits
        .claim
        .check(caller.user.as_str(), cost(r.users.len()))?;
    check_distinct(&r.users)?;
    let servers = check_servers(&r.users, state.server_name())?;
    limits.remote.check(caller.user.as_str(), cost(servers))?;
    let mut local = Vec::new();
    let mut remote: BTreeMap<ServerName, Vec<UserId>> = BTreeMap::new();
    for user in r.users {
        let server = user.server();
        if server == *state.server_name() {
            local.push(user);
        } else {
            remote.entry(server).or_default().push(user);
        }
    }
    // An unknown or disabled user of this server fails the claim before any key is claimed
    // here or elsewhere (`client-api.md` §4 step 4).
    let local = match claimable(state.store(), local)? {
        Ok(local) => local,
        Err(user) => return Err(super::accounts::AccountError::NoSuchUser(user).into()),
    };
    let mut keys = Vec::new();
    if !remote.is_empty() {
        let federation = federation_of(&state)?;
        let claims = remote.iter().flat_map(|(server, users)| {
            users
                .chunks(MAX_FEDERATION_CLAIMS)
                .map(move |chunk| federation.claim_topic_keys(server, chunk))
        });
        for answer in futures_util::future::join_all(claims).await {
            keys.extend(answer?);
        }
    }
    keys.extend(claim_local_topic_keys(state.store(), local, |user| {
        limits.claim_victim.check(user.as_str(), 1).is_ok()
    })?);
    state.store().sync().await?;
    Ok(cbor_response(&ClaimTopicKeysResponse { keys }))
}

/// A count as a number of rate cells (counts here are bounded far below `u32::MAX`).
pub(crate) fn cost(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The federation query client, or `invalid` when federation is off.
pub(crate) fn federation_of(state: &AppState) -> ApiResult<&FederationClient> {
    Ok(state.federation_or_off()?.client())
}

/// `GET /v1/keys/status` (`client-api.md` §4): `refill` also while the user has no unused
/// last-resort key (none yet, or the one held was handed out).
async fn key_status(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    Ok(cbor_response(&key_status_of(&state, &caller)?))
}

/// The caller's key stock and whether its devices are asked to refill: one rule for
/// `GET /v1/keys/status` and `GET /v1/sync` (`client-api.md` §4, §6).
pub(crate) fn key_status_of(state: &AppState, caller: &Caller) -> ApiResult<KeyStatusResponse> {
    let prekeys_left = state.store().prekey_count(&caller.user, caller.device)?;
    let topic_keys_left = state.store().topic_key_count(&caller.user)?;
    let last_resort = state.store().last_resort_status(&caller.user)?;
    Ok(KeyStatusResponse {
        prekeys_left,
        topic_keys_left,
        refill: prekeys_left < LOW_WATER
            || topic_keys_left < LOW_WATER
            || last_resort != LastResortStatus::Unused,
        last_resort,
    })
}

#[derive(Deserialize)]
struct AfterQuery {
    #[serde(default)]
    after: u64,
}

async fn inbox(
    query: web::Query<AfterQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let items = state
        .store()
        .inbox(&caller.user, caller.device, query.after, INBOX_PAGE)?
        .into_iter()
        .map(|(seq, kind, body)| InboxItem {
            seq,
            kind,
            body: ByteBuf::from(body),
        })
        .collect();
    Ok(cbor_response(&InboxResponse { items }))
}

async fn inbox_ack(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: AckRequest = cbor_body(&req, &body)?;
    state
        .store()
        .inbox_ack(&caller.user, caller.device, r.up_to)?;
    state.store().sync().await?;
    Ok(cbor_response(&Empty::default()))
}

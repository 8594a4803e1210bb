//! Registration, devices and login (`client-api.md` §2–3).

use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use super::{cbor_body, cbor_response, parse};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Caller, now, token_hash};
use crate::store::Endorsed;
use rendezvous_protocol::api::{
    AddDeviceRequest, ChallengeRequest, ChallengeResponse, DeviceInfo, DevicesResponse, Empty,
    LoginRequest, LoginResponse, RegisterRequest, RegisterResponse, RevokeDeviceRequest,
};
use rendezvous_protocol::api::{DeviceAddedItem, INBOX_DEVICE_ADDED};
use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement, DeviceRevocation, Registration};
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::crypto::transcript::LABEL_DEVICE_LOGIN;
use rendezvous_protocol::crypto::{DevicePublicKey, IdentityPublicKey};
use rendezvous_protocol::devices::DeviceDirectory;
use rendezvous_protocol::directory::DirectoryEntry;
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::wire::Signed;

/// Challenges are valid for two minutes.
const CHALLENGE_SECS: u64 = 120;

/// Why an account request (`client-api.md` §2–3) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A registration for a user id of another server.
    #[error("{user} is not a user id of {server}")]
    NotLocalUser {
        /// The user id registered.
        user: UserId,
        /// This server.
        server: ServerName,
    },
    /// The device certificate is for another user than the registration.
    #[error("the device certificate names {got}, the registration {expected}")]
    CertificateForAnotherUser {
        /// The registration's user.
        expected: UserId,
        /// The certificate's user.
        got: UserId,
    },
    /// No such local user.
    #[error("no user {0}")]
    NoSuchUser(UserId),
    /// The device to revoke is not registered (or already revoked).
    #[error("no such device")]
    NoSuchDevice,
    /// A login challenge for a device that is unknown, removed or never registered: one answer
    /// for all, so the endpoint is no oracle for which devices exist.
    #[error("no such active device for this user")]
    NoActiveDevice,
    /// The login names a challenge never issued, or already used.
    #[error("unknown or used challenge")]
    UnknownChallenge,
    /// The challenge expired, or was issued to another user or device.
    #[error("challenge expired or issued to another device")]
    ChallengeMismatch,
    /// The device was removed after the challenge was issued.
    #[error("device removed")]
    DeviceRemoved,
    /// The stored device key does not decode (a store fault; logged, not sent).
    #[error("stored device key: {0}")]
    StoredDeviceKey(String),
    /// The login signature does not verify under the device key.
    #[error("login signature does not verify")]
    BadLoginSignature,
    /// `POST /v1/devices` without an endorsement by an active device (`devices.md` §2).
    #[error(
        "adding a device needs an endorsement by an active device of the user: link the new \
         device from one (rdv device link)"
    )]
    EndorsementRequired,
    /// A revocation of another user's device, sent with this user's token.
    #[error("a device can only revoke devices of its own user")]
    RevocationForAnotherUser,
    /// The rotation does not verify (a signature, its payload).
    #[error("{0}")]
    BadRotation(String),
    /// A rotation of another user's key, sent with this user's token.
    #[error("a device can only rotate the identity key of its own user")]
    RotationForAnotherUser,
    /// The rotation is from a key that is not the user's current Identity Key.
    #[error("the rotation is from {got}, the user's identity key is {expected}")]
    RotationFromAnotherKey {
        /// The user's current IK.
        expected: String,
        /// The rotation's old key.
        got: String,
    },
    /// The registration sent with a rotation names another user or key than the rotation.
    #[error("the registration names another user or key than the rotation")]
    RegistrationMismatch,
    /// The certificates sent with a rotation are not exactly the user's active devices.
    #[error("the certificates must be exactly the active devices: {0}")]
    DeviceSetMismatch(String),
    /// The identity deliveries sent with a rotation are not one for each other active device.
    #[error("the deliveries must be one for each other active device: {0}")]
    DeliverySetMismatch(String),
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/register", web::post().to(register))
        .route("/v1/users/{user}/identity", web::get().to(identity))
        .route("/v1/devices", web::post().to(add_device))
        .route("/v1/devices", web::get().to(list_devices))
        .route("/v1/devices/revoke", web::post().to(revoke_device))
        .route(
            "/v1/identity/rotate",
            web::post().to(super::rotation::rotate_identity),
        )
        .route("/v1/login/challenge", web::post().to(challenge))
        .route("/v1/login", web::post().to(login));
}

/// The Identity Key on record for a local user.
pub(crate) fn identity_key(state: &AppState, user: &UserId) -> ApiResult<IdentityPublicKey> {
    let record = state
        .store()
        .user(user)?
        .ok_or_else(|| AccountError::NoSuchUser(user.clone()))?;
    Ok(record.identity_key()?)
}

async fn register(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: RegisterRequest = cbor_body(&req, &body)?;
    let registration = Signed::<Registration>::from_signed_bytes(r.registration.clone())?;
    let claimed = registration.decode_unverified()?;
    let registration = registration.verify(&claimed.identity_key)?;
    let user = registration.user.clone();
    if user.server() != *state.server_name() {
        return Err(AccountError::NotLocalUser {
            user,
            server: state.server_name().clone(),
        }
        .into());
    }
    let cert = Signed::<DeviceCert>::from_signed_bytes(r.device_cert.clone())?
        .verify(&registration.identity_key)?;
    if cert.user != user {
        return Err(AccountError::CertificateForAnotherUser {
            expected: user,
            got: cert.user.clone(),
        }
        .into());
    }
    let pin_hash: [u8; 32] = Sha256::digest(r.pin.trim().as_bytes()).into();
    // directory.md §2.2: the user's kind 1 entry, in the same batch as the user.
    let entry = DirectoryEntry::registration(&r.registration, now())?;
    entry.check(state.server_name())?;
    state.store().register_user(
        pin_hash,
        &user,
        &r.registration,
        cert.device_key.device_id(),
        &r.device_cert,
        &entry.to_bytes(),
        now(),
    )?;
    state.store().sync().await?;
    tracing::info!(%user, "registered");
    Ok(cbor_response(&RegisterResponse { user }))
}

/// `known` of an identity lookup (`directory.md` §4): the size of the client's held
/// checkpoint of the user's server.
#[derive(serde::Deserialize)]
struct KnownQuery {
    #[serde(default)]
    known: u64,
}

/// `GET /v1/users/{user}/identity?known=m` (`client-api.md` §2, `directory.md` §4), for a
/// device with a token: the registration and its directory proof, from this server's
/// directory against its served checkpoint for a local user; for a remote one from the
/// user's homeserver through federation (`federation-api.md` §5), checked against this
/// server's witness view of that server's directory and cosigned by this server. A remote
/// lookup also takes a cell of the caller's `limits.rate.remote` (the gate took `identity`'s).
async fn identity(
    path: web::Path<String>,
    query: web::Query<KnownQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let user: UserId = parse("user", &path)?;
    if user.server() != *state.server_name() {
        state.limits().remote.check(caller.user.as_str(), 1)?;
        let witness = state
            .federation_or_off()?
            .witness()
            .ok_or_else(|| ApiError::internal("directory", "no witness"))?;
        let checked = witness.lookup(&user, query.known).await?;
        return Ok(cbor_response(&checked.answer));
    }
    Ok(cbor_response(
        &state.local_identity(&user, query.known).await?,
    ))
}

/// `POST /v1/devices` (`client-api.md` §3): the IK-signed certificate **and** an endorsement
/// by another active device of the user, both checked by the user's [`DeviceDirectory`]
/// (`devices.md` §2); the add and the `device added` notices for the other devices are one
/// transaction.
async fn add_device(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: AddDeviceRequest = cbor_body(&req, &body)?;
    let signed = Signed::<DeviceCert>::from_signed_bytes(r.device_cert.clone())?;
    let user = signed.decode_unverified()?.user;
    let ik = identity_key(&state, &user)?;
    // The IK signature alone no longer authorizes an add: every linked device holds the IK.
    let endorsement = r.endorsement.ok_or(AccountError::EndorsementRequired)?;
    let endorsement = Signed::<DeviceEndorsement>::from_signed_bytes(endorsement)?;
    let (cert, endorsement) =
        directory_of(&state, &user, ik)?.check_endorsed(signed, endorsement)?;
    let notice = DeviceAddedItem {
        device_cert: cert.signed_bytes().clone(),
        endorsement: endorsement.signed_bytes().clone(),
    }
    .to_wire();
    let quota = state.config().limits.quota.devices_per_user;
    let added = state.store().add_device_within(
        &user,
        cert.device_key.device_id(),
        &r.device_cert,
        now(),
        quota,
        Some(Endorsed {
            endorser: endorsement.endorser.device_id(),
            kind: INBOX_DEVICE_ADDED,
            body: &notice,
        }),
    );
    state.quota(&user, added)?;
    state.store().sync().await?;
    state.push().forget_endpoints(&user);
    tracing::info!(%user, "device added");
    Ok(cbor_response(&Empty::default()))
}

/// The user's device set as this server holds it: active certificates and revoked keys.
fn directory_of(
    state: &AppState,
    user: &UserId,
    identity_key: IdentityPublicKey,
) -> ApiResult<DeviceDirectory> {
    let stored = |e: String| AccountError::StoredDeviceKey(e);
    let mut directory = DeviceDirectory::new(user.clone(), identity_key);
    for device in state.store().devices(user)? {
        let cert = Signed::<DeviceCert>::from_signed_bytes(device.cert)
            .map_err(|e| stored(e.to_string()))?;
        directory.add(cert).map_err(|e| stored(e.to_string()))?;
    }
    for device in state.store().revoked_devices(user)? {
        let key =
            DevicePublicKey::from_slice(device.as_bytes()).map_err(|e| stored(e.to_string()))?;
        directory.remember_revoked(&key);
    }
    Ok(directory)
}

async fn list_devices(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let devices = state
        .store()
        .devices(&caller.user)?
        .into_iter()
        .map(|d| DeviceInfo {
            device_cert: d.cert,
            created: d.created,
            last_seen: d.last_seen,
        })
        .collect();
    Ok(cbor_response(&DevicesResponse { devices }))
}

/// `POST /v1/devices/revoke` (`client-api.md` §3): the IK-signed revocation, sent with the token
/// of an active device of the same user (a device may revoke itself).
async fn revoke_device(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: RevokeDeviceRequest = cbor_body(&req, &body)?;
    let signed = Signed::<DeviceRevocation>::from_signed_bytes(r.revocation)?;
    let user = signed.decode_unverified()?.user;
    if user != caller.user {
        return Err(AccountError::RevocationForAnotherUser.into());
    }
    let ik = identity_key(&state, &user)?;
    let revocation = signed.verify(&ik)?;
    let device = revocation.device_key.device_id();
    if !state.store().revoke_device(&user, device)? {
        return Err(AccountError::NoSuchDevice.into());
    }
    state.store().sync().await?;
    state.push().disconnect_device(&user, &device);
    state.push().forget_endpoints(&user);
    state.forget_device(&user, &device);
    tracing::info!(%user, "device revoked");
    Ok(cbor_response(&Empty::default()))
}

async fn challenge(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: ChallengeRequest = cbor_body(&req, &body)?;
    let device = r.device_key.device_id();
    // Per device key, registered or not (`client-api.md` §1.3): many addresses cannot take
    // turns at one device, and the answer tells nothing of which devices exist.
    state
        .limits()
        .login_device
        .check(&hex_string(device.as_bytes()), 1)?;
    if !state.store().device_active(&r.user, device)? {
        return Err(AccountError::NoActiveDevice.into());
    }
    let challenge = rendezvous_protocol::crypto::random_array::<32>();
    let expires = now() + CHALLENGE_SECS;
    state
        .store()
        .put_challenge(challenge, &r.user, device, expires)?;
    Ok(cbor_response(&ChallengeResponse { challenge, expires }))
}

async fn login(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: LoginRequest = cbor_body(&req, &body)?;
    let (user, device, expires) = state
        .store()
        .take_challenge(r.challenge)?
        .ok_or(AccountError::UnknownChallenge)?;
    let device_key = r.device_key.device_id();
    if user != r.user || device != device_key || expires <= now() {
        return Err(AccountError::ChallengeMismatch.into());
    }
    if !state.store().device_active(&user, device)? {
        return Err(AccountError::DeviceRemoved.into());
    }
    let dk = DevicePublicKey::from_slice(device.as_bytes())
        .map_err(|e| AccountError::StoredDeviceKey(e.to_string()))?;
    dk.verify(
        LABEL_DEVICE_LOGIN,
        &[
            state.server_name().as_str().as_bytes(),
            user.as_str().as_bytes(),
            &r.challenge,
        ],
        &r.signature,
    )
    .map_err(|_| AccountError::BadLoginSignature)?;
    let token = hex_string(&rendezvous_protocol::crypto::random_array::<32>());
    let expires = now() + state.config().limits.token_lifetime_secs;
    state
        .store()
        .put_token(token_hash(&token), &user, device, expires)?;
    state.store().sync().await?;
    Ok(cbor_response(&LoginResponse { token, expires }))
}

//! `POST /v1/identity/rotate` (`client-api.md` §3, `directory.md` §8): a new Identity Key for
//! the caller's user, the device certificates under it, and its delivery to every other active
//! device, written in one transaction with the kind 2 directory entry.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_bytes::ByteBuf;

use super::accounts::AccountError;
use super::cbor_body;
use super::cbor_response;
use crate::error::ApiResult;
use crate::state::{AppState, Caller, now};
use crate::store::{DeviceRecord, RotationNotices};
use rendezvous_protocol::api::{
    Empty, INBOX_IDENTITY_ROTATED, IdentityRotatedItem, RotateIdentityRequest,
};
use rendezvous_protocol::certs::{DeviceCert, Registration};
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::devices::{Delivery, MAX_DEVICES};
use rendezvous_protocol::directory::{DirectoryEntry, EntryKind, SignedIdentityRotation};
use rendezvous_protocol::ids::DeviceId;
use rendezvous_protocol::wire::Signed;

/// `POST /v1/identity/rotate` (`client-api.md` §3, `directory.md` §8), with the token of an
/// active device of the user: the rotation (signed by the current and the new IK), the
/// registration under the new IK and the new IK's certificate of every active device, exactly
/// those, and one identity delivery for each other active device. The registration, the
/// certificates, the deliveries' inbox items (kind 5) and the kind 2 directory entry are one
/// transaction; on a refusal nothing changes.
pub(super) async fn rotate_identity(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: RotateIdentityRequest = cbor_body(&req, &body)?;
    let user = caller.user.clone();
    let signed = SignedIdentityRotation::from_wire(&r.rotation)?;
    // directory.md §8: signed by the old key and by the new one.
    let rotation = signed
        .verify()
        .map_err(|e| AccountError::BadRotation(e.to_string()))?;
    if rotation.user != user {
        return Err(AccountError::RotationForAnotherUser.into());
    }
    let record = state
        .store()
        .user(&user)?
        .ok_or_else(|| AccountError::NoSuchUser(user.clone()))?;
    let current = record.identity_key()?;
    // directory.md §6.1 step 6: a rotation counts only if signed by the accepted key.
    if rotation.old_identity_key != current {
        return Err(AccountError::RotationFromAnotherKey {
            expected: hex_string(current.as_bytes()),
            got: hex_string(rotation.old_identity_key.as_bytes()),
        }
        .into());
    }
    let new = rotation.new_identity_key.clone();
    let registration =
        Signed::<Registration>::from_signed_bytes(r.registration.clone())?.verify(&new)?;
    if registration.user != user || registration.identity_key != new {
        return Err(AccountError::RegistrationMismatch.into());
    }
    // Exactly the active devices, each certified by the new key (devices.md §2); counted
    // before any certificate's signature is checked.
    let active = state.store().devices(&user)?;
    if r.device_certs.len() != active.len() {
        return Err(AccountError::DeviceSetMismatch(format!(
            "{} certificates for {} active devices",
            r.device_certs.len(),
            active.len()
        ))
        .into());
    }
    let mut certs = Vec::with_capacity(r.device_certs.len());
    for bytes in &r.device_certs {
        let cert = Signed::<DeviceCert>::from_signed_bytes(bytes.clone())?.verify(&new)?;
        if cert.user != user {
            return Err(AccountError::CertificateForAnotherUser {
                expected: user,
                got: cert.user.clone(),
            }
            .into());
        }
        let id = cert.device_key.device_id();
        if !active.iter().any(|d| d.device_key == id) {
            return Err(AccountError::DeviceSetMismatch(format!(
                "{} is not an active device",
                hex_string(id.as_bytes())
            ))
            .into());
        }
        if certs.iter().any(|(d, _)| *d == id) {
            return Err(AccountError::DeviceSetMismatch(format!(
                "{} is certified twice",
                hex_string(id.as_bytes())
            ))
            .into());
        }
        certs.push((id, bytes.clone()));
    }
    let items = route_deliveries(&state, &caller, &active, &r)?;
    // directory.md §2.1: the kind 2 entry, statement = the rotation's wire bytes.
    let entry = DirectoryEntry {
        user: user.clone(),
        identity_key: new,
        kind: EntryKind::Rotation,
        statement: r.rotation.clone(),
        time: now(),
    };
    entry.check(state.server_name())?;
    state.store().rotate_identity(
        &user,
        &record.registration,
        &r.registration,
        &certs,
        &entry.to_bytes(),
        RotationNotices {
            kind: INBOX_IDENTITY_ROTATED,
            items: &items,
        },
    )?;
    state.store().sync().await?;
    state.push().forget_endpoints(&user);
    tracing::info!(%user, "identity key rotated");
    Ok(cbor_response(&Empty::default()))
}

/// Routes the identity deliveries by pre key (`client-api.md` §3): each must be sealed to a pre
/// key of an active device of the user other than the caller, no device twice, every other
/// active device once. Returns each device's inbox item body `[rotation, delivery]`. The
/// deliveries' contents are the devices' to check: only they hold the pre keys.
fn route_deliveries(
    state: &AppState,
    caller: &Caller,
    active: &[DeviceRecord],
    r: &RotateIdentityRequest,
) -> ApiResult<Vec<(DeviceId, Vec<u8>)>> {
    let mismatch = |m: String| AccountError::DeliverySetMismatch(m);
    let others = active
        .iter()
        .filter(|d| d.device_key != caller.device)
        .count();
    // Bounded before anything is decoded.
    if r.deliveries.len() != others || others >= MAX_DEVICES {
        return Err(mismatch(format!(
            "{} deliveries for {others} other active devices",
            r.deliveries.len()
        ))
        .into());
    }
    let mut items: Vec<(DeviceId, Vec<u8>)> = Vec::with_capacity(others);
    for (i, bytes) in r.deliveries.iter().enumerate() {
        let delivery =
            Delivery::from_wire(bytes).map_err(|e| mismatch(format!("delivery {i}: {e}")))?;
        // The one routing rule of deliveries (topic keys too, `client-api.md` §4).
        let device = super::keys::own_delivery_device(state, caller, delivery.prekey_id)?;
        if items.iter().any(|(d, _)| *d == device) {
            return Err(mismatch(format!(
                "two deliveries for device {}",
                hex_string(device.as_bytes())
            ))
            .into());
        }
        let item = IdentityRotatedItem {
            rotation: ByteBuf::from(r.rotation.clone()),
            delivery: ByteBuf::from(bytes.to_vec()),
        };
        items.push((device, item.to_wire()));
    }
    Ok(items)
}

//! The account's devices: the checked device list, removal, registering a new device
//! (`client-api.md` §2, `devices.md` §2).

use awc::http::Method;

use crate::http::Http;
use crate::{Client, ClientError};
use rendezvous_protocol::api::{AddDeviceRequest, Body, DevicesResponse, RevokeDeviceRequest};
use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement, DeviceRevocation};
use rendezvous_protocol::crypto::DevicePublicKey;
use rendezvous_protocol::devices::DeviceDirectory;
use rendezvous_protocol::wire::{Signed, Verified};

use super::DeviceEntry;

impl Client {
    /// The user's devices from the server, each certificate checked against the Identity Key.
    pub async fn directory(&mut self) -> Result<(DeviceDirectory, Vec<DeviceEntry>), ClientError> {
        let answer: DevicesResponse = self.authed(Method::GET, "/v1/devices", None).await?;
        let mut directory = DeviceDirectory::new(self.user.clone(), self.identity.public().clone());
        let mut entries = Vec::with_capacity(answer.devices.len());
        let seen = self.keystore.devices_seen()?;
        for info in answer.devices {
            let signed =
                Signed::<DeviceCert>::from_signed_bytes(info.device_cert).map_err(|error| {
                    ClientError::Malformed {
                        what: "device certificate".into(),
                        error,
                    }
                })?;
            let cert = directory.add(signed)?;
            entries.push(DeviceEntry {
                device_key: cert.device_key.clone(),
                created: info.created,
                last_seen: info.last_seen,
                this_device: cert.device_key == *self.device.public(),
                endorsed_by: seen.get(&cert.device_key.key_id().to_hex()).cloned(),
            });
        }
        if !directory.is_active(self.device.public()) {
            return Err(ClientError::Misbehaved(
                "the server's device list does not include this device".into(),
            ));
        }
        Ok((directory, entries))
    }

    /// The user's devices.
    pub async fn devices(&mut self) -> Result<Vec<DeviceEntry>, ClientError> {
        Ok(self.directory().await?.1)
    }

    /// Removes a device for good with an IK-signed revocation. `key_id` is the device's key id in
    /// hex, or a unique prefix of it. Removing this device itself is refused.
    pub async fn remove_device(&mut self, key_id: &str) -> Result<DevicePublicKey, ClientError> {
        let wanted = key_id.trim().to_ascii_lowercase();
        if wanted.is_empty() {
            return Err(ClientError::InvalidInput("give a device key id".into()));
        }
        let devices = self.devices().await?;
        let matching: Vec<_> = devices
            .iter()
            .filter(|d| d.device_key.key_id().to_hex().starts_with(&wanted))
            .collect();
        let device = match matching.as_slice() {
            [one] => one.device_key.clone(),
            [] => return Err(ClientError::NoSuchDevice(wanted)),
            _ => return Err(ClientError::AmbiguousDevice(wanted)),
        };
        if device == *self.device.public() {
            return Err(ClientError::RemovingThisDevice);
        }
        let revocation = Signed::sign(
            DeviceRevocation::new(self.user.clone(), device.clone(), self.now()),
            &self.identity,
        );
        let request = RevokeDeviceRequest {
            revocation: revocation.signed_bytes().clone(),
        };
        self.authed_raw(
            Method::POST,
            "/v1/devices/revoke",
            Some(request.to_cbor()),
            1024,
        )
        .await?;
        Ok(device)
    }

    /// Rotates the account's Identity Key (`directory.md` §8, `client-api.md` §3): a new key,
    /// the rotation signed by the old and the new one, the registration and a certificate of
    /// every active device under the new one, and the new key sealed to one claimed pre key of
    /// every other active device (checked as a Topic Key batch's are, `devices.md` §3.3). On the
    /// server's success the old key's public half joins the keystore's rotated-from keys (the
    /// self-monitor accepts them, §6.3) and the new key replaces the old. Returns the new key's
    /// public half.
    pub async fn rotate_identity(
        &mut self,
    ) -> Result<rendezvous_protocol::crypto::IdentityPublicKey, ClientError> {
        use rendezvous_protocol::api::RotateIdentityRequest;
        use rendezvous_protocol::certs::Registration;
        use rendezvous_protocol::crypto::{IdentityKey, Randomness};
        use rendezvous_protocol::devices::make_identity_deliveries;
        use rendezvous_protocol::directory::SignedIdentityRotation;
        let (directory, devices) = self.directory().await?;
        let claimed = match devices.len() > 1 {
            true => self.claim_prekey_round().await?,
            false => Vec::new(),
        };
        let new = IdentityKey::generate();
        let now = self.now();
        let rotation = SignedIdentityRotation::sign(&self.user, &self.identity, &new, now);
        let deliveries = make_identity_deliveries(
            &rotation,
            &new,
            &directory,
            self.device.public(),
            claimed,
            &mut Randomness::Os,
        )?;
        let registration = Signed::sign(
            Registration::new(self.user.clone(), new.public().clone()),
            &new,
        );
        let device_certs = devices
            .iter()
            .map(|d| {
                let cert = DeviceCert::new(self.user.clone(), d.device_key.clone(), now);
                Signed::sign(cert, &new).signed_bytes().clone()
            })
            .collect();
        let request = RotateIdentityRequest {
            rotation: rotation.to_wire(),
            registration: registration.signed_bytes().clone(),
            device_certs,
            deliveries: deliveries
                .iter()
                .map(|d| serde_bytes::ByteBuf::from(d.to_wire()))
                .collect(),
        };
        self.authed_raw(
            Method::POST,
            "/v1/identity/rotate",
            Some(request.to_cbor()),
            1024,
        )
        .await?;
        self.keystore.record_rotated_from(self.identity.public())?;
        self.keystore.save_identity(&new)?;
        let public = new.public().clone();
        self.identity = new;
        Ok(public)
    }

    /// Registers a device certificate with an active device's endorsement of it (no token: the
    /// IK signature and the endorsement authorize it, `devices.md` §2).
    pub(crate) async fn add_device(
        http: &Http,
        cert: &Verified<DeviceCert>,
        endorsement: &Signed<DeviceEndorsement>,
    ) -> Result<(), ClientError> {
        let request = AddDeviceRequest {
            device_cert: cert.signed_bytes().clone(),
            endorsement: Some(endorsement.signed_bytes().clone()),
        };
        http.send(
            Method::POST,
            "/v1/devices",
            Some(request.to_cbor()),
            None,
            1024,
        )
        .await?;
        Ok(())
    }
}

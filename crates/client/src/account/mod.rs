//! The account: registration and login (`client-api.md` §2–3), with the account's devices in
//! `devices`, its key stock in `keys`, the inbox in `inbox` and other parties' keys in `servers`.

mod devices;
mod inbox;
mod keys;
mod servers;

use awc::http::Method;
use base64::Engine;
use serde::Deserialize;

use super::http::Http;
use super::keystore::{Config, Keystore};
use super::tls::{Trust, decode_hex};
use super::{Client, ClientError, PREKEY_STOCK, TOPIC_KEY_STOCK, now};
use rendezvous_protocol::api::{
    Body, ChallengeRequest, ChallengeResponse, ErrorCode, LoginRequest, LoginResponse,
    RegisterRequest, RegisterResponse,
};
use rendezvous_protocol::certs::{DeviceCert, Registration};
use rendezvous_protocol::clock::Clock;
use rendezvous_protocol::crypto::transcript::LABEL_DEVICE_LOGIN;
use rendezvous_protocol::crypto::{
    DeviceKey, DevicePublicKey, IdentityKey, IdentityPublicKey, ServerPublicKey,
};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::wire::Signed;

/// `GET /v1/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerStatus {
    /// The server's name.
    pub server_name: String,
    /// Software version.
    #[serde(default)]
    pub version: String,
    /// The server's signing key (hex or base64 of the 32-byte Ed25519 key).
    pub server_key: String,
}

impl ServerStatus {
    /// The server key, parsed: 64 hex digits or base64 of 32 bytes, optionally `ed25519:` first.
    pub fn key(&self) -> Result<ServerPublicKey, ClientError> {
        let text = self.server_key.trim();
        let text = text.strip_prefix("ed25519:").unwrap_or(text);
        let bytes = match decode_hex(text) {
            Some(b) if b.len() == 32 => b,
            _ => base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| {
                    ClientError::Misbehaved(format!(
                        "server key {:?} is neither hex nor base64",
                        self.server_key
                    ))
                })?,
        };
        ServerPublicKey::from_slice(&bytes)
            .map_err(|e| ClientError::Misbehaved(format!("server key: {e}")))
    }
}

/// One of the user's devices, as `GET /v1/devices` lists it (certificate checked).
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// The Device Key.
    pub device_key: DevicePublicKey,
    /// Certificate creation time.
    pub created: u64,
    /// Last seen by the server.
    pub last_seen: u64,
    /// Whether it is this device.
    pub this_device: bool,
    /// The key id (hex) of the device that endorsed it, when this device learned it (its own
    /// link, or a `device added` notice; `devices.md` §2).
    pub endorsed_by: Option<String>,
}

/// `GET /v1/keys/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStatus {
    /// Pre keys left for this device.
    pub prekeys_left: u64,
    /// One-time topic keys left for the user.
    pub topic_keys_left: u64,
    /// Whether the server asks for a refill (also of the last-resort key).
    pub refill: bool,
    /// The user's last-resort topic key on the server.
    pub last_resort: rendezvous_protocol::api::LastResortStatus,
}

/// A `device added` notice of the inbox (`client-api.md` §5, kind 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAdded {
    /// The new device's key id (hex), when the certificate decodes.
    pub device: Option<String>,
    /// The endorser's key id (hex), when the endorsement decodes.
    pub endorser: Option<String>,
    /// `None` when certificate and endorsement verify against this device's view of the device
    /// set; otherwise why not (the notice is reported, never dropped).
    pub problem: Option<String>,
}

/// An `identity rotated` inbox item (kind 5, `client-api.md` §5): another device of the user
/// rotated the Identity Key (`directory.md` §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRotatedNotice {
    /// The IK rotated from (hex), when the rotation decodes.
    pub from: Option<String>,
    /// The IK rotated to (hex), when the rotation decodes.
    pub to: Option<String>,
    /// `None` when the new key was received and replaced this device's; otherwise why not
    /// (nothing was replaced; the notice is reported, never dropped).
    pub problem: Option<String>,
}

/// What [`Client::sync_inbox`] did.
#[derive(Debug, Clone, Default)]
pub struct InboxReport {
    /// Topic keys received and stored.
    pub topic_keys: usize,
    /// Devices added to the account, as the inbox told.
    pub devices_added: Vec<DeviceAdded>,
    /// Identity Key rotations made by another device, as the inbox told.
    pub identity_rotations: Vec<IdentityRotatedNotice>,
    /// Items that could not be used, with the reason (they are acknowledged all the same:
    /// they can never be opened).
    pub failed: Vec<(u64, String)>,
}

/// Fetches `GET /v1/status` and checks the server's name.
pub(super) async fn server_status(http: &Http) -> Result<(ServerStatus, ServerName), ClientError> {
    let status: ServerStatus = http.get_json("/v1/status").await?;
    let name: ServerName = status.server_name.parse().map_err(|e| {
        ClientError::Misbehaved(format!("server name {:?}: {e}", status.server_name))
    })?;
    status.key()?;
    Ok((status, name))
}

/// Checks that `user` lives on `server`.
pub(super) fn check_home(user: &UserId, server: &ServerName) -> Result<(), ClientError> {
    if user.server() != *server {
        return Err(ClientError::InvalidInput(format!(
            "{user} is not a user of {server} (the server at this URL)"
        )));
    }
    Ok(())
}

/// Verifies a user's self-signed registration and returns their Identity Key.
pub(super) fn verify_registration(
    registration: rendezvous_protocol::wire::SignedBytes,
    user: &UserId,
) -> Result<IdentityPublicKey, ClientError> {
    let signed = Signed::<Registration>::from_signed_bytes(registration).map_err(|error| {
        ClientError::Malformed {
            what: format!("registration of {user}"),
            error,
        }
    })?;
    let claimed = signed
        .decode_unverified()
        .map_err(|error| ClientError::Malformed {
            what: format!("registration of {user}"),
            error,
        })?;
    let verified = signed.verify(&claimed.identity_key).map_err(|e| {
        ClientError::Misbehaved(format!("registration of {user} does not verify: {e}"))
    })?;
    if verified.user != *user {
        return Err(ClientError::Misbehaved(format!(
            "registration for {user} names {}",
            verified.user
        )));
    }
    Ok(verified.identity_key.clone())
}

impl Client {
    /// Registers `user` on the server at `server_url` with the operator's one-time `pin`, and
    /// sets this keystore directory up as the user's first device: makes the Identity Key and
    /// Device Key, registers both, logs in, uploads [`PREKEY_STOCK`] pre keys,
    /// [`TOPIC_KEY_STOCK`] topic keys and a last-resort topic key. The keystore is locked with
    /// `passphrase` (not empty).
    pub async fn register(
        dir: &std::path::Path,
        passphrase: &super::Passphrase,
        server_url: &str,
        trust: Trust,
        pin: &str,
        user: &UserId,
    ) -> Result<Client, ClientError> {
        let http = Http::new(server_url, &trust)?;
        let keystore = Keystore::create(dir, passphrase)?;
        let (status, server) = server_status(&http).await?;
        check_home(user, &server)?;

        let identity = IdentityKey::generate();
        let device = DeviceKey::generate();
        let registration = Signed::sign(
            Registration::new(user.clone(), identity.public().clone()),
            &identity,
        );
        let device_cert = Signed::sign(
            DeviceCert::new(user.clone(), device.public().clone(), now()),
            &identity,
        );
        let config = Config {
            server_url: http.base().to_owned(),
            server_name: server.to_string(),
            trust: trust.to_string(),
            user: user.to_string(),
            server_rotations: Default::default(),
            server_keys: [(
                server.to_string(),
                rendezvous_protocol::crypto::sign::hex_string(status.key()?.as_bytes()),
            )]
            .into(),
            inbox_seq: 0,
            refused_posts: Vec::new(),
        };
        // Keys reach the disk before the server hears of them, so an answer lost on the way
        // back never leaves a registered account without its keys.
        keystore.save_identity(&identity)?;
        keystore.save_device(&device)?;
        keystore.save_config(&config)?;
        let request = RegisterRequest {
            pin: pin.to_owned(),
            registration: registration.signed_bytes().clone(),
            device_cert: device_cert.signed_bytes().clone(),
        };
        let answer: Result<RegisterResponse, _> = http
            .call(Method::POST, "/v1/register", Some(request.to_cbor()), None)
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e @ ClientError::Api { .. }) => {
                // The server refused for good: nothing was created, the directory can be reused.
                keystore.forget_account()?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if answer.user != *user {
            return Err(ClientError::Misbehaved(format!(
                "registered {} instead of {user}",
                answer.user
            )));
        }
        let mut client = Client {
            keystore,
            config,
            http,
            identity,
            device,
            user: user.clone(),
            server,
            token: None,
            clock: Clock::system(),
        };
        client.login().await?;
        client.upload_prekeys(PREKEY_STOCK).await?;
        client.make_topic_keys(TOPIC_KEY_STOCK).await?;
        client.upload_last_resort().await?;
        Ok(client)
    }

    /// Logs in: challenge, Device Key signature over `[server name, user, challenge]` with
    /// label `rdv/v1/device-login`, token (`client-api.md` §3). The token is kept in the keystore.
    pub async fn login(&mut self) -> Result<(), ClientError> {
        let request = ChallengeRequest {
            user: self.user.clone(),
            device_key: self.device.public().clone(),
        };
        let challenge: ChallengeResponse = self
            .http
            .call(
                Method::POST,
                "/v1/login/challenge",
                Some(request.to_cbor()),
                None,
            )
            .await
            .map_err(|e| match e.code() {
                // The device's key is in the keystore, so it did join once: it was removed.
                Some(ErrorCode::Unauthorized) => ClientError::DeviceRemoved {
                    user: self.user.to_string(),
                },
                _ => e,
            })?;
        let signature = self.device.sign(
            LABEL_DEVICE_LOGIN,
            &[
                self.server.as_str().as_bytes(),
                self.user.as_str().as_bytes(),
                &challenge.challenge,
            ],
        );
        let request = LoginRequest {
            user: self.user.clone(),
            device_key: self.device.public().clone(),
            challenge: challenge.challenge,
            signature,
        };
        let answer: LoginResponse = self
            .http
            .call(Method::POST, "/v1/login", Some(request.to_cbor()), None)
            .await?;
        self.keystore.save_token(&answer.token)?;
        self.token = Some(zeroize::Zeroizing::new(answer.token));
        Ok(())
    }
}

#[cfg(test)]
mod tests;

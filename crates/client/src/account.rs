//! Account, login, pre keys, topic keys and the inbox (`client-api.md` §2–5).

use awc::http::Method;
use base64::Engine;
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::http::{Http, encode_segment};
use super::keystore::{Config, Keystore};
use super::tls::{Trust, decode_hex};
use super::{Client, ClientError, PREKEY_STOCK, TOPIC_KEY_STOCK, now};
use rendezvous_protocol::api::{
    AckRequest, AddDeviceRequest, Body, ChallengeRequest, ChallengeResponse, ClaimPreKeysResponse,
    CountResponse, DevicesResponse, Empty, INBOX_TOPIC_KEY, IdentityResponse, InboxResponse,
    KeyStatusResponse, LoginRequest, LoginResponse, RegisterRequest, RegisterResponse,
    RevokeDeviceRequest, TopicKeyDeliveryItem, UploadPreKeysRequest, UploadTopicKeysRequest,
};
use rendezvous_protocol::certs::{
    DeviceCert, DeviceRevocation, PreKey, Registration, TopicKeyCert,
};
use rendezvous_protocol::crypto::transcript::LABEL_DEVICE_LOGIN;
use rendezvous_protocol::crypto::{
    DeviceKey, DevicePublicKey, IdentityKey, IdentityPublicKey, KemSecretKey, Randomness,
    ServerPublicKey, Suite,
};
use rendezvous_protocol::devices::topic_keys::verify_cert;
use rendezvous_protocol::devices::{
    ClaimedPreKey, Delivery, DeviceDirectory, make_batch, open_delivery,
};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::wire::{Signed, Verified};

/// Most pre keys per upload request (`client-api.md` §4).
const PREKEYS_PER_REQUEST: usize = 200;
/// Topic key uploads per request (well inside the 4 MiB limit).
const TOPIC_KEYS_PER_REQUEST: usize = 50;

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
}

/// `GET /v1/keys/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStatus {
    /// Pre keys left for this device.
    pub prekeys_left: u64,
    /// Topic keys left for the user.
    pub topic_keys_left: u64,
    /// Whether the server asks for a refill.
    pub refill: bool,
}

/// What [`Client::sync_inbox`] did.
#[derive(Debug, Clone, Default)]
pub struct InboxReport {
    /// Topic keys received and stored.
    pub topic_keys: usize,
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
    /// Device Key, registers both, logs in, uploads [`PREKEY_STOCK`] pre keys and
    /// [`TOPIC_KEY_STOCK`] topic keys.
    pub async fn register(
        dir: &std::path::Path,
        server_url: &str,
        trust: Trust,
        pin: &str,
        user: &UserId,
    ) -> Result<Client, ClientError> {
        let http = Http::new(server_url, &trust)?;
        let keystore = Keystore::create(dir)?;
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
            server_keys: [(
                server.to_string(),
                rendezvous_protocol::crypto::sign::hex_string(status.key()?.as_bytes()),
            )]
            .into(),
            inbox_seq: 0,
            identities: Default::default(),
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
        };
        client.login().await?;
        client.upload_prekeys(PREKEY_STOCK).await?;
        client.make_topic_keys(TOPIC_KEY_STOCK).await?;
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
            .await?;
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

    /// Makes `count` pre keys, keeps their private halves and uploads the DK-signed public halves.
    pub async fn upload_prekeys(&mut self, count: usize) -> Result<u64, ClientError> {
        let mut stored = 0;
        let mut left = count;
        while left > 0 {
            let n = left.min(PREKEYS_PER_REQUEST);
            let mut prekeys = Vec::with_capacity(n);
            for _ in 0..n {
                let secret = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
                self.keystore.save_prekey(&secret)?;
                let signed = Signed::sign(
                    PreKey::new(self.user.clone(), secret.public()),
                    &self.device,
                );
                prekeys.push(signed.signed_bytes().clone());
            }
            let request = UploadPreKeysRequest { prekeys };
            let answer: CountResponse = self
                .authed(Method::POST, "/v1/prekeys", Some(request.to_cbor()))
                .await?;
            stored = answer.count;
            left -= n;
        }
        Ok(stored)
    }

    /// The user's devices from the server, each certificate checked against the Identity Key.
    pub async fn directory(&mut self) -> Result<(DeviceDirectory, Vec<DeviceEntry>), ClientError> {
        let answer: DevicesResponse = self.authed(Method::GET, "/v1/devices", None).await?;
        let mut directory = DeviceDirectory::new(self.user.clone(), self.identity.public().clone());
        let mut entries = Vec::with_capacity(answer.devices.len());
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
            [] => return Err(ClientError::InvalidInput(format!("no device {wanted}"))),
            _ => {
                return Err(ClientError::InvalidInput(format!(
                    "{wanted} matches several devices; give more of the key id"
                )));
            }
        };
        if device == *self.device.public() {
            return Err(ClientError::InvalidInput(
                "this is the current device; remove it from another device".into(),
            ));
        }
        let revocation = Signed::sign(
            DeviceRevocation::new(self.user.clone(), device.clone(), now()),
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

    /// `GET /v1/keys/status`.
    pub async fn key_status(&mut self) -> Result<KeyStatus, ClientError> {
        let s: KeyStatusResponse = self.authed(Method::GET, "/v1/keys/status", None).await?;
        Ok(KeyStatus {
            prekeys_left: s.prekeys_left,
            topic_keys_left: s.topic_keys_left,
            refill: s.refill,
        })
    }

    /// Tops pre keys and topic keys up to their stock levels when the server asks for it
    /// (or always, with `force`). Returns the status before the refill.
    pub async fn refill(&mut self, force: bool) -> Result<KeyStatus, ClientError> {
        let status = self.key_status().await?;
        if !(status.refill || force) {
            return Ok(status);
        }
        let prekeys =
            PREKEY_STOCK.saturating_sub(usize::try_from(status.prekeys_left).unwrap_or(usize::MAX));
        if prekeys > 0 {
            self.upload_prekeys(prekeys).await?;
        }
        let topic_keys = TOPIC_KEY_STOCK
            .saturating_sub(usize::try_from(status.topic_keys_left).unwrap_or(usize::MAX));
        if topic_keys > 0 {
            self.make_topic_keys(topic_keys).await?;
        }
        Ok(status)
    }

    /// Makes up to `count` Topic Keys, seals each to one pre key of every other device of the
    /// user (`devices.md` §3.1) and uploads certificates and deliveries. Each claim returns one
    /// pre key per other device, so a batch of n keys takes n claims; if a device runs out, the
    /// batch shrinks to the complete rounds. Returns how many keys were made.
    pub async fn make_topic_keys(&mut self, count: usize) -> Result<usize, ClientError> {
        let count = count.min(rendezvous_protocol::devices::topic_keys::MAX_BATCH);
        let (directory, _) = self.directory().await?;
        let others = directory.len().saturating_sub(1);
        let mut claimed = Vec::new();
        let mut rounds = count;
        if others > 0 {
            rounds = 0;
            for _ in 0..count {
                let answer: ClaimPreKeysResponse = self
                    .authed(
                        Method::POST,
                        "/v1/prekeys/claim",
                        Some(Empty::default().to_cbor()),
                    )
                    .await?;
                if answer.prekeys.len() < others {
                    break;
                }
                for c in answer.prekeys {
                    claimed.push(claimed_prekey(c)?);
                }
                rounds += 1;
            }
        }
        if rounds == 0 {
            return Err(ClientError::Misbehaved(
                "another device of this user has no pre keys left; bring it online to refill"
                    .into(),
            ));
        }
        let batch = make_batch(
            &self.identity,
            &directory,
            self.device.public(),
            claimed,
            rounds,
            now(),
            &mut Randomness::Os,
        )?;
        for (key, upload) in batch.keys.iter().zip(&batch.uploads) {
            self.keystore.save_topic_key(key, &upload.cert)?;
        }
        for chunk in batch.uploads.chunks(TOPIC_KEYS_PER_REQUEST) {
            let request = UploadTopicKeysRequest {
                uploads: chunk.iter().map(|u| ByteBuf::from(u.to_wire())).collect(),
            };
            let _: CountResponse = self
                .authed(Method::POST, "/v1/topic-keys", Some(request.to_cbor()))
                .await?;
        }
        Ok(rounds)
    }

    /// Fetches the inbox, opens topic key deliveries with this device's pre keys, stores the
    /// Topic Keys, deletes the used pre keys, and acknowledges the items.
    pub async fn sync_inbox(&mut self) -> Result<InboxReport, ClientError> {
        let mut report = InboxReport::default();
        loop {
            let path = format!("/v1/inbox?after={}", self.config.inbox_seq);
            let answer: InboxResponse = self.authed(Method::GET, &path, None).await?;
            let Some(last) = answer.items.iter().map(|i| i.seq).max() else {
                break;
            };
            if last <= self.config.inbox_seq {
                return Err(ClientError::Misbehaved(
                    "inbox items not after the requested sequence number".into(),
                ));
            }
            for item in &answer.items {
                if item.seq <= self.config.inbox_seq {
                    continue;
                }
                match self.open_inbox_item(item.kind, &item.body) {
                    Ok(()) => report.topic_keys += 1,
                    Err(e) => report.failed.push((item.seq, e.to_string())),
                }
            }
            let ack = AckRequest { up_to: last };
            self.authed_raw(Method::POST, "/v1/inbox/ack", Some(ack.to_cbor()), 1024)
                .await?;
            self.config.inbox_seq = last;
            self.save_config()?;
        }
        Ok(report)
    }

    fn open_inbox_item(&self, kind: u8, body: &[u8]) -> Result<(), ClientError> {
        if kind != INBOX_TOPIC_KEY {
            return Err(ClientError::Misbehaved(format!(
                "unknown inbox item kind {kind}"
            )));
        }
        let malformed = |error| ClientError::Malformed {
            what: "inbox item".into(),
            error,
        };
        let item: TopicKeyDeliveryItem = rendezvous_protocol::wire::decode(
            body,
            rendezvous_protocol::devices::topic_keys::UPLOAD_MAX_LEN,
        )
        .map_err(malformed)?;
        let cert = verify_cert(
            Signed::<TopicKeyCert>::from_signed_bytes(item.topic_key_cert).map_err(malformed)?,
            self.identity.public(),
            &self.user,
        )?;
        let delivery = Delivery::from_wire(&item.delivery)?;
        let prekey = self.keystore.prekey(&delivery.prekey_id)?.ok_or_else(|| {
            ClientError::Misbehaved(format!(
                "delivery sealed to pre key {} which this device does not hold",
                delivery.prekey_id
            ))
        })?;
        let key = open_delivery(&prekey, &self.user, &delivery, &cert)?;
        self.keystore.save_topic_key(&key, &cert)?;
        self.keystore.remove_prekey(&delivery.prekey_id)?;
        Ok(())
    }

    /// The Identity Key the server has on record for `user`, self-signature checked.
    pub async fn identity_of(&mut self, user: &UserId) -> Result<IdentityPublicKey, ClientError> {
        let path = format!("/v1/users/{}/identity", encode_segment(user.as_str()));
        let answer: IdentityResponse = self.authed(Method::GET, &path, None).await?;
        verify_registration(answer.registration, user)
    }

    /// The signing key of the server hosting a topic. The homeserver's key is learned at
    /// registration; another server's key is learned on first use from its own
    /// `GET /v1/status` over TLS verified with WebPKI (the CA file if this device uses one,
    /// else the system roots — a pinned fingerprint only covers the homeserver), and kept.
    pub async fn hosting_server_key(
        &mut self,
        host: &ServerName,
    ) -> Result<ServerPublicKey, ClientError> {
        if let Some(key) = self.config.server_key(host.as_str())? {
            return Ok(key);
        }
        if *host != self.server {
            // Another server's key comes through our own, which fetched and checked its key
            // document over mutual TLS (`federation-api.md` §2); pinned on first use.
            let path = format!(
                "/v1/servers/{}/keys",
                rendezvous_protocol::api::encode_segment(host.as_str())
            );
            let doc: rendezvous_protocol::federation::ServerKeys =
                self.authed(Method::GET, &path, None).await?;
            if doc.server != *host {
                return Err(ClientError::Misbehaved(format!(
                    "key document for {host} names {}",
                    doc.server
                )));
            }
            let key = doc
                .keys
                .last()
                .map(|k| k.key.clone())
                .ok_or_else(|| ClientError::ServerKeyUnknown(host.to_string()))?;
            self.config.server_keys.insert(
                host.to_string(),
                rendezvous_protocol::crypto::sign::hex_string(key.as_bytes()),
            );
            self.save_config()?;
            return Ok(key);
        }
        let trust = match self.config.trust()? {
            Trust::CaFile(path) => Trust::CaFile(path),
            Trust::SystemRoots | Trust::Pinned(_) => Trust::SystemRoots,
        };
        let http = Http::new(&format!("https://{host}"), &trust)
            .map_err(|e| ClientError::ServerKeyUnknown(format!("{host} ({e})")))?;
        let (status, name) = server_status(&http)
            .await
            .map_err(|e| ClientError::ServerKeyUnknown(format!("{host} ({e})")))?;
        if name != *host {
            return Err(ClientError::Misbehaved(format!(
                "server at {host} calls itself {name}"
            )));
        }
        let key = status.key()?;
        self.config.server_keys.insert(
            host.to_string(),
            rendezvous_protocol::crypto::sign::hex_string(key.as_bytes()),
        );
        self.save_config()?;
        Ok(key)
    }

    /// Registers a device certificate (no token: the IK signature authorizes it).
    pub(super) async fn add_device(
        http: &Http,
        cert: &Verified<DeviceCert>,
    ) -> Result<(), ClientError> {
        let request = AddDeviceRequest {
            device_cert: cert.signed_bytes().clone(),
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

fn claimed_prekey(
    c: rendezvous_protocol::api::ClaimedPreKeyBody,
) -> Result<ClaimedPreKey, ClientError> {
    let malformed = |error| ClientError::Malformed {
        what: "claimed pre key".into(),
        error,
    };
    Ok(ClaimedPreKey {
        device_cert: Signed::from_signed_bytes(c.device_cert).map_err(malformed)?,
        prekey: Signed::from_signed_bytes(c.prekey).map_err(malformed)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_key_formats() {
        let key = rendezvous_protocol::crypto::ServerKey::generate();
        let raw = key.public().as_bytes().to_vec();
        for text in [
            rendezvous_protocol::crypto::sign::hex_string(&raw),
            base64::engine::general_purpose::STANDARD.encode(&raw),
            format!(
                "ed25519:{}",
                base64::engine::general_purpose::STANDARD.encode(&raw)
            ),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
        ] {
            let status = ServerStatus {
                server_name: "a.example".into(),
                version: String::new(),
                server_key: text.clone(),
            };
            assert_eq!(status.key().unwrap(), *key.public(), "{text}");
        }
        let bad = ServerStatus {
            server_name: "a.example".into(),
            version: String::new(),
            server_key: "nope!".into(),
        };
        assert!(bad.key().is_err());
    }

    #[test]
    fn registrations_are_checked() {
        let user: UserId = "@alice:a.example".parse().unwrap();
        let ik = IdentityKey::generate();
        let reg = Signed::sign(Registration::new(user.clone(), ik.public().clone()), &ik);
        assert_eq!(
            verify_registration(reg.signed_bytes().clone(), &user).unwrap(),
            *ik.public()
        );
        let bob: UserId = "@bob:a.example".parse().unwrap();
        assert!(verify_registration(reg.signed_bytes().clone(), &bob).is_err());
        let mut forged = reg.signed_bytes().clone();
        forged.1.0[0] ^= 1;
        assert!(verify_registration(forged, &user).is_err());
        let server: ServerName = "b.example".parse().unwrap();
        assert!(check_home(&user, &server).is_err());
    }
}

//! Linking a new device through the homeserver's relay (`devices.md` §4, `client-api.md` §5).
//!
//! The existing device opens a relay slot named by the code's link id and shows the code; the
//! new device makes its Device Key and posts its request (with that key), the existing device
//! checks the proof, endorses the new key and posts the sealed payload (identity, endorsement,
//! Topic Keys, Message Keys); the new device opens it, has the Identity Key sign its own device
//! certificate, registers it with the endorsement and logs in. Link ids travel in paths as 16
//! lowercase hex digits.

use std::time::Duration;

use awc::http::Method;
use serde_bytes::ByteBuf;

use super::account::{check_home, server_status};
use super::http::Http;
use super::keystore::{Config, Keystore};
use super::tls::Trust;
use super::{Client, ClientError, PREKEY_STOCK, now};
use rendezvous_protocol::api::{Body, LinkMessage, LinkOpenRequest, LinkPickup};
use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement};
use rendezvous_protocol::clock::Clock;
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey, MessageKey};
use rendezvous_protocol::devices::{
    LinkJoiner, LinkOffer, LinkPayload, LinkRequest, LinkResponse, LinkedMessageKey, LinkedTopicKey,
};
use rendezvous_protocol::ids::Epoch;
use rendezvous_protocol::wire::Signed;

/// How often the relay is polled.
const POLL: Duration = Duration::from_secs(2);
/// How long a relay slot lives (`client-api.md` §5).
pub const LINK_TIMEOUT: Duration = Duration::from_secs(600);

/// An open link offer: show [`PendingLink::code`] to the user, then call
/// [`Client::link_offer_finish`].
pub struct PendingLink {
    offer: LinkOffer,
}

impl std::fmt::Debug for PendingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLink").finish_non_exhaustive()
    }
}

impl PendingLink {
    /// The one-time code to type on the new device.
    pub fn code(&self) -> zeroize::Zeroizing<String> {
        self.offer.code().to_text()
    }
}

fn link_path(link_id: &[u8; 8], what: &str) -> String {
    format!("/v1/link/{}/{what}", hex_string(link_id))
}

/// Polls `GET path` until it answers, treating `404 not_found` as "not yet".
async fn poll(
    http: &Http,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<LinkMessage, ClientError> {
    let start = std::time::Instant::now();
    loop {
        match http
            .call::<LinkMessage>(Method::GET, path, None, token)
            .await
        {
            Ok(m) => return Ok(m),
            Err(e) if e.code() == Some(rendezvous_protocol::api::ErrorCode::NotFound) => {}
            Err(e) => return Err(e),
        }
        if start.elapsed() >= timeout {
            return Err(ClientError::LinkTimedOut(
                "the link timed out: the existing device did not answer in time".into(),
            ));
        }
        actix_rt::time::sleep(POLL).await;
    }
}

impl Client {
    /// Opens a relay slot for linking a new device (`POST /v1/link`).
    pub async fn link_offer_start(&mut self) -> Result<PendingLink, ClientError> {
        let offer = LinkOffer::new();
        let request = LinkOpenRequest {
            link_id: offer.link_id(),
        };
        self.authed_raw(Method::POST, "/v1/link", Some(request.to_cbor()), 1024)
            .await?;
        Ok(PendingLink { offer })
    }

    /// Waits for the new device's request, checks its proof and sends it the identity, every
    /// Topic Key and every Message Key this device holds.
    pub async fn link_offer_finish(
        &mut self,
        pending: PendingLink,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let link_id = pending.offer.link_id();
        let request_path = link_path(&link_id, "request");
        let start = std::time::Instant::now();
        let message = loop {
            match self
                .authed::<LinkMessage>(Method::GET, &request_path, None)
                .await
            {
                Ok(m) => break m,
                Err(e) if e.code() == Some(rendezvous_protocol::api::ErrorCode::NotFound) => {}
                Err(e) => return Err(e),
            }
            if start.elapsed() >= timeout {
                return Err(ClientError::LinkTimedOut(
                    "no device asked to join in time".into(),
                ));
            }
            actix_rt::time::sleep(POLL).await;
        };
        let request = LinkRequest::from_wire(&message.body)?;
        // This device vouches for the new Device Key (`devices.md` §4.3 step 4): without it the
        // homeserver does not add the new device.
        let endorsement = Signed::sign(
            DeviceEndorsement::new(
                self.user.clone(),
                request.device_key.clone(),
                self.device.public().clone(),
                self.now(),
            ),
            &self.device,
        );
        let payload = self.link_payload(endorsement.unverified())?;
        let response = pending.offer.accept(&request, &payload)?;
        let body = LinkMessage {
            body: ByteBuf::from(response.to_wire()),
        };
        self.authed_raw(
            Method::POST,
            &link_path(&link_id, "response"),
            Some(body.to_cbor()),
            1024,
        )
        .await?;
        Ok(())
    }

    /// Everything a new device needs: identity, its endorsement, Topic Keys, Message Keys.
    fn link_payload(
        &self,
        endorsement: Signed<DeviceEndorsement>,
    ) -> Result<LinkPayload, ClientError> {
        let identity = IdentityKey::from_seed(&self.identity.seed());
        let mut payload = LinkPayload::new(self.user.clone(), identity, endorsement);
        for id in self.keystore.topic_key_ids()? {
            if let Some((key, cert)) = self.keystore.topic_key(&id, self.identity.public())? {
                // A key certified by an IK this device rotated from stays here for the topics
                // that name it; the new device gets the current IK's only (`directory.md` §11).
                let current =
                    Signed::<rendezvous_protocol::certs::TopicKeyCert>::from_signed_bytes(
                        cert.signed_bytes().clone(),
                    )
                    .is_ok_and(|s| s.verify(self.identity.public()).is_ok());
                if current {
                    payload.topic_keys.push(LinkedTopicKey { cert, key });
                }
            }
        }
        for topic in self.keystore.topics()? {
            for (epoch, key) in self.keystore.message_keys(&topic)? {
                payload.message_keys.push(LinkedMessageKey {
                    topic: topic.clone(),
                    epoch: Epoch(epoch),
                    key,
                });
            }
        }
        Ok(payload)
    }

    /// Joins an account as a new device with a link code shown by an existing device. Sets up
    /// keystore directory `dir`, registers a new Device Key certified by the received Identity
    /// Key, logs in and uploads pre keys. The keystore is locked with `passphrase` (not empty).
    pub async fn link_join(
        dir: &std::path::Path,
        passphrase: &super::Passphrase,
        server_url: &str,
        trust: Trust,
        code: &str,
    ) -> Result<Client, ClientError> {
        // The Device Key is made here and never leaves this device; the link request carries
        // its public half for the existing device to endorse (`devices.md` §4.3).
        let device = DeviceKey::generate();
        let joiner = LinkJoiner::from_code(code, device.public())?;
        let http = Http::new(server_url, &trust)?;
        let keystore = Keystore::create(dir, passphrase)?;
        let (status, server) = server_status(&http).await?;
        let link_id = joiner.request().link_id;
        let request = LinkMessage {
            body: ByteBuf::from(joiner.request().to_wire()),
        };
        let answer: LinkPickup = http
            .call(
                Method::POST,
                &link_path(&link_id, "request"),
                Some(request.to_cbor()),
                None,
            )
            .await?;
        // Only the holder of the pickup token can take the response (`client-api.md` §5).
        let pickup = zeroize::Zeroizing::new(hex_string(&answer.pickup));
        let response_path = link_path(&link_id, "response");
        let message = poll(&http, &response_path, Some(&pickup), LINK_TIMEOUT).await?;
        let response = LinkResponse::from_wire(&message.body)?;
        let payload = joiner.open(&response)?;
        check_home(&payload.user, &server)?;

        let cert = Signed::sign(
            DeviceCert::new(payload.user.clone(), device.public().clone(), now()),
            &payload.identity,
        );
        let config = Config {
            server_url: http.base().to_owned(),
            server_name: server.to_string(),
            trust: trust.to_string(),
            user: payload.user.to_string(),
            server_rotations: Default::default(),
            server_keys: [(server.to_string(), hex_string(status.key()?.as_bytes()))].into(),
            inbox_seq: 0,
            refused_posts: Vec::new(),
        };
        // The device is added and logs in before anything received over the link is kept: the
        // identity lookup needs a token (`client-api.md` §2).
        Client::add_device(&http, &cert, &payload.endorsement).await?;
        let identity = IdentityKey::from_seed(&payload.identity.seed());
        let mut client = Client {
            keystore,
            config,
            http,
            identity,
            device,
            user: payload.user.clone(),
            server,
            token: None,
            clock: Clock::system(),
        };
        client.keystore.save_device(&client.device)?;
        client.keystore.save_config(&client.config)?;
        if let Ok(e) = payload.endorsement.decode_unverified() {
            // Checked by `LinkJoiner::open` and by the server's add.
            client.keystore.record_device_seen(
                &client.device.public().key_id().to_hex(),
                &e.endorser.key_id().to_hex(),
            )?;
        }
        client.login().await?;
        // The identity the server has on record must be the one we received.
        if client.identity_of(&payload.user).await? != *payload.identity.public() {
            return Err(ClientError::Misbehaved(
                "the identity key received over the link is not the one the server has on record"
                    .into(),
            ));
        }
        client.keystore.save_identity(&payload.identity)?;
        for tk in &payload.topic_keys {
            client.keystore.save_topic_key(&tk.key, &tk.cert)?;
        }
        for mk in &payload.message_keys {
            let key = MessageKey::from_slice(mk.key.as_bytes())
                .map_err(|e| ClientError::Misbehaved(format!("linked message key: {e}")))?;
            client
                .keystore
                .save_message_key(&mk.topic, mk.epoch.get(), &key)?;
        }
        client.upload_prekeys(PREKEY_STOCK).await?;
        Ok(client)
    }
}

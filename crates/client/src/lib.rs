//! The Rendezvous client library: the only place where private keys and plaintext exist.
//!
//! - [`tls`]: how the homeserver's certificate is trusted (system roots, CA file, pinned
//!   fingerprint; never "accept anything");
//! - [`keystore`]: the per-device key directory (layout in its docs), every secret in it sealed
//!   with a key derived from its [`Passphrase`] (`federation-spec/devices.md` §5.5);
//! - [`http`]: the typed client–server API over HTTPS and the WebSocket stream;
//! - [`cli`]: `rdv`'s commands, whose answers are one type ([`cli::Output`]) printed as text or
//!   JSON in one place; every error has a stable code ([`ClientError::error_code`]);
//! - [`Client`]: the operations. Account and keys in `account`, the identity directory
//!   (lookups, self-monitoring, contacts) in `directory`, device linking in `link`,
//!   topic changes and sending in `topics`, reading and log verification in `reader`, live
//!   following in `watch`.
//!
//! Everything the server says is checked before it is used: device certificates against the
//! Identity Key, claimed pre keys and topic keys against their certificates, every log entry with
//! the topic state machine ([`rendezvous_protocol::topic::Replayer`]), every checkpoint against the hosting
//! server's key and for consistency with the last one this device saw, every entry read against
//! the checkpoint with an inclusion proof.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
pub mod cli;
mod directory;
mod error;
pub mod http;
pub mod keystore;
mod link;
mod reader;
pub mod tls;
mod topics;
mod watch;

use awc::http::Method;
use zeroize::Zeroizing;

pub use account::{
    DeviceAdded, DeviceEntry, IdentityRotatedNotice, InboxReport, KeyStatus, ServerStatus,
};
pub use directory::{AlarmEvidence, Contact, DirectoryAlarm, MonitorSummary, Rotation, SafetyCode};
pub use error::{CLIENT_CODES, ClientError, IDENTITY_CODES};
pub use keystore::Passphrase;
pub use link::PendingLink;
pub use reader::{
    EntryContent, EntryReport, MirrorRefusal, ReadReport, VerifyReport, WitnessReport,
};
pub use topics::TopicEntry;

use self::http::Http;
use self::keystore::{Config, Keystore};
use rendezvous_protocol::api::{Body, ErrorCode};
use rendezvous_protocol::clock::Clock;
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey};
use rendezvous_protocol::ids::{ServerName, UserId};

/// Pre keys uploaded at registration and kept in stock.
pub const PREKEY_STOCK: usize = 100;
/// Topic keys made at registration and kept in stock.
pub const TOPIC_KEY_STOCK: usize = 50;

/// A device's client: its keystore, its homeserver connection and its login.
pub struct Client {
    keystore: Keystore,
    config: Config,
    http: Http,
    identity: IdentityKey,
    device: DeviceKey,
    user: UserId,
    server: ServerName,
    token: Option<Zeroizing<String>>,
    /// What heads' ages and checkpoints from the future are measured by.
    clock: Clock,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("user", &self.user)
            .field("server", &self.http.base())
            .field("device", &self.device.public().key_id())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens the account in keystore directory `dir`, unlocked with `passphrase`
    /// (`federation-spec/devices.md` §5.5).
    pub fn open(dir: &std::path::Path, passphrase: &Passphrase) -> Result<Client, ClientError> {
        let keystore = Keystore::open(dir, passphrase)?;
        let config = keystore.config()?;
        let http = Http::new(&config.server_url, &config.trust()?)?;
        let identity = keystore.identity()?;
        let device = keystore.device()?;
        let token = keystore.token()?;
        Ok(Client {
            user: config.user()?,
            server: config.server_name()?,
            keystore,
            config,
            http,
            identity,
            device,
            token,
            clock: Clock::system(),
        })
    }

    /// Reads time from `clock` from now on (the machine's clock unless a test moves it):
    /// the age of a head, checkpoints from the future, and the dates this device signs.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Now on this device's clock, Unix seconds.
    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// This device's user.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// This account's current Identity Key (public half).
    pub fn identity_key(&self) -> &rendezvous_protocol::crypto::IdentityPublicKey {
        self.identity.public()
    }

    /// The homeserver's name.
    pub fn server_name(&self) -> &ServerName {
        &self.server
    }

    /// The keystore.
    pub fn keystore(&self) -> &Keystore {
        &self.keystore
    }

    /// The homeserver's base URL, `https://host[:port]`.
    pub fn server_url(&self) -> &str {
        self.http.base()
    }

    /// How this device trusts the homeserver's certificate.
    pub fn trust(&self) -> Result<tls::Trust, ClientError> {
        self.config.trust()
    }

    /// Calls an endpoint that needs the device's token; logs in first when there is no token,
    /// and logs in again once when the server answers `401 unauthorized`.
    async fn authed<R: Body>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<R, ClientError> {
        let bytes = self
            .authed_raw(method.clone(), path, body, R::MAX_LEN)
            .await?;
        R::from_cbor(&bytes).map_err(|error| ClientError::Malformed {
            what: format!("reply when asked to {}", http::operation(&method, path)),
            error,
        })
    }

    /// [`Self::authed`] for endpoints whose answer carries nothing the client needs.
    async fn authed_raw(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        if self.token.is_none() {
            self.login().await?;
        }
        let token = self.token.clone();
        let first = self
            .http
            .send(
                method.clone(),
                path,
                body.clone(),
                token.as_ref().map(|t| t.as_str()),
                limit,
            )
            .await;
        match first {
            Err(e) if e.code() == Some(ErrorCode::Unauthorized) => {
                self.login().await?;
                let token = self.token.clone();
                self.http
                    .send(
                        method,
                        path,
                        body,
                        token.as_ref().map(|t| t.as_str()),
                        limit,
                    )
                    .await
            }
            other => other,
        }
    }

    fn save_config(&self) -> Result<(), ClientError> {
        self.keystore.save_config(&self.config)
    }
}

/// Seconds since the Unix epoch on the machine's clock (0 if it is before 1970): what this
/// device dates what it signs by before it has a [`Client`] (a new device's certificate).
pub(crate) fn now() -> u64 {
    rendezvous_protocol::clock::unix_now()
}

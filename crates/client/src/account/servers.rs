//! Keys of other parties: users' Identity Keys and the signing keys of the servers that host
//! topics (`client-api.md` §2, §6).

use awc::http::Method;

use crate::http::{Http, encode_segment};
use crate::tls::Trust;
use crate::{Client, ClientError};
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::crypto::{IdentityPublicKey, ServerPublicKey};
use rendezvous_protocol::federation::ServerKeys;
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::tlog::{HostKeyError, HostKeys, SignedCheckpoint};

use super::{server_status, verify_registration};

impl Client {
    /// The Identity Key the server has on record for `user`, self-signature checked (asked
    /// again while it is `directory_pending`, as a lookup is).
    pub async fn identity_of(&mut self, user: &UserId) -> Result<IdentityPublicKey, ClientError> {
        let path = format!("/v1/users/{}/identity", encode_segment(user.as_str()));
        let answer = self.identity_answer(&path).await?;
        verify_registration(answer.registration, user)
    }

    /// The chain of keys the server hosting a topic signs checkpoints with (`tag-log.md`
    /// §7.6): the key pinned on first use ([`Self::hosting_server_key`]) and the rotations this
    /// device verified since.
    pub async fn hosting_server_keys(
        &mut self,
        host: &ServerName,
    ) -> Result<HostKeys, ClientError> {
        let anchor = self.hosting_server_key(host).await?;
        let mut keys = HostKeys::new(host.as_str(), anchor);
        let statements = self.config.server_rotations(host.as_str())?;
        keys.learn(&statements)
            .map_err(|e| ClientError::Misbehaved(format!("stored rotations of {host}: {e}")))?;
        Ok(keys)
    }

    /// Follows `host`'s key rotations from the chain this device holds: fetches its key
    /// document through the homeserver and keeps every rotation that continues the chain
    /// (each signed by its old and its new key, so the document need not be trusted). Two
    /// rotations out of one key, or times that go back, are `server_misbehaved`.
    pub async fn follow_rotations(&mut self, host: &ServerName) -> Result<HostKeys, ClientError> {
        let mut keys = self.hosting_server_keys(host).await?;
        let doc = self.key_document(host).await?;
        match keys.learn(&doc.rotations) {
            Ok(false) => {}
            Ok(true) => {
                self.config.server_rotations.insert(
                    host.to_string(),
                    keys.rotations()
                        .iter()
                        .map(|r| hex_string(&r.to_wire()))
                        .collect(),
                );
                self.save_config()?;
            }
            Err(e) => {
                return Err(ClientError::Misbehaved(format!(
                    "key rotations of {host}: {e}"
                )));
            }
        }
        Ok(keys)
    }

    /// Verifies the hosting server's signature on `note` with the chain of its keys, following
    /// its rotations once when no key this device holds signed it; returns the chain. A key of
    /// the chain used outside its period (a retired key after its rotation) is
    /// `server_misbehaved`.
    pub async fn verify_host_note(
        &mut self,
        host: &ServerName,
        note: &SignedCheckpoint,
    ) -> Result<HostKeys, ClientError> {
        let mut keys = self.hosting_server_keys(host).await?;
        if matches!(keys.verify(note), Err(HostKeyError::Checkpoint(_))) {
            keys = self.follow_rotations(host).await?;
        }
        match keys.verify(note) {
            Ok(_) => Ok(keys),
            Err(HostKeyError::Checkpoint(e)) => Err(e.into()),
            Err(e) => Err(ClientError::Misbehaved(format!("{host}: {e}"))),
        }
    }

    /// `host`'s key document, through the homeserver (which fetched it over mutual TLS) or
    /// the homeserver's own.
    async fn key_document(&mut self, host: &ServerName) -> Result<ServerKeys, ClientError> {
        let path = format!(
            "/v1/servers/{}/keys",
            rendezvous_protocol::api::encode_segment(host.as_str())
        );
        let doc: ServerKeys = self.authed(Method::GET, &path, None).await?;
        if doc.server != *host {
            return Err(ClientError::Misbehaved(format!(
                "key document for {host} names {}",
                doc.server
            )));
        }
        Ok(doc)
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
            let doc = self.key_document(host).await?;
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
}

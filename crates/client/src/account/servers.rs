//! Keys of other parties: users' Identity Keys and the signing keys of the servers that host
//! topics (`client-api.md` §2, §6).

use awc::http::Method;

use crate::http::{Http, encode_segment};
use crate::tls::Trust;
use crate::{Client, ClientError};
use rendezvous_protocol::api::IdentityResponse;
use rendezvous_protocol::crypto::{IdentityPublicKey, ServerPublicKey};
use rendezvous_protocol::ids::{ServerName, UserId};

use super::{server_status, verify_registration};

impl Client {
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
}

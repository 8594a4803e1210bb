//! Server key documents (`federation-api.md` §2): a homeserver publishes its Ed25519 Server Keys
//! with validity periods, over TLS for its server name; peers cache them and keep old keys to
//! verify old events.
//!
//! ```text
//! server-keys = [1, server, [+ [key, valid_from, valid_until]], [* signed-rotation]]
//!               signed by the newest key, label "rdv/v1/server-keys"
//! ```
//!
//! The rotations (`tag-log.md` §7.6) chain the keys: each is signed by its old and its new key,
//! so whoever holds one key of the chain can follow it without trusting this document.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::crypto::sign::Server;
use crate::crypto::transcript::LABEL_SERVER_KEYS;
use crate::crypto::{ServerKey, ServerPublicKey};
use crate::ids::ServerName;
use crate::tlog::host_keys::{HostKeys, MAX_HOST_KEYS, RotationError, SignedRotation};
use crate::wire::signed::SignedError;
use crate::wire::{Signed, SignedPayload, VERSION, Verified, WireError, check_version};
use serde_bytes::ByteBuf;

/// `[key, valid_from, valid_until]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct ServerKeyEntry {
    /// The public key.
    pub key: ServerPublicKey,
    /// Valid from (Unix seconds).
    pub valid_from: u64,
    /// Valid until (Unix seconds, exclusive).
    pub valid_until: u64,
}

/// `[1, server, [+ entry], [* signed-rotation]]`: every key the server signs with or signed
/// with, newest last, and the rotations between them, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKeys {
    /// The server.
    pub server: ServerName,
    /// Keys, oldest first; the last one signs the document.
    pub keys: Vec<ServerKeyEntry>,
    /// Key rotations, oldest first, each checked (both signatures, this server) on decode.
    pub rotations: Vec<SignedRotation>,
}

/// The wire form of [`ServerKeys`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct ServerKeysWire<'a> {
    version: u8,
    server: Cow<'a, ServerName>,
    keys: Cow<'a, [ServerKeyEntry]>,
    rotations: Vec<ByteBuf>,
}

impl Serialize for ServerKeys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ServerKeysWire {
            version: VERSION,
            server: Cow::Borrowed(&self.server),
            keys: Cow::Borrowed(&self.keys),
            rotations: self
                .rotations
                .iter()
                .map(|r| ByteBuf::from(r.to_wire()))
                .collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ServerKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ServerKeysWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        if w.rotations.len() >= MAX_HOST_KEYS {
            return Err(serde::de::Error::custom("too many rotations"));
        }
        let rotations = w
            .rotations
            .iter()
            .map(|r| SignedRotation::from_wire(r, w.server.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(serde::de::Error::custom)?;
        Ok(ServerKeys {
            server: w.server.into_owned(),
            keys: w.keys.into_owned(),
            rotations,
        })
    }
}

impl SignedPayload for ServerKeys {
    const LABEL: &'static str = LABEL_SERVER_KEYS;
    const MAX_LEN: usize = 16 * 1024;
    type Signer = Server;

    fn validate(&self) -> Result<(), WireError> {
        if self.keys.is_empty() || self.keys.len() > 64 {
            return Err(WireError::InvalidField {
                field: "keys",
                reason: "1 to 64 keys".into(),
            });
        }
        if self.keys.iter().any(|k| k.valid_from >= k.valid_until) {
            return Err(WireError::InvalidField {
                field: "keys",
                reason: "a key's validity ends before it starts".into(),
            });
        }
        Ok(())
    }
}

impl ServerKeys {
    /// A document signed by `current`, which is also its newest entry.
    pub fn sign(
        server: ServerName,
        mut old: Vec<ServerKeyEntry>,
        rotations: Vec<SignedRotation>,
        current: &ServerKey,
        valid_from: u64,
        valid_until: u64,
    ) -> Verified<ServerKeys> {
        old.push(ServerKeyEntry {
            key: current.public().clone(),
            valid_from,
            valid_until,
        });
        Signed::sign(
            ServerKeys {
                server,
                keys: old,
                rotations,
            },
            current,
        )
    }

    /// The chain of checkpoint keys this document shows, from its newest key back through its
    /// rotations (`tag-log.md` §7.6): what a party that holds no key of the server pins.
    pub fn host_keys(&self) -> Result<HostKeys, RotationError> {
        let newest = self
            .keys
            .last()
            .map(|k| k.key.clone())
            .ok_or(RotationError::Chain("no key"))?;
        let mut keys = HostKeys::new(self.server.as_str(), newest);
        keys.learn(&self.rotations)?;
        Ok(keys)
    }

    /// Checks a fetched document: it names `server` and is signed by its newest key.
    pub fn check(
        signed: Signed<ServerKeys>,
        server: &ServerName,
    ) -> Result<Verified<ServerKeys>, SignedError> {
        let claimed = signed.decode_unverified()?;
        if claimed.server != *server {
            return Err(WireError::InvalidField {
                field: "server",
                reason: format!("document for {}, asked {server}", claimed.server),
            }
            .into());
        }
        let newest = claimed.keys.last().ok_or(WireError::InvalidField {
            field: "keys",
            reason: "no key".into(),
        })?;
        signed.verify(&newest.key)
    }

    /// The keys valid at `time`.
    pub fn valid_at(&self, time: u64) -> Vec<ServerPublicKey> {
        self.keys
            .iter()
            .filter(|k| k.valid_from <= time && time < k.valid_until)
            .map(|k| k.key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_old_keys_for_old_times() {
        let name: ServerName = "a.example".parse().unwrap();
        let old = ServerKey::generate();
        let new = ServerKey::generate();
        let doc = ServerKeys::sign(
            name.clone(),
            vec![ServerKeyEntry {
                key: old.public().clone(),
                valid_from: 0,
                valid_until: 100,
            }],
            Vec::new(),
            &new,
            100,
            1000,
        );
        let back = ServerKeys::check(Signed::from_wire(&doc.to_wire()).unwrap(), &name).unwrap();
        assert_eq!(back.valid_at(50), vec![old.public().clone()]);
        assert_eq!(back.valid_at(500), vec![new.public().clone()]);
        assert!(back.valid_at(5000).is_empty());
        // Asked for another server, or signed by a key not in the document: refused.
        let other: ServerName = "b.example".parse().unwrap();
        assert!(ServerKeys::check(Signed::from_wire(&doc.to_wire()).unwrap(), &other).is_err());
        let mut forged = doc.value().clone();
        forged.keys.push(ServerKeyEntry {
            key: ServerKey::generate().public().clone(),
            valid_from: 0,
            valid_until: 10,
        });
        let forged = Signed::sign(forged, &new);
        assert!(ServerKeys::check(Signed::from_wire(&forged.to_wire()).unwrap(), &name).is_err());
    }
}

//! The device's keystore: one directory per device (`rdv --home DIR`).
//!
//! Layout (directory mode 0700, every file 0600, every write atomic: a temporary file in the
//! same directory, fsync, rename). Files marked *sealed* are encrypted at rest with a key derived
//! from the passphrase (`federation-spec/devices.md` §5.5, [`at_rest`]): on disk they are
//! `"RDVK" ‖ 0x01 ‖ nonce ‖ XChaCha20-Poly1305 ciphertext ‖ tag`, bound to their path; what
//! is described below is what they hold once opened. The others are plaintext: nothing secret.
//!
//! ```text
//! DIR/
//!   keystore.json               the header: format version, KDF (argon2id) and its parameters,
//!                               salt, the random file key sealed under the passphrase's key
//!                               (it opens only with the right passphrase: a wrong one is told
//!                               apart from a corrupt file; a new passphrase rewrites only this)
//!   config.json                 server URL, server name, trust mode, user, the homeserver's
//!                               signing key (hex) and other servers' keys, last inbox sequence
//!   identity.key                sealed; 32 bytes: Identity Key seed (Ed25519)
//!   device.key                  sealed; 32 bytes: Device Key seed (Ed25519)
//!   token                       sealed; the bearer token of the current login (text)
//!   rotations-unshown.json      user ids whose followed key rotation `rdv` has not shown yet
//!                               (shown once after the next command, then forgotten)
//!   devices-seen.json           which device endorsed which (key ids, hex): the link that
//!                               made this device and the inbox's `device added` notices
//!   rotated-from                sealed (for its integrity); CBOR list of the Identity Keys (public)
//!                               this device rotated from, itself or by an `identity rotated` inbox
//!                               item; oldest first, at most 64 (`MAX_ROTATED_FROM`); the
//!                               self-monitor and the roster check accept them as this user's
//!   prekeys/<key id>.key        sealed; 32 bytes: private Device Pre Key (X25519), deleted after use
//!   topic-keys/<key id>.key     sealed; CBOR [1, suite, signing seed, kem secret, cert]: a private Topic
//!                               Key and its IK-signed certificate (wire form of the cert); kept
//!                               for good (a topic may still use it)
//!   topic-keys/<key id>.last-resort
//!                               empty: the key is one of this user's last-resort keys (made
//!                               here, or delivered as one: inbox kind 3)
//!   topic-keys/<key id>.one-time
//!                               empty: the key is a one-time key (made here, or delivered as
//!                               one: inbox kind 1); only these are held to one topic
//!   topic-keys/<key id>.topic   the id of the first topic this device saw a one-time key used
//!                               in (it is refused in any other, `protocol.md` §7.2)
//!   topics/<id>/topic          the topic id (`<id>`: 16-byte hex of SHA-256(topic id), a
//!                               fixed length whatever the host's name; older keystores' folders
//!                               named by the topic id in hex are moved here when first used)
//!   topics/<id>/state.json
//!                               topic id, my member index, processed index (exclusive), last
//!                               verified checkpoint note
//!   topics/<id>/epoch-<n>.key
//!                               sealed; 32 bytes: the Message Key of epoch n
//!   topics/<id>/log.cbor
//!                               the log snapshot a check resumes from (`LogSnapshot`)
//!   topics/<id>/evidence-<n>.cbor
//!                               evidence against the hosting server (`tag-log.md` §8.2 CBOR),
//!                               kept for good: the topic is refused (`log_forked`) from then on
//!   directory/<server>/view     the checkpoint note of this device's view of the server's
//!                               identity directory (`directory.md` §6.2; text), moved forward
//!                               only with consistency proofs
//!   directory/<server>/evidence-<n>.cbor
//!                               evidence against the server's directory (`tag-log.md` §8.2
//!                               CBOR), kept for good: `directory_forked` from then on
//!   directory/<server>/contacts/<16-byte hex of SHA-256(user id)>
//!                               sealed, one per user id of that server: the accepted binding
//!                               (IK hex, entry index, checkpoint size), the IK verified with a
//!                               verification code, the key rotated from, a changed key refused
//!                               until accepted, the keys accepted before (`directory.md` §6.1,
//!                               §7); an older `bindings.json` is moved into them when read
//!   directory/<server>/state.json
//!                               whether a witness cosignature was ever seen (sticky), whether
//!                               the server says it is federated, and for the homeserver the
//!                               self-monitoring state: next entry index, frontier hashes (hex),
//!                               time of the last pass, acknowledged alarms (`directory.md` §6.3)
//!   directory/<server>/alarm-<index>.cbor
//!                               a self-monitoring alarm's evidence: `[1, held note, new note,
//!                               index, entry, inclusion proof]` (`directory.md` §6.3)
//! ```
//!
//! Nothing under `directory/` is secret.
//!
//! Key ids are the protocol's 16-byte key ids in hex. Secrets are read into zeroized buffers and
//! the key types zeroize themselves on drop; the file key is derived once per open and kept in a
//! zeroized buffer inside [`Keystore`].

mod at_rest;
mod contacts;
mod devices_seen;
mod directory;
mod files;
mod records;
mod rotated_from;
mod topics;

use std::fs;
use std::path::{Path, PathBuf};

use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use zeroize::Zeroizing;

use super::ClientError;
use super::tls::decode_hex;
use files::{list_dir, make_dir, read_optional, write_atomic};
use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey, KemSecretKey, KeyId, Suite, TopicKey};
use rendezvous_protocol::devices::{Secret32, encode_secret};
use rendezvous_protocol::wire::{Signed, SignedBytes, VERSION, Verified, decode_versioned};

use at_rest::{FileKey, HEADER, Header, MAX_HEADER, on};

pub use at_rest::{FORMAT, M_COST_KIB, P_COST, Passphrase, T_COST};
pub use directory::{ContactRecord, ContactState, DirectoryRecord, StoredBinding};
pub use records::{Config, LogSnapshot, RefusedPost, RosterRefusal, TopicRecord};
pub use rotated_from::MAX_ROTATED_FROM;

const CONFIG: &str = "config.json";
const IDENTITY: &str = "identity.key";
const DEVICE: &str = "device.key";
const TOKEN: &str = "token";
const PREKEYS: &str = "prekeys";
const TOPIC_KEYS: &str = "topic-keys";
/// Marker suffixes of a Topic Key: one of the user's last-resort keys, or a one-time key.
const LAST_RESORT: &str = "last-resort";
const ONE_TIME: &str = "one-time";
const TOPICS: &str = "topics";
const TOPIC_STATE: &str = "state.json";
const TOPIC_LOG: &str = "log.cbor";
/// Largest log snapshot read back.
const MAX_LOG_SNAPSHOT: usize = 512 * 1024 * 1024;

/// `[1, suite, signing seed, kem secret, cert]`: a stored Topic Key.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct TopicKeyFile {
    version: u8,
    suite: u16,
    signing_seed: Secret32,
    kem_secret: Secret32,
    cert: SignedBytes,
}

/// A device keystore directory, unlocked: it holds the key its secret files are sealed with.
pub struct Keystore {
    dir: PathBuf,
    key: FileKey,
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Keystore {
    /// Creates a new, empty keystore in `dir` (created with mode 0700 if missing), locked with
    /// `passphrase`: writes its header (`keystore.json`). Refused if `dir` already holds an
    /// account, or if the passphrase is empty.
    pub fn create(dir: &Path, passphrase: &Passphrase) -> Result<Keystore, ClientError> {
        refuse_empty(passphrase)?;
        Keystore::check_new(dir)?;
        make_dir(dir)?;
        let path = dir.join(HEADER);
        let (_, json, key) = FileKey::create(passphrase).map_err(on(&path))?;
        write_atomic(&path, &json)?;
        Ok(Keystore {
            dir: dir.to_owned(),
            key,
        })
    }

    /// Refused with [`ClientError::AlreadyRegistered`] if `dir` holds an account: what
    /// [`Self::create`] checks first, for a caller to check before it asks for a passphrase.
    pub fn check_new(dir: &Path) -> Result<(), ClientError> {
        if dir.join(CONFIG).exists() || dir.join(IDENTITY).exists() {
            return Err(ClientError::AlreadyRegistered(dir.to_owned()));
        }
        Ok(())
    }

    /// Whether `dir` holds an account this rdv can open (it may still ask for a passphrase):
    /// [`ClientError::NotRegistered`] if none, [`ClientError::PlaintextKeystore`] if an older
    /// rdv wrote it unencrypted. Reads nothing secret and changes nothing.
    pub fn check_existing(dir: &Path) -> Result<(), ClientError> {
        if !dir.join(CONFIG).is_file() {
            return Err(ClientError::NotRegistered(dir.to_owned()));
        }
        if !dir.join(HEADER).exists() {
            return Err(ClientError::PlaintextKeystore(dir.to_owned()));
        }
        Ok(())
    }

    /// Opens the keystore of an existing account with its passphrase: derives the key from the
    /// header's parameters and checks it. Writes nothing; a wrong passphrase is
    /// [`ClientError::WrongPassphrase`].
    pub fn open(dir: &Path, passphrase: &Passphrase) -> Result<Keystore, ClientError> {
        Keystore::check_existing(dir)?;
        let path = dir.join(HEADER);
        let bytes = files::read_limited(&path, MAX_HEADER)?;
        let header = Header::parse(&bytes).map_err(on(&path))?;
        let Some(key) = FileKey::unlock(&header, passphrase).map_err(on(&path))? else {
            return Err(ClientError::WrongPassphrase(dir.to_owned()));
        };
        Ok(Keystore {
            dir: dir.to_owned(),
            key,
        })
    }

    /// Locks the keystore with `new` from now on: writes a new header (a new salt) keeping the
    /// same file key, atomically, so no secret file is rewritten and the old passphrase opens
    /// nothing from then on (`devices.md` §5.5). Refused if `new` is empty.
    pub fn change_passphrase(&self, new: &Passphrase) -> Result<(), ClientError> {
        refuse_empty(new)?;
        let path = self.dir.join(HEADER);
        let (_, json) = self.key.header(new).map_err(on(&path))?;
        write_atomic(&path, &json)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the account files of a registration the server refused, so that the directory
    /// can be used again.
    pub fn forget_account(&self) -> Result<(), ClientError> {
        for name in [CONFIG, IDENTITY, DEVICE, TOKEN, HEADER] {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ClientError::io(&path, e)),
            }
        }
        Ok(())
    }

    /// Reads `config.json`.
    pub fn config(&self) -> Result<Config, ClientError> {
        let path = self.dir.join(CONFIG);
        let bytes = fs::read(&path).map_err(|e| ClientError::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::corrupt(&path, e))
    }

    /// Writes `config.json`.
    pub fn save_config(&self, config: &Config) -> Result<(), ClientError> {
        let json = serde_json::to_vec_pretty(config)
            .map_err(|e| ClientError::corrupt(self.dir.join(CONFIG), e))?;
        write_atomic(&self.dir.join(CONFIG), &json)
    }

    /// Stores the Identity Key seed.
    pub fn save_identity(&self, key: &IdentityKey) -> Result<(), ClientError> {
        self.write_secret(&self.dir.join(IDENTITY), &key.seed()[..])
    }

    /// The Identity Key.
    pub fn identity(&self) -> Result<IdentityKey, ClientError> {
        let seed = self.read_32(&self.dir.join(IDENTITY))?;
        Ok(IdentityKey::from_seed(&seed))
    }

    /// Stores the Device Key seed.
    pub fn save_device(&self, key: &DeviceKey) -> Result<(), ClientError> {
        self.write_secret(&self.dir.join(DEVICE), &key.seed()[..])
    }

    /// The Device Key.
    pub fn device(&self) -> Result<DeviceKey, ClientError> {
        let seed = self.read_32(&self.dir.join(DEVICE))?;
        Ok(DeviceKey::from_seed(&seed))
    }

    /// Stores the bearer token.
    pub fn save_token(&self, token: &str) -> Result<(), ClientError> {
        self.write_secret(&self.dir.join(TOKEN), token.as_bytes())
    }

    /// The stored bearer token, if any.
    pub fn token(&self) -> Result<Option<Zeroizing<String>>, ClientError> {
        let path = self.dir.join(TOKEN);
        let Some(bytes) = self.read_secret(&path)? else {
            return Ok(None);
        };
        std::str::from_utf8(&bytes)
            .map(|s| Some(Zeroizing::new(s.to_owned())))
            .map_err(|_| ClientError::corrupt(&path, "token is not text"))
    }

    /// Stores a private pre key under its key id.
    pub fn save_prekey(&self, key: &KemSecretKey) -> Result<(), ClientError> {
        let dir = self.subdir(PREKEYS)?;
        let name = format!("{}.key", key.public().key_id().to_hex());
        self.write_secret(&dir.join(name), &key.to_bytes()[..])
    }

    /// The private pre key with id `id`, if this device still holds it.
    pub fn prekey(&self, id: &KeyId) -> Result<Option<KemSecretKey>, ClientError> {
        let path = self.dir.join(PREKEYS).join(format!("{}.key", id.to_hex()));
        let Some(bytes) = self.read_secret(&path)? else {
            return Ok(None);
        };
        let key = KemSecretKey::from_bytes(Suite::X25519Sha256ChaCha20Poly1305, &bytes)
            .map_err(|e| ClientError::corrupt(&path, e))?;
        if key.public().key_id() != *id {
            return Err(ClientError::corrupt(&path, "key does not match its id"));
        }
        Ok(Some(key))
    }

    /// Deletes a used pre key.
    pub fn remove_prekey(&self, id: &KeyId) -> Result<(), ClientError> {
        let path = self.dir.join(PREKEYS).join(format!("{}.key", id.to_hex()));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ClientError::io(&path, e)),
        }
    }

    /// Stores a private Topic Key with its certificate, under the Topic Key's id.
    pub fn save_topic_key(
        &self,
        key: &TopicKey,
        cert: &Verified<TopicKeyCert>,
    ) -> Result<(), ClientError> {
        let dir = self.subdir(TOPIC_KEYS)?;
        let file = TopicKeyFile {
            version: VERSION,
            suite: key.public().kem.suite().id(),
            signing_seed: Secret32(key.signing().seed()),
            kem_secret: Secret32(key.kem().to_bytes()),
            cert: cert.signed_bytes().clone(),
        };
        let path = dir.join(format!("{}.key", key.public().key_id().to_hex()));
        let bytes = encode_secret(&file).map_err(|e| ClientError::corrupt(&path, e))?;
        self.write_secret(&path, &bytes)
    }

    /// The private Topic Key with id `id` and its certificate, checked again with `identity` or
    /// an Identity Key this device rotated from (`directory.md` §8: a key certified before a
    /// rotation stays the one its topics name).
    pub fn topic_key(
        &self,
        id: &KeyId,
        identity: &rendezvous_protocol::crypto::IdentityPublicKey,
    ) -> Result<Option<(TopicKey, Verified<TopicKeyCert>)>, ClientError> {
        let path = self
            .dir
            .join(TOPIC_KEYS)
            .join(format!("{}.key", id.to_hex()));
        let Some(bytes) = self.read_secret(&path)? else {
            return Ok(None);
        };
        let file: TopicKeyFile =
            decode_versioned(&bytes, 1024).map_err(|e| ClientError::corrupt(&path, e))?;
        let suite = Suite::from_id(file.suite).map_err(|e| ClientError::corrupt(&path, e))?;
        let key = TopicKey::from_bytes(suite, &file.signing_seed.0[..], &file.kem_secret.0[..])
            .map_err(|e| ClientError::corrupt(&path, e))?;
        let signed = Signed::<TopicKeyCert>::from_signed_bytes(file.cert)
            .map_err(|e| ClientError::corrupt(&path, e))?;
        let cert = match signed.clone().verify(identity) {
            Ok(cert) => cert,
            Err(e) => self
                .rotated_from()?
                .iter()
                .find_map(|old| signed.clone().verify(old).ok())
                .ok_or_else(|| ClientError::corrupt(&path, format!("certificate: {e}")))?,
        };
        if key.public().key_id() != *id || cert.topic_key().ok().as_ref() != Some(key.public()) {
            return Err(ClientError::corrupt(&path, "key does not match its id"));
        }
        Ok(Some((key, cert)))
    }

    /// Marks the Topic Key `id` as one of this user's last-resort keys (`client-api.md` §4).
    pub fn mark_last_resort(&self, id: &KeyId) -> Result<(), ClientError> {
        self.mark(id, LAST_RESORT)
    }

    /// Whether the Topic Key `id` is one of this user's last-resort keys.
    pub fn is_last_resort(&self, id: &KeyId) -> bool {
        self.marked(id, LAST_RESORT)
    }

    /// Marks the Topic Key `id` as a one-time key of this user: made here for `POST
    /// /v1/topic-keys`, or delivered as one (inbox kind 1).
    pub fn mark_one_time(&self, id: &KeyId) -> Result<(), ClientError> {
        self.mark(id, ONE_TIME)
    }

    /// Whether the Topic Key `id` is known to be a one-time key (keys received over a device
    /// link, or stored before keys were marked, are neither one-time nor last-resort here).
    pub fn is_one_time(&self, id: &KeyId) -> bool {
        self.marked(id, ONE_TIME)
    }

    fn mark(&self, id: &KeyId, what: &str) -> Result<(), ClientError> {
        let dir = self.subdir(TOPIC_KEYS)?;
        write_atomic(&dir.join(format!("{}.{what}", id.to_hex())), &[])
    }

    fn marked(&self, id: &KeyId, what: &str) -> bool {
        self.dir
            .join(TOPIC_KEYS)
            .join(format!("{}.{what}", id.to_hex()))
            .is_file()
    }

    /// The first topic this device saw its Topic Key `id` used in, if any.
    pub fn topic_key_use(&self, id: &KeyId) -> Result<Option<String>, ClientError> {
        let path = self
            .dir
            .join(TOPIC_KEYS)
            .join(format!("{}.topic", id.to_hex()));
        match read_optional(&path)? {
            Some(bytes) => String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|e| ClientError::corrupt(&path, e)),
            None => Ok(None),
        }
    }

    /// Records `topic` as the first topic the Topic Key `id` is used in.
    pub fn record_topic_key_use(&self, id: &KeyId, topic: &str) -> Result<(), ClientError> {
        let dir = self.subdir(TOPIC_KEYS)?;
        write_atomic(
            &dir.join(format!("{}.topic", id.to_hex())),
            topic.as_bytes(),
        )
    }

    /// Ids of all Topic Keys held.
    pub fn topic_key_ids(&self) -> Result<Vec<KeyId>, ClientError> {
        let mut ids = Vec::new();
        for name in self.list(TOPIC_KEYS)? {
            let Some(hex) = name.strip_suffix(".key") else {
                continue;
            };
            if let Some(id) = decode_hex(hex).and_then(|b| KeyId::from_slice(&b).ok()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn subdir(&self, name: &str) -> Result<PathBuf, ClientError> {
        let dir = self.dir.join(name);
        make_dir(&dir)?;
        Ok(dir)
    }

    fn list(&self, name: &str) -> Result<Vec<String>, ClientError> {
        list_dir(&self.dir.join(name))
    }

    /// Seals `plaintext` for `path` (under the keystore root) and writes it atomically.
    fn write_secret(&self, path: &Path, plaintext: &[u8]) -> Result<(), ClientError> {
        let sealed = self
            .key
            .seal_file(&self.relative(path)?, plaintext)
            .map_err(on(path))?;
        write_atomic(path, &sealed)
    }

    /// The opened secret file at `path`, if it exists.
    fn read_secret(&self, path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
        let Some(bytes) = read_optional(path)? else {
            return Ok(None);
        };
        self.key
            .open_file(&self.relative(path)?, &bytes)
            .map(Some)
            .map_err(|e| ClientError::corrupt(path, e))
    }

    /// `path` relative to the keystore root, `/`-separated: the additional data it is sealed
    /// under (`devices.md` §5.5).
    fn relative(&self, path: &Path) -> Result<String, ClientError> {
        let rel = path
            .strip_prefix(&self.dir)
            .map_err(|_| ClientError::corrupt(path, "not inside the keystore"))?;
        let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        parts
            .map(|p| p.join("/"))
            .ok_or_else(|| ClientError::corrupt(path, "file name is not UTF-8"))
    }

    fn read_32(&self, path: &Path) -> Result<Zeroizing<[u8; 32]>, ClientError> {
        let bytes = self.read_secret(path)?.ok_or_else(|| {
            ClientError::io(path, std::io::Error::from(std::io::ErrorKind::NotFound))
        })?;
        let mut out = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err(ClientError::corrupt(
                path,
                format!("expected 32 bytes, found {}", bytes.len()),
            ));
        }
        out.copy_from_slice(&bytes);
        Ok(out)
    }
}

/// An empty passphrase is refused for a new keystore or a new header.
fn refuse_empty(passphrase: &Passphrase) -> Result<(), ClientError> {
    if passphrase.is_empty() {
        return Err(ClientError::InvalidInput(
            "an empty passphrase protects nothing: choose one".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;

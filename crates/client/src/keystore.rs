//! The device's keystore: one directory per device (`rdv --home DIR`).
//!
//! Layout (directory mode 0700, every file 0600, every write atomic: a temporary file in the
//! same directory, fsync, rename):
//!
//! ```text
//! DIR/
//!   config.json                 server URL, server name, trust mode, user, the homeserver's
//!                               signing key (hex) and other servers' keys, last inbox sequence
//!   identity.key                32 bytes: Identity Key seed (Ed25519)
//!   device.key                  32 bytes: Device Key seed (Ed25519)
//!   token                       the bearer token of the current login (text)
//!   prekeys/<key id>.key        32 bytes: private Device Pre Key (X25519), deleted after use
//!   topic-keys/<key id>.key     CBOR [1, suite, signing seed, kem secret, cert]: a private Topic
//!                               Key and its IK-signed certificate (wire form of the cert)
//!   topics/<hex topic id>/state.json
//!                               topic id, my member index, processed index (exclusive), last
//!                               verified checkpoint note
//!   topics/<hex topic id>/epoch-<n>.key
//!                               32 bytes: the Message Key of epoch n
//! ```
//!
//! Key ids are the protocol's 16-byte key ids in hex. Secrets are read into zeroized buffers and
//! the key types zeroize themselves on drop.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use zeroize::Zeroizing;

use super::ClientError;
use super::tls::{Trust, decode_hex};
use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::crypto::{
    DeviceKey, IdentityKey, KemSecretKey, KeyId, MessageKey, ServerPublicKey, Suite, TopicKey,
};
use rendezvous_protocol::devices::{Secret32, encode_secret};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::wire::{Signed, SignedBytes, VERSION, Verified, decode_versioned};

const CONFIG: &str = "config.json";
const IDENTITY: &str = "identity.key";
const DEVICE: &str = "device.key";
const TOKEN: &str = "token";
const PREKEYS: &str = "prekeys";
const TOPIC_KEYS: &str = "topic-keys";
const TOPICS: &str = "topics";
const TOPIC_STATE: &str = "state.json";
const TOPIC_LOG: &str = "log.cbor";
/// Largest log snapshot read back.
const MAX_LOG_SNAPSHOT: usize = 512 * 1024 * 1024;

/// What a device keeps of a topic's log to go on checking it where it stopped
/// (`topics/<id>/log.cbor`): every change with its index, to rebuild the topic state with
/// [`rendezvous_protocol::topic::TopicState::restore`], and every message tag, to catch a replayed message.
/// `[1, size, [* [index, signed change]], [* tag]]`.
#[derive(Debug, Clone, Default, Serialize_tuple, Deserialize_tuple)]
pub struct LogSnapshot {
    /// Always 1.
    pub version: u8,
    /// Entries covered (the position of the next entry).
    pub size: u64,
    /// `(index, signed change wire form)`, ascending.
    pub changes: Vec<(u64, serde_bytes::ByteBuf)>,
    /// Tags of all messages in the covered entries.
    pub tags: Vec<serde_bytes::ByteBuf>,
}

/// The device's settings (`config.json`). Nothing secret, kept 0600 all the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Base URL of the homeserver, `https://host[:port]`.
    pub server_url: String,
    /// The homeserver's name (the server part of user and topic ids).
    pub server_name: String,
    /// How the server's TLS certificate is checked (see [`Trust`]'s text form).
    pub trust: String,
    /// This device's user.
    pub user: String,
    /// Signing keys (hex) of servers whose checkpoints we check, by server name; the homeserver's
    /// is learned at registration over the verified TLS channel.
    #[serde(default)]
    pub server_keys: BTreeMap<String, String>,
    /// Highest inbox sequence number processed and acknowledged.
    #[serde(default)]
    pub inbox_seq: u64,
    /// Identity Keys (hex) of other users, pinned the first time they were seen: a later
    /// different key for the same user is refused.
    #[serde(default)]
    pub identities: BTreeMap<String, String>,
}

impl Config {
    /// The parsed trust mode.
    pub fn trust(&self) -> Result<Trust, ClientError> {
        self.trust.parse()
    }

    /// The parsed user id.
    pub fn user(&self) -> Result<UserId, ClientError> {
        self.user
            .parse()
            .map_err(|e| ClientError::corrupt(CONFIG, format!("user: {e}")))
    }

    /// The parsed server name.
    pub fn server_name(&self) -> Result<ServerName, ClientError> {
        self.server_name
            .parse()
            .map_err(|e| ClientError::corrupt(CONFIG, format!("server_name: {e}")))
    }

    /// The signing key of `server`, if known.
    pub fn server_key(&self, server: &str) -> Result<Option<ServerPublicKey>, ClientError> {
        let Some(hex) = self.server_keys.get(server) else {
            return Ok(None);
        };
        let bytes =
            decode_hex(hex).ok_or_else(|| ClientError::corrupt(CONFIG, "server key is not hex"))?;
        ServerPublicKey::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::corrupt(CONFIG, format!("server key: {e}")))
    }
}

/// What this device knows about one topic (`topics/<id>/state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// The topic id.
    pub topic: String,
    /// This user's member index, once known.
    pub member: Option<u32>,
    /// Log entries processed and shown, from 0 (exclusive end).
    pub processed: u64,
    /// The last checkpoint note whose signature and consistency were verified.
    pub checkpoint: Option<String>,
}

/// `[1, suite, signing seed, kem secret, cert]`: a stored Topic Key.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct TopicKeyFile {
    version: u8,
    suite: u16,
    signing_seed: Secret32,
    kem_secret: Secret32,
    cert: SignedBytes,
}

/// A device keystore directory.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// Creates a new, empty keystore in `dir` (created with mode 0700 if missing). Refused if
    /// `dir` already holds an account.
    pub fn create(dir: &Path) -> Result<Keystore, ClientError> {
        make_dir(dir)?;
        if dir.join(CONFIG).exists() || dir.join(IDENTITY).exists() {
            return Err(ClientError::AlreadyRegistered(dir.to_owned()));
        }
        Ok(Keystore {
            dir: dir.to_owned(),
        })
    }

    /// Opens the keystore of an existing account.
    pub fn open(dir: &Path) -> Result<Keystore, ClientError> {
        if !dir.join(CONFIG).is_file() {
            return Err(ClientError::NotRegistered(dir.to_owned()));
        }
        Ok(Keystore {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the account files of a registration the server refused, so that the directory
    /// can be used again.
    pub fn forget_account(&self) -> Result<(), ClientError> {
        for name in [CONFIG, IDENTITY, DEVICE, TOKEN] {
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
        write_atomic(&self.dir.join(IDENTITY), &key.seed()[..])
    }

    /// The Identity Key.
    pub fn identity(&self) -> Result<IdentityKey, ClientError> {
        let seed = self.read_32(&self.dir.join(IDENTITY))?;
        Ok(IdentityKey::from_seed(&seed))
    }

    /// Stores the Device Key seed.
    pub fn save_device(&self, key: &DeviceKey) -> Result<(), ClientError> {
        write_atomic(&self.dir.join(DEVICE), &key.seed()[..])
    }

    /// The Device Key.
    pub fn device(&self) -> Result<DeviceKey, ClientError> {
        let seed = self.read_32(&self.dir.join(DEVICE))?;
        Ok(DeviceKey::from_seed(&seed))
    }

    /// Stores the bearer token.
    pub fn save_token(&self, token: &str) -> Result<(), ClientError> {
        write_atomic(&self.dir.join(TOKEN), token.as_bytes())
    }

    /// The stored bearer token, if any.
    pub fn token(&self) -> Result<Option<Zeroizing<String>>, ClientError> {
        let path = self.dir.join(TOKEN);
        match fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes)
                .map(|s| Some(Zeroizing::new(s)))
                .map_err(|_| ClientError::corrupt(&path, "token is not text")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClientError::io(&path, e)),
        }
    }

    /// Stores a private pre key under its key id.
    pub fn save_prekey(&self, key: &KemSecretKey) -> Result<(), ClientError> {
        let dir = self.subdir(PREKEYS)?;
        let name = format!("{}.key", key.public().key_id().to_hex());
        write_atomic(&dir.join(name), &key.to_bytes()[..])
    }

    /// The private pre key with id `id`, if this device still holds it.
    pub fn prekey(&self, id: &KeyId) -> Result<Option<KemSecretKey>, ClientError> {
        let path = self.dir.join(PREKEYS).join(format!("{}.key", id.to_hex()));
        let Some(bytes) = read_optional(&path)? else {
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
        write_atomic(&path, &bytes)
    }

    /// The private Topic Key with id `id` and its certificate (checked again with `identity`).
    pub fn topic_key(
        &self,
        id: &KeyId,
        identity: &rendezvous_protocol::crypto::IdentityPublicKey,
    ) -> Result<Option<(TopicKey, Verified<TopicKeyCert>)>, ClientError> {
        let path = self
            .dir
            .join(TOPIC_KEYS)
            .join(format!("{}.key", id.to_hex()));
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let file: TopicKeyFile =
            decode_versioned(&bytes, 1024).map_err(|e| ClientError::corrupt(&path, e))?;
        let suite = Suite::from_id(file.suite).map_err(|e| ClientError::corrupt(&path, e))?;
        let key = TopicKey::from_bytes(suite, &file.signing_seed.0[..], &file.kem_secret.0[..])
            .map_err(|e| ClientError::corrupt(&path, e))?;
        let cert = Signed::<TopicKeyCert>::from_signed_bytes(file.cert)
            .map_err(|e| ClientError::corrupt(&path, e))?
            .verify(identity)
            .map_err(|e| ClientError::corrupt(&path, format!("certificate: {e}")))?;
        if key.public().key_id() != *id || cert.topic_key().ok().as_ref() != Some(key.public()) {
            return Err(ClientError::corrupt(&path, "key does not match its id"));
        }
        Ok(Some((key, cert)))
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

    fn topic_dir(&self, topic: &TopicId) -> PathBuf {
        self.dir
            .join(TOPICS)
            .join(hex_string(topic.as_str().as_bytes()))
    }

    /// What this device knows about `topic`, if anything.
    pub fn topic(&self, topic: &TopicId) -> Result<Option<TopicRecord>, ClientError> {
        let path = self.topic_dir(topic).join(TOPIC_STATE);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let record: TopicRecord =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::corrupt(&path, e))?;
        if record.topic != topic.as_str() {
            return Err(ClientError::corrupt(&path, "record is for another topic"));
        }
        Ok(Some(record))
    }

    /// Stores what this device knows about a topic.
    pub fn save_topic(&self, record: &TopicRecord) -> Result<(), ClientError> {
        let topic: TopicId = record
            .topic
            .parse()
            .map_err(|e| ClientError::InvalidInput(format!("topic id: {e}")))?;
        let dir = self.topic_dir(&topic);
        make_dir(&self.dir.join(TOPICS))?;
        make_dir(&dir)?;
        let json = serde_json::to_vec_pretty(record).map_err(|e| ClientError::corrupt(&dir, e))?;
        write_atomic(&dir.join(TOPIC_STATE), &json)
    }

    /// The saved log snapshot of `topic`, if any.
    pub fn log_snapshot(&self, topic: &TopicId) -> Result<Option<LogSnapshot>, ClientError> {
        let path = self.topic_dir(topic).join(TOPIC_LOG);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        decode_versioned(&bytes, MAX_LOG_SNAPSHOT)
            .map(Some)
            .map_err(|e| ClientError::corrupt(&path, e))
    }

    /// Saves the log snapshot of `topic` (atomically).
    pub fn save_log_snapshot(
        &self,
        topic: &TopicId,
        snapshot: &LogSnapshot,
    ) -> Result<(), ClientError> {
        let dir = self.topic_dir(topic);
        make_dir(&self.dir.join(TOPICS))?;
        make_dir(&dir)?;
        write_atomic(
            &dir.join(TOPIC_LOG),
            &rendezvous_protocol::wire::encode(snapshot),
        )
    }

    /// Topics this device has a record of.
    pub fn topics(&self) -> Result<Vec<TopicId>, ClientError> {
        let mut out = Vec::new();
        for name in self.list(TOPICS)? {
            let Some(text) = decode_hex(&name).and_then(|b| String::from_utf8(b).ok()) else {
                continue;
            };
            if let Ok(topic) = text.parse() {
                out.push(topic);
            }
        }
        Ok(out)
    }

    /// Stores the Message Key of `epoch` of `topic`.
    pub fn save_message_key(
        &self,
        topic: &TopicId,
        epoch: u32,
        key: &MessageKey,
    ) -> Result<(), ClientError> {
        let dir = self.topic_dir(topic);
        make_dir(&self.dir.join(TOPICS))?;
        make_dir(&dir)?;
        write_atomic(&dir.join(format!("epoch-{epoch}.key")), key.as_bytes())
    }

    /// All Message Keys held for `topic`, by epoch.
    pub fn message_keys(&self, topic: &TopicId) -> Result<Vec<(u32, MessageKey)>, ClientError> {
        let dir = self.topic_dir(topic);
        let mut out = Vec::new();
        for name in list_dir(&dir)? {
            let Some(epoch) = name
                .strip_prefix("epoch-")
                .and_then(|n| n.strip_suffix(".key"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = dir.join(&name);
            let bytes = self.read_32(&path)?;
            let key =
                MessageKey::from_slice(&bytes[..]).map_err(|e| ClientError::corrupt(&path, e))?;
            out.push((epoch, key));
        }
        out.sort_by_key(|(e, _)| *e);
        Ok(out)
    }

    fn subdir(&self, name: &str) -> Result<PathBuf, ClientError> {
        let dir = self.dir.join(name);
        make_dir(&dir)?;
        Ok(dir)
    }

    fn list(&self, name: &str) -> Result<Vec<String>, ClientError> {
        list_dir(&self.dir.join(name))
    }

    fn read_32(&self, path: &Path) -> Result<Zeroizing<[u8; 32]>, ClientError> {
        let bytes = Zeroizing::new(fs::read(path).map_err(|e| ClientError::io(path, e))?);
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

fn list_dir(dir: &Path) -> Result<Vec<String>, ClientError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ClientError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ClientError::io(dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && !name.ends_with(".tmp")
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn read_optional(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(Zeroizing::new(b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::io(path, e)),
    }
}

/// Creates `dir` with mode 0700 (parents as needed) and tightens an existing one to 0700.
fn make_dir(dir: &Path) -> Result<(), ClientError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ClientError::io(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| ClientError::io(dir, e))
}

/// Writes `bytes` to `path` atomically with mode 0600: temporary file, fsync, rename, fsync of
/// the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| ClientError::io(&tmp, e))?;
    // An older temporary file may have had other permissions.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| ClientError::io(&tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| ClientError::io(&tmp, e))?;
    file.sync_all().map_err(|e| ClientError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| ClientError::io(path, e))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendezvous_protocol::crypto::Randomness;

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rdv-ks-{name}-{}-{}",
            std::process::id(),
            hex_string(&rendezvous_protocol::crypto::random_array::<4>())
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn config() -> Config {
        Config {
            server_url: "https://a.example:8448".into(),
            server_name: "a.example".into(),
            trust: "system-roots".into(),
            user: "@alice:a.example".into(),
            server_keys: BTreeMap::from([("a.example".into(), hex_string(&[7u8; 32]))]),
            inbox_seq: 3,
            identities: BTreeMap::new(),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trip_and_permissions() {
        let dir = temp_dir("rt");
        let ks = Keystore::create(&dir).unwrap();
        assert!(matches!(
            Keystore::open(&dir),
            Err(ClientError::NotRegistered(_))
        ));
        ks.save_config(&config()).unwrap();
        assert!(matches!(
            Keystore::create(&dir),
            Err(ClientError::AlreadyRegistered(_))
        ));
        let ks = Keystore::open(&dir).unwrap();
        assert_eq!(ks.config().unwrap(), config());

        let ik = IdentityKey::generate();
        let dk = DeviceKey::generate();
        ks.save_identity(&ik).unwrap();
        ks.save_device(&dk).unwrap();
        assert_eq!(ks.identity().unwrap().public(), ik.public());
        assert_eq!(ks.device().unwrap().public(), dk.public());

        assert!(ks.token().unwrap().is_none());
        ks.save_token("tok").unwrap();
        assert_eq!(ks.token().unwrap().unwrap().as_str(), "tok");

        let pk = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let id = pk.public().key_id();
        ks.save_prekey(&pk).unwrap();
        assert_eq!(ks.prekey(&id).unwrap().unwrap().public(), pk.public());
        ks.remove_prekey(&id).unwrap();
        assert!(ks.prekey(&id).unwrap().is_none());

        let user: UserId = "@alice:a.example".parse().unwrap();
        let tk = TopicKey::generate_with(Suite::X25519Sha256ChaCha20Poly1305, &mut Randomness::Os);
        let cert = Signed::sign(TopicKeyCert::new(user.clone(), tk.public(), 5), &ik);
        ks.save_topic_key(&tk, &cert).unwrap();
        let tk_id = tk.public().key_id();
        assert_eq!(ks.topic_key_ids().unwrap(), vec![tk_id]);
        let (back, back_cert) = ks.topic_key(&tk_id, ik.public()).unwrap().unwrap();
        assert_eq!(back.public(), tk.public());
        assert_eq!(back_cert.signed_bytes(), cert.signed_bytes());
        // Checked against the identity key on the way out.
        let other = IdentityKey::generate();
        assert!(ks.topic_key(&tk_id, other.public()).is_err());

        let topic: TopicId = "!abcdefghijklmnopqrstuvwxyz:a.example".parse().unwrap();
        assert!(ks.topic(&topic).unwrap().is_none());
        let record = TopicRecord {
            topic: topic.to_string(),
            member: Some(2),
            processed: 9,
            checkpoint: Some("note".into()),
        };
        ks.save_topic(&record).unwrap();
        assert_eq!(ks.topic(&topic).unwrap().unwrap(), record);
        assert_eq!(ks.topics().unwrap(), vec![topic.clone()]);
        let mk = MessageKey::generate();
        ks.save_message_key(&topic, 1, &mk).unwrap();
        let keys = ks.message_keys(&topic).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, 1);
        assert_eq!(keys[0].1.as_bytes(), mk.as_bytes());

        // Permissions: directories 0700, files 0600, no temporary files left.
        assert_eq!(mode(&dir), 0o700);
        for sub in [PREKEYS, TOPIC_KEYS, TOPICS] {
            assert_eq!(mode(&dir.join(sub)), 0o700, "{sub}");
        }
        for f in [CONFIG, IDENTITY, DEVICE, TOKEN] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        for entry in walk(&dir) {
            assert!(!entry.to_string_lossy().ends_with(".tmp"), "{entry:?}");
            if entry.is_file() {
                assert_eq!(mode(&entry), 0o600, "{entry:?}");
            } else {
                assert_eq!(mode(&entry), 0o700, "{entry:?}");
            }
        }
        let _ = fs::remove_dir_all(dir);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn corrupt_files_are_clear_errors() {
        let dir = temp_dir("corrupt");
        let ks = Keystore::create(&dir).unwrap();
        fs::write(dir.join(IDENTITY), b"short").unwrap();
        let err = ks.identity().unwrap_err();
        assert!(err.to_string().contains("expected 32 bytes"), "{err}");
        fs::write(dir.join(CONFIG), b"{").unwrap();
        assert!(matches!(ks.config(), Err(ClientError::Corrupt { .. })));
        assert!(matches!(ks.device(), Err(ClientError::Io { .. })));
        let _ = fs::remove_dir_all(dir);
    }
}

//! The committed vectors the runner uses (`federation-spec/vectors/`): keys.json, certs.json,
//! message.json, topic_changes.json, transcripts.json. Fields are looked up by name and checked
//! as they are read, so that a vector file that gains fields still loads and one that lost a
//! field the runner needs is one clear error.

use std::path::Path;

use rendezvous_protocol::crypto::{
    DeviceKey, IdentityKey, ServerKey, ServerPublicKey, Suite, TopicKey,
};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use serde_json::Value;

/// What the runner takes from the vectors.
pub struct Vectors {
    /// The registering user (keys.json `identity[0].user`, `@alice:a.example`).
    pub user: UserId,
    /// Its server: the target must be named so.
    pub server: ServerName,
    /// The user's Identity Key (from its seed).
    pub identity: IdentityKey,
    /// The first device's key (keys.json `device.seed`).
    pub device: DeviceKey,
    /// The second device's key (certs.json `device_endorsement.new_device_seed`).
    pub device2: DeviceKey,
    /// Wire forms of certs.json: registration, device certificate, endorsement of the second
    /// device, pre key, the user's topic key certificate.
    pub registration: Vec<u8>,
    /// certs.json `device_cert.wire`.
    pub device_cert: Vec<u8>,
    /// certs.json `device_endorsement.wire`.
    pub endorsement: Vec<u8>,
    /// certs.json `prekey.wire`.
    pub prekey: Vec<u8>,
    /// certs.json `topic_key_certs[user].wire`.
    pub topic_key_cert: Vec<u8>,
    /// The user's Topic Key (keys.json `topic_keys[user]`).
    pub topic_key: TopicKey,
    /// The hosting server's key (keys.json `server`): the target must sign with it.
    pub server_key: ServerPublicKey,
    /// The vectors' topic id (topic_changes.json `topic`).
    pub topic: TopicId,
    /// certs.json `created`, used as every time the runner writes.
    pub created: u64,
    /// topic_changes.json `create.rng_seed`.
    pub create_rng: [u8; 32],
    /// message.json `rng_seed`.
    pub message_rng: [u8; 32],
    /// message.json `plaintext`.
    pub plaintext: Vec<u8>,
    /// transcripts.json cases for `rdv/v1/device-login`.
    pub login_transcripts: Vec<TranscriptCase>,
}

/// A transcripts.json case: the parts and the transcript they give.
pub struct TranscriptCase {
    /// The parts.
    pub parts: Vec<Vec<u8>>,
    /// `transcript(label, parts)`.
    pub transcript: Vec<u8>,
}

fn load(dir: &Path, file: &str) -> Result<Value, String> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The value at `path` (object keys) in `v`.
fn at<'a>(v: &'a Value, file: &str, path: &[&str]) -> Result<&'a Value, String> {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(key)
            .ok_or_else(|| format!("{file}: no field {}", path.join(".")))?;
    }
    Ok(cur)
}

fn text<'a>(v: &'a Value, file: &str, path: &[&str]) -> Result<&'a str, String> {
    at(v, file, path)?
        .as_str()
        .ok_or_else(|| format!("{file}: {} is not text", path.join(".")))
}

fn hex_at(v: &Value, file: &str, path: &[&str]) -> Result<Vec<u8>, String> {
    hex::decode(text(v, file, path)?).map_err(|e| format!("{file}: {}: {e}", path.join(".")))
}

fn seed_at(v: &Value, file: &str, path: &[&str]) -> Result<[u8; 32], String> {
    hex_at(v, file, path)?
        .try_into()
        .map_err(|_| format!("{file}: {} is not 32 bytes", path.join(".")))
}

/// The first element of the array at `path` whose `user` is `user` (the first one when `user`
/// is `None`).
fn entry_for<'a>(
    v: &'a Value,
    file: &str,
    path: &[&str],
    user: Option<&str>,
) -> Result<&'a Value, String> {
    at(v, file, path)?
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|e| user.is_none_or(|u| e.get("user").and_then(Value::as_str) == Some(u)))
        })
        .ok_or_else(|| format!("{file}: no {} entry for {user:?}", path.join(".")))
}

impl Vectors {
    /// Reads the vectors in `dir`.
    pub fn load(dir: &Path) -> Result<Vectors, String> {
        let keys = load(dir, "keys.json")?;
        let certs = load(dir, "certs.json")?;
        let message = load(dir, "message.json")?;
        let changes = load(dir, "topic_changes.json")?;
        let transcripts = load(dir, "transcripts.json")?;
        let k = "keys.json";
        let c = "certs.json";
        let identity = entry_for(&keys, k, &["identity"], None)?;
        let user: UserId = text(identity, k, &["user"])?
            .parse()
            .map_err(|e| format!("{k}: identity[0].user: {e}"))?;
        let tk = entry_for(&keys, k, &["topic_keys"], Some(user.as_str()))?;
        let suite = match tk.get("suite").and_then(Value::as_u64) {
            Some(id) => u16::try_from(id)
                .ok()
                .and_then(|id| Suite::from_id(id).ok())
                .ok_or_else(|| format!("{k}: unknown suite {id}"))?,
            None => Suite::X25519Sha256ChaCha20Poly1305,
        };
        let topic_key = TopicKey::from_bytes(
            suite,
            &hex_at(tk, k, &["signing_seed"])?,
            &hex_at(tk, k, &["kem_secret"])?,
        )
        .map_err(|e| format!("{k}: topic key of {user}: {e}"))?;
        let tk_cert = entry_for(&certs, c, &["topic_key_certs"], Some(user.as_str()))?;
        let topic: TopicId = text(&changes, "topic_changes.json", &["topic"])
            .or_else(|_| text(&message, "message.json", &["topic"]))?
            .parse()
            .map_err(|e| format!("topic_changes.json: topic: {e}"))?;
        Ok(Vectors {
            server: user.server(),
            identity: IdentityKey::from_seed(&seed_at(identity, k, &["seed"])?),
            device: DeviceKey::from_seed(&seed_at(&keys, k, &["device", "seed"])?),
            device2: DeviceKey::from_seed(&seed_at(
                &certs,
                c,
                &["device_endorsement", "new_device_seed"],
            )?),
            registration: hex_at(&certs, c, &["registration", "wire"])?,
            device_cert: hex_at(&certs, c, &["device_cert", "wire"])?,
            endorsement: hex_at(&certs, c, &["device_endorsement", "wire"])?,
            prekey: hex_at(&certs, c, &["prekey", "wire"])?,
            topic_key_cert: hex_at(tk_cert, c, &["wire"])?,
            topic_key,
            server_key: ServerKey::from_seed(&seed_at(&keys, k, &["server", "seed"])?)
                .public()
                .clone(),
            topic,
            created: at(&certs, c, &["created"])?
                .as_u64()
                .ok_or_else(|| format!("{c}: created is not a number"))?,
            create_rng: seed_at(&changes, "topic_changes.json", &["create", "rng_seed"])?,
            message_rng: seed_at(&message, "message.json", &["rng_seed"])?,
            plaintext: hex_at(&message, "message.json", &["plaintext"])?,
            login_transcripts: login_cases(&transcripts)?,
            user,
        })
    }
}

/// The transcripts.json cases of the device-login label.
fn login_cases(v: &Value) -> Result<Vec<TranscriptCase>, String> {
    let f = "transcripts.json";
    let cases = at(v, f, &["cases"])?
        .as_array()
        .ok_or_else(|| format!("{f}: cases is not a list"))?;
    let label = rendezvous_protocol::crypto::transcript::LABEL_DEVICE_LOGIN;
    let mut out = Vec::new();
    for case in cases
        .iter()
        .filter(|c| c.get("label").and_then(Value::as_str) == Some(label))
    {
        let parts = at(case, f, &["parts"])?
            .as_array()
            .ok_or_else(|| format!("{f}: parts is not a list"))?
            .iter()
            .map(|p| {
                p.as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .ok_or_else(|| format!("{f}: a part is not hex"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(TranscriptCase {
            parts,
            transcript: hex_at(case, f, &["transcript"])?,
        });
    }
    if out.is_empty() {
        return Err(format!("{f}: no case for {label}"));
    }
    Ok(out)
}
